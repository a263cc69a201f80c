//! A mock ComfyUI on 127.0.0.1 that follows the protocol the research notes
//! observed on a real ComfyUI 0.3.75: `POST /prompt` with its 400 answers,
//! the WebSocket event sequence (status, execution_start, execution_cached,
//! executing, progress with binary preview frames, executed,
//! execution_success, executing null), `/history`, `/queue`, `/view`,
//! `/upload/image` (renaming a different picture of the same name),
//! `/models/{folder}`, `/object_info/{class}`, `/interrupt` and
//! `/system_stats`. A [`Mode`] turns on one failure: a socket that drops
//! mid-run, a runtime error, a run held until interrupted, an output that is
//! not a picture, a prompt that is forgotten.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Multipart, Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use tokio::sync::{Notify, mpsc};

/// The one failure the mock shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Normal,
    /// Close the client's socket after the first sampler step and refuse
    /// new sockets; the run itself goes on.
    DropSocketMidRun,
    /// Fail in the sampler with an `execution_error`.
    FailInSampler,
    /// Stop after the first sampler step until `/interrupt`.
    HoldInSampler,
    /// Stop after the first sampler step until the test calls
    /// [`MockState::release`], then finish normally.
    HoldUntilReleased,
    /// SaveImage writes bytes that are not a picture.
    NotAnImage,
    /// Accept the prompt, drop the socket, and forget the prompt.
    Forget,
}

/// Node classes the mock knows (a real server has hundreds).
const KNOWN: &[&str] = &[
    "CheckpointLoaderSimple",
    "CLIPTextEncode",
    "EmptyLatentImage",
    "KSampler",
    "VAEDecode",
    "VAEEncode",
    "SaveImage",
    "PreviewImage",
    "LoraLoader",
    "LoadImage",
    "ControlNetLoader",
    "ControlNetApplyAdvanced",
    "UNETLoader",
    "DualCLIPLoader",
    "VAELoader",
    "FluxGuidance",
    "EmptySD3LatentImage",
    "UpscaleModelLoader",
    "ImageUpscaleWithModel",
    "EmptyImage",
    "ImageInvert",
];

#[derive(Default)]
pub struct Inner {
    pub checkpoints: Vec<String>,
    pub loras: Vec<String>,
    /// When set, `/models/loras` lists this folder (a local ComfyUI's `models/loras`).
    pub loras_dir: Option<PathBuf>,
    pub diffusion_models: Vec<String>,
    pub upscale_models: Vec<String>,
    pub history: HashMap<String, Value>,
    pub running: Vec<(u64, String)>,
    sockets: HashMap<String, mpsc::UnboundedSender<Message>>,
    outputs: HashMap<(String, String), Vec<u8>>,
    pub uploads: HashMap<String, Vec<u8>>,
    seen: HashMap<String, Value>,
    counters: HashMap<String, u32>,
    number: u64,
    pub refuse_ws: bool,
    pub interrupted: bool,
    /// Bodies of every accepted `/prompt`.
    pub prompts: Vec<Value>,
    /// Bodies of every `/interrupt`.
    pub interrupts: Vec<Value>,
    /// Every `/ws` connection, by client id.
    pub socket_opens: Vec<String>,
}

pub struct MockState {
    pub inner: Mutex<Inner>,
    pub mode: Mutex<Mode>,
    /// Told when a held run reached its first step.
    pub held: Notify,
    interrupt: Notify,
    /// Lets a run held by [`Mode::HoldUntilReleased`] go on.
    pub release: Notify,
}

pub struct Mock {
    pub url: String,
    pub state: Arc<MockState>,
}

impl Mock {
    pub fn set_mode(&self, mode: Mode) {
        *self.state.mode.lock().unwrap() = mode;
    }

    pub fn with<R>(&self, f: impl FnOnce(&mut Inner) -> R) -> R {
        f(&mut self.state.inner.lock().unwrap())
    }
}

/// The colour the mock paints for a graph: a function of the positive
/// prompt, the LoRA weight and the checkpoint, so a test can tell which
/// graph made which picture.
pub fn colour(prompt: &str, weight: f64, checkpoint: &str) -> [u8; 3] {
    let key = format!("{prompt}|{weight:.2}|{checkpoint}");
    let h = blake3::hash(key.as_bytes());
    let b = h.as_bytes();
    // Kept away from the sheet's greys.
    [b[0] | 0x80, b[1] & 0x7f, b[2] | 0x40]
}

fn text_of(graph: &Value, link: &Value) -> String {
    let Some(id) = link.get(0).and_then(Value::as_str) else {
        return String::new();
    };
    let node = &graph[id];
    match node["class_type"].as_str() {
        Some("CLIPTextEncode") => node["inputs"]["text"].as_str().unwrap_or("").to_string(),
        Some("FluxGuidance") => text_of(graph, &node["inputs"]["conditioning"]),
        Some("ControlNetApplyAdvanced") => text_of(graph, &node["inputs"]["positive"]),
        _ => String::new(),
    }
}

fn of_class<'a>(graph: &'a Value, class: &str) -> Vec<(&'a String, &'a Value)> {
    let mut v: Vec<_> = graph
        .as_object()
        .unwrap()
        .iter()
        .filter(|(_, n)| n["class_type"] == class)
        .collect();
    v.sort_by_key(|(id, _)| id.parse::<u64>().unwrap_or(u64::MAX));
    v
}

/// What the graph's picture looks like (see [`colour`]).
pub fn graph_colour(graph: &Value) -> [u8; 3] {
    let prompt = of_class(graph, "KSampler")
        .first()
        .map(|(_, n)| text_of(graph, &n["inputs"]["positive"]))
        .unwrap_or_default();
    let weight = of_class(graph, "LoraLoader")
        .first()
        .and_then(|(_, n)| n["inputs"]["strength_model"].as_f64())
        .unwrap_or(0.0);
    let ckpt = of_class(graph, "CheckpointLoaderSimple")
        .first()
        .map(|(_, n)| n["inputs"]["ckpt_name"].as_str().unwrap_or("").to_string())
        .or_else(|| {
            of_class(graph, "UNETLoader")
                .first()
                .map(|(_, n)| n["inputs"]["unet_name"].as_str().unwrap_or("").to_string())
        })
        .unwrap_or_default();
    colour(&prompt, weight, &ckpt)
}

fn png(rgb: [u8; 3]) -> Vec<u8> {
    let img = image::RgbImage::from_pixel(96, 96, image::Rgb(rgb));
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

fn json_response(status: StatusCode, v: Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        v.to_string(),
    )
        .into_response()
}

/// Starts a mock on a free loopback port.
pub async fn start(mode: Mode) -> Mock {
    let state = Arc::new(MockState {
        inner: Mutex::new(Inner {
            checkpoints: vec![
                "sd_xl_base_1.0.safetensors".into(),
                "v1-5-pruned-emaonly.safetensors".into(),
            ],
            upscale_models: vec!["4x-UltraSharp.pth".into()],
            ..Inner::default()
        }),
        mode: Mutex::new(mode),
        held: Notify::new(),
        interrupt: Notify::new(),
        release: Notify::new(),
    });
    let app = Router::new()
        .route("/ws", get(ws))
        .route(
            "/prompt",
            post(post_prompt).get(|| async {
                json_response(StatusCode::OK, json!({"exec_info": {"queue_remaining": 0}}))
            }),
        )
        .route("/history/{id}", get(history))
        .route("/queue", get(queue).post(queue_post))
        .route("/view", get(view))
        .route("/upload/image", post(upload))
        .route("/models/{folder}", get(models))
        .route("/object_info/{class}", get(object_info))
        .route("/interrupt", post(interrupt))
        .route("/system_stats", get(system_stats))
        .with_state(Arc::clone(&state));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Mock {
        url: format!("http://{addr}"),
        state,
    }
}

/// A server that answers every request with a web page (a proxy's login).
pub async fn start_html() -> String {
    let app = Router::new().fallback(|| async {
        (
            [(header::CONTENT_TYPE, "text/html")],
            "<!doctype html><html><body>Please log in</body></html>",
        )
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://{addr}")
}

/// A loopback address nothing listens on.
pub fn dead_url() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    drop(l);
    format!("http://{addr}")
}

async fn ws(
    State(state): State<Arc<MockState>>,
    Query(q): Query<HashMap<String, String>>,
    upgrade: WebSocketUpgrade,
) -> Response {
    let client_id = q.get("clientId").cloned().unwrap_or_default();
    {
        let mut inner = state.inner.lock().unwrap();
        if inner.refuse_ws {
            return StatusCode::SERVICE_UNAVAILABLE.into_response();
        }
        inner.socket_opens.push(client_id.clone());
    }
    let (tx, rx) = mpsc::unbounded_channel();
    state
        .inner
        .lock()
        .unwrap()
        .sockets
        .insert(client_id.clone(), tx.clone());
    let _ = tx.send(Message::Text(
        json!({"type": "status", "data": {"status": {"exec_info": {"queue_remaining": 0}}, "sid": client_id}})
            .to_string()
            .into(),
    ));
    upgrade.on_upgrade(move |socket| pump(socket, rx))
}

async fn pump(mut socket: WebSocket, mut rx: mpsc::UnboundedReceiver<Message>) {
    loop {
        tokio::select! {
            msg = rx.recv() => match msg {
                Some(m) => { if socket.send(m).await.is_err() { return; } }
                None => { let _ = socket.send(Message::Close(None)).await; return; }
            },
            incoming = socket.recv() => match incoming {
                Some(Ok(_)) => {}
                _ => return,
            }
        }
    }
}

fn send(state: &MockState, client: &str, v: Value) {
    if let Some(tx) = state.inner.lock().unwrap().sockets.get(client) {
        let _ = tx.send(Message::Text(v.to_string().into()));
    }
}

fn node_error(input: &str, received: &str, class: &str, options: &[String]) -> Value {
    json!({"errors": [{"type": "value_not_in_list", "message": "Value not in list",
        "details": format!("{input}: '{received}' not in {options:?}"),
        "extra_info": {"input_name": input, "input_config": [options, {}], "received_value": received}}],
        "dependent_outputs": ["9"], "class_type": class})
}

fn list_loras(inner: &Inner) -> Vec<String> {
    match &inner.loras_dir {
        Some(d) => {
            let mut v: Vec<String> = std::fs::read_dir(d)
                .map(|r| {
                    r.filter_map(|e| e.ok()?.file_name().into_string().ok())
                        .filter(|n| !n.starts_with('.'))
                        .collect()
                })
                .unwrap_or_default();
            v.sort();
            v
        }
        None => inner.loras.clone(),
    }
}

async fn post_prompt(State(state): State<Arc<MockState>>, body: Bytes) -> Response {
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return json_response(
            StatusCode::BAD_REQUEST,
            json!({"error": {"type": "invalid_prompt", "message": "bad json", "details": "", "extra_info": {}}, "node_errors": {}}),
        );
    };
    let Some(graph) = body.get("prompt").cloned() else {
        return json_response(
            StatusCode::BAD_REQUEST,
            json!({"error": {"type": "no_prompt", "message": "No prompt provided", "details": "No prompt provided", "extra_info": {}}, "node_errors": {}}),
        );
    };
    let mut node_errors = serde_json::Map::new();
    {
        let inner = state.inner.lock().unwrap();
        for (id, node) in graph.as_object().unwrap() {
            let class = node["class_type"].as_str().unwrap_or("");
            if !KNOWN.contains(&class) {
                return json_response(
                    StatusCode::BAD_REQUEST,
                    json!({"error": {"type": "invalid_prompt",
                    "message": format!("Cannot execute because node {class} does not exist."),
                    "details": format!("Node ID '#{id}'"), "extra_info": {}}, "node_errors": {}}),
                );
            }
            let inputs = &node["inputs"];
            let check = |input: &str, have: &Vec<String>| -> Option<Value> {
                let v = inputs[input].as_str()?;
                (!have.contains(&v.to_string())).then(|| node_error(input, v, class, have))
            };
            let err = match class {
                "CheckpointLoaderSimple" => check("ckpt_name", &inner.checkpoints),
                "LoraLoader" => check("lora_name", &list_loras(&inner)),
                "UNETLoader" => check("unet_name", &inner.diffusion_models),
                "UpscaleModelLoader" => check("model_name", &inner.upscale_models),
                "LoadImage" => {
                    let name = inputs["image"].as_str().unwrap_or("");
                    (!inner.uploads.contains_key(name)).then(|| json!({"errors": [{"type": "custom_validation_failed",
                        "message": "Custom validation failed for node", "details": format!("image - Invalid image file: {name}"),
                        "extra_info": {"input_name": "image"}}], "dependent_outputs": [], "class_type": "LoadImage"}))
                }
                _ => None,
            };
            if let Some(e) = err {
                node_errors.insert(id.clone(), e);
            }
        }
    }
    if !node_errors.is_empty() {
        return json_response(
            StatusCode::BAD_REQUEST,
            json!({"error": {"type": "prompt_outputs_failed_validation",
            "message": "Prompt outputs failed validation", "details": "", "extra_info": {}}, "node_errors": node_errors}),
        );
    }
    let pid = body["prompt_id"]
        .as_str()
        .map(String::from)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let client = body["client_id"].as_str().unwrap_or("").to_string();
    let number = {
        let mut inner = state.inner.lock().unwrap();
        inner.number += 1;
        inner.prompts.push(body.clone());
        let n = inner.number;
        if *state.mode.lock().unwrap() != Mode::Forget {
            inner.running.push((n, pid.clone()));
        }
        n
    };
    tokio::spawn(run(Arc::clone(&state), pid.clone(), client, graph));
    json_response(
        StatusCode::OK,
        json!({"prompt_id": pid, "number": number, "node_errors": {}}),
    )
}

fn finish(state: &MockState, pid: &str, client: &str, entry: Value) {
    {
        let mut inner = state.inner.lock().unwrap();
        inner.history.insert(pid.to_string(), entry);
        inner.running.retain(|(_, p)| p != pid);
    }
    send(
        state,
        client,
        json!({"type": "status", "data": {"status": {"exec_info": {"queue_remaining": 0}}}}),
    );
    send(
        state,
        client,
        json!({"type": "executing", "data": {"node": null, "prompt_id": pid}}),
    );
}

async fn run(state: Arc<MockState>, pid: String, client: String, graph: Value) {
    let mode = *state.mode.lock().unwrap();
    let ts = 1_795_343_357_168u64;
    if mode == Mode::Forget {
        state.inner.lock().unwrap().sockets.remove(&client);
        state.inner.lock().unwrap().refuse_ws = true;
        return;
    }
    send(
        &state,
        &client,
        json!({"type": "status", "data": {"status": {"exec_info": {"queue_remaining": 1}}}}),
    );
    send(
        &state,
        &client,
        json!({"type": "execution_start", "data": {"prompt_id": pid, "timestamp": ts}}),
    );
    let mut ids: Vec<String> = graph.as_object().unwrap().keys().cloned().collect();
    ids.sort_by_key(|id| id.parse::<u64>().unwrap_or(u64::MAX));
    let key = graph.to_string();
    let previous = state.inner.lock().unwrap().seen.get(&key).cloned();
    let cached: Vec<String> = if previous.is_some() {
        ids.clone()
    } else {
        Vec::new()
    };
    send(
        &state,
        &client,
        json!({"type": "execution_cached", "data": {"nodes": cached, "prompt_id": pid, "timestamp": ts}}),
    );
    let mut messages = vec![
        json!(["execution_start", {"prompt_id": pid, "timestamp": ts}]),
        json!(["execution_cached", {"nodes": cached, "prompt_id": pid, "timestamp": ts}]),
    ];
    let mut outputs = serde_json::Map::new();
    if let Some(prev) = previous {
        for (node, out) in prev.as_object().unwrap() {
            send(
                &state,
                &client,
                json!({"type": "executed", "data": {"node": node, "display_node": node, "output": out, "prompt_id": pid}}),
            );
        }
        outputs = prev.as_object().unwrap().clone();
    } else {
        for id in &ids {
            let node = &graph[id];
            let class = node["class_type"].as_str().unwrap_or("");
            send(
                &state,
                &client,
                json!({"type": "executing", "data": {"node": id, "display_node": id, "prompt_id": pid}}),
            );
            if class == "KSampler" {
                let steps = node["inputs"]["steps"].as_u64().unwrap_or(3).min(3);
                for i in 1..=steps {
                    if mode == Mode::FailInSampler && i == 2 {
                        let err = json!({"prompt_id": pid, "node_id": id, "node_type": "KSampler", "executed": ["4"],
                            "exception_message": "Allocation on device 0 would exceed allowed memory. (out of memory)\n",
                            "exception_type": "torch.OutOfMemoryError", "traceback": ["..."], "current_inputs": {}, "current_outputs": [], "timestamp": ts});
                        send(
                            &state,
                            &client,
                            json!({"type": "execution_error", "data": err}),
                        );
                        messages.push(json!(["execution_error", err]));
                        finish(
                            &state,
                            &pid,
                            &client,
                            json!({"prompt": [], "outputs": {}, "status": {"status_str": "error", "completed": false, "messages": messages}, "meta": {}}),
                        );
                        return;
                    }
                    send(
                        &state,
                        &client,
                        json!({"type": "progress", "data": {"value": i, "max": steps, "prompt_id": pid, "node": id}}),
                    );
                    if let Some(tx) = state.inner.lock().unwrap().sockets.get(&client) {
                        let mut frame = vec![0, 0, 0, 1, 0, 0, 0, 1, 0xff, 0xd8, 0xff];
                        frame.extend_from_slice(&[0; 16]);
                        let _ = tx.send(Message::Binary(frame.into()));
                    }
                    if i == 1 && mode == Mode::DropSocketMidRun {
                        let mut inner = state.inner.lock().unwrap();
                        inner.sockets.remove(&client);
                        inner.refuse_ws = true;
                    }
                    if i == 1 && mode == Mode::HoldUntilReleased {
                        state.held.notify_one();
                        // A stored permit: a release sent before this point still counts.
                        state.release.notified().await;
                    }
                    if i == 1 && mode == Mode::HoldInSampler {
                        let wait = state.interrupt.notified();
                        state.held.notify_one();
                        if !state.inner.lock().unwrap().interrupted {
                            wait.await;
                        }
                        let data = json!({"prompt_id": pid, "node_id": id, "node_type": "KSampler", "executed": [], "timestamp": ts});
                        send(
                            &state,
                            &client,
                            json!({"type": "execution_interrupted", "data": data}),
                        );
                        messages.push(json!(["execution_interrupted", data]));
                        finish(
                            &state,
                            &pid,
                            &client,
                            json!({"prompt": [], "outputs": {}, "status": {"status_str": "error", "completed": false, "messages": messages}, "meta": {}}),
                        );
                        return;
                    }
                }
            }
            if class == "SaveImage" {
                let prefix = node["inputs"]["filename_prefix"]
                    .as_str()
                    .unwrap_or("ComfyUI");
                let (sub, stem) = prefix.rsplit_once('/').unwrap_or(("", prefix));
                let bytes = if mode == Mode::NotAnImage {
                    b"this is not a picture".to_vec()
                } else {
                    png(graph_colour(&graph))
                };
                let name = {
                    let mut inner = state.inner.lock().unwrap();
                    let c = inner.counters.entry(prefix.to_string()).or_insert(0);
                    *c += 1;
                    let name = format!("{stem}_{:05}_.png", *c);
                    inner.outputs.insert((sub.to_string(), name.clone()), bytes);
                    name
                };
                let out =
                    json!({"images": [{"filename": name, "subfolder": sub, "type": "output"}]});
                send(
                    &state,
                    &client,
                    json!({"type": "executed", "data": {"node": id, "display_node": id, "output": out, "prompt_id": pid}}),
                );
                outputs.insert(id.clone(), out);
            }
        }
    }
    state
        .inner
        .lock()
        .unwrap()
        .seen
        .insert(key, Value::Object(outputs.clone()));
    send(
        &state,
        &client,
        json!({"type": "execution_success", "data": {"prompt_id": pid, "timestamp": ts}}),
    );
    messages.push(json!(["execution_success", {"prompt_id": pid, "timestamp": ts}]));
    finish(
        &state,
        &pid,
        &client,
        json!({"prompt": [0, pid, graph, {"client_id": client}, []], "outputs": outputs,
        "status": {"status_str": "success", "completed": true, "messages": messages}, "meta": {}}),
    );
}

async fn history(State(state): State<Arc<MockState>>, Path(id): Path<String>) -> Response {
    let inner = state.inner.lock().unwrap();
    let v = match inner.history.get(&id) {
        Some(e) => json!({ id: e }),
        None => json!({}),
    };
    json_response(StatusCode::OK, v)
}

async fn queue(State(state): State<Arc<MockState>>) -> Response {
    let inner = state.inner.lock().unwrap();
    let running: Vec<Value> = inner
        .running
        .iter()
        .map(|(n, p)| json!([n, p, {}, {}, []]))
        .collect();
    json_response(
        StatusCode::OK,
        json!({"queue_running": running, "queue_pending": []}),
    )
}

async fn queue_post() -> Response {
    StatusCode::OK.into_response()
}

async fn view(
    State(state): State<Arc<MockState>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let key = (
        q.get("subfolder").cloned().unwrap_or_default(),
        q.get("filename").cloned().unwrap_or_default(),
    );
    match state.inner.lock().unwrap().outputs.get(&key) {
        Some(b) => ([(header::CONTENT_TYPE, "image/png")], b.clone()).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn upload(State(state): State<Arc<MockState>>, mut form: Multipart) -> Response {
    while let Ok(Some(field)) = form.next_field().await {
        if field.name() != Some("image") {
            continue;
        }
        let name = field.file_name().unwrap_or("image.png").to_string();
        let bytes = field.bytes().await.unwrap().to_vec();
        let mut inner = state.inner.lock().unwrap();
        let mut stored = name.clone();
        let mut n = 1;
        while inner.uploads.get(&stored).is_some_and(|b| *b != bytes) {
            let (stem, ext) = name.rsplit_once('.').unwrap_or((&name, "png"));
            stored = format!("{stem} ({n}).{ext}");
            n += 1;
        }
        inner.uploads.insert(stored.clone(), bytes);
        return json_response(
            StatusCode::OK,
            json!({"name": stored, "subfolder": "", "type": "input"}),
        );
    }
    StatusCode::BAD_REQUEST.into_response()
}

async fn models(State(state): State<Arc<MockState>>, Path(folder): Path<String>) -> Response {
    let inner = state.inner.lock().unwrap();
    let list = match folder.as_str() {
        "checkpoints" => inner.checkpoints.clone(),
        "loras" => list_loras(&inner),
        "diffusion_models" => inner.diffusion_models.clone(),
        "upscale_models" => inner.upscale_models.clone(),
        "controlnet" | "vae" | "text_encoders" | "clip" | "unet" => Vec::new(),
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    json_response(StatusCode::OK, json!(list))
}

async fn object_info(Path(class): Path<String>) -> Response {
    if KNOWN.contains(&class.as_str()) {
        json_response(
            StatusCode::OK,
            json!({ class.clone(): {"input": {}, "name": class, "output_node": class == "SaveImage"} }),
        )
    } else {
        json_response(StatusCode::OK, json!({}))
    }
}

async fn interrupt(State(state): State<Arc<MockState>>, body: Bytes) -> Response {
    let v = serde_json::from_slice::<Value>(&body).unwrap_or(Value::Null);
    {
        let mut inner = state.inner.lock().unwrap();
        inner.interrupts.push(v);
        inner.interrupted = true;
    }
    state.interrupt.notify_waiters();
    StatusCode::OK.into_response()
}

async fn system_stats() -> Response {
    json_response(
        StatusCode::OK,
        json!({"system": {"os": "posix", "ram_total": 25276514304u64, "ram_free": 24130822144u64,
        "comfyui_version": "0.3.75", "python_version": "3.12.1", "pytorch_version": "2.15.0+cu132", "embedded_python": false, "argv": ["main.py"]},
        "devices": [{"name": "cuda:0 NVIDIA GeForce RTX 4090 : cudaMallocAsync", "type": "cuda", "index": 0,
            "vram_total": 25757220864u64, "vram_free": 23100000000u64, "torch_vram_total": 0, "torch_vram_free": 0}]}),
    )
}
