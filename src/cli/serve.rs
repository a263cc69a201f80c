//! `ategnatos serve`: the MCP server over stdio or streamable HTTP.

use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;

use ategnatos::mcp::{self, Shared};

use super::{CliError, open_workspace};

pub fn run(root: &Path, http: Option<SocketAddr>) -> Result<ExitCode, CliError> {
    if let Some(addr) = http
        && !addr.ip().is_loopback()
    {
        return Err(CliError::new(
            format!(
                "`{addr}` can be reached from other computers, and the server has no password: anyone on the network could run its tools on your files"
            ),
            Some(format!(
                "serve on this computer only, e.g. `--http 127.0.0.1:{}`; to use it from another machine, forward that port over SSH",
                addr.port()
            )),
        ));
    }
    let ws = open_workspace(root)?;
    tracing::info!("workspace: {}", ws.root().display());
    let runtime = tokio::runtime::Runtime::new()
        .map_err(|e| CliError::new(format!("could not start the async runtime: {e}"), None))?;
    let shared = Shared::new(ws);
    let served = runtime.block_on(async move {
        match http {
            Some(addr) => mcp::serve_http(shared, addr, None).await,
            None => mcp::serve_stdio(shared).await,
        }
    });
    served.map_err(|e| {
        CliError::new(
            format!("the server stopped: {e}"),
            http.map(|a| format!("is another program already listening on {a}? pick another port")),
        )
    })?;
    Ok(ExitCode::SUCCESS)
}
