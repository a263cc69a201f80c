//! The `ategnatos` command: the MCP server (`serve`) and one subcommand per
//! tool, calling the same domain functions the server does.

mod cli;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// From a folder of pictures to an evaluated LoRA, behind four gates.
#[derive(Parser)]
#[command(name = "ategnatos", version, about, long_about = None)]
struct Cli {
    /// Workspace root: holds grimoire/ (state) and workspace/; every path must be inside it.
    #[arg(long, global = true, default_value = ".")]
    root: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the MCP server (stdio by default, or streamable HTTP at /mcp).
    Serve {
        /// Serve streamable HTTP on this address instead of stdio, e.g. 127.0.0.1:8787.
        #[arg(long, value_name = "ADDR")]
        http: Option<std::net::SocketAddr>,
    },
    /// Audit a folder of training pictures.
    Audit(cli::audit::AuditCmd),
    /// Training projects: start, list, status.
    #[command(subcommand)]
    Project(cli::project::ProjectCmd),
    /// Captioning: preview, write, approve, restore.
    #[command(subcommand)]
    Captions(cli::project::CaptionsCmd),
    /// Run a gate for a project (1 = dataset, 2 = training plan, 3 = environment, 4 = dry run).
    Gate {
        /// Gate number.
        gate: u8,
        #[arg(long)]
        project: String,
        /// Gate 2: the GPU to check the plan against (default: the plan's).
        #[arg(long)]
        gpu: Option<String>,
    },
    /// Make a project's training plan from a preset, fitted to the GPU.
    Plan(cli::plan::PlanCmd),
    /// How much GPU memory a plan (or a model) needs, and whether it fits.
    Vram(cli::plan::VramCmd),
    /// Write the project's plan as its trainer's config files and config.md.
    Config(cli::plan::ConfigCmd),
    /// What this machine can train with: GPU, driver, PyTorch, the trainer's install, disk.
    Env(cli::env::EnvCmd),
    /// Gate 4: run the plan's own trainer for a few real steps.
    DryRun(cli::env::DryRunCmd),
    /// Train the project's LoRA, once all four gates pass and are fresh.
    Train(cli::env::TrainCmd),
    /// Where the project's newest training run stands.
    Status(cli::env::StatusCmd),
    /// Stop the project's running training (its whole process group).
    Cancel(cli::env::CancelCmd),
    /// Supervise one training run (started by `train`; not for people).
    #[command(hide = true)]
    Supervise { run_dir: PathBuf },
    /// Find near-duplicate pictures (copies, resized, re-saved, cropped, mirrored).
    Duplicates(cli::dedup::DuplicatesCmd),
    /// Set files aside in workspace/quarantine/ (captions go along); never deletes.
    Quarantine(cli::dedup::QuarantineCmd),
    /// Put a quarantine's files back where they were.
    Restore(cli::dedup::RestoreCmd),
    /// Variety score, look-alike clusters and a recommended subset.
    Curate(cli::dedup::CurateCmd),
    /// Copy flat folders into kohya's `{repeats}_{name}/` layout.
    Structure(cli::dedup::StructureCmd),
    /// Render in ComfyUI: `comfy submit WORKFLOW`.
    #[command(subcommand)]
    Comfy(cli::comfy::ComfyCmd),
    /// Judge a project's LoRA in ComfyUI: prompts × LoRA weights on one contact sheet.
    Eval(cli::comfy::EvalCmd),
    /// Rented GPUs: quote, up, list, down.
    #[command(subcommand)]
    Cloud(cli::cloud::CloudCmd),
    /// The native LoRA engine, run as a child process: `engine train CONFIG [--dry-run]`.
    Engine {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Measure speed: `bench audit`, `bench duplicates`, `bench monitor`.
    Bench(cli::bench::BenchCmd),
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("ATEGNATOS_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("ategnatos=info,rmcp=warn")),
        )
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve { http } => cli::serve::run(&cli.root, http),
        Command::Audit(cmd) => cli::audit::run(&cli.root, cmd),
        Command::Project(cmd) => cli::project::run_project(&cli.root, cmd),
        Command::Captions(cmd) => cli::project::run_captions(&cli.root, cmd),
        Command::Gate { gate, project, gpu } => {
            cli::project::run_gate(&cli.root, gate, &project, gpu.as_deref())
        }
        Command::Plan(cmd) => cli::plan::run_plan(&cli.root, cmd),
        Command::Vram(cmd) => cli::plan::run_vram(&cli.root, cmd),
        Command::Config(cmd) => cli::plan::run_config(&cli.root, cmd),
        Command::Env(cmd) => cli::env::run_env(&cli.root, cmd),
        Command::DryRun(cmd) => cli::env::run_dry_run(&cli.root, cmd),
        Command::Train(cmd) => cli::env::run_train(&cli.root, cmd),
        Command::Status(cmd) => cli::env::run_status(&cli.root, cmd),
        Command::Cancel(cmd) => cli::env::run_cancel(&cli.root, cmd),
        Command::Supervise { run_dir } => cli::env::run_supervise(&run_dir),
        Command::Duplicates(cmd) => cli::dedup::duplicates(&cli.root, cmd),
        Command::Quarantine(cmd) => cli::dedup::quarantine(&cli.root, cmd),
        Command::Restore(cmd) => cli::dedup::restore(&cli.root, cmd),
        Command::Curate(cmd) => cli::dedup::curate(&cli.root, cmd),
        Command::Structure(cmd) => cli::dedup::structure(&cli.root, cmd),
        Command::Engine { args } => {
            let code = ategnatos::engine::cli::run_engine_cli(&args);
            Ok(ExitCode::from(u8::try_from(code).unwrap_or(2)))
        }
        Command::Bench(cmd) => cli::bench::run(cmd),
        Command::Comfy(cmd) => cli::comfy::run(&cli.root, cmd),
        Command::Eval(cmd) => cli::comfy::run_eval(&cli.root, cmd),
        Command::Cloud(cmd) => cli::cloud::run(&cli.root, cmd),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("{}", cli::for_shell(&e.to_string()));
            ExitCode::from(2)
        }
    }
}
