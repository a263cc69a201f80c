//! `ategnatos://` resources: gate records, project reports and jobs.

use rmcp::ErrorData as McpError;
use rmcp::model::{ReadResourceResult, Resource, ResourceContents, ResourceTemplate};

use super::Shared;
use crate::gates;

const SCHEME: &str = "ategnatos://";

pub fn is_known_scheme(uri: &str) -> bool {
    uri.starts_with(SCHEME)
}

/// Report files a project folder may serve.
fn is_report_file(name: &str) -> bool {
    (name.ends_with(".md") || name.ends_with(".json"))
        && !name.starts_with('.')
        && !name.contains('/')
        && !name.contains("..")
}

pub fn report_uri(project: &str, file: &str) -> String {
    format!("{SCHEME}projects/{project}/reports/{file}")
}

pub fn list(shared: &Shared) -> Vec<Resource> {
    let ws = &shared.workspace;
    let mut out = Vec::new();
    for rec in gates::list(ws) {
        out.push(
            Resource::new(
                gates::uri(&rec.project, rec.gate),
                format!("{} — {}", rec.project, rec.gate.title()),
            )
            .with_mime_type("application/json")
            .with_description(format!("{:?} at {}", rec.status, rec.checked_at)),
        );
    }
    let training = ws.grimoire().join("training");
    if let Ok(projects) = std::fs::read_dir(&training) {
        let mut projects: Vec<_> = projects.filter_map(|e| e.ok()).collect();
        projects.sort_by_key(|e| e.file_name());
        for p in projects {
            let Some(project) = p.file_name().to_str().map(String::from) else {
                continue;
            };
            let Ok(files) = std::fs::read_dir(p.path()) else {
                continue;
            };
            let mut names: Vec<String> = files
                .filter_map(|f| f.ok()?.file_name().to_str().map(String::from))
                .filter(|n| is_report_file(n))
                .collect();
            names.sort();
            for name in names {
                let mime = if name.ends_with(".md") {
                    "text/markdown"
                } else {
                    "application/json"
                };
                out.push(
                    Resource::new(report_uri(&project, &name), format!("{project} — {name}"))
                        .with_mime_type(mime),
                );
            }
        }
    }
    for job in shared.jobs.all() {
        out.push(
            Resource::new(job.uri(), format!("job {} ({})", job.id, job.kind))
                .with_mime_type("application/json")
                .with_description(format!("{:?}", job.status())),
        );
    }
    out
}

pub fn templates() -> Vec<ResourceTemplate> {
    vec![
        ResourceTemplate::new(format!("{SCHEME}projects/{{name}}/gates/{{gate}}"), "gate")
            .with_mime_type("application/json")
            .with_description("The stored result of gate 1-4 (dataset, config, environment, dry_run) of a training project: PASS/FAIL, findings, time, fingerprint."),
        ResourceTemplate::new(format!("{SCHEME}projects/{{name}}/reports/{{file}}"), "report")
            .with_description("A report of a training project (audit.json, dataset-report.md, config.md, ...)."),
        ResourceTemplate::new(format!("{SCHEME}jobs/{{id}}"), "job")
            .with_mime_type("application/json")
            .with_description("A long-running job: status, progress and, when done, its result."),
    ]
}

fn not_found(uri: &str, why: &str) -> McpError {
    McpError::resource_not_found(
        format!("{why}: `{uri}`"),
        Some(serde_json::json!({ "uri": uri })),
    )
}

fn json_contents(uri: &str, value: &impl serde::Serialize) -> Result<ReadResourceResult, McpError> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| McpError::internal_error(format!("could not serialise `{uri}`: {e}"), None))?;
    Ok(ReadResourceResult::new(vec![
        ResourceContents::text(text, uri.to_string()).with_mime_type("application/json"),
    ]))
}

pub fn read(shared: &Shared, uri: &str) -> Result<ReadResourceResult, McpError> {
    let ws = &shared.workspace;
    if let Some((project, gate)) = gates::parse_uri(uri) {
        // Read fresh: a record whose inputs changed since says STALE.
        return match gates::status::read_fresh(ws, &project, gate) {
            Ok(Some(view)) => json_contents(uri, &view),
            Ok(None) => Err(not_found(uri, "that gate has not run yet for this project")),
            Err(e) => Err(McpError::internal_error(e.to_string(), None)),
        };
    }
    if let Some(id) = uri.strip_prefix(&format!("{SCHEME}jobs/")) {
        let job = shared
            .jobs
            .get(id)
            .ok_or_else(|| not_found(uri, "no such job in this server"))?;
        return json_contents(uri, &job.view());
    }
    if let Some(rest) = uri.strip_prefix(&format!("{SCHEME}projects/"))
        && let Some((project, file)) = rest.split_once("/reports/")
    {
        if !is_report_file(file) {
            return Err(not_found(uri, "not a report file"));
        }
        let dir = ws
            .project_dir(project)
            .map_err(|e| not_found(uri, &e.to_string()))?;
        let text = std::fs::read_to_string(dir.join(file))
            .map_err(|_| not_found(uri, "no such report"))?;
        let mime = if file.ends_with(".md") {
            "text/markdown"
        } else {
            "application/json"
        };
        return Ok(ReadResourceResult::new(vec![
            ResourceContents::text(text, uri.to_string()).with_mime_type(mime),
        ]));
    }
    Err(not_found(uri, "unknown resource"))
}
