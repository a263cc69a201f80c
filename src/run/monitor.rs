//! Watching a supervised trainer: every line goes to the run's log, progress
//! bars become steps and losses, failure signatures become [`Signal`]s, and
//! the run is stopped — as a group — the moment it cannot succeed: a fatal
//! signature, a NaN loss, silence longer than the stall limit, the time
//! limit, or a cancel. One monitor for every backend (DESIGN decision 14).

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::diagnose::{Diagnosis, FailureKind, RunFacts, Signal, classify_line};
use super::process::{Event, ExitInfo, Next, Supervised};
use super::progress::{images_in, parse_step};
use crate::plan::training::Backend;
use crate::studio::Progress;

/// Limits of a watched run.
#[derive(Debug, Clone)]
pub struct WatchLimits {
    /// Stop it when it prints nothing for this long.
    pub stall: Duration,
    /// Stop it when it runs longer than this.
    pub limit: Duration,
    /// Time between SIGTERM and SIGKILL when stopping it.
    pub grace: Duration,
    /// Steps the run should do (for progress messages).
    pub steps_wanted: u64,
}

/// One step the trainer reported, with its loss.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, schemars::JsonSchema)]
pub struct LossPoint {
    pub step: u64,
    /// `None` when the loss was NaN or infinite.
    pub loss: Option<f64>,
}

/// Why the monitor stopped a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// A line showed the run cannot succeed.
    Failure,
    /// It printed nothing for longer than the stall limit.
    Silent,
    /// It ran past the time limit.
    TimeLimit,
    /// The user cancelled.
    Cancelled,
}

/// What a watched run did.
#[derive(Debug, Clone)]
pub struct Watched {
    pub points: Vec<LossPoint>,
    pub signals: Vec<Signal>,
    pub exit: Option<ExitInfo>,
    pub stopped: Option<StopReason>,
    /// Pictures (× repeats) or batches the trainer said it found.
    pub images: Option<u64>,
    /// Mean seconds per step between the first and last reported step.
    pub seconds_per_step: Option<f64>,
    /// The last lines it printed.
    pub tail: Vec<String>,
    pub lines: usize,
}

impl Watched {
    /// Distinct steps reported with a finite loss.
    pub fn finite_steps(&self) -> u64 {
        let mut steps: Vec<u64> = self
            .points
            .iter()
            .filter(|p| p.loss.is_some())
            .map(|p| p.step)
            .collect();
        steps.dedup();
        steps.len() as u64
    }

    /// What went wrong, from what the trainer printed and how it ended; `None`
    /// when nothing did, or when the person stopped it. `python` is the
    /// trainer's, for the pip line of a missing module.
    pub fn diagnose(
        &self,
        batch_size: u32,
        steps_wanted: u64,
        python: Option<&Path>,
    ) -> Option<Diagnosis> {
        if self.stopped == Some(StopReason::Cancelled) {
            return None;
        }
        let ended_by_itself = self.exit.filter(|_| self.stopped.is_none());
        let facts = RunFacts {
            batch_size,
            steps_done: self.finite_steps(),
            steps_wanted,
            ended: ended_by_itself.map(|e| e.describe()),
            killed_by: ended_by_itself.and_then(|e| e.signal),
            last_lines: self.tail.clone(),
            python: python.map(|p| p.to_string_lossy().into_owned()),
        };
        Diagnosis::from_signals(&self.signals, &facts)
    }
}

const TAIL: usize = 40;

/// Called about twice a second while a run is watched, with what it did so
/// far; returning `true` stops it as cancelled. The training supervisor
/// keeps its record, checkpoints and reports up to date through it.
pub type Tick<'a> = &'a mut dyn FnMut(&Watched) -> bool;

/// Watches `child` until it ends or must be stopped, writing every line to
/// `log` and telling `progress` how far it got.
pub fn watch(
    child: Supervised,
    backend: Backend,
    log: &mut dyn Write,
    limits: &WatchLimits,
    progress: &dyn Progress,
) -> Watched {
    watch_with(child, backend, log, limits, progress, &mut |_| false)
}

/// [`watch`], calling `tick` about twice a second.
pub fn watch_with(
    mut child: Supervised,
    backend: Backend,
    log: &mut dyn Write,
    limits: &WatchLimits,
    progress: &dyn Progress,
    tick_fn: Tick<'_>,
) -> Watched {
    let started = Instant::now();
    let mut last_output = Instant::now();
    let mut w = Watched {
        points: Vec::new(),
        signals: Vec::new(),
        exit: None,
        stopped: None,
        images: None,
        seconds_per_step: None,
        tail: Vec::new(),
        lines: 0,
    };
    let mut first_step: Option<(u64, Instant)> = None;
    let mut last_step: Option<(u64, Instant)> = None;
    let tick = Duration::from_millis(500);
    let mut last_tick = Instant::now();

    let mut take_line = |w: &mut Watched, log: &mut dyn Write, text: &str| -> bool {
        let _ = writeln!(log, "{text}");
        w.lines += 1;
        if w.tail.len() == TAIL {
            w.tail.remove(0);
        }
        w.tail.push(text.to_string());
        if let Some(n) = images_in(backend, text) {
            w.images = Some(n);
        }
        let mut fatal = false;
        if let Some(step) = parse_step(backend, text)
            && let Some(loss) = step.loss
        {
            let finite = loss.is_finite();
            if w.points.last().is_none_or(|p| p.step != step.step) {
                w.points.push(LossPoint {
                    step: step.step,
                    loss: finite.then_some(loss),
                });
            }
            let now = Instant::now();
            if first_step.is_none() {
                first_step = Some((step.step, now));
            }
            last_step = Some((step.step, now));
            if finite {
                progress.report(
                    step.step,
                    Some(limits.steps_wanted),
                    &format!(
                        "step {} of {}, loss {loss:.4}",
                        step.step, limits.steps_wanted
                    ),
                );
            } else {
                w.signals.push(Signal {
                    kind: FailureKind::NanLoss,
                    evidence: text.chars().take(400).collect(),
                    subject: None,
                });
                fatal = true;
            }
        } else {
            let shown: String = text.chars().take(120).collect();
            progress.report(
                w.finite_steps(),
                Some(limits.steps_wanted),
                &format!("starting: {shown}"),
            );
        }
        if let Some(s) = classify_line(text) {
            fatal |= s.kind.stops_the_run();
            w.signals.push(s);
        }
        fatal
    };

    loop {
        let now = Instant::now();
        if progress.is_cancelled() {
            w.stopped = Some(StopReason::Cancelled);
            break;
        }
        if now.duration_since(last_tick) >= tick {
            last_tick = now;
            let _ = log.flush();
            if tick_fn(&w) {
                w.stopped = Some(StopReason::Cancelled);
                break;
            }
        }
        let silent_for = now.duration_since(last_output);
        if silent_for >= limits.stall {
            w.stopped = Some(StopReason::Silent);
            w.signals.push(Signal {
                kind: FailureKind::Hang,
                evidence: format!(
                    "no output for {} s (the limit is {} s)",
                    silent_for.as_secs(),
                    limits.stall.as_secs()
                ),
                subject: None,
            });
            break;
        }
        if now.duration_since(started) >= limits.limit {
            w.stopped = Some(StopReason::TimeLimit);
            w.signals.push(Signal {
                kind: FailureKind::Hang,
                evidence: format!(
                    "still running after {} s (the limit is {} s)",
                    now.duration_since(started).as_secs(),
                    limits.limit.as_secs()
                ),
                subject: None,
            });
            break;
        }
        let wait = tick
            .min(limits.stall - silent_for)
            .min(limits.limit.saturating_sub(now.duration_since(started)));
        match child.next(wait) {
            Next::Event(Event::Line { text, .. }) => {
                last_output = Instant::now();
                if take_line(&mut w, log, &text) {
                    w.stopped = Some(StopReason::Failure);
                    break;
                }
            }
            Next::Event(Event::Activity) => last_output = Instant::now(),
            Next::Event(Event::Exited(info)) => w.exit = Some(info),
            Next::Timeout => {}
            Next::Done => break,
        }
    }
    if w.stopped.is_some() {
        for event in child.terminate(limits.grace) {
            if let Event::Line { text, .. } = event {
                // Its last words explain the stop; they no longer stop anything.
                take_line(&mut w, log, &text);
            }
        }
        w.exit = child.exit();
    }
    if let (Some((s0, t0)), Some((s1, t1))) = (first_step, last_step)
        && s1 > s0
    {
        w.seconds_per_step = Some(t1.duration_since(t0).as_secs_f64() / (s1 - s0) as f64);
    }
    let _ = log.flush();
    w
}

/// Opens (truncating) the log a run writes to, buffered: the monitor
/// flushes it twice a second and at the end, so a trainer printing
/// thousands of lines a second costs a write call per buffer, not per line.
pub fn open_log(path: &Path) -> std::io::Result<std::io::BufWriter<std::fs::File>> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    // A log grows line by line as the trainer prints: it cannot be written
    // whole at the end, and a cut-off log still tells what happened.
    #[allow(clippy::disallowed_methods)]
    let file = std::fs::File::create(path)?;
    Ok(std::io::BufWriter::with_capacity(1 << 16, file))
}
