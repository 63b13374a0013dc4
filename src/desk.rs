//! Which terminal processes hold a CLI session: a `claude` of this user, not one of ours, whose arguments name the
//! session (`--resume ID`, `-r ID`, `--session-id ID`), or which continues the latest session (`-c`) in the
//! session's project, or which has the session's file open. Two writers on one session corrupt it, so the phone
//! asks before sending while one is live. Linux reads `/proc`; elsewhere the answer is "none seen".

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How a live process was recognized, the surest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum How {
    /// Its arguments name the session.
    Args,
    /// It continues the latest session (`-c`, `--continue`) in the session's project.
    Continue,
    /// It has the session's file open.
    OpenFile,
}

impl How {
    /// The name the API uses.
    pub fn as_str(self) -> &'static str {
        match self {
            How::Args => "args",
            How::Continue => "continue",
            How::OpenFile => "open-file",
        }
    }
}

/// What the scan found for one session.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Live {
    /// The processes holding it, lowest pid first.
    pub pids: Vec<i32>,
    /// The surest way one of them was recognized; `None` when there is none.
    pub how: Option<How>,
}

/// A `claude` process of the user's, not one of ours, as the scan saw it.
#[derive(Debug, Clone, Default)]
pub struct Terminal {
    /// Its pid.
    pub pid: i32,
    /// Its arguments after the program (and after the script, for `node …/cli.js`).
    pub args: Vec<String>,
    /// Its working directory.
    pub cwd: Option<PathBuf>,
    /// The files it has open (at most [`MAX_FDS`]).
    pub open: Vec<PathBuf>,
}

/// The most processes one scan looks at, and the most open files it reads of one process.
const MAX_PROCS: usize = 8192;
const MAX_FDS: usize = 1024;
/// How long one scan answers for.
const FRESH: Duration = Duration::from_secs(1);

/// Whether `terminals` hold the session `id` of the project `cwd` (canonical) whose file is `file`.
pub fn holding(terminals: &[Terminal], id: &str, cwd: &Path, file: Option<&Path>) -> Live {
    let mut found: Vec<(i32, How)> = Vec::new();
    for t in terminals {
        let how = if names_session(&t.args, id) {
            Some(How::Args)
        } else if continues(&t.args) && t.cwd.as_deref() == Some(cwd) {
            Some(How::Continue)
        } else if file.is_some_and(|f| t.open.iter().any(|o| o == f)) {
            Some(How::OpenFile)
        } else {
            None
        };
        if let Some(how) = how {
            found.push((t.pid, how));
        }
    }
    found.sort();
    Live {
        how: found.iter().map(|(_, h)| *h).min(),
        pids: found.into_iter().map(|(p, _)| p).collect(),
    }
}

/// Whether `args` resume or start the session `id`.
fn names_session(args: &[String], id: &str) -> bool {
    args.iter().enumerate().any(|(i, a)| {
        let next = || args.get(i + 1).is_some_and(|n| n == id);
        match a.as_str() {
            "--resume" | "-r" | "--session-id" => next(),
            _ => ["--resume=", "--session-id=", "-r="]
                .iter()
                .any(|p| a.strip_prefix(p) == Some(id)),
        }
    })
}

fn continues(args: &[String]) -> bool {
    args.iter().any(|a| a == "-c" || a == "--continue")
}

/// The arguments of a command line that runs the claude CLI (`claude …`, `node …/claude …`, `node …/cli.js …`
/// of a claude-code package), after the program; `None` for anything else.
pub fn claude_args(argv: &[String]) -> Option<Vec<String>> {
    let base = |s: &str| {
        Path::new(s)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
    };
    let is_claude = |s: &str| matches!(base(s).as_deref(), Some("claude" | "claude.exe"));
    let first = argv.first()?;
    if is_claude(first) {
        return Some(argv[1..].to_vec());
    }
    let second = argv.get(1)?;
    // A script named claude under any interpreter, or the npm package's cli.js under node.
    let node_cli = matches!(base(first).as_deref(), Some("node" | "bun"))
        && second.ends_with("cli.js")
        && second.contains("claude");
    (is_claude(second) || node_cli).then(|| argv[2..].to_vec())
}

/// The claude processes of this user that are not ours, seen at most [`FRESH`] ago.
pub fn terminals() -> Arc<Vec<Terminal>> {
    static LAST: Mutex<Option<(Instant, Arc<Vec<Terminal>>)>> = Mutex::new(None);
    let mut last = LAST.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((at, seen)) = last.as_ref()
        && at.elapsed() < FRESH
    {
        return seen.clone();
    }
    let seen = Arc::new(scan());
    *last = Some((Instant::now(), seen.clone()));
    seen
}

#[cfg(target_os = "linux")]
fn scan() -> Vec<Terminal> {
    use std::os::unix::fs::MetadataExt;
    let me = nix::unistd::getuid().as_raw();
    let own = std::process::id() as i32;
    let marker = format!("{}=", crate::claude::PROCESS_MARKER);
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for entry in dir.flatten().take(MAX_PROCS) {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        let proc = entry.path();
        if pid == own || !std::fs::metadata(&proc).is_ok_and(|m| m.uid() == me) {
            continue;
        }
        let Ok(cmdline) = std::fs::read(proc.join("cmdline")) else {
            continue;
        };
        let argv: Vec<String> = cmdline
            .split(|b| *b == 0)
            .filter(|a| !a.is_empty())
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        let Some(args) = claude_args(&argv) else {
            continue;
        };
        // Ours carry the process marker (the user's terminal never does).
        let environ = std::fs::read(proc.join("environ")).unwrap_or_default();
        if environ
            .split(|b| *b == 0)
            .any(|v| v.starts_with(marker.as_bytes()))
        {
            continue;
        }
        let open = std::fs::read_dir(proc.join("fd"))
            .map(|fds| {
                fds.flatten()
                    .take(MAX_FDS)
                    .filter_map(|fd| std::fs::read_link(fd.path()).ok())
                    .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
                    .collect()
            })
            .unwrap_or_default();
        found.push(Terminal {
            pid,
            args,
            cwd: std::fs::read_link(proc.join("cwd")).ok(),
            open,
        });
    }
    found
}

#[cfg(not(target_os = "linux"))]
fn scan() -> Vec<Terminal> {
    Vec::new()
}

/// The session `id`'s file under the CLI's config dir, for the project `cwd`: in the project's own folder, else in
/// any folder (a long path's folder name is hashed). `None` when there is none.
pub fn session_file(config_dir: &Path, cwd: &Path, id: &str) -> Option<PathBuf> {
    let projects = config_dir.join("projects");
    let name = format!("{id}.jsonl");
    let folder: String = cwd
        .to_string_lossy()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let direct = projects.join(folder).join(&name);
    if direct.is_file() {
        return Some(direct);
    }
    std::fs::read_dir(&projects)
        .ok()?
        .flatten()
        .take(MAX_PROCS)
        .map(|d| d.path().join(&name))
        .find(|p| p.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &[&str]) -> Vec<String> {
        s.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn command_lines_of_the_cli() {
        assert_eq!(
            claude_args(&v(&["/usr/bin/claude", "-r", "X"])),
            Some(v(&["-r", "X"]))
        );
        assert_eq!(
            claude_args(&v(&["node", "/l/claude-code/cli.js", "-c"])),
            Some(v(&["-c"]))
        );
        assert_eq!(
            claude_args(&v(&["node", "/home/me/.local/bin/claude"])),
            Some(vec![])
        );
        assert_eq!(claude_args(&v(&["vim", "claude.md"])), None);
        assert_eq!(claude_args(&v(&["node", "server.js"])), None);
        assert_eq!(claude_args(&v(&["claudette"])), None);
    }

    #[test]
    fn what_holds_a_session() {
        let id = "0bfe270f-4888-4ed1-835f-b8861b480f1e";
        let t = |pid, args: &[&str], cwd: &str, open: &[&str]| Terminal {
            pid,
            args: v(args),
            cwd: Some(PathBuf::from(cwd)),
            open: open.iter().map(PathBuf::from).collect(),
        };
        let file = Path::new("/c/projects/-p/s.jsonl");
        let all = [
            t(9, &["--resume", id], "/elsewhere", &[]),
            t(7, &[&format!("--resume={id}")], "/x", &[]),
            t(8, &["-c"], "/p", &[]),
            t(6, &["-c"], "/q", &[]),
            t(5, &[], "/q", &["/c/projects/-p/s.jsonl"]),
            t(4, &["-r", "other"], "/p", &[]),
        ];
        let live = holding(&all, id, Path::new("/p"), Some(file));
        assert_eq!(live.pids, vec![5, 7, 8, 9]);
        assert_eq!(live.how, Some(How::Args));
        let none = holding(&all[3..4], id, Path::new("/p"), Some(file));
        assert_eq!(none, Live::default());
    }
}
