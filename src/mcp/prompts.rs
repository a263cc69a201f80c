//! MCP prompts: one per phase of the conversation. Their texts are markdown
//! files in `prompts/`, embedded at build time; `{{name}}` placeholders are
//! filled from the prompt's arguments, and `{{state}}` with the project's
//! real state from [`crate::knowledge::briefing`].

use std::sync::Arc;

use rmcp::handler::server::router::prompt::PromptRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{GetPromptResult, PromptMessage, Role};
use rmcp::{ErrorData as McpError, prompt, prompt_router};
use serde::Deserialize;

use super::{AtegnatosServer, Shared};
use crate::knowledge::briefing::{self, Phase};
use crate::studio::Hint;

const TRAIN: &str = include_str!("../../prompts/train.md");
const INTENT_INTERVIEW: &str = include_str!("../../prompts/intent_interview.md");
const CAPTION_REVIEW: &str = include_str!("../../prompts/caption_review.md");
const PLAN_WALKTHROUGH: &str = include_str!("../../prompts/plan_walkthrough.md");
const EVALUATION_REVIEW: &str = include_str!("../../prompts/evaluation_review.md");
const FAILURE_DIAGNOSIS: &str = include_str!("../../prompts/failure_diagnosis.md");

/// Arguments of the prompts that may come before a project exists (prompt
/// arguments travel as strings).
#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
pub struct ProjectPromptArgs {
    /// The training project's name, if one exists already.
    #[serde(default)]
    pub project: Option<String>,
    /// The folder with the pictures, relative to the workspace.
    #[serde(default)]
    pub dataset: Option<String>,
}

/// Arguments of the prompts about an existing project.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct PhaseArgs {
    /// The training project's name.
    pub project: String,
}

/// Arguments of the failure diagnosis.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct DiagnosisArgs {
    /// The training project's name.
    pub project: String,
    /// What the artist sees, in their words (e.g. "copies my pictures").
    #[serde(default)]
    pub symptoms: Option<String>,
}

/// The briefing, read off the async runtime; a refusal is an invalid-params
/// error whose message carries the hint (clients show only the message).
async fn state(
    shared: &Arc<Shared>,
    phase: Phase,
    project: Option<String>,
    dataset: Option<String>,
) -> Result<String, McpError> {
    let shared = Arc::clone(shared);
    tokio::task::spawn_blocking(move || {
        briefing::briefing(
            &shared.workspace,
            phase,
            project.as_deref(),
            dataset.as_deref(),
        )
    })
    .await
    .map_err(|e| McpError::internal_error(format!("reading the project crashed: {e}"), None))?
    .map_err(|e| {
        let hint = e.hint();
        let message = match &hint {
            Some(h) => format!("{e} (hint: {h})"),
            None => e.to_string(),
        };
        McpError::invalid_params(message, Some(serde_json::json!({ "hint": hint })))
    })
}

fn fill(template: &str, pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .fold(template.to_string(), |text, (key, value)| {
            text.replace(&format!("{{{{{key}}}}}"), value)
        })
}

fn message(text: String, description: &str) -> GetPromptResult {
    GetPromptResult::new(vec![PromptMessage::new_text(Role::User, text)])
        .with_description(description)
}

pub fn router() -> PromptRouter<AtegnatosServer> {
    AtegnatosServer::prompt_router()
}

impl AtegnatosServer {
    /// A prompt about an existing project: its text with the project's state.
    async fn phase_prompt(
        &self,
        template: &str,
        phase: Phase,
        project: String,
        extra: &[(&str, &str)],
        description: &str,
    ) -> Result<GetPromptResult, McpError> {
        let st = state(self.shared(), phase, Some(project.clone()), None).await?;
        let mut pairs = vec![("project", project.as_str()), ("state", st.as_str())];
        pairs.extend_from_slice(extra);
        Ok(message(fill(template, &pairs), description))
    }
}

#[prompt_router]
impl AtegnatosServer {
    /// The whole four-gate workflow, in plain language.
    #[prompt(
        name = "train",
        description = "Train a LoRA from a folder of pictures, gate by gate"
    )]
    async fn train_prompt(
        &self,
        Parameters(args): Parameters<ProjectPromptArgs>,
    ) -> Result<GetPromptResult, McpError> {
        let st = state(
            self.shared(),
            Phase::Intent,
            args.project.clone(),
            args.dataset.clone(),
        )
        .await?;
        Ok(message(
            fill(
                TRAIN,
                &[
                    (
                        "project",
                        args.project.as_deref().unwrap_or("(not chosen yet)"),
                    ),
                    (
                        "dataset",
                        args.dataset.as_deref().unwrap_or("(ask the artist)"),
                    ),
                    ("state", &st),
                ],
            ),
            "The Ategnatos training workflow",
        ))
    }

    /// Questions that pin down what the LoRA should learn.
    #[prompt(
        name = "intent_interview",
        description = "Interview the artist about what the LoRA should learn"
    )]
    async fn intent_interview(
        &self,
        Parameters(args): Parameters<ProjectPromptArgs>,
    ) -> Result<GetPromptResult, McpError> {
        let st = state(
            self.shared(),
            Phase::Intent,
            args.project.clone(),
            args.dataset.clone(),
        )
        .await?;
        Ok(message(
            fill(
                INTENT_INTERVIEW,
                &[
                    (
                        "project",
                        args.project.as_deref().unwrap_or("(not chosen yet)"),
                    ),
                    (
                        "dataset",
                        args.dataset.as_deref().unwrap_or("(ask the artist)"),
                    ),
                    ("state", &st),
                ],
            ),
            "Intent interview",
        ))
    }

    /// How to review sample captions with the artist before batch captioning.
    #[prompt(
        name = "caption_review",
        description = "Review sample captions with the artist before captioning the rest"
    )]
    async fn caption_review(
        &self,
        Parameters(args): Parameters<PhaseArgs>,
    ) -> Result<GetPromptResult, McpError> {
        self.phase_prompt(
            CAPTION_REVIEW,
            Phase::Captions,
            args.project,
            &[],
            "Caption review",
        )
        .await
    }

    /// The training plan explained parameter by parameter.
    #[prompt(
        name = "plan_walkthrough",
        description = "Walk the artist through the training plan, every parameter in plain words"
    )]
    async fn plan_walkthrough(
        &self,
        Parameters(args): Parameters<PhaseArgs>,
    ) -> Result<GetPromptResult, McpError> {
        self.phase_prompt(
            PLAN_WALKTHROUGH,
            Phase::Plan,
            args.project,
            &[],
            "Plan walkthrough",
        )
        .await
    }

    /// Reading the evaluation grid with the artist.
    #[prompt(
        name = "evaluation_review",
        description = "Read the evaluation grid with the artist and choose a checkpoint and strength"
    )]
    async fn evaluation_review(
        &self,
        Parameters(args): Parameters<PhaseArgs>,
    ) -> Result<GetPromptResult, McpError> {
        self.phase_prompt(
            EVALUATION_REVIEW,
            Phase::Evaluation,
            args.project,
            &[],
            "Reading the evaluation",
        )
        .await
    }

    /// From what the artist sees and the run's record to a likely cause.
    #[prompt(
        name = "failure_diagnosis",
        description = "Diagnose a failed run or a disappointing LoRA from the symptoms and the run's record"
    )]
    async fn failure_diagnosis(
        &self,
        Parameters(args): Parameters<DiagnosisArgs>,
    ) -> Result<GetPromptResult, McpError> {
        let symptoms = args
            .symptoms
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .unwrap_or("(not said yet: ask the artist what they see)")
            .to_string();
        self.phase_prompt(
            FAILURE_DIAGNOSIS,
            Phase::Failure,
            args.project,
            &[("symptoms", &symptoms)],
            "Failure diagnosis",
        )
        .await
    }
}
