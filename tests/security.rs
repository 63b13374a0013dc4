//! The doors of a server that faces the internet: security headers, brute-force lockouts, whose address is
//! believed, request and connection limits, private files, and a hostile-input suite with a seeded fuzz of the
//! request path. Nothing may answer 500, panic, or leave a child behind.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::{PASSWORD, Server, USER, basic, raw_request, wait_for};

fn tunnel_server() -> Server {
    Server::builder()
        .arg("--tunnel-listen")
        .arg("127.0.0.1:0")
        .start()
}

#[test]
fn every_answer_carries_the_security_headers() {
    let server = tunnel_server();
    for resp in [
        server.request("GET", "/", &[], b""),
        server.request("GET", "/health", &[], b""),
        server.authed("GET", "/api/sessions", b""),
        server.request("GET", "/api/sessions", &[], b""),
    ] {
        let csp = resp.header("content-security-policy").expect("a CSP");
        assert!(
            csp.contains("default-src 'self'") && csp.contains("frame-ancestors 'none'"),
            "{csp}"
        );
        assert!(!csp.contains("unsafe-inline"), "{csp}");
        assert_eq!(resp.header("x-content-type-options"), Some("nosniff"));
        assert_eq!(resp.header("referrer-policy"), Some("no-referrer"));
        // Plain HTTP on the local listener: no HSTS.
        assert_eq!(resp.header("strict-transport-security"), None);
    }
    assert_eq!(
        server
            .authed("GET", "/api/sessions", b"")
            .header("cache-control"),
        Some("no-store")
    );
    // Through the tunnel the client is on HTTPS: HSTS.
    let resp = server.via_tunnel("203.0.113.9", "GET", "/health", &[]);
    assert!(resp.header("strict-transport-security").is_some());
}

#[test]
fn failed_logins_lock_the_client_out_and_only_that_client() {
    let server = tunnel_server();
    let wrong = basic(USER, "guess");
    let right = basic(USER, PASSWORD);
    let attacker = "203.0.113.66";
    for _ in 0..5 {
        let r = server.via_tunnel(
            attacker,
            "GET",
            "/api/sessions",
            &[("Authorization", &wrong)],
        );
        assert_eq!(r.status, 401);
    }
    // Locked out: even the right password is refused for now, with a Retry-After.
    let r = server.via_tunnel(
        attacker,
        "GET",
        "/api/sessions",
        &[("Authorization", &right)],
    );
    assert_eq!(r.status, 429, "{}", r.text());
    let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=30).contains(&retry), "{retry}");
    assert!(
        r.json()["error"]
            .as_str()
            .unwrap()
            .contains("failed logins")
    );
    // The owner elsewhere is not locked out.
    let r = server.via_tunnel(
        "198.51.100.7",
        "GET",
        "/api/sessions",
        &[("Authorization", &right)],
    );
    assert_eq!(r.status, 200);
    // The log is written by a writer thread: wait for it.
    let log = wait_for("the failures in the log", 10, || {
        let log = server.log();
        (log.contains("failed login") && log.contains(attacker)).then_some(log)
    });
    assert!(!log.contains("guess") && !log.contains(PASSWORD));
}

#[test]
fn cf_connecting_ip_is_believed_only_on_the_tunnel_listener() {
    let server = tunnel_server();
    let wrong = basic(USER, "guess");
    // On the local listener a made-up CF-Connecting-IP changes nothing: the socket peer is the client.
    for i in 0..5 {
        let ip = format!("192.0.2.{i}");
        let r = server.request(
            "GET",
            "/api/sessions",
            &[("Authorization", &wrong), ("CF-Connecting-IP", &ip)],
            b"",
        );
        assert_eq!(r.status, 401);
    }
    let right = basic(USER, PASSWORD);
    let r = server.request("GET", "/api/sessions", &[("Authorization", &right)], b"");
    assert_eq!(
        r.status, 429,
        "the peer should be locked out whatever the header says"
    );
}

#[test]
fn api_requests_through_the_tunnel_are_rate_limited_per_client() {
    let server = tunnel_server();
    let right = basic(USER, PASSWORD);
    // A burst of 100, refilled at 20 a second: on a slow machine the refill lets more through, so the bound
    // follows the time the requests took.
    let started = std::time::Instant::now();
    let mut statuses = vec![];
    while statuses.len() < 1000 && statuses.last() != Some(&429) {
        let status = server
            .via_tunnel(
                "203.0.113.5",
                "GET",
                "/api/sessions",
                &[("Authorization", &right)],
            )
            .status;
        statuses.push(status);
    }
    let refilled = (20.0 * started.elapsed().as_secs_f64()).ceil() as usize;
    assert_eq!(statuses[0], 200);
    let limited = statuses
        .iter()
        .position(|s| *s == 429)
        .expect("a 429 after the burst");
    assert!(
        (90..=100 + refilled + 5).contains(&limited),
        "limited after {limited} requests in {:?}",
        started.elapsed()
    );
    let r = server.via_tunnel(
        "203.0.113.5",
        "GET",
        "/api/sessions",
        &[("Authorization", &right)],
    );
    if r.status == 429 {
        assert!(r.header("retry-after").is_some());
    }
    // Another client, and /health, are not affected.
    assert_eq!(
        server
            .via_tunnel(
                "203.0.113.6",
                "GET",
                "/api/sessions",
                &[("Authorization", &right)]
            )
            .status,
        200
    );
    assert_eq!(
        server
            .via_tunnel("203.0.113.5", "GET", "/health", &[])
            .status,
        200
    );
}

#[test]
fn open_connections_are_capped_on_the_tunnel_listener() {
    let server = tunnel_server();
    let addr = server.tunnel.unwrap();
    let held: Vec<TcpStream> = (0..512)
        .map(|_| TcpStream::connect(addr).unwrap())
        .collect();
    let over = wait_for("a connection over the cap to be refused", 10, || {
        let r = raw_request(
            addr,
            b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        );
        (r.status == 503).then_some(r)
    });
    assert!(over.json()["error"].as_str().unwrap().contains("too many"));
    // The local listener's own clients (the supervisor's probe) still get through.
    assert_eq!(server.request("GET", "/health", &[], b"").status, 200);
    drop(held);
    wait_for("room again", 10, || {
        let r = raw_request(
            addr,
            b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        );
        (r.status == 200).then_some(())
    });
}

#[test]
fn oversized_heads_are_refused() {
    let server = Server::start();
    let headers = |n: usize| {
        let many: String = (0..n).map(|i| format!("X-H{i}: v\r\n")).collect();
        let req = format!("GET /health HTTP/1.1\r\nHost: x\r\n{many}Connection: close\r\n\r\n");
        raw_request(server.addr, req.as_bytes())
    };
    let r = headers(100);
    assert_eq!(r.status, 431);
    assert!(r.json()["error"].as_str().unwrap().contains("headers"));
    // Far past the limit the parser itself refuses, still with a 431.
    assert_eq!(headers(1000).status, 431);
    let big = format!(
        "GET /health HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\nConnection: close\r\n\r\n",
        "a".repeat(70_000)
    );
    let r = raw_request(server.addr, big.as_bytes());
    assert_eq!(r.status, 431);
    assert!(r.json()["error"].as_str().unwrap().contains("headers"));
    assert_eq!(server.request("GET", "/health", &[], b"").status, 200);
}

#[test]
fn the_database_and_its_journal_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let server = Server::start();
    let r = server.chat(&serde_json::json!({"message": "hi"}));
    assert_eq!(r.status, 200);
    let data = server.path("data");
    assert_eq!(
        std::fs::metadata(&data).unwrap().permissions().mode() & 0o777,
        0o700
    );
    for entry in std::fs::read_dir(&data).unwrap() {
        let entry = entry.unwrap();
        let mode = entry.metadata().unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{} is {mode:o}", entry.path().display());
    }
}

/// Sends raw bytes on a fresh connection and returns everything that came back.
fn exchange(server: &Server, raw: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(server.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let _ = s.write_all(raw);
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    buf
}

fn statuses(buf: &[u8]) -> Vec<u16> {
    let text = String::from_utf8_lossy(buf);
    text.match_indices("HTTP/1.")
        .filter_map(|(i, _)| text[i..].split(' ').nth(1)?.parse().ok())
        .collect()
}

#[test]
fn hostile_input_gets_clear_answers_and_never_a_500() {
    let server = Server::start();
    let auth = basic(USER, PASSWORD);
    let post = |body: &[u8]| {
        let mut raw = format!(
            "POST /api/chat HTTP/1.1\r\nHost: localhost\r\nAuthorization: {auth}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        )
        .into_bytes();
        raw.extend_from_slice(body);
        statuses(&exchange(&server, &raw))
    };
    assert_eq!(post(b"{\"message\": \"\xff\xfe bad utf8\"}"), [400]);
    assert_eq!(post(b""), [400]);
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    assert_eq!(post(deep.as_bytes()), [400]);
    let nested = format!(
        "{{\"message\":\"x\",\"a\":{}1{}}}",
        "{\"b\":".repeat(5000),
        "}".repeat(5000)
    );
    assert_eq!(post(nested.as_bytes()), [400]);
    let empty_prompt = serde_json::json!({"message": "\u{0}"}).to_string();
    assert_eq!(post(empty_prompt.as_bytes()), [200]);

    for path in [
        "/..%2f..%2fetc%2fpasswd",
        "/%2e%2e/%2e%2e/etc/passwd",
        "/assets/../../etc/passwd",
        "/api/conversations/%0d%0aSet-Cookie:x",
        "/api/turns/%00",
        "/api/conversations/..%2F",
        "//api//sessions",
        "/%ff%fe",
    ] {
        let req = format!(
            "GET {path} HTTP/1.1\r\nHost: localhost\r\nAuthorization: {auth}\r\nConnection: close\r\n\r\n"
        );
        let got = statuses(&exchange(&server, req.as_bytes()));
        assert!(matches!(got.as_slice(), [400] | [404]), "{path}: {got:?}");
    }
    // CR/LF smuggled into a header value is a bad request, not a second header.
    let got = statuses(&exchange(
        &server,
        format!("GET /api/sessions HTTP/1.1\r\nHost: localhost\r\nAuthorization: {auth}\rX-Evil: 1\r\nConnection: close\r\n\r\n")
            .as_bytes(),
    ));
    assert!(matches!(got.as_slice(), [400] | [401]), "{got:?}");
    // Unknown methods, HTTP/1.0, and pipelined requests.
    let got = statuses(&exchange(&server, format!("BREW /api/sessions HTTP/1.1\r\nHost: localhost\r\nAuthorization: {auth}\r\nConnection: close\r\n\r\n").as_bytes()));
    assert_eq!(got, [405]);
    let got = statuses(&exchange(&server, b"GET /health HTTP/1.0\r\n\r\n"));
    assert_eq!(got, [200]);
    let pipelined = format!(
        "GET /health HTTP/1.1\r\nHost: x\r\n\r\nGET /api/sessions HTTP/1.1\r\nHost: localhost\r\nAuthorization: {auth}\r\n\r\nGET /nope HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    );
    assert_eq!(
        statuses(&exchange(&server, pipelined.as_bytes())),
        [200, 200, 401]
    );

    assert!(!server.log().contains("panicked"));
    assert_eq!(server.request("GET", "/health", &[], b"").status, 200);
}

/// A small deterministic generator (xorshift64*), so the fuzz below is the same on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[(self.next() % items.len() as u64) as usize]
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

#[test]
fn a_seeded_fuzz_of_the_request_path_finds_no_500_and_no_crash() {
    let server = Server::start();
    let auth = basic(USER, PASSWORD);
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    let methods = [
        "GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "TRACE", "X",
    ];
    let segments = [
        "api",
        "chat",
        "reset",
        "sessions",
        "status",
        "conversations",
        "turns",
        "events",
        "events.json",
        "messages",
        "cancel",
        "health",
        "default",
        "00000000-0000-4000-8000-000000000000",
        "%00",
        "..",
        "%2f",
        "a%20b",
        "\u{e9}",
        "x".repeat(70).leak(),
    ];
    let queries = [
        "",
        "?after=1",
        "?after=-1",
        "?wait=99",
        "?conv_id=%0a",
        "?limit=0",
        "?before=x",
        "?a=%zz",
    ];
    let bodies = [
        "",
        "{}",
        "[]",
        "null",
        "{\"message\":\"hi\"}",
        "{\"message\":\"[[error]]\"}",
        "{\"message\":5}",
        "{\"id\":\"x\"}",
        "{\"title\":null}",
        "{\"conv_id\":\"..\"}",
        "{\"message\":\"--version\",\"conv_id\":\"fz\"}",
    ];
    let mut seen = std::collections::BTreeMap::new();
    for _ in 0..400 {
        let method = rng.pick(&methods);
        let depth = 1 + rng.next() % 4;
        let path: String = (0..depth)
            .map(|_| format!("/{}", rng.pick(&segments)))
            .collect();
        let path = format!("{path}{}", rng.pick(&queries));
        let mut body = rng.pick(&bodies).as_bytes().to_vec();
        if rng.next().is_multiple_of(8) {
            let n = (rng.next() % 64) as usize;
            body = rng.bytes(n);
        }
        let mut raw = format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\n");
        if !rng.next().is_multiple_of(5) {
            raw.push_str(&format!("Authorization: {auth}\r\n"));
        }
        if rng.next().is_multiple_of(4) {
            raw.push_str("X-Requested-With: remote-agent\r\n");
        }
        if rng.next().is_multiple_of(6) {
            raw.push_str("Origin: https://elsewhere.example\r\n");
        }
        raw.push_str(&format!(
            "Content-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        ));
        let mut bytes = raw.into_bytes();
        bytes.extend_from_slice(&body);
        let got = statuses(&exchange(&server, &bytes));
        let status = got.first().copied().unwrap_or(0);
        assert!(
            status != 0 && status < 500 || status == 503,
            "{method} {path}: {got:?}"
        );
        *seen.entry(status).or_insert(0) += 1;
    }
    // The fuzz reached past authentication, into handlers and errors of several kinds.
    assert!(seen.len() >= 5, "{seen:?}");
    assert!(!server.log().contains("panicked"));
    assert_eq!(server.request("GET", "/health", &[], b"").status, 200);
}

#[test]
fn a_project_outside_the_allow_list_is_refused_even_through_a_symlink_or_dots() {
    let server = Server::start();
    let link = server.path("project").join("escape");
    std::os::unix::fs::symlink("/", &link).unwrap();
    let dots = format!("{}/..", server.path("project").display());
    for project in [link.display().to_string(), dots, "/etc".to_string()] {
        let body = serde_json::json!({ "project": project }).to_string();
        let r = server.authed("POST", "/api/conversations", body.as_bytes());
        assert_eq!(r.status, 400, "{project}: {}", r.text());
    }
}

#[test]
fn a_slow_or_idle_connection_is_closed() {
    let server = Server::start();
    let addr = server.addr;
    // Slowloris: headers that never end.
    let slow = std::thread::spawn(move || {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(45))).unwrap();
        s.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: 1\r\n")
            .unwrap();
        let started = std::time::Instant::now();
        let mut buf = Vec::new();
        let _ = s.read_to_end(&mut buf);
        started.elapsed()
    });
    // Idle: one request on a kept-alive connection, then silence.
    let idle = std::thread::spawn(move || {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(45))).unwrap();
        s.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let started = std::time::Instant::now();
        let mut buf = Vec::new();
        let _ = s.read_to_end(&mut buf);
        (started.elapsed(), statuses(&buf))
    });
    let slow = slow.join().unwrap();
    let (idle, answered) = idle.join().unwrap();
    assert_eq!(answered, [200]);
    for waited in [slow, idle] {
        assert!(
            waited >= Duration::from_secs(25) && waited < Duration::from_secs(40),
            "closed after {waited:?}"
        );
    }
}
