//! A training run's record and its start. A run is watched by a supervisor
//! of its own — this program again, as `ategnatos supervise <run dir>`, in
//! a session of its own — so it goes on when the MCP client goes away or
//! the server restarts: the server only starts it ([`start`]), reads its
//! record (`run.json`, written by the supervisor alone once it runs), and
//! asks it to stop ([`cancel`]). The supervisor itself is in
//! [`supervisor`](super::supervisor). Whether a run may start at all is the
//! gates' decision (`gates::chain::require_all_fresh`), made before.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::checkpoints::Checkpoint;
use super::dry_run::Launcher;
use super::process::{ProcessError, Signal, signal_group};
use super::trend::TrendWarning;
use crate::backends::GeneratedConfig;
use crate::plan::training::Backend;
use crate::studio::Hint;
use crate::studio::{StudioError, clock, write_atomic, write_json_atomic};

/// Silence after which a training run counts as hung.
pub const DEFAULT_STALL: Duration = Duration::from_secs(1800);
/// The longest a run may take.
pub const DEFAULT_LIMIT: Duration = Duration::from_secs(7 * 24 * 3600);
/// Out-of-memory retries, each at half the batch.
pub const MAX_OOM_RETRIES: u32 = 3;
/// Time between asking a trainer to stop and killing it.
pub const CANCEL_GRACE: Duration = Duration::from_secs(20);

/// Where a run stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RunState {
    Running,
    Complete,
    Failed,
    Cancelled,
}

impl RunState {
    pub fn shown(self) -> &'static str {
        match self {
            RunState::Running => "RUNNING",
            RunState::Complete => "COMPLETE",
            RunState::Failed => "FAILED",
            RunState::Cancelled => "CANCELLED",
        }
    }
}

/// GPU memory in use while the run trains.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct GpuMemory {
    pub used_gib: f64,
    pub total_gib: f64,
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
    /// The supervisor's process id, and its start time (clock ticks since
    /// boot, to tell it from a later process given the same id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub supervisor_pid: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub supervisor_start: Option<u64>,
    pub command_line: String,
    pub working_dir: String,
    /// `train.log`, relative to the workspace.
    pub log_file: String,
    /// `progress.md` beside it.
    #[serde(default)]
    pub progress_file: String,
    /// `loss.png` beside it, once there is a loss to draw.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loss_chart: Option<String>,
    /// Steps with a finite loss.
    pub steps_done: u64,
    pub total_steps: u64,
    #[serde(default)]
    pub epoch: u64,
    #[serde(default)]
    pub total_epochs: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_loss: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_loss: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seconds_per_step: Option<f64>,
    #[serde(default)]
    pub elapsed_seconds: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remaining_seconds: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu_memory: Option<GpuMemory>,
    #[serde(default)]
    pub batch_size: u32,
    #[serde(default)]
    pub gradient_accumulation: u32,
    /// Tries so far (more than one after out-of-memory retries).
    #[serde(default)]
    pub attempts: u32,
    /// What was changed between tries, in words.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub adjustments: Vec<String>,
    /// Plateau and divergence warnings.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<TrendWarning>,
    /// The kept checkpoints, oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checkpoints: Vec<Checkpoint>,
    /// The trained LoRA, once complete.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub final_lora: Option<Checkpoint>,
    /// What went wrong, in words, when it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub what_to_do: Option<String>,
    /// What comes next, once it ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_step: Option<String>,
    /// The trainer's last lines.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tail: Vec<String>,
}

/// `1 h 05 min`, `12 min`, `40 s`.
pub fn duration_words(secs: u64) -> String {
    if secs >= 3600 {
        format!("{} h {:02} min", secs / 3600, (secs % 3600) / 60)
    } else if secs >= 60 {
        format!("{} min", secs / 60)
    } else {
        format!("{secs} s")
    }
}

impl RunRecord {
    pub fn plain_summary(&self) -> String {
        let mut s = format!(
            "Run {} of `{}` ({}): {}",
            self.id,
            self.project,
            self.backend.name(),
            self.state.shown()
        );
        if self.total_epochs > 0 && self.epoch > 0 {
            s.push_str(&format!(", epoch {}/{}", self.epoch, self.total_epochs));
        }
        s.push_str(&format!(
            ", step {} of {}",
            self.steps_done, self.total_steps
        ));
        if let (Some(a), Some(b)) = (self.first_loss, self.last_loss) {
            s.push_str(&format!(", loss {b:.4} (from {a:.4})"));
        }
        if let Some(g) = self.gpu_memory {
            s.push_str(&format!(
                ", {:.1} of {:.0} GB GPU memory",
                g.used_gib, g.total_gib
            ));
        }
        if self.state == RunState::Running
            && let Some(r) = self.remaining_seconds
        {
            s.push_str(&format!(", about {} left", duration_words(r)));
        }
        s.push('.');
        for a in &self.adjustments {
            s.push_str(&format!(" {}{}.", a[..1].to_uppercase(), &a[1..]));
        }
        for w in &self.warnings {
            s.push_str(&format!(" Warning: {}.", w.message));
        }
        if let (Some(f), Some(w)) = (&self.failure, &self.what_to_do) {
            s.push_str(&format!(" {f} — {w}."));
        }
        if let Some(c) = self.checkpoints.last() {
            s.push_str(&format!(
                " {} checkpoint(s) kept, the newest {}.",
                self.checkpoints.len(),
                c.path
            ));
        }
        if let Some(l) = &self.final_lora {
            s.push_str(&format!(
                " The LoRA: {} ({:.1} MB).",
                l.path,
                l.bytes as f64 / 1e6
            ));
        }
        if let Some(n) = &self.next_step {
            s.push_str(&format!(" Next: {n}."));
        }
        s.push_str(&format!(
            " Progress: {}; log: {}.",
            self.progress_file, self.log_file
        ));
        s
    }
}

/// Everything the supervisor needs, written as `launch.json` in the run's
/// folder before it starts.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LaunchPlan {
    pub project: String,
    pub id: String,
    pub generated: GeneratedConfig,
    /// The workspace root (the generated paths are relative to it).
    pub root: PathBuf,
    pub launcher: Launcher,
    pub batch_size: u32,
    pub gradient_accumulation: u32,
    pub total_steps: u64,
    pub steps_per_epoch: u64,
    pub epochs: u64,
    /// The trainer's output folder.
    pub output_dir: PathBuf,
    /// `grimoire/training/<name>/checkpoints/`.
    pub checkpoints_dir: PathBuf,
    pub keep_checkpoints: usize,
    pub max_oom_retries: u32,
    pub stall_seconds: u64,
    pub limit_seconds: u64,
    /// Sample GPU memory while it trains (a GPU was seen at Gate 3).
    pub watch_gpu: bool,
}

/// A run's files.
pub struct RunFiles;

impl RunFiles {
    pub const PLAN: &'static str = "launch.json";
    pub const RECORD: &'static str = "run.json";
    pub const LOG: &'static str = "train.log";
    pub const PROGRESS: &'static str = "progress.md";
    pub const CHART: &'static str = "loss.png";
    pub const CANCEL: &'static str = "cancel-requested";
    pub const SUPERVISOR_LOG: &'static str = "supervisor.log";
}

/// Why a run could not start or be stopped.
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
    #[error("the run folder `{path}` has no readable {what}")]
    BadRunFolder { path: PathBuf, what: &'static str },
    #[error("the supervisor of run {id} did not start: {why}")]
    NoSupervisor { id: String, why: String },
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
            LaunchError::BadRunFolder { .. } => {
                Some("start the training again (launch_training)".into())
            }
            LaunchError::NoSupervisor { .. } => Some(
                "read supervisor.log in the run's folder, then start the training again".into(),
            ),
        }
    }
}

/// The record a run starts with, before its supervisor takes over.
pub fn first_record(
    plan: &LaunchPlan,
    run_dir: &Path,
    shown: &dyn Fn(&Path) -> String,
) -> RunRecord {
    RunRecord {
        id: plan.id.clone(),
        project: plan.project.clone(),
        backend: plan.generated.backend,
        state: RunState::Running,
        started_at: clock::now_rfc3339(),
        ended_at: None,
        pid: None,
        supervisor_pid: None,
        supervisor_start: None,
        command_line: plan.generated.command_line.clone(),
        working_dir: String::new(),
        log_file: shown(&run_dir.join(RunFiles::LOG)),
        progress_file: shown(&run_dir.join(RunFiles::PROGRESS)),
        loss_chart: None,
        steps_done: 0,
        total_steps: plan.total_steps,
        epoch: 0,
        total_epochs: plan.epochs,
        first_loss: None,
        last_loss: None,
        seconds_per_step: None,
        elapsed_seconds: 0,
        remaining_seconds: None,
        gpu_memory: None,
        batch_size: plan.batch_size,
        gradient_accumulation: plan.gradient_accumulation,
        attempts: 0,
        adjustments: Vec::new(),
        warnings: Vec::new(),
        checkpoints: Vec::new(),
        final_lora: None,
        failure: None,
        what_to_do: None,
        next_step: None,
        tail: Vec::new(),
    }
}

pub fn save(run_dir: &Path, record: &RunRecord) -> Result<(), StudioError> {
    write_json_atomic(&run_dir.join(RunFiles::RECORD), record)
}

pub fn load(run_dir: &Path) -> Option<RunRecord> {
    let text = std::fs::read_to_string(run_dir.join(RunFiles::RECORD)).ok()?;
    serde_json::from_str(&text).ok()
}

/// How long [`start`] waits for the supervisor's first record.
const START_WAIT: Duration = Duration::from_secs(20);

/// Starts the run `plan` describes in `run_dir`: writes its plan and first
/// record, starts `exe supervise <run_dir>` in a session of its own, and
/// returns once the supervisor has taken the record over.
pub fn start(
    plan: &LaunchPlan,
    run_dir: &Path,
    exe: &Path,
    shown: &dyn Fn(&Path) -> String,
) -> Result<RunRecord, LaunchError> {
    if plan.generated.command.is_empty() {
        return Err(LaunchError::NoCommand);
    }
    write_json_atomic(&run_dir.join(RunFiles::PLAN), plan)?;
    let record = first_record(plan, run_dir, shown);
    save(run_dir, &record)?;
    write_atomic(
        &run_dir.join(RunFiles::PROGRESS),
        super::report::progress_markdown(&record).as_bytes(),
    )?;
    let log_path = run_dir.join(RunFiles::SUPERVISOR_LOG);
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(|source| LaunchError::Log {
            path: log_path.clone(),
            source,
        })?;
    let err = log.try_clone().map_err(|source| LaunchError::Log {
        path: log_path.clone(),
        source,
    })?;
    let mut cmd = std::process::Command::new(exe);
    cmd.arg("supervise")
        .arg(run_dir)
        .current_dir(&plan.root)
        .stdin(std::process::Stdio::null())
        .stdout(log)
        .stderr(err);
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        // SAFETY: setsid(2) is async-signal-safe and touches no memory of
        // ours; it makes the supervisor outlive this process and its
        // terminal.
        unsafe {
            cmd.pre_exec(|| {
                libc::setsid();
                Ok(())
            });
        }
    }
    let mut child = cmd.spawn().map_err(|source| ProcessError::Spawn {
        program: exe.to_path_buf(),
        source,
    })?;
    let pid = child.id();
    // Reap it when it ends, so no zombie stays behind while the server runs.
    std::thread::spawn(move || {
        let _ = child.wait();
    });
    let deadline = Instant::now() + START_WAIT;
    loop {
        // Taken over, or already over (a trainer that fails at once).
        if let Some(r) = load(run_dir)
            && (r.supervisor_pid.is_some() || r.state != RunState::Running)
        {
            return Ok(r);
        }
        if !is_alive(pid) || Instant::now() >= deadline {
            let said = std::fs::read_to_string(&log_path).unwrap_or_default();
            let why = said
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("it ended without a word")
                .to_string();
            return Err(LaunchError::NoSupervisor {
                id: plan.id.clone(),
                why,
            });
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The record as it stands, with a run whose supervisor is gone told
/// apart from one still running: the supervisor writes the final record
/// itself, so a RUNNING record with no supervisor ended while no one
/// watched (the machine restarted, or the supervisor was killed).
pub fn refreshed(mut run: RunRecord, run_dir: &Path) -> RunRecord {
    if run.state != RunState::Running {
        return run;
    }
    let supervised = match run.supervisor_pid {
        Some(pid) => same_process(pid, run.supervisor_start),
        // Not taken over yet: starting, unless that was long ago.
        None => std::fs::metadata(run_dir.join(RunFiles::RECORD))
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age < START_WAIT),
    };
    if supervised {
        return run;
    }
    if let Some(pid) = run.pid
        && is_alive(pid)
    {
        // A trainer nobody watches would train on through a NaN: stop it.
        stop_group(pid, CANCEL_GRACE);
    }
    run.state = RunState::Failed;
    run.pid = None;
    let said = super::diagnose::explain_log(&run_dir.join(RunFiles::LOG));
    run.failure = Some(match said {
        Some(why) => format!("the run ended while nothing watched it: {why}"),
        None => "the run's supervisor stopped (the computer restarted, or it was killed) before the training ended".into(),
    });
    run.what_to_do = Some(format!(
        "read {} for how far it got, then start the training again (launch_training)",
        run.log_file
    ));
    let _ = save(run_dir, &run);
    run
}

/// Stops the run in `run_dir`: asks its supervisor (which stops the
/// trainer's whole process group: TERM, then KILL after a grace period)
/// and waits for it to record the end; a run with no supervisor left is
/// stopped here. Returns the final record.
pub fn cancel(run_dir: &Path, grace: Duration) -> Result<RunRecord, LaunchError> {
    let bad = |what| LaunchError::BadRunFolder {
        path: run_dir.to_path_buf(),
        what,
    };
    let run = load(run_dir).ok_or_else(|| bad("run.json"))?;
    if run.state != RunState::Running {
        return Ok(run);
    }
    write_atomic(
        &run_dir.join(RunFiles::CANCEL),
        clock::now_rfc3339().as_bytes(),
    )?;
    if let Some(pid) = run.supervisor_pid
        && same_process(pid, run.supervisor_start)
    {
        terminate(pid);
        let deadline = Instant::now() + grace + Duration::from_secs(15);
        while Instant::now() < deadline && same_process(pid, run.supervisor_start) {
            if load(run_dir).is_some_and(|r| r.state != RunState::Running) {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        if let Some(r) = load(run_dir)
            && r.state != RunState::Running
        {
            return Ok(r);
        }
    }
    // No supervisor to do it: stop the trainer's group here.
    let mut run = load(run_dir).ok_or_else(|| bad("run.json"))?;
    if let Some(pid) = run.pid {
        stop_group(pid, grace);
    }
    run.state = RunState::Cancelled;
    run.pid = None;
    run.ended_at = Some(clock::now_rfc3339());
    save(run_dir, &run)?;
    Ok(run)
}

/// TERM to the group `pgid`, then KILL once `grace` has passed.
pub fn stop_group(pgid: u32, grace: Duration) {
    signal_group(pgid, Signal::Term);
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline && group_alive(pgid) {
        std::thread::sleep(Duration::from_millis(50));
    }
    signal_group(pgid, Signal::Kill);
}

/// SIGTERM to one process (the supervisor, which stops its trainer itself).
fn terminate(pid: u32) {
    #[cfg(unix)]
    if let Ok(pid) = i32::try_from(pid) {
        // SAFETY: kill(2) has no memory effects; a gone process is fine.
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
    }
    #[cfg(not(unix))]
    let _ = pid;
}

/// Whether any process of the group `pgid` is left.
pub fn group_alive(pgid: u32) -> bool {
    #[cfg(unix)]
    {
        let Ok(pgid) = i32::try_from(pgid) else {
            return false;
        };
        // SAFETY: signal 0 only asks whether the group has a member.
        unsafe { libc::kill(-pgid, 0) == 0 }
    }
    #[cfg(not(unix))]
    {
        let _ = pgid;
        false
    }
}

/// When process `pid` started, in clock ticks since boot (Linux).
pub fn process_start(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The name in parentheses may hold spaces; the fields follow the last `)`.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// Whether `pid` is still the process that started at `start`, and not a
/// zombie.
pub fn same_process(pid: u32, start: Option<u64>) -> bool {
    if !is_alive(pid) {
        return false;
    }
    if let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        && let Some(i) = stat.rfind(')')
        && stat[i + 1..].trim_start().starts_with('Z')
    {
        return false;
    }
    match (start, process_start(pid)) {
        (Some(a), Some(b)) => a == b,
        _ => true,
    }
}

/// The run folders of a project.
pub fn run_dir(project_dir: &Path, id: &str) -> PathBuf {
    project_dir.join("runs").join(id)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn record(dir: &Path) -> RunRecord {
        let text = serde_json::json!({
            "id": "20261207-010203", "project": "fox", "backend": "kohya",
            "state": "running", "started_at": "2026-12-07T01:02:03Z",
            "command_line": "accelerate launch train_network.py", "working_dir": "/x",
            "log_file": "grimoire/training/fox/runs/20261207-010203/train.log",
            "steps_done": 40, "total_steps": 100
        });
        let mut r: RunRecord = serde_json::from_value(text).unwrap();
        // A process that has ended (and been waited for): its id is free.
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        r.supervisor_pid = Some(dead);
        r.supervisor_start = Some(1);
        save(dir, &r).unwrap();
        r
    }

    #[test]
    fn a_run_whose_supervisor_is_gone_is_marked_with_what_its_log_says() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let r = record(dir);
        std::fs::write(
            dir.join(RunFiles::LOG),
            "steps: 40/100 avr_loss=0.08\ntorch.OutOfMemoryError: CUDA out of memory. Tried to allocate 20.00 MiB\n",
        )
        .unwrap();
        let seen = refreshed(r, dir);
        assert_eq!(seen.state, RunState::Failed);
        let failure = seen.failure.clone().unwrap();
        assert!(
            failure.contains("ended while nothing watched it: out of GPU memory"),
            "{failure}"
        );
        assert!(seen.what_to_do.unwrap().contains("launch_training"));
        // The verdict is written down, so the next look agrees.
        assert_eq!(load(dir).unwrap().state, RunState::Failed);
    }

    #[test]
    fn a_running_supervisor_keeps_its_run_running() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let mut r = record(dir);
        // This test process stands in for a live supervisor.
        r.supervisor_pid = Some(std::process::id());
        r.supervisor_start = process_start(std::process::id());
        assert_eq!(refreshed(r.clone(), dir).state, RunState::Running);
        // The same id with another start time is another process.
        r.supervisor_start = r.supervisor_start.map(|s| s + 1);
        std::fs::write(dir.join(RunFiles::LOG), "steps: 40/100\n").unwrap();
        let seen = refreshed(r, dir);
        assert_eq!(seen.state, RunState::Failed);
        assert!(seen.failure.unwrap().contains("supervisor stopped"));
    }
}
