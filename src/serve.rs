//! `remote-agent serve`: the daemon's composition (settings, then the store, then the turns, then the server) in
//! [`run`], which a test calls in process with its own listeners and shutdown; and the command around it
//! ([`command`]): the flags, the listeners it binds and announces, the state dir it works from, signals and the
//! config watch.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::claude;
use crate::config::{Flags, Settings, Shared};
use crate::server::{self, App};
use crate::store::Store;
use crate::turns::Turns;

mod address;

pub use crate::server::{Listener, Via};

/// `serve`'s own flags.
#[derive(clap::Args, Debug)]
pub struct ServeArgs {
    /// The settings `serve` shares with `up`.
    #[command(flatten)]
    pub flags: Flags,
    /// Also listen here, on loopback, for cloudflared (`up` sets this; port 0 picks one)
    #[arg(long, value_name = "ADDR")]
    pub tunnel_listen: Option<SocketAddr>,
    /// Serve HTTPS with this certificate chain (PEM), for use without a tunnel (LAN, Tailscale)
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The certificate's private key (PEM)
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Write the log to this file, kept under 4 MiB plus one older file, instead of stderr (`up` sets this)
    #[arg(long, value_name = "FILE")]
    pub log_file: Option<PathBuf>,
    /// The umask Claude runs with, octal (`up` passes on the one it started with; default: the one serve
    /// started with)
    #[arg(long, value_name = "OCTAL", hide = true, value_parser = parse_umask)]
    pub child_umask: Option<u32>,
}

fn parse_umask(text: &str) -> Result<u32, String> {
    u32::from_str_radix(text, 8)
        .ok()
        .filter(|m| *m <= 0o777)
        .ok_or_else(|| format!("a umask is octal, 000 to 777, not {text:?}"))
}

/// Serves `listeners` with `settings` until `shutdown` resolves, then stops every turn's child and drains the
/// connections. Opens (or creates, private) the database in the settings' data dir and ends what a crashed run
/// left unfinished first. What belongs to the whole process (the umask, the working directory, the child
/// subreaper, signals, the config watch, logging) is the command's, not this: a test calls it in process.
pub async fn run(
    listeners: Vec<Listener>,
    settings: Settings,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let store = Arc::new(crate::store::open_private(&settings.data_dir)?);
    interrupt_unfinished(&store, &settings.data_dir)?;
    serve_until(compose(settings, store), listeners, shutdown).await
}

/// The server's state, composed: the settings, shared so that a reload reaches every part; the store; the turns.
fn compose(settings: Settings, store: Arc<Store>) -> Arc<App> {
    let settings = Shared::new(settings);
    // One sender: the turns tell it what happened, the routes manage its subscriptions.
    let push = crate::push::Push::start(store.clone(), settings.clone());
    Arc::new(App {
        push: push.clone(),
        turns: Turns::new(store.clone(), settings.clone(), push),
        settings,
        store,
        started: Instant::now(),
        throttle: Default::default(),
        basic_cache: Default::default(),
        requests: Default::default(),
        tasks: Default::default(),
        history: Default::default(),
    })
}

/// Serves until `shutdown` resolves; then stops the turns while the connections drain, and folds the WAL back
/// into the database.
async fn serve_until(
    app: Arc<App>,
    listeners: Vec<Listener>,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let (stop_tx, mut stop_rx) = crate::shutdown::channel();
    let sweeper = tokio::spawn(sweep_changes(app.clone(), stop_rx.clone()));
    let server = tokio::spawn(server::run(listeners, app.clone(), async move {
        stop_rx.signalled().await;
    }));
    shutdown.await;
    tracing::info!("shutting down: stopping turns and draining connections");
    stop_tx.fire();
    app.turns.shutdown().await;
    server.await.context("server task")?;
    let _ = sweeper.await;
    // The session listing's watcher and its thread.
    app.history.stop();
    app.store.truncate_wal();
    tracing::info!("stopped");
    Ok(())
}

/// How often our object stores of turns' changes are swept (crate::changes): at start, then daily.
const SWEEP_EVERY: Duration = Duration::from_secs(24 * 3600);

/// Sweeps the object stores of turns' changes at start and every [`SWEEP_EVERY`] until `stop`. What is swept must
/// have been written more than an hour ago (`REMOTE_AGENT_CHANGES_GRACE_SECS`, undocumented: it lets the tests
/// sweep what they just made).
async fn sweep_changes(app: Arc<App>, mut stop: crate::shutdown::Shutdown) {
    let grace = std::env::var("REMOTE_AGENT_CHANGES_GRACE_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .map_or(Duration::from_secs(3600), Duration::from_secs);
    loop {
        let data_dir = app.settings.get().data_dir.clone();
        let swept = tokio::select! {
            swept = crate::changes::sweep(&app.store, &data_dir, grace) => swept,
            () = stop.signalled() => return,
        };
        if swept.removed > 0 {
            tracing::info!(
                "changes: swept {} objects ({} KB) no stored turn needs from {} stores",
                swept.removed,
                swept.bytes / 1024,
                swept.stores
            );
        }
        tokio::select! {
            () = tokio::time::sleep(SWEEP_EVERY) => {}
            () = stop.signalled() => return,
        }
    }
}

/// `remote-agent serve`: resolve settings, open the store, bind, print `listening on http://ADDR` (and `tunnel
/// listener on http://ADDR`), serve until SIGINT/SIGTERM, then stop every turn's child before exiting. SIGHUP
/// reloads the settings.
pub async fn command(args: ServeArgs) -> anyhow::Result<()> {
    let flags = args.flags;
    let settings = Settings::load(&flags)?;
    crate::auth::check_password_length(&settings.password)?;
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(server::tls_acceptor(cert, key)?),
        _ => None,
    };
    if let Some(addr) = args.tunnel_listen
        && !addr.ip().is_loopback()
    {
        anyhow::bail!("--tunnel-listen must be a loopback address (127.0.0.1:PORT), not {addr}");
    }
    let store = Arc::new(crate::store::open_private(&settings.data_dir)?);
    for warning in crate::config::dotenv(&flags)?
        .map(|d| d.warnings())
        .unwrap_or_default()
    {
        tracing::warn!("{warning}");
    }
    enter_state_dir(&settings)?;
    claude::become_subreaper();
    interrupt_unfinished(&store, &settings.data_dir)?;
    let local = tokio::net::TcpListener::bind((settings.host.as_str(), settings.port))
        .await
        .with_context(|| format!("cannot listen on {}:{}", settings.host, settings.port))?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    let mut listeners = vec![Listener {
        tcp: local,
        via: Via::Local,
        tls,
    }];
    let mut lines = vec![format!(
        "listening on {scheme}://{}",
        listeners[0].tcp.local_addr()?
    )];
    if let Some(addr) = args.tunnel_listen {
        let tcp = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on {addr} for the tunnel"))?;
        lines.push(format!("tunnel listener on http://{}", tcp.local_addr()?));
        listeners.push(Listener {
            tcp,
            via: Via::Tunnel,
            tls: None,
        });
    }
    if crate::process::find_executable(&settings.claude_bin).is_none() {
        tracing::warn!(
            "claude executable {:?} not found or not executable: messages will fail until it is \
             (set CLAUDE_BIN or --claude-bin)",
            settings.claude_bin
        );
    }
    // Signals and the config watch are in place before we say we listen: a client that acts on that line (a
    // SIGTERM, an edited config file) is never missed.
    let stops = Stops::install(&settings.config_path)?;
    let state_dir = settings.state_dir.clone();
    let app = compose(settings, store);
    let address = address::follow(state_dir, app.push.clone());
    for line in &lines {
        println!("{line}");
        tracing::info!("{line}");
    }
    let _ = std::io::stdout().flush();
    tracing::info!(project = %app.settings.get().default_project().display(), "serving");

    let served = serve_until(app.clone(), listeners, async {
        stops.wait(&app, &flags).await
    })
    .await;
    address.abort();
    served
}

/// What ends or reloads `serve`: SIGINT, SIGTERM, SIGHUP and changes to the config file.
struct Stops {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
    config: PathBuf,
    _watcher: Option<Box<dyn notify::Watcher + Send>>,
    changed: tokio::sync::mpsc::Receiver<()>,
}

impl Stops {
    fn install(config: &Path) -> anyhow::Result<Stops> {
        use tokio::signal::unix::{SignalKind, signal};
        let term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
        let int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
        let hup = signal(SignalKind::hangup()).context("installing the SIGHUP handler")?;
        // Without a watch (no config dir yet, no inotify), SIGHUP still reloads.
        let watched = config
            .parent()
            .is_some_and(|d| d.as_os_str().is_empty() || d.is_dir())
            .then(|| crate::config::watch(config))
            .transpose()
            .unwrap_or_else(|e| {
                tracing::warn!("not watching {} for changes: {e}", config.display());
                None
            });
        let (_watcher, changed) = match watched {
            Some((watcher, rx)) => (Some(watcher), rx),
            None => (None, tokio::sync::mpsc::channel(1).1),
        };
        Ok(Stops {
            term,
            int,
            hup,
            config: config.to_path_buf(),
            _watcher,
            changed,
        })
    }

    /// Waits for SIGINT or SIGTERM; on SIGHUP or a changed config file meanwhile, reloads the settings (an
    /// invalid file keeps the old ones).
    async fn wait(mut self, app: &App, flags: &Flags) {
        loop {
            tokio::select! {
                _ = self.term.recv() => return,
                _ = self.int.recv() => return,
                _ = self.hup.recv() => reload(app, flags),
                Some(()) = self.changed.recv() => {
                    // An editor's save is several events; let them settle, then read the file once.
                    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
                    while self.changed.try_recv().is_ok() {}
                    tracing::info!("{} changed", self.config.display());
                    reload(app, flags);
                }
            }
        }
    }
}

fn reload(app: &App, flags: &Flags) {
    let loaded = Settings::load(flags)
        .map_err(anyhow::Error::from)
        .and_then(|new| {
            crate::auth::check_password_length(&new.password)?;
            Ok(new)
        });
    match loaded {
        Ok(new) => {
            let old = app.settings.replace(new);
            let now = app.settings.get();
            if (old.host.as_str(), old.port) != (now.host.as_str(), now.port) {
                tracing::warn!("the listen address changed; restart to use it");
            }
            app.turns.apply_cap();
            tracing::info!("settings reloaded");
        }
        Err(e) => tracing::error!("settings not reloaded, keeping the old ones: {e}"),
    }
}

/// `serve` works from the state dir (0700), never from a project where Claude writes files: its settings were read
/// where it was started, and reloads still resolve against that place (`config::launch_dir`).
fn enter_state_dir(settings: &Settings) -> anyhow::Result<()> {
    let dir = &settings.state_dir;
    crate::files::private_dir(dir, "state dir ")?;
    std::env::set_current_dir(dir).with_context(|| format!("entering state dir {}", dir.display()))
}

/// Marks the turns a previous run left queued or running as interrupted, and stops what they left running.
fn interrupt_unfinished(store: &Store, data_dir: &std::path::Path) -> anyhow::Result<()> {
    for orphan in store
        .interrupt_unfinished()
        .context("reading unfinished turns")?
    {
        stop_recorded(&orphan, data_dir);
    }
    Ok(())
}

/// Stops what a crashed server left running for a turn: the recorded process group, if the pid still belongs to
/// the process we started (same start time), and anything else marked with its conversation.
fn stop_recorded(orphan: &crate::store::Orphan, data_dir: &std::path::Path) {
    let pid = orphan.pid as u32;
    if claude::process_start(pid) == Some(orphan.pid_start as u64) {
        tracing::warn!(
            turn = orphan.turn_id,
            pid,
            "stopping a claude process left by a previous run"
        );
        crate::process::signal_group(pid, nix::sys::signal::Signal::SIGKILL);
    }
    claude::kill_marked_anywhere(&claude::Marker::new(&orphan.conversation_id, data_dir));
}
