//! `plan_training`, `estimate_vram`, `generate_config`: Gate 2's tools.

use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::CallToolResult;
use rmcp::{tool, tool_router};
use serde::Deserialize;

use super::super::{AtegnatosServer, reply, resources};
use crate::backends::{self};
use crate::plan::planner::{self, PlanOverrides, PlanRequest, VramQuery};
use crate::plan::training::{Backend, Preset};

/// What to plan.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct PlanTrainingArgs {
    /// Project name.
    pub project: String,
    /// `quick` (5 epochs), `standard` (15, default) or `thorough` (25).
    #[serde(default)]
    pub preset: Option<Preset>,
    /// The trainer (default `kohya`; `native` is the Ategnatos engine).
    #[serde(default)]
    pub backend: Option<Backend>,
    /// The GPU (`RTX 4090`, `RTX 4060 Ti 16GB`, `12GB`; default this machine's).
    #[serde(default)]
    pub gpu: Option<String>,
    /// Dollars per hour of a rented GPU, for the cost.
    #[serde(default)]
    pub price_per_hour: Option<f64>,
    /// The artist's choices over the preset; fitting to the GPU keeps them.
    #[serde(default)]
    pub choices: Option<PlanOverrides>,
}

/// A "will it fit" question.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct EstimateVramArgs {
    /// A project's stored plan (or give `base_model`).
    #[serde(default)]
    pub project: Option<String>,
    /// A base model's standard preset, without a project.
    #[serde(default)]
    pub base_model: Option<String>,
    /// The trainer (default the plan's, or `kohya`).
    #[serde(default)]
    pub backend: Option<Backend>,
    /// The GPU (default the plan's, or this machine's).
    #[serde(default)]
    pub gpu: Option<String>,
    /// Dollars per hour of a rented GPU, for the cost.
    #[serde(default)]
    pub price_per_hour: Option<f64>,
    /// Changes to try, the fields of plan_training's `choices`; nothing is saved.
    #[serde(default)]
    pub choices: Option<TryChoices>,
}

/// `estimate_vram`'s changes to try: the same fields as `plan_training`'s
/// choices, which the model already has in front of it, so the schema says
/// only "an object" instead of repeating them.
#[derive(Debug, Deserialize)]
#[serde(transparent)]
pub struct TryChoices(pub PlanOverrides);

impl schemars::JsonSchema for TryChoices {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "TryChoices".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({ "type": "object" })
    }
}

/// Which project's plan to write out.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct GenerateConfigArgs {
    /// Project name.
    pub project: String,
    /// The GPU for config.md's figures (default the plan's).
    #[serde(default)]
    pub gpu: Option<String>,
}

#[tool_router(router = plan_router, vis = "pub(crate)")]
impl AtegnatosServer {
    #[tool(
        description = "Make and save a project's training plan: a preset for its type and base model, the artist's choices on top, fitted to the GPU with a 20 % margin (each change with why). Returns every parameter in plain words, the memory estimate, time and cost: explain them to the artist.",
        annotations(
            read_only_hint = false,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = false
        )
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
        let work = move || planner::plan_training(&ws, &req);
        super::answer("plan_training", work, |out| {
            reply::structured(&out, out.plain_summary())
        })
        .await
    }

    #[tool(
        description = "Peak GPU memory of a project's plan or a bare base model, part by part: whether it fits the GPU with a 20 % margin, the largest batch that fits, what would make it fit. Changes nothing.",
        annotations(read_only_hint = true, open_world_hint = false)
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
            choices: args.choices.map(|c| c.0).unwrap_or_default(),
        };
        let work = move || planner::answer_vram(&ws, &q);
        super::answer("estimate_vram", work, |a| {
            reply::structured(&a, a.plain_summary())
        })
        .await
    }

    #[tool(
        description = "Write a project's plan as its trainer's files (kohya, SimpleTuner, ai-toolkit or the Ategnatos engine) under workspace/configs/<project>/, with config.md explaining every setting. Refuses an unsafe plan.",
        annotations(
            read_only_hint = false,
            destructive_hint = false,
            idempotent_hint = false,
            open_world_hint = false
        )
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
            Ok(Err(e)) => reply::refusal(&e),
            Err(e) => reply::failure(format!("generate_config crashed: {e}"), None),
        }
    }
}
