//! Which directories may be a project: the one rule that creating a conversation, every turn, browsing, the CLI's
//! sessions and `.env` all go through (docs/architecture.md, "Projects").
//!
//! A directory may be a project when its real path (symlinks resolved) is one of the allowed projects
//! (`[projects] allow`, `--project`) or lies inside one, or inside one of the roots (`[projects] roots`,
//! `--project-root`). Paths are compared by component, never as strings: `/home/me/work2` is not inside
//! `/home/me/work`. Both lists are canonical already (the settings resolve them at load).

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
        }
    }
}

/// The real path of `path` if it may be a project: absolute, without `..`, an existing directory whose real path
/// is one of `allow` or lies inside one of `roots`.
pub fn allowed(allow: &[PathBuf], roots: &[PathBuf], path: &Path) -> Result<PathBuf, Refusal> {
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
    if holds(allow, roots, &real) {
        Ok(real)
    } else {
        Err(Refusal::Outside(real))
    }
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
        let ok = |p: &Path| allowed(&allow, &roots, p);
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
}
