//! `find_duplicates`, `quarantine_files`, `restore_quarantine`,
//! `curate_dataset`, `structure_dataset`: copies, setting pictures aside,
//! variety, and the kohya layout.

use base64::Engine;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolResult, ContentBlock};
use rmcp::service::RequestContext;
use rmcp::{RoleServer, tool, tool_router};
use serde::Deserialize;

use super::super::jobs::{JobFailure, JobOutput, JobStatus, JobView};
use super::super::{AtegnatosServer, reply};
use crate::dataset::curate::{self, CurateOptions, CurationReport};
use crate::dataset::dedup::{self, DuplicateOptions, DuplicateReport, ShowOptions};
use crate::dataset::quarantine::{self, QuarantineReport, RestoreReport};
use crate::dataset::structure::{self, Concept, StructureOptions, StructureReport};
use crate::studio::paths;
use crate::studio::project::TrainingType;

/// Where to look for duplicates.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct FindDuplicatesArgs {
    /// Folder with the pictures, relative to the workspace root.
    pub path: String,
    /// Largest difference (bits of 64, 0–24) between two pictures' hashes for them to be compared closely. Default 16; lower finds only closer copies, higher also heavier edits.
    #[serde(default)]
    pub threshold: Option<u32>,
    /// Caption file extension without the dot (default `txt`); captions are listed with their pictures.
    #[serde(default)]
    pub caption_extension: Option<String>,
    /// Write a contact sheet PNG per group and show small previews (default true).
    #[serde(default)]
    pub contact_sheets: Option<bool>,
    /// Seconds to wait for the result before returning a job id (default 30, at most 240).
    #[serde(default)]
    pub wait_seconds: Option<u64>,
}

/// Files to set aside.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct QuarantineArgs {
    /// Pictures (or other files) to move aside, relative to the workspace root; the caption beside each picture moves with it. Usually `suggested_quarantine` from find_duplicates, after the artist agreed.
    pub paths: Vec<String>,
    /// Why, in a few words (kept in the manifest).
    #[serde(default)]
    pub reason: Option<String>,
    /// Caption file extension without the dot (default `txt`).
    #[serde(default)]
    pub caption_extension: Option<String>,
}

/// Which quarantine to undo.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct RestoreArgs {
    /// The quarantine id quarantine_files returned; default the latest one not yet restored.
    #[serde(default)]
    pub id: Option<String>,
}

/// What to curate for.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct CurateArgs {
    /// Folder with the pictures, relative to the workspace root.
    pub path: String,
    /// How many pictures to keep. Default: the top of the usual range for the training type (style 100, character 40, object 30), when known.
    #[serde(default)]
    pub target_size: Option<usize>,
    /// `style`, `character` or `object`: sets the default target size and the regularisation advice.
    #[serde(default)]
    pub training_type: Option<TrainingType>,
    /// Largest difference (bits of 64) for two pictures to count as look-alikes (default 18).
    #[serde(default)]
    pub similar_threshold: Option<u32>,
    /// Caption file extension without the dot (default `txt`).
    #[serde(default)]
    pub caption_extension: Option<String>,
    /// Seconds to wait for the result before returning a job id (default 30, at most 240).
    #[serde(default)]
    pub wait_seconds: Option<u64>,
}

/// One concept of the layout.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct ConceptArg {
    /// Folder with this concept's pictures and captions, relative to the workspace root.
    pub source: String,
    /// Name of the subfolder after the repeats, e.g. `zkfox` or `ink style` → `10_zkfox`.
    pub name: String,
    /// Repeats per epoch; leave out to work them out from `target_steps`.
    #[serde(default)]
    pub repeats: Option<u32>,
}

/// The layout to build.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct StructureArgs {
    /// New training folder, relative to the workspace root; must not exist yet or be empty.
    pub destination: String,
    /// One or more concepts, each becoming a `{repeats}_{name}` subfolder.
    pub concepts: Vec<ConceptArg>,
    /// Steps (batch size 1) the whole run should reach, for automatic repeats (default 1500).
    #[serde(default)]
    pub target_steps: Option<u64>,
    /// Epochs the run will train, for automatic repeats (default 10).
    #[serde(default)]
    pub epochs: Option<u32>,
    /// Caption file extension without the dot (default `txt`).
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

/// Adds contact-sheet previews, when the job carried them, to a finished result.
fn with_previews(mut result: CallToolResult, previews: &[String]) -> CallToolResult {
    for jpeg in previews {
        result
            .content
            .push(ContentBlock::image(jpeg.clone(), "image/jpeg"));
    }
    result
}

#[tool_router(router = duplicates_router, vis = "pub(crate)")]
impl AtegnatosServer {
    #[tool(
        title = "Find duplicates",
        description = "Find pictures that are copies of each other: the same file twice, resized, re-saved as JPEG, slightly cropped, brightened, or mirrored. Duplicates make a LoRA memorise those pictures. Returns groups with each member's distance, a suggested keeper (largest, then best format), a contact sheet PNG per group and small previews. Changes nothing: show the groups to the artist, then call quarantine_files with the ones they agree to set aside.",
        annotations(read_only_hint = false, destructive_hint = false, idempotent_hint = true, open_world_hint = false),
        output_schema = rmcp::handler::server::common::schema_for_output::<JobView<DuplicateReport>>()
    )]
    async fn find_duplicates(
        &self,
        Parameters(args): Parameters<FindDuplicatesArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> CallToolResult {
        let ws = self.shared().workspace.clone();
        let dir = match paths::resolve_existing(ws.root(), &args.path) {
            Ok(d) => d,
            Err(e) => return reply::failure(&e, e.hint()),
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
        let previews = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
        let previews_job = std::sync::Arc::clone(&previews);
        let (job, result) = super::run_job(
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
                if let Ok(mut p) = previews_job.lock() {
                    *p = shown
                        .previews
                        .iter()
                        .map(|j| base64::engine::general_purpose::STANDARD.encode(j))
                        .collect();
                }
                let result =
                    serde_json::to_value(&shown.report).map_err(|e| job_failure(e, None))?;
                Ok(JobOutput {
                    result,
                    summary,
                    changed: Vec::new(),
                })
            },
        )
        .await;
        if job.view().status == JobStatus::Done {
            let previews = previews.lock().map(|p| p.clone()).unwrap_or_default();
            return with_previews(result, &previews);
        }
        result
    }

    #[tool(
        title = "Set pictures aside",
        description = "Move chosen pictures (and the caption beside each) into workspace/quarantine/<timestamp>/ with a manifest. Nothing is deleted; restore_quarantine puts them back exactly. Ask the artist before calling it. Refuses, moving nothing, if any path is not a file in the workspace.",
        annotations(read_only_hint = false, destructive_hint = false, idempotent_hint = false, open_world_hint = false),
        output_schema = rmcp::handler::server::common::schema_for_output::<QuarantineReport>()
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
                Err(e) => return reply::failure(&e, e.hint()),
            }
        }
        let ext = caption_ext(&args.caption_extension);
        let reason = args.reason.clone();
        let done = tokio::task::spawn_blocking(move || {
            quarantine::quarantine_files(&ws, &resolved, &ext, reason.as_deref())
        })
        .await;
        match done {
            Ok(Ok(r)) => reply::structured(&r, r.plain_summary()),
            Ok(Err(e)) => reply::failure(&e, e.hint()),
            Err(e) => reply::failure(format!("quarantine_files crashed: {e}"), None),
        }
    }

    #[tool(
        title = "Restore a quarantine",
        description = "Put the files of a quarantine back exactly where they were (default: the latest one). Refuses, moving nothing, when a file now exists at an original location.",
        annotations(read_only_hint = false, destructive_hint = false, idempotent_hint = false, open_world_hint = false),
        output_schema = rmcp::handler::server::common::schema_for_output::<RestoreReport>()
    )]
    async fn restore_quarantine(
        &self,
        Parameters(args): Parameters<RestoreArgs>,
    ) -> CallToolResult {
        let ws = self.shared().workspace.clone();
        let done = tokio::task::spawn_blocking(move || {
            quarantine::restore_quarantine(&ws, args.id.as_deref())
        })
        .await;
        match done {
            Ok(Ok(r)) => reply::structured(&r, r.plain_summary()),
            Ok(Err(e)) => reply::failure(&e, e.hint()),
            Err(e) => reply::failure(format!("restore_quarantine crashed: {e}"), None),
        }
    }

    #[tool(
        title = "Curate a dataset",
        description = "How varied the pictures are (a 0–100 score), which ones look too alike (clusters), and, when the set is larger than the target size, which subset to keep so every kept picture adds a new look (with reasons). Also says whether this kind of LoRA needs regularisation pictures, in plain words. Changes nothing.",
        annotations(read_only_hint = false, destructive_hint = false, idempotent_hint = true, open_world_hint = false),
        output_schema = rmcp::handler::server::common::schema_for_output::<JobView<CurationReport>>()
    )]
    async fn curate_dataset(
        &self,
        Parameters(args): Parameters<CurateArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> CallToolResult {
        let ws = self.shared().workspace.clone();
        let dir = match paths::resolve_existing(ws.root(), &args.path) {
            Ok(d) => d,
            Err(e) => return reply::failure(&e, e.hint()),
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
                })
            },
        )
        .await;
        result
    }

    #[tool(
        title = "Lay out for kohya",
        description = "Copy flat folders of pictures and captions into kohya's training layout, `{repeats}_{name}/` per concept, in a new folder. Repeats are given, or worked out as ceil(target_steps / (concepts × pictures × epochs)). Never moves or changes the originals. Refuses when a picture has no caption, and names them.",
        annotations(read_only_hint = false, destructive_hint = false, idempotent_hint = false, open_world_hint = false),
        output_schema = rmcp::handler::server::common::schema_for_output::<StructureReport>()
    )]
    async fn structure_dataset(
        &self,
        Parameters(args): Parameters<StructureArgs>,
    ) -> CallToolResult {
        let ws = self.shared().workspace.clone();
        let destination = match paths::resolve_inside(ws.root(), &args.destination) {
            Ok(d) => d,
            Err(e) => return reply::failure(&e, e.hint()),
        };
        let mut concepts = Vec::new();
        for c in &args.concepts {
            match paths::resolve_existing(ws.root(), &c.source) {
                Ok(source) => concepts.push(Concept {
                    source,
                    name: c.name.clone(),
                    repeats: c.repeats,
                }),
                Err(e) => return reply::failure(&e, e.hint()),
            }
        }
        let options = StructureOptions {
            destination,
            concepts,
            target_steps: args.target_steps.unwrap_or(structure::DEFAULT_TARGET_STEPS),
            epochs: args.epochs.unwrap_or(structure::DEFAULT_EPOCHS),
            caption_extension: caption_ext(&args.caption_extension),
        };
        let done =
            tokio::task::spawn_blocking(move || structure::structure_dataset(&ws, &options)).await;
        match done {
            Ok(Ok(r)) => reply::structured(&r, r.plain_summary()),
            Ok(Err(e)) => reply::failure(&e, e.hint()),
            Err(e) => reply::failure(format!("structure_dataset crashed: {e}"), None),
        }
    }
}
