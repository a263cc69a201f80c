//! `job_status` and `cancel_job`: following long work after its tool returned.

use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::CallToolResult;
use rmcp::service::RequestContext;
use rmcp::{RoleServer, tool, tool_router};
use serde::Deserialize;

use super::super::{AtegnatosServer, reply};

/// Which job to look at.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct JobStatusArgs {
    /// The job id a tool returned.
    pub job_id: String,
    /// Seconds to wait (default 30, max 240, 0 answers at once).
    #[serde(default)]
    pub wait_seconds: Option<u64>,
}

/// Which job to stop.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct CancelJobArgs {
    /// The job id a tool returned.
    pub job_id: String,
}

fn unknown_job(id: &str) -> CallToolResult {
    reply::failure(
        format!("there is no job `{id}` in this server"),
        Some("jobs live as long as the server process; start the tool again".into()),
    )
}

#[tool_router(router = jobs_router, vis = "pub(crate)")]
impl AtegnatosServer {
    #[tool(
        description = "Wait up to wait_seconds on a long job (sending progress), then return its status or its result.",
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn job_status(
        &self,
        Parameters(args): Parameters<JobStatusArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> CallToolResult {
        match self.shared().jobs.get(&args.job_id) {
            Some(job) => super::follow_job(self, &job, args.wait_seconds, &ctx).await,
            None => unknown_job(&args.job_id),
        }
    }

    #[tool(
        description = "Stop a running job. Finished work is kept; nothing is half-written.",
        annotations(
            read_only_hint = false,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = false
        )
    )]
    async fn cancel_job(&self, Parameters(args): Parameters<CancelJobArgs>) -> CallToolResult {
        let Some(job) = self.shared().jobs.get(&args.job_id) else {
            return unknown_job(&args.job_id);
        };
        job.cancel();
        reply::structured(
            &serde_json::json!({ "job_id": job.id, "cancel_requested": true, "status": job.status() }),
            format!(
                "Asked job `{}` to stop; it stops at its next check. job_status shows when it has.",
                job.id
            ),
        )
    }
}
