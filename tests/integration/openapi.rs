//! The OpenAPI document (issue 17 item 4): served exactly as committed, and
//! the harness's response check (`support::openapi`, run by every shared
//! HTTP helper) refuses a body that breaks its schema and a status the
//! document does not list.

use serde_json::Value;

use crate::management::{with_upstream, Api};
use crate::support::gateway::TestGateway;
use crate::support::oauth_client::send;
use crate::support::openapi::{contract, Contract};

fn committed() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/openapi.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[tokio::test]
async fn the_served_document_is_the_committed_one() {
    let gw = TestGateway::new().start().await;
    let url = format!("{}/api/v1/openapi.json", gw.url());
    let page = send(gw.client().get(&url), &url).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert_eq!(page.header("content-type"), Some("application/json"));
    let served = page.json();
    assert_eq!(served["openapi"], "3.1.0");
    assert!(
        served == committed(),
        "GET /api/v1/openapi.json differs from docs/openapi.json"
    );
    // A public route the document covers, checked by the same helper.
    let url = format!("{}/api/v1/templates", gw.url());
    assert_eq!(send(gw.client().get(&url), &url).await.status, 200);
}

#[tokio::test]
async fn a_body_that_breaks_the_schema_and_an_undocumented_status_fail() {
    let (idp, _up, gw) = with_upstream().await;
    let ada = Api::as_user(&gw, &idp, "user_ada");
    // Checked by the helper already; checked again here on purpose.
    let (status, body) = ada.get("/api/v1/me").await;
    assert_eq!(status, 200, "{body}");
    let url = format!("{}/api/v1/me", gw.url());
    let bytes = body.to_string().into_bytes();
    contract()
        .verify("GET", &url, 200, &bytes)
        .expect("the real response matches the document");

    // The document with one field renamed: the same response now fails.
    let mut doc = committed();
    let user = &mut doc["components"]["schemas"]["MeUser"];
    let prop = user["properties"]
        .as_object_mut()
        .unwrap()
        .remove("workosUserId")
        .expect("MeUser.workosUserId is documented");
    user["properties"]["workosUserID"] = prop;
    for r in user["required"].as_array_mut().unwrap() {
        if r == "workosUserId" {
            *r = "workosUserID".into();
        }
    }
    let err = Contract::new(doc)
        .verify("GET", &url, 200, &bytes)
        .expect_err("a renamed field must fail");
    assert!(err.contains("workosUserID"), "{err}");

    // A status the document does not list for the route fails too.
    let err = contract()
        .verify("GET", &url, 418, &bytes)
        .expect_err("an undocumented status must fail");
    assert!(err.contains("not a documented status"), "{err}");
    // Routes outside the contract (app traffic) are not checked.
    let app = format!("{}/apps/x/mcp", gw.url());
    assert!(contract().verify("POST", &app, 418, b"not json").is_ok());
}
