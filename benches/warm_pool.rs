//! What the warm pool costs: the private memory (Pss_Anon, `/proc/PID/smaps_rollup`) of each warm Claude process
//! after one turn and after 10, `serve`'s anonymous memory and PSS with 0 and 4 warm sessions, and the CPU the pool
//! burns while idle (utime + stime of serve and the warm processes over 20 s).
//!
//! The release server with the real CLI (`REMOTE_AGENT_REAL_CLAUDE`) against the instant mock Messages API.
//! `cargo build --release --bins --examples`, then `cargo bench --bench warm_pool`.

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::mock_api::MockApi;
use common::{Server, SseStream};
use serde_json::json;

const WARM: usize = 4;

fn rollup(pid: i32, field: &str) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .unwrap_or(0.0)
        / 1024.0
}

/// utime + stime of a process, in clock ticks.
fn cpu_ticks(pid: i32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let Some(rest) = stat.rfind(')').map(|i| &stat[i + 2..]) else {
        return 0;
    };
    let f: Vec<&str> = rest.split(' ').collect();
    f.get(11).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
        + f.get(12).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
}

fn run_turn(server: &Server, conv: &str, text: &str) {
    let turn = server.send(conv, json!({ "message": text }));
    let events = SseStream::open(server, "GET", &format!("/api/turns/{turn}/events"), &[]).rest();
    assert_eq!(
        events.last().unwrap().data["status"],
        "succeeded",
        "{events:?}"
    );
}

fn claude_pid(conv: &str) -> i32 {
    let pids = common::pids_with_env(&format!("REMOTE_AGENT_CONVERSATION_ID={conv}"));
    assert_eq!(pids.len(), 1, "{conv}: {pids:?}");
    pids[0]
}

fn main() {
    let Some(claude) = common::real_claude("warm_pool") else {
        return;
    };
    let mock = MockApi::start();
    let server = Server::builder()
        .claude(claude)
        .env("ANTHROPIC_BASE_URL", mock.base_url())
        .env("ANTHROPIC_API_KEY", "bench-key")
        .env("CLAUDE_CODE_MAX_RETRIES", "0")
        .arg(format!("--max-warm={WARM}"))
        .start();
    let serve = server.pid();
    std::thread::sleep(Duration::from_millis(500));
    let (anon0, pss0) = (rollup(serve, "Anonymous"), rollup(serve, "Pss"));
    println!("serve with no session: anonymous {anon0:.1} MB, PSS {pss0:.1} MB");
    let convs: Vec<String> = (0..WARM).map(|i| format!("w{i}")).collect();
    for c in &convs {
        server.create(json!({ "id": c }));
        run_turn(&server, c, "hello");
    }
    let after_one: Vec<f64> = convs
        .iter()
        .map(|c| rollup(claude_pid(c), "Pss_Anon"))
        .collect();
    for i in 0..9 {
        for c in &convs {
            run_turn(&server, c, &format!("turn {i}"));
        }
    }
    let after_ten: Vec<f64> = convs
        .iter()
        .map(|c| rollup(claude_pid(c), "Pss_Anon"))
        .collect();
    let fmt = |v: &[f64]| {
        v.iter()
            .map(|m| format!("{m:.0}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    println!(
        "private memory (Pss_Anon) of each warm claude after 1 turn: {} MB",
        fmt(&after_one)
    );
    println!("… after 10 turns: {} MB", fmt(&after_ten));
    let (anon4, pss4) = (rollup(serve, "Anonymous"), rollup(serve, "Pss"));
    println!(
        "serve with {WARM} warm sessions (40 turns stored): anonymous {anon4:.1} MB, PSS {pss4:.1} MB; \
         per session +{:.2} MB anonymous",
        (anon4 - anon0) / WARM as f64
    );
    let pids: Vec<i32> = convs.iter().map(|c| claude_pid(c)).collect();
    let before: Vec<u64> = pids.iter().chain([&serve]).map(|&p| cpu_ticks(p)).collect();
    let started = Instant::now();
    std::thread::sleep(Duration::from_secs(20));
    let secs = started.elapsed().as_secs_f64();
    let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .unwrap_or(100) as f64;
    let after: Vec<u64> = pids.iter().chain([&serve]).map(|&p| cpu_ticks(p)).collect();
    let pct: Vec<f64> = before
        .iter()
        .zip(&after)
        .map(|(b, a)| (a - b) as f64 / hz / secs * 100.0)
        .collect();
    println!(
        "idle CPU over {secs:.0} s: each warm claude {} % of a core; serve {:.2} %",
        pct[..WARM]
            .iter()
            .map(|p| format!("{p:.1}"))
            .collect::<Vec<_>>()
            .join(", "),
        pct[WARM]
    );
}
