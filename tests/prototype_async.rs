//! The prototype's later, asynchronous API with the fake claude, used as its clients use it: post a message,
//! poll the task every 100 ms until it has completed, then reuse the session it ran in.

mod common;

use std::time::{Duration, Instant};

use common::{Server, wait_for};
use serde_json::{Value, json};

fn post(server: &Server, session: &str, body: &Value) -> common::Resp {
    server.authed(
        "POST",
        &format!("/api/sessions/{session}/chat"),
        body.to_string().as_bytes(),
    )
}

/// Posts the message; asserts the prototype's answer and returns the task id.
fn start_task(server: &Server, session: &str, body: Value) -> String {
    let resp = post(server, session, &body);
    assert_eq!(resp.status, 200, "{}", resp.text());
    let said = resp.json();
    assert_eq!(said["status"], "processing");
    said["task_id"].as_str().unwrap().to_string()
}

fn task(server: &Server, session: &str, id: &str) -> common::Resp {
    server.authed("GET", &format!("/api/sessions/{session}/tasks/{id}"), b"")
}

/// The prototype's client: polls every 100 ms until the task has completed, within a deadline; returns the
/// result.
fn poll(server: &Server, session: &str, id: &str, secs: u64) -> Value {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let resp = task(server, session, id);
        assert_eq!(resp.status, 200, "{}", resp.text());
        let said = resp.json();
        match said["status"].as_str() {
            Some("completed") => return said["result"].clone(),
            Some("processing") => {}
            other => panic!("unexpected status {other:?}: {said}"),
        }
        assert!(Instant::now() < deadline, "task {id} did not complete");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn new_then_the_returned_session_is_resumed() {
    let server = Server::start();
    let id = start_task(&server, "new", json!({"message": "hello"}));
    let first = poll(&server, "new", &id, 20);
    assert_eq!(first["success"], true, "{first}");
    assert_eq!(first["response"], "echo[1]: hello");
    assert_eq!(first["error"], Value::Null);
    assert_eq!(first["turns"], 1);
    assert!(first["cost"].as_f64().unwrap() > 0.0);
    let session = first["session_id"].as_str().unwrap().to_string();

    // The session the answer named carries on: the reply counts the earlier prompt.
    let id2 = start_task(&server, &session, json!({"message": "again"}));
    let second = poll(&server, &session, &id2, 20);
    assert_eq!(second["response"], "echo[2]: again", "{second}");
    assert_eq!(second["session_id"], session.as_str());
    // A completed task stays readable until it is cleaned.
    assert_eq!(task(&server, &session, &id2).json()["status"], "completed");

    // `new` again starts afresh, in the same conversation as before.
    let id3 = start_task(&server, "new", json!({"message": "fresh"}));
    let third = poll(&server, "new", &id3, 20);
    assert_eq!(third["response"], "echo[1]: fresh", "{third}");
    assert_ne!(third["session_id"], session.as_str());
    // They ran in the prototype's `default` conversation, which `GET /api/sessions` lists as it always did.
    let sessions = server.authed("GET", "/api/sessions", b"").json();
    assert_eq!(sessions["default"]["turn_count"], 3, "{sessions}");
}

#[test]
fn a_failed_turn_completes_with_its_error_and_conv_id_is_honoured() {
    let server = Server::start();
    let id = start_task(
        &server,
        "new",
        json!({"message": "[[error]]", "conv_id": "phone"}),
    );
    let result = poll(&server, "new", &id, 20);
    assert_eq!(result["success"], false, "{result}");
    assert!(
        result["error"].as_str().unwrap().contains("API Error"),
        "{result}"
    );
    let sessions = server.authed("GET", "/api/sessions", b"").json();
    assert!(sessions.get("phone").is_some(), "{sessions}");
    assert!(sessions.get("default").is_none(), "{sessions}");
}

#[test]
fn unknown_tasks_and_tasks_of_another_session_are_not_found() {
    let server = Server::start();
    let other = "0b6a3c1e-2f4d-4e5a-8b7c-9d0e1f2a3b4c";
    let gone = json!({"status": "not_found"});
    let unknown = task(&server, "new", "0b6a3c1e-0000-4e5a-8b7c-9d0e1f2a3b4c");
    assert_eq!((unknown.status, unknown.json()), (404, gone.clone()));
    let id = start_task(&server, "new", json!({"message": "hi"}));
    let elsewhere = task(&server, other, &id);
    assert_eq!((elsewhere.status, elsewhere.json()), (404, gone.clone()));
    let deleted = server.authed("DELETE", &format!("/api/sessions/{other}/tasks/{id}"), b"");
    assert_eq!((deleted.status, deleted.json()), (404, gone.clone()));
    // Its own session still has it, and cleaning it forgets it.
    poll(&server, "new", &id, 20);
    let cleaned = server.authed("DELETE", &format!("/api/sessions/new/tasks/{id}"), b"");
    assert_eq!(
        (cleaned.status, cleaned.json()),
        (200, json!({"status": "cleaned"}))
    );
    let after = task(&server, "new", &id);
    assert_eq!((after.status, after.json()), (404, gone));
}

#[test]
fn deleting_a_running_task_cancels_its_turn() {
    let server = Server::start();
    let id = start_task(&server, "new", json!({"message": "[[slow:30]] long"}));
    // Running: the fake has started.
    wait_for("the turn to run", 10, || {
        let turn = server
            .authed("GET", &format!("/api/turns/{id}"), b"")
            .json();
        (turn["status"] == "running").then_some(())
    });
    assert_eq!(
        task(&server, "new", &id).json(),
        json!({"status": "processing"})
    );
    let started = Instant::now();
    let cleaned = server.authed("DELETE", &format!("/api/sessions/new/tasks/{id}"), b"");
    assert_eq!(
        (cleaned.status, cleaned.json()),
        (200, json!({"status": "cleaned"}))
    );
    let turn = wait_for("the turn to be cancelled", 10, || {
        let turn = server
            .authed("GET", &format!("/api/turns/{id}"), b"")
            .json();
        (turn["status"] != "running" && turn["status"] != "queued").then_some(turn)
    });
    assert_eq!(turn["status"], "cancelled", "{turn}");
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[test]
fn bad_input_is_refused_and_auth_is_required() {
    let server = Server::start();
    let refused = |resp: common::Resp, error: &str| {
        assert_eq!(resp.status, 400, "{}", resp.text());
        assert_eq!(resp.json(), json!({ "error": error }));
    };
    refused(
        post(&server, "--version", &json!({"message": "hi"})),
        "the session must be a UUID or new",
    );
    refused(
        post(&server, "new", &json!({"message": "  "})),
        "message must be a non-empty string",
    );
    refused(
        post(&server, "new", &json!({"message": "hi", "conv_id": "../x"})),
        "conv_id must be 1 to 64 characters of A-Z, a-z, 0-9, _ and -",
    );
    let not_json = server.authed("POST", "/api/sessions/new/chat", b"{nope");
    assert_eq!(not_json.status, 400, "{}", not_json.text());
    assert!(not_json.json()["error"].is_string());
    // Nothing ran.
    assert_eq!(server.authed("GET", "/api/sessions", b"").json(), json!({}));
    assert!(server.recorded_runs().is_empty());

    // Without credentials: 401 for every one of them, before saying whether anything exists.
    for (method, path) in [
        ("POST", "/api/sessions/new/chat"),
        ("GET", "/api/sessions/new/tasks/x"),
        ("DELETE", "/api/sessions/new/tasks/x"),
        ("GET", "/api/config"),
    ] {
        let resp = server.request(method, path, &[], b"");
        assert_eq!(resp.status, 401, "{method} {path}");
    }
    let wrong = server.authed("PUT", "/api/sessions/new/chat", b"");
    assert_eq!(wrong.status, 405);
}

#[test]
fn config_names_the_default_project() {
    let server = Server::start();
    let resp = server.authed("GET", "/api/config", b"");
    assert_eq!(resp.status, 200, "{}", resp.text());
    let project = server.path("project").canonicalize().unwrap();
    assert_eq!(
        resp.json(),
        json!({"project_path": project.display().to_string()})
    );
}
