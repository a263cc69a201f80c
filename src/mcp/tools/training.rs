//! `launch_training`, `training_status` and `cancel_training`: a run behind
//! four fresh gates, where it stands, and stopping it.

use std::time::Duration;

use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::CallToolResult;
use rmcp::service::RequestContext;
use rmcp::{RoleServer, tool, tool_router};
use serde::Deserialize;

use super::super::jobs::{JobFailure, JobOutput};
use super::super::{AtegnatosServer, reply};
use super::{answer, output};
use crate::gates::training::{TrainingOptions, cancel_training, launch_training, training_status};
use crate::studio::{Hint, NoProgress};

/// Which project to train, and where.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct LaunchTrainingArgs {
    /// Project name.
    pub project: String,
    /// A running rented GPU (spinup_instance) to train on instead of this machine.
    #[serde(default)]
    pub instance_id: Option<String>,
    /// With instance_id: seconds before answering with a job id (default 30).
    #[serde(default)]
    pub wait_seconds: Option<u64>,
    /// Hand the run to SkyPilot (`sky` installed): any cloud it knows.
    #[serde(default)]
    pub skypilot: bool,
}

/// Which project's run.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct TrainingStatusArgs {
    /// Project name.
    pub project: String,
    /// Wait up to this many seconds (max 240) for a running run to end, with progress.
    #[serde(default)]
    pub wait_seconds: Option<u64>,
}

/// Which project's run to stop.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct CancelTrainingArgs {
    /// Project name.
    pub project: String,
}

const MAX_WAIT: u64 = 240;

#[tool_router(router = training_router, vis = "pub(crate)")]
impl AtegnatosServer {
    #[tool(
        description = "Start training the project's LoRA once all four gates pass and are fresh; returns at once with the run id, and the run goes on without this conversation. Out of memory halves the batch and retries; a NaN loss or a hang stops it. instance_id: a job training on that rented GPU over SSH (gates 2-4 there), bringing the LoRA home, destroying it; call again to resume. skypilot: hand it to SkyPilot.",
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
        if let Some(instance) = args.instance_id.clone() {
            return self.train_remote(args, instance, ctx).await;
        }
        if args.skypilot {
            let ws = self.shared().workspace.clone();
            let program = self.shared().exe.get().cloned();
            return answer(
                "launch_training",
                move || {
                    use crate::cloud::skypilot::{find_sky, hand_off};
                    let sky = find_sky(std::env::var_os("PATH").as_deref()).ok_or_else(|| {
                        crate::cloud::CloudError::Failed(
                            "SkyPilot's `sky` is not installed here; nothing was launched".into(),
                        )
                    })?;
                    hand_off(&ws, &args.project, &sky, program)
                },
                |h| reply::structured(&h, h.summary.clone()),
            )
            .await;
        }
        let ws = self.shared().workspace.clone();
        let shared = std::sync::Arc::clone(self.shared());
        let options = TrainingOptions {
            supervisor_exe: shared.exe.get().cloned(),
            ..TrainingOptions::default()
        };
        let result = answer(
            "launch_training",
            move || launch_training(&ws, &args.project, &options),
            |l| reply::structured(&l, l.summary.clone()),
        )
        .await;
        shared.watch_runs();
        result
    }

    #[tool(
        description = "Where the project's newest training run stands: epoch, step, loss, time left, warnings, checkpoints, or why it failed and what to do.",
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn training_status(
        &self,
        Parameters(args): Parameters<TrainingStatusArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> CallToolResult {
        let ws = self.shared().workspace.clone();
        // A run on a rented GPU is followed by its trip, not here.
        if let Ok(Some(remote)) = crate::cloud::remote::unfinished(&ws, &args.project) {
            return reply::structured(&remote, remote.plain_summary());
        }
        let Some(wait) = args.wait_seconds.filter(|w| *w > 0) else {
            return answer(
                "training_status",
                move || training_status(&ws, &args.project, None, &NoProgress),
                |run| reply::structured(&run, run.plain_summary()),
            )
            .await;
        };
        let wait = wait.min(MAX_WAIT);
        let project = args.project.clone();
        let (_job, result) = super::run_job(
            self,
            "training_status",
            Some(wait + 5),
            &ctx,
            move |progress| {
                let run = training_status(&ws, &project, Some(Duration::from_secs(wait)), progress)
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
        description = "Stop the project's running training: the trainer and every process it started; the run ends CANCELLED with its newest checkpoint named.",
        annotations(
            read_only_hint = false,
            destructive_hint = true,
            idempotent_hint = true,
            open_world_hint = false
        )
    )]
    async fn cancel_training(
        &self,
        Parameters(args): Parameters<CancelTrainingArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> CallToolResult {
        let ws = self.shared().workspace.clone();
        match crate::cloud::remote::unfinished(&ws, &args.project) {
            Ok(Some(remote)) => return self.cancel_remote(remote, ctx).await,
            Ok(None) => {}
            Err(e) => return reply::failure(&e, e.hint()),
        }
        answer(
            "cancel_training",
            move || cancel_training(&ws, &args.project),
            |run| reply::structured(&run, run.plain_summary()),
        )
        .await
    }
}

impl AtegnatosServer {
    /// `cancel_training` of a run on a rented GPU, as a job: stopped there,
    /// its saves brought home, the GPU destroyed.
    async fn cancel_remote(
        &self,
        remote: crate::cloud::remote::RemoteRun,
        ctx: RequestContext<RoleServer>,
    ) -> CallToolResult {
        use crate::cloud::remote::{RemoteOptions, train_remote};
        let ws = self.shared().workspace.clone();
        let cfg = self.shared().cloud.clone();
        let handle = tokio::runtime::Handle::current();
        let opts = RemoteOptions::resuming(&remote, self.shared().exe.get().cloned(), true);
        let (_job, result) = super::run_job(self, "remote_cancel", None, &ctx, move |progress| {
            train_remote(&ws, &cfg, &handle, &remote.project, &opts, progress)
                .map(|o| JobOutput {
                    summary: o.summary.clone(),
                    result: serde_json::to_value(&o).unwrap_or_default(),
                    changed: Vec::new(),
                    previews: Vec::new(),
                })
                .map_err(|e| JobFailure {
                    hint: e.hint(),
                    error: e.to_string(),
                })
        })
        .await;
        result
    }

    /// `launch_training` with an instance: the remote run as a job.
    async fn train_remote(
        &self,
        args: LaunchTrainingArgs,
        instance: String,
        ctx: RequestContext<RoleServer>,
    ) -> CallToolResult {
        use crate::cloud::remote::{RemoteOptions, train_remote};
        use crate::run::launch::RunState;
        let ws = self.shared().workspace.clone();
        let cfg = self.shared().cloud.clone();
        let handle = tokio::runtime::Handle::current();
        let opts = RemoteOptions {
            instance,
            program: self.shared().exe.get().cloned(),
            ..RemoteOptions::default()
        };
        let project = args.project;
        let (_job, result) = super::run_job(
            self,
            "remote_training",
            args.wait_seconds,
            &ctx,
            move |progress| match train_remote(&ws, &cfg, &handle, &project, &opts, progress) {
                Ok(o)
                    if o.run
                        .as_ref()
                        .is_some_and(|r| r.state == RunState::Complete) =>
                {
                    Ok(JobOutput {
                        summary: o.summary.clone(),
                        result: serde_json::to_value(&o).unwrap_or_default(),
                        changed: Vec::new(),
                        previews: Vec::new(),
                    })
                }
                Ok(o) => Err(JobFailure {
                    error: o.summary,
                    hint: o.run.and_then(|r| r.what_to_do),
                }),
                Err(e) => Err(JobFailure {
                    hint: e.hint(),
                    error: e.to_string(),
                }),
            },
        )
        .await;
        result
    }
}
