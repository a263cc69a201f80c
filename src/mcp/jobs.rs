//! Long work as jobs: started by a tool, followed with progress
//! notifications, answered within a bounded wait, and reachable afterwards
//! through `job_status`, `cancel_job` and the `ategnatos://jobs/{id}` resource.
//!
//! The work itself is a blocking domain function run on tokio's blocking
//! pool with a [`JobProgress`] as its [`Progress`]; a panic in it becomes a
//! failed job, never a dead server.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::watch;

use crate::studio::{Progress, clock};

/// The outcome a job's work returns: structured result and its plain summary.
pub struct JobOutput {
    pub result: serde_json::Value,
    pub summary: String,
    /// Resource URIs the work changed; their subscribers are notified.
    pub changed: Vec<String>,
    /// Small JPEG previews, shown as image blocks wherever the finished
    /// result is returned: the first wait or a later `job_status`.
    pub previews: Vec<Vec<u8>>,
}

/// A failure with what to do about it.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct JobFailure {
    pub error: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

/// Where a job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    Running,
    Done,
    Failed,
    Cancelled,
}

#[derive(Clone)]
enum Phase {
    Running,
    Done(Arc<JobOutput>),
    Failed(JobFailure),
    Cancelled,
}

/// Progress shared between the work and whoever watches it.
#[derive(Default)]
pub struct JobProgress {
    done: AtomicU64,
    total: AtomicU64,
    message: Mutex<String>,
    cancelled: AtomicBool,
}

impl Progress for JobProgress {
    fn report(&self, done: u64, total: Option<u64>, message: &str) {
        self.done.store(done, Ordering::Relaxed);
        self.total
            .store(total.map_or(0, |t| t + 1), Ordering::Relaxed);
        if let Ok(mut m) = self.message.lock() {
            m.clear();
            m.push_str(message);
        }
    }

    fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::Relaxed)
    }
}

/// How far a job got.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct ProgressView {
    pub done: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total: Option<u64>,
    pub message: String,
}

impl JobProgress {
    pub fn view(&self) -> ProgressView {
        let total = self.total.load(Ordering::Relaxed);
        ProgressView {
            done: self.done.load(Ordering::Relaxed),
            total: total.checked_sub(1),
            message: self.message.lock().map(|m| m.clone()).unwrap_or_default(),
        }
    }
}

/// One job.
pub struct Job {
    pub id: String,
    pub kind: String,
    pub started_at: String,
    started: Instant,
    pub progress: Arc<JobProgress>,
    phase: watch::Receiver<Phase>,
}

/// A job as a tool reports it. `result` is present once it is done.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct JobView<T> {
    pub job_id: String,
    /// What the job does (`audit_dataset`, ...).
    pub kind: String,
    pub status: JobStatus,
    /// Read this resource (or call `job_status`) to follow the job.
    pub resource_uri: String,
    pub progress: ProgressView,
    pub started_at: String,
    pub elapsed_seconds: f64,
    /// The finished result (only when `status` is `done`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<T>,
    /// Why it failed (only when `status` is `failed`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure: Option<JobFailure>,
}

impl Job {
    pub fn uri(&self) -> String {
        job_uri(&self.id)
    }

    pub fn status(&self) -> JobStatus {
        match &*self.phase.borrow() {
            Phase::Running => JobStatus::Running,
            Phase::Done(_) => JobStatus::Done,
            Phase::Failed(_) => JobStatus::Failed,
            Phase::Cancelled => JobStatus::Cancelled,
        }
    }

    /// The plain summary, once done.
    pub fn summary(&self) -> Option<String> {
        match &*self.phase.borrow() {
            Phase::Done(out) => Some(out.summary.clone()),
            _ => None,
        }
    }

    /// The finished work's JPEG previews.
    pub fn previews(&self) -> Vec<Vec<u8>> {
        match &*self.phase.borrow() {
            Phase::Done(out) => out.previews.clone(),
            _ => Vec::new(),
        }
    }

    /// Resource URIs the finished work changed.
    pub fn changed_uris(&self) -> Vec<String> {
        match &*self.phase.borrow() {
            Phase::Done(out) => out.changed.clone(),
            _ => Vec::new(),
        }
    }

    /// Waits, without limit, until the job is no longer running.
    pub async fn finished(&self) {
        let mut rx = self.phase.clone();
        while matches!(*rx.borrow_and_update(), Phase::Running) {
            if rx.changed().await.is_err() {
                return;
            }
        }
    }

    /// The job as JSON-able view.
    pub fn view(&self) -> JobView<serde_json::Value> {
        let phase = self.phase.borrow().clone();
        JobView {
            job_id: self.id.clone(),
            kind: self.kind.clone(),
            status: self.status(),
            resource_uri: self.uri(),
            progress: self.progress.view(),
            started_at: self.started_at.clone(),
            elapsed_seconds: (self.started.elapsed().as_secs_f64() * 10.0).round() / 10.0,
            result: match &phase {
                Phase::Done(out) => Some(out.result.clone()),
                _ => None,
            },
            failure: match phase {
                Phase::Failed(f) => Some(f),
                _ => None,
            },
        }
    }

    /// Asks the work to stop at its next check.
    pub fn cancel(&self) {
        self.progress.cancelled.store(true, Ordering::Relaxed);
    }

    /// Waits until the job leaves `Running` or `limit` passes, calling `tick`
    /// at least every `interval` while it runs (that is where progress
    /// notifications are sent).
    pub async fn wait<F, Fut>(&self, limit: Duration, interval: Duration, mut tick: F)
    where
        F: FnMut(ProgressView) -> Fut,
        Fut: std::future::Future<Output = ()>,
    {
        let deadline = tokio::time::Instant::now() + limit;
        let mut rx = self.phase.clone();
        loop {
            if !matches!(*rx.borrow_and_update(), Phase::Running) {
                return;
            }
            tick(self.progress.view()).await;
            let next = (tokio::time::Instant::now() + interval).min(deadline);
            tokio::select! {
                changed = rx.changed() => {
                    if changed.is_err() {
                        return;
                    }
                }
                _ = tokio::time::sleep_until(next) => {
                    if tokio::time::Instant::now() >= deadline {
                        return;
                    }
                }
            }
        }
    }
}

/// The resource URI of a job.
pub fn job_uri(id: &str) -> String {
    format!("ategnatos://jobs/{id}")
}

/// All jobs of this server process.
#[derive(Default)]
pub struct JobRegistry {
    jobs: Mutex<HashMap<String, Arc<Job>>>,
    counter: AtomicU64,
}

impl JobRegistry {
    /// Starts `work` on the blocking pool and returns the job.
    pub fn spawn<W>(&self, kind: &str, work: W) -> Arc<Job>
    where
        W: FnOnce(&JobProgress) -> Result<JobOutput, JobFailure> + Send + 'static,
    {
        let n = self.counter.fetch_add(1, Ordering::Relaxed) + 1;
        let id = format!(
            "{}-{}-{n}",
            kind.replace('_', "-"),
            clock::stamp(clock::unix_now())
        );
        let (tx, rx) = watch::channel(Phase::Running);
        let progress = Arc::new(JobProgress::default());
        let job = Arc::new(Job {
            id: id.clone(),
            kind: kind.to_string(),
            started_at: clock::now_rfc3339(),
            started: Instant::now(),
            progress: Arc::clone(&progress),
            phase: rx,
        });
        if let Ok(mut jobs) = self.jobs.lock() {
            jobs.insert(id, Arc::clone(&job));
        }
        let kind = kind.to_string();
        tokio::spawn(async move {
            let p = Arc::clone(&progress);
            let outcome = tokio::task::spawn_blocking(move || work(&p)).await;
            let phase = match outcome {
                Ok(Ok(out)) => Phase::Done(Arc::new(out)),
                Ok(Err(_)) if progress.is_cancelled() => Phase::Cancelled,
                Ok(Err(f)) => Phase::Failed(f),
                Err(join) => {
                    tracing::error!(job = %kind, "job crashed: {join}");
                    Phase::Failed(JobFailure {
                        error: format!("the {kind} job crashed inside Ategnatos (this is a bug)"),
                        hint: Some(
                            "run it again; if it keeps failing, report it with the server log"
                                .into(),
                        ),
                    })
                }
            };
            let _ = tx.send(phase);
        });
        job
    }

    pub fn get(&self, id: &str) -> Option<Arc<Job>> {
        self.jobs.lock().ok()?.get(id).cloned()
    }

    /// Every job, newest first.
    pub fn all(&self) -> Vec<Arc<Job>> {
        let mut jobs: Vec<_> = self
            .jobs
            .lock()
            .map(|j| j.values().cloned().collect())
            .unwrap_or_default();
        jobs.sort_by_key(|j| std::cmp::Reverse(j.started));
        jobs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn finished_job_has_its_result() {
        let reg = JobRegistry::default();
        let job = reg.spawn("demo", |p| {
            p.report(1, Some(1), "done");
            Ok(JobOutput {
                result: serde_json::json!({"n": 1}),
                summary: "one".into(),
                changed: vec![],
                previews: vec![],
            })
        });
        job.wait(
            Duration::from_secs(30),
            Duration::from_millis(50),
            |_| async {},
        )
        .await;
        let v = job.view();
        assert_eq!(v.status, JobStatus::Done);
        assert_eq!(v.result.unwrap()["n"], 1);
        assert_eq!(v.progress.total, Some(1));
        assert!(reg.get(&job.id).is_some());
    }

    #[tokio::test]
    async fn cancel_and_panic_are_reported() {
        let reg = JobRegistry::default();
        let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
        let job = reg.spawn("slow", move |p| {
            let _ = go_rx.recv();
            if p.is_cancelled() {
                return Err(JobFailure {
                    error: "cancelled".into(),
                    hint: None,
                });
            }
            Ok(JobOutput {
                result: serde_json::Value::Null,
                summary: String::new(),
                changed: vec![],
                previews: vec![],
            })
        });
        job.cancel();
        go_tx.send(()).unwrap();
        job.wait(
            Duration::from_secs(30),
            Duration::from_millis(50),
            |_| async {},
        )
        .await;
        assert_eq!(job.status(), JobStatus::Cancelled);

        let boom = reg.spawn("boom", |_| panic!("bug"));
        boom.wait(
            Duration::from_secs(30),
            Duration::from_millis(50),
            |_| async {},
        )
        .await;
        let v = boom.view();
        assert_eq!(v.status, JobStatus::Failed);
        assert!(v.failure.unwrap().error.contains("crashed"));
    }

    #[tokio::test]
    async fn wait_returns_at_the_limit_with_ticks() {
        let reg = JobRegistry::default();
        let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
        let job = reg.spawn("held", move |_| {
            let _ = go_rx.recv();
            Ok(JobOutput {
                result: serde_json::Value::Null,
                summary: String::new(),
                changed: vec![],
                previews: vec![],
            })
        });
        let ticks = std::sync::atomic::AtomicUsize::new(0);
        job.wait(
            Duration::from_millis(300),
            Duration::from_millis(50),
            |_| {
                ticks.fetch_add(1, Ordering::Relaxed);
                async {}
            },
        )
        .await;
        assert_eq!(job.status(), JobStatus::Running);
        // One tick at once, then one per interval until the limit.
        assert!(ticks.load(Ordering::Relaxed) >= 2);
        go_tx.send(()).unwrap();
    }
}
