//! Rate-limit settings as written (TOML `[limits]`, `[[apps]] limits`, and
//! the app config API's `limits`) and their validation into [`Rate`]s.
//!
//! A rate is `requests` per `per_seconds` with a `burst` (how many may come
//! at once; default `requests`), enforced as a GCRA (see [`super::gcra`]):
//! one request every `per_seconds / requests`, up to `burst` ahead.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// A field (relative to where the limits are written) and what is wrong
/// with it: the shape `crate`'s config validation reports in. Kept local
/// so the config layer can depend on these types, not the other way round.
pub(crate) type FieldError = (String, String);

const MAX_REQUESTS: u64 = 1_000_000;
const MAX_PERIOD_SECONDS: u64 = 86_400;
const MAX_TOOLS: usize = 200;
const MAX_TOOL_NAME: usize = 128;

/// One rate as written. `perSeconds` in the API, `per_seconds` in TOML.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRate {
    pub(crate) requests: u64,
    #[serde(rename = "perSeconds", alias = "per_seconds")]
    pub(crate) per_seconds: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) burst: Option<u64>,
}

/// An app's limits as written (`[[apps]] limits = {…}`, API `config.limits`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawLimits {
    /// Each user (token subject; the client address on a public app).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) user: Option<RawRate>,
    /// Each OAuth client (the token's `client_id`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) client: Option<RawRate>,
    /// The whole app, every caller together.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) app: Option<RawRate>,
    /// `tools/call` of one tool, every caller together.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub(crate) tools: BTreeMap<String, RawRate>,
}

/// `[limits]`: what happens when the shared store fails, and defaults for
/// every app that does not set its own.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawGatewayLimits {
    /// `allow` (default: fail open) or `deny`.
    pub(crate) on_store_error: Option<String>,
    pub(crate) user: Option<RawRate>,
    pub(crate) client: Option<RawRate>,
    pub(crate) app: Option<RawRate>,
}

/// A validated rate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Rate {
    pub(crate) requests: u64,
    pub(crate) per_seconds: u64,
    pub(crate) burst: u64,
}

impl Rate {
    /// Microseconds between two requests at the steady rate.
    pub(crate) fn interval_us(&self) -> f64 {
        self.per_seconds as f64 * 1e6 / self.requests as f64
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} requests per {} s, burst {}",
            self.requests, self.per_seconds, self.burst
        )
    }
}

/// An app's validated limits; `raw` is kept to show them back in the API.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct AppLimits {
    pub(crate) user: Option<Rate>,
    pub(crate) client: Option<Rate>,
    pub(crate) app: Option<Rate>,
    pub(crate) tools: BTreeMap<String, Rate>,
    pub(crate) raw: RawLimits,
}

impl AppLimits {
    pub(crate) fn is_empty(&self) -> bool {
        self.user.is_none() && self.client.is_none() && self.app.is_none() && self.tools.is_empty()
    }
}

/// What a failing store means for a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OnStoreError {
    Allow,
    Deny,
}

impl OnStoreError {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Allow => "allow",
            Self::Deny => "deny",
        }
    }
}

/// The validated `[limits]` table.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct GatewayLimits {
    pub(crate) on_store_error: OnStoreError,
    pub(crate) user: Option<Rate>,
    pub(crate) client: Option<Rate>,
    pub(crate) app: Option<Rate>,
}

impl Default for GatewayLimits {
    fn default() -> Self {
        Self {
            on_store_error: OnStoreError::Allow,
            user: None,
            client: None,
            app: None,
        }
    }
}

fn rate(raw: &RawRate, field: &str) -> Result<Rate, FieldError> {
    let bad = |k: &str, m: String| Err((format!("{field}.{k}"), m));
    if !(1..=MAX_REQUESTS).contains(&raw.requests) {
        return bad("requests", format!("must be 1 to {MAX_REQUESTS}"));
    }
    if !(1..=MAX_PERIOD_SECONDS).contains(&raw.per_seconds) {
        return bad("per_seconds", format!("must be 1 to {MAX_PERIOD_SECONDS}"));
    }
    let burst = raw.burst.unwrap_or(raw.requests);
    if !(1..=MAX_REQUESTS).contains(&burst) {
        return bad("burst", format!("must be 1 to {MAX_REQUESTS}"));
    }
    Ok(Rate {
        requests: raw.requests,
        per_seconds: raw.per_seconds,
        burst,
    })
}

fn opt(raw: &Option<RawRate>, field: &str) -> Result<Option<Rate>, FieldError> {
    raw.as_ref().map(|r| rate(r, field)).transpose()
}

/// Validates an app's limits; field names are relative to the app (`limits.…`).
pub(crate) fn app_limits(raw: Option<RawLimits>) -> Result<AppLimits, FieldError> {
    let Some(raw) = raw else {
        return Ok(AppLimits::default());
    };
    if raw.tools.len() > MAX_TOOLS {
        return Err(("limits.tools".into(), format!("at most {MAX_TOOLS} tools")));
    }
    let mut tools = BTreeMap::new();
    for (name, r) in &raw.tools {
        if name.is_empty() || name.len() > MAX_TOOL_NAME || name.chars().any(char::is_control) {
            return Err((
                "limits.tools".into(),
                format!(
                    "tool names must be 1 to {MAX_TOOL_NAME} characters without control characters"
                ),
            ));
        }
        tools.insert(name.clone(), rate(r, &format!("limits.tools.{name}"))?);
    }
    Ok(AppLimits {
        user: opt(&raw.user, "limits.user")?,
        client: opt(&raw.client, "limits.client")?,
        app: opt(&raw.app, "limits.app")?,
        tools,
        raw,
    })
}

/// Validates `[limits]`; field names are relative to it.
pub(crate) fn gateway_limits(raw: &RawGatewayLimits) -> Result<GatewayLimits, FieldError> {
    let on_store_error = match raw.on_store_error.as_deref() {
        None | Some("allow") => OnStoreError::Allow,
        Some("deny") => OnStoreError::Deny,
        Some(other) => {
            return Err((
                "on_store_error".into(),
                format!("`{other}` is not allow or deny"),
            ))
        }
    };
    Ok(GatewayLimits {
        on_store_error,
        user: opt(&raw.user, "user")?,
        client: opt(&raw.client, "client")?,
        app: opt(&raw.app, "app")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(requests: u64, per_seconds: u64, burst: Option<u64>) -> RawRate {
        RawRate {
            requests,
            per_seconds,
            burst,
        }
    }

    #[test]
    fn rates_are_bounded_and_burst_defaults_to_requests() {
        let ok = app_limits(Some(RawLimits {
            user: Some(r(10, 60, None)),
            ..Default::default()
        }))
        .unwrap();
        assert_eq!(ok.user.unwrap().burst, 10);
        for (bad, field) in [
            (r(0, 60, None), "limits.user.requests"),
            (r(1, 0, None), "limits.user.per_seconds"),
            (r(1, 86_401, None), "limits.user.per_seconds"),
            (r(1, 1, Some(0)), "limits.user.burst"),
        ] {
            let raw = RawLimits {
                user: Some(bad),
                ..Default::default()
            };
            assert_eq!(app_limits(Some(raw)).unwrap_err().0, field);
        }
    }

    #[test]
    fn api_and_toml_spellings_both_parse() {
        let api: RawRate =
            serde_json::from_str(r#"{"requests":5,"perSeconds":10,"burst":2}"#).unwrap();
        let toml: RawRate = toml::from_str("requests = 5\nper_seconds = 10\nburst = 2").unwrap();
        assert_eq!(api, toml);
        assert!(serde_json::from_str::<RawRate>(r#"{"requests":5,"perSeconds":1,"x":1}"#).is_err());
        assert_eq!(
            serde_json::to_value(&api).unwrap(),
            serde_json::json!({"requests":5,"perSeconds":10,"burst":2})
        );
    }

    #[test]
    fn on_store_error_is_allow_or_deny() {
        let mut raw = RawGatewayLimits::default();
        assert_eq!(
            gateway_limits(&raw).unwrap().on_store_error,
            OnStoreError::Allow
        );
        raw.on_store_error = Some("maybe".into());
        assert_eq!(gateway_limits(&raw).unwrap_err().0, "on_store_error");
    }
}
