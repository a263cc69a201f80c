//! `launch_training` and `training_status`: a run behind four fresh gates,
//! and where it stands.

use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::CallToolResult;
use rmcp::service::RequestContext;
use rmcp::{RoleServer, tool, tool_router};
use serde::Deserialize;

use super::super::jobs::JobFailure;
use super::super::{AtegnatosServer, reply};
use super::output;
use crate::gates::training::{TrainingOptions, launch_training, training_status};
use crate::studio::Hint;

/// Which project to train.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct LaunchTrainingArgs {
    /// Project name.
    pub project: String,
    /// Seconds to wait before returning a job id (default 30, max 240).
    #[serde(default)]
    pub wait_seconds: Option<u64>,
}

/// Which project's run.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct TrainingStatusArgs {
    /// Project name.
    pub project: String,
}

#[tool_router(router = training_router, vis = "pub(crate)")]
impl AtegnatosServer {
    #[tool(
        description = "Train the project's LoRA with its planned trainer, only when all four gates pass and are fresh. A job: follow it with job_status or training_status; a NaN loss or a hang stops it.",
        annotations(
            read_only_hint = false,
            destructive_hint = false,
            idempotent_hint = false,
            open_world_hint = false
        )
    )]
    async fn launch_training(
        &self,
        Parameters(args): Parameters<LaunchTrainingArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> CallToolResult {
        let ws = self.shared().workspace.clone();
        let project = args.project.clone();
        let (_job, result) = super::run_job(
            self,
            "launch_training",
            args.wait_seconds,
            &ctx,
            move |progress| {
                let run = launch_training(&ws, &project, &TrainingOptions::default(), progress)
                    .map_err(|e| JobFailure {
                        error: e.to_string(),
                        hint: e.hint(),
                    })?;
                output(run.plain_summary(), Vec::new(), &run)
            },
        )
        .await;
        result
    }

    #[tool(
        description = "Where the project's newest training run stands: running, complete, failed or cancelled, step, loss, and what to do when it failed.",
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn training_status(
        &self,
        Parameters(args): Parameters<TrainingStatusArgs>,
    ) -> CallToolResult {
        match training_status(&self.shared().workspace, &args.project) {
            Ok(run) => reply::structured(&run, run.plain_summary()),
            Err(e) => reply::failure(e.to_string(), e.hint()),
        }
    }
}
