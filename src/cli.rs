//! The command line: `serve` (the HTTP server) and what it needs to start and stop cleanly.

use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use clap::{Parser, Subcommand};

use crate::claude;
use crate::config::{Flags, Settings};
use crate::server::{self, App};
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
    /// Run the HTTP server (the API and the web app) in the foreground.
    Serve {
        #[command(flatten)]
        flags: Flags,
    },
}

/// Parses the command line and runs it; errors are printed plainly and give a non-zero exit.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let _log = init_logging();
    let result = match cli.command {
        Command::Serve { flags } => runtime().and_then(|rt| rt.block_on(serve(flags))),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("remote-agent: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Logs go to stderr through a writer thread that batches lines, so a request never waits on a write syscall.
/// The guard flushes what is left when it drops at exit.
fn init_logging() -> tracing_appender::non_blocking::WorkerGuard {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        // Under a flood, wait for the writer rather than drop lines: a log with holes is worse than a slower one.
        .lossy(false)
        // The default queue preallocates 128k slots (megabytes of idle memory); a few thousand lines is plenty.
        .buffered_lines_limit(4096)
        // The worker flushes whenever its queue runs dry, so buffering only merges lines that are already waiting.
        .finish(std::io::BufWriter::with_capacity(
            64 * 1024,
            std::io::stderr(),
        ));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    guard
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

/// `remote-agent serve`: resolve settings, open the store, bind, print `listening on http://ADDR`, serve until
/// SIGINT/SIGTERM, then stop every turn's child before exiting.
pub async fn serve(flags: Flags) -> anyhow::Result<()> {
    let settings = Arc::new(Settings::load(&flags)?);
    let store = Arc::new(open_store(&settings)?);
    claude::become_subreaper();
    for orphan in store
        .interrupt_unfinished()
        .context("reading unfinished turns")?
    {
        stop_recorded(&orphan);
    }
    let listener = tokio::net::TcpListener::bind((settings.host.as_str(), settings.port))
        .await
        .with_context(|| format!("cannot listen on {}:{}", settings.host, settings.port))?;
    let addr = listener.local_addr()?;
    let app = Arc::new(App {
        turns: Turns::new(store.clone(), settings.clone()),
        settings,
        store,
        started: Instant::now(),
    });
    println!("listening on http://{addr}");
    let _ = std::io::stdout().flush();
    tracing::info!(project = %app.settings.default_project().display(), "serving on http://{addr}");

    let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
    let server = tokio::spawn(server::run(listener, app.clone(), async move {
        let _ = stop_rx.wait_for(|s| *s).await;
    }));
    shutdown_signal().await?;
    tracing::info!("shutting down: stopping turns and draining connections");
    let _ = stop_tx.send(true);
    app.turns.shutdown().await;
    server.await.context("server task")?;
    tracing::info!("stopped");
    Ok(())
}

/// Creates the data dir (0700) and the database file (0600) before SQLite touches them.
fn open_store(settings: &Settings) -> anyhow::Result<Store> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let dir = &settings.data_dir;
    std::fs::create_dir_all(dir).with_context(|| format!("creating data dir {}", dir.display()))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .with_context(|| format!("securing data dir {}", dir.display()))?;
    let path = dir.join("remote-agent.db");
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("creating {}", path.display()))?;
    Store::open(&path).with_context(|| format!("opening the database {}", path.display()))
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
        let _ = nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    claude::kill_marked_anywhere(&orphan.turn_id);
}

async fn shutdown_signal() -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    Ok(())
}
