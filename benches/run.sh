#!/usr/bin/env bash
# The benchmarks of BENCHMARKS.md: idle RSS of `serve`, /health throughput under wrk (against a bare hyper server
# run the same way), CPU time per /health request, the latency POST /api/chat adds (benches/chat_latency.rs), the
# streaming figures (benches/stream.rs), disk use of a large turn (benches/store_size.rs), and memory under a burst
# of wrong logins (benches/login_burst.rs).
# Needs wrk (Debian: apt-get install wrk). Usage: benches/run.sh [rounds]   (default 5 rounds of 5 s per server)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-5}
command -v wrk >/dev/null || { echo "wrk is needed: apt-get install wrk" >&2; exit 1; }

cargo build --release --bins --examples -q
bin=target/release/remote-agent
fake=target/release/examples/fake-claude
bare=target/release/examples/bare-hyper
tmp=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$tmp"; }
trap cleanup EXIT

# start NAME LOGFILE CMD... : starts a server, waits for its "listening on" line, sets $pid and $addr.
start() {
  local name=$1 log=$2; shift 2
  "$@" >"$tmp/$name.out" 2>"$log" &
  pid=$!; pids+=("$pid")
  for _ in $(seq 200); do
    addr=$(sed -n 's/^listening on http:\/\///p' "$tmp/$name.out")
    [ -n "$addr" ] && return 0
    sleep 0.05
  done
  echo "$name did not start" >&2; exit 1
}
rss_kb() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
# What the machine pays and cannot reclaim (anonymous), and the process's share of every page (PSS).
anon_kb() { awk '/^Anonymous:/ {print $2}' "/proc/$1/smaps_rollup"; }
pss_kb() { awk '/^Pss:/ {print $2}' "/proc/$1/smaps_rollup"; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

mkdir -p "$tmp/project" "$tmp/home"
serve_cmd=(env -i PATH="$PATH" HOME="$tmp/home" AUTH_USERNAME=bench AUTH_PASSWORD=bench-password CLAUDE_BIN="$fake"
  "$bin" serve --host 127.0.0.1 --port 0 --data-dir "$tmp/data" --project "$tmp/project")

echo "== machine"
echo "$(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -sr)"
grep -m1 'model name' /proc/cpuinfo | sed 's/.*: /cpu: /'
echo "rustc: $(rustc --version)"

echo "== idle memory of serve: anonymous and PSS (smaps_rollup), RSS for reference (started, no request yet; then"
echo "   after one chat turn and 1000 /health requests)"
start serve "$tmp/serve.log" "${serve_cmd[@]}"
sleep 1
echo "idle: anonymous $(anon_kb "$pid") kB, PSS $(pss_kb "$pid") kB, RSS $(rss_kb "$pid") kB (peak RSS during start-up $(awk '/VmHWM/ {print $2}' "/proc/$pid/status") kB)"
curl -s -u bench:bench-password -d '{"message":"hi"}' "http://$addr/api/chat" >/dev/null
for _ in $(seq 1000); do echo; done | xargs -P4 -I{} curl -s -o /dev/null "http://$addr/health"
sleep 1
echo "after a turn and 1000 requests: anonymous $(anon_kb "$pid") kB, PSS $(pss_kb "$pid") kB, RSS $(rss_kb "$pid") kB"
kill "$pid"; wait "$pid" 2>/dev/null || true

echo "== GET /health, wrk -t2 -c50 -d5s, $rounds rounds each, servers interleaved"
echo "   (log: serve writes its request log to a file, as it would under a service manager)"
start bare /dev/null "$bare"; bare_pid=$pid; bare_addr=$addr
start serve "$tmp/serve-wrk.log" "${serve_cmd[@]}"; serve_pid=$pid; serve_addr=$addr
start quiet /dev/null env RUST_LOG=warn "${serve_cmd[@]}"; quiet_pid=$pid; quiet_addr=$addr
for name in bare serve quiet; do : >"$tmp/$name.rps"; : >"$tmp/$name.cpu"; done
for _ in $(seq "$rounds"); do
  for name in bare serve quiet; do
    p=${name}_pid; a=${name}_addr
    before=$(cpu_ticks "${!p}")
    out=$(wrk -t2 -c50 -d5s "http://${!a}/health")
    after=$(cpu_ticks "${!p}")
    rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
    reqs=$(echo "$out" | awk '/requests in/ {print $1}')
    echo "$rps" >>"$tmp/$name.rps"
    # clock ticks are 1/100 s: CPU microseconds per request
    echo "$before $after $reqs" | awk '{printf "%.2f\n", ($2-$1)*10000/$3}' >>"$tmp/$name.cpu"
  done
done
for name in bare serve quiet; do
  printf '%-6s median %8.0f req/s (rounds: %s)  CPU %s us/request\n' "$name" \
    "$(median <"$tmp/$name.rps")" "$(tr '\n' ' ' <"$tmp/$name.rps" | sed 's/ $//')" "$(median <"$tmp/$name.cpu")"
done
echo "(bare = hyper with no routing, logging or checks; serve = remote-agent serve; quiet = serve with RUST_LOG=warn)"

echo "== POST /api/chat latency with the instant fake claude"
cargo bench -q --bench chat_latency 2>/dev/null | grep -v '^$'

echo "== streaming (the real-CLI part needs REMOTE_AGENT_REAL_CLAUDE)"
cargo bench -q --bench stream 2>/dev/null | grep -v '^$'

echo "== disk use of a 50 MB turn, and the start-up quick_check"
cargo bench -q --bench store_size 2>/dev/null | grep -v '^$'

echo "== up"
cargo bench -q --bench up 2>/dev/null | grep -v '^$'

echo "== a burst of wrong logins against an argon2id password (memory)"
cargo bench -q --bench login_burst 2>/dev/null | grep -v '^$'

echo "== the web app's first load (needs Debian's chromium and npm install --prefix tests/web)"
if [ -x /usr/bin/chromium ] && [ -d tests/web/node_modules/playwright-core ]; then
  start web "$tmp/web.log" "${serve_cmd[@]}"
  RA_URL="http://$addr" node tests/web/bench.mjs
  kill "$pid"
else
  echo "skipped: chromium or playwright-core missing"
fi
