//! What a turn changed (issue 16, items 1 and 4), end to end with the real server, real git and the fake CLI:
//! added, modified, deleted, renamed and binary files in a git repository, a file changed by something else while
//! the turn ran, the unified diff line by line, everything a conversation changed, a directory outside git, paths
//! refused; and the user's index and stash untouched.

mod common;

use std::path::Path;
use std::process::Command;

use common::{Server, wait_for};
use serde_json::{Value, json};

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Commits everything staged in `dir` under a throwaway identity (the machine may have none configured).
fn commit(dir: &Path, message: &str) {
    git(
        dir,
        &[
            "-c",
            "user.email=t@example.com",
            "-c",
            "user.name=t",
            "commit",
            "-qm",
            message,
        ],
    );
}

fn have_git() -> bool {
    Command::new("git")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Waits for the turn to end, then for its change set to be recorded; returns it.
fn changes_of(server: &Server, turn: &str) -> Value {
    wait_for("the turn's changes", 30, || {
        let resp = server.authed("GET", &format!("/api/turns/{turn}/changes"), b"");
        assert_eq!(resp.status, 200, "{}", resp.text());
        let v = resp.json();
        (v["pending"] == false).then_some(v)
    })
}

fn wait_status(server: &Server, turn: &str, status: &str) {
    wait_for(status, 20, || {
        let v = server
            .authed("GET", &format!("/api/turns/{turn}"), b"")
            .json();
        (v["status"] == status).then_some(())
    });
}

fn file<'a>(set: &'a Value, path: &str) -> &'a Value {
    set["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["path"] == path)
        .unwrap_or_else(|| panic!("{path} not in {set}"))
}

#[test]
fn a_turn_in_a_git_repository_lists_what_changed_and_who_changed_it() {
    if !have_git() {
        common::skip("changes", "no git on this machine");
        return;
    }
    let server = Server::start();
    let project = server.path("project");
    git(&project, &["init", "-q"]);
    git(&project, &["config", "user.email", "t@example.com"]);
    git(&project, &["config", "user.name", "t"]);
    let lines: String = (1..=10).map(|i| format!("line {i}\n")).collect();
    std::fs::write(project.join("a.txt"), &lines).unwrap();
    std::fs::write(project.join("old.txt"), "moved\nas it is\nthree\nfour\n").unwrap();
    std::fs::write(project.join("gone.txt"), "bye\n").unwrap();
    std::fs::write(project.join(".gitignore"), "*.log\n").unwrap();
    git(&project, &["add", "-A"]);
    git(&project, &["commit", "-qm", "one"]);
    // The user's own work in progress: a staged file and a stash.
    std::fs::write(project.join("a.txt"), format!("{lines}stashed\n")).unwrap();
    git(&project, &["stash", "-q"]);
    std::fs::write(project.join("staged.txt"), "staged\n").unwrap();
    git(&project, &["add", "staged.txt"]);
    let index = std::fs::read(project.join(".git/index")).unwrap();
    let stashes = git(&project, &["stash", "list"]);

    server.create(json!({"id": "g", "permission_mode": "acceptEdits"}));
    let turn = server.send(
        "g",
        json!({"message": "[[slow:1.5]] [[edit:a.txt:line 5=>five]] [[writefile:new.md:# new\\nline two]] \
                           [[bash:mv old.txt renamed.txt]]"}),
    );
    wait_status(&server, &turn, "running");
    // Something else changes the project while the turn runs.
    std::fs::remove_file(project.join("gone.txt")).unwrap();
    std::fs::write(project.join("bin.dat"), [0u8, 1, 2, 255, 0, 7]).unwrap();
    std::fs::write(project.join("noise.log"), "ignored\n").unwrap();
    let set = changes_of(&server, &turn);
    assert_eq!(set["git"], true);
    assert_eq!(set["files"].as_array().unwrap().len(), 5, "{set}");

    let a = file(&set, "a.txt");
    assert_eq!(
        (&a["status"], &a["added"], &a["removed"], &a["by"]),
        (&json!("modified"), &json!(1), &json!(1), &json!("claude"))
    );
    let new = file(&set, "new.md");
    assert_eq!(
        (&new["status"], &new["added"], &new["by"]),
        (&json!("added"), &json!(2), &json!("claude"))
    );
    let renamed = file(&set, "renamed.txt");
    assert_eq!(
        (&renamed["status"], &renamed["old_path"]),
        (&json!("renamed"), &json!("old.txt"))
    );
    assert_eq!(
        renamed["by"], "other",
        "a Bash command's change is not told apart"
    );
    let gone = file(&set, "gone.txt");
    assert_eq!(
        (&gone["status"], &gone["removed"], &gone["by"]),
        (&json!("deleted"), &json!(1), &json!("other"))
    );
    let bin = file(&set, "bin.dat");
    assert_eq!(
        (&bin["status"], &bin["binary"], &bin["by"]),
        (&json!("added"), &json!(true), &json!("other"))
    );

    // The diff, line by line (git's, with the line before the hunk after its header).
    let d = server
        .authed("GET", &format!("/api/turns/{turn}/changes/a.txt"), b"")
        .json();
    assert_eq!(d["too_large"], false);
    let expected = [
        "--- a/a.txt",
        "+++ b/a.txt",
        "@@ -2,7 +2,7 @@ line 1",
        " line 2",
        " line 3",
        " line 4",
        "-line 5",
        "+five",
        " line 6",
        " line 7",
        " line 8",
    ];
    assert_eq!(
        d["diff"].as_str().unwrap().lines().collect::<Vec<_>>(),
        expected
    );
    let d = server
        .authed("GET", &format!("/api/turns/{turn}/changes/new.md"), b"")
        .json();
    assert_eq!(
        d["diff"].as_str().unwrap().lines().collect::<Vec<_>>(),
        [
            "--- /dev/null",
            "+++ b/new.md",
            "@@ -0,0 +1,2 @@",
            "+# new",
            "+line two",
            "\\ No newline at end of file"
        ]
    );
    let d = server
        .authed("GET", &format!("/api/turns/{turn}/changes/bin.dat"), b"")
        .json();
    assert_eq!(
        (&d["binary"], &d["too_large"], &d["diff"]),
        (&json!(true), &json!(false), &json!(""))
    );
    let d = server
        .authed(
            "GET",
            &format!("/api/turns/{turn}/changes/renamed.txt"),
            b"",
        )
        .json();
    assert_eq!((&d["status"], &d["diff"]), (&json!("renamed"), &json!("")));

    // Paths: only the change set's own.
    for (path, status) in [
        ("nope.txt", 404),
        ("staged.txt", 404),
        ("noise.log", 404),
        ("..%2F..%2Fetc%2Fpasswd", 400),
        ("%2Fetc%2Fpasswd", 400),
        ("a%2F..%2Fa.txt", 400),
    ] {
        let resp = server.authed("GET", &format!("/api/turns/{turn}/changes/{path}"), b"");
        assert_eq!(resp.status, status, "{path}: {}", resp.text());
        assert!(resp.json()["error"].is_string());
    }
    let resp = server.authed(
        "GET",
        "/api/turns/00000000-0000-4000-8000-000000000000/changes",
        b"",
    );
    assert_eq!(resp.status, 404);

    // A turn that changes nothing has an empty set; the conversation's set spans both.
    let quiet = server.send("g", json!({"message": "[[edit:a.txt:five=>line 5]]"}));
    let set2 = changes_of(&server, &quiet);
    assert_eq!(set2["files"].as_array().unwrap().len(), 1, "{set2}");
    let all = server
        .authed("GET", "/api/conversations/g/changes", b"")
        .json();
    assert_eq!(all["pending"], false);
    let paths: Vec<&str> = all["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    assert!(
        !paths.contains(&"a.txt"),
        "five and back to line 5 is no change: {all}"
    );
    assert!(
        paths.contains(&"new.md") && paths.contains(&"renamed.txt"),
        "{all}"
    );
    let d = server
        .authed("GET", "/api/conversations/g/changes/new.md", b"")
        .json();
    assert_eq!(d["status"], "added");
    let quiet = server.send("g", json!({"message": "just talk"}));
    assert_eq!(changes_of(&server, &quiet)["files"], json!([]));

    // The user's index and stash are as they were.
    assert_eq!(
        std::fs::read(project.join(".git/index")).unwrap(),
        index,
        "the index changed"
    );
    assert_eq!(git(&project, &["stash", "list"]), stashes);
    assert!(git(&project, &["status", "--porcelain"]).contains("A  staged.txt"));
}

#[test]
fn outside_git_the_edit_tool_calls_say_what_changed() {
    let server = Server::start();
    let project = server.path("project");
    if Command::new("git")
        .args(["rev-parse", "--git-dir"])
        .current_dir(&project)
        .output()
        .is_ok_and(|o| o.status.success())
    {
        common::skip(
            "changes outside git",
            "the temp dir lies in a git repository",
        );
        return;
    }
    std::fs::write(project.join("a.txt"), "one\ntwo\nthree\n").unwrap();
    server.create(json!({"id": "n", "permission_mode": "acceptEdits"}));
    let turn = server.send(
        "n",
        json!({"message": "[[edit:a.txt:two=>2]] [[writefile:b.txt:hello]] [[edit:a.txt:missing=>x]]"}),
    );
    let set = changes_of(&server, &turn);
    assert_eq!(set["git"], false);
    assert_eq!(set["files"].as_array().unwrap().len(), 2, "{set}");
    let a = file(&set, "a.txt");
    assert_eq!(
        (&a["status"], &a["added"], &a["removed"], &a["by"]),
        (&json!("modified"), &json!(1), &json!(1), &json!("claude"))
    );
    let d = server
        .authed("GET", &format!("/api/turns/{turn}/changes/a.txt"), b"")
        .json();
    assert_eq!(
        d["diff"].as_str().unwrap().lines().collect::<Vec<_>>(),
        ["--- a/a.txt", "+++ b/a.txt", "@@ -1 +1 @@", "-two", "+2"]
    );
    let b = file(&set, "b.txt");
    assert_eq!((&b["status"], &b["added"]), (&json!("added"), &json!(1)));
    let resp = server.authed("GET", &format!("/api/turns/{turn}/changes/..%2Fa.txt"), b"");
    assert_eq!(resp.status, 400);
}

#[test]
fn a_project_in_a_subdirectory_of_a_repository_sees_only_its_own_files() {
    if !have_git() {
        common::skip("changes in a subdirectory", "no git on this machine");
        return;
    }
    let server = Server::start();
    let top = server.path("project");
    let sub = top.join("sub dir");
    std::fs::create_dir_all(&sub).unwrap();
    git(&top, &["init", "-q"]);
    std::fs::write(sub.join("x.txt"), "a\nb\nc\n").unwrap();
    std::fs::write(top.join("elsewhere.txt"), "one\n").unwrap();
    git(&top, &["add", "-A"]);
    commit(&top, "one");
    let project = sub.canonicalize().unwrap();
    server.create(json!({"id": "s", "project": project, "permission_mode": "acceptEdits"}));
    let turn = server.send("s", json!({"message": "[[slow:1]] [[edit:x.txt:b=>B]]"}));
    wait_status(&server, &turn, "running");
    std::fs::write(top.join("elsewhere.txt"), "two\n").unwrap();
    let set = changes_of(&server, &turn);
    assert_eq!(set["files"].as_array().unwrap().len(), 1, "{set}");
    assert_eq!(
        (&file(&set, "x.txt")["by"], &file(&set, "x.txt")["added"]),
        (&json!("claude"), &json!(1))
    );
    let d = server
        .authed("GET", &format!("/api/turns/{turn}/changes/x.txt"), b"")
        .json();
    assert_eq!(
        d["diff"].as_str().unwrap().lines().collect::<Vec<_>>(),
        [
            "--- a/x.txt",
            "+++ b/x.txt",
            "@@ -1,3 +1,3 @@",
            " a",
            "-b",
            "+B",
            " c"
        ]
    );
    let resp = server.authed(
        "GET",
        &format!("/api/turns/{turn}/changes/..%2Felsewhere.txt"),
        b"",
    );
    assert_eq!(resp.status, 400);
}

/// The loose object file of `id` in any of the server's object stores, if there is one.
fn stored_object(server: &Server, id: &str) -> Option<std::path::PathBuf> {
    let stores = std::fs::read_dir(server.path("data/changes")).ok()?;
    stores
        .flatten()
        .map(|s| s.path().join("objects").join(&id[..2]).join(&id[2..]))
        .find(|p| p.exists())
}

/// Our object stores do not grow for ever: once a conversation is deleted, the contents only its turns recorded
/// are swept (here at the next start, with no grace period); every other turn's changes still read, and the next
/// turn records as before.
#[test]
fn what_no_stored_turn_needs_is_swept_and_the_rest_still_reads() {
    if !have_git() {
        common::skip("changes", "no git on this machine");
        return;
    }
    let mut server = Server::builder()
        .env("REMOTE_AGENT_CHANGES_GRACE_SECS", "0")
        .start();
    let project = server.path("project");
    git(&project, &["init", "-q"]);
    std::fs::write(project.join("base.txt"), "base\n").unwrap();
    git(&project, &["add", "-A"]);
    commit(&project, "one");

    server.create(json!({"id": "a", "permission_mode": "acceptEdits"}));
    let turn = server.send(
        "a",
        json!({"message": "[[writefile:gone.txt:only conversation a had this]]"}),
    );
    assert_eq!(changes_of(&server, &turn)["files"][0]["path"], "gone.txt");
    let gone = git(&project, &["hash-object", "gone.txt"])
        .trim()
        .to_string();
    assert!(
        stored_object(&server, &gone).is_some(),
        "the new file's content is not in our store"
    );
    std::fs::remove_file(project.join("gone.txt")).unwrap();

    server.create(json!({"id": "b", "permission_mode": "acceptEdits"}));
    let kept_turn = server.send("b", json!({"message": "[[writefile:kept.txt:stays here]]"}));
    changes_of(&server, &kept_turn);
    let kept = git(&project, &["hash-object", "kept.txt"])
        .trim()
        .to_string();
    assert!(stored_object(&server, &kept).is_some());

    let resp = server.authed("DELETE", "/api/conversations/a", b"");
    assert!(resp.status < 300, "{}", resp.text());
    server.stop(15);
    server.restart();
    wait_for("conversation a's content swept", 20, || {
        stored_object(&server, &gone).is_none().then_some(())
    });
    server.wait_log("changes: swept", 10);
    assert!(
        stored_object(&server, &kept).is_some(),
        "a stored turn's content was swept"
    );

    // Conversation b's turn still shows its diff, and its next turn records from a fresh index.
    let d = server
        .authed(
            "GET",
            &format!("/api/turns/{kept_turn}/changes/kept.txt"),
            b"",
        )
        .json();
    assert!(
        d["diff"]
            .as_str()
            .is_some_and(|t| t.contains("+stays here")),
        "{d}"
    );
    let next = server.send("b", json!({"message": "[[edit:kept.txt:stays=>still]]"}));
    let set = changes_of(&server, &next);
    assert_eq!(
        (&set["files"][0]["path"], &set["files"][0]["status"]),
        (&json!("kept.txt"), &json!("modified")),
        "{set}"
    );
    let d = server
        .authed("GET", &format!("/api/turns/{next}/changes/kept.txt"), b"")
        .json();
    let lines: Vec<&str> = d["diff"].as_str().unwrap_or("").lines().collect();
    assert!(
        lines.contains(&"-stays here") && lines.contains(&"+still here"),
        "{d}"
    );
}
