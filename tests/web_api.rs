//! The server side of the web app's needs: a session probe that answers 200 signed in or not, and a turn that
//! fails because Claude Code is not logged in on the computer marked as such, for the app and for API users.

mod common;

use common::{PASSWORD, Server, SseStream, USER, wait_for};
use serde_json::{Value, json};

fn login_cookie(server: &Server) -> String {
    let body = json!({"username": USER, "password": PASSWORD}).to_string();
    let origin = format!("http://{}", server.addr);
    let resp = server.request(
        "POST",
        "/api/login",
        &[("Content-Type", "application/json"), ("Origin", &origin)],
        body.as_bytes(),
    );
    assert_eq!(resp.status, 204, "{}", resp.text());
    let set = resp.header("set-cookie").unwrap();
    set.split(';').next().unwrap().to_string()
}

#[test]
fn the_session_probe_answers_200_and_says_only_whether_the_browser_is_signed_in() {
    let server = Server::start();
    let probe = |headers: &[(&str, &str)]| {
        let resp = server.request("GET", "/api/session", headers, b"");
        assert_eq!(resp.status, 200, "{}", resp.text());
        assert!(resp.header("www-authenticate").is_none());
        assert_eq!(resp.header("cache-control"), Some("no-store"));
        resp.json()
    };
    assert_eq!(probe(&[]), json!({"signed_in": false}));
    let bogus = format!("ra_session={}", "A".repeat(43));
    assert_eq!(probe(&[("Cookie", &bogus)]), json!({"signed_in": false}));
    // A password is not checked here (that would be a guess oracle outside the login throttle).
    let basic = common::basic(USER, PASSWORD);
    assert_eq!(
        probe(&[("Authorization", &basic)]),
        json!({"signed_in": false})
    );
    let cookie = login_cookie(&server);
    assert_eq!(probe(&[("Cookie", &cookie)]), json!({"signed_in": true}));
    let resp = server.request("POST", "/api/session", &[], b"");
    assert_eq!(resp.status, 405);
}

#[test]
fn a_turn_that_fails_because_claude_is_not_logged_in_says_so_and_what_to_run() {
    let server = Server::start();
    server.create(json!({"id": "c"}));
    let id = server.send("c", json!({"message": "hello [[not-logged-in]]"}));
    let turn: Value = wait_for("the turn to end", 10, || {
        let t = server
            .authed("GET", &format!("/api/turns/{id}"), b"")
            .json();
        (t["status"] != "queued" && t["status"] != "running").then_some(t)
    });
    assert_eq!(turn["status"], "failed");
    assert_eq!(turn["error_kind"], "not_logged_in");
    let error = turn["error"].as_str().unwrap();
    assert!(
        error.starts_with("Claude Code on the computer is not logged in")
            && error.contains("/login"),
        "{error}"
    );
    // The event stream carries the kind with the error.
    let mut events = SseStream::open(&server, "GET", &format!("/api/turns/{id}/events"), &[]);
    let errors: Vec<Value> = events
        .rest()
        .into_iter()
        .filter(|e| e.event == "error")
        .map(|e| e.data)
        .collect();
    assert_eq!(
        errors,
        vec![json!({"error": error, "kind": "not_logged_in"})]
    );
    // So does the transcript's result.
    let conv = server.authed("GET", "/api/conversations/c", b"").json();
    let result = conv["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["type"] == "result")
        .unwrap()
        .clone();
    assert_eq!(result["error_kind"], "not_logged_in");
    assert_eq!(result["error"], error);
    // Any other failure has no kind.
    let other = server.send("c", json!({"message": "[[error]]"}));
    let t: Value = wait_for("the turn to end", 10, || {
        let t = server
            .authed("GET", &format!("/api/turns/{other}"), b"")
            .json();
        (t["status"] == "failed").then_some(t)
    });
    assert_eq!(t["error_kind"], Value::Null);
}
