//! An MCP client connected in-process, over a duplex pipe, to a server on a
//! workspace folder: what the end-to-end tests talk to.

use std::path::Path;

use ategnatos::mcp::{AtegnatosServer, Shared};
use ategnatos::studio::Workspace;
use rmcp::ServiceExt;
use rmcp::model::{CallToolRequestParams, CallToolResult, JsonObject};
use rmcp::service::{RoleClient, RunningService};
use serde_json::Value;

pub type Client = RunningService<RoleClient, ()>;

/// A server on `root`, and a client connected to it.
pub async fn connect(root: &Path) -> Client {
    connect_to(Shared::new(Workspace::open(root).unwrap())).await
}

/// A server on `shared`, and a client connected to it.
pub async fn connect_to(shared: std::sync::Arc<Shared>) -> Client {
    let (server_io, client_io) = tokio::io::duplex(1 << 22);
    tokio::spawn(async move {
        if let Ok(s) = AtegnatosServer::new(shared).serve(server_io).await {
            let _ = s.waiting().await;
        }
    });
    ().serve(client_io).await.unwrap()
}

/// Calls a tool; a protocol error fails the test (a refusal does not: it
/// is a result with `is_error`).
pub async fn call(client: &Client, name: &'static str, arguments: Value) -> CallToolResult {
    client
        .call_tool(CallToolRequestParams::new(name).with_arguments(args(arguments)))
        .await
        .unwrap()
}

pub fn args(v: Value) -> JsonObject {
    v.as_object().unwrap().clone()
}

/// The text blocks of a result, joined.
pub fn text(r: &CallToolResult) -> String {
    r.content
        .iter()
        .filter_map(|c| c.as_text().map(|t| t.text.clone()))
        .collect::<Vec<_>>()
        .join("\n")
}
