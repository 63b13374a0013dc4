//! Git, run as a child: the working tree's state as a tree written with an index and an object store of our own
//! (the user's index, stash and objects are never written), and the difference of two such trees.

use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use tokio::io::AsyncReadExt;

use super::{FileChange, Status};

/// The longest any one git command may run.
const TIMEOUT: Duration = Duration::from_secs(10);
/// The most a listing may print (a turn that touched this much is listed only so far).
const LIST_LIMIT: usize = 8 << 20;

/// Why git did not give an answer.
#[derive(Debug)]
pub(super) enum GitError {
    /// It printed more than we read.
    TooLarge,
    /// It failed, timed out or could not start: in words.
    Failed(String),
}

impl std::fmt::Display for GitError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GitError::TooLarge => f.write_str("too large"),
            GitError::Failed(why) => f.write_str(why),
        }
    }
}

/// The repository a project lies in.
#[derive(Debug, Clone)]
pub(super) struct Repo {
    /// Its git dir (`.git`, or a worktree's).
    pub git_dir: PathBuf,
    /// The project's path inside the working tree: `sub/dir/`, or empty at its top.
    pub prefix: String,
    objects: PathBuf,
    index: PathBuf,
}

/// Runs `git -c core.quotepath=off ARGS` in `cwd` with a clean environment plus `env`, in a process group of its
/// own, for at most [`TIMEOUT`]; its output, up to `limit` bytes.
async fn run(
    cwd: &Path,
    env: &[(&str, &OsStr)],
    args: &[&OsStr],
    limit: usize,
) -> Result<Vec<u8>, GitError> {
    let mut cmd = tokio::process::Command::new("git");
    cmd.arg("-c")
        .arg("core.quotepath=off")
        .args(args)
        .current_dir(cwd)
        .env_clear()
        .env("LC_ALL", "C")
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    for var in ["PATH", "HOME"] {
        if let Some(v) = std::env::var_os(var) {
            cmd.env(var, v);
        }
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    #[cfg(target_os = "linux")]
    crate::process::die_with_parent(&mut cmd);
    let mut child = crate::process::spawn_from_lasting_thread(cmd)
        .map_err(|e| GitError::Failed(format!("git could not start: {e}")))?;
    let pid = child.id();
    let (mut out, mut err) = (child.stdout.take(), child.stderr.take());
    let work = async {
        let mut stdout = Vec::new();
        let mut stderr = Vec::new();
        if let Some(out) = out.as_mut() {
            out.take(limit as u64 + 1).read_to_end(&mut stdout).await?;
        }
        if stdout.len() > limit {
            return Ok((None, stdout, stderr));
        }
        if let Some(err) = err.as_mut() {
            err.take(4096).read_to_end(&mut stderr).await?;
        }
        let status = child.wait().await?;
        Ok::<_, std::io::Error>((Some(status), stdout, stderr))
    };
    let done = tokio::time::timeout(TIMEOUT, work).await;
    let stop = || {
        if let Some(pid) = pid {
            crate::process::signal_group(pid, nix::sys::signal::Signal::SIGKILL);
        }
    };
    match done {
        Err(_) => {
            stop();
            Err(GitError::Failed(format!(
                "git took longer than {} s",
                TIMEOUT.as_secs()
            )))
        }
        Ok(Err(e)) => {
            stop();
            Err(GitError::Failed(format!("git: {e}")))
        }
        Ok(Ok((None, _, _))) => {
            stop();
            Err(GitError::TooLarge)
        }
        Ok(Ok((Some(status), stdout, stderr))) if status.success() => {
            let _ = stderr;
            Ok(stdout)
        }
        Ok(Ok((Some(status), _, stderr))) => {
            let said = String::from_utf8_lossy(&stderr);
            let said = said.trim();
            Err(GitError::Failed(if said.is_empty() {
                format!("git failed ({status})")
            } else {
                format!("git: {}", said.lines().last().unwrap_or(said))
            }))
        }
    }
}

fn os(s: &str) -> &OsStr {
    OsStr::new(s)
}

/// The repository `cwd` lies in; None outside one (or where git is missing).
pub(super) async fn repo(cwd: &Path) -> Option<Repo> {
    let args = [
        "rev-parse",
        "--path-format=absolute",
        "--show-toplevel",
        "--absolute-git-dir",
        "--git-path",
        "objects",
        "--git-path",
        "index",
        "--show-prefix",
    ];
    let out = run(cwd, &[], &args.map(os), 64 << 10).await.ok()?;
    let text = String::from_utf8(out).ok()?;
    let mut lines = text.split('\n');
    let mut next = || lines.next().map(str::to_string);
    next().filter(|l| !l.is_empty())?;
    Some(Repo {
        git_dir: PathBuf::from(next()?),
        objects: PathBuf::from(next()?),
        index: PathBuf::from(next()?),
        prefix: next().unwrap_or_default(),
    })
}

/// Our own index and object store for a working tree, under the data dir, named by its git dir's path.
pub(super) fn ours(data_dir: &Path, git_dir: &Path) -> PathBuf {
    use sha2::Digest;
    let hash = sha2::Sha256::digest(git_dir.as_os_str().as_encoded_bytes());
    let name: String = hash[..12].iter().map(|b| format!("{b:02x}")).collect();
    data_dir.join("changes").join(name)
}

/// One snapshot at a time per working tree (two conversations may share one): our index is not shared.
pub(super) fn lock_for(dir: &Path) -> Arc<tokio::sync::Mutex<()>> {
    static LOCKS: OnceLock<Mutex<HashMap<PathBuf, Arc<tokio::sync::Mutex<()>>>>> = OnceLock::new();
    let mut locks = LOCKS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    locks.entry(dir.to_path_buf()).or_default().clone()
}

/// The environment that points git at our object store, reading the user's objects through it.
fn object_env<'a>(objects: &'a Path, user_objects: &'a Path) -> Vec<(&'static str, &'a OsStr)> {
    vec![
        ("GIT_OBJECT_DIRECTORY", objects.as_os_str()),
        ("GIT_ALTERNATE_OBJECT_DIRECTORIES", user_objects.as_os_str()),
    ]
}

/// The working tree under `cwd` as a tree id: `git add -A` into our index (seeded from a copy of the user's the
/// first time, so its stat cache is warm and unchanged files are not read), then `git write-tree`. New contents go
/// to our object store; .gitignore is respected.
pub(super) async fn snapshot(data_dir: &Path, cwd: &Path, repo: &Repo) -> Result<String, GitError> {
    let dir = ours(data_dir, &repo.git_dir);
    let lock = lock_for(&dir);
    let _held = lock.lock().await;
    let (index, objects) = (dir.join("index"), dir.join("objects"));
    std::fs::create_dir_all(&objects)
        .map_err(|e| GitError::Failed(format!("could not make {}: {e}", objects.display())))?;
    // A git we stopped leaves its lock behind; the index is ours alone (and we hold the lock above).
    let _ = std::fs::remove_file(dir.join("index.lock"));
    if !index.exists() {
        let _ = std::fs::copy(&repo.index, &index);
    }
    let mut env = object_env(&objects, &repo.objects);
    env.push(("GIT_INDEX_FILE", index.as_os_str()));
    let add = ["add", "-A", "--ignore-errors", "--", "."].map(os);
    if let Err(first) = run(cwd, &env, &add, 1 << 20).await {
        // A copied index git cannot use (a split index, a newer format): start from none.
        let _ = std::fs::remove_file(dir.join("index.lock"));
        if std::fs::remove_file(&index).is_err() {
            return Err(first);
        }
        run(cwd, &env, &add, 1 << 20).await?;
    }
    let out = run(cwd, &env, &[os("write-tree")], 1024).await?;
    let tree = String::from_utf8_lossy(&out).trim().to_string();
    if tree.is_empty() || !tree.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(GitError::Failed("git write-tree said nothing".into()));
    }
    Ok(tree)
}

/// Where two trees of a record can be read: the git dir, with our objects.
pub(super) struct Trees<'a> {
    pub data_dir: &'a Path,
    pub git_dir: &'a Path,
    pub prefix: &'a str,
}

impl Trees<'_> {
    async fn git(&self, args: &[&OsStr], limit: usize) -> Result<Vec<u8>, GitError> {
        // Read from the git dir and our objects alone, so a moved or deleted working tree still shows its past
        // turns.
        let objects = ours(self.data_dir, self.git_dir).join("objects");
        let common = std::fs::read_to_string(self.git_dir.join("commondir"))
            .ok()
            .map(|c| self.git_dir.join(c.trim()));
        let user_objects = common.as_deref().unwrap_or(self.git_dir).join("objects");
        let mut env = object_env(&objects, &user_objects);
        env.push(("GIT_DIR", self.git_dir.as_os_str()));
        let cwd = if self.git_dir.is_dir() {
            self.git_dir
        } else {
            Path::new("/")
        };
        run(cwd, &env, args, limit).await
    }

    /// Every object the trees `trees` reach, ours and the user's: what a sweep keeps.
    pub async fn reachable(&self, trees: &HashSet<String>) -> Result<HashSet<String>, GitError> {
        let mut args = vec![os("rev-list"), os("--objects")];
        args.extend(trees.iter().map(|t| os(t)));
        let out = self.git(&args, 256 << 20).await?;
        Ok(String::from_utf8_lossy(&out)
            .lines()
            .filter_map(|l| l.split(' ').next())
            .filter(|id| !id.is_empty())
            .map(str::to_string)
            .collect())
    }

    fn relative(&self) -> String {
        format!("--relative={}", self.prefix)
    }

    /// The files that differ between `before` and `after` under the project, renames found.
    pub async fn list(&self, before: &str, after: &str) -> Result<Vec<FileChange>, GitError> {
        if before == after {
            return Ok(Vec::new());
        }
        let rel = self.relative();
        let mut common = vec![
            "diff-tree",
            "-r",
            "-M",
            "-z",
            "--no-ext-diff",
            "--no-textconv",
        ];
        if !self.prefix.is_empty() {
            common.push(&rel);
        }
        let with = |what: &'static str| {
            let mut a: Vec<&OsStr> = common.iter().map(|s| os(s)).collect();
            a.extend([os(what), os(before), os(after)]);
            a
        };
        let names = self.git(&with("--name-status"), LIST_LIMIT).await?;
        let counts = self.git(&with("--numstat"), LIST_LIMIT).await?;
        Ok(parse(&names, &counts))
    }

    /// The unified diff of one file (and its old name, for a rename) between the two trees, from its `---` line
    /// on; at most `limit` bytes.
    pub async fn diff(
        &self,
        before: &str,
        after: &str,
        file: &FileChange,
        limit: usize,
    ) -> Result<String, GitError> {
        let rel = self.relative();
        let mut args: Vec<&OsStr> = ["--literal-pathspecs", "diff-tree"].map(os).to_vec();
        let fixed = [
            "-p",
            "-M",
            "--no-color",
            "--no-ext-diff",
            "--no-textconv",
            "-U3",
            "--src-prefix=a/",
            "--dst-prefix=b/",
        ];
        args.extend(fixed.map(os));
        if !self.prefix.is_empty() {
            args.push(os(&rel));
        }
        args.extend([os(before), os(after), os("--")]);
        let full: Vec<String> = std::iter::once(&file.path)
            .chain(file.old_path.as_ref())
            .map(|p| format!("{}{p}", self.prefix))
            .collect();
        args.extend(full.iter().map(|p| os(p)));
        let out = self.git(&args, limit).await?;
        let text = String::from_utf8_lossy(&out);
        Ok(match text.find("\n--- ") {
            Some(at) => text[at + 1..].to_string(),
            None if text.starts_with("--- ") => text.into_owned(),
            None => String::new(),
        })
    }
}

/// `--name-status -z` and `--numstat -z` output, joined by path.
fn parse(names: &[u8], counts: &[u8]) -> Vec<FileChange> {
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    let mut files: Vec<FileChange> = Vec::new();
    let mut fields = names.split(|&b| b == 0).filter(|f| !f.is_empty());
    while let Some(code) = fields.next() {
        let (status, two) = match code.first() {
            Some(b'A') => (Status::Added, false),
            Some(b'D') => (Status::Deleted, false),
            Some(b'R') => (Status::Renamed, true),
            Some(b'C') => (Status::Added, true),
            Some(_) => (Status::Modified, false),
            None => continue,
        };
        let first = fields.next().map(text).unwrap_or_default();
        let (old_path, path) = if two {
            let second = fields.next().map(text).unwrap_or_default();
            ((status == Status::Renamed).then_some(first), second)
        } else {
            (None, first)
        };
        files.push(FileChange {
            path,
            old_path,
            status,
            added: 0,
            removed: 0,
            binary: false,
            by_claude: false,
        });
    }
    // `A<TAB>R<TAB>path\0`, or for a rename `A<TAB>R<TAB>\0old\0new\0`.
    let mut fields = counts.split(|&b| b == 0);
    while let Some(head) = fields.next() {
        if head.is_empty() {
            continue;
        }
        let head = text(head);
        let mut parts = head.splitn(3, '\t');
        let (a, r, p) = (
            parts.next().unwrap_or(""),
            parts.next().unwrap_or(""),
            parts.next().unwrap_or(""),
        );
        let path = if p.is_empty() {
            fields.next();
            fields.next().map(text).unwrap_or_default()
        } else {
            p.to_string()
        };
        if let Some(f) = files.iter_mut().find(|f| f.path == path) {
            f.binary = a == "-";
            f.added = a.parse().unwrap_or(0);
            f.removed = r.parse().unwrap_or(0);
        }
    }
    files
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_status_and_numstat_are_joined() {
        let names = b"M\0a.txt\0R087\0old name\0new name\0A\0bin.dat\0D\0gone\0";
        let counts = b"3\t1\ta.txt\0" as &[u8];
        let counts = [
            counts,
            b"1\t1\t\0old name\0new name\0-\t-\tbin.dat\x000\t2\tgone\0",
        ]
        .concat();
        let files = parse(names, &counts);
        assert_eq!(files.len(), 4);
        assert_eq!((files[0].added, files[0].removed), (3, 1));
        assert_eq!(files[1].status, Status::Renamed);
        assert_eq!(files[1].old_path.as_deref(), Some("old name"));
        assert_eq!(files[1].path, "new name");
        assert_eq!((files[1].added, files[1].removed), (1, 1));
        assert!(files[2].binary && files[2].status == Status::Added);
        assert_eq!((files[3].status, files[3].removed), (Status::Deleted, 2));
    }
}
