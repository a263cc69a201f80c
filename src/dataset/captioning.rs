//! Captioning a project's dataset: previews of varied pictures to caption
//! first, approval of those samples by the artist, batch writing (refused
//! until a sample is approved), and a history from which any caption can be
//! restored.
//!
//! Every caption is written atomically, so an interrupted batch leaves each
//! caption either as it was or as it was meant to be, never half-written; the
//! batch is recorded in the history before the first caption changes.

use std::path::{Path, PathBuf};

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::caption_rules;
use super::intent::{IntentError, require_project};
use crate::plan::catalog;
use crate::studio::Hint;
use crate::studio::project::Project;
use crate::studio::{StudioError, Workspace, clock, write_atomic, write_json_atomic};

/// Samples and approvals of a project, `captions.json` in its state folder.
#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema)]
pub struct CaptionState {
    /// Pictures shown by `caption_preview` (dataset-relative paths).
    pub samples: Vec<String>,
    /// Captions the artist approved, as they were when approved.
    pub approved: Vec<ApprovedCaption>,
}

/// A caption the artist approved.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ApprovedCaption {
    pub path: String,
    pub caption: String,
    pub approved_at: String,
}

/// One caption change in the history.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct HistoryEntry {
    pub path: String,
    /// The caption before (absent when there was none).
    pub previous: Option<String>,
    pub new: String,
}

/// One batch of caption writes, kept so any caption can be restored.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct HistoryBatch {
    pub id: String,
    pub written_at: String,
    pub entries: Vec<HistoryEntry>,
}

/// Why captions could not be written.
#[derive(Debug, thiserror::Error)]
pub enum CaptionError {
    #[error(transparent)]
    Project(#[from] IntentError),
    #[error(transparent)]
    Studio(#[from] StudioError),
    #[error("`{path}` is outside the project's dataset folder `{dataset}`")]
    OutsideDataset { path: String, dataset: String },
    #[error("`{path}` is not a picture in the dataset")]
    NotAPicture { path: String },
    #[error(
        "no sample caption has been approved yet, and {count} of these pictures {} not samples (for example `{example}`)", if *.count == 1 { "is" } else { "are" }
    )]
    NotApproved { count: usize, example: String },
    #[error("the caption for `{path}` is empty")]
    EmptyCaption { path: String },
    #[error("`{path}` has no caption to approve")]
    NothingToApprove { path: String },
    #[error("there is no earlier caption of `{path}` in the history")]
    NoHistory { path: String },
    #[error("`{path}` had no caption before that change, so there is nothing to restore it to")]
    NoPrevious { path: String },
    #[error("nothing to do: no captions were given")]
    Empty,
}

impl Hint for CaptionError {
    fn hint(&self) -> Option<String> {
        match self {
            CaptionError::Project(e) => e.hint(),
            CaptionError::Studio(e) => e.hint(),
            CaptionError::OutsideDataset { .. } => Some("give paths relative to the dataset folder, for pictures inside it".into()),
            CaptionError::NotAPicture { .. } => Some("name the picture (e.g. `fox-01.png`), not its caption file; the caption is written beside it".into()),
            CaptionError::NotApproved { .. } => Some("never batch-caption without review: caption the caption_preview samples, show them to the artist, and call approve_captions once they agree".into()),
            CaptionError::EmptyCaption { .. } => Some("write what is in the picture and how it is made".into()),
            CaptionError::NothingToApprove { .. } => Some("write its caption first with write_captions".into()),
            CaptionError::NoHistory { .. } | CaptionError::NoPrevious { .. } => Some("write a new caption with write_captions instead".into()),
            CaptionError::Empty => Some("pass `captions` as an object of picture path → caption text".into()),
        }
    }
}

fn state_file(ws: &Workspace, project: &str) -> Result<PathBuf, StudioError> {
    Ok(ws.project_state_dir(project)?.join("captions.json"))
}

fn history_dir(ws: &Workspace, project: &str) -> Result<PathBuf, StudioError> {
    Ok(ws.project_state_dir(project)?.join("caption-history"))
}

/// The project's caption state.
pub fn load_state(ws: &Workspace, project: &str) -> Result<CaptionState, StudioError> {
    Ok(ws.read_json(&state_file(ws, project)?)?.unwrap_or_default())
}

fn save_state(ws: &Workspace, project: &str, state: &CaptionState) -> Result<(), StudioError> {
    write_json_atomic(&state_file(ws, project)?, state)
}

/// The project's dataset folder on disk.
pub fn dataset_dir(ws: &Workspace, project: &Project) -> Result<PathBuf, CaptionError> {
    crate::studio::paths::resolve_existing(ws.root(), &project.dataset)
        .map_err(|e| CaptionError::Project(IntentError::Path(e)))
}

/// A dataset-relative path as tools show it: relative to the workspace.
fn shown(ws: &Workspace, dataset: &Path, rel: &str) -> String {
    match ws.display_path(dataset).as_str() {
        "." => rel.to_string(),
        folder => format!("{folder}/{rel}"),
    }
}

/// The caption state with every path as tools show it.
fn shown_state(ws: &Workspace, dataset: &Path, state: &CaptionState) -> CaptionState {
    CaptionState {
        samples: state
            .samples
            .iter()
            .map(|p| shown(ws, dataset, p))
            .collect(),
        approved: state
            .approved
            .iter()
            .map(|a| ApprovedCaption {
                path: shown(ws, dataset, &a.path),
                ..a.clone()
            })
            .collect(),
    }
}

/// Resolves a picture path given relative to the dataset (or to the
/// workspace, when it starts with the dataset folder) and checks it is a
/// picture inside the dataset.
fn resolve_picture(
    ws: &Workspace,
    project: &Project,
    dataset: &Path,
    given: &str,
) -> Result<(PathBuf, String), CaptionError> {
    let outside = || CaptionError::OutsideDataset {
        path: given.to_string(),
        dataset: project.dataset.clone(),
    };
    let trimmed = given.trim();
    let candidate = if Path::new(trimmed).is_absolute()
        || trimmed.starts_with(&format!("{}/", project.dataset))
    {
        crate::studio::paths::resolve_inside(ws.root(), trimmed)
    } else {
        crate::studio::paths::resolve_inside(ws.root(), &format!("{}/{trimmed}", project.dataset))
    }
    .map_err(|_| outside())?;
    let rel = candidate
        .strip_prefix(dataset)
        .map_err(|_| outside())?
        .to_string_lossy()
        .into_owned();
    let is_picture =
        super::inspect::extension_of(&candidate).is_some_and(|e| super::is_image_extension(&e));
    if !is_picture || !candidate.is_file() {
        return Err(CaptionError::NotAPicture {
            path: given.to_string(),
        });
    }
    Ok((candidate, rel))
}

/// One written caption.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct WrittenCaption {
    /// Picture path, relative to the workspace.
    pub path: String,
    /// The caption as written (normalised, trigger first).
    pub caption: String,
    /// False when the caption was already exactly this.
    pub changed: bool,
    /// True when the trigger word was added.
    pub trigger_added: bool,
}

/// What `write_captions` did.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct WriteReport {
    pub project: String,
    pub written: Vec<WrittenCaption>,
    /// History batch id: restore_caption can undo any of these.
    pub history_batch: String,
}

impl WriteReport {
    pub fn plain_summary(&self) -> String {
        let changed = self.written.iter().filter(|w| w.changed).count();
        let added = self.written.iter().filter(|w| w.trigger_added).count();
        let mut s = format!(
            "Wrote {changed} caption{} for project `{}`",
            if changed == 1 { "" } else { "s" },
            self.project
        );
        if changed < self.written.len() {
            s.push_str(&format!(
                " ({} already had exactly that caption)",
                self.written.len() - changed
            ));
        }
        s.push('.');
        if added > 0 {
            s.push_str(&format!(" Added the trigger word to {added} of them."));
        }
        s.push_str(&format!(" Previous captions are kept in history batch `{}` (restore_caption undoes any of them).", self.history_batch));
        s
    }
}

/// Writes captions (picture path → text) beside their pictures.
pub fn write_captions(
    ws: &Workspace,
    project_name: &str,
    captions: &[(String, String)],
) -> Result<WriteReport, CaptionError> {
    if captions.is_empty() {
        return Err(CaptionError::Empty);
    }
    let project = require_project(ws, project_name)?;
    let model = catalog::lookup(&project.base_model).map_err(IntentError::from)?;
    let dataset = dataset_dir(ws, &project)?;
    let state = load_state(ws, &project.name)?;

    // Check everything before changing anything.
    let mut planned = Vec::new();
    for (given, text) in captions {
        let (picture, rel) = resolve_picture(ws, &project, &dataset, given)?;
        if text.trim().is_empty() {
            return Err(CaptionError::EmptyCaption {
                path: given.clone(),
            });
        }
        let (caption, trigger_added) =
            caption_rules::normalise(text, model.caption_format, &project.trigger_word);
        let file = super::captions::caption_path_for(&picture, &project.caption_extension);
        let previous = super::captions::read_caption_file(&file)
            .ok()
            .map(|b| String::from_utf8_lossy(&b).into_owned());
        planned.push((rel, file, previous, caption, trigger_added));
    }
    if state.approved.is_empty() {
        let non_samples: Vec<&String> = planned
            .iter()
            .map(|p| &p.0)
            .filter(|rel| !state.samples.contains(rel))
            .collect();
        if let Some(first) = non_samples.first() {
            return Err(CaptionError::NotApproved {
                count: non_samples.len(),
                example: shown(ws, &dataset, first),
            });
        }
    }

    let stamp = clock::stamp(clock::unix_now());
    let existing = std::fs::read_dir(history_dir(ws, &project.name)?)
        .map(|d| d.count())
        .unwrap_or(0);
    let batch = HistoryBatch {
        id: format!("{stamp}-{:04}", existing + 1),
        written_at: clock::now_rfc3339(),
        entries: planned
            .iter()
            .map(|(rel, _, previous, caption, _)| HistoryEntry {
                path: rel.clone(),
                previous: previous.clone(),
                new: caption.clone(),
            })
            .collect(),
    };
    write_json_atomic(
        &history_dir(ws, &project.name)?.join(format!("{}.json", batch.id)),
        &batch,
    )?;
    let mut written = Vec::new();
    for (rel, file, previous, caption, trigger_added) in planned {
        let changed = previous.as_deref() != Some(caption.as_str());
        if changed {
            write_atomic(&file, caption.as_bytes())?;
        }
        written.push(WrittenCaption {
            path: shown(ws, &dataset, &rel),
            caption,
            changed,
            trigger_added,
        });
    }
    Ok(WriteReport {
        project: project.name,
        written,
        history_batch: batch.id,
    })
}

/// Every history batch of a project, oldest first.
pub fn history(ws: &Workspace, project: &str) -> Result<Vec<HistoryBatch>, StudioError> {
    let dir = history_dir(ws, project)?;
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Ok(Vec::new());
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    let mut out = Vec::new();
    for f in files {
        if let Some(batch) = ws.read_json::<HistoryBatch>(&f)? {
            out.push(batch);
        }
    }
    Ok(out)
}

/// What `restore_caption` did.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Restored {
    pub path: String,
    pub caption: String,
    /// The batch whose change was undone.
    pub undone_batch: String,
    pub history_batch: String,
}

/// Puts back the caption a picture had before its latest change (or before
/// the change made by `batch`, when given). The restore is itself recorded.
pub fn restore_caption(
    ws: &Workspace,
    project_name: &str,
    path: &str,
    batch: Option<&str>,
) -> Result<Restored, CaptionError> {
    let project = require_project(ws, project_name)?;
    let dataset = dataset_dir(ws, &project)?;
    let (picture, rel) = resolve_picture(ws, &project, &dataset, path)?;
    let batches = history(ws, &project.name)?;
    let found = batches
        .iter()
        .rev()
        .filter(|b| batch.is_none_or(|id| b.id == id))
        .find_map(|b| {
            b.entries
                .iter()
                .find(|e| e.path == rel)
                .map(|e| (b.id.clone(), e.clone()))
        });
    let (undone, entry) = found.ok_or_else(|| CaptionError::NoHistory {
        path: path.to_string(),
    })?;
    let previous = entry.previous.ok_or_else(|| CaptionError::NoPrevious {
        path: path.to_string(),
    })?;
    let file = super::captions::caption_path_for(&picture, &project.caption_extension);
    let current = super::captions::read_caption_file(&file)
        .ok()
        .map(|b| String::from_utf8_lossy(&b).into_owned());
    let record = HistoryBatch {
        id: format!(
            "{}-{:04}",
            clock::stamp(clock::unix_now()),
            batches.len() + 1
        ),
        written_at: clock::now_rfc3339(),
        entries: vec![HistoryEntry {
            path: rel.clone(),
            previous: current,
            new: previous.clone(),
        }],
    };
    write_json_atomic(
        &history_dir(ws, &project.name)?.join(format!("{}.json", record.id)),
        &record,
    )?;
    write_atomic(&file, previous.as_bytes())?;
    Ok(Restored {
        path: shown(ws, &dataset, &rel),
        caption: previous,
        undone_batch: undone,
        history_batch: record.id,
    })
}

/// Records that the artist approved the current captions of `paths`.
pub fn approve_captions(
    ws: &Workspace,
    project_name: &str,
    paths: &[String],
) -> Result<CaptionState, CaptionError> {
    if paths.is_empty() {
        return Err(CaptionError::Empty);
    }
    let project = require_project(ws, project_name)?;
    let dataset = dataset_dir(ws, &project)?;
    let mut state = load_state(ws, &project.name)?;
    for given in paths {
        let (picture, rel) = resolve_picture(ws, &project, &dataset, given)?;
        let file = super::captions::caption_path_for(&picture, &project.caption_extension);
        let caption = super::captions::read_caption_text(&file)
            .ok()
            .filter(|c| !c.trim().is_empty())
            .ok_or_else(|| CaptionError::NothingToApprove {
                path: given.clone(),
            })?;
        state.approved.retain(|a| a.path != rel);
        state.approved.push(ApprovedCaption {
            path: rel,
            caption: caption.trim().to_string(),
            approved_at: clock::now_rfc3339(),
        });
    }
    save_state(ws, &project.name, &state)?;
    Ok(shown_state(ws, &dataset, &state))
}

/// A picture chosen for a caption preview.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct PreviewItem {
    /// Relative to the workspace.
    pub path: String,
    pub width: u32,
    pub height: u32,
    /// Its caption now, if any (cut after [`SHOWN_CAPTION_CHARS`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub current_caption: Option<String>,
    /// The picture, downscaled to the preview size.
    #[serde(skip)]
    pub picture: image::RgbImage,
}

/// Longest side of a preview picture unless asked otherwise: enough to judge
/// a caption by, and small in a conversation.
pub const PREVIEW_SIDE: u32 = 512;
/// Captions longer than this are cut in previews (CLIP reads 77 tokens, a few
/// hundred characters; a longer caption is itself worth fixing).
pub const SHOWN_CAPTION_CHARS: usize = 1_000;
/// Approved examples shown in a preview: the most recent ones.
pub const SHOWN_APPROVED: usize = 6;

impl PreviewItem {
    /// The preview as a JPEG of the given quality.
    pub fn jpeg(&self, quality: u8) -> Vec<u8> {
        encode_jpeg(&self.picture, quality)
    }

    /// The preview as a JPEG of at most `max_bytes`: lower quality first,
    /// then a smaller picture, down to 64 px (the smallest is returned even
    /// when it is still over).
    pub fn jpeg_within(&self, max_bytes: usize) -> Vec<u8> {
        let mut picture = self.picture.clone();
        loop {
            for quality in [82, 70, 55, 40] {
                let jpeg = encode_jpeg(&picture, quality);
                if jpeg.len() <= max_bytes {
                    return jpeg;
                }
            }
            let (w, h) = picture.dimensions();
            if w.max(h) <= 64 {
                return encode_jpeg(&picture, 40);
            }
            let (w, h) = ((w * 3 / 4).max(1), (h * 3 / 4).max(1));
            picture = image::imageops::thumbnail(&picture, w, h);
        }
    }
}

fn encode_jpeg(picture: &image::RgbImage, quality: u8) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    // Encoding an RGB buffer in memory cannot fail; an empty result would
    // only show as a broken preview.
    let _ = picture.write_with_encoder(image::codecs::jpeg::JpegEncoder::new_with_quality(
        &mut out, quality,
    ));
    out.into_inner()
}

/// `text` cut after [`SHOWN_CAPTION_CHARS`] characters, saying so.
fn shown_caption(text: String) -> String {
    let total = text.chars().count();
    if total <= SHOWN_CAPTION_CHARS {
        return text;
    }
    let cut: String = text.chars().take(SHOWN_CAPTION_CHARS).collect();
    format!("{cut}… ({total} characters in all: trainers read only the first few hundred)")
}

/// What `caption_preview` returns besides the pictures.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Preview {
    pub project: String,
    pub trigger_word: String,
    pub base_model: String,
    /// How to write the captions for this base model and training type.
    pub instructions: String,
    pub items: Vec<PreviewItem>,
    /// Captions the artist approved so far: batch captions should match them.
    pub approved_examples: Vec<ApprovedCaption>,
    /// Pictures in the dataset without a usable caption.
    pub uncaptioned: usize,
    pub total_pictures: usize,
}

impl Preview {
    pub fn plain_summary(&self) -> String {
        let names: Vec<&str> = self.items.iter().map(|i| i.path.as_str()).collect();
        format!(
            "{} varied pictures from project `{}` to caption first: {}. {} of {} pictures have no caption yet. {} {}",
            self.items.len(),
            self.project,
            names.join(", "),
            self.uncaptioned,
            self.total_pictures,
            if self.approved_examples.is_empty() {
                "No caption is approved yet: write these samples, show them to the artist, then approve_captions before captioning the rest."
            } else {
                "Match the approved examples when captioning the rest."
            },
            self.instructions
        )
    }
}

/// A tiny colour signature for choosing varied pictures: the picture shrunk to 4×4.
fn signature(path: &Path) -> Option<(Vec<f32>, u32, u32, image::DynamicImage)> {
    let img = image::open(path).ok()?;
    let sig = img
        .thumbnail_exact(4, 4)
        .to_rgb8()
        .pixels()
        .flat_map(|p| p.0)
        .map(f32::from)
        .collect();
    Some((sig, img.width(), img.height(), img))
}

/// Farthest-point choice of `k` indices: start with the picture farthest from
/// the average, then repeatedly the one farthest from everything chosen.
pub fn varied_choice(signatures: &[Vec<f32>], k: usize) -> Vec<usize> {
    let n = signatures.len();
    if n == 0 || k == 0 {
        return Vec::new();
    }
    let dim = signatures[0].len();
    let mean: Vec<f32> = (0..dim)
        .map(|d| signatures.iter().map(|s| s[d]).sum::<f32>() / n as f32)
        .collect();
    let dist = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum::<f32>();
    let first = (0..n)
        .max_by(|&a, &b| dist(&signatures[a], &mean).total_cmp(&dist(&signatures[b], &mean)))
        .unwrap_or(0);
    let mut chosen = vec![first];
    let mut nearest: Vec<f32> = signatures
        .iter()
        .map(|s| dist(s, &signatures[first]))
        .collect();
    while chosen.len() < k.min(n) {
        let next = (0..n)
            .filter(|i| !chosen.contains(i))
            .max_by(|&a, &b| nearest[a].total_cmp(&nearest[b]));
        let Some(next) = next else { break };
        chosen.push(next);
        for (i, s) in signatures.iter().enumerate() {
            nearest[i] = nearest[i].min(dist(s, &signatures[next]));
        }
    }
    chosen
}

/// Picks `count` varied pictures (or the ones named) and prepares previews.
pub fn caption_preview(
    ws: &Workspace,
    project_name: &str,
    count: usize,
    only: &[String],
    max_side: u32,
) -> Result<Preview, CaptionError> {
    let project = require_project(ws, project_name)?;
    let model = catalog::lookup(&project.base_model).map_err(IntentError::from)?;
    let dataset = dataset_dir(ws, &project)?;
    let listing = super::walk::list_files(&dataset, ws.root()).map_err(|e| StudioError::Read {
        path: dataset.clone(),
        source: e,
    })?;
    let pictures: Vec<&super::walk::FoundFile> = listing
        .files
        .iter()
        .filter(|f| {
            super::inspect::extension_of(&f.path).is_some_and(|e| super::is_image_extension(&e))
        })
        .collect();
    let caption_of = |p: &Path| {
        super::captions::read_caption_text(&super::captions::caption_path_for(
            p,
            &project.caption_extension,
        ))
        .ok()
        .map(|c| c.trim().to_string())
        .filter(|c| !c.is_empty())
    };
    let uncaptioned = pictures
        .iter()
        .filter(|f| caption_of(&f.path).is_none())
        .count();
    let chosen_files: Vec<(PathBuf, String)> = if only.is_empty() {
        let sigs: Vec<(usize, Vec<f32>)> = pictures
            .par_iter()
            .enumerate()
            .filter_map(|(i, f)| signature(&f.path).map(|(s, ..)| (i, s)))
            .collect();
        let vectors: Vec<Vec<f32>> = sigs.iter().map(|(_, s)| s.clone()).collect();
        varied_choice(&vectors, count)
            .into_iter()
            .map(|j| {
                let f = pictures[sigs[j].0];
                (f.path.clone(), f.rel.clone())
            })
            .collect()
    } else {
        only.iter()
            .map(|g| resolve_picture(ws, &project, &dataset, g))
            .collect::<Result<_, _>>()?
    };
    let items: Vec<PreviewItem> = chosen_files
        .par_iter()
        .filter_map(|(path, rel)| {
            let (_, width, height, img) = signature(path)?;
            let small = if width.max(height) > max_side {
                img.resize(max_side, max_side, image::imageops::FilterType::Triangle)
            } else {
                img
            };
            Some(PreviewItem {
                path: shown(ws, &dataset, rel),
                width,
                height,
                current_caption: caption_of(path).map(shown_caption),
                picture: small.to_rgb8(),
            })
        })
        .collect();
    let mut state = load_state(ws, &project.name)?;
    let previewed = chosen_files
        .iter()
        .map(|(_, rel)| rel)
        .filter(|rel| items.iter().any(|i| i.path == shown(ws, &dataset, rel)));
    for rel in previewed {
        if !state.samples.contains(rel) {
            state.samples.push(rel.clone());
        }
    }
    save_state(ws, &project.name, &state)?;
    let mut state = shown_state(ws, &dataset, &state);
    let older = state.approved.len().saturating_sub(SHOWN_APPROVED);
    state.approved.drain(..older);
    for a in &mut state.approved {
        a.caption = shown_caption(std::mem::take(&mut a.caption));
    }
    Ok(Preview {
        project: project.name.clone(),
        trigger_word: project.trigger_word.clone(),
        base_model: project.base_model.clone(),
        instructions: caption_rules::instructions(
            model,
            project.training_type,
            &project.trigger_word,
        ),
        items,
        approved_examples: state.approved,
        uncaptioned,
        total_pictures: pictures.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varied_choice_spreads_out() {
        // Three near-identical dark pictures and two distinct ones.
        let sigs = vec![
            vec![0.0, 0.0],
            vec![1.0, 0.0],
            vec![0.0, 1.0],
            vec![255.0, 0.0],
            vec![0.0, 255.0],
        ];
        let mut chosen = varied_choice(&sigs, 3);
        chosen.sort();
        assert!(chosen.contains(&3) && chosen.contains(&4), "{chosen:?}");
        assert_eq!(varied_choice(&sigs, 10).len(), 5);
    }
}
