//! `ategnatos env`, `ategnatos dry-run`, `ategnatos gate 3|4`, `ategnatos
//! train` and `ategnatos status`: Gates 3 and 4, and the training behind
//! them, from a shell.

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use ategnatos::environment::{EnvRequest, check_environment};
use ategnatos::gates::dry_run::{Gate4Options, run_gate4};
use ategnatos::plan::training::Backend;

use super::progress::Bar;
use super::{CliError, open_workspace, print_json, shell_path};
use ategnatos::studio::Hint;

fn parse_backend(s: &str) -> Result<Backend, String> {
    Backend::parse(s).ok_or_else(|| {
        format!("`{s}` is not a backend: use kohya, simpletuner, ai-toolkit or native")
    })
}

/// `ategnatos env`: what this machine can train with.
#[derive(clap::Args)]
pub struct EnvCmd {
    /// Check against this project's plan (and write its environment.md).
    #[arg(long)]
    project: Option<String>,
    /// The trainer to check (default: the plan's).
    #[arg(long, value_parser = parse_backend)]
    backend: Option<Backend>,
    /// The trainer's folder (default: found in the workspace or from
    /// ATEGNATOS_KOHYA_DIR and the like).
    #[arg(long)]
    backend_path: Option<std::path::PathBuf>,
    /// Print the result as JSON, as the MCP tool returns it.
    #[arg(long)]
    json: bool,
}

pub fn run_env(root: &Path, cmd: EnvCmd) -> Result<ExitCode, CliError> {
    let ws = open_workspace(root)?;
    let request = EnvRequest {
        project: cmd.project,
        backend: cmd.backend,
        backend_path: cmd.backend_path.as_deref().map(shell_path),
        ..EnvRequest::default()
    };
    let r = check_environment(&ws, &request).map_err(|e| CliError::new(&e, e.hint()))?;
    if cmd.json {
        print_json(&r)?;
    } else {
        // The summary says each problem with what to do.
        outln!("{}", r.plain_summary());
        if let Some(file) = &r.report_file {
            outln!("Report: {file}");
        }
    }
    Ok(if r.ready {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// `ategnatos dry-run`: Gate 4, a few real steps of the exact plan.
#[derive(clap::Args)]
pub struct DryRunCmd {
    /// The project.
    project: String,
    /// Steps to run, 2 to 5.
    #[arg(long, default_value_t = ategnatos::run::dry_run::DEFAULT_STEPS)]
    steps: u32,
    /// Stop the trainer when it prints nothing for this many seconds.
    #[arg(long, value_name = "SECONDS")]
    stall: Option<u64>,
    /// Print the result as JSON, as the MCP tool returns it.
    #[arg(long)]
    json: bool,
}

pub fn run_dry_run(root: &Path, cmd: DryRunCmd) -> Result<ExitCode, CliError> {
    let ws = open_workspace(root)?;
    let mut options = Gate4Options {
        steps: cmd.steps,
        ..Gate4Options::default()
    };
    if let Some(s) = cmd.stall {
        options.stall = Duration::from_secs(s.max(1));
    }
    let bar = Bar::new();
    let g = run_gate4(&ws, &cmd.project, &options, &bar);
    bar.finish();
    let g = g.map_err(|e| CliError::new(&e, e.hint()))?;
    if cmd.json {
        print_json(&g)?;
    } else {
        outln!("{}", g.plain_summary());
    }
    Ok(if g.blockers.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// `ategnatos train`: the training itself, behind four fresh gates.
#[derive(clap::Args)]
pub struct TrainCmd {
    /// The project.
    project: String,
    /// Stop the trainer when it prints nothing for this many seconds.
    #[arg(long, value_name = "SECONDS")]
    stall: Option<u64>,
    /// Start it and return at once, without following it.
    #[arg(long)]
    detach: bool,
    /// Print the result as JSON, as the MCP tools return it.
    #[arg(long)]
    json: bool,
}

/// How long the command line follows a run (it ends or the person stops
/// following with Ctrl-C; the run goes on either way).
const FOLLOW: Duration = Duration::from_secs(30 * 24 * 3600);

pub fn run_train(root: &Path, cmd: TrainCmd) -> Result<ExitCode, CliError> {
    use ategnatos::gates::training::{TrainingOptions, launch_training, training_status};
    use ategnatos::run::launch::RunState;
    let ws = open_workspace(root)?;
    let mut options = TrainingOptions::default();
    if let Some(s) = cmd.stall {
        options.stall = Duration::from_secs(s.max(1));
    }
    let launched =
        launch_training(&ws, &cmd.project, &options).map_err(|e| CliError::new(&e, e.hint()))?;
    if cmd.detach {
        if cmd.json {
            print_json(&launched)?;
        } else {
            outln!("{}", launched.summary);
        }
        return Ok(ExitCode::SUCCESS);
    }
    if !cmd.json {
        outln!("{}", launched.summary);
        outln!(
            "Following it here; Ctrl-C stops following, not the run (`ategnatos cancel {}` stops it).",
            cmd.project
        );
    }
    let bar = Bar::new();
    let run = training_status(&ws, &cmd.project, Some(FOLLOW), &bar);
    bar.finish();
    let run = run.map_err(|e| CliError::new(&e, e.hint()))?;
    if cmd.json {
        print_json(&run)?;
    } else {
        outln!("{}", run.plain_summary());
    }
    Ok(if run.state == RunState::Complete {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// `ategnatos status`: where the project's newest run stands.
#[derive(clap::Args)]
pub struct StatusCmd {
    /// The project.
    project: String,
    /// Wait up to this many seconds for a running run to end, showing its steps.
    #[arg(long, value_name = "SECONDS")]
    wait: Option<u64>,
    /// Print the result as JSON, as the MCP tool returns it.
    #[arg(long)]
    json: bool,
}

pub fn run_status(root: &Path, cmd: StatusCmd) -> Result<ExitCode, CliError> {
    let ws = open_workspace(root)?;
    if let Ok(Some(remote)) = ategnatos::cloud::remote::unfinished(&ws, &cmd.project) {
        if cmd.json {
            print_json(&remote)?;
        } else {
            outln!("{}", remote.shell_summary());
        }
        return Ok(ExitCode::SUCCESS);
    }
    let bar = Bar::new();
    let run = ategnatos::gates::training::training_status(
        &ws,
        &cmd.project,
        cmd.wait.map(Duration::from_secs),
        &bar,
    );
    bar.finish();
    let run = run.map_err(|e| CliError::new(&e, e.hint()))?;
    if cmd.json {
        print_json(&run)?;
    } else {
        outln!("{}", run.plain_summary());
    }
    Ok(ExitCode::SUCCESS)
}

/// `ategnatos cancel`: stop the project's running training.
#[derive(clap::Args)]
pub struct CancelCmd {
    /// The project.
    project: String,
    /// Print the result as JSON, as the MCP tool returns it.
    #[arg(long)]
    json: bool,
}

pub fn run_cancel(root: &Path, cmd: CancelCmd) -> Result<ExitCode, CliError> {
    let ws = open_workspace(root)?;
    if let Some(remote) = ategnatos::cloud::remote::unfinished(&ws, &cmd.project)
        .map_err(|e| CliError::new(&e, e.hint()))?
    {
        return cancel_remote(&ws, &cmd, &remote);
    }
    let run = ategnatos::gates::training::cancel_training(&ws, &cmd.project)
        .map_err(|e| CliError::new(&e, e.hint()))?;
    if cmd.json {
        print_json(&run)?;
    } else {
        outln!("{}", run.plain_summary());
    }
    Ok(ExitCode::SUCCESS)
}

/// `ategnatos supervise RUN_DIR`: the supervisor of one run, started by
/// `train` (and the `launch_training` tool) in a session of its own.
pub fn run_supervise(run_dir: &Path) -> Result<ExitCode, CliError> {
    let run =
        ategnatos::run::supervisor::supervise(run_dir).map_err(|e| CliError::new(&e, e.hint()))?;
    Ok(if run.state == ategnatos::run::launch::RunState::Complete {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// `ategnatos cancel` of a run on a rented GPU: stopped there, its saves
/// brought home, the GPU destroyed.
fn cancel_remote(
    ws: &ategnatos::studio::Workspace,
    cmd: &CancelCmd,
    remote: &ategnatos::cloud::remote::RemoteRun,
) -> Result<ExitCode, CliError> {
    use ategnatos::cloud::CloudConfig;
    use ategnatos::cloud::remote::{RemoteOptions, train_remote};
    let cfg = CloudConfig::from_env();
    let rt = tokio::runtime::Runtime::new()
        .map_err(|e| CliError::new(format!("could not start the async runtime: {e}"), None))?;
    let opts = RemoteOptions::resuming(remote, None, true);
    let bar = Bar::new();
    let done = train_remote(ws, &cfg, rt.handle(), &cmd.project, &opts, &bar);
    bar.finish();
    let outcome = done.map_err(|e| CliError::new(&e, e.hint()))?;
    if cmd.json {
        print_json(&outcome)?;
    } else {
        outln!("{}", outcome.summary);
    }
    Ok(ExitCode::SUCCESS)
}
