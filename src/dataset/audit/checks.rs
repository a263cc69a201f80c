//! The checks on one file: a picture read, hashed, decoded and held against
//! the options (size, aspect, colour mode, format, extension, caption and
//! trigger word); captions shared word for word between pictures; and the
//! files beside the pictures that are not pictures.

use std::path::{Path, PathBuf};

use super::AuditOptions;
use super::findings::{Ctx, Finding, FindingKind};
use super::report::{ImageReport, OtherFile};
use crate::dataset::captions::{self, CaptionStatus, CaptionStyle};
use crate::dataset::inspect::{self, ColorMode, DecodeFailure};
use crate::dataset::walk::{self, FoundFile};
use crate::plan::CaptionFormat;

/// Reads, hashes and decodes one picture and checks it and its caption.
pub(super) fn inspect_picture(file: &FoundFile, options: &AuditOptions, ctx: &Ctx) -> ImageReport {
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
    let decoded = if crate::dataset::UNSUPPORTED_IMAGE_EXTENSIONS.contains(&ext.as_str())
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
        && crate::dataset::TRAINERS_SKIP_EXTENSIONS.contains(&ext.to_ascii_lowercase().as_str())
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
pub(super) fn flag_identical_captions(reports: &mut [ImageReport]) {
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

pub(super) fn other_findings(
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
