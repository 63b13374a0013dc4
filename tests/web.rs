//! The web app in a real headless Chromium (Debian's), driven by playwright-core from tests/web/*.test.mjs,
//! against the real server and the fake claude. Skipped with a message when node, Chromium or the test's npm
//! packages are missing; under `CI=true` their absence fails.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

fn missing(what: &str) {
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "web: {what} is required in CI"
    );
    common::skip("web::app", &format!("{what} is missing"));
}

/// Runs a browser test script against `server`; panics with its output when it fails. One script at a time: three
/// Chromiums on a two-core machine made their waits flaky, and the scripts check what a user would see in time.
fn run(script: &Path, server: &common::Server, envs: &[(&str, String)]) {
    static ONE_BROWSER: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _turn = ONE_BROWSER.lock().unwrap_or_else(|e| e.into_inner());
    let out = Command::new("node")
        .arg(script)
        .env("RA_URL", format!("http://{}", server.addr))
        .env("RA_USER", common::USER)
        .env("RA_PASS", common::PASSWORD)
        .envs(envs.iter().map(|(k, v)| (k, v)))
        .output()
        .expect("run node");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "{} failed:\n{said}\nserver log:\n{}",
        script.display(),
        server.log()
    ); // What the script said (its steps, any figures it measured): shown with --nocapture.
    print!("{said}");
}

#[test]
fn the_web_app_works_in_a_real_browser() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let dir = root.join("tests/web");
    if Command::new("node").arg("--version").output().is_err() {
        return missing("node");
    }
    if !PathBuf::from("/usr/bin/chromium").exists() {
        return missing("chromium (apt-get install chromium)");
    }
    if !dir.join("node_modules/playwright-core").exists() {
        return missing("playwright-core (npm install --prefix tests/web)");
    }
    let server = common::Server::start();
    let shots = root.join("target/screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    run(
        &dir.join("app.test.mjs"),
        &server,
        &[("RA_SHOTS", shots.display().to_string())],
    );

    // With two allowed projects, the list offers a picker.
    let config = server.path("two-projects.toml");
    let second = server.path("second");
    std::fs::create_dir_all(&second).unwrap();
    let second = second.canonicalize().unwrap();
    std::fs::write(
        &config,
        format!("[projects]\nallow = [{:?}]\n", second.display().to_string()),
    )
    .unwrap();
    let two = common::Server::builder()
        .arg("--config")
        .arg(config.display().to_string())
        .start();
    // That browser signs in with a pairing link, as a phone would from the QR code.
    let base = format!("http://{}", two.addr);
    let pair = two
        .subcommand(&["pair", "--quiet", "--base", &base])
        .output()
        .unwrap();
    assert!(
        pair.status.success(),
        "{}",
        String::from_utf8_lossy(&pair.stderr)
    );
    let link = String::from_utf8(pair.stdout).unwrap().trim().to_string();
    run(
        &dir.join("picker.test.mjs"),
        &two,
        &[
            ("RA_PROJECT2", second.display().to_string()),
            ("RA_PAIR", link),
        ],
    );
}

/// Whether node, Chromium and playwright-core are here (else the test is skipped, or fails under CI).
fn browser_ready(dir: &Path) -> bool {
    if Command::new("node").arg("--version").output().is_err() {
        missing("node");
        return false;
    }
    if !PathBuf::from("/usr/bin/chromium").exists() {
        missing("chromium (apt-get install chromium)");
        return false;
    }
    if !dir.join("node_modules/playwright-core").exists() {
        missing("playwright-core (npm install --prefix tests/web)");
        return false;
    }
    true
}

/// Errors as error cards with Retry ("not logged in", a full disk, a damaged database), stopped tools, queued and
/// unsent messages that can be withdrawn, drafts instead of empty conversations, the offline banner and a reload
/// while offline, markdown in lists and titles, the signed-out first load, the manifest's colours.
#[test]
fn the_web_app_shows_errors_queues_and_offline_state_plainly() {
    run_on_own_server("hardening.test.mjs");
}

/// What a new user's trial found: the phone's Enter key label, the keyboard hiding the newest messages, a stopped
/// reply's typing cursor, a reload while offline (saved copies up to date and labelled, controls that need the
/// server off, unsent messages shown), and the sign-in lockout in the server's words. A server of its own: the test
/// ends by locking its client out.
#[test]
fn the_web_app_holds_up_in_a_new_users_trial() {
    run_on_own_server("trial.test.mjs");
}

/// Attachments from the phone at 390x844: two images picked (one shrunk in the browser before the upload), chips
/// with thumbnails and a ×, a file over the limit refused with a note, a multipart send, Claude getting both images,
/// the transcript's thumbnails from the server. Screenshots: target/screenshots/attach-*.png.
#[test]
fn the_phone_attaches_photos() {
    run_on_own_server("attach.test.mjs");
}

/// Exporting from the phone: the header's Export sheet, a Markdown download, the JSON link answering 200.
#[test]
fn the_phone_exports_a_conversation() {
    run_on_own_server("export.test.mjs");
}

/// Reviewing changes on the phone: a turn that writes and edits files, its "Changes" strip, the file list, a diff
/// at 390x844, and the conversation's "All changes". The screenshots' dir is printed: look at them.
#[test]
fn the_phone_reviews_what_a_turn_changed() {
    run_on_own_server("changes.test.mjs");
}

/// A conversation's project in the list and the header, "Continue on the computer" with the exact `cd … && claude
/// --resume …` after a turn, and the list's filter by project (two allowed projects).
#[test]
fn the_phone_shows_projects_and_how_to_continue_on_the_computer() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let dir = root.join("tests/web");
    if !browser_ready(&dir) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let second = tmp.path().join("second project's");
    std::fs::create_dir_all(&second).unwrap();
    let second = second.canonicalize().unwrap();
    let config = tmp.path().join("two-projects.toml");
    std::fs::write(
        &config,
        format!("[projects]\nallow = [{:?}]\n", second.display().to_string()),
    )
    .unwrap();
    let server = common::Server::builder()
        .arg("--config")
        .arg(config.display().to_string())
        .start();
    let shots = root.join("target/screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    run(
        &dir.join("continue.test.mjs"),
        &server,
        &[
            ("RA_SHOTS", shots.display().to_string()),
            ("RA_PROJECT2", second.display().to_string()),
        ],
    );
}

/// The project picker at a phone's size: with a project root, "+" opens it; recent projects, search, browsing into
/// the root (git marked, hidden folders skipped, breadcrumb and Up), "Start here" in a nested git directory, a
/// message, and the project in the header. The screenshots' dir is printed: look at them.
#[test]
fn the_phone_picks_a_project_under_a_root() {
    let root_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let dir = root_dir.join("tests/web");
    if !browser_ready(&dir) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().canonicalize().unwrap().join("code");
    for d in [
        "app/.git",
        "app/nested/.git",
        "app/nested/src",
        ".hidden",
        "zeta",
        "Notes",
    ] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    let config = tmp.path().join("roots.toml");
    std::fs::write(
        &config,
        format!("[projects]\nroots = [{:?}]\n", root.display().to_string()),
    )
    .unwrap();
    let server = common::Server::builder()
        .arg("--config")
        .arg(config.display().to_string())
        .start();
    // A recent project: a conversation in zeta.
    let recent = root.join("zeta");
    server.create(serde_json::json!({"project": recent, "title": "in zeta"}));
    let shots = root_dir.join("target/screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    println!("screenshots: {}", shots.display());
    run(
        &dir.join("projects.test.mjs"),
        &server,
        &[
            ("RA_SHOTS", shots.display().to_string()),
            ("RA_ROOT", root.display().to_string()),
            ("RA_RECENT", recent.display().to_string()),
        ],
    );
}

/// The computer's sessions on the phone: listed in the "On the computer" tab, one adopted by a tap, its history from
/// the file (earlier pages on scrolling up), and a message resuming it. The screenshots' dir is printed: look at them.
#[test]
fn the_phone_carries_on_a_session_from_the_computer() {
    use common::sessions::{long_session, new_session};
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let dir = root.join("tests/web");
    if !browser_ready(&dir) {
        return;
    }
    let config = tempfile::tempdir().unwrap();
    let server = common::Server::builder()
        .env("CLAUDE_CONFIG_DIR", config.path().display().to_string())
        .start();
    let project = std::fs::canonicalize(server.path("project")).unwrap();
    let long = "0c000000-0000-4000-8000-00000000c0de";
    let other = "0b000000-0000-4000-8000-00000000b0de";
    long_session(config.path(), &project, long, 60);
    let title = serde_json::json!({"type": "ai-title", "aiTitle": "Refactor the parser", "sessionId": other});
    new_session(config.path(), &project, other, 2, &[title]);
    let shots = root.join("target/screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    run(
        &dir.join("adopt.test.mjs"),
        &server,
        &[
            ("RA_SHOTS", shots.display().to_string()),
            ("RA_SESSION", long.to_string()),
            ("RA_TITLE", "Refactor the parser".to_string()),
        ],
    );
    eprintln!("screenshots: {}/adopt-*.png", shots.display());
}

/// Runs a browser script against a server of its own, its screenshots under target/screenshots; skips (or, under
/// CI, fails) where the browser is missing.
fn run_on_own_server(script: &str) {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let dir = root.join("tests/web");
    if !browser_ready(&dir) {
        return;
    }
    let server = common::Server::start();
    let shots = root.join("target/screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    run(
        &dir.join(script),
        &server,
        &[("RA_SHOTS", shots.display().to_string())],
    );
}

/// Claude asks, the phone answers: a command allowed (it runs) and one denied (it does not), two questions answered,
/// a plan approved in plan mode set from the header, and "Interrupt and send" while Claude waits; the card's buttons
/// 48 px tall with "Always…" apart from Allow and Deny. The screenshots' dir is printed: look at them.
#[test]
fn the_phone_answers_what_claude_asks() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let dir = root.join("tests/web");
    if !browser_ready(&dir) {
        return;
    }
    let server = common::Server::start();
    let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("approvals-shots");
    std::fs::create_dir_all(&shots).unwrap();
    eprintln!("web::approvals: screenshots in {}", shots.display());
    run(
        &dir.join("approvals.test.mjs"),
        &server,
        &[
            ("RA_SHOTS", shots.display().to_string()),
            ("RA_PROJECT", server.path("project").display().to_string()),
        ],
    );
}

/// Notifications: the settings sheet from the list's bell (turn on, a test, hiding message text, turn off; an
/// iPhone's Safari told to install the app), presence, and the service worker's push and notificationclick against a
/// mock push service in the script (headless Chromium reaches no real one): a request's Allow and Deny, a tap that
/// opens the conversation (and the request's card). The screenshots' dir is printed: look at them.
#[test]
fn the_phone_turns_on_notifications_and_answers_from_them() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let dir = root.join("tests/web");
    if !browser_ready(&dir) {
        return;
    }
    // The script's mock push service is on loopback, over http.
    let server = common::Server::builder()
        .env("REMOTE_AGENT_PUSH_ALLOW_LOOPBACK", "1")
        .start();
    let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("push-shots");
    std::fs::create_dir_all(&shots).unwrap();
    eprintln!("web::push: screenshots in {}", shots.display());
    run(
        &dir.join("push.test.mjs"),
        &server,
        &[
            ("RA_SHOTS", shots.display().to_string()),
            ("RA_PROJECT", server.path("project").display().to_string()),
        ],
    );
}

/// Claude open in a terminal on the conversation's session (a process named claude with `--resume <id>`): Send asks
/// first, Cancel keeps the message in the field; once the terminal is gone, Send sends.
#[test]
fn the_phone_warns_before_sending_while_claude_is_open_on_the_computer() {
    run_on_own_server("desk.test.mjs");
}
