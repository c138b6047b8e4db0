//! `[audit]` and an app's `audit = { … }`: where audit events go and whether
//! an app's events may carry the call's arguments (with JSON Pointer
//! redactions, RFC 6901).

use std::path::PathBuf;

use serde::Deserialize;

/// `[audit]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAudit {
    /// Default true: auditing costs nothing until a sink is configured.
    pub(crate) enabled: Option<bool>,
    /// JSON lines on standard output (default false: the access log is there).
    pub(crate) stdout: Option<bool>,
    pub(crate) file: Option<RawFileSink>,
    /// The store as a capped stream per app, read by `GET /api/v1/apps/{id}/audit`.
    pub(crate) store: Option<RawStoreSink>,
    /// Events buffered for the writer before new ones are dropped (default 4096).
    pub(crate) queue: Option<usize>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawFileSink {
    pub(crate) path: String,
    /// Size at which the file is rotated (default 100 MiB).
    pub(crate) max_bytes: Option<u64>,
    /// Rotated files kept as `path.1` … `path.{keep}` (default 5).
    pub(crate) keep: Option<usize>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawStoreSink {
    /// Entries kept per app (default 10000).
    pub(crate) max_entries: Option<usize>,
}

/// An app's opt-in (`audit = { include_arguments = true, redact = ["/password"] }`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAppAudit {
    #[serde(default)]
    pub(crate) include_arguments: bool,
    /// JSON Pointers into the arguments whose values are replaced.
    #[serde(default)]
    pub(crate) redact: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AuditConfig {
    pub(crate) enabled: bool,
    pub(crate) stdout: bool,
    pub(crate) file: Option<FileSink>,
    /// Entries kept per app in the store; None: not stored.
    pub(crate) store_max_entries: Option<usize>,
    pub(crate) queue: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FileSink {
    pub(crate) path: PathBuf,
    pub(crate) max_bytes: u64,
    pub(crate) keep: usize,
}

impl Default for AuditConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            stdout: false,
            file: None,
            store_max_entries: None,
            queue: 4096,
        }
    }
}

impl AuditConfig {
    /// Whether any event is written anywhere: only then is a body read for it.
    pub(crate) fn active(&self) -> bool {
        self.enabled && (self.stdout || self.file.is_some() || self.store_max_entries.is_some())
    }
}

/// What an app's events may carry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct AppAudit {
    pub(crate) include_arguments: bool,
    pub(crate) redact: Vec<String>,
}

/// Validates `[audit]`; errors name the key below `audit.`.
pub(crate) fn audit(raw: &RawAudit) -> Result<AuditConfig, (String, String)> {
    let d = AuditConfig::default();
    let file = match &raw.file {
        None => None,
        Some(f) => {
            if f.path.trim().is_empty() {
                return Err(("file.path".into(), "must not be empty".into()));
            }
            let max_bytes = f.max_bytes.unwrap_or(100 * 1024 * 1024);
            if max_bytes < 1024 {
                return Err(("file.max_bytes".into(), "must be at least 1024".into()));
            }
            Some(FileSink {
                path: PathBuf::from(&f.path),
                max_bytes,
                keep: f.keep.unwrap_or(5),
            })
        }
    };
    let store_max_entries = match &raw.store {
        None => None,
        Some(s) => match s.max_entries.unwrap_or(10_000) {
            0 => return Err(("store.max_entries".into(), "must be greater than 0".into())),
            n => Some(n),
        },
    };
    let queue = raw.queue.unwrap_or(d.queue);
    if queue == 0 {
        return Err(("queue".into(), "must be greater than 0".into()));
    }
    Ok(AuditConfig {
        enabled: raw.enabled.unwrap_or(d.enabled),
        stdout: raw.stdout.unwrap_or(d.stdout),
        file,
        store_max_entries,
        queue,
    })
}

/// Validates an app's `audit`: every redaction is a JSON Pointer.
pub(crate) fn app_audit(raw: Option<RawAppAudit>) -> Result<AppAudit, (String, String)> {
    let raw = raw.unwrap_or_default();
    if let Some(i) = raw
        .redact
        .iter()
        .position(|p| !p.starts_with('/') || p.len() < 2)
    {
        return Err((
            format!("audit.redact[{i}]"),
            "must be a JSON Pointer into the arguments, like /password".into(),
        ));
    }
    Ok(AppAudit {
        include_arguments: raw.include_arguments,
        redact: raw.redact,
    })
}
