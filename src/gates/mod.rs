//! The four gates: their records, where they are kept, and how they are named.
//!
//! A gate record says PASS or FAIL, what was found, when, and the fingerprint
//! of what was checked (dataset manifest, plan hash, environment snapshot), so
//! a later change to any of them makes the record stale. Records are JSON under
//! `grimoire/.state/projects/<name>/gates/`, and are served as the MCP
//! resources `ategnatos://projects/{name}/gates/{gate}`.
//!
//! [`dataset`], [`config`], [`environment`] and [`dry_run`] run gates 1 to
//! 4; [`chain`] refuses a gate whose earlier gates have not all passed and
//! stayed fresh; [`status`] says where each gate stands now; [`training`]
//! starts a run only behind four fresh gates.

pub mod chain;
pub mod config;
pub mod dataset;
pub mod dry_run;
pub mod environment;
pub mod status;
pub mod training;

use serde::{Deserialize, Serialize};

use crate::studio::{Hint, Progress, StudioError, Workspace, clock, write_json_atomic};

/// The four gates, in the order they must pass.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Gate {
    Dataset,
    Config,
    Environment,
    DryRun,
}

impl Gate {
    pub const ALL: [Gate; 4] = [Gate::Dataset, Gate::Config, Gate::Environment, Gate::DryRun];

    /// 1 to 4.
    pub fn number(self) -> u8 {
        match self {
            Gate::Dataset => 1,
            Gate::Config => 2,
            Gate::Environment => 3,
            Gate::DryRun => 4,
        }
    }

    /// The name used in files and URIs.
    pub fn slug(self) -> &'static str {
        match self {
            Gate::Dataset => "dataset",
            Gate::Config => "config",
            Gate::Environment => "environment",
            Gate::DryRun => "dry_run",
        }
    }

    /// What it checks, for people.
    pub fn title(self) -> &'static str {
        match self {
            Gate::Dataset => "Gate 1: dataset",
            Gate::Config => "Gate 2: training plan",
            Gate::Environment => "Gate 3: environment",
            Gate::DryRun => "Gate 4: dry run",
        }
    }

    /// Accepts `1`..`4` or the slug.
    pub fn parse(text: &str) -> Option<Gate> {
        Gate::ALL
            .into_iter()
            .find(|g| text == g.number().to_string() || text.eq_ignore_ascii_case(g.slug()))
    }
}

/// PASS or FAIL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum GateStatus {
    Pass,
    Fail,
}

/// Most files a finding lists by name; `file_count` says how many in all.
pub const NAMED_FILES: usize = 10;

/// One thing a gate found.
#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema)]
pub struct GateFinding {
    /// `blocking`, `warning` or `info`.
    pub severity: String,
    pub message: String,
    /// What to do about it.
    pub what_to_do: String,
    /// The files it is about, relative to the workspace (at most [`NAMED_FILES`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<String>,
    /// How many files it is about in all.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub file_count: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

impl GateFinding {
    /// Names the files it is about: the first [`NAMED_FILES`], and the count.
    pub fn about<S: AsRef<str>>(
        mut self,
        files: impl IntoIterator<Item = S>,
        count: usize,
    ) -> Self {
        self.files = files
            .into_iter()
            .take(NAMED_FILES)
            .map(|f| f.as_ref().to_string())
            .collect();
        self.file_count = if self.files.is_empty() {
            0
        } else {
            count.max(self.files.len())
        };
        self
    }

    /// "a.png, b.png and 3 more", or nothing when it names no file.
    pub fn files_line(&self) -> Option<String> {
        if self.files.is_empty() {
            return None;
        }
        let more = self.file_count.saturating_sub(self.files.len());
        let listed = self.files.join(", ");
        Some(if more > 0 {
            format!("{listed} and {more} more")
        } else {
            listed
        })
    }
}

/// The stored result of one gate for one project.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct GateRecord {
    pub project: String,
    pub gate: Gate,
    /// 1 to 4.
    pub number: u8,
    pub status: GateStatus,
    /// One paragraph in plain words.
    pub summary: String,
    pub findings: Vec<GateFinding>,
    /// RFC 3339 UTC.
    pub checked_at: String,
    /// Fingerprint of what was checked; a different fingerprint now means stale.
    pub fingerprint: String,
    /// What produced this record (`audit`, `full`, ...).
    pub scope: String,
    /// Where the full report is, relative to the workspace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report: Option<String>,
    /// What the gate measured, for tools to read (gate 4: the dry run's
    /// steps, losses and diagnosis).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<serde_json::Value>,
}

impl GateRecord {
    pub fn new(project: &str, gate: Gate, status: GateStatus, fingerprint: String) -> Self {
        GateRecord {
            project: project.to_string(),
            gate,
            number: gate.number(),
            status,
            summary: String::new(),
            findings: Vec::new(),
            checked_at: clock::now_rfc3339(),
            fingerprint,
            scope: "full".into(),
            report: None,
            details: None,
        }
    }
}

/// The resource URI of a gate record.
pub fn uri(project: &str, gate: Gate) -> String {
    format!("ategnatos://projects/{project}/gates/{}", gate.number())
}

/// Splits a gate URI into project and gate.
pub fn parse_uri(uri: &str) -> Option<(String, Gate)> {
    let rest = uri.strip_prefix("ategnatos://projects/")?;
    let (project, gate) = rest.split_once("/gates/")?;
    crate::studio::check_project_name(project).ok()?;
    Some((project.to_string(), Gate::parse(gate)?))
}

fn record_path(
    ws: &Workspace,
    project: &str,
    gate: Gate,
) -> Result<std::path::PathBuf, StudioError> {
    Ok(ws.project_state_dir(project)?.join("gates").join(format!(
        "{}-{}.json",
        gate.number(),
        gate.slug()
    )))
}

/// Stores a record (atomically) and returns its URI.
pub fn store(ws: &Workspace, record: &GateRecord) -> Result<String, StudioError> {
    write_json_atomic(&record_path(ws, &record.project, record.gate)?, record)?;
    Ok(uri(&record.project, record.gate))
}

/// Loads a record, `None` when the gate has not run.
pub fn load(ws: &Workspace, project: &str, gate: Gate) -> Result<Option<GateRecord>, StudioError> {
    ws.read_json(&record_path(ws, project, gate)?)
}

/// Every stored record, by project then gate.
pub fn list(ws: &Workspace) -> Vec<GateRecord> {
    let dir = ws.state_dir().join("projects");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut projects: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str().map(String::from))
        .collect();
    projects.sort();
    projects
        .iter()
        .flat_map(|p| {
            Gate::ALL
                .into_iter()
                .filter_map(move |g| load(ws, p, g).ok().flatten())
        })
        .collect()
}

/// One gate's run, whichever gate it was: what the tool and the command
/// both show.
#[derive(Debug, Clone)]
pub struct GateRun {
    /// The report in plain words.
    pub summary: String,
    /// The gate record's resource.
    pub resource_uri: String,
    /// Nothing blocks: the gate passed.
    pub passed: bool,
    /// The whole report, as the tool returns it.
    pub report: serde_json::Value,
}

/// Why a gate could not run at all (a gate that ran and failed is a
/// [`GateRun`] that did not pass).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct GateRunError {
    pub message: String,
    pub hint: Option<String>,
}

impl Hint for GateRunError {
    fn hint(&self) -> Option<String> {
        self.hint.clone()
    }
}

impl GateRunError {
    fn of(e: &impl Hint) -> GateRunError {
        GateRunError {
            message: e.to_string(),
            hint: e.hint(),
        }
    }
}

/// Runs gate `gate` — 1 dataset, 2 training plan, 3 environment, 4 dry run —
/// for a project, with each gate's defaults (`gpu` is Gate 2's). The one
/// place a gate is chosen by its number.
pub fn run_by_number(
    ws: &Workspace,
    project: &str,
    gate: u8,
    gpu: Option<&str>,
    progress: &dyn Progress,
) -> Result<GateRun, GateRunError> {
    fn run<R: Serialize>(summary: String, uri: &str, passed: bool, report: &R) -> GateRun {
        GateRun {
            summary,
            resource_uri: uri.to_string(),
            passed,
            report: serde_json::to_value(report).unwrap_or(serde_json::Value::Null),
        }
    }
    match gate {
        1 => {
            let g = dataset::run_gate1(ws, project, progress).map_err(|e| GateRunError::of(&e))?;
            Ok(run(
                g.plain_summary(),
                &g.resource_uri,
                g.blockers.is_empty(),
                &g,
            ))
        }
        2 => {
            let g = config::run_gate2(ws, project, gpu).map_err(|e| GateRunError::of(&e))?;
            Ok(run(
                g.plain_summary(),
                &g.resource_uri,
                g.blockers.is_empty(),
                &g,
            ))
        }
        3 => {
            progress.report(0, None, "checking the GPU, the trainer and its Python");
            let g = environment::run_gate3(ws, project, &environment::Gate3Options::default())
                .map_err(|e| GateRunError::of(&e))?;
            Ok(run(
                g.plain_summary(),
                &g.resource_uri,
                g.blockers.is_empty(),
                &g,
            ))
        }
        4 => {
            let g = dry_run::run_gate4(ws, project, &dry_run::Gate4Options::default(), progress)
                .map_err(|e| GateRunError::of(&e))?;
            Ok(run(
                g.plain_summary(),
                &g.resource_uri,
                g.blockers.is_empty(),
                &g,
            ))
        }
        other => Err(GateRunError {
            message: format!("there is no gate `{other}`"),
            hint: Some(
                "gates are numbered 1 (dataset), 2 (plan), 3 (environment), 4 (dry run)".into(),
            ),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris_round_trip() {
        let u = uri("ink-fox", Gate::DryRun);
        assert_eq!(u, "ategnatos://projects/ink-fox/gates/4");
        assert_eq!(parse_uri(&u), Some(("ink-fox".into(), Gate::DryRun)));
        assert_eq!(
            parse_uri("ategnatos://projects/ink-fox/gates/dataset").map(|x| x.1),
            Some(Gate::Dataset)
        );
        assert_eq!(parse_uri("ategnatos://projects/../gates/1"), None);
        assert_eq!(parse_uri("ategnatos://projects/a/gates/9"), None);
    }

    #[test]
    fn store_then_load() {
        let dir = tempfile::tempdir().unwrap();
        let ws = Workspace::open(dir.path()).unwrap();
        assert!(load(&ws, "fox", Gate::Dataset).unwrap().is_none());
        let rec = GateRecord::new("fox", Gate::Dataset, GateStatus::Fail, "abc".into());
        store(&ws, &rec).unwrap();
        let back = load(&ws, "fox", Gate::Dataset).unwrap().unwrap();
        assert_eq!(
            (back.status, back.fingerprint.as_str()),
            (GateStatus::Fail, "abc")
        );
        assert_eq!(list(&ws).len(), 1);
    }
}
