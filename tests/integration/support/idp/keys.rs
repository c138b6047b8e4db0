//! The test IdP's signing key: a fresh RSA-2048 key pair generated with
//! aws-lc-rs, used through jsonwebtoken to sign RS256 tokens and published as
//! a JWK (`n`, `e` base64url) so relying parties can verify them.

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa::{KeyPair, KeySize};
use aws_lc_rs::signature::KeyPair as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Value};

/// One RS256 signing key with its key id.
pub struct SigningKey {
    pub kid: String,
    encoding: EncodingKey,
    decoding: DecodingKey,
    n: String,
    e: String,
}

impl SigningKey {
    /// Generates a new RSA-2048 key; `kid` names it in token headers and the JWKS.
    pub fn generate(kid: impl Into<String>) -> SigningKey {
        let pair = KeyPair::generate(KeySize::Rsa2048).expect("generate an RSA-2048 key");
        let pkcs8 = pair.as_der().expect("export the key as PKCS#8");
        // jsonwebtoken's DER constructor wants PKCS#1; its PEM reader unwraps PKCS#8.
        let pem = pem_wrap("PRIVATE KEY", pkcs8.as_ref());
        let encoding = EncodingKey::from_rsa_pem(pem.as_bytes()).expect("load the RSA key");
        let public = pair.public_key();
        let modulus = public.modulus();
        let exponent = public.exponent();
        let (n, e) = (
            modulus.big_endian_without_leading_zero(),
            exponent.big_endian_without_leading_zero(),
        );
        SigningKey {
            kid: kid.into(),
            encoding,
            decoding: DecodingKey::from_rsa_raw_components(n, e),
            n: URL_SAFE_NO_PAD.encode(n),
            e: URL_SAFE_NO_PAD.encode(e),
        }
    }

    /// The public half as a JWK, as served at `/jwks`.
    pub fn jwk(&self) -> Value {
        json!({
            "kty": "RSA",
            "use": "sig",
            "alg": "RS256",
            "kid": self.kid,
            "n": self.n,
            "e": self.e,
        })
    }

    /// Signs `claims` as an RS256 JWT whose header names this key.
    pub fn sign(&self, claims: &impl Serialize) -> String {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(self.kid.clone());
        header.typ = Some("JWT".into());
        jsonwebtoken::encode(&header, claims, &self.encoding).expect("sign a JWT")
    }

    /// Verifies a token signed by this key (signature, `exp`, `iss`); the audience is not checked.
    pub fn verify<T: DeserializeOwned>(&self, token: &str, issuer: &str) -> Option<T> {
        let mut validation = Validation::new(Algorithm::RS256);
        validation.set_issuer(&[issuer]);
        validation.validate_aud = false;
        validation.leeway = 0;
        jsonwebtoken::decode::<T>(token, &self.decoding, &validation)
            .ok()
            .map(|data| data.claims)
    }
}

/// PEM-armours DER bytes (64-character lines).
fn pem_wrap(label: &str, der: &[u8]) -> String {
    let body = STANDARD.encode(der);
    let mut pem = format!("-----BEGIN {label}-----\n");
    for line in body.as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        pem.push('\n');
    }
    pem.push_str(&format!("-----END {label}-----\n"));
    pem
}
