//! Browser sign-in: the login cookie and its flags, logout, `logout --all`, `passwd`, pairing links, and the
//! cross-site rule for requests signed in by cookie.

mod common;

use std::io::Write;
use std::process::Stdio;

use common::{PASSWORD, Resp, Server, USER, basic, wait_for};
use serde_json::json;

fn login(server: &Server, user: &str, password: &str) -> Resp {
    let body = json!({"username": user, "password": password}).to_string();
    server.request(
        "POST",
        "/api/login",
        &[
            ("Content-Type", "application/json"),
            ("X-Requested-With", "remote-agent"),
        ],
        body.as_bytes(),
    )
}

/// The cookie pair (`ra_session=…`) from a response's Set-Cookie.
fn cookie(resp: &Resp) -> String {
    resp.header("set-cookie")
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string()
}

fn with_cookie(
    server: &Server,
    method: &str,
    path: &str,
    cookie: &str,
    extra: &[(&str, &str)],
    body: &[u8],
) -> Resp {
    let mut headers = vec![("Cookie", cookie), ("X-Requested-With", "remote-agent")];
    headers.extend_from_slice(extra);
    server.request(method, path, &headers, body)
}

#[test]
fn a_login_gives_a_cookie_that_signs_the_browser_in_until_logout() {
    let server = Server::builder()
        .arg("--tunnel-listen")
        .arg("127.0.0.1:0")
        .start();
    let resp = login(&server, USER, PASSWORD);
    assert_eq!(resp.status, 204, "{}", resp.text());
    let set = resp.header("set-cookie").unwrap().to_string();
    for flag in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(set.contains(flag), "{set}");
    }
    assert!(
        !set.contains("Secure"),
        "plain HTTP on the local listener: {set}"
    );
    let c = cookie(&resp);
    assert_eq!(c.len(), "ra_session=".len() + 43, "a 256-bit token: {c}");
    assert_eq!(
        with_cookie(&server, "GET", "/api/sessions", &c, &[], b"").status,
        200
    );
    // The token is stored only as a hash.
    let db = std::fs::read(server.path("data/remote-agent.db")).unwrap_or_default();
    let wal = std::fs::read(server.path("data/remote-agent.db-wal")).unwrap_or_default();
    let token = c.split_once('=').unwrap().1.as_bytes().to_vec();
    assert!(
        !db.windows(token.len()).any(|w| w == token)
            && !wal.windows(token.len()).any(|w| w == token)
    );

    // Through the tunnel the browser is on HTTPS: the cookie is Secure.
    let body = json!({"username": USER, "password": PASSWORD}).to_string();
    let addr = server.tunnel.unwrap();
    let raw = format!(
        "POST /api/login HTTP/1.1\r\nHost: x.trycloudflare.com\r\nCF-Connecting-IP: 198.51.100.1\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let resp = common::raw_request(addr, raw.as_bytes());
    assert_eq!(resp.status, 204);
    assert!(resp.header("set-cookie").unwrap().contains("Secure"));

    let out = with_cookie(
        &server,
        "POST",
        "/api/logout",
        &c,
        &[("Origin", &format!("http://{}", server.addr))],
        b"",
    );
    assert_eq!(out.status, 204);
    assert!(out.header("set-cookie").unwrap().contains("Max-Age=0"));
    let after = with_cookie(&server, "GET", "/api/sessions", &c, &[], b"");
    assert_eq!(after.status, 401);
    assert!(
        after.header("www-authenticate").is_none(),
        "no browser dialog over the app"
    );
    // No secret reaches the status or the log.
    let status = server.authed("GET", "/api/status", b"").text();
    let token = c.split_once('=').unwrap().1;
    assert!(!status.contains(PASSWORD) && !status.contains(token));
    let log = wait_for("the request log", 10, || {
        let log = server.log();
        log.contains("POST /api/logout").then_some(log)
    });
    assert!(!log.contains(PASSWORD) && !log.contains(token));
}

#[test]
fn a_wrong_login_is_refused_and_counted() {
    let server = Server::start();
    for _ in 0..5 {
        let resp = login(&server, USER, "nope");
        assert_eq!(resp.status, 401);
        assert!(resp.json()["error"].is_string());
        assert!(resp.header("set-cookie").is_none());
    }
    let resp = login(&server, USER, PASSWORD);
    assert_eq!(resp.status, 429, "locked out after five failures");
    assert!(resp.header("retry-after").is_some());
    assert_eq!(login(&server, "", "").status, 429);
    let bad = server.request("POST", "/api/login", &[], b"{\"user\":1}");
    assert!(bad.status == 400 || bad.status == 429);
}

#[test]
fn a_cookie_request_that_changes_state_must_come_from_our_own_page() {
    let server = Server::start();
    let c = cookie(&login(&server, USER, PASSWORD));
    let body = br#"{"id":"c1"}"#;
    let own = format!("http://{}", server.addr);
    // No Origin at all: refused for a cookie (a browser always sends one on such requests).
    assert_eq!(
        with_cookie(&server, "POST", "/api/conversations", &c, &[], body).status,
        403
    );
    let evil = with_cookie(
        &server,
        "POST",
        "/api/conversations",
        &c,
        &[("Origin", "https://evil.example")],
        body,
    );
    assert_eq!(evil.status, 403);
    let ok = with_cookie(
        &server,
        "POST",
        "/api/conversations",
        &c,
        &[("Origin", &own)],
        body,
    );
    assert_eq!(ok.status, 201, "{}", ok.text());
    let fetch = with_cookie(
        &server,
        "POST",
        "/api/conversations",
        &c,
        &[("Sec-Fetch-Site", "same-origin")],
        br#"{"id":"c2"}"#,
    );
    assert_eq!(fetch.status, 201);
    // Reading needs no Origin.
    assert_eq!(
        with_cookie(&server, "GET", "/api/conversations", &c, &[], b"").status,
        200
    );
}

fn cli(server: &Server, args: &[&str], stdin: &str) -> std::process::Output {
    let mut child = server
        .subcommand(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn logout_all_signs_every_browser_out() {
    let server = Server::start();
    let a = cookie(&login(&server, USER, PASSWORD));
    let b = cookie(&login(&server, USER, PASSWORD));
    let out = cli(&server, &["logout", "--all"], "");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("Signed out 2"));
    for c in [a, b] {
        assert_eq!(
            with_cookie(&server, "GET", "/api/sessions", &c, &[], b"").status,
            401
        );
    }
    // Basic keeps working.
    assert_eq!(server.authed("GET", "/api/sessions", b"").status, 200);
}

#[test]
fn passwd_stores_a_hash_that_a_reloaded_server_accepts() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        "[auth]\nusername = \"owner\"\npassword = \"old-password\"\n",
    )
    .unwrap();
    let server = Server::builder()
        .arg("--config")
        .arg(config.display().to_string())
        .env("AUTH_USERNAME", "")
        .env("AUTH_PASSWORD", "")
        .start();
    let sessions = |user: &str, password: &str| {
        let auth = basic(user, password);
        server
            .request("GET", "/api/sessions", &[("Authorization", &auth)], b"")
            .status
    };
    assert_eq!(sessions("owner", "old-password"), 200);
    let out = cli(
        &server,
        &["passwd", "--config", &config.display().to_string()],
        "a new passphrase\n",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let saved = std::fs::read_to_string(&config).unwrap();
    assert!(saved.contains("password_hash = \"$argon2id$"), "{saved}");
    assert!(
        !saved.contains("old-password") && !saved.contains("a new passphrase"),
        "{saved}"
    );
    common::unsafe_kill(server.pid(), 1);
    // Wait for the reload in the log, not by trying the new password: failed tries would lock us out.
    server.wait_log("settings reloaded", 10);
    assert_eq!(sessions("owner", "a new passphrase"), 200);
    assert_eq!(sessions("owner", "old-password"), 401);
    for _ in 0..20 {
        assert_eq!(sessions("owner", "a new passphrase"), 200);
    }
    assert_eq!(login(&server, "owner", "a new passphrase").status, 204);
    let short = cli(
        &server,
        &["passwd", "--config", &config.display().to_string()],
        "short\n",
    );
    assert!(!short.status.success());
}

#[test]
fn a_pairing_link_signs_a_browser_in_once() {
    let server = Server::start();
    let base = format!("http://{}", server.addr);
    let out = cli(&server, &["pair", "--quiet", "--base", &base], "");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let link = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let path = link.strip_prefix(&base).unwrap().to_string();
    assert!(
        path.starts_with("/pair/") && path.len() == "/pair/".len() + 43,
        "{link}"
    );
    // A GET (a chat app's link preview) shows a page and spends nothing.
    for _ in 0..2 {
        let page = server.request("GET", &path, &[], b"");
        assert_eq!(page.status, 200);
        assert!(
            page.header("content-type")
                .unwrap()
                .starts_with("text/html")
        );
        assert!(page.text().contains("<form method=\"post\">") && !page.text().contains("<script"));
        assert!(page.header("set-cookie").is_none());
    }
    let signed = server.request("POST", &path, &[("Origin", &base)], b"");
    assert_eq!(signed.status, 303);
    assert_eq!(signed.header("location"), Some("/"));
    let c = cookie(&signed);
    assert_eq!(
        with_cookie(&server, "GET", "/api/sessions", &c, &[], b"").status,
        200
    );
    // Spent: a clear page, not a login.
    let again = server.request("POST", &path, &[("Origin", &base)], b"");
    assert_eq!(again.status, 410);
    assert!(again.text().contains("already been used"));
    assert!(again.header("set-cookie").is_none());
    let page = server.request("GET", &path, &[], b"");
    assert_eq!(page.status, 410);
    let unknown = server.request(
        "GET",
        "/pair/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        &[],
        b"",
    );
    assert_eq!(unknown.status, 410);
    assert!(unknown.text().contains("not valid"));
}
