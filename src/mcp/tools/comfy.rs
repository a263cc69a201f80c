//! `comfyui_submit`, `eval_grid` and `register_lora`: rendering through the
//! artist's ComfyUI, judging a trained LoRA on a weight grid, and adding the
//! approved one to the studio.
//!
//! Renders are jobs (they take minutes); results stay small: paths, counts
//! and JPEG previews (long side ≤ 512 px, the contact sheet ≤ 1024 px).

use std::time::Duration;

use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::CallToolResult;
use rmcp::service::RequestContext;
use rmcp::{RoleServer, tool, tool_router};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::super::jobs::JobFailure;
use super::super::{AtegnatosServer, reply};
use crate::comfy::eval::{self, EvalRequest};
use crate::comfy::register::{self, Approval};
use crate::comfy::submit::{self, Source, SubmitRequest};
use crate::comfy::{ComfyClient, ComfyError, inventory, settings, templates};
use crate::studio::Hint;
use crate::studio::{Workspace, paths};

/// Longest one render (or one grid cell) may take.
const DEFAULT_TIMEOUT_SECONDS: u64 = 30 * 60;

/// What to render.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct ComfySubmitArgs {
    /// Template, saved name or .json file; none: lists them and the models.
    #[serde(default)]
    pub workflow: Option<String>,
    /// Inline API-format graph.
    #[serde(default)]
    pub graph: Option<Value>,
    /// By template name or `node_id.input`.
    #[serde(default)]
    pub params: Option<Map<String, Value>>,
    /// For the LoadImage nodes, in order.
    #[serde(default)]
    pub inputs: Option<Vec<String>>,
    /// Keep as grimoire/workflows/<name>.json.
    #[serde(default)]
    pub save_as: Option<String>,
    #[serde(default)]
    pub project: Option<String>,
    #[serde(default)]
    pub base_model: Option<String>,
    /// ComfyUI address (default: project's, COMFYUI_URL, :8188).
    #[serde(default)]
    pub server: Option<String>,
    /// Seconds before answering with a job id (default 30).
    #[serde(default)]
    pub wait_seconds: Option<u64>,
}

/// What to evaluate; everything but the project has a default.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct EvalGridArgs {
    pub project: String,
    /// Default: the newest run's final LoRA.
    #[serde(default)]
    pub lora: Option<String>,
    /// Up to 3, as ComfyUI names them.
    #[serde(default)]
    pub checkpoints: Option<Vec<String>>,
    /// Default: the training type's five.
    #[serde(default)]
    pub prompts: Option<Vec<String>>,
    /// Default 0.3 0.5 0.7 0.9 1.0.
    #[serde(default)]
    pub weights: Option<Vec<f32>>,
    #[serde(default)]
    pub seed: Option<u64>,
    #[serde(default)]
    pub steps: Option<u32>,
    #[serde(default)]
    pub server: Option<String>,
    /// ComfyUI's folder here, to copy the LoRA into.
    #[serde(default)]
    pub comfyui_dir: Option<String>,
    #[serde(default)]
    pub wait_seconds: Option<u64>,
}

/// The artist's approval.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct RegisterLoraArgs {
    pub project: String,
    pub recommended_weight: f32,
    /// In the artist's words.
    #[serde(default)]
    pub good_for: Option<String>,
    /// Default: the newest run's final LoRA.
    #[serde(default)]
    pub lora: Option<String>,
}

/// What `comfyui_submit` lists when given no workflow.
#[derive(Debug, Serialize)]
struct Listing {
    templates: &'static [templates::Template],
    saved: Vec<String>,
    /// What the server has installed (absent when it does not answer).
    #[serde(skip_serializing_if = "Option::is_none")]
    inventory: Option<inventory::Inventory>,
    #[serde(skip_serializing_if = "Option::is_none")]
    not_answering: Option<String>,
}

fn comfy_failure(e: &ComfyError) -> CallToolResult {
    reply::failure(e, e.hint())
}

fn job_failure(e: &ComfyError) -> JobFailure {
    JobFailure {
        error: e.to_string(),
        hint: e.hint(),
    }
}

/// A workspace path argument, resolved (it must exist).
fn existing(ws: &Workspace, given: &str) -> Result<std::path::PathBuf, CallToolResult> {
    paths::resolve_existing(ws.root(), given).map_err(|e| reply::failure(&e, e.hint()))
}

impl AtegnatosServer {
    /// Templates, saved workflows and, when the server answers, its models.
    async fn list_workflows(&self, args: &ComfySubmitArgs) -> CallToolResult {
        let ws = self.shared().workspace.clone();
        let (url, _) =
            match settings::resolve_url(args.server.as_deref(), &ws, args.project.as_deref()) {
                Ok(u) => u,
                Err(e) => return comfy_failure(&e),
            };
        let mut listing = Listing {
            templates: templates::TEMPLATES,
            saved: submit::saved_workflows(&ws),
            inventory: None,
            not_answering: None,
        };
        let client = match ComfyClient::new(url.clone()) {
            Ok(c) => c,
            Err(e) => return comfy_failure(&e),
        };
        match inventory::fetch(&client).await {
            Ok(inv) => {
                if let Err(e) = inventory::save(&ws, &inv) {
                    return reply::failure(&e, e.hint());
                }
                listing.inventory = Some(inv);
            }
            Err(e) if e.is_unreachable() => listing.not_answering = Some(e.to_string()),
            Err(e) => return comfy_failure(&e),
        }
        let names: Vec<&str> = templates::TEMPLATES.iter().map(|t| t.name).collect();
        let mut summary = format!(
            "{} templates ({}); {} saved workflow{} in grimoire/workflows/. ",
            names.len(),
            names.join(", "),
            listing.saved.len(),
            if listing.saved.len() == 1 { "" } else { "s" }
        );
        match (&listing.inventory, &listing.not_answering) {
            (Some(inv), _) => summary.push_str(&format!(
                "{} Saved to grimoire/studio.md.",
                inv.plain_summary()
            )),
            (None, Some(why)) => summary.push_str(&format!(
                "{why}; its models are unknown (start it and ask again)."
            )),
            (None, None) => {}
        }
        reply::structured(&listing, summary)
    }
}

#[tool_router(router = comfy_router, vis = "pub(crate)")]
impl AtegnatosServer {
    #[tool(
        description = "Render in the artist's ComfyUI with progress; returns output paths and previews. ComfyUI down: the workflow is saved to run later.",
        annotations(
            read_only_hint = false,
            destructive_hint = false,
            idempotent_hint = false,
            open_world_hint = true
        )
    )]
    async fn comfyui_submit(
        &self,
        Parameters(args): Parameters<ComfySubmitArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> CallToolResult {
        let ws = self.shared().workspace.clone();
        let source = match (&args.workflow, &args.graph) {
            (None, None) => return self.list_workflows(&args).await,
            (Some(_), Some(_)) => {
                return reply::failure(
                    "both `workflow` and `graph` were given",
                    Some("give one: a workflow name or file, or an inline graph".into()),
                );
            }
            (None, Some(g)) => Source::Inline(g.clone()),
            (Some(w), None) if Source::names_a_file(w) => match existing(&ws, w) {
                Ok(p) => Source::File(p),
                Err(refusal) => return refusal,
            },
            (Some(w), None) => Source::Named(w.trim().to_string()),
        };
        let mut inputs = Vec::new();
        for i in args.inputs.iter().flatten() {
            match existing(&ws, i) {
                Ok(p) => inputs.push(p),
                Err(refusal) => return refusal,
            }
        }
        if let Some(project) = &args.project
            && let Err(e) = crate::studio::check_project_name(project)
        {
            return reply::failure(&e, e.hint());
        }
        let saved_as = match &args.save_as {
            Some(name) => match submit::save_workflow(&ws, name, &source) {
                Ok(path) => Some(path),
                Err(e) => return comfy_failure(&e),
            },
            None => None,
        };
        let prefix = source.folder_prefix();
        let req = SubmitRequest {
            source,
            params: args.params.clone().unwrap_or_default(),
            inputs,
            project: args.project.clone(),
            base_model: args.base_model.clone(),
            server: args.server.clone(),
            timeout: Duration::from_secs(DEFAULT_TIMEOUT_SECONDS),
        };
        let handle = tokio::runtime::Handle::current();
        let (_job, result) = super::run_job(
            self,
            "comfyui_submit",
            args.wait_seconds,
            &ctx,
            move |progress| {
                let folder = submit::output_folder_name(&ws, &prefix);
                let mut report = handle
                    .block_on(submit::submit(&ws, &req, &folder, progress))
                    .map_err(|e| job_failure(&e))?;
                let mut summary = report.plain_summary();
                if let Some(path) = saved_as {
                    summary.push_str(&format!(" The workflow is kept as {path}."));
                }
                let previews = std::mem::take(&mut report.previews);
                let mut out = super::output(summary, Vec::new(), &report)?;
                out.previews = previews;
                Ok(out)
            },
        )
        .await;
        result
    }

    #[tool(
        description = "Judge a trained LoRA in ComfyUI: test prompts × LoRA weights, one seed; returns a labelled contact sheet, writes eval.md.",
        annotations(
            read_only_hint = false,
            destructive_hint = false,
            idempotent_hint = false,
            open_world_hint = true
        )
    )]
    async fn eval_grid(
        &self,
        Parameters(args): Parameters<EvalGridArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> CallToolResult {
        let ws = self.shared().workspace.clone();
        if let Err(e) = crate::studio::check_project_name(&args.project) {
            return reply::failure(&e, e.hint());
        }
        let lora = match &args.lora {
            Some(l) => match existing(&ws, l) {
                Ok(p) => Some(p),
                Err(refusal) => return refusal,
            },
            None => None,
        };
        // ComfyUI's own folder lies outside the workspace: it is only read
        // for `models/loras`, checked before anything is copied there.
        let comfyui_dir = args.comfyui_dir.as_ref().map(std::path::PathBuf::from);
        if let Some(d) = &comfyui_dir
            && !d.is_absolute()
        {
            return reply::failure(
                format!("`{}` is not an absolute folder path", d.display()),
                Some("give ComfyUI's folder in full, e.g. `/home/me/ComfyUI`".into()),
            );
        }
        let req = EvalRequest {
            project: args.project.clone(),
            lora,
            checkpoints: args.checkpoints.clone().unwrap_or_default(),
            prompts: args.prompts.clone().unwrap_or_default(),
            weights: args.weights.clone().unwrap_or_default(),
            seed: args.seed,
            steps: args.steps,
            server: args.server.clone(),
            comfyui_dir,
            cell_timeout: Duration::from_secs(DEFAULT_TIMEOUT_SECONDS),
        };
        let handle = tokio::runtime::Handle::current();
        let project = args.project.clone();
        let (_job, result) = super::run_job(
            self,
            "eval_grid",
            args.wait_seconds,
            &ctx,
            move |progress| {
                let folder = submit::output_folder_name(&ws, &format!("{project}-eval"));
                let report = handle
                    .block_on(eval::eval_grid(&ws, &req, &folder, progress))
                    .map_err(|e| job_failure(&e))?;
                let mut out = super::output(report.plain_summary(), Vec::new(), &report)?;
                out.previews = report.preview.iter().cloned().collect();
                // The artist's taste beside the grid they are about to judge.
                let eye = crate::art::eye::beside_work(&ws, &project);
                if !eye.is_empty() {
                    out.summary
                        .push_str(&format!(" The artist's eye: {}.", eye.join("; ")));
                    if let serde_json::Value::Object(map) = &mut out.result {
                        map.insert("artist_eye".into(), serde_json::json!(eye));
                    }
                }
                Ok(out)
            },
        )
        .await;
        result
    }

    #[tool(
        description = "Once the artist approves the grid: add the LoRA to grimoire/studio.md and mark the project COMPLETE.",
        annotations(
            read_only_hint = false,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = false
        )
    )]
    async fn register_lora(
        &self,
        Parameters(args): Parameters<RegisterLoraArgs>,
    ) -> CallToolResult {
        let ws = self.shared().workspace.clone();
        if let Err(e) = crate::studio::check_project_name(&args.project) {
            return reply::failure(&e, e.hint());
        }
        let lora = match &args.lora {
            Some(l) => match existing(&ws, l) {
                Ok(p) => Some(p),
                Err(refusal) => return refusal,
            },
            None => None,
        };
        let approval = Approval {
            lora,
            recommended_weight: args.recommended_weight,
            good_for: args.good_for.clone(),
        };
        match register::register_lora(&ws, &args.project, &approval) {
            Ok(r) => {
                let summary = r.plain_summary();
                reply::structured(&r, summary)
            }
            Err(e) => comfy_failure(&e),
        }
    }
}
