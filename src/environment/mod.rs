//! Gate 3's work: what this machine can train with, and whether it can
//! train the project's plan.
//!
//! [`check_environment`] gathers the GPUs ([`gpu`]: NVML, then
//! `nvidia-smi`, then the driver's `/proc` file), the backend's
//! installation ([`install`]) and Python ([`python`]: one probe run with a
//! time limit: PyTorch and its CUDA build, MPS, every module the trainer
//! imports), the native engine's CUDA status ([`native`]), the disk
//! ([`disk`]) and the model files ([`model_file`]), checks the versions
//! against the compatibility table ([`compat`], data in
//! `fixtures/env/compat.toml`), and weighs it all against the plan. Each
//! problem is a finding with what to do; nothing here panics or waits
//! without a limit. With a project it writes
//! `grimoire/training/<name>/environment.md` and keeps the result (and the
//! snapshot Gate 3 fingerprints, [`snapshot`]) as
//! `grimoire/.state/projects/<name>/environment.json`.

pub mod compat;
pub mod disk;
pub mod gpu;
pub mod install;
pub mod model_file;
pub mod native;
pub mod python;
mod report;
pub mod snapshot;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use self::compat::Version;
use self::disk::DiskNeed;
use self::gpu::{GpuProbe, GpuProcess};
use self::install::{Located, MissingPackage};
use self::model_file::ModelFileReport;
use self::native::NativeReport;
use self::python::{ProbeAnswer, ProbeProblem, ProbeRequest};
use self::snapshot::EnvSnapshot;
use crate::plan::catalog::ModelSpec;
use crate::plan::training::{Backend, BaseWeights, Optimizer, Precision, TrainingPlan};
use crate::studio::Hint;
use crate::studio::paths::PathError;
use crate::studio::project::Project;
use crate::studio::{StudioError, Workspace, write_atomic, write_json_atomic};

/// How much a finding matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Training cannot start (or would fail) until it is fixed.
    Blocking,
    Warning,
    Info,
}

impl Severity {
    pub fn word(self) -> &'static str {
        match self {
            Severity::Blocking => "blocking",
            Severity::Warning => "warning",
            Severity::Info => "info",
        }
    }
}

/// One thing the check found, with what to do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct EnvFinding {
    pub severity: Severity,
    /// `gpu`, `python`, `install`, `compatibility`, `memory`, `disk`, `model`, `apple`, `engine`.
    pub topic: String,
    pub message: String,
    pub what_to_do: String,
}

/// What to check.
#[derive(Debug, Clone)]
pub struct EnvRequest {
    /// The project whose plan is checked (and where the report goes).
    pub project: Option<String>,
    /// The backend to check; default the plan's.
    pub backend: Option<Backend>,
    /// The backend's folder, relative to the workspace root.
    pub backend_path: Option<String>,
    /// The longest the Python probe may take.
    pub probe_limit: Duration,
}

impl Default for EnvRequest {
    fn default() -> Self {
        EnvRequest {
            project: None,
            backend: None,
            backend_path: None,
            probe_limit: python::DEFAULT_PROBE_LIMIT,
        }
    }
}

/// The backend's installation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct InstallReport {
    pub backend: Backend,
    /// The folder (absolute: it may be outside the workspace when an
    /// environment variable names it).
    pub dir: PathBuf,
    /// Where its entry scripts are.
    pub scripts_dir: PathBuf,
    pub found_by: String,
    /// The git commit it is at.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    pub entry_scripts: Vec<String>,
    /// Modules it imports that its Python cannot find.
    pub missing: Vec<MissingPackage>,
    /// The one line that installs them all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pip_install: Option<String>,
    /// It is the backend, its scripts are there and nothing is missing.
    pub can_start: bool,
}

/// The backend's Python and what it said.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PythonReport {
    pub interpreter: PathBuf,
    pub found_by: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer: Option<ProbeAnswer>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub problem: Option<ProbeProblem>,
}

/// The plan's memory against the accelerator's free memory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct MemoryCheck {
    /// The GPU (or `Apple MPS`).
    pub device: String,
    pub total_gib: f64,
    pub free_gib: f64,
    /// The plan's estimated peak.
    pub needed_gib: f64,
    pub fits: bool,
    /// Other programs holding memory on it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub others: Vec<GpuProcess>,
}

/// The workspace disk.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct DiskReport {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub free_gib: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub need: Option<DiskNeed>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enough: Option<bool>,
}

/// What this machine can train with, and whether it can train the plan.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct EnvironmentReport {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend: Option<Backend>,
    /// What the training would run on: `NVIDIA GeForce RTX 4090`, `Apple MPS`, `CPU`, or `none`.
    pub accelerator: String,
    pub gpu: GpuProbe,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub python: Option<PythonReport>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub install: Option<InstallReport>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub native: Option<NativeReport>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<MemoryCheck>,
    pub disk: DiskReport,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub models: Vec<ModelFileReport>,
    /// On Apple Silicon: what the plan must change to train with MPS.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub apple_plan_changes: Vec<String>,
    /// Problems first, each with what to do.
    pub findings: Vec<EnvFinding>,
    /// Nothing blocks.
    pub ready: bool,
    /// One paragraph in plain words.
    pub summary: String,
    /// What Gate 3's fingerprint covers.
    pub snapshot: EnvSnapshot,
    pub fingerprint: String,
    /// `environment.md`, relative to the workspace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report_file: Option<String>,
}

impl EnvironmentReport {
    pub fn plain_summary(&self) -> String {
        self.summary.clone()
    }

    pub fn blockers(&self) -> impl Iterator<Item = &EnvFinding> {
        self.findings
            .iter()
            .filter(|f| f.severity == Severity::Blocking)
    }
}

/// Why the check could not run at all (everything else is a finding).
#[derive(Debug, thiserror::Error)]
pub enum EnvError {
    #[error(transparent)]
    Studio(#[from] StudioError),
    #[error(transparent)]
    Path(#[from] PathError),
    #[error("there is no project named `{name}`")]
    NoSuchProject { name: String },
    #[error("the plan names the base model `{model}`, which Ategnatos does not know")]
    UnknownModel { model: String },
}

impl Hint for EnvError {
    fn hint(&self) -> Option<String> {
        match self {
            EnvError::Studio(e) => e.hint(),
            EnvError::Path(e) => e.hint(),
            EnvError::NoSuchProject { .. } => {
                Some("list the projects (list_projects), or start one (start_project)".into())
            }
            EnvError::UnknownModel { .. } => {
                Some("make the plan again (plan_training) with a catalog model".into())
            }
        }
    }
}

/// Where the project's last environment report is kept.
pub fn state_path(ws: &Workspace, project: &str) -> Result<PathBuf, StudioError> {
    Ok(ws.project_state_dir(project)?.join("environment.json"))
}

/// The project's last environment report, if any.
pub fn load(ws: &Workspace, project: &str) -> Result<Option<EnvironmentReport>, StudioError> {
    ws.read_json(&state_path(ws, project)?)
}

fn finding(
    findings: &mut Vec<EnvFinding>,
    severity: Severity,
    topic: &str,
    message: String,
    what_to_do: String,
) {
    findings.push(EnvFinding {
        severity,
        topic: topic.into(),
        message,
        what_to_do,
    });
}

/// What the project and its plan say to check.
struct Context {
    project: Option<Project>,
    plan: Option<TrainingPlan>,
    model: Option<&'static ModelSpec>,
    backend: Option<Backend>,
}

fn context(ws: &Workspace, req: &EnvRequest) -> Result<Context, EnvError> {
    let project = match &req.project {
        Some(name) => Some(
            crate::studio::project::load(ws, name)?
                .ok_or_else(|| EnvError::NoSuchProject { name: name.clone() })?,
        ),
        None => None,
    };
    let plan = match &project {
        Some(p) => crate::plan::training::load_plan(ws, &p.name)?,
        None => None,
    };
    let model = match &plan {
        Some(p) => Some(p.model().map_err(|_| EnvError::UnknownModel {
            model: p.base_model.clone(),
        })?),
        None => None,
    };
    let backend = req.backend.or(plan.as_ref().map(|p| p.backend));
    Ok(Context {
        project,
        plan,
        model,
        backend,
    })
}

/// Checks this machine for `req` (see the module docs). Errors only for a
/// request that cannot be checked (an unknown project, a path outside the
/// workspace); every problem of the machine is a finding.
pub fn check_environment(ws: &Workspace, req: &EnvRequest) -> Result<EnvironmentReport, EnvError> {
    let cx = context(ws, req)?;
    let given_dir = match &req.backend_path {
        Some(p) => Some(ws.resolve(p)?),
        None => None,
    };
    let recorded = match &cx.project {
        Some(p) => load(ws, &p.name).ok().flatten(),
        None => None,
    };
    let mut findings = Vec::new();
    if let (Some(asked), Some(plan)) = (req.backend, &cx.plan)
        && asked != plan.backend
    {
        finding(
            &mut findings,
            Severity::Warning,
            "install",
            format!(
                "the plan trains with {}, but {} was asked for",
                plan.backend.name(),
                asked.name()
            ),
            "check the plan's backend, or plan again with this one (plan_training with backend)"
                .into(),
        );
    }

    let gpus = gpu::probe_gpus();
    let mut python_report = None;
    let mut install_report = None;
    let mut native_report = None;
    let backend = cx.backend;
    match backend {
        Some(Backend::Native) | None => native_report = Some(native::check_native()),
        Some(b) => {
            let recorded_dir = recorded
                .as_ref()
                .and_then(|r| r.install.as_ref())
                .filter(|i| i.backend == b)
                .map(|i| i.dir.clone());
            let (install, python) = check_install(
                b,
                ws.root(),
                given_dir.as_deref(),
                recorded_dir.as_deref(),
                cx.plan.as_ref(),
                cx.model,
                req.probe_limit,
                &mut findings,
            );
            install_report = install;
            python_report = python;
        }
    }
    let torch = python_report
        .as_ref()
        .and_then(|p| p.answer.as_ref())
        .map(|a| a.torch.clone());

    // GPU facts, and the versions checked against the table.
    if gpus.gpus.is_empty() {
        let why = gpus.notes.join("; ");
        let severity = match backend {
            Some(Backend::Native) | None => Severity::Info,
            Some(_) if torch.as_ref().and_then(|t| t.mps_available) == Some(true) => Severity::Info,
            Some(_) => Severity::Blocking,
        };
        finding(
            &mut findings,
            severity,
            "gpu",
            format!("no NVIDIA GPU found ({why})"),
            match backend {
                Some(Backend::Native) | None => "the engine can still train on the CPU (slowly); for a GPU, use a machine with an NVIDIA card and its driver".into(),
                Some(b) => format!("{} needs a GPU: train on a machine with an NVIDIA card and its driver (or rent one), or plan with the Ategnatos engine on the CPU (slow)", b.name()),
            },
        );
    }
    let driver_cuda = gpus.cuda_version.as_deref().and_then(Version::parse);
    if let (Some(t), Some(dc)) = (&torch, &driver_cuda)
        && t.installed
        && !gpus.gpus.is_empty()
        && let Some(version) = &t.version
    {
        if let Some(m) = compat::check_torch_against_driver(
            compat::table(),
            version,
            t.cuda.as_deref(),
            dc,
            gpus.driver_version.as_deref(),
        ) {
            finding(
                &mut findings,
                Severity::Blocking,
                "compatibility",
                m.message,
                m.fix,
            );
        }
        for g in &gpus.gpus {
            if let Some(cc) = g.compute_capability.as_deref().and_then(Version::parse)
                && let Some(m) = compat::check_torch_against_gpu(
                    compat::table(),
                    version,
                    t.cuda.as_deref(),
                    &t.arch_list,
                    &g.short_name(),
                    &cc,
                    Some(dc),
                )
            {
                finding(
                    &mut findings,
                    Severity::Blocking,
                    "compatibility",
                    m.message,
                    m.fix,
                );
                break;
            }
        }
    }

    // What the training would run on.
    let mps = torch.as_ref().and_then(|t| t.mps_available) == Some(true);
    let cuda_ok = torch.as_ref().and_then(|t| t.cuda_available) == Some(true);
    let accelerator = match backend {
        Some(Backend::Native) | None => {
            let wants_gpu = cx.plan.as_ref().is_some_and(|p| p.gpu.is_some());
            let engine_gpu = native_report.as_ref().is_some_and(native::can_use_gpu);
            match (wants_gpu, gpus.first(), engine_gpu) {
                (true, Some(g), true) => g.name.clone(),
                (true, _, _) => {
                    finding(
                        &mut findings,
                        Severity::Blocking,
                        "engine",
                        "the plan trains with the Ategnatos engine on a GPU, which this machine or this build cannot do".into(),
                        native_report
                            .as_ref()
                            .map(|n| n.summary.clone())
                            .unwrap_or_default(),
                    );
                    "none".into()
                }
                (false, _, _) => {
                    if cx.plan.is_some() {
                        finding(
                            &mut findings,
                            Severity::Warning,
                            "engine",
                            "the plan trains with the Ategnatos engine on the CPU".into(),
                            native_report
                                .as_ref()
                                .map(|n| n.summary.clone())
                                .unwrap_or_default(),
                        );
                    }
                    "CPU".into()
                }
            }
        }
        Some(b) => match (gpus.first(), cuda_ok, mps) {
            (Some(g), true, _) => g.name.clone(),
            (_, _, true) => "Apple MPS".into(),
            (Some(g), false, false) => {
                if let Some(t) = torch.as_ref().filter(|t| t.installed && t.error.is_none()) {
                    let why = t
                        .cuda_error
                        .clone()
                        .unwrap_or_else(|| "torch.cuda.is_available() is False".into());
                    if !findings.iter().any(|f| f.topic == "compatibility") {
                        finding(
                            &mut findings,
                            Severity::Blocking,
                            "compatibility",
                            format!("the PyTorch in {}'s environment cannot use the {} ({why})", b.name(), g.short_name()),
                            "check that CUDA_VISIBLE_DEVICES does not hide the GPU and that the driver works (`nvidia-smi`), then run this check again".into(),
                        );
                    }
                }
                "none".into()
            }
            _ => "none".into(),
        },
    };

    let mut apple_plan_changes = Vec::new();
    if mps && let Some(plan) = &cx.plan {
        apple_plan_changes = apple_changes(plan, &mut findings);
    }

    // Memory: the plan's estimate against what is free now.
    let mut memory = None;
    if let (Some(plan), Some(model)) = (&cx.plan, cx.model) {
        let needed = crate::plan::vram::estimate_vram(plan, model, None).total_gib;
        let device_memory = match gpus.first() {
            Some(g) if accelerator == g.name => Some((
                g.short_name(),
                g.total_gib(),
                g.free_gib().unwrap_or(g.total_gib()),
                g.processes.clone(),
            )),
            _ if accelerator == "Apple MPS" => torch
                .as_ref()
                .and_then(|t| t.mps_memory_bytes)
                .or_else(|| {
                    python_report
                        .as_ref()
                        .and_then(|p| p.answer.as_ref())
                        .and_then(|a| a.memory_bytes)
                        .map(|b| b / 4 * 3)
                })
                .map(|b| {
                    let gib = b as f64 / 1_073_741_824.0;
                    ("Apple MPS".to_string(), gib, gib, Vec::new())
                }),
            _ => None,
        };
        if let Some((device, total, free, others)) = device_memory {
            let fits = needed <= free;
            if !fits {
                let busy = if others.is_empty() {
                    String::new()
                } else {
                    format!(
                        "; other programs hold memory on it ({})",
                        others
                            .iter()
                            .map(|p| format!("{} {}", p.name.as_deref().unwrap_or("pid"), p.pid))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                };
                finding(
                    &mut findings,
                    Severity::Blocking,
                    "memory",
                    format!("the plan needs about {needed:.1} GB but the {device} has {free:.1} GB free of {total:.0} GB{busy}"),
                    "close the programs using the GPU, or plan for this GPU (plan_training shrinks the plan to fit), then run gates 2 and 3 again".into(),
                );
            }
            memory = Some(MemoryCheck {
                device,
                total_gib: total,
                free_gib: free,
                needed_gib: needed,
                fits,
                others,
            });
        }
    }

    // The model files the config names.
    let mut models = Vec::new();
    if let (Some(project), Some(plan), Some(model)) = (&cx.project, &cx.plan, cx.model) {
        match crate::backends::load_manifest(ws, &project.name)? {
            Some(m) if m.plan_hash == plan.hash() => {
                for file in &m.model_files {
                    let r = model_file::check_model(file, model);
                    if let Some(p) = &r.problem {
                        finding(&mut findings, p.severity, "model", p.message.clone(), p.what_to_do.clone());
                    }
                    models.push(r);
                }
            }
            Some(_) => finding(
                &mut findings,
                Severity::Blocking,
                "model",
                "the trainer's config files were written from an earlier version of the plan".into(),
                "write them again (generate_config), then run gate 2 again".into(),
            ),
            None => finding(
                &mut findings,
                Severity::Blocking,
                "model",
                "no trainer config has been written for this plan, so the model files cannot be checked".into(),
                "write it (generate_config)".into(),
            ),
        }
    }

    // Disk.
    let free = disk::free_bytes(ws.root()).map(|b| b as f64 / 1_073_741_824.0);
    let mut disk_report = DiskReport {
        free_gib: free,
        need: None,
        enough: None,
    };
    if let (Some(plan), Some(model)) = (&cx.plan, cx.model) {
        let present = !models.is_empty() && models.iter().all(|m| m.exists);
        let need = disk::estimate_need(plan, model, present);
        if let Some(free) = free {
            let enough = free >= need.total_gib;
            if !enough {
                finding(
                    &mut findings,
                    Severity::Blocking,
                    "disk",
                    format!("the workspace disk has {free:.1} GB free; this run needs about {:.1} GB", need.total_gib),
                    "free some space (old outputs in workspace/outputs, caches in workspace/cache), or keep fewer checkpoints (plan_training with save_every_epochs)".into(),
                );
            } else if free < need.total_gib * 1.2 {
                finding(
                    &mut findings,
                    Severity::Warning,
                    "disk",
                    format!(
                        "the workspace disk has {free:.1} GB free; this run needs about {:.1} GB, little to spare",
                        need.total_gib
                    ),
                    "free some space before a long run".into(),
                );
            }
            disk_report.enough = Some(enough);
        }
        disk_report.need = Some(need);
    }

    findings.sort_by_key(|f| match f.severity {
        Severity::Blocking => 0,
        Severity::Warning => 1,
        Severity::Info => 2,
    });
    let ready = !findings.iter().any(|f| f.severity == Severity::Blocking);
    let snapshot = snapshot::take(
        &gpus,
        backend,
        install_report.as_ref(),
        python_report.as_ref(),
    );
    let mut report = EnvironmentReport {
        project: cx.project.as_ref().map(|p| p.name.clone()),
        backend,
        accelerator,
        gpu: gpus,
        python: python_report,
        install: install_report,
        native: native_report,
        memory,
        disk: disk_report,
        models,
        apple_plan_changes,
        findings,
        ready,
        summary: String::new(),
        fingerprint: snapshot.fingerprint(),
        snapshot,
        report_file: None,
    };
    report.summary = report::summary(&report, cx.plan.as_ref());
    if let Some(project) = &cx.project {
        let md_path = ws.project_dir(&project.name)?.join("environment.md");
        report.report_file = Some(ws.display_path(&md_path));
        write_atomic(&md_path, report::markdown(&report).as_bytes())?;
        write_json_atomic(&state_path(ws, &project.name)?, &report)?;
    }
    Ok(report)
}

/// Finds the install, runs the probe in its Python, and weighs the answer.
#[allow(clippy::too_many_arguments)]
fn check_install(
    backend: Backend,
    root: &Path,
    given: Option<&Path>,
    recorded: Option<&Path>,
    plan: Option<&TrainingPlan>,
    model: Option<&ModelSpec>,
    probe_limit: Duration,
    findings: &mut Vec<EnvFinding>,
) -> (Option<InstallReport>, Option<PythonReport>) {
    let Some(located) = install::locate(root, backend, given, recorded) else {
        let var = install::env_var(backend).unwrap_or("");
        finding(
            findings,
            Severity::Blocking,
            "install",
            format!(
                "{} is not installed in the workspace (looked in backends/, and {var} is not set)",
                backend.name()
            ),
            format!(
                "install it: {}; or name its folder (backend_path, or {var})",
                install::clone_hint(backend)
            ),
        );
        // The Python on PATH still tells what PyTorch can do here.
        let python = python::find_python(None).map(|choice| probe(&choice, None, probe_limit));
        return (None, python);
    };
    if let Some((message, what)) = install::misfit(backend, &located) {
        finding(findings, Severity::Blocking, "install", message, what);
        return (
            Some(install_report(
                backend,
                &located,
                Vec::new(),
                Vec::new(),
                None,
                false,
            )),
            None,
        );
    }
    let entries = install::entry_scripts(backend, model.map(|m| m.family));
    let extras = install::modules_the_plan_needs(backend, plan);
    let Some(choice) = python::find_python(Some(&located.scripts_dir)) else {
        finding(
            findings,
            Severity::Blocking,
            "python",
            format!("no Python found for {} (no venv in `{}`, none on PATH)", backend.name(), located.dir.display()),
            "create its virtual environment (`python3 -m venv venv` in its folder) and install its requirements".into(),
        );
        return (
            Some(install_report(
                backend,
                &located,
                entries,
                Vec::new(),
                None,
                false,
            )),
            None,
        );
    };
    let request = ProbeRequest {
        install_dir: Some(located.scripts_dir.clone()),
        entry_scripts: entries.clone(),
        extra_modules: extras,
    };
    let mut report = python::run_probe(
        &choice.path,
        &request,
        Some(&located.scripts_dir),
        probe_limit,
    );
    let python_report = match report.as_mut() {
        Ok(answer) => PythonReport {
            interpreter: choice.path.clone(),
            found_by: choice.found_by.clone(),
            answer: Some(answer.clone()),
            problem: None,
        },
        Err(problem) => {
            finding(
                findings,
                Severity::Blocking,
                "python",
                problem.message.clone(),
                problem.what_to_do.clone(),
            );
            PythonReport {
                interpreter: choice.path.clone(),
                found_by: choice.found_by.clone(),
                answer: None,
                problem: Some(problem.clone()),
            }
        }
    };
    let Some(answer) = python_report.answer.as_ref() else {
        return (
            Some(install_report(
                backend,
                &located,
                entries,
                Vec::new(),
                None,
                false,
            )),
            Some(python_report),
        );
    };
    let imports = answer.imports.clone().unwrap_or_default();
    for absent in &imports.missing_entry_scripts {
        finding(
            findings,
            Severity::Blocking,
            "install",
            format!(
                "{}'s entry script `{absent}` is not in `{}`",
                backend.name(),
                located.scripts_dir.display()
            ),
            format!(
                "update the checkout (`git pull`), or install it again: {}",
                install::clone_hint(backend)
            ),
        );
    }
    let mut requirements = Vec::new();
    for dir in [&located.scripts_dir, &located.dir] {
        if let Ok(text) = std::fs::read_to_string(dir.join("requirements.txt")) {
            requirements.extend(install::parse_requirements(&text));
        }
    }
    let (missing, pip) = install::pip_line(&choice.path, &imports.missing, &requirements);
    if let Some(line) = &pip {
        let names: Vec<String> = missing.iter().map(|m| format!("`{}`", m.module)).collect();
        finding(
            findings,
            Severity::Blocking,
            "install",
            format!(
                "{} cannot start: {} Python module(s) it imports are not installed in its environment: {}",
                backend.name(),
                missing.len(),
                names.join(", ")
            ),
            format!("install them all at once: `{line}`"),
        );
    }
    let torch = &answer.torch;
    if !torch.installed {
        finding(
            findings,
            Severity::Blocking,
            "python",
            format!(
                "PyTorch is not installed in {}'s environment (`{}`)",
                backend.name(),
                choice.path.display()
            ),
            format!(
                "install the build for this machine's CUDA: `{} -m pip install torch torchvision --index-url {}/cu124` (pick the cuXYZ the driver supports; run this check again to see it)",
                choice.path.display(),
                compat::TORCH_INDEX
            ),
        );
    } else if let Some(e) = &torch.error {
        finding(
            findings,
            Severity::Blocking,
            "python",
            format!("PyTorch in {}'s environment fails to import: {e}", backend.name()),
            "reinstall PyTorch in that environment (see the compatibility findings for the build to pick)".into(),
        );
    }
    let can_start = missing.is_empty()
        && imports.missing_entry_scripts.is_empty()
        && torch.installed
        && torch.error.is_none();
    (
        Some(install_report(
            backend, &located, entries, missing, pip, can_start,
        )),
        Some(python_report),
    )
}

fn install_report(
    backend: Backend,
    located: &Located,
    entry_scripts: Vec<String>,
    missing: Vec<MissingPackage>,
    pip_install: Option<String>,
    can_start: bool,
) -> InstallReport {
    InstallReport {
        backend,
        dir: located.dir.clone(),
        scripts_dir: located.scripts_dir.clone(),
        found_by: located.found_by.clone(),
        commit: install::git_commit(&located.scripts_dir)
            .or_else(|| install::git_commit(&located.dir)),
        entry_scripts,
        missing,
        pip_install,
        can_start,
    }
}

fn probe(choice: &python::PythonChoice, cwd: Option<&Path>, limit: Duration) -> PythonReport {
    let r = python::run_probe(&choice.path, &ProbeRequest::default(), cwd, limit);
    PythonReport {
        interpreter: choice.path.clone(),
        found_by: choice.found_by.clone(),
        answer: r.as_ref().ok().cloned(),
        problem: r.err(),
    }
}

/// What a plan must change to train with Apple's MPS, as findings; returns
/// the changes in words.
fn apple_changes(plan: &TrainingPlan, findings: &mut Vec<EnvFinding>) -> Vec<String> {
    let mut changes = vec![
        "no fp16 mixed precision: bf16 (macOS 14 or newer) or fp32".to_string(),
        "keep the VAE in full precision (kohya `--no_half_vae`)".to_string(),
        "no 8-bit optimizers or quantised base weights (bitsandbytes has no MPS support)"
            .to_string(),
    ];
    if plan.precision == Precision::Fp16 {
        finding(
            findings,
            Severity::Blocking,
            "apple",
            "the plan trains in fp16, which MPS training does not support".into(),
            "plan again with precision bf16 (macOS 14 or newer) or fp32 (plan_training with precision)".into(),
        );
    }
    if matches!(plan.optimizer, Optimizer::AdamW8bit | Optimizer::Lion8bit) {
        finding(
            findings,
            Severity::Blocking,
            "apple",
            format!(
                "the plan uses {:?}, whose bitsandbytes library has no MPS support",
                plan.optimizer
            ),
            "plan again with AdamW or Lion (plan_training with optimizer)".into(),
        );
    }
    if plan.base_weights != BaseWeights::Full {
        finding(
            findings,
            Severity::Blocking,
            "apple",
            "the plan stores the base model quantised (fp8, int8 or nf4), which MPS cannot run"
                .into(),
            "plan again with full base weights (plan_training with base_weights full)".into(),
        );
    }
    if plan.backend == Backend::Kohya {
        changes.push("kohya also needs `--no_half_vae` on a Mac for SDXL".into());
    }
    changes
}
