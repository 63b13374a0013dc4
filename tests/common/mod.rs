//! Shared fixtures: start the real `remote-agent serve` on 127.0.0.1:0 with a temp data dir and a given `claude`,
//! talk raw HTTP/1.1 to it, and poll until a deadline. Everything is cleaned up on drop.
#![allow(dead_code)]

pub mod mock_api;
pub mod push_mock;
pub mod sessions;
pub mod up;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub const USER: &str = "tester";
pub const PASSWORD: &str = "s3cret-pa55word";

/// The binary under test.
pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_remote-agent"))
}

/// Our fake `claude` (an example target, built by `cargo test`).
pub fn fake_claude() -> PathBuf {
    let path = bin().parent().unwrap().join("examples").join("fake-claude");
    assert!(
        path.exists(),
        "{} is missing: run the tests through cargo test",
        path.display()
    );
    path
}

/// Polls `f` until it returns Some, or panics after `secs` seconds saying what was awaited.
pub fn wait_for<T>(what: &str, secs: u64, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A field of /proc/PID/status, in kB (VmRSS, VmHWM, …).
pub fn status_kb(pid: i32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// One HTTP/1.1 request to `addr` (named in `Host`), with `headers` and `body`; the connection closes after it.
pub fn request_at(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Resp {
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if !body.is_empty() || method == "POST" {
        req.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    req.push_str("\r\n");
    let mut raw = req.into_bytes();
    raw.extend_from_slice(body);
    raw_request(addr, &raw)
}

/// True while a process with this pid exists (and is not a zombie).
pub fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

/// A running server and the temp dirs it owns: `data/`, `project/`, `home/` (HOME for it and the fake),
/// `record/` (where the fake records argv, prompt and environment).
pub struct Server {
    pub addr: SocketAddr,
    /// The tunnel listener, when started with `--tunnel-listen`.
    pub tunnel: Option<SocketAddr>,
    pub root: tempfile::TempDir,
    child: Option<Child>,
    envs: Vec<(String, String)>,
    args: Vec<String>,
}

/// How to start a server.
pub struct Builder {
    envs: Vec<(String, String)>,
    args: Vec<String>,
    claude: PathBuf,
}

impl Builder {
    pub fn env(mut self, k: &str, v: impl AsRef<str>) -> Self {
        self.envs.push((k.into(), v.as_ref().into()));
        self
    }
    pub fn arg(mut self, a: impl AsRef<str>) -> Self {
        self.args.push(a.as_ref().into());
        self
    }
    pub fn claude(mut self, path: impl Into<PathBuf>) -> Self {
        self.claude = path.into();
        self
    }
    pub fn start(self) -> Server {
        let root = tempfile::tempdir().unwrap();
        for d in ["data", "project", "home", "record"] {
            std::fs::create_dir(root.path().join(d)).unwrap();
        }
        let mut envs = vec![
            ("AUTH_USERNAME".to_string(), USER.to_string()),
            ("AUTH_PASSWORD".to_string(), PASSWORD.to_string()),
            ("CLAUDE_BIN".to_string(), self.claude.display().to_string()),
            (
                "FAKE_CLAUDE_RECORD".to_string(),
                root.path().join("record").display().to_string(),
            ),
        ];
        // The tunnel listener answers only the tunnel's hostnames, which serve learns from `up`'s state file:
        // stand in for `up` (this process, alive as long as the test) with the name `via_tunnel` sends.
        if self.args.iter().any(|a| a.starts_with("--tunnel-listen")) {
            let state = root.path().join("state");
            std::fs::create_dir(&state).unwrap();
            let record = serde_json::json!({
                "pid": std::process::id(),
                "tunnel": {"kind": "quick", "url": "https://x.trycloudflare.com", "ready": true},
            });
            std::fs::write(state.join("state.json"), record.to_string()).unwrap();
            envs.push((
                "REMOTE_AGENT_STATE_DIR".to_string(),
                state.display().to_string(),
            ));
        }
        envs.extend(self.envs);
        let mut server = Server {
            addr: "127.0.0.1:0".parse().unwrap(),
            tunnel: None,
            root,
            child: None,
            envs,
            args: self.args,
        };
        server.spawn();
        server
    }
}

impl Server {
    pub fn builder() -> Builder {
        Builder {
            envs: vec![],
            args: vec![],
            claude: fake_claude(),
        }
    }

    /// A server with the fake claude and default settings.
    pub fn start() -> Server {
        Self::builder().start()
    }

    pub fn path(&self, sub: &str) -> PathBuf {
        self.root.path().join(sub)
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().unwrap().id() as i32
    }

    /// The server's stderr so far (its log).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.path("serve.log")).unwrap_or_default()
    }

    /// Waits until the log holds `needle`; on timeout the panic shows the log, which says why.
    pub fn wait_log(&self, needle: &str, secs: u64) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while !self.log().contains(needle) {
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {needle:?} in the log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The command that starts this server, without its output wiring.
    pub fn command(&self) -> Command {
        let mut cmd = self.subcommand(&["serve", "--host", "127.0.0.1", "--port", "0"]);
        cmd.arg("--project")
            .arg(self.path("project"))
            .args(&self.args);
        cmd
    }

    /// Another `remote-agent` subcommand (`import`, `pair`, `passwd`, …) with this server's data dir, working dir
    /// and environment.
    pub fn subcommand(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(bin());
        cmd.args(args)
            .arg("--data-dir")
            .arg(self.path("data"))
            .current_dir(self.root.path())
            .env("HOME", self.path("home"))
            .env_remove("CLAUDE_CONFIG_DIR")
            .env_remove("REMOTE_AGENT_CONFIG")
            .envs(self.envs.iter().map(|(k, v)| (k, v)));
        cmd
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.path("serve.log"))
            .unwrap();
        let mut child = self
            .command()
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("start remote-agent serve");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let addr = line
                    .strip_prefix("listening on http://")
                    .or_else(|| line.strip_prefix("listening on https://"));
                if let Some(addr) = addr {
                    let _ = tx.send((false, addr.to_string()));
                } else if let Some(addr) = line.strip_prefix("tunnel listener on http://") {
                    let _ = tx.send((true, addr.to_string()));
                }
            }
        });
        let wanted = if self.args.iter().any(|a| a.starts_with("--tunnel-listen")) {
            2
        } else {
            1
        };
        for _ in 0..wanted {
            let (tunnel, addr) = rx
                .recv_timeout(Duration::from_secs(20))
                .unwrap_or_else(|_| panic!("serve did not start; log:\n{}", self.log()));
            let addr = addr.parse().unwrap();
            if tunnel {
                self.tunnel = Some(addr);
            } else {
                self.addr = addr;
            }
        }
        self.child = Some(child);
    }

    /// Stops the server with a signal and waits for it to exit; returns its exit status.
    pub fn stop(&mut self, signal: i32) -> std::process::ExitStatus {
        let mut child = self.child.take().unwrap();
        unsafe_kill(child.id() as i32, signal);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "serve did not exit after signal {signal}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts the server again on the same data dir and settings.
    pub fn restart(&mut self) {
        self.spawn();
    }

    /// A request to the tunnel listener, as cloudflared would forward it for a client at `client_ip`.
    pub fn via_tunnel(
        &self,
        client_ip: &str,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
    ) -> Resp {
        let addr = self.tunnel.expect("started with --tunnel-listen");
        let mut req = format!(
            "{method} {path} HTTP/1.1\r\nHost: x.trycloudflare.com\r\nCF-Connecting-IP: {client_ip}\r\nConnection: close\r\n"
        );
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str("\r\n");
        raw_request(addr, req.as_bytes())
    }

    pub fn request(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Resp {
        request_at(self.addr, method, path, headers, body)
    }

    /// A request with the right credentials.
    pub fn authed(&self, method: &str, path: &str, body: &[u8]) -> Resp {
        let auth = basic(USER, PASSWORD);
        let mut headers = vec![("Authorization", auth.as_str())];
        if !body.is_empty() {
            headers.push(("Content-Type", "application/json"));
        }
        self.request(method, path, &headers, body)
    }

    /// `POST /api/chat` with credentials; returns the response.
    pub fn chat(&self, body: &Value) -> Resp {
        self.authed("POST", "/api/chat", body.to_string().as_bytes())
    }

    /// Every recorded invocation of the fake, as (pid, argv) in start order.
    pub fn recorded_runs(&self) -> Vec<(String, Vec<String>)> {
        let mut runs: Vec<(std::time::SystemTime, String, Vec<String>)> =
            std::fs::read_dir(self.path("record"))
                .unwrap()
                .filter_map(|e| {
                    let e = e.ok()?;
                    let name = e.file_name().to_string_lossy().to_string();
                    let pid = name.strip_suffix(".argv.json")?.to_string();
                    let argv = serde_json::from_slice(&std::fs::read(e.path()).ok()?).ok()?;
                    Some((e.metadata().ok()?.modified().ok()?, pid, argv))
                })
                .collect();
        runs.sort();
        runs.into_iter().map(|(_, pid, argv)| (pid, argv)).collect()
    }

    pub fn recorded(&self, pid: &str, what: &str) -> Vec<u8> {
        std::fs::read(self.path("record").join(format!("{pid}.{what}"))).unwrap()
    }

    /// Waits for the latest run of the fake to have started its `[[orphan]]`; returns (claude pid, orphan pid).
    pub fn wait_for_orphan(&self) -> (i32, i32) {
        let pid = wait_for("the orphan to start", 10, || {
            self.recorded_runs()
                .pop()
                .map(|(pid, _)| pid)
                .filter(|pid| self.path("record").join(format!("{pid}.orphan")).exists())
        });
        let orphan = String::from_utf8(self.recorded(&pid, "orphan")).unwrap();
        (pid.parse().unwrap(), orphan.trim().parse().unwrap())
    }

    /// `POST /api/conversations` with this body; asserts 201 and returns the conversation.
    pub fn create(&self, body: Value) -> Value {
        let resp = self.authed("POST", "/api/conversations", body.to_string().as_bytes());
        assert_eq!(resp.status, 201, "{}", resp.text());
        resp.json()
    }

    /// `POST /api/conversations/{conv}/messages`; asserts 202 and returns the turn id.
    pub fn send(&self, conv: &str, body: Value) -> String {
        let resp = self.authed(
            "POST",
            &format!("/api/conversations/{conv}/messages"),
            body.to_string().as_bytes(),
        );
        assert_eq!(resp.status, 202, "{}", resp.text());
        resp.json()["turn_id"].as_str().unwrap().to_string()
    }
}

impl Drop for Server {
    /// SIGTERM, so the server stops its turns' children as it would in use; SIGKILL if it hangs.
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            terminate(&mut child, Duration::from_secs(15));
        }
    }
}

/// SIGTERM, up to `grace` for the process to exit, then SIGKILL; reaps it.
pub fn terminate(child: &mut Child, grace: Duration) {
    unsafe_kill(child.id() as i32, 15);
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    unsafe_kill(child.id() as i32, 9);
    let _ = child.wait();
}

/// Sends a signal with the kill command (keeps the tests free of unsafe code).
pub fn unsafe_kill(pid: i32, signal: i32) {
    let _ = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .stderr(Stdio::null())
        .status();
}

pub fn basic(user: &str, pass: &str) -> String {
    use base64::Engine;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"))
    )
}

/// A parsed HTTP response.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "not JSON ({e}), status {}: {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Sends raw bytes and reads the whole response (the request must ask for `Connection: close`).
pub fn raw_request(addr: SocketAddr, raw: &[u8]) -> Resp {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(120)))
        .unwrap();
    stream.write_all(raw).unwrap();
    let mut buf = Vec::new();
    let _ = stream.read_to_end(&mut buf);
    parse_response(&buf)
}

pub fn parse_response(buf: &[u8]) -> Resp {
    let end = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no response head in {:?}", String::from_utf8_lossy(buf)));
    let head = String::from_utf8_lossy(&buf[..end]).to_string();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let mut body = buf[end + 4..].to_vec();
    let chunked = headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    if chunked {
        body = dechunk(&body);
    }
    Resp {
        status,
        headers,
        body,
    }
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(i) = data.windows(2).position(|w| w == b"\r\n") {
        let size = usize::from_str_radix(
            std::str::from_utf8(&data[..i])
                .unwrap()
                .split(';')
                .next()
                .unwrap()
                .trim(),
            16,
        )
        .unwrap();
        if size == 0 {
            break;
        }
        out.extend_from_slice(&data[i + 2..i + 2 + size]);
        data = &data[i + 2 + size + 2..];
    }
    out
}

/// Skips a test with a message that gets past the test harness's capture.
pub fn skip(test: &str, why: &str) {
    let _ = writeln!(std::io::stderr(), "SKIP {test}: {why}");
}

/// Finds the real Claude Code CLI: `REMOTE_AGENT_REAL_CLAUDE`, else `claude` on PATH. Under `CI=true` its absence
/// fails the test; elsewhere the test is skipped with a message written past the test harness's capture.
pub fn real_claude(test: &str) -> Option<PathBuf> {
    let found = match std::env::var_os("REMOTE_AGENT_REAL_CLAUDE") {
        Some(p) => {
            let p = PathBuf::from(p);
            assert!(
                p.is_file(),
                "REMOTE_AGENT_REAL_CLAUDE={} is not a file",
                p.display()
            );
            Some(p)
        }
        None => std::env::split_paths(&std::env::var_os("PATH")?)
            .map(|d| d.join("claude"))
            .find(|p| p.is_file()),
    };
    if found.is_none() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "{test}: the real claude CLI is required in CI (set REMOTE_AGENT_REAL_CLAUDE)"
        );
        // Straight to fd 2: libtest captures eprintln!, and a skip must be seen.
        let _ = writeln!(
            std::io::stderr(),
            "SKIP {test}: the real claude CLI was not found (set REMOTE_AGENT_REAL_CLAUDE or put claude on PATH)"
        );
    }
    found
}

/// Reads a process's environment block.
pub fn environ_of(pid: i32) -> Option<Vec<u8>> {
    std::fs::read(format!("/proc/{pid}/environ")).ok()
}

/// Pids of live processes whose environment contains `needle` (e.g. the turn marker).
pub fn pids_with_env(needle: &str) -> Vec<i32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&pid| {
            alive(pid)
                && environ_of(pid)
                    .is_some_and(|env| env.split(|&b| b == 0).any(|kv| kv == needle.as_bytes()))
        })
        .collect()
}

pub fn file_contains(path: &Path, needle: &str) -> bool {
    std::fs::read_to_string(path).is_ok_and(|s| s.contains(needle))
}

/// One server-sent event as read off the wire.
#[derive(Debug, Clone, PartialEq)]
pub struct Sse {
    pub id: Option<u64>,
    pub event: String,
    pub data: Value,
}

/// A streaming HTTP response read incrementally: the head at once, then SSE events as they arrive.
pub struct SseStream {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    stream: TcpStream,
    /// Raw bytes read but not yet de-chunked.
    raw: Vec<u8>,
    /// De-chunked body bytes not yet parsed into events.
    body: Vec<u8>,
    pub ended: bool,
}

impl SseStream {
    /// Opens `method path` with credentials and extra headers, and reads the response head.
    pub fn open(server: &Server, method: &str, path: &str, extra: &[(&str, &str)]) -> SseStream {
        let auth = basic(USER, PASSWORD);
        let mut req = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: {auth}\r\nAccept: text/event-stream\r\n",
            server.addr
        );
        for (k, v) in extra {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        if method == "POST" {
            req.push_str("Content-Length: 0\r\n");
        }
        req.push_str("Connection: close\r\n\r\n");
        let mut stream = TcpStream::connect(server.addr).unwrap();
        stream.write_all(req.as_bytes()).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let mut raw = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(10);
        let end = loop {
            if let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
                break end;
            }
            assert!(Instant::now() < deadline, "no response head");
            let mut buf = [0u8; 4096];
            match stream.read(&mut buf) {
                Ok(0) => panic!("connection closed before the head"),
                Ok(n) => raw.extend_from_slice(&buf[..n]),
                Err(_) => {}
            }
        };
        let head = parse_response(&raw[..end + 4]);
        raw.drain(..end + 4);
        let mut s = SseStream {
            status: head.status,
            headers: head.headers,
            stream,
            raw,
            body: Vec::new(),
            ended: false,
        };
        // The first read may have brought body bytes along with the head.
        s.dechunk();
        s
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Moves complete chunks from `raw` to `body`.
    fn dechunk(&mut self) {
        loop {
            let Some(i) = self.raw.windows(2).position(|w| w == b"\r\n") else {
                return;
            };
            let size_line = String::from_utf8_lossy(&self.raw[..i]).to_string();
            let size = usize::from_str_radix(size_line.split(';').next().unwrap().trim(), 16)
                .unwrap_or_else(|_| panic!("bad chunk size {size_line:?}"));
            if size == 0 {
                self.ended = true;
                self.raw.clear();
                return;
            }
            if self.raw.len() < i + 2 + size + 2 {
                return;
            }
            self.body.extend_from_slice(&self.raw[i + 2..i + 2 + size]);
            self.raw.drain(..i + 2 + size + 2);
        }
    }

    fn parse_one(&mut self) -> Option<Sse> {
        let end = self.body.windows(2).position(|w| w == b"\n\n")?;
        let frame = String::from_utf8(self.body[..end].to_vec()).unwrap();
        self.body.drain(..end + 2);
        let mut sse = Sse {
            id: None,
            event: "message".into(),
            data: Value::Null,
        };
        for line in frame.lines() {
            let (k, v) = line.split_once(": ").unwrap_or((line, ""));
            match k {
                "id" => sse.id = Some(v.parse().unwrap()),
                "event" => sse.event = v.to_string(),
                "data" => sse.data = serde_json::from_str(v).unwrap(),
                _ => panic!("unexpected SSE line {line:?}"),
            }
        }
        Some(sse)
    }

    /// The next event, waiting up to `secs`; None when the stream ended (or time ran out).
    pub fn next_within(&mut self, secs: f64) -> Option<Sse> {
        let deadline = Instant::now() + Duration::from_secs_f64(secs);
        loop {
            if let Some(e) = self.parse_one() {
                return Some(e);
            }
            if self.ended || Instant::now() >= deadline {
                return None;
            }
            let mut buf = [0u8; 16384];
            match self.stream.read(&mut buf) {
                Ok(0) => self.ended = true,
                Ok(n) => {
                    self.raw.extend_from_slice(&buf[..n]);
                    self.dechunk();
                }
                Err(_) => {}
            }
        }
    }

    /// The next event; panics if none comes within 30 s.
    pub fn next(&mut self) -> Option<Sse> {
        let e = self.next_within(30.0);
        assert!(e.is_some() || self.ended, "no event within 30 s");
        e
    }

    /// Every event up to the end of the stream, keepalives left out.
    pub fn rest(&mut self) -> Vec<Sse> {
        let mut out = Vec::new();
        while let Some(e) = self.next() {
            if e.event != "keepalive" {
                out.push(e);
            }
        }
        out
    }
}
