//! The tools, one file per group, each a `#[tool_router]` block on
//! [`AtegnatosServer`] that the routers here add together.
//!
//! A tool parses its typed arguments, resolves paths inside the workspace,
//! calls one domain function and returns its result (structured content plus
//! a plain summary). Long work goes through [`run_job`].

mod audit;
mod captions;
mod duplicates;
mod gates;
mod jobs;
mod plan;
mod project;

use std::sync::Arc;
use std::time::Duration;

use rmcp::RoleServer;
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::model::{CallToolResult, ProgressNotificationParam};
use rmcp::service::RequestContext;

use super::AtegnatosServer;
use super::jobs::{Job, JobFailure, JobOutput, JobProgress, JobStatus};
use super::reply;

/// Every tool of the server.
pub fn router() -> ToolRouter<AtegnatosServer> {
    AtegnatosServer::audit_router()
        + AtegnatosServer::project_router()
        + AtegnatosServer::captions_router()
        + AtegnatosServer::plan_router()
        + AtegnatosServer::gates_router()
        + AtegnatosServer::duplicates_router()
        + AtegnatosServer::jobs_router()
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

/// The tool result for a job in its current state.
pub fn job_result(job: &Job) -> CallToolResult {
    let view = job.view();
    match view.status {
        JobStatus::Done => {
            let summary = job.summary().unwrap_or_default();
            reply::structured(&view, summary)
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
