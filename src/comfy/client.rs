//! ComfyUI's HTTP API: submit, history, queue, view, upload, interrupt,
//! model lists and system stats.
//!
//! Every answer is checked for being JSON before it is read: a reverse proxy,
//! a login page or another program on the port answers with HTML, and that
//! gets its own plain error instead of a parse failure. A 400 from
//! `POST /prompt` is turned into one sentence per node, with the files the
//! server has when a model is missing. No `Origin` header is ever sent
//! (ComfyUI refuses a loopback request whose origin differs).

use std::time::Duration;

use serde::Serialize;
use serde_json::{Value, json};

use super::{ComfyError, NodeProblem, ServerUrl};

/// How long to wait for a TCP connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long any one request may take (a `/view` of a large picture included).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);
/// Most names listed when saying what a server has.
const LISTED: usize = 20;

/// A file ComfyUI wrote or holds, as `/view` and `LoadImage` name it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct FileRef {
    pub filename: String,
    pub subfolder: String,
    /// `output`, `temp` or `input`.
    #[serde(rename = "type")]
    pub kind: String,
}

impl FileRef {
    fn from_value(v: &Value) -> Option<FileRef> {
        Some(FileRef {
            filename: v.get("filename")?.as_str()?.to_string(),
            subfolder: v
                .get("subfolder")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
            kind: v
                .get("type")
                .and_then(Value::as_str)
                .unwrap_or("output")
                .to_string(),
        })
    }

    /// The name a `LoadImage` node takes for an uploaded input.
    pub fn load_image_name(&self) -> String {
        if self.subfolder.is_empty() {
            self.filename.clone()
        } else {
            format!("{}/{}", self.subfolder, self.filename)
        }
    }
}

/// A prompt ComfyUI accepted.
#[derive(Debug, Clone)]
pub struct Queued {
    pub prompt_id: String,
    /// Problems in outputs ComfyUI dropped while accepting the rest.
    pub warnings: Vec<NodeProblem>,
}

/// How a finished prompt ended, from `/history/{id}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    Success,
    Error,
    Interrupted,
}

/// One `/history/{id}` entry.
#[derive(Debug, Clone)]
pub struct HistoryEntry {
    pub ending: Ending,
    /// Every file of every output node, in node order.
    pub outputs: Vec<(String, FileRef)>,
    /// The `execution_error` message, when it ended in one.
    pub error: Option<Value>,
    /// Nodes ComfyUI reused from its cache.
    pub cached_nodes: Vec<String>,
}

/// Prompts queued or running.
#[derive(Debug, Clone, Default)]
pub struct QueueState {
    pub running: Vec<String>,
    pub pending: Vec<String>,
}

impl QueueState {
    pub fn contains(&self, prompt_id: &str) -> bool {
        self.running
            .iter()
            .chain(&self.pending)
            .any(|p| p == prompt_id)
    }
}

/// What `/system_stats` says about the machine.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct SystemStats {
    pub comfyui_version: Option<String>,
    /// The first device (`cuda:0 NVIDIA GeForce RTX 4090 : cudaMallocAsync`, `cpu`).
    pub device: Option<String>,
    pub device_type: Option<String>,
    pub vram_total_gb: Option<f64>,
    pub vram_free_gb: Option<f64>,
}

/// A client for one ComfyUI server.
#[derive(Clone)]
pub struct ComfyClient {
    http: reqwest::Client,
    base: ServerUrl,
}

fn gb(v: Option<&Value>) -> Option<f64> {
    v.and_then(Value::as_f64)
        .map(|b| (b / 1e9 * 10.0).round() / 10.0)
}

impl ComfyClient {
    pub fn new(base: ServerUrl) -> Result<ComfyClient, ComfyError> {
        // rustls needs a process-wide crypto provider; the first caller installs ring.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .build()
            .map_err(|e| ComfyError::Unreachable {
                url: base.to_string(),
                reason: format!("the HTTP client could not start: {e}"),
            })?;
        Ok(ComfyClient { http, base })
    }

    pub fn base(&self) -> &ServerUrl {
        &self.base
    }

    fn unreachable(&self, e: &reqwest::Error) -> ComfyError {
        let mut reason = e.to_string();
        let mut source = std::error::Error::source(e);
        while let Some(s) = source {
            reason = s.to_string();
            source = s.source();
        }
        if e.is_timeout() {
            reason = format!("no answer within {} s", REQUEST_TIMEOUT.as_secs());
        }
        ComfyError::Unreachable {
            url: self.base.to_string(),
            reason,
        }
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> Result<reqwest::Response, ComfyError> {
        req.send().await.map_err(|e| self.unreachable(&e))
    }

    /// Reads an answer that must be JSON; HTML and other text are named as such.
    async fn json(&self, path: &str, resp: reqwest::Response) -> Result<Value, ComfyError> {
        let status = resp.status().as_u16();
        let html = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|t| t.contains("html"));
        let bytes = resp.bytes().await.map_err(|e| self.unreachable(&e))?;
        let starts_like_html = bytes
            .iter()
            .find(|b| !b.is_ascii_whitespace())
            .is_some_and(|b| *b == b'<');
        if html || starts_like_html {
            return Err(self.not_comfy(path, status, "a web page (HTML)"));
        }
        match serde_json::from_slice::<Value>(&bytes) {
            Ok(v) if (200..300).contains(&status) || status == 400 => Ok(v),
            Ok(v) => Err(ComfyError::Http {
                path: path.to_string(),
                status,
                detail: short(&v.to_string()),
            }),
            Err(_) if (200..300).contains(&status) => {
                Err(self.not_comfy(path, status, "text that is not JSON"))
            }
            Err(_) => Err(ComfyError::Http {
                path: path.to_string(),
                status,
                detail: short(&String::from_utf8_lossy(&bytes)),
            }),
        }
    }

    fn not_comfy(&self, path: &str, status: u16, what: &str) -> ComfyError {
        ComfyError::NotComfy {
            url: self.base.to_string(),
            path: path.to_string(),
            status,
            what: what.to_string(),
        }
    }

    async fn get_json(&self, path: &str) -> Result<Value, ComfyError> {
        let resp = self.send(self.http.get(self.base.join(path))).await?;
        self.json(path, resp).await
    }

    async fn post_json(&self, path: &str, body: &Value) -> Result<reqwest::Response, ComfyError> {
        self.send(
            self.http
                .post(self.base.join(path))
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.to_string()),
        )
        .await
    }

    /// `/system_stats`: version, device and its memory.
    pub async fn system_stats(&self) -> Result<SystemStats, ComfyError> {
        let v = self.get_json("/system_stats").await?;
        if v.get("system").is_none() && v.get("devices").is_none() {
            return Err(self.not_comfy("/system_stats", 200, "JSON that is not ComfyUI's"));
        }
        let device = v.pointer("/devices/0");
        Ok(SystemStats {
            comfyui_version: v
                .pointer("/system/comfyui_version")
                .and_then(Value::as_str)
                .map(String::from),
            device: device
                .and_then(|d| d.get("name"))
                .and_then(Value::as_str)
                .map(String::from),
            device_type: device
                .and_then(|d| d.get("type"))
                .and_then(Value::as_str)
                .map(String::from),
            vram_total_gb: gb(device.and_then(|d| d.get("vram_total"))),
            vram_free_gb: gb(device.and_then(|d| d.get("vram_free"))),
        })
    }

    /// `/models/{folder}`: the files in one model folder; `None` when the
    /// server has no such folder.
    pub async fn models(&self, folder: &str) -> Result<Option<Vec<String>>, ComfyError> {
        let path = format!("/models/{folder}");
        let resp = self.send(self.http.get(self.base.join(&path))).await?;
        if resp.status().as_u16() == 404 {
            return Ok(None);
        }
        let v = self.json(&path, resp).await?;
        Ok(v.as_array().map(|a| {
            a.iter()
                .filter_map(|n| n.as_str().map(String::from))
                .collect()
        }))
    }

    /// `/object_info/{class}`: whether the server has a node class.
    pub async fn has_node_class(&self, class: &str) -> Result<bool, ComfyError> {
        let v = self.get_json(&format!("/object_info/{class}")).await?;
        Ok(v.get(class).is_some())
    }

    /// `POST /prompt`: queues `graph` for `client_id`'s socket.
    pub async fn queue_prompt(
        &self,
        graph: &Value,
        client_id: &str,
        prompt_id: &str,
    ) -> Result<Queued, ComfyError> {
        let body = json!({ "prompt": graph, "client_id": client_id, "prompt_id": prompt_id });
        let resp = self.post_json("/prompt", &body).await?;
        let status = resp.status().as_u16();
        let v = self.json("/prompt", resp).await?;
        if status == 400 {
            return Err(self.explain_rejection(&v).await);
        }
        let Some(id) = v.get("prompt_id").and_then(Value::as_str) else {
            return Err(self.not_comfy("/prompt", status, "JSON without a prompt id"));
        };
        let warnings = self
            .node_problems(v.get("node_errors").unwrap_or(&Value::Null))
            .await;
        Ok(Queued {
            prompt_id: id.to_string(),
            warnings,
        })
    }

    /// A 400 answer to `/prompt` in words.
    pub async fn explain_rejection(&self, body: &Value) -> ComfyError {
        let error = body.get("error").unwrap_or(&Value::Null);
        let kind = error.get("type").and_then(Value::as_str).unwrap_or("");
        let message = error
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or("it gave no reason")
            .to_string();
        let mut problems = self
            .node_problems(body.get("node_errors").unwrap_or(&Value::Null))
            .await;
        if problems.is_empty() {
            let details = error.get("details").and_then(Value::as_str).unwrap_or("");
            let node = details
                .strip_prefix("Node ID '#")
                .and_then(|d| d.strip_suffix('\''))
                .unwrap_or("?")
                .to_string();
            let text = match kind {
                "invalid_prompt" if message.contains("does not exist") => {
                    let class = message
                        .split("node ")
                        .nth(1)
                        .and_then(|r| r.split(" does not exist").next())
                        .unwrap_or("?");
                    Some((
                        class.to_string(),
                        format!(
                            "node type `{class}` is not installed in this ComfyUI (a custom node that is missing?)"
                        ),
                    ))
                }
                "invalid_prompt" if message.contains("class_type") => Some((
                    "?".into(),
                    "a node has no `class_type`: this is not an API-format workflow".into(),
                )),
                "prompt_no_outputs" => Some((
                    "-".into(),
                    "the workflow has no output node (such as SaveImage)".into(),
                )),
                "dependency_cycle" => {
                    Some(("-".into(), "the workflow's links go round in a loop".into()))
                }
                _ => None,
            };
            if let Some((class_type, message)) = text {
                problems.push(NodeProblem {
                    node,
                    class_type,
                    message,
                });
            }
        }
        ComfyError::Rejected { message, problems }
    }

    async fn node_problems(&self, node_errors: &Value) -> Vec<NodeProblem> {
        let Some(map) = node_errors.as_object() else {
            return Vec::new();
        };
        let mut out = Vec::new();
        let mut ids: Vec<&String> = map.keys().collect();
        ids.sort_by_key(|id| (id.parse::<u64>().unwrap_or(u64::MAX), id.to_string()));
        for id in ids {
            let entry = &map[id];
            let class_type = entry
                .get("class_type")
                .and_then(Value::as_str)
                .unwrap_or("?")
                .to_string();
            for err in entry
                .get("errors")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                out.push(NodeProblem {
                    node: id.clone(),
                    class_type: class_type.clone(),
                    message: self.problem_text(err).await,
                });
            }
        }
        out
    }

    async fn problem_text(&self, err: &Value) -> String {
        let kind = err.get("type").and_then(Value::as_str).unwrap_or("");
        let message = err.get("message").and_then(Value::as_str).unwrap_or("");
        let details = err.get("details").and_then(Value::as_str).unwrap_or("");
        let extra = err.get("extra_info").unwrap_or(&Value::Null);
        let input = extra
            .get("input_name")
            .and_then(Value::as_str)
            .unwrap_or(details);
        match kind {
            "value_not_in_list" => {
                let received = extra
                    .get("received_value")
                    .map(|v| v.as_str().map_or_else(|| v.to_string(), String::from))
                    .unwrap_or_default();
                if let Some((folder, what)) = model_folder(input) {
                    let has = match self.models(folder).await {
                        Ok(Some(list)) => listing(&list),
                        _ => choices(extra),
                    };
                    format!("{what} '{received}' is not installed in this ComfyUI; {has}")
                } else {
                    format!("`{input}` cannot be '{received}'; {}", choices(extra))
                }
            }
            "required_input_missing" => format!("the input `{input}` is missing"),
            "bad_linked_input" | "return_type_mismatch" => {
                format!("the input `{input}` is linked wrongly ({message})")
            }
            "value_smaller_than_min" | "value_bigger_than_max" | "invalid_input_type" => {
                format!("`{input}`: {message}")
            }
            "custom_validation_failed" => details.to_string(),
            _ if details.is_empty() => message.to_string(),
            _ => format!("{message}: {details}"),
        }
    }

    /// `/history/{id}`: `None` while the prompt is queued or running, or unknown.
    pub async fn history(&self, prompt_id: &str) -> Result<Option<HistoryEntry>, ComfyError> {
        let v = self.get_json(&format!("/history/{prompt_id}")).await?;
        let Some(entry) = v.get(prompt_id) else {
            return Ok(None);
        };
        Ok(Some(parse_history(entry)))
    }

    /// `/queue`: the prompt ids running and waiting.
    pub async fn queue(&self) -> Result<QueueState, ComfyError> {
        let v = self.get_json("/queue").await?;
        let ids = |key: &str| -> Vec<String> {
            v.get(key)
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|item| item.get(1).and_then(Value::as_str).map(String::from))
                .collect()
        };
        Ok(QueueState {
            running: ids("queue_running"),
            pending: ids("queue_pending"),
        })
    }

    /// `/view`: the bytes of an output file.
    pub async fn view(&self, file: &FileRef) -> Result<Vec<u8>, ComfyError> {
        let mut url =
            reqwest::Url::parse(&self.base.join("/view")).map_err(|e| ComfyError::BadUrl {
                given: self.base.to_string(),
                reason: e.to_string(),
            })?;
        url.query_pairs_mut()
            .append_pair("filename", &file.filename)
            .append_pair("subfolder", &file.subfolder)
            .append_pair("type", &file.kind);
        let resp = self.send(self.http.get(url)).await?;
        let status = resp.status().as_u16();
        if status != 200 {
            return Err(ComfyError::Http {
                path: format!("/view?filename={}", file.filename),
                status,
                detail: if status == 404 {
                    "the file is not on the server (deleted, or another output folder)".into()
                } else {
                    "the server would not hand out the file".into()
                },
            });
        }
        resp.bytes()
            .await
            .map(|b| b.to_vec())
            .map_err(|e| self.unreachable(&e))
    }

    /// `POST /upload/image`: returns the file as the server named it (it
    /// renames a different picture with the same name, so always use this).
    pub async fn upload_image(&self, name: &str, bytes: Vec<u8>) -> Result<FileRef, ComfyError> {
        let part = reqwest::multipart::Part::bytes(bytes).file_name(name.to_string());
        let form = reqwest::multipart::Form::new()
            .part("image", part)
            .text("type", "input");
        let resp = self
            .send(
                self.http
                    .post(self.base.join("/upload/image"))
                    .multipart(form),
            )
            .await?;
        let v = self.json("/upload/image", resp).await?;
        match (v.get("name").and_then(Value::as_str), v.get("error")) {
            (Some(n), _) => Ok(FileRef {
                filename: n.to_string(),
                subfolder: v
                    .get("subfolder")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
                kind: v
                    .get("type")
                    .and_then(Value::as_str)
                    .unwrap_or("input")
                    .to_string(),
            }),
            _ => Err(ComfyError::Http {
                path: "/upload/image".into(),
                status: 400,
                detail: format!("the upload of `{name}` was refused"),
            }),
        }
    }

    /// `POST /interrupt` for one prompt (only stops it if it is the one running).
    pub async fn interrupt(&self, prompt_id: &str) -> Result<(), ComfyError> {
        self.post_json("/interrupt", &json!({ "prompt_id": prompt_id }))
            .await
            .map(|_| ())
    }

    /// `POST /queue {"delete": [id]}`: takes a waiting prompt off the queue.
    pub async fn delete_queued(&self, prompt_id: &str) -> Result<(), ComfyError> {
        self.post_json("/queue", &json!({ "delete": [prompt_id] }))
            .await
            .map(|_| ())
    }
}

/// Reads one history entry.
pub fn parse_history(entry: &Value) -> HistoryEntry {
    let messages: Vec<(&str, &Value)> = entry
        .pointer("/status/messages")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|m| Some((m.get(0)?.as_str()?, m.get(1)?)))
        .collect();
    let status_str = entry
        .pointer("/status/status_str")
        .and_then(Value::as_str)
        .unwrap_or("success");
    let error = messages
        .iter()
        .find(|(k, _)| *k == "execution_error")
        .map(|(_, v)| (*v).clone());
    let interrupted = messages.iter().any(|(k, _)| *k == "execution_interrupted");
    let ending = if error.is_some() {
        Ending::Error
    } else if interrupted {
        Ending::Interrupted
    } else if status_str == "error" {
        Ending::Error
    } else {
        Ending::Success
    };
    let cached_nodes = messages
        .iter()
        .find(|(k, _)| *k == "execution_cached")
        .and_then(|(_, v)| v.get("nodes"))
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|n| n.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    let mut outputs = Vec::new();
    if let Some(map) = entry.get("outputs").and_then(Value::as_object) {
        let mut ids: Vec<&String> = map.keys().collect();
        ids.sort_by_key(|id| (id.parse::<u64>().unwrap_or(u64::MAX), id.to_string()));
        for id in ids {
            outputs.extend(output_files(&map[id]).into_iter().map(|f| (id.clone(), f)));
        }
    }
    HistoryEntry {
        ending,
        outputs,
        error,
        cached_nodes,
    }
}

/// Every file an output node reports, under any key (`images`, `gifs`, ...).
pub fn output_files(node_output: &Value) -> Vec<FileRef> {
    node_output
        .as_object()
        .into_iter()
        .flat_map(|m| m.values())
        .filter_map(Value::as_array)
        .flatten()
        .filter_map(FileRef::from_value)
        .collect()
}

/// The model folder an input names, and what a person calls its files.
pub fn model_folder(input: &str) -> Option<(&'static str, &'static str)> {
    Some(match input {
        "ckpt_name" => ("checkpoints", "checkpoint"),
        "lora_name" => ("loras", "LoRA"),
        "unet_name" => ("diffusion_models", "diffusion model"),
        "vae_name" => ("vae", "VAE"),
        "clip_name" | "clip_name1" | "clip_name2" => ("text_encoders", "text encoder"),
        "model_name" => ("upscale_models", "upscale model"),
        "control_net_name" => ("controlnet", "ControlNet"),
        _ => return None,
    })
}

/// `it has: a, b, c` (or that it has none), for a list of files.
pub fn listing(files: &[String]) -> String {
    if files.is_empty() {
        return "it has none in that folder".into();
    }
    let shown: Vec<&str> = files.iter().take(LISTED).map(String::as_str).collect();
    if files.len() > LISTED {
        format!(
            "it has {} files, among them: {}",
            files.len(),
            shown.join(", ")
        )
    } else {
        format!("it has: {}", shown.join(", "))
    }
}

fn choices(extra: &Value) -> String {
    let list: Vec<String> = extra
        .pointer("/input_config/0")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .map(|c| c.as_str().map_or_else(|| c.to_string(), String::from))
                .collect()
        })
        .unwrap_or_default();
    if list.is_empty() {
        "it offers no other choice here".into()
    } else {
        listing(&list)
    }
}

fn short(text: &str) -> String {
    let t: String = text.chars().take(300).collect();
    if t.len() < text.len() {
        format!("{t}…")
    } else {
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_entries_are_read_as_observed() {
        let ok = json!({
            "outputs": {"9": {"images": [{"filename": "b_00001_.png", "subfolder": "x", "type": "output"}]},
                        "3": {"images": [{"filename": "a_00001_.png", "subfolder": "", "type": "temp"}], "text": ["hi"]}},
            "status": {"status_str": "success", "completed": true, "messages": [
                ["execution_start", {"prompt_id": "p"}],
                ["execution_cached", {"nodes": ["1", "2"], "prompt_id": "p"}],
                ["execution_success", {"prompt_id": "p"}]]}
        });
        let h = parse_history(&ok);
        assert_eq!(h.ending, Ending::Success);
        let names: Vec<&str> = h.outputs.iter().map(|(_, f)| f.filename.as_str()).collect();
        assert_eq!(names, ["a_00001_.png", "b_00001_.png"]);
        assert_eq!(h.outputs[0].1.kind, "temp");
        assert_eq!(h.cached_nodes, ["1", "2"]);

        let interrupted = json!({"outputs": {}, "status": {"status_str": "error", "completed": false,
            "messages": [["execution_start", {}], ["execution_interrupted", {"node_id": "3"}]]}});
        assert_eq!(parse_history(&interrupted).ending, Ending::Interrupted);
        let failed = json!({"outputs": {}, "status": {"status_str": "error", "completed": false,
            "messages": [["execution_error", {"node_id": "4", "exception_message": "boom"}]]}});
        let f = parse_history(&failed);
        assert_eq!(f.ending, Ending::Error);
        assert_eq!(f.error.unwrap()["exception_message"], "boom");
    }

    #[test]
    fn long_lists_are_cut() {
        let many: Vec<String> = (0..30).map(|i| format!("m{i}.safetensors")).collect();
        let text = listing(&many);
        assert!(text.starts_with("it has 30 files"), "{text}");
        assert!(!text.contains("m29"));
        assert_eq!(listing(&[]), "it has none in that folder");
    }
}
