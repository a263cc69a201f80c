//! `caption_preview`, `write_captions`, `approve_captions`, `restore_caption`:
//! captioning with the artist in the loop.

use std::collections::BTreeMap;

use base64::Engine as _;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolResult, ContentBlock};
use rmcp::{tool, tool_router};
use serde::Deserialize;

use super::super::{AtegnatosServer, reply};
use crate::dataset::captioning::{self, CaptionState, Restored, WriteReport};

/// Which pictures to preview.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct CaptionPreviewArgs {
    /// The project's name.
    pub project: String,
    /// How many pictures (default 5, at most 12), chosen to be as different from each other as possible.
    #[serde(default)]
    pub count: Option<usize>,
    /// Preview exactly these pictures instead (paths relative to the dataset folder).
    #[serde(default)]
    pub paths: Option<Vec<String>>,
    /// Longest side of the preview pictures in pixels (default 768, 256–1024).
    #[serde(default)]
    pub max_side: Option<u32>,
}

/// Captions to write.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct WriteCaptionsArgs {
    /// The project's name.
    pub project: String,
    /// Picture path (relative to the dataset folder) → caption text. The trigger word is put first when missing, and tags are tidied for the base model.
    pub captions: BTreeMap<String, String>,
}

/// Captions the artist approved.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct ApproveCaptionsArgs {
    /// The project's name.
    pub project: String,
    /// Pictures whose current captions the artist approved (relative to the dataset folder).
    pub paths: Vec<String>,
}

/// A caption to put back.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct RestoreCaptionArgs {
    /// The project's name.
    pub project: String,
    /// The picture whose caption to restore (relative to the dataset folder).
    pub path: String,
    /// Undo the change made by this history batch (default: the latest change to this picture).
    #[serde(default)]
    pub batch: Option<String>,
}

async fn blocking<T, F>(f: F) -> Result<T, CallToolResult>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, captioning::CaptionError> + Send + 'static,
{
    match tokio::task::spawn_blocking(f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(reply::failure(&e, e.hint())),
        Err(e) => Err(reply::failure(format!("the tool crashed: {e}"), None)),
    }
}

#[tool_router(router = captions_router, vis = "pub(crate)")]
impl AtegnatosServer {
    #[tool(
        title = "Caption preview",
        description = "Show a few varied pictures of a project (downscaled JPEGs) with their current captions, the captioning rules for its base model (tags for SD1.5/SDXL/Pony/Illustrious, sentences for Flux/SD3.5; trigger word first; content and style both named), and the captions the artist approved so far. Caption these samples first and get the artist's approval before captioning the rest.",
        annotations(read_only_hint = false, destructive_hint = false, idempotent_hint = true, open_world_hint = false),
        meta = rmcp::model::MetaObject(rmcp::object!({ "anthropic/maxResultSizeChars": 500000 }))
    )]
    async fn caption_preview(
        &self,
        Parameters(args): Parameters<CaptionPreviewArgs>,
    ) -> CallToolResult {
        let ws = self.shared().workspace.clone();
        let count = args.count.unwrap_or(5).clamp(1, 12);
        let max_side = args.max_side.unwrap_or(768).clamp(256, 1024);
        let only = args.paths.unwrap_or_default();
        let preview = match blocking(move || {
            captioning::caption_preview(&ws, &args.project, count, &only, max_side)
        })
        .await
        {
            Ok(p) => p,
            Err(refusal) => return refusal,
        };
        let mut content = vec![ContentBlock::text(preview.plain_summary())];
        for item in &preview.items {
            content.push(ContentBlock::text(format!(
                "{} ({}×{}) — current caption: {}",
                item.path,
                item.width,
                item.height,
                item.current_caption.as_deref().unwrap_or("(none)")
            )));
            content.push(ContentBlock::image(
                base64::engine::general_purpose::STANDARD.encode(&item.jpeg),
                "image/jpeg",
            ));
        }
        let mut result = CallToolResult::success(content);
        result.structured_content = serde_json::to_value(&preview).ok();
        result
    }

    #[tool(
        description = "Write captions (picture path → text) beside their pictures, atomically, in the caption format of the project's base model, with the trigger word first. The previous captions are kept in the project's history (restore_caption). Refuses pictures outside the dataset, and refuses to caption pictures beyond the caption_preview samples until the artist has approved at least one sample (approve_captions).",
        annotations(read_only_hint = false, destructive_hint = false, idempotent_hint = true, open_world_hint = false),
        output_schema = rmcp::handler::server::common::schema_for_output::<WriteReport>()
    )]
    async fn write_captions(
        &self,
        Parameters(args): Parameters<WriteCaptionsArgs>,
    ) -> CallToolResult {
        let ws = self.shared().workspace.clone();
        let captions: Vec<(String, String)> = args.captions.into_iter().collect();
        match blocking(move || captioning::write_captions(&ws, &args.project, &captions)).await {
            Ok(r) => reply::structured(&r, r.plain_summary()),
            Err(refusal) => refusal,
        }
    }

    #[tool(
        description = "Record that the artist approved the current captions of these pictures. They become the examples batch captioning must match, and unlock captioning the rest of the set.",
        annotations(read_only_hint = false, destructive_hint = false, idempotent_hint = true, open_world_hint = false),
        output_schema = rmcp::handler::server::common::schema_for_output::<CaptionState>()
    )]
    async fn approve_captions(
        &self,
        Parameters(args): Parameters<ApproveCaptionsArgs>,
    ) -> CallToolResult {
        let ws = self.shared().workspace.clone();
        let project = args.project.clone();
        match blocking(move || captioning::approve_captions(&ws, &args.project, &args.paths)).await
        {
            Ok(state) => {
                let summary = format!(
                    "{} approved caption(s) in project `{project}`; captioning the rest may go ahead, matching them.",
                    state.approved.len()
                );
                reply::structured(&state, summary)
            }
            Err(refusal) => refusal,
        }
    }

    #[tool(
        description = "Put back the caption a picture had before its latest change (or before a given history batch). The restore is recorded in the history too.",
        annotations(read_only_hint = false, destructive_hint = false, idempotent_hint = false, open_world_hint = false),
        output_schema = rmcp::handler::server::common::schema_for_output::<Restored>()
    )]
    async fn restore_caption(
        &self,
        Parameters(args): Parameters<RestoreCaptionArgs>,
    ) -> CallToolResult {
        let ws = self.shared().workspace.clone();
        match blocking(move || {
            captioning::restore_caption(&ws, &args.project, &args.path, args.batch.as_deref())
        })
        .await
        {
            Ok(r) => {
                let summary = format!("Restored the caption of `{}` to: {}", r.path, r.caption);
                reply::structured(&r, summary)
            }
            Err(refusal) => refusal,
        }
    }
}
