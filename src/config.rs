//! Settings: defaults < config file < `.env` in the working directory < environment < flags, resolved once.
//! `.env` is read only outside the allowed projects and never supplies credentials or executables (README
//! "Settings").

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// The permission modes the `claude` CLI accepts (claude-cli.md §1).
pub const PERMISSION_MODES: &[&str] = &[
    "acceptEdits",
    "auto",
    "bypassPermissions",
    "default",
    "dontAsk",
    "plan",
];

/// The permission modes from the least permissive to the most (README "Settings"): the configured mode is the
/// most a client may choose. `auto` and `dontAsk` rank together, above `acceptEdits`.
pub fn permissiveness(mode: &str) -> usize {
    match mode {
        "plan" => 0,
        "default" => 1,
        "acceptEdits" => 2,
        "auto" | "dontAsk" => 3,
        // bypassPermissions, and anything unknown: the most permissive.
        _ => 4,
    }
}

/// The modes a client may pick when the config file names none.
pub const DEFAULT_ALLOWED_PERMISSION_MODES: &[&str] = &["plan", "default", "acceptEdits"];

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
    /// The claude executable [env: CLAUDE_BIN; default: claude on PATH]
    #[arg(long, value_name = "PATH")]
    pub claude_bin: Option<String>,
    /// Seconds a turn may run before it is stopped [env: REMOTE_AGENT_TURN_TIMEOUT; default: 600]
    #[arg(long, value_name = "SECS")]
    pub turn_timeout: Option<u64>,
    /// Turns that may run at once across all conversations [env: REMOTE_AGENT_MAX_CONCURRENT_TURNS; default: 4]
    #[arg(long, value_name = "N")]
    pub max_concurrent_turns: Option<usize>,
    /// Claude's permission mode [env: CLAUDE_PERMISSION_MODE; default: acceptEdits]
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
        push("claude-bin", self.claude_bin.clone());
        push("turn-timeout", self.turn_timeout.map(|n| n.to_string()));
        push(
            "max-concurrent-turns",
            self.max_concurrent_turns.map(|n| n.to_string()),
        );
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
    fn over(&self, env: &dyn Fn(&str) -> Option<String>) -> Result<Flags, ConfigError> {
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
    fn paths_over(&self, env: &dyn Fn(&str) -> Option<String>) -> Flags {
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

/// True when the config file at `path` holds a user name and a password (or its hash): what a service can use,
/// unlike credentials from a shell's environment.
pub fn file_has_credentials(path: &Path) -> Result<bool, ConfigError> {
    let auth = read_config_file(path, false)?.auth;
    Ok(auth.username.is_some() && (auth.password.is_some() || auth.password_hash.is_some()))
}

/// The `[tunnel]` table of the config file at `path` (empty when there is none).
pub fn tunnel_section(path: &Path) -> Result<toml::Table, ConfigError> {
    Ok(read_config_file(path, false)?.tunnel.unwrap_or_default())
}

/// Saves first-run credentials into the config file (created 0600 in a 0700 directory), keeping what else it
/// holds.
pub fn save_credentials(path: &Path, username: &str, password: &Secret) -> Result<(), ConfigError> {
    let err = |e: std::io::Error| ConfigError::File {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    let mut table: toml::Table = match std::fs::read_to_string(path) {
        Ok(text) => toml::from_str(&text).map_err(|e| ConfigError::File {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => toml::Table::new(),
        Err(e) => return Err(err(e)),
    };
    let auth = table
        .entry("auth")
        .or_insert_with(|| toml::Value::Table(toml::Table::new()));
    if let toml::Value::Table(auth) = auth {
        auth.insert("username".into(), username.into());
        auth.remove("password");
        auth.remove("password_hash");
        match password {
            Secret::Plain(p) => auth.insert("password".into(), p.as_str().into()),
            Secret::Hash(h) => auth.insert("password_hash".into(), h.as_str().into()),
        };
    }
    if let Some(dir) = path.parent() {
        crate::files::private_dir_io(dir).map_err(err)?;
    }
    let text = toml::to_string(&table).map_err(|e| ConfigError::Other(e.to_string()))?;
    let tmp = path.with_extension("toml.tmp");
    {
        use std::io::Write;
        let mut f = crate::files::private_file()
            .write(true)
            .truncate(true)
            .open(&tmp)
            .map_err(err)?;
        f.write_all(text.as_bytes()).map_err(err)?;
        f.sync_all().map_err(err)?;
    }
    crate::files::make_private(&tmp).map_err(err)?;
    std::fs::rename(&tmp, path).map_err(err)
}

/// The resolved settings of one server.
#[derive(Clone)]
pub struct Settings {
    pub username: String,
    /// Secret: never logged, never passed to a child.
    pub password: Secret,
    pub host: String,
    /// More names the local listener answers to (a LAN or Tailscale name), lowercased, without a trailing dot.
    pub allowed_hosts: Vec<String>,
    pub port: u16,
    pub data_dir: PathBuf,
    pub state_dir: PathBuf,
    pub config_path: PathBuf,
    pub claude_bin: String,
    pub turn_timeout: Duration,
    pub max_concurrent_turns: usize,
    pub permission_mode: String,
    /// The modes a client may choose for a conversation (none above `permission_mode`).
    pub allowed_permission_modes: Vec<String>,
    pub allowed_tools: Vec<String>,
    /// Allowed project directories, canonical; the first is the default.
    pub projects: Vec<PathBuf>,
    /// Silence after which an event stream sends a keepalive event.
    pub sse_keepalive: Duration,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("data_dir", &self.data_dir)
            .field("claude_bin", &self.claude_bin)
            .field("projects", &self.projects)
            .finish_non_exhaustive()
    }
}

/// The password as configured: plaintext (from the environment, or `password` in the file; the
/// prototype's way) or an argon2id hash (`password_hash`, written by `remote-agent passwd`).
#[derive(Clone, PartialEq, Eq)]
pub enum Secret {
    Plain(String),
    Hash(String),
}

impl Secret {
    /// A fingerprint that changes when the secret does (for caches), revealing nothing of it.
    pub fn fingerprint(&self) -> String {
        let (kind, text) = match self {
            Secret::Plain(p) => ("plain", p),
            Secret::Hash(h) => ("hash", h),
        };
        use sha2::Digest;
        sha2::Sha256::digest(format!("{kind}:{text}").as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

/// The settings a running server reads, replaceable as a whole (SIGHUP reloads them); readers take a snapshot.
pub struct Shared(std::sync::RwLock<std::sync::Arc<Settings>>);

impl Shared {
    pub fn new(settings: Settings) -> std::sync::Arc<Shared> {
        std::sync::Arc::new(Shared(std::sync::RwLock::new(std::sync::Arc::new(
            settings,
        ))))
    }

    /// The settings now.
    pub fn get(&self) -> std::sync::Arc<Settings> {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Replaces the settings; returns the ones they replace.
    pub fn replace(&self, settings: Settings) -> std::sync::Arc<Settings> {
        let mut guard = self.0.write().unwrap_or_else(|e| e.into_inner());
        std::mem::replace(&mut *guard, std::sync::Arc::new(settings))
    }
}

/// Why settings could not be resolved; each message says what to change.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(
        "no credentials: run `remote-agent passwd` (or `remote-agent up`, which creates a login on its first \
         run), or set username and password under [auth] in {0} (or AUTH_USERNAME and AUTH_PASSWORD in the \
         environment; a .env file never supplies them)"
    )]
    NoCredentials(PathBuf),
    #[error(
        "config file {0} does not exist: check the path, or run `remote-agent up`, which creates it on its first run"
    )]
    Missing(PathBuf),
    #[error("config file {path}: {message}")]
    File { path: PathBuf, message: String },
    #[error("{name}: {message}")]
    Invalid { name: &'static str, message: String },
    #[error("{0}")]
    Other(String),
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct FileConfig {
    auth: FileAuth,
    server: FileServer,
    claude: FileClaude,
    projects: FileProjects,
    /// Read by `up` (the tunnel supervisor); one file serves both.
    tunnel: Option<toml::Table>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct FileAuth {
    username: Option<String>,
    password: Option<String>,
    password_hash: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct FileServer {
    host: Option<String>,
    port: Option<u16>,
    allowed_hosts: Vec<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct FileClaude {
    bin: Option<String>,
    permission_mode: Option<String>,
    allowed_permission_modes: Option<Vec<String>>,
    allowed_tools: Option<Vec<String>>,
    turn_timeout_secs: Option<u64>,
    max_concurrent_turns: Option<usize>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct FileProjects {
    allow: Vec<PathBuf>,
}

/// Parses `.env` text: `KEY=VALUE` lines, optional `export `, `#` comments, single or double quotes.
pub fn parse_dotenv(text: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let value = value.trim();
        // A quoted value ends at its closing quote (a comment may follow); an unquoted one at " #".
        let quoted = ['"', '\''].into_iter().find_map(|q| {
            let inner = value.strip_prefix(q)?;
            inner.find(q).map(|end| &inner[..end])
        });
        let value = match quoted {
            Some(inner) => inner,
            None => value.split(" #").next().unwrap_or("").trim_end(),
        };
        out.insert(key.trim().to_string(), value.to_string());
    }
    out
}

/// The default config file path, from the platform's config dir.
pub fn default_config_path() -> Option<PathBuf> {
    directories::ProjectDirs::from("", "", "remote-agent")
        .map(|d| d.config_dir().join("config.toml"))
}

impl Settings {
    /// Resolves settings from the real process environment, what `.env` in the launch dir may give, and the config
    /// file.
    pub fn load(flags: &Flags) -> Result<Settings, ConfigError> {
        let (env, cwd) = process_env(flags)?;
        Self::resolve(flags, &env, &cwd)
    }

    /// Resolves settings with `env` answering for the environment layered over `.env`.
    pub fn resolve(
        flags: &Flags,
        env: &dyn Fn(&str) -> Option<String>,
        cwd: &Path,
    ) -> Result<Settings, ConfigError> {
        let env = |name: &str| env(name).filter(|v| !v.is_empty());
        let (config_path, explicit) = match flags.paths_over(&env).config {
            Some(path) => (path, true),
            None => (
                default_config_path().ok_or_else(|| {
                    ConfigError::Other("no home directory: pass --config and --data-dir".into())
                })?,
                false,
            ),
        };
        // Absolute: `serve` watches it from the state dir.
        let config_path = absolute(cwd, &config_path);
        let file = read_config_file(&config_path, explicit)?;

        let username = env("AUTH_USERNAME").or(file.auth.username);
        let password = env("AUTH_PASSWORD")
            .map(Secret::Plain)
            .or(file
                .auth
                .password_hash
                .filter(|h| !h.is_empty())
                .map(Secret::Hash))
            .or(file
                .auth
                .password
                .filter(|p| !p.is_empty())
                .map(Secret::Plain));
        let (Some(username), Some(password)) = (username.filter(|u| !u.is_empty()), password)
        else {
            return Err(ConfigError::NoCredentials(config_path));
        };
        if let Secret::Hash(h) = &password
            && !h.starts_with("$argon2")
        {
            return Err(ConfigError::File {
                path: config_path,
                message:
                    "[auth] password_hash is not an argon2 hash (set it with `remote-agent passwd`)"
                        .into(),
            });
        }

        // Credentials are looked at first (`up` makes them on a first run); then the rest of the environment.
        let flags = &flags.over(&env)?;
        let host = flags
            .host
            .clone()
            .or(file.server.host)
            .unwrap_or_else(|| "127.0.0.1".into());
        let port = flags.port.or(file.server.port).unwrap_or(8000);
        let allowed_hosts = file
            .server
            .allowed_hosts
            .iter()
            .map(|h| h.trim().trim_end_matches('.').to_ascii_lowercase())
            .filter(|h| !h.is_empty())
            .collect();
        let (data_dir, state_dir) = dirs(flags, cwd)?;
        let claude_bin = absolute_bin(
            cwd,
            &flags
                .claude_bin
                .clone()
                .or(file.claude.bin)
                .unwrap_or_else(|| "claude".into()),
        );
        let turn_timeout = flags
            .turn_timeout
            .or(file.claude.turn_timeout_secs)
            .unwrap_or(600);
        if turn_timeout == 0 {
            return Err(ConfigError::Invalid {
                name: "turn timeout",
                message: "must be at least 1 second".into(),
            });
        }
        let max_concurrent_turns = flags
            .max_concurrent_turns
            .or(file.claude.max_concurrent_turns)
            .unwrap_or(4);
        if max_concurrent_turns == 0 {
            return Err(ConfigError::Invalid {
                name: "max concurrent turns",
                message: "must be at least 1".into(),
            });
        }
        let permission_mode = flags
            .permission_mode
            .clone()
            .or(file.claude.permission_mode)
            .unwrap_or_else(|| "acceptEdits".into());
        if !PERMISSION_MODES.contains(&permission_mode.as_str()) {
            return Err(ConfigError::Invalid {
                name: "permission mode",
                message: format!(
                    "{permission_mode:?} is not one of {}",
                    PERMISSION_MODES.join(", ")
                ),
            });
        }
        let allowed_permission_modes = file.claude.allowed_permission_modes.unwrap_or_else(|| {
            DEFAULT_ALLOWED_PERMISSION_MODES
                .iter()
                .map(|m| m.to_string())
                .collect()
        });
        if let Some(bad) = allowed_permission_modes
            .iter()
            .find(|m| !PERMISSION_MODES.contains(&m.as_str()))
        {
            return Err(ConfigError::Invalid {
                name: "[claude] allowed_permission_modes",
                message: format!("{bad:?} is not one of {}", PERMISSION_MODES.join(", ")),
            });
        }
        let sse_keepalive = flags.sse_keepalive.unwrap_or(15);
        if !(1..=15).contains(&sse_keepalive) {
            return Err(ConfigError::Invalid {
                name: "SSE keepalive (--sse-keepalive, REMOTE_AGENT_SSE_KEEPALIVE)",
                message: format!("{sse_keepalive} is not between 1 and 15 seconds"),
            });
        }
        let allowed_tools = match flags.allowed_tools.clone() {
            Some(list) => split_rules(&list),
            None => file
                .claude
                .allowed_tools
                .unwrap_or_else(|| vec!["Bash(git *)".into()]),
        };

        let default_project = flags.project.clone();
        let mut projects = Vec::new();
        let first =
            default_project.or_else(|| file.projects.allow.is_empty().then(|| cwd.to_path_buf()));
        for dir in first.iter().chain(file.projects.allow.iter()) {
            let dir = absolute(cwd, dir);
            let canonical = dir.canonicalize().map_err(|e| ConfigError::Invalid {
                name: "project (--project, CLAUDE_PROJECT_PATH, [projects] allow)",
                message: format!("project directory {}: {e}", dir.display()),
            })?;
            if !canonical.is_dir() {
                return Err(ConfigError::Invalid {
                    name: "project (--project, CLAUDE_PROJECT_PATH, [projects] allow)",
                    message: format!("{} is not a directory", dir.display()),
                });
            }
            if !projects.contains(&canonical) {
                projects.push(canonical);
            }
        }

        Ok(Settings {
            username,
            password,
            host,
            allowed_hosts,
            port,
            data_dir,
            state_dir,
            config_path,
            claude_bin,
            turn_timeout: Duration::from_secs(turn_timeout),
            max_concurrent_turns,
            permission_mode,
            allowed_permission_modes,
            allowed_tools,
            projects,
            sse_keepalive: Duration::from_secs(sse_keepalive),
        })
    }

    /// The project a conversation runs in when it names none.
    pub fn default_project(&self) -> &Path {
        &self.projects[0]
    }

    /// Why a client may not run a conversation in permission `mode`, if it may not: it must be one of
    /// `allowed_permission_modes` and no more permissive than the configured mode.
    pub fn refuse_mode(&self, mode: &str) -> Option<String> {
        let allowed = self.allowed_permission_modes.iter().any(|m| m == mode);
        let under_ceiling = permissiveness(mode) <= permissiveness(&self.permission_mode);
        (!allowed || !under_ceiling).then(|| {
            let may: Vec<&str> = self
                .allowed_permission_modes
                .iter()
                .map(String::as_str)
                .filter(|m| permissiveness(m) <= permissiveness(&self.permission_mode))
                .collect();
            format!(
                "permission_mode {mode:?} is not allowed here: a client may choose {} (allowed_permission_modes \
                 under [claude] in the config file, and nothing more permissive than the server's permission mode \
                 {:?})",
                if may.is_empty() { "none".to_string() } else { may.join(", ") },
                self.permission_mode
            )
        })
    }
}

/// The data dir and the state dir: flags, then the environment, then the platform's directories (the state dir
/// falls back to the data dir where the platform has none).
/// The data and state dirs of `flags` (the environment already merged in), else the platform's.
fn dirs(flags: &Flags, cwd: &Path) -> Result<(PathBuf, PathBuf), ConfigError> {
    let project_dirs = directories::ProjectDirs::from("", "", "remote-agent");
    let data_dir = flags
        .data_dir
        .clone()
        .or_else(|| project_dirs.as_ref().map(|d| d.data_dir().to_path_buf()))
        .map(|d| absolute(cwd, &d))
        .ok_or_else(|| ConfigError::Other("no home directory: pass --data-dir".into()))?;
    let state_dir = flags
        .state_dir
        .clone()
        .or_else(|| {
            project_dirs
                .as_ref()
                .and_then(|d| d.state_dir().map(Path::to_path_buf))
        })
        .map(|d| absolute(cwd, &d))
        .unwrap_or_else(|| data_dir.clone());
    Ok((data_dir, state_dir))
}

/// Watches the config file's directory (editors save by renaming a new file over the old one) and signals each
/// change of the file. Where inotify is out of instances or watches, it polls every two seconds instead.
pub fn watch(
    path: &Path,
) -> notify::Result<(
    Box<dyn notify::Watcher + Send>,
    tokio::sync::mpsc::Receiver<()>,
)> {
    use notify::Watcher;
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    let name = path.file_name().map(|n| n.to_os_string());
    let handler = move |event: notify::Result<notify::Event>| {
        // Reading the file is an event too (access): only a change counts, or every reload would cause the next.
        if let Ok(event) = event
            && (event.kind.is_create() || event.kind.is_modify() || event.kind.is_remove())
            && event
                .paths
                .iter()
                .any(|p| p.file_name().map(|n| n.to_os_string()) == name)
        {
            // The callback runs on notify's thread: never block it.
            let _ = tx.try_send(());
        }
    };
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let inotify = notify::recommended_watcher(handler.clone()).and_then(|mut w| {
        w.watch(dir, notify::RecursiveMode::NonRecursive)?;
        Ok(w)
    });
    let watcher: Box<dyn Watcher + Send> = match inotify {
        Ok(w) => Box::new(w),
        Err(e) => {
            tracing::warn!("{e}: polling {} for changes instead", dir.display());
            let config = notify::Config::default().with_poll_interval(Duration::from_secs(2));
            let mut w = notify::PollWatcher::new(handler, config)?;
            w.watch(dir, notify::RecursiveMode::NonRecursive)?;
            Box::new(w)
        }
    };
    Ok((watcher, rx))
}

/// The claude executable the settings name (flag, environment, config file, else `claude`), made absolute like
/// [`Settings`] does, without needing the rest of them: `doctor` checks it before a login exists.
pub fn claude_bin(flags: &Flags) -> Result<String, ConfigError> {
    let (env, cwd) = process_env(flags)?;
    let from_file = || {
        let path = flags.paths_over(&env).config.or_else(default_config_path)?;
        read_config_file(&absolute(&cwd, &path), false)
            .ok()?
            .claude
            .bin
    };
    let bin = flags
        .claude_bin
        .clone()
        .or_else(|| env("CLAUDE_BIN"))
        .or_else(from_file)
        .unwrap_or_else(|| "claude".into());
    Ok(absolute_bin(&cwd, &bin))
}

/// The data dir alone (for commands that need no credentials).
pub fn data_dir(flags: &Flags) -> Result<PathBuf, ConfigError> {
    let (env, cwd) = process_env(flags)?;
    Ok(dirs(&flags.paths_over(&env), &cwd)?.0)
}

/// The config file's path alone.
pub fn config_path(flags: &Flags) -> Result<PathBuf, ConfigError> {
    let (env, _) = process_env(flags)?;
    flags
        .paths_over(&env)
        .config
        .or_else(default_config_path)
        .ok_or_else(|| ConfigError::Other("no home directory: pass --config".into()))
}

type EnvFn = Box<dyn Fn(&str) -> Option<String>>;

/// The settings a `.env` may give: the prototype's address and project, and limits. Never credentials (`AUTH_*`),
/// executables (`CLAUDE_BIN`, `CLOUDFLARED_BIN`), what Claude may do without asking (`CLAUDE_PERMISSION_MODE`,
/// `CLAUDE_ALLOWED_TOOLS`), the data dir (its database holds the sign-ins) or the config file: whoever can write a
/// `.env` must not get to run a program, widen Claude's permissions or replace the login.
const DOTENV_KEYS: &[&str] = &[
    "HOST",
    "PORT",
    "CLAUDE_PROJECT_PATH",
    "REMOTE_AGENT_TURN_TIMEOUT",
    "REMOTE_AGENT_MAX_CONCURRENT_TURNS",
    "REMOTE_AGENT_SSE_KEEPALIVE",
];

static LAUNCH_DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
static DOTENV_FILE: std::sync::OnceLock<Option<HashMap<String, String>>> =
    std::sync::OnceLock::new();

/// The directory the command was started from, fixed at the first call: `up` and `serve` then move to the state
/// dir, and their reloads still resolve relative paths (and find `.env`) where the user ran them.
pub fn launch_dir() -> Result<PathBuf, ConfigError> {
    if let Some(dir) = LAUNCH_DIR.get() {
        return Ok(dir.clone());
    }
    let cwd = std::env::current_dir()
        .map_err(|e| ConfigError::Other(format!("current directory: {e}")))?;
    Ok(LAUNCH_DIR.get_or_init(|| cwd).clone())
}

/// What `.env` in the launch dir gives. It is read once, at start: one the agent writes later is never read.
pub struct DotEnv {
    pub path: PathBuf,
    /// The settings taken from it (empty when it is ignored).
    pub vars: HashMap<String, String>,
    /// Our settings it names but may not give (credentials, executables, the config file).
    pub refused: Vec<String>,
    /// The allowed project it lies in: then none of it is read.
    pub in_project: Option<PathBuf>,
}

impl DotEnv {
    /// What a person should know about it, one line each (names only, never values).
    pub fn warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(project) = &self.in_project {
            out.push(format!(
                "ignoring {}: it is inside the allowed project {} (where Claude writes files and repositories \
                 ship their own); set these settings in the environment, with flags or in the config file",
                self.path.display(),
                project.display()
            ));
        } else if !self.refused.is_empty() {
            out.push(format!(
                "{}: not taking {} from it: credentials, executable paths, Claude's permissions and our \
                 directories come only from the environment, flags or the config file",
                self.path.display(),
                self.refused.join(", ")
            ));
        }
        out
    }
}

/// `.env` in the launch dir, if there is one, with what of it applies under `flags`.
pub fn dotenv(flags: &Flags) -> Result<Option<DotEnv>, ConfigError> {
    let cwd = launch_dir()?;
    let path = cwd.join(".env");
    let Some(all) = DOTENV_FILE
        .get_or_init(|| {
            std::fs::read_to_string(&path)
                .ok()
                .map(|t| parse_dotenv(&t))
        })
        .as_ref()
    else {
        return Ok(None);
    };
    let mut refused: Vec<String> = all
        .keys()
        .filter(|k| is_own_env(k) && !DOTENV_KEYS.contains(&k.as_str()))
        .cloned()
        .collect();
    refused.sort();
    let mut vars: HashMap<String, String> = all
        .iter()
        .filter(|(k, v)| DOTENV_KEYS.contains(&k.as_str()) && !v.is_empty())
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let real = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    // Inside a project either way: without it (the default project is the launch dir itself) or with it (its own
    // CLAUDE_PROJECT_PATH may name the launch dir).
    let in_project = project_holding(&cwd, flags, &real).or_else(|| {
        project_holding(&cwd, flags, &|name: &str| {
            real(name).or_else(|| vars.get(name).cloned())
        })
    });
    if in_project.is_some() {
        vars.clear();
    }
    Ok(Some(DotEnv {
        path,
        vars,
        refused,
        in_project,
    }))
}

/// The allowed project (as `flags` over `env` and the config file name them) that holds `dir`, if any.
fn project_holding(
    dir: &Path,
    flags: &Flags,
    env: &dyn Fn(&str) -> Option<String>,
) -> Option<PathBuf> {
    let flags = flags.paths_over(env);
    // Made absolute against the launch dir: after `serve` moves to the state dir, a relative --config must still
    // name the same file, or a reload would find no projects and read a .env it should ignore.
    let allow = flags
        .config
        .as_ref()
        .map(|p| absolute(dir, p))
        .or_else(default_config_path)
        .and_then(|p| read_config_file(&p, false).ok())
        .map(|c| c.projects.allow)
        .unwrap_or_default();
    let first = flags
        .project
        .clone()
        .or_else(|| allow.is_empty().then(|| dir.to_path_buf()));
    let here = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    first
        .iter()
        .chain(allow.iter())
        .map(|p| absolute(dir, p))
        .map(|p| p.canonicalize().unwrap_or(p))
        .find(|p| here.starts_with(p))
}

/// The environment over what `.env` may give, and the launch dir.
fn process_env(flags: &Flags) -> Result<(EnvFn, PathBuf), ConfigError> {
    let dotenv = dotenv(flags)?.map(|d| d.vars).unwrap_or_default();
    let env = move |name: &str| {
        std::env::var(name)
            .ok()
            .filter(|v| !v.is_empty())
            .or_else(|| dotenv.get(name).cloned())
            .filter(|v| !v.is_empty())
    };
    Ok((Box::new(env), launch_dir()?))
}

/// An executable as configured, made absolute when it is a relative path (`bin/claude`), so that it names the same
/// file whatever directory it is started from; a bare name is looked up on PATH as it is.
pub fn absolute_bin(cwd: &Path, bin: &str) -> String {
    if bin.contains('/') && !Path::new(bin).is_absolute() {
        cwd.join(bin).display().to_string()
    } else {
        bin.to_string()
    }
}

/// The state dir alone (for `status`, which needs no credentials).
pub fn state_dir(flags: &Flags) -> Result<PathBuf, ConfigError> {
    let (env, cwd) = process_env(flags)?;
    Ok(dirs(&flags.paths_over(&env), &cwd)?.1)
}

/// Splits `Bash(git *),Edit` on the commas that are not inside parentheses (a rule may hold commas).
fn split_rules(list: &str) -> Vec<String> {
    let mut rules = Vec::new();
    let (mut depth, mut current) = (0usize, String::new());
    for c in list.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                rules.push(std::mem::take(&mut current));
                continue;
            }
            _ => {}
        }
        current.push(c);
    }
    rules.push(current);
    rules
        .into_iter()
        .map(|r| r.trim().to_string())
        .filter(|r| !r.is_empty())
        .collect()
}

fn absolute(cwd: &Path, path: &Path) -> PathBuf {
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        cwd.join(path)
    }
}

fn read_config_file(path: &Path, explicit: bool) -> Result<FileConfig, ConfigError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            // One named on purpose must be there (a typo would silently give the defaults).
            if explicit {
                return Err(ConfigError::Missing(path.to_path_buf()));
            }
            return Ok(FileConfig::default());
        }
        Err(e) => {
            return Err(ConfigError::File {
                path: path.to_path_buf(),
                message: e.to_string(),
            });
        }
    };
    toml::from_str(&text).map_err(|e| ConfigError::File {
        path: path.to_path_buf(),
        message: toml_error(&text, &e),
    })
}

/// Where and what, without the line itself: toml's own message quotes the offending line, and that line can be
/// `password = "…` (a secret in a log).
fn toml_error(text: &str, e: &toml::de::Error) -> String {
    let message = e.message().trim_end();
    match e.span() {
        Some(span) => {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
            format!("line {line}, column {column}: {message}")
        }
        None => message.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_broken_config_file_is_located_without_quoting_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        std::fs::write(
            &path,
            "[auth]\nusername = \"me\"\npassword = \"hunter2-secret\n",
        )
        .unwrap();
        let Err(e) = read_config_file(&path, true) else {
            panic!("a broken file was read");
        };
        let message = e.to_string();
        assert!(message.contains("line 3"), "{message}");
        assert!(!message.contains("hunter2"), "{message}");
    }

    fn resolve_with(
        flags: &Flags,
        vars: &[(&str, &str)],
        file: Option<&str>,
    ) -> Result<Settings, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("config.toml");
        if let Some(text) = file {
            std::fs::write(&config, text).unwrap();
        }
        let mut vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        vars.insert("REMOTE_AGENT_CONFIG".into(), config.display().to_string());
        vars.entry("REMOTE_AGENT_DATA_DIR".into())
            .or_insert_with(|| dir.path().join("data").display().to_string());
        if file.is_none() {
            // An explicit path must exist; point at an empty file instead.
            std::fs::write(&config, "").unwrap();
        }
        Settings::resolve(flags, &|n| vars.get(n).cloned(), dir.path())
    }

    const CREDS: &[(&str, &str)] = &[("AUTH_USERNAME", "me"), ("AUTH_PASSWORD", "pw")];

    #[test]
    fn defaults_apply() {
        let s = resolve_with(&Flags::default(), CREDS, None).unwrap();
        assert_eq!((s.host.as_str(), s.port), ("127.0.0.1", 8000));
        assert_eq!(s.claude_bin, "claude");
        assert_eq!(s.turn_timeout, Duration::from_secs(600));
        assert_eq!(s.max_concurrent_turns, 4);
        assert_eq!(s.permission_mode, "acceptEdits");
        assert_eq!(s.allowed_tools, vec!["Bash(git *)".to_string()]);
        assert_eq!(s.projects.len(), 1);
    }

    #[test]
    fn layers_in_order_file_env_flags() {
        let file = "[server]\nport = 9000\nhost = \"0.0.0.0\"\n[auth]\nusername = \"fileuser\"\npassword = \"filepw\"\n[claude]\nturn_timeout_secs = 30\n";
        let s = resolve_with(&Flags::default(), &[], Some(file)).unwrap();
        assert_eq!(
            (s.host.as_str(), s.port, s.username.as_str()),
            ("0.0.0.0", 9000, "fileuser")
        );
        assert_eq!(s.turn_timeout, Duration::from_secs(30));
        let s = resolve_with(&Flags::default(), &[("PORT", "9100")], Some(file)).unwrap();
        assert_eq!(s.port, 9100);
        let flags = Flags {
            port: Some(9200),
            ..Flags::default()
        };
        let s = resolve_with(&flags, &[("PORT", "9100")], Some(file)).unwrap();
        assert_eq!(s.port, 9200);
    }

    #[test]
    fn missing_credentials_name_the_settings_and_file() {
        let err = resolve_with(&Flags::default(), &[], None)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("AUTH_USERNAME") && err.contains("AUTH_PASSWORD"),
            "{err}"
        );
        assert!(err.contains("config.toml"), "{err}");
    }

    #[test]
    fn bad_values_are_named() {
        let err = resolve_with(
            &Flags::default(),
            &[CREDS[0], CREDS[1], ("PORT", "http")],
            None,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("PORT"), "{err}");
        let flags = Flags {
            permission_mode: Some("yolo".into()),
            ..Flags::default()
        };
        let err = resolve_with(&flags, CREDS, None).unwrap_err().to_string();
        assert!(err.contains("yolo") && err.contains("acceptEdits"), "{err}");
        let err = resolve_with(&Flags::default(), CREDS, Some("[sever]\nport = 1\n"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("sever"), "{err}");
    }

    #[test]
    fn allowed_tools_split_on_commas() {
        let vars = [
            CREDS[0],
            CREDS[1],
            ("CLAUDE_ALLOWED_TOOLS", "Bash(git *), Edit,"),
        ];
        let s = resolve_with(&Flags::default(), &vars, None).unwrap();
        assert_eq!(
            s.allowed_tools,
            vec!["Bash(git *)".to_string(), "Edit".to_string()]
        );
    }

    #[test]
    fn dotenv_parses_quotes_comments_and_export() {
        let env = parse_dotenv(
            "# comment\nexport AUTH_USERNAME=me\nAUTH_PASSWORD=\"p#w = x\"\nPORT=8001 # inline\nEMPTY=\nnot a line\nMODE='plan' # comment\n",
        );
        assert_eq!(env["AUTH_USERNAME"], "me");
        assert_eq!(env["AUTH_PASSWORD"], "p#w = x");
        assert_eq!(env["PORT"], "8001");
        assert_eq!(env["EMPTY"], "");
        assert_eq!(env["MODE"], "plan");
        assert_eq!(env.len(), 5);
    }

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

    #[test]
    fn the_configured_mode_is_a_ceiling_for_the_allowed_ones() {
        let flags = Flags {
            permission_mode: Some("default".into()),
            ..Flags::default()
        };
        let s = resolve_with(&flags, CREDS, None).unwrap();
        assert_eq!(s.refuse_mode("plan"), None);
        assert_eq!(s.refuse_mode("default"), None);
        for mode in ["acceptEdits", "auto", "dontAsk", "bypassPermissions"] {
            let refused = s.refuse_mode(mode).expect(mode);
            assert!(
                refused.contains("allowed_permission_modes") && refused.contains("plan, default"),
                "{refused}"
            );
        }
        let modes: Vec<usize> = [
            "plan",
            "default",
            "acceptEdits",
            "auto",
            "bypassPermissions",
        ]
        .iter()
        .map(|m| permissiveness(m))
        .collect();
        assert!(modes.windows(2).all(|w| w[0] < w[1]), "{modes:?}");
    }

    #[test]
    fn relative_executables_are_made_absolute() {
        let cwd = Path::new("/home/me/app");
        assert_eq!(absolute_bin(cwd, "bin/claude"), "/home/me/app/bin/claude");
        assert_eq!(absolute_bin(cwd, "./claude"), "/home/me/app/./claude");
        assert_eq!(absolute_bin(cwd, "claude"), "claude");
        assert_eq!(absolute_bin(cwd, "/usr/bin/claude"), "/usr/bin/claude");
    }
}
