//! MCP prompts. Their texts are markdown files in `prompts/`, embedded at
//! build time; `{{name}}` placeholders are filled from the prompt's arguments.

use rmcp::handler::server::router::prompt::PromptRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{GetPromptResult, PromptMessage, Role};
use rmcp::{ErrorData as McpError, prompt, prompt_router};
use serde::Deserialize;

use super::AtegnatosServer;

const TRAIN: &str = include_str!("../../prompts/train.md");
const INTENT_INTERVIEW: &str = include_str!("../../prompts/intent_interview.md");
const CAPTION_REVIEW: &str = include_str!("../../prompts/caption_review.md");

/// Arguments of the workflow prompts (prompt arguments travel as strings).
#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
pub struct ProjectPromptArgs {
    /// The training project's name, if one exists already.
    #[serde(default)]
    pub project: Option<String>,
    /// The folder with the pictures, relative to the workspace.
    #[serde(default)]
    pub dataset: Option<String>,
}

fn fill(template: &str, args: &ProjectPromptArgs) -> String {
    template
        .replace(
            "{{project}}",
            args.project.as_deref().unwrap_or("(not chosen yet)"),
        )
        .replace(
            "{{dataset}}",
            args.dataset.as_deref().unwrap_or("(ask the artist)"),
        )
}

fn message(text: String, description: &str) -> GetPromptResult {
    GetPromptResult::new(vec![PromptMessage::new_text(Role::User, text)])
        .with_description(description)
}

pub fn router() -> PromptRouter<AtegnatosServer> {
    AtegnatosServer::prompt_router()
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
        Ok(message(
            fill(TRAIN, &args),
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
        Ok(message(fill(INTENT_INTERVIEW, &args), "Intent interview"))
    }

    /// How to review sample captions with the artist before batch captioning.
    #[prompt(
        name = "caption_review",
        description = "Review sample captions with the artist before captioning the rest"
    )]
    async fn caption_review(
        &self,
        Parameters(args): Parameters<ProjectPromptArgs>,
    ) -> Result<GetPromptResult, McpError> {
        Ok(message(fill(CAPTION_REVIEW, &args), "Caption review"))
    }
}
