//! The monitoring files in `deploy/` against a live gateway (issue 17, item 5):
//! every metric named by the Grafana dashboard's queries
//! (`deploy/grafana/drio-gateway.json`) and by the alert rules
//! (`deploy/prometheus/alerts.yml`) must exist in the `/metrics` of a real
//! gateway that served a little traffic. A renamed or removed metric, or a
//! typo in a query, fails here instead of in someone's empty panel.
//!
//! Metric names are taken from PromQL (Prometheus' query language,
//! <https://prometheus.io/docs/prometheus/latest/querying/basics/>) with a
//! small lexer: strings, label matchers `{…}`, ranges `[…]`, grouping lists
//! (`by (…)`, `on (…)`, …), numbers, keywords and Grafana variables are
//! skipped; an identifier followed by `(` is a function or aggregation;
//! every other identifier is a metric name. `_bucket`, `_sum` and `_count`
//! of a histogram family count as the family.

use std::collections::BTreeSet;
use std::path::PathBuf;

use serde_json::{json, Value};

use crate::support::gateway::{send, AppSpec, Mcp, SseReader, TestGateway};
use crate::support::idp::TestIdp;
use crate::support::ports::free_port;
use crate::support::upstream::TestUpstream;

/// Series Prometheus makes itself when it scrapes; no exporter serves them.
const SCRAPE_SERIES: [&str; 1] = ["up"];

/// Keywords that look like identifiers but are not metric names.
const KEYWORDS: [&str; 12] = [
    "and",
    "or",
    "unless",
    "bool",
    "offset",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "atan2",
];
/// Aggregation operators, which may put `by (…)` before their argument.
const AGGREGATIONS: [&str; 14] = [
    "sum",
    "min",
    "max",
    "avg",
    "group",
    "stddev",
    "stdvar",
    "count",
    "count_values",
    "bottomk",
    "topk",
    "quantile",
    "limitk",
    "limit_ratio",
];
/// Keywords followed by a parenthesised list of label names, not an expression.
const LABEL_LISTS: [&str; 6] = [
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
];

fn repo_file(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// Index just past the bracket that closes the one at `open`.
fn skip_balanced(chars: &[char], open: usize, close: char) -> usize {
    let opener = chars[open];
    let (mut depth, mut i) = (0usize, open);
    while i < chars.len() {
        match chars[i] {
            '"' | '\'' | '`' => i = skip_string(chars, i) - 1,
            c if c == opener => depth += 1,
            c if c == close => {
                depth -= 1;
                if depth == 0 {
                    return i + 1;
                }
            }
            _ => {}
        }
        i += 1;
    }
    panic!(
        "unbalanced {opener} in {}",
        chars.iter().collect::<String>()
    );
}

/// Index just past the string literal starting at `start`.
fn skip_string(chars: &[char], start: usize) -> usize {
    let quote = chars[start];
    let mut i = start + 1;
    while i < chars.len() {
        match chars[i] {
            '\\' if quote != '`' => i += 2,
            c if c == quote => return i + 1,
            _ => i += 1,
        }
    }
    panic!(
        "unterminated string in {}",
        chars.iter().collect::<String>()
    );
}

fn next_non_space(chars: &[char], mut i: usize) -> Option<(usize, char)> {
    while i < chars.len() && chars[i].is_whitespace() {
        i += 1;
    }
    chars.get(i).map(|c| (i, *c))
}

/// Every metric name a PromQL expression selects.
fn promql_metric_names(expr: &str) -> BTreeSet<String> {
    let chars: Vec<char> = expr.chars().collect();
    let mut names = BTreeSet::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '"' || c == '\'' || c == '`' {
            i = skip_string(&chars, i);
        } else if c == '{' {
            i = skip_balanced(&chars, i, '}');
        } else if c == '[' {
            i = skip_balanced(&chars, i, ']');
        } else if c == '$' {
            // Grafana variables: `$app`, `$__rate_interval`, `${DS}`.
            i += 1;
            if chars.get(i) == Some(&'{') {
                i = skip_balanced(&chars, i, '}');
            } else {
                while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                    i += 1;
                }
            }
        } else if c.is_ascii_digit()
            || (c == '.' && chars.get(i + 1).is_some_and(char::is_ascii_digit))
        {
            // Numbers and durations: 0.99, 1e-3, 5m, 0x1F.
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '.') {
                let exp_sign =
                    matches!(chars[i], 'e' | 'E') && matches!(chars.get(i + 1), Some('+' | '-'));
                i += if exp_sign { 2 } else { 1 };
            }
        } else if c.is_ascii_alphabetic() || c == '_' || c == ':' {
            let start = i;
            while i < chars.len()
                && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == ':')
            {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let next = next_non_space(&chars, i);
            if LABEL_LISTS.contains(&word.as_str()) {
                if let Some((at, '(')) = next {
                    i = skip_balanced(&chars, at, ')');
                }
            } else if KEYWORDS.contains(&word.as_str())
                || ["inf", "nan"].contains(&word.to_ascii_lowercase().as_str())
            {
            } else if matches!(next, Some((_, '('))) {
                // A function or aggregation: its arguments are read next.
            } else if AGGREGATIONS.contains(&word.as_str()) && {
                let rest: String = chars[i..].iter().collect();
                let next_word = rest
                    .trim_start()
                    .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .next()
                    .unwrap_or_default()
                    .to_string();
                next_word == "by" || next_word == "without"
            } {
                // `sum by (app) (…)`: the grouping list is skipped next.
            } else {
                names.insert(word);
            }
        } else {
            i += 1;
        }
    }
    names
}

/// The metric a Grafana query names: `label_values(metric, label)` is a
/// variable query, not PromQL.
fn grafana_query_names(query: &str) -> BTreeSet<String> {
    match query.trim().strip_prefix("label_values(") {
        Some(args) => {
            let metric = args.split(',').next().unwrap_or_default();
            promql_metric_names(metric)
        }
        None => promql_metric_names(query),
    }
}

/// Every PromQL string in the dashboard: panel targets and variable queries.
fn dashboard_queries(dashboard: &Value) -> Vec<String> {
    let mut out = Vec::new();
    fn walk(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(map) => {
                for (k, v) in map {
                    match (k.as_str(), v) {
                        ("expr", Value::String(s)) => out.push(s.clone()),
                        ("query" | "definition", Value::String(s)) if s.contains("drio_") => {
                            out.push(s.clone())
                        }
                        _ => walk(v, out),
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|i| walk(i, out)),
            _ => {}
        }
    }
    walk(dashboard, &mut out);
    out
}

fn alert_exprs() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(repo_file("deploy/prometheus/alerts.yml")).unwrap();
    let doc: Value = serde_yaml_ng::from_str(&text).expect("alerts.yml is YAML");
    let mut out = Vec::new();
    for group in doc["groups"].as_array().expect("groups") {
        for rule in group["rules"].as_array().expect("rules") {
            let name = rule["alert"].as_str().or(rule["record"].as_str()).unwrap();
            out.push((name.to_string(), rule["expr"].as_str().unwrap().to_string()));
        }
    }
    out
}

/// The metric family a name belongs to in this exposition, if any sample of it is there.
fn family_in(exposition: &str, name: &str) -> Option<String> {
    let histogram = |base: &str| exposition.contains(&format!("# TYPE {base} histogram\n"));
    let family = ["_bucket", "_sum", "_count"]
        .iter()
        .find_map(|s| name.strip_suffix(s).filter(|base| histogram(base)))
        .unwrap_or(name);
    let has_sample = exposition.lines().any(|l| {
        !l.starts_with('#')
            && l.strip_prefix(family).is_some_and(|rest| {
                rest.starts_with(['{', ' '])
                    || ["_bucket{", "_sum", "_count"]
                        .iter()
                        .any(|s| rest.starts_with(s))
            })
    });
    has_sample.then(|| family.to_string())
}

#[test]
fn the_promql_lexer_finds_metric_names_and_nothing_else() {
    let expr = r#"histogram_quantile(0.99, sum by (app, le) (rate(drio_x_bucket{app!~"_none|{a}", k='v'}[5m])))
        > 2.5e-1 and on (app) group_left (kind) sum without (le) (rate(drio_y_total[1m] offset 5m))
        unless count(drio_z) by (version) / ignoring(a) $__rate_interval + ${DS} + Inf
        or absent(up{job="x"}) or vector(1) or sum(rate(job:drio_rec:rate5m[$__rate_interval]))"#;
    let names: Vec<String> = promql_metric_names(expr).into_iter().collect();
    assert_eq!(
        names,
        [
            "drio_x_bucket",
            "drio_y_total",
            "drio_z",
            "job:drio_rec:rate5m",
            "up"
        ]
    );
    assert_eq!(
        grafana_query_names("label_values(drio_requests_total, app)"),
        BTreeSet::from(["drio_requests_total".to_string()])
    );
}

/// Drives the traffic every dashboard panel and alert needs to see at least
/// one series of, then checks the names against the live exposition.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_metric_the_dashboard_and_alerts_name_is_served() {
    let (idp, up) = (TestIdp::start().await, TestUpstream::start().await);
    let dead = format!("http://127.0.0.1:{}", free_port());
    let gw = TestGateway::new()
        .app("notes", &up)
        .allowed_origin("https://allowed.example")
        .app("secure", &up)
        .protected()
        .app_with(AppSpec::new("dead", &dead))
        .raw_toml(&format!(
            "[auth]\nissuer = \"{iss}\"\njwks_uri = \"{iss}/jwks\"\n",
            iss = idp.issuer()
        ))
        .start()
        .await;

    // Requests, durations and a server-sent event stream.
    let mcp = Mcp::connect(&gw, "notes").await;
    let args = json!({"name": "stream", "arguments": {"count": 1, "delay_ms": 10}});
    let mut events = SseReader::new(mcp.call(2, "tools/call", args).await);
    while events.next().await.is_some() {}
    // A refused browser origin.
    let from_evil = gw.client().post(gw.app_url("notes", "/mcp"));
    let resp = send(
        from_evil
            .header("origin", "https://evil.example")
            .body("{}"),
    )
    .await;
    assert_eq!(resp.status(), 403);
    // Bearer validations: verified (JWT), then from the in-process cache; a bad one.
    let token = idp.mint_access_token("user_ada", &gw.app_url("secure", "/mcp"), "", 600);
    for bearer in [token.as_str(), token.as_str(), "not-a-token"] {
        let req = gw
            .client()
            .post(gw.app_url("secure", "/mcp"))
            .bearer_auth(bearer);
        let _ = send(req.json(&json!({"jsonrpc": "2.0", "id": 1, "method": "ping"}))).await;
    }
    // An upstream that refuses connections.
    let resp = send(gw.client().post(gw.app_url("dead", "/mcp")).body("{}")).await;
    assert_eq!(resp.status(), 502);

    let exposition = gw
        .metrics_until(|m| {
            m.contains("drio_upstream_errors_total{")
                && m.contains("drio_stream_duration_seconds_count{")
        })
        .await;

    let dashboard: Value = serde_json::from_str(
        &std::fs::read_to_string(repo_file("deploy/grafana/drio-gateway.json")).unwrap(),
    )
    .expect("the dashboard is JSON");
    let mut wanted: Vec<(String, String)> = Vec::new();
    let queries = dashboard_queries(&dashboard);
    assert!(queries.len() >= 15, "dashboard queries found: {queries:?}");
    for q in &queries {
        for name in grafana_query_names(q) {
            wanted.push((format!("dashboard: {q}"), name));
        }
    }
    let alerts = alert_exprs();
    assert!(alerts.len() >= 10, "alert rules found: {alerts:?}");
    for (alert, expr) in &alerts {
        for name in promql_metric_names(expr) {
            wanted.push((format!("alert {alert}"), name));
        }
    }
    let mut missing = Vec::new();
    let mut families = BTreeSet::new();
    for (whence, name) in &wanted {
        if SCRAPE_SERIES.contains(&name.as_str()) {
            continue;
        }
        match family_in(&exposition, name) {
            Some(f) => {
                families.insert(f);
            }
            None => missing.push(format!("{name} ({whence})")),
        }
    }
    assert!(
        missing.is_empty(),
        "metrics named in deploy/ but not served by the gateway:\n  {}\n\n/metrics:\n{exposition}",
        missing.join("\n  ")
    );
    // The dashboard covers what issue 17 asks of it.
    for family in [
        "drio_requests_total",
        "drio_request_duration_seconds",
        "drio_token_validations_total",
        "drio_jwks_refresh_total",
        "drio_upstream_errors_total",
        "drio_open_streams",
        "drio_rate_limit_decisions_total",
    ] {
        assert!(families.contains(family), "nothing queries {family}");
    }
}
