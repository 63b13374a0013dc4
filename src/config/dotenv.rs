//! `.env` in the launch dir: what of it may apply, and the process environment layered over it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::dirs::{absolute, default_config_path, launch_dir};
use super::file::read_config_file;
use super::{ConfigError, Flags, is_own_env};

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

static DOTENV_FILE: std::sync::OnceLock<Option<HashMap<String, String>>> =
    std::sync::OnceLock::new();

/// What `.env` in the launch dir gives. It is read once, at start: one the agent writes later is never read.
pub struct DotEnv {
    /// The `.env` file looked at (it may not exist).
    pub path: PathBuf,
    /// The settings taken from it (empty when it is ignored).
    pub vars: HashMap<String, String>,
    /// Our settings it names but may not give (credentials, executables, the config file).
    pub refused: Vec<String>,
    /// The allowed project or project root it lies in: then none of it is read.
    pub in_project: Option<PathBuf>,
}

impl DotEnv {
    /// What a person should know about it, one line each (names only, never values).
    pub fn warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(project) = &self.in_project {
            out.push(format!(
                "ignoring {}: it is inside the allowed project or project root {} (where Claude writes files and repositories \
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

/// The allowed project or project root (as `flags` over `env` and the config file name them) that holds `dir`, if
/// any: Claude can write a `.env` anywhere in either.
fn project_holding(
    dir: &Path,
    flags: &Flags,
    env: &dyn Fn(&str) -> Option<String>,
) -> Option<PathBuf> {
    let flags = flags.paths_over(env);
    // Made absolute against the launch dir: after `serve` moves to the state dir, a relative --config must still
    // name the same file, or a reload would find no projects and read a .env it should ignore.
    let (allow, roots) = flags
        .config
        .as_ref()
        .map(|p| absolute(dir, p))
        .or_else(default_config_path)
        .and_then(|p| read_config_file(&p, false).ok())
        .map(|c| (c.projects.allow, c.projects.roots))
        .unwrap_or_default();
    let first = flags
        .project
        .clone()
        .or_else(|| allow.is_empty().then(|| dir.to_path_buf()));
    let here = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    let real = |p: &PathBuf| {
        let p = absolute(dir, p);
        p.canonicalize().unwrap_or(p)
    };
    let projects: Vec<PathBuf> = first.iter().chain(allow.iter()).map(real).collect();
    let roots: Vec<PathBuf> = flags
        .project_root
        .iter()
        .chain(roots.iter())
        .map(real)
        .collect();
    projects
        .iter()
        .find(|p| crate::projects::inside(&here, p))
        .or_else(|| crate::projects::root_of(&roots, &here))
        .cloned()
}

/// The environment over what `.env` may give, and the launch dir.
pub(super) fn process_env(flags: &Flags) -> Result<(EnvFn, PathBuf), ConfigError> {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
