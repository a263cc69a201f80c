//! `ategnatos comfy submit` and `ategnatos eval`: rendering through the
//! artist's ComfyUI and judging a trained LoRA on a weight grid, from a
//! shell, over the same domain functions as `comfyui_submit` and `eval_grid`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use ategnatos::comfy::eval::{self, EvalOutcome, EvalRequest};
use ategnatos::comfy::submit::{self, Outcome, Source, SubmitRequest};
use ategnatos::studio::Hint;
use ategnatos::studio::{Workspace, paths};
use serde_json::{Map, Value};

use super::progress::Bar;
use super::{CliError, open_workspace, print_json, shell_path};

/// Longest one render (or one grid cell) may take, by default.
const DEFAULT_TIMEOUT_SECONDS: u64 = 30 * 60;

/// `ategnatos comfy …`
#[derive(clap::Subcommand)]
pub enum ComfyCmd {
    /// Render a workflow in ComfyUI: prints the output files.
    Submit(SubmitCmd),
}

/// `ategnatos comfy submit`
#[derive(clap::Args)]
pub struct SubmitCmd {
    /// A template (txt2img, img2img, lora-test, …), a workflow saved in
    /// grimoire/workflows/, or an API-format .json file.
    workflow: String,
    /// A parameter, `name=value` (a template's) or `node_id.input=value`
    /// (any workflow's); a value that reads as JSON (7, 0.5, true) is one,
    /// anything else is text. Repeatable.
    #[arg(long = "param", short = 'p', value_name = "NAME=VALUE")]
    params: Vec<String>,
    /// A picture to upload for the workflow's LoadImage nodes, in order. Repeatable.
    #[arg(long = "input", short = 'i', value_name = "FILE")]
    inputs: Vec<PathBuf>,
    /// Keep the workflow as grimoire/workflows/<NAME>.json as well.
    #[arg(long, value_name = "NAME")]
    save_as: Option<String>,
    /// Take the server address and base model from this project.
    #[arg(long)]
    project: Option<String>,
    /// The base model a template's defaults are for (e.g. sdxl, flux-dev).
    #[arg(long)]
    base_model: Option<String>,
    /// ComfyUI's address (default: the project's, COMFYUI_URL, http://127.0.0.1:8188).
    #[arg(long, value_name = "URL")]
    server: Option<String>,
    /// Give up on a render after this many seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = DEFAULT_TIMEOUT_SECONDS)]
    timeout: u64,
    /// Print the result as JSON, as the MCP tool returns it.
    #[arg(long)]
    json: bool,
}

/// `ategnatos eval`: the weight grid.
#[derive(clap::Args)]
pub struct EvalCmd {
    /// The project whose LoRA to judge.
    project: String,
    /// The LoRA file (default: the newest run's final one).
    #[arg(long, value_name = "FILE")]
    lora: Option<PathBuf>,
    /// A checkpoint to render with, as ComfyUI names it (up to 3). Repeatable.
    #[arg(long = "checkpoint", value_name = "NAME")]
    checkpoints: Vec<String>,
    /// A test prompt (default: the training type's five). Repeatable.
    #[arg(long = "prompt", value_name = "TEXT")]
    prompts: Vec<String>,
    /// LoRA weights, comma-separated (default 0.3,0.5,0.7,0.9,1.0).
    #[arg(long, value_delimiter = ',', value_name = "W,W,…")]
    weights: Vec<f32>,
    /// The one seed of every cell.
    #[arg(long)]
    seed: Option<u64>,
    /// Sampler steps per cell.
    #[arg(long)]
    steps: Option<u32>,
    /// ComfyUI's address (default: the project's, COMFYUI_URL, http://127.0.0.1:8188).
    #[arg(long, value_name = "URL")]
    server: Option<String>,
    /// ComfyUI's folder on this machine, to copy the LoRA into its models/loras/.
    #[arg(long, value_name = "DIR")]
    comfyui_dir: Option<PathBuf>,
    /// Give up on one cell after this many seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = DEFAULT_TIMEOUT_SECONDS)]
    timeout: u64,
    /// Print the result as JSON, as the MCP tool returns it.
    #[arg(long)]
    json: bool,
}

fn existing(ws: &Workspace, p: &Path) -> Result<PathBuf, CliError> {
    paths::resolve_existing(ws.root(), &shell_path(p)).map_err(|e| CliError::new(&e, e.hint()))
}

/// `name=value` pairs as the tool's `params` object.
fn parse_params(given: &[String]) -> Result<Map<String, Value>, CliError> {
    let mut params = Map::new();
    for pair in given {
        let Some((name, value)) = pair.split_once('=') else {
            return Err(CliError::new(
                format!("`{pair}` is not a parameter: it has no `=`"),
                Some("write each as `--param name=value`, e.g. `--param steps=20` or `--param prompt=\"a red fox\"`".into()),
            ));
        };
        let name = name.trim();
        if name.is_empty() {
            return Err(CliError::new(
                format!("`{pair}` has no name before its `=`"),
                Some(
                    "write each as `--param name=value`, e.g. `--param 3.seed=7` for node 3's seed"
                        .into(),
                ),
            ));
        }
        let value = serde_json::from_str::<Value>(value)
            .ok()
            .filter(|v| !v.is_object() && !v.is_array())
            .unwrap_or_else(|| Value::String(value.to_string()));
        params.insert(name.to_string(), value);
    }
    Ok(params)
}

fn runtime() -> Result<tokio::runtime::Runtime, CliError> {
    tokio::runtime::Runtime::new()
        .map_err(|e| CliError::new(format!("could not start the async runtime: {e}"), None))
}

pub fn run(root: &Path, cmd: ComfyCmd) -> Result<ExitCode, CliError> {
    match cmd {
        ComfyCmd::Submit(cmd) => run_submit(root, cmd),
    }
}

fn run_submit(root: &Path, cmd: SubmitCmd) -> Result<ExitCode, CliError> {
    let ws = open_workspace(root)?;
    let source = if Source::names_a_file(&cmd.workflow) {
        Source::File(existing(&ws, Path::new(&cmd.workflow))?)
    } else {
        Source::Named(cmd.workflow.trim().to_string())
    };
    let params = parse_params(&cmd.params)?;
    let inputs = cmd
        .inputs
        .iter()
        .map(|p| existing(&ws, p))
        .collect::<Result<Vec<_>, _>>()?;
    if let Some(project) = &cmd.project {
        ategnatos::studio::check_project_name(project).map_err(|e| CliError::new(&e, e.hint()))?;
    }
    let saved_as = match &cmd.save_as {
        Some(name) => Some(
            submit::save_workflow(&ws, name, &source).map_err(|e| CliError::new(&e, e.hint()))?,
        ),
        None => None,
    };
    let folder = submit::output_folder_name(&ws, &source.folder_prefix());
    let req = SubmitRequest {
        source,
        params,
        inputs,
        project: cmd.project,
        base_model: cmd.base_model,
        server: cmd.server,
        timeout: Duration::from_secs(cmd.timeout),
    };
    let bar = Bar::new();
    let report = runtime()?.block_on(submit::submit(&ws, &req, &folder, &bar));
    bar.finish();
    let report = report.map_err(|e| CliError::new(&e, e.hint()))?;
    if cmd.json {
        print_json(&report)?;
    } else {
        outln!("{}", report.plain_summary());
        if let Some(path) = &saved_as {
            outln!("The workflow is kept as {path}.");
        }
        for o in &report.outputs {
            outln!("{}", ws.root().join(&o.path).display());
        }
    }
    Ok(match report.outcome {
        Outcome::Rendered => ExitCode::SUCCESS,
        // Nothing rendered: a script must not take the saved file for pictures.
        Outcome::SavedForLater => ExitCode::from(1),
    })
}

pub fn run_eval(root: &Path, cmd: EvalCmd) -> Result<ExitCode, CliError> {
    let ws = open_workspace(root)?;
    ategnatos::studio::check_project_name(&cmd.project).map_err(|e| CliError::new(&e, e.hint()))?;
    let lora = match &cmd.lora {
        Some(l) => Some(existing(&ws, l)?),
        None => None,
    };
    // ComfyUI's own folder lies outside the workspace, like the tool's
    // `comfyui_dir`; a relative one is taken from where the command runs.
    let comfyui_dir = cmd
        .comfyui_dir
        .as_deref()
        .map(|d| PathBuf::from(shell_path(d)));
    let req = EvalRequest {
        project: cmd.project.clone(),
        lora,
        checkpoints: cmd.checkpoints,
        prompts: cmd.prompts,
        weights: cmd.weights,
        seed: cmd.seed,
        steps: cmd.steps,
        server: cmd.server,
        comfyui_dir,
        cell_timeout: Duration::from_secs(cmd.timeout),
    };
    let folder = submit::output_folder_name(&ws, &format!("{}-eval", cmd.project));
    let bar = Bar::new();
    let report = runtime()?.block_on(eval::eval_grid(&ws, &req, &folder, &bar));
    bar.finish();
    // The words name the tool's argument; here it is an option.
    let report = report.map_err(|e| {
        let option = |t: &str| t.replace("`comfyui_dir`", "`--comfyui-dir`");
        CliError::new(option(&e.to_string()), e.hint().map(|h| option(&h)))
    })?;
    if cmd.json {
        print_json(&report)?;
    } else {
        outln!("{}", report.plain_summary());
        if let Some(sheet) = &report.contact_sheet {
            outln!("Contact sheet: {}", ws.root().join(sheet).display());
        }
        outln!("Verdict: {}", ws.root().join(&report.eval_md).display());
    }
    Ok(match report.outcome {
        EvalOutcome::Rendered => ExitCode::SUCCESS,
        _ => ExitCode::from(1),
    })
}
