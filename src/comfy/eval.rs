//! `eval_grid`: a trained LoRA rendered on the standard test prompts of its
//! training type at several weights (0.3, 0.5, 0.7, 0.9, 1.0 by default),
//! one fixed seed, for one to three checkpoints; one graph per cell, one
//! labelled contact sheet, and `eval.md` in the project with the grid and
//! room for the artist's verdict.
//!
//! ComfyUI must have the LoRA in its `loras` folder. When the server runs on
//! this computer and we know ComfyUI's folder, the file is copied there;
//! otherwise the result says which file to put where. When ComfyUI cannot be
//! reached, the grid's workflows are saved to run later.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;
use serde_json::{Map, json};

use super::follow::{self, FollowOptions};
use super::settings::{self, UrlSource};
use super::sheet::{self, Block};
use super::staging::Staging;
use super::{ComfyClient, ComfyError, Workflow, client, inventory, preview, templates};
use crate::plan::catalog::{self, ModelFamily, ModelSpec};
use crate::plan::training::load_plan;
use crate::studio::Hint;
use crate::studio::project::{self, Project, TrainingType};
use crate::studio::{Progress, StudioError, Workspace, write_atomic};

/// The weights of the grid when none are given.
pub const DEFAULT_WEIGHTS: [f32; 5] = [0.3, 0.5, 0.7, 0.9, 1.0];
/// The seed when neither the call nor the plan gives one.
pub const DEFAULT_SEED: u64 = 42;
/// Cell side on the contact sheet.
pub const SHEET_CELL: u32 = 256;
/// Long side of the contact sheet's preview in the result.
pub const SHEET_PREVIEW_SIDE: u32 = 1024;
const MAX_PROMPTS: usize = 8;
const MAX_WEIGHTS: usize = 8;
const MAX_CHECKPOINTS: usize = 3;

/// The standard test prompts of a training type: (label, text with `{t}`
/// for the trigger word).
pub fn default_prompts(kind: TrainingType) -> &'static [(&'static str, &'static str)] {
    match kind {
        TrainingType::Style => &[
            ("portrait", "{t}, a portrait of an old fisherman"),
            ("landscape", "{t}, a mountain landscape with a lake at dusk"),
            (
                "still life",
                "{t}, a still life of fruit and a jug on a table",
            ),
            ("animal", "{t}, a fox sitting in tall grass"),
            (
                "abstract",
                "{t}, an abstract composition of shapes and colour",
            ),
        ],
        TrainingType::Character => &[
            ("full body", "{t}, full body, standing, plain background"),
            ("close-up", "{t}, close-up portrait, looking at the viewer"),
            ("sitting", "{t}, sitting on a wooden chair, indoors"),
            ("outdoors", "{t}, walking outdoors in a park, daylight"),
            ("action", "{t}, running, dynamic pose, motion"),
        ],
        TrainingType::Object => &[
            ("isolated", "{t}, alone on a plain white background"),
            ("in context", "{t} on a wooden table in a sunlit room"),
            ("held", "a person holding {t} in their hands"),
            ("close-up", "{t}, close-up, fine detail"),
            ("several", "three {t} side by side"),
        ],
    }
}

/// What to evaluate; empty lists take the defaults.
#[derive(Debug, Clone)]
pub struct EvalRequest {
    pub project: String,
    /// The LoRA file (absolute, inside the workspace); default the run's final one.
    pub lora: Option<PathBuf>,
    /// Checkpoint files as ComfyUI names them (Flux: diffusion model files).
    pub checkpoints: Vec<String>,
    pub prompts: Vec<String>,
    pub weights: Vec<f32>,
    pub seed: Option<u64>,
    pub steps: Option<u32>,
    pub server: Option<String>,
    /// ComfyUI's folder on this computer (to copy the LoRA into).
    pub comfyui_dir: Option<PathBuf>,
    /// Longest one cell may take.
    pub cell_timeout: Duration,
}

/// How the grid ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum EvalOutcome {
    Rendered,
    /// ComfyUI was not reachable: the workflows are saved to run later.
    SavedForLater,
}

/// One prompt row.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct PromptRow {
    pub label: String,
    pub text: String,
}

/// One rendered cell.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Cell {
    pub checkpoint: String,
    pub prompt: String,
    pub weight: f32,
    pub path: String,
}

/// What `eval_grid` returns.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct EvalReport {
    pub outcome: EvalOutcome,
    pub project: String,
    pub server: String,
    pub server_from: UrlSource,
    /// The LoRA evaluated (workspace path).
    pub lora: String,
    /// Its name in ComfyUI's `loras` folder.
    pub lora_name: String,
    /// Where we copied it, when we did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub copied_to: Option<String>,
    pub checkpoints: Vec<String>,
    pub prompts: Vec<PromptRow>,
    pub weights: Vec<f32>,
    pub seed: u64,
    pub folder: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub contact_sheet: Option<String>,
    pub eval_md: String,
    pub cells: Vec<Cell>,
    /// Cells ComfyUI gave back from its cache (an identical earlier run).
    pub cached_cells: usize,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub saved_workflows: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_rendered_because: Option<String>,
    /// JPEG preview of the contact sheet, for the tool's image block.
    #[serde(skip)]
    pub preview: Option<Vec<u8>>,
}

impl EvalReport {
    pub fn plain_summary(&self) -> String {
        match self.outcome {
            EvalOutcome::SavedForLater => format!(
                "ComfyUI is not answering at {} ({}). Nothing was rendered. The {} workflows of the grid are saved in {}/workflows/ (one per prompt and weight): start ComfyUI, put `{}` into its models/loras/ folder as `{}`, and run eval_grid again, or drag the files into ComfyUI one by one.",
                self.server,
                self.not_rendered_because.as_deref().unwrap_or("no answer"),
                self.saved_workflows.len(),
                self.folder,
                self.lora,
                self.lora_name
            ),
            EvalOutcome::Rendered => {
                let mut s = format!(
                    "Rendered {} cells ({} prompts × {} weights{}) of `{}` with seed {}. Contact sheet: {}. Rows are prompts, columns the LoRA weight; {} has the grid and room for the artist's verdict. Show the sheet to the artist: the best weight keeps the look without breaking anatomy or colour. When they approve, register_lora with that weight.",
                    self.cells.len(),
                    self.prompts.len(),
                    self.weights.len(),
                    if self.checkpoints.len() > 1 {
                        format!(" × {} checkpoints", self.checkpoints.len())
                    } else {
                        String::new()
                    },
                    self.lora_name,
                    self.seed,
                    self.contact_sheet.as_deref().unwrap_or("(none)"),
                    self.eval_md
                );
                if let Some(c) = &self.copied_to {
                    s.push_str(&format!(" The LoRA was copied to {c}."));
                }
                if self.cached_cells > 0 {
                    s.push_str(&format!(
                        " {} cells came from ComfyUI's cache (the same graph ran before).",
                        self.cached_cells
                    ));
                }
                s
            }
        }
    }
}

/// True for a checkpoint saved during training (`name-000005`, `name_000000250`).
fn is_intermediate(stem: &str) -> bool {
    let digits = stem.chars().rev().take_while(char::is_ascii_digit).count();
    digits >= 4
        && stem[..stem.len() - digits]
            .chars()
            .next_back()
            .is_some_and(|c| c == '-' || c == '_')
}

fn safetensors_in(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == "safetensors"))
        .collect();
    files.sort();
    files
}

/// The final LoRA of the project's newest run: `workspace/outputs/<project>/<run>/`
/// (run folders are named by time), the file without a step number.
pub fn final_lora(ws: &Workspace, project: &str) -> Option<PathBuf> {
    let base = ws.work_dir().join("outputs").join(project);
    let mut runs: Vec<PathBuf> = std::fs::read_dir(&base)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    runs.sort();
    runs.reverse();
    runs.push(base);
    for run in runs {
        let mut files = safetensors_in(&run);
        for sub in std::fs::read_dir(&run).into_iter().flatten().flatten() {
            if sub.path().is_dir() {
                files.extend(safetensors_in(&sub.path()));
            }
        }
        let final_one = files.iter().find(|f| {
            f.file_stem()
                .and_then(|s| s.to_str())
                .is_some_and(|s| !is_intermediate(s))
        });
        if let Some(f) = final_one.or(files.last()) {
            return Some(f.clone());
        }
    }
    None
}

/// A label as a file-name part.
fn slug(text: &str) -> String {
    let s: String = text
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    let s = s
        .split('-')
        .filter(|p| !p.is_empty())
        .take(4)
        .collect::<Vec<_>>()
        .join("-");
    if s.is_empty() { "prompt".into() } else { s }
}

fn invalid(message: String, hint: &str) -> ComfyError {
    ComfyError::Invalid {
        message,
        hint: hint.to_string(),
    }
}

/// The grid's rows: the given prompts (trigger word added where missing) or
/// the training type's standard ones.
fn prompt_rows(p: &Project, given: &[String]) -> Result<Vec<PromptRow>, ComfyError> {
    if given.len() > MAX_PROMPTS {
        return Err(invalid(
            format!("{} prompts is too many for one grid", given.len()),
            &format!("give at most {MAX_PROMPTS}; every prompt is a row of the sheet"),
        ));
    }
    let t = &p.trigger_word;
    if given.is_empty() {
        return Ok(default_prompts(p.training_type)
            .iter()
            .map(|(label, text)| PromptRow {
                label: label.to_string(),
                text: text.replace("{t}", t),
            })
            .collect());
    }
    given
        .iter()
        .map(|g| {
            let g = g.trim();
            if g.is_empty() {
                return Err(invalid(
                    "a prompt is empty".into(),
                    "give each prompt some words",
                ));
            }
            let text = if t.is_empty() || g.contains(t.as_str()) {
                g.to_string()
            } else {
                format!("{t}, {g}")
            };
            let label = g.replacen(t.as_str(), "", 1);
            let label = label.trim_matches(|c: char| c == ',' || c.is_whitespace());
            Ok(PromptRow {
                label: if label.is_empty() {
                    g.to_string()
                } else {
                    label.to_string()
                },
                text,
            })
        })
        .collect()
}

fn check_weights(given: &[f32]) -> Result<Vec<f32>, ComfyError> {
    if given.is_empty() {
        return Ok(DEFAULT_WEIGHTS.to_vec());
    }
    if given.len() > MAX_WEIGHTS {
        return Err(invalid(
            format!("{} weights is too many for one grid", given.len()),
            &format!("give at most {MAX_WEIGHTS}, e.g. 0.3 0.5 0.7 0.9 1.0"),
        ));
    }
    for w in given {
        if !(*w > 0.0 && *w <= 2.0) {
            return Err(invalid(
                format!("`{w}` is not a usable LoRA weight"),
                "give weights between 0 and 2, e.g. 0.3 0.5 0.7 0.9 1.0",
            ));
        }
    }
    Ok(given.to_vec())
}

/// The cell's graph.
#[allow(clippy::too_many_arguments)]
fn cell_graph(
    model: &'static ModelSpec,
    checkpoint: &str,
    prompt: &str,
    weight: f32,
    seed: u64,
    steps: Option<u32>,
    lora_name: &str,
    prefix: &str,
    resolution: Option<u32>,
) -> Result<Workflow, ComfyError> {
    let flux = model.family == ModelFamily::Flux;
    let t =
        templates::find(if flux { "lora-test-flux" } else { "lora-test" }).ok_or_else(|| {
            invalid(
                "the LoRA test template is missing".into(),
                "this is a bug in Ategnatos",
            )
        })?;
    let mut v = Map::new();
    v.insert(
        (if flux { "unet" } else { "checkpoint" }).into(),
        json!(checkpoint),
    );
    v.insert("prompt".into(), json!(prompt));
    v.insert("seed".into(), json!(seed));
    v.insert("lora".into(), json!(lora_name));
    v.insert(
        "lora_weight".into(),
        json!((f64::from(weight) * 100.0).round() / 100.0),
    );
    v.insert("prefix".into(), json!(prefix));
    if let Some(s) = steps {
        v.insert("steps".into(), json!(s));
    }
    if let Some(r) = resolution {
        v.insert("width".into(), json!(r));
        v.insert("height".into(), json!(r));
    }
    Ok(t.fill(Some(model), &v)?)
}

/// Makes sure ComfyUI has the LoRA: present already, or copied into the
/// local ComfyUI's `models/loras/`. Returns the name ComfyUI lists it by and
/// where it was copied.
fn place_lora(
    ws: &Workspace,
    lora: &Path,
    installed: &[String],
    local: bool,
    comfyui_dir: Option<&Path>,
) -> Result<(String, Option<PathBuf>), ComfyError> {
    let name = lora
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("lora.safetensors")
        .to_string();
    let Some(dir) = comfyui_dir.filter(|_| local) else {
        if installed.contains(&name) {
            return Ok((name, None));
        }
        let how = if local {
            format!(
                "copy `{}` into ComfyUI's `models/loras/` folder as `{name}`, or give `comfyui_dir` (the folder with ComfyUI's main.py) and Ategnatos copies it; then run eval_grid again",
                ws.display_path(lora)
            )
        } else {
            format!(
                "this ComfyUI runs on another machine: upload `{}` into its `models/loras/` folder as `{name}`, then run eval_grid again",
                ws.display_path(lora)
            )
        };
        return Err(ComfyError::Rejected {
            message: "the LoRA is not in ComfyUI".into(),
            problems: vec![super::NodeProblem {
                node: "-".into(),
                class_type: "LoraLoader".into(),
                message: format!(
                    "LoRA '{name}' is not installed in this ComfyUI; {}. What to do: {how}",
                    client::listing(installed)
                ),
            }],
        });
    };
    let folder = settings::loras_folder(dir)?;
    let bytes_hash =
        |p: &Path| -> Option<blake3::Hash> { std::fs::read(p).ok().map(|b| blake3::hash(&b)) };
    let ours = bytes_hash(lora).ok_or_else(|| {
        invalid(
            format!("could not read the LoRA `{}`", ws.display_path(lora)),
            "check the file",
        )
    })?;
    let mut target_name = name.clone();
    let mut target = folder.join(&target_name);
    if target.exists() && bytes_hash(&target) != Some(ours) {
        // Another file of the same name: ours gets its content hash in the name.
        let stem = lora.file_stem().and_then(|s| s.to_str()).unwrap_or("lora");
        target_name = format!("{stem}-{}.safetensors", &ours.to_hex()[..8]);
        target = folder.join(&target_name);
    }
    if target.exists() && bytes_hash(&target) == Some(ours) {
        return Ok((target_name, None));
    }
    let bytes = std::fs::read(lora).map_err(|source| StudioError::Read {
        path: lora.to_path_buf(),
        source,
    })?;
    write_atomic(&target, &bytes)?;
    Ok((target_name, Some(target)))
}

/// Renders the grid (or saves it for later) into `workspace/outputs/<job>/`.
pub async fn eval_grid(
    ws: &Workspace,
    req: &EvalRequest,
    job: &str,
    progress: &dyn Progress,
) -> Result<EvalReport, ComfyError> {
    let p = project::load(ws, &req.project)?.ok_or_else(|| {
        invalid(
            format!("there is no project `{}`", req.project),
            "list_projects shows the projects",
        )
    })?;
    let model = catalog::lookup(&p.base_model)
        .map_err(|e| invalid(e.to_string(), &e.hint().unwrap_or_default()))?;
    if model.family == ModelFamily::Sd3 {
        return Err(invalid(
            format!("there is no evaluation template for {} yet", model.name),
            "render the grid with your own workflow through comfyui_submit",
        ));
    }
    let plan = load_plan(ws, &req.project)?;
    let lora = match &req.lora {
        Some(l) => l.clone(),
        None => final_lora(ws, &req.project).ok_or_else(|| {
            invalid(
                format!(
                    "project `{}` has no trained LoRA in workspace/outputs/{}/",
                    req.project, req.project
                ),
                "train it first, or give the LoRA file with `lora`",
            )
        })?,
    };
    if !lora.is_file() {
        return Err(invalid(
            format!("the LoRA `{}` does not exist", ws.display_path(&lora)),
            "give a .safetensors file inside the workspace",
        ));
    }
    let prompts = prompt_rows(&p, &req.prompts)?;
    let weights = check_weights(&req.weights)?;
    if req.checkpoints.len() > MAX_CHECKPOINTS {
        return Err(invalid(
            format!(
                "{} checkpoints is too many for one grid",
                req.checkpoints.len()
            ),
            &format!("compare at most {MAX_CHECKPOINTS} at a time"),
        ));
    }
    let checkpoints: Vec<String> = if req.checkpoints.is_empty() {
        vec![model.checkpoint_file.to_string()]
    } else {
        req.checkpoints
            .iter()
            .map(|c| c.trim().to_string())
            .collect()
    };
    let seed = req
        .seed
        .or(plan.as_ref().map(|pl| pl.seed))
        .unwrap_or(DEFAULT_SEED);
    let resolution = plan.as_ref().map(|pl| pl.resolution);
    let saved = settings::load(ws, &req.project)?;
    let comfyui_dir = req
        .comfyui_dir
        .clone()
        .or_else(|| saved.comfyui_dir.as_ref().map(PathBuf::from));
    if let Some(d) = &req.comfyui_dir {
        settings::loras_folder(d)?;
    }
    let (url, from) = settings::resolve_url(req.server.as_deref(), ws, Some(&req.project))?;
    let client = ComfyClient::new(url.clone())?;
    let staging = Staging::new(ws, job)?;
    let lora_file_name = lora
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("lora.safetensors")
        .to_string();
    let mut report = EvalReport {
        outcome: EvalOutcome::Rendered,
        project: req.project.clone(),
        server: url.to_string(),
        server_from: from,
        lora: ws.display_path(&lora),
        lora_name: lora_file_name.clone(),
        copied_to: None,
        checkpoints: checkpoints.clone(),
        prompts: prompts.clone(),
        weights: weights.clone(),
        seed,
        folder: ws.display_path(staging.dest()),
        contact_sheet: None,
        eval_md: ws.display_path(&ws.project_dir(&req.project)?.join("eval.md")),
        cells: Vec::new(),
        cached_cells: 0,
        saved_workflows: Vec::new(),
        not_rendered_because: None,
        preview: None,
    };
    let total = (checkpoints.len() * prompts.len() * weights.len()) as u64;
    progress.report(0, Some(total), &format!("asking ComfyUI at {url}"));
    let inv = match inventory::fetch(&client).await {
        Ok(inv) => inv,
        Err(ComfyError::Unreachable { reason, .. }) => {
            report.outcome = EvalOutcome::SavedForLater;
            report.not_rendered_because = Some(reason);
            for (ci, ckpt) in checkpoints.iter().enumerate() {
                for (pi, row) in prompts.iter().enumerate() {
                    for w in &weights {
                        let wf = cell_graph(
                            model,
                            ckpt,
                            &row.text,
                            *w,
                            seed,
                            req.steps,
                            &lora_file_name,
                            &format!(
                                "ategnatos_eval/{job}/c{}_{}_w{w:.2}",
                                ci + 1,
                                slug(&row.label)
                            ),
                            resolution,
                        )?;
                        let file = staging.path().join("workflows").join(format!(
                            "c{}-p{}-{}-w{w:.2}.json",
                            ci + 1,
                            pi + 1,
                            slug(&row.label)
                        ));
                        write_atomic(&file, wf.to_pretty().as_bytes())?;
                        report
                            .saved_workflows
                            .push(ws.display_path(&staging.final_path(&file)));
                    }
                }
            }
            staging.commit()?;
            return Ok(report);
        }
        Err(e) => return Err(e),
    };
    inventory::save(ws, &inv)?;
    let installed_models = if model.family == ModelFamily::Flux {
        &inv.diffusion_models
    } else {
        &inv.checkpoints
    };
    let missing: Vec<super::NodeProblem> = checkpoints
        .iter()
        .filter(|c| !installed_models.contains(c))
        .map(|c| super::NodeProblem {
            node: "-".into(),
            class_type: if model.family == ModelFamily::Flux {
                "UNETLoader"
            } else {
                "CheckpointLoaderSimple"
            }
            .into(),
            message: format!(
                "{} '{c}' is not installed in this ComfyUI; {}",
                if model.family == ModelFamily::Flux {
                    "diffusion model"
                } else {
                    "checkpoint"
                },
                client::listing(installed_models)
            ),
        })
        .collect();
    if !missing.is_empty() {
        return Err(ComfyError::Rejected {
            message: "a checkpoint is not in ComfyUI".into(),
            problems: missing,
        });
    }
    let (lora_name, copied) = place_lora(
        ws,
        &lora,
        &inv.loras,
        url.is_loopback(),
        comfyui_dir.as_deref(),
    )?;
    report.lora_name = lora_name.clone();
    report.copied_to = copied.map(|c| c.display().to_string());
    if let Some(d) = &req.comfyui_dir {
        let mut s = saved.clone();
        s.comfyui_dir = Some(d.display().to_string());
        settings::save(ws, &req.project, &s)?;
    }
    let options = FollowOptions {
        timeout: req.cell_timeout,
        ..FollowOptions::default()
    };
    let mut blocks = Vec::new();
    let mut n: u64 = 0;
    for (ci, ckpt) in checkpoints.iter().enumerate() {
        let mut block = Block {
            title: format!("{ckpt} + {lora_name}, seed {seed}"),
            rows: prompts.iter().map(|r| r.label.clone()).collect(),
            columns: weights.iter().map(|w| format!("{w:.2}")).collect(),
            cells: Vec::new(),
        };
        for (pi, row) in prompts.iter().enumerate() {
            let mut cells = Vec::new();
            for w in &weights {
                let label = format!("cell {} of {total} ({}, weight {w:.2})", n + 1, row.label);
                let wf = cell_graph(
                    model,
                    ckpt,
                    &row.text,
                    *w,
                    seed,
                    req.steps,
                    &lora_name,
                    &format!(
                        "ategnatos_eval/{job}/c{}_{}_w{w:.2}",
                        ci + 1,
                        slug(&row.label)
                    ),
                    resolution,
                )?;
                let finished = follow::run_prompt(
                    &client,
                    &wf,
                    &options,
                    &|| progress.is_cancelled(),
                    &mut |live| {
                        progress.report(n, Some(total), &format!("{label}: {}", live.describe()))
                    },
                )
                .await?;
                let first = finished
                    .outputs
                    .first()
                    .cloned()
                    .ok_or(ComfyError::NoOutputs)?;
                // One file per cell, named by its place in the grid (the
                // prompt's number keeps two similar labels apart).
                let stem = format!("c{}-p{}-{}-w{w:.2}", ci + 1, pi + 1, slug(&row.label));
                let cell_dir = staging.path().join("cells").join(format!(".{stem}"));
                let saved_cell = follow::download(&client, &[first], &cell_dir).await?;
                let Some(pic) = saved_cell.into_iter().next() else {
                    return Err(ComfyError::NoOutputs);
                };
                let ext = pic
                    .path
                    .extension()
                    .and_then(|e| e.to_str())
                    .unwrap_or("png");
                let path = staging.path().join("cells").join(format!("{stem}.{ext}"));
                std::fs::rename(&pic.path, &path).map_err(|source| StudioError::Write {
                    path: path.clone(),
                    source,
                })?;
                let _ = std::fs::remove_dir(&cell_dir);
                if finished.all_cached {
                    report.cached_cells += 1;
                }
                report.cells.push(Cell {
                    checkpoint: ckpt.clone(),
                    prompt: row.label.clone(),
                    weight: *w,
                    path: ws.display_path(&staging.final_path(&path)),
                });
                cells.push(Some(path));
                n += 1;
                progress.report(n, Some(total), &format!("{label}: done"));
            }
            block.cells.push(cells);
        }
        blocks.push(block);
    }
    progress.report(n, Some(total), "drawing the contact sheet");
    let title = format!("{}: LoRA weight grid", req.project);
    let (img, _) = sheet::draw(&title, &blocks, SHEET_CELL);
    let sheet_path = staging.path().join("contact-sheet.png");
    let mut png = std::io::Cursor::new(Vec::new());
    img.write_to(&mut png, image::ImageFormat::Png)
        .map_err(|e| {
            invalid(
                format!("the contact sheet could not be encoded: {e}"),
                "try again",
            )
        })?;
    write_atomic(&sheet_path, png.get_ref())?;
    report.preview = Some(preview::jpeg_within(
        &image::DynamicImage::ImageRgb8(img),
        SHEET_PREVIEW_SIDE,
        preview::PREVIEW_BUDGET_CHARS / 4 * 3,
    ));
    report.contact_sheet = Some(ws.display_path(&staging.final_path(&sheet_path)));
    staging.commit()?;
    write_eval_md(ws, &p, &report)?;
    Ok(report)
}

/// `grimoire/training/<project>/eval.md`: the grid and room for the verdict.
fn write_eval_md(ws: &Workspace, p: &Project, r: &EvalReport) -> Result<(), ComfyError> {
    let mut md = format!(
        "# Evaluation of {}\n\nLoRA `{}` ({}), trigger `{}`, seed {}, rendered by ComfyUI at {}.\n\nContact sheet: `{}` (rows are prompts, columns the LoRA weight).\n",
        p.name,
        r.lora_name,
        r.lora,
        p.trigger_word,
        r.seed,
        r.server,
        r.contact_sheet.as_deref().unwrap_or("(none)")
    );
    for ckpt in &r.checkpoints {
        md.push_str(&format!("\n## {ckpt}\n\n| Prompt |"));
        for w in &r.weights {
            md.push_str(&format!(" {w:.2} |"));
        }
        md.push_str("\n|---|");
        md.push_str(&"---|".repeat(r.weights.len()));
        md.push('\n');
        for row in &r.prompts {
            md.push_str(&format!("| {} |", row.label));
            for w in &r.weights {
                let cell = r.cells.iter().find(|c| {
                    &c.checkpoint == ckpt && c.prompt == row.label && (c.weight - w).abs() < 1e-6
                });
                md.push_str(&format!(
                    " {} |",
                    cell.map(|c| format!("`{}`", c.path))
                        .unwrap_or_else(|| "—".into())
                ));
            }
            md.push('\n');
        }
    }
    md.push_str("\n## Prompts\n\n");
    for row in &r.prompts {
        md.push_str(&format!("- {}: {}\n", row.label, row.text));
    }
    md.push_str("\n## Verdict\n\n- Best weight: \n- Best checkpoint: \n- What works: \n- What does not: \n- Approved (yes/no): \n");
    write_atomic(&ws.project_dir(&p.name)?.join("eval.md"), md.as_bytes())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_final_lora_is_the_newest_runs_file_without_a_step_number() {
        let dir = tempfile::tempdir().unwrap();
        let ws = Workspace::open(dir.path()).unwrap();
        assert!(final_lora(&ws, "fox").is_none());
        let runs = ws.work_dir().join("outputs").join("fox");
        for f in [
            "fox-20260101-000000/fox.safetensors",
            "fox-20260102-000000/fox-000005.safetensors",
            "fox-20260102-000000/fox.safetensors",
            "fox-20260102-000000/fox_000000250.safetensors",
        ] {
            write_atomic(&runs.join(f), b"x").unwrap();
        }
        assert_eq!(
            final_lora(&ws, "fox").unwrap(),
            runs.join("fox-20260102-000000/fox.safetensors")
        );
        assert!(
            is_intermediate("fox-000005")
                && !is_intermediate("fox-v2")
                && !is_intermediate("sdxl1024")
        );
    }

    #[test]
    fn prompts_carry_the_trigger_and_weights_are_checked() {
        let p = project::new_project(
            "fox",
            TrainingType::Object,
            "sdxl",
            "a lantern",
            "zkfox",
            "data",
            "txt",
        );
        let rows = prompt_rows(&p, &[]).unwrap();
        assert_eq!(rows.len(), 5);
        assert!(rows.iter().all(|r| r.text.contains("zkfox")));
        let rows = prompt_rows(&p, &["a red zkfox on snow".into(), "at night".into()]).unwrap();
        assert_eq!(rows[0].text, "a red zkfox on snow");
        assert_eq!(rows[1].text, "zkfox, at night");
        assert_eq!(rows[1].label, "at night");
        assert!(prompt_rows(&p, &[" ".into()]).is_err());
        assert_eq!(check_weights(&[]).unwrap(), DEFAULT_WEIGHTS);
        let e = check_weights(&[0.5, 3.0]).unwrap_err();
        assert!(e.to_string().contains("`3`"), "{e}");
    }
}
