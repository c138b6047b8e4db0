//! `GET/PATCH /api/v1/apps/{appId}/commands`: the app's MCP tools as its
//! upstream reports them (`tools/list`, MCP 2025-06-18 §Tools, asked through
//! the app's own credentials) with the gateway's enabled flag, and switching
//! a tool off or on. A disabled tool's `tools/call` is refused by the proxy.

use std::collections::HashSet;

use serde::Deserialize;
use serde_json::{json, Value};

use super::apps::{self, AppRef};
use super::view::{Command, CommandList, CommandSwitches};
use super::{store_err, ApiCtx, Caller};
use crate::catalog::route::Route;
use crate::catalog::{self, ToolSwitches};
use crate::config::tool_policy::{self, ToolScopes};
use crate::credentials::{InjectError, Resolved};
use crate::egress::OutboundFailure;
use crate::errors::ApiError;
use crate::store::StoreExt;
use crate::web::LocalResponse;

/// The app's disabled tools and per-tool scopes in force.
async fn policy(cx: &ApiCtx<'_>, app: &AppRef) -> Result<(Vec<String>, ToolScopes), ApiError> {
    Ok(match app {
        AppRef::Stored(r) => (
            r.settings.disabled_tools.clone(),
            tool_policy::validate(&r.settings.tools).unwrap_or_default(),
        ),
        AppRef::Config(a) => {
            let sw = apps::tool_switches(cx, &a.id).await?;
            (
                sw.disabled_tools,
                tool_policy::merged(&a.tool_scopes, &sw.tool_scopes),
            )
        }
    })
}

pub(crate) async fn list(
    cx: &ApiCtx<'_>,
    user: &Caller,
    id: &str,
) -> Result<LocalResponse, ApiError> {
    let app = apps::load(cx, user, id).await?;
    let (off, scopes) = policy(cx, &app).await?;
    let off: HashSet<String> = off.into_iter().collect();
    let slug = match &app {
        AppRef::Stored(r) => r.slug.clone(),
        AppRef::Config(a) => a.slug.clone(),
    };
    let route = cx.routes.load().by_slug(&slug).cloned().ok_or_else(|| {
        ApiError::new(
            409,
            "app_disabled",
            "The app is disabled; enable it to list its tools",
        )
    })?;
    let tools = upstream_tools(cx, &route, user).await?;
    let commands: Vec<Command> = tools
        .into_iter()
        .filter_map(|t| match t {
            Value::Object(mut tool) => {
                let name = tool
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string();
                // Ours win over an upstream's fields of the same name.
                tool.remove("enabled");
                tool.remove("requiredScopes");
                Some(Command {
                    enabled: !off.contains(&name),
                    required_scopes: scopes.get(&name).cloned().unwrap_or_default(),
                    tool,
                })
            }
            _ => None,
        })
        .collect();
    Ok(LocalResponse::json(200, &CommandList { commands }))
}

/// One tool's change: switched on or off, and/or its required scopes
/// replaced (`[]` removes them).
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct Switch {
    name: String,
    #[serde(default)]
    enabled: Option<bool>,
    #[serde(default)]
    required_scopes: Option<Vec<String>>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
pub(crate) enum PatchCommands {
    One(Switch),
    Many { commands: Vec<Switch> },
}

pub(crate) async fn patch(
    cx: &ApiCtx<'_>,
    user: &Caller,
    id: &str,
    body: PatchCommands,
) -> Result<LocalResponse, ApiError> {
    let switches = match body {
        PatchCommands::One(s) => vec![s],
        PatchCommands::Many { commands } => commands,
    };
    let mut wanted = Vec::with_capacity(switches.len());
    for s in &switches {
        if s.name.is_empty() || s.name.len() > tool_policy::MAX_TOOL_NAME {
            return Err(ApiError::validation(
                "name",
                "must be a tool name (1-256 characters)",
            ));
        }
        if s.enabled.is_none() && s.required_scopes.is_none() {
            return Err(ApiError::validation(
                "enabled",
                "send `enabled` and/or `requiredScopes`",
            ));
        }
        let scopes = match &s.required_scopes {
            Some(list) => Some(
                tool_policy::check_scopes(list)
                    .map_err(|m| ApiError::validation("requiredScopes", m))?,
            ),
            None => None,
        };
        wanted.push(scopes);
    }
    let apply = |list: &mut Vec<String>, scopes: &mut ToolScopes| {
        for (s, new_scopes) in switches.iter().zip(&wanted) {
            if let Some(enabled) = s.enabled {
                list.retain(|n| n != &s.name);
                if !enabled {
                    list.push(s.name.clone());
                }
            }
            match new_scopes {
                Some(v) if v.is_empty() => {
                    scopes.remove(&s.name);
                }
                Some(v) => {
                    scopes.insert(s.name.clone(), v.clone());
                }
                None => {}
            }
        }
        list.sort();
    };
    let (disabled, scopes) = match apps::load(cx, user, id).await? {
        AppRef::Stored(mut r) => {
            let mut scopes = tool_policy::validate(&r.settings.tools)
                .map_err(|(f, m)| ApiError::validation(&f, m))?;
            apply(&mut r.settings.disabled_tools, &mut scopes);
            if !scopes.is_empty() && r.settings.public {
                return Err(ApiError::validation(
                    "requiredScopes",
                    "a public app takes no token: per-tool scopes need a non-public app",
                ));
            }
            r.settings.tools = tool_policy::to_policies(&scopes);
            let d = r.settings.disabled_tools.clone();
            apps::save(cx, r).await?;
            (d, scopes)
        }
        AppRef::Config(a) if user.admin => {
            let key = catalog::tools_key(&a.id);
            let mut sw: ToolSwitches = cx
                .store
                .get_json(&key)
                .await
                .map_err(store_err)?
                .unwrap_or_default();
            apply(&mut sw.disabled_tools, &mut sw.tool_scopes);
            if !sw.tool_scopes.is_empty() && a.public {
                return Err(ApiError::validation(
                    "requiredScopes",
                    "a public app takes no token: per-tool scopes need a non-public app",
                ));
            }
            cx.store
                .put_json(&key, &sw, None)
                .await
                .map_err(store_err)?;
            cx.catalog_changed().await;
            // The TOML's scopes stay in force whatever was stored.
            let scopes = tool_policy::merged(&a.tool_scopes, &sw.tool_scopes);
            (sw.disabled_tools, scopes)
        }
        AppRef::Config(_) => {
            return Err(ApiError::new(
                403,
                "forbidden",
                "Only gateway admins may change a config-file app",
            ))
        }
    };
    Ok(LocalResponse::json(
        200,
        &CommandSwitches {
            disabled_tools: disabled,
            required_scopes: scopes,
        },
    ))
}

/// Asks the upstream for its tools, as an MCP client would, with the
/// credentials the data plane would inject for this caller.
async fn upstream_tools(
    cx: &ApiCtx<'_>,
    route: &Route,
    user: &Caller,
) -> Result<Vec<Value>, ApiError> {
    let u = &route.app.upstream;
    let mut url = format!(
        "{}://{}{}{}",
        if u.tls { "https" } else { "http" },
        u.authority,
        u.base_path,
        route.app.mcp_path
    );
    let credential = route
        .injection
        .resolve(Some(&user.principal))
        .await
        .map_err(|e| match e {
            InjectError::NotConnected { connect_url } => ApiError::new(
                409,
                "upstream_authorization_required",
                format!("Connect your account first: {connect_url}"),
            )
            .with_details(json!({ "connectUrl": connect_url })),
            InjectError::Refused { reason } => ApiError::new(
                403,
                "upstream_authorization_refused",
                format!("The token service refused this app's credential ({reason})"),
            )
            .with_details(json!({ "reason": reason })),
            InjectError::Unavailable(_) => ApiError::new(
                502,
                "upstream_credentials_unavailable",
                "The gateway could not obtain credentials for this app's upstream",
            ),
        })?;
    if let Resolved::Query { pair, .. } = &credential {
        url.push(if url.contains('?') { '&' } else { '?' });
        url.push_str(pair);
    }
    let client = McpCall {
        cx,
        url: &url,
        credential: &credential,
        trusted: route.trusted,
    };
    let init = client
        .send(
            None,
            json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {},
            "clientInfo": {"name": "drio-gateway", "version": env!("CARGO_PKG_VERSION")}}}),
        )
        .await?;
    let session = init.0;
    client
        .send(
            session.as_deref(),
            json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
        )
        .await?;
    let mut tools = Vec::new();
    let mut cursor: Option<String> = None;
    for page in 0..20 {
        let params = cursor
            .as_ref()
            .map_or(json!({}), |c| json!({ "cursor": c }));
        let (_, result) = client
            .send(
                session.as_deref(),
                json!({"jsonrpc": "2.0", "id": 2 + page, "method": "tools/list", "params": params}),
            )
            .await?;
        let result = result.ok_or_else(|| upstream_err("tools/list returned no result"))?;
        tools.extend(
            result
                .get("tools")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default(),
        );
        cursor = result
            .get("nextCursor")
            .and_then(Value::as_str)
            .map(str::to_owned);
        if cursor.is_none() {
            break;
        }
    }
    if let Some(s) = session {
        if let Ok(req) = client.request(http::Method::DELETE, Some(&s)) {
            let _ = req.send().await;
        }
    }
    Ok(tools)
}

fn upstream_err(why: &str) -> ApiError {
    ApiError::new(
        502,
        "bad_gateway",
        format!("The app's upstream did not answer tools/list: {why}"),
    )
}

struct McpCall<'a> {
    cx: &'a ApiCtx<'a>,
    url: &'a str,
    credential: &'a Resolved,
    /// A config-file app's upstream is the operator's; an API-created app's
    /// is the user's and goes through the egress policy.
    trusted: bool,
}

impl McpCall<'_> {
    fn request(
        &self,
        method: http::Method,
        session: Option<&str>,
    ) -> Result<reqwest::RequestBuilder, ApiError> {
        let req = if self.trusted {
            self.cx.http.request(method, self.url)
        } else {
            self.cx
                .egress
                .request(method, self.url)
                .map_err(|e| upstream_err(&OutboundFailure::from(e).to_string()))?
        };
        let mut req = req
            .header("accept", "application/json, text/event-stream")
            .header("mcp-protocol-version", "2025-06-18");
        if let Resolved::Header(name, value) = self.credential {
            req = req.header(name, value);
        }
        if let Some(s) = session {
            req = req.header("mcp-session-id", s);
        }
        Ok(req)
    }

    /// Sends one JSON-RPC message; returns the session id and the `result`.
    async fn send(
        &self,
        session: Option<&str>,
        msg: Value,
    ) -> Result<(Option<String>, Option<Value>), ApiError> {
        let resp = self
            .request(http::Method::POST, session)?
            .json(&msg)
            .send()
            .await
            .map_err(|e| upstream_err(&OutboundFailure::from(&e).to_string()))?;
        let status = resp.status();
        if !status.is_success() {
            return Err(upstream_err(&format!("status {status}")));
        }
        let session = resp
            .headers()
            .get("mcp-session-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let sse = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|c| c.starts_with("text/event-stream"));
        if msg.get("id").is_none() {
            return Ok((session, None));
        }
        let body = resp
            .text()
            .await
            .map_err(|e| upstream_err(&OutboundFailure::from(&e).to_string()))?;
        let answer: Option<Value> = if sse {
            // The response is the SSE event carrying our id.
            body.lines()
                .filter_map(|l| l.strip_prefix("data:"))
                .filter_map(|d| serde_json::from_str::<Value>(d.trim()).ok())
                .find(|v| v.get("id") == msg.get("id"))
        } else {
            serde_json::from_str(&body).ok()
        };
        let answer = answer.ok_or_else(|| upstream_err("unreadable answer"))?;
        if let Some(e) = answer.get("error") {
            // The code only: the message is the upstream's text.
            let code = e.get("code").and_then(Value::as_i64).unwrap_or_default();
            return Err(upstream_err(&format!("JSON-RPC error {code}")));
        }
        Ok((session, answer.get("result").cloned()))
    }
}
