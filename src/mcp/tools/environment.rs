//! `check_environment` and `dry_run`: Gate 3's look at the machine, and
//! Gate 4's short real run of the plan.

use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::CallToolResult;
use rmcp::service::RequestContext;
use rmcp::{RoleServer, tool, tool_router};
use serde::Deserialize;

use super::super::AtegnatosServer;
use super::super::jobs::JobFailure;
use super::output;
use crate::environment::{EnvRequest, check_environment};
use crate::gates::dry_run::{Gate4Options, run_gate4};
use crate::plan::training::Backend;
use crate::studio::Hint;
use crate::studio::Progress;

/// What to check.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct CheckEnvironmentArgs {
    /// Project whose plan to check (writes environment.md).
    #[serde(default)]
    pub project: Option<String>,
    /// Trainer to check (default the plan's).
    #[serde(default)]
    pub backend: Option<Backend>,
    /// The trainer's folder (default: found).
    #[serde(default)]
    pub backend_path: Option<String>,
    /// Seconds to wait before returning a job id (default 30, max 240).
    #[serde(default)]
    pub wait_seconds: Option<u64>,
}

/// Which project to dry-run.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct DryRunArgs {
    /// Project name.
    pub project: String,
    /// Steps, 2 to 5 (default 3).
    #[serde(default)]
    #[schemars(range(min = 2, max = 5))]
    pub steps: Option<u32>,
    /// Seconds to wait before returning a job id (default 30, max 240).
    #[serde(default)]
    pub wait_seconds: Option<u64>,
}

#[tool_router(router = environment_router, vis = "pub(crate)")]
impl AtegnatosServer {
    #[tool(
        description = "What this machine can train with: GPUs (memory, driver, CUDA), the trainer's install and Python (PyTorch build, every missing module with one pip line), disk, model files, versions checked against the compatibility table. With a project, against its plan; writes environment.md. Before run_gate 3.",
        annotations(
            read_only_hint = false,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = false
        )
    )]
    async fn check_environment(
        &self,
        Parameters(args): Parameters<CheckEnvironmentArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> CallToolResult {
        let ws = self.shared().workspace.clone();
        let request = EnvRequest {
            project: args.project.clone(),
            backend: args.backend,
            backend_path: args.backend_path.clone(),
            ..EnvRequest::default()
        };
        let (_job, result) = super::run_job(
            self,
            "check_environment",
            args.wait_seconds,
            &ctx,
            move |progress| {
                progress.report(0, None, "checking the GPU, the trainer and its Python");
                let r = check_environment(&ws, &request).map_err(|e| JobFailure {
                    error: e.to_string(),
                    hint: e.hint(),
                })?;
                // With a project, its environment.md was (re)written.
                let changed = r
                    .project
                    .iter()
                    .map(|p| format!("ategnatos://projects/{p}/reports/environment.md"))
                    .collect();
                output(r.plain_summary(), changed, &r)
            },
        )
        .await;
        result
    }

    #[tool(
        description = "Gate 4: run the plan's own trainer for 2-5 real steps on the real dataset and model (log in dry-run.log), diagnose out-of-memory, missing files or modules, captions, CUDA, NaN, hangs and crashes, and record the gate. A job with progress. Needs gates 1-3.",
        annotations(
            read_only_hint = false,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = false
        )
    )]
    async fn dry_run(
        &self,
        Parameters(args): Parameters<DryRunArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> CallToolResult {
        let ws = self.shared().workspace.clone();
        let project = args.project.clone();
        let options = Gate4Options {
            steps: args.steps.unwrap_or(crate::run::dry_run::DEFAULT_STEPS),
            ..Gate4Options::default()
        };
        let (_job, result) =
            super::run_job(self, "dry_run", args.wait_seconds, &ctx, move |progress| {
                let g = run_gate4(&ws, &project, &options, progress).map_err(|e| JobFailure {
                    error: e.to_string(),
                    hint: e.hint(),
                })?;
                output(g.plain_summary(), vec![g.resource_uri.clone()], &g)
            })
            .await;
        result
    }
}
