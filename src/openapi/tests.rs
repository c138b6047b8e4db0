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

/// Validates `instance` against the response schema of (method, path, status).
fn validate(doc: &Value, method: &str, path: &str, status: u16, instance: &Value) -> Vec<String> {
    let schema = &doc["paths"][path][method]["responses"][status.to_string()]["content"]
        ["application/json"]["schema"];
    assert!(
        !schema.is_null(),
        "{method} {path} {status} is not documented"
    );
    let root = serde_json::json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "allOf": [schema],
        "components": doc["components"],
    });
    let v = jsonschema::draft202012::new(&root).expect("schema compiles");
    v.iter_errors(instance).map(|e| e.to_string()).collect()
}

/// The examples of drio's API reference (seed `002_*`) are valid against the
/// document: the gateway's shapes are drio's.
#[test]
fn seed_examples_match_the_document() {
    use serde_json::json;
    let doc = doc();
    let envelope = json!({"error": {"code": "unauthorized", "message": "Missing or invalid Bearer access token",
        "details": null, "requestId": "4c9b58ff-69a7-4ccf-840d-a0f1ec9f9d77"}});
    let connection = json!({"auth": {"id": "string", "appId": "string", "providerId": "string",
        "providerKey": "string", "providerName": "string", "key": "string", "name": "string",
        "status": "draft", "config": {"type": "oauth", "authorizationEndpoint": "string",
        "tokenEndpoint": "string", "registrationEndpoint": "string", "registrationAuthMode": "none",
        "registrationClientUri": "string", "lastRegisteredAt": "string", "clientId": "string",
        "headerName": "string", "queryParamName": "string", "headerPrefix": "string",
        "username": "string", "scopes": ["string"], "audience": "string", "enabled": true,
        "isDefault": true}, "secretRef": "string", "grants": ["string"],
        "lastValidatedAt": "string", "lastError": "string"}});
    let cases = [
        (
            "get",
            "/api/v1/me",
            200,
            json!({"user": {"workosUserId": "user_123",
            "email": "nicolai@getdrio.com", "image": "https://images.getdrio.com/avatar.png",
            "name": "Nicolai", "scopes": ["openid", "profile", "email"]}}),
        ),
        ("get", "/api/v1/me", 401, envelope.clone()),
        (
            "get",
            "/api/v1/apps/{appId}/auth/{authId}",
            200,
            connection.clone(),
        ),
        (
            "patch",
            "/api/v1/apps/{appId}/auth/{authId}",
            200,
            connection,
        ),
        ("get", "/api/v1/apps/{appId}/auth", 404, envelope.clone()),
        (
            "delete",
            "/api/v1/apps/{appId}/auth/{authId}",
            200,
            json!({"deleted": true}),
        ),
        (
            "post",
            "/api/v1/auth/register",
            201,
            json!({"client_id": "client_123",
            "client_name": "ChatGPT", "grant_types": ["authorization_code", "refresh_token"],
            "redirect_uris": ["https://chat.openai.com/aip/oauth/callback"],
            "response_types": ["code"], "token_endpoint_auth_method": "none",
            "client_id_issued_at": 1_700_000_000}),
        ),
        (
            "post",
            "/api/v1/auth/register",
            400,
            json!({"error": "invalid_client_metadata",
            "error_description": "redirect_uris is required"}),
        ),
        (
            "post",
            "/api/v1/auth/token",
            200,
            json!({"access_token": "access_token_123",
            "refresh_token": "refresh_token_123", "expires_in": 3600, "token_type": "Bearer"}),
        ),
        (
            "post",
            "/api/v1/auth/token",
            400,
            json!({"error": "invalid_request",
            "error_description": "Missing required fields: client_id, code, code_verifier"}),
        ),
        (
            "post",
            "/api/v1/auth/refresh",
            200,
            json!({"access_token": "access_token_123",
            "refresh_token": "refresh_token_456", "expires_in": 3600, "token_type": "Bearer"}),
        ),
        (
            "post",
            "/api/v1/auth/refresh",
            400,
            json!({"error": "invalid_request",
            "error_description": "Missing required field: refresh_token"}),
        ),
    ];
    for (method, path, status, example) in cases {
        let errors = validate(&doc, method, path, status, &example);
        assert!(errors.is_empty(), "{method} {path} {status}: {errors:?}");
    }
    // And the check can fail: the seed's `/me` without `workosUserId`.
    let broken = json!({"user": {"email": null, "image": null, "name": null, "scopes": []}});
    assert!(!validate(&doc, "get", "/api/v1/me", 200, &broken).is_empty());
}
