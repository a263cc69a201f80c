//! The dataset audit: every file under a folder, decoded and checked, folded
//! into one report whose most important problems come first, each with what
//! to do about it.
//!
//! Pictures are processed in parallel (one rayon task per picture, so at most
//! one decoded picture per core is alive at a time); every per-file failure
//! becomes a finding and the audit goes on. Nothing is ever written to the
//! dataset folder.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use rayon::prelude::*;
use serde::Serialize;

use super::captions::{self, CaptionInfo, CaptionStatus, CaptionStyle};
use super::inspect::{self, ColorMode, DecodeFailure, Decoded};
use super::layout::{self, Layout, LayoutKind};
use super::manifest;
use super::walk::{self, FoundFile, WalkProblemKind};
use crate::plan::{CaptionFormat, ModelSpec};
use crate::studio::Hint;
use crate::studio::Progress;

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

/// How much a finding matters.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Training would crash or learn the wrong thing: fix before training.
    Blocking,
    /// Training works but the LoRA will likely be worse.
    Warning,
    /// Worth knowing; no action needed.
    Info,
}

/// Every kind of finding the audit makes.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum FindingKind {
    NoImages,
    Unreadable,
    DecompressionBomb,
    ZeroByte,
    MissingCaption,
    EmptyCaption,
    CaptionNotUtf8,
    CaptionUnreadable,
    MissingTrigger,
    TooSmall,
    ExtremeAspect,
    Cmyk,
    Transparency,
    ExtensionMismatch,
    UnsupportedFormat,
    OutsideKohyaSubsets,
    UnreadableEntry,
    NonUtf8Name,
    OrphanCaption,
    IdenticalCaption,
    CaptionTooLong,
    CaptionFormat,
    DuplicateTags,
    Greyscale,
    SixteenBit,
    UnusedAlpha,
    NonImageFile,
}

impl FindingKind {
    pub fn severity(self) -> Severity {
        use FindingKind::*;
        match self {
            NoImages | Unreadable | DecompressionBomb | ZeroByte | MissingCaption
            | EmptyCaption | CaptionNotUtf8 | CaptionUnreadable | MissingTrigger => {
                Severity::Blocking
            }
            TooSmall | ExtremeAspect | Cmyk | Transparency | ExtensionMismatch
            | UnsupportedFormat | OutsideKohyaSubsets | UnreadableEntry | NonUtf8Name
            | OrphanCaption | IdenticalCaption | CaptionTooLong | CaptionFormat => {
                Severity::Warning
            }
            Greyscale | SixteenBit | UnusedAlpha | NonImageFile | DuplicateTags => Severity::Info,
        }
    }

    /// What the user should do about it.
    fn what_to_do(self, ctx: &Ctx) -> String {
        use FindingKind::*;
        match self {
            NoImages => "put the training pictures (PNG, JPEG or WebP) in this folder, or point the audit at the folder that has them".into(),
            Unreadable => "re-export or re-download these files, or move them out with `quarantine_files`; a trainer crashes on the step that loads a broken file".into(),
            DecompressionBomb => "remove these files: they are not real pictures of that size, and decoding them would exhaust memory".into(),
            ZeroByte => "copy these files again from the original; an empty file is not a picture".into(),
            MissingCaption => format!("write a `.{}` caption for each of these pictures (caption_preview then write_captions); uncaptioned pictures train only on the folder name", ctx.caption_ext),
            EmptyCaption => "fill in these captions; an empty caption teaches the model nothing about the picture".into(),
            CaptionNotUtf8 => "re-save these captions as UTF-8 text (most editors have it under 'Save as… / Encoding')".into(),
            CaptionUnreadable => "check these captions' permissions so they can be read".into(),
            MissingTrigger => format!("start each of these captions with the trigger word `{}`; without it the LoRA cannot be called up by that word", ctx.trigger),
            TooSmall => format!("upscale these pictures to at least {} px on the short side, or remove them; the trainer would enlarge them and learn the blur", ctx.min_side),
            ExtremeAspect => format!("crop these pictures closer to square (at most 1:{}); very long strips train as tiny, wasted buckets", ctx.max_aspect),
            Cmyk => "convert these pictures to RGB (print colour mode shifts colours when trainers convert it)".into(),
            Transparency => "flatten these pictures onto a background colour; trainers turn transparent areas black or into noise".into(),
            ExtensionMismatch => "rename these files with the extension of their real format; some trainers select pictures by extension and skip or misread them".into(),
            UnsupportedFormat => "convert these pictures to PNG or JPEG; trainers cannot read this format".into(),
            OutsideKohyaSubsets => "move these pictures into a `{repeats}_{name}` subfolder (structure_dataset does it), or they will not be trained".into(),
            UnreadableEntry => "check these entries: folders Ategnatos may not read, links that point nowhere or in a circle, or links out of the workspace".into(),
            NonUtf8Name => "rename these files using plain letters and digits; some trainers fail on such names".into(),
            OrphanCaption => "these captions have no picture beside them: add the picture or move the caption away".into(),
            IdenticalCaption => "give each picture its own caption naming what differs (pose, setting, colours); identical captions make the model blur those pictures together".into(),
            CaptionTooLong => "shorten these captions to about 75 tokens (roughly 50 words); CLIP reads 75 and the rest is cut off or diluted".into(),
            CaptionFormat => match ctx.caption_format {
                Some(crate::plan::CaptionFormat::Tags) => "rewrite these as comma-separated tags (`zkfox, fox, snow, ink wash`): this base model was trained on tags".into(),
                _ => "rewrite these as plain sentences: this base model was trained on natural-language captions".into(),
            },
            DuplicateTags => "remove the repeated tags; repeating a tag only wastes tokens".into(),
            Greyscale => "fine for a black-and-white style; otherwise the LoRA will learn to drain colour".into(),
            SixteenBit => "nothing to do: trainers convert to 8 bits per channel (these files are just larger)".into(),
            UnusedAlpha => "nothing to do: the alpha channel is fully opaque".into(),
            NonImageFile => "nothing to do: trainers ignore these files".into(),
        }
    }

    /// One line saying what was found, for `count` items.
    fn headline(self, count: usize, ctx: &Ctx) -> String {
        use FindingKind::*;
        let s = if count == 1 { "" } else { "s" };
        let (is, has) = if count == 1 {
            ("is", "has")
        } else {
            ("are", "have")
        };
        match self {
            NoImages => "the folder has no pictures".into(),
            Unreadable => format!("{count} file{s} cannot be decoded (damaged or cut short)"),
            DecompressionBomb => {
                format!("{count} file{s} declare an impossible size (decompression bomb)")
            }
            ZeroByte => format!("{count} file{s} {is} empty (0 bytes)"),
            MissingCaption => format!("{count} picture{s} {has} no caption"),
            EmptyCaption => format!("{count} caption{s} {is} empty"),
            CaptionNotUtf8 => format!("{count} caption{s} {is} not UTF-8 text"),
            CaptionUnreadable => format!("{count} caption{s} cannot be read"),
            MissingTrigger => format!(
                "{count} caption{s} lack{} the trigger word `{}`",
                if count == 1 { "s" } else { "" },
                ctx.trigger
            ),
            TooSmall => format!(
                "{count} picture{s} {is} below {} px on the short side ({})",
                ctx.min_side, ctx.min_side_reason
            ),
            ExtremeAspect => format!(
                "{count} picture{s} {is} longer than 1:{} (extreme aspect ratio)",
                ctx.max_aspect
            ),
            Cmyk => format!("{count} picture{s} {is} in CMYK (print) colour mode"),
            Transparency => format!("{count} picture{s} {has} transparent areas"),
            ExtensionMismatch => {
                format!("{count} file{s} {has} an extension that does not match the content")
            }
            UnsupportedFormat => format!("{count} file{s} {is} in a format trainers cannot read"),
            OutsideKohyaSubsets => format!(
                "{count} picture{s} {is} outside the `{{repeats}}_{{name}}` subfolders and will not be trained"
            ),
            UnreadableEntry => format!(
                "{count} entr{} could not be read or followed",
                if count == 1 { "y" } else { "ies" }
            ),
            NonUtf8Name => format!("{count} file name{s} {is} not valid UTF-8"),
            OrphanCaption => format!("{count} caption{s} {has} no picture"),
            IdenticalCaption => {
                format!("{count} picture{s} share their caption word for word with another picture")
            }
            CaptionTooLong => format!("{count} caption{s} {is} longer than CLIP's 75-token window"),
            CaptionFormat => format!(
                "{count} caption{s} {is} written as {} but {} expects {}",
                if ctx.caption_format == Some(crate::plan::CaptionFormat::Tags) {
                    "sentences"
                } else {
                    "tags"
                },
                ctx.model_name,
                if ctx.caption_format == Some(crate::plan::CaptionFormat::Tags) {
                    "tags"
                } else {
                    "sentences"
                }
            ),
            DuplicateTags => format!("{count} caption{s} repeat a tag"),
            Greyscale => format!("{count} picture{s} {is} greyscale"),
            SixteenBit => format!(
                "{count} picture{s} use{} 16 bits per channel",
                if count == 1 { "s" } else { "" }
            ),
            UnusedAlpha => format!("{count} picture{s} {has} an unused alpha channel"),
            NonImageFile => format!("{count} other file{s} (not pictures or captions)"),
        }
    }
}

/// Context the wording needs.
struct Ctx {
    caption_ext: String,
    caption_format: Option<CaptionFormat>,
    model_name: String,
    trigger: String,
    min_side: u32,
    min_side_reason: String,
    max_aspect: f64,
}

/// One finding about one file.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Finding {
    pub kind: FindingKind,
    /// The specifics, in words.
    pub detail: String,
}

/// One kind of problem across the dataset, with what to do about it.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Problem {
    pub kind: FindingKind,
    pub severity: Severity,
    pub count: usize,
    /// What was found, in one line.
    pub message: String,
    /// What to do about it.
    pub what_to_do: String,
    /// Up to [`MAX_EXAMPLES`] of the affected files.
    pub examples: Vec<String>,
}

/// A picture (or a file that should have been one) and what was found.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct ImageReport {
    /// Path relative to the workspace.
    pub path: String,
    pub file_size: u64,
    /// The decoded picture, when it could be decoded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<Decoded>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub short_side: Option<u32>,
    /// Width / height.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aspect_ratio: Option<f64>,
    /// The caption beside it.
    pub caption: CaptionInfo,
    pub findings: Vec<Finding>,
    /// BLAKE3 of the file's bytes.
    pub content_hash: String,
}

/// A file that is not a picture: a caption without a picture, or anything else.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct OtherFile {
    pub path: String,
    pub finding: Finding,
}

/// Count of pictures per aspect-ratio bucket.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct AspectBucket {
    /// `1:1`, `3:4`, `16:9`, ... (width:height), or `taller than 1:3`.
    pub ratio: String,
    pub count: usize,
}

/// The numbers of the dataset.
#[derive(Debug, Clone, Default, Serialize, schemars::JsonSchema)]
pub struct AuditSummary {
    /// Files that are (or should be) pictures.
    pub images: usize,
    /// Pictures that decode.
    pub readable: usize,
    /// Pictures with a usable caption.
    pub captioned: usize,
    pub other_files: usize,
    pub total_bytes: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mean_width: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mean_height: Option<u32>,
    /// The picture with the shortest short side (what limits training).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub smallest: Option<SizedPicture>,
    /// The picture with the most pixels.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub largest: Option<SizedPicture>,
    pub aspect_ratios: Vec<AspectBucket>,
    pub formats: BTreeMap<String, usize>,
    pub color_modes: BTreeMap<String, usize>,
    /// Problems that must be fixed before training.
    pub blocking: usize,
    pub warnings: usize,
}

/// How many files a problem names; `count` says how many in all.
pub const MAX_EXAMPLES: usize = 10;

/// One picture named by its size.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct SizedPicture {
    /// Relative to the workspace.
    pub path: String,
    pub width: u32,
    pub height: u32,
}

impl std::fmt::Display for SizedPicture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}x{} ({})", self.width, self.height, self.path)
    }
}

/// Everything the audit found.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct AuditReport {
    /// The folder, relative to the workspace.
    pub folder: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub base_model: Option<String>,
    pub min_short_side: u32,
    pub max_aspect_ratio: f64,
    pub caption_extension: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trigger_word: Option<String>,
    pub summary: AuditSummary,
    /// Most important first.
    pub problems: Vec<Problem>,
    pub layout: Layout,
    /// The regularisation folder's layout, when one was audited.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub regularization: Option<Layout>,
    /// Pictures with findings (every picture with `include_all_files`).
    pub files: Vec<ImageReport>,
    /// Files that are not pictures, and entries that could not be read.
    pub other_files: Vec<OtherFile>,
    /// Fingerprint of the dataset's content (paths, sizes, hashes of pictures and captions).
    pub fingerprint: String,
    /// True when every picture was listed in `files`.
    pub all_files_listed: bool,
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

fn inspect_picture(file: &FoundFile, options: &AuditOptions, ctx: &Ctx) -> ImageReport {
    let mut findings = Vec::new();
    let mut push = |kind, detail: String| findings.push(Finding { kind, detail });
    let caption_path = captions::caption_path_for(&file.path, &ctx.caption_ext);
    let caption = captions::read_caption(&caption_path, options.trigger_word.as_deref());
    let ext = inspect::extension_of(&file.path).unwrap_or_default();

    let bytes = match std::fs::read(&file.path) {
        Ok(b) => b,
        Err(e) => {
            push(FindingKind::Unreadable, walk::plain_io_reason(&e));
            return ImageReport {
                path: file.rel.clone(),
                file_size: 0,
                image: None,
                short_side: None,
                aspect_ratio: None,
                caption,
                findings,
                content_hash: String::new(),
            };
        }
    };
    let content_hash = blake3::hash(&bytes).to_hex().to_string();
    let decoded = if super::UNSUPPORTED_IMAGE_EXTENSIONS.contains(&ext.as_str())
        && inspect::sniff(&bytes).is_none()
        && !bytes.is_empty()
    {
        push(
            FindingKind::UnsupportedFormat,
            format!("`.{ext}` pictures cannot be read by the trainers"),
        );
        None
    } else {
        match inspect::decode(&bytes) {
            Ok(d) => Some(d),
            Err(failure) => {
                let kind = match failure {
                    DecodeFailure::ZeroBytes => FindingKind::ZeroByte,
                    DecodeFailure::Bomb { .. } => FindingKind::DecompressionBomb,
                    DecodeFailure::Unsupported(_) => FindingKind::UnsupportedFormat,
                    DecodeFailure::NotAnImage | DecodeFailure::Corrupt(_) => {
                        FindingKind::Unreadable
                    }
                };
                push(kind, failure.plain());
                None
            }
        }
    };
    drop(bytes);
    if decoded.is_some()
        && super::TRAINERS_SKIP_EXTENSIONS.contains(&ext.to_ascii_lowercase().as_str())
    {
        push(
            FindingKind::UnsupportedFormat,
            format!(
                "kohya sd-scripts and the other trainers look only for PNG, JPEG, WebP and BMP files, so this `.{ext}` picture would not be trained on"
            ),
        );
    }

    let mut short_side = None;
    let mut aspect_ratio = None;
    if let Some(d) = &decoded {
        let short = d.width.min(d.height);
        let long = d.width.max(d.height);
        short_side = Some(short);
        aspect_ratio =
            Some((f64::from(d.width) / f64::from(d.height.max(1)) * 1000.0).round() / 1000.0);
        if let Some(format) = image::ImageFormat::from_extension(&ext).filter(|_| !ext.is_empty()) {
            let real = image::ImageFormat::all().find(|f| inspect::format_name(*f) == d.format);
            if real.is_some_and(|real| !inspect::extension_matches(&ext, real))
                && inspect::format_name(format) != d.format
            {
                push(
                    FindingKind::ExtensionMismatch,
                    format!(
                        "named `.{ext}` but the content is {}",
                        d.format.to_uppercase()
                    ),
                );
            }
        } else {
            push(
                FindingKind::ExtensionMismatch,
                format!(
                    "the content is {} but the name {}; trainers pick pictures by extension and will skip it",
                    d.format.to_uppercase(),
                    if ext.is_empty() {
                        "has no extension".to_string()
                    } else {
                        format!("ends in `.{ext}`")
                    }
                ),
            );
        }
        if short < ctx.min_side {
            push(
                FindingKind::TooSmall,
                format!(
                    "{}×{}: short side {short} px, below {} px",
                    d.width, d.height, ctx.min_side
                ),
            );
        }
        if f64::from(long) > f64::from(short.max(1)) * ctx.max_aspect {
            push(
                FindingKind::ExtremeAspect,
                format!(
                    "{}×{} is 1:{:.1}",
                    d.width,
                    d.height,
                    f64::from(long) / f64::from(short.max(1))
                ),
            );
        }
        match d.color_mode {
            ColorMode::Cmyk => push(FindingKind::Cmyk, "CMYK (print) colour mode".into()),
            ColorMode::Greyscale | ColorMode::GreyscaleAlpha => {
                push(FindingKind::Greyscale, "greyscale".into())
            }
            _ => {}
        }
        if d.has_alpha {
            if d.uses_transparency {
                push(FindingKind::Transparency, "has transparent pixels".into());
            } else {
                push(
                    FindingKind::UnusedAlpha,
                    "alpha channel present but fully opaque".into(),
                );
            }
        }
        if d.bits_per_channel > 8 {
            push(
                FindingKind::SixteenBit,
                format!("{} bits per channel", d.bits_per_channel),
            );
        }
    }
    match caption.status {
        CaptionStatus::Ok => {
            if caption.has_trigger == Some(false) {
                push(
                    FindingKind::MissingTrigger,
                    format!("the caption does not contain `{}`", ctx.trigger),
                );
            }
            if caption.tokens > 75 {
                push(
                    FindingKind::CaptionTooLong,
                    format!("about {} tokens", caption.tokens),
                );
            }
            let expected = match ctx.caption_format {
                Some(CaptionFormat::Tags) => Some(CaptionStyle::Tags),
                Some(CaptionFormat::NaturalLanguage) => Some(CaptionStyle::Sentences),
                None => None,
            };
            if let (Some(expected), Some(style)) = (expected, caption.style)
                && style != expected
            {
                let written = if style == CaptionStyle::Tags {
                    "tags"
                } else {
                    "sentences"
                };
                push(FindingKind::CaptionFormat, format!("written as {written}"));
            }
            if !caption.duplicate_tags.is_empty() {
                push(
                    FindingKind::DuplicateTags,
                    format!("repeated: {}", caption.duplicate_tags.join(", ")),
                );
            }
        }
        CaptionStatus::Missing => push(
            FindingKind::MissingCaption,
            format!("no `{}` beside it", file_name(&caption_path)),
        ),
        CaptionStatus::Empty => push(
            FindingKind::EmptyCaption,
            "the caption file is empty".into(),
        ),
        CaptionStatus::NotUtf8 => push(
            FindingKind::CaptionNotUtf8,
            caption.problem.clone().unwrap_or_default(),
        ),
        CaptionStatus::Unreadable => push(
            FindingKind::CaptionUnreadable,
            caption.problem.clone().unwrap_or_default(),
        ),
    }
    ImageReport {
        path: file.rel.clone(),
        file_size: std::fs::metadata(&file.path).map(|m| m.len()).unwrap_or(0),
        image: decoded,
        short_side,
        aspect_ratio,
        caption,
        findings,
        content_hash,
    }
}

/// Pictures whose captions are byte-for-byte the same as another picture's.
fn flag_identical_captions(reports: &mut [ImageReport]) {
    let mut by_hash: std::collections::HashMap<String, Vec<usize>> =
        std::collections::HashMap::new();
    for (i, r) in reports.iter().enumerate() {
        if let (CaptionStatus::Ok, Some(h)) = (r.caption.status, &r.caption.hash) {
            by_hash.entry(h.clone()).or_default().push(i);
        }
    }
    for group in by_hash.values().filter(|g| g.len() > 1) {
        let names: Vec<String> = group.iter().map(|&i| reports[i].path.clone()).collect();
        for &i in group {
            let others: Vec<&str> = names
                .iter()
                .filter(|n| **n != reports[i].path)
                .map(String::as_str)
                .take(3)
                .collect();
            reports[i].findings.push(Finding {
                kind: FindingKind::IdenticalCaption,
                detail: format!("same caption as {}", others.join(", ")),
            });
        }
    }
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn other_findings(
    others: &[&FoundFile],
    pictures: &[&FoundFile],
    caption_ext: &str,
) -> Vec<OtherFile> {
    let stems: std::collections::HashSet<PathBuf> =
        pictures.iter().map(|p| p.path.with_extension("")).collect();
    others
        .iter()
        .filter_map(|f| {
            let ext = inspect::extension_of(&f.path).unwrap_or_default();
            let finding = if ext == caption_ext {
                if stems.contains(&f.path.with_extension("")) {
                    return None;
                }
                Finding {
                    kind: FindingKind::OrphanCaption,
                    detail: "no picture with the same name beside it".into(),
                }
            } else if std::fs::metadata(&f.path).map(|m| m.len()).unwrap_or(0) == 0
                && ext.is_empty()
            {
                Finding {
                    kind: FindingKind::NonImageFile,
                    detail: "an empty file".into(),
                }
            } else {
                Finding {
                    kind: FindingKind::NonImageFile,
                    detail: if ext.is_empty() {
                        "not a picture".into()
                    } else {
                        format!("a `.{ext}` file, not a picture")
                    },
                }
            };
            Some(OtherFile {
                path: f.rel.clone(),
                finding,
            })
        })
        .collect()
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

fn aspect_bucket(w: u32, h: u32, max_aspect: f64) -> &'static str {
    const RATIOS: &[(&str, f64)] = &[
        ("9:16", 9.0 / 16.0),
        ("2:3", 2.0 / 3.0),
        ("3:4", 0.75),
        ("1:1", 1.0),
        ("4:3", 4.0 / 3.0),
        ("3:2", 1.5),
        ("16:9", 16.0 / 9.0),
        ("2:1", 2.0),
        ("1:2", 0.5),
    ];
    let r = f64::from(w) / f64::from(h.max(1));
    if r > max_aspect {
        return "wider than 3:1";
    }
    if r < 1.0 / max_aspect {
        return "taller than 1:3";
    }
    RATIOS
        .iter()
        .min_by(|a, b| {
            (a.1.ln() - r.ln())
                .abs()
                .total_cmp(&(b.1.ln() - r.ln()).abs())
        })
        .map(|(name, _)| *name)
        .unwrap_or("1:1")
}

fn summarize(reports: &[ImageReport], other_files: usize) -> AuditSummary {
    let mut s = AuditSummary {
        images: reports.len(),
        other_files,
        ..Default::default()
    };
    let mut buckets: BTreeMap<&str, usize> = BTreeMap::new();
    let (mut sum_w, mut sum_h) = (0u64, 0u64);
    let mut smallest: Option<(&str, u32, u32)> = None;
    let mut largest: Option<(&str, u32, u32)> = None;
    for r in reports {
        s.total_bytes += r.file_size;
        if matches!(r.caption.status, CaptionStatus::Ok) {
            s.captioned += 1;
        }
        let Some(d) = &r.image else { continue };
        s.readable += 1;
        sum_w += u64::from(d.width);
        sum_h += u64::from(d.height);
        *buckets
            .entry(aspect_bucket(d.width, d.height, DEFAULT_MAX_ASPECT))
            .or_default() += 1;
        *s.formats.entry(d.format.clone()).or_default() += 1;
        let mode = serde_json::to_value(d.color_mode)
            .ok()
            .and_then(|v| v.as_str().map(String::from))
            .unwrap_or_default();
        let mode = if d.bits_per_channel > 8 {
            format!("{mode} ({}-bit)", d.bits_per_channel)
        } else {
            mode
        };
        *s.color_modes.entry(mode).or_default() += 1;
        let short = d.width.min(d.height);
        if smallest.is_none_or(|(_, w, h)| short < w.min(h)) {
            smallest = Some((&r.path, d.width, d.height));
        }
        let area = u64::from(d.width) * u64::from(d.height);
        if largest.is_none_or(|(_, w, h)| area > u64::from(w) * u64::from(h)) {
            largest = Some((&r.path, d.width, d.height));
        }
    }
    if s.readable > 0 {
        s.mean_width = Some((sum_w / s.readable as u64) as u32);
        s.mean_height = Some((sum_h / s.readable as u64) as u32);
    }
    let named = |(path, width, height): (&str, u32, u32)| SizedPicture {
        path: path.to_string(),
        width,
        height,
    };
    s.smallest = smallest.map(named);
    s.largest = largest.map(named);
    s.aspect_ratios = buckets
        .into_iter()
        .map(|(ratio, count)| AspectBucket {
            ratio: ratio.to_string(),
            count,
        })
        .collect();
    s
}

fn collect_problems(reports: &[ImageReport], others: &[OtherFile], ctx: &Ctx) -> Vec<Problem> {
    let mut by_kind: BTreeMap<FindingKind, Vec<&str>> = BTreeMap::new();
    for r in reports {
        for f in &r.findings {
            by_kind.entry(f.kind).or_default().push(&r.path);
        }
    }
    for o in others {
        by_kind.entry(o.finding.kind).or_default().push(&o.path);
    }
    let mut problems: Vec<Problem> = by_kind
        .into_iter()
        .map(|(kind, paths)| Problem {
            kind,
            severity: kind.severity(),
            count: paths.len(),
            message: kind.headline(paths.len(), ctx),
            what_to_do: kind.what_to_do(ctx),
            examples: paths
                .iter()
                .take(MAX_EXAMPLES)
                .map(|p| p.to_string())
                .collect(),
        })
        .collect();
    // Severity first; within it, the order of FindingKind (which is by harm).
    problems.sort_by_key(|p| (p.severity, p.kind));
    problems
}

impl AuditReport {
    /// Prefixes every file path with `folder` (the dataset, relative to the workspace).
    fn show_paths_under(&mut self, folder: &str) {
        let under = |p: &mut String| *p = format!("{folder}/{p}");
        self.files.iter_mut().for_each(|f| under(&mut f.path));
        self.other_files.iter_mut().for_each(|f| under(&mut f.path));
        for p in &mut self.problems {
            p.examples.iter_mut().for_each(under);
        }
        for extreme in [&mut self.summary.smallest, &mut self.summary.largest]
            .into_iter()
            .flatten()
        {
            extreme.path = format!("{folder}/{}", extreme.path);
        }
    }

    /// The short plain-language paragraph shown to the person.
    pub fn plain_summary(&self) -> String {
        let s = &self.summary;
        let layout = match self.layout.kind {
            LayoutKind::Flat => "flat folder".to_string(),
            LayoutKind::Kohya => format!(
                "kohya layout, {} subfolder{}",
                self.layout.subsets.len(),
                if self.layout.subsets.len() == 1 {
                    ""
                } else {
                    "s"
                }
            ),
            LayoutKind::Mixed => "partly kohya layout".to_string(),
            LayoutKind::Empty => "no pictures".to_string(),
        };
        let mut out = format!(
            "Audited {} picture{} in `{}` ({layout}): {} readable, {} captioned",
            s.images,
            if s.images == 1 { "" } else { "s" },
            self.folder,
            s.readable,
            s.captioned
        );
        if let (Some(w), Some(h)) = (s.mean_width, s.mean_height) {
            out.push_str(&format!(", average {w}×{h}"));
        }
        out.push('.');
        let blocking: Vec<&Problem> = self
            .problems
            .iter()
            .filter(|p| p.severity == Severity::Blocking)
            .collect();
        let warnings: Vec<&Problem> = self
            .problems
            .iter()
            .filter(|p| p.severity == Severity::Warning)
            .collect();
        if blocking.is_empty() && warnings.is_empty() {
            out.push_str(
                " No problems found: the pictures are ready for captioning and the next checks.",
            );
            return out;
        }
        if !blocking.is_empty() {
            out.push_str(&format!(" Must fix before training ({}):", blocking.len()));
            for p in &blocking {
                out.push_str(&format!(" {} — {}.", p.message, p.what_to_do));
            }
        }
        if !warnings.is_empty() {
            out.push_str(&format!(" Worth fixing ({}):", warnings.len()));
            for p in warnings.iter().take(4) {
                out.push_str(&format!(" {} — {}.", p.message, p.what_to_do));
            }
            if warnings.len() > 4 {
                out.push_str(&format!(" …and {} more in the report.", warnings.len() - 4));
            }
        }
        out
    }
}
