//! Secrets in memory: a redacting newtype so a secret cannot reach a log line,
//! a `Debug` dump or an API response by accident.
//!
//! Secrets are read from the environment (`*_env` config keys), never
//! required inline in a config file. Secrets at rest are sealed by
//! [`crate::store::vault::Vault`].

use std::fmt;
use std::sync::Arc;

/// A secret string. `Debug` and `Display` print `***`; use [`Secret::expose`]
/// at the one place the value is sent.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Secret(Arc<str>);

impl Secret {
    pub(crate) fn new(value: impl Into<Arc<str>>) -> Self {
        Self(value.into())
    }

    /// Reads the environment variable `name`; `None` when unset or empty.
    pub(crate) fn from_env(name: &str) -> Option<Self> {
        std::env::var(name)
            .ok()
            .filter(|v| !v.is_empty())
            .map(Self::new)
    }

    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_prints_the_value() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?} {s}"), "Secret(***) ***");
        assert_eq!(s.expose(), "hunter2");
    }
}
