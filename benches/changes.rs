//! What a turn pays for recording its project's state (issue 16): `changes::begin` and `changes::end` on a git
//! repository of 10,000 committed files (100 folders of 100) when nothing changed, median of 20 turns, after one
//! warm-up turn (the first turn of a repository copies the user's index; the page cache is warm, as it is for a
//! project being worked on). Also the first turn ever (the index copied) and a turn that changed one file.
//!
//! `cargo bench --bench changes`.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use remote_agent::store::Store;

fn git(dir: &Path, args: &[&str]) {
    let ok = Command::new("git")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

fn main() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    for d in 0..100 {
        let dir = repo.join(format!("dir{d:03}"));
        std::fs::create_dir_all(&dir).unwrap();
        for f in 0..100 {
            std::fs::write(
                dir.join(format!("file{f:03}.txt")),
                format!("file {d} {f}\nline two\n"),
            )
            .unwrap();
        }
    }
    git(&repo, &["init", "-q"]);
    git(&repo, &["add", "-A"]);
    git(
        &repo,
        &[
            "-c",
            "user.name=b",
            "-c",
            "user.email=b@x",
            "commit",
            "-qm",
            "files",
        ],
    );
    let data = tmp.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let store = Store::open_in_memory().unwrap();
    store
        .ensure_conversation("c", &repo.display().to_string(), None)
        .unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut n = 0;
    let mut turn = |store: &Store| {
        n += 1;
        let id = format!("t{n}");
        store.insert_turn(&id, "c", "p", None, &[]).unwrap();
        let t0 = Instant::now();
        let begun = rt.block_on(remote_agent::changes::begin(store, &data, &id, &repo));
        let before = t0.elapsed();
        let t1 = Instant::now();
        rt.block_on(remote_agent::changes::end(store, &data, begun));
        (before, t1.elapsed())
    };
    let (first_before, first_after) = turn(&store);
    let (mut befores, mut afters) = (Vec::new(), Vec::new());
    for _ in 0..20 {
        let (b, a) = turn(&store);
        befores.push(b);
        afters.push(a);
    }
    let record = store.turn_changes("t21").unwrap().unwrap();
    assert_eq!(
        record.before, record.after,
        "nothing changed, yet the trees differ"
    );
    assert!(record.error.is_none(), "{:?}", record.error);
    println!(
        "10,000 files, nothing changed (median of 20): before {}, after {}",
        ms(median(befores)),
        ms(median(afters))
    );
    println!(
        "the first turn (the user's index copied): before {}, after {}",
        ms(first_before),
        ms(first_after)
    );
    let mut changed = Vec::new();
    for i in 0..10 {
        std::fs::write(repo.join("dir050/file050.txt"), format!("changed {i}\n")).unwrap();
        let (b, a) = turn(&store);
        changed.push(b + a);
    }
    println!(
        "one file changed before each turn (median of 10, before + after): {}",
        ms(median(changed))
    );

    // The sweep (at start and daily): all 31 records kept, then none (the conversation deleted).
    let t = Instant::now();
    let kept = rt.block_on(remote_agent::changes::sweep(&store, &data, Duration::ZERO));
    let kept_took = t.elapsed();
    assert_eq!(kept.removed, 0, "a sweep removed what stored turns need");
    store.delete_conversation("c").unwrap();
    let t = Instant::now();
    let gone = rt.block_on(remote_agent::changes::sweep(&store, &data, Duration::ZERO));
    println!(
        "sweep, 31 turns' trees kept: {}; after the conversation is deleted: {} ({} objects, {} KB removed)",
        ms(kept_took),
        ms(t.elapsed()),
        gone.removed,
        gone.bytes / 1024
    );
}
