//! `start_project`, `list_projects`, `project_status`: the training project
//! every later step works from.

use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::CallToolResult;
use rmcp::{tool, tool_router};
use serde::Deserialize;

use super::super::{AtegnatosServer, reply};
use crate::dataset::intent::{self, ProjectRequest};
use crate::gates::status::{self};
use crate::studio::Hint;
use crate::studio::project::{self, TrainingType};

/// A new training project.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct StartProjectArgs {
    /// Project name: letters, digits, `-`, `_`.
    pub name: String,
    /// What the LoRA learns.
    pub training_type: TrainingType,
    /// sd15, sdxl, pony, illustrious, flux-dev, flux-schnell, sd35-medium or sd35-large.
    pub base_model: String,
    /// A made-up word the LoRA answers to (e.g. `zkfox`).
    pub trigger_word: String,
    /// Folder of pictures.
    pub dataset: String,
    /// What the artist wants, in their words.
    #[serde(default)]
    pub description: Option<String>,
    /// Caption extension (default `txt`).
    #[serde(default)]
    pub caption_extension: Option<String>,
}

/// Which project.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct ProjectArgs {
    /// Project name.
    pub project: String,
}

#[tool_router(router = project_router, vis = "pub(crate)")]
impl AtegnatosServer {
    #[tool(
        description = "Start a training project: what the LoRA learns (style, character, object), the base model, a made-up trigger word (words the model already knows are refused) and the picture folder. Writes intent.md.",
        annotations(
            read_only_hint = false,
            destructive_hint = false,
            idempotent_hint = false,
            open_world_hint = false
        )
    )]
    async fn start_project(
        &self,
        Parameters(args): Parameters<StartProjectArgs>,
    ) -> CallToolResult {
        let ws = self.shared().workspace.clone();
        let req = ProjectRequest {
            name: args.name,
            training_type: args.training_type,
            base_model: args.base_model,
            description: args.description.unwrap_or_default(),
            trigger_word: args.trigger_word,
            dataset: args.dataset,
            caption_extension: args.caption_extension.unwrap_or_else(|| "txt".into()),
        };
        let work = move || intent::start_project(&ws, &req);
        super::answer("start_project", work, |s| {
            reply::structured(&s, s.plain_summary())
        })
        .await
    }

    #[tool(
        description = "List the training projects in this workspace.",
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn list_projects(&self) -> CallToolResult {
        let ws = self.shared().workspace.clone();
        let projects = match tokio::task::spawn_blocking(move || project::list(&ws)).await {
            Ok(projects) => projects,
            Err(e) => return reply::failure(format!("list_projects crashed: {e}"), None),
        };
        let names: Vec<String> = projects
            .iter()
            .map(|p| {
                format!(
                    "`{}` ({} for {})",
                    p.name,
                    p.training_type.word(),
                    p.base_model
                )
            })
            .collect();
        let summary = if names.is_empty() {
            "No projects yet: start one with start_project.".to_string()
        } else {
            format!("{} project(s): {}.", names.len(), names.join(", "))
        };
        reply::structured(&serde_json::json!({ "projects": projects }), summary)
    }

    #[tool(
        description = "Where a project stands: each gate passed, failed, not run or stale (and why), and the next step.",
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn project_status(&self, Parameters(args): Parameters<ProjectArgs>) -> CallToolResult {
        let ws = self.shared().workspace.clone();
        let billing = crate::cloud::watchdog::billing_warning(&ws);
        let result = tokio::task::spawn_blocking(move || {
            let p = intent::require_project(&ws, &args.project)
                .map_err(|e| (e.to_string(), e.hint()))?;
            status::project_status(&ws, &p).map_err(|e| (e.to_string(), e.hint()))
        })
        .await;
        match result {
            Ok(Ok(s)) => reply::structured(
                &s,
                [Some(s.plain_summary()), billing]
                    .into_iter()
                    .flatten()
                    .collect::<Vec<_>>()
                    .join(" "),
            ),
            Ok(Err((msg, hint))) => reply::failure(msg, hint),
            Err(e) => reply::failure(format!("project_status crashed: {e}"), None),
        }
    }
}
