//! An edit Claude asks to make shows as a diff of its file (issue 13, item 7), end to end with the real server and
//! the fake CLI's `[[edit:PATH:OLD=>NEW]]`: the request of an Edit of a file in the project carries the unified
//! diff, and one of a file outside it (`../x`, an absolute path elsewhere, a symlink that leads out) carries none.

mod common;

use common::{Server, SseStream};
use serde_json::{Value, json};

/// The `request` event of the turn that `message` starts in conversation `conv`.
fn request_of(server: &Server, conv: &str, message: &str) -> Value {
    let turn = server.send(conv, json!({ "message": message }));
    let mut s = SseStream::open(server, "GET", &format!("/api/turns/{turn}/events"), &[]);
    while let Some(e) = s.next() {
        if e.event == "request" {
            return e.data;
        }
        assert_ne!(e.event, "done", "the turn ended without asking");
    }
    panic!("the stream ended without a request")
}

fn answer(server: &Server, id: &Value, decision: &str) {
    let path = format!("/api/requests/{}", id.as_str().unwrap());
    let body = json!({ "decision": decision }).to_string();
    let resp = server.authed("POST", &path, body.as_bytes());
    assert_eq!(resp.status, 200, "{}", resp.text());
}

#[test]
fn an_edit_in_the_project_carries_its_diff_and_one_outside_none() {
    let server = Server::start();
    server.create(json!({"id": "e"}));
    let project = server.path("project");
    std::fs::create_dir_all(project.join("src")).unwrap();
    let lines: String = (1..=10).map(|i| format!("line {i}\n")).collect();
    std::fs::write(project.join("src/notes.txt"), &lines).unwrap();

    let req = request_of(
        &server,
        "e",
        "[[edit:src/notes.txt:line 5\\nline 6=>five\\nsix\\nsix and a half]]",
    );
    assert_eq!(req["tool_name"], "Edit");
    assert_eq!(
        req["diff"],
        "--- a/src/notes.txt\n+++ b/src/notes.txt\n@@ -2,8 +2,9 @@\n line 2\n line 3\n line 4\n-line 5\n\
         -line 6\n+five\n+six\n+six and a half\n line 7\n line 8\n line 9\n"
    );
    assert!(req.get("diff_note").is_none(), "{req}");
    // Listed with it too, and the edit is made once allowed.
    let listed = server.authed("GET", "/api/requests", b"").json();
    assert_eq!(listed["requests"][0]["diff"], req["diff"]);
    answer(&server, &req["id"], "allow");
    common::wait_for("the edit", 10, || {
        let text = std::fs::read_to_string(project.join("src/notes.txt")).unwrap();
        text.contains("six and a half").then_some(())
    });

    // Outside the project: nothing of the file reaches the phone.
    std::fs::write(server.path("outside.txt"), "secret\n").unwrap();
    std::os::unix::fs::symlink(server.path("outside.txt"), project.join("link.txt")).unwrap();
    let elsewhere = server.path("outside.txt");
    for path in ["../outside.txt", elsewhere.to_str().unwrap(), "link.txt"] {
        let req = request_of(&server, "e", &format!("[[edit:{path}:secret=>leaked]]"));
        assert!(req.get("diff").is_none(), "{path}: {req}");
        assert_eq!(
            req["diff_note"], "the file is outside the project",
            "{path}"
        );
        answer(&server, &req["id"], "deny");
    }
    assert_eq!(
        std::fs::read_to_string(server.path("outside.txt")).unwrap(),
        "secret\n"
    );
}
