//! Web Push with the real binary and a mock push service (tests/common/push_mock.rs): subscribing, the VAPID key,
//! a test message that arrives encrypted for the browser and signed for the service, 410 removing the
//! subscription, 503 with Retry-After retried and delivered once, the outbox surviving a restart, bad
//! subscriptions refused, and a subscription going with the sign-in it was made under.

mod common;

use common::push_mock::PushMock;
use common::{PASSWORD, Resp, Server, USER, wait_for};
use serde_json::{Value, json};

fn server() -> Server {
    Server::builder()
        .env("REMOTE_AGENT_PUSH_ALLOW_LOOPBACK", "1")
        .start()
}

fn subscribe(server: &Server, sub: &Value) -> Resp {
    server.authed(
        "POST",
        "/api/push/subscriptions",
        sub.to_string().as_bytes(),
    )
}

fn test_push(server: &Server, sub: &Value) -> Resp {
    let body = json!({"endpoint": sub["endpoint"]}).to_string();
    server.authed("POST", "/api/push/test", body.as_bytes())
}

fn outbox_rows(server: &Server) -> i64 {
    let db = rusqlite::Connection::open(server.path("data").join("remote-agent.db")).unwrap();
    db.query_row("SELECT count(*) FROM push_outbox", [], |r| r.get(0))
        .unwrap()
}

#[test]
fn a_test_push_arrives_encrypted_for_the_browser_and_signed_for_the_service() {
    let mock = PushMock::start();
    let server = server();
    let key = server.authed("GET", "/api/push/key", b"");
    assert_eq!(key.status, 200);
    let key = key.json()["key"].as_str().unwrap().to_string();
    assert_eq!(key.len(), 87, "base64url of a 65-byte point");

    let sub = mock.subscription();
    let resp = subscribe(&server, &sub);
    assert_eq!(resp.status, 201, "{}", resp.text());
    let id = resp.json()["id"].as_str().unwrap().to_string();
    let again = subscribe(&server, &sub);
    assert_eq!(
        (again.status, again.json()["id"].as_str()),
        (200, Some(id.as_str()))
    );

    assert_eq!(test_push(&server, &sub).status, 202);
    let msg = wait_for("the test push", 20, || mock.messages().pop());
    assert_eq!(
        msg.payload,
        json!({"kind": "test", "title": "remote-agent", "body": "Notifications work.", "url": "/", "tag": "test"})
    );
    assert_eq!(msg.vapid_key, key);
    assert_eq!(msg.claims["aud"], mock.origin());
    assert_eq!(msg.claims["sub"], "mailto:remote-agent@localhost");
    assert_eq!(msg.header("content-encoding"), "aes128gcm");
    assert_eq!(msg.header("urgency"), "normal");
    assert!(msg.header("ttl").parse::<u64>().unwrap() > 0);
    assert!(msg.body_len < 3072);

    // The key is kept across a restart (changing it would orphan every subscription), private to us.
    let pem = server.path("data").join("vapid.pem");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&pem).unwrap().permissions().mode() & 0o777,
        0o600
    );

    // The endpoint is a capability URL: it never reaches the log.
    let endpoint = sub["endpoint"].as_str().unwrap();
    let path = endpoint.rsplit('/').next().unwrap();
    assert!(!server.log().contains(path), "{}", server.log());

    let del = json!({"endpoint": endpoint}).to_string();
    assert_eq!(
        server
            .authed("DELETE", "/api/push/subscriptions", del.as_bytes())
            .status,
        204
    );
    assert_eq!(
        server
            .authed("DELETE", "/api/push/subscriptions", del.as_bytes())
            .status,
        204
    );
    assert_eq!(test_push(&server, &sub).status, 404);
}

#[test]
fn a_gone_subscription_is_removed_and_a_busy_service_is_retried_once_it_says() {
    let mock = PushMock::start();
    let server = server();
    let sub = mock.subscription();
    assert_eq!(subscribe(&server, &sub).status, 201);

    // 503 with Retry-After: 1, then 201: delivered exactly once, not before the second asked for.
    mock.fail_next(503, Some(1), 1);
    let started = std::time::Instant::now();
    assert_eq!(test_push(&server, &sub).status, 202);
    wait_for("the retried push", 20, || mock.messages().pop());
    assert!(started.elapsed() >= std::time::Duration::from_secs(1));
    wait_for("an empty outbox", 10, || {
        (outbox_rows(&server) == 0).then_some(())
    });
    let statuses: Vec<u16> = mock.attempts().iter().map(|a| a.status).collect();
    assert_eq!(statuses, vec![503, 201]);
    assert_eq!(mock.messages().len(), 1);

    // 410: the subscription is deleted.
    mock.answer_gone();
    assert_eq!(test_push(&server, &sub).status, 202);
    wait_for("the subscription removed", 20, || {
        (test_push(&server, &sub).status == 404).then_some(())
    });
    assert!(mock.attempts().iter().any(|a| a.status == 410));
}

#[test]
fn a_message_left_in_the_outbox_is_sent_once_after_a_restart() {
    let mock = PushMock::start();
    let mut server = server();
    let sub = mock.subscription();
    let id = subscribe(&server, &sub).json()["id"]
        .as_str()
        .unwrap()
        .to_string();
    server.stop(15); // SIGTERM: a clean stop
    {
        let db = rusqlite::Connection::open(server.path("data").join("remote-agent.db")).unwrap();
        db.execute(
            "INSERT INTO push_outbox (subscription_id, payload, urgency, ttl, topic, created_at, next_at)
             VALUES (?1, '{\"kind\":\"test\",\"title\":\"left over\"}', 'high', 60, NULL, unixepoch(), 0)",
            [&id],
        )
        .unwrap();
    }
    server.restart();
    let msg = wait_for("the left-over push", 20, || mock.messages().pop());
    assert_eq!(msg.payload["title"], "left over");
    assert_eq!(msg.header("urgency"), "high");
    wait_for("an empty outbox", 10, || {
        (outbox_rows(&server) == 0).then_some(())
    });
    assert_eq!(mock.messages().len(), 1);
}

#[test]
fn bad_subscriptions_are_refused() {
    let mock = PushMock::start();
    // Without the test-only variable a plain-HTTP endpoint is refused, even on loopback.
    let plain = Server::start();
    let resp = subscribe(&plain, &mock.subscription());
    assert_eq!(resp.status, 400);
    assert!(resp.json()["error"].as_str().unwrap().contains("https"));
    drop(plain);

    let server = server();
    let good = mock.subscription();
    let mut bad_p256dh = good.clone();
    bad_p256dh["keys"]["p256dh"] = json!("AAAA");
    let mut bad_auth = good.clone();
    bad_auth["keys"]["auth"] = json!("AAAAAAAAAAAAAAAAAAAAAAAA");
    let mut long = good.clone();
    long["endpoint"] = json!(format!(
        "{}/{}",
        good["endpoint"].as_str().unwrap(),
        "x".repeat(1024)
    ));
    for bad in [
        bad_p256dh,
        bad_auth,
        long,
        json!({"endpoint": 5}),
        json!({}),
    ] {
        let resp = subscribe(&server, &bad);
        assert_eq!(resp.status, 400, "{bad}: {}", resp.text());
        assert!(resp.json()["error"].is_string());
    }
    // At most 20.
    for _ in 0..20 {
        assert_eq!(subscribe(&server, &mock.subscription()).status, 201);
    }
    let full = subscribe(&server, &mock.subscription());
    assert_eq!(full.status, 400);
    assert!(full.json()["error"].as_str().unwrap().contains("20"));
    // Without credentials, nothing.
    assert_eq!(server.request("GET", "/api/push/key", &[], b"").status, 401);
}

#[test]
fn logging_out_removes_the_subscriptions_made_under_that_sign_in() {
    let mock = PushMock::start();
    let server = server();
    let login = server.request(
        "POST",
        "/api/login",
        &[
            ("Content-Type", "application/json"),
            ("X-Requested-With", "remote-agent"),
        ],
        json!({"username": USER, "password": PASSWORD})
            .to_string()
            .as_bytes(),
    );
    assert!(login.status < 300, "{}", login.text());
    let cookie = login
        .header("set-cookie")
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let origin = format!("http://{}", server.addr);
    let with_cookie = |method: &str, path: &str, body: &[u8]| {
        server.request(
            method,
            path,
            &[
                ("Cookie", cookie.as_str()),
                ("X-Requested-With", "remote-agent"),
                ("Origin", origin.as_str()),
                ("Content-Type", "application/json"),
            ],
            body,
        )
    };
    let mine = mock.subscription();
    assert_eq!(
        with_cookie(
            "POST",
            "/api/push/subscriptions",
            mine.to_string().as_bytes()
        )
        .status,
        201
    );
    let basic = mock.subscription();
    assert_eq!(subscribe(&server, &basic).status, 201);
    assert_eq!(
        with_cookie("POST", "/api/presence", br#"{"conversation_id":null}"#).status,
        204
    );
    assert_eq!(with_cookie("POST", "/api/logout", b"").status, 204);
    assert_eq!(test_push(&server, &mine).status, 404);
    assert_eq!(
        test_push(&server, &basic).status,
        202,
        "one made under HTTP Basic stays"
    );
}

#[test]
fn a_message_the_service_keeps_refusing_is_dropped_after_four_tries() {
    let mock = PushMock::start();
    let server = server();
    let sub = mock.subscription();
    assert_eq!(subscribe(&server, &sub).status, 201);
    mock.fail_next(429, Some(1), 100);
    assert_eq!(test_push(&server, &sub).status, 202);
    server.wait_log("failed 4 times: message dropped", 30);
    assert_eq!(outbox_rows(&server), 0);
    assert_eq!(mock.attempts().len(), 4);
    assert!(mock.messages().is_empty());
    // The subscription stays: a busy service is not a gone browser.
    assert_eq!(test_push(&server, &sub).status, 202);
    let path = sub["endpoint"]
        .as_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap();
    assert!(!server.log().contains(path));
}
