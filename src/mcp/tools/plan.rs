//! `plan_training`, `estimate_vram`, `generate_config`: Gate 2's tools.

use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::CallToolResult;
use rmcp::{tool, tool_router};
use serde::Deserialize;

use super::super::{AtegnatosServer, reply, resources};
use crate::backends::{self, GeneratedConfig};
use crate::plan::planner::{self, PlanOutcome, PlanOverrides, PlanRequest, VramAnswer, VramQuery};
use crate::plan::training::{Backend, Preset};

/// What to plan.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct PlanTrainingArgs {
    /// The project's name.
    pub project: String,
    /// `quick` (5 epochs, a first look), `standard` (15, the usual) or `thorough` (25). Default `standard`.
    #[serde(default)]
    pub preset: Option<Preset>,
    /// The trainer: `kohya` (sd-scripts), `simple_tuner`, `ai_toolkit` or `native` (the Ategnatos engine; SD1.5/SDXL). Default `kohya`.
    #[serde(default)]
    pub backend: Option<Backend>,
    /// The GPU it will train on (`RTX 4090`, `RTX 4060 Ti 16GB`, `A100 80GB`, `12GB`, ...; a card sold with several memory sizes needs its size). Leave out to use the GPU the NVIDIA driver reports on this machine.
    #[serde(default)]
    pub gpu: Option<String>,
    /// Hourly price of a rented GPU, in dollars, to estimate the cost.
    #[serde(default)]
    pub price_per_hour: Option<f64>,
    /// The artist's own choices over the preset (rank, learning_rate, epochs, batch_size, resolution, optimizer, ...). Each one given is kept: the automatic shrinking to fit the GPU does not undo it.
    #[serde(default)]
    pub choices: Option<PlanOverrides>,
}

/// A "will it fit" question.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct EstimateVramArgs {
    /// A project whose stored plan to estimate. Give this or `base_model`.
    #[serde(default)]
    pub project: Option<String>,
    /// A base model to estimate without a project (sd15, sdxl, pony, illustrious, flux-dev, flux-schnell, sd35-medium, sd35-large), with the standard preset.
    #[serde(default)]
    pub base_model: Option<String>,
    /// The trainer (`kohya`, `simple_tuner`, `ai_toolkit`, `native`); default the plan's, or kohya.
    #[serde(default)]
    pub backend: Option<Backend>,
    /// The GPU to compare with; default the plan's, or the one the NVIDIA driver reports.
    #[serde(default)]
    pub gpu: Option<String>,
    /// Hourly price of a rented GPU, in dollars, to estimate the cost.
    #[serde(default)]
    pub price_per_hour: Option<f64>,
    /// Changes to try (batch_size, rank, resolution, gradient_checkpointing, base_weights, ...); nothing is saved.
    #[serde(default)]
    pub choices: Option<PlanOverrides>,
}

/// Which project's plan to write out.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct GenerateConfigArgs {
    /// The project's name.
    pub project: String,
    /// The GPU for the memory and time figures in config.md; default the plan's.
    #[serde(default)]
    pub gpu: Option<String>,
}

#[tool_router(router = plan_router, vis = "pub(crate)")]
impl AtegnatosServer {
    #[tool(
        description = "Make the project's training plan (gate 2's input): a preset (quick 5 / standard 15 / thorough 25 epochs) for its training type and base model, the artist's own choices on top, then fitted to the GPU with a 20 % safety margin — if it does not fit, the batch shrinks, then gradient checkpointing, caching and lower precision turn on, each step reported with why. Refuses unsafe values (learning rate, rank, resolution, precision the GPU lacks, ...) with the reason. Saves the plan; returns every parameter explained, the memory estimate and the time/cost. Explain the parameters to the artist in plain words.",
        annotations(read_only_hint = false, destructive_hint = false, idempotent_hint = true, open_world_hint = false),
        output_schema = rmcp::handler::server::common::schema_for_output::<PlanOutcome>()
    )]
    async fn plan_training(
        &self,
        Parameters(args): Parameters<PlanTrainingArgs>,
    ) -> CallToolResult {
        let ws = self.shared().workspace.clone();
        let req = PlanRequest {
            project: args.project,
            preset: args.preset.unwrap_or(Preset::Standard),
            backend: args.backend.unwrap_or(Backend::Kohya),
            gpu: args.gpu,
            price_per_hour: args.price_per_hour,
            overrides: args.choices.unwrap_or_default(),
        };
        match tokio::task::spawn_blocking(move || planner::plan_training(&ws, &req)).await {
            Ok(Ok(out)) => reply::structured(&out, out.plain_summary()),
            Ok(Err(e)) => reply::failure(&e, e.hint()),
            Err(e) => reply::failure(format!("plan_training crashed: {e}"), None),
        }
    }

    #[tool(
        description = "How much GPU memory training needs at its peak, part by part (base model, text encoders, VAE, LoRA, optimizer state, activations, overhead), whether it fits the GPU with a 20 % safety margin, the largest batch that fits, single changes that would make it fit and what plan_training would change; with a GPU also the time (and cost at a price). For a project's stored plan, or a base model on its own. Changes nothing.",
        annotations(read_only_hint = true, open_world_hint = false),
        output_schema = rmcp::handler::server::common::schema_for_output::<VramAnswer>()
    )]
    async fn estimate_vram(
        &self,
        Parameters(args): Parameters<EstimateVramArgs>,
    ) -> CallToolResult {
        let ws = self.shared().workspace.clone();
        let q = VramQuery {
            project: args.project,
            base_model: args.base_model,
            backend: args.backend,
            gpu: args.gpu,
            price_per_hour: args.price_per_hour,
            choices: args.choices.unwrap_or_default(),
        };
        match tokio::task::spawn_blocking(move || planner::answer_vram(&ws, &q)).await {
            Ok(Ok(a)) => reply::structured(&a, a.plain_summary()),
            Ok(Err(e)) => reply::failure(&e, e.hint()),
            Err(e) => reply::failure(format!("estimate_vram crashed: {e}"), None),
        }
    }

    #[tool(
        description = "Write the project's plan as its trainer's files under workspace/configs/<project>/<backend>/ — kohya sd-scripts (dataset.toml, config.toml, sample prompts, the exact `accelerate launch` line), SimpleTuner (config.json, multidatabackend.json), ai-toolkit (job.yaml with a fresh run name) or the Ategnatos engine (engine.toml) — plus grimoire/training/<name>/config.md with every setting explained, the memory estimate against the GPU and the time. Alpha is always written. Refuses a plan that is not safe to train.",
        annotations(read_only_hint = false, destructive_hint = false, idempotent_hint = false, open_world_hint = false),
        output_schema = rmcp::handler::server::common::schema_for_output::<GeneratedConfig>()
    )]
    async fn generate_config(
        &self,
        Parameters(args): Parameters<GenerateConfigArgs>,
    ) -> CallToolResult {
        let ws = self.shared().workspace.clone();
        let project = args.project.clone();
        let result = tokio::task::spawn_blocking(move || {
            backends::generate_config(&ws, &args.project, args.gpu.as_deref())
        })
        .await;
        match result {
            Ok(Ok(g)) => {
                self.shared()
                    .publish(&resources::report_uri(&project, "config.md"))
                    .await;
                reply::structured(&g, g.plain_summary())
            }
            Ok(Err(e)) => reply::failure(&e, e.hint()),
            Err(e) => reply::failure(format!("generate_config crashed: {e}"), None),
        }
    }
}
