//! `remember_preference`, `recall_preferences`: the artist's eye.

use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::CallToolResult;
use rmcp::{tool, tool_router};
use serde::Deserialize;

use super::super::{AtegnatosServer, reply};
use crate::art::eye::{self, Aspect, Remember, Stance};

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
