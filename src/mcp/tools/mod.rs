//! The tools, one file per group, each a `#[tool_router]` block on
//! [`AtegnatosServer`] that the routers here add together.
//!
//! A tool parses its typed arguments, resolves paths inside the workspace,
//! calls one domain function and returns its result (structured content plus
//! a plain summary). Long work goes through [`run_job`].

mod advice;
mod art;
mod audit;
mod captions;
mod cloud;
mod comfy;
mod duplicates;
mod environment;
mod gates;
mod jobs;
mod plan;
mod project;
mod training;

use std::sync::Arc;
use std::time::Duration;

use rmcp::RoleServer;
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::model::{CallToolResult, ProgressNotificationParam};
use rmcp::service::RequestContext;

use super::AtegnatosServer;
use super::jobs::{Job, JobFailure, JobOutput, JobProgress, JobStatus};
use super::reply;

/// Every tool of the server, with compact input schemas and no output
/// schemas (results carry structured content all the same): what the model
/// reads in every conversation stays within budget (see `schema`).
pub fn router() -> ToolRouter<AtegnatosServer> {
    let mut router = AtegnatosServer::audit_router()
        + AtegnatosServer::project_router()
        + AtegnatosServer::captions_router()
        + AtegnatosServer::plan_router()
        + AtegnatosServer::gates_router()
        + AtegnatosServer::environment_router()
        + AtegnatosServer::training_router()
        + AtegnatosServer::duplicates_router()
        + AtegnatosServer::jobs_router()
        + AtegnatosServer::cloud_router()
        + AtegnatosServer::comfy_router()
        + AtegnatosServer::art_router()
        + AtegnatosServer::art_work_router()
        + AtegnatosServer::advice_router();
    for route in router.map.values_mut() {
        let mut schema = (*route.attr.input_schema).clone();
        super::schema::compact(&mut schema);
        route.attr.input_schema = Arc::new(schema);
        route.attr.output_schema = None;
        if let Some(annotations) = route.attr.annotations.as_mut() {
            super::schema::compact_annotations(annotations);
        }
    }
    router
}

/// Runs blocking domain work (files, decoding) off the async runtime and
/// turns its outcome into the tool's answer: `done` for a result, the error's
/// message and hint for a refusal, a plain failure if the work panicked.
pub(crate) async fn answer<T, E>(
    name: &'static str,
    work: impl FnOnce() -> Result<T, E> + Send + 'static,
    done: impl FnOnce(T) -> CallToolResult,
) -> CallToolResult
where
    T: Send + 'static,
    E: crate::studio::Hint + Send + 'static,
{
    match tokio::task::spawn_blocking(work).await {
        Ok(Ok(out)) => done(out),
        Ok(Err(e)) => reply::refusal(&e),
        Err(e) => reply::failure(format!("{name} crashed: {e}"), None),
    }
}

/// A job's output from a serialisable report.
pub(crate) fn output<T: serde::Serialize>(
    summary: String,
    changed: Vec<String>,
    report: &T,
) -> Result<JobOutput, JobFailure> {
    let result = serde_json::to_value(report).map_err(|e| JobFailure {
        error: e.to_string(),
        hint: None,
    })?;
    Ok(JobOutput {
        summary,
        changed,
        result,
        previews: Vec::new(),
    })
}

/// Adds JPEG previews to a result as image blocks.
fn with_previews(mut result: CallToolResult, previews: &[Vec<u8>]) -> CallToolResult {
    use base64::Engine;
    for jpeg in previews {
        let data = base64::engine::general_purpose::STANDARD.encode(jpeg);
        result
            .content
            .push(rmcp::model::ContentBlock::image(data, "image/jpeg"));
    }
    result
}

/// Default bounded wait for a tool that starts a job.
pub const DEFAULT_WAIT_SECONDS: u64 = 30;
/// Longest wait a caller may ask for (clients time out around a few minutes).
pub const MAX_WAIT_SECONDS: u64 = 240;

/// Waits on `job` for up to `wait_seconds`, sending progress notifications to
/// the caller meanwhile, and turns its state into a tool result.
pub async fn follow_job(
    server: &AtegnatosServer,
    job: &Arc<Job>,
    wait_seconds: Option<u64>,
    ctx: &RequestContext<RoleServer>,
) -> CallToolResult {
    let wait = Duration::from_secs(
        wait_seconds
            .unwrap_or(DEFAULT_WAIT_SECONDS)
            .min(MAX_WAIT_SECONDS),
    );
    let token = ctx.meta.get_progress_token();
    let peer = ctx.peer.clone();
    let interval = server.shared().progress_interval;
    tokio::select! {
        _ = job.wait(wait, interval, |p| {
            let token = token.clone();
            let peer = peer.clone();
            async move {
                if let Some(token) = token {
                    let mut note = ProgressNotificationParam::new(token, p.done as f64).with_message(p.message);
                    if let Some(total) = p.total {
                        note = note.with_total(total as f64);
                    }
                    let _ = peer.notify_progress(note).await;
                }
            }
        }) => {}
        // The client gave up on this call; the job goes on and stays reachable.
        _ = ctx.ct.cancelled() => {}
    }
    job_result(job)
}

/// The tool result for a job in its current state; a finished one carries
/// its previews however late it is asked for.
pub fn job_result(job: &Job) -> CallToolResult {
    let view = job.view();
    match view.status {
        JobStatus::Done => {
            let summary = job.summary().unwrap_or_default();
            with_previews(reply::structured(&view, summary), &job.previews())
        }
        JobStatus::Running => {
            let p = &view.progress;
            let how_far = match p.total {
                Some(t) => format!("{} of {t} done", p.done),
                None => format!("{} done", p.done),
            };
            let summary = format!(
                "Still working ({how_far}{}). Call job_status with job_id `{}` to wait for the result, or read {}.",
                if p.message.is_empty() {
                    String::new()
                } else {
                    format!(": {}", p.message)
                },
                view.job_id,
                view.resource_uri
            );
            reply::structured(&view, summary)
        }
        JobStatus::Failed => {
            let f = view.failure.clone().unwrap_or(JobFailure {
                error: "the job failed".into(),
                hint: None,
            });
            reply::failure(f.error, f.hint)
        }
        JobStatus::Cancelled => reply::failure(
            format!("job `{}` was cancelled before it finished", view.job_id),
            Some("start the tool again when you want the result".into()),
        ),
    }
}

/// Starts `work` as a job and follows it.
pub async fn run_job<W>(
    server: &AtegnatosServer,
    kind: &str,
    wait_seconds: Option<u64>,
    ctx: &RequestContext<RoleServer>,
    work: W,
) -> (Arc<Job>, CallToolResult)
where
    W: FnOnce(&JobProgress) -> Result<JobOutput, JobFailure> + Send + 'static,
{
    let job = server.shared().jobs.spawn(kind, work);
    server
        .log(
            &ctx.peer,
            rmcp::model::LoggingLevel::Info,
            format!("started job {} ({kind})", job.id),
        )
        .await;
    // Subscribers hear about changed resources even when the call returned early.
    let shared = Arc::clone(server.shared());
    let watched = Arc::clone(&job);
    tokio::spawn(async move {
        watched.finished().await;
        for uri in watched.changed_uris() {
            shared.publish(&uri).await;
        }
    });
    let result = follow_job(server, &job, wait_seconds, ctx).await;
    (job, result)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Tools the issues still ask for; each will take its share of the budget.
    const TOOLS_TO_COME: &[&str] = &[
        "cancel_training",
        "comfyui_submit",
        "eval_grid",
        "spinup_instance",
        "list_instances",
        "teardown_instance",
        "diagnose_training",
        "register_lora",
        "remember_preference",
        "recall_preferences",
        "save_prompt",
        "find_prompts",
        "export_asset",
    ];

    /// What every conversation pays before the artist says a word.
    const TOOLS_LIST_BUDGET: usize = 30_000;

    #[test]
    fn tools_list_fits_the_budget_with_every_tool_to_come() {
        let tools = router().list_all();
        let sizes: Vec<(String, usize)> = tools
            .iter()
            .map(|t| (t.name.to_string(), serde_json::to_string(t).unwrap().len()))
            .collect();
        let wire = serde_json::to_string(&rmcp::model::ListToolsResult::with_all_items(tools))
            .unwrap()
            .len();
        let average = wire / sizes.len();
        let to_come = TOOLS_TO_COME
            .iter()
            .filter(|name| !sizes.iter().any(|(n, _)| n == *name))
            .count();
        let projected = wire + to_come * average;
        let mut report: Vec<String> = sizes.iter().map(|(n, s)| format!("{n} {s}")).collect();
        report.sort();
        assert!(
            projected < TOOLS_LIST_BUDGET,
            "tools/list is {wire} bytes for {} tools ({average} each); with the {to_come} tools to come it would be {projected}, over {TOOLS_LIST_BUDGET}:\n{}",
            sizes.len(),
            report.join("\n")
        );
    }

    /// What the model reads about every tool, kept in `docs/tools.json`: a
    /// change to a name, a description or a schema shows in review as a
    /// change to that file. `UPDATE_TOOLS_SNAPSHOT=1 cargo test --lib
    /// tools_list_matches` rewrites it after a deliberate change.
    #[test]
    fn tools_list_matches_the_reviewed_snapshot() {
        let mut tools = router().list_all();
        tools.sort_by(|a, b| a.name.cmp(&b.name));
        let now = serde_json::to_string_pretty(&tools).unwrap() + "\n";
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/tools.json");
        if std::env::var_os("UPDATE_TOOLS_SNAPSHOT").is_some() {
            std::fs::write(&path, &now).unwrap();
        }
        let reviewed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            reviewed == now,
            "the tools the model reads changed; review the difference, then run \
             `UPDATE_TOOLS_SNAPSHOT=1 cargo test --lib tools_list_matches` to accept it"
        );
    }

    #[test]
    fn the_instructions_walk_the_chain_with_tools_that_exist() {
        let names: Vec<String> = router()
            .list_all()
            .iter()
            .map(|t| t.name.to_string())
            .collect();
        for text in [
            super::super::INSTRUCTIONS,
            crate::dataset::intent::STEPS_TO_GATE1,
        ] {
            let words = text
                .split(|c: char| !(c.is_ascii_lowercase() || c == '_'))
                .filter(|w| w.contains('_') && *w != "wait_seconds");
            for word in words {
                assert!(names.iter().any(|n| n == word), "`{word}` is not a tool");
            }
        }
        let chain = [
            "start_project",
            "audit_dataset",
            "find_duplicates",
            "caption_preview",
            "approve_captions",
            "write_captions",
            "run_gate 1",
            "plan_training",
            "generate_config",
            "run_gate 2",
            "check_environment",
            "run_gate 3",
            "dry_run",
            "run_gate 4",
        ];
        let at: Vec<usize> = chain
            .iter()
            .map(|step| super::super::INSTRUCTIONS.find(step).unwrap_or(usize::MAX))
            .collect();
        assert!(
            at.windows(2).all(|w| w[0] < w[1] && w[1] != usize::MAX),
            "{chain:?} at {at:?}"
        );
    }

    #[test]
    fn run_gate_says_which_gates_exist() {
        let tool = router().get("run_gate").cloned().unwrap();
        let gate = &tool.input_schema["properties"]["gate"];
        assert_eq!(
            (gate["minimum"].as_u64(), gate["maximum"].as_u64()),
            (Some(1), Some(4))
        );
    }

    #[test]
    fn each_tool_says_what_and_when_in_a_few_lines() {
        for tool in router().list_all() {
            let description = tool.description.as_deref().unwrap_or("");
            assert!(
                (40..=400).contains(&description.len()),
                "{}: description of {} characters",
                tool.name,
                description.len()
            );
            assert!(
                tool.output_schema.is_none(),
                "{} has an output schema",
                tool.name
            );
            let schema = serde_json::to_string(&*tool.input_schema).unwrap();
            for noise in ["$schema", "\"default\":null", "\"format\"", "$defs"] {
                assert!(
                    !schema.contains(noise),
                    "{}: {noise} in {schema}",
                    tool.name
                );
            }
        }
    }
}
