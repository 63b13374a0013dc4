//! Running `remote-agent up` as a background service: the systemd user unit and the launchd LaunchAgent, filled
//! from the templates in `systemd/` and `launchd/` (embedded), installed for the current user, and managed.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Context;

use crate::config::{Flags, Settings};

const SYSTEMD_TEMPLATE: &str = include_str!("../systemd/remote-agent.service");
const LAUNCHD_TEMPLATE: &str = include_str!("../launchd/com.remote-agent.up.plist");
const SYSTEMD_UNIT: &str = "remote-agent.service";
const LAUNCHD_LABEL: &str = "com.remote-agent.up";

/// The service managers we write units for: systemd (a user unit) and launchd (a LaunchAgent).
// clap prints a variant's doc comment in `service --help`, which would change its output: the variants stay
// undocumented.
#[allow(missing_docs)]
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Manager {
    Systemd,
    Launchd,
}

impl Manager {
    /// This platform's manager.
    pub fn native() -> Manager {
        if cfg!(target_os = "macos") {
            Manager::Launchd
        } else {
            Manager::Systemd
        }
    }

    /// Where the unit goes for the user whose home is `home`.
    pub fn unit_path(self, home: &Path) -> PathBuf {
        match self {
            Manager::Systemd => home.join(".config/systemd/user").join(SYSTEMD_UNIT),
            Manager::Launchd => home
                .join("Library/LaunchAgents")
                .join(format!("{LAUNCHD_LABEL}.plist")),
        }
    }
}

/// What a unit says: the executable, the arguments of `up` (settings in use, never a secret: those stay in the
/// 0600 config file), the project dir, the PATH, and (launchd) the log file.
pub struct Unit {
    /// This executable.
    pub exe: PathBuf,
    /// The arguments after `up`.
    pub args: Vec<String>,
    /// The working directory: the project dir.
    pub project: PathBuf,
    /// The `PATH` the service runs with.
    pub path: String,
    /// Where launchd writes the service's output.
    pub log: PathBuf,
}

impl Unit {
    /// The unit text for `manager`.
    pub fn render(&self, manager: Manager) -> String {
        match manager {
            Manager::Systemd => {
                let exec = std::iter::once(self.exe.display().to_string())
                    .chain(["up".to_string()])
                    .chain(self.args.iter().cloned())
                    .map(|a| systemd_quote(&a))
                    .collect::<Vec<_>>()
                    .join(" ");
                fill(
                    SYSTEMD_TEMPLATE,
                    &[
                        ("exec_start", exec),
                        // WorkingDirectory= takes the rest of the line as the path: no quotes, only %-specifiers.
                        (
                            "project",
                            self.project.display().to_string().replace('%', "%%"),
                        ),
                        ("path", self.path.replace('%', "%%")),
                    ],
                )
            }
            Manager::Launchd => {
                let args = std::iter::once(self.exe.display().to_string())
                    .chain(["up".to_string()])
                    .chain(self.args.iter().cloned())
                    .map(|a| format!("    <string>{}</string>", xml_escape(&a)))
                    .collect::<Vec<_>>()
                    .join("\n");
                fill(
                    LAUNCHD_TEMPLATE,
                    &[
                        ("program_arguments", args),
                        ("project", xml_escape(&self.project.display().to_string())),
                        ("path", xml_escape(&self.path)),
                        ("log", xml_escape(&self.log.display().to_string())),
                    ],
                )
            }
        }
    }
}

fn fill(template: &str, values: &[(&str, String)]) -> String {
    values
        .iter()
        .fold(template.to_string(), |text, (key, value)| {
            text.replace(&format!("{{{{{key}}}}}"), value)
        })
}

/// Quotes one systemd command-line word (and keeps `%` and `$` literal).
fn systemd_quote(word: &str) -> String {
    let escaped = word
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('%', "%%")
        .replace('$', "$$");
    if escaped.is_empty() || escaped.contains(|c: char| c.is_whitespace() || c == '\'') {
        format!("\"{escaped}\"")
    } else {
        escaped
    }
}

fn xml_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The PATH for the service: the directories of `claude` and `cloudflared` as found now, then the usual ones.
pub fn service_path(claude: &str, cloudflared: &str) -> String {
    let mut dirs: Vec<String> = [claude, cloudflared]
        .iter()
        .filter_map(|bin| crate::process::find_executable(bin))
        .filter_map(|p| p.parent().map(|d| d.display().to_string()))
        .collect();
    for d in ["/opt/homebrew/bin", "/usr/local/bin", "/usr/bin", "/bin"] {
        dirs.push(d.to_string());
    }
    let mut seen = std::collections::HashSet::new();
    dirs.retain(|d| seen.insert(d.clone()));
    dirs.join(":")
}

/// Runs a service manager command, or with `dry_run` only says what it would run.
fn manage(dry_run: bool, program: &str, args: &[&str]) -> anyhow::Result<()> {
    let shown = format!("{program} {}", args.join(" "));
    if dry_run {
        println!("would run: {shown}");
        return Ok(());
    }
    let status = Command::new(program)
        .args(args)
        .status()
        .with_context(|| format!("running {shown}"))?;
    anyhow::ensure!(status.success(), "{shown} failed ({status})");
    Ok(())
}

fn uid() -> String {
    nix::unistd::getuid().to_string()
}

/// Writes the unit (0644 in the user's service dir) and, unless `dry_run`, loads and starts it.
pub fn install(
    manager: Manager,
    unit: &Unit,
    home: &Path,
    dry_run: bool,
) -> anyhow::Result<PathBuf> {
    let path = manager.unit_path(home);
    let dir = path.parent().expect("a unit path has a parent");
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    if let Some(log_dir) = unit.log.parent() {
        std::fs::create_dir_all(log_dir)
            .with_context(|| format!("creating {}", log_dir.display()))?;
    }
    if manager == Manager::Launchd {
        // launchd creates the log with the umask it gives us, the user's (the unit sets none, so that Claude gets
        // it); made here first, the log stays private.
        crate::files::append_private(&unit.log)
            .with_context(|| format!("creating {}", unit.log.display()))?;
    }
    std::fs::write(&path, unit.render(manager))
        .with_context(|| format!("writing {}", path.display()))?;
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644))?;
    }
    let plist = path.display().to_string();
    match manager {
        Manager::Systemd => {
            manage(dry_run, "systemctl", &["--user", "daemon-reload"])?;
            manage(
                dry_run,
                "systemctl",
                &["--user", "enable", "--now", SYSTEMD_UNIT],
            )?;
        }
        Manager::Launchd => {
            let domain = format!("gui/{}", uid());
            // A unit loaded before must go first, or bootstrap fails.
            let _ = manage(
                dry_run,
                "launchctl",
                &["bootout", &format!("{domain}/{LAUNCHD_LABEL}")],
            );
            manage(dry_run, "launchctl", &["bootstrap", &domain, &plist])?;
        }
    }
    Ok(path)
}

/// Stops and removes the unit; false if it was not installed.
pub fn uninstall(manager: Manager, home: &Path, dry_run: bool) -> anyhow::Result<bool> {
    let path = manager.unit_path(home);
    if !path.exists() {
        return Ok(false);
    }
    match manager {
        Manager::Systemd => {
            let _ = manage(
                dry_run,
                "systemctl",
                &["--user", "disable", "--now", SYSTEMD_UNIT],
            );
        }
        Manager::Launchd => {
            let target = format!("gui/{}/{LAUNCHD_LABEL}", uid());
            let _ = manage(dry_run, "launchctl", &["bootout", &target]);
        }
    }
    std::fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))?;
    if manager == Manager::Systemd {
        let _ = manage(dry_run, "systemctl", &["--user", "daemon-reload"]);
    }
    Ok(true)
}

/// Whether the unit is installed, and what the manager says of it.
pub fn status(manager: Manager, home: &Path, dry_run: bool) -> anyhow::Result<bool> {
    let path = manager.unit_path(home);
    if !path.exists() {
        println!("not installed (no {})", path.display());
        return Ok(false);
    }
    println!("installed: {}", path.display());
    let _ = match manager {
        Manager::Systemd => manage(
            dry_run,
            "systemctl",
            &["--user", "--no-pager", "status", SYSTEMD_UNIT],
        ),
        Manager::Launchd => manage(
            dry_run,
            "launchctl",
            &["print", &format!("gui/{}/{LAUNCHD_LABEL}", uid())],
        ),
    };
    Ok(true)
}

/// Shows the service's log: the journal (systemd) or the log file (launchd).
pub fn logs(manager: Manager, log: &Path, dry_run: bool) -> anyhow::Result<()> {
    match manager {
        Manager::Systemd => manage(
            dry_run,
            "journalctl",
            &["--user", "-u", SYSTEMD_UNIT, "-n", "200", "--no-pager"],
        ),
        Manager::Launchd => manage(dry_run, "tail", &["-n", "200", &log.display().to_string()]),
    }
}

/// `remote-agent service …`.
#[derive(clap::Subcommand, Debug)]
pub enum Action {
    /// Write the unit with the settings in use and the PATH that finds claude and cloudflared, then enable and
    /// start it.
    Install {
        /// The settings written into the unit.
        #[command(flatten)]
        flags: Flags,
        /// How to reach the service manager.
        #[command(flatten)]
        manage: Manage,
    },
    /// Stop and remove the unit.
    Uninstall {
        /// How to reach the service manager.
        #[command(flatten)]
        manage: Manage,
    },
    /// Whether the unit is installed, and what the service manager says of it.
    Status {
        /// How to reach the service manager.
        #[command(flatten)]
        manage: Manage,
    },
    /// The service's recent log.
    Logs {
        /// How to reach the service manager.
        #[command(flatten)]
        manage: Manage,
    },
    /// Print the unit for a service manager without installing it.
    Print {
        // clap would print a doc comment here as the argument's help, a change to `service print --help`.
        #[allow(missing_docs)]
        #[arg(value_enum)]
        manager: Manager,
        /// The settings written into the unit.
        #[command(flatten)]
        flags: Flags,
    },
}

/// How `service` talks to the service manager.
#[derive(clap::Args, Debug)]
pub struct Manage {
    /// systemd or launchd [default: this platform's]
    #[arg(long, value_enum)]
    manager: Option<Manager>,
    /// Say what would be run instead of calling systemctl/launchctl
    #[arg(long)]
    dry_run: bool,
}

fn home() -> anyhow::Result<PathBuf> {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .context("HOME is not set")
}

/// The unit for the settings in use: `up` with the same flags, in the default project.
fn unit_for(flags: &Flags) -> anyhow::Result<Unit> {
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
    Ok(Unit {
        exe: std::env::current_exe().context("finding our own executable")?,
        args: flags.to_args(),
        project,
        path: service_path(
            &settings.claude_bin,
            &std::env::var("CLOUDFLARED_BIN").unwrap_or_else(|_| "cloudflared".into()),
        ),
        log: home()?.join("Library/Logs/remote-agent.log"),
    })
}

/// `remote-agent service …`.
pub fn command(action: Action) -> anyhow::Result<()> {
    let pick = |m: &Manage| m.manager.unwrap_or_else(Manager::native);
    match action {
        Action::Print { manager, flags } => {
            print!("{}", unit_for(&flags)?.render(manager));
        }
        Action::Install { flags, manage } => {
            let unit = unit_for(&flags)?;
            let home = home()?;
            let path = install(pick(&manage), &unit, &home, manage.dry_run)?;
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
        Action::Uninstall { manage } => {
            if uninstall(pick(&manage), &home()?, manage.dry_run)? {
                println!("uninstalled");
            } else {
                println!("not installed");
            }
        }
        Action::Status { manage } => {
            status(pick(&manage), &home()?, manage.dry_run)?;
        }
        Action::Logs { manage } => {
            logs(
                pick(&manage),
                &home()?.join("Library/Logs/remote-agent.log"),
                manage.dry_run,
            )?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit() -> Unit {
        Unit {
            exe: "/opt/remote agent/bin/remote-agent".into(),
            args: vec!["--project=/home/me/my app".into(), "--port=8000".into()],
            project: "/home/me/my app".into(),
            path: "/home/me/.npm/bin:/usr/bin".into(),
            log: "/home/me/Library/Logs/remote-agent.log".into(),
        }
    }

    #[test]
    fn the_systemd_unit_quotes_what_needs_it() {
        let text = unit().render(Manager::Systemd);
        assert!(text.contains(
            "ExecStart=\"/opt/remote agent/bin/remote-agent\" up \"--project=/home/me/my app\" --port=8000"
        ), "{text}");
        assert!(text.contains("WorkingDirectory=/home/me/my app\n"));
        assert!(text.contains("Environment=PATH=/home/me/.npm/bin:/usr/bin"));
        assert!(text.contains("Restart=on-failure"));
        assert!(!text.contains("{{"));
    }

    #[test]
    fn the_launchd_plist_escapes_xml() {
        let mut u = unit();
        u.args.push("--tunnel-name=a&b".into());
        let text = u.render(Manager::Launchd);
        assert!(text.contains("<string>--tunnel-name=a&amp;b</string>"));
        assert!(text.contains("<string>up</string>"));
        assert!(!text.contains("{{"));
    }

    #[test]
    fn the_service_path_starts_with_the_tools_directories() {
        let path = service_path("/nonexistent/claude", "/nonexistent/cloudflared");
        assert!(path.starts_with("/opt/homebrew/bin:/usr/local/bin"));
        assert_eq!(path.matches("/usr/bin").count(), 1);
    }
}
