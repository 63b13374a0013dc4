//! What the daemon tells the push sender, as a phone would get it: the real binary, the fake claude and a mock push
//! service (tests/common/push_mock.rs) that checks each request's VAPID JWT and decrypts its payload. A turn that
//! ends (done, failed; not one cancelled while queued), a pending request (with Allow/Deny for a command, without
//! for a question), presence suppressing a turn's push, hidden content, and a quick tunnel's new address whose
//! pairing token signs a browser in once.

mod common;

use common::push_mock::{Message, PushMock};
use common::{Server, wait_for};
use serde_json::{Value, json};

/// A server that accepts the mock's loopback endpoints, with one subscription to it (`hide_content` as given);
/// and that subscription's endpoint.
fn server_with(mock: &PushMock, builder: common::Builder, hide_content: bool) -> (Server, String) {
    let server = builder.env("REMOTE_AGENT_PUSH_ALLOW_LOOPBACK", "1").start();
    let mut sub = mock.subscription();
    sub["hide_content"] = json!(hide_content);
    let resp = server.authed(
        "POST",
        "/api/push/subscriptions",
        sub.to_string().as_bytes(),
    );
    assert_eq!(resp.status, 201, "{}", resp.text());
    let endpoint = sub["endpoint"].as_str().unwrap().to_string();
    (server, endpoint)
}

/// The payloads of kind `kind` received so far.
fn of_kind(mock: &PushMock, kind: &str) -> Vec<Value> {
    mock.messages()
        .into_iter()
        .map(|m: Message| m.payload)
        .filter(|p| p["kind"] == kind)
        .collect()
}

/// The first message of kind `kind`, headers and all.
fn message(mock: &PushMock, kind: &str) -> Message {
    mock.messages()
        .into_iter()
        .find(|m| m.payload["kind"] == kind)
        .unwrap()
}

/// Waits for the `n`th push of kind `kind` (1-based) and returns it.
fn nth(mock: &PushMock, kind: &str, n: usize) -> Value {
    wait_for(&format!("push #{n} of kind {kind}"), 20, || {
        of_kind(mock, kind).get(n - 1).cloned()
    })
}

/// Sends a test push and waits for it: what the daemon queued before has had its turn by then.
fn flush(server: &Server, mock: &PushMock, endpoint: &str) {
    let before = of_kind(mock, "test").len();
    let resp = server.authed(
        "POST",
        "/api/push/test",
        json!({ "endpoint": endpoint }).to_string().as_bytes(),
    );
    assert_eq!(resp.status, 202, "{}", resp.text());
    nth(mock, "test", before + 1);
}

/// Waits until the turn has ended (its status no longer queued or running).
fn ended(server: &Server, turn: &str) -> String {
    wait_for("the turn to end", 20, || {
        let t = server
            .authed("GET", &format!("/api/turns/{turn}"), b"")
            .json();
        let status = t["status"].as_str()?.to_string();
        (status != "queued" && status != "running").then_some(status)
    })
}

#[test]
fn a_turn_that_succeeds_is_pushed_once_with_its_title_status_and_first_words() {
    let mock = PushMock::start();
    let (server, endpoint) = server_with(&mock, Server::builder(), false);
    server.create(json!({"id": "c1", "title": "Fix the login"}));
    let turn = server.send("c1", json!({"message": "tell me about the weather"}));
    let push = nth(&mock, "turn", 1);
    assert_eq!(push["status"], "succeeded", "{push}");
    assert_eq!(push["title"], "Fix the login — done", "{push}");
    let body = push["body"].as_str().unwrap();
    assert!(
        body.starts_with("project: echo[1]: tell me about the weather"),
        "{push}"
    );
    assert_eq!(push["url"], "/?c=c1");
    assert_eq!(push["conversation_id"], "c1");
    assert_eq!(push["turn_id"], turn.as_str());
    assert_eq!(push["tag"], "turn-c1");
    let sent = message(&mock, "turn");
    assert_eq!(sent.header("urgency"), "normal");
    assert!(sent.body_len < 3072, "{} bytes encrypted", sent.body_len);
    flush(&server, &mock, &endpoint);
    assert_eq!(of_kind(&mock, "turn").len(), 1, "one push for one turn");
}

#[test]
fn a_failed_turn_says_failed() {
    let mock = PushMock::start();
    let (server, _) = server_with(&mock, Server::builder(), false);
    server.create(json!({"id": "f"}));
    server.send("f", json!({"message": "[[error]] this breaks"}));
    let push = nth(&mock, "turn", 1);
    assert_eq!(push["status"], "failed", "{push}");
    assert!(
        push["title"].as_str().unwrap().ends_with(" — failed"),
        "{push}"
    );
    assert_eq!(push["url"], "/?c=f");
}

#[test]
fn a_pending_command_is_pushed_with_allow_and_deny_and_a_question_without() {
    let mock = PushMock::start();
    let (server, _) = server_with(&mock, Server::builder(), false);
    server.create(json!({"id": "r", "permission_mode": "default"}));
    let turn = server.send("r", json!({"message": "[[bash:touch x]]"}));
    let push = nth(&mock, "request", 1);
    assert_eq!(push["tool_name"], "Bash", "{push}");
    assert_eq!(push["actions"], json!(["allow", "deny"]), "{push}");
    assert!(push["body"].as_str().unwrap().contains("touch x"), "{push}");
    assert_eq!(push["title"], "Claude needs you in project", "{push}");
    let id = push["request_id"].as_str().unwrap();
    assert_eq!(push["url"], format!("/?c=r&r={id}"));
    let sent = message(&mock, "request");
    assert_eq!(sent.header("urgency"), "high");
    // Deny from the notification, as the service worker would: the turn goes on and ends.
    let resp = server.authed(
        "POST",
        &format!("/api/requests/{id}"),
        br#"{"decision":"deny"}"#,
    );
    assert_eq!(resp.status, 200, "{}", resp.text());
    ended(&server, &turn);

    server.send("r", json!({"message": "[[question]]"}));
    let question = nth(&mock, "request", 2);
    assert_eq!(question["tool_name"], "AskUserQuestion", "{question}");
    assert!(
        question.get("actions").is_none_or(|a| a.is_null()),
        "a question is answered in the app: {question}"
    );
}

#[test]
fn a_turn_cancelled_while_queued_is_not_pushed() {
    let mock = PushMock::start();
    let (server, endpoint) = server_with(&mock, Server::builder(), false);
    server.create(json!({"id": "q"}));
    let running = server.send("q", json!({"message": "[[slow:1]] first"}));
    let queued = server.send("q", json!({"message": "second"}));
    let resp = server.authed("POST", &format!("/api/turns/{queued}/cancel"), b"");
    assert_eq!(resp.status, 202, "{}", resp.text());
    assert_eq!(ended(&server, &queued), "cancelled");
    let push = nth(&mock, "turn", 1);
    assert_eq!(push["turn_id"], running.as_str(), "{push}");
    flush(&server, &mock, &endpoint);
    assert_eq!(
        of_kind(&mock, "turn").len(),
        1,
        "{:?}",
        of_kind(&mock, "turn")
    );
}

#[test]
fn presence_holds_back_a_turns_push_until_the_app_leaves() {
    let mock = PushMock::start();
    let (server, endpoint) = server_with(&mock, Server::builder(), false);
    server.create(json!({"id": "p"}));
    let present = |c: Value| {
        let resp = server.authed(
            "POST",
            "/api/presence",
            json!({ "conversation_id": c }).to_string().as_bytes(),
        );
        assert_eq!(resp.status, 204, "{}", resp.text());
    };
    present(json!("p"));
    let watched = server.send("p", json!({"message": "on screen"}));
    ended(&server, &watched);
    flush(&server, &mock, &endpoint);
    assert!(
        of_kind(&mock, "turn").is_empty(),
        "pushed while watched: {:?}",
        of_kind(&mock, "turn")
    );
    present(Value::Null);
    let away = server.send("p", json!({"message": "in the pocket"}));
    let push = nth(&mock, "turn", 1);
    assert_eq!(push["turn_id"], away.as_str());
}

#[test]
fn hidden_content_keeps_the_command_off_the_lock_screen() {
    let mock = PushMock::start();
    let (server, _) = server_with(&mock, Server::builder(), true);
    server.create(json!({"id": "h", "title": "Secret plans", "permission_mode": "default"}));
    server.send("h", json!({"message": "[[bash:touch hidden-name]]"}));
    let push = nth(&mock, "request", 1);
    assert_eq!(push["title"], "Claude needs you in project", "{push}");
    assert_eq!(push["body"], "", "{push}");
    let text = push.to_string();
    assert!(
        !text.contains("hidden-name") && !text.contains("Secret plans"),
        "{text}"
    );
}

#[test]
fn a_new_quick_tunnel_address_is_pushed_with_a_pairing_token_good_once() {
    let mock = PushMock::start();
    let (server, endpoint) = server_with(
        &mock,
        Server::builder().arg("--tunnel-listen").arg("127.0.0.1:0"),
        false,
    );
    // Stand in for `up` again: cloudflared restarted, and the quick tunnel came back on another address (through
    // a moment with none, as `up` records it), written as `up` writes it (a new file renamed over the old).
    let state = server.path("state");
    let write = |url: Option<&str>| {
        let record = json!({
            "pid": std::process::id(),
            "tunnel": {"kind": "quick", "url": url, "ready": url.is_some()},
        });
        let tmp = state.join("state.json.tmp");
        std::fs::write(&tmp, record.to_string()).unwrap();
        std::fs::rename(&tmp, state.join("state.json")).unwrap();
    };
    // A second browser: each gets a token of its own, so both can sign in.
    let second = server.authed(
        "POST",
        "/api/push/subscriptions",
        mock.subscription().to_string().as_bytes(),
    );
    assert_eq!(second.status, 201, "{}", second.text());
    write(None);
    write(Some("https://y.trycloudflare.com"));
    let push = nth(&mock, "address", 1);
    let other = nth(&mock, "address", 2);
    assert_ne!(push["url"], other["url"], "one token for both browsers");
    let url = push["url"].as_str().unwrap();
    let token = url
        .strip_prefix("https://y.trycloudflare.com/pair/")
        .unwrap_or_else(|| panic!("{push}"));
    assert_eq!(token.len(), 43, "{url}");
    let sent = message(&mock, "address");
    assert_eq!(sent.header("urgency"), "high");
    assert!(
        !server.log().contains(token),
        "the token was logged:\n{}",
        server.log()
    );

    // The token signs a browser in, once (here through the local listener; it is the same server).
    let path = format!("/pair/{token}");
    let base = format!("http://{}", server.addr);
    assert_eq!(server.request("GET", &path, &[], b"").status, 200);
    let signed = server.request("POST", &path, &[("Origin", &base)], b"");
    assert_eq!(signed.status, 303, "{}", signed.text());
    assert!(signed.header("set-cookie").is_some());
    let again = server.request("POST", &path, &[("Origin", &base)], b"");
    assert_eq!(again.status, 410);
    assert!(again.header("set-cookie").is_none());
    let other_path = other["url"]
        .as_str()
        .unwrap()
        .replace("https://y.trycloudflare.com", "");
    let signed = server.request("POST", &other_path, &[("Origin", &base)], b"");
    assert_eq!(
        signed.status,
        303,
        "the second browser's token: {}",
        signed.text()
    );

    // The same address written again is no news.
    write(Some("https://y.trycloudflare.com"));
    flush(&server, &mock, &endpoint);
    assert_eq!(of_kind(&mock, "address").len(), 2);
}
