//! The command line: the clap tree of subcommands and their flags (each command module owns its own), the
//! process-wide set-up (logging, the umask), and the dispatch to the command modules.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};

use crate::config::Flags;

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
    Serve(crate::serve::ServeArgs),
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
        action: crate::service::Action,
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

/// Parses the command line and runs it; errors are printed plainly and give a non-zero exit.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => {
            let _log = init_logging(args.log_file.as_deref());
            // Recorded before private_files, whose own record then changes nothing (the first one is kept).
            if let Some(mask) = args.child_umask {
                crate::process::remember_user_umask(mask);
            }
            private_files();
            runtime().and_then(|rt| rt.block_on(crate::serve::command(args)))
        }
        // The supervisor prints for a person, logs only warnings, and runs on one thread: the children's
        // death signal is tied to the thread that forked them.
        Command::Up(args) => {
            private_files();
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("starting the async runtime")
                .and_then(|rt| rt.block_on(crate::supervisor::up(args)))
        }
        Command::Status { dirs } => crate::supervisor::status(&Flags::from(&dirs)),
        Command::Passwd { flags, username } => {
            private_files();
            crate::account::passwd(&Flags::from(&flags), username)
        }
        Command::Pair { flags, quiet, base } => {
            private_files();
            crate::account::pair(&Flags::from(&flags), quiet, base)
        }
        Command::Logout { flags, all } => {
            private_files();
            crate::account::logout(&Flags::from(&flags), all)
        }
        Command::Service { action } => crate::service::command(action),
        Command::Import {
            file,
            flags,
            project,
        } => crate::import::run(
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

/// Everything we create from here on is readable by the user alone: see [`crate::process::private_umask`].
fn private_files() {
    crate::process::private_umask();
}
