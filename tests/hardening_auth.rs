//! The password defences under pressure (issue 11): a bounded number of argon2 checks at once and the memory
//! given back after a burst, attempts counted before they are checked, IPv6 clients grouped by /64, the overall
//! slowdown of every check (cookies untouched), the wait in the lockout message, `passwd` signing browsers out,
//! the scheme in the origin check, a repeated session cookie, and the shortest password `serve` accepts.

mod common;

use std::io::Write;
use std::process::Stdio;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use common::{PASSWORD, Resp, Server, USER, basic, raw_request, status_kb, wait_for};
use serde_json::json;

/// A server whose password is an argon2id hash (the way `passwd` and a first `up` store it), with a tunnel
/// listener so that each request can name its own client.
fn hashed_server(config: &std::path::Path) -> Server {
    let hash = remote_agent::auth::hash_password(PASSWORD).unwrap();
    std::fs::write(
        config,
        format!("[auth]\nusername = \"{USER}\"\npassword_hash = \"{hash}\"\n"),
    )
    .unwrap();
    Server::builder()
        .arg("--config")
        .arg(config.display().to_string())
        .arg("--tunnel-listen")
        .arg("127.0.0.1:0")
        .env("AUTH_USERNAME", "")
        .env("AUTH_PASSWORD", "")
        .start()
}

/// `POST /api/login` through the tunnel, for a client at `ip`.
fn login_via_tunnel(addr: std::net::SocketAddr, ip: &str, password: &str) -> Resp {
    let body = json!({"username": USER, "password": password}).to_string();
    let raw = format!(
        "POST /api/login HTTP/1.1\r\nHost: x.trycloudflare.com\r\nCF-Connecting-IP: {ip}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    raw_request(addr, raw.as_bytes())
}

/// Sends one login per client address at the same moment; returns the answers.
fn burst(addr: std::net::SocketAddr, ips: Vec<String>, password: &'static str) -> Vec<Resp> {
    let gate = Arc::new(Barrier::new(ips.len()));
    let threads: Vec<_> = ips
        .into_iter()
        .map(|ip| {
            let gate = gate.clone();
            std::thread::spawn(move || {
                gate.wait();
                login_via_tunnel(addr, &ip, password)
            })
        })
        .collect();
    threads.into_iter().map(|t| t.join().unwrap()).collect()
}

fn count(resps: &[Resp], status: u16) -> usize {
    resps.iter().filter(|r| r.status == status).count()
}

#[test]
fn concurrent_wrong_logins_are_counted_before_their_check_and_bounded_and_memory_comes_back() {
    let dir = tempfile::tempdir().unwrap();
    let server = hashed_server(&dir.path().join("config.toml"));
    let tunnel = server.tunnel.unwrap();
    // One right login first: the blocking threads and the allocator are warm, so "idle" is idle.
    assert_eq!(
        login_via_tunnel(tunnel, "198.51.100.1", PASSWORD).status,
        204
    );
    let idle = status_kb(server.pid(), "VmRSS");

    // Twenty guesses at once from one client: each is counted before it is checked, so no more than the five
    // that lock it out are checked; the rest are refused.
    let one = burst(tunnel, vec!["203.0.113.50".to_string(); 20], "wrong-guess");
    assert!(count(&one, 401) <= 5, "{:?}", statuses(&one));
    assert_eq!(
        count(&one, 401) + count(&one, 429),
        20,
        "{:?}",
        statuses(&one)
    );

    // Sixty guesses at once from sixty clients: a couple of checks run, the rest are refused at once.
    let many = burst(
        tunnel,
        (0..60).map(|i| format!("192.0.2.{}", i + 1)).collect(),
        "wrong-guess",
    );
    assert_eq!(count(&many, 401) + count(&many, 429), 60);
    let busy = many.iter().filter(|r| r.status == 429).collect::<Vec<_>>();
    assert!(busy.len() >= 40, "{:?}", statuses(&many));
    for r in busy {
        assert!(r.header("retry-after").is_some());
        assert!(r.json()["error"].as_str().unwrap().contains("at once"));
    }
    // Two checks at 19 MiB each at most; unbounded, sixty would have taken over a gigabyte.
    let peak = status_kb(server.pid(), "VmHWM");
    assert!(peak < idle + 64_000, "peak {peak} kB, idle {idle} kB");
    // And what the checks took is given back.
    wait_for("the memory of the checks to be given back", 15, || {
        (status_kb(server.pid(), "VmRSS") < idle + 4_000).then_some(())
    });
    // The owner still signs in.
    let owner = wait_for("the owner's login", 20, || {
        let r = login_via_tunnel(tunnel, "198.51.100.2", PASSWORD);
        (r.status != 429).then_some(r)
    });
    assert_eq!(owner.status, 204, "{}", owner.text());
}

fn statuses(resps: &[Resp]) -> Vec<u16> {
    resps.iter().map(|r| r.status).collect()
}

#[test]
fn the_lockout_says_how_long_to_wait() {
    let server = Server::builder()
        .arg("--tunnel-listen")
        .arg("127.0.0.1:0")
        .start();
    let tunnel = server.tunnel.unwrap();
    for _ in 0..5 {
        assert_eq!(
            login_via_tunnel(tunnel, "203.0.113.77", "wrong-guess").status,
            401
        );
    }
    let r = login_via_tunnel(tunnel, "203.0.113.77", PASSWORD);
    assert_eq!(r.status, 429);
    let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
    let message = r.json()["error"].as_str().unwrap().to_string();
    assert!(
        message.contains("failed logins") && message.contains(&format!("try again in {retry} s")),
        "{message} (Retry-After: {retry})"
    );
}

#[test]
fn ipv6_clients_are_locked_out_by_their_64() {
    let server = Server::builder()
        .arg("--tunnel-listen")
        .arg("127.0.0.1:0")
        .start();
    let wrong = basic(USER, "wrong-guess");
    let right = basic(USER, PASSWORD);
    // A new address of the same /64 for every guess.
    for i in 1..=5 {
        let ip = format!("2001:db8:1:2::{i:x}");
        let r = server.via_tunnel(&ip, "GET", "/api/sessions", &[("Authorization", &wrong)]);
        assert_eq!(r.status, 401);
    }
    let r = server.via_tunnel(
        "2001:db8:1:2:ffff:ffff:ffff:9",
        "GET",
        "/api/sessions",
        &[("Authorization", &right)],
    );
    assert_eq!(r.status, 429, "the /64 is locked out: {}", r.text());
    // The next /64 is someone else.
    let r = server.via_tunnel(
        "2001:db8:1:3::1",
        "GET",
        "/api/sessions",
        &[("Authorization", &right)],
    );
    assert_eq!(r.status, 200);
}

#[test]
fn failures_past_the_global_budget_slow_every_password_check_but_not_cookies_or_pairing() {
    let server = Server::builder()
        .arg("--tunnel-listen")
        .arg("127.0.0.1:0")
        .start();
    let tunnel = server.tunnel.unwrap();
    let signed_in = login_via_tunnel(tunnel, "198.51.100.3", PASSWORD);
    assert_eq!(signed_in.status, 204);
    let cookie = signed_in
        .header("set-cookie")
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    // Fifteen failures in a minute, from fifteen clients (one each: no lockout anywhere).
    for i in 1..=15 {
        let r = login_via_tunnel(tunnel, &format!("192.0.2.{i}"), "wrong-guess");
        assert_eq!(r.status, 401);
    }
    // Every password check is held back now, the right one too (a fast answer would tell a guess was right).
    let started = Instant::now();
    let r = login_via_tunnel(tunnel, "198.51.100.4", PASSWORD);
    let took = started.elapsed();
    assert_eq!(r.status, 204);
    assert!(took >= Duration::from_millis(400), "answered in {took:?}");
    // A signed-in browser is not checked again, and a pairing link needs no password.
    let r = server.via_tunnel(
        "198.51.100.3",
        "GET",
        "/api/sessions",
        &[("Cookie", &cookie)],
    );
    assert_eq!(r.status, 200);
    let base = format!("http://{}", server.addr);
    let out = server
        .subcommand(&["pair", "--quiet", "--base", &base])
        .output()
        .unwrap();
    let link = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let path = link.strip_prefix(&base).unwrap();
    let r = server.request("POST", path, &[("Origin", &base)], b"");
    assert_eq!(r.status, 303);
}

#[test]
fn passwd_signs_every_browser_out_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!("[auth]\nusername = \"{USER}\"\npassword = \"{PASSWORD}\"\n"),
    )
    .unwrap();
    let server = Server::builder()
        .arg("--config")
        .arg(config.display().to_string())
        .env("AUTH_USERNAME", "")
        .env("AUTH_PASSWORD", "")
        .start();
    let cookies: Vec<String> = (0..2)
        .map(|_| {
            let body = json!({"username": USER, "password": PASSWORD}).to_string();
            let r = server.request("POST", "/api/login", &[], body.as_bytes());
            assert_eq!(r.status, 204);
            r.header("set-cookie")
                .unwrap()
                .split(';')
                .next()
                .unwrap()
                .to_string()
        })
        .collect();
    let mut child = server
        .subcommand(&["passwd", "--config", &config.display().to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"a new passphrase\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("Signed out 2"), "{said}");
    for c in &cookies {
        let r = server.request("GET", "/api/sessions", &[("Cookie", c)], b"");
        assert_eq!(r.status, 401);
    }
}

#[test]
fn the_origin_check_compares_the_scheme() {
    let server = Server::builder()
        .arg("--tunnel-listen")
        .arg("127.0.0.1:0")
        .start();
    let body = json!({"username": USER, "password": PASSWORD}).to_string();
    let own = format!("http://{}", server.addr);
    let https_twin = format!("https://{}", server.addr);
    let login = |origin: &str| {
        server
            .request("POST", "/api/login", &[("Origin", origin)], body.as_bytes())
            .status
    };
    // The local listener is plain HTTP: an HTTPS page of the same host is another origin.
    assert_eq!(login(&https_twin), 403);
    let signed_in = server.request("POST", "/api/login", &[("Origin", &own)], body.as_bytes());
    assert_eq!(signed_in.status, 204);
    let cookie = signed_in
        .header("set-cookie")
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let create = |origin: &str, id: &str| {
        let body = json!({ "id": id }).to_string();
        server
            .request(
                "POST",
                "/api/conversations",
                &[("Cookie", &cookie), ("Origin", origin)],
                body.as_bytes(),
            )
            .status
    };
    assert_eq!(create(&https_twin, "c1"), 403);
    assert_eq!(create(&own, "c2"), 201);
    // Through the tunnel the browser is on HTTPS: a plain-HTTP page of the public host is another origin.
    let right = basic(USER, PASSWORD);
    let post = |origin: &str| {
        server
            .via_tunnel(
                "198.51.100.5",
                "POST",
                "/api/reset?conv_id=c2",
                &[
                    ("Authorization", &right),
                    ("Origin", origin),
                    ("Content-Length", "0"),
                ],
            )
            .status
    };
    assert_eq!(post("http://x.trycloudflare.com"), 403);
    assert_eq!(post("https://x.trycloudflare.com"), 200);
}

#[test]
fn a_repeated_session_cookie_is_refused() {
    let server = Server::start();
    let body = json!({"username": USER, "password": PASSWORD}).to_string();
    let signed_in = server.request("POST", "/api/login", &[], body.as_bytes());
    let cookie = signed_in
        .header("set-cookie")
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    assert_eq!(
        server
            .request("GET", "/api/sessions", &[("Cookie", &cookie)], b"")
            .status,
        200
    );
    let planted = "ra_session=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    for headers in [
        vec![("Cookie", format!("{cookie}; {planted}"))],
        vec![("Cookie", format!("{planted}; theme=dark; {cookie}"))],
        vec![("Cookie", cookie.clone()), ("Cookie", planted.to_string())],
    ] {
        let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let r = server.request("GET", "/api/sessions", &headers, b"");
        assert_eq!(r.status, 400, "{headers:?}: {}", r.text());
        assert!(r.json()["error"].as_str().unwrap().contains("ra_session"));
    }
}

#[test]
fn serve_refuses_a_password_shorter_than_passwd_allows() {
    let home = tempfile::tempdir().unwrap();
    let serve = |password: &str| {
        let mut child = std::process::Command::new(common::bin())
            .args(["serve", "--host", "127.0.0.1", "--port", "0", "--data-dir"])
            .arg(home.path().join("data"))
            .current_dir(home.path())
            .env("HOME", home.path())
            .env("AUTH_USERNAME", USER)
            .env("AUTH_PASSWORD", password)
            .env_remove("REMOTE_AGENT_CONFIG")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        let _ = std::io::BufRead::read_line(
            &mut std::io::BufReader::new(child.stdout.take().unwrap()),
            &mut line,
        );
        common::terminate(&mut child, Duration::from_secs(10));
        let mut err = String::new();
        let _ = std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err);
        (line, err)
    };
    let (line, err) = serve("1234567");
    assert!(
        line.is_empty(),
        "served with a 7-character password: {line}"
    );
    assert!(
        err.contains("AUTH_PASSWORD") && err.contains("8 characters"),
        "{err}"
    );
    let (line, _) = serve("12345678");
    assert!(line.starts_with("listening on"), "{line}");
}
