//! `find_duplicates`, `quarantine_files`, `restore_quarantine`,
//! `curate_dataset`, `structure_dataset`: copies, setting pictures aside,
//! variety, and the kohya layout.

use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::CallToolResult;
use rmcp::service::RequestContext;
use rmcp::{RoleServer, tool, tool_router};
use serde::Deserialize;

use super::super::jobs::{JobFailure, JobOutput};
use super::super::{AtegnatosServer, reply};
use crate::dataset::structure::{self, Concept, StructureOptions};
use crate::likeness::curate::{self, CurateOptions};
use crate::likeness::dedup::{self, DuplicateOptions, ShowOptions};
use crate::likeness::quarantine;
use crate::studio::Hint;
use crate::studio::paths;
use crate::studio::project::TrainingType;

/// Where to look for duplicates.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct FindDuplicatesArgs {
    /// Folder of pictures.
    pub path: String,
    /// Hash distance, 0–24 bits of 64 (default 16): lower finds only closer copies.
    #[serde(default)]
    pub threshold: Option<u32>,
    /// Caption extension (default `txt`).
    #[serde(default)]
    pub caption_extension: Option<String>,
    /// Contact sheets and previews (default true).
    #[serde(default)]
    pub contact_sheets: Option<bool>,
    /// Seconds before answering with a job id (default 30).
    #[serde(default)]
    pub wait_seconds: Option<u64>,
}

/// Files to set aside.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct QuarantineArgs {
    /// Pictures to move aside (their captions follow).
    pub paths: Vec<String>,
    /// Why, in a few words.
    #[serde(default)]
    pub reason: Option<String>,
    /// Caption extension (default `txt`).
    #[serde(default)]
    pub caption_extension: Option<String>,
}

/// Which quarantine to undo.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct RestoreArgs {
    /// Quarantine id (default the latest).
    #[serde(default)]
    pub id: Option<String>,
}

/// What to curate for.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct CurateArgs {
    /// Folder of pictures.
    pub path: String,
    /// How many to keep (default the training type's usual size).
    #[serde(default)]
    pub target_size: Option<usize>,
    /// Sets the target size and the regularisation advice.
    #[serde(default)]
    pub training_type: Option<TrainingType>,
    /// Look-alike distance in bits of 64 (default 18).
    #[serde(default)]
    pub similar_threshold: Option<u32>,
    /// Caption extension (default `txt`).
    #[serde(default)]
    pub caption_extension: Option<String>,
    /// Seconds before answering with a job id (default 30).
    #[serde(default)]
    pub wait_seconds: Option<u64>,
}

/// One concept of the layout.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct ConceptArg {
    /// Folder of this concept's captioned pictures.
    pub source: String,
    /// Subfolder name after the repeats (`zkfox` → `10_zkfox`).
    pub name: String,
    /// Repeats per epoch (default from `target_steps`).
    #[serde(default)]
    pub repeats: Option<u32>,
}

/// The layout to build.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct StructureArgs {
    /// New or empty folder.
    pub destination: String,
    /// Concepts, one `{repeats}_{name}` subfolder each.
    pub concepts: Vec<ConceptArg>,
    /// Steps the run should reach (default 1500).
    #[serde(default)]
    pub target_steps: Option<u64>,
    /// Epochs planned (default 10).
    #[serde(default)]
    pub epochs: Option<u32>,
    /// Caption extension (default `txt`).
    #[serde(default)]
    pub caption_extension: Option<String>,
}

fn caption_ext(given: &Option<String>) -> String {
    given
        .as_deref()
        .unwrap_or("txt")
        .trim_start_matches('.')
        .to_string()
}

fn job_failure(error: impl std::fmt::Display, hint: Option<String>) -> JobFailure {
    JobFailure {
        error: error.to_string(),
        hint,
    }
}

#[tool_router(router = duplicates_router, vis = "pub(crate)")]
impl AtegnatosServer {
    #[tool(
        description = "Find copies among pictures (the same file, resized, re-saved, cropped, brightened, mirrored), which make a LoRA memorise them: groups with a suggested keeper and small previews. Changes nothing; show the artist, then quarantine_files what they agree to set aside.",
        annotations(
            read_only_hint = false,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = false
        )
    )]
    async fn find_duplicates(
        &self,
        Parameters(args): Parameters<FindDuplicatesArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> CallToolResult {
        let ws = self.shared().workspace.clone();
        let dir = match paths::resolve_existing(ws.root(), &args.path) {
            Ok(d) => d,
            Err(e) => return reply::refusal(&e),
        };
        let options = DuplicateOptions {
            threshold: args.threshold.unwrap_or(dedup::DEFAULT_THRESHOLD),
            caption_extension: caption_ext(&args.caption_extension),
            use_cache: true,
            ..DuplicateOptions::default()
        };
        // The largest groups (the others counted), each with its contact
        // sheet, and the first sheets as previews.
        let show = ShowOptions {
            contact_sheets: args.contact_sheets.unwrap_or(true),
            ..ShowOptions::tool_default()
        };
        let (_job, result) = super::run_job(
            self,
            "find_duplicates",
            args.wait_seconds,
            &ctx,
            move |progress| {
                let shown = dedup::find_duplicates_shown(&dir, &ws, &options, &show, progress)
                    .map_err(|e| job_failure(&e, e.hint()))?;
                let mut summary = shown.report.plain_summary();
                if let Some(note) = &shown.note {
                    summary.push_str(&format!(" ({note}.)"));
                }
                let mut out = super::output(summary, Vec::new(), &shown.report)?;
                out.previews = shown.previews;
                Ok(out)
            },
        )
        .await;
        result
    }

    #[tool(
        description = "Move pictures (with their captions) to workspace/quarantine/<id>/ with a manifest. Nothing is deleted; restore_quarantine undoes it. Ask the artist first.",
        annotations(
            read_only_hint = false,
            destructive_hint = false,
            idempotent_hint = false,
            open_world_hint = false
        )
    )]
    async fn quarantine_files(
        &self,
        Parameters(args): Parameters<QuarantineArgs>,
    ) -> CallToolResult {
        let ws = self.shared().workspace.clone();
        let mut resolved = Vec::new();
        for p in &args.paths {
            match paths::resolve_existing(ws.root(), p) {
                Ok(path) => resolved.push(path),
                Err(e) => return reply::refusal(&e),
            }
        }
        let ext = caption_ext(&args.caption_extension);
        let reason = args.reason.clone();
        let work = move || quarantine::quarantine_files(&ws, &resolved, &ext, reason.as_deref());
        super::answer("quarantine_files", work, |r| {
            reply::structured(&r, r.plain_summary())
        })
        .await
    }

    #[tool(
        description = "Put a quarantine's files back where they were (default the latest). Refuses, moving nothing, if a file is in the way.",
        annotations(
            read_only_hint = false,
            destructive_hint = false,
            idempotent_hint = false,
            open_world_hint = false
        )
    )]
    async fn restore_quarantine(
        &self,
        Parameters(args): Parameters<RestoreArgs>,
    ) -> CallToolResult {
        let ws = self.shared().workspace.clone();
        let work = move || quarantine::restore_quarantine(&ws, args.id.as_deref());
        super::answer("restore_quarantine", work, |r| {
            reply::structured(&r, r.plain_summary())
        })
        .await
    }

    #[tool(
        description = "How varied a folder is (0–100), clusters of look-alikes, and when it is larger than needed which pictures to keep and why; regularisation advice. Changes nothing.",
        annotations(
            read_only_hint = false,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = false
        )
    )]
    async fn curate_dataset(
        &self,
        Parameters(args): Parameters<CurateArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> CallToolResult {
        let ws = self.shared().workspace.clone();
        let dir = match paths::resolve_existing(ws.root(), &args.path) {
            Ok(d) => d,
            Err(e) => return reply::refusal(&e),
        };
        let options = CurateOptions {
            target_size: args.target_size,
            training_type: args.training_type,
            similar_threshold: args
                .similar_threshold
                .unwrap_or(curate::DEFAULT_SIMILAR_THRESHOLD),
            caption_extension: caption_ext(&args.caption_extension),
            use_cache: true,
        };
        let (_job, result) = super::run_job(
            self,
            "curate_dataset",
            args.wait_seconds,
            &ctx,
            move |progress| {
                let report = curate::curate_dataset(&dir, &ws, &options, progress)
                    .map_err(|e| job_failure(&e, e.hint()))?;
                let summary = report.plain_summary();
                let result = serde_json::to_value(&report).map_err(|e| job_failure(e, None))?;
                Ok(JobOutput {
                    result,
                    summary,
                    changed: Vec::new(),
                    previews: Vec::new(),
                })
            },
        )
        .await;
        result
    }

    #[tool(
        description = "Copy flat folders of captioned pictures into kohya's `{repeats}_{name}/` layout in a new folder, repeats given or worked out. Never touches the originals.",
        annotations(
            read_only_hint = false,
            destructive_hint = false,
            idempotent_hint = false,
            open_world_hint = false
        )
    )]
    async fn structure_dataset(
        &self,
        Parameters(args): Parameters<StructureArgs>,
    ) -> CallToolResult {
        let ws = self.shared().workspace.clone();
        let destination = match paths::resolve_inside(ws.root(), &args.destination) {
            Ok(d) => d,
            Err(e) => return reply::refusal(&e),
        };
        let mut concepts = Vec::new();
        for c in &args.concepts {
            match paths::resolve_existing(ws.root(), &c.source) {
                Ok(source) => concepts.push(Concept {
                    source,
                    name: c.name.clone(),
                    repeats: c.repeats,
                }),
                Err(e) => return reply::refusal(&e),
            }
        }
        let options = StructureOptions {
            destination,
            concepts,
            target_steps: args.target_steps.unwrap_or(structure::DEFAULT_TARGET_STEPS),
            epochs: args.epochs.unwrap_or(structure::DEFAULT_EPOCHS),
            caption_extension: caption_ext(&args.caption_extension),
        };
        let work = move || structure::structure_dataset(&ws, &options);
        super::answer("structure_dataset", work, |r| {
            reply::structured(&r, r.plain_summary())
        })
        .await
    }
}
