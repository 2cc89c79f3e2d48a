//! The pipeline reads one way: `http` → `transport` → `session` → `upstream`,
//! with `metrics`, `supervisor`, `mcp` and `jsonrpc` as leaves. This test
//! reads every source file's paths into the crate (`crate::…`, `super::…`,
//! `self::…` and a module's own children), resolves each to the file that
//! defines it, and fails on any cycle between files, naming the files and the
//! names that tie them. Test code (`tests.rs`, `#[cfg(test)]` blocks) is
//! left out: a test may reach anywhere. So is a submodule's use of its own
//! ancestors (`super::Thing` from a `mod.rs`): a module's face declaring what
//! its parts share is Rust's structure, not a loop between parts.
//!
//! Below that, the rest of the pipeline's shape, read from the source the
//! same way: no transport names the hub object, the hub's own requests all go
//! through `session::ask` with its one rule for server requests, held calls
//! live in one table, and every era branch outside the codecs says why.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

/// Module path (`["session", "router"]`) → its file.
type Modules = BTreeMap<Vec<String>, PathBuf>;
/// File → the files it imports → the paths that tie them.
type Edges = BTreeMap<PathBuf, BTreeMap<PathBuf, BTreeSet<String>>>;

fn modules(src: &Path) -> Modules {
    let mut out = Modules::new();
    let mut stack = vec![src.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
                continue;
            }
            if p.extension().and_then(|x| x.to_str()) != Some("rs") {
                continue;
            }
            let rel: Vec<String> = p
                .strip_prefix(src)
                .unwrap()
                .with_extension("")
                .iter()
                .map(|c| c.to_string_lossy().into_owned())
                .collect();
            let mut m = rel.clone();
            match m.last().map(String::as_str) {
                Some("lib") if m.len() == 1 => m.clear(),
                Some("main") if m.len() == 1 => continue,
                Some("mod") => {
                    m.pop();
                }
                _ => {}
            }
            if m.iter().any(|s| s == "tests") {
                continue;
            }
            out.insert(m, p);
        }
    }
    out
}

/// The source without comments, string and char literals, and
/// `#[cfg(test)]` items.
fn code(text: &str) -> String {
    let b = text.as_bytes();
    let at = |i: usize, s: &[u8]| b[i..].starts_with(s);
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if at(i, b"//") {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if at(i, b"/*") {
            i += text[i..].find("*/").map_or(b.len() - i, |n| n + 2);
        } else if at(i, b"r#\"") || at(i, b"r\"") {
            let hashes = b[i + 1..].iter().take_while(|&&c| c == b'#').count();
            let close = format!("\"{}", "#".repeat(hashes));
            let from = i + 2 + hashes;
            i = from
                + text[from..]
                    .find(&close)
                    .map_or(b.len() - from, |n| n + close.len());
            out.extend_from_slice(b"\"\"");
        } else if b[i] == b'"' {
            i += 1;
            while i < b.len() && b[i] != b'"' {
                i += if b[i] == b'\\' { 2 } else { 1 };
            }
            i += 1;
            out.extend_from_slice(b"\"\"");
        } else if b[i] == b'\'' && i + 2 < b.len() && (b[i + 2] == b'\'' || b[i + 1] == b'\\') {
            // A char literal ('x', '\n', '\u{..}'), not a lifetime.
            i += 2;
            while i < b.len() && b[i] != b'\'' {
                i += 1;
            }
            i += 1;
        } else if at(i, b"#[cfg(test)]") {
            // Skip the item: up to its `;` or its matching `}`.
            let mut depth = 0;
            while i < b.len() {
                match b[i] {
                    b'{' => depth += 1,
                    b'}' => {
                        depth -= 1;
                        if depth == 0 {
                            i += 1;
                            break;
                        }
                    }
                    b';' if depth == 0 => {
                        i += 1;
                        break;
                    }
                    _ => {}
                }
                i += 1;
            }
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Every path the code names, as segment lists, with use-trees expanded
/// (`a::{b, c::d}` gives `a::b` and `a::c::d`).
fn paths(code: &str) -> Vec<Vec<String>> {
    let toks = tokens(code);
    let mut out = Vec::new();
    let mut i = 0;
    while i < toks.len() {
        if is_ident(&toks[i]) && (i == 0 || toks[i - 1] != "::") {
            let (mut found, next) = tree(&toks, i);
            out.append(&mut found);
            i = next.max(i + 1);
        } else {
            i += 1;
        }
    }
    out
}

fn is_ident(t: &str) -> bool {
    t.chars()
        .next()
        .is_some_and(|c| c.is_alphabetic() || c == '_')
}

fn tokens(code: &str) -> Vec<String> {
    let mut toks = Vec::new();
    let mut cur = String::new();
    let mut chars = code.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_alphanumeric() || c == '_' {
            cur.push(c);
            continue;
        }
        if !cur.is_empty() {
            toks.push(std::mem::take(&mut cur));
        }
        if c == ':' && chars.peek() == Some(&':') {
            chars.next();
            toks.push("::".into());
        } else if !c.is_whitespace() {
            toks.push(c.to_string());
        }
    }
    if !cur.is_empty() {
        toks.push(cur);
    }
    toks
}

/// Reads `a::b::{…}` from `i`; returns the paths and the index after it.
fn tree(toks: &[String], mut i: usize) -> (Vec<Vec<String>>, usize) {
    let mut prefix = vec![toks[i].clone()];
    i += 1;
    while i + 1 < toks.len() && toks[i] == "::" {
        if toks[i + 1] == "{" {
            let mut out = Vec::new();
            i += 2;
            while i < toks.len() && toks[i] != "}" {
                if is_ident(&toks[i]) {
                    let (inner, next) = tree(toks, i);
                    for p in inner {
                        let mut full = prefix.clone();
                        full.extend(p);
                        out.push(full);
                    }
                    i = next;
                } else {
                    i += 1;
                }
            }
            return (out, i + 1);
        }
        if !is_ident(&toks[i + 1]) {
            break;
        }
        prefix.push(toks[i + 1].clone());
        i += 2;
    }
    (vec![prefix], i)
}

/// The file a path names, from module `here`; `None` outside the crate's modules.
fn resolve(mods: &Modules, here: &[String], path: &[String]) -> Option<PathBuf> {
    let mut abs: Vec<String> = match path[0].as_str() {
        "crate" => path[1..].to_vec(),
        "super" | "self" => {
            let mut base = here.to_vec();
            let mut rest = path;
            while let Some(first) = rest.first() {
                match first.as_str() {
                    "super" => {
                        base.pop();
                    }
                    "self" => {}
                    _ => break,
                }
                rest = &rest[1..];
            }
            base.extend(rest.iter().cloned());
            base
        }
        _ => {
            // A child module named without a prefix.
            let mut child = here.to_vec();
            child.push(path[0].clone());
            if path.len() < 2 || !mods.contains_key(&child) {
                return None;
            }
            let mut base = here.to_vec();
            base.extend(path.iter().cloned());
            base
        }
    };
    while !abs.is_empty() {
        if let Some(f) = mods.get(&abs) {
            return Some(f.clone());
        }
        abs.pop();
    }
    None
}

/// Whether `a` is the file of a module that contains `b`'s (`x/mod.rs`,
/// `x.rs` or `lib.rs` for `x/y.rs`).
fn is_ancestor(a: &Path, b: &Path) -> bool {
    let dir = match a.file_name().and_then(|n| n.to_str()) {
        Some("mod.rs" | "lib.rs") => a.parent().map(Path::to_path_buf),
        // A module's file beside its directory (`x.rs` and `x/`).
        Some(_) => Some(a.with_extension("")),
        None => None,
    };
    dir.is_some_and(|d| b.starts_with(&d) && b != a)
}

/// Strongly connected components with more than one file (Tarjan).
fn cycles(edges: &Edges) -> Vec<Vec<PathBuf>> {
    struct T<'a> {
        edges: &'a Edges,
        index: HashMap<&'a PathBuf, usize>,
        low: HashMap<&'a PathBuf, usize>,
        stack: Vec<&'a PathBuf>,
        on: BTreeSet<&'a PathBuf>,
        out: Vec<Vec<PathBuf>>,
    }
    fn visit<'a>(t: &mut T<'a>, v: &'a PathBuf) {
        let n = t.index.len();
        t.index.insert(v, n);
        t.low.insert(v, n);
        t.stack.push(v);
        t.on.insert(v);
        if let Some(ws) = t.edges.get(v) {
            for w in ws.keys() {
                if !t.index.contains_key(w) {
                    visit(t, w);
                    let lw = t.low[w];
                    let lv = t.low.get_mut(v).unwrap();
                    *lv = (*lv).min(lw);
                } else if t.on.contains(w) {
                    let iw = t.index[w];
                    let lv = t.low.get_mut(v).unwrap();
                    *lv = (*lv).min(iw);
                }
            }
        }
        if t.low[v] == t.index[v] {
            let mut scc = Vec::new();
            while let Some(w) = t.stack.pop() {
                t.on.remove(w);
                scc.push(w.clone());
                if w == v {
                    break;
                }
            }
            if scc.len() > 1 {
                scc.sort();
                t.out.push(scc);
            }
        }
    }
    let mut t = T {
        edges,
        index: HashMap::new(),
        low: HashMap::new(),
        stack: Vec::new(),
        on: BTreeSet::new(),
        out: Vec::new(),
    };
    for v in edges.keys() {
        if !t.index.contains_key(v) {
            visit(&mut t, v);
        }
    }
    t.out
}

/// File → the files it imports, with the paths that tie them; file names
/// relative to `root`.
fn edges(root: &Path, src: &Path) -> Edges {
    let mods = modules(src);
    let mut edges = Edges::new();
    for (m, file) in &mods {
        let text = std::fs::read_to_string(file).unwrap();
        let from = file.strip_prefix(root).unwrap().to_path_buf();
        let entry = edges.entry(from.clone()).or_default();
        for p in paths(&code(&text)) {
            if let Some(to) = resolve(&mods, m, &p) {
                let to = to.strip_prefix(root).unwrap().to_path_buf();
                if to != from && !is_ancestor(&to, &from) {
                    entry.entry(to).or_default().insert(p.join("::"));
                }
            }
        }
    }
    edges
}

#[test]
fn no_module_imports_one_that_imports_it_back() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let edges = edges(root, &root.join("src"));
    assert!(
        edges.len() > 50,
        "read only {} files: the reader is broken",
        edges.len()
    );
    let found = cycles(&edges);
    let mut report = String::new();
    for c in &found {
        report.push_str(&format!("cycle of {} files:\n", c.len()));
        for a in c {
            for (b, names) in &edges[a] {
                if c.contains(b) {
                    let names: Vec<_> = names.iter().take(4).cloned().collect();
                    report.push_str(&format!(
                        "  {} -> {}: {}\n",
                        a.display(),
                        b.display(),
                        names.join(", ")
                    ));
                }
            }
        }
    }
    assert!(found.is_empty(), "import cycles:\n{report}");
}

#[test]
fn the_reader_finds_a_planted_cycle() {
    // The checker itself must be able to fail.
    let dir = std::env::temp_dir().join(format!("imports-test-{}", std::process::id()));
    let src = dir.join("src");
    std::fs::create_dir_all(src.join("a")).unwrap();
    std::fs::write(src.join("lib.rs"), "pub mod a; pub mod b; pub mod c;").unwrap();
    // a/mod.rs <- a/inner.rs is a part using its module's face: no cycle.
    std::fs::write(src.join("a/mod.rs"), "pub mod inner;\nuse inner::H;").unwrap();
    std::fs::write(
        src.join("a/inner.rs"),
        "use super::X;\nuse crate::{x::Y, b::{self}};\n#[cfg(test)]\nmod tests { use crate::c::B; }",
    )
    .unwrap();
    std::fs::write(
        src.join("b.rs"),
        "// use crate::a::A;\npub fn f() { crate::c::g(\"crate::a\", '{'); }",
    )
    .unwrap();
    std::fs::write(src.join("c.rs"), "pub fn g() { crate::a::inner::h() }").unwrap();
    let edges = edges(&dir, &src);
    let found = cycles(&edges);
    std::fs::remove_dir_all(&dir).ok();
    assert_eq!(found.len(), 1, "{edges:#?}");
    assert_eq!(
        found[0].len(),
        3,
        "a/inner.rs -> b.rs -> c.rs -> a/inner.rs"
    );
}

// The pipeline's shape beyond imports: what issue 19 made of the core, each
// checked over the source so that a step back fails here.

/// Every source file but test code, by its path under `src/`, with the text
/// before any `#[cfg(test)] mod tests`.
fn sources(src: &Path) -> Vec<(PathBuf, String)> {
    let mut out = Vec::new();
    let mut stack = vec![src.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            if p.is_dir() {
                if name != "tests" {
                    stack.push(p);
                }
            } else if name.ends_with(".rs") && name != "tests.rs" {
                let text = std::fs::read_to_string(&p).unwrap();
                let text = match text.find("#[cfg(test)]\nmod tests") {
                    Some(at) => text[..at].to_string(),
                    None => text,
                };
                out.push((p.strip_prefix(src).unwrap().to_path_buf(), text));
            }
        }
    }
    out.sort();
    out
}

/// Transport files that name the hub object (`Hub`): a transport gets an
/// endpoint and the request's one snapshot, nothing more.
fn hub_in_transports(files: &[(PathBuf, String)]) -> Vec<PathBuf> {
    files
        .iter()
        .filter(|(p, _)| p.starts_with("transport"))
        .filter(|(_, t)| tokens(&code(t)).iter().any(|w| w == "Hub"))
        .map(|(p, _)| p.clone())
        .collect()
}

/// Places other than the hold table that keep held calls in a map.
fn held_maps(files: &[(PathBuf, String)]) -> Vec<String> {
    let mut out = Vec::new();
    for (p, t) in files {
        if p == Path::new("session/hold.rs") {
            continue;
        }
        for line in code(t).lines() {
            let toks = tokens(line);
            let has = |w: &str| toks.iter().any(|x| x == w);
            if has("Held") && (has("HashMap") || has("BTreeMap") || has("Vec")) {
                out.push(format!("{}: {}", p.display(), line.trim()));
            }
        }
    }
    out
}

/// Lines (1-based) of an era branch (`if`, `match`, `let … else` or a guard
/// on `is_modern()`, `.modern`, `Era::Modern` or `Era::Legacy`) with no
/// comment in the four lines above it to say why the eras differ there.
fn uncommented_era_branches(text: &str) -> Vec<usize> {
    let lines: Vec<&str> = text.lines().collect();
    let era = |l: &str| {
        l.contains("is_modern()")
            || l.contains(".modern ")
            || l.contains(".modern)")
            || l.contains(".modern;")
            || l.contains(".modern {")
            || l.contains("Era::Modern")
            || l.contains("Era::Legacy")
    };
    let branch = |l: &str| {
        let t = l.trim_start();
        t.starts_with("if ")
            || t.starts_with("} else if ")
            || t.starts_with("match ")
            || (t.starts_with("let ") && t.contains(" else"))
            || (t.contains(" if ") && t.contains("=>"))
    };
    (0..lines.len())
        .filter(|&i| era(lines[i]) && branch(lines[i]))
        .filter(|&i| {
            !lines[i.saturating_sub(4)..i]
                .iter()
                .any(|l| l.trim_start().starts_with("//"))
        })
        .map(|i| i + 1)
        .collect()
}

fn src_files() -> Vec<(PathBuf, String)> {
    let files = sources(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"));
    assert!(files.len() > 50, "read only {} files", files.len());
    files
}

#[test]
fn no_transport_reaches_the_hub_object() {
    let found = hub_in_transports(&src_files());
    assert!(found.is_empty(), "transport files naming `Hub`: {found:?}");
}

#[test]
fn the_hubs_own_requests_all_go_through_session_ask() {
    // The six places issue 19 found the hub being its own one-shot client.
    let sites = [
        "hub/mod.rs",                   // the probe (`panicIfInvalid`)
        "views/openapi/backend.rs",     // the facade's exchange
        "views/group/mod.rs",           // a group's one-shot request
        "views/group/session/mod.rs",   // a group's fan-out to a member
        "transport/modern/mod.rs",      // a transient upstream's initialize
        "views/group/session/route.rs", // a group relaying a client's call
    ];
    let files: HashMap<PathBuf, String> = src_files().into_iter().collect();
    let missing: Vec<_> = sites
        .iter()
        .filter(|s| !code(&files[Path::new(s)]).contains("crate::session::ask("))
        .collect();
    assert!(
        missing.is_empty(),
        "not sending through session::ask: {missing:?}"
    );
    // And one rule for what a server asks meanwhile.
    let rules: Vec<_> = files
        .iter()
        .filter(|(_, t)| code(t).contains("enum OnServerRequest"))
        .map(|(p, _)| p.clone())
        .collect();
    assert_eq!(rules, [PathBuf::from("session/ask.rs")]);
}

#[test]
fn held_calls_live_in_one_table() {
    let found = held_maps(&src_files());
    assert!(
        found.is_empty(),
        "held calls kept outside session/hold.rs: {found:#?}"
    );
}

#[test]
fn every_era_branch_outside_the_codecs_says_why() {
    // The codecs translate between the eras: every line of them is about it.
    let codec = |p: &Path| {
        p == Path::new("mcp.rs")
            || p.starts_with("transport/modern")
            || p == Path::new("metrics/labels.rs")
    };
    let mut report = Vec::new();
    let mut branches = 0;
    for (p, t) in src_files().iter().filter(|(p, _)| !codec(p)) {
        branches += t
            .lines()
            .filter(|l| l.contains("is_modern()") || l.contains(".modern"))
            .count();
        for n in uncommented_era_branches(t) {
            report.push(format!(
                "{}:{n}: {}",
                p.display(),
                t.lines().nth(n - 1).unwrap().trim()
            ));
        }
    }
    assert!(
        branches >= 5,
        "found only {branches} era lines: the reader is broken"
    );
    assert!(
        report.is_empty(),
        "era branches with no comment saying why:\n{}",
        report.join("\n")
    );
}

#[test]
fn the_shape_checks_find_what_is_planted() {
    // Each checker must be able to fail.
    let f = |p: &str, t: &str| (PathBuf::from(p), t.to_string());
    let files = [
        f(
            "transport/sse.rs",
            "use crate::hub::Snapshot; // not a Hub\nfn f(h: Arc<Hub>) {}",
        ),
        f(
            "transport/live.rs",
            "struct L { held: HashMap<String, Held<C>> }",
        ),
        f(
            "session/hold.rs",
            "struct Table { held: HashMap<String, Held<C>> }",
        ),
        f("transport/mod.rs", "use crate::hub::Snapshot; // Hub"),
    ];
    assert_eq!(
        hub_in_transports(&files),
        [PathBuf::from("transport/sse.rs")]
    );
    assert_eq!(held_maps(&files).len(), 1);
    let text = "fn a() {\n    if info.modern {\n    }\n    // Era: why.\n    if link.is_modern() {\n    }\n    let y = x.is_modern();\n}\n";
    assert_eq!(uncommented_era_branches(text), [2]);
}
