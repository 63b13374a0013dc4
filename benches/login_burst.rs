//! Memory of `serve` under a burst of wrong logins against an argon2id password (each check holds 19 MiB while it
//! runs): 500 at once from 500 clients, then 500 at once from one client. Samples RSS and anonymous memory
//! (`/proc/PID/smaps_rollup`) every 5 ms during each burst, and again 5 s after it.
//!
//! Uses the release binary and the fake (`cargo build --release --examples`; benches/run.sh does both).

#[path = "../tests/common/mod.rs"]
mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use common::{PASSWORD, Server, USER, raw_request};

const BURST: usize = 500;

/// A field of /proc/PID/status or, for `Anonymous`, of smaps_rollup; in kB.
fn kb(pid: i32, field: &str) -> u64 {
    let file = if field == "Anonymous" {
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

fn mb(kb: u64) -> String {
    format!("{:.1} MB", kb as f64 / 1024.0)
}

fn login(addr: SocketAddr, ip: &str) -> u16 {
    let body = format!(r#"{{"username":"{USER}","password":"wrong-guess"}}"#);
    let raw = format!(
        "POST /api/login HTTP/1.1\r\nHost: x.trycloudflare.com\r\nCF-Connecting-IP: {ip}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    raw_request(addr, raw.as_bytes()).status
}

/// Sends the logins at once while sampling the server's memory; prints what it saw.
fn burst(server: &Server, name: &str, ips: Vec<String>, idle: (u64, u64)) {
    let pid = server.pid();
    let addr = server.tunnel.unwrap();
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let done = done.clone();
        std::thread::spawn(move || {
            let (mut rss, mut anon) = (0, 0);
            while !done.load(Ordering::Relaxed) {
                rss = rss.max(kb(pid, "VmRSS"));
                anon = anon.max(kb(pid, "Anonymous"));
                std::thread::sleep(Duration::from_millis(5));
            }
            (rss, anon)
        })
    };
    let gate = Arc::new(Barrier::new(ips.len()));
    let started = Instant::now();
    let threads: Vec<_> = ips
        .into_iter()
        .map(|ip| {
            let gate = gate.clone();
            std::thread::spawn(move || {
                gate.wait();
                login(addr, &ip)
            })
        })
        .collect();
    let statuses: Vec<u16> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    let took = started.elapsed();
    done.store(true, Ordering::Relaxed);
    let (rss, anon) = sampler.join().unwrap();
    let n = |s: u16| statuses.iter().filter(|x| **x == s).count();
    println!(
        "{name}: {} checked (401), {} refused (429), other {}; all answered in {:.2} s",
        n(401),
        n(429),
        statuses.len() - n(401) - n(429),
        took.as_secs_f64()
    );
    println!(
        "  during: RSS up to {} (idle {}), anonymous up to {} (idle {})",
        mb(rss),
        mb(idle.0),
        mb(anon),
        mb(idle.1)
    );
    std::thread::sleep(Duration::from_secs(5));
    let (rss, anon) = (kb(pid, "VmRSS"), kb(pid, "Anonymous"));
    println!(
        "  5 s after: RSS {} ({:+.1} MB from idle), anonymous {} ({:+.1} MB)",
        mb(rss),
        (rss as f64 - idle.0 as f64) / 1024.0,
        mb(anon),
        (anon as f64 - idle.1 as f64) / 1024.0
    );
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    let hash = remote_agent::auth::hash_password(PASSWORD).unwrap();
    std::fs::write(
        &config,
        format!("[auth]\nusername = \"{USER}\"\npassword_hash = \"{hash}\"\n"),
    )
    .unwrap();
    let server = Server::builder()
        .arg("--config")
        .arg(config.display().to_string())
        .arg("--tunnel-listen")
        .arg("127.0.0.1:0")
        .env("AUTH_USERNAME", "")
        .env("AUTH_PASSWORD", "")
        .env("RUST_LOG", "warn")
        .start();
    std::thread::sleep(Duration::from_secs(1));
    let pid = server.pid();
    let cold = (kb(pid, "VmRSS"), kb(pid, "Anonymous"));
    // Idle after one right login: the code that checks a password is paged in, as it is after any burst.
    let body = format!(r#"{{"username":"{USER}","password":"{PASSWORD}"}}"#);
    let raw = format!(
        "POST /api/login HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    assert_eq!(raw_request(server.addr, raw.as_bytes()).status, 204);
    std::thread::sleep(Duration::from_secs(3));
    let idle = (kb(pid, "VmRSS"), kb(pid, "Anonymous"));
    println!(
        "{BURST} wrong logins at once against an argon2id password; serve idle: RSS {}, anonymous {} \
         (just started: RSS {}, anonymous {})",
        mb(idle.0),
        mb(idle.1),
        mb(cold.0),
        mb(cold.1)
    );
    burst(
        &server,
        "from 500 clients",
        (0..BURST)
            .map(|i| format!("10.{}.{}.1", i / 250, i % 250))
            .collect(),
        idle,
    );
    burst(
        &server,
        "from one client",
        vec!["203.0.113.9".to_string(); BURST],
        idle,
    );
    println!(
        "  peak RSS over the whole run (VmHWM): {}",
        mb(kb(pid, "VmHWM"))
    );
}
