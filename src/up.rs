//! `remote-agent up`: runs `serve` and `cloudflared` as supervised children, prints the local and public URLs (and,
//! on a terminal, a pairing link with its QR code), restarts either one when it exits or `serve` stops answering,
//! and records what it runs in `state.json` for `remote-agent status` and `GET /api/status`. Also
//! `remote-agent status`.

use std::collections::VecDeque;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use nix::sys::signal::Signal;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;
use tokio::sync::{mpsc, watch};

use crate::config::{ConfigError, Flags, Settings};
use crate::supervise::{self, Backoff};
use crate::tunnel::{self, Kind, Named};

/// How long a child gets to stop after SIGTERM before SIGKILL.
const GRACE: Duration = Duration::from_secs(10);
/// How long to wait for the Cloudflare edge before saying something is wrong.
const EDGE_WARNING: Duration = Duration::from_secs(30);
/// The logs are rotated past this size, one old file kept (serve rotates its own).
const LOG_LIMIT: u64 = crate::cli::LOG_LIMIT;

/// The tunnel `up` opens.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Quick,
    Named,
    None,
}

/// `up`'s flags: the server's, and the tunnel's.
#[derive(clap::Args, Debug)]
pub struct UpArgs {
    #[command(flatten)]
    pub flags: Flags,
    /// The tunnel: quick (a new trycloudflare.com URL each start), named (your own domain), none
    /// [config: [tunnel] mode; default: quick]
    #[arg(long, value_enum, value_name = "KIND")]
    pub tunnel: Option<Mode>,
    /// Serve under supervision with no tunnel (the same as --tunnel none)
    #[arg(long, conflicts_with = "tunnel")]
    pub no_tunnel: bool,
    /// The named tunnel to run, with --tunnel-config [config: [tunnel] name]
    #[arg(long, value_name = "NAME")]
    pub tunnel_name: Option<String>,
    /// cloudflared's config file for the named tunnel (its ingress names the public hostname) [config: [tunnel] config]
    #[arg(long, value_name = "FILE")]
    pub tunnel_config: Option<PathBuf>,
    /// The named tunnel's token (visible in `ps`: prefer --tunnel-token-file)
    #[arg(long, value_name = "TOKEN")]
    pub tunnel_token: Option<String>,
    /// A file holding the named tunnel's token [config: [tunnel] token_file]
    #[arg(long, value_name = "FILE")]
    pub tunnel_token_file: Option<PathBuf>,
    /// The cloudflared executable [env: CLOUDFLARED_BIN; default: cloudflared on PATH]
    #[arg(long, value_name = "PATH")]
    pub cloudflared_bin: Option<String>,
    /// Seconds `serve` may fail its /health probe before it is restarted
    #[arg(long, value_name = "SECS", default_value_t = 15)]
    pub health_timeout: u64,
    /// The loopback port a named tunnel's ingress points at (`http://127.0.0.1:PORT`; terraform's `tunnel_port`).
    /// Only what arrives there is treated as coming through Cloudflare.
    #[arg(long, value_name = "PORT", default_value_t = 8001)]
    pub tunnel_port: u16,
}

/// `remote-agent up`.
pub async fn up(args: UpArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let settings = match Settings::load(&args.flags) {
        Ok(s) => s,
        // A --config that does not exist yet is this first run's to create, like the default one.
        Err(ConfigError::Missing(path)) => {
            let from_env = |name| std::env::var(name).is_ok_and(|v| !v.is_empty());
            if from_env("AUTH_USERNAME") && from_env("AUTH_PASSWORD") {
                use std::os::unix::fs::OpenOptionsExt;
                std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&path)
                    .with_context(|| format!("creating {}", path.display()))?;
            } else {
                crate::account::first_run(&path)?;
            }
            Settings::load(&args.flags)?
        }
        Err(ConfigError::NoCredentials(path)) => {
            crate::account::first_run(&path)?;
            Settings::load(&args.flags)?
        }
        Err(e) => return Err(e.into()),
    };
    crate::auth::check_password_length(&settings.password)?;
    let state_dir = settings.state_dir.clone();
    create_private_dir(&state_dir)?;
    let _lock = lock(&state_dir)?;
    let mut kind = tunnel_kind(&args, &settings)?;
    let mut cloudflared = None;
    if kind.is_some() {
        let bin = args
            .cloudflared_bin
            .clone()
            .or_else(|| {
                std::env::var("CLOUDFLARED_BIN")
                    .ok()
                    .filter(|b| !b.is_empty())
            })
            .unwrap_or_else(|| "cloudflared".into());
        let bin = crate::config::absolute_bin(&crate::config::launch_dir()?, &bin);
        match crate::claude::resolve_bin(&bin) {
            Some(path) => cloudflared = Some(path),
            None => {
                println!(
                    "cloudflared was not found ({bin:?}; set CLOUDFLARED_BIN or --cloudflared-bin).\n\
                     To reach this server from your phone, {}.\n\
                     Serving locally only for now.",
                    tunnel::INSTALL_HINT
                );
                kind = None;
            }
        }
    }
    if let (Some(Kind::Named(Named::Config { config, .. })), Some(bin)) = (&kind, &cloudflared) {
        tunnel::validate(bin, config).await.map_err(|said| {
            anyhow::anyhow!(
                "the tunnel config {} is not valid; cloudflared says:\n{said}",
                config.display()
            )
        })?;
    }
    if let Some(Kind::Named(Named::Config { config, .. })) = &kind {
        let text = std::fs::read_to_string(config).unwrap_or_default();
        let port = args.tunnel_port;
        if !text.contains(&format!("127.0.0.1:{port}"))
            && !text.contains(&format!("localhost:{port}"))
        {
            println!(
                "warning: the ingress in {} does not point at http://127.0.0.1:{port}, where remote-agent listens \
                 for the tunnel (--tunnel-port); traffic sent elsewhere is not treated as coming through Cloudflare",
                config.display()
            );
        }
    }
    let quick_config = state_dir.join("cloudflared-quick.yml");
    if kind == Some(Kind::Quick) {
        // No ingress rules here, so cloudflared uses --url whatever ~/.cloudflared/config.yml says.
        std::fs::write(
            &quick_config,
            "# written by remote-agent up for its quick tunnel: no ingress rules\n",
        )
        .with_context(|| format!("writing {}", quick_config.display()))?;
    }
    // Never run from a project (where Claude writes, and a `.env` may wait): the children start from here, and
    // `serve` itself moves here once it has read its settings where the user started us.
    let launch_dir = crate::config::launch_dir()?;
    std::env::set_current_dir(&state_dir)
        .with_context(|| format!("entering the state dir {}", state_dir.display()))?;
    let mut sup = Supervisor {
        launch_dir,
        exe: std::env::current_exe().context("finding our own executable")?,
        flags: args.flags.clone(),
        settings,
        state_dir,
        health_timeout: Duration::from_secs(args.health_timeout),
        tunnel_port: args.tunnel_port,
        kind,
        cloudflared,
        quick_config,
        started,
        events: mpsc::unbounded_channel(),
        serve: Child::new("serve"),
        tunnel: Child::new("cloudflared"),
        local: None,
        tunnel_origin: None,
        metrics: None,
        public_url: None,
        banner_url: None,
        ready: false,
        local_announced: false,
        announced: false,
        cf_started: None,
        edge_warned: false,
        last_healthy: Instant::now(),
        trimmed: false,
        serve_listening: false,
    };
    sup.run().await
}

/// One supervised child: its current run (if any), restarts and backoff.
struct Child {
    name: &'static str,
    /// Counts starts, so events of an earlier run are told apart.
    generation: u64,
    pid: Option<u32>,
    stop: Option<watch::Sender<bool>>,
    started: Instant,
    next_start: Option<tokio::time::Instant>,
    backoff: Backoff,
    restarts: u32,
    last_exit: Option<String>,
    tail: VecDeque<String>,
}

impl Child {
    fn new(name: &'static str) -> Child {
        Child {
            name,
            generation: 0,
            pid: None,
            stop: None,
            started: Instant::now(),
            next_start: None,
            backoff: Backoff::default(),
            restarts: 0,
            last_exit: None,
            tail: VecDeque::new(),
        }
    }

    fn running(&self) -> bool {
        self.stop.is_some()
    }

    fn keep(&mut self, line: &str) {
        if self.tail.len() == 8 {
            self.tail.pop_front();
        }
        self.tail.push_back(line.to_string());
    }

    fn state(&self) -> Value {
        let state = if self.running() {
            "running"
        } else if self.next_start.is_some() {
            "restarting"
        } else {
            "stopped"
        };
        json!({"pid": self.pid, "state": state, "restarts": self.restarts, "last_exit": self.last_exit})
    }
}

/// What the children's tasks and the probes report to the supervisor loop.
enum Event {
    Started {
        who: Who,
        generation: u64,
        pid: u32,
    },
    Line {
        who: Who,
        generation: u64,
        line: String,
    },
    Exited {
        who: Who,
        generation: u64,
        how: String,
        asked: bool,
    },
    Healthy {
        generation: u64,
    },
    Tunnel {
        generation: u64,
        ready: bool,
        url: Option<String>,
    },
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Who {
    Serve,
    Tunnel,
}

struct Supervisor {
    /// Where `up` was started: `serve` and `pair` resolve the same relative paths and `.env` from there.
    launch_dir: PathBuf,
    exe: PathBuf,
    flags: Flags,
    settings: Settings,
    state_dir: PathBuf,
    health_timeout: Duration,
    tunnel_port: u16,
    kind: Option<Kind>,
    cloudflared: Option<PathBuf>,
    quick_config: PathBuf,
    started: Instant,
    events: (mpsc::UnboundedSender<Event>, mpsc::UnboundedReceiver<Event>),
    serve: Child,
    tunnel: Child,
    /// Where serve listens (locally, and for cloudflared); kept across its restarts.
    local: Option<SocketAddr>,
    tunnel_origin: Option<SocketAddr>,
    metrics: Option<SocketAddr>,
    public_url: Option<String>,
    banner_url: Option<String>,
    ready: bool,
    /// The local URL and the user were printed (once; restarts keep the address).
    local_announced: bool,
    /// A public URL was printed (a later one is a change).
    announced: bool,
    cf_started: Option<Instant>,
    edge_warned: bool,
    last_healthy: Instant,
    /// The start-up code pages were handed back (see [`crate::pages::release_code`]).
    trimmed: bool,
    /// The current serve said it listens, so its signal handlers are in place (a SIGHUP before would kill it).
    serve_listening: bool,
}

impl Supervisor {
    async fn run(&mut self) -> anyhow::Result<()> {
        use tokio::signal::unix::{SignalKind, signal};
        let mut int = signal(SignalKind::interrupt())?;
        let mut term = signal(SignalKind::terminate())?;
        let mut hup = signal(SignalKind::hangup())?;
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        self.start(Who::Serve)?;
        loop {
            tokio::select! {
                Some(event) = self.events.1.recv() => self.on_event(event),
                () = sleep_until(self.serve.next_start) => self.start(Who::Serve)?,
                () = sleep_until(self.tunnel.next_start) => self.start(Who::Tunnel)?,
                _ = tick.tick() => {
                    self.probe();
                    // Start-up is over once the URLs are printed: what ran only for it need not stay resident.
                    if !self.trimmed && self.local_announced && (self.kind.is_none() || self.announced) {
                        self.trimmed = true;
                        crate::pages::release_code();
                    }
                }
                _ = hup.recv() => {
                    // A serve not yet listening reads the settings as it starts: no signal needed, or safe.
                    if let Some(pid) = self.serve.pid.filter(|_| self.serve.running() && self.serve_listening) {
                        println!("reloading serve's settings (SIGHUP)");
                        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), Signal::SIGHUP);
                    }
                }
                _ = int.recv() => break,
                _ = term.recv() => break,
            }
        }
        self.shutdown(&mut int).await;
        let _ = std::fs::remove_file(self.state_dir.join("state.json"));
        Ok(())
    }

    /// Stops both children (SIGTERM, then SIGKILL after the grace); a second Ctrl-C kills them at once.
    async fn shutdown(&mut self, int: &mut tokio::signal::unix::Signal) {
        println!("stopping…");
        for child in [&mut self.serve, &mut self.tunnel] {
            child.next_start = None;
            if let Some(stop) = &child.stop {
                let _ = stop.send(true);
            }
        }
        let deadline = tokio::time::Instant::now() + GRACE + Duration::from_secs(5);
        while self.serve.running() || self.tunnel.running() {
            tokio::select! {
                Some(event) = self.events.1.recv() => {
                    if let Event::Exited { who, generation, .. } = event {
                        let child = self.child(who);
                        if generation == child.generation {
                            child.stop = None;
                        }
                    }
                }
                _ = int.recv() => {
                    println!("forcing");
                    self.kill_all();
                }
                () = tokio::time::sleep_until(deadline) => {
                    self.kill_all();
                    break;
                }
            }
        }
    }

    fn kill_all(&self) {
        for pid in [&self.serve, &self.tunnel]
            .iter()
            .filter_map(|c| c.pid.filter(|_| c.running()))
        {
            let _ =
                nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pid as i32), Signal::SIGKILL);
        }
    }

    fn child(&mut self, who: Who) -> &mut Child {
        match who {
            Who::Serve => &mut self.serve,
            Who::Tunnel => &mut self.tunnel,
        }
    }

    /// Starts a child's next run on a task of its own, which reports its output and exit.
    fn start(&mut self, who: Who) -> anyhow::Result<()> {
        let (mut cmd, log) = match who {
            Who::Serve => (self.serve_command()?, None),
            Who::Tunnel => {
                let Some(cmd) = self.tunnel_command()? else {
                    return Ok(());
                };
                (cmd, Some(self.state_dir.join("cloudflared.log")))
            }
        };
        let tx = self.events.0.clone();
        let child = self.child(who);
        child.next_start = None;
        child.generation += 1;
        child.started = Instant::now();
        let generation = child.generation;
        let (stop_tx, stop_rx) = watch::channel(false);
        child.stop = Some(stop_tx);
        tokio::spawn(run_child(
            who,
            generation,
            cmd_spawn(&mut cmd),
            stop_rx,
            tx,
            log,
        ));
        if who == Who::Tunnel {
            self.cf_started = Some(Instant::now());
            self.edge_warned = false;
            self.ready = false;
            self.banner_url = None;
        } else {
            self.last_healthy = Instant::now();
            self.serve_listening = false;
        }
        self.write_state();
        Ok(())
    }

    fn serve_command(&mut self) -> anyhow::Result<Command> {
        let mut flags = self.flags.clone();
        // After the first start, keep the ports it got, so the URLs printed stay true across restarts.
        if let Some(local) = self.local {
            flags.port = Some(local.port());
        }
        let log_path = self.state_dir.join("serve.log");
        // Its stderr (a panic, an early error) goes to the same file as its log.
        let log = open_log(&log_path)?;
        let mut cmd = Command::new(&self.exe);
        cmd.current_dir(&self.launch_dir)
            .arg("serve")
            .args(flags.to_args())
            .arg(format!("--log-file={}", log_path.display()));
        // We run with umask 0077; Claude is to get the one the user started us with.
        if let Some(mask) = supervise::user_umask() {
            cmd.arg(format!("--child-umask={mask:03o}"));
        }
        match self.kind {
            Some(Kind::Quick) => {
                let origin = self
                    .tunnel_origin
                    .map_or("127.0.0.1:0".to_string(), |a| a.to_string());
                cmd.arg(format!("--tunnel-listen={origin}"));
            }
            // A named tunnel's ingress names a fixed port; serve's tunnel listener must be there.
            Some(Kind::Named(_)) => {
                cmd.arg(format!("--tunnel-listen=127.0.0.1:{}", self.tunnel_port));
            }
            None => {}
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log));
        Ok(cmd)
    }

    fn tunnel_command(&mut self) -> anyhow::Result<Option<Command>> {
        let (Some(kind), Some(bin)) = (&self.kind, &self.cloudflared) else {
            return Ok(None);
        };
        // Named tunnels reach serve where their ingress says (the local port); quick ones the tunnel listener.
        let origin = match kind {
            Kind::Quick => match self.tunnel_origin {
                Some(origin) => origin,
                None => return Ok(None),
            },
            Kind::Named(_) => SocketAddr::from(([127, 0, 0, 1], self.tunnel_port)),
        };
        let metrics = free_port()?;
        self.metrics = Some(metrics);
        let mut cmd = Command::new(bin);
        tunnel::scrub_env(&mut cmd)
            .args(tunnel::args(kind, origin, metrics, &self.quick_config))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Kind::Named(Named::Token(token)) = kind {
            cmd.env("TUNNEL_TOKEN", token);
        }
        Ok(Some(cmd))
    }

    fn on_event(&mut self, event: Event) {
        match event {
            Event::Started {
                who,
                generation,
                pid,
            } => {
                let child = self.child(who);
                if generation == child.generation {
                    child.pid = Some(pid);
                }
                self.write_state();
            }
            Event::Line {
                who: Who::Serve,
                generation,
                line,
            } if generation == self.serve.generation => self.on_serve_line(&line),
            Event::Line {
                who: Who::Tunnel,
                generation,
                line,
            } if generation == self.tunnel.generation => {
                self.tunnel.keep(&line);
                match tunnel::parse_line(&line) {
                    tunnel::Line::QuickUrl(url) => self.banner_url = Some(url),
                    tunnel::Line::Metrics(addr) => {
                        if let Ok(addr) = addr.parse() {
                            self.metrics = Some(addr);
                            // The URL can be confirmed now; don't wait for the next tick.
                            self.probe_tunnel();
                        }
                    }
                    tunnel::Line::Registered => self.probe_tunnel(),
                    tunnel::Line::Other => {}
                }
            }
            Event::Line { .. } => {}
            Event::Exited {
                who,
                generation,
                how,
                asked,
            } => {
                let serve_log = self.state_dir.join("serve.log");
                let child = self.child(who);
                if generation != child.generation {
                    return;
                }
                child.stop = None;
                child.pid = None;
                child.last_exit = Some(how.clone());
                if who == Who::Serve {
                    child.tail = last_lines(&serve_log, 8);
                }
                let ran = child.started.elapsed();
                let delay = child.backoff.after_exit(ran, Instant::now());
                child.restarts += 1;
                child.next_start = Some(tokio::time::Instant::now() + delay);
                let recent = child.backoff.recent();
                let name = child.name;
                let why = if asked {
                    "was restarted".to_string()
                } else {
                    format!("exited ({how})")
                };
                if recent >= 3 && !asked {
                    println!(
                        "{name} keeps failing: {recent} restarts in the last minute; next try in {:.1} s. Its last lines:",
                        delay.as_secs_f64()
                    );
                    for line in &child.tail {
                        println!("    {line}");
                    }
                } else {
                    println!("{name} {why}; restarting in {:.1} s", delay.as_secs_f64());
                }
                if who == Who::Tunnel {
                    self.ready = false;
                }
                self.write_state();
            }
            Event::Healthy { generation } if generation == self.serve.generation => {
                self.last_healthy = Instant::now();
            }
            Event::Healthy { .. } => {}
            Event::Tunnel {
                generation,
                ready,
                url,
            } if generation == self.tunnel.generation => self.on_tunnel_probe(ready, url),
            Event::Tunnel { .. } => {}
        }
    }

    fn on_serve_line(&mut self, line: &str) {
        if let Some(addr) = line.strip_prefix("listening on http://") {
            self.serve_listening = true;
            self.local = addr.trim().parse().ok();
        } else if let Some(addr) = line.strip_prefix("tunnel listener on http://") {
            self.tunnel_origin = addr.trim().parse().ok();
        } else {
            return;
        }
        let waiting_for_origin = self.kind.is_some() && self.tunnel_origin.is_none();
        if self.local.is_none() || waiting_for_origin {
            return;
        }
        if !self.local_announced {
            self.local_announced = true;
            self.announce_local();
        }
        if !self.tunnel.running() && self.tunnel.next_start.is_none() && self.kind.is_some() {
            self.tunnel.next_start = Some(tokio::time::Instant::now());
        }
        self.write_state();
    }

    fn announce_local(&mut self) {
        let local = self.local_url();
        println!("remote-agent {} is up", env!("CARGO_PKG_VERSION"));
        println!("  local:   {local}");
        println!("  user:    {}", self.settings.username);
        println!("  logs:    {}", self.state_dir.join("serve.log").display());
        if self.kind.is_none() {
            println!("  tunnel:  none (this computer and its network only)");
            self.announced = true;
            match self.local.and_then(phone_advice) {
                Some(advice) => println!("{advice}"),
                None => self.offer_pairing(&local),
            }
        } else {
            println!(
                "  tunnel:  opening a {} Cloudflare tunnel…",
                self.kind.as_ref().map_or("", Kind::label)
            );
        }
        let _ = std::io::stdout().flush();
    }

    fn local_url(&self) -> String {
        match self.local {
            Some(addr) if addr.ip().is_unspecified() => format!("http://127.0.0.1:{}", addr.port()),
            Some(addr) => format!("http://{addr}"),
            None => "(starting)".into(),
        }
    }

    /// Each tick: probe serve's /health, and cloudflared's /ready (and /quicktunnel until the URL is known);
    /// restart a serve that has not answered for the health timeout.
    fn probe(&mut self) {
        if self.serve.running()
            && self.last_healthy.elapsed() > self.health_timeout
            && let Some(stop) = &self.serve.stop
        {
            println!(
                "serve has not answered /health for {} s; restarting it",
                self.health_timeout.as_secs()
            );
            let _ = stop.send(true);
            self.last_healthy = Instant::now();
        }
        let tx = self.events.0.clone();
        if let Some(local) = self.local.filter(|_| self.serve.running()) {
            let generation = self.serve.generation;
            let addr = if local.ip().is_unspecified() {
                SocketAddr::from(([127, 0, 0, 1], local.port()))
            } else {
                local
            };
            tokio::spawn(async move {
                let probe = format!("{}: 1\r\n", crate::server::PROBE_HEADER);
                if let Some((200, _)) = tunnel::get_with(&addr.to_string(), "/health", &probe).await
                {
                    let _ = tx.send(Event::Healthy { generation });
                }
            });
        }
        self.probe_tunnel();
        if let Some(since) = self.cf_started
            && !self.ready
            && !self.edge_warned
            && self.tunnel.running()
            && since.elapsed() > EDGE_WARNING
        {
            self.edge_warned = true;
            println!(
                "still no connection to the Cloudflare edge after {} s: is this computer online? cloudflared's log: {}",
                EDGE_WARNING.as_secs(),
                self.state_dir.join("cloudflared.log").display()
            );
        }
    }

    /// How a phone signs in at `base`. A pairing link signs in whoever holds it, so it goes only to a terminal;
    /// under a service the output is a log that others may read, and `remote-agent pair` gives a link on demand.
    fn offer_pairing(&self, base: &str) {
        use std::io::IsTerminal;
        if !base.starts_with("http") {
            println!(
                "  sign in a phone: `remote-agent pair --base https://YOUR-HOSTNAME` prints a one-time link"
            );
        } else if std::io::stdout().is_terminal() {
            self.print_pairing(base);
        } else {
            println!(
                "  sign in a phone: run `remote-agent pair` in a terminal for a one-time link and its QR code"
            );
        }
    }

    /// Prints a one-time link (and its QR code, the only one: the bare URL leads to a password form) that signs a
    /// phone in, made by `remote-agent pair` in a child process so that the supervisor itself never opens the
    /// database.
    fn print_pairing(&self, base: &str) {
        let mut cmd = Command::new(&self.exe);
        cmd.current_dir(&self.launch_dir)
            .arg("pair")
            .arg(format!("--data-dir={}", self.settings.data_dir.display()))
            .arg("--quiet")
            .arg(format!("--base={base}"))
            .stdin(Stdio::null())
            .stderr(Stdio::null());
        tokio::spawn(async move {
            let Ok(out) = cmd.output().await else { return };
            let link = String::from_utf8_lossy(&out.stdout).trim().to_string();
            if out.status.success() && !link.is_empty() {
                println!("  sign in a phone at once (one use, 10 minutes): {link}");
                println!("{}", qr(&link));
                let _ = std::io::stdout().flush();
            }
        });
    }

    /// Asks cloudflared's metrics server whether it is ready (and, for a quick tunnel, its URL).
    fn probe_tunnel(&self) {
        let Some(metrics) = self.metrics.filter(|_| self.tunnel.running()) else {
            return;
        };
        let tx = self.events.0.clone();
        let generation = self.tunnel.generation;
        let want_url = matches!(self.kind, Some(Kind::Quick)) && self.public_url.is_none();
        tokio::spawn(async move {
            let addr = metrics.to_string();
            let ready = tunnel::ready(&addr).await;
            let url = if want_url {
                tunnel::quick_url(&addr).await
            } else {
                None
            };
            let _ = tx.send(Event::Tunnel {
                generation,
                ready,
                url,
            });
        });
    }

    fn on_tunnel_probe(&mut self, ready: bool, url: Option<String>) {
        let url = match &self.kind {
            // The banner's URL, once cloudflared's own /quicktunnel confirms it.
            Some(Kind::Quick) => url.filter(|u| self.banner_url.as_ref().is_none_or(|b| b == u)),
            Some(Kind::Named(named)) if self.public_url.is_none() => Some(named_url(named)),
            _ => None,
        };
        if let Some(url) = url
            && self.public_url.as_ref() != Some(&url)
        {
            let again = self.public_url.is_some() || self.announced;
            self.public_url = Some(url.clone());
            if again {
                println!("cloudflared restarted; the public URL is now:");
            }
            println!("  public:  {url}");
            if !again && self.kind == Some(Kind::Quick) {
                println!(
                    "  note:    a quick tunnel's address changes whenever the tunnel restarts (up prints the new \
                     one); a named tunnel keeps one address (--tunnel named, see terraform/README.md)"
                );
            }
            self.offer_pairing(&url);
            if !self.ready {
                println!("waiting for the Cloudflare edge…");
            }
            self.announced = true;
        }
        if ready != self.ready {
            self.ready = ready;
            if ready {
                println!("tunnel connected to the Cloudflare edge");
            }
        }
        let _ = std::io::stdout().flush();
        self.write_state();
    }

    /// `state.json` in the state dir, replaced atomically.
    fn write_state(&mut self) {
        if matches!(self.kind, Some(Kind::Quick))
            && !self.tunnel.running()
            && self.tunnel.next_start.is_some()
        {
            // A restarted quick tunnel gets a new URL.
            self.public_url = None;
        }
        let state = json!({
            "pid": std::process::id(),
            "version": env!("CARGO_PKG_VERSION"),
            "started_at_unix": SystemTime::now()
                .checked_sub(self.started.elapsed())
                .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                .map(|d| d.as_secs()),
            "user": self.settings.username,
            // `import` attaches conversations to a project this server runs.
            "projects": self.settings.projects,
            "local_url": self.local.map(|_| self.local_url()),
            "tunnel": {
                "kind": self.kind.as_ref().map_or("none", Kind::label),
                "url": self.public_url,
                "ready": self.ready,
                // Every name the tunnel routes to us: serve's tunnel listener answers only these (and `url`'s).
                "hostnames": match &self.kind {
                    Some(Kind::Named(Named::Config { config, .. })) => std::fs::read_to_string(config)
                        .map(|c| tunnel::ingress_hostnames(&c))
                        .unwrap_or_default(),
                    _ => Vec::new(),
                },
            },
            "children": {"serve": self.serve.state(), "cloudflared": self.tunnel.state()},
        });
        let path = self.state_dir.join("state.json");
        let tmp = self.state_dir.join("state.json.tmp");
        let written = std::fs::write(&tmp, format!("{state:#}\n"))
            .and_then(|()| std::fs::rename(&tmp, &path));
        if let Err(e) = written {
            eprintln!("remote-agent: cannot write {}: {e}", path.display());
        }
    }
}

fn cmd_spawn(cmd: &mut Command) -> std::io::Result<tokio::process::Child> {
    supervise::spawn(cmd)
}

/// Owns one run of a child: reports its pid, its stdout and stderr lines (stderr also appended to `log`), and its
/// exit; stops it with the ladder when asked.
async fn run_child(
    who: Who,
    generation: u64,
    spawned: std::io::Result<tokio::process::Child>,
    mut stop: watch::Receiver<bool>,
    tx: mpsc::UnboundedSender<Event>,
    log: Option<PathBuf>,
) {
    let mut child = match spawned {
        Ok(child) => child,
        Err(e) => {
            let _ = tx.send(Event::Exited {
                who,
                generation,
                how: format!("could not start: {e}"),
                asked: false,
            });
            return;
        }
    };
    if let Some(pid) = child.id() {
        let _ = tx.send(Event::Started {
            who,
            generation,
            pid,
        });
    }
    if let Some(out) = child.stdout.take() {
        tokio::spawn(forward_lines(out, who, generation, tx.clone(), None));
    }
    if let Some(err) = child.stderr.take() {
        tokio::spawn(forward_lines(err, who, generation, tx.clone(), log));
    }
    let (status, asked) = tokio::select! {
        status = child.wait() => (status.ok(), false),
        () = crate::server::signalled(&mut stop) => (supervise::stop(&mut child, GRACE).await, true),
    };
    let how = match status {
        Some(s) => s.to_string(),
        None => "status unknown".into(),
    };
    let _ = tx.send(Event::Exited {
        who,
        generation,
        how,
        asked,
    });
}

async fn forward_lines(
    pipe: impl tokio::io::AsyncRead + Unpin,
    who: Who,
    generation: u64,
    tx: mpsc::UnboundedSender<Event>,
    log: Option<PathBuf>,
) {
    let mut lines = BufReader::new(pipe).lines();
    let mut file = log.as_deref().and_then(|p| open_log(p).ok());
    // The file is appended to across runs: count what earlier runs left, or a crash loop grows it without bound.
    let mut written = file
        .as_ref()
        .and_then(|f| f.metadata().ok())
        .map_or(0, |m| m.len());
    while let Ok(Some(line)) = lines.next_line().await {
        let line = redact_pairing(line);
        if let (Some(f), Some(path)) = (&mut file, &log) {
            let _ = writeln!(f, "{line}");
            written += line.len() as u64 + 1;
            if written > LOG_LIMIT {
                rotate(path);
                file = open_log(path).ok();
                written = 0;
            }
        }
        if tx
            .send(Event::Line {
                who,
                generation,
                line,
            })
            .is_err()
        {
            return;
        }
    }
}

/// cloudflared logs the URL of a request its origin did not answer (`dest=https://host/pair/TOKEN`): a pairing
/// token in a log would sign in whoever reads it.
fn redact_pairing(line: String) -> String {
    const MARK: &str = "/pair/";
    if !line.contains(MARK) {
        return line;
    }
    let mut out = String::with_capacity(line.len());
    let mut rest = line.as_str();
    while let Some(at) = rest.find(MARK) {
        out.push_str(&rest[..at + MARK.len()]);
        rest = &rest[at + MARK.len()..];
        let token = rest
            .find(|c: char| c.is_whitespace() || "\"'?#&/".contains(c))
            .unwrap_or(rest.len());
        if token > 0 {
            out.push_str("[redacted]");
        }
        rest = &rest[token..];
    }
    out.push_str(rest);
    out
}

async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

fn named_url(named: &Named) -> String {
    match named {
        Named::Config { config, .. } => std::fs::read_to_string(config)
            .ok()
            .and_then(|c| tunnel::ingress_hostnames(&c).into_iter().next())
            .map_or_else(
                || "(see the ingress of your tunnel's config)".into(),
                |h| format!("https://{h}"),
            ),
        Named::Token(_) | Named::TokenFile(_) => {
            "(the hostname your tunnel routes: see terraform output or the Cloudflare dashboard)"
                .into()
        }
    }
}

/// Without a tunnel, what to tell the owner when a phone cannot open the local address: loopback is this computer
/// alone, and "every address" names none a phone could type. None for an address a phone can reach.
fn phone_advice(local: SocketAddr) -> Option<String> {
    let port = local.port();
    if local.ip().is_loopback() {
        Some(format!(
            "  phone:   a phone cannot open {local}, which is this computer's own address. To use one, listen on a \
             LAN or Tailscale address (--host 192.168.1.20, --host 100.101.102.103), or get a \
             public HTTPS address from a tunnel: {}",
            tunnel::INSTALL_HINT
        ))
    } else if local.ip().is_unspecified() {
        Some(format!(
            "  phone:   listening on every address: a phone on this network or tailnet opens \
             http://<this computer's LAN or Tailscale address>:{port}; `remote-agent pair --base \
             http://ADDRESS:{port}` prints a one-time link for it"
        ))
    } else {
        None
    }
}

pub use crate::account::qr;

/// Picks a free loopback port for cloudflared's metrics server.
fn free_port() -> anyhow::Result<SocketAddr> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(l.local_addr()?)
}

fn open_log(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
}

/// Keeps one old log: `x.log` becomes `x.log.1` once it is over [`LOG_LIMIT`].
fn rotate(path: &Path) {
    if std::fs::metadata(path).is_ok_and(|m| m.len() > LOG_LIMIT) {
        let _ = std::fs::rename(path, path.with_extension("log.1"));
    }
}

fn last_lines(path: &Path, n: usize) -> VecDeque<String> {
    let text = std::fs::read(path).unwrap_or_default();
    let from = text.len().saturating_sub(16 * 1024);
    let text = String::from_utf8_lossy(&text[from..]);
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..]
        .iter()
        .map(|l| l.to_string())
        .collect()
}

fn create_private_dir(dir: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .with_context(|| format!("securing {}", dir.display()))
}

/// One `up` per state dir: an exclusive lock on `up.lock`, held while we run.
fn lock(state_dir: &Path) -> anyhow::Result<nix::fcntl::Flock<std::fs::File>> {
    let path = state_dir.join("up.lock");
    let file = open_log(&path).with_context(|| format!("opening {}", path.display()))?;
    nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock).map_err(|_| {
        let state = read_state(state_dir);
        let pid = state.as_ref().and_then(|s| s["pid"].as_u64());
        let local = state
            .as_ref()
            .and_then(|s| s["local_url"].as_str().map(String::from));
        let public = state
            .as_ref()
            .and_then(|s| s["tunnel"]["url"].as_str().map(String::from));
        anyhow::anyhow!(
            "remote-agent up is already running for {} (pid {}), serving {}{}",
            state_dir.display(),
            pid.map_or("?".into(), |p| p.to_string()),
            local.unwrap_or_else(|| "(starting)".into()),
            public.map(|p| format!(" and {p}")).unwrap_or_default()
        )
    })
}

fn read_state(state_dir: &Path) -> Option<Value> {
    serde_json::from_slice(&std::fs::read(state_dir.join("state.json")).ok()?).ok()
}

/// The state `up` recorded, for `GET /api/status` (None when `up` is not running there).
pub fn recorded_state(state_dir: &Path) -> Option<Value> {
    let state = read_state(state_dir)?;
    let pid = state["pid"].as_u64()? as i32;
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).ok()?;
    Some(state)
}

/// The tunnel to open, from the flags, then the config file's `[tunnel]`.
fn tunnel_kind(args: &UpArgs, settings: &Settings) -> anyhow::Result<Option<Kind>> {
    let file = crate::config::tunnel_section(&settings.config_path)?;
    let text = |key: &str| {
        file.get(key)
            .and_then(|v| v.as_str())
            .filter(|s| !s.is_empty())
            .map(String::from)
    };
    let mode = if args.no_tunnel {
        Mode::None
    } else if let Some(mode) = args.tunnel {
        mode
    } else if let Some(mode) = text("mode") {
        match mode.as_str() {
            "quick" => Mode::Quick,
            "named" => Mode::Named,
            "none" => Mode::None,
            other => anyhow::bail!(
                "[tunnel] mode = {other:?} in {} is not quick, named or none",
                settings.config_path.display()
            ),
        }
    } else if args.tunnel_name.is_some()
        || args.tunnel_token.is_some()
        || args.tunnel_token_file.is_some()
    {
        Mode::Named
    } else {
        Mode::Quick
    };
    Ok(match mode {
        Mode::None => None,
        Mode::Quick => Some(Kind::Quick),
        Mode::Named => {
            let name = args.tunnel_name.clone().or_else(|| text("name"));
            // Absolute: cloudflared runs in the state dir, not where `up` was started.
            let config = args
                .tunnel_config
                .clone()
                .or_else(|| text("config").map(PathBuf::from))
                .map(|p| std::path::absolute(&p).unwrap_or(p));
            let token_file = args
                .tunnel_token_file
                .clone()
                .or_else(|| text("token_file").map(PathBuf::from))
                .map(|p| std::path::absolute(&p).unwrap_or(p));
            let named = if let Some(token) = &args.tunnel_token {
                Named::Token(token.clone())
            } else if let Some(file) = token_file {
                anyhow::ensure!(
                    file.is_file(),
                    "the tunnel token file {} does not exist",
                    file.display()
                );
                Named::TokenFile(file)
            } else if let (Some(name), Some(config)) = (name, config) {
                anyhow::ensure!(
                    config.is_file(),
                    "the tunnel config {} does not exist",
                    config.display()
                );
                Named::Config { name, config }
            } else {
                anyhow::bail!(
                    "a named tunnel needs --tunnel-name with --tunnel-config, or --tunnel-token-file \
                     (see terraform/README.md)"
                );
            };
            Some(Kind::Named(named))
        }
    })
}

/// `remote-agent status`: what `up` runs, from its state file. Fails when `up` is not running.
pub fn status(flags: &Flags) -> anyhow::Result<()> {
    let state_dir = crate::config::state_dir(flags)?;
    let Some(state) = recorded_state(&state_dir) else {
        anyhow::bail!(
            "remote-agent up is not running (no live state in {})",
            state_dir.display()
        );
    };
    println!(
        "remote-agent up {} (pid {})",
        state["version"].as_str().unwrap_or("?"),
        state["pid"]
    );
    println!(
        "  local:   {}",
        state["local_url"].as_str().unwrap_or("(starting)")
    );
    let tunnel = &state["tunnel"];
    let kind = tunnel["kind"].as_str().unwrap_or("?");
    if kind == "none" {
        println!("  tunnel:  none (this computer and its network only)");
    } else {
        println!(
            "  tunnel:  {kind} {} ({})",
            tunnel["url"].as_str().unwrap_or("(no URL yet)"),
            if tunnel["ready"] == true {
                "connected"
            } else {
                "not connected"
            }
        );
    }
    println!("  user:    {}", state["user"].as_str().unwrap_or("?"));
    for (name, child) in state["children"].as_object().into_iter().flatten() {
        // Without a tunnel there is no cloudflared to speak of.
        if kind == "none" && name == "cloudflared" {
            continue;
        }
        println!(
            "  {name}: {} ({}{} restarts{})",
            child["state"].as_str().unwrap_or("?"),
            child["pid"]
                .as_i64()
                .map(|pid| format!("pid {pid}, "))
                .unwrap_or_default(),
            child["restarts"],
            child["last_exit"]
                .as_str()
                .map(|e| format!(", last exit: {}", describe_exit(e)))
                .unwrap_or_default()
        );
    }
    Ok(())
}

/// How a child ended, in words: the recorded exit is an `ExitStatus` as Rust prints it (`exit status: 1`,
/// `signal: 9 (SIGKILL)`), or what kept it from starting.
fn describe_exit(how: &str) -> String {
    if let Some(code) = how.strip_prefix("exit status: ") {
        format!("exited with status {code}")
    } else if let Some(signal) = how.strip_prefix("signal: ") {
        format!("killed by signal {signal}")
    } else {
        how.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairing_tokens_are_redacted_from_log_lines() {
        let line = "ERR Request failed dest=https://a.example.com/pair/AbC-_12 event=0 \
                    dest=\"http://x/pair/tok?q=1\" /pair/ /pairs/x"
            .to_string();
        assert_eq!(
            redact_pairing(line),
            "ERR Request failed dest=https://a.example.com/pair/[redacted] event=0 \
             dest=\"http://x/pair/[redacted]?q=1\" /pair/ /pairs/x"
        );
    }

    #[test]
    fn a_phone_gets_advice_where_it_cannot_reach_the_address() {
        let loopback = phone_advice("127.0.0.1:8000".parse().unwrap()).unwrap();
        assert!(
            loopback.contains("--host") && loopback.contains("cloudflared"),
            "{loopback}"
        );
        let every = phone_advice("0.0.0.0:8000".parse().unwrap()).unwrap();
        assert!(
            every.contains("remote-agent pair --base") && every.contains(":8000"),
            "{every}"
        );
        assert_eq!(phone_advice("192.168.1.20:8000".parse().unwrap()), None);
        assert!(phone_advice("[::1]:8000".parse().unwrap()).is_some());
    }
}
