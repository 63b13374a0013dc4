//! The config file (TOML): reading it, locating its errors without quoting secrets, saving first-run credentials.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::{ConfigError, Secret};

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

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub(super) struct FileConfig {
    pub(super) auth: FileAuth,
    pub(super) server: FileServer,
    pub(super) claude: FileClaude,
    pub(super) projects: FileProjects,
    pub(super) push: FilePush,
    /// Read by `up` (the tunnel supervisor); one file serves both.
    pub(super) tunnel: Option<toml::Table>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub(super) struct FileAuth {
    pub(super) username: Option<String>,
    pub(super) password: Option<String>,
    pub(super) password_hash: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub(super) struct FileServer {
    pub(super) host: Option<String>,
    pub(super) port: Option<u16>,
    pub(super) allowed_hosts: Vec<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub(super) struct FileClaude {
    pub(super) bin: Option<String>,
    pub(super) permission_mode: Option<String>,
    pub(super) allowed_permission_modes: Option<Vec<String>>,
    pub(super) allowed_tools: Option<Vec<String>>,
    pub(super) turn_timeout_secs: Option<u64>,
    pub(super) max_concurrent_turns: Option<usize>,
    pub(super) max_warm: Option<usize>,
    pub(super) idle_secs: Option<u64>,
    pub(super) default_permission_mode: Option<String>,
    pub(super) deny_unanswered_after_mins: Option<f64>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub(super) struct FilePush {
    pub(super) subject: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub(super) struct FileProjects {
    pub(super) allow: Vec<PathBuf>,
    pub(super) roots: Vec<PathBuf>,
}

pub(super) fn read_config_file(path: &Path, explicit: bool) -> Result<FileConfig, ConfigError> {
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
}
