//! What each kind of audit finding means: how much it matters, the one line
//! that says what was found, and what to do about it; and how the findings on
//! single files are gathered into the dataset's problems, most important first.

use std::collections::BTreeMap;

use serde::Serialize;

use super::report::{ImageReport, OtherFile};
use crate::plan::CaptionFormat;

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
    pub(super) fn what_to_do(self, ctx: &Ctx) -> String {
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
    pub(super) fn headline(self, count: usize, ctx: &Ctx) -> String {
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
pub(super) struct Ctx {
    pub(super) caption_ext: String,
    pub(super) caption_format: Option<CaptionFormat>,
    pub(super) model_name: String,
    pub(super) trigger: String,
    pub(super) min_side: u32,
    pub(super) min_side_reason: String,
    pub(super) max_aspect: f64,
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

/// How many files a problem names; `count` says how many in all.
pub const MAX_EXAMPLES: usize = 10;

pub(super) fn collect_problems(
    reports: &[ImageReport],
    others: &[OtherFile],
    ctx: &Ctx,
) -> Vec<Problem> {
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
