//! Issue 11's console items: pairing tokens never reach a log, what `up` prints on a terminal and under a service,
//! the subcommands' flags, `status`'s wording and `import`'s project.

mod common;

use std::process::{Command, Output, Stdio};

use common::up::Up;
use common::{PASSWORD, Server, USER, basic, unsafe_kill, wait_for};
use serde_json::json;

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Runs a subcommand of the server's and returns its output.
fn run(server: &Server, args: &[&str]) -> Output {
    server
        .subcommand(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// A fresh pairing link's path (`/pair/TOKEN`) for this server.
fn pairing_path(server: &Server) -> String {
    let out = run(server, &["pair", "--quiet", "--base", "http://x"]);
    assert!(out.status.success(), "{}", text(&out));
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .strip_prefix("http://x")
        .unwrap()
        .to_string()
}

#[test]
fn pairing_tokens_are_redacted_in_serves_log() {
    let server = Server::start();
    let path = pairing_path(&server);
    let token = path.strip_prefix("/pair/").unwrap().to_string();
    assert_eq!(server.request("GET", &path, &[], b"").status, 200);
    // The same token spelled the other ways the router accepts: doubled slashes, a %-escaped letter.
    let escaped = format!("/%70air/{token}");
    assert_eq!(server.request("GET", &escaped, &[], b"").status, 200);
    assert_eq!(
        server
            .request("GET", &format!("//pair/{token}"), &[], b"")
            .status,
        200
    );
    let base = format!("http://{}", server.addr);
    let signed = server.request("POST", &path, &[("Origin", &base)], b"");
    assert_eq!(signed.status, 303);
    // A marker request after them: once it is logged, theirs are too.
    server.request("GET", "/api/marker-after-pairing", &[], b"");
    server.wait_log("/api/marker-after-pairing", 10);
    let log = server.log();
    assert!(!log.contains(&token), "the token is in the log:\n{log}");
    assert!(
        log.matches("/pair/[redacted]").count() >= 4,
        "the pairing requests are logged, redacted:\n{log}"
    );
}

#[test]
fn the_spent_pairing_page_names_the_command_without_markdown() {
    let server = Server::start();
    let page = server.request(
        "GET",
        "/pair/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        &[],
        b"",
    );
    assert_eq!(page.status, 410);
    let html = page.text();
    assert!(!html.contains('`'), "{html}");
    assert!(html.contains("<code>remote-agent pair</code>"), "{html}");
}
