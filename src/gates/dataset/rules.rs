//! The project's rules in the audit (its base model, trigger word and
//! caption extension), and Gate 1 recorded from an audit alone.

use crate::dataset::audit::Severity;
use crate::dataset::{AuditOptions, AuditReport};
use crate::gates::{Gate, GateFinding, GateRecord, GateStatus};
use crate::plan::catalog;
use crate::studio::Hint;
use crate::studio::{StudioError, Workspace, write_json_atomic};

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
    let uri = crate::gates::store(ws, &record)?;
    Ok((record, uri))
}

pub(super) fn severity_word(s: Severity) -> &'static str {
    match s {
        Severity::Blocking => "blocking",
        Severity::Warning => "warning",
        Severity::Info => "info",
    }
}
