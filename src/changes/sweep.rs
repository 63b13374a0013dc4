//! Sweeping our object stores: the objects no stored turn's trees reach any more (their conversations were
//! deleted), once they are older than a grace period, so the stores do not grow for ever.
//!
//! Only our own store under the data dir is ever touched, one loose object file at a time; the user's objects
//! are read, never written. The grace period covers a turn whose "before" tree is written but not yet stored
//! (git refreshes an object's time whenever it would write it again, so what a turn uses is young).

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use super::git::{self, Trees};
use crate::store::Store;

/// What a sweep did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Swept {
    /// Stores looked at.
    pub stores: usize,
    /// Objects removed.
    pub removed: usize,
    /// Their bytes.
    pub bytes: u64,
}

/// Removes from each of our object stores the objects that no stored record's trees reach and that are older than
/// `grace`. A store whose repository cannot be read (moved, unmounted, a tree missing) is left as it is.
pub async fn sweep(store: &Store, data_dir: &Path, grace: Duration) -> Swept {
    let rows = match store.change_trees() {
        Ok(rows) => rows,
        Err(e) => {
            tracing::warn!("changes sweep: could not read the records: {e}");
            return Swept::default();
        }
    };
    // Our store's directory → (its repository's git dir, the trees that must stay readable).
    let mut needed: HashMap<PathBuf, (PathBuf, HashSet<String>)> = HashMap::new();
    for (git_dir, tree) in rows {
        let git_dir = PathBuf::from(git_dir);
        needed
            .entry(git::ours(data_dir, &git_dir))
            .or_insert_with(|| (git_dir, HashSet::new()))
            .1
            .insert(tree);
    }
    let Ok(dirs) = std::fs::read_dir(data_dir.join("changes")) else {
        return Swept::default();
    };
    let mut swept = Swept::default();
    for dir in dirs.flatten().map(|d| d.path()).filter(|p| p.is_dir()) {
        let keep = match needed.get(&dir) {
            None => HashSet::new(),
            Some((git_dir, trees)) => {
                if !git_dir.is_dir() {
                    continue;
                }
                let reader = Trees {
                    data_dir,
                    git_dir,
                    prefix: "",
                };
                match reader.reachable(trees).await {
                    Ok(keep) => keep,
                    Err(e) => {
                        tracing::warn!("changes sweep: {} left as it is: {e}", dir.display());
                        continue;
                    }
                }
            }
        };
        // One snapshot or sweep of a store at a time.
        let lock = git::lock_for(&dir);
        let _held = lock.lock().await;
        // Walking the store's files blocks: off the async workers.
        let walked = dir.clone();
        let (removed, bytes) =
            tokio::task::spawn_blocking(move || remove_unreached(&walked, &keep, grace))
                .await
                .unwrap_or_default();
        if removed > 0 {
            // Our index may name what was removed, and git trusts its index for a file it sees unchanged: the
            // next turn starts from a fresh copy of the user's index instead.
            let _ = std::fs::remove_file(dir.join("index"));
        }
        swept.stores += 1;
        swept.removed += removed;
        swept.bytes += bytes;
    }
    swept
}

/// Removes the loose objects under `dir/objects` that `keep` does not name and that were last written before
/// `grace` ago; returns how many and their bytes.
fn remove_unreached(dir: &Path, keep: &HashSet<String>, grace: Duration) -> (usize, u64) {
    let cutoff = SystemTime::now()
        .checked_sub(grace)
        .unwrap_or(SystemTime::UNIX_EPOCH);
    let (mut removed, mut bytes) = (0, 0);
    let Ok(fans) = std::fs::read_dir(dir.join("objects")) else {
        return (0, 0);
    };
    for fan in fans.flatten() {
        let name = fan.file_name().to_string_lossy().into_owned();
        // Loose objects live in two-hex-digit folders; anything else (info, pack) is not ours to judge.
        if name.len() != 2 || !name.bytes().all(|b| b.is_ascii_hexdigit()) {
            continue;
        }
        let Ok(files) = std::fs::read_dir(fan.path()) else {
            continue;
        };
        for file in files.flatten() {
            let id = format!("{name}{}", file.file_name().to_string_lossy());
            let Ok(meta) = file.metadata() else { continue };
            let old = meta.modified().is_ok_and(|m| m < cutoff);
            if meta.is_file()
                && old
                && !keep.contains(&id)
                && std::fs::remove_file(file.path()).is_ok()
            {
                removed += 1;
                bytes += meta.len();
            }
        }
        // Empty now: gone too (it fails harmlessly when not).
        let _ = std::fs::remove_dir(fan.path());
    }
    (removed, bytes)
}
