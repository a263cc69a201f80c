//! `remember_preference`, `recall_preferences`: the artist's eye;
//! `save_prompt`, `find_prompts`, `export_asset`: making finished assets.

use std::collections::BTreeMap;

use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::CallToolResult;
use rmcp::{tool, tool_router};
use serde::Deserialize;

use super::super::{AtegnatosServer, reply};
use crate::art::export::{ExportRequest, Format, Spec};
use crate::art::eye::{self, Aspect, Remember, Stance};
use crate::art::prompts::{self, FindRequest, SaveRequest};

/// A preference the artist stated or confirmed.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct RememberPreferenceArgs {
    /// In the artist's words, a phrase.
    pub text: String,
    pub aspect: Aspect,
    /// like (default), avoid (steer away) or never (hard line).
    #[serde(default)]
    pub stance: Option<Stance>,
    /// Only for this project.
    #[serde(default)]
    pub project: Option<String>,
    /// Drop it instead.
    #[serde(default)]
    pub forget: Option<bool>,
}

/// Which preferences.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct RecallPreferencesArgs {
    /// Those that apply to this project (plus the everywhere ones).
    #[serde(default)]
    pub project: Option<String>,
    #[serde(default)]
    pub aspect: Option<Aspect>,
    /// Only those containing these words.
    #[serde(default)]
    pub words: Option<String>,
    /// At most this many (default 30).
    #[serde(default)]
    pub limit: Option<usize>,
}

#[tool_router(router = art_router, vis = "pub(crate)")]
impl AtegnatosServer {
    #[tool(
        description = "Keep what the artist likes or dislikes (AVOID, or NEVER for a hard line) in grimoire/eye.md; saying it again raises its count. Call when they state or confirm a taste.",
        annotations(
            read_only_hint = false,
            destructive_hint = false,
            idempotent_hint = false,
            open_world_hint = false
        )
    )]
    async fn remember_preference(
        &self,
        Parameters(args): Parameters<RememberPreferenceArgs>,
    ) -> CallToolResult {
        let ws = self.shared().workspace.clone();
        let req = Remember {
            text: args.text,
            aspect: args.aspect,
            stance: args.stance.unwrap_or_default(),
            project: args.project,
            forget: args.forget.unwrap_or(false),
        };
        super::answer(
            "remember_preference",
            move || eye::remember(&ws, &req),
            |r| reply::structured(&r, r.plain_summary()),
        )
        .await
    }

    #[tool(
        description = "The artist's remembered taste, NEVER and AVOID first, most confirmed first: read it before writing prompts, captions or judging results.",
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn recall_preferences(
        &self,
        Parameters(args): Parameters<RecallPreferencesArgs>,
    ) -> CallToolResult {
        let ws = self.shared().workspace.clone();
        let limit = args.limit.unwrap_or(30).clamp(1, 200);
        super::answer(
            "recall_preferences",
            move || {
                eye::recall(
                    &ws,
                    args.project.as_deref(),
                    args.aspect,
                    args.words.as_deref(),
                    limit,
                )
            },
            |r| reply::structured(&r, r.plain_summary()),
        )
        .await
    }
}

/// A prompt to keep.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct SavePromptArgs {
    /// sd15, sdxl, pony, illustrious, flux or sd35.
    pub family: String,
    pub prompt: String,
    #[serde(default)]
    pub negative: Option<String>,
    /// Seed, steps, cfg, sampler, size, LoRAs….
    #[serde(default)]
    pub parameters: Option<BTreeMap<String, serde_json::Value>>,
    /// How the result turned out.
    #[serde(default)]
    pub notes: Option<String>,
    #[serde(default)]
    pub tags: Option<Vec<String>>,
    /// The picture it made.
    #[serde(default)]
    pub image: Option<String>,
    /// With `asset`: log it as the asset's next version.
    #[serde(default)]
    pub project: Option<String>,
    #[serde(default)]
    pub asset: Option<String>,
    /// The version it was made from.
    #[serde(default)]
    pub based_on: Option<u32>,
}

/// What to look for.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct FindPromptsArgs {
    #[serde(default)]
    pub family: Option<String>,
    /// All of these words (prompt, notes, tags).
    #[serde(default)]
    pub words: Option<String>,
    /// With `asset`: its versions instead.
    #[serde(default)]
    pub project: Option<String>,
    #[serde(default)]
    pub asset: Option<String>,
    /// Only this version.
    #[serde(default)]
    pub version: Option<u32>,
    /// At most this many (default 10).
    #[serde(default)]
    pub limit: Option<usize>,
}

/// What to export.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct ExportAssetArgs {
    /// The picture.
    pub source: String,
    /// og 1200×630, favicon set, hero 1920×1080, avatar 512², print, custom.
    pub spec: Spec,
    /// png, jpeg or webp (lossless).
    #[serde(default, alias = "format")]
    pub output_format: Option<Format>,
    /// JPEG quality (default 85).
    #[serde(default)]
    pub quality: Option<u8>,
    /// Output folder (default workspace/exports/<name>).
    #[serde(default)]
    pub out_dir: Option<String>,
    /// custom: px.
    #[serde(default)]
    pub width: Option<u32>,
    #[serde(default)]
    pub height: Option<u32>,
    /// print: A4, A5, A3, letter, 8x10in, 20x30cm.
    #[serde(default)]
    pub print_size: Option<String>,
    /// print (default 300).
    #[serde(default)]
    pub dpi: Option<u32>,
    /// Enlarge through ComfyUI's upscale model when it runs (default true).
    #[serde(default)]
    pub upscale: Option<bool>,
    /// ComfyUI address (default: the studio's).
    #[serde(default)]
    pub server: Option<String>,
}

#[tool_router(router = art_work_router, vis = "pub(crate)")]
impl AtegnatosServer {
    #[tool(
        description = "Keep a prompt that worked in its model family's library, with parameters and notes on the result; with project and asset, also as that asset's next version.",
        annotations(
            read_only_hint = false,
            destructive_hint = false,
            idempotent_hint = false,
            open_world_hint = false
        )
    )]
    async fn save_prompt(&self, Parameters(args): Parameters<SavePromptArgs>) -> CallToolResult {
        let ws = self.shared().workspace.clone();
        let req = SaveRequest {
            family: args.family,
            prompt: args.prompt,
            negative: args.negative,
            parameters: args.parameters.unwrap_or_default(),
            notes: args.notes,
            tags: args.tags.unwrap_or_default(),
            image: args.image,
            project: args.project,
            asset: args.asset,
            based_on: args.based_on,
        };
        super::answer(
            "save_prompt",
            move || prompts::save_prompt(&ws, &req),
            |r| reply::structured(&r, r.plain_summary()),
        )
        .await
    }

    #[tool(
        description = "Saved prompts matching words, newest first; or an asset's versions (one with `version`) to start the next from, e.g. version 3 but warmer.",
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn find_prompts(&self, Parameters(args): Parameters<FindPromptsArgs>) -> CallToolResult {
        let ws = self.shared().workspace.clone();
        let req = FindRequest {
            family: args.family,
            words: args.words,
            project: args.project,
            asset: args.asset,
            version: args.version,
            limit: args.limit.unwrap_or(10).clamp(1, 50),
        };
        super::answer(
            "find_prompts",
            move || prompts::find_prompts(&ws, &req),
            |r| reply::structured(&r, r.plain_summary()),
        )
        .await
    }

    #[tool(
        description = "Crop and resize a finished picture to a named spec (OG image, favicon set, hero, avatar, print at DPI, custom) as PNG, JPEG or WebP, metadata stripped. Enlarges through ComfyUI's upscale model when it runs, else a resize, said so.",
        annotations(
            read_only_hint = false,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = false
        )
    )]
    async fn export_asset(&self, Parameters(args): Parameters<ExportAssetArgs>) -> CallToolResult {
        let ws = self.shared().workspace.clone();
        let req = ExportRequest {
            source: args.source,
            spec: args.spec,
            format: args.output_format,
            quality: args.quality,
            out_dir: args.out_dir,
            width: args.width,
            height: args.height,
            print_size: args.print_size,
            dpi: args.dpi,
        };
        let upscaled = crate::art::upscale::export_upscaling(
            &ws,
            &req,
            args.upscale.unwrap_or(true),
            args.server.as_deref(),
            None,
            &crate::studio::NoProgress,
        )
        .await;
        match upscaled {
            Ok(r) => reply::structured(&r, r.plain_summary()),
            Err(e) => reply::refusal(&e),
        }
    }
}
