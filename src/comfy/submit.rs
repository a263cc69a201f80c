//! `comfyui_submit`: one workflow (a template, a saved one, a file or
//! inline JSON) rendered by ComfyUI into `workspace/outputs/<job>/`, with
//! progress while it runs and small previews of the results.
//!
//! When ComfyUI cannot be reached, the filled workflow is saved in that
//! folder instead, with a note on how to run it later.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;
use serde_json::{Map, Value, json};

use super::client::FileRef;
use super::follow::{self, FollowOptions};
use super::settings::{self, UrlSource};
use super::staging::Staging;
use super::{ComfyClient, ComfyError, NodeProblem, Workflow, WorkflowError, preview, templates};
use crate::plan::catalog;
use crate::studio::Hint;
use crate::studio::{Progress, Workspace, project, write_atomic};

/// Where the workflow comes from.
#[derive(Debug, Clone)]
pub enum Source {
    /// One of ours ([`templates::TEMPLATES`]) or one saved in `grimoire/workflows/`.
    Named(String),
    /// An API-format JSON file (absolute path, inside the workspace).
    File(PathBuf),
    /// API-format JSON given inline.
    Inline(Value),
}

impl Source {
    /// What a workflow argument names: a file (a `.json` name or a path),
    /// else a template or a saved workflow. A file is not resolved here:
    /// each face checks it lies inside the workspace first.
    pub fn names_a_file(workflow: &str) -> bool {
        workflow.ends_with(".json") || workflow.contains('/') || workflow.contains('\\')
    }

    /// The start of the output folder's name: the template's or file's name.
    pub fn folder_prefix(&self) -> String {
        match self {
            Source::Named(n) => n.clone(),
            Source::File(p) => p
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or("render")
                .to_string(),
            Source::Inline(_) => "render".into(),
        }
    }
}

/// What to render.
#[derive(Debug, Clone)]
pub struct SubmitRequest {
    pub source: Source,
    /// Template parameters by name, or `node_id.input_name` for any workflow.
    pub params: Map<String, Value>,
    /// Pictures to upload, in the order of the workflow's LoadImage nodes.
    pub inputs: Vec<PathBuf>,
    pub project: Option<String>,
    /// Base model id for a template's defaults (else the project's).
    pub base_model: Option<String>,
    pub server: Option<String>,
    /// Longest the render may take.
    pub timeout: Duration,
}

/// How a submission ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Rendered,
    /// ComfyUI was not reachable: the workflow is saved to run later.
    SavedForLater,
}

/// A picture in the result, by workspace path.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct OutputPicture {
    pub path: String,
    pub width: u32,
    pub height: u32,
    pub node: String,
}

/// An input picture as ComfyUI stored it.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Upload {
    pub from: String,
    /// The name the server gave it (it renames clashes).
    pub uploaded_as: String,
    pub node: String,
}

/// What `comfyui_submit` returns.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct SubmitReport {
    pub outcome: Outcome,
    pub server: String,
    pub server_from: UrlSource,
    pub workflow: String,
    /// The result folder (workspace-relative).
    pub folder: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prompt_id: Option<String>,
    pub outputs: Vec<OutputPicture>,
    /// The filled workflow as submitted (or to submit later).
    pub workflow_file: String,
    /// True when ComfyUI reused an earlier identical run (same pictures).
    pub cached: bool,
    pub uploads: Vec<Upload>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<NodeProblem>,
    /// Why it was not rendered (when saved for later).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_rendered_because: Option<String>,
    /// JPEG previews of the outputs (long side ≤ 512 px), for the tool's
    /// image blocks.
    #[serde(skip)]
    pub previews: Vec<Vec<u8>>,
}

impl SubmitReport {
    pub fn plain_summary(&self) -> String {
        match self.outcome {
            Outcome::SavedForLater => {
                let mut s = format!(
                    "ComfyUI is not answering at {} ({}). Nothing was rendered. The workflow is saved as {}: start ComfyUI and submit that file again (comfyui_submit with workflow `{}`), or drag it into ComfyUI's window.",
                    self.server,
                    self.not_rendered_because.as_deref().unwrap_or("no answer"),
                    self.workflow_file,
                    self.workflow_file
                );
                if !self.uploads.is_empty() {
                    let names: Vec<&str> = self.uploads.iter().map(|u| u.from.as_str()).collect();
                    s.push_str(&format!(
                        " Give the same input pictures again then ({}).",
                        names.join(", ")
                    ));
                }
                s
            }
            Outcome::Rendered => {
                let mut s = format!(
                    "ComfyUI at {} rendered `{}`: {} picture{} in {}",
                    self.server,
                    self.workflow,
                    self.outputs.len(),
                    if self.outputs.len() == 1 { "" } else { "s" },
                    self.folder
                );
                if let Some(first) = self.outputs.first() {
                    s.push_str(&format!(" ({}×{} px)", first.width, first.height));
                }
                s.push('.');
                if self.cached {
                    s.push_str(" ComfyUI had rendered this exact workflow before and gave back the same pictures; change the seed for new ones.");
                }
                for w in &self.warnings {
                    s.push_str(&format!(
                        " Skipped output node {} ({}): {}.",
                        w.node, w.class_type, w.message
                    ));
                }
                s
            }
        }
    }
}

/// The artist's own workflows: `grimoire/workflows/`.
pub fn workflows_dir(ws: &Workspace) -> PathBuf {
    ws.grimoire().join("workflows")
}

fn read_workflow_file(ws: &Workspace, path: &Path) -> Result<Workflow, ComfyError> {
    let text = std::fs::read_to_string(path).map_err(|e| WorkflowError::Read {
        path: ws.display_path(path),
        reason: e.to_string(),
    })?;
    Ok(Workflow::from_json(&text)?)
}

/// A plain workflow name (`portrait-setup`).
pub fn check_workflow_name(name: &str) -> Result<(), ComfyError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && !name.starts_with(['-', '.'])
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if ok {
        Ok(())
    } else {
        Err(ComfyError::Invalid {
            message: format!("`{name}` is not a usable workflow name"),
            hint: "use 1 to 64 letters, digits, `-` or `_`, for example `portrait-setup`".into(),
        })
    }
}

/// The filled workflow and its display name.
fn build(ws: &Workspace, req: &SubmitRequest) -> Result<(Workflow, String), ComfyError> {
    let project = match &req.project {
        Some(p) => Some(project::load(ws, p)?.ok_or_else(|| ComfyError::Invalid {
            message: format!("there is no project `{p}`"),
            hint: "list_projects shows the projects; start_project makes one".into(),
        })?),
        None => None,
    };
    let (mut wf, name, template) = match &req.source {
        Source::Named(name) => {
            if let Some(t) = templates::find(name) {
                let model_id = req
                    .base_model
                    .clone()
                    .or_else(|| project.as_ref().map(|p| p.base_model.clone()));
                let model = match (&model_id, t.family) {
                    (_, templates::Family::Any) | (None, _) => None,
                    (Some(id), _) => {
                        Some(catalog::lookup(id).map_err(|e| ComfyError::Invalid {
                            message: e.to_string(),
                            hint: e.hint().unwrap_or_default(),
                        })?)
                    }
                };
                let mut values = req.params.clone();
                if let Some(p) = &project {
                    project_defaults(ws, p, t, &mut values);
                }
                (t.fill(model, &values)?, t.name.to_string(), Some(t))
            } else {
                check_workflow_name(name).map_err(|_| unknown(ws, name))?;
                let path = workflows_dir(ws).join(format!("{name}.json"));
                if !path.is_file() {
                    return Err(unknown(ws, name));
                }
                (read_workflow_file(ws, &path)?, name.clone(), None)
            }
        }
        Source::File(path) => (read_workflow_file(ws, path)?, ws.display_path(path), None),
        Source::Inline(v) => (
            Workflow::from_value(v.clone())?,
            "inline workflow".into(),
            None,
        ),
    };
    if template.is_none() {
        for (key, value) in &req.params {
            let Some((node, input)) = key.split_once('.') else {
                return Err(WorkflowError::BadParameter {
                    name: key.clone(),
                    reason:
                        "a workflow that is not a template takes parameters as `node_id.input_name`"
                            .into(),
                    hint: "for example `3.seed` or `6.text`, with the ids of the workflow file"
                        .into(),
                }
                .into());
            };
            wf.set_input(node, input, value.clone())?;
        }
    }
    Ok((wf, name))
}

fn unknown(ws: &Workspace, name: &str) -> ComfyError {
    let mut known: Vec<String> = templates::TEMPLATES
        .iter()
        .map(|t| t.name.to_string())
        .collect();
    known.extend(saved_workflows(ws));
    WorkflowError::Unknown {
        name: name.to_string(),
        known: known.join(", "),
    }
    .into()
}

/// Names of the workflows saved in `grimoire/workflows/`.
pub fn saved_workflows(ws: &Workspace) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(workflows_dir(ws)) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .filter_map(|e| {
            let name = e.ok()?.file_name().into_string().ok()?;
            name.strip_suffix(".json").map(String::from)
        })
        .filter(|n| check_workflow_name(n).is_ok())
        .collect();
    names.sort();
    names
}

/// A template's values from the project: its LoRA and trigger word.
fn project_defaults(
    ws: &Workspace,
    p: &project::Project,
    t: &templates::Template,
    values: &mut Map<String, Value>,
) {
    if t.param("lora").is_none() {
        return;
    }
    if !values.contains_key("lora")
        && let Some(lora) = super::eval::final_lora(ws, &p.name)
        && let Some(name) = lora.file_name().and_then(|n| n.to_str())
    {
        values.insert("lora".into(), json!(name));
    }
    if let Some(Value::String(prompt)) = values.get("prompt")
        && !p.trigger_word.is_empty()
        && !prompt.contains(&p.trigger_word)
    {
        let with = format!("{}, {prompt}", p.trigger_word);
        values.insert("prompt".into(), json!(with));
    }
}

/// Renders (or saves for later) one workflow into `workspace/outputs/<job>/`.
pub async fn submit(
    ws: &Workspace,
    req: &SubmitRequest,
    job: &str,
    progress: &dyn Progress,
) -> Result<SubmitReport, ComfyError> {
    let (mut wf, name) = build(ws, req)?;
    let load_nodes = wf.nodes_of_class("LoadImage");
    if req.inputs.len() > load_nodes.len() {
        return Err(ComfyError::Invalid {
            message: format!(
                "{} input picture{} given, but the workflow has {} LoadImage node{}",
                req.inputs.len(),
                if req.inputs.len() == 1 { "" } else { "s" },
                load_nodes.len(),
                if load_nodes.len() == 1 { "" } else { "s" }
            ),
            hint: "give one picture per LoadImage node, in the order of their node ids".into(),
        });
    }
    for input in &req.inputs {
        if !input.is_file() {
            return Err(ComfyError::Invalid {
                message: format!(
                    "the input picture `{}` does not exist",
                    ws.display_path(input)
                ),
                hint: "give a picture file inside the workspace".into(),
            });
        }
    }
    let (url, from) = settings::resolve_url(req.server.as_deref(), ws, req.project.as_deref())?;
    let client = ComfyClient::new(url.clone())?;
    let staging = Staging::new(ws, job)?;
    let workflow_path = staging.path().join("workflow.json");
    let mut report = SubmitReport {
        outcome: Outcome::Rendered,
        server: url.to_string(),
        server_from: from,
        workflow: name,
        folder: ws.display_path(staging.dest()),
        prompt_id: None,
        outputs: Vec::new(),
        workflow_file: ws.display_path(&staging.final_path(&workflow_path)),
        cached: false,
        uploads: Vec::new(),
        warnings: Vec::new(),
        not_rendered_because: None,
        previews: Vec::new(),
    };
    progress.report(0, None, &format!("asking ComfyUI at {url}"));
    if let Err(e) = client.system_stats().await {
        let ComfyError::Unreachable { reason, .. } = e else {
            return Err(e);
        };
        report.outcome = Outcome::SavedForLater;
        report.not_rendered_because = Some(reason);
        for (input, node) in req.inputs.iter().zip(&load_nodes) {
            report.uploads.push(Upload {
                from: ws.display_path(input),
                uploaded_as: String::new(),
                node: node.clone(),
            });
        }
        write_atomic(&workflow_path, wf.to_pretty().as_bytes())?;
        staging.commit()?;
        return Ok(report);
    }
    for (input, node) in req.inputs.iter().zip(&load_nodes) {
        if progress.is_cancelled() {
            return Err(ComfyError::Cancelled);
        }
        let bytes = std::fs::read(input).map_err(|e| ComfyError::Invalid {
            message: format!("could not read `{}`: {e}", ws.display_path(input)),
            hint: "check the file's permissions".into(),
        })?;
        let file_name = input
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("input.png");
        progress.report(0, None, &format!("uploading {file_name}"));
        let stored: FileRef = client.upload_image(file_name, bytes).await?;
        wf.set_input(node, "image", json!(stored.load_image_name()))?;
        report.uploads.push(Upload {
            from: ws.display_path(input),
            uploaded_as: stored.load_image_name(),
            node: node.clone(),
        });
    }
    let options = FollowOptions {
        timeout: req.timeout,
        ..FollowOptions::default()
    };
    let finished = follow::run_prompt(
        &client,
        &wf,
        &options,
        &|| progress.is_cancelled(),
        &mut |live| {
            progress.report(
                live.nodes_done as u64,
                Some(live.nodes_total as u64),
                &live.describe(),
            )
        },
    )
    .await?;
    if finished.outputs.is_empty() {
        return Err(ComfyError::NoOutputs);
    }
    progress.report(0, None, "fetching the pictures");
    let saved = follow::download(&client, &finished.outputs, staging.path()).await?;
    write_atomic(&workflow_path, wf.to_pretty().as_bytes())?;
    let paths: Vec<&Path> = saved.iter().map(|s| s.path.as_path()).collect();
    report.previews = preview::previews(&paths, preview::PREVIEW_SIDE);
    report.outputs = saved
        .iter()
        .map(|s| OutputPicture {
            path: ws.display_path(&staging.final_path(&s.path)),
            width: s.width,
            height: s.height,
            node: s.node.clone(),
        })
        .collect();
    report.prompt_id = Some(finished.prompt_id);
    report.cached = finished.all_cached;
    report.warnings = finished.warnings;
    staging.commit()?;
    if let (Some(p), UrlSource::Argument) = (&req.project, from) {
        let mut s = settings::load(ws, p)?;
        s.url = Some(url.to_string());
        settings::save(ws, p, &s)?;
    }
    Ok(report)
}
/// Saves `source` as `grimoire/workflows/<name>.json` (API format, checked).
pub fn save_workflow(ws: &Workspace, name: &str, source: &Source) -> Result<String, ComfyError> {
    check_workflow_name(name)?;
    if templates::find(name).is_some() {
        return Err(ComfyError::Invalid {
            message: format!("`{name}` is the name of one of our templates"),
            hint: "pick another name for your workflow".into(),
        });
    }
    let wf = match source {
        Source::Inline(v) => Workflow::from_value(v.clone())?,
        Source::File(p) => {
            let text = std::fs::read_to_string(p).map_err(|e| ComfyError::Invalid {
                message: format!("could not read `{}`: {e}", ws.display_path(p)),
                hint: "check the file's permissions".into(),
            })?;
            Workflow::from_json(&text)?
        }
        Source::Named(n) => {
            return Err(ComfyError::Invalid {
                message: format!("`{n}` is already a template or saved workflow"),
                hint: "give a .json file or an inline `graph` to save".into(),
            });
        }
    };
    let path = workflows_dir(ws).join(format!("{name}.json"));
    write_atomic(&path, wf.to_pretty().as_bytes())?;
    Ok(ws.display_path(&path))
}

/// A fresh output folder name: `<prefix>-<time>`, numbered if taken.
pub fn output_folder_name(ws: &Workspace, prefix: &str) -> String {
    let clean: String = prefix
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect::<String>()
        .split('-')
        .filter(|s| !s.is_empty())
        .take(4)
        .collect::<Vec<_>>()
        .join("-");
    let clean = if clean.is_empty() {
        "render".to_string()
    } else {
        clean
    };
    let stamp = crate::studio::clock::stamp(crate::studio::clock::unix_now());
    let base = format!("{clean}-{stamp}");
    let outputs = ws.work_dir().join("outputs");
    let mut name = base.clone();
    let mut n = 2;
    while outputs.join(&name).exists() || outputs.join(format!(".{name}.partial")).exists() {
        name = format!("{base}-{n}");
        n += 1;
    }
    name
}
