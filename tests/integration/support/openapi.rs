//! The API contract in the harness: every response the shared HTTP helpers
//! see for a route `docs/openapi.json` documents (OpenAPI 3.1, schemas in
//! JSON Schema 2020-12) is validated against the schema of its (method,
//! path template, status); a status the document does not list for that
//! route fails too. Routes it does not document (app traffic, browser
//! flows, fakes) pass through unchecked.
//!
//! The document is read once; a validator is compiled the first time its
//! (method, template, status) is seen and reused after.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use serde_json::{json, Value};

/// The committed document and the validators compiled from it so far.
pub struct Contract {
    doc: Value,
    validators: Mutex<HashMap<(String, String, u16), Arc<jsonschema::Validator>>>,
}

/// The document the gateway serves, as committed.
pub fn contract() -> &'static Contract {
    static CONTRACT: OnceLock<Contract> = OnceLock::new();
    CONTRACT.get_or_init(|| {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/openapi.json");
        let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
        Contract::new(serde_json::from_str(&text).expect("docs/openapi.json is JSON"))
    })
}

/// Validates one response of the gateway against the committed document.
pub fn check(method: &str, url: &str, status: u16, body: &[u8]) {
    if let Err(why) = contract().verify(method, url, status, body) {
        panic!("{why}");
    }
}

impl Contract {
    pub fn new(doc: Value) -> Contract {
        Contract {
            doc,
            validators: Mutex::new(HashMap::new()),
        }
    }

    /// The documented path template `path` falls under, if any.
    pub fn template_for(&self, path: &str) -> Option<String> {
        let paths = self.doc["paths"].as_object()?;
        paths.keys().find(|t| matches_template(t, path)).cloned()
    }

    /// `Err` names what breaks the contract; `Ok` also for undocumented routes.
    pub fn verify(&self, method: &str, url: &str, status: u16, body: &[u8]) -> Result<(), String> {
        let method = method.to_ascii_lowercase();
        let Some(path) = path_of(url) else {
            return Ok(());
        };
        let Some(template) = self.template_for(&path) else {
            return Ok(());
        };
        let op = &self.doc["paths"][&template][&method];
        if op.is_null() {
            // HEAD, OPTIONS (CORS preflight) and methods the route lacks.
            return Ok(());
        }
        let what = format!("{} {path} ({template}) → {status}", method.to_uppercase());
        let response = &op["responses"][status.to_string()];
        if response.is_null() {
            return Err(format!(
                "OpenAPI contract: {what} is not a documented status (body: {})",
                String::from_utf8_lossy(body)
            ));
        }
        if response["content"]["application/json"]["schema"].is_null() {
            return Ok(());
        }
        let instance: Value = serde_json::from_slice(body).map_err(|e| {
            format!(
                "OpenAPI contract: {what}: body is not JSON ({e}): {}",
                String::from_utf8_lossy(body)
            )
        })?;
        let validator = self.validator(&method, &template, status)?;
        let errors: Vec<String> = validator
            .iter_errors(&instance)
            .map(|e| format!("  at {}: {e}", e.instance_path()))
            .collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "OpenAPI contract: {what}: the body does not match docs/openapi.json:\n{}\nbody: {instance}",
                errors.join("\n")
            ))
        }
    }

    fn validator(
        &self,
        method: &str,
        template: &str,
        status: u16,
    ) -> Result<Arc<jsonschema::Validator>, String> {
        let key = (method.to_string(), template.to_string(), status);
        if let Some(v) = self.validators.lock().unwrap().get(&key) {
            return Ok(v.clone());
        }
        let schema = &self.doc["paths"][template][method]["responses"][status.to_string()]
            ["content"]["application/json"]["schema"];
        // The response's schema at the root, with the document's components
        // beside it so `#/components/schemas/…` references resolve.
        let root = json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "allOf": [schema],
            "components": self.doc["components"],
        });
        let v = Arc::new(
            jsonschema::draft202012::new(&root)
                .map_err(|e| format!("OpenAPI contract: {method} {template} {status}: {e}"))?,
        );
        self.validators.lock().unwrap().insert(key, v.clone());
        Ok(v)
    }
}

/// The path of an absolute URL (no query).
fn path_of(url: &str) -> Option<String> {
    url::Url::parse(url).ok().map(|u| u.path().to_string())
}

/// `{name}` matches one segment; `{resourcePath}` (the route table's final
/// `*`) matches one or more.
fn matches_template(template: &str, path: &str) -> bool {
    let mut want = template.split('/');
    let mut got = path.split('/');
    loop {
        match (want.next(), got.next()) {
            (None, None) => return true,
            (Some("{resourcePath}"), Some(s)) => return !s.is_empty(),
            (Some(w), Some(g)) if w.starts_with('{') => {
                if g.is_empty() {
                    return false;
                }
            }
            (Some(w), Some(g)) if w == g => {}
            _ => return false,
        }
    }
}
