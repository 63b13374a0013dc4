//! The database file in its data dir: created private before SQLite touches it, and refused with a way out when it
//! has been emptied or damaged (never silently replaced by a new, empty one).

use std::path::{Path, PathBuf};

use anyhow::Context;

use super::{Fault, Store};

/// The database's file name in the data dir.
pub const FILE_NAME: &str = "remote-agent.db";

/// The database's path in `data_dir`.
fn path_in(data_dir: &Path) -> PathBuf {
    data_dir.join(FILE_NAME)
}

/// Opens the database in `data_dir` for a server or an import, creating the dir (0700) and the file (0600) before
/// SQLite touches them.
pub fn open_private(data_dir: &Path) -> anyhow::Result<Store> {
    let dir = data_dir;
    crate::files::private_dir(dir, "data dir ")?;
    let path = path_in(dir);
    let existed = path.exists();
    let file = crate::files::append_private(&path)
        .with_context(|| format!("creating {}", path.display()))?;
    // SQLite would silently make a new, empty database of a file that was emptied (truncated by a full disk or a
    // bad copy): a database that existed must have its header, or its WAL.
    if existed && file.metadata()?.len() == 0 && !super::wal_has_data(&path) {
        anyhow::bail!(
            "the database {} is empty: it existed but has lost its contents. Run `remote-agent doctor`; restore \
             the file from your own backup, or move it aside (mv {0} {0}.empty) to start with a new, empty one",
            path.display()
        );
    }
    Store::open(&path).map_err(|e| match Fault::of(&e) {
        Some(Fault::Damaged) => anyhow::anyhow!(
            "the database {} is damaged ({e}). Run `remote-agent doctor`; restore the file from your own backup, \
             or move it aside with its -wal and -shm files (mv {0} {0}.damaged) to start with a new, empty one",
            path.display()
        ),
        _ => anyhow::Error::new(e).context(format!("opening the database {}", path.display())),
    })
}

/// Opens the database a server has made in `data_dir`, for the commands that only change what is in it (`pair`,
/// `logout`, `passwd`); without one there is nothing to change.
pub fn open_existing(data_dir: &Path) -> anyhow::Result<Store> {
    let path = path_in(data_dir);
    anyhow::ensure!(
        path.exists(),
        "no database at {} (has the server run with this data dir?)",
        path.display()
    );
    Store::open(&path).with_context(|| format!("opening {}", path.display()))
}
