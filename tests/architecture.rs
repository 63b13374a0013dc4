//! The architecture check: the rules of docs/architecture.md ("The modules of `src/`", "Import directions") kept by
//! a test rather than by memory.
//!
//! It reads every `src/**/*.rs`, builds the graph of which module imports which, and fails
//! 1. on a cycle between top-level modules,
//! 2. on an import against the directions of the `layers` block in docs/architecture.md (a module may import only
//!    modules that come after it in that block, read top to bottom and left to right), or on a module of `src/` that
//!    the block does not place,
//! 3. on a file of `src/` over 600 lines.
//!
//! The code does not keep all of these yet, so [`KNOWN`] lists each violation of today by name. A violation not in
//! the list fails, and so does a listed one that is gone: the list only shrinks, and always says what is true.
//!
//! An import is a path that starts at the crate root or goes up: `use crate::…` (grouped or not), an inline
//! `crate::turns::Stop::Cancel`, `super::…`. Imports in a module's unit tests count like any other; lib.rs, which
//! only declares the modules, is left out.
//!
//! `cargo test --test architecture -- --nocapture the_import_graph` prints the graph.
//!
//! No dependencies: a small tokenizer that skips comments, strings and character literals is enough to find paths.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// The most lines a file of `src/` may have, not counting its unit tests (see [`counted_lines`]).
const MAX_LINES: usize = 600;

/// Every violation the code has today, by name: `cycle: a -> b` (an import between two top-level modules that
/// import each other, directly or around a longer loop), `upward: a -> b` (an import against the layers),
/// `unplaced: m` (a module of `src/` missing from the layers block) and `oversized: src/file.rs`.
///
/// Remove a line when the code no longer has it (the tests fail until you do); never add one for new code.
const KNOWN: &[&str] = &[];

#[test]
fn top_level_modules_import_each_other_in_no_cycle() {
    let graph = Graph::of_crate();
    let found = graph
        .cycle_edges()
        .into_iter()
        .map(|(from, to)| format!("cycle: {from} -> {to}"));
    check_known("cycle", found.collect(), &graph);
}

#[test]
fn imports_follow_the_layers_of_docs_architecture() {
    let graph = Graph::of_crate();
    let layers = layers(&read(&root().join("docs/architecture.md")));
    check_known("upward", graph.upward_edges(&layers), &graph);
    let unplaced = graph
        .top_modules()
        .into_iter()
        .filter(|m| !layers.contains(m));
    check_known(
        "unplaced",
        unplaced.map(|m| format!("unplaced: {m}")).collect(),
        &graph,
    );
}

/// A file's unit tests do not count: a `#[cfg(test)] mod NAME { … }` that ends the file is left out, as tests in
/// `tests/` and the fakes are (they are not in `src/`). Tests elsewhere in a file count, which keeps the rule simple.
#[test]
fn no_source_file_is_over_600_lines() {
    let mut found = BTreeSet::new();
    for file in rust_files(&root().join("src")) {
        let lines = counted_lines(&read(&file));
        if lines > MAX_LINES {
            found.insert(format!("oversized: {}", relative(&file)));
            eprintln!("{}: {lines} lines", relative(&file));
        }
    }
    let graph = Graph::default();
    check_known("oversized", found, &graph);
}

/// Prints the import graph, by top-level module and by file, for the eye (with `-- --nocapture`).
#[test]
fn the_import_graph() {
    println!("{}", Graph::of_crate().render());
}

/// Compares the violations of one kind with [`KNOWN`]: fails on a new one and on a listed one that is gone.
fn check_known(kind: &str, found: BTreeSet<String>, graph: &Graph) {
    let prefix = format!("{kind}: ");
    let known: BTreeSet<String> = KNOWN
        .iter()
        .filter(|k| k.starts_with(&prefix))
        .map(|k| k.to_string())
        .collect();
    let new: Vec<_> = found.difference(&known).collect();
    let gone: Vec<_> = known.difference(&found).collect();
    if new.is_empty() && gone.is_empty() {
        return;
    }
    let mut msg = String::new();
    for v in &new {
        let _ = writeln!(msg, "new violation: {v}{}", graph.where_(v));
    }
    for v in &gone {
        let _ = writeln!(
            msg,
            "fixed, so remove it from KNOWN in tests/architecture.rs: {v}"
        );
    }
    let _ = writeln!(msg, "\nthe {kind} violations today:");
    for v in &found {
        let _ = writeln!(msg, "    \"{v}\",");
    }
    panic!("{msg}");
}

// ---------------------------------------------------------------------------------------------------------------
// The layers block.

/// The modules of the ```` ```layers ```` block of docs/architecture.md, in order: each line is `layer: a, b, c`,
/// top layer first.
fn layers(doc: &str) -> Vec<String> {
    let mut lines = doc.lines().skip_while(|l| l.trim() != "```layers").skip(1);
    let mut order = Vec::new();
    for line in lines.by_ref().take_while(|l| l.trim() != "```") {
        let (_, modules) = line
            .split_once(':')
            .unwrap_or_else(|| panic!("layers: `{line}` is not `layer: modules`"));
        for m in modules.split(',').map(str::trim).filter(|m| !m.is_empty()) {
            assert!(
                !order.iter().any(|o| o == m),
                "layers: `{m}` is listed twice"
            );
            order.push(m.to_string());
        }
    }
    assert!(
        !order.is_empty(),
        "docs/architecture.md has no ```layers block listing the modules"
    );
    order
}

// ---------------------------------------------------------------------------------------------------------------
// The graph.

/// Who imports whom. Modules are named by path (`server::native`); the rules look at top-level modules only
/// (`server`), since a module's own submodules are its own business.
#[derive(Default)]
struct Graph {
    /// Each file's module, and for each module it imports, where it does first (`src/x.rs:12`) and whether only
    /// its unit tests do.
    edges: BTreeMap<String, BTreeMap<String, Use>>,
    /// Every module that has a file.
    modules: BTreeSet<String>,
}

struct Use {
    at: String,
    tests_only: bool,
}

impl Graph {
    fn of_crate() -> Graph {
        let src = root().join("src");
        let files = rust_files(&src);
        let modules = files
            .iter()
            .map(|f| module_of(&src, f).join("::"))
            .collect();
        let mut graph = Graph {
            edges: BTreeMap::new(),
            modules,
        };
        for file in &files {
            let module = module_of(&src, file);
            // lib.rs is the root: it declares the modules, it does not use them.
            if module.is_empty() {
                continue;
            }
            let text = read(file);
            // A literal the tokenizer misread would leave the brackets unbalanced, and `super` resolved wrongly.
            let open: i64 = tokenize(&text)
                .iter()
                .map(|t| match t.tok {
                    Tok::Open(_) => 1,
                    Tok::Close(_) => -1,
                    _ => 0,
                })
                .sum();
            assert_eq!(open, 0, "the tokenizer lost its way in {}", relative(file));
            for path in crate_paths(&text, &module) {
                let Some(to) = graph.resolve(&path.segments) else {
                    continue;
                };
                let from = module.join("::");
                if to == from {
                    continue;
                }
                let at = format!("{}:{}", relative(file), path.line);
                let entry = graph.edges.entry(from).or_default();
                let e = entry.entry(to).or_insert(Use {
                    at,
                    tests_only: true,
                });
                e.tests_only &= path.in_tests;
            }
        }
        graph
    }

    /// The module a path names: its longest prefix that is a module with a file (`server::native::Handler` is
    /// `server::native`). None for a path into the crate root's own items, which lib.rs does not have.
    fn resolve(&self, segments: &[String]) -> Option<String> {
        let first = segments.first()?;
        if !self.modules.contains(first) {
            return None;
        }
        (1..=segments.len())
            .rev()
            .map(|n| segments[..n].join("::"))
            .find(|m| self.modules.contains(m))
    }

    fn top_modules(&self) -> BTreeSet<String> {
        self.modules
            .iter()
            .filter(|m| !m.is_empty())
            .map(|m| top(m).to_string())
            .collect()
    }

    /// Imports between different top-level modules.
    fn top_edges(&self) -> BTreeMap<String, BTreeSet<String>> {
        let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (from, tos) in &self.edges {
            for to in tos.keys() {
                if top(from) != top(to) {
                    out.entry(top(from).to_string())
                        .or_default()
                        .insert(top(to).to_string());
                }
            }
        }
        out
    }

    /// Every import `a -> b` that lies on a cycle: `a` can be reached back from `b`.
    fn cycle_edges(&self) -> BTreeSet<(String, String)> {
        let edges = self.top_edges();
        let mut out = BTreeSet::new();
        for (from, tos) in &edges {
            for to in tos {
                if reaches(&edges, to, from) {
                    out.insert((from.clone(), to.clone()));
                }
            }
        }
        out
    }

    /// Every import of a module that does not come after the importer in `layers`. Modules missing from `layers`
    /// are reported as unplaced instead.
    fn upward_edges(&self, layers: &[String]) -> BTreeSet<String> {
        let place = |m: &str| layers.iter().position(|l| l == m);
        let mut out = BTreeSet::new();
        for (from, tos) in self.top_edges() {
            for to in tos {
                if let (Some(a), Some(b)) = (place(&from), place(&to))
                    && b <= a
                {
                    out.insert(format!("upward: {from} -> {to}"));
                }
            }
        }
        out
    }

    /// Where the imports behind a violation are, for its message.
    fn where_(&self, violation: &str) -> String {
        let Some((_, edge)) = violation.split_once(": ") else {
            return String::new();
        };
        let Some((from, to)) = edge.split_once(" -> ") else {
            return String::new();
        };
        let mut at = Vec::new();
        for (f, tos) in &self.edges {
            for (t, u) in tos {
                if top(f) == from && top(t) == to {
                    at.push(u.at.clone());
                }
            }
        }
        if at.is_empty() {
            String::new()
        } else {
            format!(" (at {})", at.join(", "))
        }
    }

    fn render(&self) -> String {
        let mut out = String::from("import graph, by top-level module:\n");
        let top_edges = self.top_edges();
        for m in self.top_modules() {
            let deps = top_edges
                .get(&m)
                .map(|d| d.iter().cloned().collect::<Vec<_>>().join(", "));
            let _ = writeln!(out, "  {m} -> {}", deps.unwrap_or_default());
        }
        out.push_str("\nby module (* only in its unit tests):\n");
        for m in self.modules.iter().filter(|m| !m.is_empty()) {
            let deps = self.edges.get(m).map(|tos| {
                let names = tos.iter().map(|(t, u)| {
                    if u.tests_only {
                        format!("{t}*")
                    } else {
                        t.clone()
                    }
                });
                names.collect::<Vec<_>>().join(", ")
            });
            let _ = writeln!(out, "  {m} -> {}", deps.unwrap_or_default());
        }
        out
    }
}

fn top(module: &str) -> &str {
    module.split("::").next().unwrap_or(module)
}

fn reaches(edges: &BTreeMap<String, BTreeSet<String>>, from: &str, to: &str) -> bool {
    let mut seen = BTreeSet::new();
    let mut todo = vec![from.to_string()];
    while let Some(m) = todo.pop() {
        if m == to {
            return true;
        }
        if seen.insert(m.clone()) {
            todo.extend(edges.get(&m).into_iter().flatten().cloned());
        }
    }
    false
}

// ---------------------------------------------------------------------------------------------------------------
// Files.

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

fn relative(path: &Path) -> String {
    path.strip_prefix(root())
        .unwrap_or(path)
        .display()
        .to_string()
}

/// Every `.rs` file under `dir`, sorted.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("read {}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("read a directory entry").path();
        if path.is_dir() {
            out.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    out.sort();
    out
}

/// A file's module path: src/server/native.rs is `server::native`, src/turns.rs and src/turns/mod.rs are `turns`,
/// src/main.rs is `main`, src/lib.rs is the root (empty).
fn module_of(src: &Path, file: &Path) -> Vec<String> {
    let rel = file
        .strip_prefix(src)
        .expect("a file under src/")
        .with_extension("");
    let mut parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    if parts == ["lib"] || parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    parts
}

/// A file's lines, without a `#[cfg(test)] mod NAME { … }` block that ends it.
fn counted_lines(src: &str) -> usize {
    let toks = tokenize(src);
    let mut depth = 0i64;
    for (i, t) in toks.iter().enumerate() {
        match t.tok {
            Tok::Open('{') => depth += 1,
            Tok::Close('}') => depth -= 1,
            _ => {}
        }
        if depth == 0 && cfg_test_mod_at(&toks, i) {
            // The module's `{` is at i + 9; the block ends the file if its `}` is the last token.
            if closing(&toks, i + 9) == Some(toks.len() - 1) {
                return t.line - 1;
            }
        }
    }
    src.lines().count()
}

/// Whether `#[cfg(test)] mod NAME {` starts at token `i`.
fn cfg_test_mod_at(toks: &[Token], i: usize) -> bool {
    let want = [
        Tok::Punct('#'),
        Tok::Open('['),
        Tok::Ident("cfg".into()),
        Tok::Open('('),
        Tok::Ident("test".into()),
        Tok::Close(')'),
        Tok::Close(']'),
        Tok::Ident("mod".into()),
    ];
    toks.len() > i + 9
        && toks[i..i + 8].iter().map(|t| &t.tok).eq(want.iter())
        && matches!(toks[i + 8].tok, Tok::Ident(_))
        && toks[i + 9].tok == Tok::Open('{')
}

/// The index of the `}` that closes the `{` at `open`.
fn closing(toks: &[Token], open: usize) -> Option<usize> {
    let mut depth = 0;
    for (i, t) in toks.iter().enumerate().skip(open) {
        match t.tok {
            Tok::Open('{') => depth += 1,
            Tok::Close('}') => {
                depth -= 1;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
    }
    None
}

// ---------------------------------------------------------------------------------------------------------------
// Paths into the crate.

/// A path that starts at the crate root, resolved to segments from the root (`crate::store::Store` is `store,
/// Store`); `line` is where it is written.
#[derive(Debug, PartialEq)]
struct CratePath {
    segments: Vec<String>,
    line: usize,
    in_tests: bool,
}

/// Every path out of `module` in `src`: `crate::…` (and `$crate::…`, and `remote_agent::…` from main.rs) and
/// `super::…`, in `use` statements, grouped (`use crate::{a, b::{c, d}}`) or not, and inline
/// (`crate::supervise::spawn(…)`). `super` is resolved against the module and any inline `mod NAME { … }` the path
/// sits in. `self::…` paths stay in their own module and are left out.
fn crate_paths(src: &str, module: &[String]) -> Vec<CratePath> {
    let toks = tokenize(src);
    let mut out = Vec::new();
    // The inline modules the cursor is in: name, the brace depth of their body, and whether they are #[cfg(test)].
    let mut inline: Vec<(String, usize, bool)> = Vec::new();
    let mut depth = 0;
    let mut i = 0;
    while i < toks.len() {
        match &toks[i].tok {
            Tok::Open('{') => depth += 1,
            Tok::Close('}') => {
                if inline.last().is_some_and(|m| m.1 == depth) {
                    inline.pop();
                }
                depth = depth.saturating_sub(1);
            }
            Tok::Ident(kw) if kw == "mod" => {
                if let (Some(Tok::Ident(name)), Some(Tok::Open('{'))) = (
                    toks.get(i + 1).map(|t| &t.tok),
                    toks.get(i + 2).map(|t| &t.tok),
                ) {
                    let tests = i >= 7 && cfg_test_mod_at(&toks, i - 7)
                        || inline.last().is_some_and(|m| m.2);
                    inline.push((name.clone(), depth + 1, tests));
                }
            }
            Tok::Ident(start)
                if matches!(start.as_str(), "crate" | "super" | "remote_agent")
                    && toks.get(i + 1).is_some_and(|t| t.tok == Tok::PathSep)
                    && !(i > 0 && toks[i - 1].tok == Tok::PathSep) =>
            {
                let line = toks[i].line;
                let in_tests = inline.last().is_some_and(|m| m.2);
                let mut base: Vec<String> = if start == "super" {
                    let mut here: Vec<String> = module.to_vec();
                    here.extend(inline.iter().map(|m| m.0.clone()));
                    here.pop();
                    // super::super::…
                    while toks
                        .get(i + 2)
                        .is_some_and(|t| t.tok == Tok::Ident("super".into()))
                        && toks.get(i + 3).is_some_and(|t| t.tok == Tok::PathSep)
                    {
                        here.pop();
                        i += 2;
                    }
                    here
                } else {
                    Vec::new()
                };
                let mut leaves = Vec::new();
                i = use_tree(&toks, i + 2, &mut base, &mut leaves);
                out.extend(leaves.into_iter().map(|segments| CratePath {
                    segments,
                    line,
                    in_tests,
                }));
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    out
}

/// Reads a path or a use tree from token `i` (just after a `::`), appending each full path it names to `out`;
/// returns the index of the first token after it. `prefix` is the path so far.
fn use_tree(
    toks: &[Token],
    mut i: usize,
    prefix: &mut Vec<String>,
    out: &mut Vec<Vec<String>>,
) -> usize {
    let depth = prefix.len();
    loop {
        match toks.get(i).map(|t| &t.tok) {
            // `{a, b::c, self}`: each item is a tree of its own.
            Some(Tok::Open('{')) => {
                i += 1;
                while let Some(t) = toks.get(i) {
                    match &t.tok {
                        Tok::Close('}') => {
                            i += 1;
                            break;
                        }
                        Tok::Punct(',') => i += 1,
                        _ => {
                            if t.tok == Tok::Ident("self".into()) {
                                out.push(prefix.clone());
                            } else {
                                i = use_tree(toks, i, prefix, out);
                            }
                            // Past `self`, `as name`, or anything not understood, to the next item.
                            while toks.get(i).is_some_and(|t| {
                                !matches!(t.tok, Tok::Punct(',') | Tok::Close('}'))
                            }) {
                                i += 1;
                            }
                        }
                    }
                }
                break;
            }
            Some(Tok::Ident(s)) => {
                prefix.push(s.clone());
                if toks.get(i + 1).is_some_and(|t| t.tok == Tok::PathSep) {
                    i += 2;
                    continue;
                }
                out.push(prefix.clone());
                i += 1;
                break;
            }
            // `*`, a turbofish, or the end: the path so far.
            _ => {
                out.push(prefix.clone());
                break;
            }
        }
    }
    prefix.truncate(depth);
    i
}

// ---------------------------------------------------------------------------------------------------------------
// The tokenizer.

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    /// `::`
    PathSep,
    Open(char),
    Close(char),
    Punct(char),
}

#[derive(Debug)]
struct Token {
    tok: Tok,
    line: usize,
}

/// Rust source to tokens, enough to find paths: identifiers (keywords too), `::`, brackets and single punctuation.
/// Comments, string, byte and raw string literals, character literals and numbers are skipped; lifetimes leave
/// their name as an identifier, which is harmless.
fn tokenize(src: &str) -> Vec<Token> {
    let c: Vec<char> = src.chars().collect();
    let at = |i: usize| c.get(i).copied().unwrap_or('\0');
    let mut toks = Vec::new();
    let mut line = 1;
    let mut i = 0;
    // Skips from `from` to just past `end`, counting lines.
    let skip_until = |i: &mut usize, line: &mut usize, end: &dyn Fn(usize) -> Option<usize>| {
        while *i < c.len() {
            if let Some(len) = end(*i) {
                *i += len;
                return;
            }
            if c[*i] == '\n' {
                *line += 1;
            }
            *i += 1;
        }
    };
    while i < c.len() {
        let ch = c[i];
        let start_line = line;
        if ch == '\n' {
            line += 1;
            i += 1;
        } else if ch.is_whitespace() {
            i += 1;
        } else if ch == '/' && at(i + 1) == '/' {
            skip_until(&mut i, &mut line, &|j| (c[j] == '\n').then_some(0));
        } else if ch == '/' && at(i + 1) == '*' {
            // Block comments nest.
            let mut nest = 0;
            while i < c.len() {
                if c[i] == '/' && at(i + 1) == '*' {
                    nest += 1;
                    i += 2;
                } else if c[i] == '*' && at(i + 1) == '/' {
                    nest -= 1;
                    i += 2;
                    if nest == 0 {
                        break;
                    }
                } else {
                    if c[i] == '\n' {
                        line += 1;
                    }
                    i += 1;
                }
            }
        } else if ch == '"' {
            i += 1;
            skip_string(&c, &mut i, &mut line);
        } else if let Some(hashes) = raw_string_at(&c, i) {
            // r"…", r#"…"#, br"…", cr#"…"#: no escapes; ends at a quote followed by as many hashes.
            i += c[i..].iter().position(|&x| x == '"').unwrap_or(0) + 1;
            let closes = |j: usize| {
                (c[j] == '"' && (1..=hashes).all(|k| at(j + k) == '#')).then_some(hashes + 1)
            };
            skip_until(&mut i, &mut line, &closes);
        } else if (ch == 'b' || ch == 'c') && at(i + 1) == '"' {
            i += 2;
            skip_string(&c, &mut i, &mut line);
        } else if ch == 'b' && at(i + 1) == '\'' {
            i += 1;
            skip_char_or_lifetime(&c, &mut i);
        } else if ch == '\'' {
            skip_char_or_lifetime(&c, &mut i);
        } else if ch == 'r' && at(i + 1) == '#' && is_ident_start(at(i + 2)) {
            // r#ident
            i += 2;
        } else if is_ident_start(ch) {
            let from = i;
            while i < c.len() && (c[i].is_alphanumeric() || c[i] == '_') {
                i += 1;
            }
            toks.push(Token {
                tok: Tok::Ident(c[from..i].iter().collect()),
                line: start_line,
            });
        } else if ch.is_ascii_digit() {
            while i < c.len() && (c[i].is_alphanumeric() || c[i] == '_') {
                i += 1;
            }
        } else {
            let tok = match ch {
                ':' if at(i + 1) == ':' => {
                    i += 1;
                    Tok::PathSep
                }
                '{' | '(' | '[' => Tok::Open(ch),
                '}' | ')' | ']' => Tok::Close(ch),
                _ => Tok::Punct(ch),
            };
            i += 1;
            toks.push(Token {
                tok,
                line: start_line,
            });
        }
    }
    toks
}

fn is_ident_start(ch: char) -> bool {
    ch.is_alphabetic() || ch == '_'
}

/// Whether a raw string starts at `i` (`r"`, `r#"`, `br"`, `cr##"` …), and with how many hashes.
fn raw_string_at(c: &[char], i: usize) -> Option<usize> {
    let mut j = i;
    if matches!(c.get(j), Some('b' | 'c')) {
        j += 1;
    }
    if c.get(j) != Some(&'r') {
        return None;
    }
    // Not the end of a longer identifier such as `for`.
    if i > 0 && (c[i - 1].is_alphanumeric() || c[i - 1] == '_') {
        return None;
    }
    j += 1;
    let hashes = c[j..].iter().take_while(|&&x| x == '#').count();
    (c.get(j + hashes) == Some(&'"')).then_some(hashes)
}

/// Skips the rest of a string literal whose opening quote is before `i`, through its closing quote.
fn skip_string(c: &[char], i: &mut usize, line: &mut usize) {
    while *i < c.len() {
        match c[*i] {
            '\\' => *i += 1,
            '"' => {
                *i += 1;
                return;
            }
            '\n' => *line += 1,
            _ => {}
        }
        *i += 1;
    }
}

/// At a `'`: skips a character literal (`'x'`, `'\n'`, `'\''`, `'\u{1F600}'`) whole, or only the quote of a
/// lifetime or label.
fn skip_char_or_lifetime(c: &[char], i: &mut usize) {
    if c.get(*i + 1) == Some(&'\\') {
        *i += 3;
        while *i < c.len() && c[*i] != '\'' {
            *i += 1;
        }
        *i += 1;
    } else if c.get(*i + 2) == Some(&'\'') {
        *i += 3;
    } else {
        *i += 1;
    }
}

// ---------------------------------------------------------------------------------------------------------------
// The parser, on small samples.

#[cfg(test)]
mod parser {
    use super::*;

    fn paths(src: &str, module: &str) -> Vec<String> {
        let module: Vec<String> = module
            .split("::")
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect();
        crate_paths(src, &module)
            .into_iter()
            .map(|p| p.segments.join("::"))
            .collect()
    }

    #[test]
    fn use_statements_simple_grouped_nested_renamed_and_glob() {
        let src = "use crate::store::Store;\n\
                   use crate::{auth, server::{native::{self, Handler}, full as f}, turns::*};\n\
                   pub(crate) use crate::config::Settings as S;";
        assert_eq!(
            paths(src, "cli"),
            [
                "store::Store",
                "auth",
                "server::native",
                "server::native::Handler",
                "server::full",
                "turns",
                "config::Settings"
            ]
        );
    }

    #[test]
    fn inline_paths_and_turbofish() {
        let src = "fn f() { let x = crate::supervise::spawn(a, b); crate::store::open::<T>(); g($crate::x::y) }";
        assert_eq!(
            paths(src, "up"),
            ["supervise::spawn", "store::open", "x::y"]
        );
    }

    #[test]
    fn super_resolves_against_the_file_and_inline_modules() {
        let src = "use super::{App, full};\nfn f() { super::super::store::open() }\n\
                   #[cfg(test)]\nmod tests {\n    use super::*;\n    use super::super::Ctx;\n}\n\
                   fn g() { super::json() }";
        assert_eq!(
            paths(src, "server::native"),
            [
                "server::App",
                "server::full",
                "store::open",
                "server::native",
                "server::Ctx",
                "server::json"
            ]
        );
        let in_tests: Vec<bool> = crate_paths(src, &["server".into(), "native".into()])
            .iter()
            .map(|p| p.in_tests)
            .collect();
        assert_eq!(in_tests, [false, false, false, true, true, false]);
    }

    #[test]
    fn comments_strings_chars_and_visibility_are_not_paths() {
        let src = r####"
            // use crate::a::B;
            /* crate::b /* nested crate::c */ crate::d */
            /// Calls `crate::e::f`.
            pub(crate) fn f<'a>(x: &'a str) -> char {
                let s = "crate::g \" crate::h";
                let r = r##"crate::i "# crate::j"##;
                let b = b"crate::k";
                let q = '"'; let e = '\''; let l: &'static str = "";
                crate::real::one();
                'x'
            }
            pub(in crate::vis) struct S;
        "####;
        assert_eq!(paths(src, "m"), ["real::one", "vis"]);
    }

    #[test]
    fn paths_carry_their_line_and_self_paths_are_left_out() {
        let src = "use self::inner::X;\n\nuse crate::a::B;\nfn f() { crate::c::d() }";
        let found = crate_paths(src, &["m".into()]);
        let lines: Vec<usize> = found.iter().map(|p| p.line).collect();
        assert_eq!(lines, [3, 4]);
    }

    #[test]
    fn a_trailing_test_module_is_not_counted() {
        let src = "fn a() {}\n\n#[cfg(test)]\nmod tests {\n    #[test]\n    fn t() { let s = \"}\"; }\n}\n";
        assert_eq!(counted_lines(src), 2);
        let middle = "#[cfg(test)]\nmod tests {\n}\nfn a() {}\n";
        assert_eq!(counted_lines(middle), 4);
    }

    #[test]
    fn layers_are_read_in_order_from_the_block() {
        let doc = "text\n```\nnot: this\n```\n\n```layers\nentry: main, cli\nleaves: store,config\n```\nafter: x\n";
        assert_eq!(layers(doc), ["main", "cli", "store", "config"]);
    }

    #[test]
    fn a_cycle_and_an_upward_import_are_found() {
        let mut graph = Graph::default();
        for (from, to) in [
            ("a", "b::x"),
            ("b::x", "c"),
            ("c", "a"),
            ("a", "c"),
            ("d", "a"),
        ] {
            let use_ = Use {
                at: String::new(),
                tests_only: false,
            };
            graph
                .edges
                .entry(from.into())
                .or_default()
                .insert(to.into(), use_);
            graph.modules.extend([from.to_string(), to.to_string()]);
        }
        let cycles: Vec<String> = graph
            .cycle_edges()
            .into_iter()
            .map(|(a, b)| format!("{a} -> {b}"))
            .collect();
        assert_eq!(cycles, ["a -> b", "a -> c", "b -> c", "c -> a"]);
        let order = ["d", "a", "b", "c"].map(String::from);
        assert_eq!(
            graph.upward_edges(&order).into_iter().collect::<Vec<_>>(),
            ["upward: c -> a"]
        );
    }

    #[test]
    fn paths_resolve_to_the_longest_module_with_a_file() {
        let graph = Graph {
            edges: BTreeMap::new(),
            modules: ["server", "server::native", "store"]
                .map(String::from)
                .into(),
        };
        let seg = |s: &str| s.split("::").map(String::from).collect::<Vec<_>>();
        assert_eq!(
            graph.resolve(&seg("server::native::Handler")).as_deref(),
            Some("server::native")
        );
        assert_eq!(
            graph.resolve(&seg("server::full")).as_deref(),
            Some("server")
        );
        assert_eq!(graph.resolve(&seg("Settings")), None);
    }
}
