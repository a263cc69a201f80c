//! `audit_dataset`: the truth about a folder of training pictures.

use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::CallToolResult;
use rmcp::service::RequestContext;
use rmcp::{RoleServer, tool, tool_router};
use serde::Deserialize;

use super::super::jobs::{JobFailure, JobOutput};
use super::super::{AtegnatosServer, reply};
use crate::dataset::{self, AuditOptions};
use crate::plan::catalog;
use crate::studio::Hint;

/// What to audit and against what.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct AuditDatasetArgs {
    /// Folder of pictures and captions.
    pub path: String,
    /// A project: use its trigger word and base model, save the report with it.
    #[serde(default)]
    pub project: Option<String>,
    /// Base model (as in start_project): sets the smallest useful picture.
    #[serde(default)]
    pub base_model: Option<String>,
    /// Smallest short side in pixels (overrides the base model's).
    #[serde(default)]
    pub min_short_side: Option<u32>,
    /// Largest long side / short side (default 3).
    #[serde(default)]
    pub max_aspect_ratio: Option<f64>,
    /// Caption extension (default `txt`).
    #[serde(default)]
    pub caption_extension: Option<String>,
    /// Trigger word every caption must contain.
    #[serde(default)]
    pub trigger_word: Option<String>,
    /// Regularisation folder to report alongside.
    #[serde(default)]
    pub regularization_dir: Option<String>,
    /// List every picture, not only those with findings.
    #[serde(default)]
    pub include_all_files: Option<bool>,
    /// Seconds before answering with a job id (default 30).
    #[serde(default)]
    pub wait_seconds: Option<u64>,
}

/// A bad argument, said plainly.
fn bad(message: String, hint: &str) -> CallToolResult {
    reply::failure(message, Some(hint.to_string()))
}

impl AtegnatosServer {
    fn audit_options(&self, args: &AuditDatasetArgs) -> Result<AuditOptions, CallToolResult> {
        let ws = &self.shared().workspace;
        let base_model = match &args.base_model {
            Some(id) => Some(catalog::lookup(id).map_err(|e| reply::refusal(&e))?),
            None => None,
        };
        if let Some(project) = &args.project {
            crate::studio::check_project_name(project).map_err(|e| reply::refusal(&e))?;
        }
        let regularization_dir = match &args.regularization_dir {
            Some(p) => Some(
                crate::studio::paths::resolve_existing(ws.root(), p)
                    .map_err(|e| reply::refusal(&e))?,
            ),
            None => None,
        };
        let options = AuditOptions {
            base_model,
            min_short_side: args.min_short_side,
            max_aspect_ratio: args
                .max_aspect_ratio
                .unwrap_or(dataset::audit::DEFAULT_MAX_ASPECT),
            caption_extension: args
                .caption_extension
                .clone()
                .unwrap_or_else(|| "txt".into()),
            trigger_word: args.trigger_word.clone(),
            regularization_dir,
            include_all_files: args.include_all_files.unwrap_or(false),
        };
        options.validate().map_err(|e| reply::refusal(&e))?;
        Ok(options)
    }
}

#[tool_router(router = audit_router, vis = "pub(crate)")]
impl AtegnatosServer {
    #[tool(
        description = "Check every picture and caption in a folder: broken, cut-off or too-small files, odd colour modes, lying extensions, missing captions or trigger words, the kohya folder layout. Worst problems first, each with what to do. Changes no file. Use it first on any new folder.",
        annotations(
            read_only_hint = false,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = false
        )
    )]
    async fn audit_dataset(
        &self,
        Parameters(args): Parameters<AuditDatasetArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> CallToolResult {
        let ws = self.shared().workspace.clone();
        let dir = match crate::studio::paths::resolve_existing(ws.root(), &args.path) {
            Ok(d) => d,
            Err(e) => return reply::refusal(&e),
        };
        if !dir.is_dir() {
            return bad(
                format!("`{}` is not a folder", args.path),
                "give the folder that holds the pictures, not a single file",
            );
        }
        let mut options = match self.audit_options(&args) {
            Ok(o) => o,
            Err(refusal) => return refusal,
        };
        if let Some(project) = &args.project
            && let Err(e) = crate::gates::dataset::apply_project_rules(&ws, project, &mut options)
        {
            return reply::refusal(&e);
        }
        let project = args.project.clone();
        let (_job, result) = super::run_job(
            self,
            "audit_dataset",
            args.wait_seconds,
            &ctx,
            move |progress| {
                let display = ws.display_path(&dir);
                let report = dataset::audit_dataset(&dir, &display, ws.root(), &options, progress)
                    .map_err(|e| JobFailure {
                        error: e.to_string(),
                        hint: e.hint(),
                    })?;
                let mut summary = report.plain_summary();
                let mut changed = Vec::new();
                if let Some(project) = project {
                    let (record, uri) = crate::gates::dataset::record_audit(&ws, &project, &report)
                        .map_err(|e| JobFailure {
                            error: e.to_string(),
                            hint: e.hint(),
                        })?;
                    summary.push_str(&format!(
                        " Saved to {} and recorded as {} ({:?}).",
                        record.report.as_deref().unwrap_or("audit.json"),
                        uri,
                        record.status
                    ));
                    changed.push(uri);
                }
                let result = serde_json::to_value(&report).map_err(|e| JobFailure {
                    error: e.to_string(),
                    hint: None,
                })?;
                Ok(JobOutput {
                    result,
                    summary,
                    changed,
                    previews: Vec::new(),
                })
            },
        )
        .await;
        result
    }
}
