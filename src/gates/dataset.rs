//! Gate 1 (dataset). For now the record comes from the audit alone: it fails
//! on any blocking audit problem. The full decision (captions, duplicates,
//! variety) builds on this record.

use super::{Gate, GateFinding, GateRecord, GateStatus};
use crate::dataset::AuditReport;
use crate::dataset::audit::Severity;
use crate::studio::{StudioError, Workspace, write_json_atomic};

/// Writes `audit.json` for the project and records Gate 1 from the audit.
/// Returns the record and its URI.
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
        .map(|p| GateFinding {
            severity: match p.severity {
                Severity::Blocking => "blocking",
                Severity::Warning => "warning",
                Severity::Info => "info",
            }
            .into(),
            message: p.message.clone(),
            what_to_do: p.what_to_do.clone(),
        })
        .collect();
    let uri = super::store(ws, &record)?;
    Ok((record, uri))
}
