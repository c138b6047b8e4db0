//! Secrets sealed by an earlier release stay usable after the upgrade to
//! `store/vault.rs` (version-1 blobs are still opened), and the binding to
//! the record still holds for them: a blob moved under another
//! connection's key is refused, not used.

use drio_gateway::store::embedded::EmbeddedStore;
use drio_gateway::store::{keys, Store};
use serde_json::json;

use crate::management::{initialize, mcp, with_upstream, Api};
use crate::support::gateway::TEST_SECRETS_KEY;

/// What releases before the vault wrote: `1 ‖ nonce ‖ AES-256-GCM(plain)`,
/// bound to the bare secret reference.
fn seal_v1(reference: &str, plain: &[u8]) -> Vec<u8> {
    use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
    use base64::Engine;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(TEST_SECRETS_KEY)
        .unwrap();
    let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &raw).unwrap());
    let mut nonce = [0u8; NONCE_LEN];
    aws_lc_rs::rand::fill(&mut nonce).unwrap();
    let mut buf = plain.to_vec();
    key.seal_in_place_append_tag(
        Nonce::assume_unique_for_key(nonce),
        Aad::from(reference.as_bytes()),
        &mut buf,
    )
    .unwrap();
    let mut out = vec![1u8];
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&buf);
    out
}

#[tokio::test]
async fn connection_secrets_sealed_by_an_older_release_still_open_where_they_belong() {
    let (idp, up, gw) = with_upstream().await;
    let ada = Api::as_user(&gw, &idp, "user_ada");
    let mut refs = Vec::new();
    let mut slugs = Vec::new();
    for name in ["legacy", "other"] {
        let (id, slug) = ada
            .create_app(name, json!({"upstreamUrl": up.url(), "public": true}))
            .await;
        let (s, created) = ada
            .post(
                &format!("/api/v1/apps/{id}/auth"),
                json!({"config": {"type": "api_key", "headerName": "X-Key", "apiKey": "sk_NEW"}}),
            )
            .await;
        assert_eq!(s, 201, "{created}");
        refs.push(created["auth"]["secretRef"].as_str().unwrap().to_string());
        slugs.push(slug);
    }
    // The store as an older release left it: `legacy`'s secret in format 1,
    // and the same blob copied under `other`'s key.
    let mut gw = gw;
    gw.stop();
    let old = seal_v1(&refs[0], br#"{"apiKey":"sk_LEGACY_1"}"#);
    {
        let store = EmbeddedStore::open(&gw.dir().join("gw.redb")).unwrap();
        store
            .put(&keys::secret(&refs[0]), &old, None)
            .await
            .unwrap();
        store
            .put(&keys::secret(&refs[1]), &old, None)
            .await
            .unwrap();
    }
    gw.restart().await;

    let call = |slug: String| {
        let token = idp.mint_access_token("user_ada", &gw.app_url(&slug, "/mcp"), "", 600);
        let gw = &gw;
        async move { mcp(gw, &slug, &token, initialize()).await.status() }
    };
    assert_eq!(call(slugs[0].clone()).await, 200, "{}", gw.log_tail(20));
    let seen = up.last_request().expect("the call reached the upstream");
    assert_eq!(
        seen.header("x-key"),
        Some("sk_LEGACY_1"),
        "the old record opens"
    );

    let before = up.count();
    let _ = call(slugs[1].clone()).await;
    let leaked = up.requests()[before..]
        .iter()
        .any(|r| r.header("x-key") == Some("sk_LEGACY_1"));
    assert!(!leaked, "a blob moved to another connection must not open");
    assert!(
        gw.log_tail(50).contains("connection secrets unavailable"),
        "{}",
        gw.log_tail(50)
    );
}
