//! A change set from the turn's own edit tool calls (Edit, MultiEdit, Write, NotebookEdit): outside a git
//! repository this is all there is, and inside one it says which changed files Claude named.

use std::path::{Component, Path};

use serde_json::Value;

use super::{FileChange, Status};

/// The tools that edit files, and the input field that names the file.
const EDIT_TOOLS: [(&str, &str); 4] = [
    ("Edit", "file_path"),
    ("MultiEdit", "file_path"),
    ("Write", "file_path"),
    ("NotebookEdit", "notebook_path"),
];

/// One edit tool call: its id, tool name and input.
pub(super) struct Call {
    pub id: String,
    pub name: String,
    pub input: Value,
}

/// The file a call names, relative to the project (`cwd`, or `project` as the conversation names it); None for
/// another tool or a path outside the project.
pub(super) fn named(call: &Call, roots: &[&Path]) -> Option<String> {
    let field = EDIT_TOOLS.iter().find(|(n, _)| *n == call.name)?.1;
    let path = Path::new(call.input.get(field)?.as_str()?);
    let rel = if path.is_absolute() {
        roots.iter().find_map(|r| path.strip_prefix(r).ok())?
    } else {
        path
    };
    if rel.as_os_str().is_empty() || rel.components().any(|c| !matches!(c, Component::Normal(_))) {
        return None;
    }
    rel.to_str().map(str::to_string)
}

/// The diff one call made to its file: from its input (Edit and MultiEdit show the replaced strings, so their
/// line numbers count from the string, not the file; Write shows the whole new content).
fn call_diff(call: &Call, path: &str) -> Result<String, crate::diff::TooLarge> {
    let (a, b) = (format!("a/{path}"), format!("b/{path}"));
    let s = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    let pairs: Vec<(String, String)> = match call.name.as_str() {
        "Edit" => vec![(s(&call.input, "old_string"), s(&call.input, "new_string"))],
        "MultiEdit" => call
            .input
            .get("edits")
            .and_then(Value::as_array)
            .map(|edits| {
                edits
                    .iter()
                    .map(|e| (s(e, "old_string"), s(e, "new_string")))
                    .collect()
            })
            .unwrap_or_default(),
        "Write" => vec![(String::new(), s(&call.input, "content"))],
        _ => vec![(String::new(), s(&call.input, "new_source"))],
    };
    let mut out = String::new();
    for (old, new) in pairs {
        let with_newline = |t: String| {
            if t.is_empty() || t.ends_with('\n') {
                t
            } else {
                t + "\n"
            }
        };
        let (old, new) = (with_newline(old), with_newline(new));
        if let Some(d) = crate::diff::unified(&old, &new, &a, &b)? {
            // One header for the file; each call adds its hunks.
            let hunks = d.splitn(3, '\n').nth(2).unwrap_or_default();
            out.push_str(hunks);
        }
    }
    Ok(out)
}

/// A file's change per the calls that named it: its status, counts and diff (None when too large to show).
pub(super) fn changes(calls: &[Call], roots: &[&Path]) -> Vec<(FileChange, Option<String>)> {
    let mut out: Vec<(FileChange, Option<String>)> = Vec::new();
    for call in calls {
        let Some(path) = named(call, roots) else {
            continue;
        };
        let diff = call_diff(call, &path);
        let at = match out.iter().position(|(f, _)| f.path == path) {
            Some(at) => at,
            None => {
                out.push((
                    FileChange {
                        path: path.clone(),
                        old_path: None,
                        // A first Write makes the file (Claude reads a file before it overwrites it, and a Read
                        // is no edit, so a Write after one is still counted as added: we cannot tell).
                        status: if call.name == "Write" {
                            Status::Added
                        } else {
                            Status::Modified
                        },
                        added: 0,
                        removed: 0,
                        binary: false,
                        by_claude: true,
                    },
                    Some(String::new()),
                ));
                out.len() - 1
            }
        };
        let (file, text) = &mut out[at];
        match (diff, text.as_mut()) {
            (Ok(d), Some(text)) => {
                file.added += d.lines().filter(|l| l.starts_with('+')).count();
                file.removed += d.lines().filter(|l| l.starts_with('-')).count();
                text.push_str(&d);
            }
            _ => *text = None,
        }
    }
    for (file, text) in &mut out {
        if let Some(t) = text {
            let old = if file.status == Status::Added {
                "/dev/null".to_string()
            } else {
                format!("a/{}", file.path)
            };
            *t = format!("--- {old}\n+++ b/{}\n{t}", file.path);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn call(name: &str, input: Value) -> Call {
        Call {
            id: "t".into(),
            name: name.into(),
            input,
        }
    }

    #[test]
    fn edits_and_writes_in_the_project_give_files_with_diffs() {
        let root = Path::new("/p");
        let calls = [
            call(
                "Edit",
                json!({"file_path": "/p/a.txt", "old_string": "one\ntwo", "new_string": "one\nthree"}),
            ),
            call(
                "Write",
                json!({"file_path": "/p/new.md", "content": "# hi\n"}),
            ),
            call(
                "Write",
                json!({"file_path": "/elsewhere/x", "content": "x"}),
            ),
            call(
                "Edit",
                json!({"file_path": "/p/../etc/passwd", "old_string": "a", "new_string": "b"}),
            ),
            call("Bash", json!({"command": "rm -rf /"})),
        ];
        let got = changes(&calls, &[root]);
        assert_eq!(got.len(), 2);
        let (a, diff) = &got[0];
        assert_eq!(
            (a.path.as_str(), a.status, a.added, a.removed),
            ("a.txt", Status::Modified, 1, 1)
        );
        assert_eq!(
            diff.as_deref().unwrap(),
            "--- a/a.txt\n+++ b/a.txt\n@@ -1,2 +1,2 @@\n one\n-two\n+three\n"
        );
        let (n, diff) = &got[1];
        assert_eq!((n.status, n.added), (Status::Added, 1));
        assert_eq!(
            diff.as_deref().unwrap(),
            "--- /dev/null\n+++ b/new.md\n@@ -0,0 +1 @@\n+# hi\n"
        );
    }
}
