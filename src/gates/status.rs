//! Which gates of a project pass, fail, have not run, or are stale because
//! what they checked has changed since.

use serde::Serialize;

use super::{Gate, GateRecord, GateStatus};
use crate::studio::project::Project;
use crate::studio::{StudioError, Workspace};

/// Where one gate stands now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum GateState {
    NotRun,
    Pass,
    Fail,
    /// It passed or failed, but what it checked has changed since.
    Stale,
}

/// One gate of a project.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct GateView {
    pub gate: Gate,
    pub number: u8,
    pub title: String,
    pub state: GateState,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checked_at: Option<String>,
    /// Why it is in this state, in words.
    pub reason: String,
    pub resource_uri: String,
}

/// All four gates of a project, and what to do next.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct ProjectStatus {
    pub project: Project,
    pub gates: Vec<GateView>,
    /// The next thing to do, in words.
    pub next_step: String,
}

impl ProjectStatus {
    pub fn plain_summary(&self) -> String {
        let states: Vec<String> = self
            .gates
            .iter()
            .map(|g| {
                let s = match g.state {
                    GateState::NotRun => "not run",
                    GateState::Pass => "PASS",
                    GateState::Fail => "FAIL",
                    GateState::Stale => "stale",
                };
                format!("gate {} {s}", g.number)
            })
            .collect();
        format!(
            "Project `{}`: {}. Next: {}",
            self.project.name,
            states.join(", "),
            self.next_step
        )
    }
}

/// The fingerprint of what `gate` checks, as it is now; `None` when this
/// gate's inputs cannot be fingerprinted (then its record is taken as is).
pub fn current_fingerprint(ws: &Workspace, project: &Project, gate: Gate) -> Option<String> {
    match gate {
        Gate::Dataset => {
            let dir = crate::studio::paths::resolve_existing(ws.root(), &project.dataset).ok()?;
            crate::dataset::manifest::compute(&dir, ws.root(), &project.caption_extension).ok()
        }
        // The plan's hash; a deleted plan makes a recorded gate 2 stale.
        Gate::Config => crate::plan::training::load_plan(ws, &project.name)
            .ok()
            .map(|plan| plan.map(|p| p.hash()).unwrap_or_else(|| "no-plan".into())),
        _ => None,
    }
}

/// Where a recorded gate stands now, and why, in words.
fn state_of(ws: &Workspace, project: Option<&Project>, rec: &GateRecord) -> (GateState, String) {
    let now = project.and_then(|p| current_fingerprint(ws, p, rec.gate));
    match (now, rec.status) {
        (Some(now), _) if now != rec.fingerprint => (
            GateState::Stale,
            format!(
                "what it checked has changed since {} ran at {}; run it again",
                rec.gate.title(),
                rec.checked_at
            ),
        ),
        // An audit recorded on its own (`audit_dataset` with a project) is
        // not Gate 1: it did not check duplicates, variety or the caption
        // balance. A failing one still says what blocks.
        (_, GateStatus::Pass) if rec.gate == Gate::Dataset && rec.scope == "audit" => (
            GateState::NotRun,
            "only the audit was recorded; gate 1 also checks duplicates, variety and the captions' balance".to_string(),
        ),
        (_, GateStatus::Pass) => (GateState::Pass, rec.summary.clone()),
        (_, GateStatus::Fail) => (GateState::Fail, rec.summary.clone()),
    }
}

/// A gate's record as it reads now: the stored record, with `status` saying
/// `STALE` (and `recorded_status` what it was) when what it checked has
/// changed, or `NOT_RUN` for an audit recorded on its own, and `state_reason`
/// saying why. `None` when the gate has not run.
/// An audit recorded for a project that was never started is read as it
/// was stored (there is no intent to check its fingerprint against).
pub fn read_fresh(
    ws: &Workspace,
    project_name: &str,
    gate: Gate,
) -> Result<Option<serde_json::Value>, StudioError> {
    let Some(rec) = super::load(ws, project_name, gate)? else {
        return Ok(None);
    };
    let project = crate::studio::project::load(ws, project_name)?;
    let (state, reason) = state_of(ws, project.as_ref(), &rec);
    let mut value = serde_json::to_value(&rec).unwrap_or(serde_json::Value::Null);
    if let Some(fields) = value.as_object_mut() {
        let shown = match state {
            GateState::Stale => Some("STALE"),
            GateState::NotRun => Some("NOT_RUN"),
            GateState::Pass | GateState::Fail => None,
        };
        if let Some(shown) = shown {
            let recorded = fields.insert("status".into(), shown.into());
            if let Some(recorded) = recorded {
                fields.insert("recorded_status".into(), recorded);
            }
            fields.insert("state_reason".into(), reason.into());
        }
    }
    Ok(Some(value))
}

/// Where every gate of `project` stands.
pub fn project_status(ws: &Workspace, project: &Project) -> Result<ProjectStatus, StudioError> {
    let mut gates = Vec::new();
    for gate in Gate::ALL {
        let record = super::load(ws, &project.name, gate)?;
        let (state, checked_at, reason) = match record {
            None => (GateState::NotRun, None, "not run yet".to_string()),
            Some(rec) => {
                let (state, reason) = state_of(ws, Some(project), &rec);
                (state, Some(rec.checked_at), reason)
            }
        };
        gates.push(GateView {
            gate,
            number: gate.number(),
            title: gate.title().to_string(),
            state,
            checked_at,
            reason,
            resource_uri: super::uri(&project.name, gate),
        });
    }
    let next_step = match gates.iter().find(|g| g.state != GateState::Pass) {
        None => "all four gates pass: training may start".to_string(),
        Some(g) => match (g.gate, g.state) {
            (Gate::Dataset, GateState::NotRun) => {
                crate::dataset::intent::STEPS_TO_GATE1.to_string()
            }
            (_, GateState::Stale) => {
                format!("run gate {} again (run_gate): {}", g.number, g.reason)
            }
            (_, GateState::Fail) => {
                format!("fix what gate {} reported, then run it again", g.number)
            }
            (_, _) => format!("run gate {} ({})", g.number, g.title),
        },
    };
    Ok(ProjectStatus {
        project: project.clone(),
        gates,
        next_step,
    })
}

/// The gates that are not PASS and fresh; empty means training may start.
pub fn unmet_gates(ws: &Workspace, project: &Project) -> Result<Vec<GateView>, StudioError> {
    Ok(project_status(ws, project)?
        .gates
        .into_iter()
        .filter(|g| g.state != GateState::Pass)
        .collect())
}
