//! What Claude asks during a turn: a `can_use_tool` request of the CLI becomes a stored pending request and a
//! `request` event; the person's answer goes back to the CLI as a `control_response` and ends it with a
//! `request_ended` event, as does the CLI withdrawing it or the turn ending first (docs/api.md, "Requests").

use std::collections::HashMap;
use std::io::Read as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Component, Path, PathBuf};

use serde_json::{Value, json};

use super::run::Stream;
use crate::claude::{Input, control};
use crate::diff;
use crate::store::{EventKind, PendingRequest, RequestKind, RequestState};

/// An answer for the turn that asked: the request (claimed in the store), the CLI's response to it, and where to
/// say whether it reached the CLI (false: the CLI withdrew the request first, or the turn ended).
pub type Answer = (PendingRequest, Value, tokio::sync::oneshot::Sender<bool>);

/// The largest file an edit's diff is shown for, before and after the edit.
const MAX_FILE: u64 = 1 << 20;

/// The requests of the running turn still waiting, by the CLI's request id → ours and when it was asked (None once
/// the person's answer is on its way: no longer timed).
pub(super) struct Asks {
    pending: HashMap<String, (String, Option<tokio::time::Instant>)>,
    /// The conversation's project directory: the only place an edit's file is read from for its diff.
    project: PathBuf,
}

impl Asks {
    pub(super) fn in_project(project: PathBuf) -> Self {
        Asks {
            pending: HashMap::new(),
            project,
        }
    }

    /// The CLI asks: a permission request is stored and shown; any other request is refused (the CLI then goes on
    /// without it).
    pub(super) fn asked(
        &mut self,
        stream: &mut Stream,
        input: &Input,
        cli_id: &str,
        request: &Value,
    ) {
        if request["subtype"] != "can_use_tool" {
            let what = request["subtype"].as_str().unwrap_or("?");
            input.send(control::error_line(
                cli_id,
                &format!("remote-agent does not handle {what} requests"),
            ));
            return;
        }
        let text = |k: &str| request[k].as_str().map(String::from);
        let tool_name = text("tool_name").unwrap_or_default();
        let input_value = request.get("input").cloned().unwrap_or(json!({}));
        let (diff, diff_note) = match preview(&self.project, &tool_name, &input_value) {
            None => (None, None),
            Some(Ok(d)) => (Some(d), None),
            Some(Err(why)) => (None, Some(why)),
        };
        let r = PendingRequest {
            id: uuid::Uuid::new_v4().to_string(),
            conversation_id: String::new(),
            turn_id: stream.turn_id.to_string(),
            cli_request_id: cli_id.to_string(),
            kind: RequestKind::of_tool(&tool_name),
            tool_name,
            input: input_value,
            suggestions: request
                .get("permission_suggestions")
                .filter(|v| v.is_array())
                .cloned()
                .unwrap_or(json!([])),
            blocked_path: text("blocked_path"),
            // The SDK's types allow a structured reason; keep it readable either way.
            decision_reason: request
                .get("decision_reason")
                .filter(|v| !v.is_null())
                .map(|v| {
                    v.as_str()
                        .map(String::from)
                        .unwrap_or_else(|| v.to_string())
                }),
            title: text("title"),
            display_name: text("display_name"),
            description: text("description"),
            tool_use_id: text("tool_use_id"),
            created_at: now_utc(),
            state: RequestState::Pending,
            diff,
            diff_note,
        };
        stream.flush();
        let conversation_id = stream.conversation_id.to_string();
        let r = PendingRequest {
            conversation_id,
            ..r
        };
        stream.emit(
            EventKind::Request,
            serde_json::to_value(&r).unwrap_or_default(),
        );
        let store = stream.store;
        if stream.flush_with(|events| store.insert_request(&r, events)) {
            super::tell::waiting(stream, &r);
            self.pending.insert(
                cli_id.to_string(),
                (r.id, Some(tokio::time::Instant::now())),
            );
        } else {
            // Unstored, it was shown to nobody; the turn is failing. The CLI must not wait on it meanwhile.
            input.send(control::response_line(
                cli_id,
                &json!({"behavior": "deny", "message": "remote-agent could not store this request"}),
            ));
        }
    }

    /// Whether the CLI still waits for this request of its.
    pub(super) fn is_waiting(&self, cli_id: &str) -> bool {
        self.pending.contains_key(cli_id)
    }

    /// The CLI took a request back: it must not be answered.
    pub(super) fn withdrawn(&mut self, stream: &mut Stream, cli_id: &str) {
        if let Some((id, _)) = self.pending.remove(cli_id) {
            end(stream, &id, RequestState::Withdrawn, None);
        }
    }

    /// The person answered (the request is already claimed in the store): the response goes to the CLI, once.
    /// True when the answer also stops the turn ("deny and stop": the CLI interrupts itself).
    pub(super) fn answer(
        &mut self,
        stream: &mut Stream,
        input: &Input,
        request: &PendingRequest,
        response: &Value,
    ) -> bool {
        if self.pending.remove(&request.cli_request_id).is_none() {
            return false;
        }
        input.send(control::response_line(&request.cli_request_id, response));
        stream.emit(
            EventKind::RequestEnded,
            json!({ "id": request.id, "state": RequestState::Answered, "decision": decision(response) }),
        );
        stream.flush();
        response["interrupt"] == true
    }

    /// The turn ends with requests still waiting: the process that asked will not take their answers.
    pub(super) fn expire_all(&mut self, stream: &mut Stream) {
        for (_, (id, _)) in self.pending.drain() {
            end(stream, &id, RequestState::Expired, None);
        }
    }

    /// When the oldest waiting request has waited `limit` (the `deny_unanswered_after` setting), if one waits.
    pub(super) fn next_deadline(
        &self,
        limit: Option<std::time::Duration>,
    ) -> Option<tokio::time::Instant> {
        let limit = limit?;
        self.pending
            .values()
            .filter_map(|(_, at)| Some((*at)? + limit))
            .min()
    }

    /// Denies every request that has waited `limit`, as an answer from the phone would (one that the person answered
    /// meanwhile keeps that answer).
    pub(super) fn deny_overdue(
        &mut self,
        stream: &mut Stream,
        input: &Input,
        limit: std::time::Duration,
    ) {
        let now = tokio::time::Instant::now();
        let overdue: Vec<String> = self
            .pending
            .values()
            .filter(|(_, at)| at.is_some_and(|at| at + limit <= now))
            .map(|(id, _)| id.clone())
            .collect();
        let deny = json!({
            "behavior": "deny",
            "message": format!(
                "Nobody answered within {} min, so this was denied.",
                (limit.as_secs_f64() / 60.0 * 10.0).round() / 10.0
            ),
        });
        for id in overdue {
            match stream.store.claim_request(&id, &deny) {
                Ok(request) => {
                    self.answer(stream, input, &request, &deny);
                }
                // Answered meanwhile: that answer is on its way to the turn; stop timing it.
                Err(_) => {
                    if let Some(entry) = self.pending.values_mut().find(|(i, _)| *i == id) {
                        entry.1 = None;
                    }
                }
            }
        }
    }
}

fn end(stream: &mut Stream, id: &str, state: RequestState, decision: Option<&str>) {
    stream.flush();
    let mut data = json!({ "id": id, "state": state });
    if let Some(d) = decision {
        data["decision"] = json!(d);
    }
    stream.emit(EventKind::RequestEnded, data);
    let store = stream.store;
    stream.flush_if(|events| store.end_request(id, state, events));
}

/// For an Edit, MultiEdit or Write: the unified diff it would make to its file, or why none is shown. The file is
/// read only if it is a regular file of the project (symlinks resolved: one that leads out is refused), text, and
/// at most [`MAX_FILE`] bytes; the edits are applied as the tool would apply them.
fn preview(project: &Path, tool: &str, input: &Value) -> Option<Result<String, String>> {
    if !matches!(tool, "Edit" | "MultiEdit" | "Write") {
        return None;
    }
    Some((|| {
        let path = input["file_path"]
            .as_str()
            .filter(|p| !p.is_empty())
            .ok_or("no file_path")?;
        let (rel, current) = read_in_project(project, Path::new(path))?;
        let text =
            |v: &Value, key: &str| v[key].as_str().map(String::from).ok_or(format!("no {key}"));
        let new = match tool {
            "Write" => text(input, "content")?,
            "Edit" => edited(current.as_deref(), input)?,
            _ => {
                let edits = input["edits"].as_array().ok_or("no edits")?;
                let mut now = current.clone();
                for (k, e) in edits.iter().enumerate() {
                    now = Some(
                        edited(now.as_deref(), e)
                            .map_err(|why| format!("edit {}: {why}", k + 1))?,
                    );
                }
                now.ok_or("no edits")?
            }
        };
        if new.len() as u64 > MAX_FILE {
            return Err(diff::TooLarge.to_string());
        }
        let old_name = match current {
            Some(_) => format!("a/{rel}"),
            None => "/dev/null".to_string(),
        };
        match diff::unified(
            current.as_deref().unwrap_or(""),
            &new,
            &old_name,
            &format!("b/{rel}"),
        ) {
            Ok(Some(d)) => Ok(d),
            Ok(None) => Err("no change".to_string()),
            Err(e) => Err(e.to_string()),
        }
    })())
}

/// One edit (`old_string`, `new_string`, `replace_all`) applied to the file's text (`None`: no such file) as the
/// tool does: the first occurrence, or every one; an empty `old_string` creates the file or fills an empty one.
fn edited(text: Option<&str>, edit: &Value) -> Result<String, String> {
    let old = edit["old_string"].as_str().ok_or("no old_string")?;
    let new = edit["new_string"].as_str().ok_or("no new_string")?;
    match text {
        None if old.is_empty() => Ok(new.to_string()),
        None => Err("the file does not exist".into()),
        Some("") if old.is_empty() => Ok(new.to_string()),
        Some(_) if old.is_empty() => Err("old_string is empty".into()),
        Some(t) if !t.contains(old) => Err("old_string is not in the file".into()),
        Some(t) if edit["replace_all"] == true => Ok(t.replace(old, new)),
        Some(t) => Ok(t.replacen(old, new, 1)),
    }
}

/// The file at `path` (relative to the project, or absolute): its path relative to the project and its text, or
/// `None` when it does not exist yet (a new file, whose nearest existing directory must be in the project).
fn read_in_project(project: &Path, path: &Path) -> Result<(String, Option<String>), String> {
    let outside = || "the file is outside the project".to_string();
    let root = project
        .canonicalize()
        .map_err(|e| format!("the project directory cannot be read ({e})"))?;
    let path = root.join(path);
    let relative = |real: &Path| -> Result<String, String> {
        let rel = real.strip_prefix(&root).map_err(|_| outside())?;
        Ok(rel.to_string_lossy().into_owned())
    };
    let real = match path.canonicalize() {
        Ok(real) => real,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            // A new file: the nearest ancestor that exists is resolved, and what follows it must only go down.
            let (base, rest) = path
                .ancestors()
                .find_map(|a| {
                    a.symlink_metadata()
                        .is_ok()
                        .then(|| (a, path.strip_prefix(a)))
                })
                .ok_or_else(outside)?;
            let rest = rest.map_err(|_| outside())?;
            if rest.as_os_str().is_empty()
                || !rest.components().all(|c| matches!(c, Component::Normal(_)))
            {
                // A dangling symlink, or a way out through `..`.
                return Err(outside());
            }
            let base = base.canonicalize().map_err(|_| outside())?;
            return Ok((relative(&base.join(rest))?, None));
        }
        Err(e) => return Err(format!("the file cannot be read ({e})")),
    };
    let rel = relative(&real)?;
    // Not through a symlink swapped in since, and never waiting on a FIFO.
    let flags = (nix::fcntl::OFlag::O_NOFOLLOW | nix::fcntl::OFlag::O_NONBLOCK).bits();
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(flags)
        .open(&real)
        .map_err(|e| format!("the file cannot be read ({e})"))?;
    let meta = file
        .metadata()
        .map_err(|e| format!("the file cannot be read ({e})"))?;
    if !meta.is_file() {
        return Err("not a regular file".into());
    }
    if meta.len() > MAX_FILE {
        return Err(diff::TooLarge.to_string());
    }
    let mut bytes = Vec::new();
    file.take(MAX_FILE + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("the file cannot be read ({e})"))?;
    if bytes.len() as u64 > MAX_FILE {
        return Err(diff::TooLarge.to_string());
    }
    match String::from_utf8(bytes) {
        Ok(text) if !text.contains('\0') => Ok((rel, Some(text))),
        _ => Err("a binary file".into()),
    }
}

/// The decision a response carries, in the API's words.
fn decision(response: &Value) -> &'static str {
    match (
        response["behavior"].as_str(),
        response.get("updatedPermissions").is_some(),
        response["interrupt"] == true,
    ) {
        (Some("allow"), true, _) => "allow_always",
        (Some("allow"), false, _) => "allow",
        (_, _, true) => "deny_and_stop",
        _ => "deny",
    }
}

/// Now, as the store writes times: `2026-11-24T20:31:02.123Z` (the formatting `history` has for the CLI's times).
fn now_utc() -> String {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    crate::history::format_time(since.as_millis() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decisions_are_read_back_from_the_response() {
        assert_eq!(
            decision(&json!({"behavior":"allow","updatedInput":{}})),
            "allow"
        );
        assert_eq!(
            decision(&json!({"behavior":"allow","updatedInput":{},"updatedPermissions":[{}]})),
            "allow_always"
        );
        assert_eq!(decision(&json!({"behavior":"deny","message":"no"})), "deny");
        assert_eq!(
            decision(&json!({"behavior":"deny","message":"no","interrupt":true})),
            "deny_and_stop"
        );
    }

    #[test]
    fn an_edit_in_the_project_is_shown_as_a_diff_of_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("proj");
        std::fs::create_dir_all(p.join("src")).unwrap();
        let file = p.join("src/a.txt");
        std::fs::write(&file, "one\ntwo\nthree\ntwo\n").unwrap();
        let f = file.to_str().unwrap();
        let edit = |input: Value| preview(&p, "Edit", &input).unwrap();
        assert_eq!(
            edit(json!({"file_path": f, "old_string": "two", "new_string": "2"})),
            Ok(
                "--- a/src/a.txt\n+++ b/src/a.txt\n@@ -1,4 +1,4 @@\n one\n-two\n+2\n three\n two\n"
                    .into()
            )
        );
        let all = edit(
            json!({"file_path": "src/a.txt", "old_string": "two", "new_string": "2", "replace_all": true}),
        );
        assert_eq!(all.unwrap().matches("+2\n").count(), 2);
        assert_eq!(
            edit(json!({"file_path": f, "old_string": "four", "new_string": "4"})),
            Err("old_string is not in the file".into())
        );
        let multi = json!({"file_path": f, "edits": [
            {"old_string": "one", "new_string": "1"}, {"old_string": "1\ntwo", "new_string": "1\n2"}]});
        let d = preview(&p, "MultiEdit", &multi).unwrap().unwrap();
        assert!(d.contains("-one\n-two\n+1\n+2\n"), "{d}");
        let bad = json!({"file_path": f, "edits": [{"old_string": "one", "new_string": "1"},
            {"old_string": "one", "new_string": "x"}]});
        assert_eq!(
            preview(&p, "MultiEdit", &bad).unwrap(),
            Err("edit 2: old_string is not in the file".into())
        );
        // Write: against the file, or from nothing for a new one (in a directory yet to be made).
        let w = preview(&p, "Write", &json!({"file_path": f, "content": "one\n"}))
            .unwrap()
            .unwrap();
        assert!(
            w.ends_with("@@ -1,4 +1 @@\n one\n-two\n-three\n-two\n"),
            "{w}"
        );
        let new = p.join("new/dir/b.txt");
        let w = preview(&p, "Write", &json!({"file_path": new, "content": "b"}))
            .unwrap()
            .unwrap();
        assert_eq!(
            w,
            "--- /dev/null\n+++ b/new/dir/b.txt\n@@ -0,0 +1 @@\n+b\n\\ No newline at end of file\n"
        );
        assert_eq!(preview(&p, "Bash", &json!({"command": "ls"})), None);
    }

    #[test]
    fn no_diff_outside_the_project_for_binary_or_large_files() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("proj");
        std::fs::create_dir(&p).unwrap();
        std::fs::write(dir.path().join("secret"), "key\n").unwrap();
        std::os::unix::fs::symlink(dir.path().join("secret"), p.join("link")).unwrap();
        std::os::unix::fs::symlink(dir.path(), p.join("up")).unwrap();
        std::os::unix::fs::symlink(dir.path().join("none"), p.join("dangling")).unwrap();
        std::fs::write(p.join("bin"), b"a\0b").unwrap();
        std::fs::write(p.join("big"), vec![b'x'; MAX_FILE as usize + 1]).unwrap();
        let why = |path: &str| {
            let input = json!({"file_path": path, "old_string": "key", "new_string": "stolen"});
            preview(&p, "Edit", &input).unwrap().unwrap_err()
        };
        let outside = "the file is outside the project";
        let secret = dir.path().join("secret");
        for path in [
            "../secret",
            secret.to_str().unwrap(),
            "link",
            "up/secret",
            "/etc/passwd",
        ] {
            assert_eq!(why(path), outside, "{path}");
        }
        let write =
            |path: &str| preview(&p, "Write", &json!({"file_path": path, "content": "x"})).unwrap();
        for path in ["dangling", "../new", "up/new", "newdir/../../new"] {
            assert_eq!(write(path), Err(outside.into()), "{path}");
        }
        assert_eq!(why("bin"), "a binary file");
        assert_eq!(why("big"), "too large to show");
        assert_eq!(why("."), "not a regular file");
        assert_eq!(why("missing"), "the file does not exist");
    }

    #[test]
    fn times_look_like_the_stores() {
        let t = now_utc();
        assert_eq!(t.len(), 24, "{t}");
        assert!(
            t.starts_with("20") && t.ends_with('Z') && t.as_bytes()[10] == b'T',
            "{t}"
        );
    }
}
