//! A training run: the exact command Gate 2 wrote, on the configs as they
//! are, started as a supervised child in its own process group and watched
//! by the same [`monitor`](super::monitor) as the dry run, with its output
//! in `grimoire/training/<name>/runs/<run-id>/train.log` and its record in
//! `run.json` beside it (written when it starts, with the process id, and
//! when it ends). A NaN loss stops it (kohya and ai-toolkit would train on);
//! so does silence past the stall limit. Whether it may start at all is
//! the gates' decision (`gates::chain::require_all_fresh`), made before.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::dry_run::{Launcher, program};
use super::monitor::{StopReason, WatchLimits, open_log, watch};
use super::process::{ProcessError, Supervised};
use crate::backends::{GeneratedConfig, shell_quote};
use crate::plan::training::Backend;
use crate::studio::Hint;
use crate::studio::{Progress, StudioError, clock, write_json_atomic};

/// Silence after which a training run counts as hung.
pub const DEFAULT_STALL: Duration = Duration::from_secs(1800);
/// The longest a run may take.
pub const DEFAULT_LIMIT: Duration = Duration::from_secs(7 * 24 * 3600);

/// Where a run stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RunState {
    Running,
    Complete,
    Failed,
    Cancelled,
}

/// One training run, as `run.json` keeps it.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct RunRecord {
    /// `20261206-235800`.
    pub id: String,
    pub project: String,
    pub backend: Backend,
    pub state: RunState,
    pub started_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<String>,
    /// The trainer's process (and process group) id while it runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    pub command_line: String,
    pub working_dir: String,
    /// `train.log`, relative to the workspace.
    pub log_file: String,
    /// Steps with a finite loss.
    pub steps_done: u64,
    pub total_steps: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_loss: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_loss: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seconds_per_step: Option<f64>,
    /// What went wrong, in words, when it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub what_to_do: Option<String>,
    /// The trainer's last lines.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tail: Vec<String>,
}

impl RunRecord {
    pub fn plain_summary(&self) -> String {
        let loss = match (self.first_loss, self.last_loss) {
            (Some(a), Some(b)) => format!(", loss {b:.4} (from {a:.4})"),
            _ => String::new(),
        };
        let state = match self.state {
            RunState::Running => "running",
            RunState::Complete => "COMPLETE",
            RunState::Failed => "FAILED",
            RunState::Cancelled => "CANCELLED",
        };
        let mut s = format!(
            "Run {} of `{}` ({}): {state}, step {} of {}{loss}.",
            self.id,
            self.project,
            self.backend.name(),
            self.steps_done,
            self.total_steps
        );
        if let (Some(f), Some(w)) = (&self.failure, &self.what_to_do) {
            s.push_str(&format!(" {f} — {w}."));
        }
        s.push_str(&format!(" Log: {}.", self.log_file));
        s
    }
}

/// Everything one run needs.
#[derive(Debug, Clone)]
pub struct LaunchSpec {
    pub project: String,
    pub generated: GeneratedConfig,
    /// The workspace root (the generated paths are relative to it).
    pub root: PathBuf,
    pub launcher: Launcher,
    pub batch_size: u32,
    pub total_steps: u64,
    /// `grimoire/training/<name>/runs/<id>/`.
    pub run_dir: PathBuf,
    pub id: String,
    /// How `train.log` is shown (relative to the workspace).
    pub log_shown: String,
    pub stall: Duration,
    pub limit: Duration,
}

/// Why a run could not start.
#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    #[error("the trainer's command in the config record is empty")]
    NoCommand,
    #[error(transparent)]
    Write(#[from] StudioError),
    #[error("could not write the log `{path}`: {source}")]
    Log {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Start(#[from] ProcessError),
}

impl Hint for LaunchError {
    fn hint(&self) -> Option<String> {
        match self {
            LaunchError::NoCommand => Some(
                "write the trainer's config again (generate_config), then run the gates again"
                    .into(),
            ),
            LaunchError::Write(e) => e.hint(),
            LaunchError::Log { .. } => Some("check that the workspace folder is writable".into()),
            LaunchError::Start(_) => Some(
                "check the trainer's installation with check_environment, then run gate 3".into(),
            ),
        }
    }
}

/// The command Gate 2 wrote, with its programs found in the trainer's own
/// environment and kohya's script in its checkout.
pub fn command(spec: &LaunchSpec) -> Result<(PathBuf, Vec<String>, PathBuf), LaunchError> {
    let command = &spec.generated.command;
    let Some(first) = command.first() else {
        return Err(LaunchError::NoCommand);
    };
    let install = spec
        .launcher
        .install_dir
        .clone()
        .unwrap_or_else(|| spec.root.clone());
    let mut args: Vec<String> = command[1..].to_vec();
    match spec.generated.backend {
        Backend::Native => {
            let exe = spec
                .launcher
                .engine_exe
                .clone()
                .or_else(|| {
                    std::env::current_exe()
                        .ok()
                        .filter(|p| p.file_stem().is_some_and(|s| s == "ategnatos"))
                })
                .unwrap_or_else(|| PathBuf::from("ategnatos"));
            Ok((exe, args, spec.root.clone()))
        }
        Backend::Kohya => {
            if let Some(i) = args.iter().position(|a| a.ends_with(".py")) {
                let local = install.join(&args[i]);
                if local.is_file() {
                    args[i] = local.to_string_lossy().into_owned();
                }
            }
            Ok((program(&spec.launcher, first), args, install))
        }
        Backend::SimpleTuner | Backend::AiToolkit => {
            Ok((program(&spec.launcher, first), args, install))
        }
    }
}

fn save(spec: &LaunchSpec, record: &RunRecord) -> Result<(), StudioError> {
    write_json_atomic(&spec.run_dir.join("run.json"), record)
}

/// Runs the training to its end (or until it must be stopped), keeping
/// `run.json` up to date.
pub fn train(spec: &LaunchSpec, progress: &dyn Progress) -> Result<RunRecord, LaunchError> {
    let (program, args, cwd) = command(spec)?;
    let command_line = std::iter::once(program.to_string_lossy().into_owned())
        .chain(args.iter().cloned())
        .map(|a| shell_quote(&a))
        .collect::<Vec<_>>()
        .join(" ");
    let log_path = spec.run_dir.join("train.log");
    let mut log = open_log(&log_path).map_err(|source| LaunchError::Log {
        path: log_path.clone(),
        source,
    })?;
    {
        use std::io::Write;
        let _ = writeln!(
            log,
            "# training run {} of `{}`\n# in {}\n# {command_line}",
            spec.id,
            spec.project,
            cwd.display()
        );
    }
    let mut record = RunRecord {
        id: spec.id.clone(),
        project: spec.project.clone(),
        backend: spec.generated.backend,
        state: RunState::Running,
        started_at: clock::now_rfc3339(),
        ended_at: None,
        pid: None,
        command_line,
        working_dir: cwd.to_string_lossy().into_owned(),
        log_file: spec.log_shown.clone(),
        steps_done: 0,
        total_steps: spec.total_steps,
        first_loss: None,
        last_loss: None,
        seconds_per_step: None,
        failure: None,
        what_to_do: None,
        tail: Vec::new(),
    };
    let mut cmd = Command::new(&program);
    cmd.args(&args)
        .current_dir(&cwd)
        .env("PYTHONUNBUFFERED", "1");
    progress.report(0, Some(spec.total_steps), "starting the trainer");
    let child = match Supervised::spawn(&mut cmd) {
        Ok(c) => c,
        Err(e) => {
            record.state = RunState::Failed;
            record.ended_at = Some(clock::now_rfc3339());
            record.failure = Some(e.to_string());
            save(spec, &record)?;
            return Err(e.into());
        }
    };
    record.pid = Some(child.pid());
    save(spec, &record)?;
    let limits = WatchLimits {
        stall: spec.stall,
        limit: spec.limit,
        grace: Duration::from_secs(30),
        steps_wanted: spec.total_steps,
    };
    let watched = watch(child, spec.generated.backend, &mut log, &limits, progress);
    let steps_done = watched.finite_steps();
    let diagnosis = watched.diagnose(
        spec.batch_size,
        spec.total_steps,
        spec.launcher.python.as_deref(),
    );
    let finite: Vec<f64> = watched.points.iter().filter_map(|p| p.loss).collect();
    record.steps_done = steps_done;
    record.first_loss = finite.first().copied();
    record.last_loss = finite.last().copied();
    record.seconds_per_step = watched.seconds_per_step;
    record.tail = watched.tail.iter().rev().take(10).rev().cloned().collect();
    record.pid = None;
    record.ended_at = Some(clock::now_rfc3339());
    record.state = match (watched.stopped, &diagnosis) {
        (Some(StopReason::Cancelled), _) => RunState::Cancelled,
        (None, None) if watched.exit.is_some_and(|e| e.success()) => RunState::Complete,
        _ => RunState::Failed,
    };
    if let Some(d) = diagnosis {
        let at = if d.kind == super::diagnose::FailureKind::NanLoss {
            watched
                .points
                .iter()
                .find(|p| p.loss.is_none())
                .map(|p| format!(" at step {}", p.step))
                .unwrap_or_default()
        } else {
            String::new()
        };
        record.failure = Some(format!("{}{at}: {}", d.kind.words(), d.message));
        record.what_to_do = Some(d.what_to_do);
    } else if record.state == RunState::Failed {
        record.failure = Some("the trainer stopped before the end".into());
        record.what_to_do = Some("read train.log for the cause".into());
    }
    save(spec, &record)?;
    Ok(record)
}

/// The runs of a project, newest first.
pub fn list_runs(project_dir: &Path) -> Vec<RunRecord> {
    let Ok(entries) = std::fs::read_dir(project_dir.join("runs")) else {
        return Vec::new();
    };
    let mut runs: Vec<RunRecord> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| std::fs::read_to_string(e.path().join("run.json")).ok())
        .filter_map(|t| serde_json::from_str(&t).ok())
        .collect();
    runs.sort_by(|a, b| b.id.cmp(&a.id));
    runs
}

/// Whether the process `pid` still exists.
pub fn is_alive(pid: u32) -> bool {
    #[cfg(unix)]
    {
        let Ok(pid) = i32::try_from(pid) else {
            return false;
        };
        // SAFETY: signal 0 only asks whether the process exists.
        unsafe { libc::kill(pid, 0) == 0 }
    }
    #[cfg(not(unix))]
    {
        let _ = pid;
        false
    }
}
