//! Turning flat folders of pictures and captions into kohya's training
//! layout, `{repeats}_{name}/`, by copying: the artist's folders are never
//! changed.
//!
//! Each concept (a subject, a style) is one source folder and becomes one
//! subfolder. Repeats are given, or worked out so the run reaches the target
//! number of steps: `ceil(target_steps / (concepts × images × epochs))`, so
//! every concept gets an equal share however many pictures it has. Nothing
//! is copied unless every picture has a caption; the refusal names the ones
//! without.

use std::collections::BTreeSet;
use std::path::PathBuf;

use serde::Serialize;

use super::captions::{self, CaptionStatus};
use super::{manifest, walk};
use crate::studio::Hint;
use crate::studio::Workspace;

/// The most repeats we write: beyond it the concept has far too few pictures.
pub const MAX_REPEATS: u32 = 1000;
/// Steps aimed at when none are given: a common starting point for a LoRA
/// at batch size 1 (the training plan refines it).
pub const DEFAULT_TARGET_STEPS: u64 = 1500;
/// Epochs assumed when none are given.
pub const DEFAULT_EPOCHS: u32 = 10;

/// One concept to lay out.
#[derive(Debug, Clone)]
pub struct Concept {
    /// Folder with this concept's pictures and captions (resolved).
    pub source: PathBuf,
    /// The name part of the subfolder (`ohwx style` → `10_ohwx style`).
    pub name: String,
    /// Repeats per epoch; `None` works them out from the target steps.
    pub repeats: Option<u32>,
}

/// What to build.
#[derive(Debug, Clone)]
pub struct StructureOptions {
    /// The new training folder (resolved); must not exist or be empty.
    pub destination: PathBuf,
    pub concepts: Vec<Concept>,
    /// Steps (at batch size 1) the whole run should reach, for automatic repeats.
    pub target_steps: u64,
    /// Epochs the run will train, for automatic repeats.
    pub epochs: u32,
    /// Caption file extension, without the dot.
    pub caption_extension: String,
}

/// One subfolder written.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct StructuredSubset {
    /// `{repeats}_{name}`, relative to the destination.
    pub folder: String,
    pub name: String,
    /// Where its pictures came from, relative to the workspace root.
    pub source: String,
    pub repeats: u32,
    /// How the repeats were chosen, in words.
    pub repeats_reason: String,
    pub images: usize,
    /// Pictures in subfolders of the source, which were not copied.
    pub skipped_nested: usize,
}

/// The layout that was written.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct StructureReport {
    /// The training folder, relative to the workspace root: give it to the
    /// audit and the training plan.
    pub destination: String,
    pub subsets: Vec<StructuredSubset>,
    /// Pictures × repeats, summed: the steps of one epoch at batch size 1.
    pub images_per_epoch: u64,
    pub epochs: u32,
    /// `images_per_epoch × epochs`: the run's steps at batch size 1.
    pub total_steps: u64,
    /// Pictures and captions copied.
    pub files_copied: usize,
    pub bytes_copied: u64,
}

/// Why the layout was not written.
#[derive(Debug, thiserror::Error)]
pub enum StructureError {
    #[error("no concepts were given")]
    NoConcepts,
    #[error("`{name}` cannot be a concept name: {reason}")]
    BadName { name: String, reason: &'static str },
    #[error("two concepts are both called `{name}`")]
    DuplicateName { name: String },
    #[error("`{repeats}` repeats is out of range (1 to {MAX_REPEATS})")]
    BadRepeats { repeats: u32 },
    #[error("the target of `{target_steps}` steps over `{epochs}` epochs cannot give repeats")]
    BadTarget { target_steps: u64, epochs: u32 },
    #[error("`{path}` is not a folder")]
    NotAFolder { path: String },
    #[error("`{path}` has no pictures directly in it")]
    NoPictures { path: String },
    #[error("{} picture{} in `{concept}` {} no usable caption: {}", .pictures.len(), if .pictures.len() == 1 { "" } else { "s" }, if .pictures.len() == 1 { "has" } else { "have" }, list_with_reasons(.pictures))]
    MissingCaptions {
        concept: String,
        /// Each picture, and what is wrong with its caption.
        pictures: Vec<(String, String)>,
    },
    #[error("the destination `{path}` already has files in it")]
    DestinationNotEmpty { path: String },
    #[error("the destination `{path}` is inside the source `{source_folder}`")]
    DestinationInsideSource { path: String, source_folder: String },
    #[error("could not copy `{path}`: {reason}")]
    Copy { path: String, reason: String },
}

fn list_with_reasons(pictures: &[(String, String)]) -> String {
    let shown: Vec<String> = pictures
        .iter()
        .take(10)
        .map(|(p, why)| format!("`{p}` ({why})"))
        .collect();
    match pictures.len().saturating_sub(10) {
        0 => shown.join(", "),
        more => format!("{} and {more} more", shown.join(", ")),
    }
}

impl Hint for StructureError {
    /// What the user can do about it.
    fn hint(&self) -> Option<String> {
        Some(match self {
            StructureError::NoConcepts => "give at least one folder of pictures with a name".into(),
            StructureError::BadName { .. } => "use letters, digits, spaces, `-` or `_`, for example `ohwx style`".into(),
            StructureError::DuplicateName { .. } => "give every concept its own name".into(),
            StructureError::BadRepeats { .. } => "leave repeats out to work them out from the target steps".into(),
            StructureError::BadTarget { .. } => "give a target of at least 1 step and at least 1 epoch".into(),
            StructureError::NotAFolder { .. } => "give the folder that holds the pictures".into(),
            StructureError::NoPictures { .. } => "put the pictures (PNG, JPEG or WebP) directly in that folder".into(),
            StructureError::MissingCaptions { .. } => "write a caption for each of these pictures first (caption_preview then write_captions), or set them aside with quarantine_files".into(),
            StructureError::DestinationNotEmpty { .. } => "choose a new folder name; Ategnatos never mixes a new layout into existing files".into(),
            StructureError::DestinationInsideSource { .. } => "put the training folder outside the folders it copies from".into(),
            StructureError::Copy { .. } => "check the disk has room and the folders can be written; the partial layout can be deleted safely (it holds only copies)".into(),
        })
    }
}

fn check_name(name: &str) -> Result<(), StructureError> {
    let bad = |reason| {
        Err(StructureError::BadName {
            name: name.to_string(),
            reason,
        })
    };
    if name.trim().is_empty() || name.len() > 100 {
        return bad("it must be 1 to 100 characters");
    }
    if name.trim() != name {
        return bad("it must not start or end with a space");
    }
    if name.contains(['/', '\\', '\0'])
        || name.chars().any(char::is_control)
        || name == "."
        || name == ".."
    {
        return bad("it must not contain `/`, `\\` or control characters");
    }
    Ok(())
}

/// Repeats so that this concept's share of the target is reached.
fn auto_repeats(target_steps: u64, concepts: usize, images: usize, epochs: u32) -> u32 {
    let per_epoch = (concepts as u64).max(1) * images as u64 * u64::from(epochs);
    let repeats = target_steps.div_ceil(per_epoch.max(1));
    u32::try_from(repeats)
        .unwrap_or(MAX_REPEATS)
        .clamp(1, MAX_REPEATS)
}

struct PlannedConcept {
    subset: StructuredSubset,
    files: Vec<(PathBuf, String)>,
}

/// Copies every concept's pictures and captions into
/// `destination/{repeats}_{name}/`.
pub fn structure_dataset(
    workspace: &Workspace,
    options: &StructureOptions,
) -> Result<StructureReport, StructureError> {
    if options.concepts.is_empty() {
        return Err(StructureError::NoConcepts);
    }
    if options.target_steps == 0 || options.epochs == 0 {
        return Err(StructureError::BadTarget {
            target_steps: options.target_steps,
            epochs: options.epochs,
        });
    }
    let ext = options.caption_extension.trim_start_matches('.');
    let dest = &options.destination;
    let shown_dest = workspace.display_path(dest);
    if dest.exists()
        && std::fs::read_dir(dest)
            .map(|mut d| d.next().is_some())
            .unwrap_or(true)
    {
        return Err(StructureError::DestinationNotEmpty { path: shown_dest });
    }
    let mut names = BTreeSet::new();
    let mut planned = Vec::new();
    for concept in &options.concepts {
        check_name(&concept.name)?;
        if !names.insert(concept.name.to_lowercase()) {
            return Err(StructureError::DuplicateName {
                name: concept.name.clone(),
            });
        }
        if let Some(r) = concept.repeats
            && !(1..=MAX_REPEATS).contains(&r)
        {
            return Err(StructureError::BadRepeats { repeats: r });
        }
        let shown = workspace.display_path(&concept.source);
        if !concept.source.is_dir() {
            return Err(StructureError::NotAFolder { path: shown });
        }
        if dest.starts_with(&concept.source) {
            return Err(StructureError::DestinationInsideSource {
                path: shown_dest,
                source_folder: shown,
            });
        }
        let listing = walk::list_files(&concept.source, workspace.root()).map_err(|e| {
            StructureError::Copy {
                path: shown.clone(),
                reason: walk::plain_io_reason(&e),
            }
        })?;
        let (pictures, _) = manifest::classify(&listing.files, ext);
        let (top, nested): (Vec<_>, Vec<_>) =
            pictures.into_iter().partition(|f| f.folder.is_empty());
        if top.is_empty() {
            return Err(StructureError::NoPictures { path: shown });
        }
        let uncaptioned: Vec<(String, String)> = top
            .iter()
            .filter_map(|f| {
                let c = captions::read_caption(&captions::caption_path_for(&f.path, ext), None);
                let why = match c.status {
                    CaptionStatus::Ok => return None,
                    CaptionStatus::Missing => "no caption file".to_string(),
                    CaptionStatus::Empty => "the caption is empty".to_string(),
                    CaptionStatus::NotUtf8 => {
                        "the caption is not UTF-8 text; save it again as UTF-8".to_string()
                    }
                    CaptionStatus::Unreadable => c
                        .problem
                        .unwrap_or_else(|| "the caption cannot be read".to_string()),
                };
                Some((workspace.display_path(&f.path), why))
            })
            .collect();
        if !uncaptioned.is_empty() {
            return Err(StructureError::MissingCaptions {
                concept: concept.name.clone(),
                pictures: uncaptioned,
            });
        }
        let mut files = Vec::new();
        for f in &top {
            let caption = captions::caption_path_for(&f.path, ext);
            for p in [f.path.clone(), caption] {
                let name = p
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                files.push((p, name));
            }
        }
        planned.push((concept, shown, top.len(), nested.len(), files));
    }
    let count = planned.len();
    let mut concepts = Vec::new();
    for (concept, shown, images, nested, files) in planned {
        let (repeats, repeats_reason) = match concept.repeats {
            Some(r) => (r, "given".to_string()),
            None => {
                let r = auto_repeats(options.target_steps, count, images, options.epochs);
                (
                    r,
                    format!(
                        "auto: ceil({} target steps / ({}{images} pictures × {} epochs)) = {r}",
                        options.target_steps,
                        if count > 1 {
                            format!("{count} concepts × ")
                        } else {
                            String::new()
                        },
                        options.epochs
                    ),
                )
            }
        };
        concepts.push(PlannedConcept {
            subset: StructuredSubset {
                folder: format!("{repeats}_{}", concept.name),
                name: concept.name.clone(),
                source: shown,
                repeats,
                repeats_reason,
                images,
                skipped_nested: nested,
            },
            files,
        });
    }
    let mut files_copied = 0;
    let mut bytes_copied = 0;
    for c in &concepts {
        let folder = dest.join(&c.subset.folder);
        for (from, name) in &c.files {
            let copy_err = |reason: String| StructureError::Copy {
                path: workspace.display_path(from),
                reason,
            };
            let bytes = std::fs::read(from).map_err(|e| copy_err(walk::plain_io_reason(&e)))?;
            let to = folder.join(name);
            if to.exists() {
                return Err(copy_err(format!(
                    "`{}` is already there",
                    workspace.display_path(&to)
                )));
            }
            crate::studio::write_atomic(&to, &bytes).map_err(|e| copy_err(e.to_string()))?;
            files_copied += 1;
            bytes_copied += bytes.len() as u64;
        }
    }
    let subsets: Vec<StructuredSubset> = concepts.into_iter().map(|c| c.subset).collect();
    let images_per_epoch = subsets
        .iter()
        .map(|s| s.images as u64 * u64::from(s.repeats))
        .sum::<u64>();
    Ok(StructureReport {
        destination: workspace.display_path(dest),
        images_per_epoch,
        epochs: options.epochs,
        total_steps: images_per_epoch * u64::from(options.epochs),
        subsets,
        files_copied,
        bytes_copied,
    })
}

impl StructureReport {
    /// The short plain-language paragraph shown to the person.
    pub fn plain_summary(&self) -> String {
        let parts: Vec<String> = self
            .subsets
            .iter()
            .map(|s| {
                format!(
                    "`{}` ({} pictures × {} repeats)",
                    s.folder, s.images, s.repeats
                )
            })
            .collect();
        let mut out = format!(
            "Copied {} files into `{}`: {}. One epoch is {} steps at batch size 1, so {} epochs make {} steps. Your original folders were not changed.",
            self.files_copied,
            self.destination,
            parts.join(", "),
            self.images_per_epoch,
            self.epochs,
            self.total_steps
        );
        let nested: usize = self.subsets.iter().map(|s| s.skipped_nested).sum();
        if nested > 0 {
            out.push_str(&format!(
                " {nested} picture{} in subfolders of the sources {} not copied.",
                if nested == 1 { "" } else { "s" },
                if nested == 1 { "was" } else { "were" }
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::duplicates::encode;
    use crate::dataset::{AuditOptions, audit::Severity, audit_dataset};
    use crate::studio::NoProgress;
    use image::{DynamicImage, ImageFormat};
    use thumbs::synth::base_picture;

    fn concept_folder(ws: &Workspace, name: &str, n: u64, captions: bool) -> PathBuf {
        let dir = ws.root().join(name);
        std::fs::create_dir_all(&dir).unwrap();
        for i in 0..n {
            let img = DynamicImage::ImageRgb8(base_picture(i + n * 100, 512));
            std::fs::write(
                dir.join(format!("{name}-{i}.png")),
                encode(&img, ImageFormat::Png, 95).unwrap(),
            )
            .unwrap();
            if captions {
                std::fs::write(
                    dir.join(format!("{name}-{i}.txt")),
                    format!("zkfox, picture {i} of {name}"),
                )
                .unwrap();
            }
        }
        dir
    }

    #[test]
    fn layout_passes_the_audit_and_sources_are_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let ws = Workspace::open(dir.path()).unwrap();
        let foxes = concept_folder(&ws, "foxes", 4, true);
        let ink = concept_folder(&ws, "ink", 2, true);
        let before = std::fs::read_dir(&foxes).unwrap().count();
        let options = StructureOptions {
            destination: ws.root().join("train/zkfox"),
            concepts: vec![
                Concept {
                    source: foxes.clone(),
                    name: "zkfox".into(),
                    repeats: None,
                },
                Concept {
                    source: ink,
                    name: "ink style".into(),
                    repeats: Some(3),
                },
            ],
            target_steps: 1000,
            epochs: 10,
            caption_extension: "txt".into(),
        };
        let report = structure_dataset(&ws, &options).unwrap();
        // ceil(1000 / (2 concepts × 4 pictures × 10 epochs)) = 13
        assert_eq!(report.subsets[0].folder, "13_zkfox");
        assert_eq!(report.subsets[1].folder, "3_ink style");
        assert_eq!(report.images_per_epoch, 4 * 13 + 2 * 3);
        assert_eq!(report.total_steps, (4 * 13 + 2 * 3) * 10);
        assert_eq!(report.files_copied, 12);
        assert!(report.plain_summary().contains("not changed"));
        assert_eq!(std::fs::read_dir(&foxes).unwrap().count(), before);

        let audit = audit_dataset(
            &options.destination,
            "train/zkfox",
            ws.root(),
            &AuditOptions {
                trigger_word: Some("zkfox".into()),
                ..AuditOptions::default()
            },
            &NoProgress,
        )
        .unwrap();
        let blocking: Vec<_> = audit
            .problems
            .iter()
            .filter(|p| p.severity == Severity::Blocking)
            .collect();
        assert!(blocking.is_empty(), "{}", audit.plain_summary());
        assert_eq!(audit.layout.subsets.len(), 2);
        assert_eq!(audit.layout.images_per_epoch, 58);

        // Running again into the same folder is refused.
        let err = structure_dataset(&ws, &options).unwrap_err();
        assert!(matches!(err, StructureError::DestinationNotEmpty { .. }));
    }

    #[test]
    fn refuses_pictures_without_captions_and_says_which() {
        let dir = tempfile::tempdir().unwrap();
        let ws = Workspace::open(dir.path()).unwrap();
        let foxes = concept_folder(&ws, "foxes", 3, true);
        std::fs::remove_file(foxes.join("foxes-1.txt")).unwrap();
        std::fs::write(foxes.join("foxes-2.txt"), "  ").unwrap();
        let options = StructureOptions {
            destination: ws.root().join("train"),
            concepts: vec![Concept {
                source: foxes,
                name: "zkfox".into(),
                repeats: None,
            }],
            target_steps: 100,
            epochs: 1,
            caption_extension: "txt".into(),
        };
        let err = structure_dataset(&ws, &options).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("foxes/foxes-1.png") && text.contains("foxes/foxes-2.png"),
            "{text}"
        );
        assert!(text.starts_with("2 pictures"), "{text}");
        assert!(err.hint().unwrap().contains("caption"));
        assert!(!ws.root().join("train").exists(), "nothing written");
    }

    #[test]
    fn bad_names_and_repeats() {
        assert!(check_name("ohwx style").is_ok());
        for bad in ["", " x", "a/b", "..", "x\ny"] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
        assert_eq!(auto_repeats(1500, 1, 30, 10), 5);
        assert_eq!(auto_repeats(10, 1, 500, 10), 1);
        assert_eq!(auto_repeats(u64::MAX, 1, 1, 1), MAX_REPEATS);
    }
}
