//! Operations: the service units (checked by real tools where they exist), installing and removing them against a
//! temp home with the service manager stubbed (`--dry-run`).

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::{PASSWORD, USER};

/// `remote-agent ARGS` with a temp home, credentials, and a project dir.
fn run(home: &Path, args: &[&str]) -> Output {
    run_in(home, &home.join("project"), args)
}

/// Runs the binary with this HOME from `dir`, its login in HOME's config file (where a service can read it).
fn run_in(home: &Path, dir: &Path, args: &[&str]) -> Output {
    std::fs::create_dir_all(dir).unwrap();
    let config = home.join(".config/remote-agent/config.toml");
    if !config.exists() {
        std::fs::create_dir_all(config.parent().unwrap()).unwrap();
        std::fs::write(
            &config,
            format!("[auth]\nusername = \"{USER}\"\npassword = \"{PASSWORD}\"\n"),
        )
        .unwrap();
    }
    Command::new(common::bin())
        .args(args)
        .current_dir(dir)
        .env("HOME", home)
        .env_remove("XDG_CONFIG_HOME")
        .env_remove("AUTH_USERNAME")
        .env_remove("AUTH_PASSWORD")
        .env_remove("REMOTE_AGENT_CONFIG")
        .output()
        .unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn the_systemd_unit_passes_systemd_analyze() {
    let home = tempfile::tempdir().unwrap();
    // A project path with a space (and a %) must survive systemd's own quoting rules.
    let out = run_in(
        home.path(),
        &home.path().join("my 100% project"),
        &["service", "print", "systemd", "--port", "8123"],
    );
    assert!(out.status.success(), "{}", text(&out));
    let unit = String::from_utf8(out.stdout).unwrap();
    assert!(
        unit.contains("my 100%% project\n"),
        "WorkingDirectory= takes the path as it is, % doubled: {unit}"
    );
    assert!(
        unit.contains("up") && unit.contains("--port=8123") && unit.contains("--project="),
        "{unit}"
    );
    assert!(!unit.contains(PASSWORD), "a secret in the unit");
    assert!(unit.contains("Environment=PATH=") && unit.contains("Restart=on-failure"));
    let Ok(analyze) = which("systemd-analyze") else {
        common::skip("ops::systemd-analyze", "systemd-analyze is not installed");
        return;
    };
    let file = home.path().join("remote-agent.service");
    std::fs::write(&file, &unit).unwrap();
    // A user manager needs a runtime dir; a private one will do.
    let runtime = home.path().join("runtime");
    std::fs::create_dir(&runtime).unwrap();
    let verify = Command::new(analyze)
        .args(["verify", "--user"])
        .arg(&file)
        .env("XDG_RUNTIME_DIR", &runtime)
        .output()
        .unwrap();
    let said = text(&verify);
    assert!(verify.status.success(), "systemd-analyze verify: {said}");
    assert!(
        !said.contains("remote-agent.service:"),
        "systemd-analyze found fault: {said}"
    );
}

#[test]
fn the_launchd_plist_parses_with_the_keys_launchd_needs() {
    let home = tempfile::tempdir().unwrap();
    let out = run(home.path(), &["service", "print", "launchd"]);
    assert!(out.status.success(), "{}", text(&out));
    let file = home.path().join("agent.plist");
    std::fs::write(&file, &out.stdout).unwrap();
    let Ok(python) = which("python3") else {
        common::skip("ops::plist", "python3 is not installed");
        return;
    };
    let script =
        "import json, plistlib, sys; print(json.dumps(plistlib.load(open(sys.argv[1], 'rb'))))";
    let parsed = Command::new(python)
        .args(["-c", script])
        .arg(&file)
        .output()
        .unwrap();
    assert!(parsed.status.success(), "not a plist: {}", text(&parsed));
    let plist: serde_json::Value = serde_json::from_slice(&parsed.stdout).unwrap();
    assert_eq!(plist["Label"], "com.remote-agent.up");
    let args: Vec<&str> = plist["ProgramArguments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(args[0], common::bin().display().to_string());
    assert_eq!(args[1], "up");
    assert!(args.iter().any(|a| a.starts_with("--project=")), "{args:?}");
    assert_eq!(plist["RunAtLoad"], true);
    assert_eq!(plist["KeepAlive"]["SuccessfulExit"], false);
    assert!(
        plist["EnvironmentVariables"]["PATH"]
            .as_str()
            .unwrap()
            .contains("/usr/bin")
    );
    assert!(
        plist["WorkingDirectory"]
            .as_str()
            .unwrap()
            .ends_with("project")
    );
}

#[test]
fn install_and_uninstall_write_and_remove_the_unit() {
    let home = tempfile::tempdir().unwrap();
    let unit = home
        .path()
        .join(".config/systemd/user/remote-agent.service");
    let out = run(
        home.path(),
        &["service", "install", "--manager", "systemd", "--dry-run"],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(unit.exists());
    assert!(text(&out).contains("would run: systemctl --user enable --now remote-agent.service"));
    let project = home.path().join("project").display().to_string();
    assert!(
        text(&out).contains(&format!("with Claude working in {project}")),
        "{}",
        text(&out)
    );
    assert!(!text(&out).contains("warning"), "{}", text(&out));
    // Installed from the home directory without --project: it says what that means.
    let broad = run_in(
        home.path(),
        home.path(),
        &["service", "install", "--manager", "systemd", "--dry-run"],
    );
    assert!(broad.status.success(), "{}", text(&broad));
    assert!(
        text(&broad).contains("your home directory"),
        "{}",
        text(&broad)
    );
    assert!(text(&broad).contains("--project DIR"), "{}", text(&broad));
    let out = run(
        home.path(),
        &["service", "install", "--manager", "systemd", "--dry-run"],
    );
    assert!(out.status.success(), "{}", text(&out));
    let status = run(
        home.path(),
        &["service", "status", "--manager", "systemd", "--dry-run"],
    );
    assert!(text(&status).contains("installed:"), "{}", text(&status));
    let out = run(
        home.path(),
        &["service", "uninstall", "--manager", "systemd", "--dry-run"],
    );
    assert!(
        out.status.success() && text(&out).contains("uninstalled"),
        "{}",
        text(&out)
    );
    assert!(!unit.exists());
    let status = run(
        home.path(),
        &["service", "status", "--manager", "systemd", "--dry-run"],
    );
    assert!(text(&status).contains("not installed"));

    let plist = home
        .path()
        .join("Library/LaunchAgents/com.remote-agent.up.plist");
    let out = run(
        home.path(),
        &["service", "install", "--manager", "launchd", "--dry-run"],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(plist.exists());
    assert!(text(&out).contains("would run: launchctl bootstrap gui/"));
}

#[test]
fn a_service_is_not_installed_without_a_password() {
    let home = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(home.path().join("project")).unwrap();
    let out = Command::new(common::bin())
        .args(["service", "install", "--dry-run"])
        .current_dir(home.path().join("project"))
        .env("HOME", home.path())
        .env_remove("AUTH_USERNAME")
        .env_remove("AUTH_PASSWORD")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(text(&out).contains("remote-agent passwd"), "{}", text(&out));
    // A login only in this shell's environment is refused too: the service would not see it.
    let out = Command::new(common::bin())
        .args(["service", "install", "--dry-run"])
        .current_dir(home.path().join("project"))
        .env("HOME", home.path())
        .env_remove("XDG_CONFIG_HOME")
        .env("AUTH_USERNAME", USER)
        .env("AUTH_PASSWORD", PASSWORD)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(text(&out).contains("will not see"), "{}", text(&out));
    assert!(!home.path().join(".config/systemd").exists());
}

#[test]
fn settings_from_the_environment_reach_the_unit() {
    let home = tempfile::tempdir().unwrap();
    let project = home.path().join("project");
    run(home.path(), &["service", "print", "systemd"]); // writes the config file with the login
    // A .env counts where the command is run by hand outside the project (one inside it is never read).
    std::fs::write(home.path().join(".env"), "REMOTE_AGENT_TURN_TIMEOUT=123\n").unwrap();
    let out = Command::new(common::bin())
        .args(["service", "print", "systemd", "--project"])
        .arg(&project)
        .current_dir(home.path())
        .env("HOME", home.path())
        .env_remove("XDG_CONFIG_HOME")
        .env_remove("AUTH_USERNAME")
        .env_remove("AUTH_PASSWORD")
        .env("PORT", "9123")
        .output()
        .unwrap();
    let unit = text(&out);
    assert!(out.status.success(), "{unit}");
    assert!(unit.contains("--port=9123"), "{unit}");
    assert!(unit.contains("--turn-timeout=123"), "{unit}");
    assert!(!unit.contains(PASSWORD), "{unit}");
}

fn which(name: &str) -> Result<std::path::PathBuf, ()> {
    std::env::split_paths(&std::env::var_os("PATH").ok_or(())?)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .ok_or(())
}

fn doctor(home: &Path, extra_env: &[(&str, &str)]) -> Output {
    let project = home.join("project");
    std::fs::create_dir_all(&project).unwrap();
    Command::new(common::bin())
        .args(["doctor", "--port", "0", "--data-dir"])
        .arg(home.join("data"))
        .current_dir(&project)
        .env("HOME", home)
        .env("AUTH_USERNAME", USER)
        .env("AUTH_PASSWORD", PASSWORD)
        .env("CLAUDE_BIN", common::fake_claude())
        .env("CLOUDFLARED_BIN", common::up::fake_cloudflared())
        // Claude logged in (doctor asks it with `claude auth status`).
        .env("ANTHROPIC_API_KEY", "sk-ant-test")
        .env_remove("REMOTE_AGENT_CONFIG")
        .envs(extra_env.iter().copied())
        .output()
        .unwrap()
}

#[test]
fn doctor_passes_a_good_setup() {
    // A server that ran and stopped leaves its data dir and database: doctor checks those.
    let mut server = common::Server::start();
    assert_eq!(
        server.chat(&serde_json::json!({"message": "hi"})).status,
        200
    );
    server.stop(15);
    let out = doctor(server.root.path(), &[]);
    let said = text(&out);
    assert!(out.status.success(), "{said}");
    assert!(said.contains("claude 2.1.197 (Claude Code)"), "{said}");
    assert!(said.contains("cloudflared cloudflared version"), "{said}");
    assert!(
        said.contains("passes its integrity check") && said.contains("is private (0700)"),
        "{said}"
    );
    assert!(said.contains("all good"));
}

#[test]
fn doctor_names_each_problem_with_its_fix() {
    use std::os::unix::fs::PermissionsExt;
    let home = tempfile::tempdir().unwrap();
    let data = home.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    let db = data.join("remote-agent.db");
    std::fs::write(&db, b"this is not a database, it was damaged").unwrap();
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = doctor(home.path(), &[("CLAUDE_BIN", "/nonexistent/claude")]);
    let said = text(&out);
    assert!(!out.status.success(), "{said}");
    for expected in [
        "PROBLEM  claude not found",
        "npm install -g @anthropic-ai/claude-code",
        "is 755",
        "chmod 700",
        "is 644",
        "chmod 600",
        "is damaged",
    ] {
        assert!(said.contains(expected), "missing {expected:?} in:\n{said}");
    }
    // Without credentials, that is a problem too.
    let bare = tempfile::tempdir().unwrap();
    let out = Command::new(common::bin())
        .arg("doctor")
        .current_dir(bare.path())
        .env("HOME", bare.path())
        .env_remove("AUTH_USERNAME")
        .env_remove("AUTH_PASSWORD")
        .env("CLAUDE_BIN", common::fake_claude())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(text(&out).contains("remote-agent passwd"), "{}", text(&out));
}

const PROTOTYPE_SESSIONS: &str = r#"{
  "default": {"session_id": "6e656139-0d4e-4a3c-9a57-3c1b0e4f7d21", "created_at": "2026-10-01T09:00:00.123456",
              "last_message_at": "2026-10-02T18:30:00.5Z", "turn_count": 7, "last_message": "fix the tests",
              "total_cost_usd": 0.25},
  "side-project": {"session_id": null, "created_at": "2026-10-03T10:00:00Z", "last_message_at": null,
                   "turn_count": 0, "last_message": null}
}"#;

#[test]
fn the_prototypes_sessions_are_imported_and_resumed() {
    let server = common::Server::builder().start();
    let file = server.path("sessions.json");
    std::fs::write(&file, PROTOTYPE_SESSIONS).unwrap();
    let run_import = |file: &Path| {
        let project = server.path("project");
        server
            .subcommand(&[
                "import",
                &file.display().to_string(),
                "--project",
                &project.display().to_string(),
            ])
            .output()
            .unwrap()
    };
    let out = run_import(&file);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("imported 2 of 2"), "{}", text(&out));
    let sessions = server.authed("GET", "/api/sessions", b"").json();
    let d = &sessions["default"];
    assert_eq!(d["session_id"], "6e656139-0d4e-4a3c-9a57-3c1b0e4f7d21");
    assert_eq!(d["turn_count"], 7);
    assert_eq!(d["last_message"], "fix the tests");
    assert_eq!(d["total_cost_usd"], 0.25);
    assert_eq!(d["created_at"], "2026-10-01T09:00:00.123456");
    assert_eq!(sessions["side-project"]["turn_count"], 0);
    // The next message resumes the imported Claude session.
    server.chat(&serde_json::json!({"message": "go on"}));
    let (_, argv) = server.recorded_runs().pop().unwrap();
    let i = argv.iter().position(|a| a == "--resume").expect("--resume");
    assert_eq!(argv[i + 1], "6e656139-0d4e-4a3c-9a57-3c1b0e4f7d21");
    // Its name stays what the prototype knew it by, not the message sent since.
    let list = server.authed("GET", "/api/conversations", b"").json();
    let default = list["conversations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "default")
        .unwrap()
        .clone();
    assert_eq!(default["first_message"], "fix the tests");
    assert_eq!(default["last_message"], "go on");
    // Again: nothing new.
    let again = run_import(&file);
    assert!(text(&again).contains("imported 0 of 2") && text(&again).contains("skipped"));

    // A malformed file: a clear error, nothing half-imported.
    for (bad, says) in [
        (
            r#"{"ok": {"turn_count": 1}, "bad": {"session_id": "--version"}}"#,
            "session_id is not a UUID",
        ),
        (r#"{"../x": {}}"#, "is not 1 to 64"),
        (r#"{"n": {"turn_count": -3}}"#, "turn_count is not a count"),
        (
            r#"{"n": {"total_cost_usd": "lots"}}"#,
            "total_cost_usd is not an amount",
        ),
        (r#"[1, 2]"#, "not a sessions.json"),
    ] {
        let f = server.path("bad.json");
        std::fs::write(&f, bad).unwrap();
        let out = run_import(&f);
        assert!(!out.status.success());
        assert!(text(&out).contains(says), "{bad}: {}", text(&out));
    }
    let sessions = server.authed("GET", "/api/sessions", b"").json();
    assert!(sessions.get("ok").is_none(), "half-imported");

    // A conversation whose project is not an allowed one (imported from elsewhere) never runs Claude there.
    let elsewhere = server.path("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    let f = server.path("other.json");
    std::fs::write(&f, r#"{"stray": {"turn_count": 1}}"#).unwrap();
    let out = server
        .subcommand(&[
            "import",
            &f.display().to_string(),
            "--project",
            &elsewhere.display().to_string(),
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let runs = server.recorded_runs().len();
    let r = server
        .chat(&serde_json::json!({"message": "run here?", "conv_id": "stray"}))
        .json();
    assert_eq!(r["success"], false, "{r}");
    assert!(
        r["error"]
            .as_str()
            .unwrap()
            .contains("not an allowed project"),
        "{r}"
    );
    assert_eq!(
        server.recorded_runs().len(),
        runs,
        "claude ran outside the allowed projects"
    );
}

/// Checks Prometheus text exposition: every sample line is `name{labels} value` with a number, and every family
/// has HELP and TYPE. Returns the samples.
fn parse_prometheus(text: &str) -> Vec<(String, f64)> {
    let mut typed = std::collections::HashSet::new();
    let mut samples = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut parts = rest.split_whitespace();
            typed.insert(parts.next().unwrap().to_string());
            assert!(
                matches!(parts.next(), Some("counter" | "gauge" | "histogram")),
                "{line}"
            );
            continue;
        }
        if line.starts_with("# HELP ") || line.is_empty() {
            continue;
        }
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("not a sample: {line}"));
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("not a number: {line}"));
        let name = series.split('{').next().unwrap();
        if series.contains('{') {
            assert!(series.ends_with('}'), "{line}");
        }
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s))
            .filter(|f| typed.contains(*f))
            .unwrap_or(name);
        assert!(typed.contains(family), "no TYPE for {name}");
        samples.push((series.to_string(), value));
    }
    samples
}

#[test]
fn metrics_parse_as_prometheus_text_and_their_counters_move() {
    let server = common::Server::start();
    let get = || {
        let resp = server.authed("GET", "/metrics", b"");
        assert_eq!(resp.status, 200);
        assert!(
            resp.header("content-type")
                .unwrap()
                .starts_with("text/plain")
        );
        parse_prometheus(&resp.text())
    };
    let value = |samples: &[(String, f64)], series: &str| {
        samples
            .iter()
            .find(|(s, _)| s == series)
            .map_or(0.0, |(_, v)| *v)
    };
    assert_eq!(
        server.request("GET", "/metrics", &[], b"").status,
        401,
        "metrics need credentials"
    );
    let before = get();
    let health = r#"remote_agent_requests_total{method="GET",route="/health",status="200"}"#;
    for _ in 0..3 {
        server.request("GET", "/health", &[], b"");
    }
    assert_eq!(
        server
            .chat(&serde_json::json!({"message": "count me"}))
            .status,
        200
    );
    let after = get();
    assert_eq!(value(&after, health) - value(&before, health), 3.0);
    // Turns that succeeded, and how many runs the duration histogram holds.
    let turns = |m: &[(String, f64)]| {
        (
            value(m, r#"remote_agent_turns_total{status="succeeded"}"#),
            value(m, "remote_agent_turn_duration_seconds_count"),
        )
    };
    assert_eq!(turns(&after), (1.0, 1.0));
    assert_eq!(
        value(
            &after,
            r#"remote_agent_turn_duration_seconds_bucket{le="+Inf"}"#
        ),
        1.0
    );
    // Counters only grow: deleting the conversation does not take its turn back.
    assert_eq!(
        server
            .authed("POST", "/api/reset", br#"{"conv_id": "default"}"#)
            .status,
        200
    );
    assert_eq!(turns(&get()), (1.0, 1.0));
    assert!(after.iter().any(|(s, _)| s == "remote_agent_turns_running"));
    assert!(
        after
            .iter()
            .any(|(s, _)| s == "remote_agent_sse_subscribers")
    );
    // Made-up methods and paths do not grow the label set.
    let n = after.len();
    for i in 0..20 {
        server.authed("GET", &format!("/api/nothing/{i}"), b"");
        server.request(&format!("X{i}"), "/api/sessions", &[], b"");
    }
    assert!(get().len() <= n + 3, "labels grew with made-up requests");
}

#[test]
fn a_changed_config_file_is_reloaded_and_a_broken_one_is_not() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        "[auth]\nusername = \"me\"\npassword = \"first-password\"\n",
    )
    .unwrap();
    let server = common::Server::builder()
        .arg("--config")
        .arg(config.display().to_string())
        .env("AUTH_USERNAME", "")
        .env("AUTH_PASSWORD", "")
        .start();
    let status = |password: &str| {
        let auth = common::basic("me", password);
        server
            .request("GET", "/api/sessions", &[("Authorization", &auth)], b"")
            .status
    };
    assert_eq!(status("first-password"), 200);
    // Saved the way editors do: a new file renamed over the old one. No signal is sent.
    let tmp = dir.path().join("config.toml.new");
    std::fs::write(
        &tmp,
        "[auth]\nusername = \"me\"\npassword = \"second-password\"\n",
    )
    .unwrap();
    std::fs::rename(&tmp, &config).unwrap();
    // Wait for the reload in the log, not by trying the new password: failed tries would lock us out.
    server.wait_log("settings reloaded", 10);
    assert_eq!(status("second-password"), 200);
    assert_eq!(status("first-password"), 401);
    std::fs::write(&config, "[auth\nthis is not TOML").unwrap();
    server.wait_log("settings not reloaded", 10);
    assert_eq!(
        status("second-password"),
        200,
        "a broken file keeps the settings in force"
    );
}
