//! `[tracing]`: where OpenTelemetry spans go (OTLP/HTTP with protobuf
//! bodies, OTLP specification §"OTLP/HTTP") and how many traces are kept
//! (a parent-based trace-id ratio sampler, OpenTelemetry trace SDK spec
//! §"Sampling").

use std::time::Duration;

use serde::Deserialize;

/// `[tracing]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTracing {
    /// The collector's traces URL (`http://collector:4318/v1/traces`);
    /// absent: tracing is off.
    pub(crate) otlp_endpoint: Option<String>,
    /// Fraction of new traces kept (0.0–1.0, default 1.0).
    pub(crate) sample_ratio: Option<f64>,
    /// `service.name` of the exported resource (default `drio-gateway`).
    pub(crate) service_name: Option<String>,
    /// Extra export headers: header name → environment variable holding
    /// its value (e.g. a collector's API key), never the value itself.
    #[serde(default)]
    pub(crate) headers_env: std::collections::BTreeMap<String, String>,
    /// Longest wait before a batch is sent (default 5000 ms).
    pub(crate) batch_delay_ms: Option<u64>,
    /// Spans buffered before new ones are dropped (default 2048).
    pub(crate) queue: Option<usize>,
}

/// Validated `[tracing]`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct TracingConfig {
    pub(crate) endpoint: String,
    pub(crate) sample_ratio: f64,
    pub(crate) service_name: String,
    /// (header name, environment variable).
    pub(crate) headers_env: Vec<(String, String)>,
    pub(crate) batch_delay: Duration,
    pub(crate) queue: usize,
}

/// Validates `[tracing]`; `None`: off. Errors name the key below `tracing.`.
pub(crate) fn tracing(raw: &RawTracing) -> Result<Option<TracingConfig>, (String, String)> {
    let Some(endpoint) = &raw.otlp_endpoint else {
        return Ok(None);
    };
    let url = url::Url::parse(endpoint)
        .map_err(|e| ("otlp_endpoint".to_string(), format!("not a URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err((
            "otlp_endpoint".into(),
            "must be an http(s) URL with a host".into(),
        ));
    }
    let sample_ratio = raw.sample_ratio.unwrap_or(1.0);
    if !(0.0..=1.0).contains(&sample_ratio) {
        return Err(("sample_ratio".into(), "must be between 0.0 and 1.0".into()));
    }
    let service_name = raw
        .service_name
        .clone()
        .unwrap_or_else(|| "drio-gateway".into());
    if service_name.trim().is_empty() {
        return Err(("service_name".into(), "must not be empty".into()));
    }
    let mut headers_env = Vec::new();
    for (name, var) in &raw.headers_env {
        if http::HeaderName::try_from(name.as_str()).is_err() {
            return Err((
                format!("headers_env.{name}"),
                "not a valid header name".into(),
            ));
        }
        if var.trim().is_empty() {
            return Err((format!("headers_env.{name}"), "must name a variable".into()));
        }
        headers_env.push((name.clone(), var.clone()));
    }
    let queue = raw.queue.unwrap_or(2048);
    if queue == 0 {
        return Err(("queue".into(), "must be greater than 0".into()));
    }
    let batch_delay_ms = raw.batch_delay_ms.unwrap_or(5000);
    if batch_delay_ms == 0 {
        return Err(("batch_delay_ms".into(), "must be greater than 0".into()));
    }
    Ok(Some(TracingConfig {
        endpoint: endpoint.clone(),
        sample_ratio,
        service_name,
        headers_env,
        batch_delay: Duration::from_millis(batch_delay_ms),
        queue,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(endpoint: Option<&str>, ratio: Option<f64>) -> RawTracing {
        RawTracing {
            otlp_endpoint: endpoint.map(str::to_string),
            sample_ratio: ratio,
            ..Default::default()
        }
    }

    #[test]
    fn absent_endpoint_is_off() {
        assert_eq!(tracing(&raw(None, Some(0.5))), Ok(None));
    }

    #[test]
    fn defaults_and_bad_values_name_the_key() {
        let c = tracing(&raw(Some("http://c:4318/v1/traces"), None))
            .unwrap()
            .unwrap();
        assert_eq!(c.sample_ratio, 1.0);
        assert_eq!(c.service_name, "drio-gateway");
        for (r, key) in [
            (raw(Some("ftp://c/v1/traces"), None), "otlp_endpoint"),
            (raw(Some("not a url"), None), "otlp_endpoint"),
            (raw(Some("http://c/v1/traces"), Some(1.5)), "sample_ratio"),
            (raw(Some("http://c/v1/traces"), Some(-0.1)), "sample_ratio"),
            (
                raw(Some("http://c/v1/traces"), Some(f64::NAN)),
                "sample_ratio",
            ),
        ] {
            assert_eq!(tracing(&r).unwrap_err().0, key);
        }
    }
}
