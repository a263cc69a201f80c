//! `run_gate`: run one of the four gates for a project and record it.

use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::CallToolResult;
use rmcp::service::RequestContext;
use rmcp::{RoleServer, tool, tool_router};
use serde::Deserialize;

use super::super::jobs::{JobFailure, JobOutput};
use super::super::{AtegnatosServer, reply};

/// Which gate of which project.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct RunGateArgs {
    /// Project name.
    pub project: String,
    /// 1 dataset, 2 training plan (3 environment, 4 dry run: not built yet).
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
        description = "Run gate 1 (dataset: audit, duplicates, variety, caption balance; writes dataset-report.md) or gate 2 (the plan is safe and fits the GPU with a 20 % margin) and record it as ategnatos://projects/{name}/gates/{n}. Any later change to pictures, captions or plan makes it stale. Gates pass in order; there is no override.",
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
        match args.gate {
            1 => {
                let project = args.project.clone();
                let (_job, result) = super::run_job(self, "run_gate", args.wait_seconds, &ctx, move |progress| {
                    let g = crate::gates::dataset::run_gate1(&ws, &project, progress)
                        .map_err(|e| JobFailure { error: e.to_string(), hint: e.hint() })?;
                    let result = serde_json::to_value(&g).map_err(|e| JobFailure { error: e.to_string(), hint: None })?;
                    Ok(JobOutput { summary: g.plain_summary(), changed: vec![g.resource_uri.clone()], result })
                })
                .await;
                result
            }
            2 => {
                let project = args.project.clone();
                let gpu = args.gpu.clone();
                let (_job, result) = super::run_job(self, "run_gate", args.wait_seconds, &ctx, move |_progress| {
                    let g = crate::gates::config::run_gate2(&ws, &project, gpu.as_deref())
                        .map_err(|e| JobFailure { error: e.to_string(), hint: e.hint() })?;
                    let result = serde_json::to_value(&g).map_err(|e| JobFailure { error: e.to_string(), hint: None })?;
                    Ok(JobOutput { summary: g.plain_summary(), changed: vec![g.resource_uri.clone()], result })
                })
                .await;
                result
            }
            3..=4 => reply::failure(
                format!("gate {} is not available in this version of Ategnatos yet", args.gate),
                Some("gates 1 (dataset) and 2 (training plan) are; the environment and dry-run gates come next".into()),
            ),
            other => reply::failure(format!("there is no gate `{other}`"), Some("gates are numbered 1 (dataset), 2 (plan), 3 (environment), 4 (dry run)".into())),
        }
    }
}
