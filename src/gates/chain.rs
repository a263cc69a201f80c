//! The order of the gates: gate N runs only when every earlier gate has
//! passed and is still fresh. Asking out of order is refused with which
//! gate to run first; there is no override.

use super::Gate;
use super::status::{FreshCheck, GateState};
use crate::studio::Hint;
use crate::studio::project::Project;
use crate::studio::{StudioError, Workspace};

/// Why a gate may not run yet.
#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    #[error("{gate} comes after gate {earlier} ({title}), which has not run for `{project}`")]
    NotRun {
        project: String,
        /// What was asked for: `gate 3`, `training`.
        gate: String,
        earlier: u8,
        title: &'static str,
    },
    #[error("{gate} comes after gate {earlier} ({title}), which failed for `{project}`: {reason}")]
    Failed {
        project: String,
        gate: String,
        earlier: u8,
        title: &'static str,
        reason: String,
    },
    #[error(
        "{gate} comes after gate {earlier} ({title}), which is stale for `{project}`: {reason}"
    )]
    Stale {
        project: String,
        gate: String,
        earlier: u8,
        title: &'static str,
        reason: String,
    },
    #[error(transparent)]
    Studio(#[from] StudioError),
}

impl ChainError {
    /// The gate to run first.
    pub fn earlier(&self) -> Option<u8> {
        match self {
            ChainError::NotRun { earlier, .. }
            | ChainError::Failed { earlier, .. }
            | ChainError::Stale { earlier, .. } => Some(*earlier),
            ChainError::Studio(_) => None,
        }
    }
}

impl Hint for ChainError {
    fn hint(&self) -> Option<String> {
        match self {
            ChainError::NotRun { earlier, .. } => {
                Some(format!("run gate {earlier} first (run_gate {earlier})"))
            }
            ChainError::Failed { earlier, .. } => Some(format!(
                "fix what gate {earlier} reported, then run it again (run_gate {earlier})"
            )),
            ChainError::Stale { earlier, .. } => Some(format!(
                "run gate {earlier} again (run_gate {earlier}); the gates after it follow"
            )),
            ChainError::Studio(e) => e.hint(),
        }
    }
}

/// Ok when every gate before `gate` passes and is fresh.
pub fn require_earlier(ws: &Workspace, project: &Project, gate: Gate) -> Result<(), ChainError> {
    let earlier = Gate::ALL.into_iter().filter(|g| *g < gate);
    require_passed(ws, project, earlier, &format!("gate {}", gate.number()))
}

/// Ok when all four gates pass and are fresh for exactly this dataset,
/// plan and machine: what training needs. There is no override.
pub fn require_all_fresh(ws: &Workspace, project: &Project) -> Result<(), ChainError> {
    require_passed(ws, project, Gate::ALL.into_iter(), "training")
}

fn require_passed(
    ws: &Workspace,
    project: &Project,
    gates: impl Iterator<Item = Gate>,
    wanted: &str,
) -> Result<(), ChainError> {
    let fresh = FreshCheck::new(ws, project);
    for earlier in gates {
        let view = fresh.view(earlier)?;
        let (gate, earlier_n, title) = (wanted.to_string(), earlier.number(), earlier.title());
        match view.state {
            GateState::Pass => {}
            GateState::NotRun => {
                return Err(ChainError::NotRun {
                    project: project.name.clone(),
                    gate,
                    earlier: earlier_n,
                    title,
                });
            }
            GateState::Fail => {
                return Err(ChainError::Failed {
                    project: project.name.clone(),
                    gate,
                    earlier: earlier_n,
                    title,
                    reason: view.reason,
                });
            }
            GateState::Stale => {
                return Err(ChainError::Stale {
                    project: project.name.clone(),
                    gate,
                    earlier: earlier_n,
                    title,
                    reason: view.reason,
                });
            }
        }
    }
    Ok(())
}
