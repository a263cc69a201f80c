//! Tool results: structured content with a plain-language text summary, or a
//! tool-level error that says what happened and what to do.

use rmcp::model::{CallToolResult, ContentBlock};
use serde::Serialize;

use crate::studio::Hint;

/// A successful result: `value` as structured content, `summary` as the text.
pub fn structured<T: Serialize>(value: &T, summary: String) -> CallToolResult {
    let value = serde_json::to_value(value).unwrap_or(serde_json::Value::Null);
    let mut result = CallToolResult::structured(value);
    result.content = vec![ContentBlock::text(summary)];
    result
}

/// A tool-level error (`isError: true`) the model can read and act on.
pub fn failure(message: impl std::fmt::Display, hint: Option<String>) -> CallToolResult {
    let text = match hint {
        Some(h) => format!("error: {message}\nhint: {h}"),
        None => format!("error: {message}"),
    };
    CallToolResult::error(vec![ContentBlock::text(text)])
}

/// A refusal from a domain error: its message, and what to do.
pub fn refusal(e: &impl Hint) -> CallToolResult {
    failure(e, e.hint())
}
