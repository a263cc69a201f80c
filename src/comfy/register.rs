//! `register_lora`: once the artist approves a LoRA, it joins the studio's
//! LoRA table (`grimoire/studio.md`, from `grimoire/.state/studio/loras.json`)
//! with its trigger, recommended weight, base model, what it is good for and
//! how it was trained, and the project is marked COMPLETE.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::ComfyError;
use crate::plan::training::load_plan;
use crate::studio::project::{self, TrainingType};
use crate::studio::{StudioError, Workspace, clock, write_atomic, write_json_atomic};

/// One LoRA of the studio.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct LoraEntry {
    /// The file name (as ComfyUI lists it).
    pub file: String,
    /// Where it is in the workspace.
    pub path: String,
    pub project: String,
    pub training_type: TrainingType,
    pub trigger: String,
    pub recommended_weight: f32,
    pub base_model: String,
    pub good_for: String,
    /// Day it was registered (YYYY-MM-DD).
    pub date: String,
    /// The training in one line (rank, alpha, optimizer, learning rate, epochs, steps).
    pub training: String,
}

/// What `register_lora` returns.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct RegisterReport {
    pub entry: LoraEntry,
    pub studio_file: String,
    /// The project's status now: `COMPLETE`.
    pub project_status: String,
    /// True when an entry for the same file was replaced.
    pub replaced: bool,
}

impl RegisterReport {
    pub fn plain_summary(&self) -> String {
        format!(
            "Registered `{}` in {}: {} LoRA, trigger `{}`, weight {}, for {}. Project `{}` is COMPLETE.",
            self.entry.file,
            self.studio_file,
            self.entry.training_type.word(),
            self.entry.trigger,
            self.entry.recommended_weight,
            self.entry.base_model,
            self.entry.project
        )
    }
}

/// The project's completion record.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Completion {
    pub status: String,
    pub lora: String,
    pub completed_at: String,
}

fn loras_file(ws: &Workspace) -> PathBuf {
    ws.state_dir().join("studio").join("loras.json")
}

/// Every registered LoRA.
pub fn load_loras(ws: &Workspace) -> Result<Vec<LoraEntry>, StudioError> {
    Ok(ws.read_json(&loras_file(ws))?.unwrap_or_default())
}

/// The project's completion, when it is complete.
pub fn completion(ws: &Workspace, project: &str) -> Result<Option<Completion>, StudioError> {
    ws.read_json(&ws.project_state_dir(project)?.join("complete.json"))
}

/// What the artist says about the approved LoRA.
#[derive(Debug, Clone)]
pub struct Approval {
    /// The LoRA file (absolute, inside the workspace); default the run's final one.
    pub lora: Option<PathBuf>,
    pub recommended_weight: f32,
    pub good_for: Option<String>,
}

/// Adds the LoRA to the studio and marks the project COMPLETE.
pub fn register_lora(
    ws: &Workspace,
    project_name: &str,
    approval: &Approval,
) -> Result<RegisterReport, ComfyError> {
    let p = project::load(ws, project_name)?.ok_or_else(|| ComfyError::Invalid {
        message: format!("there is no project `{project_name}`"),
        hint: "list_projects shows the projects".into(),
    })?;
    let w = approval.recommended_weight;
    if !(w > 0.0 && w <= 2.0) {
        return Err(ComfyError::Invalid {
            message: format!("`{w}` is not a usable LoRA weight"),
            hint: "give the weight the artist liked on the evaluation grid, between 0 and 2 (usually 0.5 to 1.0)".into(),
        });
    }
    let lora = match &approval.lora {
        Some(l) => l.clone(),
        None => super::eval::final_lora(ws, project_name).ok_or_else(|| ComfyError::Invalid {
            message: format!(
                "project `{project_name}` has no trained LoRA in workspace/outputs/{project_name}/"
            ),
            hint: "train it first, or give the LoRA file with `lora`".into(),
        })?,
    };
    if !lora.is_file() {
        return Err(ComfyError::Invalid {
            message: format!("the LoRA `{}` does not exist", ws.display_path(&lora)),
            hint: "give a .safetensors file inside the workspace".into(),
        });
    }
    let file = lora
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default()
        .to_string();
    let training = match load_plan(ws, project_name)? {
        Some(plan) => format!(
            "{:?} via {:?}, rank {}, alpha {}, lr {}, {} epochs, {} steps, {} px",
            plan.optimizer,
            plan.backend,
            plan.rank,
            plan.alpha,
            plan.learning_rate,
            plan.epochs,
            plan.total_steps(),
            plan.resolution
        ),
        None => "(no plan recorded)".into(),
    };
    let base_model = crate::plan::catalog::lookup(&p.base_model)
        .map(|m| m.name.to_string())
        .unwrap_or_else(|_| p.base_model.clone());
    let now = clock::now_rfc3339();
    let entry = LoraEntry {
        file: file.clone(),
        path: ws.display_path(&lora),
        project: project_name.to_string(),
        training_type: p.training_type,
        trigger: p.trigger_word.clone(),
        recommended_weight: (w * 100.0).round() / 100.0,
        base_model,
        good_for: approval
            .good_for
            .clone()
            .filter(|g| !g.trim().is_empty())
            .unwrap_or_else(|| p.description.clone()),
        date: now.chars().take(10).collect(),
        training,
    };
    let mut all = load_loras(ws)?;
    let before = all.len();
    all.retain(|l| !(l.file == entry.file && l.project == entry.project));
    let replaced = all.len() != before;
    all.push(entry.clone());
    write_json_atomic(&loras_file(ws), &all)?;
    write_json_atomic(
        &ws.project_state_dir(project_name)?.join("complete.json"),
        &Completion {
            status: "COMPLETE".into(),
            lora: entry.path.clone(),
            completed_at: now.clone(),
        },
    )?;
    let eval_md = ws.project_dir(project_name)?.join("eval.md");
    if let Ok(text) = std::fs::read_to_string(&eval_md) {
        let note = format!(
            "\n## Registered\n\n{now}: `{file}` approved at weight {} and added to grimoire/studio.md. Project COMPLETE.\n",
            entry.recommended_weight
        );
        write_atomic(&eval_md, format!("{}\n{note}", text.trim_end()).as_bytes())?;
    }
    super::inventory::render_studio(ws)?;
    Ok(RegisterReport {
        entry,
        studio_file: "grimoire/studio.md".into(),
        project_status: "COMPLETE".into(),
        replaced,
    })
}
