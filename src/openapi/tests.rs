//! The document against the route table and the committed copy.

use serde_json::Value;

use super::*;

/// The route families the contract covers: the management API, `/me`,
/// templates, this document, the OAuth endpoints clients call and
/// discovery. Browser flows (pages, redirects) and `/healthz` are not.
fn in_contract(r: &Route) -> bool {
    let p = r.path;
    r.guard != Guard::Browser
        && (p.starts_with("/api/v1/apps")
            || p == "/api/v1/me"
            || p == "/api/v1/templates"
            || p == "/api/v1/openapi.json"
            || p.starts_with("/api/v1/auth/")
            || p.starts_with("/.well-known/"))
}

fn doc() -> Value {
    serde_json::from_str(&to_json()).expect("the document is JSON")
}

#[test]
fn every_route_of_the_contract_is_documented_and_nothing_else() {
    let doc = doc();
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().expect("paths");
    let mut missing = Vec::new();
    for r in ROUTES.iter().filter(|r| in_contract(r)) {
        let m = r.method.as_str().to_ascii_lowercase();
        if paths.get(&path_of(r)).and_then(|p| p.get(&m)).is_none() {
            missing.push(format!("{} {}", r.method, r.path));
        }
    }
    assert!(
        missing.is_empty(),
        "routes.rs has, the document lacks: {missing:#?}"
    );
    let mut extra = Vec::new();
    for (path, item) in paths {
        for m in item.as_object().expect("path item").keys() {
            let known = ROUTES.iter().any(|r| {
                in_contract(r) && path_of(r) == *path && r.method.as_str().eq_ignore_ascii_case(m)
            });
            if !known {
                extra.push(format!("{m} {path}"));
            }
        }
    }
    assert!(
        extra.is_empty(),
        "the document has, routes.rs lacks: {extra:#?}"
    );
}

#[test]
fn every_reference_resolves() {
    let doc = doc();
    fn walk(v: &Value, doc: &Value, bad: &mut Vec<String>) {
        match v {
            Value::Object(o) => {
                if let Some(Value::String(r)) = o.get("$ref") {
                    let ptr = r.trim_start_matches('#');
                    if doc.pointer(ptr).is_none() {
                        bad.push(r.clone());
                    }
                }
                o.values().for_each(|x| walk(x, doc, bad));
            }
            Value::Array(a) => a.iter().for_each(|x| walk(x, doc, bad)),
            _ => {}
        }
    }
    let mut bad = Vec::new();
    walk(&doc, &doc, &mut bad);
    assert!(bad.is_empty(), "dangling $refs: {bad:?}");
}

#[test]
fn committed_document_is_current() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/openapi.json");
    let generated = to_json();
    if std::env::var_os("UPDATE_OPENAPI").is_some() {
        std::fs::write(path, &generated).expect("write docs/openapi.json");
        return;
    }
    let committed = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        committed == generated,
        "docs/openapi.json is not the document the code generates; regenerate it with\n  \
         UPDATE_OPENAPI=1 cargo test --lib openapi::tests::committed_document_is_current\n\
         and commit the result"
    );
}
