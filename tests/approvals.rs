//! Claude asks, the phone answers (issue 13), end to end with the real server and our fake CLI in its live mode:
//! permission requests become stored pending requests and `request` events, answers reach the CLI once, and a
//! conversation's turns run on one warm process (interrupt, queue, idle close, restart).

mod common;

use common::{Server, Sse, SseStream, alive, wait_for};
use serde_json::{Value, json};

/// The turn's stream from the start.
fn stream(server: &Server, turn: &str) -> SseStream {
    SseStream::open(server, "GET", &format!("/api/turns/{turn}/events"), &[])
}

/// Reads until an event of `kind`; panics if the turn ends first.
fn until(s: &mut SseStream, kind: &str) -> Sse {
    while let Some(e) = s.next() {
        if e.event == kind {
            return e;
        }
        assert_ne!(e.event, "done", "the turn ended before a {kind} event");
    }
    panic!("the stream ended before a {kind} event")
}

fn answer(server: &Server, request: &str, body: Value) -> common::Resp {
    server.authed(
        "POST",
        &format!("/api/requests/{request}"),
        body.to_string().as_bytes(),
    )
}

fn pending(server: &Server) -> Vec<Value> {
    let resp = server.authed("GET", "/api/requests", b"");
    assert_eq!(resp.status, 200);
    resp.json()["requests"].as_array().unwrap().clone()
}

fn waiting(server: &Server, conv: &str) -> i64 {
    let list = server.authed("GET", "/api/conversations", b"").json();
    list["conversations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == conv)
        .unwrap()["waiting"]
        .as_i64()
        .unwrap()
}

fn final_status(events: &[Sse]) -> Value {
    events.last().unwrap().data["status"].clone()
}

/// The fake processes started so far (each records its argv once).
fn processes(server: &Server) -> Vec<String> {
    server
        .recorded_runs()
        .into_iter()
        .map(|(pid, _)| pid)
        .collect()
}

#[test]
fn an_allowed_command_runs_and_the_request_is_listed_until_answered() {
    let server = Server::start();
    server.create(json!({"id": "a"}));
    let turn = server.send("a", json!({"message": "[[bash:touch approved.txt]]"}));
    let mut s = stream(&server, &turn);
    let req = until(&mut s, "request").data;
    assert_eq!(req["kind"], "tool");
    assert_eq!(req["tool_name"], "Bash");
    assert_eq!(req["input"]["command"], "touch approved.txt");
    assert_eq!(req["conversation_id"], "a");
    assert_eq!(req["turn_id"], turn.as_str());
    assert_eq!(req["suggestions"][0]["type"], "addRules");
    let listed = pending(&server);
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["id"], req["id"]);
    assert_eq!(waiting(&server, "a"), 1);
    let id = req["id"].as_str().unwrap();
    let resp = answer(&server, id, json!({"decision": "allow"}));
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(resp.json()["decision"], "allow");
    let ended = until(&mut s, "request_ended").data;
    assert_eq!(
        ended,
        json!({"id": id, "state": "answered", "decision": "allow"})
    );
    let rest = s.rest();
    assert_eq!(final_status(&rest), "succeeded");
    assert!(server.path("project/approved.txt").exists());
    assert!(pending(&server).is_empty());
    assert_eq!(waiting(&server, "a"), 0);
    // Answered once: a second answer is refused, and nothing more reaches the CLI.
    assert_eq!(answer(&server, id, json!({"decision": "deny"})).status, 409);
}

#[test]
fn a_denied_command_does_not_run_and_the_turn_goes_on() {
    let server = Server::start();
    server.create(json!({"id": "d"}));
    let turn = server.send("d", json!({"message": "[[bash:touch denied.txt]]"}));
    let mut s = stream(&server, &turn);
    let id = until(&mut s, "request").data["id"]
        .as_str()
        .unwrap()
        .to_string();
    let resp = answer(
        &server,
        &id,
        json!({"decision": "deny", "message": "not on a Friday"}),
    );
    assert_eq!(resp.status, 200);
    let result = until(&mut s, "tool_result").data;
    assert_eq!(result["is_error"], true);
    assert!(
        result["content"].to_string().contains("not on a Friday"),
        "{result}"
    );
    assert_eq!(final_status(&s.rest()), "succeeded");
    assert!(!server.path("project/denied.txt").exists());
}

#[test]
fn deny_and_stop_cancels_the_turn_and_keeps_the_process_warm() {
    let server = Server::start();
    server.create(json!({"id": "s"}));
    let turn = server.send("s", json!({"message": "[[bash:touch stop.txt]]"}));
    let mut s = stream(&server, &turn);
    let id = until(&mut s, "request").data["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        answer(&server, &id, json!({"decision": "deny_and_stop"})).status,
        200
    );
    assert_eq!(final_status(&s.rest()), "cancelled");
    assert!(!server.path("project/stop.txt").exists());
    let next = server.send("s", json!({"message": "still there?"}));
    let rest = stream(&server, &next).rest();
    assert_eq!(final_status(&rest), "succeeded");
    let reply = rest.iter().find(|e| e.event == "result").unwrap();
    assert_eq!(reply.data["response"], "echo[2]: still there?");
    assert_eq!(
        processes(&server).len(),
        1,
        "the next message ran on the same process"
    );
}

#[test]
fn an_edited_command_runs_as_edited() {
    let server = Server::start();
    server.create(json!({"id": "e"}));
    let turn = server.send("e", json!({"message": "[[bash:touch asked.txt]]"}));
    let mut s = stream(&server, &turn);
    let id = until(&mut s, "request").data["id"]
        .as_str()
        .unwrap()
        .to_string();
    let body = json!({"decision": "allow", "input": {"command": "touch edited.txt", "description": "touch"}});
    assert_eq!(answer(&server, &id, body).status, 200);
    assert_eq!(final_status(&s.rest()), "succeeded");
    assert!(server.path("project/edited.txt").exists());
    assert!(!server.path("project/asked.txt").exists());
}

#[test]
fn always_adds_the_rule_and_the_same_command_no_longer_asks() {
    let server = Server::start();
    server.create(json!({"id": "r"}));
    let turn = server.send("r", json!({"message": "[[bash:touch ruled.txt]]"}));
    let mut s = stream(&server, &turn);
    let id = until(&mut s, "request").data["id"]
        .as_str()
        .unwrap()
        .to_string();
    // Without naming which suggestion it adopts, "always" is refused.
    assert_eq!(
        answer(&server, &id, json!({"decision": "allow_always"})).status,
        400
    );
    let resp = answer(
        &server,
        &id,
        json!({"decision": "allow_always", "suggestion": 0}),
    );
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(final_status(&s.rest()), "succeeded");
    let settings =
        std::fs::read_to_string(server.path("project/.claude/settings.local.json")).unwrap();
    assert!(settings.contains("touch ruled.txt"), "{settings}");
    std::fs::remove_file(server.path("project/ruled.txt")).unwrap();
    let again = server.send("r", json!({"message": "[[bash:touch ruled.txt]]"}));
    let rest = stream(&server, &again).rest();
    assert!(
        !rest.iter().any(|e| e.event == "request"),
        "asked again: {rest:?}"
    );
    assert_eq!(final_status(&rest), "succeeded");
    assert!(server.path("project/ruled.txt").exists());
}

#[test]
fn questions_are_answered_from_the_phone() {
    let server = Server::start();
    server.create(json!({"id": "q"}));
    let turn = server.send("q", json!({"message": "[[question]]"}));
    let mut s = stream(&server, &turn);
    let req = until(&mut s, "request").data;
    assert_eq!(req["kind"], "question");
    assert_eq!(req["input"]["questions"][1]["multiSelect"], true);
    let id = req["id"].as_str().unwrap();
    // Answers belong to questions only.
    let body = json!({"decision": "allow", "answers": {
        "Which database should we use?": "SQLite",
        "Which checks should run?": "Unit tests, Lint",
    }});
    assert_eq!(answer(&server, id, body).status, 200);
    let result = until(&mut s, "tool_result").data;
    let text = result["content"].to_string();
    assert!(
        text.contains(r#"\"Which database should we use?\"=\"SQLite\""#)
            && text.contains(r#"\"Which checks should run?\"=\"Unit tests, Lint\""#),
        "{text}"
    );
    assert_eq!(final_status(&s.rest()), "succeeded");
}

#[test]
fn a_plan_is_approved_or_sent_back_with_a_note() {
    let server = Server::start();
    server.create(json!({"id": "p", "permission_mode": "plan"}));
    let turn = server.send("p", json!({"message": "[[plan]]"}));
    let mut s = stream(&server, &turn);
    let req = until(&mut s, "request").data;
    assert_eq!(req["kind"], "plan");
    let note = json!({"decision": "deny", "message": "add a rollback step"});
    assert_eq!(
        answer(&server, req["id"].as_str().unwrap(), note).status,
        200
    );
    let result = until(&mut s, "tool_result").data;
    assert!(
        result["content"]
            .to_string()
            .contains("add a rollback step"),
        "{result}"
    );
    assert_eq!(final_status(&s.rest()), "succeeded");
    let turn = server.send("p", json!({"message": "[[plan]]"}));
    let mut s = stream(&server, &turn);
    let req = until(&mut s, "request").data;
    assert_eq!(
        answer(
            &server,
            req["id"].as_str().unwrap(),
            json!({"decision": "allow"})
        )
        .status,
        200
    );
    let result = until(&mut s, "tool_result").data;
    assert_eq!(result["is_error"], false, "{result}");
    assert_eq!(final_status(&s.rest()), "succeeded");
}

#[test]
fn a_withdrawn_request_can_no_longer_be_answered() {
    let server = Server::start();
    server.create(json!({"id": "w"}));
    let turn = server.send("w", json!({"message": "[[bash:touch w.txt]][[withdraw]]"}));
    let mut s = stream(&server, &turn);
    let id = until(&mut s, "request").data["id"]
        .as_str()
        .unwrap()
        .to_string();
    let ended = until(&mut s, "request_ended").data;
    assert_eq!(ended, json!({"id": id, "state": "withdrawn"}));
    assert!(pending(&server).is_empty());
    assert_eq!(
        answer(&server, &id, json!({"decision": "allow"})).status,
        410
    );
    assert_eq!(final_status(&s.rest()), "succeeded");
    assert!(!server.path("project/w.txt").exists());
}

#[test]
fn two_answers_at_once_reach_the_cli_once_and_a_reconnect_sees_the_request_again() {
    let server = Server::start();
    server.create(json!({"id": "t1"}));
    server.create(json!({"id": "t2"}));
    let turn = server.send("t1", json!({"message": "[[bash:touch one.txt]]"}));
    let other = server.send("t2", json!({"message": "[[bash:touch two.txt]]"}));
    let mut s = stream(&server, &turn);
    let req = until(&mut s, "request");
    until(&mut stream(&server, &other), "request");
    // Both conversations wait, each with its own request.
    let listed = pending(&server);
    let convs: std::collections::BTreeSet<String> = listed
        .iter()
        .map(|r| r["conversation_id"].to_string())
        .collect();
    assert_eq!(convs.len(), 2, "{listed:?}");
    // A reader that comes back from before the request gets it again.
    let mut again = SseStream::open(
        &server,
        "GET",
        &format!("/api/turns/{turn}/events?after=1"),
        &[],
    );
    assert_eq!(until(&mut again, "request").data, req.data);
    let id = req.data["id"].as_str().unwrap().to_string();
    let statuses: Vec<u16> = std::thread::scope(|scope| {
        let tries: Vec<_> = (0..2)
            .map(|_| scope.spawn(|| answer(&server, &id, json!({"decision": "allow"})).status))
            .collect();
        tries.into_iter().map(|t| t.join().unwrap()).collect()
    });
    let mut sorted = statuses.clone();
    sorted.sort();
    assert_eq!(sorted, vec![200, 409], "{statuses:?}");
    assert_eq!(final_status(&s.rest()), "succeeded");
    let pid = processes(&server)
        .into_iter()
        .find(|pid| String::from_utf8_lossy(&server.recorded(pid, "stdin")).contains("one.txt"))
        .unwrap();
    let stdin = String::from_utf8(server.recorded(&pid, "stdin")).unwrap();
    let answers = stdin
        .lines()
        .filter(|l| l.contains("control_response") && l.contains("touch one.txt"))
        .count();
    assert_eq!(answers, 1, "{stdin}");
}

#[test]
fn an_interrupt_stops_the_turn_and_the_same_process_answers_next() {
    let server = Server::start();
    server.create(json!({"id": "i"}));
    let first = server.send("i", json!({"message": "[[tool]][[slow:30]]"}));
    let mut s = stream(&server, &first);
    until(&mut s, "tool_use");
    let started = std::time::Instant::now();
    assert_eq!(
        server
            .authed("POST", &format!("/api/turns/{first}/cancel"), b"")
            .status,
        202
    );
    assert_eq!(final_status(&s.rest()), "cancelled");
    assert!(
        started.elapsed().as_secs() < 4,
        "took {:?}",
        started.elapsed()
    );
    let next = server.send("i", json!({"message": "next"}));
    let rest = stream(&server, &next).rest();
    assert_eq!(final_status(&rest), "succeeded");
    assert_eq!(processes(&server).len(), 1);
}

#[test]
fn a_queued_message_can_be_withdrawn_and_interrupt_and_send_runs_next() {
    let server = Server::start();
    server.create(json!({"id": "qq"}));
    let first = server.send("qq", json!({"message": "[[slow:30]]"}));
    let mut s = stream(&server, &first);
    wait_for("the first turn to run", 10, || {
        (server
            .authed("GET", &format!("/api/turns/{first}"), b"")
            .json()["status"]
            == "running")
            .then_some(())
    });
    let queued = server.send("qq", json!({"message": "never mind"}));
    assert_eq!(
        server
            .authed("GET", &format!("/api/turns/{queued}"), b"")
            .json()["status"],
        "queued"
    );
    assert_eq!(
        server
            .authed("POST", &format!("/api/turns/{queued}/cancel"), b"")
            .status,
        202
    );
    assert_eq!(final_status(&stream(&server, &queued).rest()), "cancelled");
    // "Interrupt and send": the running turn stops, this one runs next on the same process.
    let body = json!({"message": "do this instead", "interrupt": true});
    let resp = server.authed(
        "POST",
        "/api/conversations/qq/messages",
        body.to_string().as_bytes(),
    );
    assert_eq!(resp.status, 202, "{}", resp.text());
    let steer = resp.json()["turn_id"].as_str().unwrap().to_string();
    assert_eq!(final_status(&s.rest()), "cancelled");
    let rest = stream(&server, &steer).rest();
    assert_eq!(final_status(&rest), "succeeded");
    let reply = rest.iter().find(|e| e.event == "result").unwrap();
    assert!(
        reply.data["response"]
            .as_str()
            .unwrap()
            .ends_with("do this instead"),
        "{:?}",
        reply.data
    );
    assert_eq!(processes(&server).len(), 1);
}

#[test]
fn mode_changes_reach_a_warm_process_between_turns() {
    let server = Server::start();
    server.create(json!({"id": "m"}));
    let first = server.send("m", json!({"message": "hello"}));
    assert_eq!(final_status(&stream(&server, &first).rest()), "succeeded");
    let patch = json!({"permission_mode": "acceptEdits"});
    assert_eq!(
        server
            .authed(
                "PATCH",
                "/api/conversations/m",
                patch.to_string().as_bytes()
            )
            .status,
        200
    );
    // In acceptEdits the fake, like the CLI, creates files without asking.
    let next = server.send("m", json!({"message": "[[bash:touch quiet.txt]]"}));
    let rest = stream(&server, &next).rest();
    assert!(!rest.iter().any(|e| e.event == "request"), "{rest:?}");
    assert!(server.path("project/quiet.txt").exists());
    let pids = processes(&server);
    assert_eq!(pids.len(), 1);
    let stdin = String::from_utf8(server.recorded(&pids[0], "stdin")).unwrap();
    assert!(
        stdin.contains(r#""subtype":"set_permission_mode""#),
        "{stdin}"
    );
}

#[test]
fn an_idle_process_is_closed_and_the_next_message_resumes_the_session() {
    let server = Server::builder().arg("--idle-secs=1").start();
    server.create(json!({"id": "idle"}));
    let first = server.send("idle", json!({"message": "one"}));
    assert_eq!(final_status(&stream(&server, &first).rest()), "succeeded");
    let pid: i32 = processes(&server)[0].parse().unwrap();
    wait_for("the idle process to be closed", 10, || {
        (!alive(pid)).then_some(())
    });
    let next = server.send("idle", json!({"message": "two"}));
    let rest = stream(&server, &next).rest();
    let reply = rest.iter().find(|e| e.event == "result").unwrap();
    assert_eq!(
        reply.data["response"], "echo[2]: two",
        "the session was resumed"
    );
    let runs = server.recorded_runs();
    assert_eq!(runs.len(), 2);
    assert!(runs[1].1.iter().any(|a| a == "--resume"), "{:?}", runs[1].1);
}

#[test]
fn past_max_warm_the_least_recently_used_process_is_closed() {
    let server = Server::builder().arg("--max-warm=1").start();
    for conv in ["x", "y"] {
        server.create(json!({"id": conv}));
        let turn = server.send(conv, json!({"message": "hi"}));
        assert_eq!(final_status(&stream(&server, &turn).rest()), "succeeded");
    }
    let pids: Vec<i32> = processes(&server)
        .iter()
        .map(|p| p.parse().unwrap())
        .collect();
    wait_for("the older process to be closed", 10, || {
        (!alive(pids[0])).then_some(())
    });
    assert!(alive(pids[1]));
}

#[test]
fn a_restart_with_a_request_pending_expires_it_and_the_conversation_goes_on() {
    let mut server = Server::start();
    server.create(json!({"id": "rs"}));
    let turn = server.send("rs", json!({"message": "[[bash:touch late.txt]]"}));
    let mut s = stream(&server, &turn);
    let id = until(&mut s, "request").data["id"]
        .as_str()
        .unwrap()
        .to_string();
    server.restart();
    assert!(pending(&server).is_empty());
    assert_eq!(
        answer(&server, &id, json!({"decision": "allow"})).status,
        410
    );
    let t = server
        .authed("GET", &format!("/api/turns/{turn}"), b"")
        .json();
    assert_eq!(t["status"], "interrupted");
    let events = stream(&server, &turn).rest();
    assert!(
        events
            .iter()
            .any(|e| e.event == "request_ended" && e.data["state"] == "expired"),
        "{events:?}"
    );
    let next = server.send("rs", json!({"message": "again"}));
    assert_eq!(final_status(&stream(&server, &next).rest()), "succeeded");
    assert!(!server.path("project/late.txt").exists());
}

#[test]
fn an_unanswered_request_is_denied_after_the_configured_time() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    // 0.02 minutes: 1.2 s.
    std::fs::write(&config, "[claude]\ndeny_unanswered_after_mins = 0.02\n").unwrap();
    let server = Server::builder()
        .arg(format!("--config={}", config.display()))
        .start();
    server.create(json!({"id": "late"}));
    let turn = server.send("late", json!({"message": "[[bash:touch never.txt]]"}));
    let mut s = stream(&server, &turn);
    let id = until(&mut s, "request").data["id"]
        .as_str()
        .unwrap()
        .to_string();
    let ended = until(&mut s, "request_ended").data;
    assert_eq!(
        ended,
        json!({"id": id, "state": "answered", "decision": "deny"})
    );
    let result = until(&mut s, "tool_result").data;
    assert!(
        result["content"].to_string().contains("Nobody answered"),
        "{result}"
    );
    assert_eq!(final_status(&s.rest()), "succeeded");
    assert!(!server.path("project/never.txt").exists());
    assert_eq!(
        answer(&server, &id, json!({"decision": "allow"})).status,
        409
    );
}

#[test]
fn the_prototypes_chat_runs_in_the_prototypes_mode_and_never_waits_for_an_answer() {
    let server = Server::start();
    let resp = server.chat(&json!({"message": "[[bash:touch chat.txt]]", "conv_id": "proto"}));
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(resp.json()["success"], true);
    assert!(server.path("project/chat.txt").exists());
    let conv = server.authed("GET", "/api/conversations/proto", b"").json();
    assert_eq!(conv["permission_mode"], "acceptEdits");
    assert!(pending(&server).is_empty());
}

#[test]
fn another_servers_conversation_of_the_same_id_is_left_alone() {
    let a = Server::start();
    let b = Server::start();
    a.create(json!({"id": "same"}));
    b.create(json!({"id": "same"}));
    let running = a.send("same", json!({"message": "[[slow:30]]"}));
    let mut a_stream = stream(&a, &running);
    until(&mut a_stream, "status");
    let a_claude: i32 = wait_for("a's claude", 10, || processes(&a).pop())
        .parse()
        .unwrap();
    let turn = b.send("same", json!({"message": "[[tool]][[orphan]][[slow:30]]"}));
    let mut s = stream(&b, &turn);
    until(&mut s, "tool_use");
    let (_, orphan) = b.wait_for_orphan();
    assert_eq!(
        b.authed("POST", &format!("/api/turns/{turn}/cancel"), b"")
            .status,
        202
    );
    assert_eq!(final_status(&s.rest()), "cancelled");
    wait_for("b's orphan to be stopped", 10, || {
        (!alive(orphan)).then_some(())
    });
    // b's sweep did not touch a's process, whose turn runs on.
    assert!(alive(a_claude));
    assert_eq!(
        a.authed("GET", &format!("/api/turns/{running}"), b"")
            .json()["status"],
        "running"
    );
    assert_eq!(
        a.authed("POST", &format!("/api/turns/{running}/cancel"), b"")
            .status,
        202
    );
    assert_eq!(final_status(&a_stream.rest()), "cancelled");
}

#[test]
fn always_with_a_mode_stays_under_the_ceiling_and_the_conversation_shows_the_mode() {
    // A ceiling of `default`: the CLI's "accept edits for the session" suggestion is refused.
    let strict = Server::builder().arg("--permission-mode=default").start();
    strict.create(json!({"id": "c"}));
    let turn = strict.send("c", json!({"message": "[[bash:touch a.txt]]"}));
    let mut s = stream(&strict, &turn);
    let req = until(&mut s, "request").data;
    assert_eq!(req["suggestions"][1]["mode"], "acceptEdits");
    let id = req["id"].as_str().unwrap();
    let resp = answer(
        &strict,
        id,
        json!({"decision": "allow_always", "suggestion": 1}),
    );
    assert_eq!(resp.status, 400, "{}", resp.text());
    assert_eq!(
        answer(&strict, id, json!({"decision": "allow"})).status,
        200
    );
    assert_eq!(final_status(&s.rest()), "succeeded");

    // Under the default ceiling it is taken, the conversation says so, and a later change of mode holds.
    let server = Server::start();
    server.create(json!({"id": "m"}));
    let turn = server.send("m", json!({"message": "[[bash:touch b.txt]]"}));
    let mut s = stream(&server, &turn);
    let id = until(&mut s, "request").data["id"]
        .as_str()
        .unwrap()
        .to_string();
    let resp = answer(
        &server,
        &id,
        json!({"decision": "allow_always", "suggestion": 1}),
    );
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(final_status(&s.rest()), "succeeded");
    let conv = server.authed("GET", "/api/conversations/m", b"").json();
    assert_eq!(conv["permission_mode"], "acceptEdits");
    let quiet = server.send("m", json!({"message": "[[bash:touch c.txt]]"}));
    assert!(
        !stream(&server, &quiet)
            .rest()
            .iter()
            .any(|e| e.event == "request")
    );
    let patch = json!({"permission_mode": "default"});
    assert_eq!(
        server
            .authed(
                "PATCH",
                "/api/conversations/m",
                patch.to_string().as_bytes()
            )
            .status,
        200
    );
    let asks = server.send("m", json!({"message": "[[bash:touch d.txt]]"}));
    let mut s = stream(&server, &asks);
    let id = until(&mut s, "request").data["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        answer(&server, &id, json!({"decision": "deny"})).status,
        200
    );
    assert_eq!(final_status(&s.rest()), "succeeded");
    assert_eq!(processes(&server).len(), 1, "all on one warm process");
}

#[test]
fn messages_sent_back_to_back_run_in_the_order_they_were_accepted() {
    let server = Server::start();
    server.create(json!({"id": "order"}));
    let turns: Vec<String> = (0..8)
        .map(|i| server.send("order", json!({"message": format!("message {i}")})))
        .collect();
    for (i, turn) in turns.iter().enumerate() {
        let rest = stream(&server, turn).rest();
        let reply = rest.iter().find(|e| e.event == "result").unwrap();
        assert_eq!(
            reply.data["response"],
            format!("echo[{}]: message {i}", i + 1),
            "turn {i} ran out of order"
        );
    }
}
