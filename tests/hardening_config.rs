//! Settings that a client, a project's files or a child process must not be able to change: the permission mode a
//! client may pick, `.env` files, relative executables, the environment cloudflared sees, and what `doctor` says.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::{PASSWORD, Server, USER, wait_for};
use serde_json::json;

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Writes a config file in its own temp dir; keep the dir alive while the server runs.
fn config_file(body: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    std::fs::write(&path, body).unwrap();
    (dir, path)
}

#[test]
fn a_client_cannot_pick_a_mode_above_the_configured_one_or_outside_the_allowed_list() {
    let server = Server::builder().arg("--permission-mode=plan").start();
    let post = |mode: &str| {
        server.authed(
            "POST",
            "/api/conversations",
            json!({"permission_mode": mode}).to_string().as_bytes(),
        )
    };
    for mode in ["bypassPermissions", "acceptEdits", "default", "auto"] {
        let resp = post(mode);
        assert_eq!(resp.status, 403, "{mode}: {}", resp.text());
        let error = resp.json()["error"].as_str().unwrap().to_string();
        assert!(
            error.contains("allowed_permission_modes") && error.contains(mode),
            "{error}"
        );
    }
    // An unknown mode is still a 400.
    assert_eq!(post("yolo").status, 400);
    let conv = server.create(json!({"permission_mode": "plan"}));
    let id = conv["id"].as_str().unwrap();
    let patch = |mode: &str| {
        server.authed(
            "PATCH",
            &format!("/api/conversations/{id}"),
            json!({"permission_mode": mode}).to_string().as_bytes(),
        )
    };
    assert_eq!(patch("bypassPermissions").status, 403);
    assert_eq!(patch("acceptEdits").status, 403);
    assert_eq!(patch("plan").status, 200, "{}", patch("plan").text());
    let stored = server.authed("GET", &format!("/api/conversations/{id}"), b"");
    assert_eq!(
        stored.json()["conversation"]["permission_mode"]
            .as_str()
            .or(stored.json()["permission_mode"].as_str()),
        Some("plan"),
        "{}",
        stored.text()
    );

    // The CLI gets the plan mode for that conversation, never more.
    let turn = server.send(id, json!({"message": "hi"}));
    wait_for("the turn to end", 20, || {
        let t = server
            .authed("GET", &format!("/api/turns/{turn}"), b"")
            .json();
        (t["status"] != "running" && t["status"] != "queued").then_some(())
    });
    let (_, argv) = server.recorded_runs().pop().unwrap();
    let modes: Vec<&String> = argv
        .iter()
        .filter(|a| a.contains("permission-mode") || a.contains("Permissions") || *a == "plan")
        .collect();
    assert!(
        argv.iter().any(|a| a == "--permission-mode=plan")
            || argv
                .windows(2)
                .any(|w| w[0] == "--permission-mode" && w[1] == "plan"),
        "{argv:?}"
    );
    assert!(!modes.iter().any(|a| a.contains("bypass")), "{argv:?}");
}

#[test]
fn the_default_allowed_modes_exclude_bypass_even_under_a_bypass_server() {
    let server = Server::builder()
        .arg("--permission-mode=bypassPermissions")
        .env("IS_SANDBOX", "1")
        .start();
    let resp = server.authed(
        "POST",
        "/api/conversations",
        json!({"permission_mode": "bypassPermissions"})
            .to_string()
            .as_bytes(),
    );
    assert_eq!(resp.status, 403, "{}", resp.text());
    server.create(json!({"permission_mode": "acceptEdits"}));

    // The config file can allow it, and then the ceiling (bypassPermissions) admits it.
    let (_dir, config) = config_file(
        "[claude]\nallowed_permission_modes = [\"plan\", \"acceptEdits\", \"bypassPermissions\"]\n",
    );
    let server = Server::builder()
        .arg("--permission-mode=bypassPermissions")
        .arg(format!("--config={}", config.display()))
        .env("IS_SANDBOX", "1")
        .start();
    server.create(json!({"permission_mode": "bypassPermissions"}));
    // `default` is not in that list.
    let resp = server.authed(
        "POST",
        "/api/conversations",
        json!({"permission_mode": "default"}).to_string().as_bytes(),
    );
    assert_eq!(resp.status, 403, "{}", resp.text());
}

#[test]
fn an_invalid_allowed_mode_in_the_config_file_is_named() {
    let (_dir, config) = config_file("[claude]\nallowed_permission_modes = [\"plan\", \"yolo\"]\n");
    let root = tempfile::tempdir().unwrap();
    let out = Command::new(common::bin())
        .args(["serve", "--port=0"])
        .arg(format!("--config={}", config.display()))
        .arg(format!("--data-dir={}", root.path().join("data").display()))
        .current_dir(root.path())
        .env("HOME", root.path())
        .env("AUTH_USERNAME", USER)
        .env("AUTH_PASSWORD", PASSWORD)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let said = text(&out);
    assert!(
        said.contains("allowed_permission_modes") && said.contains("yolo"),
        "{said}"
    );
}

#[allow(dead_code)]
fn unused(_: &Path) {}
