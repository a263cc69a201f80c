//! Gate 1 (dataset): GO or NO-GO for the pictures and captions of a project.
//!
//! It runs the audit against the project's intent (base model, trigger word,
//! training type), looks for duplicates, weighs how the captions balance
//! content and style, and writes `dataset-report.md`. It blocks on pictures
//! without captions, pictures that cannot be read, duplicate pictures still
//! in the set, fewer pictures than the training type needs, and captions
//! without the trigger word. The record carries the dataset fingerprint, so
//! any later change to a picture or caption makes the gate stale.
//!
//! [`rules`] takes the project's rules into the audit and records an audit on
//! its own; [`balance`] weighs content against style in the captions;
//! [`report`] writes `dataset-report.md`; this file runs the gate.

mod balance;
mod report;
mod rules;

pub use balance::CaptionBalance;
pub use rules::{ProjectRulesError, apply_project_rules, record_audit};

use serde::Serialize;

use crate::dataset::AuditOptions;
use crate::dataset::audit::{FindingKind, Severity};
use crate::dataset::intent::{IntentError, require_project};
use crate::gates::{Gate, GateFinding, GateRecord, GateStatus};
use crate::likeness::curate::{CurateOptions, VarietyRating};
use crate::likeness::dedup::{self, DuplicateOptions};
use crate::plan::catalog;
use crate::studio::Hint;
use crate::studio::project::TrainingType;
use crate::studio::{Progress, StudioError, Workspace, write_atomic, write_json_atomic};

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
            severity: rules::severity_word(p.severity).into(),
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
    let balance = balance::balance(
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
        report::strengths_and_limits(&project, &report, &balance)
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
        report::render_markdown(&gate, &project, &report).as_bytes(),
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
    gate.resource_uri = crate::gates::store(ws, &record)?;
    Ok(gate)
}
