//! `caption_preview`, `write_captions`, `approve_captions`, `restore_caption`:
//! captioning with the artist in the loop.

use std::collections::BTreeMap;

use base64::Engine as _;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolResult, ContentBlock};
use rmcp::{tool, tool_router};
use serde::Deserialize;

use super::super::{AtegnatosServer, reply};
use crate::dataset::captioning::{self};

/// The whole `caption_preview` result, pictures included, stays under this
/// many characters (clients cut or refuse larger results, and every
/// character is context).
pub const PREVIEW_RESULT_CHARS: usize = 100_000;
/// JSON framing of the result's blocks (types, keys, quotes), generously.
const RESULT_FRAMING_CHARS: usize = 2_000;

/// Which pictures to preview.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct CaptionPreviewArgs {
    /// Project name.
    pub project: String,
    /// How many varied pictures (default 5, max 12).
    #[serde(default)]
    pub count: Option<usize>,
    /// These pictures instead.
    #[serde(default)]
    pub paths: Option<Vec<String>>,
    /// Preview size, longest side in px (default 512, 256–1024).
    #[serde(default)]
    pub max_side: Option<u32>,
}

/// Captions to write.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct WriteCaptionsArgs {
    /// Project name.
    pub project: String,
    /// Picture path → caption text.
    pub captions: BTreeMap<String, String>,
}

/// Captions the artist approved.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct ApproveCaptionsArgs {
    /// Project name.
    pub project: String,
    /// Pictures whose captions the artist approved.
    pub paths: Vec<String>,
}

/// A caption to put back.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct RestoreCaptionArgs {
    /// Project name.
    pub project: String,
    /// The picture.
    pub path: String,
    /// History batch to undo (default the latest change).
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
        Ok(Err(e)) => Err(reply::refusal(&e)),
        Err(e) => Err(reply::failure(format!("the tool crashed: {e}"), None)),
    }
}

#[tool_router(router = captions_router, vis = "pub(crate)")]
impl AtegnatosServer {
    #[tool(
        description = "A few varied pictures of a project as small JPEGs with their captions, the caption rules for its base model, and the approved examples. Caption these first and get the artist's approval before the rest.",
        annotations(
            read_only_hint = false,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = false
        )
    )]
    async fn caption_preview(
        &self,
        Parameters(args): Parameters<CaptionPreviewArgs>,
    ) -> CallToolResult {
        let ws = self.shared().workspace.clone();
        let count = args.count.unwrap_or(5).clamp(1, 12);
        let max_side = args
            .max_side
            .unwrap_or(captioning::PREVIEW_SIDE)
            .clamp(256, 1024);
        let only = args.paths.unwrap_or_default();
        let (preview, eye) = match blocking(move || {
            let preview = captioning::caption_preview(&ws, &args.project, count, &only, max_side)?;
            // The artist's taste beside the work: a few short lines at most.
            let eye = crate::art::eye::beside_work(&ws, &args.project);
            Ok((preview, eye))
        })
        .await
        {
            Ok(p) => p,
            Err(refusal) => return refusal,
        };
        let mut structured = serde_json::to_value(&preview).ok();
        if let Some(serde_json::Value::Object(map)) = structured.as_mut() {
            map.insert("artist_eye".into(), serde_json::json!(eye));
        }
        let mut summary = preview.plain_summary();
        if !eye.is_empty() {
            summary.push_str(&format!(" The artist's eye: {}.", eye.join("; ")));
        }
        let captions: Vec<String> = preview
            .items
            .iter()
            .map(|item| {
                format!(
                    "{} ({}×{}) — current caption: {}",
                    item.path,
                    item.width,
                    item.height,
                    item.current_caption.as_deref().unwrap_or("(none)")
                )
            })
            .collect();
        // The pictures get what the text leaves of the budget, shared
        // equally; base64 makes 4 characters of 3 bytes.
        let text_chars = summary.len()
            + captions.iter().map(String::len).sum::<usize>()
            + structured.as_ref().map_or(0, |v| v.to_string().len());
        let per_picture_chars = PREVIEW_RESULT_CHARS
            .saturating_sub(text_chars + RESULT_FRAMING_CHARS)
            / preview.items.len().max(1);
        let per_picture_bytes = per_picture_chars / 4 * 3;
        let mut content = vec![ContentBlock::text(summary)];
        for (item, caption) in preview.items.iter().zip(captions) {
            content.push(ContentBlock::text(caption));
            content.push(ContentBlock::image(
                base64::engine::general_purpose::STANDARD
                    .encode(item.jpeg_within(per_picture_bytes)),
                "image/jpeg",
            ));
        }
        let mut result = CallToolResult::success(content);
        result.structured_content = structured;
        result
    }

    #[tool(
        description = "Write captions beside their pictures (path → text), formatted for the base model, trigger word first; the old ones go to the history. Pictures beyond the preview samples only after approve_captions.",
        annotations(
            read_only_hint = false,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = false
        )
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
        description = "Record that the artist approved these pictures' current captions: they become the examples for the rest and unlock captioning the whole set.",
        annotations(
            read_only_hint = false,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = false
        )
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
        description = "Put back a picture's caption from before its latest change (or before a given history batch).",
        annotations(
            read_only_hint = false,
            destructive_hint = false,
            idempotent_hint = false,
            open_world_hint = false
        )
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
