//! `remote-agent up` with our fake cloudflared (tests/fake/cloudflared.rs) and fake claude: the URL printed, both
//! children restarted when they die or hang, backoff in a crash loop, clean stops, first-run credentials, a missing
//! cloudflared, named tunnels, one `up` per state dir, SIGHUP reload, and `serve` over HTTPS.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::up::{Up, UpBuilder, fake_cloudflared};
use common::{PASSWORD, USER, alive, basic, unsafe_kill, wait_for};
use serde_json::Value;

fn public_url(line: &str) -> String {
    line.split_whitespace()
        .find(|w| w.starts_with("https://"))
        .unwrap()
        .to_string()
}

#[test]
fn up_prints_the_urls_and_stops_cleanly() {
    let mut up = Up::builder().start();
    let public = public_url(&up.wait_line("public:", 0, 20));
    assert!(public.ends_with(".trycloudflare.com"), "{public}");
    up.wait_line("tunnel connected to the Cloudflare edge", 0, 20);
    let out = up.output();
    assert!(out.contains(&format!("user:    {USER}")), "{out}");
    assert!(!out.contains(PASSWORD), "the password was printed");
    // Its stdout is a pipe, as under a service: the pairing link and its QR code only go to a terminal
    // (tests/hardening_console.rs runs `up` on one); here it says how to get a link.
    up.wait_line("run `remote-agent pair`", 0, 20);
    // cloudflared was pointed at serve's tunnel listener, never a user's config, and the origin answered.
    let starts = up.starts();
    assert_eq!(starts.len(), 1);
    assert!(
        starts[0].contains("--no-autoupdate") && starts[0].contains("--config"),
        "{starts:?}"
    );
    // The fake probes the origin once it is connected: wait for its word rather than race it.
    let log = wait_for("cloudflared's origin check", 10, || {
        let log = std::fs::read_to_string(up.root.path().join("state/cloudflared.log")).ok()?;
        log.contains("origin answered").then_some(log)
    });
    assert!(log.contains("origin answered /health with 200"), "{log}");
    assert_eq!(up.health(), Some(200));
    let state = up.state();
    assert_eq!(state["tunnel"]["url"], public.as_str());
    assert_eq!(state["tunnel"]["ready"], true);
    // The server reports the tunnel too.
    let addr = up.local();
    let auth = basic(USER, PASSWORD);
    let status = common::raw_request(
        addr,
        format!("GET /api/status HTTP/1.1\r\nHost: localhost\r\nAuthorization: {auth}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .json();
    assert_eq!(status["tunnel"]["url"], public.as_str());
    let status = Command::new(common::bin())
        .args(["status", "--state-dir"])
        .arg(up.root.path().join("state"))
        .output()
        .unwrap();
    assert!(status.status.success());
    assert!(String::from_utf8_lossy(&status.stdout).contains(&public));

    // The state dir and everything in it are private.
    use std::os::unix::fs::PermissionsExt;
    let state = up.root.path().join("state");
    assert_eq!(
        std::fs::metadata(&state).unwrap().permissions().mode() & 0o777,
        0o700
    );
    for name in ["serve.log", "cloudflared.log", "state.json", "up.lock"] {
        let mode = std::fs::metadata(state.join(name))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600, "{name} is {mode:o}");
    }
    let (serve, cloudflared) = (up.child_pid("serve"), up.child_pid("cloudflared"));
    let exit = up.stop();
    assert!(exit.success(), "up exited with {exit}");
    assert!(!alive(serve) && !alive(cloudflared), "a child outlived up");
    let status = Command::new(common::bin())
        .args(["status", "--state-dir"])
        .arg(up.root.path().join("state"))
        .output()
        .unwrap();
    assert!(!status.status.success());
}

#[test]
fn a_killed_cloudflared_is_restarted_and_the_new_url_printed() {
    let up = Up::builder().start();
    let first = public_url(&up.wait_line("public:", 0, 20));
    let pid = up.child_pid("cloudflared");
    let seen = up.lines();
    unsafe_kill(pid, 9);
    let second = public_url(&up.wait_line("public:", seen, 20));
    assert_ne!(first, second);
    assert!(up.output().contains("cloudflared restarted"));
    assert_ne!(up.child_pid("cloudflared"), pid);
    assert_eq!(up.starts().len(), 2);
    assert_eq!(up.state()["children"]["cloudflared"]["restarts"], 1);
}

#[test]
fn a_new_public_url_is_shown_in_the_desktops_notifications() {
    // A stand-in `notify-send` first on PATH records what it was asked to show (only a change is shown: the first
    // URL goes to the terminal that started `up`).
    let bin = tempfile::tempdir().unwrap();
    let shown = bin.path().join("shown");
    let script = write(
        &bin.path().join("notify-send"),
        &format!(
            "#!/bin/sh\nprintf '%s\\n' \"$*\" >> '{}'\n",
            shown.display()
        ),
    );
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let path = format!(
        "{}:{}",
        bin.path().display(),
        std::env::var("PATH").unwrap()
    );
    let up = Up::builder().env("PATH", path).start();
    public_url(&up.wait_line("public:", 0, 20));
    let seen = up.lines();
    assert!(!shown.exists(), "the first URL is no change");
    unsafe_kill(up.child_pid("cloudflared"), 9);
    let second = public_url(&up.wait_line("public:", seen, 20));
    let text = wait_for("the notification", 10, || {
        std::fs::read_to_string(&shown).ok()
    });
    assert_eq!(text.trim(), format!("-- remote-agent {second}"));
}

#[test]
fn a_killed_serve_comes_back_on_the_same_address() {
    let up = Up::builder().start();
    up.wait_line("public:", 0, 20);
    let pid = up.child_pid("serve");
    let addr = up.local();
    unsafe_kill(pid, 9);
    wait_for("a new serve", 10, || {
        (up.child_pid("serve") != pid).then_some(())
    });
    wait_for("/health to answer again", 10, || {
        (up.health() == Some(200)).then_some(())
    });
    assert_eq!(up.local(), addr);
    // cloudflared kept running: the tunnel listener came back on the same port.
    assert_eq!(up.starts().len(), 1);
}

#[test]
fn a_hung_serve_is_restarted() {
    let up = Up::builder()
        .arg("--health-timeout")
        .arg("2")
        .arg("--no-tunnel")
        .start();
    up.wait_line("local:", 0, 20);
    let pid = up.child_pid("serve");
    unsafe_kill(pid, 19); // SIGSTOP
    up.wait_line("has not answered /health", 0, 20);
    wait_for("a new serve", 20, || {
        (up.child_pid("serve") != pid).then_some(())
    });
    wait_for("/health to answer again", 10, || {
        (up.health() == Some(200)).then_some(())
    });
    wait_for("the stopped serve to be gone", 10, || {
        (!alive(pid)).then_some(())
    });
}

#[test]
fn a_crash_loop_backs_off_and_says_so_while_serve_keeps_answering() {
    let up = Up::builder().env("FAKE_CLOUDFLARED_MODE", "crash").start();
    up.wait_line("keeps failing", 0, 20);
    // The last lines are shown under it (they may come a moment after it).
    up.wait_line("failed to request quick Tunnel", 0, 10);
    assert_eq!(up.health(), Some(200));
    // 0.5 + 1 + 2 + 4 s of backoff: within 6 s of the first start there are at most 5 starts.
    let started = Instant::now();
    std::thread::sleep(Duration::from_secs(6).saturating_sub(started.elapsed()));
    let starts = up.starts().len();
    assert!((3..=5).contains(&starts), "{starts} starts in ~6 s");
}

#[test]
fn cloudflareds_log_stays_bounded_across_runs() {
    // What earlier runs left counts: a log already past the limit is rotated at the next run's first lines.
    let root = tempfile::tempdir().unwrap();
    let state = root.path().join("state");
    std::fs::create_dir(&state).unwrap();
    std::fs::set_permissions(&state, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    let log = state.join("cloudflared.log");
    std::fs::write(&log, vec![b'x'; 4 * 1024 * 1024 + 1]).unwrap();
    let up = Up::builder().in_dir(root).start();
    up.wait_line("tunnel connected", 0, 20);
    // Rotation renames the log, then opens a new one: wait for both.
    let size = wait_for("the old log to be rotated", 10, || {
        let rotated = state.join("cloudflared.log.1").exists();
        rotated.then(|| std::fs::metadata(&log).ok()).flatten()
    })
    .len();
    assert!(size < 1024 * 1024, "cloudflared.log is {size} bytes");
}

#[test]
fn cloudflared_exiting_zero_is_restarted_too() {
    let up = Up::builder().env("FAKE_CLOUDFLARED_MODE", "exit0").start();
    wait_for("a restart", 20, || (up.starts().len() >= 2).then_some(()));
    assert!(up.output().contains("cloudflared exited"));
}

#[test]
fn a_tunnel_that_never_connects_is_reported() {
    let up = Up::builder()
        .env("FAKE_CLOUDFLARED_MODE", "never-ready")
        .start();
    up.wait_line("public:", 0, 20);
    up.wait_line("waiting for the Cloudflare edge", 0, 5);
    assert_eq!(up.state()["tunnel"]["ready"], false);
}

#[test]
fn without_cloudflared_up_says_how_to_install_it_and_serves_locally() {
    let up = Up::builder()
        .env("CLOUDFLARED_BIN", "/nonexistent/cloudflared")
        .start();
    up.wait_line("local:", 0, 20);
    let out = up.output();
    assert!(out.contains("cloudflared was not found"), "{out}");
    assert!(out.contains("brew install cloudflared"), "{out}");
    assert!(out.contains("Serving locally"), "{out}");
    assert_eq!(up.health(), Some(200));
    // `status` says there is no tunnel, and names no cloudflared.
    let status = Command::new(common::bin())
        .args(["status", "--state-dir"])
        .arg(up.root.path().join("state"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(status.status.success(), "{text}");
    assert!(text.contains("tunnel:  none (this computer"), "{text}");
    assert!(
        !text.contains("cloudflared") && !text.contains("null"),
        "{text}"
    );
    assert!(text.contains("serve: running (pid "), "{text}");
}

#[test]
fn the_first_run_creates_credentials_that_work() {
    let up = Up::builder()
        .arg("--no-tunnel")
        .without_credentials()
        .start();
    let user = up.wait_line("user:", 0, 20);
    let password = up.wait_line("password:", 0, 20);
    let user = user.split_whitespace().last().unwrap().to_string();
    let password = password.split_whitespace().last().unwrap().to_string();
    assert!(password.len() >= 20);
    let config = up.root.path().join("home/.config/remote-agent/config.toml");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&config).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "the config file must be private");
    let saved = std::fs::read_to_string(&config).unwrap();
    assert!(
        saved.contains("password_hash") && saved.contains("$argon2id$"),
        "{saved}"
    );
    assert!(
        !saved.contains(&password),
        "the password itself is never stored"
    );
    let addr = up.local();
    let auth = basic(&user, &password);
    let resp = common::raw_request(
        addr,
        format!("GET /api/sessions HTTP/1.1\r\nHost: localhost\r\nAuthorization: {auth}\r\nConnection: close\r\n\r\n").as_bytes(),
    );
    assert_eq!(resp.status, 200);
}

#[test]
fn a_second_up_on_the_same_state_dir_says_where_the_first_serves() {
    let up = Up::builder().arg("--no-tunnel").start();
    let local = up.wait_line("local:", 0, 20);
    let local = local.split_whitespace().last().unwrap().to_string();
    let out = Command::new(common::bin())
        .args(["up", "--no-tunnel", "--port", "0", "--state-dir"])
        .arg(up.root.path().join("state"))
        .arg("--data-dir")
        .arg(up.root.path().join("data2"))
        .current_dir(up.root.path())
        .env("HOME", up.root.path().join("home"))
        .env("AUTH_USERNAME", USER)
        .env("AUTH_PASSWORD", PASSWORD)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("already running") && err.contains(&local),
        "{err}"
    );
}

fn write(path: &Path, text: &str) -> PathBuf {
    std::fs::write(path, text).unwrap();
    path.to_path_buf()
}

#[test]
fn a_named_tunnel_runs_from_its_config_and_a_bad_config_is_refused() {
    let root = tempfile::tempdir().unwrap();
    let bad = write(
        &root.path().join("bad.yml"),
        "tunnel: t\ningress:\n  - hostname: agent.example.com\n    service: http://127.0.0.1:8000\n",
    );
    let out = Command::new(common::bin())
        .args([
            "up",
            "--tunnel",
            "named",
            "--tunnel-name",
            "agent",
            "--tunnel-config",
        ])
        .arg(&bad)
        .args(["--port", "0", "--state-dir"])
        .arg(root.path().join("state"))
        .arg("--data-dir")
        .arg(root.path().join("data"))
        .current_dir(root.path())
        .env("HOME", root.path())
        .env("AUTH_USERNAME", USER)
        .env("AUTH_PASSWORD", PASSWORD)
        .env("CLOUDFLARED_BIN", fake_cloudflared())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("is not valid") && err.contains("last ingress rule"),
        "{err}"
    );

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let good = write(
        &root.path().join("good.yml"),
        &format!(
            "tunnel: t\ningress:\n  - hostname: agent.example.com\n    service: http://127.0.0.1:{port}\n  - service: http_status:404\n"
        ),
    );
    let up = Up::builder()
        .in_dir(root)
        .args_named(&good)
        .arg("--tunnel-port")
        .arg(port.to_string())
        .start();
    let public = up.wait_line("public:", 0, 20);
    assert!(public.contains("https://agent.example.com"), "{public}");
    up.wait_line("tunnel connected", 0, 20);
    let starts = up.starts();
    // The config is checked first (`ingress validate`), then the tunnel runs by name.
    assert!(starts[0].contains("\"validate\""), "{starts:?}");
    assert!(
        starts[1].contains("\"run\"") && starts[1].contains("\"agent\""),
        "{starts:?}"
    );
    assert_eq!(up.state()["tunnel"]["kind"], "named");
    // cloudflared's ingress reaches serve's tunnel listener on the fixed port.
    let log = wait_for("the origin check", 10, || {
        let log = std::fs::read_to_string(up.root.path().join("state/cloudflared.log")).ok()?;
        log.contains("origin answered").then_some(log)
    });
    assert!(log.contains("origin answered /health with 200"), "{log}");
    assert!(!up.output().contains("does not point at"));
}

impl UpBuilder {
    fn args_named(self, config: &Path) -> Self {
        self.arg("--tunnel")
            .arg("named")
            .arg("--tunnel-name")
            .arg("agent")
            .arg("--tunnel-config")
            .arg(config.display().to_string())
    }
}

#[test]
fn sighup_reloads_serves_settings() {
    let root = tempfile::tempdir().unwrap();
    let config = write(
        &root.path().join("config.toml"),
        "[auth]\nusername = \"me\"\npassword = \"first-password\"\n",
    );
    let up = Up::builder()
        .in_dir(root)
        .without_credentials()
        .arg("--no-tunnel")
        .arg("--config")
        .arg(config.display().to_string())
        .start();
    let addr = up.local();
    let sessions = |password: &str| {
        let auth = basic("me", password);
        common::raw_request(
            addr,
            format!("GET /api/sessions HTTP/1.1\r\nHost: localhost\r\nAuthorization: {auth}\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .status
    };
    assert_eq!(sessions("first-password"), 200);
    write(
        &config,
        "[auth]\nusername = \"me\"\npassword = \"second-password\"\n",
    );
    unsafe_kill(up.pid(), 1);
    // Wait for the reload in serve's log, not by trying the new password: failed tries would lock us out.
    let serve_log = up.root.path().join("state/serve.log");
    wait_for("the reload", 10, || {
        let log = std::fs::read_to_string(&serve_log).ok()?;
        (log.matches("settings reloaded").count() >= 1).then_some(())
    });
    assert_eq!(sessions("second-password"), 200);
    assert_eq!(sessions("first-password"), 401);
    // An invalid file keeps the settings in force.
    write(&config, "[auth\nbroken");
    unsafe_kill(up.pid(), 1);
    wait_for("the refused reload", 10, || {
        let log = std::fs::read_to_string(&serve_log).ok()?;
        log.contains("settings not reloaded").then_some(())
    });
    assert_eq!(sessions("second-password"), 200);
}

#[test]
fn serve_answers_over_https_with_a_given_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let made = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "1",
        ])
        .args([
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(Stdio::null())
        .status()
        .expect("openssl");
    assert!(made.success());
    let server = common::Server::builder()
        .arg("--tls-cert")
        .arg(cert.display().to_string())
        .arg("--tls-key")
        .arg(key.display().to_string())
        .start();
    let url = format!("https://127.0.0.1:{}/health", server.addr.port());
    let out = Command::new("curl")
        .args(["-s", "-D", "-", "-o", "/dev/null", "--cacert"])
        .arg(&cert)
        .arg(&url)
        .output()
        .expect("curl");
    let head = String::from_utf8_lossy(&out.stdout).to_lowercase();
    assert!(
        head.contains("strict-transport-security"),
        "HSTS over HTTPS: {head}"
    );
    let out = Command::new("curl")
        .args(["-s", "--cacert"])
        .arg(&cert)
        .arg(&url)
        .output()
        .expect("curl");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let body: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(body["status"], "healthy");
    // Plain HTTP to the TLS port gets no answer, and the server goes on.
    let _ = std::net::TcpStream::connect(server.addr).map(|mut s| {
        use std::io::Write;
        let _ = s.write_all(b"GET /health HTTP/1.1\r\n\r\n");
    });
    let again = Command::new("curl")
        .args(["-s", "--cacert"])
        .arg(&cert)
        .arg(&url)
        .output()
        .unwrap();
    assert!(again.status.success());
}

#[test]
fn the_children_die_with_a_killed_up() {
    let mut up = Up::builder().start();
    up.wait_line("tunnel connected", 0, 20);
    let (serve, cloudflared) = (up.child_pid("serve"), up.child_pid("cloudflared"));
    unsafe_kill(up.pid(), 9);
    let _ = up.stop();
    wait_for("serve and cloudflared to die with up", 20, || {
        (!alive(serve) && !alive(cloudflared)).then_some(())
    });
}
