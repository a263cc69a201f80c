//! The prompts that worked, per model family (prompt syntax differs between
//! them: SD1.5 and SDXL weights, Pony's score tags, Flux sentences), with
//! their parameters and notes on the result; and each asset's versions, so
//! "go back to version 3 but warmer" starts from version 3's exact prompt.
//!
//! The library is `grimoire/.state/prompts/<family>.json`, shown as
//! `grimoire/prompts/<family>.md`; an asset's versions are
//! `grimoire/projects/<project>/assets/<asset>/versions.json`, shown as
//! `versions.md` beside it. A record that cannot be read is refused, never
//! written over.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::studio::{
    Hint, PathError, StudioError, Workspace, check_project_name, clock, write_atomic,
    write_json_atomic,
};

/// The families prompts are kept under, and the catalog ids that map to them.
pub const FAMILIES: &[(&str, &[&str])] = &[
    ("sd15", &["sd15", "sd1.5", "sd-1.5"]),
    ("sdxl", &["sdxl"]),
    ("pony", &["pony"]),
    ("illustrious", &["illustrious"]),
    ("flux", &["flux", "flux-dev", "flux-schnell"]),
    ("sd35", &["sd35", "sd3.5", "sd35-medium", "sd35-large"]),
];

/// The family a name belongs to.
pub fn family_of(name: &str) -> Option<&'static str> {
    let n = name.trim().to_lowercase();
    FAMILIES
        .iter()
        .find(|(_, aliases)| aliases.contains(&n.as_str()))
        .map(|(f, _)| *f)
}

/// Longest prompt, negative prompt or note kept.
pub const MAX_TEXT_CHARS: usize = 4_000;
/// Most parameters on one prompt.
pub const MAX_PARAMETERS: usize = 40;

/// A prompt kept in the library.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct SavedPrompt {
    /// `sdxl-7`.
    pub id: String,
    pub family: String,
    pub prompt: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub negative: Option<String>,
    /// Seed, steps, cfg, sampler, size, LoRAs and weights ….
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub parameters: BTreeMap<String, serde_json::Value>,
    /// How the result turned out, in the artist's words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notes: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// The picture it made, relative to the workspace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// `project/asset`, when saved as an asset's version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub asset: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u32>,
    pub saved_at: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Library {
    prompts: Vec<SavedPrompt>,
}

/// One version of an asset.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct AssetVersion {
    pub version: u32,
    /// The version it was made from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub based_on: Option<u32>,
    /// Its entry in the family's library.
    pub prompt_id: String,
    pub family: String,
    pub prompt: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub negative: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub parameters: BTreeMap<String, serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notes: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    pub saved_at: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct AssetLog {
    versions: Vec<AssetVersion>,
}

/// Why a prompt could not be saved or found.
#[derive(Debug, thiserror::Error)]
pub enum PromptError {
    #[error("`{given}` is not a model family I keep prompts for")]
    UnknownFamily { given: String },
    #[error("the prompt is empty")]
    EmptyPrompt,
    #[error("the {what} is {chars} characters long, more than {MAX_TEXT_CHARS}")]
    TooLong { what: &'static str, chars: usize },
    #[error("{count} parameters is more than {MAX_PARAMETERS}")]
    TooManyParameters { count: usize },
    #[error("an asset needs both `project` and `asset`; only `{given}` was given")]
    HalfAsset { given: &'static str },
    #[error("asset `{asset}` of project `{project}` has no version {version}")]
    NoSuchVersion {
        project: String,
        asset: String,
        version: u32,
        last: u32,
    },
    #[error("`{name}` is not a usable asset name: {reason}")]
    BadAssetName { name: String, reason: String },
    #[error(transparent)]
    Path(#[from] PathError),
    #[error(transparent)]
    Studio(#[from] StudioError),
}

impl Hint for PromptError {
    fn hint(&self) -> Option<String> {
        match self {
            PromptError::UnknownFamily { .. } => Some(format!(
                "use one of: {}",
                FAMILIES
                    .iter()
                    .map(|(f, _)| *f)
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
            PromptError::EmptyPrompt => Some("give the prompt text that made the picture".into()),
            PromptError::TooLong { .. } => {
                Some("shorten it; keep long explanations out of the prompt".into())
            }
            PromptError::TooManyParameters { .. } => Some(
                "keep the settings that matter (seed, steps, cfg, sampler, size, LoRAs)".into(),
            ),
            PromptError::HalfAsset { .. } => {
                Some("pass both, e.g. project `site` and asset `hero-banner`".into())
            }
            PromptError::NoSuchVersion { last: 0, .. } => Some(
                "it has no versions yet: save_prompt with this project and asset adds one".into(),
            ),
            PromptError::NoSuchVersion { last, .. } => {
                Some(format!("its versions are 1 to {last}"))
            }
            PromptError::BadAssetName { .. } => {
                Some("use 1 to 64 letters, digits, `-` or `_`, e.g. `hero-banner`".into())
            }
            PromptError::Path(e) => e.hint(),
            PromptError::Studio(e) => e.hint(),
        }
    }
}

/// A prompt to keep.
#[derive(Debug, Clone, Default)]
pub struct SaveRequest {
    pub family: String,
    pub prompt: String,
    pub negative: Option<String>,
    pub parameters: BTreeMap<String, serde_json::Value>,
    pub notes: Option<String>,
    pub tags: Vec<String>,
    pub image: Option<String>,
    pub project: Option<String>,
    pub asset: Option<String>,
    pub based_on: Option<u32>,
}

/// What saving did.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Saved {
    pub prompt: SavedPrompt,
    /// The library page.
    pub file: String,
    /// The asset's versions page, when saved as a version.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub asset_file: Option<String>,
}

impl Saved {
    pub fn plain_summary(&self) -> String {
        match (&self.prompt.asset, self.prompt.version) {
            (Some(asset), Some(v)) => format!(
                "Saved as version {v} of `{asset}` and as `{}` in the {} prompts ({}).",
                self.prompt.id, self.prompt.family, self.file
            ),
            _ => format!(
                "Saved `{}` in the {} prompts ({}).",
                self.prompt.id, self.prompt.family, self.file
            ),
        }
    }
}

fn library_paths(ws: &Workspace, family: &str) -> (PathBuf, PathBuf) {
    (
        ws.state_dir()
            .join("prompts")
            .join(format!("{family}.json")),
        ws.grimoire().join("prompts").join(format!("{family}.md")),
    )
}

fn asset_dir(ws: &Workspace, project: &str, asset: &str) -> Result<PathBuf, PromptError> {
    check_project_name(project)?;
    check_project_name(asset).map_err(|e| PromptError::BadAssetName {
        name: asset.to_string(),
        reason: match e {
            StudioError::BadProjectName { reason, .. } => reason.to_string(),
            other => other.to_string(),
        },
    })?;
    Ok(ws
        .grimoire()
        .join("projects")
        .join(project)
        .join("assets")
        .join(asset))
}

fn asset_of(
    project: &Option<String>,
    asset: &Option<String>,
) -> Result<Option<(String, String)>, PromptError> {
    match (project, asset) {
        (Some(p), Some(a)) => Ok(Some((p.clone(), a.clone()))),
        (None, None) => Ok(None),
        (Some(_), None) => Err(PromptError::HalfAsset { given: "project" }),
        (None, Some(_)) => Err(PromptError::HalfAsset { given: "asset" }),
    }
}

fn check_len(what: &'static str, text: &str) -> Result<(), PromptError> {
    let chars = text.chars().count();
    if chars > MAX_TEXT_CHARS {
        return Err(PromptError::TooLong { what, chars });
    }
    Ok(())
}

/// Keeps a prompt in its family's library, and as the asset's next version
/// when `project` and `asset` are given.
pub fn save_prompt(ws: &Workspace, req: &SaveRequest) -> Result<Saved, PromptError> {
    let family = family_of(&req.family).ok_or_else(|| PromptError::UnknownFamily {
        given: req.family.clone(),
    })?;
    let prompt = req.prompt.trim().to_string();
    if prompt.is_empty() {
        return Err(PromptError::EmptyPrompt);
    }
    check_len("prompt", &prompt)?;
    if let Some(n) = &req.negative {
        check_len("negative prompt", n)?;
    }
    if let Some(n) = &req.notes {
        check_len("note", n)?;
    }
    if req.parameters.len() > MAX_PARAMETERS {
        return Err(PromptError::TooManyParameters {
            count: req.parameters.len(),
        });
    }
    let image = match &req.image {
        Some(i) => Some(ws.display_path(&ws.resolve(i)?)),
        None => None,
    };
    let asset = asset_of(&req.project, &req.asset)?;
    // Read everything first: a record that does not read stops us here,
    // before anything is written.
    let (lib_json, lib_md) = library_paths(ws, family);
    let mut library: Library = ws.read_json(&lib_json)?.unwrap_or_default();
    let mut log_at = None;
    if let Some((p, a)) = &asset {
        let dir = asset_dir(ws, p, a)?;
        let log: AssetLog = ws
            .read_json(&dir.join("versions.json"))?
            .unwrap_or_default();
        if let Some(b) = req.based_on {
            let last = log.versions.last().map_or(0, |v| v.version);
            if b == 0 || b > last {
                return Err(PromptError::NoSuchVersion {
                    project: p.clone(),
                    asset: a.clone(),
                    version: b,
                    last,
                });
            }
        }
        log_at = Some((dir, log));
    }
    let next_id = library
        .prompts
        .iter()
        .filter_map(|p| {
            p.id.rsplit_once('-')
                .and_then(|(_, n)| n.parse::<u32>().ok())
        })
        .max()
        .unwrap_or(0)
        + 1;
    let now = clock::now_rfc3339();
    let version = log_at
        .as_ref()
        .map(|(_, log)| log.versions.last().map_or(0, |v| v.version) + 1);
    let saved = SavedPrompt {
        id: format!("{family}-{next_id}"),
        family: family.to_string(),
        prompt,
        negative: req.negative.clone().filter(|n| !n.trim().is_empty()),
        parameters: req.parameters.clone(),
        notes: req.notes.clone().filter(|n| !n.trim().is_empty()),
        tags: req
            .tags
            .iter()
            .map(|t| t.trim().to_lowercase())
            .filter(|t| !t.is_empty())
            .collect(),
        image,
        asset: asset.as_ref().map(|(p, a)| format!("{p}/{a}")),
        version,
        saved_at: now.clone(),
    };
    library.prompts.push(saved.clone());
    write_json_atomic(&lib_json, &library)?;
    write_atomic(&lib_md, render_library(family, &library).as_bytes())?;
    let mut asset_file = None;
    if let (Some((dir, mut log)), Some(v), Some((p, a))) = (log_at, version, &asset) {
        log.versions.push(AssetVersion {
            version: v,
            based_on: req.based_on,
            prompt_id: saved.id.clone(),
            family: family.to_string(),
            prompt: saved.prompt.clone(),
            negative: saved.negative.clone(),
            parameters: saved.parameters.clone(),
            notes: saved.notes.clone(),
            image: saved.image.clone(),
            saved_at: now,
        });
        write_json_atomic(&dir.join("versions.json"), &log)?;
        let md = dir.join("versions.md");
        write_atomic(&md, render_versions(p, a, &log).as_bytes())?;
        asset_file = Some(ws.display_path(&md));
    }
    Ok(Saved {
        prompt: saved,
        file: ws.display_path(&lib_md),
        asset_file,
    })
}

fn render_library(family: &str, lib: &Library) -> String {
    let mut out =
        format!("# {family} prompts\n\nKept by Ategnatos through `save_prompt`; newest last.\n");
    for p in &lib.prompts {
        out.push_str(&format!("\n## {}\n\n{}\n", p.id, p.prompt));
        if let Some(n) = &p.negative {
            out.push_str(&format!("\nNegative: {n}\n"));
        }
        if !p.parameters.is_empty() {
            let params: Vec<String> = p
                .parameters
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            out.push_str(&format!("\nParameters: {}\n", params.join(", ")));
        }
        if let Some(n) = &p.notes {
            out.push_str(&format!("\nResult: {n}\n"));
        }
        if !p.tags.is_empty() {
            out.push_str(&format!("\nTags: {}\n", p.tags.join(", ")));
        }
        if let (Some(a), Some(v)) = (&p.asset, p.version) {
            out.push_str(&format!("\nAsset `{a}`, version {v}\n"));
        }
    }
    out
}

fn render_versions(project: &str, asset: &str, log: &AssetLog) -> String {
    let mut out = format!(
        "# {asset} ({project}): versions\n\nEach version's exact prompt and settings, kept by Ategnatos through `save_prompt`.\n"
    );
    for v in &log.versions {
        out.push_str(&format!("\n## Version {}", v.version));
        if let Some(b) = v.based_on {
            out.push_str(&format!(" (from version {b})"));
        }
        out.push_str(&format!("\n\n{}\n", v.prompt));
        if let Some(n) = &v.notes {
            out.push_str(&format!("\nNotes: {n}\n"));
        }
        if let Some(i) = &v.image {
            out.push_str(&format!("\nPicture: {i}\n"));
        }
    }
    out
}

/// What to look for.
#[derive(Debug, Clone, Default)]
pub struct FindRequest {
    pub family: Option<String>,
    pub words: Option<String>,
    pub project: Option<String>,
    pub asset: Option<String>,
    pub version: Option<u32>,
    pub limit: usize,
}

/// What was found.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Found {
    /// Library matches, newest first (when no asset was asked).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub prompts: Vec<SavedPrompt>,
    /// The asset's versions (or the one asked), newest first.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub versions: Vec<AssetVersion>,
    /// Matches not shown (past the limit).
    pub more: usize,
}

impl Found {
    pub fn plain_summary(&self) -> String {
        if !self.versions.is_empty() {
            let list: Vec<String> = self
                .versions
                .iter()
                .map(|v| {
                    format!(
                        "version {}{}: {}",
                        v.version,
                        v.notes
                            .as_deref()
                            .map(|n| format!(" ({n})"))
                            .unwrap_or_default(),
                        v.prompt
                    )
                })
                .collect();
            return format!("{}.", list.join("; "));
        }
        if self.prompts.is_empty() {
            return "No saved prompt matches. Keep the ones that work with save_prompt.".into();
        }
        let list: Vec<String> = self
            .prompts
            .iter()
            .map(|p| {
                format!(
                    "`{}`{}: {}",
                    p.id,
                    p.notes
                        .as_deref()
                        .map(|n| format!(" ({n})"))
                        .unwrap_or_default(),
                    p.prompt
                )
            })
            .collect();
        let more = if self.more > 0 {
            format!(" {} more match.", self.more)
        } else {
            String::new()
        };
        format!("{}.{more}", list.join("; "))
    }
}

fn words_of(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

/// Library prompts matching every word (in the prompt, notes or tags), or
/// an asset's versions.
pub fn find_prompts(ws: &Workspace, req: &FindRequest) -> Result<Found, PromptError> {
    let limit = req.limit.max(1);
    if let Some((p, a)) = asset_of(&req.project, &req.asset)? {
        let dir = asset_dir(ws, &p, &a)?;
        let log: AssetLog = ws
            .read_json(&dir.join("versions.json"))?
            .unwrap_or_default();
        let mut versions = log.versions;
        if let Some(v) = req.version {
            let last = versions.last().map_or(0, |x| x.version);
            versions.retain(|x| x.version == v);
            if versions.is_empty() {
                return Err(PromptError::NoSuchVersion {
                    project: p,
                    asset: a,
                    version: v,
                    last,
                });
            }
        }
        versions.reverse();
        let more = versions.len().saturating_sub(limit);
        versions.truncate(limit);
        return Ok(Found {
            prompts: Vec::new(),
            versions,
            more,
        });
    }
    let families: Vec<&str> = match &req.family {
        Some(f) => {
            vec![family_of(f).ok_or_else(|| PromptError::UnknownFamily { given: f.clone() })?]
        }
        None => FAMILIES.iter().map(|(f, _)| *f).collect(),
    };
    let wanted = req.words.as_deref().map(words_of).unwrap_or_default();
    let mut found = Vec::new();
    for family in families {
        let (json, _) = library_paths(ws, family);
        let lib: Library = ws.read_json(&json)?.unwrap_or_default();
        found.extend(lib.prompts.into_iter().filter(|p| {
            let mut have = words_of(&p.prompt);
            have.extend(p.notes.as_deref().map(words_of).unwrap_or_default());
            have.extend(p.tags.iter().flat_map(|t| words_of(t)));
            wanted.iter().all(|w| have.contains(w))
        }));
    }
    let number = |p: &SavedPrompt| {
        p.id.rsplit_once('-')
            .and_then(|(_, n)| n.parse::<u32>().ok())
            .unwrap_or(0)
    };
    found.sort_by(|a, b| b.saved_at.cmp(&a.saved_at).then(number(b).cmp(&number(a))));
    let more = found.len().saturating_sub(limit);
    found.truncate(limit);
    Ok(Found {
        prompts: found,
        versions: Vec::new(),
        more,
    })
}
