//! Projects under roots: `[projects] roots` and `--project-root` over a real temporary tree; browsing
//! (`GET /api/projects/browse`: git marked, hidden and escaping symlinks skipped), the refusals (a symlink out,
//! `..`, relative, outside every root) on create, on browse and at the next turn after a directory is swapped for a
//! symlink or its root leaves the config; the recent projects (`GET /api/projects`) from our conversations and a
//! CLI session fixture; and a `.env` inside a root never read.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{Server, wait_for};
use serde_json::{Value, json};

/// The tree: `work` (a root from the config file) and `more` (a root from the flag), and `outside`.
struct Tree {
    _dir: tempfile::TempDir,
    base: PathBuf,
    config: PathBuf,
}

impl Tree {
    fn new() -> Tree {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().canonicalize().unwrap();
        for d in [
            "work/app/.git",
            "work/app/nested/.git",
            "work/app/nested/deep",
            "work/Alpha",
            "work/zeta",
            "work/.hidden",
            "more/m1",
            "outside/secret",
        ] {
            std::fs::create_dir_all(base.join(d)).unwrap();
        }
        std::fs::write(base.join("work/notes.txt"), "not a directory").unwrap();
        std::os::unix::fs::symlink(base.join("outside"), base.join("work/link-out")).unwrap();
        std::os::unix::fs::symlink(base.join("work/app"), base.join("work/link-in")).unwrap();
        let config = base.join("config.toml");
        std::fs::write(&config, roots_toml(&[base.join("work")])).unwrap();
        Tree {
            _dir: dir,
            base,
            config,
        }
    }

    fn p(&self, sub: &str) -> PathBuf {
        self.base.join(sub)
    }

    fn server(&self, config_dir: Option<&Path>) -> Server {
        let mut b = Server::builder()
            .arg(format!("--config={}", self.config.display()))
            .arg(format!("--project-root={}", self.p("more").display()));
        if let Some(dir) = config_dir {
            b = b.env("CLAUDE_CONFIG_DIR", dir.display().to_string());
        }
        b.start()
    }
}

fn roots_toml(roots: &[PathBuf]) -> String {
    let list: Vec<String> = roots
        .iter()
        .map(|r| format!("{:?}", r.display().to_string()))
        .collect();
    format!("[projects]\nroots = [{}]\n", list.join(", "))
}

fn enc(path: &Path) -> String {
    let mut out = String::new();
    for b in path.as_os_str().as_encoded_bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~/".contains(b) {
            out.push(*b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn browse(server: &Server, path: Option<&Path>) -> (u16, Value) {
    let url = match path {
        Some(p) => format!("/api/projects/browse?path={}", enc(p)),
        None => "/api/projects/browse".into(),
    };
    let r = server.authed("GET", &url, b"");
    (r.status, r.json())
}

/// The string `field` of every item in the array `list` of `v`.
fn pluck(v: &Value, list: &str, field: &str) -> Vec<String> {
    v[list]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item[field].as_str().unwrap().to_string())
        .collect()
}

fn names(listing: &Value) -> Vec<String> {
    pluck(listing, "dirs", "name")
}

fn create(server: &Server, project: &str) -> (u16, Value) {
    let r = server.authed(
        "POST",
        "/api/conversations",
        json!({ "project": project }).to_string().as_bytes(),
    );
    (r.status, r.json())
}

fn ended(server: &Server, turn: &str) -> Value {
    wait_for("the turn to end", 20, || {
        let t = server
            .authed("GET", &format!("/api/turns/{turn}"), b"")
            .json();
        (!matches!(t["status"].as_str(), Some("queued" | "running"))).then_some(t)
    })
}

#[test]
fn roots_from_the_file_and_the_flag_are_browsed_with_git_marked_and_hidden_or_escaping_dirs_skipped()
 {
    let tree = Tree::new();
    let server = tree.server(None);
    let (status, top) = browse(&server, None);
    assert_eq!(status, 200, "{top}");
    assert_eq!(names(&top), ["more", "work"], "{top}");
    assert_eq!(top["parent"], Value::Null);

    let (status, work) = browse(&server, Some(&tree.p("work")));
    assert_eq!(status, 200, "{work}");
    // Sorted by name; .hidden, the file and the link out of the roots are not listed; the link inside is.
    assert_eq!(names(&work), ["Alpha", "app", "link-in", "zeta"], "{work}");
    assert_eq!(work["parent"], Value::Null, "a root has no parent here");
    assert_eq!(work["truncated"], false);
    let app = &work["dirs"][1];
    assert_eq!(app["git"], true, "{app}");
    assert_eq!(app["path"], tree.p("work/app").display().to_string());
    assert_eq!(work["dirs"][0]["git"], false);

    let (status, inner) = browse(&server, Some(&tree.p("work/app")));
    assert_eq!(status, 200, "{inner}");
    assert_eq!(names(&inner), ["nested"]);
    assert_eq!(inner["parent"], tree.p("work").display().to_string());
    assert_eq!(inner["dirs"][0]["git"], true);

    // The flag's root too.
    let (status, more) = browse(&server, Some(&tree.p("more")));
    assert_eq!((status, names(&more)), (200, vec!["m1".to_string()]));

    // Refusals: outside, through a symlink out, an allowed project that is no root, `..`, relative, missing.
    for (path, want) in [
        (tree.p("outside"), 403),
        (tree.p("work/link-out"), 403),
        (server.path("project"), 403),
        (tree.p("work/app/../../outside"), 400),
        (PathBuf::from("work/app"), 400),
        (tree.p("work/nope"), 404),
    ] {
        let (status, body) = browse(&server, Some(&path));
        assert_eq!(status, want, "{}: {body}", path.display());
        assert!(
            body["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{body}"
        );
    }
    // Behind the sign-in.
    assert_eq!(
        server
            .request("GET", "/api/projects/browse", &[], b"")
            .status,
        401
    );
}

#[test]
fn a_conversation_starts_anywhere_inside_a_root_and_nowhere_else() {
    let tree = Tree::new();
    let server = tree.server(None);
    let nested = tree.p("work/app/nested");
    let (status, c) = create(&server, &nested.display().to_string());
    assert_eq!(status, 201, "{c}");
    assert_eq!(c["project"], nested.display().to_string());
    // Through a link that stays inside: the real path is stored.
    let (status, c) = create(&server, &tree.p("work/link-in").display().to_string());
    assert_eq!(
        (status, &c["project"]),
        (201, &json!(tree.p("work/app").display().to_string()))
    );
    let (status, _) = create(&server, &tree.p("more/m1").display().to_string());
    assert_eq!(status, 201);
    for (path, says) in [
        (
            tree.p("outside").display().to_string(),
            "not an allowed project",
        ),
        (
            tree.p("work/link-out").display().to_string(),
            "not an allowed project",
        ),
        (
            format!("{}/work/app/../../outside", tree.base.display()),
            "\"..\"",
        ),
        ("work/app".to_string(), "absolute"),
        (
            tree.p("work/notes.txt").display().to_string(),
            "no such directory",
        ),
    ] {
        let (status, body) = create(&server, &path);
        assert_eq!(status, 400, "{path}: {body}");
        assert!(
            body["error"].as_str().unwrap().contains(says),
            "{path}: {body}"
        );
    }
}

/// Claude Code's config dir inside a root: neither it nor the root that holds it may be a project (Claude there could
/// add a hook that runs commands), and a terminal session there is neither listed nor adopted; the root's other
/// directories still may be projects, and browsing the root still works.
#[test]
fn no_conversation_runs_in_or_above_claudes_own_config_dir() {
    let tree = Tree::new();
    let cc = tree.p("work/cc");
    std::fs::create_dir_all(cc.join("projects")).unwrap();
    // Terminal sessions in the root that holds it and in one of its other directories.
    let (above, beside) = (
        "11111111-1111-4111-8111-111111111111",
        "22222222-2222-4222-8222-222222222222",
    );
    cli_session(&cc, &tree.p("work"), above);
    cli_session(&cc, &tree.p("work/zeta"), beside);
    let server = tree.server(Some(&cc));
    for dir in [tree.p("work"), cc.clone(), cc.join("projects")] {
        let (status, body) = create(&server, &dir.display().to_string());
        assert_eq!(status, 400, "{dir:?}: {body}");
        assert!(
            body["error"]
                .as_str()
                .unwrap()
                .contains("Claude Code's config dir"),
            "{dir:?}: {body}"
        );
    }
    assert_eq!(
        create(&server, &tree.p("work/zeta").display().to_string()).0,
        201
    );
    // Only the session that could be adopted is listed; the other is refused by id too.
    let listed = server.authed("GET", "/api/claude-sessions", b"").json();
    assert_eq!(pluck(&listed, "sessions", "id"), [beside], "{listed}");
    let resp = server.authed("POST", &format!("/api/claude-sessions/{above}/adopt"), b"");
    assert_eq!(resp.status, 403, "{}", resp.text());
    let (status, work) = browse(&server, Some(&tree.p("work")));
    assert_eq!(status, 200, "{work}");
    assert!(names(&work).contains(&"zeta".to_string()), "{work}");
}

#[test]
fn the_next_turn_is_refused_once_the_directory_leaves_the_roots() {
    let tree = Tree::new();
    let server = tree.server(None);
    let nested = tree.p("work/app/nested");
    let (_, c) = create(&server, &nested.display().to_string());
    let id = c["id"].as_str().unwrap();
    let turn = server.send(id, json!({"message": "hello from the phone"}));
    assert_eq!(ended(&server, &turn)["status"], "succeeded");
    let (pid, _) = server.recorded_runs().pop().unwrap();
    let cwd = String::from_utf8(server.recorded(&pid, "cwd")).unwrap();
    assert_eq!(Path::new(cwd.trim()), nested, "claude ran in {cwd}");

    // The directory swapped for a symlink out of the root: refused at the next turn, and claude does not run.
    std::fs::rename(&nested, tree.p("work/app/nested-old")).unwrap();
    std::os::unix::fs::symlink(tree.p("outside"), &nested).unwrap();
    let runs = server.recorded_runs().len();
    let t = ended(&server, &server.send(id, json!({"message": "and now?"})));
    assert_eq!(t["status"], "failed", "{t}");
    let error = t["error"].as_str().unwrap();
    assert!(
        error.contains("not an allowed project") && error.contains("outside"),
        "{t}"
    );
    assert_eq!(
        server.recorded_runs().len(),
        runs,
        "claude ran outside the roots"
    );

    // A root removed from the config file: its conversations are refused at their next turn.
    let (_, z) = create(&server, &tree.p("work/zeta").display().to_string());
    let zid = z["id"].as_str().unwrap();
    assert_eq!(
        ended(&server, &server.send(zid, json!({"message": "one"})))["status"],
        "succeeded"
    );
    std::fs::write(&tree.config, "").unwrap();
    let before = server.log().matches("settings reloaded").count();
    common::unsafe_kill(server.pid(), 1);
    wait_for("the settings to reload", 10, || {
        (server.log().matches("settings reloaded").count() > before).then_some(())
    });
    let t = ended(&server, &server.send(zid, json!({"message": "two"})));
    assert_eq!(t["status"], "failed", "{t}");
    assert!(
        t["error"]
            .as_str()
            .unwrap()
            .contains("not an allowed project"),
        "{t}"
    );
    // The flag's root stays.
    let (status, _) = create(&server, &tree.p("more/m1").display().to_string());
    assert_eq!(status, 201);
    let (status, _) = create(&server, &tree.p("work/Alpha").display().to_string());
    assert_eq!(status, 400);
}

/// A CLI session file with one prompt, in `cwd`, under `config/projects/<encoded cwd>/`.
fn cli_session(config: &Path, cwd: &Path, id: &str) {
    let folder: String = cwd
        .to_string_lossy()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let dir = config.join("projects").join(folder);
    std::fs::create_dir_all(&dir).unwrap();
    let lines = [
        json!({"parentUuid": null, "isSidechain": false, "type": "user",
               "message": {"role": "user", "content": "work on this"}, "uuid": "u1",
               "timestamp": "2026-11-24T10:00:00.000Z", "userType": "external", "entrypoint": "cli",
               "cwd": cwd, "sessionId": id, "version": "2.1.197"}),
        json!({"type": "assistant", "message": {"role": "assistant", "content": [{"type": "text", "text": "ok"}]},
               "uuid": "a1", "timestamp": "2026-11-24T10:01:00.000Z", "cwd": cwd, "sessionId": id}),
    ];
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    std::fs::write(dir.join(format!("{id}.jsonl")), text).unwrap();
}

#[test]
fn recent_projects_come_from_conversations_and_the_clis_sessions_inside_the_roots_only() {
    let tree = Tree::new();
    let claude_config = tree.p("claude-config");
    cli_session(
        &claude_config,
        &tree.p("work/zeta"),
        "0a000000-0000-4000-8000-000000000001",
    );
    cli_session(
        &claude_config,
        &tree.p("outside/secret"),
        "0b000000-0000-4000-8000-000000000002",
    );
    let server = tree.server(Some(&claude_config));
    let (status, _) = create(&server, &tree.p("work/app").display().to_string());
    assert_eq!(status, 201);
    let (status, _) = create(&server, &tree.p("more/m1").display().to_string());
    assert_eq!(status, 201);

    let all = server.authed("GET", "/api/projects", b"").json();
    let projects = all["projects"].as_array().unwrap();
    let paths = pluck(&all, "projects", "path");
    let project = server.path("project").canonicalize().unwrap();
    // The allow-list first, then the recent ones, newest first; nothing outside the roots.
    assert_eq!(paths[0], project.display().to_string(), "{all}");
    assert_eq!(projects[0]["source"], "allow");
    let want = |p: &str| tree.p(p).display().to_string();
    assert_eq!(
        paths[1..],
        [want("more/m1"), want("work/app"), want("work/zeta")],
        "{all}"
    );
    assert!(
        projects[1..].iter().all(|p| p["source"] == "recent"),
        "{all}"
    );
    let app = &projects[2];
    assert_eq!(
        (&app["name"], &app["git"]),
        (&json!("app"), &json!(true)),
        "{app}"
    );
    assert!(app["last_used"].as_str().is_some(), "{app}");
    assert_eq!(
        projects[3]["last_used"], "2026-11-24T10:01:00.000Z",
        "{all}"
    );
    assert!(!all.to_string().contains("secret"), "{all}");
    assert_eq!(pluck(&all, "roots", "name"), ["more", "work"]);

    // Searched: a case-insensitive part of the path.
    let found = server.authed("GET", "/api/projects?q=ZET", b"").json();
    assert_eq!(
        pluck(&found, "projects", "path"),
        [want("work/zeta")],
        "{found}"
    );
    assert_eq!(server.request("GET", "/api/projects", &[], b"").status, 401);
}

/// `doctor` from inside `work/app` (never a project itself here), with the roots as `args` give them.
fn doctor_in_app(tree: &Tree, args: &[String], config: &str) -> String {
    std::fs::write(&tree.config, config).unwrap();
    let out = Command::new(common::bin())
        .arg("doctor")
        .arg("--port=0")
        .arg(format!("--data-dir={}", tree.p("data").display()))
        .arg(format!("--config={}", tree.config.display()))
        .arg(format!("--project={}", tree.p("more/m1").display()))
        .arg(format!("--claude-bin={}", common::fake_claude().display()))
        .args(args)
        .current_dir(tree.p("work/app"))
        .env("HOME", &tree.base)
        .env("AUTH_USERNAME", "me")
        .env("AUTH_PASSWORD", "a-long-enough-password")
        .env_remove("XDG_CONFIG_HOME")
        .env_remove("CLAUDE_CONFIG_DIR")
        .env_remove("REMOTE_AGENT_CONFIG")
        .env("CLOUDFLARED_BIN", common::up::fake_cloudflared())
        .output()
        .unwrap();
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn a_dotenv_inside_a_root_is_never_read() {
    let tree = Tree::new();
    std::fs::write(tree.p("work/app/.env"), "REMOTE_AGENT_TURN_TIMEOUT=0\n").unwrap();
    let env = tree.p("work/app/.env").display().to_string();
    // Outside every root: read (and its bad value said).
    let said = doctor_in_app(&tree, &[], "");
    assert!(!said.contains(&format!("ignoring {env}")), "{said}");
    assert!(said.contains("turn timeout"), "{said}");
    // A root from the flag, then from the config file: ignored, and said so.
    let flag = [format!("--project-root={}", tree.p("work").display())];
    for (args, config) in [
        (&flag[..], String::new()),
        (&[][..], roots_toml(&[tree.p("work")])),
    ] {
        let said = doctor_in_app(&tree, args, &config);
        assert!(
            said.contains(&format!("ignoring {env}")) && said.contains("project root"),
            "{said}"
        );
        assert!(!said.contains("turn timeout"), "{said}");
    }
}
