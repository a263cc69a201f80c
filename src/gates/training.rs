//! Training behind the four gates: [`launch_training`] starts a run only
//! when every gate passes and is fresh for exactly this dataset, plan and
//! machine (`chain::require_all_fresh`), and never a second run of a
//! project while one runs; then `run::launch` starts it under a supervisor
//! of its own, and returns. [`training_status`] reads the newest run's
//! record (waiting for it to move, when asked); [`cancel_training`] stops
//! it.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::Gate;
use super::chain::{ChainError, require_all_fresh};
use crate::backends::load_manifest;
use crate::plan::training::load_plan;
use crate::run::launch::{
    CANCEL_GRACE, DEFAULT_LIMIT, DEFAULT_STALL, LaunchError, LaunchPlan, MAX_OOM_RETRIES,
    RunRecord, RunState, duration_words, list_runs, refreshed, run_dir,
};
use crate::studio::Hint;
use crate::studio::{Progress, StudioError, Workspace, clock};

/// Why training did not start.
#[derive(Debug, thiserror::Error)]
pub enum TrainingError {
    #[error("there is no project named `{name}`")]
    NoSuchProject { name: String },
    #[error(transparent)]
    Chain(#[from] ChainError),
    #[error(transparent)]
    Studio(#[from] StudioError),
    #[error("`{project}` is already training (run {id})")]
    AlreadyRunning { project: String, id: String },
    #[error("the project `{project}` lacks {what}, which its passed gates relied on")]
    Missing { project: String, what: &'static str },
    #[error(transparent)]
    Launch(#[from] LaunchError),
    #[error("`{project}` has not trained yet")]
    NoRun { project: String },
    #[error("cannot find this program to supervise the run: {why}")]
    NoExe { why: String },
}

impl Hint for TrainingError {
    fn hint(&self) -> Option<String> {
        match self {
            TrainingError::NoSuchProject { .. } => {
                Some("list the projects (list_projects), or start one (start_project)".into())
            }
            TrainingError::Chain(e) => e.hint(),
            TrainingError::Studio(e) => e.hint(),
            TrainingError::AlreadyRunning { .. } => {
                Some("follow it (training_status), or stop it first (cancel_training)".into())
            }
            TrainingError::Missing { .. } => {
                Some("run gates 2 to 4 again (generate_config, run_gate 3, dry_run)".into())
            }
            TrainingError::Launch(e) => e.hint(),
            TrainingError::NoRun { .. } => {
                Some("start it once all four gates pass (launch_training)".into())
            }
            TrainingError::NoExe { .. } => {
                Some("run Ategnatos from its installed binary (cargo install --path .)".into())
            }
        }
    }
}

/// Training's options.
#[derive(Debug, Clone)]
pub struct TrainingOptions {
    /// Stop the trainer when it prints nothing for this long.
    pub stall: Duration,
    /// The program that runs the native engine (default: this one).
    pub engine_exe: Option<PathBuf>,
    /// The program that supervises the run, as `<exe> supervise <run dir>`
    /// (default: this one).
    pub supervisor_exe: Option<PathBuf>,
}

impl Default for TrainingOptions {
    fn default() -> Self {
        TrainingOptions {
            stall: DEFAULT_STALL,
            engine_exe: None,
            supervisor_exe: None,
        }
    }
}

/// A run just started.
#[derive(Debug, Clone, serde::Serialize, schemars::JsonSchema)]
pub struct Launched {
    /// "Ready to train: …" in words.
    pub summary: String,
    /// `ategnatos://runs/<project>/<id>`.
    pub resource_uri: String,
    pub run: RunRecord,
}

/// The resource a run is read through.
pub fn run_uri(project: &str, id: &str) -> String {
    format!("ategnatos://runs/{project}/{id}")
}

/// Starts training `project` once all four gates pass and are fresh, and
/// returns as soon as the run's supervisor has it.
pub fn launch_training(
    ws: &Workspace,
    project_name: &str,
    options: &TrainingOptions,
) -> Result<Launched, TrainingError> {
    let project = crate::studio::project::load(ws, project_name)?.ok_or_else(|| {
        TrainingError::NoSuchProject {
            name: project_name.to_string(),
        }
    })?;
    let project_dir = ws.project_dir(&project.name)?;
    if let Some(running) = list_runs(&project_dir)
        .into_iter()
        .map(|r| {
            let dir = run_dir(&project_dir, &r.id);
            refreshed(r, &dir)
        })
        .find(|r| r.state == RunState::Running)
    {
        return Err(TrainingError::AlreadyRunning {
            project: project.name.clone(),
            id: running.id,
        });
    }
    require_all_fresh(ws, &project)?;
    let missing = |what| TrainingError::Missing {
        project: project.name.clone(),
        what,
    };
    let plan = load_plan(ws, &project.name)?.ok_or_else(|| missing("a training plan"))?;
    let generated =
        load_manifest(ws, &project.name)?.ok_or_else(|| missing("the trainer's config"))?;
    let env = crate::environment::load(ws, &project.name)?
        .ok_or_else(|| missing("the environment check"))?;
    let exe = match &options.supervisor_exe {
        Some(p) => p.clone(),
        None => std::env::current_exe().map_err(|e| TrainingError::NoExe { why: e.to_string() })?,
    };
    // Two runs started within one second get `-2`, `-3`, ...
    let stamp = clock::stamp(clock::unix_now());
    let mut id = stamp.clone();
    let mut n = 1;
    while run_dir(&project_dir, &id).exists() {
        n += 1;
        id = format!("{stamp}-{n}");
    }
    let dir = run_dir(&project_dir, &id);
    let launch = LaunchPlan {
        project: project.name.clone(),
        id: id.clone(),
        root: ws.root().to_path_buf(),
        launcher: super::dry_run::launcher(&env, options.engine_exe.clone()),
        batch_size: plan.batch_size,
        gradient_accumulation: 1,
        total_steps: plan.total_steps(),
        steps_per_epoch: plan.steps_per_epoch(),
        epochs: u64::from(plan.epochs),
        output_dir: ws.root().join(&generated.output_dir),
        checkpoints_dir: project_dir.join("checkpoints"),
        keep_checkpoints: crate::run::checkpoints::KEEP,
        max_oom_retries: MAX_OOM_RETRIES,
        stall_seconds: options.stall.as_secs(),
        limit_seconds: DEFAULT_LIMIT.as_secs(),
        watch_gpu: !env.gpu.gpus.is_empty(),
        generated,
    };
    let seconds_per_step = super::load(ws, &project.name, Gate::DryRun)?
        .and_then(|r| r.details)
        .and_then(|d| d.get("seconds_per_step")?.as_f64());
    let pictures: u32 = plan.image_folders.iter().map(|f| f.images).sum();
    let time = match seconds_per_step {
        Some(s) => format!(
            "about {}",
            duration_words((s * launch.total_steps as f64) as u64)
        ),
        None => "time unknown until the first steps".into(),
    };
    let machine = env
        .gpu
        .first()
        .map(|g| format!("on your {}", g.short_name()))
        .unwrap_or_else(|| format!("on this computer ({})", env.accelerator));
    let summary = format!(
        "Ready to train: {pictures} pictures, {}, {}, {} steps, {time} {machine} — starting. All {} gates pass for exactly this dataset, plan and machine.",
        plan.base_model,
        launch.generated.backend.name(),
        launch.total_steps,
        Gate::ALL.len(),
    );
    let run = crate::run::launch::start(&launch, &dir, &exe, &|p| ws.display_path(p))?;
    Ok(Launched {
        summary: format!(
            "{summary} Run {id}: follow it with training_status (it goes on if this conversation ends)."
        ),
        resource_uri: run_uri(&project.name, &id),
        run,
    })
}

/// The newest run of `project`, as its record says; with `wait`, waits up
/// to that long for it to end, telling `progress` each step it reports.
pub fn training_status(
    ws: &Workspace,
    project_name: &str,
    wait: Option<Duration>,
    progress: &dyn Progress,
) -> Result<RunRecord, TrainingError> {
    if crate::studio::project::load(ws, project_name)?.is_none() {
        return Err(TrainingError::NoSuchProject {
            name: project_name.to_string(),
        });
    }
    let project_dir = ws.project_dir(project_name)?;
    let newest = || {
        list_runs(&project_dir).into_iter().next().map(|r| {
            let dir = run_dir(&project_dir, &r.id);
            refreshed(r, &dir)
        })
    };
    let mut run = newest().ok_or_else(|| TrainingError::NoRun {
        project: project_name.to_string(),
    })?;
    let Some(wait) = wait else {
        return Ok(run);
    };
    let deadline = Instant::now() + wait;
    let mut told = u64::MAX;
    while run.state == RunState::Running && Instant::now() < deadline && !progress.is_cancelled() {
        if run.steps_done != told {
            told = run.steps_done;
            progress.report(run.steps_done, Some(run.total_steps), &run.plain_summary());
        }
        // The record is rewritten about once a second; reading it more
        // often would show nothing new.
        std::thread::sleep(Duration::from_millis(250));
        if let Some(r) = newest() {
            run = r;
        }
    }
    Ok(run)
}

/// Stops `project`'s running training: TERM to the trainer's whole process
/// group, KILL after a grace period; the run ends CANCELLED with its
/// newest checkpoint named.
pub fn cancel_training(ws: &Workspace, project_name: &str) -> Result<RunRecord, TrainingError> {
    if crate::studio::project::load(ws, project_name)?.is_none() {
        return Err(TrainingError::NoSuchProject {
            name: project_name.to_string(),
        });
    }
    let project_dir = ws.project_dir(project_name)?;
    let run = list_runs(&project_dir)
        .into_iter()
        .next()
        .ok_or_else(|| TrainingError::NoRun {
            project: project_name.to_string(),
        })?;
    Ok(crate::run::launch::cancel(
        &run_dir(&project_dir, &run.id),
        CANCEL_GRACE,
    )?)
}
