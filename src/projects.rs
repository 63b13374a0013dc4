//! Which directories may be a project: the one rule that creating a conversation, every turn, browsing, the CLI's
//! sessions and `.env` all go through (docs/architecture.md, "Projects").
//!
//! A directory may be a project when its real path (symlinks resolved) is one of the allowed projects
//! (`[projects] allow`, `--project`) or lies inside one, or inside one of the roots (`[projects] roots`,
//! `--project-root`). Paths are compared by component, never as strings: `/home/me/work2` is not inside
//! `/home/me/work`. Both lists are canonical already (the settings resolve them at load).
//!
//! Claude can write wherever it runs, so a directory reached through a root or inside an allowed project may not
//! be, hold or lie inside one of the guarded dirs: our config, data and state and Claude Code's own config. Else a
//! root of `~` would let a conversation run in `~` and rewrite who may sign in, or the CLI's hooks. A project
//! named exactly in the allow-list is the user's own choice and is not guarded.

use std::path::{Component, Path, PathBuf};

/// Why a path may not be a project; the texts are plain, for a person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Not an absolute path.
    Relative,
    /// A `..` component (refused before anything is resolved).
    DotDot,
    /// Nothing there, or not a directory.
    Missing,
    /// A directory outside every allowed project and root (its real path given).
    Outside(PathBuf),
    /// A directory that is, holds or lies inside one of the guarded dirs (its real path given).
    Guarded(PathBuf),
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::Relative => f.write_str("the project must be an absolute path"),
            Refusal::DotDot => f.write_str("the project path may not contain \"..\""),
            Refusal::Missing => f.write_str("there is no such directory on this computer"),
            Refusal::Outside(real) => write!(
                f,
                "{} is not an allowed project and not inside a project root ([projects] allow and roots in the \
                 config file)",
                real.display()
            ),
            Refusal::Guarded(real) => write!(
                f,
                "{} is, holds or lies inside remote-agent's own config, data or state or Claude Code's config dir, \
                 where Claude could change who may sign in or what runs; only a project named in [projects] allow \
                 may be such a directory",
                real.display()
            ),
        }
    }
}

/// The directories a project may be, and the ones it may not reach.
#[derive(Debug, Clone, Copy)]
pub struct Rule<'a> {
    /// Allowed projects (`[projects] allow`), canonical.
    pub allow: &'a [PathBuf],
    /// Project roots (`[projects] roots`), canonical.
    pub roots: &'a [PathBuf],
    /// Dirs no project but one named in `allow` may be, hold or lie inside.
    pub guarded: &'a [PathBuf],
}

/// The real path of `path` if it may be a project: absolute, without `..`, an existing directory whose real path
/// is one of `allow`, or lies inside one of `allow` or `roots` and is clear of the guarded dirs.
pub fn allowed(rule: Rule<'_>, path: &Path) -> Result<PathBuf, Refusal> {
    if !path.is_absolute() {
        return Err(Refusal::Relative);
    }
    if path.components().any(|c| c == Component::ParentDir) {
        return Err(Refusal::DotDot);
    }
    let real = std::fs::canonicalize(path).map_err(|_| Refusal::Missing)?;
    if !real.is_dir() {
        return Err(Refusal::Missing);
    }
    if permits(rule, &real) {
        Ok(real)
    } else if holds(rule.allow, rule.roots, &real) {
        Err(Refusal::Guarded(real))
    } else {
        Err(Refusal::Outside(real))
    }
}

/// Whether the real path `real` may be a project under `rule` (no file system access): named in `allow`, or
/// inside an allowed project or a root and clear of the guarded dirs.
pub fn permits(rule: Rule<'_>, real: &Path) -> bool {
    rule.allow.iter().any(|a| a == real)
        || (holds(rule.allow, rule.roots, real)
            && !rule
                .guarded
                .iter()
                .any(|g| inside(real, g) || inside(g, real)))
}

/// Whether the real path `real` is an allowed project, lies inside one, or lies inside a root (no file system
/// access). Inside an allowed project counts because the CLI's sessions started in a subdirectory of one are listed
/// and may be adopted there; Claude in `app/web` can reach no more than Claude in `app`. What still tells `allow`
/// from `roots` is the picker: a root is browsed, an allowed project is offered as it is.
pub fn holds(allow: &[PathBuf], roots: &[PathBuf], real: &Path) -> bool {
    allow.iter().chain(roots).any(|p| inside(real, p))
}

/// Whether `path` is `dir` or lies inside it, component by component.
pub fn inside(path: &Path, dir: &Path) -> bool {
    path.starts_with(dir)
}

/// The root that holds the real path `real`, if any.
pub fn root_of<'a>(roots: &'a [PathBuf], real: &Path) -> Option<&'a PathBuf> {
    roots.iter().find(|r| inside(real, r))
}

/// A directory's name as people say it: its last component, else the whole path.
pub fn name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}

/// Whether the directory is a git repository (has a `.git`, a directory or a worktree's file).
pub fn is_git(dir: &Path) -> bool {
    dir.join(".git").symlink_metadata().is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rule_compares_real_paths_by_component() {
        let tmp = tempfile::tempdir().unwrap();
        let base = tmp.path().canonicalize().unwrap();
        let root = base.join("work");
        let other = base.join("work2");
        let single = base.join("single");
        for d in [&root.join("a/b"), &other, &single] {
            std::fs::create_dir_all(d).unwrap();
        }
        std::os::unix::fs::symlink(&other, root.join("out")).unwrap();
        let (allow, roots) = (vec![single.clone()], vec![root.clone()]);
        let rule = Rule {
            allow: &allow,
            roots: &roots,
            guarded: &[],
        };
        let ok = |p: &Path| allowed(rule, p);
        assert_eq!(ok(&root.join("a/b")), Ok(root.join("a/b")));
        assert_eq!(ok(&root), Ok(root.clone()));
        assert_eq!(ok(&single), Ok(single.clone()));
        assert_eq!(ok(&other), Err(Refusal::Outside(other.clone())));
        assert_eq!(ok(&root.join("out")), Err(Refusal::Outside(other.clone())));
        assert_eq!(ok(&root.join("a/../a")), Err(Refusal::DotDot));
        assert_eq!(ok(Path::new("work/a")), Err(Refusal::Relative));
        assert_eq!(ok(&root.join("nope")), Err(Refusal::Missing));
        // Inside an allowed project counts too (a terminal session started in a subdirectory may be adopted).
        std::fs::create_dir(single.join("sub")).unwrap();
        assert_eq!(ok(&single.join("sub")), Ok(single.join("sub")));
    }

    #[test]
    fn a_root_never_reaches_the_guarded_dirs_but_an_allowed_project_may_be_one() {
        let tmp = tempfile::tempdir().unwrap();
        let home = tmp.path().canonicalize().unwrap();
        let config = home.join(".config/remote-agent");
        let claude = home.join(".claude");
        let code = home.join("code/app");
        for d in [&config, &claude, &code] {
            std::fs::create_dir_all(d).unwrap();
        }
        let (roots, guarded) = (vec![home.clone()], vec![config.clone(), claude.clone()]);
        let mut rule = Rule {
            allow: &[],
            roots: &roots,
            guarded: &guarded,
        };
        assert_eq!(allowed(rule, &code), Ok(code.clone()));
        // The root itself holds them; a dir above one; the dir; inside it.
        for p in [&home, &home.join(".config"), &config, &claude] {
            assert_eq!(allowed(rule, p), Err(Refusal::Guarded(p.clone())), "{p:?}");
        }
        std::fs::create_dir(claude.join("projects")).unwrap();
        let inner = claude.join("projects");
        assert_eq!(allowed(rule, &inner), Err(Refusal::Guarded(inner.clone())));
        // A symlink in the root to a guarded dir is judged by its target.
        std::os::unix::fs::symlink(&config, code.join("cfg")).unwrap();
        assert_eq!(
            allowed(rule, &code.join("cfg")),
            Err(Refusal::Guarded(config.clone()))
        );
        // Named in the allow-list, it is the user's choice; what lies inside it is still guarded.
        let allow = vec![home.clone()];
        rule.allow = &allow;
        assert_eq!(allowed(rule, &home), Ok(home.clone()));
        assert_eq!(
            allowed(rule, &claude),
            Err(Refusal::Guarded(claude.clone()))
        );
        assert_eq!(allowed(rule, &code), Ok(code.clone()));
        assert!(
            Refusal::Guarded(home)
                .to_string()
                .contains("[projects] allow")
        );
    }
}
