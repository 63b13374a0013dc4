//! `up`'s record of what it runs (`state.json` in the state dir) and the lock that allows one `up` per state dir.
//!
//! `up` writes the record whenever something changes; `serve` (`GET /api/status`, the metrics, the tunnel
//! listener's hostnames), `status`, `doctor`, `pair` and `import` read its fields. The file is the same JSON it
//! has always been: keys in alphabetical order, pretty-printed, replaced atomically.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

/// The file's name in the state dir.
const FILE: &str = "state.json";

/// What a running `up` records. Every field but `pid` may be missing from a file another program wrote (tests
/// stand in for `up` with a few keys), so they default when read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UpState {
    /// The supervisor's pid; a record whose process is gone is not live.
    pub pid: u32,
    /// Our version (`CARGO_PKG_VERSION`).
    #[serde(default)]
    pub version: Option<String>,
    /// When `up` started, in seconds since the Unix epoch.
    #[serde(default)]
    pub started_at_unix: Option<u64>,
    /// The user the server signs in.
    #[serde(default)]
    pub user: Option<String>,
    /// The projects the server runs conversations in, the default first (`import` attaches to one of them).
    #[serde(default)]
    pub projects: Vec<PathBuf>,
    /// `serve`'s local URL, once it listens.
    #[serde(default)]
    pub local_url: Option<String>,
    /// The tunnel, if any.
    #[serde(default)]
    pub tunnel: Tunnel,
    /// What became of each child.
    #[serde(default)]
    pub children: Children,
}

/// The tunnel as `up` last saw it.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Tunnel {
    /// Which tunnel: `none`, `quick` or `named`.
    #[serde(default)]
    pub kind: TunnelKind,
    /// Its public URL, once known (a quick tunnel's changes when it restarts).
    #[serde(default)]
    pub url: Option<String>,
    /// cloudflared holds a connection to the Cloudflare edge.
    #[serde(default)]
    pub ready: bool,
    /// Every name the tunnel routes to us (a named tunnel's ingress): serve's tunnel listener answers only these
    /// and `url`'s.
    #[serde(default)]
    pub hostnames: Vec<String>,
}

/// Which tunnel `up` runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TunnelKind {
    /// No tunnel: this computer and its network only.
    #[default]
    None,
    /// A quick tunnel on trycloudflare.com.
    Quick,
    /// A named tunnel, from a token or a config file.
    Named,
}

impl TunnelKind {
    /// The name the state file and `status` use.
    pub fn label(self) -> &'static str {
        match self {
            TunnelKind::None => "none",
            TunnelKind::Quick => "quick",
            TunnelKind::Named => "named",
        }
    }
}

/// `up`'s two children.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Children {
    /// The tunnel's cloudflared.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cloudflared: Option<Child>,
    /// The server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serve: Option<Child>,
}

impl Children {
    /// The children recorded, by name, in the order the file lists them.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, &Child)> {
        [("cloudflared", &self.cloudflared), ("serve", &self.serve)]
            .into_iter()
            .filter_map(|(name, c)| c.as_ref().map(|c| (name, c)))
    }
}

/// One child of `up`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Child {
    /// Its pid, while it runs (the last one's after it ended).
    #[serde(default)]
    pub pid: Option<u32>,
    /// Whether it runs.
    pub state: ChildStatus,
    /// How often it was restarted.
    #[serde(default)]
    pub restarts: u64,
    /// How its last run ended: an `ExitStatus` as Rust prints it, or what kept it from starting.
    #[serde(default)]
    pub last_exit: Option<String>,
}

/// Whether a child runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChildStatus {
    /// It runs.
    Running,
    /// It ended and is started again after a backoff.
    Restarting,
    /// It is not running and will not be started again.
    Stopped,
}

impl ChildStatus {
    /// The name the state file and `status` use.
    pub fn label(self) -> &'static str {
        match self {
            ChildStatus::Running => "running",
            ChildStatus::Restarting => "restarting",
            ChildStatus::Stopped => "stopped",
        }
    }
}

/// The record's path in `state_dir`.
pub fn path(state_dir: &Path) -> PathBuf {
    state_dir.join(FILE)
}

impl UpState {
    /// Replaces the record in `state_dir` atomically (a reader sees the old file or the new one, never half of
    /// one): the same pretty-printed JSON, keys in alphabetical order, that a `serde_json::Value` prints.
    pub fn write(&self, state_dir: &Path) -> std::io::Result<()> {
        let value = serde_json::to_value(self).map_err(std::io::Error::other)?;
        let path = path(state_dir);
        let tmp = state_dir.join(format!("{FILE}.tmp"));
        std::fs::write(&tmp, format!("{value:#}\n")).and_then(|()| std::fs::rename(&tmp, &path))
    }
}

/// The record in `state_dir`, whether or not its `up` still runs (None when there is none or it does not parse).
pub fn read(state_dir: &Path) -> Option<UpState> {
    serde_json::from_slice(&std::fs::read(path(state_dir)).ok()?).ok()
}

/// The record of a live `up` in `state_dir`: None when there is none or its process is gone.
pub fn read_live(state_dir: &Path) -> Option<UpState> {
    let state = read(state_dir)?;
    let pid = i32::try_from(state.pid).ok().filter(|p| *p > 0)?;
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).ok()?;
    Some(state)
}

/// Removes the record, as `up` stops.
pub fn remove(state_dir: &Path) {
    let _ = std::fs::remove_file(path(state_dir));
}

/// The held lock: one `up` per state dir. Released when dropped (or when the process ends).
pub type Lock = nix::fcntl::Flock<std::fs::File>;

/// Takes the lock on `up.lock` in `state_dir`, or says where the `up` that holds it serves.
pub fn lock(state_dir: &Path) -> anyhow::Result<Lock> {
    let path = state_dir.join("up.lock");
    let file = crate::files::append_private(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock).map_err(|_| {
        let state = read(state_dir);
        let pid = state.as_ref().map(|s| s.pid);
        let local = state.as_ref().and_then(|s| s.local_url.clone());
        let public = state.as_ref().and_then(|s| s.tunnel.url.clone());
        anyhow::anyhow!(
            "remote-agent up is already running for {} (pid {}), serving {}{}",
            state_dir.display(),
            pid.map_or("?".into(), |p| p.to_string()),
            local.unwrap_or_else(|| "(starting)".into()),
            public.map(|p| format!(" and {p}")).unwrap_or_default()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> UpState {
        UpState {
            pid: 42,
            version: Some("1.2.3".into()),
            started_at_unix: Some(1_700_000_000),
            user: Some("me".into()),
            projects: vec!["/home/me/p".into()],
            local_url: Some("http://127.0.0.1:8000".into()),
            tunnel: Tunnel {
                kind: TunnelKind::Quick,
                url: Some("https://a-b.trycloudflare.com".into()),
                ready: true,
                hostnames: vec![],
            },
            children: Children {
                cloudflared: Some(Child {
                    pid: None,
                    state: ChildStatus::Restarting,
                    restarts: 2,
                    last_exit: Some("exit status: 1".into()),
                }),
                serve: Some(Child {
                    pid: Some(7),
                    state: ChildStatus::Running,
                    restarts: 0,
                    last_exit: None,
                }),
            },
        }
    }

    #[test]
    fn the_file_is_the_json_it_always_was() {
        let dir = tempfile::tempdir().unwrap();
        sample().write(dir.path()).unwrap();
        let text = std::fs::read_to_string(path(dir.path())).unwrap();
        // What `up` wrote with `json!` before the record was typed: sorted keys, pretty-printed.
        let before = serde_json::json!({
            "pid": 42, "version": "1.2.3", "started_at_unix": 1_700_000_000u64, "user": "me",
            "projects": ["/home/me/p"], "local_url": "http://127.0.0.1:8000",
            "tunnel": {"kind": "quick", "url": "https://a-b.trycloudflare.com", "ready": true, "hostnames": []},
            "children": {
                "serve": {"pid": 7, "state": "running", "restarts": 0, "last_exit": null},
                "cloudflared": {"pid": null, "state": "restarting", "restarts": 2, "last_exit": "exit status: 1"},
            },
        });
        assert_eq!(text, format!("{before:#}\n"));
        assert_eq!(read(dir.path()), Some(sample()));
        assert!(!dir.path().join("state.json.tmp").exists());
    }

    #[test]
    fn a_partial_record_reads_with_defaults_and_one_without_pid_not_at_all() {
        let dir = tempfile::tempdir().unwrap();
        let file = path(dir.path());
        std::fs::write(
            &file,
            r#"{"pid": 1, "tunnel": {"kind": "named", "url": null}}"#,
        )
        .unwrap();
        let state = read(dir.path()).unwrap();
        assert_eq!(state.tunnel.kind, TunnelKind::Named);
        assert!(state.tunnel.hostnames.is_empty() && state.children.iter().next().is_none());
        std::fs::write(&file, r#"{"tunnel": {"kind": "quick"}}"#).unwrap();
        assert_eq!(read(dir.path()), None);
    }

    #[test]
    fn only_a_live_pid_makes_a_live_record() {
        let dir = tempfile::tempdir().unwrap();
        let mut state = sample();
        state.pid = std::process::id();
        state.write(dir.path()).unwrap();
        assert_eq!(read_live(dir.path()), Some(state.clone()));
        state.pid = 0;
        state.write(dir.path()).unwrap();
        assert_eq!(read_live(dir.path()), None);
        remove(dir.path());
        assert_eq!(read(dir.path()), None);
    }
}
