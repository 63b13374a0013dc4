//! What `up` works out before its loop starts: the tunnel to open (flags, then the config file), and on a first
//! run without credentials, a login.

use std::path::PathBuf;

use anyhow::Context;

use super::{Mode, UpArgs};
use crate::config::Settings;
use crate::tunnel::{Kind, Named};

/// The tunnel to open, from the flags, then the config file's `[tunnel]`.
pub(super) fn tunnel_kind(args: &UpArgs, settings: &Settings) -> anyhow::Result<Option<Kind>> {
    let file = crate::config::tunnel_section(&settings.config_path)?;
    let text = |key: &str| {
        file.get(key)
            .and_then(|v| v.as_str())
            .filter(|s| !s.is_empty())
            .map(String::from)
    };
    let mode = if args.no_tunnel {
        Mode::None
    } else if let Some(mode) = args.tunnel {
        mode
    } else if let Some(mode) = text("mode") {
        match mode.as_str() {
            "quick" => Mode::Quick,
            "named" => Mode::Named,
            "none" => Mode::None,
            other => anyhow::bail!(
                "[tunnel] mode = {other:?} in {} is not quick, named or none",
                settings.config_path.display()
            ),
        }
    } else if args.tunnel_name.is_some()
        || args.tunnel_token.is_some()
        || args.tunnel_token_file.is_some()
    {
        Mode::Named
    } else {
        Mode::Quick
    };
    Ok(match mode {
        Mode::None => None,
        Mode::Quick => Some(Kind::Quick),
        Mode::Named => {
            let name = args.tunnel_name.clone().or_else(|| text("name"));
            // Absolute: cloudflared runs in the state dir, not where `up` was started.
            let config = args
                .tunnel_config
                .clone()
                .or_else(|| text("config").map(PathBuf::from))
                .map(|p| std::path::absolute(&p).unwrap_or(p));
            let token_file = args
                .tunnel_token_file
                .clone()
                .or_else(|| text("token_file").map(PathBuf::from))
                .map(|p| std::path::absolute(&p).unwrap_or(p));
            let named = if let Some(token) = &args.tunnel_token {
                Named::Token(token.clone())
            } else if let Some(file) = token_file {
                anyhow::ensure!(
                    file.is_file(),
                    "the tunnel token file {} does not exist",
                    file.display()
                );
                Named::TokenFile(file)
            } else if let (Some(name), Some(config)) = (name, config) {
                anyhow::ensure!(
                    config.is_file(),
                    "the tunnel config {} does not exist",
                    config.display()
                );
                Named::Config { name, config }
            } else {
                anyhow::bail!(
                    "a named tunnel needs --tunnel-name with --tunnel-config, or --tunnel-token-file \
                     (see terraform/README.md)"
                );
            };
            Some(Kind::Named(named))
        }
    })
}

/// The settings `up` runs with; on a first run (no credentials anywhere, or a `--config` that does not exist yet)
/// it creates the config file with a login first.
pub(super) fn load_settings(flags: &crate::config::Flags) -> anyhow::Result<Settings> {
    use crate::config::ConfigError;
    match Settings::load(flags) {
        Ok(s) => Ok(s),
        // A --config that does not exist yet is this first run's to create, like the default one.
        Err(ConfigError::Missing(path)) => {
            let from_env = |name| std::env::var(name).is_ok_and(|v| !v.is_empty());
            if from_env("AUTH_USERNAME") && from_env("AUTH_PASSWORD") {
                crate::files::private_file()
                    .write(true)
                    .create_new(true)
                    .open(&path)
                    .with_context(|| format!("creating {}", path.display()))?;
            } else {
                crate::account::first_run(&path)?;
            }
            Ok(Settings::load(flags)?)
        }
        Err(ConfigError::NoCredentials(path)) => {
            crate::account::first_run(&path)?;
            Ok(Settings::load(flags)?)
        }
        Err(e) => Err(e.into()),
    }
}

/// Fails at once, with the way out, when the listen address is taken: `serve` could only fail on it again and
/// again, and restarting would hide the cause in its log.
pub(super) fn port_is_free(settings: &Settings) -> anyhow::Result<()> {
    if settings.port == 0 {
        return Ok(());
    }
    match std::net::TcpListener::bind((settings.host.as_str(), settings.port)) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => anyhow::bail!(
            "{}:{} is already in use (by another program, or another remote-agent with its own state dir): pass \
             --port with a free port, or stop what listens there",
            settings.host,
            settings.port
        ),
        // Anything else (an address this computer does not have…) is serve's to report, as before.
        Err(_) => Ok(()),
    }
}
