//! The transport's limits: a deadline on request bodies, a cap on this computer's own connections (with room kept
//! for the supervisor's `/health`), a lingering close after an early 413, the `Host` check on both listeners,
//! and the cap on messages queued in one conversation.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{PASSWORD, Server, USER, basic, parse_response, raw_request, wait_for};
use serde_json::json;

#[test]
fn a_body_that_never_finishes_gets_a_408_at_the_deadline() {
    let server = Server::builder()
        .env("REMOTE_AGENT_BODY_TIMEOUT_MS", "300")
        .start();
    let auth = basic(USER, PASSWORD);
    let mut s = TcpStream::connect(server.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let head = format!(
        "POST /api/chat HTTP/1.1\r\nHost: {}\r\nAuthorization: {auth}\r\nContent-Type: application/json\r\n\
         Content-Length: 100\r\n\r\n{{\"message\":",
        server.addr
    );
    let started = Instant::now();
    s.write_all(head.as_bytes()).unwrap();
    // The rest of the body never comes; the answer must, and the connection must close.
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    let waited = started.elapsed();
    assert!(!buf.is_empty(), "no answer after {waited:?}");
    let r = parse_response(&buf);
    assert_eq!(r.status, 408, "{}", r.text());
    assert!(
        r.json()["error"]
            .as_str()
            .unwrap()
            .contains("did not arrive")
    );
    assert!(
        waited >= Duration::from_millis(300) && waited < Duration::from_secs(10),
        "{waited:?}"
    );
    // A body that does arrive in time is read as before.
    let r = server.chat(&json!({"message": "hi"}));
    assert_eq!(r.status, 200, "{}", r.text());
}

#[test]
fn loopback_connections_are_capped_but_the_health_probe_gets_through() {
    let server = Server::start();
    let addr = server.addr;
    let held: Vec<TcpStream> = (0..384)
        .map(|_| TcpStream::connect(addr).unwrap())
        .collect();
    let auth = basic(USER, PASSWORD);
    let sessions = format!(
        "GET /api/sessions HTTP/1.1\r\nHost: {addr}\r\nAuthorization: {auth}\r\nConnection: close\r\n\r\n"
    );
    let over = wait_for("a local connection over the cap to be refused", 10, || {
        let r = raw_request(addr, sessions.as_bytes());
        (r.status == 503).then_some(r)
    });
    assert!(over.json()["error"].as_str().unwrap().contains("too many"));
    // The supervisor's probe is still answered, even on a kept-alive request (then closed).
    let mut probe = TcpStream::connect(addr).unwrap();
    probe
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    probe
        .write_all(
            format!("GET /health HTTP/1.1\r\nHost: {addr}\r\nX-Remote-Agent-Probe: 1\r\n\r\n")
                .as_bytes(),
        )
        .unwrap();
    let mut buf = Vec::new();
    let _ = probe.read_to_end(&mut buf);
    let r = parse_response(&buf);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["status"], "healthy");
    drop(held);
    wait_for("room again", 10, || {
        (raw_request(addr, sessions.as_bytes()).status == 200).then_some(())
    });
}

#[test]
fn a_client_still_sending_a_body_too_large_reads_the_413() {
    let server = Server::start();
    let auth = basic(USER, PASSWORD);
    let size = 16 * 1024 * 1024;
    let mut s = TcpStream::connect(server.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(20))).unwrap();
    let head = format!(
        "POST /api/chat HTTP/1.1\r\nHost: {}\r\nAuthorization: {auth}\r\nContent-Type: application/json\r\n\
         Content-Length: {size}\r\nConnection: close\r\n\r\n",
        server.addr
    );
    s.write_all(head.as_bytes()).unwrap();
    // Like most clients, send the whole body before reading: the server answered at the head, and must not
    // reset the connection under it.
    let chunk = vec![b' '; 64 * 1024];
    let mut sent = 0;
    while sent < size {
        if let Err(e) = s.write_all(&chunk) {
            panic!("sending the body failed after {sent} bytes: {e}");
        }
        sent += chunk.len();
    }
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    let r = parse_response(&buf);
    assert_eq!(r.status, 413, "{}", r.text());
    assert!(r.json()["error"].as_str().unwrap().contains("over"));
}

#[test]
fn a_conversation_queues_at_most_32_messages() {
    let server = Server::start();
    server.create(json!({"id": "busy"}));
    server.create(json!({"id": "other"}));
    // One runs (and stays running), 32 wait behind it.
    let running = server.send("busy", json!({"message": "[[slow:60]] hold"}));
    for i in 0..32 {
        server.send(
            "busy",
            json!({"message": format!("waiting {i}"), "client_id": format!("w{i}")}),
        );
    }
    let over = server.authed(
        "POST",
        "/api/conversations/busy/messages",
        json!({"message": "one too many"}).to_string().as_bytes(),
    );
    assert_eq!(over.status, 429, "{}", over.text());
    assert!(
        over.json()["error"]
            .as_str()
            .unwrap()
            .contains("too many messages waiting")
    );
    // A retried send of a message already queued still gets its turn, not the 429.
    let again = server.authed(
        "POST",
        "/api/conversations/busy/messages",
        json!({"message": "waiting 3", "client_id": "w3"})
            .to_string()
            .as_bytes(),
    );
    assert_eq!(again.status, 202, "{}", again.text());
    // The prototype's API shares the queue.
    let chat = server.chat(&json!({"message": "hi", "conv_id": "busy"}));
    assert_eq!(chat.status, 429, "{}", chat.text());
    // Other conversations are not held back.
    server.send("other", json!({"message": "hello"}));
    // Room again once the queue moves.
    let cancel = server.authed("POST", &format!("/api/turns/{running}/cancel"), b"");
    assert_eq!(cancel.status, 202, "{}", cancel.text());
    wait_for("room in the queue", 20, || {
        let r = server.authed(
            "POST",
            "/api/conversations/busy/messages",
            json!({"message": "later"}).to_string().as_bytes(),
        );
        (r.status == 202).then_some(())
    });
}

/// `GET /api/sessions` with credentials and this `Host` (none when empty); the status.
fn sessions_with_host(addr: std::net::SocketAddr, host: &str) -> common::Resp {
    let auth = basic(USER, PASSWORD);
    let host = if host.is_empty() {
        String::new()
    } else {
        format!("Host: {host}\r\n")
    };
    raw_request(
        addr,
        format!(
            "GET /api/sessions HTTP/1.1\r\n{host}Authorization: {auth}\r\nConnection: close\r\n\r\n"
        )
        .as_bytes(),
    )
}

#[test]
fn the_local_listener_answers_only_names_of_this_computer() {
    let server = Server::start();
    let addr = server.addr;
    let port = addr.port();
    for host in [
        format!("127.0.0.1:{port}"),
        "127.0.0.1".to_string(),
        format!("localhost:{port}"),
        "LocalHost.".to_string(),
        format!("app.localhost:{port}"),
        format!("[::1]:{port}"),
        "[::1]".to_string(),
        // No Host at all is no browser's request.
        String::new(),
    ] {
        let r = sessions_with_host(addr, &host);
        assert_eq!(r.status, 200, "{host:?}: {}", r.text());
    }
    for host in [
        format!("evil.example:{port}"),
        "evil.example".to_string(),
        format!("127.0.0.1.nip.io:{port}"),
        format!("x.trycloudflare.com:{port}"),
        "192.0.2.77".to_string(),
        "[::2]".to_string(),
        "[::1".to_string(),
        "localhost:http".to_string(),
        "::1".to_string(),
    ] {
        let r = sessions_with_host(addr, &host);
        assert_eq!(r.status, 421, "{host:?}: {}", r.text());
        assert!(
            r.json()["error"].as_str().unwrap().contains("host"),
            "{}",
            r.text()
        );
        // The security headers are there as on every answer.
        assert_eq!(r.header("x-frame-options"), Some("DENY"));
    }
    // The app itself and the sign-in are refused too; /health (the supervisor's probe) is not.
    let page = raw_request(
        addr,
        b"GET / HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(page.status, 421);
    let health = raw_request(
        addr,
        b"GET /health HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(health.status, 200);
    // An absolute target names the host instead of the header.
    let auth = basic(USER, PASSWORD);
    let r = raw_request(
        addr,
        format!(
            "GET http://evil.example/api/sessions HTTP/1.1\r\nHost: localhost\r\nAuthorization: {auth}\r\nConnection: close\r\n\r\n"
        )
        .as_bytes(),
    );
    assert_eq!(r.status, 421, "{}", r.text());
}

/// This computer's first address that is not loopback, if it has one.
fn lan_address() -> Option<std::net::IpAddr> {
    let out = std::process::Command::new("hostname")
        .arg("-I")
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .filter_map(|a| a.parse::<std::net::IpAddr>().ok())
        .find(|a| a.is_ipv4() && !a.is_loopback())
}

/// A child process stopped (SIGTERM, then SIGKILL) and reaped when dropped.
struct ChildGuard(std::process::Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        common::terminate(&mut self.0, Duration::from_secs(15));
    }
}

/// `serve --host HOST --port 0` in a temp dir (the harness always listens on 127.0.0.1); its port and the child.
fn serve_on(host: &str) -> (tempfile::TempDir, u16, ChildGuard) {
    use std::io::BufRead;
    let root = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(common::bin())
        .args(["serve", "--host", host, "--port", "0", "--data-dir"])
        .arg(root.path().join("data"))
        .arg("--project")
        .arg(root.path())
        .current_dir(root.path())
        .env("HOME", root.path())
        .env("AUTH_USERNAME", USER)
        .env("AUTH_PASSWORD", PASSWORD)
        .env("CLAUDE_BIN", common::fake_claude())
        .env_remove("REMOTE_AGENT_CONFIG")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let guard = ChildGuard(child);
    // Read to the end on a thread, so that what serve prints later never meets a closed pipe.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if line.starts_with("listening on http://") {
                let _ = tx.send(line);
            }
        }
    });
    let line = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("serve did not start");
    let port = line.rsplit(':').next().unwrap().trim().parse().unwrap();
    (root, port, guard)
}

#[test]
fn a_configured_lan_address_is_answered_on_the_local_listener() {
    let Some(lan) = lan_address() else {
        return common::skip(
            "a_configured_lan_address_is_answered_on_the_local_listener",
            "no address other than loopback",
        );
    };
    // Listening on every address: the one the client reached is ours.
    let (_dir, port, _any) = serve_on("0.0.0.0");
    let at = std::net::SocketAddr::new(lan, port);
    assert_eq!(sessions_with_host(at, &at.to_string()).status, 200);
    assert_eq!(sessions_with_host(at, &lan.to_string()).status, 200);
    assert_eq!(sessions_with_host(at, "evil.example").status, 421);
    // Listening on that address alone.
    let (_dir, port, _one) = serve_on(&lan.to_string());
    let at = std::net::SocketAddr::new(lan, port);
    assert_eq!(sessions_with_host(at, &at.to_string()).status, 200);
    assert_eq!(sessions_with_host(at, "evil.example").status, 421);
}

/// Replaces the state file that `up` keeps (the harness wrote one naming x.trycloudflare.com).
fn write_tunnel_state(server: &Server, tunnel: serde_json::Value) {
    let dir = server.path("state");
    let record = json!({"pid": std::process::id(), "tunnel": tunnel});
    std::fs::write(dir.join("state.json.tmp"), record.to_string()).unwrap();
    std::fs::rename(dir.join("state.json.tmp"), dir.join("state.json")).unwrap();
}

#[test]
fn the_tunnel_listener_answers_only_the_tunnels_hostnames() {
    let server = Server::builder()
        .arg("--tunnel-listen")
        .arg("127.0.0.1:0")
        .start();
    let tunnel = server.tunnel.unwrap();
    assert_eq!(
        sessions_with_host(tunnel, "x.trycloudflare.com").status,
        200
    );
    assert_eq!(
        sessions_with_host(tunnel, "X.TryCloudflare.com:443").status,
        200
    );
    for host in [
        "evil.example".to_string(),
        format!("127.0.0.1:{}", tunnel.port()),
        format!("localhost:{}", tunnel.port()),
        "y.trycloudflare.com".to_string(),
    ] {
        let r = sessions_with_host(tunnel, &host);
        assert_eq!(r.status, 421, "{host}: {}", r.text());
        assert!(r.json()["error"].is_string());
    }
    // cloudflared's own probe of the origin and the supervisor's get /health whatever the name.
    let health = raw_request(
        tunnel,
        b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(health.status, 200);

    // A quick tunnel that restarts has a new name: the listener follows it, and the old one is refused.
    write_tunnel_state(
        &server,
        json!({"kind": "quick", "url": "https://y.trycloudflare.com", "ready": true}),
    );
    wait_for("the new name to be answered", 10, || {
        (sessions_with_host(tunnel, "y.trycloudflare.com").status == 200).then_some(())
    });
    wait_for("the old name to be refused", 10, || {
        (sessions_with_host(tunnel, "x.trycloudflare.com").status == 421).then_some(())
    });
    // Between a restart and its new URL, no name is known: nothing but /health is answered.
    write_tunnel_state(
        &server,
        json!({"kind": "quick", "url": null, "ready": false}),
    );
    wait_for("the old name to be refused", 10, || {
        (sessions_with_host(tunnel, "y.trycloudflare.com").status == 421).then_some(())
    });

    // A named tunnel: every hostname of its ingress, wildcards included.
    write_tunnel_state(
        &server,
        json!({"kind": "named", "url": "https://agent.example.com", "ready": true,
               "hostnames": ["agent.example.com", "*.apps.example.com", "second.example.org"]}),
    );
    for host in [
        "agent.example.com",
        "a.apps.example.com",
        "second.example.org",
    ] {
        wait_for(host, 10, || {
            (sessions_with_host(tunnel, host).status == 200).then_some(())
        });
    }
    for host in ["apps.example.com", "evilapps.example.com", "evil.example"] {
        assert_eq!(sessions_with_host(tunnel, host).status, 421, "{host}");
    }
    // Without `up` (no state file, or its process gone) the tunnel has no name we know.
    std::fs::remove_file(server.path("state/state.json")).unwrap();
    wait_for("every name to be refused", 10, || {
        (sessions_with_host(tunnel, "agent.example.com").status == 421).then_some(())
    });
}

#[test]
fn under_up_the_tunnel_listener_answers_the_tunnels_own_names() {
    use common::up::Up;
    // A named tunnel: every hostname of its ingress, as `up` records them.
    let root = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = root.path().join("tunnel.yml");
    std::fs::write(
        &config,
        format!(
            "tunnel: t\ningress:\n  - hostname: agent.example.com\n    service: http://127.0.0.1:{port}\n  \
             - hostname: \"*.apps.example.com\"\n    service: http://127.0.0.1:{port}\n  - service: http_status:404\n"
        ),
    )
    .unwrap();
    let named = Up::builder()
        .in_dir(root)
        .arg("--tunnel")
        .arg("named")
        .arg("--tunnel-name")
        .arg("agent")
        .arg("--tunnel-config")
        .arg(config.display().to_string())
        .arg("--tunnel-port")
        .arg(port.to_string())
        .start();
    named.wait_line("tunnel connected", 0, 30);
    let state = named.state();
    assert_eq!(
        state["tunnel"]["hostnames"],
        json!(["agent.example.com", "*.apps.example.com"]),
        "{state}"
    );
    let tunnel = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    assert_eq!(sessions_with_host(tunnel, "agent.example.com").status, 200);
    assert_eq!(sessions_with_host(tunnel, "a.apps.example.com").status, 200);
    assert_eq!(sessions_with_host(tunnel, "evil.example").status, 421);
    // The local listener is not the tunnel's.
    assert_eq!(
        sessions_with_host(named.local(), "agent.example.com").status,
        421
    );
    assert_eq!(sessions_with_host(named.local(), "localhost").status, 200);
    drop(named);

    // A quick tunnel: the URL `up` printed.
    let quick = Up::builder().start();
    let public = quick.wait_line("public:", 0, 30);
    let host = public.split("https://").nth(1).unwrap().trim().to_string();
    let starts = quick.starts();
    let origin = starts
        .iter()
        .find_map(|s| {
            let at = s.find("http://127.0.0.1:")?;
            let rest = &s[at + "http://".len()..];
            rest[..rest.find('"')?].parse::<std::net::SocketAddr>().ok()
        })
        .unwrap_or_else(|| panic!("no origin in {starts:?}"));
    wait_for("the printed name to be answered", 10, || {
        (sessions_with_host(origin, &host).status == 200).then_some(())
    });
    assert_eq!(sessions_with_host(origin, "evil.example").status, 421);
    assert_eq!(
        sessions_with_host(origin, &format!("{}", quick.local())).status,
        421
    );
}

#[test]
fn names_in_allowed_hosts_are_answered_on_the_local_listener() {
    // A phone on the LAN or the tailnet reaches the computer by a name (mDNS, MagicDNS) that only the user knows.
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        "[server]\nallowed_hosts = [\"MyBox.local.\", \"laptop.tail1234.ts.net\"]\n",
    )
    .unwrap();
    let server = Server::builder()
        .arg(format!("--config={}", config.display()))
        .start();
    let port = server.addr.port();
    for host in [
        format!("mybox.local:{port}"),
        "laptop.tail1234.ts.net".to_string(),
    ] {
        let r = sessions_with_host(server.addr, &host);
        assert_eq!(r.status, 200, "{host:?}: {}", r.text());
    }
    let r = sessions_with_host(server.addr, &format!("otherbox.local:{port}"));
    assert_eq!(r.status, 421, "{}", r.text());
    assert!(
        r.json()["error"]
            .as_str()
            .unwrap()
            .contains("allowed_hosts"),
        "the refusal names the setting: {}",
        r.text()
    );
}
