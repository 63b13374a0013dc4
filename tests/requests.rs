//! Approvals over HTTP, as far as they go without a live session asking: the list, its credentials, and the
//! answers refused before any request is touched (unknown id, bad body, wrong method).

mod common;

use common::{PASSWORD, Server, USER};
use serde_json::json;

const UNKNOWN: &str = "/api/requests/00000000-0000-4000-8000-000000000001";

#[test]
fn the_list_needs_credentials_and_starts_empty() {
    let server = Server::start();
    let resp = server.request("GET", "/api/requests", &[], b"");
    assert_eq!(resp.status, 401, "{}", resp.text());
    // Signed in with a cookie, as the web app is.
    let origin = format!("http://{}", server.addr);
    let login = json!({"username": USER, "password": PASSWORD}).to_string();
    let resp = server.request(
        "POST",
        "/api/login",
        &[("Content-Type", "application/json"), ("Origin", &origin)],
        login.as_bytes(),
    );
    assert_eq!(resp.status, 204, "{}", resp.text());
    let cookie = resp
        .header("set-cookie")
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let resp = server.request("GET", "/api/requests", &[("Cookie", &cookie)], b"");
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(resp.json(), json!({"requests": []}));
    // An answer needs credentials too.
    let body = json!({"decision": "allow"}).to_string();
    let resp = server.request(
        "POST",
        UNKNOWN,
        &[("Content-Type", "application/json")],
        body.as_bytes(),
    );
    assert_eq!(resp.status, 401, "{}", resp.text());
    // A conversation with nothing asked waits for nothing.
    server.create(json!({"id": "c"}));
    let list = server.authed("GET", "/api/conversations", b"").json();
    assert_eq!(list["conversations"][0]["waiting"], 0);
}

#[test]
fn answers_to_nothing_or_in_bad_shape_are_refused() {
    let server = Server::start();
    let allow = json!({"decision": "allow"}).to_string();
    for path in [UNKNOWN, "/api/requests/not-a-uuid"] {
        let resp = server.authed("POST", path, allow.as_bytes());
        assert_eq!(resp.status, 404, "{}", resp.text());
        assert_eq!(resp.json(), json!({"error": "no such request"}));
    }
    for bad in [
        &b"{not json"[..],
        br#"{"decision": 5}"#,
        br#"{"decision": "allow", "suggestion": -1}"#,
        br#"{"decision": "allow", "unknown": true}"#,
        b"[]",
    ] {
        let resp = server.authed("POST", UNKNOWN, bad);
        assert_eq!(resp.status, 400, "{}", String::from_utf8_lossy(bad));
        assert!(resp.json()["error"].is_string());
    }
    let resp = server.authed("DELETE", UNKNOWN, b"");
    assert_eq!((resp.status, resp.header("allow")), (405, Some("POST")));
    let resp = server.authed("POST", "/api/requests", allow.as_bytes());
    assert_eq!((resp.status, resp.header("allow")), (405, Some("GET")));
}
