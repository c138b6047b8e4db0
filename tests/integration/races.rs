//! The races at the seams (issue 14, items 5 and 6).
//!
//! Route rebuilds: concurrent catalog writes used to rebuild the route table
//! each inside its own request, and whichever rebuild finished last won, even
//! one that read the store before a later write: the table could then miss an
//! app or follow an overwritten upstream until the 30 s refresh. Now one task
//! owns rebuilds and a writer returns only once a table covering its write is
//! live, so the next request after every write returned follows the store.
//!
//! Per-user credentials: one mutex per connection was held across every
//! user's cache miss, including the upstream refresh call, so one user's
//! slow refresh stalled every other user of the connection. Now the single
//! flight is keyed by (connection, user).

use std::time::{Duration, Instant};

use futures::future::join_all;
use serde_json::json;

use crate::management::{gateway, initialize, mcp, not_connected, with_provider, Api};
use crate::support::gateway::{AppSpec, GatewayBuilder, TestGateway};
use crate::support::idp::TestIdp;
use crate::support::oauth_client::Browser;
use crate::support::provider::{self, TestProvider};
use crate::support::upstream::TestUpstream;
use crate::tenancy_connect::connect_in_browser;

/// Adds config-file apps whose upstream names do not resolve: each costs a
/// DNS round trip at every rebuild (seconds, when the resolver drops the
/// query), which widens the window in which a rebuild that read the store
/// early can finish after a later one.
fn with_unresolvable_apps(builder: GatewayBuilder) -> GatewayBuilder {
    (0..2).fold(builder, |b, i| {
        b.app_with(AppSpec::new(
            &format!("dark{i}"),
            &format!("http://dark{i}.example:9"),
        ))
    })
}

/// Calls a public app's MCP endpoint with no bearer; returns the status.
async fn call_public(gw: &TestGateway, slug: &str) -> u16 {
    gw.client()
        .post(gw.app_url(slug, "/mcp"))
        .header("accept", "application/json, text/event-stream")
        .json(&initialize())
        .send()
        .await
        .expect("app request")
        .status()
        .as_u16()
}

#[tokio::test]
async fn concurrent_config_writes_leave_routes_on_the_stored_upstream() {
    let idp = TestIdp::start().await;
    let (one, two) = (TestUpstream::start().await, TestUpstream::start().await);
    let gw = with_unresolvable_apps(gateway(&idp)).start().await;
    let ada = Api::as_user(&gw, &idp, "user_ada");
    let (id, slug) = ada
        .create_app("flip", json!({"upstreamUrl": one.url(), "public": true}))
        .await;
    let path = format!("/api/v1/apps/{id}/config");
    for round in 0..4 {
        // 20 writes at once, alternating between the two upstreams.
        let writes = (0..20).map(|i| {
            let url = if (i + round) % 2 == 0 {
                one.url()
            } else {
                two.url()
            };
            ada.put(&path, json!({"upstreamUrl": url, "public": true}))
        });
        for (s, body) in join_all(writes).await {
            assert_eq!(s, 200, "{body}");
        }
        // Every write returned: the stored upstream is the one that routes.
        let (_, cfg) = ada.get(&path).await;
        let stored = cfg["config"]["upstreamUrl"].as_str().unwrap().to_string();
        let before = (one.count(), two.count());
        assert_eq!(call_public(&gw, &slug).await, 200, "{}", gw.log_tail(20));
        let reached = match (one.count() > before.0, two.count() > before.1) {
            (true, false) => one.url(),
            (false, true) => two.url(),
            other => panic!("round {round}: reached {other:?}"),
        };
        assert_eq!(
            reached, stored,
            "round {round}: the request followed an overwritten upstream"
        );
    }
}

#[tokio::test]
async fn apps_created_at_once_all_route_when_their_writes_return() {
    let idp = TestIdp::start().await;
    let up = TestUpstream::start().await;
    let gw = gateway(&idp).start().await;
    let ada = Api::as_user(&gw, &idp, "user_ada");
    for round in 0..3 {
        let creates = (0..12).map(|i| {
            ada.post(
                "/api/v1/apps",
                json!({"name": format!("burst{round}x{i}"), "config": {"upstreamUrl": up.url(), "public": true}}),
            )
        });
        let slugs: Vec<String> = join_all(creates)
            .await
            .into_iter()
            .map(|(s, body)| {
                assert_eq!(s, 201, "{body}");
                body["app"]["slug"].as_str().unwrap().to_string()
            })
            .collect();
        for slug in &slugs {
            assert_eq!(
                call_public(&gw, slug).await,
                200,
                "round {round}: {slug} does not route although its create returned"
            );
        }
    }
}

/// Connects `sub` to the app's per-user connection through the browser flow.
async fn connect(gw: &TestGateway, slug: &str, token: &str) {
    let link = not_connected(gw, slug, token).await;
    let page = connect_in_browser(&Browser::new(), gw, &link, "confirm").await;
    assert_eq!(page.status, 200, "{}", page.body);
}

/// Polls until the provider has seen `n` token calls (bounded).
async fn until_token_calls(p: &TestProvider, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while p.calls("token") < n {
        assert!(Instant::now() < deadline, "no token call arrived");
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn one_users_slow_refresh_does_not_delay_another_user() {
    let (idp, up, p, gw) = with_provider().await;
    let ada = Api::as_user(&gw, &idp, "user_ada");
    let (id, slug) = ada
        .create_app(
            "shared",
            json!({"upstreamUrl": up.url(), "access": {"mode": "anyone"}}),
        )
        .await;
    let (s, body) = ada.post(&format!("/api/v1/apps/{id}/auth"), json!({"config": {
        "type": "oauth", "authorizationEndpoint": p.url("/authorize"), "tokenEndpoint": p.url("/token"),
        "clientId": provider::CLIENT_ID, "clientSecret": provider::CLIENT_SECRET}})).await;
    assert_eq!(s, 201, "{body}");
    let token_a = idp.mint_access_token("user_ada", &gw.app_url(&slug, "/mcp"), "", 600);
    let token_b = idp.mint_access_token("user_bob", &gw.app_url(&slug, "/mcp"), "", 600);

    // Ada's token is stale at once (inside the 30 s refresh margin); Bob's
    // is good for an hour, as is the one Ada's refresh will get.
    p.set_expires_in(10);
    connect(&gw, &slug, &token_a).await;
    p.set_expires_in(3600);
    connect(&gw, &slug, &token_b).await;

    // The provider is slow from now on: Ada's refresh takes a while.
    p.set_delay_ms(1500);
    let calls_before = p.calls("token");
    let a_requests: Vec<_> = (0..10)
        .map(|_| {
            let (client, url, token) = (
                gw.client().clone(),
                gw.app_url(&slug, "/mcp"),
                token_a.clone(),
            );
            tokio::spawn(async move {
                let resp = client
                    .post(url)
                    .bearer_auth(token)
                    .header("accept", "application/json, text/event-stream")
                    .json(&initialize())
                    .send()
                    .await
                    .unwrap();
                (resp.status().as_u16(), Instant::now())
            })
        })
        .collect();
    // Ada's refresh is in flight at the provider.
    until_token_calls(&p, calls_before + 1).await;

    let b_start = Instant::now();
    let resp = mcp(&gw, &slug, &token_b, initialize()).await;
    let b_done = Instant::now();
    assert_eq!(resp.status(), 200, "{}", gw.log_tail(20));
    let b_saw = up
        .last_request()
        .unwrap()
        .header("authorization")
        .map(str::to_string);

    let mut a_first_done = None::<Instant>;
    for r in join_all(a_requests).await {
        let (status, done) = r.unwrap();
        assert_eq!(status, 200, "{}", gw.log_tail(20));
        a_first_done = Some(a_first_done.map_or(done, |d| d.min(done)));
    }
    let a_first_done = a_first_done.unwrap();
    let b_took = b_done - b_start;
    let a_left = a_first_done.saturating_duration_since(b_start);
    assert!(
        b_done < a_first_done && b_took * 3 < a_left,
        "Bob waited on Ada's refresh: his request took {b_took:?}, Ada's first finished {a_left:?} after his start"
    );
    assert_eq!(
        p.calls("token") - calls_before,
        1,
        "ten concurrent requests of one user make one refresh"
    );
    // Bob's own token, and one refreshed token for all ten of Ada's.
    let b_saw = b_saw.expect("Bob's request carried a token");
    let seen: std::collections::HashSet<String> = up
        .requests()
        .iter()
        .rev()
        .take(11)
        .filter_map(|r| r.header("authorization").map(str::to_string))
        .collect();
    assert!(seen.contains(&b_saw), "{seen:?}");
    assert_eq!(seen.len(), 2, "{seen:?}");
}
