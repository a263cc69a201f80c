//! Subcommands of the `ategnatos` binary: argument parsing and printing only.

pub mod audit;
pub mod bench;
pub mod dedup;
pub mod plan;
pub mod progress;
pub mod project;
pub mod serve;

use ategnatos::studio::Workspace;

/// A command-line failure: what happened, and what to do.
#[derive(Debug)]
pub struct CliError {
    pub message: String,
    pub hint: Option<String>,
}

impl std::fmt::Display for CliError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "error: {}", self.message)?;
        if let Some(h) = &self.hint {
            write!(f, "\nhint: {h}")?;
        }
        Ok(())
    }
}

impl CliError {
    pub fn new(message: impl std::fmt::Display, hint: Option<String>) -> Self {
        CliError {
            message: message.to_string(),
            hint,
        }
    }
}

/// Opens the workspace at `root`, or says why not.
pub fn open_workspace(root: &std::path::Path) -> Result<Workspace, CliError> {
    Workspace::open(root).map_err(|e| CliError::new(&e, e.hint()))
}
