//! Settings: defaults < config file < `.env` in the working directory < environment < flags, resolved once.
//! `.env` is read only outside the allowed projects and project roots and never supplies credentials or executables
//! (README "Settings"). Each source has a file of its own (flags, file, dotenv, dirs); `watch` follows the file's
//! changes.

mod dirs;
mod dotenv;
mod file;
mod flags;
mod watch;

pub use dirs::{absolute_bin, config_path, data_dir, default_config_path, launch_dir, state_dir};
pub use dotenv::{DotEnv, dotenv, parse_dotenv};
pub use file::{file_has_credentials, save_credentials, tunnel_section};
pub use flags::{Flags, is_own_env};
pub use watch::watch;

use std::path::{Path, PathBuf};
use std::time::Duration;

use dirs::{absolute, claude_config_dir, dirs};
use dotenv::process_env;
use file::read_config_file;

/// The permission modes the `claude` CLI accepts (its `--permission-mode` flag).
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

/// The resolved settings of one server.
#[derive(Clone)]
pub struct Settings {
    /// The user name HTTP Basic and the sign-in page ask for.
    pub username: String,
    /// Secret: never logged, never passed to a child.
    pub password: Secret,
    /// The address the local listener binds.
    pub host: String,
    /// More names the local listener answers to (a LAN or Tailscale name), lowercased, without a trailing dot.
    pub allowed_hosts: Vec<String>,
    /// The local listener's port.
    pub port: u16,
    /// Where the database lives.
    pub data_dir: PathBuf,
    /// Where `up` keeps its state, lock and logs.
    pub state_dir: PathBuf,
    /// The config file these settings were read from (it may not exist).
    pub config_path: PathBuf,
    /// The Claude Code executable, as configured (a name looked up on `PATH`, or a path).
    pub claude_bin: String,
    /// How long a turn may run before it is stopped.
    pub turn_timeout: Duration,
    /// Turns running at once, server-wide.
    pub max_concurrent_turns: usize,
    /// The most permissive mode a conversation may choose (the prototype ran every turn in it).
    pub permission_mode: String,
    /// The mode of a conversation that chose none: `default` (Claude asks), unless the ceiling is lower.
    pub default_permission_mode: String,
    /// Claude processes kept warm between messages, across conversations (0: none).
    pub max_warm: usize,
    /// How long an idle Claude process stays warm.
    pub session_idle: Duration,
    /// Claude's unanswered permission requests are denied after this long; None (the default): they wait.
    pub deny_unanswered_after: Option<Duration>,
    /// The modes a client may choose for a conversation (none above `permission_mode`).
    pub allowed_permission_modes: Vec<String>,
    /// Tool rules Claude may use without asking (`--allowedTools`).
    pub allowed_tools: Vec<String>,
    /// Allowed project directories, canonical; the first is the default.
    pub projects: Vec<PathBuf>,
    /// Directories under which any directory may be a project, canonical (`[projects] roots`, `--project-root`).
    pub project_roots: Vec<PathBuf>,
    /// Claude Code's config dir (`$CLAUDE_CONFIG_DIR`, else `~/.claude`): where its sessions are listed from.
    pub claude_dir: Option<PathBuf>,
    /// What no project reached through a root may be, hold or lie inside: the config file, the data and state
    /// dirs, Claude Code's config dir (crate::projects).
    pub guarded: Vec<PathBuf>,
    /// Silence after which an event stream sends a keepalive event.
    pub sse_keepalive: Duration,
    /// The contact in Web Push's VAPID JWT (`sub`): `mailto:…` or `https://…`.
    pub push_subject: String,
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
            .field("project_roots", &self.project_roots)
            .finish_non_exhaustive()
    }
}

/// The password as configured: plaintext (from the environment, or `password` in the file; the
/// prototype's way) or an argon2id hash (`password_hash`, written by `remote-agent passwd`).
#[derive(Clone, PartialEq, Eq)]
pub enum Secret {
    /// The password itself.
    Plain(String),
    /// An argon2id PHC string.
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
    /// Shared settings, starting from these.
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
    /// No user name or password anywhere; the path is the config file's.
    NoCredentials(PathBuf),
    #[error(
        "config file {0} does not exist: check the path, or run `remote-agent up`, which creates it on its first run"
    )]
    /// A config file named on the command line or in the environment is not there.
    Missing(PathBuf),
    #[error("config file {path}: {message}")]
    /// The config file could not be read or parsed.
    File {
        /// The config file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    #[error("{name}: {message}")]
    /// A setting has a value we refuse.
    Invalid {
        /// The setting, as the user spells it (a flag, a variable or a key).
        name: &'static str,
        /// What is wrong with its value.
        message: String,
    },
    #[error("{0}")]
    /// Anything else, said in full.
    Other(String),
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
        let push_subject = file
            .push
            .subject
            .unwrap_or_else(|| "mailto:remote-agent@localhost".into());
        if !(push_subject.starts_with("mailto:") && push_subject.len() > 7
            || push_subject.starts_with("https://") && push_subject.len() > 8)
            || push_subject.chars().any(|c| c.is_control() || c == '"')
        {
            return Err(ConfigError::Invalid {
                name: "[push] subject",
                message: "must be a mailto: or https:// URL".into(),
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
        let fits = |m: &str| {
            allowed_permission_modes.iter().any(|a| a == m)
                && permissiveness(m) <= permissiveness(&permission_mode)
        };
        let default_permission_mode = match file.claude.default_permission_mode {
            Some(m) if fits(&m) => m,
            Some(m) => {
                return Err(ConfigError::Invalid {
                    name: "[claude] default_permission_mode",
                    message: format!(
                        "{m:?} is not in allowed_permission_modes or is above permission_mode ({permission_mode})"
                    ),
                });
            }
            // Claude asks, and the phone answers; a ceiling below that (plan) is the default itself.
            None if fits("default") => "default".into(),
            None => permission_mode.clone(),
        };
        let max_warm = flags.max_warm.or(file.claude.max_warm).unwrap_or(4);
        let idle_secs = flags.idle_secs.or(file.claude.idle_secs).unwrap_or(600);
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
        let mut project_roots = Vec::new();
        for dir in flags.project_root.iter().chain(file.projects.roots.iter()) {
            let dir = absolute(cwd, dir);
            let canonical = dir
                .canonicalize()
                .ok()
                .filter(|c| c.is_dir())
                .ok_or_else(|| ConfigError::Invalid {
                    name: "project root (--project-root, [projects] roots)",
                    message: format!("{} is not a directory", dir.display()),
                })?;
            if !project_roots.contains(&canonical) {
                project_roots.push(canonical);
            }
        }

        // Resolved where they exist, so a root reached through a symlink is compared with what it holds.
        let claude_dir = claude_config_dir(|k| env(k).map(Into::into));
        let guarded = [
            Some(&config_path),
            Some(&data_dir),
            Some(&state_dir),
            claude_dir.as_ref(),
        ]
        .into_iter()
        .flatten()
        .map(|p| absolute(cwd, p))
        .map(|p| p.canonicalize().unwrap_or(p))
        .collect();

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
            default_permission_mode,
            max_warm,
            session_idle: Duration::from_secs(idle_secs),
            deny_unanswered_after: file
                .claude
                .deny_unanswered_after_mins
                .filter(|&m| m > 0.0 && m.is_finite())
                .map(|m| Duration::from_secs_f64((m * 60.0).min(1e9))),
            allowed_permission_modes,
            allowed_tools,
            projects,
            project_roots,
            claude_dir,
            guarded,
            sse_keepalive: Duration::from_secs(sse_keepalive),
            push_subject,
        })
    }

    /// The real path of `path` if a conversation may run there (the rule is [`crate::projects::allowed`]).
    pub fn allowed_project(&self, path: &Path) -> Result<PathBuf, crate::projects::Refusal> {
        crate::projects::allowed(self.project_rule(), path)
    }

    /// The rule a project is judged by (crate::projects).
    pub fn project_rule(&self) -> crate::projects::Rule<'_> {
        crate::projects::Rule {
            allow: &self.projects,
            roots: &self.project_roots,
            guarded: &self.guarded,
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

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
    fn push_subject_is_a_mailto_or_https_url() {
        let s = resolve_with(&Flags::default(), CREDS, None).unwrap();
        assert_eq!(s.push_subject, "mailto:remote-agent@localhost");
        let s = resolve_with(
            &Flags::default(),
            CREDS,
            Some("[push]\nsubject = \"https://me.example\"\n"),
        );
        assert_eq!(s.unwrap().push_subject, "https://me.example");
        for bad in ["me@example.com", "mailto:", "http://me.example"] {
            let file = format!("[push]\nsubject = \"{bad}\"\n");
            let err = resolve_with(&Flags::default(), CREDS, Some(&file)).unwrap_err();
            assert!(err.to_string().contains("[push] subject"), "{err}");
        }
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
    fn a_root_cannot_reach_our_own_dirs_or_claudes() {
        let tmp = tempfile::tempdir().unwrap();
        let home = tmp.path().canonicalize().unwrap();
        let (data, claude, app) = (home.join("data"), home.join(".claude"), home.join("app"));
        for d in [&data, &claude, &app] {
            std::fs::create_dir_all(d).unwrap();
        }
        let flags = Flags {
            project_root: vec![home.clone()],
            ..Flags::default()
        };
        let (d, h) = (data.display().to_string(), home.display().to_string());
        let vars = [
            CREDS,
            &[("REMOTE_AGENT_DATA_DIR", d.as_str()), ("HOME", h.as_str())],
        ]
        .concat();
        let s = resolve_with(&flags, &vars, None).unwrap();
        assert_eq!(s.allowed_project(&app), Ok(app.clone()));
        for dir in [&home, &data, &claude] {
            assert_eq!(
                s.allowed_project(dir),
                Err(crate::projects::Refusal::Guarded(dir.clone()))
            );
        }
    }

    #[test]
    fn project_roots_come_from_the_flag_and_the_file_resolved_and_a_missing_one_is_named() {
        let tmp = tempfile::tempdir().unwrap();
        let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
        std::fs::create_dir_all(&a).unwrap();
        std::fs::create_dir_all(&b).unwrap();
        std::os::unix::fs::symlink(&b, tmp.path().join("b-link")).unwrap();
        let flags = Flags {
            project_root: vec![a.clone()],
            ..Flags::default()
        };
        let file = format!(
            "[projects]\nroots = [{:?}]\n",
            tmp.path().join("b-link").display().to_string()
        );
        let s = resolve_with(&flags, CREDS, Some(&file)).unwrap();
        assert_eq!(
            s.project_roots,
            [a.canonicalize().unwrap(), b.canonicalize().unwrap()]
        );
        assert!(
            flags
                .to_args()
                .contains(&format!("--project-root={}", a.display())),
            "{:?}",
            flags.to_args()
        );
        let file = "[projects]\nroots = [\"/no/such/root\"]\n";
        let err = resolve_with(&Flags::default(), CREDS, Some(file))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("[projects] roots") && err.contains("/no/such/root"),
            "{err}"
        );
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
}
