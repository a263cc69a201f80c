//! Training projects: what an artist wants to train, kept as
//! `grimoire/.state/projects/<name>/project.json` (the source of truth) and
//! rendered for people as `grimoire/training/<name>/intent.md`.

use serde::{Deserialize, Serialize};

use super::{StudioError, Workspace, clock, write_atomic, write_json_atomic};

/// What the LoRA should learn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TrainingType {
    /// How pictures look: medium, brushwork, palette, light, edges.
    Style,
    /// Who is in the pictures.
    Character,
    /// A thing: a prop, a piece of clothing, a product.
    Object,
}

impl std::str::FromStr for TrainingType {
    type Err = String;

    /// `style`, `character` or `object`, in any case; anything else is
    /// refused with the three words.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "style" => Ok(TrainingType::Style),
            "character" => Ok(TrainingType::Character),
            "object" => Ok(TrainingType::Object),
            other => Err(format!(
                "`{other}` is not a training type: use style, character or object"
            )),
        }
    }
}

impl TrainingType {
    /// How many pictures this kind of LoRA wants (inclusive).
    pub fn expected_images(self) -> (usize, usize) {
        match self {
            TrainingType::Style => (20, 100),
            TrainingType::Character => (15, 40),
            TrainingType::Object => (10, 30),
        }
    }

    pub fn word(self) -> &'static str {
        match self {
            TrainingType::Style => "style",
            TrainingType::Character => "character",
            TrainingType::Object => "object",
        }
    }

    /// The word with its article: `a style`, `an object`.
    pub fn with_article(self) -> &'static str {
        match self {
            TrainingType::Style => "a style",
            TrainingType::Character => "a character",
            TrainingType::Object => "an object",
        }
    }
}

/// A training project.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Project {
    pub name: String,
    pub training_type: TrainingType,
    /// Catalog id of the base model (`sd15`, `sdxl`, `flux-dev`, ...).
    pub base_model: String,
    /// What the artist wants, in their words.
    pub description: String,
    pub trigger_word: String,
    /// The dataset folder, relative to the workspace root.
    pub dataset: String,
    /// Caption file extension, without the dot.
    pub caption_extension: String,
    pub created_at: String,
}

fn project_file(ws: &Workspace, name: &str) -> Result<std::path::PathBuf, StudioError> {
    Ok(ws.project_state_dir(name)?.join("project.json"))
}

/// Loads a project, `None` when there is none of that name.
pub fn load(ws: &Workspace, name: &str) -> Result<Option<Project>, StudioError> {
    ws.read_json(&project_file(ws, name)?)
}

/// Saves the project record and renders `intent.md`.
pub fn save(ws: &Workspace, project: &Project, intent_md: &str) -> Result<(), StudioError> {
    write_json_atomic(&project_file(ws, &project.name)?, project)?;
    write_atomic(
        &ws.project_dir(&project.name)?.join("intent.md"),
        intent_md.as_bytes(),
    )
}

/// Every project, by name.
pub fn list(ws: &Workspace) -> Vec<Project> {
    let Ok(entries) = std::fs::read_dir(ws.state_dir().join("projects")) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok()?.file_name().to_str().map(String::from))
        .collect();
    names.sort();
    names
        .iter()
        .filter_map(|n| load(ws, n).ok().flatten())
        .collect()
}

/// A new project record stamped now.
pub fn new_project(
    name: &str,
    training_type: TrainingType,
    base_model: &str,
    description: &str,
    trigger_word: &str,
    dataset: &str,
    caption_extension: &str,
) -> Project {
    Project {
        name: name.to_string(),
        training_type,
        base_model: base_model.to_string(),
        description: description.trim().to_string(),
        trigger_word: trigger_word.trim().to_string(),
        dataset: dataset.to_string(),
        caption_extension: caption_extension.trim_start_matches('.').to_string(),
        created_at: clock::now_rfc3339(),
    }
}
