//! `GET /api/v1/templates` (public): app templates a user can start from.
//! A template pre-fills an app's settings; `POST /api/v1/apps` with
//! `templateId` uses it.

use super::view::{TemplateList, TemplateView};

use crate::catalog::AppSettings;
use crate::web::LocalResponse;

pub(crate) struct Template {
    pub(crate) id: &'static str,
    pub(crate) name: &'static str,
    pub(crate) description: &'static str,
    pub(crate) mcp_path: &'static str,
    pub(crate) docs_url: &'static str,
}

pub(crate) const TEMPLATES: &[Template] = &[
    Template {
        id: "streamable-http",
        name: "Streamable HTTP MCP server",
        description: "Any MCP server speaking Streamable HTTP at /mcp",
        mcp_path: "/mcp",
        docs_url: "https://modelcontextprotocol.io/specification/2025-11-25/basic/transports",
    },
    Template {
        id: "everything",
        name: "MCP Everything server",
        description: "The MCP reference server that exercises every protocol feature",
        mcp_path: "/mcp",
        docs_url: "https://github.com/modelcontextprotocol/servers/tree/main/src/everything",
    },
    Template {
        id: "sse-legacy",
        name: "HTTP+SSE MCP server (2024-11-05)",
        description: "An older MCP server with the SSE transport at /sse",
        mcp_path: "/sse",
        docs_url: "https://modelcontextprotocol.io/specification/2024-11-05/basic/transports",
    },
];

pub(crate) fn find(id: &str) -> Option<&'static Template> {
    TEMPLATES.iter().find(|t| t.id == id)
}

impl Template {
    pub(crate) fn settings(&self, upstream_url: String) -> AppSettings {
        AppSettings {
            upstream_url,
            mcp_path: Some(self.mcp_path.into()),
            host: None,
            public: false,
            required_scopes: vec![],
            allowed_origins: vec![],
            connect_timeout_ms: None,
            read_timeout_ms: None,
            identity_headers: Default::default(),
            disabled_tools: vec![],
            access: None,
            limits: None,
            tools: vec![],
        }
    }
}

pub(crate) fn list() -> LocalResponse {
    let templates = TEMPLATES
        .iter()
        .map(|t| TemplateView {
            id: t.id,
            name: t.name,
            description: t.description,
            mcp_path: t.mcp_path,
            docs_url: t.docs_url,
        })
        .collect();
    LocalResponse::json(200, &TemplateList { templates })
}
