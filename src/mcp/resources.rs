//! `ategnatos://` resources: gate records, project reports, training runs,
//! jobs and the guides (`ategnatos://guides/{topic}`).

use rmcp::ErrorData as McpError;
use rmcp::model::{ReadResourceResult, Resource, ResourceContents, ResourceTemplate};

use super::Shared;
use crate::gates;
use crate::knowledge::guides;
use crate::studio::Hint;

const SCHEME: &str = "ategnatos://";

pub fn is_known_scheme(uri: &str) -> bool {
    uri.starts_with(SCHEME)
}

/// Report files a project folder may serve: its reports, records and logs
/// (`dry-run.log`).
fn is_report_file(name: &str) -> bool {
    (name.ends_with(".md") || name.ends_with(".json") || name.ends_with(".log"))
        && !name.starts_with('.')
        && !name.contains('/')
        && !name.contains("..")
}

fn mime_of(name: &str) -> &'static str {
    if name.ends_with(".md") {
        "text/markdown"
    } else if name.ends_with(".log") {
        "text/plain"
    } else {
        "application/json"
    }
}

/// Most of a log a resource shows: its end, where a failure is.
const LOG_TAIL_BYTES: usize = 32 * 1024;

/// A log as a resource: whole when short, else its last lines (about
/// [`LOG_TAIL_BYTES`]) after a line saying how much was left out and where
/// the whole log is. A trainer's log runs to megabytes; what went wrong is at
/// its end.
fn log_tail(bytes: &[u8], shown_path: &str) -> String {
    if bytes.len() <= LOG_TAIL_BYTES {
        return String::from_utf8_lossy(bytes).into_owned();
    }
    let from = bytes.len() - LOG_TAIL_BYTES;
    let start = bytes[from..]
        .iter()
        .position(|&b| b == b'\n')
        .map_or(from, |i| from + i + 1);
    format!(
        "[the first {start} bytes are left out; the whole log is {shown_path}]\n{}",
        String::from_utf8_lossy(&bytes[start..])
    )
}

pub fn report_uri(project: &str, file: &str) -> String {
    format!("{SCHEME}projects/{project}/reports/{file}")
}

/// The newest runs of each project (three at most): uri, project, id.
fn run_uris(ws: &crate::studio::Workspace) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    let Ok(projects) = std::fs::read_dir(ws.grimoire().join("training")) else {
        return out;
    };
    let mut projects: Vec<String> = projects
        .filter_map(|e| e.ok()?.file_name().to_str().map(String::from))
        .collect();
    projects.sort();
    for project in projects {
        let Ok(runs) =
            std::fs::read_dir(ws.grimoire().join("training").join(&project).join("runs"))
        else {
            continue;
        };
        let mut ids: Vec<String> = runs
            .filter_map(|e| e.ok()?.file_name().to_str().map(String::from))
            .collect();
        ids.sort();
        for id in ids.into_iter().rev().take(3) {
            out.push((
                crate::gates::training::run_uri(&project, &id),
                project.clone(),
                id,
            ));
        }
    }
    out
}

/// When each listed run's record last changed.
pub fn run_stamps(ws: &crate::studio::Workspace) -> Vec<(String, std::time::SystemTime)> {
    run_uris(ws)
        .into_iter()
        .filter_map(|(uri, project, id)| {
            let path = ws
                .grimoire()
                .join("training")
                .join(&project)
                .join("runs")
                .join(&id)
                .join(crate::run::launch::RunFiles::RECORD);
            Some((uri, std::fs::metadata(path).ok()?.modified().ok()?))
        })
        .collect()
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
                out.push(
                    Resource::new(report_uri(&project, &name), format!("{project} — {name}"))
                        .with_mime_type(mime_of(&name)),
                );
            }
        }
    }
    for (uri, project, id) in run_uris(ws) {
        out.push(
            Resource::new(uri, format!("{project} — training run {id}"))
                .with_mime_type("application/json"),
        );
    }
    for guide in guides::all() {
        out.push(
            Resource::new(guide.uri(), format!("guide — {}", guide.title))
                .with_mime_type("text/markdown")
                .with_description(guide.summary),
        );
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
        ResourceTemplate::new(format!("{SCHEME}runs/{{name}}/{{id}}"), "run")
            .with_mime_type("application/json")
            .with_description("A training run: state, epoch, step, loss, warnings, checkpoints; updated as it trains (subscribe)."),
        ResourceTemplate::new(format!("{SCHEME}guides/{{topic}}"), "guide")
            .with_mime_type("text/markdown")
            .with_description("A guide in plain words (training-basics, dataset-size, captions, parameters, vram, failure-modes, prompt-syntax, feedback-map, ...)."),
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
    if let Some(rest) = uri.strip_prefix(&format!("{SCHEME}runs/"))
        && let Some((project, id)) = rest.split_once('/')
    {
        let dir = ws
            .project_dir(project)
            .map_err(|e| not_found(uri, &e.to_string()))?;
        if id.is_empty() || !id.chars().all(|c| c.is_ascii_digit() || c == '-') {
            return Err(not_found(uri, "not a run id"));
        }
        let dir = crate::run::launch::run_dir(&dir, id);
        let run = crate::run::launch::load(&dir).ok_or_else(|| not_found(uri, "no such run"))?;
        return json_contents(uri, &crate::run::launch::refreshed(run, &dir));
    }
    if let Some(topic) = guides::topic_of(uri) {
        let guide = guides::find(topic).map_err(|e| {
            McpError::resource_not_found(
                format!("{e}: `{uri}`"),
                Some(serde_json::json!({ "uri": uri, "hint": e.hint() })),
            )
        })?;
        return Ok(ReadResourceResult::new(vec![
            ResourceContents::text(guide.body(), uri.to_string()).with_mime_type("text/markdown"),
        ]));
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
        let bytes = std::fs::read(dir.join(file)).map_err(|_| not_found(uri, "no such report"))?;
        let text = if file.ends_with(".log") {
            log_tail(&bytes, &ws.display_path(&dir.join(file)))
        } else {
            String::from_utf8_lossy(&bytes).into_owned()
        };
        return Ok(ReadResourceResult::new(vec![
            ResourceContents::text(text, uri.to_string()).with_mime_type(mime_of(file)),
        ]));
    }
    Err(not_found(uri, "unknown resource"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::studio::Workspace;

    #[test]
    fn a_dry_run_log_is_served_whole_when_short_and_by_its_end_when_long() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().canonicalize().unwrap();
        let shared = Shared::new(Workspace::open(&root).unwrap());
        let dir = shared.workspace.project_dir("foxes").unwrap();
        std::fs::create_dir_all(&dir).unwrap();
        let uri = report_uri("foxes", "dry-run.log");
        let read = |uri: &str| match &read(&shared, uri).unwrap().contents[0] {
            ResourceContents::TextResourceContents {
                text, mime_type, ..
            } => (text.clone(), mime_type.clone()),
            other => panic!("{other:?}"),
        };

        std::fs::write(dir.join("dry-run.log"), "steps: 1/3 loss=0.12\n").unwrap();
        assert!(list(&shared).iter().any(|r| r.uri == uri));
        assert_eq!(
            read(&uri),
            (
                "steps: 1/3 loss=0.12\n".to_string(),
                Some("text/plain".to_string())
            )
        );

        let mut long: String = (0..20_000)
            .map(|i| format!("step {i} loss=0.1\n"))
            .collect();
        long.push_str("torch.OutOfMemoryError: CUDA out of memory\n");
        std::fs::write(dir.join("dry-run.log"), &long).unwrap();
        let (text, _) = read(&uri);
        assert!(text.len() < LOG_TAIL_BYTES + 200, "{}", text.len());
        assert!(text.starts_with("[the first "), "{}", &text[..80]);
        assert!(text.contains("grimoire/training/foxes/dry-run.log"));
        assert!(text.ends_with("CUDA out of memory\n"));
        // Whole lines only after the note.
        assert!(text.lines().nth(1).unwrap().starts_with("step "));

        assert!(read_err(&shared, &report_uri("foxes", "../x.log")));
    }

    fn read_err(shared: &Shared, uri: &str) -> bool {
        read(shared, uri).is_err()
    }
}
