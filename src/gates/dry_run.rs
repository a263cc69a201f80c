//! Gate 4 (dry run): the plan's own trainer runs 2 to 5 real steps of
//! exactly the planned training (`run::dry_run`), on the real dataset and
//! model, with its output in `grimoire/training/<name>/dry-run.log`. PASS
//! needs the model loaded, the dataset read and at least two steps with a
//! finite loss; a failure is diagnosed (out of memory and the batch to try,
//! a missing file or module, a caption, CUDA, NaN, a hang, a crash) and
//! named in the record. The record carries the dataset, plan and
//! environment fingerprints together, so a change to any of them makes it
//! stale.

use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

use super::chain::{ChainError, require_earlier};
use super::status::{FreshCheck, dry_run_fingerprint};
use super::{Gate, GateFinding, GateRecord, GateStatus};
use crate::backends::{backend_slug, load_manifest};
use crate::plan::training::{Backend, load_plan};
use crate::run::diagnose::FailureKind;
use crate::run::dry_run::{
    DEFAULT_LIMIT, DEFAULT_STALL, DEFAULT_STEPS, DryRunError, DryRunOutcome, DryRunSpec, Launcher,
    MAX_STEPS, MIN_STEPS, dry_run,
};
use crate::studio::Hint;
use crate::studio::{Progress, StudioError, Workspace, clock};

/// Why Gate 4 could not run (a failing dry run is a FAIL record, not this).
#[derive(Debug, thiserror::Error)]
pub enum Gate4Error {
    #[error(transparent)]
    Chain(#[from] ChainError),
    #[error(transparent)]
    Studio(#[from] StudioError),
    #[error("there is no project named `{name}`")]
    NoSuchProject { name: String },
    #[error("{steps} steps is not a dry run: it takes {MIN_STEPS} to {MAX_STEPS} steps")]
    BadSteps { steps: u32 },
    #[error("the project `{project}` has no training plan")]
    NoPlan { project: String },
}

impl Hint for Gate4Error {
    fn hint(&self) -> Option<String> {
        match self {
            Gate4Error::Chain(e) => e.hint(),
            Gate4Error::Studio(e) => e.hint(),
            Gate4Error::NoSuchProject { .. } => {
                Some("list the projects (list_projects), or start one (start_project)".into())
            }
            Gate4Error::BadSteps { .. } => Some(format!(
                "ask for {MIN_STEPS} to {MAX_STEPS} steps (default {DEFAULT_STEPS})"
            )),
            Gate4Error::NoPlan { .. } => {
                Some("make one (plan_training), then run gates 2 and 3".into())
            }
        }
    }
}

/// Gate 4's options.
#[derive(Debug, Clone)]
pub struct Gate4Options {
    /// Steps to run (2 to 5).
    pub steps: u32,
    /// Stop the trainer when it prints nothing for this long.
    pub stall: Duration,
    /// The longest the whole dry run may take.
    pub limit: Duration,
    /// The program that runs the native engine (default: this one).
    pub engine_exe: Option<PathBuf>,
}

impl Default for Gate4Options {
    fn default() -> Self {
        Gate4Options {
            steps: DEFAULT_STEPS,
            stall: DEFAULT_STALL,
            limit: DEFAULT_LIMIT,
            engine_exe: None,
        }
    }
}

/// The Gate 4 decision.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Gate4Report {
    pub project: String,
    /// GO or NO-GO.
    pub decision: String,
    pub status: GateStatus,
    pub backend: Backend,
    /// What went wrong, in words (`out of GPU memory`), when it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
    pub blockers: Vec<GateFinding>,
    pub warnings: Vec<GateFinding>,
    /// The run itself; absent when the trainer could not be started.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outcome: Option<DryRunOutcome>,
    /// The full run at the speed measured, in hours.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub full_run_hours: Option<f64>,
    /// `grimoire/training/<name>/dry-run.log`.
    pub log_file: String,
    pub fingerprint: String,
    pub resource_uri: String,
}

impl Gate4Report {
    pub fn plain_summary(&self) -> String {
        let mut s = format!("Gate 4 for `{}`: {}. ", self.project, self.decision);
        if let Some(o) = &self.outcome {
            let losses: Vec<String> = o
                .losses
                .iter()
                .map(|p| {
                    p.loss
                        .map(|l| format!("{l:.4}"))
                        .unwrap_or_else(|| "NaN".into())
                })
                .collect();
            s.push_str(&format!(
                "{} ran {} of {} steps{}",
                self.backend.name(),
                o.steps_done,
                o.steps_wanted,
                if losses.is_empty() {
                    String::new()
                } else {
                    format!(" (loss {})", losses.join(", "))
                }
            ));
            if let Some(sps) = o.seconds_per_step {
                s.push_str(&format!(", {sps:.2} s a step"));
            }
            s.push('.');
        }
        if let Some(h) = self.full_run_hours {
            s.push_str(&format!(
                " At this speed the full run takes about {}.",
                if h < 1.0 {
                    format!("{:.0} minutes", (h * 60.0).max(1.0))
                } else {
                    format!("{h:.1} hours")
                }
            ));
        }
        for b in &self.blockers {
            s.push_str(&format!(" Blocking: {} — {}.", b.message, b.what_to_do));
        }
        for w in &self.warnings {
            s.push_str(&format!(" Warning: {} — {}.", w.message, w.what_to_do));
        }
        s.push_str(&format!(" Log: {}.", self.log_file));
        if self.status == GateStatus::Pass {
            s.push_str(" All four gates pass: training may start.");
        }
        s
    }
}

fn blocking(message: String, what_to_do: String) -> GateFinding {
    GateFinding {
        severity: "blocking".into(),
        message,
        what_to_do,
        ..GateFinding::default()
    }
}

/// How to start the backend, from the environment check Gate 3 kept.
pub(crate) fn launcher(
    env: &crate::environment::EnvironmentReport,
    engine_exe: Option<PathBuf>,
) -> Launcher {
    let python = env.python.as_ref().map(|p| p.interpreter.clone());
    Launcher {
        install_dir: env.install.as_ref().map(|i| i.scripts_dir.clone()),
        bin_dir: python.as_ref().and_then(|p| p.parent().map(PathBuf::from)),
        python,
        engine_exe,
    }
}

/// Runs Gate 4 for a project (gates 1 to 3 must pass first) and records it.
pub fn run_gate4(
    ws: &Workspace,
    project_name: &str,
    options: &Gate4Options,
    progress: &dyn Progress,
) -> Result<Gate4Report, Gate4Error> {
    if !(MIN_STEPS..=MAX_STEPS).contains(&options.steps) {
        return Err(Gate4Error::BadSteps {
            steps: options.steps,
        });
    }
    let project = crate::studio::project::load(ws, project_name)?.ok_or_else(|| {
        Gate4Error::NoSuchProject {
            name: project_name.to_string(),
        }
    })?;
    require_earlier(ws, &project, Gate::DryRun)?;
    let plan = load_plan(ws, &project.name)?.ok_or_else(|| Gate4Error::NoPlan {
        project: project.name.clone(),
    })?;
    // What this run checks, fingerprinted before it starts.
    let fresh = FreshCheck::new(ws, &project);
    let fingerprint = fresh
        .fingerprint(Gate::DryRun)
        .unwrap_or_else(|| dry_run_fingerprint("none", &plan.hash(), "none"));
    let log_path = ws.project_dir(&project.name)?.join("dry-run.log");
    let log_file = ws.display_path(&log_path);
    let mut report = Gate4Report {
        project: project.name.clone(),
        decision: "NO-GO".into(),
        status: GateStatus::Fail,
        backend: plan.backend,
        failure: None,
        blockers: Vec::new(),
        warnings: Vec::new(),
        outcome: None,
        full_run_hours: None,
        log_file,
        fingerprint: fingerprint.clone(),
        resource_uri: super::uri(&project.name, Gate::DryRun),
    };

    let manifest = load_manifest(ws, &project.name)?;
    let env = crate::environment::load(ws, &project.name)?;
    match (&manifest, &env) {
        (Some(m), _) if m.plan_hash != plan.hash() => report.blockers.push(blocking(
            "the trainer's config files were written from an earlier version of the plan".into(),
            "write them again (generate_config), then run gates 2 and 3 again".into(),
        )),
        (None, _) => report.blockers.push(blocking(
            "no trainer config has been written for this plan".into(),
            "write it (generate_config), then run gates 2 and 3 again".into(),
        )),
        (_, None) => report.blockers.push(blocking(
            "the environment check that gate 3 keeps is missing".into(),
            "run gate 3 again (run_gate 3)".into(),
        )),
        _ => {}
    }
    if let (Some(generated), Some(env), true) = (manifest, env, report.blockers.is_empty()) {
        let launcher = launcher(&env, options.engine_exe.clone());
        let stamp = clock::stamp(clock::unix_now());
        let work = ws.work_dir();
        let spec = DryRunSpec {
            project: project.name.clone(),
            root: ws.root().to_path_buf(),
            steps: options.steps,
            batch_size: plan.batch_size,
            launcher,
            config_dir: work
                .join("configs")
                .join(&project.name)
                .join(backend_slug(plan.backend))
                .join("dry-run"),
            output_dir: work
                .join("outputs")
                .join(&project.name)
                .join(format!("dry-run-{stamp}")),
            log_path,
            stall: options.stall,
            limit: options.limit,
            generated,
        };
        match dry_run(&spec, progress) {
            Ok(outcome) => {
                if let Some(d) = &outcome.diagnosis {
                    report.failure = Some(d.kind.words().to_string());
                    let mut what = d.what_to_do.clone();
                    if d.kind == FailureKind::CudaError {
                        what.push_str(" (environment.md lists the versions)");
                    }
                    report.blockers.push(
                        GateFinding {
                            severity: "blocking".into(),
                            message: format!("{}: {}", d.kind.words(), d.message),
                            what_to_do: what,
                            ..GateFinding::default()
                        }
                        .about(d.subject.iter(), usize::from(d.subject.is_some())),
                    );
                } else if outcome.stopped.is_some() {
                    report.failure = Some("cancelled".into());
                    report.blockers.push(blocking(
                        "the dry run was cancelled before it finished".into(),
                        "run it again (dry_run)".into(),
                    ));
                } else if !outcome.passed {
                    report.blockers.push(blocking(
                        format!(
                            "the dry run did not show {MIN_STEPS} steps with a finite loss ({} shown)",
                            outcome.steps_done
                        ),
                        "read dry-run.log: the trainer may print its progress in a way Ategnatos does not read yet".into(),
                    ));
                }
                if outcome.passed
                    && let Some(sps) = outcome.seconds_per_step
                {
                    report.full_run_hours = Some(sps * plan.total_steps() as f64 / 3600.0);
                }
                report.outcome = Some(outcome);
            }
            Err(DryRunError::BadSteps { steps }) => return Err(Gate4Error::BadSteps { steps }),
            Err(e) => {
                report.failure = Some("the trainer could not start".into());
                report.blockers.push(blocking(
                    e.to_string(),
                    e.hint()
                        .unwrap_or_else(|| "run gate 3 again (run_gate 3)".into()),
                ));
            }
        }
    }
    let passed = report.blockers.is_empty() && report.outcome.as_ref().is_some_and(|o| o.passed);
    if passed {
        report.status = GateStatus::Pass;
        report.decision = "GO".into();
    }
    let mut record = GateRecord::new(&project.name, Gate::DryRun, report.status, fingerprint);
    record.scope = "dry_run".into();
    record.summary = report.plain_summary();
    record.findings = report
        .blockers
        .iter()
        .chain(report.warnings.iter())
        .cloned()
        .collect();
    record.report = Some(report.log_file.clone());
    record.details = report
        .outcome
        .as_ref()
        .and_then(|o| serde_json::to_value(o).ok());
    report.resource_uri = super::store(ws, &record)?;
    Ok(report)
}
