//! `remote-agent doctor`: checks what a working setup needs and prints each problem with its fix.

use std::path::Path;
use std::time::Duration;

use crate::config::{ConfigError, Flags, Settings};

/// One check's outcome: fine (with what was found) or a problem (with its fix).
enum Check {
    Ok(String),
    Problem { what: String, fix: String },
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
            checks.push(Check::Problem {
                what: "no user name and password".into(),
                fix: format!("run `remote-agent passwd` (saves to {})", path.display()),
            });
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
    let claude_bin = settings
        .as_ref()
        .map_or_else(|| "claude".to_string(), |s| s.claude_bin.clone());
    checks.push(
        version_of(
            &claude_bin,
            "claude",
            "install it with `npm install -g @anthropic-ai/claude-code`, or set CLAUDE_BIN",
        )
        .await,
    );
    let cloudflared = cloudflared_bin
        .or_else(|| {
            std::env::var("CLOUDFLARED_BIN")
                .ok()
                .filter(|b| !b.is_empty())
        })
        .unwrap_or_else(|| "cloudflared".into());
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
        }
    }
    anyhow::ensure!(problems == 0, "{problems} problem(s) found");
    println!("all good");
    Ok(())
}

/// Finds `bin` and asks its version.
async fn version_of(bin: &str, name: &str, install: &str) -> Check {
    let Some(path) = crate::claude::resolve_bin(bin) else {
        return Check::Problem {
            what: format!("{name} not found ({bin:?})"),
            fix: install.to_string(),
        };
    };
    let out = tokio::time::timeout(
        Duration::from_secs(15),
        tokio::process::Command::new(&path)
            .arg("--version")
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
    let bin = crate::claude::resolve_bin(cloudflared)?;
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
    if let Some(state) = crate::up::recorded_state(&settings.state_dir) {
        return Check::Ok(format!(
            "remote-agent up is running (pid {}), serving {}",
            state["pid"],
            state["local_url"].as_str().unwrap_or("(starting)")
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
