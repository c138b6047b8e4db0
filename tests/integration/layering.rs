//! The direction of dependencies (`shared/design/layout.md`, issue 14):
//! the import graph of `src/` has no cycle, and nothing below the proxy
//! imports it. Read from the source as text: every `crate::a::b::C` path
//! is an edge from the file's module to the deepest module it names.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Module path (`oauth::consent`) → its source without `//` comments.
fn modules() -> BTreeMap<String, String> {
    fn walk(dir: &Path, root: &Path, out: &mut BTreeMap<String, String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, root, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let rel = path.strip_prefix(root).unwrap().with_extension("");
                let mut parts: Vec<String> = rel
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .collect();
                if parts.last().is_some_and(|p| p == "mod") {
                    parts.pop();
                }
                if parts == ["lib"] || parts == ["main"] {
                    continue;
                }
                let text: String = std::fs::read_to_string(&path)
                    .unwrap()
                    .lines()
                    .map(|l| l.split("//").next().unwrap_or(""))
                    .collect::<Vec<_>>()
                    .join("\n");
                out.insert(parts.join("::"), text);
            }
        }
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut out = BTreeMap::new();
    walk(&root, &root, &mut out);
    out
}

/// Edges: module → the modules it imports with `crate::` paths.
fn edges(mods: &BTreeMap<String, String>) -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (m, text) in mods {
        let set = out.entry(m.clone()).or_default();
        for (i, _) in text.match_indices("crate::") {
            let rest = &text[i + "crate::".len()..];
            let path: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == ':')
                .collect();
            let segs: Vec<&str> = path.split("::").filter(|s| !s.is_empty()).collect();
            let target = (1..=segs.len())
                .rev()
                .map(|k| segs[..k].join("::"))
                .find(|c| mods.contains_key(c));
            let Some(t) = target else { continue };
            let related =
                t == *m || m.starts_with(&format!("{t}::")) || t.starts_with(&format!("{m}::"));
            if !related {
                set.insert(t);
            }
        }
    }
    out
}

/// Strongly connected components of more than one module (Tarjan).
fn cycles(g: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct T<'a> {
        g: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on: BTreeSet<&'a str>,
        out: Vec<Vec<String>>,
    }
    impl<'a> T<'a> {
        fn visit(&mut self, v: &'a str) {
            let n = self.index.len();
            self.index.insert(v, n);
            self.low.insert(v, n);
            self.stack.push(v);
            self.on.insert(v);
            for w in self.g.get(v).into_iter().flatten() {
                if !self.index.contains_key(w.as_str()) {
                    self.visit(w);
                    let lw = self.low[w.as_str()];
                    let lv = self.low.get_mut(v).unwrap();
                    *lv = (*lv).min(lw);
                } else if self.on.contains(w.as_str()) {
                    let iw = self.index[w.as_str()];
                    let lv = self.low.get_mut(v).unwrap();
                    *lv = (*lv).min(iw);
                }
            }
            if self.low[v] == self.index[v] {
                let mut comp = Vec::new();
                while let Some(w) = self.stack.pop() {
                    self.on.remove(w);
                    comp.push(w.to_string());
                    if w == v {
                        break;
                    }
                }
                if comp.len() > 1 {
                    comp.sort();
                    self.out.push(comp);
                }
            }
        }
    }
    let mut t = T {
        g,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on: BTreeSet::new(),
        out: Vec::new(),
    };
    for v in g.keys() {
        if !t.index.contains_key(v.as_str()) {
            t.visit(v);
        }
    }
    t.out
}

#[test]
fn the_import_graph_has_no_cycle() {
    let g = edges(&modules());
    assert!(g.len() > 50, "read the source tree: {} modules", g.len());
    let found = cycles(&g);
    assert!(found.is_empty(), "import cycles in src/: {found:#?}");
}

#[test]
fn only_the_server_imports_the_proxy() {
    let g = edges(&modules());
    let importers: Vec<&String> = g
        .iter()
        .filter(|(m, to)| {
            !m.starts_with("proxy") && to.iter().any(|t| t == "proxy" || t.starts_with("proxy::"))
        })
        .map(|(m, _)| m)
        .collect();
    let allowed = ["server", "bootstrap"];
    let unexpected: Vec<&&String> = importers
        .iter()
        .filter(|m| !allowed.contains(&m.as_str()))
        .collect();
    assert!(
        unexpected.is_empty(),
        "modules importing proxy/: {unexpected:?}"
    );
}

/// `bootstrap.rs` builds every service, so it sees them all; only the
/// server (and `main.rs`, through it) may start it. Anything else importing
/// it would point back up at the top of the graph.
#[test]
fn only_the_server_imports_the_bootstrap() {
    let g = edges(&modules());
    assert!(g.contains_key("bootstrap"), "src/bootstrap.rs is read");
    let importers: Vec<&String> = g
        .iter()
        .filter(|(m, to)| *m != "server" && to.contains("bootstrap"))
        .map(|(m, _)| m)
        .collect();
    assert!(
        importers.is_empty(),
        "modules importing bootstrap: {importers:?}"
    );
}

/// Whether module `m` is `area` or inside it (`oauth::consent` is in `oauth`).
fn within(m: &str, area: &str) -> bool {
    m == area || m.starts_with(&format!("{area}::"))
}

/// Handlers own small context structs (`oauth::OAuthCtx`, `api::ApiCtx`)
/// built in `state.rs`; none of them reaches for the whole process's
/// `State`, so a handler's signature says which handles it uses.
#[test]
fn handlers_do_not_import_the_state() {
    let g = edges(&modules());
    assert!(g.contains_key("state"), "src/state.rs is read");
    let handlers = ["oauth", "api", "audit"];
    let importers: Vec<&String> = g
        .iter()
        .filter(|(m, to)| handlers.iter().any(|h| within(m, h)) && to.contains("state"))
        .map(|(m, _)| m)
        .collect();
    assert!(
        importers.is_empty(),
        "handlers importing state: {importers:?}"
    );
}

/// `oauth/` and `api/` are siblings (layout.md): what both need lives in a
/// module below them, so neither reaches into the other.
#[test]
fn oauth_and_api_never_import_each_other() {
    let g = edges(&modules());
    let mut crossing = Vec::new();
    for (from, to) in &g {
        for t in to {
            for (a, b) in [("oauth", "api"), ("api", "oauth")] {
                if within(from, a) && within(t, b) {
                    crossing.push(format!("{from} -> {t}"));
                }
            }
        }
    }
    assert!(crossing.is_empty(), "oauth/api imports: {crossing:?}");
}

#[test]
fn the_checker_finds_a_cycle_when_there_is_one() {
    let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    g.entry("a".into()).or_default().insert("b".into());
    g.entry("b".into()).or_default().insert("c".into());
    g.entry("c".into()).or_default().insert("a".into());
    g.entry("d".into()).or_default().insert("a".into());
    assert_eq!(
        cycles(&g),
        vec![vec!["a".to_string(), "b".into(), "c".into()]]
    );
}

/// The prefixes listed in `store/keys.rs` (`PREFIXES`, one literal a line).
fn key_prefixes() -> Vec<String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/store/keys.rs");
    let text = std::fs::read_to_string(path).unwrap();
    let start = text.find("const PREFIXES").expect("keys.rs lists PREFIXES");
    let end = start + text[start..].find("];").unwrap();
    text[start..end]
        .lines()
        .filter_map(|l| l.trim().strip_prefix('"')?.split('"').next())
        .map(str::to_string)
        .collect()
}

/// Store keys are spelled in `store/keys.rs` only: no string literal outside
/// `store/` starts with a registered prefix (a quote directly followed by
/// it, comments ignored), so a new key kind cannot be added elsewhere
/// without being listed there.
#[test]
fn store_key_prefixes_are_spelled_in_store_keys_only() {
    let prefixes = key_prefixes();
    assert!(prefixes.len() > 20, "read keys.rs: {prefixes:?}");
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut found = Vec::new();
    let mut stack = vec![root.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                if path != root.join("store") {
                    stack.push(path);
                }
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            for (n, line) in text.lines().enumerate() {
                let code = line.trim_start();
                if code.starts_with("//") {
                    continue;
                }
                for p in &prefixes {
                    if line.contains(&format!("\"{p}")) {
                        found.push(format!("{}:{}: {p}", path.display(), n + 1));
                    }
                }
            }
        }
    }
    assert!(
        found.is_empty(),
        "store key literals outside store/keys.rs: {found:#?}"
    );
}
