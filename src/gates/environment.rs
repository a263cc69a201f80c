//! Gate 3 (environment): PASS when this machine can train the project's
//! plan — a usable accelerator with enough free memory for the plan's
//! estimate, a compatible driver, CUDA and PyTorch, a backend that can
//! start, the model files there and whole, and enough disk. The record's
//! fingerprint is the environment snapshot (GPU, driver, PyTorch, the
//! trainer's commit and Python), so any change to the machine makes it
//! stale.

use std::time::Duration;

use serde::Serialize;

use super::chain::{ChainError, require_earlier};
use super::{Gate, GateFinding, GateRecord, GateStatus};
use crate::environment::{
    EnvError, EnvFinding, EnvRequest, EnvironmentReport, Severity, check_environment,
};
use crate::studio::Hint;
use crate::studio::Workspace;

/// Why Gate 3 could not run.
#[derive(Debug, thiserror::Error)]
pub enum Gate3Error {
    #[error(transparent)]
    Chain(#[from] ChainError),
    #[error(transparent)]
    Environment(#[from] EnvError),
}

impl Hint for Gate3Error {
    fn hint(&self) -> Option<String> {
        match self {
            Gate3Error::Chain(e) => e.hint(),
            Gate3Error::Environment(e) => e.hint(),
        }
    }
}

/// Gate 3's options.
#[derive(Debug, Clone)]
pub struct Gate3Options {
    /// The backend's folder, relative to the workspace (default: found).
    pub backend_path: Option<String>,
    /// The longest the Python probe may take.
    pub probe_limit: Duration,
}

impl Default for Gate3Options {
    fn default() -> Self {
        Gate3Options {
            backend_path: None,
            probe_limit: crate::environment::python::DEFAULT_PROBE_LIMIT,
        }
    }
}

/// The Gate 3 decision.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Gate3Report {
    pub project: String,
    /// GO or NO-GO.
    pub decision: String,
    pub status: GateStatus,
    pub blockers: Vec<GateFinding>,
    pub warnings: Vec<GateFinding>,
    /// The whole environment check.
    pub environment: EnvironmentReport,
    /// The environment snapshot's fingerprint, as recorded.
    pub fingerprint: String,
    pub resource_uri: String,
}

impl Gate3Report {
    pub fn plain_summary(&self) -> String {
        let mut s = format!(
            "Gate 3 for `{}`: {}. {}",
            self.project, self.decision, self.environment.summary
        );
        if self.status == GateStatus::Pass {
            s.push_str(" Next: gate 4, the dry run (dry_run).");
        }
        s
    }
}

pub(crate) fn gate_finding(f: &EnvFinding) -> GateFinding {
    GateFinding {
        severity: f.severity.word().into(),
        message: f.message.clone(),
        what_to_do: f.what_to_do.clone(),
        ..GateFinding::default()
    }
}

/// Runs Gate 3 for a project (gates 1 and 2 must pass first) and records it.
pub fn run_gate3(
    ws: &Workspace,
    project_name: &str,
    options: &Gate3Options,
) -> Result<Gate3Report, Gate3Error> {
    let project = crate::studio::project::load(ws, project_name)
        .map_err(EnvError::from)?
        .ok_or_else(|| EnvError::NoSuchProject {
            name: project_name.to_string(),
        })?;
    require_earlier(ws, &project, Gate::Environment)?;
    let env = check_environment(
        ws,
        &EnvRequest {
            project: Some(project.name.clone()),
            backend: None,
            backend_path: options.backend_path.clone(),
            probe_limit: options.probe_limit,
        },
    )?;
    let blockers: Vec<GateFinding> = env
        .findings
        .iter()
        .filter(|f| f.severity == Severity::Blocking)
        .map(gate_finding)
        .collect();
    let warnings: Vec<GateFinding> = env
        .findings
        .iter()
        .filter(|f| f.severity == Severity::Warning)
        .map(gate_finding)
        .collect();
    let status = if blockers.is_empty() {
        GateStatus::Pass
    } else {
        GateStatus::Fail
    };
    let mut report = Gate3Report {
        project: project.name.clone(),
        decision: if status == GateStatus::Pass {
            "GO"
        } else {
            "NO-GO"
        }
        .into(),
        status,
        blockers,
        warnings,
        fingerprint: env.fingerprint.clone(),
        environment: env,
        resource_uri: super::uri(&project.name, Gate::Environment),
    };
    let mut record = GateRecord::new(
        &project.name,
        Gate::Environment,
        status,
        report.fingerprint.clone(),
    );
    record.scope = "environment".into();
    record.summary = report.plain_summary();
    record.findings = report
        .blockers
        .iter()
        .chain(report.warnings.iter())
        .cloned()
        .collect();
    record.report = report.environment.report_file.clone();
    record.details = serde_json::to_value(&report.environment.snapshot).ok();
    report.resource_uri = super::store(ws, &record)?;
    Ok(report)
}

impl From<crate::studio::StudioError> for Gate3Error {
    fn from(e: crate::studio::StudioError) -> Self {
        Gate3Error::Environment(EnvError::Studio(e))
    }
}
