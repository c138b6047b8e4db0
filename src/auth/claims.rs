//! The claims the gateway reads from an access token (RFC 9068 §2.2), an
//! introspection answer (RFC 7662 §2.2) or a userinfo answer (OIDC Core
//! §5.3), and how they become a [`Principal`].
//!
//! Providers disagree on names: scopes arrive as a space-separated `scope`
//! (RFC 9068, RFC 7662), an `scp` array (Azure AD, Okta) or `permissions`
//! (WorkOS); the client as `client_id` or `azp`. All are accepted.

use serde::Deserialize;

use super::Principal;

#[derive(Deserialize, Default)]
pub struct Claims {
    #[serde(default)]
    pub(crate) sub: Option<String>,
    #[serde(default)]
    pub(crate) username: Option<String>,
    #[serde(default)]
    pub(crate) exp: Option<u64>,
    #[serde(default)]
    pub(crate) email: Option<String>,
    #[serde(default)]
    pub(crate) name: Option<String>,
    #[serde(default)]
    pub(crate) picture: Option<String>,
    #[serde(default, deserialize_with = "lenient_bool")]
    pub(crate) email_verified: bool,
    #[serde(default)]
    pub(crate) org_id: Option<String>,
    #[serde(default)]
    pub(crate) groups: Option<Vec<String>>,
    #[serde(default)]
    pub(crate) scope: Option<String>,
    #[serde(default)]
    pub(crate) scp: Option<OneOrMany>,
    #[serde(default)]
    pub(crate) permissions: Option<Vec<String>>,
    #[serde(default)]
    pub(crate) client_id: Option<String>,
    #[serde(default)]
    pub(crate) azp: Option<String>,
    #[serde(default)]
    pub(crate) aud: Option<OneOrMany>,
    #[serde(default)]
    pub(crate) sid: Option<String>,
}

/// A claim that may be a string or an array of strings (RFC 7519 §4.1.3).
#[derive(Deserialize)]
#[serde(untagged)]
pub(crate) enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    fn into_vec(self) -> Vec<String> {
        match self {
            Self::One(s) => s
                .split(' ')
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
            Self::Many(v) => v,
        }
    }
}

impl Claims {
    /// `default_exp` applies when the source states no expiry.
    pub fn into_principal(self, default_exp: Option<u64>) -> Principal {
        let mut scopes: Vec<String> = self
            .scope
            .as_deref()
            .map(|s| {
                s.split(' ')
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        if let Some(scp) = self.scp {
            scopes.extend(scp.into_vec());
        }
        if let Some(p) = self.permissions {
            scopes.extend(p);
        }
        scopes.sort_unstable();
        scopes.dedup();
        let audience = match self.aud {
            Some(OneOrMany::One(a)) => vec![a],
            Some(OneOrMany::Many(v)) => v,
            None => Vec::new(),
        };
        Principal {
            subject: self.sub.or(self.username).unwrap_or_default(),
            email: self.email,
            name: self.name,
            picture: self.picture,
            email_verified: self.email_verified,
            org_id: self.org_id,
            groups: self.groups.unwrap_or_default(),
            scopes,
            client_id: self.client_id.or(self.azp),
            audience,
            expires_at: self.exp.or(default_exp).unwrap_or(0),
            session_id: self.sid,
            any_audience: false,
        }
    }
}

/// An OpenID Connect userinfo answer (OIDC Core §5.3.2), also the user the
/// OAuth bridge signs in.
#[derive(Debug, Clone, Default, serde::Serialize, Deserialize, PartialEq)]
pub struct UserInfo {
    pub(crate) sub: String,
    #[serde(default)]
    pub(crate) email: Option<String>,
    #[serde(default)]
    pub(crate) name: Option<String>,
    #[serde(default)]
    pub(crate) picture: Option<String>,
    #[serde(default, deserialize_with = "lenient_bool")]
    pub(crate) email_verified: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) org_id: Option<String>,
    /// Group names (WorkOS SSO profiles).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) groups: Vec<String>,
}

/// `email_verified` as a boolean; some providers send the string `"true"`.
/// Anything else (absent, null, another string) is false: fail closed.
fn lenient_bool<'de, D: serde::Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Loose {
        Bool(bool),
        Text(String),
        Other(serde::de::IgnoredAny),
    }
    Ok(match Option::<Loose>::deserialize(d)? {
        Some(Loose::Bool(b)) => b,
        Some(Loose::Text(t)) => t == "true",
        Some(Loose::Other(_)) | None => false,
    })
}

impl UserInfo {
    /// Userinfo proves the token works at the provider but says nothing of
    /// its audience; using it is an explicit operator choice.
    pub fn into_principal(self, exp: u64) -> Principal {
        Principal {
            subject: self.sub,
            email: self.email,
            name: self.name,
            picture: self.picture,
            email_verified: self.email_verified,
            org_id: self.org_id,
            groups: self.groups,
            scopes: Vec::new(),
            client_id: None,
            audience: Vec::new(),
            expires_at: exp,
            session_id: None,
            any_audience: true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_from_every_known_claim() {
        let c: Claims = serde_json::from_value(serde_json::json!({
            "sub": "u1", "scope": "read write", "scp": ["admin"], "permissions": ["read"],
            "azp": "client-a", "aud": "https://gw/apps/a/mcp", "exp": 10
        }))
        .unwrap();
        let p = c.into_principal(None);
        assert_eq!(p.scopes, vec!["admin", "read", "write"]);
        assert_eq!(p.client_id.as_deref(), Some("client-a"));
        assert_eq!(p.audience, vec!["https://gw/apps/a/mcp"]);
        assert_eq!(p.expires_at, 10);
    }
}
