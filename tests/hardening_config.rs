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

/// A `serve` started by hand in `cwd` with exactly these arguments and environment (no AUTH_* unless given), its
/// log in `log`; SIGTERM (then SIGKILL) on drop.
struct Serve {
    child: std::process::Child,
    addr: std::net::SocketAddr,
    log: std::path::PathBuf,
}

impl Serve {
    fn start(cwd: &Path, home: &Path, args: &[String], envs: &[(&str, String)]) -> Serve {
        use std::io::BufRead;
        let log = home.join("serve.log");
        let mut child = Command::new(common::bin())
            .arg("serve")
            .args(args)
            .current_dir(cwd)
            .env("HOME", home)
            .env("RUST_LOG", "info")
            .env_remove("AUTH_USERNAME")
            .env_remove("AUTH_PASSWORD")
            .env_remove("CLAUDE_BIN")
            .env_remove("PORT")
            .env_remove("REMOTE_AGENT_CONFIG")
            .env_remove("CLAUDE_CONFIG_DIR")
            .envs(envs.iter().map(|(k, v)| (k, v)))
            .stdout(std::process::Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(addr) = line.strip_prefix("listening on http://") {
                    let _ = tx.send(addr.to_string());
                }
            }
        });
        let addr = rx
            .recv_timeout(std::time::Duration::from_secs(20))
            .unwrap_or_else(|_| {
                let _ = child.kill();
                panic!(
                    "serve did not start: {}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                )
            })
            .parse()
            .unwrap();
        Serve { child, addr, log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn get(&self, user: &str, password: &str, path: &str) -> common::Resp {
        let auth = common::basic(user, password);
        let raw = format!(
            "GET {path} HTTP/1.1\r\nHost: localhost\r\nAuthorization: {auth}\r\nConnection: close\r\n\r\n"
        );
        common::raw_request(self.addr, raw.as_bytes())
    }

    fn send(&self, method: &str, path: &str, body: &serde_json::Value) -> common::Resp {
        let auth = common::basic(USER, PASSWORD);
        let body = body.to_string();
        let raw = format!(
            "{method} {path} HTTP/1.1\r\nHost: localhost\r\nAuthorization: {auth}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        common::raw_request(self.addr, raw.as_bytes())
    }

    fn chat(&self, user: &str, password: &str, message: &str) -> common::Resp {
        let auth = common::basic(user, password);
        let body = json!({"message": message}).to_string();
        let raw = format!(
            "POST /api/chat HTTP/1.1\r\nHost: localhost\r\nAuthorization: {auth}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        common::raw_request(self.addr, raw.as_bytes())
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        common::terminate(&mut self.child, std::time::Duration::from_secs(15));
    }
}

/// A script that, run as `claude`, leaves a mark: what a hostile `.env` would make every message run.
fn evil_program(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    use std::os::unix::fs::PermissionsExt;
    let mark = dir.join("pwned");
    let evil = dir.join("evil.sh");
    std::fs::write(&evil, format!("#!/bin/sh\ntouch {}\n", mark.display())).unwrap();
    std::fs::set_permissions(&evil, std::fs::Permissions::from_mode(0o755)).unwrap();
    (evil, mark)
}

#[test]
fn a_dotenv_written_into_the_project_never_replaces_the_login_or_claude() {
    let root = tempfile::tempdir().unwrap();
    let project = root.path().join("project");
    std::fs::create_dir(&project).unwrap();
    let (_cdir, config) = config_file(&format!(
        "[auth]\nusername = \"{USER}\"\npassword = \"{PASSWORD}\"\n"
    ));
    let (evil, mark) = evil_program(root.path());
    // Started by hand in the project (the default project is then the working directory itself).
    let server = Serve::start(
        &project,
        root.path(),
        &[
            "--port=0".into(),
            format!("--config={}", config.display()),
            format!("--data-dir={}", root.path().join("data").display()),
            format!("--claude-bin={}", common::fake_claude().display()),
        ],
        &[],
    );
    // What Claude (or a cloned repository) writes there; the next reload must not take it.
    std::fs::write(
        project.join(".env"),
        format!(
            "AUTH_USERNAME=evil\nAUTH_PASSWORD=evil-password\nCLAUDE_BIN={}\n",
            evil.display()
        ),
    )
    .unwrap();
    common::unsafe_kill(server.child.id() as i32, 1);
    wait_for("the reload", 10, || {
        server.log().contains("settings reloaded").then_some(())
    });
    assert_eq!(
        server.get("evil", "evil-password", "/api/sessions").status,
        401
    );
    assert_eq!(server.get(USER, PASSWORD, "/api/sessions").status, 200);
    let resp = server.chat(USER, PASSWORD, "hi");
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(resp.json()["success"], true, "{}", resp.text());
    assert!(!mark.exists(), "the .env's CLAUDE_BIN ran");
}

#[test]
fn a_dotenv_outside_the_projects_gives_settings_but_never_credentials_or_executables() {
    let root = tempfile::tempdir().unwrap();
    let project = root.path().join("project");
    let here = root.path().join("here");
    std::fs::create_dir(&project).unwrap();
    std::fs::create_dir(&here).unwrap();
    let (_cdir, config) = config_file(&format!(
        "[auth]\nusername = \"{USER}\"\npassword = \"{PASSWORD}\"\n"
    ));
    let (evil, mark) = evil_program(root.path());
    // PORT=0 is taken (else the server would try 8000); the rest is not.
    std::fs::write(
        here.join(".env"),
        format!(
            "PORT=0\nAUTH_USERNAME=evil\nAUTH_PASSWORD=evil-password\nCLAUDE_BIN={0}\nCLOUDFLARED_BIN={0}\n",
            evil.display()
        ),
    )
    .unwrap();
    let server = Serve::start(
        &here,
        root.path(),
        &[
            format!("--project={}", project.display()),
            format!("--config={}", config.display()),
            format!("--data-dir={}", root.path().join("data").display()),
        ],
        &[],
    );
    assert_eq!(
        server.get("evil", "evil-password", "/api/sessions").status,
        401
    );
    assert_eq!(server.get(USER, PASSWORD, "/api/sessions").status, 200);
    // The warnings go through the log's writer thread: wait for them.
    let log = wait_for("the .env warnings in the log", 10, || {
        let log = server.log();
        (log.contains("AUTH_PASSWORD") && log.contains("CLAUDE_BIN")).then_some(log)
    });
    assert!(!log.contains("evil-password"), "{log}");
    // claude is looked up on PATH (not found there): the .env's program never runs.
    let _ = server.chat(USER, PASSWORD, "hi");
    assert!(!mark.exists(), "the .env's CLAUDE_BIN ran");
}

#[test]
fn a_dotenv_outside_the_projects_cannot_widen_claudes_permissions_or_move_the_data() {
    let root = tempfile::tempdir().unwrap();
    let project = root.path().join("project");
    let here = root.path().join("here");
    let record = root.path().join("record");
    for d in [&project, &here, &record] {
        std::fs::create_dir(d).unwrap();
    }
    let (_cdir, config) = config_file(&format!(
        "[auth]\nusername = \"{USER}\"\npassword = \"{PASSWORD}\"\n"
    ));
    let evil_data = root.path().join("evil-data");
    std::fs::write(
        here.join(".env"),
        format!(
            "PORT=0\nCLAUDE_PERMISSION_MODE=bypassPermissions\nCLAUDE_ALLOWED_TOOLS=Bash\nREMOTE_AGENT_DATA_DIR={}\n",
            evil_data.display()
        ),
    )
    .unwrap();
    let server = Serve::start(
        &here,
        root.path(),
        &[
            format!("--project={}", project.display()),
            format!("--config={}", config.display()),
            format!("--claude-bin={}", common::fake_claude().display()),
        ],
        &[("FAKE_CLAUDE_RECORD", record.display().to_string())],
    );
    let resp = server.chat(USER, PASSWORD, "hi");
    assert_eq!(resp.json()["success"], true, "{}", resp.text());
    let argv: Vec<String> = std::fs::read_dir(&record)
        .unwrap()
        .filter_map(|e| e.ok())
        .find(|e| e.file_name().to_string_lossy().ends_with(".argv.json"))
        .map(|e| serde_json::from_slice(&std::fs::read(e.path()).unwrap()).unwrap())
        .expect("claude ran");
    // The prototype's chat runs in the configured ceiling (acceptEdits by default), not in the .env's mode.
    assert!(
        argv.contains(&"--permission-mode=acceptEdits".to_string()),
        "{argv:?}"
    );
    assert!(
        !argv
            .iter()
            .any(|a| a.contains("bypassPermissions") || a.ends_with("=Bash")),
        "{argv:?}"
    );
    assert!(!evil_data.exists(), "the .env moved the data dir");
    let keys = [
        "CLAUDE_PERMISSION_MODE",
        "CLAUDE_ALLOWED_TOOLS",
        "REMOTE_AGENT_DATA_DIR",
    ];
    // The refusal goes through the log's writer thread: wait for it to name every key.
    wait_for("the refusal to name every key", 10, || {
        let log = server.log();
        keys.iter().all(|key| log.contains(key)).then_some(())
    });
}

#[test]
fn serve_and_up_work_from_the_state_dir() {
    let server = Server::start();
    let cwd = std::fs::read_link(format!("/proc/{}/cwd", server.pid())).unwrap();
    let state = server.path("home").join(".local/state/remote-agent");
    assert_eq!(cwd, state.canonicalize().unwrap());

    let up = common::up::Up::builder().arg("--no-tunnel").start();
    up.wait_line("http://127.0.0.1:", 0, 20);
    let state = up.root.path().join("state").canonicalize().unwrap();
    assert_eq!(
        std::fs::read_link(format!("/proc/{}/cwd", up.pid())).unwrap(),
        state
    );
    let serve = up.child_pid("serve");
    wait_for("serve to enter the state dir", 10, || {
        (std::fs::read_link(format!("/proc/{serve}/cwd")).ok()? == state).then_some(())
    });
}

#[test]
fn a_relative_claude_bin_names_the_same_program_from_the_project() {
    let root = tempfile::tempdir().unwrap();
    let project = root.path().join("project");
    std::fs::create_dir_all(root.path().join("bin")).unwrap();
    std::fs::create_dir(&project).unwrap();
    std::os::unix::fs::symlink(common::fake_claude(), root.path().join("bin/claude")).unwrap();
    let server = Serve::start(
        root.path(),
        root.path(),
        &[
            "--port=0".into(),
            format!("--project={}", project.display()),
            format!("--data-dir={}", root.path().join("data").display()),
        ],
        &[
            ("CLAUDE_BIN", "bin/claude".into()),
            ("AUTH_USERNAME", USER.into()),
            ("AUTH_PASSWORD", PASSWORD.into()),
        ],
    );
    let resp = server.chat(USER, PASSWORD, "hi");
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(resp.json()["success"], true, "{}", resp.text());
    assert!(resp.json()["response"].as_str().unwrap().contains("hi"));
}

#[test]
fn up_runs_relative_executables_the_readme_way() {
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(root.path().join("bin")).unwrap();
    std::os::unix::fs::symlink(common::fake_claude(), root.path().join("bin/claude")).unwrap();
    std::os::unix::fs::symlink(
        common::up::fake_cloudflared(),
        root.path().join("bin/cloudflared"),
    )
    .unwrap();
    let up = common::up::Up::builder()
        .in_dir(root)
        .env("CLAUDE_BIN", "bin/claude")
        .arg("--cloudflared-bin=bin/cloudflared")
        .start();
    let addr = up.local();
    wait_for("cloudflared to start", 20, || {
        (!up.starts().is_empty()).then_some(())
    });
    let body = json!({"message": "hi"}).to_string();
    let raw = format!(
        "POST /api/chat HTTP/1.1\r\nHost: localhost\r\nAuthorization: {}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        common::basic(USER, PASSWORD),
        body.len()
    );
    let resp = common::raw_request(addr, raw.as_bytes());
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(resp.json()["success"], true, "{}", resp.text());
}

#[test]
fn cloudflared_gets_a_scrubbed_environment() {
    let up = common::up::Up::builder()
        .env("ANTHROPIC_API_KEY", "sk-ant-not-for-cloudflared")
        .env("TUNNEL_TOKEN", "a-token-of-the-shell")
        .env("REMOTE_AGENT_TURN_TIMEOUT", "600")
        .start();
    let pid = up.child_pid("cloudflared");
    let environ = common::environ_of(pid).expect("cloudflared's environment");
    let vars: Vec<String> = environ
        .split(|b| *b == 0)
        .map(|v| String::from_utf8_lossy(v).to_string())
        .collect();
    for secret in [
        "AUTH_USERNAME=",
        "AUTH_PASSWORD=",
        "ANTHROPIC_API_KEY=",
        "TUNNEL_TOKEN=",
        "CLAUDE_BIN=",
        "REMOTE_AGENT_",
    ] {
        assert!(
            !vars.iter().any(|v| v.starts_with(secret)),
            "{secret} reached cloudflared: {vars:?}"
        );
    }
    assert!(!String::from_utf8_lossy(&environ).contains(PASSWORD));
    // What it needs still reaches it (its home, for ~/.cloudflared).
    assert!(vars.iter().any(|v| v.starts_with("HOME=")), "{vars:?}");
}

#[test]
fn a_named_tunnels_token_reaches_cloudflared_as_tunnel_token_alone() {
    use base64::Engine;
    let token = base64::engine::general_purpose::STANDARD.encode(
        json!({"a": "account", "t": "6e656139-0d4e-4a3c-9a57-3c1b0e4f7d21", "s": "c2VjcmV0"})
            .to_string(),
    );
    let up = common::up::Up::builder()
        .arg("--tunnel=named")
        .arg(format!("--tunnel-token={token}"))
        .start();
    let pid = up.child_pid("cloudflared");
    let environ = String::from_utf8_lossy(&common::environ_of(pid).unwrap()).to_string();
    assert!(
        environ.contains(&format!("TUNNEL_TOKEN={token}")),
        "{environ}"
    );
    assert!(
        !environ.contains("AUTH_PASSWORD") && !environ.contains(PASSWORD),
        "{environ}"
    );
}

/// `remote-agent doctor` in a fresh HOME (no login, no service), run from `cwd`.
fn doctor(home: &Path, cwd: &Path, args: &[String], envs: &[(&str, String)]) -> Output {
    Command::new(common::bin())
        .arg("doctor")
        .args([
            "--port=0".to_string(),
            format!("--data-dir={}", home.join("data").display()),
        ])
        .args(args)
        .current_dir(cwd)
        .env("HOME", home)
        .env_remove("XDG_CONFIG_HOME")
        .env_remove("AUTH_USERNAME")
        .env_remove("AUTH_PASSWORD")
        .env_remove("CLAUDE_BIN")
        .env_remove("ANTHROPIC_API_KEY")
        .env_remove("CLAUDE_CODE_OAUTH_TOKEN")
        .env_remove("CLAUDE_CONFIG_DIR")
        .env_remove("REMOTE_AGENT_CONFIG")
        .env("CLOUDFLARED_BIN", common::up::fake_cloudflared())
        .envs(envs.iter().map(|(k, v)| (k, v)))
        .output()
        .unwrap()
}

#[test]
fn doctor_honours_the_claude_flags_before_a_login_exists_and_says_up_creates_one() {
    let home = tempfile::tempdir().unwrap();
    let fake = common::fake_claude().display().to_string();
    let key = ("ANTHROPIC_API_KEY", "sk-ant-test".to_string());
    for (args, envs) in [
        (vec![format!("--claude-bin={fake}")], vec![key.clone()]),
        (vec![], vec![("CLAUDE_BIN", fake.clone()), key.clone()]),
    ] {
        let out = doctor(home.path(), home.path(), &args, &envs);
        let said = text(&out);
        assert!(
            said.contains("ok       claude 2.1.197 (Claude Code)"),
            "{said}"
        );
        assert!(
            !said.contains("CLAUDE_BIN\n") && !said.contains("not found"),
            "{said}"
        );
        assert!(
            said.contains("will be created by `remote-agent up`") && !said.contains("PROBLEM"),
            "{said}"
        );
        assert!(out.status.success(), "{said}");
        assert!(
            said.contains("claude is logged in (api_key, from ANTHROPIC_API_KEY)"),
            "{said}"
        );
    }
}

#[test]
fn doctor_fails_when_claude_is_not_logged_in() {
    let home = tempfile::tempdir().unwrap();
    let fake = common::fake_claude().display().to_string();
    let out = doctor(
        home.path(),
        home.path(),
        &[format!("--claude-bin={fake}")],
        &[],
    );
    let said = text(&out);
    assert!(!out.status.success(), "{said}");
    assert!(
        said.contains("PROBLEM  claude is not logged in") && said.contains("claude auth login"),
        "{said}"
    );
    assert!(!said.contains("all good"), "{said}");
    // A stored claude.ai login counts, as the real CLI reports it.
    std::fs::create_dir_all(home.path().join(".claude")).unwrap();
    std::fs::write(
        home.path().join(".claude/.credentials.json"),
        r#"{"claudeAiOauth":{"accessToken":"sk-ant-oat01-x","expiresAt":4102444800000}}"#,
    )
    .unwrap();
    let out = doctor(
        home.path(),
        home.path(),
        &[format!("--claude-bin={fake}")],
        &[],
    );
    let said = text(&out);
    assert!(said.contains("claude is logged in (claude.ai)"), "{said}");
    assert!(out.status.success(), "{said}");
}

#[test]
fn doctor_asks_the_real_cli_whether_it_is_logged_in() {
    let Some(real) = common::real_claude("doctor_asks_the_real_cli_whether_it_is_logged_in") else {
        return;
    };
    let home = tempfile::tempdir().unwrap();
    let bin = format!("--claude-bin={}", real.display());
    let said = text(&doctor(
        home.path(),
        home.path(),
        std::slice::from_ref(&bin),
        &[],
    ));
    assert!(said.contains("PROBLEM  claude is not logged in"), "{said}");
    let said = text(&doctor(
        home.path(),
        home.path(),
        &[bin],
        &[("ANTHROPIC_API_KEY", "sk-ant-test".into())],
    ));
    assert!(
        said.contains("claude is logged in (api_key, from ANTHROPIC_API_KEY)"),
        "{said}"
    );
}

#[test]
fn doctor_warns_about_an_ignored_dotenv_and_a_password_in_a_services_environment() {
    let home = tempfile::tempdir().unwrap();
    let fake = common::fake_claude().display().to_string();
    // Run from the project (the default project): its .env is ignored, and said so.
    let project = home.path().join("project");
    std::fs::create_dir(&project).unwrap();
    std::fs::write(project.join(".env"), "AUTH_PASSWORD=from-dotenv\nPORT=1\n").unwrap();
    let unit = home
        .path()
        .join(".config/systemd/user/remote-agent.service");
    std::fs::create_dir_all(unit.parent().unwrap()).unwrap();
    std::fs::write(
        &unit,
        "[Service]\nEnvironment=AUTH_PASSWORD=in-the-unit\nExecStart=/usr/bin/remote-agent up\n",
    )
    .unwrap();
    let out = doctor(
        home.path(),
        &project,
        &[format!("--claude-bin={fake}")],
        &[("ANTHROPIC_API_KEY", "sk-ant-test".into())],
    );
    let said = text(&out);
    assert!(
        said.contains("warning  ignoring") && said.contains("project/.env"),
        "{said}"
    );
    assert!(
        said.contains("remote-agent.service sets AUTH_PASSWORD")
            && said.contains("remote-agent passwd"),
        "{said}"
    );
    assert!(
        !said.contains("from-dotenv") && !said.contains("in-the-unit"),
        "{said}"
    );
}

#[test]
fn a_stored_mode_above_a_lowered_ceiling_does_not_reach_the_cli() {
    let root = tempfile::tempdir().unwrap();
    let project = root.path().join("project");
    std::fs::create_dir(&project).unwrap();
    let start = |mode: &str| {
        Serve::start(
            root.path(),
            root.path(),
            &[
                "--port=0".into(),
                format!("--permission-mode={mode}"),
                format!("--project={}", project.display()),
                format!("--data-dir={}", root.path().join("data").display()),
                format!("--claude-bin={}", common::fake_claude().display()),
            ],
            &[
                ("AUTH_USERNAME", USER.into()),
                ("AUTH_PASSWORD", PASSWORD.into()),
                ("FAKE_CLAUDE_RECORD", root.path().display().to_string()),
            ],
        )
    };
    let server = start("acceptEdits");
    let resp = server.send(
        "POST",
        "/api/conversations",
        &json!({"id": "c", "permission_mode": "acceptEdits"}),
    );
    assert_eq!(resp.status, 201, "{}", resp.text());
    drop(server);
    let server = start("plan");
    let resp = server.send(
        "POST",
        "/api/conversations/c/messages",
        &json!({"message": "hi"}),
    );
    assert_eq!(resp.status, 202, "{}", resp.text());
    let turn = resp.json()["turn_id"].as_str().unwrap().to_string();
    let ended = wait_for("the turn to end", 20, || {
        let t = server
            .send("GET", &format!("/api/turns/{turn}"), &json!({}))
            .json();
        (t["status"] != "running" && t["status"] != "queued").then_some(t)
    });
    assert_eq!(ended["status"], "failed", "{ended}");
    assert!(
        ended["error"]
            .as_str()
            .is_some_and(|e| e.contains("allowed_permission_modes")),
        "{ended}"
    );
    let ran = std::fs::read_dir(root.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .any(|e| e.file_name().to_string_lossy().ends_with(".argv.json"));
    assert!(!ran, "claude ran with a mode above the ceiling");
}
