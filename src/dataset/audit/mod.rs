//! The dataset audit: every file under a folder, decoded and checked, folded
//! into one report whose most important problems come first, each with what
//! to do about it.
//!
//! This module owns the run: the options a person gives, why an audit cannot
//! start, and [`audit_dataset`], which lists the folder, checks the pictures
//! in parallel (one rayon task per picture, so at most one decoded picture
//! per core is alive at a time) and folds the results together. Every
//! per-file failure becomes a finding and the audit goes on; nothing is ever
//! written to the dataset folder.
//!
//! What is checked on each file is `checks`'s; what each kind of finding
//! means, how much it matters and what to do about it is `findings`'s; the
//! report, its numbers and the paragraph shown to the person are `report`'s.

mod checks;
mod findings;
mod report;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use rayon::prelude::*;

pub use findings::{Finding, FindingKind, MAX_EXAMPLES, Problem, Severity};
pub use report::{AspectBucket, AuditReport, AuditSummary, ImageReport, OtherFile, SizedPicture};

use super::inspect;
use super::layout::{self, Layout, LayoutKind};
use super::manifest;
use super::walk::{self, FoundFile, WalkProblemKind};
use crate::plan::ModelSpec;
use crate::studio::Hint;
use crate::studio::Progress;
use checks::{flag_identical_captions, inspect_picture, other_findings};
use findings::{Ctx, collect_problems};
use report::summarize;

/// Default limit for extreme aspect ratios (long side / short side).
pub const DEFAULT_MAX_ASPECT: f64 = 3.0;
/// Short side used when neither a base model nor a minimum is given.
pub const FALLBACK_MIN_SIDE: u32 = 512;

/// What to audit against.
#[derive(Debug, Clone)]
pub struct AuditOptions {
    /// The base model the LoRA is for; sets the default minimum short side.
    pub base_model: Option<&'static ModelSpec>,
    /// Overrides the model's minimum short side.
    pub min_short_side: Option<u32>,
    /// Long side / short side beyond which a picture is flagged.
    pub max_aspect_ratio: f64,
    /// Caption file extension, without the dot.
    pub caption_extension: String,
    /// Word every caption must contain.
    pub trigger_word: Option<String>,
    /// A regularisation folder to audit alongside (kohya layout).
    pub regularization_dir: Option<PathBuf>,
    /// List every picture in the report, not only the ones with findings.
    pub include_all_files: bool,
}

impl Default for AuditOptions {
    fn default() -> Self {
        AuditOptions {
            base_model: None,
            min_short_side: None,
            max_aspect_ratio: DEFAULT_MAX_ASPECT,
            caption_extension: "txt".into(),
            trigger_word: None,
            regularization_dir: None,
            include_all_files: false,
        }
    }
}

impl AuditOptions {
    /// Checks the options a user gave before any file is read.
    pub fn validate(&self) -> Result<(), AuditError> {
        if let Some(n) = self.min_short_side
            && !(64..=8192).contains(&n)
        {
            return Err(AuditError::BadOption {
                option: "min_short_side",
                value: n.to_string(),
                why: "it must be between 64 and 8192 pixels",
                hint: "leave it out to use the base model's size",
            });
        }
        if !self.max_aspect_ratio.is_finite() || !(1.0..=20.0).contains(&self.max_aspect_ratio) {
            return Err(AuditError::BadOption {
                option: "max_aspect_ratio",
                value: self.max_aspect_ratio.to_string(),
                why: "it must be between 1 and 20",
                hint: "3 means pictures up to 1:3 are fine",
            });
        }
        let ext = self.caption_extension.trim_start_matches('.');
        if ext.is_empty()
            || ext.len() > 16
            || !ext.chars().all(|c| c.is_ascii_alphanumeric())
            || super::is_image_extension(ext)
        {
            return Err(AuditError::BadOption {
                option: "caption_extension",
                value: self.caption_extension.clone(),
                why: "a caption extension is a short word of letters and digits, not a picture extension",
                hint: "use `txt` (the usual) or `caption`",
            });
        }
        Ok(())
    }

    /// The minimum short side in force, and where it came from.
    pub fn min_side(&self) -> (u32, String) {
        match (self.min_short_side, self.base_model) {
            (Some(n), _) => (n, "given".into()),
            (None, Some(m)) => (m.native_resolution, format!("native for {}", m.name)),
            (None, None) => (FALLBACK_MIN_SIDE, "default (no base model given)".into()),
        }
    }
}

/// Why an audit could not run at all.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("`{path}` is not a folder")]
    NotAFolder { path: String },
    #[error("the folder `{path}` cannot be read: {reason}")]
    Unreadable { path: String, reason: String },
    #[error("the audit was cancelled")]
    Cancelled,
    #[error("`{option}` cannot be `{value}`: {why}")]
    BadOption {
        option: &'static str,
        value: String,
        why: &'static str,
        hint: &'static str,
    },
}

impl Hint for AuditError {
    fn hint(&self) -> Option<String> {
        match self {
            AuditError::NotAFolder { .. } => {
                Some("give the folder that holds the pictures, not a single file".into())
            }
            AuditError::Unreadable { .. } => Some("check the folder's permissions".into()),
            AuditError::Cancelled => None,
            AuditError::BadOption { hint, .. } => Some(hint.to_string()),
        }
    }
}

/// Audits the pictures under `dir`. `display` is how the folder is shown.
pub fn audit_dataset(
    dir: &Path,
    display: &str,
    workspace_root: &Path,
    options: &AuditOptions,
    progress: &dyn Progress,
) -> Result<AuditReport, AuditError> {
    options.validate()?;
    if !dir.is_dir() {
        return Err(AuditError::NotAFolder {
            path: display.to_string(),
        });
    }
    let listing = walk::list_files(dir, workspace_root).map_err(|e| AuditError::Unreadable {
        path: display.to_string(),
        reason: walk::plain_io_reason(&e),
    })?;
    let (min_side, min_side_reason) = options.min_side();
    let ctx = Ctx {
        caption_ext: options
            .caption_extension
            .trim_start_matches('.')
            .to_string(),
        caption_format: options.base_model.map(|m| m.caption_format),
        model_name: options
            .base_model
            .map(|m| m.name.to_string())
            .unwrap_or_default(),
        // Spaces around a trigger word are never meant: both faces pass it
        // as typed, the audit decides.
        trigger: options
            .trigger_word
            .as_deref()
            .map(str::trim)
            .unwrap_or_default()
            .to_string(),
        min_side,
        min_side_reason,
        max_aspect: options.max_aspect_ratio,
    };

    let (pictures, others) = manifest::classify(&listing.files, &ctx.caption_ext);
    let total = pictures.len() as u64;
    let done = AtomicU64::new(0);
    progress.report(0, Some(total), &format!("checking {total} pictures"));
    let mut reports: Vec<ImageReport> = pictures
        .par_iter()
        .map(|file| {
            if progress.is_cancelled() {
                return None;
            }
            let report = inspect_picture(file, options, &ctx);
            let n = done.fetch_add(1, Ordering::Relaxed) + 1;
            progress.report(n, Some(total), &format!("checked {n} of {total} pictures"));
            Some(report)
        })
        .collect::<Option<Vec<_>>>()
        .ok_or(AuditError::Cancelled)?;
    reports.sort_by(|a, b| a.path.cmp(&b.path));
    flag_identical_captions(&mut reports);

    let mut other_files = other_findings(&others, &pictures, &ctx.caption_ext);
    for p in &listing.problems {
        let detail = match &p.kind {
            WalkProblemKind::NotReadable(why) => why.clone(),
            WalkProblemKind::SymlinkLoop => {
                "a link that leads back into a folder already being read (a loop); not followed"
                    .into()
            }
            WalkProblemKind::BrokenLink => "a link whose target does not exist".into(),
            WalkProblemKind::OutsideWorkspace => {
                "a link that leads outside the workspace; not read".into()
            }
        };
        other_files.push(OtherFile {
            path: p.rel.clone(),
            finding: Finding {
                kind: FindingKind::UnreadableEntry,
                detail,
            },
        });
    }
    for f in listing.files.iter().filter(|f| !f.utf8_name) {
        other_files.push(OtherFile {
            path: f.rel.clone(),
            finding: Finding {
                kind: FindingKind::NonUtf8Name,
                detail: "the file name is not valid UTF-8".into(),
            },
        });
    }

    let folders: Vec<&str> = pictures.iter().map(|p| p.folder.as_str()).collect();
    let layout = layout::detect(&folders, false);
    if matches!(layout.kind, LayoutKind::Mixed | LayoutKind::Kohya)
        && layout.images_outside_subsets > 0
    {
        for p in pictures.iter().filter(|p| {
            let top = p.folder.split('/').next().unwrap_or("");
            layout::parse_subset_name(top).is_none() || p.folder.contains('/')
        }) {
            other_files.push(OtherFile {
                path: p.rel.clone(),
                finding: Finding {
                    kind: FindingKind::OutsideKohyaSubsets,
                    detail: "kohya only trains pictures directly inside `{repeats}_{name}` folders"
                        .into(),
                },
            });
        }
    }
    let regularization = match &options.regularization_dir {
        Some(reg) => Some(regularization_layout(reg, workspace_root)?),
        None => None,
    };

    let fingerprint = fingerprint_of(&reports, &others, &ctx.caption_ext);
    let summary = summarize(&reports, other_files.len());
    let mut problems = collect_problems(&reports, &other_files, &ctx);
    if reports.is_empty() {
        problems.insert(
            0,
            Problem {
                kind: FindingKind::NoImages,
                severity: Severity::Blocking,
                count: 1,
                message: FindingKind::NoImages.headline(1, &ctx),
                what_to_do: FindingKind::NoImages.what_to_do(&ctx),
                examples: vec![],
            },
        );
    }
    let summary = AuditSummary {
        blocking: problems
            .iter()
            .filter(|p| p.severity == Severity::Blocking)
            .count(),
        warnings: problems
            .iter()
            .filter(|p| p.severity == Severity::Warning)
            .count(),
        ..summary
    };
    let files = if options.include_all_files {
        reports
    } else {
        reports
            .into_iter()
            .filter(|r| !r.findings.is_empty())
            .collect()
    };
    let mut report = AuditReport {
        folder: display.to_string(),
        base_model: options.base_model.map(|m| m.id.to_string()),
        min_short_side: min_side,
        max_aspect_ratio: options.max_aspect_ratio,
        caption_extension: ctx.caption_ext.clone(),
        trigger_word: options.trigger_word.clone(),
        summary,
        problems,
        layout,
        regularization,
        files,
        other_files,
        fingerprint,
        all_files_listed: options.include_all_files,
    };
    // Every tool shows and takes paths relative to the workspace root, so a
    // path the audit names can be given to any other tool as it is. (The
    // fingerprint above stays on dataset-relative paths: moving the folder
    // does not change what it holds.)
    if let Ok(inside) = dir.strip_prefix(workspace_root)
        && !inside.as_os_str().is_empty()
    {
        report.show_paths_under(&inside.to_string_lossy());
    }
    Ok(report)
}

fn regularization_layout(reg: &Path, workspace_root: &Path) -> Result<Layout, AuditError> {
    let listing = walk::list_files(reg, workspace_root).map_err(|e| AuditError::Unreadable {
        path: reg.display().to_string(),
        reason: walk::plain_io_reason(&e),
    })?;
    let folders: Vec<&str> = listing
        .files
        .iter()
        .filter(|f| inspect::extension_of(&f.path).is_some_and(|e| super::is_image_extension(&e)))
        .map(|f| f.folder.as_str())
        .collect();
    Ok(layout::detect(&folders, true))
}

/// The dataset fingerprint from what the audit read (same value as [`manifest::compute`]).
fn fingerprint_of(reports: &[ImageReport], others: &[&FoundFile], caption_ext: &str) -> String {
    let captions = others
        .iter()
        .filter(|f| inspect::extension_of(&f.path).is_some_and(|e| e == caption_ext))
        .map(|f| f.rel.as_str());
    manifest::fingerprint(
        reports.iter().map(|r| manifest::PictureLine {
            rel: &r.path,
            size: r.file_size,
            hash: &r.content_hash,
            caption: r.caption.hash.as_deref().map(|h| (r.caption.size, h)),
        }),
        captions,
    )
}
