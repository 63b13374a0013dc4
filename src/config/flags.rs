//! The command-line flags, and the environment variables that are ours (the one place that names them).

use std::path::PathBuf;

use super::ConfigError;
use super::dotenv::process_env;

/// Environment names that are ours: the child `claude` never sees them (they hold the password).
pub fn is_own_env(name: &str) -> bool {
    name.starts_with("AUTH_")
        || name.starts_with("REMOTE_AGENT_")
        || matches!(
            name,
            "HOST"
                | "PORT"
                | "CLAUDE_PROJECT_PATH"
                | "CLAUDE_BIN"
                | "CLAUDE_PERMISSION_MODE"
                | "CLAUDE_ALLOWED_TOOLS"
                | "TUNNEL_TOKEN"
                | "CLOUDFLARE_API_TOKEN"
                | "CLOUDFLARED_BIN"
        )
}

/// Command-line flags shared by the commands that run the server; every one is optional and wins over
/// the environment, `.env` and the config file.
#[derive(clap::Args, Debug, Default, Clone)]
pub struct Flags {
    // This comment is also `--help`'s text, where `<config dir>` reads as meant; rustdoc takes it for a tag.
    #[allow(rustdoc::invalid_html_tags)]
    /// Config file (TOML) [env: REMOTE_AGENT_CONFIG; default: <config dir>/config.toml]
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Address to listen on [env: HOST; default: 127.0.0.1]
    #[arg(long)]
    pub host: Option<String>,
    /// Port to listen on, 0 for any free port [env: PORT; default: 8000]
    #[arg(long)]
    pub port: Option<u16>,
    /// Where the database lives [env: REMOTE_AGENT_DATA_DIR]
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Where `up` keeps its state, lock and logs [env: REMOTE_AGENT_STATE_DIR; default: the platform state dir]
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// The project directory Claude works in [env: CLAUDE_PROJECT_PATH; default: the current directory]
    #[arg(long, value_name = "DIR")]
    pub project: Option<PathBuf>,
    /// A directory under which any directory may be a project (repeatable; also `[projects] roots`)
    #[arg(long = "project-root", value_name = "DIR")]
    pub project_root: Vec<PathBuf>,
    /// The claude executable [env: CLAUDE_BIN; default: claude on PATH]
    #[arg(long, value_name = "PATH")]
    pub claude_bin: Option<String>,
    /// Seconds a turn may run before it is stopped [env: REMOTE_AGENT_TURN_TIMEOUT; default: 600]
    #[arg(long, value_name = "SECS")]
    pub turn_timeout: Option<u64>,
    /// Turns that may run at once across all conversations [env: REMOTE_AGENT_MAX_CONCURRENT_TURNS; default: 4]
    #[arg(long, value_name = "N")]
    pub max_concurrent_turns: Option<usize>,
    /// Claude processes kept warm between messages, across conversations [env: REMOTE_AGENT_MAX_WARM; default: 4]
    #[arg(long, value_name = "N")]
    pub max_warm: Option<usize>,
    /// Seconds an idle Claude process stays warm [env: REMOTE_AGENT_IDLE_SECS; default: 600]
    #[arg(long, value_name = "SECS")]
    pub idle_secs: Option<u64>,
    /// The most permissive mode Claude may run in [env: CLAUDE_PERMISSION_MODE; default: acceptEdits]
    #[arg(long, value_name = "MODE")]
    pub permission_mode: Option<String>,
    /// Comma-separated tool rules allowed without asking [env: CLAUDE_ALLOWED_TOOLS; default: "Bash(git *)"]
    #[arg(long, value_name = "RULES")]
    pub allowed_tools: Option<String>,
    /// Seconds of silence after which an event stream sends a keepalive event, 1 to 15
    /// [env: REMOTE_AGENT_SSE_KEEPALIVE; default: 15]
    #[arg(long, value_name = "SECS")]
    pub sse_keepalive: Option<u64>,
}

impl Flags {
    /// The flags as command-line arguments, to start another process with the same ones.
    pub fn to_args(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut push = |name: &str, value: Option<String>| {
            if let Some(v) = value {
                out.push(format!("--{name}={v}"));
            }
        };
        let path = |p: &Option<PathBuf>| p.as_ref().map(|p| p.display().to_string());
        push("config", path(&self.config));
        push("host", self.host.clone());
        push("port", self.port.map(|p| p.to_string()));
        push("data-dir", path(&self.data_dir));
        push("state-dir", path(&self.state_dir));
        push("project", path(&self.project));
        for root in &self.project_root {
            push("project-root", Some(root.display().to_string()));
        }
        push("claude-bin", self.claude_bin.clone());
        push("turn-timeout", self.turn_timeout.map(|n| n.to_string()));
        push(
            "max-concurrent-turns",
            self.max_concurrent_turns.map(|n| n.to_string()),
        );
        push("max-warm", self.max_warm.map(|n| n.to_string()));
        push("idle-secs", self.idle_secs.map(|n| n.to_string()));
        push("permission-mode", self.permission_mode.clone());
        push("allowed-tools", self.allowed_tools.clone());
        push("sse-keepalive", self.sse_keepalive.map(|n| n.to_string()));
        out
    }
}

impl Flags {
    /// These flags, with what this shell's environment (or what `.env` may give) sets and they do not: a service started by its
    /// manager sees neither, so `service install` carries those settings into the unit as flags.
    pub fn with_env(&self) -> Result<Flags, ConfigError> {
        let (env, _) = process_env(self)?;
        self.over(&env)
    }

    /// These flags over `env` (our variables: `HOST`, `PORT`, `CLAUDE_*`, `REMOTE_AGENT_*`): the one place that
    /// names them, for settings and for the unit alike. Numbers are checked here.
    pub(super) fn over(&self, env: &dyn Fn(&str) -> Option<String>) -> Result<Flags, ConfigError> {
        let env = |name: &str| env(name).filter(|v| !v.is_empty());
        let number = |name: &'static str| -> Result<Option<u64>, ConfigError> {
            env(name)
                .map(|v| {
                    v.trim().parse().map_err(|_| ConfigError::Invalid {
                        name,
                        message: format!("{v:?} is not a whole number"),
                    })
                })
                .transpose()
        };
        let port = match self.port {
            Some(p) => Some(p),
            None => number("PORT")?
                .map(|n| {
                    u16::try_from(n).map_err(|_| ConfigError::Invalid {
                        name: "PORT",
                        message: format!("{n} is not a port number"),
                    })
                })
                .transpose()?,
        };
        let f = self.paths_over(&env);
        Ok(Flags {
            host: f.host.or_else(|| env("HOST")),
            port,
            claude_bin: f.claude_bin.or_else(|| env("CLAUDE_BIN")),
            turn_timeout: match f.turn_timeout {
                Some(n) => Some(n),
                None => number("REMOTE_AGENT_TURN_TIMEOUT")?,
            },
            max_concurrent_turns: match f.max_concurrent_turns {
                Some(n) => Some(n),
                None => number("REMOTE_AGENT_MAX_CONCURRENT_TURNS")?.map(|n| n as usize),
            },
            max_warm: match f.max_warm {
                Some(n) => Some(n),
                None => number("REMOTE_AGENT_MAX_WARM")?.map(|n| n as usize),
            },
            idle_secs: match f.idle_secs {
                Some(n) => Some(n),
                None => number("REMOTE_AGENT_IDLE_SECS")?,
            },
            permission_mode: f.permission_mode.or_else(|| env("CLAUDE_PERMISSION_MODE")),
            allowed_tools: f.allowed_tools.or_else(|| env("CLAUDE_ALLOWED_TOOLS")),
            sse_keepalive: match f.sse_keepalive {
                Some(n) => Some(n),
                None => number("REMOTE_AGENT_SSE_KEEPALIVE")?,
            },
            ..f
        })
    }

    /// These flags' paths over `env`: all that commands without credentials need, and nothing to fail on.
    pub(super) fn paths_over(&self, env: &dyn Fn(&str) -> Option<String>) -> Flags {
        let path = |name: &str| env(name).filter(|v| !v.is_empty()).map(PathBuf::from);
        let f = self.clone();
        Flags {
            config: f.config.or_else(|| path("REMOTE_AGENT_CONFIG")),
            data_dir: f.data_dir.or_else(|| path("REMOTE_AGENT_DATA_DIR")),
            state_dir: f.state_dir.or_else(|| path("REMOTE_AGENT_STATE_DIR")),
            project: f.project.or_else(|| path("CLAUDE_PROJECT_PATH")),
            ..f
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_env_names_are_recognised() {
        for name in [
            "AUTH_PASSWORD",
            "AUTH_USERNAME",
            "REMOTE_AGENT_DATA_DIR",
            "HOST",
            "PORT",
        ] {
            assert!(is_own_env(name), "{name}");
        }
        for name in ["ANTHROPIC_API_KEY", "CLAUDE_CONFIG_DIR", "HOME", "PATH"] {
            assert!(!is_own_env(name), "{name}");
        }
    }
}
