//! The audit's report: every picture and other file with what was found, the
//! dataset's numbers (sizes, aspect-ratio buckets, formats, colour modes),
//! and the short paragraph shown to the person.

use std::collections::BTreeMap;

use serde::Serialize;

use super::DEFAULT_MAX_ASPECT;
use super::findings::{Finding, Problem, Severity};
use crate::dataset::captions::{CaptionInfo, CaptionStatus};
use crate::dataset::inspect::Decoded;
use crate::dataset::layout::{Layout, LayoutKind};

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

pub(super) fn summarize(reports: &[ImageReport], other_files: usize) -> AuditSummary {
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

impl AuditReport {
    /// Prefixes every file path with `folder` (the dataset, relative to the workspace).
    pub(super) fn show_paths_under(&mut self, folder: &str) {
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
