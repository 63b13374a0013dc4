//! `remote-agent doctor`: checks what a working setup needs and prints each problem with its fix.

use std::path::Path;
use std::time::Duration;

use crate::config::{ConfigError, Flags, Settings};

/// One check's outcome: fine (with what was found), a warning or a problem (with its fix), or information.
enum Check {
    Ok(String),
    Problem {
        what: String,
        fix: String,
    },
    /// Works, but weaker than it should be; does not fail `doctor`.
    Warn {
        what: String,
        fix: String,
    },
    Info(String),
}

/// Runs every check, prints them, and fails when any found a problem.
pub async fn doctor(flags: &Flags, cloudflared_bin: Option<String>) -> anyhow::Result<()> {
    let mut checks = Vec::new();
    let settings = match Settings::load(flags) {
        Ok(s) => {
            checks.push(Check::Ok(format!("credentials set for {:?}", s.username)));
            Some(s)
        }
        Err(ConfigError::NoCredentials(path)) => {
            checks.push(Check::Info(format!(
                "no login yet: it will be created by `remote-agent up` on its first run (or set one now with \
                 `remote-agent passwd`; it is saved in {})",
                path.display()
            )));
            None
        }
        Err(e) => {
            checks.push(Check::Problem {
                what: format!("the settings do not load: {e}"),
                fix: "correct the value named above".into(),
            });
            None
        }
    };
    if let Ok(Some(dotenv)) = crate::config::dotenv(flags) {
        for what in dotenv.warnings() {
            checks.push(Check::Warn {
                what,
                fix: format!("move those settings out of {}", dotenv.path.display()),
            });
        }
    }
    checks.extend(password_in_environment(settings.as_ref()));
    // The flags and the environment name the executables whether or not a login exists yet.
    let claude_bin = match &settings {
        Some(s) => s.claude_bin.clone(),
        None => crate::config::claude_bin(flags).unwrap_or_else(|_| "claude".into()),
    };
    let claude = version_of(
        &claude_bin,
        "claude",
        "install it with `npm install -g @anthropic-ai/claude-code`, or set CLAUDE_BIN",
    )
    .await;
    let found = matches!(claude, Check::Ok(_));
    checks.push(claude);
    if found {
        checks.push(claude_auth(&claude_bin).await);
    }
    let cloudflared = cloudflared_bin
        .or_else(|| {
            std::env::var("CLOUDFLARED_BIN")
                .ok()
                .filter(|b| !b.is_empty())
        })
        .unwrap_or_else(|| "cloudflared".into());
    let cloudflared = match crate::config::launch_dir() {
        Ok(dir) => crate::config::absolute_bin(&dir, &cloudflared),
        Err(_) => cloudflared,
    };
    checks.push(version_of(&cloudflared, "cloudflared", crate::tunnel::INSTALL_HINT).await);
    if let Some(s) = &settings {
        checks.extend(named_tunnel(s, &cloudflared).await);
        checks.extend(files(s));
        checks.push(port(s).await);
    }
    let manager = crate::service::Manager::native();
    let home = std::env::var_os("HOME").map(std::path::PathBuf::from);
    checks.push(match home.map(|h| manager.unit_path(&h)) {
        Some(unit) if unit.exists() => {
            Check::Info(format!("service installed: {}", unit.display()))
        }
        _ => Check::Info(
            "service not installed (`remote-agent service install` runs it at login)".into(),
        ),
    });

    let mut problems = 0;
    for check in &checks {
        match check {
            Check::Ok(what) => println!("ok       {what}"),
            Check::Info(what) => println!("info     {what}"),
            Check::Problem { what, fix } => {
                problems += 1;
                println!("PROBLEM  {what}\n         fix: {fix}");
            }
            Check::Warn { what, fix } => println!("warning  {what}\n         fix: {fix}"),
        }
    }
    anyhow::ensure!(problems == 0, "{problems} problem(s) found");
    println!("all good");
    Ok(())
}

/// Finds `bin` and asks its version.
async fn version_of(bin: &str, name: &str, install: &str) -> Check {
    let Some(path) = crate::process::find_executable(bin) else {
        return Check::Problem {
            what: format!("{name} not found ({bin:?})"),
            fix: install.to_string(),
        };
    };
    let mut cmd = tokio::process::Command::new(&path);
    if name == "cloudflared" {
        crate::tunnel::scrub_env(&mut cmd);
    }
    let out = tokio::time::timeout(
        Duration::from_secs(15),
        cmd.arg("--version")
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true)
            .output(),
    )
    .await;
    match out {
        Ok(Ok(out)) if out.status.success() => {
            let version = String::from_utf8_lossy(&out.stdout).trim().to_string();
            Check::Ok(format!("{name} {version} at {}", path.display()))
        }
        _ => Check::Problem {
            what: format!("{name} at {} does not answer --version", path.display()),
            fix: format!("reinstall it: {install}"),
        },
    }
}

/// Whether the CLI is logged in, as `claude auth status` reports it (from its environment and config files, without
/// a request), in the environment a turn gives it.
async fn claude_auth(bin: &str) -> Check {
    let Some(path) = crate::process::find_executable(bin) else {
        return Check::Info("claude's login not checked: claude not found".into());
    };
    let out = tokio::time::timeout(
        Duration::from_secs(15),
        tokio::process::Command::new(&path)
            .args(["auth", "status", "--json"])
            .env_clear()
            .envs(
                std::env::vars_os()
                    .filter(|(k, _)| !k.to_str().is_some_and(crate::config::is_own_env)),
            )
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true)
            .output(),
    )
    .await;
    let Ok(Ok(out)) = out else {
        return Check::Info(
            "claude's login not checked: `claude auth status` did not answer".into(),
        );
    };
    let status: Option<serde_json::Value> = serde_json::from_slice(&out.stdout).ok();
    match status.as_ref().and_then(|s| s["loggedIn"].as_bool()) {
        Some(true) => {
            let status = status.unwrap_or_default();
            let method = status["authMethod"].as_str().unwrap_or("unknown");
            let source = status["apiKeySource"]
                .as_str()
                .map(|s| format!(", from {s}"))
                .unwrap_or_default();
            Check::Ok(format!("claude is logged in ({method}{source})"))
        }
        Some(false) => Check::Problem {
            what: "claude is not logged in: every message would fail".into(),
            fix: "run `claude auth login` as this user, or set ANTHROPIC_API_KEY in the environment remote-agent \
                  runs in"
                .into(),
        },
        None => Check::Info(format!(
            "claude's login not checked: this claude has no `claude auth status` ({})",
            String::from_utf8_lossy(&out.stderr).trim()
        )),
    }
}

/// `AUTH_PASSWORD` in an environment: Claude (as this user) can read a process's environment in
/// `/proc/<pid>/environ`, unlike a hash in the config file.
fn password_in_environment(settings: Option<&Settings>) -> Vec<Check> {
    let fix = "remove AUTH_PASSWORD there and run `remote-agent passwd`, which keeps the password in the config \
               file as an argon2id hash";
    let mut out = Vec::new();
    let manager = crate::service::Manager::native();
    if let Some(unit) = std::env::var_os("HOME").map(|h| manager.unit_path(Path::new(&h)))
        && std::fs::read_to_string(&unit).is_ok_and(|t| t.contains("AUTH_PASSWORD"))
    {
        out.push(Check::Warn {
            what: format!(
                "the service {} sets AUTH_PASSWORD in its environment, where any process of yours, Claude's \
                 included, can read it",
                unit.display()
            ),
            fix: fix.into(),
        });
    }
    let running = settings
        .and_then(|s| crate::state::read_live(&s.state_dir))
        .map(|state| state.pid);
    if let Some(pid) = running
        && std::fs::read(format!("/proc/{pid}/environ")).is_ok_and(|e| {
            e.split(|b| *b == 0)
                .any(|v| v.starts_with(b"AUTH_PASSWORD="))
        })
    {
        out.push(Check::Warn {
            what: format!(
                "the running remote-agent (pid {pid}) has AUTH_PASSWORD in its environment, readable in \
                 /proc/{pid}/environ"
            ),
            fix: fix.into(),
        });
    }
    if std::env::var_os("AUTH_PASSWORD").is_some() {
        out.push(Check::Warn {
            what: "AUTH_PASSWORD is set in this environment: a server started from here carries it, readable \
                   by any process of yours"
                .into(),
            fix: fix.into(),
        });
    }
    out
}

/// A named tunnel's config, checked by cloudflared.
async fn named_tunnel(settings: &Settings, cloudflared: &str) -> Option<Check> {
    let table = crate::config::tunnel_section(&settings.config_path).ok()?;
    if table.get("mode").and_then(|m| m.as_str()) != Some("named") {
        return None;
    }
    let config = table
        .get("config")
        .and_then(|c| c.as_str())
        .filter(|c| !c.is_empty())?;
    let bin = crate::process::find_executable(cloudflared)?;
    Some(
        match crate::tunnel::validate(&bin, Path::new(config)).await {
            Ok(()) => Check::Ok(format!("the named tunnel's config {config} validates")),
            Err(said) => Check::Problem {
                what: format!("the named tunnel's config {config} is not valid: {said}"),
                fix: "correct its ingress: the last rule must be `- service: http_status:404`"
                    .into(),
            },
        },
    )
}

/// The data dir (0700), the database (0600, intact) and the config file (0600).
fn files(settings: &Settings) -> Vec<Check> {
    use std::os::unix::fs::PermissionsExt;
    let mut out = Vec::new();
    let mode = |p: &Path| {
        std::fs::metadata(p)
            .ok()
            .map(|m| m.permissions().mode() & 0o777)
    };
    let dir = &settings.data_dir;
    match mode(dir) {
        None => out.push(Check::Info(format!(
            "data dir {} not created yet",
            dir.display()
        ))),
        Some(0o700) => out.push(Check::Ok(format!(
            "data dir {} is private (0700)",
            dir.display()
        ))),
        Some(m) => out.push(Check::Problem {
            what: format!(
                "data dir {} is {m:o}: others can read the conversations",
                dir.display()
            ),
            fix: format!("chmod 700 {}", dir.display()),
        }),
    }
    let mut private = vec![settings.config_path.clone()];
    if let Ok(entries) = std::fs::read_dir(dir) {
        private.extend(
            entries
                .filter_map(|e| Some(e.ok()?.path()))
                .filter(|p| p.is_file()),
        );
    }
    if let Ok(entries) = std::fs::read_dir(&settings.state_dir) {
        private.extend(
            entries
                .filter_map(|e| Some(e.ok()?.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "log")),
        );
    }
    for file in private {
        match mode(&file) {
            None | Some(0o600) | Some(0o400) => {}
            Some(m) => out.push(Check::Problem {
                what: format!(
                    "{} is {m:o}: it holds secrets or conversations",
                    file.display()
                ),
                fix: format!("chmod 600 {}", file.display()),
            }),
        }
    }
    let db = dir.join("remote-agent.db");
    let emptied =
        std::fs::metadata(&db).is_ok_and(|m| m.len() == 0) && !crate::store::wal_has_data(&db);
    if emptied {
        out.push(Check::Problem {
            what: format!("database {} is empty: it has lost its contents", db.display()),
            fix: format!(
                "stop remote-agent, restore {0} from your own backup, or move it aside (mv {0} {0}.empty) to start \
                 with a new, empty one",
                db.display()
            ),
        });
    } else if db.exists() {
        out.push(match crate::store::integrity_check(&db) {
            Ok(()) => Check::Ok(format!("database {} passes its integrity check", db.display())),
            Err(e) => Check::Problem {
                what: format!("database {} is damaged: {e}", db.display()),
                fix: format!(
                    "stop remote-agent, move {} aside (a new one is made at the next start), and restore a backup \
                     if you have one",
                    db.display()
                ),
            },
        });
    }
    out
}

/// The port is free, or held by our own server.
async fn port(settings: &Settings) -> Check {
    if let Some(state) = crate::state::read_live(&settings.state_dir) {
        return Check::Ok(format!(
            "remote-agent up is running (pid {}), serving {}",
            state.pid,
            state.local_url.as_deref().unwrap_or("(starting)")
        ));
    }
    let addr = format!("{}:{}", settings.host, settings.port);
    if std::net::TcpListener::bind(&addr).is_ok() {
        return Check::Ok(format!("port {addr} is free"));
    }
    let probe = format!("127.0.0.1:{}", settings.port);
    match crate::tunnel::get(&probe, "/health").await {
        Some((200, body)) if body.contains("\"service\":\"remote-agent\"") => {
            Check::Ok(format!("port {addr} is held by a running remote-agent"))
        }
        _ => Check::Problem {
            what: format!("port {addr} is taken by another program"),
            fix: "stop it, or choose another port with --port or PORT".into(),
        },
    }
}
