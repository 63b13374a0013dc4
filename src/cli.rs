//! The command line: `serve` (the HTTP server), `up` (serve and a tunnel, supervised), `status`.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use clap::{Parser, Subcommand};

use crate::claude;
use crate::config::{Flags, Settings, Shared};
use crate::server::{self, App, Listener, Via};
use crate::store::Store;
use crate::turns::Turns;

/// Drive Claude Code on this computer from a phone browser.
#[derive(Parser, Debug)]
#[command(version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Serve, open a Cloudflare tunnel, print the public URL with a QR code, and keep both alive.
    Up(crate::supervisor::UpArgs),
    /// Run the HTTP server (the API and the web app) in the foreground, without a tunnel.
    Serve(ServeArgs),
    /// Show what `up` is running: children, restarts, the tunnel's URL and readiness.
    Status {
        #[command(flatten)]
        dirs: StateDir,
    },
    /// Set the password: stores an argon2id hash in the config file (reads it twice from the terminal, or one
    /// line from standard input), and asks a running `up` to reload.
    Passwd {
        #[command(flatten)]
        flags: ConfigDirs,
        /// The user name to store with it [default: the one configured, else your login name]
        #[arg(long)]
        username: Option<String>,
    },
    /// Print a fresh one-time link (and its QR code) that signs a phone's browser in; it lasts 10 minutes.
    Pair {
        #[command(flatten)]
        flags: StateDir,
        /// Print only the link
        #[arg(long)]
        quiet: bool,
        /// The URL the link starts with [default: the tunnel's, else the local one, from `up`'s state]
        #[arg(long, value_name = "URL")]
        base: Option<String>,
    },
    /// Run `up` as a background service for this user (systemd user unit, or launchd LaunchAgent).
    Service {
        #[command(subcommand)]
        action: ServiceAction,
    },
    /// Check the setup: claude, cloudflared, credentials, files and their permissions, the database, the port,
    /// the service. Prints each problem with its fix; fails when there is one.
    Doctor {
        #[command(flatten)]
        flags: Flags,
        /// The cloudflared executable [env: CLOUDFLARED_BIN; default: cloudflared on PATH]
        #[arg(long, value_name = "PATH")]
        cloudflared_bin: Option<String>,
    },
    /// Bring the prototype's conversations (its sessions.json) into the store: conversation ids, Claude session
    /// ids, times, message counts and last messages. All or nothing; ids that exist are left alone.
    Import {
        /// The prototype's sessions.json
        file: PathBuf,
        #[command(flatten)]
        flags: ConfigDirs,
        /// The project directory the conversations run in [env: CLAUDE_PROJECT_PATH; default: the first of
        /// [projects] allow, else the project of a running `up`]
        #[arg(long, value_name = "DIR")]
        project: Option<PathBuf>,
    },
    /// Sign browsers out.
    Logout {
        #[command(flatten)]
        flags: DataDir,
        /// Sign every browser out (revoke all sign-in cookies)
        #[arg(long)]
        all: bool,
    },
}

/// `remote-agent service …`.
#[derive(Subcommand, Debug)]
enum ServiceAction {
    /// Write the unit with the settings in use and the PATH that finds claude and cloudflared, then enable and
    /// start it.
    Install {
        #[command(flatten)]
        flags: Flags,
        #[command(flatten)]
        manage: Manage,
    },
    /// Stop and remove the unit.
    Uninstall {
        #[command(flatten)]
        manage: Manage,
    },
    /// Whether the unit is installed, and what the service manager says of it.
    Status {
        #[command(flatten)]
        manage: Manage,
    },
    /// The service's recent log.
    Logs {
        #[command(flatten)]
        manage: Manage,
    },
    /// Print the unit for a service manager without installing it.
    Print {
        #[arg(value_enum)]
        manager: crate::service::Manager,
        #[command(flatten)]
        flags: Flags,
    },
}

/// How `service` talks to the service manager.
#[derive(clap::Args, Debug)]
struct Manage {
    /// systemd or launchd [default: this platform's]
    #[arg(long, value_enum)]
    manager: Option<crate::service::Manager>,
    /// Say what would be run instead of calling systemctl/launchctl
    #[arg(long)]
    dry_run: bool,
}

/// Where the database lives: all that `logout` needs.
#[derive(clap::Args, Debug)]
struct DataDir {
    /// Where the database lives [env: REMOTE_AGENT_DATA_DIR]
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
}

/// The database and `up`'s state (`status`, `pair`); the state dir falls back to the data dir.
#[derive(clap::Args, Debug)]
struct StateDir {
    #[command(flatten)]
    data: DataDir,
    /// Where `up` keeps its state, lock and logs [env: REMOTE_AGENT_STATE_DIR; default: the platform state dir]
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,
}

/// The files `passwd` and `import` read: the config file, the database, `up`'s state.
#[derive(clap::Args, Debug)]
struct ConfigDirs {
    /// Config file (TOML) [env: REMOTE_AGENT_CONFIG; default: <config dir>/config.toml]
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(flatten)]
    dirs: StateDir,
}

// The commands that run no server take only the flags they use (a `--port` they ignored would mislead); the
// settings code takes `Flags`, with the rest unset.
impl From<&DataDir> for Flags {
    fn from(d: &DataDir) -> Flags {
        Flags {
            data_dir: d.data_dir.clone(),
            ..Flags::default()
        }
    }
}

impl From<&StateDir> for Flags {
    fn from(d: &StateDir) -> Flags {
        Flags {
            state_dir: d.state_dir.clone(),
            ..Flags::from(&d.data)
        }
    }
}

impl From<&ConfigDirs> for Flags {
    fn from(d: &ConfigDirs) -> Flags {
        Flags {
            config: d.config.clone(),
            ..Flags::from(&d.dirs)
        }
    }
}

/// `serve`'s own flags.
#[derive(clap::Args, Debug)]
pub struct ServeArgs {
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

/// Parses the command line and runs it; errors are printed plainly and give a non-zero exit.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => {
            let _log = init_logging(args.log_file.as_deref());
            runtime().and_then(|rt| rt.block_on(serve(args)))
        }
        // The supervisor prints for a person, logs only warnings, and runs on one thread: the children's
        // death signal is tied to the thread that forked them.
        Command::Up(args) => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("starting the async runtime")
            .and_then(|rt| rt.block_on(crate::supervisor::up(args))),
        Command::Status { dirs } => crate::supervisor::status(&Flags::from(&dirs)),
        Command::Passwd { flags, username } => passwd(&Flags::from(&flags), username),
        Command::Pair { flags, quiet, base } => pair(&Flags::from(&flags), quiet, base),
        Command::Logout { flags, all } => logout(&Flags::from(&flags), all),
        Command::Service { action } => service(action),
        Command::Import {
            file,
            flags,
            project,
        } => import(
            &file,
            &Flags {
                project,
                ..Flags::from(&flags)
            },
        ),
        Command::Doctor {
            flags,
            cloudflared_bin,
        } => runtime().and_then(|rt| rt.block_on(crate::doctor::doctor(&flags, cloudflared_bin))),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("remote-agent: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Logs go to stderr (or a rotated file) through a writer thread that batches lines, so a request never waits on a
/// write syscall. The guard flushes what is left when it drops at exit.
fn init_logging(file: Option<&std::path::Path>) -> tracing_appender::non_blocking::WorkerGuard {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let sink: Box<dyn Write + Send> = match file.map(crate::files::RotatingFile::open) {
        Some(Ok(file)) => Box::new(file),
        Some(Err(e)) => {
            eprintln!("remote-agent: cannot write the log file ({e}); logging to stderr");
            Box::new(std::io::stderr())
        }
        None => Box::new(std::io::stderr()),
    };
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        // Under a flood, wait for the writer rather than drop lines: a log with holes is worse than a slower one.
        .lossy(false)
        // The default queue preallocates 128k slots (megabytes of idle memory); a few thousand lines is plenty.
        .buffered_lines_limit(4096)
        // The worker flushes whenever its queue runs dry, so buffering only merges lines that are already waiting.
        .finish(std::io::BufWriter::with_capacity(64 * 1024, sink));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(file.is_none() && std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    guard
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

/// `remote-agent serve`: resolve settings, open the store, bind, print `listening on http://ADDR` (and `tunnel
/// listener on http://ADDR`), serve until SIGINT/SIGTERM, then stop every turn's child before exiting. SIGHUP
/// reloads the settings.
pub async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    // Recorded before private_files, whose own record then changes nothing (the first one is kept).
    if let Some(mask) = args.child_umask {
        crate::process::remember_user_umask(mask);
    }
    private_files();
    let flags = args.flags;
    let settings = Settings::load(&flags)?;
    crate::auth::check_password_length(&settings.password)?;
    crate::auth::keep_large_allocations_mapped();
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(server::tls_acceptor(cert, key)?),
        _ => None,
    };
    if let Some(addr) = args.tunnel_listen
        && !addr.ip().is_loopback()
    {
        anyhow::bail!("--tunnel-listen must be a loopback address (127.0.0.1:PORT), not {addr}");
    }
    let store = Arc::new(open_store(&settings)?);
    for warning in crate::config::dotenv(&flags)?
        .map(|d| d.warnings())
        .unwrap_or_default()
    {
        tracing::warn!("{warning}");
    }
    enter_state_dir(&settings)?;
    claude::become_subreaper();
    for orphan in store
        .interrupt_unfinished()
        .context("reading unfinished turns")?
    {
        stop_recorded(&orphan);
    }
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
    let settings = Shared::new(settings);
    let app = Arc::new(App {
        turns: Turns::new(store.clone(), settings.clone()),
        settings,
        store,
        started: Instant::now(),
        throttle: Default::default(),
        basic_cache: Default::default(),
        requests: Default::default(),
    });
    for line in &lines {
        println!("{line}");
        tracing::info!("{line}");
    }
    let _ = std::io::stdout().flush();
    tracing::info!(project = %app.settings.get().default_project().display(), "serving");

    let (stop_tx, mut stop_rx) = crate::shutdown::channel();
    let server = tokio::spawn(server::run(listeners, app.clone(), async move {
        stop_rx.signalled().await;
    }));
    stops.wait(&app, &flags).await;
    tracing::info!("shutting down: stopping turns and draining connections");
    stop_tx.fire();
    app.turns.shutdown().await;
    server.await.context("server task")?;
    app.store.truncate_wal();
    tracing::info!("stopped");
    Ok(())
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

fn open_store_at(flags: &Flags) -> anyhow::Result<Store> {
    private_files();
    let dir = crate::config::data_dir(flags)?;
    let path = dir.join("remote-agent.db");
    anyhow::ensure!(
        path.exists(),
        "no database at {} (has the server run with this data dir?)",
        path.display()
    );
    Store::open(&path).with_context(|| format!("opening {}", path.display()))
}

/// `remote-agent passwd`.
fn passwd(flags: &Flags, username: Option<String>) -> anyhow::Result<()> {
    private_files();
    let config = crate::config::config_path(flags)?;
    let password = read_new_password()?;
    anyhow::ensure!(
        password.chars().count() >= crate::auth::MIN_PASSWORD_CHARS,
        "the password must have at least {} characters",
        crate::auth::MIN_PASSWORD_CHARS
    );
    let username = username
        .or_else(|| Settings::load(flags).ok().map(|s| s.username))
        .or_else(|| std::env::var("USER").ok())
        .unwrap_or_else(|| "me".into());
    let hash = crate::auth::hash_password(&password)?;
    crate::config::save_credentials(&config, &username, &crate::config::Secret::Hash(hash))?;
    println!(
        "Saved the password for {username} in {} (as an argon2id hash).",
        config.display()
    );
    // Whoever signed in under the old password (perhaps the reason it changes) is signed out.
    match signed_out_everywhere(flags) {
        Ok(Some(n)) => {
            println!("Signed out {n} browser session(s): sign in again with the new password.")
        }
        Ok(None) => {}
        Err(e) => println!(
            "Warning: could not sign the browsers out ({e:#}); run `remote-agent logout --all`."
        ),
    }
    if std::env::var_os("AUTH_PASSWORD").is_some() {
        println!("Note: AUTH_PASSWORD is set in the environment and wins over the config file.");
    }
    match crate::config::state_dir(flags)
        .ok()
        .and_then(|d| crate::up::recorded_state(&d))
    {
        Some(state) => {
            if let Some(pid) = state["pid"].as_i64() {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid as i32),
                    nix::sys::signal::Signal::SIGHUP,
                );
                println!("Asked the running `remote-agent up` (pid {pid}) to reload it.");
            }
        }
        None => println!(
            "A running `remote-agent serve` watches its config file and takes it within seconds (or on SIGHUP)."
        ),
    }
    Ok(())
}

/// Revokes every browser sign-in; None when there is no database yet (so nobody to sign out).
fn signed_out_everywhere(flags: &Flags) -> anyhow::Result<Option<usize>> {
    let path = crate::config::data_dir(flags)?.join("remote-agent.db");
    if !path.exists() {
        return Ok(None);
    }
    Ok(Some(open_store_at(flags)?.revoke_all_sessions()?))
}

/// Reads the new password: twice, without echo, from a terminal; else one line of standard input.
fn read_new_password() -> anyhow::Result<String> {
    use std::io::{BufRead, IsTerminal};
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        let mut line = String::new();
        stdin.lock().read_line(&mut line)?;
        return Ok(line.trim_end_matches(['\r', '\n']).to_string());
    }
    let first = prompt_hidden("New password: ")?;
    let second = prompt_hidden("Again: ")?;
    anyhow::ensure!(
        first == second,
        "the two passwords differ; nothing was changed"
    );
    Ok(first)
}

fn prompt_hidden(prompt: &str) -> anyhow::Result<String> {
    use nix::sys::termios::{LocalFlags, SetArg, tcgetattr, tcsetattr};
    use std::io::BufRead;
    print!("{prompt}");
    std::io::stdout().flush()?;
    let stdin = std::io::stdin();
    let saved = tcgetattr(&stdin).context("reading the terminal's settings")?;
    let mut quiet = saved.clone();
    quiet.local_flags.remove(LocalFlags::ECHO);
    tcsetattr(&stdin, SetArg::TCSANOW, &quiet).context("turning echo off")?;
    let mut line = String::new();
    let read = stdin.lock().read_line(&mut line);
    let _ = tcsetattr(&stdin, SetArg::TCSANOW, &saved);
    println!();
    read?;
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

/// `remote-agent pair`: a one-time sign-in link, stored as a hash.
fn pair(flags: &Flags, quiet: bool, base: Option<String>) -> anyhow::Result<()> {
    // Checked before a token is made: a link on a made-up address would spend one for nothing.
    if let Some(base) = &base
        && !(base.starts_with("http://") || base.starts_with("https://"))
    {
        anyhow::bail!(
            "--base must be the server's address, e.g. http://192.168.1.20:8000 (got {base:?})"
        );
    }
    let store = open_store_at(flags)?;
    let token = crate::auth::random_token();
    store.create_pairing(
        &crate::auth::sha256_hex(token.as_bytes()),
        crate::auth::PAIRING_TTL_SECS,
    )?;
    let base = base
        .or_else(|| {
            let state = crate::state::read_live(&crate::config::state_dir(flags).ok()?)?;
            state.tunnel.url.or(state.local_url)
        })
        .unwrap_or_else(|| "http://127.0.0.1:8000".into());
    let link = format!("{}/pair/{token}", base.trim_end_matches('/'));
    if quiet {
        println!("{link}");
    } else {
        println!("Open this on your phone to sign its browser in (one use, 10 minutes):");
        println!("  {link}");
        println!("{}", crate::supervisor::qr(&link));
    }
    Ok(())
}

fn home() -> anyhow::Result<PathBuf> {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .context("HOME is not set")
}

/// The unit for the settings in use: `up` with the same flags, in the default project.
fn unit(flags: &Flags) -> anyhow::Result<crate::service::Unit> {
    let settings = Settings::load(flags).map_err(|e| match e {
        crate::config::ConfigError::NoCredentials(path) => anyhow::anyhow!(
            "set a password first (`remote-agent passwd`, saved in {}): the service must not make one up \
             where nobody reads it",
            path.display()
        ),
        e => e.into(),
    })?;
    // The service manager starts `up` with neither this shell's environment nor its .env: credentials must be in
    // the config file, and other settings from there become flags.
    if !crate::config::file_has_credentials(&settings.config_path)? {
        anyhow::bail!(
            "the login comes from AUTH_USERNAME/AUTH_PASSWORD here, which the service will not see: save it in {} \
             with `remote-agent passwd` first",
            settings.config_path.display()
        );
    }
    let project = settings.default_project().to_path_buf();
    let mut flags = flags.with_env()?;
    flags.project = Some(project.clone());
    Ok(crate::service::Unit {
        exe: std::env::current_exe().context("finding our own executable")?,
        args: flags.to_args(),
        project,
        path: crate::service::service_path(
            &settings.claude_bin,
            &std::env::var("CLOUDFLARED_BIN").unwrap_or_else(|_| "cloudflared".into()),
        ),
        log: home()?.join("Library/Logs/remote-agent.log"),
    })
}

/// `remote-agent service …`.
fn service(action: ServiceAction) -> anyhow::Result<()> {
    use crate::service::{self as svc, Manager};
    let pick = |m: &Manage| m.manager.unwrap_or_else(Manager::native);
    match action {
        ServiceAction::Print { manager, flags } => {
            print!("{}", unit(&flags)?.render(manager));
        }
        ServiceAction::Install { flags, manage } => {
            let unit = unit(&flags)?;
            let home = home()?;
            let path = svc::install(pick(&manage), &unit, &home, manage.dry_run)?;
            println!(
                "installed {}; it runs `remote-agent up` at login and after a crash, with Claude working in {}",
                path.display(),
                unit.project.display()
            );
            // Without --project or CLAUDE_PROJECT_PATH the project is where install ran: say so when that is broad.
            // (The project is canonical; so must home be, where it is reached through a link.)
            let home = home.canonicalize().unwrap_or(home);
            if unit.project == home || unit.project.parent().is_none() {
                println!(
                    "warning: that is {}, so Claude can edit any file in it; to narrow it, install again with \
                     --project DIR",
                    if unit.project == home {
                        "your home directory"
                    } else {
                        "the root directory"
                    }
                );
            }
        }
        ServiceAction::Uninstall { manage } => {
            if svc::uninstall(pick(&manage), &home()?, manage.dry_run)? {
                println!("uninstalled");
            } else {
                println!("not installed");
            }
        }
        ServiceAction::Status { manage } => {
            svc::status(pick(&manage), &home()?, manage.dry_run)?;
        }
        ServiceAction::Logs { manage } => {
            svc::logs(
                pick(&manage),
                &home()?.join("Library/Logs/remote-agent.log"),
                manage.dry_run,
            )?;
        }
    }
    Ok(())
}

/// Reads the prototype's sessions.json: `{"<conv id>": {"session_id", "created_at", "last_message_at",
/// "turn_count", "last_message", "total_cost_usd"}}`. Any fault names the conversation and field, and nothing is imported.
pub fn parse_sessions(text: &str) -> anyhow::Result<Vec<crate::store::Imported>> {
    use serde_json::Value;
    let all: serde_json::Map<String, Value> = serde_json::from_str(text).map_err(|e| {
        anyhow::anyhow!("not a sessions.json (a JSON object of conversations): {e}")
    })?;
    let mut out = Vec::new();
    for (id, c) in all {
        let bad = |field: &str, why: &str| {
            anyhow::anyhow!("conversation {id:?}: {field} {why}; nothing imported")
        };
        anyhow::ensure!(
            server::valid_conversation_id(&id),
            "conversation id {id:?} is not 1 to 64 of A-Z a-z 0-9 _ -; nothing imported"
        );
        let c = c
            .as_object()
            .ok_or_else(|| bad("the entry", "is not an object"))?;
        let text = |field: &str| -> anyhow::Result<Option<String>> {
            match c.get(field) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(_) => Err(bad(field, "is not a string")),
            }
        };
        let session_id = text("session_id")?;
        if let Some(s) = &session_id {
            anyhow::ensure!(server::is_uuid(s), bad("session_id", "is not a UUID"));
        }
        for field in ["created_at", "last_message_at"] {
            if text(field)?
                .is_some_and(|t| t.len() > 40 || !t.starts_with(|ch: char| ch.is_ascii_digit()))
            {
                return Err(bad(field, "is not a time"));
            }
        }
        let turn_count = match c.get("turn_count") {
            None | Some(Value::Null) => 0,
            Some(v) => v
                .as_i64()
                .filter(|n| *n >= 0)
                .ok_or_else(|| bad("turn_count", "is not a count"))?,
        };
        let total_cost_usd = match c.get("total_cost_usd") {
            None | Some(Value::Null) => 0.0,
            Some(v) => v
                .as_f64()
                .filter(|n| n.is_finite() && *n >= 0.0)
                .ok_or_else(|| bad("total_cost_usd", "is not an amount"))?,
        };
        out.push(crate::store::Imported {
            total_cost_usd,
            id: id.clone(),
            session_id,
            created_at: text("created_at")?,
            last_message_at: text("last_message_at")?,
            turn_count,
            last_message: text("last_message")?,
        });
    }
    Ok(out)
}

/// `remote-agent import sessions.json`.
fn import(file: &std::path::Path, flags: &Flags) -> anyhow::Result<()> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let conversations = parse_sessions(&text)?;
    let settings = Settings::load(flags)?;
    let project = import_project(flags, &settings)?;
    let store = open_store(&settings)?;
    let project = project.display().to_string();
    let done = store.import(&conversations, &project)?;
    println!(
        "imported {} of {} conversation(s) into {}, to run in {project}",
        done.len(),
        conversations.len(),
        settings.data_dir.display()
    );
    for c in conversations.iter().filter(|c| !done.contains(&c.id)) {
        println!("  skipped {:?}: a conversation with that id exists", c.id);
    }
    Ok(())
}

/// The project imported conversations run in: the configured one (`--project`, `CLAUDE_PROJECT_PATH`, the first
/// of `[projects] allow`), else that of a running `up`, else the current directory with a warning. A server runs a
/// conversation only in a project it allows, so a project the running `up` does not allow is warned of too.
fn import_project(flags: &Flags, settings: &Settings) -> anyhow::Result<PathBuf> {
    let configured =
        flags.with_env()?.project.is_some() || file_allows_projects(&settings.config_path);
    let running = crate::config::state_dir(flags)
        .ok()
        .and_then(|d| crate::state::read_live(&d));
    let served: Option<Vec<PathBuf>> = running.map(|state| state.projects);
    let project = match served.as_deref() {
        _ if configured => settings.default_project().to_path_buf(),
        Some([first, ..]) => first.clone(),
        _ => {
            println!(
                "warning: no project is configured (--project, CLAUDE_PROJECT_PATH or [projects] allow), so these \
                 conversations are attached to the current directory {}; a server runs them only if it allows \
                 that directory",
                settings.default_project().display()
            );
            settings.default_project().to_path_buf()
        }
    };
    if let Some(served) = served.filter(|s| !s.is_empty() && !s.contains(&project)) {
        println!(
            "warning: the running `remote-agent up` does not allow {} (it allows {}): these conversations will \
             not run there until it does ([projects] allow in the config file)",
            project.display(),
            served
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    Ok(project)
}

/// Whether the config file lists allowed projects (the settings already checked that it parses).
fn file_allows_projects(path: &Path) -> bool {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|text| text.parse::<toml::Table>().ok())
        .and_then(|t| Some(!t.get("projects")?.get("allow")?.as_array()?.is_empty()))
        .unwrap_or(false)
}

/// `remote-agent logout --all`.
fn logout(flags: &Flags, all: bool) -> anyhow::Result<()> {
    anyhow::ensure!(
        all,
        "say --all to sign every browser out (a single browser signs out from the app)"
    );
    let n = open_store_at(flags)?.revoke_all_sessions()?;
    println!("Signed out {n} browser session(s).");
    Ok(())
}

/// Everything we create from here on is readable by the user alone: see [`crate::process::private_umask`].
pub fn private_files() {
    crate::process::private_umask();
}

/// `serve` works from the state dir (0700), never from a project where Claude writes files: its settings were read
/// where it was started, and reloads still resolve against that place (`config::launch_dir`).
fn enter_state_dir(settings: &Settings) -> anyhow::Result<()> {
    let dir = &settings.state_dir;
    crate::files::private_dir(dir, "state dir ")?;
    std::env::set_current_dir(dir).with_context(|| format!("entering state dir {}", dir.display()))
}

/// Creates the data dir (0700) and the database file (0600) before SQLite touches them.
fn open_store(settings: &Settings) -> anyhow::Result<Store> {
    let dir = &settings.data_dir;
    crate::files::private_dir(dir, "data dir ")?;
    let path = dir.join("remote-agent.db");
    let existed = path.exists();
    let file = crate::files::append_private(&path)
        .with_context(|| format!("creating {}", path.display()))?;
    // SQLite would silently make a new, empty database of a file that was emptied (truncated by a full disk or a
    // bad copy): a database that existed must have its header, or its WAL.
    if existed && file.metadata()?.len() == 0 && !crate::store::wal_has_data(&path) {
        anyhow::bail!(
            "the database {} is empty: it existed but has lost its contents. Run `remote-agent doctor`; restore \
             the file from your own backup, or move it aside (mv {0} {0}.empty) to start with a new, empty one",
            path.display()
        );
    }
    Store::open(&path).map_err(|e| match crate::store::Fault::of(&e) {
        Some(crate::store::Fault::Damaged) => anyhow::anyhow!(
            "the database {} is damaged ({e}). Run `remote-agent doctor`; restore the file from your own backup, \
             or move it aside with its -wal and -shm files (mv {0} {0}.damaged) to start with a new, empty one",
            path.display()
        ),
        _ => anyhow::Error::new(e).context(format!("opening the database {}", path.display())),
    })
}

/// Stops what a crashed server left running for a turn: the recorded process group, if the pid still belongs to
/// the process we started (same start time), and anything else marked with the turn.
fn stop_recorded(orphan: &crate::store::Orphan) {
    let pid = orphan.pid as u32;
    if claude::process_start(pid) == Some(orphan.pid_start as u64) {
        tracing::warn!(
            turn = orphan.turn_id,
            pid,
            "stopping a claude process left by a previous run"
        );
        crate::process::signal_group(pid, nix::sys::signal::Signal::SIGKILL);
    }
    claude::kill_marked_anywhere(&orphan.turn_id);
}
