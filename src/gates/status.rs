//! Which gates of a project pass, fail, have not run, or are stale because
//! what they checked has changed since: gate 1 the pictures and captions,
//! gate 2 the plan, gate 3 the machine (its environment snapshot), gate 4
//! all three. [`FreshCheck`] computes each fingerprint once per question.

use std::cell::OnceCell;

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

/// Gate 4 checks the dataset, the plan and the environment together; its
/// fingerprint names each part, so a stale record can say which changed.
pub fn dry_run_fingerprint(dataset: &str, plan: &str, environment: &str) -> String {
    format!("dataset={dataset};plan={plan};environment={environment}")
}

/// The parts of a gate 4 fingerprint.
fn parts(fingerprint: &str) -> Vec<(&str, &str)> {
    fingerprint
        .split(';')
        .filter_map(|p| p.split_once('='))
        .collect()
}

/// Fingerprints of what each gate checks, as things are now, each computed
/// at most once (the dataset's hashes every picture; the environment's asks
/// the driver).
pub struct FreshCheck<'a> {
    ws: &'a Workspace,
    project: &'a Project,
    dataset: OnceCell<Option<String>>,
    plan: OnceCell<Option<String>>,
    environment: OnceCell<Option<String>>,
}

impl<'a> FreshCheck<'a> {
    pub fn new(ws: &'a Workspace, project: &'a Project) -> Self {
        FreshCheck {
            ws,
            project,
            dataset: OnceCell::new(),
            plan: OnceCell::new(),
            environment: OnceCell::new(),
        }
    }

    fn dataset(&self) -> Option<String> {
        self.dataset
            .get_or_init(|| {
                let dir =
                    crate::studio::paths::resolve_existing(self.ws.root(), &self.project.dataset)
                        .ok()?;
                crate::dataset::manifest::compute(
                    &dir,
                    self.ws.root(),
                    &self.project.caption_extension,
                )
                .ok()
            })
            .clone()
    }

    fn plan(&self) -> Option<String> {
        self.plan
            .get_or_init(|| {
                // A deleted plan makes a recorded gate 2 stale.
                crate::plan::training::load_plan(self.ws, &self.project.name)
                    .ok()
                    .map(|plan| plan.map(|p| p.hash()).unwrap_or_else(|| "no-plan".into()))
            })
            .clone()
    }

    fn environment(&self) -> Option<String> {
        self.environment
            .get_or_init(|| {
                let recorded = crate::environment::load(self.ws, &self.project.name).ok()??;
                Some(crate::environment::snapshot::now(&recorded.snapshot).fingerprint())
            })
            .clone()
    }

    /// The fingerprint of what `gate` checks, now; `None` when its inputs
    /// cannot be fingerprinted (then its record is taken as is).
    pub fn fingerprint(&self, gate: Gate) -> Option<String> {
        match gate {
            Gate::Dataset => self.dataset(),
            Gate::Config => self.plan(),
            Gate::Environment => self.environment(),
            Gate::DryRun => {
                let or_none = |x: Option<String>| x.unwrap_or_else(|| "none".into());
                Some(dry_run_fingerprint(
                    &or_none(self.dataset()),
                    &or_none(self.plan()),
                    &or_none(self.environment()),
                ))
            }
        }
    }

    /// Where a recorded gate stands now, and why, in words.
    fn state_of(&self, rec: &GateRecord) -> (GateState, String) {
        state_of_with(rec, self.fingerprint(rec.gate))
    }

    /// One gate's view, as `project_status` shows it.
    pub fn view(&self, gate: Gate) -> Result<GateView, StudioError> {
        let record = super::load(self.ws, &self.project.name, gate)?;
        let (state, checked_at, reason) = match record {
            None => (GateState::NotRun, None, "not run yet".to_string()),
            Some(rec) => {
                let (state, reason) = self.state_of(&rec);
                (state, Some(rec.checked_at), reason)
            }
        };
        Ok(GateView {
            gate,
            number: gate.number(),
            title: gate.title().to_string(),
            state,
            checked_at,
            reason,
            resource_uri: super::uri(&self.project.name, gate),
        })
    }
}

/// The fingerprint of what `gate` checks, as it is now; `None` when this
/// gate's inputs cannot be fingerprinted (then its record is taken as is).
pub fn current_fingerprint(ws: &Workspace, project: &Project, gate: Gate) -> Option<String> {
    FreshCheck::new(ws, project).fingerprint(gate)
}

/// What changed, in words, between a recorded fingerprint and now's.
fn what_changed(gate: Gate, recorded: &str, now: &str) -> String {
    match gate {
        Gate::Dataset => "pictures or captions changed".into(),
        Gate::Config => "the plan changed".into(),
        Gate::Environment => {
            "the machine changed (GPU, driver, PyTorch, the trainer or its Python)".into()
        }
        Gate::DryRun => {
            let (then, now) = (parts(recorded), parts(now));
            let changed: Vec<&str> = now
                .iter()
                .filter(|(k, v)| {
                    then.iter()
                        .find(|(k2, _)| k2 == k)
                        .is_none_or(|(_, v2)| v2 != v)
                })
                .map(|(k, _)| match *k {
                    "dataset" => "the pictures or captions",
                    "plan" => "the plan",
                    _ => "the environment",
                })
                .collect();
            if changed.is_empty() {
                "what it checked changed".into()
            } else {
                format!("{} changed", changed.join(" and "))
            }
        }
    }
}

fn state_of_with(rec: &GateRecord, now: Option<String>) -> (GateState, String) {
    match (now, rec.status) {
        (Some(now), _) if now != rec.fingerprint => (
            GateState::Stale,
            format!(
                "{} since {} ran at {}; run it again",
                what_changed(rec.gate, &rec.fingerprint, &now),
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

/// Where a recorded gate stands now, and why, in words.
fn state_of(ws: &Workspace, project: Option<&Project>, rec: &GateRecord) -> (GateState, String) {
    match project {
        Some(p) => FreshCheck::new(ws, p).state_of(rec),
        None => state_of_with(rec, None),
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
    let fresh = FreshCheck::new(ws, project);
    let mut gates = Vec::new();
    for gate in Gate::ALL {
        gates.push(fresh.view(gate)?);
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
            (Gate::Environment, GateState::NotRun) => {
                "check the machine: run gate 3 (run_gate 3; check_environment shows the details first)".to_string()
            }
            (Gate::DryRun, GateState::NotRun) => {
                "run the dry run: gate 4 (dry_run, or run_gate 4)".to_string()
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
