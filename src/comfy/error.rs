//! What can go wrong between us and a ComfyUI, said so an artist can act on it.

use serde::Serialize;

use super::workflow::WorkflowError;
use crate::studio::Hint;
use crate::studio::StudioError;

/// One thing ComfyUI found wrong with one node of a workflow.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct NodeProblem {
    /// The node's id in the workflow.
    pub node: String,
    /// Its class (`CheckpointLoaderSimple`, `KSampler`, ...).
    pub class_type: String,
    /// The problem in words.
    pub message: String,
}

/// Errors of the ComfyUI client, the templates and the evaluation grid.
#[derive(Debug, thiserror::Error)]
pub enum ComfyError {
    #[error("`{given}` is not a ComfyUI address: {reason}")]
    BadUrl { given: String, reason: String },
    #[error("ComfyUI is not answering at `{url}` ({reason})")]
    Unreachable { url: String, reason: String },
    #[error(
        "`{url}` answered `{path}` with {what}, not ComfyUI's API (HTTP {status}): a web page, a login or a proxy is in the way"
    )]
    NotComfy {
        url: String,
        path: String,
        status: u16,
        what: String,
    },
    #[error("ComfyUI answered `{path}` with HTTP {status}: {detail}")]
    Http {
        path: String,
        status: u16,
        detail: String,
    },
    #[error("ComfyUI refused the workflow: {}", summary(.problems, .message))]
    Rejected {
        message: String,
        problems: Vec<NodeProblem>,
    },
    #[error(
        "ComfyUI stopped with an error in node {node} ({class_type}): {exception_type}: {message}"
    )]
    Execution {
        node: String,
        class_type: String,
        exception_type: String,
        message: String,
    },
    #[error("the render of prompt `{prompt_id}` was interrupted in ComfyUI")]
    Interrupted { prompt_id: String },
    #[error(
        "ComfyUI no longer knows prompt `{prompt_id}`: it is neither queued, running nor in its history (was ComfyUI restarted?)"
    )]
    Lost { prompt_id: String },
    #[error("prompt `{prompt_id}` did not finish within {seconds} s")]
    TimedOut { prompt_id: String, seconds: u64 },
    #[error("ComfyUI's output `{file}` is not a picture ({reason})")]
    NotAnImage { file: String, reason: String },
    #[error("the workflow produced no picture")]
    NoOutputs,
    #[error("stopped on request")]
    Cancelled,
    #[error("{message}")]
    Invalid { message: String, hint: String },
    #[error(transparent)]
    Workflow(#[from] WorkflowError),
    #[error(transparent)]
    Studio(#[from] StudioError),
}

fn summary(problems: &[NodeProblem], message: &str) -> String {
    if problems.is_empty() {
        return message.to_string();
    }
    problems
        .iter()
        .map(|p| format!("node {} ({}): {}", p.node, p.class_type, p.message))
        .collect::<Vec<_>>()
        .join("; ")
}

impl ComfyError {
    /// True when ComfyUI could not be reached at all (the workflow can be
    /// saved to run later).
    pub fn is_unreachable(&self) -> bool {
        matches!(self, ComfyError::Unreachable { .. })
    }
}

impl Hint for ComfyError {
    /// What to do about it, in one or two sentences.
    fn hint(&self) -> Option<String> {
        Some(match self {
            ComfyError::BadUrl { .. } => {
                "give the address ComfyUI prints when it starts, e.g. `http://127.0.0.1:8188`".into()
            }
            ComfyError::Unreachable { .. } => "start ComfyUI (`python main.py --listen 127.0.0.1 --port 8188`), or give its address with `server` or the COMFYUI_URL environment variable".into(),
            ComfyError::NotComfy { .. } => "use the address of ComfyUI itself; behind a reverse proxy, give the full base path and make sure the proxy passes the `Host` header and `/ws` WebSockets through".into(),
            ComfyError::Http { .. } => "check that this is a ComfyUI server of version 0.3 or newer, then try again".into(),
            ComfyError::Rejected { problems, .. } => {
                let node_type = problems.iter().any(|p| p.message.starts_with("node type"));
                let file = problems
                    .iter()
                    .any(|p| !p.message.starts_with("node type") && p.message.contains("is not installed"));
                if node_type && file {
                    "install the custom node (ComfyUI-Manager can) and the missing file into the named ComfyUI folder, or use one of our templates".into()
                } else if node_type {
                    "install the custom node (ComfyUI-Manager can), or use one of our templates".into()
                } else if file {
                    "install the missing file into the named ComfyUI folder, or pick one it has (comfyui_submit without a workflow lists what is installed)".into()
                } else {
                    "fix the named inputs and submit again".into()
                }
            }
            ComfyError::Execution { message, .. } => {
                if message.contains("out of memory") || message.contains("OutOfMemory") {
                    "lower the size or batch, or start ComfyUI with `--lowvram`".into()
                } else {
                    "ComfyUI's own window or log shows the full traceback; a model that cannot be loaded is often a damaged or wrong-kind file".into()
                }
            }
            ComfyError::Interrupted { .. } => {
                "someone pressed Cancel in ComfyUI or another client interrupted it; submit again".into()
            }
            ComfyError::Lost { .. } => {
                "submit the workflow again; ComfyUI keeps its history only in memory".into()
            }
            ComfyError::TimedOut { .. } => "it may still be rendering in ComfyUI: look there (its pictures land in ComfyUI's output folder), or submit again when the queue is shorter".into(),
            ComfyError::NotAnImage { .. } => "make the workflow end in a SaveImage node".into(),
            ComfyError::NoOutputs => "make the workflow end in a SaveImage node".into(),
            ComfyError::Cancelled => return None,
            ComfyError::Invalid { hint, .. } => hint.clone(),
            ComfyError::Workflow(e) => return e.hint(),
            ComfyError::Studio(e) => return e.hint(),
        })
    }
}
