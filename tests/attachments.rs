//! Images and files from the phone (docs/api.md, "Attachments"): a message's images reach Claude as `image` blocks
//! on the CLI's stdin (the fake records its stdin; the real CLI, when configured, passes them to the mock Messages
//! API), other files are saved in the project's git-ignored `.remote-agent/uploads/` and named in the prompt, both
//! as JSON and as multipart; everything that breaks a limit is refused before anything is stored or run.

mod common;

use base64::Engine;
use common::mock_api::MockApi;
use common::{PASSWORD, Resp, Server, USER, basic, wait_for};
use serde_json::{Value, json};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// A real PNG of w x h (RGB, uncompressed deflate blocks), each pixel a colour made from `seed`.
fn png(w: u32, h: u32, seed: u8) -> Vec<u8> {
    fn crc32(data: &[u8]) -> u32 {
        let mut c = !0u32;
        for &b in data {
            c ^= b as u32;
            for _ in 0..8 {
                c = if c & 1 != 0 {
                    0xEDB8_8320 ^ (c >> 1)
                } else {
                    c >> 1
                };
            }
        }
        !c
    }
    fn chunk(out: &mut Vec<u8>, kind: &[u8], data: &[u8]) {
        out.extend((data.len() as u32).to_be_bytes());
        let mut body = kind.to_vec();
        body.extend(data);
        out.extend(&body);
        out.extend(crc32(&body).to_be_bytes());
    }
    let mut raw = Vec::new();
    for y in 0..h {
        raw.push(0);
        for x in 0..w {
            raw.extend([seed, (x % 256) as u8, (y % 256) as u8]);
        }
    }
    // zlib: a header, stored blocks of at most 65535 bytes, the Adler-32 of the data.
    let mut z = vec![0x78, 0x01];
    let blocks: Vec<&[u8]> = raw.chunks(65535).collect();
    for (i, block) in blocks.iter().enumerate() {
        z.push((i + 1 == blocks.len()) as u8);
        let n = block.len() as u16;
        z.extend(n.to_le_bytes());
        z.extend((!n).to_le_bytes());
        z.extend(*block);
    }
    let (mut a, mut b) = (1u32, 0u32);
    for &byte in &raw {
        a = (a + byte as u32) % 65521;
        b = (b + a) % 65521;
    }
    z.extend(((b << 16) | a).to_be_bytes());
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = w.to_be_bytes().to_vec();
    ihdr.extend(h.to_be_bytes());
    ihdr.extend([8, 2, 0, 0, 0]);
    chunk(&mut out, b"IHDR", &ihdr);
    chunk(&mut out, b"IDAT", &z);
    chunk(&mut out, b"IEND", &[]);
    out
}

fn attachment(name: &str, media_type: &str, data: &[u8]) -> Value {
    json!({"name": name, "media_type": media_type, "data": B64.encode(data)})
}

/// A multipart/form-data body of these text fields and (field, file name, type, bytes) parts.
fn multipart(fields: &[(&str, &str)], files: &[(&str, &str, &str, &[u8])]) -> (String, Vec<u8>) {
    let boundary = "----remoteagenttest7MA4YWxkTrZu0gW";
    let mut body = Vec::new();
    for (name, value) in fields {
        body.extend(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
            )
            .as_bytes(),
        );
    }
    for (field, filename, media_type, data) in files {
        body.extend(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"{filename}\"\r\n\
                 Content-Type: {media_type}\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend(*data);
        body.extend(b"\r\n");
    }
    body.extend(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

fn post_json(server: &Server, conv: &str, body: &Value) -> Resp {
    server.authed(
        "POST",
        &format!("/api/conversations/{conv}/messages"),
        body.to_string().as_bytes(),
    )
}

fn post_form(server: &Server, conv: &str, content_type: &str, body: &[u8]) -> Resp {
    let auth = basic(USER, PASSWORD);
    server.request(
        "POST",
        &format!("/api/conversations/{conv}/messages"),
        &[("Authorization", &auth), ("Content-Type", content_type)],
        body,
    )
}

fn wait_ended(server: &Server, turn: &str) -> Value {
    wait_for("the turn to end", 30, || {
        let t = server
            .authed("GET", &format!("/api/turns/{turn}"), b"")
            .json();
        (!matches!(t["status"].as_str(), Some("queued" | "running"))).then_some(t)
    })
}

/// The user messages the fake got on stdin, in order.
fn fake_user_messages(server: &Server) -> Vec<Value> {
    server
        .recorded_runs()
        .iter()
        .flat_map(|(pid, _)| {
            String::from_utf8(server.recorded(pid, "stdin"))
                .unwrap()
                .lines()
                .map(|l| serde_json::from_str::<Value>(l).unwrap())
                .filter(|l| l["type"] == "user")
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn an_image_reaches_the_cli_as_an_image_block_and_comes_back_for_the_transcript() {
    let server = Server::start();
    server.create(json!({"id": "c1"}));
    let image = png(64, 48, 7);
    let turn = server.send(
        "c1",
        json!({"message": "what is this?", "attachments": [attachment("shot.png", "image/png", &image)]}),
    );
    let ended = wait_ended(&server, &turn);
    assert_eq!(ended["status"], "succeeded", "{ended}");
    let encoded = B64.encode(&image);
    assert!(
        ended["response"].as_str().unwrap().contains(&format!(
            "[image image/png, {} bytes of base64]",
            encoded.len()
        )),
        "{ended}"
    );
    let sent = fake_user_messages(&server);
    assert_eq!(
        sent[0]["message"]["content"],
        json!([
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": encoded}},
            {"type": "text", "text": "what is this?"},
        ])
    );

    // The transcript names it, and it is served back (inline, typed, never sniffed, kept privately).
    let conv = server.authed("GET", "/api/conversations/c1", b"").json();
    let user = &conv["messages"][0];
    assert_eq!(user["type"], "user");
    let listed = &user["attachments"][0];
    assert_eq!(
        (
            &listed["name"],
            &listed["media_type"],
            &listed["kind"],
            &listed["size"]
        ),
        (
            &json!("shot.png"),
            &json!("image/png"),
            &json!("image"),
            &json!(image.len())
        )
    );
    assert_eq!(conv["attachment_bytes"], json!(image.len()));
    let id = listed["id"].as_str().unwrap();
    let got = server.authed("GET", &format!("/api/attachments/{id}"), b"");
    assert_eq!(got.status, 200);
    assert_eq!(got.body, image);
    assert_eq!(got.header("content-type"), Some("image/png"));
    assert_eq!(got.header("x-content-type-options"), Some("nosniff"));
    assert!(
        got.header("content-disposition")
            .unwrap()
            .starts_with("inline;")
    );
    assert!(got.header("cache-control").unwrap().starts_with("private"));
    // Behind the sign-in like everything else.
    let anonymous = server.request("GET", &format!("/api/attachments/{id}"), &[], b"");
    assert_eq!(anonymous.status, 401);
    let unknown = server.authed(
        "GET",
        "/api/attachments/6e656139-0000-4000-8000-00000000abcd",
        b"",
    );
    assert_eq!(unknown.status, 404);

    // The turn's events say what the message brought.
    let events = server
        .authed("GET", &format!("/api/turns/{turn}/events.json"), b"")
        .json();
    let queued = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["data"]["status"] == "queued")
        .cloned()
        .unwrap_or_else(|| panic!("no queued event: {events}"));
    assert_eq!(queued["data"]["attachments"][0]["id"], id);
}

#[test]
fn multipart_brings_an_image_and_a_pdf_saved_in_the_project() {
    let server = Server::start();
    server.create(json!({"id": "c1"}));
    let image = png(20, 10, 1);
    let pdf = b"%PDF-1.4\n% a report\n".to_vec();
    let (content_type, body) = multipart(
        &[("message", "read these"), ("client_id", "m1")],
        &[
            ("attachments", "shot.png", "image/png", &image),
            ("attachments", "report.pdf", "application/pdf", &pdf),
        ],
    );
    let resp = post_form(&server, "c1", &content_type, &body);
    assert_eq!(resp.status, 202, "{}", resp.text());
    let turn = resp.json()["turn_id"].as_str().unwrap().to_string();
    assert_eq!(wait_ended(&server, &turn)["status"], "succeeded");
    let uploads = server.path("project/.remote-agent/uploads");
    assert_eq!(std::fs::read(uploads.join("report.pdf")).unwrap(), pdf);
    assert_eq!(std::fs::read(uploads.join(".gitignore")).unwrap(), b"*\n");
    let sent = fake_user_messages(&server);
    let content = &sent[0]["message"]["content"];
    assert_eq!(content[0]["source"]["data"], B64.encode(&image));
    assert_eq!(
        content[1]["text"],
        "read these\n\nAttached files: .remote-agent/uploads/report.pdf"
    );
    // A retried send is the same turn, and saves nothing again.
    let again = post_form(&server, "c1", &content_type, &body);
    assert_eq!(again.json()["turn_id"], turn.as_str());
    let names: Vec<_> = std::fs::read_dir(&uploads)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
    // The same name once more is saved beside it, and the file is served as a download.
    let (content_type, body) = multipart(
        &[("message", "and this one")],
        &[("attachments", "report.pdf", "application/pdf", b"%PDF-2")],
    );
    let turn2 = post_form(&server, "c1", &content_type, &body).json()["turn_id"]
        .as_str()
        .unwrap()
        .to_string();
    wait_ended(&server, &turn2);
    assert_eq!(
        std::fs::read(uploads.join("report-2.pdf")).unwrap(),
        b"%PDF-2"
    );
    let conv = server.authed("GET", "/api/conversations/c1", b"").json();
    let file = &conv["messages"]
        .as_array()
        .unwrap()
        .iter()
        .rfind(|m| m["type"] == "user")
        .unwrap()["attachments"][0];
    assert_eq!(file["path"], ".remote-agent/uploads/report-2.pdf");
    let got = server.authed(
        "GET",
        &format!("/api/attachments/{}", file["id"].as_str().unwrap()),
        b"",
    );
    assert!(
        got.header("content-disposition")
            .unwrap()
            .starts_with("attachment;")
    );
    assert_eq!(got.header("content-type"), Some("application/pdf"));
}

#[test]
fn what_breaks_a_limit_is_refused_and_nothing_is_stored_or_run() {
    let server = Server::start();
    server.create(json!({"id": "c1"}));
    let ok = png(8, 8, 3);
    let mut exe = b"MZ\x90\0\x03\0\0\0".to_vec();
    exe.resize(2048, 0);
    let big = {
        let mut d = png(16, 16, 0);
        d.resize(4 * 1024 * 1024, 0);
        d
    };
    let one = |a: Value| json!({"message": "x", "attachments": [a]});
    let cases: Vec<(Value, u16, &str)> = vec![
        (
            one(attachment("virus.png", "image/png", &exe)),
            415,
            "not a image/png",
        ),
        (
            one(attachment("a.bmp", "image/bmp", &exe)),
            415,
            "JPEG, PNG, GIF or WebP",
        ),
        (
            one(attachment("big.png", "image/png", &big)),
            413,
            "at most",
        ),
        (
            one(attachment("wide.png", "image/png", &png(8001, 1, 0))),
            400,
            "8000",
        ),
        (
            json!({"message": "x", "attachments": vec![attachment("a.png", "image/png", &ok); 11]}),
            400,
            "at most 10 images",
        ),
        (
            one(json!({"name": "a.png", "media_type": "image/png", "data": "not base64!"})),
            400,
            "not base64",
        ),
        (
            one(attachment("../../etc/passwd", "text/plain", b"x")),
            400,
            "not a path",
        ),
        (one(attachment(".bashrc", "text/plain", b"x")), 400, "dot"),
        (
            one(attachment("a\nb.txt", "text/plain", b"x")),
            400,
            "control",
        ),
        (
            one(attachment("huge.bin", "", &vec![0; 10 * 1024 * 1024 + 1])),
            413,
            "at most",
        ),
    ];
    for (body, status, says) in &cases {
        let resp = post_json(&server, "c1", body);
        assert_eq!(resp.status, *status, "{}", resp.text());
        let error = resp.json()["error"].as_str().unwrap().to_string();
        assert!(error.contains(says), "{error:?} should say {says:?}");
    }
    // The same through multipart: a renamed executable, a path for a name.
    for (name, status) in [("virus.png", 415), ("../x.txt", 400)] {
        let (content_type, body) =
            multipart(&[("message", "x")], &[("f", name, "image/png", &exe)]);
        let resp = post_form(&server, "c1", &content_type, &body);
        let expected = if name.ends_with(".txt") { 400 } else { status };
        assert_eq!(resp.status, expected, "{name}: {}", resp.text());
    }
    // A body over the upload cap is refused by its Content-Length.
    let auth = basic(USER, PASSWORD);
    let resp = common::raw_request(
        server.addr,
        format!(
            "POST /api/conversations/c1/messages HTTP/1.1\r\nHost: {}\r\nAuthorization: {auth}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            server.addr,
            26 * 1024 * 1024
        )
        .as_bytes(),
    );
    assert_eq!(resp.status, 413);
    // A symlinked uploads dir: refused, nothing written where it points.
    let outside = tempfile::tempdir().unwrap();
    std::fs::create_dir(server.path("project/.remote-agent")).unwrap();
    std::os::unix::fs::symlink(outside.path(), server.path("project/.remote-agent/uploads"))
        .unwrap();
    let resp = post_json(
        &server,
        "c1",
        &one(attachment("r.pdf", "application/pdf", b"%PDF")),
    );
    assert_eq!(resp.status, 409, "{}", resp.text());
    assert!(resp.json()["error"].as_str().unwrap().contains("symlink"));
    assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 0);
    // An image alone does not need the uploads dir, and still goes.
    let turn = server.send("c1", one(attachment("ok.png", "image/png", &ok)));
    wait_ended(&server, &turn);

    let conv = server.authed("GET", "/api/conversations/c1", b"").json();
    assert_eq!(conv["turn_count"], 1, "{conv}");
    assert_eq!(server.recorded_runs().len(), 1);
    assert_eq!(fake_user_messages(&server).len(), 1);
}

/// The real CLI passes the image block on to the Messages API (the mock records what it got).
#[test]
fn the_real_cli_sends_the_image_to_the_api() {
    let Some(claude) = common::real_claude("attachments::the_real_cli_sends_the_image_to_the_api")
    else {
        return;
    };
    let mock = MockApi::start();
    let server = Server::builder()
        .claude(claude)
        .env("ANTHROPIC_BASE_URL", mock.base_url())
        .env("ANTHROPIC_API_KEY", "test-key")
        .env("CLAUDE_CODE_MAX_RETRIES", "0")
        .arg("--turn-timeout")
        .arg("120")
        .start();
    let conv = format!("c{}", uuid::Uuid::new_v4().simple());
    server.create(json!({"id": conv}));
    let image = png(40, 30, 9);
    let (content_type, body) = multipart(
        &[("message", "describe the picture")],
        &[("attachments", "pic.png", "image/png", &image)],
    );
    let resp = post_form(&server, &conv, &content_type, &body);
    assert_eq!(resp.status, 202, "{}", resp.text());
    let turn = resp.json()["turn_id"].as_str().unwrap().to_string();
    let ended = wait_for("the turn to end", 120, || {
        let t = server
            .authed("GET", &format!("/api/turns/{turn}"), b"")
            .json();
        (!matches!(t["status"].as_str(), Some("queued" | "running"))).then_some(t)
    });
    assert_eq!(ended["status"], "succeeded", "{ended}\n{}", server.log());
    let encoded = B64.encode(&image);
    let images: Vec<Value> = mock
        .requests()
        .iter()
        .flat_map(|r| r["messages"].as_array().cloned().unwrap_or_default())
        .filter(|m| m["role"] == "user")
        .flat_map(|m| m["content"].as_array().cloned().unwrap_or_default())
        .filter(|b| b["type"] == "image")
        .collect();
    assert!(!images.is_empty(), "no image block reached the API");
    assert_eq!(images[0]["source"]["media_type"], "image/png");
    assert_eq!(images[0]["source"]["data"], encoded.as_str());
    assert!(
        ended["response"]
            .as_str()
            .unwrap()
            .contains("describe the picture"),
        "{ended}"
    );
    drop(server);
    assert!(
        common::pids_with_env(&format!("REMOTE_AGENT_CONVERSATION_ID={conv}")).is_empty(),
        "a claude process outlived the server"
    );
}
