//! One prompt from submission to its pictures on disk.
//!
//! The event socket opens before the prompt is queued (ComfyUI sends
//! progress only to the socket whose id the prompt carries), and reports
//! node by node and step by step. The socket is a convenience, never the
//! truth: `/history/{id}` is. When the socket drops it is reopened once with
//! the same id; after that the prompt is followed by polling `/history` and
//! `/queue` (in neither means lost). A silent socket is covered by checking
//! the history every few seconds anyway. Cancelling takes the prompt off the
//! queue or interrupts it.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;

use super::client::{Ending, FileRef, HistoryEntry};
use super::socket::{Event, Socket};
use super::{ComfyClient, ComfyError, NodeProblem, Workflow};

/// How one prompt is followed.
#[derive(Debug, Clone)]
pub struct FollowOptions {
    /// Longest a prompt may take, queue time included.
    pub timeout: Duration,
    /// How often cancellation is checked.
    pub tick: Duration,
    /// Ticks between `/history` checks once the socket is gone.
    pub poll_every: u32,
    /// Ticks between `/history` checks while the socket is open (a socket
    /// can go silent without closing).
    pub heartbeat_every: u32,
}

impl Default for FollowOptions {
    fn default() -> Self {
        FollowOptions {
            timeout: Duration::from_secs(30 * 60),
            tick: Duration::from_millis(250),
            poll_every: 2,
            heartbeat_every: 20,
        }
    }
}

/// Where a prompt is, as it runs.
#[derive(Debug, Clone, Default)]
pub struct Live {
    pub nodes_done: usize,
    pub nodes_total: usize,
    /// The node running now, and its class.
    pub node: Option<(String, String)>,
    /// Sampler step `value` of `max` in the running node.
    pub step: Option<(u64, u64)>,
    /// True once ComfyUI started this prompt (until then it waits in the queue).
    pub started: bool,
    /// True when the socket failed and the prompt is followed by polling.
    pub polling: bool,
}

impl Live {
    /// `KSampler (node 3), step 12 of 25`, or that it waits in the queue.
    pub fn describe(&self) -> String {
        if !self.started {
            return "waiting in ComfyUI's queue".into();
        }
        let mut text = match &self.node {
            Some((id, class)) => format!("{class} (node {id})"),
            None if self.polling => "rendering (followed through ComfyUI's history)".into(),
            None => "starting".into(),
        };
        if let Some((v, m)) = self.step {
            text.push_str(&format!(", step {v} of {m}"));
        }
        text.push_str(&format!(
            ", {} of {} nodes done",
            self.nodes_done.min(self.nodes_total),
            self.nodes_total
        ));
        text
    }
}

/// A prompt that finished well.
#[derive(Debug, Clone)]
pub struct Finished {
    pub prompt_id: String,
    /// Every output file, with its node id.
    pub outputs: Vec<(String, FileRef)>,
    /// True when ComfyUI reused every node from its cache: the pictures are
    /// those of an earlier identical run.
    pub all_cached: bool,
    /// Outputs ComfyUI dropped when it accepted the prompt.
    pub warnings: Vec<NodeProblem>,
    /// True when the socket failed and the result came from `/history`.
    pub from_history: bool,
}

/// The error of an `execution_error` message.
fn execution_error(data: &Value) -> ComfyError {
    let text = |k: &str| {
        data.get(k)
            .map(|v| v.as_str().map_or_else(|| v.to_string(), String::from))
            .unwrap_or_else(|| "?".into())
    };
    ComfyError::Execution {
        node: text("node_id"),
        class_type: text("node_type"),
        exception_type: text("exception_type"),
        message: text("exception_message").trim().to_string(),
    }
}

async fn next_event(socket: &mut Option<Socket>) -> Option<Event> {
    match socket {
        Some(s) => s.next().await,
        None => std::future::pending().await,
    }
}

/// Queues `workflow` and follows it to the end. `report` hears every change;
/// `cancelled` is asked every tick.
pub async fn run_prompt(
    client: &ComfyClient,
    workflow: &Workflow,
    options: &FollowOptions,
    cancelled: &(dyn Fn() -> bool + Sync),
    report: &mut (dyn FnMut(&Live) + Send),
) -> Result<Finished, ComfyError> {
    let client_id = uuid::Uuid::new_v4().to_string();
    // A socket that will not open is no reason to fail: the history answers too.
    let mut socket = Socket::connect(client.base(), &client_id).await.ok();
    let queued = client
        .queue_prompt(
            &workflow.to_value(),
            &client_id,
            &uuid::Uuid::new_v4().to_string(),
        )
        .await?;
    let pid = queued.prompt_id.clone();
    let mut live = Live {
        nodes_total: workflow.len(),
        polling: socket.is_none(),
        ..Live::default()
    };
    report(&live);
    let mut cached: HashSet<String> = HashSet::new();
    let mut done: HashSet<String> = HashSet::new();
    let mut finishing = false;
    let mut reopened = false;
    let mut ticks: u32 = 0;
    let started = tokio::time::Instant::now();
    let mut tick = tokio::time::interval(options.tick);
    let conclude = |h: HistoryEntry, from_history: bool| -> Result<Finished, ComfyError> {
        match h.ending {
            Ending::Success => Ok(Finished {
                prompt_id: pid.clone(),
                all_cached: workflow
                    .ids()
                    .iter()
                    .all(|id| h.cached_nodes.iter().any(|c| c == id)),
                outputs: h.outputs,
                warnings: queued.warnings.clone(),
                from_history,
            }),
            Ending::Error => {
                Err(h
                    .error
                    .as_ref()
                    .map(execution_error)
                    .unwrap_or(ComfyError::Execution {
                        node: "?".into(),
                        class_type: "?".into(),
                        exception_type: "error".into(),
                        message: "ComfyUI recorded an error without details".into(),
                    }))
            }
            Ending::Interrupted => Err(ComfyError::Interrupted {
                prompt_id: pid.clone(),
            }),
        }
    };
    loop {
        let mut check_history = false;
        tokio::select! {
            event = next_event(&mut socket) => match event {
                None => {
                    // The socket closed: reopen it once with the same id, then poll.
                    socket = None;
                    if !reopened {
                        reopened = true;
                        socket = Socket::connect(client.base(), &client_id).await.ok();
                    }
                    live.polling = socket.is_none();
                    check_history = true;
                    report(&live);
                }
                Some(event) => {
                    let ours = |id: &Option<String>| id.as_deref().is_none_or(|p| p == pid);
                    match event {
                        Event::ExecutionStart { prompt_id } if prompt_id == pid => {
                            live.started = true;
                        }
                        Event::Cached { prompt_id, nodes } if prompt_id == pid => {
                            live.started = true;
                            cached.extend(nodes);
                        }
                        Event::Executing { prompt_id, node } if ours(&prompt_id) => {
                            live.started = true;
                            if let Some((prev, _)) = live.node.take() {
                                done.insert(prev);
                            }
                            live.step = None;
                            match node {
                                Some(n) => {
                                    let class = workflow.class_of(&n).to_string();
                                    live.node = Some((n, class));
                                }
                                None if prompt_id.is_some() => {
                                    finishing = true;
                                    check_history = true;
                                }
                                None => {}
                            }
                        }
                        Event::Progress { prompt_id, node, value, max } if ours(&prompt_id) => {
                            live.started = true;
                            if let Some(n) = node
                                && live.node.as_ref().is_none_or(|(id, _)| *id != n)
                            {
                                let class = workflow.class_of(&n).to_string();
                                live.node = Some((n, class));
                            }
                            live.step = Some((value, max));
                        }
                        Event::Executed { prompt_id, node, .. } if prompt_id == pid => {
                            done.insert(node);
                        }
                        Event::Success { prompt_id } if prompt_id == pid => {
                            finishing = true;
                            check_history = true;
                        }
                        Event::Error { prompt_id, data } if prompt_id == pid => {
                            return Err(execution_error(&data));
                        }
                        Event::Interrupted { prompt_id } if prompt_id == pid => {
                            return Err(ComfyError::Interrupted { prompt_id: pid });
                        }
                        _ => {}
                    }
                    live.nodes_done = cached.union(&done).count();
                    report(&live);
                }
            },
            _ = tick.tick() => {
                ticks = ticks.wrapping_add(1);
                if cancelled() {
                    let pending = client.queue().await.map(|q| q.pending.contains(&pid)).unwrap_or(false);
                    if pending {
                        let _ = client.delete_queued(&pid).await;
                    }
                    let _ = client.interrupt(&pid).await;
                    return Err(ComfyError::Cancelled);
                }
                if started.elapsed() > options.timeout {
                    return Err(ComfyError::TimedOut {
                        prompt_id: pid,
                        seconds: options.timeout.as_secs(),
                    });
                }
                let every = if socket.is_none() || finishing {
                    options.poll_every
                } else {
                    options.heartbeat_every
                };
                check_history = ticks.is_multiple_of(every.max(1));
            }
        }
        if !check_history {
            continue;
        }
        let from_history = socket.is_none();
        if let Some(h) = client.history(&pid).await? {
            return conclude(h, from_history);
        }
        // Not in the history: still queued or running, or lost. The history
        // is asked again after the queue, as the prompt may finish between.
        if !client.queue().await?.contains(&pid) {
            if let Some(h) = client.history(&pid).await? {
                return conclude(h, from_history);
            }
            return Err(ComfyError::Lost { prompt_id: pid });
        }
    }
}

/// A picture fetched from ComfyUI into the workspace.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct SavedPicture {
    /// Where it is now (absolute until the caller makes it relative).
    pub path: PathBuf,
    pub width: u32,
    pub height: u32,
    /// The output node that made it.
    pub node: String,
    /// The file as ComfyUI names it.
    pub source: FileRef,
}

/// `name` as a plain file name (no folders, nothing hidden).
fn plain_name(name: &str) -> String {
    let base = name.rsplit(['/', '\\']).next().unwrap_or(name);
    let cleaned: String = base
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect();
    let cleaned = cleaned.trim_start_matches('.').to_string();
    if cleaned.is_empty() {
        "output.png".into()
    } else {
        cleaned
    }
}

/// Fetches every output through `/view` into `dir` (which the caller
/// stages); each must decode as a picture.
pub async fn download(
    client: &ComfyClient,
    outputs: &[(String, FileRef)],
    dir: &Path,
) -> Result<Vec<SavedPicture>, ComfyError> {
    let mut saved: Vec<SavedPicture> = Vec::new();
    for (node, file) in outputs {
        let bytes = client.view(file).await?;
        let picture = image::ImageReader::new(std::io::Cursor::new(&bytes))
            .with_guessed_format()
            .map_err(|e| e.to_string())
            .and_then(|r| {
                if r.format().is_none() {
                    return Err("its bytes are no picture format we read".to_string());
                }
                r.into_dimensions().map_err(|e| e.to_string())
            });
        let (width, height) = picture.map_err(|reason| ComfyError::NotAnImage {
            file: file.filename.clone(),
            reason,
        })?;
        let mut name = plain_name(&file.filename);
        if saved
            .iter()
            .any(|s| s.path.file_name() == Some(name.as_ref()))
        {
            name = format!("{node}-{name}");
        }
        let path = dir.join(&name);
        crate::studio::write_atomic(&path, &bytes)?;
        saved.push(SavedPicture {
            path,
            width,
            height,
            node: node.clone(),
            source: file.clone(),
        });
    }
    Ok(saved)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_file_names_become_plain_names() {
        assert_eq!(plain_name("w0.70_00001_.png"), "w0.70_00001_.png");
        assert_eq!(plain_name("../../etc/passwd"), "passwd");
        assert_eq!(plain_name(".hidden"), "hidden");
        assert_eq!(plain_name("a b?.png"), "a_b_.png");
        assert_eq!(plain_name(""), "output.png");
    }

    #[test]
    fn live_progress_reads_as_a_sentence() {
        let mut live = Live {
            nodes_total: 8,
            ..Live::default()
        };
        assert_eq!(live.describe(), "waiting in ComfyUI's queue");
        live.started = true;
        live.node = Some(("3".into(), "KSampler".into()));
        live.step = Some((12, 25));
        live.nodes_done = 4;
        assert_eq!(
            live.describe(),
            "KSampler (node 3), step 12 of 25, 4 of 8 nodes done"
        );
    }
}
