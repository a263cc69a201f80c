//! Training behind the four gates: [`launch_training`] starts a run only
//! when every gate passes and is fresh for exactly this dataset, plan and
//! machine (`chain::require_all_fresh`), and never a second run of a
//! project while one runs; then `run::launch` runs it. [`training_status`]
//! reads the newest run's record.

use std::path::PathBuf;
use std::time::Duration;

use super::Gate;
use super::chain::{ChainError, require_all_fresh};
use crate::backends::load_manifest;
use crate::plan::training::load_plan;
use crate::run::launch::{
    DEFAULT_LIMIT, DEFAULT_STALL, LaunchError, LaunchSpec, RunRecord, RunState, is_alive,
    list_runs, train,
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
    #[error("`{project}` is already training (run {id}, process {pid})")]
    AlreadyRunning {
        project: String,
        id: String,
        pid: u32,
    },
    #[error("the project `{project}` lacks {what}, which its passed gates relied on")]
    Missing { project: String, what: &'static str },
    #[error(transparent)]
    Launch(#[from] LaunchError),
    #[error("`{project}` has not trained yet")]
    NoRun { project: String },
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
                Some("follow it (training_status), or wait for it to end".into())
            }
            TrainingError::Missing { .. } => {
                Some("run gates 2 to 4 again (generate_config, run_gate 3, dry_run)".into())
            }
            TrainingError::Launch(e) => e.hint(),
            TrainingError::NoRun { .. } => {
                Some("start it once all four gates pass (launch_training)".into())
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
}

impl Default for TrainingOptions {
    fn default() -> Self {
        TrainingOptions {
            stall: DEFAULT_STALL,
            engine_exe: None,
        }
    }
}

/// Trains `project` to the end, once all four gates pass and are fresh.
pub fn launch_training(
    ws: &Workspace,
    project_name: &str,
    options: &TrainingOptions,
    progress: &dyn Progress,
) -> Result<RunRecord, TrainingError> {
    let project = crate::studio::project::load(ws, project_name)?.ok_or_else(|| {
        TrainingError::NoSuchProject {
            name: project_name.to_string(),
        }
    })?;
    require_all_fresh(ws, &project)?;
    let project_dir = ws.project_dir(&project.name)?;
    if let Some(running) = list_runs(&project_dir)
        .into_iter()
        .find(|r| r.state == RunState::Running && r.pid.is_some_and(is_alive))
    {
        return Err(TrainingError::AlreadyRunning {
            project: project.name.clone(),
            id: running.id,
            pid: running.pid.unwrap_or_default(),
        });
    }
    let missing = |what| TrainingError::Missing {
        project: project.name.clone(),
        what,
    };
    let plan = load_plan(ws, &project.name)?.ok_or_else(|| missing("a training plan"))?;
    let generated =
        load_manifest(ws, &project.name)?.ok_or_else(|| missing("the trainer's config"))?;
    let env = crate::environment::load(ws, &project.name)?
        .ok_or_else(|| missing("the environment check"))?;
    let id = clock::stamp(clock::unix_now());
    let run_dir = project_dir.join("runs").join(&id);
    let spec = LaunchSpec {
        project: project.name.clone(),
        root: ws.root().to_path_buf(),
        launcher: super::dry_run::launcher(&env, options.engine_exe.clone()),
        batch_size: plan.batch_size,
        total_steps: plan.total_steps(),
        log_shown: ws.display_path(&run_dir.join("train.log")),
        run_dir,
        id,
        stall: options.stall,
        limit: DEFAULT_LIMIT,
        generated,
    };
    progress.report(
        0,
        Some(spec.total_steps),
        &format!(
            "all {} gates pass: starting {} for {} steps",
            Gate::ALL.len(),
            spec.generated.backend.name(),
            spec.total_steps
        ),
    );
    Ok(train(&spec, progress)?)
}

/// The newest run of `project`, as its record says.
pub fn training_status(ws: &Workspace, project_name: &str) -> Result<RunRecord, TrainingError> {
    if crate::studio::project::load(ws, project_name)?.is_none() {
        return Err(TrainingError::NoSuchProject {
            name: project_name.to_string(),
        });
    }
    let mut run = list_runs(&ws.project_dir(project_name)?)
        .into_iter()
        .next()
        .ok_or_else(|| TrainingError::NoRun {
            project: project_name.to_string(),
        })?;
    // A run whose process is gone without a final record ended while no
    // one was watching.
    if run.state == RunState::Running && !run.pid.is_some_and(is_alive) {
        run.state = RunState::Failed;
        run.failure = Some("the trainer ended while Ategnatos was not watching".into());
        run.what_to_do = Some(format!("read {} for how it ended", run.log_file));
    }
    Ok(run)
}
