//! The supervisor of one training run: `ategnatos supervise <run dir>`,
//! started by [`launch::start`](super::launch::start) in a session of its
//! own. It runs the trainer as a child in its own process group, watches it
//! with the same monitor as the dry run, and is the only writer of the
//! run's record from then on: `run.json` about once a second, `progress.md`
//! and `loss.png` every few seconds, and the checkpoints as they appear.
//! Out of GPU memory (or killed by the system's OOM killer), it halves the
//! batch and tries again, at most [`MAX_OOM_RETRIES`](super::launch::MAX_OOM_RETRIES)
//! times. A SIGTERM or a `cancel-requested` file stops the trainer's whole
//! group and ends the run as CANCELLED.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use super::checkpoints::Keeper;
use super::diagnose::FailureKind;
use super::dry_run::program;
use super::launch::{
    GpuMemory, LaunchError, LaunchPlan, RunFiles, RunRecord, RunState, load, process_start, save,
};
use super::monitor::{LossPoint, StopReason, WatchLimits, Watched, open_log, watch_with};
use super::process::Supervised;
use super::report::{loss_chart, progress_markdown, write_png};
use super::{oom, trend};
use crate::backends::shell_quote;
use crate::plan::training::Backend;
use crate::studio::{Progress, clock, write_atomic};

/// Set by SIGTERM: the person (or `cancel_training`) asked the run to stop.
static STOP: AtomicBool = AtomicBool::new(false);

#[cfg(unix)]
extern "C" fn on_term(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

fn install_stop_handler() {
    #[cfg(unix)]
    // SAFETY: the handler only stores to an atomic, which is
    // async-signal-safe; SIGHUP is ignored so a closed terminal does not end
    // the run.
    unsafe {
        libc::signal(libc::SIGTERM, on_term as *const () as libc::sighandler_t);
        libc::signal(libc::SIGINT, on_term as *const () as libc::sighandler_t);
        libc::signal(libc::SIGHUP, libc::SIG_IGN);
    }
}

/// Progress as the monitor reports it: nowhere (the record carries it),
/// and cancelled once SIGTERM came.
struct Quiet;

impl Progress for Quiet {
    fn report(&self, _done: u64, _total: Option<u64>, _message: &str) {}
    fn is_cancelled(&self) -> bool {
        STOP.load(Ordering::Relaxed)
    }
}

/// The program, its arguments and its folder for the command `args`
/// (Gate 2's, or an adjusted copy), on this machine.
pub fn command(
    plan: &LaunchPlan,
    args: &[String],
) -> Result<(PathBuf, Vec<String>, PathBuf), LaunchError> {
    let Some(first) = plan.generated.command.first() else {
        return Err(LaunchError::NoCommand);
    };
    let launcher = &plan.launcher;
    let install = launcher
        .install_dir
        .clone()
        .unwrap_or_else(|| plan.root.clone());
    let mut args = args.to_vec();
    match plan.generated.backend {
        Backend::Native => Ok((launcher.engine_program(), args, plan.root.clone())),
        Backend::Kohya => {
            if let Some(i) = args.iter().position(|a| a.ends_with(".py")) {
                let local = install.join(&args[i]);
                if local.is_file() {
                    args[i] = local.to_string_lossy().into_owned();
                }
            }
            Ok((program(launcher, first), args, install))
        }
        Backend::SimpleTuner | Backend::AiToolkit => Ok((program(launcher, first), args, install)),
    }
}

fn shown(plan: &LaunchPlan, p: &Path) -> String {
    p.strip_prefix(&plan.root)
        .unwrap_or(p)
        .to_string_lossy()
        .into_owned()
}

/// GPU memory, sampled in the background (a probe may take seconds).
fn sample_gpu(every: Duration) -> Arc<Mutex<Option<GpuMemory>>> {
    let shared = Arc::new(Mutex::new(None));
    let out = Arc::clone(&shared);
    std::thread::spawn(move || {
        loop {
            let probe = crate::environment::gpu::probe_gpus();
            let memory = probe.first().and_then(|g| {
                g.memory_free_mib.map(|free| GpuMemory {
                    used_gib: (g.memory_total_mib.saturating_sub(free)) as f64 / 1024.0,
                    total_gib: g.total_gib(),
                })
            });
            if let Ok(mut slot) = out.lock() {
                *slot = memory;
            }
            // A sampling interval, not a synchronisation.
            std::thread::sleep(every);
        }
    });
    shared
}

/// The live side of a run: what the record and the reports are made of.
struct Live<'a> {
    plan: &'a LaunchPlan,
    run_dir: &'a Path,
    record: RunRecord,
    keeper: Keeper,
    began: Instant,
    gpu: Option<Arc<Mutex<Option<GpuMemory>>>>,
    /// Loss points of earlier tries are not mixed into this one's.
    points: Vec<LossPoint>,
    last_saved: Instant,
    last_report: Instant,
    last_scan: Instant,
}

impl Live<'_> {
    fn absorb(&mut self, w: &Watched) {
        let r = &mut self.record;
        r.steps_done = w.finite_steps();
        let finite = || w.points.iter().filter_map(|p| p.loss);
        r.first_loss = finite().next();
        r.last_loss = finite().next_back();
        r.seconds_per_step = w.seconds_per_step.or(r.seconds_per_step);
        let step = w.points.last().map(|p| p.step).unwrap_or(0);
        if self.plan.steps_per_epoch > 0 && step > 0 {
            r.epoch = ((step - 1) / self.plan.steps_per_epoch + 1).min(self.plan.epochs.max(1));
        }
        r.elapsed_seconds = self.began.elapsed().as_secs();
        r.remaining_seconds = r
            .seconds_per_step
            .map(|s| (s * r.total_steps.saturating_sub(step) as f64) as u64);
        if let Some(g) = &self.gpu
            && let Ok(slot) = g.lock()
            && slot.is_some()
        {
            r.gpu_memory = *slot;
        }
        self.points.clone_from(&w.points);
        let means = trend::epoch_means(&w.points, self.plan.steps_per_epoch);
        for warning in trend::warnings(&means) {
            match r.warnings.iter_mut().find(|x| x.kind == warning.kind) {
                Some(old) => *old = warning,
                None => r.warnings.push(warning),
            }
        }
        r.tail = w.tail.iter().rev().take(10).rev().cloned().collect();
    }

    fn scan_checkpoints(&mut self, settled: bool) {
        self.keeper.scan(settled);
        let plan = self.plan;
        self.record.checkpoints = self.keeper.listed(|p| shown(plan, p));
    }

    fn write_reports(&mut self) {
        if let Some(img) = loss_chart(
            &format!("{} - run {}", self.record.project, self.record.id),
            &self.points,
            self.record.total_steps,
        ) {
            let path = self.run_dir.join(RunFiles::CHART);
            if write_png(&path, &img).is_ok() {
                self.record.loss_chart = Some(shown(self.plan, &path));
            }
        }
        let _ = write_atomic(
            &self.run_dir.join(RunFiles::PROGRESS),
            progress_markdown(&self.record).as_bytes(),
        );
    }

    /// Called twice a second while the trainer runs; `true` stops it.
    fn tick(&mut self, w: &Watched) -> bool {
        self.absorb(w);
        let now = Instant::now();
        if now.duration_since(self.last_scan) >= Duration::from_secs(2) {
            self.last_scan = now;
            self.scan_checkpoints(false);
        }
        if now.duration_since(self.last_report) >= Duration::from_secs(5) {
            self.last_report = now;
            self.write_reports();
        }
        if now.duration_since(self.last_saved) >= Duration::from_secs(1) {
            self.last_saved = now;
            let _ = save(self.run_dir, &self.record);
        }
        STOP.load(Ordering::Relaxed) || self.run_dir.join(RunFiles::CANCEL).exists()
    }
}

/// Runs the training `run_dir/launch.json` describes to its end, keeping
/// the record; returns the final record.
pub fn supervise(run_dir: &Path) -> Result<RunRecord, LaunchError> {
    install_stop_handler();
    let bad = |what| LaunchError::BadRunFolder {
        path: run_dir.to_path_buf(),
        what,
    };
    let plan: LaunchPlan = std::fs::read_to_string(run_dir.join(RunFiles::PLAN))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .ok_or_else(|| bad("launch.json"))?;
    let mut record = load(run_dir).ok_or_else(|| bad("run.json"))?;
    record.supervisor_pid = Some(std::process::id());
    record.supervisor_start = process_start(std::process::id());
    save(run_dir, &record)?;

    let log_path = run_dir.join(RunFiles::LOG);
    let mut log = open_log(&log_path).map_err(|source| LaunchError::Log {
        path: log_path.clone(),
        source,
    })?;
    let since = SystemTime::now() - Duration::from_secs(2);
    let mut live = Live {
        plan: &plan,
        run_dir,
        keeper: Keeper::new(
            plan.output_dir.clone(),
            plan.checkpoints_dir.clone(),
            plan.keep_checkpoints,
            since,
        ),
        record,
        began: Instant::now(),
        gpu: plan.watch_gpu.then(|| sample_gpu(Duration::from_secs(15))),
        points: Vec::new(),
        last_saved: Instant::now(),
        last_report: Instant::now(),
        last_scan: Instant::now(),
    };
    let mut args: Vec<String> = plan.generated.command[1..].to_vec();
    let mut batch = plan.batch_size;
    let mut accumulation = plan.gradient_accumulation.max(1);
    let limits = WatchLimits {
        stall: Duration::from_secs(plan.stall_seconds.max(1)),
        limit: Duration::from_secs(plan.limit_seconds.max(1)),
        grace: super::launch::CANCEL_GRACE,
        steps_wanted: plan.total_steps,
    };
    let (watched, diagnosis) = loop {
        live.record.attempts += 1;
        live.record.batch_size = batch;
        live.record.gradient_accumulation = accumulation;
        let (program, cmd_args, cwd) = command(&plan, &args)?;
        let command_line = std::iter::once(program.to_string_lossy().into_owned())
            .chain(cmd_args.iter().cloned())
            .map(|a| shell_quote(&a))
            .collect::<Vec<_>>()
            .join(" ");
        let _ = writeln!(
            log,
            "# training run {} of `{}`, try {}: batch {batch}, gradient accumulation {accumulation}\n# in {}\n# {command_line}",
            plan.id,
            plan.project,
            live.record.attempts,
            cwd.display()
        );
        live.record.command_line = command_line;
        live.record.working_dir = cwd.to_string_lossy().into_owned();
        let mut cmd = std::process::Command::new(&program);
        cmd.args(&cmd_args)
            .current_dir(&cwd)
            .env("PYTHONUNBUFFERED", "1");
        let child = match Supervised::spawn(&mut cmd) {
            Ok(c) => c,
            Err(e) => {
                let r = &mut live.record;
                r.state = RunState::Failed;
                r.ended_at = Some(clock::now_rfc3339());
                r.failure = Some(e.to_string());
                r.what_to_do = Some(
                    "check the trainer's installation (check_environment), then run gate 3 again"
                        .into(),
                );
                r.supervisor_pid = None;
                live.write_reports();
                save(run_dir, &live.record)?;
                return Ok(live.record);
            }
        };
        live.record.pid = Some(child.pid());
        save(run_dir, &live.record)?;
        let watched = watch_with(
            child,
            plan.generated.backend,
            &mut log,
            &limits,
            &Quiet,
            &mut |w| live.tick(w),
        );
        live.absorb(&watched);
        live.record.pid = None;
        let diagnosis = watched.diagnose(batch, plan.total_steps, plan.launcher.python.as_deref());
        let out_of_memory = diagnosis.as_ref().is_some_and(|d| {
            matches!(
                d.kind,
                FailureKind::OutOfMemory | FailureKind::HostOutOfMemory
            )
        });
        if out_of_memory && live.record.attempts <= plan.max_oom_retries {
            match oom::halve_batch(
                plan.generated.backend,
                &plan.root,
                &args,
                batch,
                accumulation,
            ) {
                Ok(adjusted) => {
                    let said =
                        oom::describe(plan.generated.backend, (batch, accumulation), &adjusted);
                    let written: Vec<String> =
                        adjusted.written.iter().map(|p| shown(&plan, p)).collect();
                    let said = format!("{said} (config: {})", written.join(", "));
                    let _ = writeln!(log, "# {said}");
                    live.record.adjustments.push(said);
                    args = adjusted.args;
                    batch = adjusted.batch;
                    accumulation = adjusted.accumulation;
                    live.write_reports();
                    save(run_dir, &live.record)?;
                    continue;
                }
                Err(e) => {
                    let said = format!("out of GPU memory, and the batch could not be halved: {e}");
                    let _ = writeln!(log, "# {said}");
                    live.record.adjustments.push(said);
                }
            }
        }
        break (watched, diagnosis);
    };

    // The end: the state, what went wrong, the checkpoints, the LoRA.
    live.scan_checkpoints(true);
    let r = &mut live.record;
    r.ended_at = Some(clock::now_rfc3339());
    r.remaining_seconds = None;
    r.state = match (watched.stopped, &diagnosis) {
        (Some(StopReason::Cancelled), _) => RunState::Cancelled,
        (None, None) if watched.exit.is_some_and(|e| e.success()) => RunState::Complete,
        _ => RunState::Failed,
    };
    if let Some(d) = diagnosis {
        let at = if d.kind == FailureKind::NanLoss {
            watched
                .points
                .iter()
                .find(|p| p.loss.is_none())
                .map(|p| format!(" at step {}", p.step))
                .unwrap_or_default()
        } else {
            String::new()
        };
        r.failure = Some(format!("{}{at}: {}", d.kind.words(), d.message));
        let mut todo = d.what_to_do;
        if d.kind == FailureKind::OutOfMemory && r.attempts > 1 {
            todo = format!(
                "it ran out of memory {} times, down to batch {batch}: {todo}",
                r.attempts
            );
        }
        r.what_to_do = Some(todo);
    } else if r.state == RunState::Failed {
        r.failure = Some("the trainer stopped before the end".into());
        r.what_to_do = Some("read train.log for the cause".into());
    }
    match r.state {
        RunState::Complete => {
            if let Some(path) = live.keeper.final_lora() {
                let bytes = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
                r.final_lora = Some(super::checkpoints::Checkpoint {
                    path: shown(&plan, &path),
                    bytes,
                });
            }
            r.next_step = Some(
                "judge it on a grid of LoRA weights through ComfyUI (register_lora, then eval_grid), or compare the kept checkpoints the same way".into(),
            );
        }
        RunState::Cancelled => {
            r.next_step = Some(match r.checkpoints.last() {
                Some(c) => format!(
                    "the newest checkpoint, {}, can be judged like a finished LoRA (eval_grid)",
                    c.path
                ),
                None => {
                    "nothing was saved before the stop; start again with launch_training".into()
                }
            });
        }
        _ => {}
    }
    r.supervisor_pid = None;
    r.supervisor_start = None;
    live.write_reports();
    let _ = log.flush();
    save(run_dir, &live.record)?;
    let _ = std::fs::remove_file(run_dir.join(RunFiles::CANCEL));
    Ok(live.record)
}
