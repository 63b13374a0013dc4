//! The transport's limits: a deadline on request bodies, a cap on this computer's own connections (with room kept
//! for the supervisor's `/health`), a lingering close after an early 413, the `Host` check on both listeners,
//! and the cap on messages queued in one conversation.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{PASSWORD, Server, USER, basic, parse_response, raw_request, wait_for};
use serde_json::json;

#[test]
fn a_body_that_never_finishes_gets_a_408_at_the_deadline() {
    let server = Server::builder()
        .env("REMOTE_AGENT_BODY_TIMEOUT_MS", "300")
        .start();
    let auth = basic(USER, PASSWORD);
    let mut s = TcpStream::connect(server.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let head = format!(
        "POST /api/chat HTTP/1.1\r\nHost: {}\r\nAuthorization: {auth}\r\nContent-Type: application/json\r\n\
         Content-Length: 100\r\n\r\n{{\"message\":",
        server.addr
    );
    let started = Instant::now();
    s.write_all(head.as_bytes()).unwrap();
    // The rest of the body never comes; the answer must, and the connection must close.
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    let waited = started.elapsed();
    assert!(!buf.is_empty(), "no answer after {waited:?}");
    let r = parse_response(&buf);
    assert_eq!(r.status, 408, "{}", r.text());
    assert!(
        r.json()["error"]
            .as_str()
            .unwrap()
            .contains("did not arrive")
    );
    assert!(
        waited >= Duration::from_millis(300) && waited < Duration::from_secs(10),
        "{waited:?}"
    );
    // A body that does arrive in time is read as before.
    let r = server.chat(&json!({"message": "hi"}));
    assert_eq!(r.status, 200, "{}", r.text());
}

#[test]
fn loopback_connections_are_capped_but_the_health_probe_gets_through() {
    let server = Server::start();
    let addr = server.addr;
    let held: Vec<TcpStream> = (0..384)
        .map(|_| TcpStream::connect(addr).unwrap())
        .collect();
    let auth = basic(USER, PASSWORD);
    let sessions = format!(
        "GET /api/sessions HTTP/1.1\r\nHost: {addr}\r\nAuthorization: {auth}\r\nConnection: close\r\n\r\n"
    );
    let over = wait_for("a local connection over the cap to be refused", 10, || {
        let r = raw_request(addr, sessions.as_bytes());
        (r.status == 503).then_some(r)
    });
    assert!(over.json()["error"].as_str().unwrap().contains("too many"));
    // The supervisor's probe is still answered, even on a kept-alive request (then closed).
    let mut probe = TcpStream::connect(addr).unwrap();
    probe
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    probe
        .write_all(
            format!("GET /health HTTP/1.1\r\nHost: {addr}\r\nX-Remote-Agent-Probe: 1\r\n\r\n")
                .as_bytes(),
        )
        .unwrap();
    let mut buf = Vec::new();
    let _ = probe.read_to_end(&mut buf);
    let r = parse_response(&buf);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["status"], "healthy");
    drop(held);
    wait_for("room again", 10, || {
        (raw_request(addr, sessions.as_bytes()).status == 200).then_some(())
    });
}

#[test]
fn a_client_still_sending_a_body_too_large_reads_the_413() {
    let server = Server::start();
    let auth = basic(USER, PASSWORD);
    let size = 16 * 1024 * 1024;
    let mut s = TcpStream::connect(server.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(20))).unwrap();
    let head = format!(
        "POST /api/chat HTTP/1.1\r\nHost: {}\r\nAuthorization: {auth}\r\nContent-Type: application/json\r\n\
         Content-Length: {size}\r\nConnection: close\r\n\r\n",
        server.addr
    );
    s.write_all(head.as_bytes()).unwrap();
    // Like most clients, send the whole body before reading: the server answered at the head, and must not
    // reset the connection under it.
    let chunk = vec![b' '; 64 * 1024];
    let mut sent = 0;
    while sent < size {
        if let Err(e) = s.write_all(&chunk) {
            panic!("sending the body failed after {sent} bytes: {e}");
        }
        sent += chunk.len();
    }
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    let r = parse_response(&buf);
    assert_eq!(r.status, 413, "{}", r.text());
    assert!(r.json()["error"].as_str().unwrap().contains("over"));
}

#[test]
fn a_conversation_queues_at_most_32_messages() {
    let server = Server::start();
    server.create(json!({"id": "busy"}));
    server.create(json!({"id": "other"}));
    // One runs (and stays running), 32 wait behind it.
    let running = server.send("busy", json!({"message": "[[slow:60]] hold"}));
    for i in 0..32 {
        server.send(
            "busy",
            json!({"message": format!("waiting {i}"), "client_id": format!("w{i}")}),
        );
    }
    let over = server.authed(
        "POST",
        "/api/conversations/busy/messages",
        json!({"message": "one too many"}).to_string().as_bytes(),
    );
    assert_eq!(over.status, 429, "{}", over.text());
    assert!(
        over.json()["error"]
            .as_str()
            .unwrap()
            .contains("too many messages waiting")
    );
    // A retried send of a message already queued still gets its turn, not the 429.
    let again = server.authed(
        "POST",
        "/api/conversations/busy/messages",
        json!({"message": "waiting 3", "client_id": "w3"})
            .to_string()
            .as_bytes(),
    );
    assert_eq!(again.status, 202, "{}", again.text());
    // The prototype's API shares the queue.
    let chat = server.chat(&json!({"message": "hi", "conv_id": "busy"}));
    assert_eq!(chat.status, 429, "{}", chat.text());
    // Other conversations are not held back.
    server.send("other", json!({"message": "hello"}));
    // Room again once the queue moves.
    let cancel = server.authed("POST", &format!("/api/turns/{running}/cancel"), b"");
    assert_eq!(cancel.status, 202, "{}", cancel.text());
    wait_for("room in the queue", 20, || {
        let r = server.authed(
            "POST",
            "/api/conversations/busy/messages",
            json!({"message": "later"}).to_string().as_bytes(),
        );
        (r.status == 202).then_some(())
    });
}
