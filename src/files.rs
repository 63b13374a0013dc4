//! Our own files on disk: private directories (0700) and files (0600), and log rotation (one old file kept).
//!
//! Everything we write may hold a secret or a conversation, so it is created private whatever the umask.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context as _;

/// The size past which a log file is rotated.
pub const LOG_LIMIT: u64 = 4 * 1024 * 1024;

/// Options that create a file readable and writable by us alone (0600); add `append` or `write` and `truncate`.
pub fn private_file() -> std::fs::OpenOptions {
    use std::os::unix::fs::OpenOptionsExt;
    let mut options = std::fs::OpenOptions::new();
    options.create(true).mode(0o600);
    options
}

/// Opens `path` to append to it, creating it private (0600): logs, the lock file, the database before SQLite.
pub fn append_private(path: &Path) -> std::io::Result<std::fs::File> {
    private_file().append(true).open(path)
}

/// Creates `dir` (and its parents) and makes it ours alone (0700), even if it existed with other modes.
pub fn private_dir_io(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    secure_dir(dir)
}

/// [`private_dir_io`], saying which step failed: "creating {what}{dir}" or "securing {what}{dir}" (`what` is
/// empty, or names the directory with a trailing space, e.g. "state dir ").
pub fn private_dir(dir: &Path, what: &str) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {what}{}", dir.display()))?;
    secure_dir(dir).with_context(|| format!("securing {what}{}", dir.display()))
}

/// Makes an existing file ours alone (0600), whatever mode it was created with.
pub fn make_private(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
}

fn secure_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
}

/// A log file that its one writer, this process, moves to `NAME.1` (replacing the one before) once it passes
/// [`LOG_LIMIT`]: `serve`'s own log.
pub struct RotatingFile {
    path: PathBuf,
    file: std::fs::File,
    written: u64,
}

impl RotatingFile {
    /// Opens (or creates, private) the log at `path`, counting what is already in it.
    pub fn open(path: &Path) -> std::io::Result<RotatingFile> {
        // Absolute: `serve` changes its working directory after it opens the log, and rotation reopens it.
        let path = &std::path::absolute(path)?;
        let file = append_private(path)?;
        let written = file.metadata()?.len();
        Ok(RotatingFile {
            path: path.to_path_buf(),
            file,
            written,
        })
    }
}

impl Write for RotatingFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.written > LOG_LIMIT {
            let mut old = self.path.clone().into_os_string();
            old.push(".1");
            std::fs::rename(&self.path, old)?;
            *self = RotatingFile::open(&self.path)?;
        }
        let n = self.file.write(buf)?;
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

/// Keeps one old log: `x.log` becomes `x.log.1` once the file itself is over [`LOG_LIMIT`]. For a log that
/// another process writes too (the supervisor appends `serve`'s stderr to the log `serve` rotates itself), so
/// the size on disk decides, not what one writer counted.
pub fn rotate(path: &Path) {
    if std::fs::metadata(path).is_ok_and(|m| m.len() > LOG_LIMIT) {
        let _ = std::fs::rename(path, path.with_extension("log.1"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_log_file_rotates_past_its_limit_keeping_one_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("serve.log");
        let mut log = RotatingFile::open(&path).unwrap();
        let line = vec![b'x'; 64 * 1024];
        for _ in 0..(LOG_LIMIT / line.len() as u64 + 2) {
            log.write_all(&line).unwrap();
        }
        let old = dir.path().join("serve.log.1");
        assert!(old.exists());
        assert!(std::fs::metadata(&path).unwrap().len() < LOG_LIMIT);
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        // A second rotation replaces the old file: never more than two.
        for _ in 0..(LOG_LIMIT / line.len() as u64 + 2) {
            log.write_all(&line).unwrap();
        }
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
    }

    #[test]
    fn a_private_dir_is_made_ours_alone_even_if_it_existed() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("a/b");
        std::fs::create_dir_all(&sub).unwrap();
        std::fs::set_permissions(&sub, std::fs::Permissions::from_mode(0o755)).unwrap();
        private_dir(&sub, "").unwrap();
        let mode = std::fs::metadata(&sub).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
    }
}
