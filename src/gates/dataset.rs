//! Gate 1 (dataset): GO or NO-GO for the pictures and captions of a project.
//!
//! It runs the audit against the project's intent (base model, trigger word,
//! training type), looks for duplicates, weighs how the captions balance
//! content and style, and writes `dataset-report.md`. It blocks on pictures
//! without captions, pictures that cannot be read, duplicate pictures still
//! in the set, fewer pictures than the training type needs, and captions
//! without the trigger word. The record carries the dataset fingerprint, so
//! any later change to a picture or caption makes the gate stale.

use std::collections::BTreeMap;

use serde::Serialize;

use super::{Gate, GateFinding, GateRecord, GateStatus};
use crate::dataset::audit::{FindingKind, Severity};
use crate::dataset::intent::{IntentError, require_project};
use crate::dataset::{AuditOptions, AuditReport};
use crate::likeness::curate::{CurateOptions, VarietyRating};
use crate::likeness::dedup::{self, DuplicateOptions};
use crate::plan::catalog;
use crate::studio::Hint;
use crate::studio::project::{Project, TrainingType};
use crate::studio::{Progress, StudioError, Workspace, write_atomic, write_json_atomic};

/// Why an audit could not take a project's rules.
#[derive(Debug, thiserror::Error)]
pub enum ProjectRulesError {
    #[error(transparent)]
    Studio(#[from] StudioError),
    #[error("the project `{project}` uses the {what} `{expected}`, not `{given}`")]
    Conflict {
        project: String,
        what: &'static str,
        expected: String,
        given: String,
    },
}

impl Hint for ProjectRulesError {
    fn hint(&self) -> Option<String> {
        match self {
            ProjectRulesError::Studio(e) => e.hint(),
            ProjectRulesError::Conflict { what, .. } => Some(format!(
                "leave the {what} out (the project's is used), or audit without naming the project"
            )),
        }
    }
}

/// When `project` names a started project, the audit checks that project's
/// rules: its trigger word and base model fill in what was not given (and
/// what was given must agree), and its caption extension is used. An
/// unknown name leaves the options as they are.
pub fn apply_project_rules(
    ws: &Workspace,
    project: &str,
    options: &mut AuditOptions,
) -> Result<(), ProjectRulesError> {
    let Some(p) = crate::studio::project::load(ws, project)? else {
        return Ok(());
    };
    let conflict = |what, expected: &str, given: &str| ProjectRulesError::Conflict {
        project: p.name.clone(),
        what,
        expected: expected.to_string(),
        given: given.to_string(),
    };
    match &options.trigger_word {
        Some(t) if !t.trim().eq_ignore_ascii_case(p.trigger_word.trim()) => {
            return Err(conflict("trigger word", &p.trigger_word, t));
        }
        _ => options.trigger_word = Some(p.trigger_word.clone()),
    }
    let model = catalog::lookup(&p.base_model).ok();
    match (options.base_model, model) {
        (Some(given), Some(m)) if given.id != m.id => {
            return Err(conflict("base model", m.id, given.id));
        }
        (None, Some(m)) => options.base_model = Some(m),
        _ => {}
    }
    options.caption_extension = p.caption_extension.clone();
    Ok(())
}

/// Writes `audit.json` for the project and records Gate 1 from the audit
/// alone (scope `audit`). Returns the record and its URI.
pub fn record_audit(
    ws: &Workspace,
    project: &str,
    report: &AuditReport,
) -> Result<(GateRecord, String), StudioError> {
    let audit_path = ws.project_dir(project)?.join("audit.json");
    write_json_atomic(&audit_path, report)?;
    let status = if report.summary.blocking == 0 {
        GateStatus::Pass
    } else {
        GateStatus::Fail
    };
    let mut record = GateRecord::new(project, Gate::Dataset, status, report.fingerprint.clone());
    record.scope = "audit".into();
    record.report = Some(ws.display_path(&audit_path));
    record.summary = report.plain_summary();
    record.findings = report
        .problems
        .iter()
        .filter(|p| p.severity != Severity::Info)
        .map(|p| {
            GateFinding {
                severity: severity_word(p.severity).into(),
                message: p.message.clone(),
                what_to_do: p.what_to_do.clone(),
                ..GateFinding::default()
            }
            .about(&p.examples, p.count)
        })
        .collect();
    let uri = super::store(ws, &record)?;
    Ok((record, uri))
}

fn severity_word(s: Severity) -> &'static str {
    match s {
        Severity::Blocking => "blocking",
        Severity::Warning => "warning",
        Severity::Info => "info",
    }
}

/// Why Gate 1 could not run.
#[derive(Debug, thiserror::Error)]
pub enum Gate1Error {
    #[error(transparent)]
    Project(#[from] IntentError),
    #[error(transparent)]
    Studio(#[from] StudioError),
    #[error(transparent)]
    Audit(#[from] crate::dataset::AuditError),
    #[error(transparent)]
    Duplicates(#[from] crate::likeness::dedup::DedupError),
}

impl Hint for Gate1Error {
    fn hint(&self) -> Option<String> {
        match self {
            Gate1Error::Project(e) => e.hint(),
            Gate1Error::Studio(e) => e.hint(),
            Gate1Error::Audit(e) => e.hint(),
            Gate1Error::Duplicates(e) => e.hint(),
        }
    }
}

/// A group of copies of one picture (identical files, re-saves, resizes,
/// crops, brightness changes or mirror images).
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct DuplicateGroup {
    /// The suggested keeper, relative to the workspace.
    pub keeper: String,
    /// The other copies: move them out with `quarantine_files`.
    pub copies: Vec<String>,
    /// A side-by-side picture of the group, relative to the workspace.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub contact_sheet: Option<String>,
}

/// How the captions split content and style.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct CaptionBalance {
    /// Captions that name at least one style element (medium, brushwork, palette, light, ...).
    pub naming_style: usize,
    /// Captions with at least three content words beyond the trigger and style words.
    pub naming_content: usize,
    pub captions: usize,
    /// The style words used most often, with counts.
    pub top_style_words: Vec<(String, usize)>,
    /// Pictures whose captions name no style element (named in the findings).
    #[serde(skip)]
    pub without_style: Vec<String>,
    /// Pictures whose captions describe little content (named in the findings).
    #[serde(skip)]
    pub thin_content: Vec<String>,
}

/// The Gate 1 decision.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Gate1Report {
    pub project: String,
    /// GO or NO-GO.
    pub decision: String,
    pub status: GateStatus,
    pub pictures: usize,
    pub captioned: usize,
    pub expected_min: usize,
    pub expected_max: usize,
    /// Blocking problems, each with its fix.
    pub blockers: Vec<GateFinding>,
    /// Problems worth fixing that do not block.
    pub warnings: Vec<GateFinding>,
    pub duplicates: Vec<DuplicateGroup>,
    /// 0–100: how different the pictures are from each other.
    pub variety_score: u32,
    /// Regularisation advice for this training type.
    pub regularization_advice: String,
    pub balance: CaptionBalance,
    /// For GO: what it will train well.
    pub strengths: Vec<String>,
    /// For GO: known limits.
    pub limits: Vec<String>,
    /// `dataset-report.md`, relative to the workspace.
    pub report_file: String,
    pub resource_uri: String,
    pub fingerprint: String,
}

impl Gate1Report {
    pub fn plain_summary(&self) -> String {
        let mut s = format!(
            "Gate 1 for `{}`: {}. {} pictures, {} captioned ({}–{} wanted).",
            self.project,
            self.decision,
            self.pictures,
            self.captioned,
            self.expected_min,
            self.expected_max
        );
        if self.blockers.is_empty() {
            s.push_str(&format!(" Ready to train. {}", self.strengths.join(" ")));
            if !self.warnings.is_empty() {
                s.push_str(&format!(
                    " {} warning(s) are in the report.",
                    self.warnings.len()
                ));
            }
        } else {
            s.push_str(" To get to GO:");
            for b in &self.blockers {
                s.push_str(&format!(" {} — {}", b.message, b.what_to_do));
                match b.files_line() {
                    Some(files) => s.push_str(&format!(" ({files}).")),
                    None => s.push('.'),
                }
            }
        }
        s.push_str(&format!(
            " Report: {} ({}).",
            self.report_file, self.resource_uri
        ));
        s
    }
}

/// Words that describe how a picture is made rather than what is in it.
const STYLE_WORDS: &[&str] = &[
    "watercolor",
    "watercolour",
    "ink",
    "oil",
    "acrylic",
    "gouache",
    "pencil",
    "charcoal",
    "pastel",
    "crayon",
    "marker",
    "digital",
    "painting",
    "painted",
    "sketch",
    "sketchy",
    "lineart",
    "linework",
    "line",
    "lines",
    "brush",
    "brushwork",
    "brushstrokes",
    "strokes",
    "impasto",
    "wash",
    "washes",
    "hatching",
    "crosshatching",
    "stippling",
    "cel",
    "shading",
    "shaded",
    "flat",
    "gradient",
    "gradients",
    "palette",
    "colors",
    "colours",
    "muted",
    "vivid",
    "saturated",
    "desaturated",
    "pastel",
    "monochrome",
    "greyscale",
    "grayscale",
    "sepia",
    "warm",
    "cool",
    "light",
    "lighting",
    "backlit",
    "rim",
    "shadow",
    "shadows",
    "chiaroscuro",
    "glow",
    "composition",
    "symmetrical",
    "centered",
    "framing",
    "closeup",
    "wide",
    "perspective",
    "edges",
    "edge",
    "soft",
    "hard",
    "loose",
    "tight",
    "texture",
    "textured",
    "grain",
    "grainy",
    "paper",
    "canvas",
    "bleed",
    "splatter",
    "matte",
    "glossy",
    "sumi",
    "ukiyo-e",
    "woodblock",
    "lithograph",
    "engraving",
    "etching",
    "impressionist",
    "expressive",
    "minimal",
    "minimalist",
    "detailed",
    "painterly",
];

fn balance(
    report: &AuditReport,
    workspace_root: &std::path::Path,
    caption_ext: &str,
    trigger: &str,
) -> CaptionBalance {
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    let (mut naming_style, mut naming_content, mut captions) = (0, 0, 0);
    let (mut without_style, mut thin_content) = (Vec::new(), Vec::new());
    for f in &report.files {
        let path = workspace_root.join(&f.path);
        let Ok(text) = crate::dataset::captions::read_caption_text(
            &crate::dataset::captions::caption_path_for(&path, caption_ext),
        ) else {
            continue;
        };
        captions += 1;
        let words: Vec<String> = text
            .to_lowercase()
            .split(|c: char| !c.is_alphanumeric() && c != '-')
            .filter(|w| !w.is_empty() && *w != trigger.to_lowercase())
            .map(String::from)
            .collect();
        let style: Vec<&String> = words
            .iter()
            .filter(|w| STYLE_WORDS.contains(&w.as_str()))
            .collect();
        if style.is_empty() {
            without_style.push(f.path.clone());
        } else {
            naming_style += 1;
        }
        if words.len() - style.len() >= 3 {
            naming_content += 1;
        } else {
            thin_content.push(f.path.clone());
        }
        for w in style {
            *counts.entry(w.clone()).or_default() += 1;
        }
    }
    let mut top: Vec<(String, usize)> = counts.into_iter().collect();
    top.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    top.truncate(8);
    CaptionBalance {
        naming_style,
        naming_content,
        captions,
        top_style_words: top,
        without_style,
        thin_content,
    }
}

/// Runs Gate 1 for a project: audit, duplicates, caption balance, decision,
/// `dataset-report.md` and the gate record.
pub fn run_gate1(
    ws: &Workspace,
    project_name: &str,
    progress: &dyn Progress,
) -> Result<Gate1Report, Gate1Error> {
    let project = require_project(ws, project_name)?;
    let model = catalog::lookup(&project.base_model).map_err(IntentError::from)?;
    let dataset = crate::studio::paths::resolve_existing(ws.root(), &project.dataset)
        .map_err(IntentError::from)?;
    let options = AuditOptions {
        base_model: Some(model),
        trigger_word: Some(project.trigger_word.clone()),
        caption_extension: project.caption_extension.clone(),
        include_all_files: true,
        ..AuditOptions::default()
    };
    let report =
        crate::dataset::audit_dataset(&dataset, &project.dataset, ws.root(), &options, progress)?;
    progress.report(
        report.summary.images as u64,
        Some(report.summary.images as u64),
        "weighing captions and duplicates",
    );
    let (lo, hi) = project.training_type.expected_images();
    let mut blockers = Vec::new();
    let mut warnings = Vec::new();
    for p in &report.problems {
        let finding = GateFinding {
            severity: severity_word(p.severity).into(),
            message: p.message.clone(),
            what_to_do: p.what_to_do.clone(),
            ..GateFinding::default()
        }
        .about(&p.examples, p.count);
        let blocks = matches!(
            p.kind,
            FindingKind::NoImages
                | FindingKind::Unreadable
                | FindingKind::DecompressionBomb
                | FindingKind::ZeroByte
                | FindingKind::UnsupportedFormat
                | FindingKind::MissingCaption
                | FindingKind::EmptyCaption
                | FindingKind::CaptionNotUtf8
                | FindingKind::CaptionUnreadable
                | FindingKind::MissingTrigger
        );
        if blocks {
            blockers.push(GateFinding {
                severity: "blocking".into(),
                ..finding
            });
        } else if p.severity == Severity::Warning {
            warnings.push(finding);
        }
    }
    // A trigger from before the CLIP check may be a word the model knows.
    match crate::dataset::trigger::check_trigger(&project.trigger_word) {
        Ok(check) if check.warning.is_some() => warnings.push(GateFinding {
            severity: "warning".into(),
            message: format!("the trigger word `{}` is made of ordinary words: {}", project.trigger_word, check.plain_summary(&project.trigger_word)),
            what_to_do: "keep it if you accept that pull, or start a new project (start_project) with a made-up trigger and put that word first in the captions".into(),
            ..GateFinding::default()
        }),
        Ok(_) => {}
        Err(e) => warnings.push(GateFinding {
            severity: "warning".into(),
            message: e.to_string(),
            what_to_do: format!("start a new project (start_project) with a made-up trigger and put it first in the captions; {}", e.hint().unwrap_or_default()),
            ..GateFinding::default()
        }),
    }
    let dup_options = DuplicateOptions {
        caption_extension: project.caption_extension.clone(),
        ..DuplicateOptions::default()
    };
    let found = dedup::find_duplicates(&dataset, ws, &dup_options, progress)?;
    let duplicates: Vec<DuplicateGroup> = found
        .groups
        .iter()
        .map(|g| DuplicateGroup {
            keeper: g.keeper.clone(),
            copies: g
                .members
                .iter()
                .filter(|m| !m.keep)
                .map(|m| m.path.clone())
                .collect(),
            contact_sheet: g.contact_sheet.clone(),
        })
        .collect();
    if !duplicates.is_empty() {
        let examples: Vec<String> = duplicates
            .iter()
            .take(3)
            .map(|g| format!("{} = {}", g.keeper, g.copies.join(", ")))
            .collect();
        let copies: Vec<&String> = duplicates.iter().flat_map(|g| &g.copies).collect();
        blockers.push(GateFinding {
            severity: "blocking".into(),
            message: format!("{} group(s) of copies of the same picture ({})", duplicates.len(), examples.join("; ")),
            what_to_do: "keep one picture of each group and move the others out with quarantine_files (find_duplicates shows them side by side); copies make the LoRA memorise those pictures".into(),
            ..GateFinding::default()
        }
        .about(&copies, copies.len()));
    }
    let curate_options = CurateOptions {
        training_type: Some(project.training_type),
        caption_extension: project.caption_extension.clone(),
        ..CurateOptions::default()
    };
    let curation =
        crate::likeness::curate::curate_dataset(&dataset, ws, &curate_options, progress)?;
    if curation.variety.rating == VarietyRating::Repetitive {
        let alike: Vec<&String> = curation.clusters.iter().flat_map(|c| &c.members).collect();
        warnings.push(GateFinding {
            severity: "warning".into(),
            message: format!("the pictures are repetitive (variety {} of 100; {} look-alike groups)", curation.variety.score, curation.clusters.len()),
            what_to_do: "replace some look-alikes with pictures of other subjects, settings or light (curate_dataset lists them)".into(),
            ..GateFinding::default()
        }
        .about(&alike, alike.len()));
    }
    let regularization_advice = curation
        .regularization
        .as_ref()
        .map(|r| r.advice.clone())
        .unwrap_or_default();
    let readable = report.summary.readable;
    if readable < lo {
        blockers.push(GateFinding {
            severity: "blocking".into(),
            message: format!(
                "only {readable} usable pictures; {} LoRA needs at least {lo}",
                project.training_type.with_article()
            ),
            what_to_do: format!(
                "add {} more varied pictures (different subjects, settings and light)",
                lo - readable
            ),
            ..GateFinding::default()
        });
    } else if readable > hi {
        warnings.push(GateFinding {
            severity: "warning".into(),
            message: format!(
                "{readable} pictures, more than the {lo}–{hi} {} LoRA needs",
                project.training_type.with_article()
            ),
            what_to_do: "curate down to the most varied ones, or expect longer training".into(),
            ..GateFinding::default()
        });
    }
    let balance = balance(
        &report,
        ws.root(),
        &project.caption_extension,
        &project.trigger_word,
    );
    if project.training_type == TrainingType::Style
        && balance.captions > 0
        && balance.naming_style * 2 < balance.captions
    {
        warnings.push(GateFinding {
            severity: "warning".into(),
            message: format!("only {} of {} captions name the style (medium, brushwork, palette, light)", balance.naming_style, balance.captions),
            what_to_do: "add the same few style words to every caption so the trigger word and those words carry the style together".into(),
            ..GateFinding::default()
        }
        .about(&balance.without_style, balance.without_style.len()));
    }
    if balance.captions > 0 && balance.naming_content * 2 < balance.captions {
        warnings.push(GateFinding {
            severity: "warning".into(),
            message: format!("only {} of {} captions describe the content in any detail", balance.naming_content, balance.captions),
            what_to_do: "name what is in each picture (subjects, pose, setting), or the LoRA will bake that content into the trigger word".into(),
            ..GateFinding::default()
        }
        .about(&balance.thin_content, balance.thin_content.len()));
    }
    let status = if blockers.is_empty() {
        GateStatus::Pass
    } else {
        GateStatus::Fail
    };
    let (strengths, limits) = if blockers.is_empty() {
        strengths_and_limits(&project, &report, &balance)
    } else {
        (Vec::new(), Vec::new())
    };

    let report_path = ws.project_dir(&project.name)?.join("dataset-report.md");
    let mut gate = Gate1Report {
        project: project.name.clone(),
        decision: if blockers.is_empty() {
            "GO".into()
        } else {
            "NO-GO".into()
        },
        status,
        pictures: report.summary.images,
        captioned: report.summary.captioned,
        expected_min: lo,
        expected_max: hi,
        blockers,
        warnings,
        duplicates,
        variety_score: curation.variety.score,
        regularization_advice,
        balance,
        strengths,
        limits,
        report_file: ws.display_path(&report_path),
        resource_uri: super::uri(&project.name, Gate::Dataset),
        fingerprint: report.fingerprint.clone(),
    };
    write_json_atomic(&ws.project_dir(&project.name)?.join("audit.json"), &report)?;
    write_atomic(
        &report_path,
        render_markdown(&gate, &project, &report).as_bytes(),
    )?;
    let mut record = GateRecord::new(
        &project.name,
        Gate::Dataset,
        status,
        report.fingerprint.clone(),
    );
    record.report = Some(gate.report_file.clone());
    record.findings = gate
        .blockers
        .iter()
        .chain(gate.warnings.iter())
        .cloned()
        .collect();
    record.summary = gate.plain_summary();
    gate.resource_uri = super::store(ws, &record)?;
    Ok(gate)
}

fn strengths_and_limits(
    project: &Project,
    report: &AuditReport,
    balance: &CaptionBalance,
) -> (Vec<String>, Vec<String>) {
    let mut strengths = Vec::new();
    let mut limits = Vec::new();
    let styles: Vec<&str> = balance
        .top_style_words
        .iter()
        .take(4)
        .map(|(w, _)| w.as_str())
        .collect();
    match project.training_type {
        TrainingType::Style if !styles.is_empty() => strengths.push(format!(
            "It should learn the {} look the captions describe ({}).",
            project.trigger_word,
            styles.join(", ")
        )),
        TrainingType::Style => strengths.push(format!(
            "It should learn what the pictures share, under `{}`.",
            project.trigger_word
        )),
        TrainingType::Character => strengths.push(format!(
            "It should learn to draw the character as `{}` in the poses and outfits shown.",
            project.trigger_word
        )),
        TrainingType::Object => strengths.push(format!(
            "It should learn the object as `{}` from the angles shown.",
            project.trigger_word
        )),
    }
    let ratios = &report.summary.aspect_ratios;
    if let Some(top) = ratios.iter().max_by_key(|b| b.count)
        && top.count * 10 >= report.summary.readable * 8
    {
        limits.push(format!(
            "Most pictures are {}; other shapes will be less reliable.",
            top.ratio
        ));
    }
    if let Some(small) = &report.summary.smallest {
        limits.push(format!("The smallest picture is {small}; detail finer than the pictures hold will not be learned."));
    }
    let greys = report
        .summary
        .color_modes
        .iter()
        .filter(|(k, _)| k.starts_with("greyscale"))
        .map(|(_, v)| *v)
        .sum::<usize>();
    if greys * 2 > report.summary.readable {
        limits.push(
            "Most pictures are greyscale: the LoRA will lean towards draining colour.".into(),
        );
    }
    (strengths, limits)
}

fn render_markdown(g: &Gate1Report, project: &Project, report: &AuditReport) -> String {
    let s = &report.summary;
    let mut md = format!(
        "# Dataset report: {}\n\n**Decision: {}**\n\n",
        g.project, g.decision
    );
    md.push_str("## Summary\n\n");
    md.push_str(&format!(
        "- Pictures: {} ({} readable, {} captioned); {} LoRA wants {}–{}\n",
        s.images,
        s.readable,
        s.captioned,
        project.training_type.with_article(),
        g.expected_min,
        g.expected_max
    ));
    if let (Some(w), Some(h)) = (s.mean_width, s.mean_height) {
        md.push_str(&format!(
            "- Size: average {w}×{h}, smallest {}, largest {} (minimum short side {})\n",
            s.smallest.as_ref().map_or("-".into(), ToString::to_string),
            s.largest.as_ref().map_or("-".into(), ToString::to_string),
            report.min_short_side
        ));
    }
    md.push_str(&format!(
        "- Base model: {} · trigger word `{}`\n",
        project.base_model, project.trigger_word
    ));
    md.push_str("\n## Diversity\n\n");
    let ratios: Vec<String> = s
        .aspect_ratios
        .iter()
        .map(|b| format!("{} ×{}", b.ratio, b.count))
        .collect();
    md.push_str(&format!(
        "- Aspect ratios: {}\n",
        if ratios.is_empty() {
            "-".into()
        } else {
            ratios.join(", ")
        }
    ));
    let modes: Vec<String> = s
        .color_modes
        .iter()
        .map(|(k, v)| format!("{k} ×{v}"))
        .collect();
    md.push_str(&format!(
        "- Colour: {}\n",
        if modes.is_empty() {
            "-".into()
        } else {
            modes.join(", ")
        }
    ));
    md.push_str(&format!(
        "- Duplicates: {}\n",
        match g.duplicates.len() {
            0 => "no copies found".to_string(),
            1 => "1 group of copies (the same picture, resized, re-saved, cropped or mirrored)"
                .to_string(),
            n => format!(
                "{n} groups of copies (the same picture, resized, re-saved, cropped or mirrored)"
            ),
        }
    ));
    md.push_str("\n## Content and style balance\n\n");
    let b = &g.balance;
    md.push_str(&format!(
        "- {} of {} captions name the style; {} describe the content\n",
        b.naming_style, b.captions, b.naming_content
    ));
    if !b.top_style_words.is_empty() {
        let words: Vec<String> = b
            .top_style_words
            .iter()
            .map(|(w, n)| format!("{w} ×{n}"))
            .collect();
        md.push_str(&format!("- Style words used: {}\n", words.join(", ")));
    }
    md.push_str("\n## Quality issues\n\n");
    if g.blockers.is_empty() && g.warnings.is_empty() {
        md.push_str("None.\n");
    }
    for f in g.blockers.iter().chain(g.warnings.iter()) {
        md.push_str(&format!(
            "- **{}** {} — {}\n",
            f.severity, f.message, f.what_to_do
        ));
        if let Some(files) = f.files_line() {
            md.push_str(&format!("  - {files}\n"));
        }
    }
    md.push_str(&format!("\n## Decision: {}\n\n", g.decision));
    if g.blockers.is_empty() {
        md.push_str("### What it will train well\n\n");
        for s in &g.strengths {
            md.push_str(&format!("- {s}\n"));
        }
        md.push_str("\n### Known limits\n\n");
        if g.limits.is_empty() {
            md.push_str("- None found in the pictures themselves.\n");
        }
        for l in &g.limits {
            md.push_str(&format!("- {l}\n"));
        }
    } else {
        md.push_str("### Fixes, in order\n\n");
        for (i, f) in g.blockers.iter().enumerate() {
            md.push_str(&format!("{}. {} — {}\n", i + 1, f.message, f.what_to_do));
        }
        md.push_str("\nThen run gate 1 again.\n");
    }
    md.push_str(&format!("\nFingerprint `{}`\n", g.fingerprint));
    md
}
