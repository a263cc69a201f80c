//! `diagnose_training`: why a trained LoRA disappoints, and what to do.

use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::CallToolResult;
use rmcp::{tool, tool_router};
use serde::Deserialize;

use super::super::{AtegnatosServer, reply};
use crate::advice::diagnose;

/// What looks wrong, and in which run.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct DiagnoseTrainingArgs {
    /// Project name.
    pub project: String,
    /// What the artist sees, in their words.
    #[serde(default)]
    pub symptoms: Option<String>,
    /// Run id (default the newest).
    #[serde(default)]
    pub run: Option<String>,
}

#[tool_router(router = advice_router, vis = "pub(crate)")]
impl AtegnatosServer {
    #[tool(
        description = "Why a trained LoRA disappoints: the artist's symptoms weighed with the run's loss, epochs, repeats and captions into ranked causes, each with its fix and the checkpoint to try.",
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn diagnose_training(
        &self,
        Parameters(args): Parameters<DiagnoseTrainingArgs>,
    ) -> CallToolResult {
        let ws = self.shared().workspace.clone();
        super::answer(
            "diagnose_training",
            move || {
                diagnose::diagnose(
                    &ws,
                    &args.project,
                    args.symptoms.as_deref().unwrap_or(""),
                    args.run.as_deref(),
                )
            },
            |d| reply::structured(&d, d.plain_summary()),
        )
        .await
    }
}
