//! Issue 11's console items: pairing tokens never reach a log, what `up` prints on a terminal and under a service,
//! the subcommands' flags, `status`'s wording and `import`'s project.

mod common;

use std::process::{Command, Output, Stdio};

use common::up::Up;
use common::{PASSWORD, Server, USER, basic, unsafe_kill, wait_for};
use serde_json::json;

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Runs a subcommand of the server's and returns its output.
fn run(server: &Server, args: &[&str]) -> Output {
    server
        .subcommand(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// A fresh pairing link's path (`/pair/TOKEN`) for this server.
fn pairing_path(server: &Server) -> String {
    let out = run(server, &["pair", "--quiet", "--base", "http://x"]);
    assert!(out.status.success(), "{}", text(&out));
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .strip_prefix("http://x")
        .unwrap()
        .to_string()
}

#[test]
fn pairing_tokens_are_redacted_in_serves_log() {
    let server = Server::start();
    let path = pairing_path(&server);
    let token = path.strip_prefix("/pair/").unwrap().to_string();
    assert_eq!(server.request("GET", &path, &[], b"").status, 200);
    // The same token spelled the other ways the router accepts: doubled slashes, a %-escaped letter.
    let escaped = format!("/%70air/{token}");
    assert_eq!(server.request("GET", &escaped, &[], b"").status, 200);
    assert_eq!(
        server
            .request("GET", &format!("//pair/{token}"), &[], b"")
            .status,
        200
    );
    // Spellings the router does not take still carry a live token (a mistyped link).
    for other in [format!("/PAIR/{token}"), format!("/x/../pair/{token}")] {
        server.request("GET", &other, &[], b"");
    }
    let base = format!("http://{}", server.addr);
    let signed = server.request("POST", &path, &[("Origin", &base)], b"");
    assert_eq!(signed.status, 303);
    // A marker request after them: once it is logged, theirs are too.
    server.request("GET", "/api/marker-after-pairing", &[], b"");
    server.wait_log("/api/marker-after-pairing", 10);
    let log = server.log();
    assert!(!log.contains(&token), "the token is in the log:\n{log}");
    assert!(
        log.matches("/pair/[redacted]").count() >= 6,
        "the pairing requests are logged, redacted:\n{log}"
    );
}

#[test]
fn the_spent_pairing_page_names_the_command_without_markdown() {
    let server = Server::start();
    let page = server.request(
        "GET",
        "/pair/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        &[],
        b"",
    );
    assert_eq!(page.status, 410);
    let html = page.text();
    assert!(!html.contains('`'), "{html}");
    assert!(html.contains("<code>remote-agent pair</code>"), "{html}");
}

/// The lines of `out` that are part of a QR code drawn with half blocks.
fn qr_lines(out: &str) -> usize {
    out.lines()
        .filter(|l| l.chars().count() > 20 && l.chars().all(|c| "█▀▄ ".contains(c)))
        .count()
}

fn first_url(line: &str) -> String {
    line.split_whitespace()
        .find(|w| w.starts_with("https://") || w.starts_with("http://"))
        .unwrap_or_else(|| panic!("no URL in {line:?}"))
        .to_string()
}

#[test]
fn on_a_terminal_up_prints_one_qr_code_that_of_the_pairing_link() {
    let up = Up::builder().tty().start();
    let public = first_url(&up.wait_line("public:", 0, 20));
    assert!(public.ends_with(".trycloudflare.com"), "{public}");
    let link = first_url(&up.wait_line("sign in a phone at once", 0, 20));
    let token_path = link
        .strip_prefix(&public)
        .filter(|p| p.starts_with("/pair/"))
        .unwrap_or_else(|| panic!("{link} is not a pairing link on {public}"))
        .to_string();
    let code = remote_agent::account::qr(&link);
    wait_for("the pairing link's QR code", 20, || {
        up.output().contains(&code).then_some(())
    });
    up.wait_line("tunnel connected", 0, 20);
    let out = up.output();
    // One QR code: the link's. The bare URL (a password form) is text only.
    assert!(
        !out.contains(&remote_agent::account::qr(&public)),
        "a QR code of the bare URL:\n{out}"
    );
    assert_eq!(qr_lines(&out), code.lines().count(), "{out}");
    // A quick tunnel's address does not last.
    assert!(
        out.contains("changes whenever the tunnel restarts") && out.contains("named tunnel keeps"),
        "{out}"
    );
    // The link is one serve knows.
    let page = common::raw_request(
        up.local(),
        format!("GET {token_path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            .as_bytes(),
    );
    assert_eq!(page.status, 200, "{}", page.text());
}

#[test]
fn on_a_terminal_without_a_tunnel_a_loopback_address_gets_advice_not_a_qr_code() {
    let up = Up::builder().tty().arg("--no-tunnel").start();
    up.wait_line("local:", 0, 20);
    let advice = up.wait_line("phone:", 0, 20);
    assert!(
        advice.contains("cannot open 127.0.0.1")
            && advice.contains("--host")
            && advice.contains("Tailscale")
            && advice.contains("cloudflared"),
        "{advice}"
    );
    let out = up.output();
    assert_eq!(qr_lines(&out), 0, "{out}");
    assert!(!out.contains("/pair/"), "{out}");
}

#[test]
fn under_a_service_up_prints_no_pairing_link_and_says_how_to_get_one() {
    // Pipes, as under systemd or launchd: the output lands in a log.
    let up = Up::builder().start();
    let public = first_url(&up.wait_line("public:", 0, 20));
    let hint = up.wait_line("remote-agent pair", 0, 20);
    assert!(hint.contains("in a terminal"), "{hint}");
    up.wait_line("tunnel connected", 0, 20);
    // serve has answered the tunnel's probe: its log has what it is going to have of start-up.
    assert_eq!(up.health(), Some(200));
    let out = up.output();
    assert!(out.contains(&public));
    assert!(
        !out.contains("/pair/"),
        "a pairing link was printed:\n{out}"
    );
    assert_eq!(qr_lines(&out), 0, "{out}");
    for log in ["serve.log", "cloudflared.log"] {
        let text = std::fs::read_to_string(up.root.path().join("state").join(log)).unwrap();
        assert!(!text.contains("/pair/"), "{log}:\n{text}");
    }
}

#[test]
fn commands_that_run_no_server_take_only_the_flags_they_use() {
    let server = Server::start();
    for (command, used) in [
        ("status", &["--data-dir", "--state-dir"][..]),
        ("pair", &["--data-dir", "--state-dir", "--base"][..]),
        ("passwd", &["--config", "--data-dir", "--state-dir"][..]),
        ("import", &["--config", "--data-dir", "--project"][..]),
        ("logout", &["--data-dir", "--all"][..]),
    ] {
        let help = run(&server, &[command, "--help"]);
        let help = text(&help);
        for flag in used {
            assert!(
                help.contains(flag),
                "{command} --help lacks {flag}:\n{help}"
            );
        }
        for ignored in [
            "--host",
            "--port",
            "--claude-bin",
            "--turn-timeout",
            "--max-concurrent-turns",
            "--permission-mode",
            "--allowed-tools",
            "--sse-keepalive",
        ] {
            assert!(
                !help.contains(ignored),
                "{command} --help lists {ignored}, which it ignores:\n{help}"
            );
        }
        // Given anyway, such a flag is an error, not silently dropped.
        let out = Command::new(common::bin())
            .args([command, "--port", "1"])
            .output()
            .unwrap();
        assert!(!out.status.success(), "{command} --port: {}", text(&out));
        assert!(text(&out).contains("--port"), "{}", text(&out));
    }
}

#[test]
fn status_says_how_a_child_last_exited_in_words() {
    let up = Up::builder().arg("--no-tunnel").start();
    up.wait_line("local:", 0, 20);
    let pid = up.child_pid("serve");
    unsafe_kill(pid, 9);
    wait_for("serve to be restarted", 20, || {
        (up.child_pid("serve") != pid).then_some(())
    });
    let out = Command::new(common::bin())
        .args(["status", "--state-dir"])
        .arg(up.root.path().join("state"))
        .output()
        .unwrap();
    let said = text(&out);
    assert!(out.status.success(), "{said}");
    assert!(
        said.contains("last exit: killed by signal 9 (SIGKILL)"),
        "{said}"
    );
    assert!(!said.contains("exit exit"), "{said}");
}

#[test]
fn import_attaches_to_the_running_ups_project_not_the_current_directory() {
    let up = Up::builder().arg("--no-tunnel").start();
    let addr = up.local();
    let root = up.root.path();
    let elsewhere = root.join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    let file = root.join("sessions.json");
    std::fs::write(&file, r#"{"old": {"turn_count": 2, "last_message": "hi"}}"#).unwrap();
    // Run from another directory, with no project configured: as after `service install --project …`.
    let out = Command::new(common::bin())
        .arg("import")
        .arg(&file)
        .arg("--data-dir")
        .arg(root.join("data"))
        .arg("--state-dir")
        .arg(root.join("state"))
        .current_dir(&elsewhere)
        .env("HOME", root.join("home"))
        .env("AUTH_USERNAME", USER)
        .env("AUTH_PASSWORD", PASSWORD)
        .env_remove("CLAUDE_PROJECT_PATH")
        .env_remove("REMOTE_AGENT_CONFIG")
        .output()
        .unwrap();
    let said = text(&out);
    assert!(out.status.success(), "{said}");
    let project = root.join("project").canonicalize().unwrap();
    assert!(
        said.contains(&format!("to run in {}", project.display())),
        "{said}"
    );
    assert!(!said.contains("warning"), "{said}");
    // A message in it runs Claude.
    let auth = basic(USER, PASSWORD);
    let body = json!({"message": "go on", "conv_id": "old"}).to_string();
    let resp = common::raw_request(
        addr,
        format!(
            "POST /api/chat HTTP/1.1\r\nHost: localhost\r\nAuthorization: {auth}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    )
    .json();
    assert_eq!(resp["success"], true, "{resp}");
}

#[test]
fn import_warns_of_a_project_no_server_may_allow_and_failed_starts_are_not_turns() {
    let server = Server::start();
    let file = server.path("sessions.json");
    std::fs::write(&file, r#"{"stray": {"turn_count": 1}}"#).unwrap();
    // No project configured and no `up` running: the current directory, said to be a guess.
    let out = run(&server, &["import", &file.display().to_string()]);
    let said = text(&out);
    assert!(out.status.success(), "{said}");
    assert!(
        said.contains("warning: no project is configured") && said.contains("--project"),
        "{said}"
    );
    // That directory is not the server's project: the message fails before Claude starts, and is no turn.
    let r = server
        .chat(&json!({"message": "run here?", "conv_id": "stray"}))
        .json();
    assert_eq!(r["success"], false, "{r}");
    assert!(
        r["error"]
            .as_str()
            .unwrap()
            .contains("not an allowed project"),
        "{r}"
    );
    let sessions = server.authed("GET", "/api/sessions", b"").json();
    assert_eq!(sessions["stray"]["turn_count"], 1, "{sessions}");
    // A message that runs still counts.
    let ok = server.chat(&json!({"message": "here"})).json();
    assert_eq!(ok["success"], true, "{ok}");
    let sessions = server.authed("GET", "/api/sessions", b"").json();
    assert_eq!(sessions["default"]["turn_count"], 1, "{sessions}");
}

fn repo_file(path: &str) -> String {
    std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(path))
        .unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn the_readmes_token_step_creates_the_file_private_from_the_start() {
    let line = repo_file("terraform/README.md")
        .lines()
        .find(|l| l.contains("tunnel_token >"))
        .expect("terraform/README.md writes the tunnel token")
        .to_string();
    // A stand-in for terraform that notes the mode of the file its output goes to, while it writes it.
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    let fake = bin.join("terraform");
    std::fs::write(
        &fake,
        "#!/bin/sh\nstat -L -c %a /proc/$$/fd/1 > \"$MODE_SEEN\"\nprintf 'the-tunnel-token'\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    let seen = dir.path().join("mode-seen");
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    // A usual umask, under which a plain redirect makes a file others can read.
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!("umask 022; {line}"))
        .current_dir(dir.path())
        .env("PATH", path)
        .env("MODE_SEEN", &seen)
        .output()
        .unwrap();
    assert!(out.status.success(), "{line}: {}", text(&out));
    let token = dir.path().join("tunnel-token");
    assert_eq!(std::fs::read_to_string(&token).unwrap(), "the-tunnel-token");
    let mode = std::fs::read_to_string(&seen).unwrap();
    assert_eq!(
        mode.trim(),
        "600",
        "the token was written to a {mode} file: {line}"
    );
    assert_eq!(
        std::fs::metadata(&token).unwrap().permissions().mode() & 0o777,
        0o600
    );
}

#[test]
fn terraform_offers_cloudflare_access_off_by_default() {
    let access = repo_file("terraform/access.tf");
    let variables = repo_file("terraform/variables.tf");
    // Every Access resource exists only when asked for, so that with it off the module is the tunnel alone.
    let resources: Vec<&str> = access.split("\nresource ").skip(1).collect();
    for kind in [
        "cloudflare_zero_trust_access_identity_provider",
        "cloudflare_zero_trust_access_policy",
        "cloudflare_zero_trust_access_application",
    ] {
        assert!(
            resources.iter().any(|r| r.contains(kind)),
            "access.tf has no {kind}"
        );
    }
    for r in &resources {
        let body = r.split_once('{').unwrap().1;
        let first = body.lines().map(str::trim).find(|l| !l.is_empty()).unwrap();
        assert!(
            first.starts_with("count = var.access_enabled"),
            "not optional: resource {r}"
        );
    }
    assert!(access.contains("\"onetimepin\""), "{access}");
    assert!(access.contains("email = { email = email }"), "{access}");
    let enabled = variables
        .split("variable \"access_enabled\"")
        .nth(1)
        .expect("variable access_enabled")
        .split("\nvariable ")
        .next()
        .unwrap();
    assert!(
        enabled.contains("type        = bool") && enabled.contains("default     = false"),
        "{enabled}"
    );
    assert!(variables.contains("variable \"access_emails\""));
    // The docs say what Access gates besides the app.
    let readme = repo_file("terraform/README.md");
    assert!(
        readme.contains("pairing link") && readme.contains("not a browser"),
        "{readme}"
    );
    // Terraform's own parser, where it is installed.
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("terraform");
    match Command::new("terraform")
        .args(["fmt", "-check", "-recursive"])
        .arg(&dir)
        .output()
    {
        Ok(out) => assert!(out.status.success(), "terraform fmt: {}", text(&out)),
        Err(_) => common::skip(
            "terraform_offers_cloudflare_access_off_by_default",
            "no terraform on PATH: its parse is not checked here (.ci/run checks it)",
        ),
    }
}

#[test]
fn pairing_tokens_cloudflared_logs_are_redacted_in_its_log_file() {
    // cloudflared logs the URL of a request its origin did not answer, such as a pairing link opened while serve
    // restarts.
    let up = Up::builder()
        .env(
            "FAKE_CLOUDFLARED_FAILED_PATH",
            "/pair/Secret-Token_0123456789",
        )
        .start();
    up.wait_line("tunnel connected", 0, 20);
    let log = up.root.path().join("state/cloudflared.log");
    let text = wait_for("cloudflared's failed request in its log", 20, || {
        let text = std::fs::read_to_string(&log).ok()?;
        text.contains("Request failed").then_some(text)
    });
    assert!(!text.contains("Secret-Token"), "{text}");
    assert!(text.contains("/pair/[redacted]"), "{text}");
}

#[test]
fn a_first_up_with_a_config_path_that_does_not_exist_yet_creates_it_with_the_login() {
    // The README's "try it" commands name a config file in a fresh temp dir.
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    let up = Up::builder()
        .arg("--no-tunnel")
        .without_credentials()
        .arg(format!("--config={}", config.display()))
        .start();
    up.wait_line("First run", 0, 20);
    let user = up.wait_line("user:", 0, 20);
    let user = user.split_whitespace().last().unwrap().to_string();
    let password = up.wait_line("password:", 0, 20);
    let password = password.split_whitespace().last().unwrap().to_string();
    assert!(
        std::fs::read_to_string(&config)
            .unwrap()
            .contains("$argon2id$")
    );
    let auth = basic(&user, &password);
    let resp = common::raw_request(
        up.local(),
        format!("GET /api/sessions HTTP/1.1\r\nHost: localhost\r\nAuthorization: {auth}\r\nConnection: close\r\n\r\n")
            .as_bytes(),
    );
    assert_eq!(resp.status, 200, "{}", resp.text());
}

#[test]
fn serve_names_a_config_file_that_does_not_exist() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(common::bin())
        .args(["serve", "--port", "0", "--config"])
        .arg(dir.path().join("typo.toml"))
        .env("AUTH_USERNAME", USER)
        .env("AUTH_PASSWORD", PASSWORD)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(
        text.contains("typo.toml") && text.contains("does not exist"),
        "{text}"
    );
}

#[test]
fn pair_refuses_a_base_that_is_no_address_before_spending_a_token() {
    let server = Server::start();
    let out = server
        .subcommand(&["pair", "--base", "not a url"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("--base"), "{text}");
    assert!(!String::from_utf8_lossy(&out.stdout).contains("/pair/"));
}

#[test]
fn up_on_a_port_in_use_says_so_at_once_instead_of_restarting_serve() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let root = tempfile::tempdir().unwrap();
    let out = Command::new(common::bin())
        .args(["up", "--no-tunnel", "--host", "127.0.0.1", "--port", &port])
        .arg("--data-dir")
        .arg(root.path().join("data"))
        .arg("--state-dir")
        .arg(root.path().join("state"))
        .arg("--project")
        .arg(root.path())
        .env("HOME", root.path())
        .env("AUTH_USERNAME", USER)
        .env("AUTH_PASSWORD", PASSWORD)
        .env("CLAUDE_BIN", common::fake_claude())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Before the fix, up restarted serve forever: never wait for it unbounded.
    let mut up = out;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let status = loop {
        if let Some(status) = up.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            common::terminate(&mut up, std::time::Duration::from_secs(10));
            panic!("up kept running on a port in use");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let out = up.wait_with_output().unwrap();
    assert!(!status.success());
    let text = text(&out);
    assert!(
        text.contains("already in use") && text.contains("--port"),
        "{text}"
    );
    assert!(!text.contains("keeps failing"), "{text}");
    drop(taken);
}
