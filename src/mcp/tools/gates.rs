//! `run_gate`: run one of the four gates for a project and record it.

use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::CallToolResult;
use rmcp::service::RequestContext;
use rmcp::{RoleServer, tool, tool_router};
use serde::Deserialize;

use super::super::AtegnatosServer;
use super::super::jobs::{JobFailure, JobOutput};
use crate::studio::Hint;

/// Which gate of which project.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct RunGateArgs {
    /// Project name.
    pub project: String,
    /// 1 dataset, 2 training plan, 3 environment, 4 dry run.
    #[schemars(range(min = 1, max = 4))]
    pub gate: u8,
    /// Gate 2: the GPU (default the plan's).
    #[serde(default)]
    pub gpu: Option<String>,
    /// Seconds before answering with a job id (default 30).
    #[serde(default)]
    pub wait_seconds: Option<u64>,
}

#[tool_router(router = gates_router, vis = "pub(crate)")]
impl AtegnatosServer {
    #[tool(
        description = "Run gate 1 (dataset: audit, duplicates, captions; writes dataset-report.md), 2 (the plan fits the GPU), 3 (this machine: GPU, driver, PyTorch, trainer install, disk) or 4 (a dry run of a few real steps) and record it as ategnatos://projects/{name}/gates/{n}. Gates pass in order; a later change makes them stale; no override.",
        annotations(
            read_only_hint = false,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = false
        )
    )]
    async fn run_gate(
        &self,
        Parameters(args): Parameters<RunGateArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> CallToolResult {
        let ws = self.shared().workspace.clone();
        let project = args.project.clone();
        let wait = args.wait_seconds;
        let fail = |error: String, hint: Option<String>| JobFailure { error, hint };
        let gpu = args.gpu.clone();
        let gate = args.gate;
        let (_job, result) = super::run_job(self, "run_gate", wait, &ctx, move |progress| {
            let g = crate::gates::run_by_number(&ws, &project, gate, gpu.as_deref(), progress)
                .map_err(|e| fail(e.to_string(), e.hint()))?;
            Ok(JobOutput {
                summary: g.summary,
                changed: vec![g.resource_uri],
                result: g.report,
                previews: Vec::new(),
            })
        })
        .await;
        result
    }
}
