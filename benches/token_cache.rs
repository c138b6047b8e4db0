//! Token validation costs, measured through the real `TokenValidator`:
//! - `l1_hit_rs256` / `l1_hit_es256`: a token already in the in-process cache
//!   (goal: under 1 µs; most of it is the SHA-256 of the token);
//! - `l2_hit`: an L1 miss answered by a real Redis (started here on a free port);
//! - `cold_rs256` / `cold_es256`: a full JWT verification, no cache (goal: RS256 under 60 µs);
//! - `mixed_100k`: a stream over 100,000 distinct tokens, 80 % of requests on a
//!   hot set of 1,000, with the default L1 bounds.
//!
//! Run: `cargo bench --bench token_cache` (needs `redis-server` on PATH).

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair as _, ECDSA_P256_SHA256_FIXED_SIGNING};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use criterion::{criterion_group, criterion_main, Criterion};
use drio_gateway::auth::jwks::{Jwks, JwksSettings, KeySource};
use drio_gateway::auth::metrics::AuthMetrics;
use drio_gateway::auth::{Audience, CacheSettings, TokenValidator, Verifier, VerifierSettings};
use drio_gateway::store::Store;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

const ISSUER: &str = "https://idp.bench.example";

struct Signer {
    alg: Algorithm,
    kid: &'static str,
    key: EncodingKey,
    jwk: Value,
}

impl Signer {
    fn rs256() -> Self {
        let pair = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
        let der = pair.as_der().unwrap();
        let pem = format!(
            "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
            b64_std(der.as_ref())
        );
        let public = pair.public_key();
        let jwk = json!({"kty": "RSA", "kid": "rsa", "alg": "RS256", "use": "sig",
            "n": URL_SAFE_NO_PAD.encode(public.modulus().big_endian_without_leading_zero()),
            "e": URL_SAFE_NO_PAD.encode(public.exponent().big_endian_without_leading_zero())});
        Self {
            alg: Algorithm::RS256,
            kid: "rsa",
            key: EncodingKey::from_rsa_pem(pem.as_bytes()).unwrap(),
            jwk,
        }
    }

    fn es256() -> Self {
        let pkcs8 =
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
                .unwrap();
        let pair =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref()).unwrap();
        let point = pair.public_key().as_ref(); // 0x04 || x || y
        let jwk = json!({"kty": "EC", "crv": "P-256", "kid": "ec", "alg": "ES256", "use": "sig",
            "x": URL_SAFE_NO_PAD.encode(&point[1..33]), "y": URL_SAFE_NO_PAD.encode(&point[33..65])});
        Self {
            alg: Algorithm::ES256,
            kid: "ec",
            key: EncodingKey::from_ec_der(pkcs8.as_ref()),
            jwk,
        }
    }

    fn token(&self, n: usize) -> String {
        let mut h = Header::new(self.alg);
        h.kid = Some(self.kid.into());
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let claims = json!({"iss": ISSUER, "sub": format!("user_{n}"), "aud": "https://gw.example/apps/notes/mcp",
            "scope": "notes:read notes:write", "email": format!("u{n}@example.com"), "client_id": "bench",
            "iat": now, "exp": now + 3600, "jti": n});
        jsonwebtoken::encode(&h, &claims, &self.key).unwrap()
    }
}

fn b64_std(der: &[u8]) -> String {
    let s = base64::engine::general_purpose::STANDARD.encode(der);
    s.as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect::<Vec<_>>()
        .join("\n")
}

struct StaticKeys(JwkSet);

#[async_trait]
impl KeySource for StaticKeys {
    async fn fetch(&self) -> Result<JwkSet, drio_gateway::auth::jwks::KeyFetchError> {
        Ok(self.0.clone())
    }
}

async fn validator(signers: &[&Signer], store: Arc<dyn Store>, l2: bool) -> Arc<TokenValidator> {
    validator_with_metrics(signers, store, l2).await.0
}

/// A validator and its metrics, to see where its answers came from.
async fn validator_with_metrics(
    signers: &[&Signer],
    store: Arc<dyn Store>,
    l2: bool,
) -> (Arc<TokenValidator>, Arc<AuthMetrics>) {
    let set: JwkSet = serde_json::from_value(
        json!({"keys": signers.iter().map(|s| s.jwk.clone()).collect::<Vec<_>>()}),
    )
    .unwrap();
    let metrics = Arc::new(AuthMetrics::register(&prometheus::Registry::new()).unwrap());
    let jwks = Arc::new(Jwks::new(
        Arc::new(StaticKeys(set)),
        JwksSettings {
            refresh_every: Duration::from_secs(3600),
            min_refetch_interval: Duration::from_secs(5),
            max_stale: Duration::from_secs(86400),
        },
        metrics.clone(),
    ));
    jwks.refresh().await.unwrap();
    let settings = VerifierSettings {
        issuer: ISSUER.into(),
        algorithms: vec![Algorithm::RS256, Algorithm::ES256],
        leeway: Duration::from_secs(30),
        introspection: None,
        userinfo_endpoint: None,
        default_ttl: Duration::from_secs(300),
    };
    let cache = CacheSettings {
        l2,
        l2_timeout: Duration::from_millis(500),
        ..CacheSettings::default()
    };
    let v = TokenValidator::new(
        Verifier::new(settings, Some(jwks), reqwest::Client::new()),
        store,
        cache,
        metrics.clone(),
    );
    (v, metrics)
}

/// Valid answers a validator gave from `source` (`l1`, `l2`, `jwt`...).
fn valid_from(metrics: &AuthMetrics, source: &str) -> u64 {
    metrics
        .validation("valid", source)
        .expect("known label")
        .get()
}

struct Redis(Child, u16);
impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_redis() -> Redis {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--save",
            "",
            "--appendonly",
            "no",
            "--bind",
            "127.0.0.1",
        ])
        .stdout(Stdio::null())
        .spawn()
        .expect("redis-server on PATH");
    let deadline = Instant::now() + Duration::from_secs(5);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "redis-server did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    Redis(child, port)
}

fn benches(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (rsa, ec) = (Signer::rs256(), Signer::es256());
    let dir = tempfile::tempdir().unwrap();
    let local: Arc<dyn Store> = rt
        .block_on(drio_gateway::store::open::open_embedded(
            &dir.path().join("b.redb"),
        ))
        .unwrap();

    let v = rt.block_on(validator(&[&rsa, &ec], local.clone(), false));
    let token = rsa.token(0);
    rt.block_on(v.validate(&token, Audience::Any, &[])).unwrap();
    c.bench_function("l1_hit_rs256", |b| {
        b.to_async(&rt)
            .iter(|| async { v.validate(&token, Audience::Any, &[]).await.unwrap() })
    });

    // Gateway-mode tokens are ES256 and shorter: less to hash.
    let es_hot = ec.token(0);
    rt.block_on(v.validate(&es_hot, Audience::Any, &[]))
        .unwrap();
    c.bench_function("l1_hit_es256", |b| {
        b.to_async(&rt)
            .iter(|| async { v.validate(&es_hot, Audience::Any, &[]).await.unwrap() })
    });

    let (rs_tok, es_tok) = (rsa.token(1), ec.token(1));
    c.bench_function("cold_rs256", |b| {
        b.to_async(&rt)
            .iter(|| async { v.verifier().verify(&rs_tok).await.0.unwrap() })
    });
    c.bench_function("cold_es256", |b| {
        b.to_async(&rt)
            .iter(|| async { v.verifier().verify(&es_tok).await.0.unwrap() })
    });

    let redis = start_redis();
    let shared: Arc<dyn Store> = rt
        .block_on(drio_gateway::store::open::open_redis(
            &format!("redis://127.0.0.1:{}/", redis.1),
            "bench:",
            Duration::from_millis(500),
        ))
        .unwrap();
    // Instance A verifies a pool of tokens (sharing them in L2); fresh instances
    // B then meet each token once, so every lookup is an L1 miss and an L2 hit.
    let pool: Vec<String> = (0..2_000).map(|n| ec.token(100_000 + n)).collect();
    let a = rt.block_on(validator(&[&ec], shared.clone(), true));
    for t in &pool {
        rt.block_on(a.validate(t, Audience::Any, &[])).unwrap();
    }
    // L2 writes happen in the background: wait (bounded) until the last one
    // of the pool is readable by a fresh instance, instead of a fixed sleep.
    rt.block_on(async {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let (probe, m) = validator_with_metrics(&[&ec], shared.clone(), true).await;
            probe
                .validate(pool.last().unwrap(), Audience::Any, &[])
                .await
                .unwrap();
            if valid_from(&m, "l2") == 1 {
                break;
            }
            assert!(Instant::now() < deadline, "the pool never reached L2");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    c.bench_function("l2_hit_redis", |b| {
        b.to_async(&rt).iter_custom(|iters| {
            let (pool, shared, ec) = (&pool, shared.clone(), &ec);
            async move {
                let mut total = Duration::ZERO;
                let mut done = 0u64;
                while done < iters {
                    let (fresh, m) = validator_with_metrics(&[ec], shared.clone(), true).await;
                    let mut here = 0u64;
                    for t in pool.iter().take((iters - done) as usize) {
                        let at = Instant::now();
                        fresh.validate(t, Audience::Any, &[]).await.unwrap();
                        total += at.elapsed();
                        done += 1;
                        here += 1;
                    }
                    // Otherwise this would time JWT verification (an L2
                    // miss) and still report it as an L2 hit.
                    assert_eq!(
                        (valid_from(&m, "l2"), valid_from(&m, "jwt")),
                        (here, 0),
                        "every lookup in l2_hit_redis must be an L2 hit"
                    );
                }
                total
            }
        })
    });

    // 100,000 distinct ES256 tokens; requests pick the hot 1,000 80 % of the time.
    // Under `cargo test` (no `--bench`) criterion runs each bench once: keep the set small.
    let distinct = if std::env::args().any(|a| a == "--bench") {
        100_000
    } else {
        2_000
    };
    let tokens: Vec<String> = (0..distinct).map(|n| ec.token(n)).collect();
    let mixed = rt.block_on(validator(&[&ec], local.clone(), false));
    let mut seq = 0x9e37_79b9_7f4a_7c15_u64;
    let mut group = c.benchmark_group("mixed_100k");
    group.sample_size(10);
    group.bench_function("request", |b| {
        b.to_async(&rt).iter(|| {
            // xorshift: cheap, deterministic request mix.
            seq ^= seq << 13;
            seq ^= seq >> 7;
            seq ^= seq << 17;
            let i = if seq % 10 < 8 {
                (seq >> 8) as usize % 1_000
            } else {
                (seq >> 8) as usize % tokens.len()
            };
            let (t, v) = (&tokens[i], &mixed);
            async move { v.validate(t, Audience::Any, &[]).await.unwrap() }
        })
    });
    group.finish();
    drop(redis);
}

criterion_group!(token_cache, benches);
criterion_main!(token_cache);
