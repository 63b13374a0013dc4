//! `remote-agent up`: runs `serve` and `cloudflared` as supervised children, prints the local and public URLs (and,
//! on a terminal, a pairing link with its QR code), restarts either one when it exits or `serve` stops answering,
//! and records what it runs in `state.json` for `remote-agent status` and `GET /api/status`.
//!
//! This file is the loop and its events; `child` one child's life, `commands` how each is started, `probe`
//! the health and tunnel probes, `console` what is printed (and `remote-agent status`), `setup` what `up`
//! works out before the loop starts, `backoff` the restart delays.

mod backoff;
mod child;
mod commands;
mod console;
mod probe;
mod setup;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use nix::sys::signal::Signal;
use tokio::sync::mpsc;

use crate::config::{Flags, Settings};
use crate::files;
use crate::process;
use crate::shutdown;
use crate::state::{self, TunnelKind, UpState};
use crate::tunnel::{self, Kind, Named};

use child::{Child, State, sleep_until};
pub use console::{qr, status};

/// How long a child gets to stop after SIGTERM before SIGKILL.
const GRACE: Duration = Duration::from_secs(10);
/// How long to wait for the Cloudflare edge before saying something is wrong.
const EDGE_WARNING: Duration = Duration::from_secs(30);

/// The tunnel `up` opens: a quick one, a named one, or none.
// clap prints a variant's doc comment in `up --help`, which would change its output: the variants stay undocumented.
#[allow(missing_docs)]
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Quick,
    Named,
    None,
}

/// `up`'s flags: the server's, and the tunnel's.
#[derive(clap::Args, Debug)]
pub struct UpArgs {
    /// The settings `up` shares with `serve`.
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
    process::private_umask();
    let settings = setup::load_settings(&args.flags)?;
    crate::auth::check_password_length(&settings.password)?;
    let state_dir = settings.state_dir.clone();
    files::private_dir(&state_dir, "")?;
    let _lock = state::lock(&state_dir)?;
    setup::port_is_free(&settings)?;
    let mut kind = setup::tunnel_kind(&args, &settings)?;
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
        match process::find_executable(&bin) {
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
        serve_listening: false,
    };
    sup.run().await
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
                () = sleep_until(self.serve.next_start()) => self.start(Who::Serve)?,
                () = sleep_until(self.tunnel.next_start()) => self.start(Who::Tunnel)?,
                _ = tick.tick() => self.probe(),
                _ = hup.recv() => {
                    // A serve not yet listening reads the settings as it starts: no signal needed, or safe.
                    if let Some(pid) = self.serve.pid().filter(|_| self.serve_listening) {
                        println!("reloading serve's settings (SIGHUP)");
                        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), Signal::SIGHUP);
                    }
                }
                _ = int.recv() => break,
                _ = term.recv() => break,
            }
        }
        self.shutdown(&mut int).await;
        state::remove(&self.state_dir);
        Ok(())
    }

    /// Stops both children (SIGTERM, then SIGKILL after the grace); a second Ctrl-C kills them at once.
    async fn shutdown(&mut self, int: &mut tokio::signal::unix::Signal) {
        println!("stopping…");
        for child in [&mut self.serve, &mut self.tunnel] {
            child.stop_for_good();
        }
        let deadline = tokio::time::Instant::now() + GRACE + Duration::from_secs(5);
        while self.serve.running() || self.tunnel.running() {
            tokio::select! {
                Some(event) = self.events.1.recv() => {
                    if let Event::Exited { who, generation, .. } = event {
                        let child = self.child(who);
                        if generation == child.generation {
                            child.state = State::Stopped;
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
        for pid in [&self.serve, &self.tunnel].iter().filter_map(|c| c.pid()) {
            process::signal_group(pid, Signal::SIGKILL);
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
        let (stop_tx, stop_rx) = shutdown::channel();
        let generation = self.child(who).begin(stop_tx);
        tokio::spawn(child::run(
            who,
            generation,
            process::spawn(&mut cmd),
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

    fn on_event(&mut self, event: Event) {
        match event {
            Event::Started {
                who,
                generation,
                pid,
            } => {
                self.child(who).started_as(generation, pid);
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
                child.last_exit = Some(how.clone());
                if who == Who::Serve {
                    child.tail = child::last_lines(&serve_log, 8);
                }
                let ran = child.started.elapsed();
                let delay = child.backoff.after_exit(ran, Instant::now());
                child.restarts += 1;
                child.state = State::Restarting {
                    at: tokio::time::Instant::now() + delay,
                };
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
                self.forget_stale_url();
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
        if matches!(self.tunnel.state, State::Stopped) && self.kind.is_some() {
            self.tunnel.state = State::Restarting {
                at: tokio::time::Instant::now(),
            };
        }
        self.forget_stale_url();
        self.write_state();
    }

    /// A quick tunnel that ended gets a new URL when it restarts: the old one is forgotten, so that it is neither
    /// recorded nor taken for the new one. Called where the tunnel may have just ended (or a late probe of the
    /// run that ended answered), before the state is written.
    fn forget_stale_url(&mut self) {
        if matches!(self.kind, Some(Kind::Quick))
            && matches!(self.tunnel.state, State::Restarting { .. })
        {
            self.public_url = None;
        }
    }

    /// `state.json` in the state dir, replaced atomically. It only reads: what changes state happens before.
    fn write_state(&self) {
        let record = UpState {
            pid: std::process::id(),
            version: Some(env!("CARGO_PKG_VERSION").into()),
            started_at_unix: SystemTime::now()
                .checked_sub(self.started.elapsed())
                .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                .map(|d| d.as_secs()),
            user: Some(self.settings.username.clone()),
            // `import` attaches conversations to a project this server runs.
            projects: self.settings.projects.clone(),
            local_url: self.local.map(|_| self.local_url()),
            tunnel: state::Tunnel {
                kind: match &self.kind {
                    None => TunnelKind::None,
                    Some(Kind::Quick) => TunnelKind::Quick,
                    Some(Kind::Named(_)) => TunnelKind::Named,
                },
                url: self.public_url.clone(),
                ready: self.ready,
                // Every name the tunnel routes to us: serve's tunnel listener answers only these (and `url`'s).
                hostnames: match &self.kind {
                    Some(Kind::Named(Named::Config { config, .. })) => {
                        std::fs::read_to_string(config)
                            .map(|c| tunnel::ingress_hostnames(&c))
                            .unwrap_or_default()
                    }
                    _ => Vec::new(),
                },
            },
            children: state::Children {
                cloudflared: Some(self.tunnel.record()),
                serve: Some(self.serve.record()),
            },
        };
        if let Err(e) = record.write(&self.state_dir) {
            eprintln!(
                "remote-agent: cannot write {}: {e}",
                state::path(&self.state_dir).display()
            );
        }
    }
}
