//! Training on a rented instance over SSH.
//!
//! The instance runs this very program: Ategnatos is sent there (one file),
//! with the project's pictures, captions, state, configs and model, into a
//! studio folder of its own. There the same four gates pass before the
//! same supervisor trains, so a run on a rented GPU is held to what a run at
//! home is, and it goes on when the connection drops: the supervisor lives
//! on the instance, not at the end of our SSH session.
//!
//! Each step is recorded in `grimoire/.state/cloud/remote/<project>.json`
//! once done, so the same command run again picks up at the first step not
//! done: a dropped connection costs a reconnect, never a second upload or a
//! second run. While the run trains its status is read every few seconds
//! (and the money and time caps checked); when it ends, fails or is
//! cancelled the LoRA, its checkpoints and the run's reports come home,
//! are checked whole, and the instance is destroyed and verified gone.
//!
//! Files in the project's state and configs name the studio's own folder;
//! the copies on the instance name the instance's folder instead.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::ledger::{self, InstanceRecord};
use super::ssh::{Ran, ShellError, Ssh};
use super::{CloudConfig, CloudError, InstanceState, lifecycle, watchdog};
use crate::backends::{load_manifest, shell_quote};
use crate::gates::Gate;
use crate::gates::status::GateState;
use crate::run::checkpoints::is_whole_safetensors;
use crate::run::launch::{RunRecord, RunState};
use crate::studio::{Progress, Workspace, clock, project, write_json_atomic};

/// The instance's studio folder, under its login's home, unless told.
pub const DEFAULT_REMOTE_ROOT: &str = "ategnatos-studio";

/// Where Ategnatos itself is kept on the instance, inside its studio.
const REMOTE_PROGRAM: &str = ".ategnatos/bin/ategnatos";

/// Tries of one command before a dropped connection stops the step.
const TRIES: u32 = 3;

/// How long the follow step keeps reconnecting before it gives up (the
/// run goes on; the command picks up again when run again).
const RECONNECT_FOR: Duration = Duration::from_secs(10 * 60);

/// Seconds each status call waits on the instance for the run to end.
const STATUS_WAIT_S: u64 = 15;

/// A step of a remote run, in order.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    Connect,
    SendProgram,
    SendProject,
    Gates,
    DryRun,
    Launch,
    Follow,
    BringHome,
    Teardown,
}

impl Step {
    const ALL: [Step; 9] = [
        Step::Connect,
        Step::SendProgram,
        Step::SendProject,
        Step::Gates,
        Step::DryRun,
        Step::Launch,
        Step::Follow,
        Step::BringHome,
        Step::Teardown,
    ];

    pub fn words(self) -> &'static str {
        match self {
            Step::Connect => "connecting",
            Step::SendProgram => "sending Ategnatos to the instance",
            Step::SendProject => "sending the pictures, captions, plan, configs and model",
            Step::Gates => "gates 2 and 3 on the instance",
            Step::DryRun => "the dry run on the instance",
            Step::Launch => "starting the training there",
            Step::Follow => "following the training",
            Step::BringHome => "bringing the LoRA, checkpoints and reports home",
            Step::Teardown => "destroying the instance",
        }
    }
}

/// What the artist asked for.
#[derive(Debug, Clone, Default)]
pub struct RemoteOptions {
    /// Our instance id (or the provider's).
    pub instance: String,
    /// The studio folder on the instance (default [`DEFAULT_REMOTE_ROOT`]).
    pub remote_root: Option<String>,
    /// An Ategnatos already installed on the instance, instead of sending
    /// this one (needed when this machine is not Linux on the same CPU).
    pub remote_program: Option<String>,
    /// The Ategnatos to send (default: this program).
    pub program: Option<PathBuf>,
    /// Keep the instance after the run (the watchdog's idle rule still
    /// destroys it when the server runs).
    pub keep_instance: bool,
    /// Stop the run there (or, before it started, go no further), bring
    /// home what it saved, and destroy the instance.
    pub cancel: bool,
}

impl RemoteOptions {
    /// Options that carry on (or cancel) `run` as it was started.
    pub fn resuming(run: &RemoteRun, program: Option<PathBuf>, cancel: bool) -> RemoteOptions {
        RemoteOptions {
            instance: run.instance_id.clone(),
            remote_root: run.remote_root.clone(),
            remote_program: run.remote_program.clone(),
            program,
            keep_instance: false,
            cancel,
        }
    }
}

/// A remote run's record: the steps done, what was seen.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct RemoteRun {
    pub project: String,
    pub instance_id: String,
    pub started_at: String,
    /// The instance's studio folder, absolute, once connected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_root: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_program: Option<String>,
    /// Steps finished, in order.
    pub done: Vec<Step>,
    /// The run's id on the instance, once started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    /// Connections that dropped and were made again.
    #[serde(default)]
    pub reconnects: u32,
    /// Files and folders brought home, relative to the studio.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub brought_home: Vec<String>,
    /// How the instance ended (or why it was kept).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_end: Option<String>,
    /// The training there as last seen: step, loss, time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_seen: Option<String>,
}

impl RemoteRun {
    /// Where a trip that has not ended stands, and what to do about it.
    pub fn plain_summary(&self) -> String {
        self.summary_with(
            &format!(
                "launch_training with instance_id `{}` follows it",
                self.instance_id
            ),
            "cancel_training",
        )
    }

    /// [`RemoteRun::plain_summary`] with the commands of a shell.
    pub fn shell_summary(&self) -> String {
        self.summary_with(
            &format!(
                "`ategnatos cloud train {} --instance {}` follows it",
                self.project, self.instance_id
            ),
            &format!("`ategnatos cancel {}`", self.project),
        )
    }

    fn summary_with(&self, follow: &str, cancel: &str) -> String {
        let at = Step::ALL
            .iter()
            .find(|s| !self.has(**s))
            .map_or("its end", |s| s.words());
        let seen = self
            .last_seen
            .as_ref()
            .map(|l| format!(" Last seen: {l}."))
            .unwrap_or_default();
        format!(
            "`{p}` is on its way on rented GPU `{i}`, at {at}.{seen} It bills while it is up. {follow} (and picks up where it stopped); {cancel} stops it, brings home what it saved and destroys the GPU.",
            p = self.project,
            i = self.instance_id
        )
    }

    fn has(&self, step: Step) -> bool {
        self.done.contains(&step)
    }

    fn finished(&self) -> bool {
        self.has(Step::Teardown)
    }
}

/// What a remote run came to.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct RemoteOutcome {
    /// In words.
    pub summary: String,
    pub remote: RemoteRun,
    /// The run as the instance's supervisor recorded it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<RunRecord>,
    /// The step this call began at, when an earlier call had done some.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resumed_at: Option<String>,
}

/// `grimoire/.state/cloud/remote/<project>.json`.
fn record_path(ws: &Workspace, project: &str) -> Result<PathBuf, CloudError> {
    crate::studio::check_project_name(project)?;
    Ok(ledger::cloud_dir(ws)
        .join("remote")
        .join(format!("{project}.json")))
}

/// The remote run of `project` that has not ended, if any.
pub fn unfinished(ws: &Workspace, project: &str) -> Result<Option<RemoteRun>, CloudError> {
    Ok(load(ws, project)?.filter(|r| !r.finished()))
}

/// The remote run of `project`, if one was started.
pub fn load(ws: &Workspace, project: &str) -> Result<Option<RemoteRun>, CloudError> {
    Ok(ws.read_json(&record_path(ws, project)?)?)
}

fn save(ws: &Workspace, run: &RemoteRun) -> Result<(), CloudError> {
    write_json_atomic(&record_path(ws, &run.project)?, run)?;
    Ok(())
}

/// The known-hosts file of one instance.
fn known_hosts(ws: &Workspace, instance_id: &str) -> PathBuf {
    ledger::cloud_dir(ws)
        .join("ssh")
        .join(format!("{instance_id}.known_hosts"))
}

/// One remote run, step by step.
struct Session<'a> {
    ws: &'a Workspace,
    cfg: &'a CloudConfig,
    rt: &'a tokio::runtime::Handle,
    progress: &'a dyn Progress,
    ssh: Ssh,
    instance: InstanceRecord,
    run: RemoteRun,
    opts: &'a RemoteOptions,
}

/// Trains `project` on a running instance of ours, from wherever an
/// earlier call stopped. `rt` runs the provider calls (the teardown, the
/// watchdog's rounds).
pub fn train_remote(
    ws: &Workspace,
    cfg: &CloudConfig,
    rt: &tokio::runtime::Handle,
    project_name: &str,
    opts: &RemoteOptions,
    progress: &dyn Progress,
) -> Result<RemoteOutcome, CloudError> {
    let project = project::load(ws, project_name)?
        .ok_or_else(|| CloudError::Failed(format!("there is no project `{project_name}`")))?;
    let instance =
        ledger::find(ws, &opts.instance)?.ok_or_else(|| CloudError::InstanceNotFound {
            id: opts.instance.trim().to_string(),
        })?;
    let earlier = unfinished(ws, &project.name)?;
    if let Some(other) = earlier
        .as_ref()
        .filter(|r| r.instance_id != instance.instance_id)
    {
        return Err(CloudError::Failed(format!(
            "`{}` is already on its way on instance `{}` (at {}): run it again with that instance to go on, or cancel_training to stop it and destroy that GPU, before starting it on another",
            project.name,
            other.instance_id,
            Step::ALL
                .iter()
                .find(|s| !other.has(**s))
                .map_or("its end", |s| s.words())
        )));
    }
    if earlier.is_none() && instance.state != InstanceState::Running {
        return Err(CloudError::Failed(format!(
            "{} is {}, not running: training needs a running instance",
            instance.name(),
            instance.state.word()
        )));
    }
    let Some(endpoint) = instance.ssh.clone() else {
        return Err(CloudError::Failed(format!(
            "{} has no SSH address in the ledger yet",
            instance.name()
        )));
    };
    if earlier.is_none() {
        require_gate1(ws, &project)?;
    }
    let resumed_at = earlier.as_ref().and_then(|r| {
        Step::ALL
            .iter()
            .find(|s| !r.has(**s))
            .filter(|_| !r.done.is_empty())
            .map(|s| s.words().to_string())
    });
    let run = earlier.unwrap_or_else(|| RemoteRun {
        project: project.name.clone(),
        instance_id: instance.instance_id.clone(),
        started_at: clock::now_rfc3339(),
        remote_root: None,
        remote_program: opts.remote_program.clone(),
        done: Vec::new(),
        run_id: None,
        reconnects: 0,
        brought_home: Vec::new(),
        instance_end: None,
        last_seen: None,
    });
    let ssh = Ssh::new(
        endpoint,
        known_hosts(ws, &instance.instance_id),
        &cfg.ssh,
        cfg.timing.ssh_timeout,
    );
    if let Some(dir) = ssh.known_hosts.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| CloudError::Failed(format!("cannot create `{}`: {e}", dir.display())))?;
    }
    let mut s = Session {
        ws,
        cfg,
        rt,
        progress,
        ssh,
        instance,
        run,
        opts,
    };
    save(ws, &s.run)?;
    let mut last: Option<RunRecord> = None;
    // Cancelled before the training started there: nothing more to do on
    // the instance (nor a connection needed) but to destroy it.
    let stop_short = opts.cancel && (!s.run.has(Step::Launch) || !s.instance.state.may_bill());
    for step in Step::ALL {
        if (s.run.has(step) && step != Step::Connect) || (stop_short && step != Step::Teardown) {
            continue;
        }
        if progress.is_cancelled() {
            return Err(CloudError::Failed(format!(
                "stopped before {}; the same command picks up there",
                step.words()
            )));
        }
        progress.report(step as u64, Some(Step::ALL.len() as u64), step.words());
        match step {
            Step::Connect => s.connect()?,
            Step::SendProgram => s.send_program()?,
            Step::SendProject => s.send_project()?,
            Step::Gates => s.gates()?,
            Step::DryRun => s.dry_run()?,
            Step::Launch => s.launch()?,
            Step::Follow => {
                if opts.cancel {
                    s.cancel_there()?;
                }
                last = Some(s.follow()?);
            }
            Step::BringHome => {
                let record = match last.take() {
                    Some(r) => r,
                    None => s.status(0)?,
                };
                s.bring_home(&record)?;
                last = Some(record);
            }
            Step::Teardown => s.teardown()?,
        }
        if !s.run.has(step) {
            s.run.done.push(step);
        }
        save(ws, &s.run)?;
    }
    let run = match last {
        Some(r) => Some(r),
        None if stop_short => None,
        None => s.status(0).ok(),
    };
    if stop_short {
        s.run.instance_end = Some(format!(
            "Stopped before the training started there. {}",
            s.run.instance_end.clone().unwrap_or_default()
        ));
    }
    Ok(RemoteOutcome {
        summary: summary(&s.run, run.as_ref(), &s.instance),
        remote: s.run,
        run,
        resumed_at,
    })
}

/// The pictures go as they are, with Gate 1's record: it must pass here
/// first, before anything is sent or paid for.
pub fn require_gate1(ws: &Workspace, project: &project::Project) -> Result<(), CloudError> {
    let view = crate::gates::status::FreshCheck::new(ws, project).view(Gate::Dataset)?;
    if view.state == GateState::Pass {
        return Ok(());
    }
    Err(CloudError::Failed(format!(
        "gate 1 (the dataset) of `{}` has to pass before the pictures go to a rented GPU; it is {}: {}",
        project.name,
        match view.state {
            GateState::NotRun => "not run",
            GateState::Fail => "failing",
            _ => "stale",
        },
        view.reason
    )))
}

/// What a run elsewhere needs of the studio, relative to it: the project's
/// state, its pictures, its configs and its model files (with a single
/// file's `tokenizer/` beside it, which the engine reads before any
/// download cache); and the files among them that may name the studio's
/// folder, to be renamed where they land.
pub fn project_files(
    ws: &Workspace,
    name: &str,
) -> Result<(Vec<String>, Vec<PathBuf>), CloudError> {
    let project = project::load(ws, name)?
        .ok_or_else(|| CloudError::Failed(format!("there is no project `{name}`")))?;
    let manifest = load_manifest(ws, name)?.ok_or_else(|| {
        CloudError::Failed(format!(
            "`{name}` has no configs yet: run generate_config and the gates here first"
        ))
    })?;
    let state = ws.project_state_dir(name)?;
    let mut send = vec![
        rel(ws, &state)?,
        project.dataset.trim_end_matches('/').to_string(),
    ];
    let mut rewrite = files_under(&state);
    for f in &manifest.files {
        send.push(f.path.clone());
        rewrite.push(ws.root().join(&f.path));
    }
    for m in &manifest.model_files {
        let path = ws.root().join(m);
        if path.starts_with(ws.root()) && path.exists() {
            send.push(rel(ws, &path)?);
            if let Some(tokenizer) = path.parent().map(|d| d.join("tokenizer"))
                && path.is_file()
                && tokenizer.is_dir()
            {
                send.push(rel(ws, &tokenizer)?);
            }
        }
    }
    send.sort();
    send.dedup();
    Ok((send, rewrite))
}

/// Renames the studio folder `from` to this studio's own in the project's
/// state and configs, in place: what a copy of a project does first where
/// it lands (the SkyPilot run). The files it changed, relative.
pub fn rehome(ws: &Workspace, name: &str, from: &str) -> Result<Vec<String>, CloudError> {
    let (_, rewrite) = project_files(ws, name)?;
    let here = ws.root().display().to_string();
    let mut changed = Vec::new();
    for file in rewrite {
        let Ok(text) = std::fs::read_to_string(&file) else {
            continue;
        };
        let moved = move_root(&text, from.trim_end_matches('/'), &here);
        if moved != text {
            crate::studio::write_atomic(&file, moved.as_bytes())?;
            changed.push(rel(ws, &file)?);
        }
    }
    Ok(changed)
}

fn summary(remote: &RemoteRun, run: Option<&RunRecord>, instance: &InstanceRecord) -> String {
    let mut out = match run {
        Some(r) => format!("On {}: {}", instance.name(), r.plain_summary()),
        None => format!("On {}: no run record came back.", instance.name()),
    };
    if !remote.brought_home.is_empty() {
        out.push_str(&format!(
            " Brought home: {}.",
            remote.brought_home.join(", ")
        ));
    }
    if remote.reconnects > 0 {
        out.push_str(&format!(
            " The connection dropped {} time(s); the run went on and was picked up again.",
            remote.reconnects
        ));
    }
    if let Some(end) = &remote.instance_end {
        out.push(' ');
        out.push_str(end);
    }
    out
}

impl Session<'_> {
    fn root(&self) -> Result<String, CloudError> {
        self.run
            .remote_root
            .clone()
            .ok_or_else(|| CloudError::Failed("the instance's studio folder is not known".into()))
    }

    fn program(&self) -> Result<String, CloudError> {
        match &self.run.remote_program {
            Some(p) => Ok(p.clone()),
            None => Ok(format!("{}/{REMOTE_PROGRAM}", self.root()?)),
        }
    }

    /// Runs `command` there, trying again when the connection drops.
    fn shell(
        &mut self,
        step: Step,
        command: &str,
        stdin: Option<&[u8]>,
    ) -> Result<Ran, CloudError> {
        let mut tries = 0;
        loop {
            match self.ssh.run(command, stdin) {
                Ok(ran) => return Ok(ran),
                Err(e) => self.dropped(step, e, &mut tries)?,
            }
        }
    }

    /// A dropped connection: wait and try again, or stop the step.
    fn dropped(&mut self, step: Step, e: ShellError, tries: &mut u32) -> Result<(), CloudError> {
        let ShellError::Connection { .. } = e else {
            return Err(CloudError::Failed(format!("{e}")));
        };
        *tries += 1;
        if *tries >= TRIES {
            return Err(connection_lost(step, &e));
        }
        self.run.reconnects += 1;
        save(self.ws, &self.run)?;
        std::thread::sleep(self.backoff(*tries));
        Ok(())
    }

    fn backoff(&self, tries: u32) -> Duration {
        (self.cfg.timing.poll_interval * 2u32.saturating_pow(tries.min(6)))
            .min(Duration::from_secs(30))
    }

    fn connect(&mut self) -> Result<(), CloudError> {
        let root = self
            .run
            .remote_root
            .clone()
            .or_else(|| self.opts.remote_root.clone())
            .unwrap_or_else(|| DEFAULT_REMOTE_ROOT.to_string());
        let line = format!(
            "mkdir -p {r}/.ategnatos/bin && cd {r} && pwd && uname -sm && (command -v rsync >/dev/null || (command -v apt-get >/dev/null && apt-get update -qq && apt-get install -y -qq rsync) >/dev/null 2>&1; command -v rsync >/dev/null && echo rsync-yes || echo rsync-no)",
            r = shell_quote(&root)
        );
        let ran = self.shell(Step::Connect, &line, None)?;
        if !ran.ok() {
            return Err(CloudError::Failed(format!(
                "the instance could not make its studio folder `{root}`: {}",
                ran.said(3)
            )));
        }
        let mut lines = ran.stdout.lines().map(str::trim);
        let (Some(abs), Some(platform)) = (lines.next(), lines.next()) else {
            return Err(CloudError::Failed(format!(
                "the instance's answer could not be read: `{}`",
                ran.said(3)
            )));
        };
        if lines.any(|l| l == "rsync-no") {
            return Err(CloudError::Failed(
                "the instance has no `rsync` and could not install it; install it there (`apt-get install -y rsync`) or choose an image that has it, then run this again".into(),
            ));
        }
        if self.run.remote_program.is_none() && !same_platform(platform) {
            return Err(CloudError::Failed(format!(
                "this Ategnatos is built for {} {}, the instance runs `{platform}`: install Ategnatos there and name it with --remote-program (remote_program), or train through SkyPilot",
                std::env::consts::OS,
                std::env::consts::ARCH
            )));
        }
        self.run.remote_root = Some(abs.to_string());
        Ok(())
    }

    fn send_program(&mut self) -> Result<(), CloudError> {
        if self.run.remote_program.is_some() {
            return Ok(());
        }
        let exe = match &self.opts.program {
            Some(p) => p.clone(),
            None => std::env::current_exe()
                .map_err(|e| CloudError::Failed(format!("cannot find this program's file: {e}")))?,
        };
        let target = self.program()?;
        let mut tries = 0;
        loop {
            match self.ssh.upload_file(&exe, &target) {
                Ok(ran) if ran.ok() => return Ok(()),
                Ok(ran) => {
                    return Err(CloudError::Failed(format!(
                        "sending Ategnatos to the instance failed: {}",
                        ran.said(3)
                    )));
                }
                Err(e) => self.dropped(Step::SendProgram, e, &mut tries)?,
            }
        }
    }

    fn send_project(&mut self) -> Result<(), CloudError> {
        let root = self.root()?;
        let (send, rewrite) = project_files(self.ws, &self.run.project)?;
        let mut tries = 0;
        loop {
            match self.ssh.upload(self.ws.root(), &send, &root) {
                Ok(ran) if ran.ok() => break,
                Ok(ran) => {
                    return Err(CloudError::Failed(format!(
                        "sending the project failed: {}",
                        ran.said(3)
                    )));
                }
                Err(e) => self.dropped(Step::SendProject, e, &mut tries)?,
            }
        }
        // The copies of files that name this studio's folder name the
        // instance's instead.
        let local = self.ws.root().display().to_string();
        for file in rewrite {
            let Ok(text) = std::fs::read_to_string(&file) else {
                continue;
            };
            let moved = move_root(&text, &local, &root);
            if moved == text {
                continue;
            }
            let there = format!("{root}/{}", rel(self.ws, &file)?);
            let line = format!("cat > {t}.part && mv {t}.part {t}", t = shell_quote(&there));
            let ran = self.shell(Step::SendProject, &line, Some(moved.as_bytes()))?;
            if !ran.ok() {
                return Err(CloudError::Failed(format!(
                    "writing `{there}` on the instance failed: {}",
                    ran.said(3)
                )));
            }
        }
        Ok(())
    }

    /// `ategnatos --root R ARGS…` there.
    fn ategnatos(&mut self, step: Step, args: &[&str]) -> Result<Ran, CloudError> {
        let root = self.root()?;
        // Logs to standard error stay plain for the lines we show.
        let mut line = format!(
            "cd {} && NO_COLOR=1 {} --root {}",
            shell_quote(&root),
            shell_quote(&self.program()?),
            shell_quote(&root)
        );
        for a in args {
            line.push(' ');
            line.push_str(&shell_quote(a));
        }
        self.shell(step, &line, None)
    }

    /// How to fix something on the instance by hand, and go on.
    fn fix_there(&self) -> Result<String, CloudError> {
        let e = &self.ssh.endpoint;
        Ok(format!(
            "It still bills: fix it there (`ssh -p {} {}@{}`, the studio is `{}`), then run this again and it picks up at this step; or cancel_training to destroy it",
            e.port,
            e.user,
            e.host,
            self.root()?
        ))
    }

    fn gates(&mut self) -> Result<(), CloudError> {
        let project = self.run.project.clone();
        // Gate 1 judged the pictures, which went as they are: its record
        // went with them, and the launch there checks it is still fresh.
        // The plan's fit and the environment are the instance's own.
        for gate in ["2", "3"] {
            let ran = self.ategnatos(Step::Gates, &["gate", gate, "--project", &project])?;
            if !ran.ok() {
                return Err(CloudError::Failed(format!(
                    "gate {gate} did not pass on the instance: {}. {}",
                    ran.said(6),
                    self.fix_there()?
                )));
            }
        }
        Ok(())
    }

    fn dry_run(&mut self) -> Result<(), CloudError> {
        let project = self.run.project.clone();
        let ran = self.ategnatos(Step::DryRun, &["dry-run", &project])?;
        if !ran.ok() {
            return Err(CloudError::Failed(format!(
                "the dry run did not pass on the instance: {}. {}",
                ran.said(6),
                self.fix_there()?
            )));
        }
        Ok(())
    }

    fn launch(&mut self) -> Result<(), CloudError> {
        let project = self.run.project.clone();
        // A start whose answer was lost: the run is there already.
        if let Ok(r) = self.status(0)
            && r.state == RunState::Running
        {
            self.run.run_id = Some(r.id);
            return Ok(());
        }
        let ran = self.ategnatos(Step::Launch, &["train", &project, "--detach", "--json"])?;
        if !ran.ok() {
            return Err(CloudError::Failed(format!(
                "the training did not start on the instance: {}. {}",
                ran.said(6),
                self.fix_there()?
            )));
        }
        let launched: serde_json::Value = serde_json::from_str(&ran.stdout).map_err(|e| {
            CloudError::Failed(format!(
                "the instance's answer to the start could not be read: {e}"
            ))
        })?;
        self.run.run_id = launched["run"]["id"].as_str().map(str::to_string);
        Ok(())
    }

    /// The newest run there, waiting up to `wait` seconds for it to end.
    fn status(&mut self, wait: u64) -> Result<RunRecord, CloudError> {
        let project = self.run.project.clone();
        let wait = wait.to_string();
        let args: Vec<&str> = if wait == "0" {
            vec!["status", &project, "--json"]
        } else {
            vec!["status", &project, "--wait", &wait, "--json"]
        };
        let ran = self.ategnatos(Step::Follow, &args)?;
        if !ran.ok() {
            return Err(CloudError::Failed(format!(
                "the instance has no run of `{project}`: {}",
                ran.said(3)
            )));
        }
        serde_json::from_str(&ran.stdout).map_err(|e| {
            CloudError::Failed(format!("the instance's run record could not be read: {e}"))
        })
    }

    fn follow(&mut self) -> Result<RunRecord, CloudError> {
        let mut lost_since: Option<Instant> = None;
        loop {
            if self.progress.is_cancelled() {
                return Err(CloudError::Failed(
                    "stopped following; the run goes on there, and the same command picks it up again".into(),
                ));
            }
            self.guard_caps()?;
            let project = self.run.project.clone();
            let wait = STATUS_WAIT_S.to_string();
            let root = self.root()?;
            let line = format!(
                "cd {r} && NO_COLOR=1 {p} --root {r} status {project} --wait {wait} --json",
                r = shell_quote(&root),
                p = shell_quote(&self.program()?),
                project = shell_quote(&project)
            );
            match self.ssh.run(&line, None) {
                Err(e @ ShellError::Connection { .. }) => {
                    let since = *lost_since.get_or_insert_with(Instant::now);
                    if since.elapsed() >= RECONNECT_FOR {
                        return Err(connection_lost(Step::Follow, &e));
                    }
                    self.run.reconnects += 1;
                    save(self.ws, &self.run)?;
                    self.progress.report(
                        Step::Follow as u64,
                        Some(Step::ALL.len() as u64),
                        "the connection dropped; the run goes on there; reconnecting",
                    );
                    std::thread::sleep(self.backoff(self.run.reconnects.min(4)));
                }
                Err(e) => return Err(CloudError::Failed(e.to_string())),
                Ok(ran) if !ran.ok() => {
                    return Err(CloudError::Failed(format!(
                        "the instance has no run of `{project}`: {}",
                        ran.said(3)
                    )));
                }
                Ok(ran) => {
                    lost_since = None;
                    let r: RunRecord = serde_json::from_str(&ran.stdout).map_err(|e| {
                        CloudError::Failed(format!(
                            "the instance's run record could not be read: {e}"
                        ))
                    })?;
                    let loss = r
                        .last_loss
                        .map(|l| format!(", loss {l:.4}"))
                        .unwrap_or_default();
                    self.run.last_seen = Some(format!(
                        "step {} of {}{loss}, at {}",
                        r.steps_done,
                        r.total_steps,
                        clock::now_rfc3339()
                    ));
                    save(self.ws, &self.run)?;
                    self.progress.report(
                        r.steps_done,
                        Some(r.total_steps.max(1)),
                        &format!(
                            "training there: step {}/{}{loss}",
                            r.steps_done, r.total_steps
                        ),
                    );
                    if r.state != RunState::Running {
                        return Ok(r);
                    }
                }
            }
        }
    }

    /// Asks the run there to stop (its supervisor stops the trainer and
    /// keeps its newest checkpoint); a run already over is left as it is.
    fn cancel_there(&mut self) -> Result<(), CloudError> {
        let project = self.run.project.clone();
        let ran = self.ategnatos(Step::Follow, &["cancel", &project, "--json"])?;
        if !ran.ok() {
            tracing::info!("cancel there: {}", ran.said(2));
        }
        Ok(())
    }

    /// The watchdog's round while we follow: a cap passed destroys the
    /// instance, and following ends.
    fn guard_caps(&mut self) -> Result<(), CloudError> {
        let now = clock::unix_now();
        let Some(current) = ledger::load(self.ws, &self.instance.instance_id)? else {
            return Ok(());
        };
        if watchdog::reason_to_destroy(&current, now, &self.cfg.timing).is_none()
            && current.state.may_bill()
        {
            return Ok(());
        }
        let sweep = self.rt.block_on(watchdog::sweep(self.ws, self.cfg));
        let after = ledger::load(self.ws, &self.instance.instance_id)?;
        if after.as_ref().is_some_and(|r| !r.state.may_bill()) {
            let why = after
                .and_then(|r| r.teardown_reason)
                .unwrap_or_else(|| "its cap".into());
            self.run.instance_end = Some(format!("The instance was destroyed: {why}."));
            save(self.ws, &self.run)?;
            return Err(CloudError::Failed(format!(
                "{} was destroyed while training ({why}); what the run had saved there is lost with it",
                self.instance.name()
            )));
        }
        tracing::debug!(
            actions = sweep.actions.len(),
            "watchdog round while following"
        );
        Ok(())
    }

    fn bring_home(&mut self, record: &RunRecord) -> Result<(), CloudError> {
        let root = self.root()?;
        let run_dir = Path::new(&record.log_file)
            .parent()
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        let mut paths: Vec<String> = Vec::new();
        if !run_dir.is_empty() {
            paths.push(run_dir);
        }
        paths.extend(record.checkpoints.iter().map(|c| c.path.clone()));
        if let Some(lora) = &record.final_lora {
            paths.push(lora.path.clone());
        }
        paths.retain(|p| inside(p));
        let mut tries = 0;
        loop {
            match self.ssh.download(&root, &paths, self.ws.root()) {
                Ok(ran) if ran.ok() => break,
                Ok(ran) => {
                    return Err(CloudError::Failed(format!(
                        "bringing the run's files home failed: {}",
                        ran.said(3)
                    )));
                }
                Err(e) => self.dropped(Step::BringHome, e, &mut tries)?,
            }
        }
        // The LoRA and each checkpoint arrived whole, at their full size.
        for c in record.checkpoints.iter().chain(record.final_lora.iter()) {
            let here = self.ws.root().join(&c.path);
            let size = std::fs::metadata(&here).map(|m| m.len()).unwrap_or(0);
            if size != c.bytes || !is_whole_safetensors(&here) {
                return Err(CloudError::Failed(format!(
                    "`{}` came home cut ({size} of {} bytes); run this again to fetch it again",
                    c.path, c.bytes
                )));
            }
        }
        self.run.brought_home = paths;
        Ok(())
    }

    fn teardown(&mut self) -> Result<(), CloudError> {
        let id = self.instance.instance_id.clone();
        if let Some(current) = ledger::load(self.ws, &id)?
            && !current.state.may_bill()
        {
            self.run.instance_end = Some(format!("{} was already destroyed.", current.name()));
            return Ok(());
        }
        ledger::mark_run_ended(self.ws, &id)?;
        if self.opts.keep_instance {
            self.run.instance_end = Some(format!(
                "{} was kept, as asked; it bills until teardown_instance `{id}` (the watchdog destroys it once idle while the server runs).",
                self.instance.name()
            ));
            return Ok(());
        }
        let down = self.rt.block_on(lifecycle::tear_down(
            self.ws,
            self.cfg,
            &id,
            "its training run ended",
            self.progress,
        ))?;
        self.run.instance_end = Some(down.plain_summary());
        Ok(())
    }
}

fn connection_lost(step: Step, e: &ShellError) -> CloudError {
    CloudError::Failed(format!(
        "lost the connection while {}: {e}. Whatever runs there goes on; run the same command again and it picks up at this step",
        step.words()
    ))
}

/// Whether `uname -sm`'s answer is the platform this program was built for.
fn same_platform(uname: &str) -> bool {
    let mut words = uname.split_whitespace();
    let (Some(os), Some(arch)) = (words.next(), words.next()) else {
        return false;
    };
    let arch = match arch {
        "amd64" => "x86_64",
        "arm64" => "aarch64",
        a => a,
    };
    os.eq_ignore_ascii_case(std::env::consts::OS) && arch == std::env::consts::ARCH
}

/// A relative path that stays inside the studio.
fn inside(path: &str) -> bool {
    let p = Path::new(path);
    !path.is_empty()
        && p.is_relative()
        && p.components().all(|c| {
            matches!(
                c,
                std::path::Component::Normal(_) | std::path::Component::CurDir
            )
        })
}

fn rel(ws: &Workspace, path: &Path) -> Result<String, CloudError> {
    path.strip_prefix(ws.root())
        .map(|p| p.display().to_string())
        .map_err(|_| {
            CloudError::Failed(format!(
                "`{}` is outside the studio and cannot be sent",
                path.display()
            ))
        })
}

/// Every file under `dir`.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                todo.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

/// `text` with the studio folder `from` named `to` wherever it stands as a
/// whole path or a path's start (not inside a longer folder name).
pub fn move_root(text: &str, from: &str, to: &str) -> String {
    if from.is_empty() {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find(from) {
        let after = &rest[i + from.len()..];
        let whole = after
            .chars()
            .next()
            .is_none_or(|c| matches!(c, '/' | '"' | '\'' | '\n' | ' ' | ',' | ']' | '}'));
        out.push_str(&rest[..i]);
        out.push_str(if whole { to } else { from });
        rest = after;
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_studio_folder_is_renamed_only_where_it_is_the_whole_folder() {
        let text = r#"{"checkpoint": "/home/a/studio/models/x.safetensors", "other": "/home/a/studio2/y", "root": "/home/a/studio"}"#;
        let moved = move_root(text, "/home/a/studio", "/root/ategnatos-studio");
        assert!(
            moved.contains(r#""/root/ategnatos-studio/models/x.safetensors""#),
            "{moved}"
        );
        assert!(moved.contains(r#""/home/a/studio2/y""#), "{moved}");
        assert!(
            moved.contains(r#""root": "/root/ategnatos-studio""#),
            "{moved}"
        );
    }

    #[test]
    fn only_this_platform_is_taken_for_this_platform() {
        let here = format!("{} {}", std::env::consts::OS, std::env::consts::ARCH);
        assert!(same_platform(&here));
        assert!(!same_platform("Plan9 mips"));
        assert!(!same_platform(""));
    }

    #[test]
    fn paths_from_the_instance_stay_inside_the_studio() {
        assert!(inside("grimoire/training/fox/runs/1"));
        assert!(!inside("../etc/passwd"));
        assert!(!inside("/etc/passwd"));
        assert!(!inside(""));
    }
}
