//! The modules of each host crate import one another without circles (in `sigil-core` the
//! areas layer cleanly: models below use cases, the shared modules below both). A change that
//! closes a circle fails this test, naming the crate and the modules in it.
//!
//! Edges are the `crate::…` paths of each file (outside its `#[cfg(test)]` part), resolved to the
//! longest module that exists, plus each area's `pub use <model>::*`; a module's use of its own
//! ancestors is nesting, not an edge.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Circles allowed (modules in sorted order): none.
const KNOWN: &[&[&str]] = &[];

fn modules(dir: &Path, prefix: &str, out: &mut BTreeMap<String, String>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_stem().unwrap().to_string_lossy().into_owned();
        let join =
            |n: &str| if prefix.is_empty() { n.to_owned() } else { format!("{prefix}::{n}") };
        if p.is_dir() {
            modules(&p, &join(&name), out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            let module = match name.as_str() {
                "lib" => String::new(),
                "mod" => prefix.to_owned(),
                n => join(n),
            };
            let text = std::fs::read_to_string(&p).unwrap();
            let code = text.split("#[cfg(test)]").next().unwrap().to_owned();
            out.insert(module, code);
        }
    }
}

fn graph_of(krate: &str) -> BTreeMap<String, BTreeSet<String>> {
    let mut mods = BTreeMap::new();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(krate).join("src");
    modules(&src, "", &mut mods);
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (m, code) in &mods {
        let mut targets = BTreeSet::new();
        let mut add = |path: &str| {
            let parts: Vec<&str> = path.split("::").collect();
            for i in (1..=parts.len()).rev() {
                let cand = parts[..i].join("::");
                if mods.contains_key(&cand) {
                    if cand != *m && !m.starts_with(&format!("{cand}::")) {
                        targets.insert(cand);
                    }
                    break;
                }
            }
        };
        for (i, _) in code.match_indices("crate::") {
            let rest = &code[i + "crate::".len()..];
            if let Some(group) = rest.strip_prefix('{') {
                for item in group.split('}').next().unwrap().split(',') {
                    add(item.split_whitespace().next().unwrap_or(""));
                }
            } else {
                let end = rest
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
                    .unwrap_or(rest.len());
                add(rest[..end].trim_end_matches(':'));
            }
        }
        for line in code.lines() {
            if let Some(g) =
                line.trim().strip_prefix("pub use ").and_then(|l| l.strip_suffix("::*;"))
                && !g.contains("::")
            {
                targets.insert(if m.is_empty() { g.to_owned() } else { format!("{m}::{g}") });
            }
        }
        edges.insert(m.clone(), targets);
    }
    edges
}

/// Strongly connected components of more than one module (Tarjan).
fn circles(edges: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct T<'a> {
        edges: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        out: Vec<Vec<String>>,
    }
    fn visit<'a>(t: &mut T<'a>, v: &'a str) {
        let n = t.index.len();
        t.index.insert(v, n);
        t.low.insert(v, n);
        t.stack.push(v);
        for w in t.edges.get(v).into_iter().flatten() {
            let w = w.as_str();
            if !t.index.contains_key(w) {
                visit(t, w);
                let lw = t.low[w];
                let lv = t.low.get_mut(v).unwrap();
                *lv = (*lv).min(lw);
            } else if t.stack.contains(&w) {
                let iw = t.index[w];
                let lv = t.low.get_mut(v).unwrap();
                *lv = (*lv).min(iw);
            }
        }
        if t.low[v] == t.index[v] {
            let mut comp = Vec::new();
            while let Some(w) = t.stack.pop() {
                comp.push(w.to_owned());
                if w == v {
                    break;
                }
            }
            if comp.len() > 1 {
                comp.sort();
                t.out.push(comp);
            }
        }
    }
    let mut t =
        T { edges, index: BTreeMap::new(), low: BTreeMap::new(), stack: vec![], out: vec![] };
    for v in edges.keys() {
        if !t.index.contains_key(v.as_str()) {
            visit(&mut t, v);
        }
    }
    t.out.sort();
    t.out
}

#[test]
fn host_crates_import_their_own_modules_without_circles() {
    let known: Vec<Vec<String>> =
        KNOWN.iter().map(|c| c.iter().map(|s| (*s).to_owned()).collect()).collect();
    for krate in ["core", "api", "pki", "store", "wasm", "server"] {
        let found = circles(&graph_of(krate));
        assert_eq!(found, known, "import circles in host/{krate}");
    }
}

#[test]
fn the_checker_sees_a_circle_and_the_areas_own_models() {
    let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    g.insert("a".into(), ["b".to_owned()].into());
    g.insert("b".into(), ["a".to_owned()].into());
    g.insert("c".into(), ["a".to_owned()].into());
    assert_eq!(circles(&g), vec![vec!["a".to_owned(), "b".to_owned()]]);
    let real = graph_of("core");
    assert!(real["certs"].contains("certs::certificate"), "{:?}", real["certs"]);
    assert!(real["certs::certificates"].contains("certs::profiles"));
}

/// Core speaks no SQL: no query machinery, statements or table descriptors outside comments
/// (the store maps each collection to its table and each typed filter to conditions).
#[test]
fn core_speaks_no_sql() {
    let mut mods = BTreeMap::new();
    modules(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"), "", &mut mods);
    let words = [
        "SqlValue",
        "Cond::",
        "sqlx",
        "FOR UPDATE",
        " LIKE ",
        "SELECT ",
        "INSERT INTO",
        "DELETE FROM",
        "Table {",
        "columns: &[",
    ];
    let mut found = Vec::new();
    for (m, code) in &mods {
        let code: String = code
            .lines()
            .filter(|l| !l.trim_start().starts_with("//"))
            .collect::<Vec<_>>()
            .join("\n");
        found.extend(words.iter().filter(|w| code.contains(**w)).map(|w| format!("{m}: {w}")));
    }
    assert!(found.is_empty(), "SQL in sigil-core: {found:?}");
}
