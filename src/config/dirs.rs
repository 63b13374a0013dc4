//! Where things live: the config file, the data and state dirs, the launch dir, and paths made absolute.

use std::path::{Path, PathBuf};

use super::dotenv::process_env;
use super::{ConfigError, Flags};

/// The default config file path, from the platform's config dir.
pub fn default_config_path() -> Option<PathBuf> {
    directories::ProjectDirs::from("", "", "remote-agent")
        .map(|d| d.config_dir().join("config.toml"))
}

/// Claude Code's config dir, where its sessions and settings live: `$CLAUDE_CONFIG_DIR`, else `~/.claude`.
pub fn claude_config_dir(env: impl Fn(&str) -> Option<std::ffi::OsString>) -> Option<PathBuf> {
    match env("CLAUDE_CONFIG_DIR").filter(|v| !v.is_empty()) {
        Some(dir) => Some(PathBuf::from(dir)),
        None => env("HOME")
            .filter(|v| !v.is_empty())
            .map(|h| PathBuf::from(h).join(".claude")),
    }
}

/// The data dir and the state dir: flags, then the environment, then the platform's directories (the state dir
/// falls back to the data dir where the platform has none); `flags` has the environment merged in already.
pub(super) fn dirs(flags: &Flags, cwd: &Path) -> Result<(PathBuf, PathBuf), ConfigError> {
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

static LAUNCH_DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();

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

pub(super) fn absolute(cwd: &Path, path: &Path) -> PathBuf {
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        cwd.join(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_executables_are_made_absolute() {
        let cwd = Path::new("/home/me/app");
        assert_eq!(absolute_bin(cwd, "bin/claude"), "/home/me/app/bin/claude");
        assert_eq!(absolute_bin(cwd, "./claude"), "/home/me/app/./claude");
        assert_eq!(absolute_bin(cwd, "claude"), "claude");
        assert_eq!(absolute_bin(cwd, "/usr/bin/claude"), "/usr/bin/claude");
    }
}
