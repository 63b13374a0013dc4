//! Live turns over the native API with the fake claude: background runs, event streams and their resumption,
//! the long poll, cancel, transcripts, restart safety and bounds.

mod common;

use common::{Server, Sse, SseStream, alive, wait_for};
use serde_json::{Value, json};

fn turn(server: &Server, id: &str) -> Value {
    let resp = server.authed("GET", &format!("/api/turns/{id}"), b"");
    assert_eq!(resp.status, 200, "{}", resp.text());
    resp.json()
}

fn wait_status(server: &Server, id: &str, secs: u64) -> Value {
    wait_for("the turn to end", secs, || {
        let t = turn(server, id);
        (!matches!(t["status"].as_str(), Some("queued" | "running"))).then_some(t)
    })
}

/// Reads a whole stream from the start (or from `after`).
fn read_all(server: &Server, id: &str, after: Option<u64>) -> Vec<Sse> {
    let path = match after {
        Some(n) => format!("/api/turns/{id}/events?after={n}"),
        None => format!("/api/turns/{id}/events"),
    };
    let mut s = SseStream::open(server, "GET", &path, &[]);
    assert_eq!(s.status, 200, "{:?}", s.headers);
    s.rest()
}

fn kinds(events: &[Sse]) -> Vec<&str> {
    events.iter().map(|e| e.event.as_str()).collect()
}

#[test]
fn a_stream_carries_every_kind_of_event_in_order_with_the_right_headers() {
    let server = Server::start();
    server.create(json!({"id": "c"}));
    let id = server.send(
        "c",
        json!({"message": "[[thinking]] [[retry:1]] [[tool]] hello"}),
    );
    let mut s = SseStream::open(&server, "POST", &format!("/api/turns/{id}/events"), &[]);
    assert_eq!(s.status, 200);
    assert!(
        s.header("content-type")
            .unwrap()
            .starts_with("text/event-stream")
    );
    assert_eq!(s.header("cache-control"), Some("no-cache, no-transform"));
    assert_eq!(s.header("x-accel-buffering"), Some("no"));
    let events = s.rest();
    let ids: Vec<u64> = events.iter().map(|e| e.id.unwrap()).collect();
    assert_eq!(
        ids,
        (1..=events.len() as u64).collect::<Vec<_>>(),
        "ids are 1, 2, 3, …"
    );
    let k = kinds(&events);
    assert_eq!(&k[..3], ["status", "status", "retry"], "{k:?}");
    assert_eq!(events[0].data, json!({"status": "queued"}));
    assert_eq!(events[1].data, json!({"status": "running"}));
    assert_eq!(events[2].data["attempt"], 1);
    let pos = |kind: &str| {
        k.iter()
            .position(|x| *x == kind)
            .unwrap_or_else(|| panic!("{kind} in {k:?}"))
    };
    assert!(pos("thinking") < pos("tool_use"));
    assert!(pos("tool_use") < pos("tool_result") && pos("tool_result") < pos("text_delta"));
    assert_eq!(&k[k.len() - 3..], ["message", "result", "done"]);
    let tool = &events[pos("tool_use")].data;
    assert_eq!(
        (tool["name"].as_str(), tool["input"]["command"].as_str()),
        (Some("Bash"), Some("echo hi"))
    );
    let result = &events[pos("tool_result")].data;
    assert_eq!(result["tool_use_id"], "toolu_fake1");
    assert_eq!(result["is_error"], false);
    let text: String = events
        .iter()
        .filter(|e| e.event == "text_delta")
        .map(|e| e.data["text"].as_str().unwrap())
        .collect();
    let expected = "echo[1]: [[thinking]] [[retry:1]] [[tool]] hello";
    assert_eq!(text, expected);
    assert_eq!(events[pos("message")].data["text"], expected);
    let r = &events[pos("result")].data;
    assert_eq!(
        (r["response"].as_str(), r["is_error"].as_bool()),
        (Some(expected), Some(false))
    );
    assert_eq!(r["cost"], 0.0021);
    assert_eq!(r["num_turns"], 2);
    assert_eq!(events.last().unwrap().data, json!({"status": "succeeded"}));
}

#[test]
fn resuming_mid_turn_and_after_it_gives_exactly_the_rest() {
    let server = Server::start();
    server.create(json!({"id": "c"}));
    let id = server.send(
        "c",
        json!({"message": "[[tool]] [[slow:1]] [[deltas:20]] go"}),
    );
    // A reader that stays from start to end.
    let whole_reader = {
        let mut s = SseStream::open(&server, "GET", &format!("/api/turns/{id}/events"), &[]);
        std::thread::spawn(move || s.rest())
    };
    // A reader that drops after the tool call and comes back, once by header and once by query.
    let mut first = SseStream::open(&server, "GET", &format!("/api/turns/{id}/events"), &[]);
    let mut seen = Vec::new();
    while let Some(e) = first.next() {
        let kind = e.event.clone();
        seen.push(e);
        if kind == "tool_use" {
            break;
        }
    }
    drop(first);
    let last = seen.last().unwrap().id.unwrap();
    let mut by_header = SseStream::open(
        &server,
        "GET",
        &format!("/api/turns/{id}/events"),
        &[("Last-Event-ID", &last.to_string())],
    );
    let by_query = read_all(&server, &id, Some(last));
    let by_header = by_header.rest();
    let whole = whole_reader.join().unwrap();
    assert_eq!(by_header, whole[last as usize..]);
    assert_eq!(by_query, whole[last as usize..]);
    assert_eq!([seen, by_header].concat(), whole);

    // After the end the store replays the same stream; past `done` there is nothing: 204.
    assert_eq!(read_all(&server, &id, None), whole);
    assert_eq!(read_all(&server, &id, Some(5)), whole[5..]);
    let past = server.authed(
        "GET",
        &format!("/api/turns/{id}/events?after={}", whole.len()),
        b"",
    );
    assert_eq!(past.status, 204);
    let bad = server.authed("GET", &format!("/api/turns/{id}/events?after=x"), b"");
    assert_eq!(bad.status, 400);

    // An EventSource reconnects to its first URL (`?after=2`) and adds what it has seen since as Last-Event-ID:
    // the later of the two wins, so nothing comes twice, and past `done` it is told to stop (204).
    let mut again = SseStream::open(
        &server,
        "GET",
        &format!("/api/turns/{id}/events?after=2"),
        &[("Last-Event-ID", "6")],
    );
    assert_eq!(again.rest(), whole[6..]);
    let done = whole.len().to_string();
    let over = server.request(
        "GET",
        &format!("/api/turns/{id}/events?after=0"),
        &[
            (
                "Authorization",
                &common::basic(common::USER, common::PASSWORD),
            ),
            ("Last-Event-ID", &done),
        ],
        b"",
    );
    assert_eq!(over.status, 204);
}

#[test]
fn the_long_poll_returns_the_same_events_as_the_stream() {
    let server = Server::start();
    server.create(json!({"id": "c"}));
    let id = server.send("c", json!({"message": "[[slow:0.5]] [[tool]] poll me"}));
    let mut polled = Vec::new();
    let mut after = 0;
    loop {
        let resp = server.authed(
            "GET",
            &format!("/api/turns/{id}/events.json?after={after}&wait=5"),
            b"",
        );
        assert_eq!(resp.status, 200);
        let body = resp.json();
        for e in body["events"].as_array().unwrap() {
            after = e["id"].as_u64().unwrap();
            polled.push(Sse {
                id: Some(after),
                event: e["event"].as_str().unwrap().into(),
                data: e["data"].clone(),
            });
        }
        if body["done"] == true {
            break;
        }
    }
    assert_eq!(polled, read_all(&server, &id, None));
    let past = server
        .authed(
            "GET",
            &format!("/api/turns/{id}/events.json?after={after}"),
            b"",
        )
        .json();
    assert_eq!(past, json!({"events": [], "done": true}));
}

#[test]
fn two_subscribers_see_identical_streams() {
    let server = Server::start();
    server.create(json!({"id": "c"}));
    let id = server.send("c", json!({"message": "[[slow:0.3]] [[deltas:50]] both"}));
    let mut a = SseStream::open(&server, "GET", &format!("/api/turns/{id}/events"), &[]);
    let mut b = SseStream::open(&server, "POST", &format!("/api/turns/{id}/events"), &[]);
    let (a, b) = (a.rest(), b.rest());
    assert_eq!(a, b);
    assert_eq!(a.iter().filter(|e| e.event == "text_delta").count(), 50);
}

#[test]
fn a_turn_nobody_watches_completes_and_is_readable_later() {
    let server = Server::start();
    server.create(json!({"id": "c", "title": "Later"}));
    let id = server.send("c", json!({"message": "[[tool]] [[thinking]] unattended"}));
    let t = wait_status(&server, &id, 10);
    assert_eq!(t["status"], "succeeded");
    assert_eq!(t["response"], "echo[1]: [[tool]] [[thinking]] unattended");
    assert_eq!(t["conversation_id"], "c");
    assert_eq!(t["num_turns"], 2);
    assert!(t["duration_ms"].as_i64().is_some());
    let conv = server.authed("GET", "/api/conversations/c", b"").json();
    assert_eq!(conv["title"], "Later");
    assert_eq!(conv["active_turn_id"], Value::Null);
    let types: Vec<&str> = conv["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        [
            "user",
            "thinking",
            "tool_use",
            "tool_result",
            "assistant",
            "result"
        ]
    );
    let msgs = conv["messages"].as_array().unwrap();
    assert_eq!(msgs[0]["text"], "[[tool]] [[thinking]] unattended");
    assert_eq!(msgs[2]["input"]["command"], "echo hi");
    assert_eq!(msgs[3]["content"], "hi");
    assert_eq!(msgs[5]["status"], "succeeded");
    assert_eq!(msgs[5]["cost"], 0.0021);
}

#[test]
fn a_silent_upstream_gets_keepalive_events_and_a_first_event_at_once() {
    let server = Server::builder().arg("--sse-keepalive").arg("1").start();
    server.create(json!({"id": "c"}));
    let id = server.send("c", json!({"message": "[[slow:5]] quiet"}));
    wait_for("the run to start", 10, || {
        (turn(&server, &id)["status"] == "running").then_some(())
    });
    // From the current end of the stream: the first thing to arrive is a keepalive, at once.
    let mut s = SseStream::open(
        &server,
        "GET",
        &format!("/api/turns/{id}/events?after=2"),
        &[],
    );
    let first = s
        .next_within(2.0)
        .expect("an event at once, not after a second's keepalive period");
    assert_eq!((first.event.as_str(), first.id), ("keepalive", None));
    let mut keepalives = 0;
    while let Some(e) = s.next() {
        if e.event == "keepalive" {
            assert_eq!(e.id, None, "a keepalive never moves the resume cursor");
            keepalives += 1;
        }
        if e.event == "done" {
            break;
        }
    }
    assert!(
        keepalives >= 3,
        "only {keepalives} keepalives in 5 s of silence"
    );
}

#[test]
fn a_repeated_client_id_returns_the_first_turn() {
    let server = Server::start();
    server.create(json!({"id": "c"}));
    let body = json!({"message": "once only", "client_id": "phone-42"});
    let first = server.send("c", body.clone());
    let again = server.send("c", body);
    assert_eq!(first, again);
    wait_status(&server, &first, 10);
    assert_eq!(
        server.send(
            "c",
            json!({"message": "once only", "client_id": "phone-42"})
        ),
        first
    );
    assert_eq!(server.recorded_runs().len(), 1);
    // Another conversation may use the same client id.
    server.create(json!({"id": "d"}));
    assert_ne!(
        server.send("d", json!({"message": "x", "client_id": "phone-42"})),
        first
    );
}

#[test]
fn cancel_stops_a_running_turn_and_drops_a_queued_one() {
    let server = Server::start();
    server.create(json!({"id": "c"}));
    let running = server.send(
        "c",
        json!({"message": "[[slow:60]] [[orphan]] [[success-on-int]]"}),
    );
    let queued = server.send("c", json!({"message": "never runs"}));
    let (pid, orphan) = server.wait_for_orphan();
    assert_eq!(
        server.authed("GET", "/api/conversations/c", b"").json()["active_turn_id"],
        running.as_str()
    );

    let resp = server.authed("POST", &format!("/api/turns/{queued}/cancel"), b"");
    assert_eq!(resp.status, 202);
    assert_eq!(wait_status(&server, &queued, 5)["status"], "cancelled");
    let started = std::time::Instant::now();
    let resp = server.authed("POST", &format!("/api/turns/{running}/cancel"), b"");
    assert_eq!(resp.status, 202);
    let t = wait_status(&server, &running, 10);
    // The fake printed a success result while stopping; the cancel wins.
    assert_eq!(t["status"], "cancelled", "{t}");
    assert!(
        started.elapsed().as_secs() < 5,
        "cancel took {:?}",
        started.elapsed()
    );
    // Only the turn stopped: its tool's process is gone, claude stays warm.
    wait_for("the tool process to be gone", 10, || {
        (!alive(orphan)).then_some(())
    });
    assert!(alive(pid), "claude was stopped with the turn");
    assert_eq!(server.recorded_runs().len(), 1);
    let stdin = String::from_utf8_lossy(&server.recorded(&pid.to_string(), "stdin")).to_string();
    assert!(
        !stdin.contains("never runs"),
        "the queued turn ran: {stdin}"
    );
    let events = read_all(&server, &running, None);
    assert_eq!(events.last().unwrap().data, json!({"status": "cancelled"}));
    let again = server.authed("POST", &format!("/api/turns/{running}/cancel"), b"");
    assert_eq!(again.status, 409);
    // The conversation goes on, on the same process and in the same session.
    let next = server.send("c", json!({"message": "after cancel"}));
    let t = wait_status(&server, &next, 10);
    assert_eq!(t["status"], "succeeded", "{t}");
    assert_eq!(t["response"], "echo[2]: after cancel", "{t}");
    assert_eq!(server.recorded_runs().len(), 1);
}

#[test]
fn a_killed_server_leaves_no_turn_running_and_the_conversation_goes_on() {
    let mut server = Server::start();
    server.create(json!({"id": "c"}));
    let first = server.send("c", json!({"message": "first"}));
    wait_status(&server, &first, 10);
    // A claude that ignores the SIGTERM it gets when serve dies (`[[stubborn]]`) is left to the next start.
    let id = server.send(
        "c",
        json!({"message": "[[tool]] [[slow:60]] [[stubborn]] doomed"}),
    );
    // Once the tool call is out, the fake sleeps in its "tool" and writes nothing until then, so it outlives
    // the server (a write to a closed pipe would end it).
    let mut events = SseStream::open(&server, "GET", &format!("/api/turns/{id}/events"), &[]);
    while let Some(e) = events.next() {
        if e.event == "tool_use" {
            break;
        }
    }
    drop(events);
    let (pid, _) = server.recorded_runs().pop().unwrap();
    let pid: i32 = pid.parse().unwrap();
    server.stop(9);
    assert!(
        alive(pid),
        "claude should outlive a SIGKILLed server until the next start"
    );
    server.restart();
    wait_for("the old claude to be stopped", 10, || {
        (!alive(pid)).then_some(())
    });
    let t = turn(&server, &id);
    assert_eq!(t["status"], "interrupted");
    let events = read_all(&server, &id, None);
    assert_eq!(
        events.last().unwrap().data,
        json!({"status": "interrupted"})
    );
    // The next message resumes the session of the first.
    let next = server.send("c", json!({"message": "still here"}));
    let t = wait_status(&server, &next, 10);
    assert_eq!(t["status"], "succeeded");
    assert_eq!(t["response"], "echo[3]: still here");
}

#[test]
fn a_conversations_settings_reach_the_cli() {
    let server = Server::start();
    server.create(json!({"id": "c", "model": "claude-sonnet-9", "permission_mode": "plan", "max_budget_usd": 1.5}),
    );
    let id = server.send("c", json!({"message": "configured"}));
    wait_status(&server, &id, 10);
    let (_, argv) = server.recorded_runs().pop().unwrap();
    for flag in [
        "--model=claude-sonnet-9",
        "--permission-mode=plan",
        "--max-budget-usd=1.5",
    ] {
        assert!(
            argv.iter().any(|a| a == flag),
            "{flag} missing from {argv:?}"
        );
    }
    let patched = server.authed(
        "PATCH",
        "/api/conversations/c",
        json!({"title": "Renamed", "model": null, "permission_mode": "default"})
            .to_string()
            .as_bytes(),
    );
    assert_eq!(patched.status, 200, "{}", patched.text());
    assert_eq!(patched.json()["title"], "Renamed");
    let id = server.send("c", json!({"message": "again"}));
    wait_status(&server, &id, 10);
    // The warm process took it: the new mode and model reached it as control requests before the message.
    let runs = server.recorded_runs();
    assert_eq!(runs.len(), 1);
    let stdin: Vec<serde_json::Value> = server
        .recorded(&runs[0].0, "stdin")
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).unwrap())
        .collect();
    let requests: Vec<&serde_json::Value> = stdin
        .iter()
        .filter(|l| l["type"] == "control_request")
        .map(|l| &l["request"])
        .collect();
    assert_eq!(
        requests,
        [
            &json!({"subtype": "set_permission_mode", "mode": "default"}),
            &json!({"subtype": "set_model", "model": null})
        ],
        "{stdin:?}"
    );
    let last = stdin.last().unwrap();
    assert_eq!(
        (&last["type"], &last["message"]["content"]),
        (&json!("user"), &json!("again"))
    );
    let list = server.authed("GET", "/api/conversations", b"").json();
    let c = &list["conversations"][0];
    assert_eq!(
        (
            c["id"].as_str(),
            c["title"].as_str(),
            c["turn_count"].as_i64()
        ),
        (Some("c"), Some("Renamed"), Some(2))
    );
    assert_eq!(
        (c["first_message"].as_str(), c["last_message"].as_str()),
        (Some("configured"), Some("again"))
    );
}

#[test]
fn deleting_a_conversation_cancels_its_turn() {
    let server = Server::start();
    server.create(json!({"id": "c"}));
    let id = server.send("c", json!({"message": "[[slow:60]]"}));
    wait_for("the run to start", 10, || {
        (server.recorded_runs().len() == 1).then_some(())
    });
    let (pid, _) = server.recorded_runs().pop().unwrap();
    let resp = server.authed("DELETE", "/api/conversations/c", b"");
    assert_eq!(resp.status, 204);
    // The turn was interrupted and the process kept warm; the deletion then closes it.
    let pid: i32 = pid.parse().unwrap();
    wait_for("the deleted conversation's claude to be gone", 10, || {
        (!alive(pid)).then_some(())
    });
    assert_eq!(
        server.authed("GET", "/api/conversations/c", b"").status,
        404
    );
    assert_eq!(
        server
            .authed("GET", &format!("/api/turns/{id}"), b"")
            .status,
        404
    );
}

#[test]
fn transcripts_page_by_turns() {
    let server = Server::start();
    server.create(json!({"id": "c"}));
    let ids: Vec<String> = (1..=3)
        .map(|i| {
            let id = server.send("c", json!({"message": format!("m{i}")}));
            wait_status(&server, &id, 10);
            id
        })
        .collect();
    let user_texts = |v: &Value| -> Vec<String> {
        v["messages"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["type"] == "user")
            .map(|m| m["text"].as_str().unwrap().to_string())
            .collect()
    };
    let page = server
        .authed("GET", "/api/conversations/c?limit=2", b"")
        .json();
    assert_eq!(user_texts(&page), ["m2", "m3"]);
    assert_eq!(page["has_more"], true);
    let older = server
        .authed(
            "GET",
            &format!("/api/conversations/c?limit=2&before={}", ids[1]),
            b"",
        )
        .json();
    assert_eq!(user_texts(&older), ["m1"]);
    assert_eq!(older["has_more"], false);
    assert_eq!(
        server
            .authed("GET", "/api/conversations/c?limit=0", b"")
            .status,
        400
    );
}

#[test]
fn ten_thousand_deltas_arrive_complete_live_and_replayed() {
    let server = Server::start();
    server.create(json!({"id": "c"}));
    let id = server.send("c", json!({"message": "[[deltas:10000]] many"}));
    let live = read_all(&server, &id, None);
    assert_eq!(
        live.iter().filter(|e| e.event == "text_delta").count(),
        10000
    );
    let ids: Vec<u64> = live.iter().map(|e| e.id.unwrap()).collect();
    assert_eq!(ids, (1..=live.len() as u64).collect::<Vec<_>>());
    // From the store, after the turn, in pages.
    assert_eq!(read_all(&server, &id, None), live);
    assert_eq!(read_all(&server, &id, Some(7000)), live[7000..]);
}

#[test]
fn subscribers_per_turn_are_capped() {
    let server = Server::start();
    server.create(json!({"id": "c"}));
    let id = server.send("c", json!({"message": "[[slow:30]]"}));
    let path = format!("/api/turns/{id}/events");
    let streams: Vec<SseStream> = (0..256)
        .map(|_| {
            let s = SseStream::open(&server, "GET", &path, &[]);
            assert_eq!(s.status, 200);
            s
        })
        .collect();
    let over = server.authed("GET", &path, b"");
    assert_eq!(over.status, 503);
    assert!(over.json()["error"].as_str().unwrap().contains("too many"));
    let status = server.authed("GET", "/api/status", b"").json();
    assert_eq!(status["subscribers"], 256);
    let project = server.path("project").canonicalize().unwrap();
    assert_eq!(status["projects"], json!([project]));
    assert_eq!(status["turns"]["running"], 1);
    drop(streams);
    wait_for("the slots to free up", 10, || {
        (SseStream::open(&server, "GET", &path, &[]).status == 200).then_some(())
    });
    server.authed("POST", &format!("/api/turns/{id}/cancel"), b"");
}

#[test]
fn native_api_bad_input_is_refused_clearly() {
    let server = Server::start();
    server.create(json!({"id": "c"}));
    let cases: Vec<(&str, &str, Value, u16)> = vec![
        ("POST", "/api/conversations", json!({"id": "bad id"}), 400),
        ("POST", "/api/conversations", json!({"id": "c"}), 409),
        ("POST", "/api/conversations", json!({"project": "/"}), 400),
        (
            "POST",
            "/api/conversations",
            json!({"permission_mode": "yolo"}),
            400,
        ),
        (
            "POST",
            "/api/conversations",
            json!({"model": "--dangerously-skip-permissions"}),
            400,
        ),
        (
            "POST",
            "/api/conversations",
            json!({"max_budget_usd": -1}),
            400,
        ),
        ("POST", "/api/conversations", json!({"colour": "blue"}), 400),
        (
            "PATCH",
            "/api/conversations/c",
            json!({"session_id": "x"}),
            400,
        ),
        ("PATCH", "/api/conversations/c", json!({"title": 5}), 400),
        (
            "PATCH",
            "/api/conversations/nope",
            json!({"title": "x"}),
            404,
        ),
        (
            "POST",
            "/api/conversations/nope/messages",
            json!({"message": "x"}),
            404,
        ),
        (
            "POST",
            "/api/conversations/c/messages",
            json!({"message": ""}),
            400,
        ),
        (
            "POST",
            "/api/conversations/c/messages",
            json!({"message": "x", "client_id": "a b"}),
            400,
        ),
        (
            "GET",
            "/api/turns/00000000-0000-4000-8000-000000000000",
            Value::Null,
            404,
        ),
        ("GET", "/api/turns/not-a-turn/events", Value::Null, 404),
        (
            "POST",
            "/api/turns/00000000-0000-4000-8000-000000000000/cancel",
            Value::Null,
            404,
        ),
        ("GET", "/api/conversations/c?before=x", Value::Null, 400),
        ("PUT", "/api/conversations/c", Value::Null, 405),
        (
            "DELETE",
            "/api/turns/00000000-0000-4000-8000-000000000000",
            Value::Null,
            405,
        ),
    ];
    for (method, path, body, status) in cases {
        let bytes = if body.is_null() {
            Vec::new()
        } else {
            body.to_string().into_bytes()
        };
        let resp = server.authed(method, path, &bytes);
        assert_eq!(
            resp.status,
            status,
            "{method} {path} {body}: {}",
            resp.text()
        );
        assert!(resp.json()["error"].as_str().is_some_and(|e| !e.is_empty()));
    }
    assert!(server.recorded_runs().is_empty());
    // A conversation created in the project dir by another spelling of its path is accepted, but never one
    // through `..` (refused before anything is resolved: crate::projects).
    let project = server.path("project");
    let dotdot = format!("{}/../project", project.display());
    let resp = server.authed(
        "POST",
        "/api/conversations",
        json!({ "project": dotdot }).to_string().as_bytes(),
    );
    assert_eq!(resp.status, 400, "{}", resp.text());
    let spelled = format!("{}/./", project.display());
    let c = server.create(json!({"project": spelled}));
    assert_eq!(
        c["project"],
        project.canonicalize().unwrap().display().to_string()
    );
}
