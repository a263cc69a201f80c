//! Starting a training project: what to train, on which base model, with
//! which trigger word and pictures, written down as `intent.md` so every
//! later step (captions, gates, plan) works from the same intent.

use serde::Serialize;

use super::trigger::{TriggerCheck, TriggerError, check_trigger};
use crate::plan::catalog::{self, CaptionFormat, UnknownModel};
use crate::studio::Hint;
use crate::studio::project::{self, Project, TrainingType};
use crate::studio::{PathError, StudioError, Workspace};

/// What the artist asked for.
#[derive(Debug, Clone)]
pub struct ProjectRequest {
    pub name: String,
    pub training_type: TrainingType,
    pub base_model: String,
    pub description: String,
    pub trigger_word: String,
    /// Dataset folder as given (relative to the workspace root).
    pub dataset: String,
    pub caption_extension: String,
}

/// Why a project could not be started.
#[derive(Debug, thiserror::Error)]
pub enum IntentError {
    #[error(transparent)]
    Studio(#[from] StudioError),
    #[error(transparent)]
    Path(#[from] PathError),
    #[error(transparent)]
    Trigger(#[from] TriggerError),
    #[error(transparent)]
    Model(#[from] UnknownModel),
    #[error("a project named `{name}` already exists")]
    Exists { name: String },
    #[error("`{path}` is not a folder")]
    NotAFolder { path: String },
    #[error("there is no project named `{name}`")]
    NoSuchProject { name: String },
}

impl Hint for IntentError {
    fn hint(&self) -> Option<String> {
        match self {
            IntentError::Studio(e) => e.hint(),
            IntentError::Path(e) => e.hint(),
            IntentError::Trigger(e) => e.hint(),
            IntentError::Model(e) => e.hint(),
            IntentError::Exists { .. } => {
                Some("pick another name, or call project_status to see the existing one".into())
            }
            IntentError::NotAFolder { .. } => {
                Some("give the folder that holds the pictures".into())
            }
            IntentError::NoSuchProject { .. } => Some(
                "call list_projects to see the projects, or start_project to create one".into(),
            ),
        }
    }
}

/// A project that was just started.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct StartedProject {
    pub project: Project,
    /// `intent.md`, relative to the workspace.
    pub intent_file: String,
    /// Pictures currently in the dataset folder (by extension).
    pub pictures_found: usize,
    /// How many pictures this kind of LoRA wants.
    pub expected_min: usize,
    pub expected_max: usize,
    /// How captions should separate content and style for this type.
    pub caption_notes: Vec<String>,
    /// How CLIP's tokenizer splits the trigger word, and a warning when its
    /// pieces are all ordinary words.
    pub trigger: TriggerCheck,
    /// Where a damaged `project.json` of the same name was kept, when the
    /// project was started over it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub damaged_record_set_aside: Option<String>,
}

/// The steps from a started project to Gate 1, in the tools' names.
pub const STEPS_TO_GATE1: &str = "audit_dataset (fix what it reports), find_duplicates (quarantine_files the copies the artist agrees to set aside), caption_preview, the artist approves sample captions (approve_captions), write_captions for the rest, then run_gate with gate 1";

impl StartedProject {
    pub fn plain_summary(&self) -> String {
        let p = &self.project;
        let count = if self.pictures_found < self.expected_min {
            format!(
                "The folder has {} pictures; {} LoRA wants {}–{}, so add {} more varied ones before Gate 1.",
                self.pictures_found,
                p.training_type.with_article(),
                self.expected_min,
                self.expected_max,
                self.expected_min - self.pictures_found
            )
        } else if self.pictures_found > self.expected_max {
            format!(
                "The folder has {} pictures, more than the {}–{} {} LoRA needs; curating down to the most varied ones usually trains better.",
                self.pictures_found,
                self.expected_min,
                self.expected_max,
                p.training_type.with_article()
            )
        } else {
            format!(
                "The folder has {} pictures, within the {}–{} {} LoRA wants.",
                self.pictures_found,
                self.expected_min,
                self.expected_max,
                p.training_type.with_article()
            )
        };
        let set_aside = self
            .damaged_record_set_aside
            .as_ref()
            .map(|f| format!(" Its old record was damaged and unreadable; it was kept as `{f}`."))
            .unwrap_or_default();
        format!(
            "Started project `{}`: {} LoRA for {} answering to `{}`, pictures in `{}`. {} {count} The intent is written to {}.{set_aside} Next: {STEPS_TO_GATE1}.",
            p.name,
            p.training_type.with_article(),
            catalog::lookup(&p.base_model)
                .map(|m| m.name)
                .unwrap_or(&p.base_model),
            p.trigger_word,
            p.dataset,
            self.trigger.plain_summary(&p.trigger_word),
            self.intent_file
        )
    }
}

/// How captions should split content and style, per training type.
pub fn caption_notes(kind: TrainingType) -> Vec<String> {
    match kind {
        TrainingType::Style => vec![
            "Vary the content across pictures (subjects, settings, times of day) so the only constant is the style.".into(),
            "Each caption names what is in the picture and how it is made (medium, brushwork, palette, light, composition, edges, texture), trigger word first.".into(),
            "Describe the style in the same words every time, so the trigger word and those words carry it together.".into(),
        ],
        TrainingType::Character => vec![
            "Vary pose, outfit, expression, framing and background; keep the character recognisable in every picture.".into(),
            "Caption what can change (outfit, pose, place, expression) and leave out fixed traits (face shape, eye colour), so the trigger word learns them.".into(),
            "Include close-ups and full-body shots; no more than a third of the pictures from the same angle.".into(),
        ],
        TrainingType::Object => vec![
            "Show the object from many angles, in different places and light, alone and in use.".into(),
            "Caption the surroundings and the use; describe the object itself only by the trigger word (plus a class word such as `mug`).".into(),
        ],
    }
}

fn intent_markdown(p: &Project, model_name: &str, format: CaptionFormat, found: usize) -> String {
    let (lo, hi) = p.training_type.expected_images();
    let mut md = format!(
        "# Intent: {name}\n\n\
         - **What it learns:** {kind}\n\
         - **Base model:** {model_name} (`{model}`)\n\
         - **Trigger word:** `{trigger}`\n\
         - **Pictures:** `{dataset}` ({found} found; {kind} LoRA wants {lo}–{hi})\n\
         - **Captions:** `.{ext}` files beside the pictures, written as {format}, trigger word first\n\
         - **Started:** {created}\n\n\
         ## In the artist's words\n\n{description}\n\n\
         ## Content and style\n\n",
        name = p.name,
        kind = p.training_type.with_article(),
        model = p.base_model,
        trigger = p.trigger_word,
        dataset = p.dataset,
        ext = p.caption_extension,
        format = match format {
            CaptionFormat::Tags => "comma-separated tags",
            CaptionFormat::NaturalLanguage => "plain sentences",
        },
        created = p.created_at,
        description = if p.description.is_empty() {
            "(not given)"
        } else {
            &p.description
        },
    );
    for note in caption_notes(p.training_type) {
        md.push_str(&format!("- {note}\n"));
    }
    md
}

/// Starts a project: checks everything, then writes `project.json` and `intent.md`.
pub fn start_project(ws: &Workspace, req: &ProjectRequest) -> Result<StartedProject, IntentError> {
    crate::studio::check_project_name(&req.name)?;
    // A damaged record of the same name is no project to protect, but it
    // is kept: set aside under a new name once everything else checks out.
    let damaged = match project::load(ws, &req.name) {
        Ok(Some(_)) => {
            return Err(IntentError::Exists {
                name: req.name.clone(),
            });
        }
        Ok(None) => None,
        Err(StudioError::Corrupt { path, .. }) => Some(path),
        Err(e) => return Err(e.into()),
    };
    let model = catalog::lookup(&req.base_model)?;
    let trigger = check_trigger(&req.trigger_word)?;
    let dir = crate::studio::paths::resolve_existing(ws.root(), &req.dataset)?;
    if !dir.is_dir() {
        return Err(IntentError::NotAFolder {
            path: req.dataset.clone(),
        });
    }
    let listing = super::walk::list_files(&dir, ws.root()).map_err(|e| StudioError::Read {
        path: dir.clone(),
        source: e,
    })?;
    let found = listing
        .files
        .iter()
        .filter(|f| {
            super::inspect::extension_of(&f.path).is_some_and(|e| super::is_image_extension(&e))
        })
        .count();
    let damaged_record_set_aside = match damaged {
        Some(path) => {
            let kept = path.with_extension(format!(
                "json.damaged-{}",
                crate::studio::clock::stamp(crate::studio::clock::unix_now())
            ));
            std::fs::rename(&path, &kept).map_err(|source| StudioError::Write {
                path: kept.clone(),
                source,
            })?;
            Some(ws.display_path(&kept))
        }
        None => None,
    };
    let p = project::new_project(
        &req.name,
        req.training_type,
        model.id,
        &req.description,
        &req.trigger_word,
        &ws.display_path(&dir),
        &req.caption_extension,
    );
    project::save(
        ws,
        &p,
        &intent_markdown(&p, model.name, model.caption_format, found),
    )?;
    let (lo, hi) = p.training_type.expected_images();
    Ok(StartedProject {
        intent_file: ws.display_path(&ws.project_dir(&p.name)?.join("intent.md")),
        pictures_found: found,
        expected_min: lo,
        expected_max: hi,
        caption_notes: caption_notes(p.training_type),
        trigger,
        damaged_record_set_aside,
        project: p,
    })
}

/// Loads a project or says there is none.
pub fn require_project(ws: &Workspace, name: &str) -> Result<Project, IntentError> {
    project::load(ws, name)?.ok_or_else(|| IntentError::NoSuchProject {
        name: name.to_string(),
    })
}
