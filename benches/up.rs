//! `up` figures with the fake cloudflared: time from starting `up` to the public URL printed, recovery from `kill -9` of each child, and the supervisor's memory.
//!
//! Uses the release binary and the fakes (`cargo build --release --examples`; benches/run.sh does both).

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::up::Up;
use common::{unsafe_kill, wait_for};

const RUNS: usize = 10;

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn status_kb(pid: i32, field: &str) -> u64 {
    let file = if field == "Pss" || field == "Anonymous" {
        "smaps_rollup"
    } else {
        "status"
    };
    std::fs::read_to_string(format!("/proc/{pid}/{file}"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

fn main() {
    let mut to_local = Vec::new();
    let mut to_url = Vec::new();
    let mut serve_recovery = Vec::new();
    let mut tunnel_recovery = Vec::new();
    let mut rss = Vec::new();
    let mut pss = Vec::new();
    let mut anon = Vec::new();
    let mut peak = Vec::new();
    for _ in 0..RUNS {
        let up = Up::builder().start();
        to_local.push(ms(up.line_time("local:", 0) - up.started));
        to_url.push(ms(up.line_time("public:", 0) - up.started));
        up.wait_line("tunnel connected", 0, 20);
        // Steady state, 2 s after the URLs.
        std::thread::sleep(Duration::from_secs(2));
        rss.push(status_kb(up.pid(), "VmRSS") as f64);
        pss.push(status_kb(up.pid(), "Pss") as f64);
        anon.push(status_kb(up.pid(), "Anonymous") as f64);
        peak.push(status_kb(up.pid(), "VmHWM") as f64);

        // kill -9 serve: until /health answers from a new process.
        let serve = up.child_pid("serve");
        let killed = Instant::now();
        unsafe_kill(serve, 9);
        wait_for("a new serve", 20, || {
            (up.child_pid("serve") != serve && up.health() == Some(200)).then_some(())
        });
        serve_recovery.push(ms(killed.elapsed()));

        // kill -9 cloudflared: until the new URL is printed.
        let tunnel = up.child_pid("cloudflared");
        let seen = up.lines();
        let killed = Instant::now();
        unsafe_kill(tunnel, 9);
        tunnel_recovery.push(ms(up.line_time("public:", seen) - killed));
    }
    println!("up with the fake cloudflared, {RUNS} runs (medians):");
    println!(
        "  start -> local URL printed:   {:.1} ms",
        median(to_local.clone())
    );
    let url = median(to_url);
    println!(
        "  start -> public URL printed:  {url:.1} ms (all of it: serve's and the fake's starts included)"
    );
    println!(
        "  kill -9 serve -> /health answers from a new serve: {:.0} ms (0.5 s of it is the first backoff step)",
        median(serve_recovery)
    );
    println!(
        "  kill -9 cloudflared -> new public URL printed: {:.0} ms (0.5 s backoff included)",
        median(tunnel_recovery)
    );
    println!(
        "  supervisor memory, 2 s after the tunnel connected: anonymous {:.0} kB, PSS {:.0} kB (RSS {:.0} kB, peak RSS during start-up {:.0} kB)",
        median(anon),
        median(pss),
        median(rss),
        median(peak)
    );
}
