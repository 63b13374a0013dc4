//! Line-based unified diffs of two texts, as `diff -u` and `git diff` print them: 3 lines of context, `@@ -a,b +c,d @@`
//! hunk headers, `\ No newline at end of file`. Myers' algorithm on the lines left once the common start and end are
//! set aside, with its work bounded: past [`MAX_EDITS`] changed lines or [`MAX_OUTPUT`] bytes of diff, the answer is
//! [`TooLarge`] rather than seconds of CPU.

use std::collections::HashMap;

/// Lines of context around each change.
pub const CONTEXT: usize = 3;
/// The most lines removed plus added that are looked for (Myers' D); its memory grows as the square of this.
pub const MAX_EDITS: usize = 1000;
/// The longest diff given, in bytes.
pub const MAX_OUTPUT: usize = 256 * 1024;
/// The most steps Myers' loop may take (each a line compared), whatever the edit distance.
const MAX_WORK: usize = 20_000_000;

/// A diff that would take too much work, or be too long, to show.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("too large to show")]
pub struct TooLarge;

/// The unified diff of `old` and `new` under the headers `--- OLD_NAME` and `+++ NEW_NAME` (`a/path`, `b/path`,
/// `/dev/null`), or `None` when they are the same.
pub fn unified(
    old: &str,
    new: &str,
    old_name: &str,
    new_name: &str,
) -> Result<Option<String>, TooLarge> {
    let (a, b) = (lines(old), lines(new));
    let blocks = changes(&a, &b)?;
    if blocks.is_empty() {
        return Ok(None);
    }
    let mut out = format!("--- {old_name}\n+++ {new_name}\n");
    for hunk in hunks(&blocks, a.len()) {
        write_hunk(&mut out, hunk, &a, &b);
        if out.len() > MAX_OUTPUT {
            return Err(TooLarge);
        }
    }
    Ok(Some(out))
}

/// The lines of a text, each with its `\n` (the last one may have none).
fn lines(text: &str) -> Vec<&str> {
    text.split_inclusive('\n').collect()
}

/// A run of changed lines: `old_len` lines of the old text from `old` replaced by `new_len` of the new from `new`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Block {
    old: usize,
    old_len: usize,
    new: usize,
    new_len: usize,
}

/// The changed runs, in order, found by Myers' algorithm between the common start and end.
fn changes<'t>(a: &[&'t str], b: &[&'t str]) -> Result<Vec<Block>, TooLarge> {
    let head = a.iter().zip(b).take_while(|(x, y)| x == y).count();
    let tail = a[head..]
        .iter()
        .rev()
        .zip(b[head..].iter().rev())
        .take_while(|(x, y)| x == y)
        .count();
    let (a_mid, b_mid) = (&a[head..a.len() - tail], &b[head..b.len() - tail]);
    if a_mid.is_empty() && b_mid.is_empty() {
        return Ok(Vec::new());
    }
    if a_mid.is_empty() || b_mid.is_empty() {
        return Ok(vec![Block {
            old: head,
            old_len: a_mid.len(),
            new: head,
            new_len: b_mid.len(),
        }]);
    }
    // Lines as numbers, so that comparing two is one step.
    let mut ids: HashMap<&'t str, u32> = HashMap::new();
    let mut id = |l: &'t str| {
        let next = ids.len() as u32;
        *ids.entry(l).or_insert(next)
    };
    let x: Vec<u32> = a_mid.iter().map(|l| id(l)).collect();
    let y: Vec<u32> = b_mid.iter().map(|l| id(l)).collect();
    let ops = myers(&x, &y)?;
    // Consecutive removals and additions make one block.
    let mut blocks: Vec<Block> = Vec::new();
    let (mut i, mut j) = (0, 0);
    for op in ops {
        let (di, dj) = match op {
            Op::Same => {
                i += 1;
                j += 1;
                continue;
            }
            Op::Remove => (1, 0),
            Op::Add => (0, 1),
        };
        match blocks.last_mut() {
            Some(last)
                if last.old + last.old_len == head + i && last.new + last.new_len == head + j =>
            {
                last.old_len += di;
                last.new_len += dj;
            }
            _ => blocks.push(Block {
                old: head + i,
                old_len: di,
                new: head + j,
                new_len: dj,
            }),
        }
        i += di;
        j += dj;
    }
    Ok(blocks)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Same,
    Remove,
    Add,
}

/// The shortest edit script from `a` to `b` (Myers 1986, "An O(ND) difference algorithm"), keeping each round's
/// furthest reaching paths to walk back; refused past [`MAX_EDITS`] or [`MAX_WORK`].
fn myers(a: &[u32], b: &[u32]) -> Result<Vec<Op>, TooLarge> {
    let (n, m) = (a.len() as isize, b.len() as isize);
    let max_d = ((n + m) as usize).min(MAX_EDITS) as isize;
    // v[k + off]: the furthest x on diagonal k (x - y = k).
    let off = max_d + 1;
    let mut v = vec![0isize; 2 * off as usize + 1];
    // trace[d]: v for k in -d..=d after round d.
    let mut trace: Vec<Vec<isize>> = Vec::new();
    let mut work = 0usize;
    for d in 0..=max_d {
        for k in (-d..=d).step_by(2) {
            let mut x =
                if k == -d || (k != d && v[(k - 1 + off) as usize] < v[(k + 1 + off) as usize]) {
                    v[(k + 1 + off) as usize]
                } else {
                    v[(k - 1 + off) as usize] + 1
                };
            let mut y = x - k;
            while x < n && y < m && a[x as usize] == b[y as usize] {
                x += 1;
                y += 1;
                work += 1;
            }
            work += 1;
            v[(k + off) as usize] = x;
            if x >= n && y >= m {
                trace.push(v[(off - d) as usize..=(off + d) as usize].to_vec());
                return Ok(walk_back(&trace, n, m));
            }
        }
        if work > MAX_WORK {
            return Err(TooLarge);
        }
        trace.push(v[(off - d) as usize..=(off + d) as usize].to_vec());
    }
    Err(TooLarge)
}

/// The edit script, from the end of both texts back to their start through the rounds' paths.
fn walk_back(trace: &[Vec<isize>], n: isize, m: isize) -> Vec<Op> {
    let mut ops = Vec::new();
    let (mut x, mut y) = (n, m);
    for d in (1..trace.len() as isize).rev() {
        let prev = &trace[d as usize - 1];
        let at = |k: isize| prev[(k + d - 1) as usize];
        let k = x - y;
        let prev_k = if k == -d || (k != d && at(k - 1) < at(k + 1)) {
            k + 1
        } else {
            k - 1
        };
        let prev_x = at(prev_k);
        let prev_y = prev_x - prev_k;
        while x > prev_x && y > prev_y {
            ops.push(Op::Same);
            x -= 1;
            y -= 1;
        }
        ops.push(if x == prev_x { Op::Add } else { Op::Remove });
        (x, y) = (prev_x, prev_y);
    }
    ops.extend((0..x).map(|_| Op::Same));
    ops.reverse();
    ops
}

/// A hunk: the blocks it shows and the lines it covers, old `[from, to)` and new from `new_from`.
struct Hunk<'b> {
    blocks: &'b [Block],
    old_from: usize,
    old_to: usize,
    new_from: usize,
    new_to: usize,
}

/// The blocks grouped into hunks: two blocks share one when at most twice the context lies between them.
fn hunks(blocks: &[Block], old_lines: usize) -> Vec<Hunk<'_>> {
    let mut out = Vec::new();
    let mut start = 0;
    for i in 1..=blocks.len() {
        let apart = blocks.get(i).is_none_or(|next| {
            let prev = &blocks[i - 1];
            next.old - (prev.old + prev.old_len) > 2 * CONTEXT
        });
        if !apart {
            continue;
        }
        let (first, last) = (&blocks[start], &blocks[i - 1]);
        let before = first.old.min(CONTEXT);
        let after = (old_lines - (last.old + last.old_len)).min(CONTEXT);
        out.push(Hunk {
            blocks: &blocks[start..i],
            old_from: first.old - before,
            old_to: last.old + last.old_len + after,
            new_from: first.new - before,
            new_to: last.new + last.new_len + after,
        });
        start = i;
    }
    out
}

/// `-a,b` / `+c,d` as diff writes them: `,1` left out, and an empty range numbered by the line before it.
fn range(from: usize, to: usize) -> String {
    match to - from {
        0 => format!("{from},0"),
        1 => format!("{}", from + 1),
        len => format!("{},{len}", from + 1),
    }
}

fn write_hunk(out: &mut String, h: Hunk, a: &[&str], b: &[&str]) {
    out.push_str(&format!(
        "@@ -{} +{} @@\n",
        range(h.old_from, h.old_to),
        range(h.new_from, h.new_to)
    ));
    let line = |out: &mut String, sign: char, text: &str| {
        out.push(sign);
        out.push_str(text);
        if !text.ends_with('\n') {
            out.push_str("\n\\ No newline at end of file\n");
        }
    };
    let mut i = h.old_from;
    for block in h.blocks {
        for text in &a[i..block.old] {
            line(out, ' ', text);
        }
        for text in &a[block.old..block.old + block.old_len] {
            line(out, '-', text);
        }
        for text in &b[block.new..block.new + block.new_len] {
            line(out, '+', text);
        }
        i = block.old + block.old_len;
    }
    for text in &a[i..h.old_to] {
        line(out, ' ', text);
    }
    debug_assert_eq!(
        h.new_to - h.new_from,
        h.blocks.iter().map(|b| b.new_len).sum::<usize>() + (h.old_to - h.old_from)
            - h.blocks.iter().map(|b| b.old_len).sum::<usize>()
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn diff(old: &str, new: &str) -> String {
        unified(old, new, "a/f", "b/f").unwrap().unwrap_or_default()
    }

    /// The text of lines `from..=to`, one number each: "1\n2\n…".
    fn numbered(from: usize, to: usize) -> String {
        (from..=to).map(|i| format!("{i}\n")).collect()
    }

    #[test]
    fn the_same_text_has_no_diff() {
        assert_eq!(unified("a\nb\n", "a\nb\n", "a/f", "b/f"), Ok(None));
        assert_eq!(unified("", "", "a/f", "b/f"), Ok(None));
    }

    #[test]
    fn a_changed_line_in_the_middle_has_three_lines_of_context() {
        let old = numbered(1, 10);
        let new = old.replace("5\n", "five\n");
        assert_eq!(
            diff(&old, &new),
            "--- a/f\n+++ b/f\n@@ -2,7 +2,7 @@\n 2\n 3\n 4\n-5\n+five\n 6\n 7\n 8\n"
        );
    }

    #[test]
    fn added_and_deleted_lines() {
        let old = numbered(1, 10);
        let added = old.replace("5\n", "5\nnew\n");
        assert_eq!(
            diff(&old, &added),
            "--- a/f\n+++ b/f\n@@ -3,6 +3,7 @@\n 3\n 4\n 5\n+new\n 6\n 7\n 8\n"
        );
        let deleted = old.replace("5\n", "");
        assert_eq!(
            diff(&old, &deleted),
            "--- a/f\n+++ b/f\n@@ -2,7 +2,6 @@\n 2\n 3\n 4\n-5\n 6\n 7\n 8\n"
        );
    }

    #[test]
    fn changes_at_the_start_and_the_end() {
        let old = numbered(1, 10);
        let new = format!("0\n{}", old.replace("10\n", "ten\n"));
        assert_eq!(
            diff(&old, &new),
            "--- a/f\n+++ b/f\n@@ -1,3 +1,4 @@\n+0\n 1\n 2\n 3\n@@ -7,4 +8,4 @@\n 7\n 8\n 9\n-10\n+ten\n"
        );
    }

    #[test]
    fn near_changes_share_a_hunk_far_ones_do_not() {
        let old = numbered(1, 20);
        // 6 lines apart: one hunk. 7: two.
        let near = old.replace("3\n", "x\n").replace("10\n", "y\n");
        assert_eq!(diff(&old, &near).matches("@@ -").count(), 1);
        let far = old.replace("3\n", "x\n").replace("11\n", "y\n");
        assert_eq!(diff(&old, &far).matches("@@ -").count(), 2);
    }

    #[test]
    fn a_new_file_and_an_emptied_one() {
        assert_eq!(
            unified("", "a\nb\n", "/dev/null", "b/f").unwrap().unwrap(),
            "--- /dev/null\n+++ b/f\n@@ -0,0 +1,2 @@\n+a\n+b\n"
        );
        assert_eq!(diff("a\n", ""), "--- a/f\n+++ b/f\n@@ -1 +0,0 @@\n-a\n");
    }

    #[test]
    fn no_newline_at_the_end_is_said() {
        assert_eq!(
            diff("a\nb", "a\nb\n"),
            "--- a/f\n+++ b/f\n@@ -1,2 +1,2 @@\n a\n-b\n\\ No newline at end of file\n+b\n"
        );
        assert_eq!(
            diff("a\nb\n", "a\nc"),
            "--- a/f\n+++ b/f\n@@ -1,2 +1,2 @@\n a\n-b\n+c\n\\ No newline at end of file\n"
        );
        // Unchanged, as context.
        assert_eq!(
            diff("x\na\nb", "y\na\nb"),
            "--- a/f\n+++ b/f\n@@ -1,3 +1,3 @@\n-x\n+y\n a\n b\n\\ No newline at end of file\n"
        );
    }

    #[test]
    fn the_script_is_shortest() {
        // A change between repeated lines: still one line out and one in.
        let old = "a\nb\na\nb\na\n";
        let new = "a\nb\nc\nb\na\n";
        let d = diff(old, new);
        assert_eq!(d.lines().filter(|l| l.starts_with('-')).count(), 2, "{d}");
        assert_eq!(d.lines().filter(|l| l.starts_with('+')).count(), 2, "{d}");
        // Interleaved changes.
        let old = numbered(1, 30);
        let new: String = (1..=30)
            .map(|i| {
                if i % 4 == 0 {
                    format!("x{i}\n")
                } else {
                    format!("{i}\n")
                }
            })
            .collect();
        let d = diff(&old, &new);
        assert_eq!(
            d.lines().filter(|l| l.starts_with("-")).count(),
            1 + 7,
            "{d}"
        );
    }

    #[test]
    fn random_texts_get_a_shortest_script_that_rebuilds_the_new_one() {
        let mut seed = 7u64;
        let mut next = |n: u64| {
            seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            (seed >> 33) % n
        };
        for _ in 0..300 {
            let mut text = || -> Vec<u32> { (0..next(12)).map(|_| next(4) as u32).collect() };
            let (a, b) = (text(), text());
            // The longest common subsequence, by the table.
            let mut t = vec![vec![0usize; b.len() + 1]; a.len() + 1];
            for i in (0..a.len()).rev() {
                for j in (0..b.len()).rev() {
                    t[i][j] = if a[i] == b[j] {
                        t[i + 1][j + 1] + 1
                    } else {
                        t[i + 1][j].max(t[i][j + 1])
                    };
                }
            }
            let ops = if a.is_empty() || b.is_empty() {
                continue;
            } else {
                myers(&a, &b).unwrap()
            };
            let (mut i, mut rebuilt) = (0, Vec::new());
            let mut j = 0;
            for op in &ops {
                match op {
                    Op::Same => {
                        assert_eq!(a[i], b[j]);
                        rebuilt.push(a[i]);
                        i += 1;
                        j += 1;
                    }
                    Op::Remove => i += 1,
                    Op::Add => {
                        rebuilt.push(b[j]);
                        j += 1;
                    }
                }
            }
            assert_eq!((i, &rebuilt), (a.len(), &b), "{a:?} -> {b:?}");
            let same = ops.iter().filter(|o| **o == Op::Same).count();
            assert_eq!(same, t[0][0], "{a:?} -> {b:?}");
        }
    }

    #[test]
    fn a_large_input_is_too_large_to_show_and_quickly() {
        let old: String = (0..50_000).map(|i| format!("old {i}\n")).collect();
        let new: String = (0..50_000).map(|i| format!("new {i}\n")).collect();
        let started = std::time::Instant::now();
        assert_eq!(unified(&old, &new, "a/f", "b/f"), Err(TooLarge));
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
        // A small change in a large file is found (the common start and end are set aside).
        let one = old.replace("old 25000\n", "changed\n");
        let d = diff(&old, &one);
        assert!(d.contains("@@ -24998,7 +24998,7 @@\n"), "{d}");
        // A long diff is refused too.
        let all_new: String = (0..20_000).map(|i| format!("line {i} of many\n")).collect();
        assert_eq!(unified("", &all_new, "/dev/null", "b/f"), Err(TooLarge));
    }

    /// Our diffs against git's, hunk for hunk, on inputs with one shortest diff (git's own heuristics may pick
    /// another of several).
    #[test]
    fn the_same_hunks_as_git_diff() {
        let git = std::process::Command::new("git").arg("--version").output();
        if !git.is_ok_and(|o| o.status.success()) {
            eprintln!("skipped: no git on this machine");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let cases: Vec<(String, String)> = vec![
            (numbered(1, 10), numbered(1, 10).replace("5\n", "five\n")),
            (numbered(1, 40), {
                let t = numbered(1, 40)
                    .replace("2\n", "")
                    .replace("20\n", "20\n20b\n");
                t.replace("39\n", "thirty-nine\n")
            }),
            ("a\nb".into(), "a\nb\nc".into()),
            ("one\ntwo\nthree\n".into(), "zero\none\nthree\nfour".into()),
            (String::new(), "x\ny\n".into()),
        ];
        for (k, (old, new)) in cases.iter().enumerate() {
            let (o, n) = (
                dir.path().join(format!("o{k}")),
                dir.path().join(format!("n{k}")),
            );
            std::fs::write(&o, old).unwrap();
            std::fs::write(&n, new).unwrap();
            let out = std::process::Command::new("git")
                .args(["diff", "--no-index", "--no-color", "--no-ext-diff", "-U3"])
                .arg(&o)
                .arg(&n)
                .output()
                .unwrap();
            let theirs = String::from_utf8(out.stdout).unwrap();
            // From the first hunk on, without git's function names after the second `@@`.
            let theirs: String = theirs[theirs.find("\n@@ ").unwrap() + 1..]
                .lines()
                .map(
                    |l| match l.strip_prefix("@@ ").and_then(|r| r.find(" @@")) {
                        Some(end) => format!("{}\n", &l[..end + 6]),
                        None => format!("{l}\n"),
                    },
                )
                .collect();
            let ours = diff(old, new);
            let ours = &ours[ours.find("@@ ").unwrap()..];
            assert_eq!(ours, theirs, "case {k}");
        }
    }
}
