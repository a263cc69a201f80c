//! The dry run: the plan's own trainer, with the plan's own config files,
//! for 2 to 5 real steps on the real dataset and model.
//!
//! The configs written by `generate_config` are copied into a `dry-run/`
//! folder beside them with only what a short run needs changed — the step
//! limit (kohya `max_train_steps` with the epoch count removed, since epochs
//! override steps there; SimpleTuner `max_train_steps` with
//! `num_train_epochs = 0`; ai-toolkit `train.steps`; the engine's
//! `training.max_steps`), a fresh output folder (ai-toolkit resumes from
//! whatever it finds in its folder), and no sampling or saving between
//! steps. Then the trainer runs under the [`monitor`](super::monitor) and
//! the outcome is judged: PASS needs a clean exit, the model loaded, the
//! dataset read and at least two steps with a finite loss.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde::Serialize;

use super::diagnose::Diagnosis;
use super::monitor::{LossPoint, StopReason, WatchLimits, open_log, watch};
use super::process::{ExitInfo, ProcessError, Supervised};
use crate::backends::{GeneratedConfig, shell_quote};
use crate::plan::training::Backend;
use crate::studio::Hint;
use crate::studio::{Progress, StudioError, write_atomic};

/// Fewest and most steps a dry run takes.
pub const MIN_STEPS: u32 = 2;
pub const MAX_STEPS: u32 = 5;
pub const DEFAULT_STEPS: u32 = 3;
/// Silence after which a trainer counts as hung (model loading prints
/// something at least this often in every backend we know).
pub const DEFAULT_STALL: Duration = Duration::from_secs(600);
/// The longest a dry run may take in all.
pub const DEFAULT_LIMIT: Duration = Duration::from_secs(3600);

/// How to start the backend on this machine (from Gate 3's snapshot).
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct Launcher {
    /// The trainer's own folder (entry scripts); the working folder of the run.
    pub install_dir: Option<PathBuf>,
    /// The `bin` folder of its Python environment (`accelerate`, `simpletuner`).
    pub bin_dir: Option<PathBuf>,
    /// Its Python.
    pub python: Option<PathBuf>,
    /// This program, which runs the native engine as `ategnatos engine train`.
    pub engine_exe: Option<PathBuf>,
}

impl Launcher {
    /// The program that runs the native engine: the one given, else this
    /// program; a test harness or another host embedding the library is
    /// not it, so then `ategnatos` on PATH.
    pub fn engine_program(&self) -> PathBuf {
        self.engine_exe
            .clone()
            .or_else(|| {
                std::env::current_exe()
                    .ok()
                    .filter(|p| p.file_stem().is_some_and(|s| s == "ategnatos"))
            })
            .unwrap_or_else(|| PathBuf::from("ategnatos"))
    }
}

/// Everything one dry run needs.
#[derive(Debug, Clone)]
pub struct DryRunSpec {
    pub project: String,
    /// The configs `generate_config` wrote, and the command.
    pub generated: GeneratedConfig,
    /// The workspace root (the generated paths are relative to it).
    pub root: PathBuf,
    pub steps: u32,
    pub batch_size: u32,
    pub launcher: Launcher,
    /// Where the dry-run copies of the configs go.
    pub config_dir: PathBuf,
    /// Where the trainer writes (a fresh folder).
    pub output_dir: PathBuf,
    /// `grimoire/training/<name>/dry-run.log`.
    pub log_path: PathBuf,
    pub stall: Duration,
    pub limit: Duration,
}

/// Why a dry run could not be started.
#[derive(Debug, thiserror::Error)]
pub enum DryRunError {
    #[error("{steps} steps is not a dry run: it takes {MIN_STEPS} to {MAX_STEPS} steps")]
    BadSteps { steps: u32 },
    #[error("the trainer config `{path}` could not be read: {reason}")]
    BadConfig { path: PathBuf, reason: String },
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
    #[error("the trainer's command in the config record is empty")]
    NoCommand,
}

impl Hint for DryRunError {
    fn hint(&self) -> Option<String> {
        match self {
            DryRunError::BadSteps { .. } => Some(format!(
                "ask for {MIN_STEPS} to {MAX_STEPS} steps (default {DEFAULT_STEPS})"
            )),
            DryRunError::BadConfig { .. } | DryRunError::NoCommand => {
                Some("write the trainer's config again (generate_config), then run gate 2".into())
            }
            DryRunError::Write(e) => e.hint(),
            DryRunError::Log { .. } => Some("check that the workspace folder is writable".into()),
            DryRunError::Start(_) => Some(
                "check the trainer's installation with check_environment, then run gate 3".into(),
            ),
        }
    }
}

/// What the dry run did and what it means.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct DryRunOutcome {
    pub passed: bool,
    pub steps_wanted: u32,
    /// Steps with a finite loss.
    pub steps_done: u64,
    pub losses: Vec<LossPoint>,
    /// Measured seconds per step, when two or more steps ran.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seconds_per_step: Option<f64>,
    /// What the trainer said it found in the dataset (pictures × repeats, or batches).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub images: Option<u64>,
    /// The model loaded (a training step ran).
    pub model_loaded: bool,
    /// The dataset was read (the trainer counted it, or a step ran).
    pub dataset_read: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exit: Option<ExitInfo>,
    /// Why Ategnatos stopped it, when it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stopped: Option<StopReason>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub diagnosis: Option<Diagnosis>,
    /// The exact command that ran.
    pub command_line: String,
    pub working_dir: String,
    /// The last lines the trainer printed.
    pub tail: Vec<String>,
}

/// The dry run's copy of the backend's config files, and its command.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub program: PathBuf,
    pub args: Vec<String>,
    pub cwd: PathBuf,
    pub files: Vec<PathBuf>,
}

impl Prepared {
    pub fn command_line(&self) -> String {
        std::iter::once(self.program.to_string_lossy().into_owned())
            .chain(self.args.iter().cloned())
            .map(|a| shell_quote(&a))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

fn config_file(spec: &DryRunSpec, name: &str) -> Result<PathBuf, DryRunError> {
    spec.generated
        .files
        .iter()
        .map(|f| spec.root.join(&f.path))
        .find(|p| p.file_name().is_some_and(|n| n == name))
        .ok_or_else(|| DryRunError::BadConfig {
            path: PathBuf::from(name),
            reason: "it is not among the files generate_config wrote".into(),
        })
}

fn read(path: &Path) -> Result<String, DryRunError> {
    std::fs::read_to_string(path).map_err(|e| DryRunError::BadConfig {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

fn bad(path: &Path, reason: impl ToString) -> DryRunError {
    DryRunError::BadConfig {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}

fn text(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

/// `accelerate` → the environment's own `bin/accelerate` when it is there.
pub(crate) fn program(launcher: &Launcher, word: &str) -> PathBuf {
    if word == "python"
        && let Some(p) = &launcher.python
    {
        return p.clone();
    }
    if let Some(bin) = &launcher.bin_dir {
        for name in [word.to_string(), format!("{word}.exe")] {
            let candidate = bin.join(&name);
            if candidate.is_file() {
                return candidate;
            }
        }
    }
    PathBuf::from(word)
}

/// Writes the dry-run copies of the configs and returns the command.
pub fn prepare(spec: &DryRunSpec) -> Result<Prepared, DryRunError> {
    if !(MIN_STEPS..=MAX_STEPS).contains(&spec.steps) {
        return Err(DryRunError::BadSteps { steps: spec.steps });
    }
    let steps = i64::from(spec.steps);
    let out = &spec.output_dir;
    let dir = &spec.config_dir;
    let command = &spec.generated.command;
    if command.is_empty() {
        return Err(DryRunError::NoCommand);
    }
    let install = spec
        .launcher
        .install_dir
        .clone()
        .unwrap_or_else(|| spec.root.clone());
    match spec.generated.backend {
        Backend::Kohya => {
            let src = config_file(spec, "config.toml")?;
            let mut t: toml::Table = read(&src)?.parse().map_err(|e| bad(&src, e))?;
            for key in [
                "max_train_epochs",
                "sample_prompts",
                "sample_every_n_epochs",
                "sample_every_n_steps",
                "save_every_n_epochs",
                "save_every_n_steps",
                "save_last_n_epochs",
                "resume",
            ] {
                t.remove(key);
            }
            t.insert("max_train_steps".into(), toml::Value::Integer(steps));
            t.insert("save_state".into(), toml::Value::Boolean(false));
            t.insert("output_dir".into(), toml::Value::String(text(out)));
            t.insert(
                "logging_dir".into(),
                toml::Value::String(text(&out.join("logs"))),
            );
            let dest = dir.join("config.toml");
            let body = toml::to_string(&t).map_err(|e| bad(&src, e))?;
            write_atomic(&dest, body.as_bytes())?;
            // `accelerate launch --num_cpu_threads_per_process 1 <script> --config_file <file>`:
            // the same line, on the dry-run file, with the step limit said once more.
            let script = command
                .iter()
                .find(|a| a.ends_with(".py"))
                .cloned()
                .unwrap_or_else(|| "train_network.py".into());
            let mut args: Vec<String> = command[1..].to_vec();
            if let Some(i) = args.iter().position(|a| a == "--config_file")
                && i + 1 < args.len()
            {
                args[i + 1] = text(&dest);
            }
            if let Some(i) = args.iter().position(|a| *a == script) {
                let local = install.join(&script);
                if local.is_file() {
                    args[i] = text(&local);
                }
            }
            args.extend(["--max_train_steps".into(), spec.steps.to_string()]);
            Ok(Prepared {
                program: program(&spec.launcher, &command[0]),
                args,
                cwd: install,
                files: vec![dest],
            })
        }
        Backend::SimpleTuner => {
            let src = config_file(spec, "config.json")?;
            let mut v: serde_json::Map<String, serde_json::Value> =
                serde_json::from_str(&read(&src)?).map_err(|e| bad(&src, e))?;
            for key in [
                "validation_prompt",
                "validation_step_interval",
                "validation_steps",
                "resume_from_checkpoint",
                "checkpoint_step_interval",
                "checkpointing_steps",
            ] {
                v.remove(key);
                v.remove(&format!("--{key}"));
            }
            v.insert("max_train_steps".into(), steps.into());
            v.insert("num_train_epochs".into(), 0.into());
            v.insert("output_dir".into(), text(out).into());
            let dest = dir.join("config.json");
            let body = serde_json::to_string_pretty(&v).map_err(|e| bad(&src, e))? + "\n";
            write_atomic(&dest, body.as_bytes())?;
            let mut args: Vec<String> = command[1..].to_vec();
            if let Some(i) = args.iter().position(|a| a == "--env")
                && i + 1 < args.len()
            {
                args[i + 1] = text(dir);
            }
            Ok(Prepared {
                program: program(&spec.launcher, &command[0]),
                args,
                cwd: install,
                files: vec![dest],
            })
        }
        Backend::AiToolkit => {
            let src = config_file(spec, "job.yaml")?;
            let mut job: serde_json::Value =
                serde_norway::from_str(&read(&src)?).map_err(|e| bad(&src, e))?;
            let config = job
                .get_mut("config")
                .and_then(|c| c.as_object_mut())
                .ok_or_else(|| bad(&src, "it has no `config` section"))?;
            if let Some(name) = config.get("name").and_then(|n| n.as_str()) {
                let name = format!("{name}-dry-run");
                config.insert("name".into(), name.into());
            }
            let process = config
                .get_mut("process")
                .and_then(|p| p.as_array_mut())
                .and_then(|p| p.first_mut())
                .and_then(|p| p.as_object_mut())
                .ok_or_else(|| bad(&src, "it has no `config.process` entry"))?;
            process.insert("training_folder".into(), text(out).into());
            if let Some(train) = process.get_mut("train").and_then(|t| t.as_object_mut()) {
                train.insert("steps".into(), steps.into());
                train.insert("skip_first_sample".into(), true.into());
                train.insert("disable_sampling".into(), true.into());
            }
            if let Some(save) = process.get_mut("save").and_then(|t| t.as_object_mut()) {
                save.insert("save_every".into(), (steps + 1000).into());
            }
            if let Some(sample) = process.get_mut("sample").and_then(|t| t.as_object_mut()) {
                sample.insert("sample_every".into(), (steps + 1000).into());
            }
            let dest = dir.join("job.yaml");
            let body = serde_norway::to_string(&job).map_err(|e| bad(&src, e))?;
            write_atomic(&dest, body.as_bytes())?;
            let mut args: Vec<String> = command[1..].to_vec();
            if let Some(last) = args.last_mut() {
                *last = text(&dest);
            }
            Ok(Prepared {
                program: program(&spec.launcher, &command[0]),
                args,
                cwd: install,
                files: vec![dest],
            })
        }
        Backend::Native => {
            let src = config_file(spec, "engine.toml")?;
            let mut t: toml::Table = read(&src)?.parse().map_err(|e| bad(&src, e))?;
            let training = t
                .entry("training")
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            if let Some(training) = training.as_table_mut() {
                training.insert("max_steps".into(), toml::Value::Integer(steps));
            }
            let output = t
                .entry("output")
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            if let Some(output) = output.as_table_mut() {
                output.insert("dir".into(), toml::Value::String(text(out)));
            }
            let dest = dir.join("engine.toml");
            let body = toml::to_string(&t).map_err(|e| bad(&src, e))?;
            write_atomic(&dest, body.as_bytes())?;
            Ok(Prepared {
                program: spec.launcher.engine_program(),
                args: vec!["engine".into(), "train".into(), text(&dest)],
                cwd: spec.root.clone(),
                files: vec![dest],
            })
        }
    }
}

/// Runs the dry run to its end and judges it.
pub fn dry_run(spec: &DryRunSpec, progress: &dyn Progress) -> Result<DryRunOutcome, DryRunError> {
    let prepared = prepare(spec)?;
    let mut log = open_log(&spec.log_path).map_err(|source| DryRunError::Log {
        path: spec.log_path.clone(),
        source,
    })?;
    let command_line = prepared.command_line();
    {
        use std::io::Write;
        let _ = writeln!(
            log,
            "# dry run of `{}`: {} steps\n# in {}\n# {command_line}",
            spec.project,
            spec.steps,
            prepared.cwd.display()
        );
    }
    let mut cmd = Command::new(&prepared.program);
    cmd.args(&prepared.args)
        .current_dir(&prepared.cwd)
        // Python block-buffers a pipe; the monitor needs each line as it comes.
        .env("PYTHONUNBUFFERED", "1");
    progress.report(0, Some(u64::from(spec.steps)), "starting the trainer");
    let child = Supervised::spawn(&mut cmd)?;
    let limits = WatchLimits {
        stall: spec.stall,
        limit: spec.limit,
        grace: Duration::from_secs(10),
        steps_wanted: u64::from(spec.steps),
    };
    let watched = watch(child, spec.generated.backend, &mut log, &limits, progress);
    let steps_done = watched.finite_steps();
    let diagnosis = watched.diagnose(
        spec.batch_size,
        u64::from(spec.steps),
        spec.launcher.python.as_deref(),
    );
    let exited_cleanly = watched.stopped.is_none() && watched.exit.is_some_and(|e| e.success());
    let passed = exited_cleanly && diagnosis.is_none() && steps_done >= u64::from(MIN_STEPS);
    Ok(DryRunOutcome {
        passed,
        steps_wanted: spec.steps,
        steps_done,
        losses: watched.points.clone(),
        seconds_per_step: watched.seconds_per_step,
        images: watched.images,
        model_loaded: !watched.points.is_empty(),
        dataset_read: watched.images.is_some_and(|n| n > 0) || !watched.points.is_empty(),
        exit: watched.exit,
        stopped: watched.stopped,
        diagnosis,
        command_line,
        working_dir: text(&prepared.cwd),
        tail: watched.tail,
    })
}
