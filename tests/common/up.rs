//! A running `remote-agent up` in temp dirs, with the fake claude and the fake cloudflared, its stdout collected
//! line by line; stopped with SIGTERM (then SIGKILL) on drop.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{PASSWORD, USER, unsafe_kill, wait_for};

/// Our fake cloudflared (an example target).
pub fn fake_cloudflared() -> PathBuf {
    super::bin()
        .parent()
        .unwrap()
        .join("examples/fake-cloudflared")
}

/// A running `up` in temp dirs, its stdout collected line by line.
pub struct Up {
    child: Option<Child>,
    pub root: tempfile::TempDir,
    out: Arc<Mutex<Vec<String>>>,
    /// When each line arrived, and when `up` was started.
    times: Arc<Mutex<Vec<Instant>>>,
    pub started: Instant,
}

pub struct UpBuilder {
    args: Vec<String>,
    envs: Vec<(String, String)>,
    credentials: bool,
    root: Option<tempfile::TempDir>,
    /// Its stdout is a terminal (a pty), as when a person runs it, rather than a pipe, as under a service.
    tty: bool,
}

impl UpBuilder {
    pub fn arg(mut self, a: impl AsRef<str>) -> Self {
        self.args.push(a.as_ref().into());
        self
    }
    pub fn env(mut self, k: &str, v: impl AsRef<str>) -> Self {
        self.envs.push((k.into(), v.as_ref().into()));
        self
    }
    pub fn without_credentials(mut self) -> Self {
        self.credentials = false;
        self
    }
    pub fn in_dir(mut self, root: tempfile::TempDir) -> Self {
        self.root = Some(root);
        self
    }
    /// Runs `up` with a pseudo-terminal for its stdout.
    pub fn tty(mut self) -> Self {
        self.tty = true;
        self
    }
    pub fn start(self) -> Up {
        let root = self.root.unwrap_or_else(|| tempfile::tempdir().unwrap());
        for d in ["project", "home", "record"] {
            let _ = std::fs::create_dir(root.path().join(d));
        }
        let mut cmd = Command::new(super::bin());
        cmd.arg("up")
            .args(["--host", "127.0.0.1", "--port", "0"])
            .arg("--data-dir")
            .arg(root.path().join("data"))
            .arg("--state-dir")
            .arg(root.path().join("state"))
            .arg("--project")
            .arg(root.path().join("project"))
            .args(&self.args)
            .current_dir(root.path())
            .env("HOME", root.path().join("home"))
            .env("CLAUDE_BIN", super::fake_claude())
            .env("CLOUDFLARED_BIN", fake_cloudflared())
            .env("FAKE_CLOUDFLARED_RECORD", root.path().join("record"))
            .env_remove("AUTH_USERNAME")
            .env_remove("AUTH_PASSWORD")
            .env_remove("REMOTE_AGENT_CONFIG")
            .envs(self.envs.iter().map(|(k, v)| (k, v)))
            .stderr(Stdio::inherit());
        if self.credentials {
            cmd.env("AUTH_USERNAME", USER)
                .env("AUTH_PASSWORD", PASSWORD);
        }
        let stdout: Box<dyn std::io::Read + Send> = if self.tty {
            let pty = nix::pty::openpty(None, None).expect("openpty");
            cmd.stdout(Stdio::from(pty.slave));
            Box::new(std::fs::File::from(pty.master))
        } else {
            cmd.stdout(Stdio::piped());
            Box::new(std::io::empty())
        };
        let mut child = cmd.spawn().expect("start remote-agent up");
        // Our copy of the pty's terminal end goes with `cmd`, so the reader sees the end when `up` exits.
        drop(cmd);
        let started = Instant::now();
        let out = Arc::new(Mutex::new(Vec::new()));
        let times = Arc::new(Mutex::new(Vec::new()));
        let (sink, stamps) = (out.clone(), times.clone());
        let stdout = match child.stdout.take() {
            Some(pipe) => Box::new(pipe),
            None => stdout,
        };
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                // A terminal ends lines with CR LF; reading past the end of a pty is an error (EIO).
                let Ok(line) = line else { break };
                stamps.lock().unwrap().push(Instant::now());
                sink.lock()
                    .unwrap()
                    .push(line.trim_end_matches('\r').to_string());
            }
        });
        Up {
            child: Some(child),
            root,
            out,
            times,
            started,
        }
    }
}

impl Up {
    pub fn builder() -> UpBuilder {
        UpBuilder {
            args: vec![],
            envs: vec![],
            credentials: true,
            root: None,
            tty: false,
        }
    }

    pub fn output(&self) -> String {
        self.out.lock().unwrap().join("\n")
    }

    /// Waits for a printed line containing `needle` (after the `skip` first lines); returns it.
    pub fn wait_line(&self, needle: &str, skip: usize, secs: u64) -> String {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            if let Some(line) = self
                .out
                .lock()
                .unwrap()
                .iter()
                .skip(skip)
                .find(|l| l.contains(needle))
            {
                return line.clone();
            }
            assert!(
                Instant::now() < deadline,
                "no line with {needle:?} within {secs} s; printed:\n{}",
                self.output()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// When the first line containing `needle` (after `skip` lines) arrived.
    pub fn line_time(&self, needle: &str, skip: usize) -> Instant {
        self.wait_line(needle, skip, 20);
        let out = self.out.lock().unwrap();
        let i = out
            .iter()
            .skip(skip)
            .position(|l| l.contains(needle))
            .unwrap()
            + skip;
        self.times.lock().unwrap()[i]
    }

    pub fn lines(&self) -> usize {
        self.out.lock().unwrap().len()
    }

    pub fn state(&self) -> Value {
        wait_for("state.json", 10, || {
            let bytes = std::fs::read(self.root.path().join("state/state.json")).ok()?;
            serde_json::from_slice(&bytes).ok()
        })
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().unwrap().id() as i32
    }

    pub fn child_pid(&self, name: &str) -> i32 {
        wait_for(&format!("{name} to run"), 10, || {
            let s = self.state();
            (s["children"][name]["state"] == "running")
                .then(|| s["children"][name]["pid"].as_i64())
                .flatten()
                .map(|p| p as i32)
        })
    }

    pub fn local(&self) -> std::net::SocketAddr {
        let line = self.wait_line("local:", 0, 20);
        line.split("http://")
            .nth(1)
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    }

    pub fn health(&self) -> Option<u16> {
        let addr = self.local();
        let stream = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
        drop(stream);
        Some(
            super::raw_request(
                addr,
                b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            )
            .status,
        )
    }

    pub fn starts(&self) -> Vec<String> {
        std::fs::read_to_string(self.root.path().join("record/starts"))
            .unwrap_or_default()
            .lines()
            .map(String::from)
            .collect()
    }

    /// SIGTERM and wait; returns the exit status.
    pub fn stop(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().unwrap();
        unsafe_kill(child.id() as i32, 15);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "up did not exit after SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Up {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            super::terminate(&mut child, Duration::from_secs(20));
        }
    }
}
