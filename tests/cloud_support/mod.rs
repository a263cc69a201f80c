//! Mock GPU providers for the cloud tests: real HTTP servers on 127.0.0.1
//! that answer as Vast.ai's REST API and RunPod's GraphQL API do (the shapes
//! of `research/comfy-cloud.md` parts 3 and 4), hold their instances in
//! memory, and misbehave on request (5xx, hangs, a taken offer, a lost
//! create answer, a teardown the listing lags behind, a garbled listing).
//! An SSH stand-in answers the identification line every SSH server sends.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ategnatos::cloud::{ApiKey, CloudConfig, ProviderSettings, Timing};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

pub const VAST_KEY: &str = "vast-KEY-sekret-0123456789abcdef";
pub const RUNPOD_KEY: &str = "rpa_RUNPOD-sekret-fedcba9876543210";

/// Faults a mock injects; each counter is used up as it fires.
#[derive(Default, Debug)]
pub struct Faults {
    /// The next this many requests answer HTTP 500.
    pub fail_next: u32,
    /// The next this many requests never answer (the client times out).
    pub hang_next: u32,
    /// Offers rented by someone else since the quote.
    pub taken: Vec<String>,
    /// The next create makes the instance, then answers 500 (the answer is lost).
    pub lose_create_answer: bool,
    /// Listings that still show a destroyed instance.
    pub lag_after_destroy: u32,
    /// Status polls an instance spends booting before it runs.
    pub boot_polls: u32,
    /// Listings answer a shape the client cannot read.
    pub garbled_listing: bool,
    /// A rejected create quotes the Authorization header back.
    pub echo_key_on_reject: bool,
    /// Creates are refused with HTTP 400 (nothing made).
    pub reject_create: bool,
    /// The instance bills at this $/h instead of the offer's.
    pub bill_at: Option<f64>,
}

#[derive(Debug, Clone)]
pub struct Instance {
    pub id: String,
    pub label: String,
    pub gpu: String,
    pub price: f64,
    /// Status polls left before it runs.
    pub boot_left: u32,
    /// Destroyed; still listed while `lag` > 0.
    pub destroyed: bool,
    pub lag: u32,
}

/// What a mock provider holds and saw.
#[derive(Default)]
pub struct Mock {
    pub faults: Faults,
    pub instances: BTreeMap<String, Instance>,
    next_id: u64,
    /// `METHOD path` of every request.
    pub requests: Vec<String>,
    /// Authorization headers as received.
    pub auth: Vec<String>,
    pub creates: u32,
    pub destroys: u32,
    /// The SSH stand-in's port, given to running instances.
    pub ssh_port: u16,
    /// The ledger folder: at each create, whether a PENDING entry with the
    /// create's label was already there goes into `pending_at_create`.
    pub ledger_dir: Option<std::path::PathBuf>,
    pub pending_at_create: Vec<bool>,
}

impl Mock {
    fn note_ledger(&mut self, label: &str) {
        let Some(dir) = &self.ledger_dir else { return };
        let found = std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .any(|e| {
                std::fs::read_to_string(e.path())
                    .is_ok_and(|t| t.contains(label) && t.contains("\"PENDING\""))
            });
        self.pending_at_create.push(found);
    }
}

impl Mock {
    pub fn alive(&self) -> Vec<&Instance> {
        self.instances.values().filter(|i| !i.destroyed).collect()
    }

    /// Adds an instance as if created outside this process.
    pub fn plant(&mut self, label: &str, gpu: &str, price: f64) -> String {
        self.next_id += 1;
        let id = format!("{}", 7000 + self.next_id);
        self.instances.insert(
            id.clone(),
            Instance {
                id: id.clone(),
                label: label.to_string(),
                gpu: gpu.to_string(),
                price,
                boot_left: 0,
                destroyed: false,
                lag: 0,
            },
        );
        id
    }
}

pub type Shared = Arc<Mutex<Mock>>;

/// A running mock provider.
pub struct Provider {
    pub url: String,
    pub state: Shared,
}

impl Provider {
    pub fn with<R>(&self, f: impl FnOnce(&mut Mock) -> R) -> R {
        f(&mut self.state.lock().unwrap())
    }
}

/// An SSH server's first line, to anyone who connects.
pub async fn ssh_stand_in() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        use tokio::io::AsyncWriteExt;
        while let Ok((mut s, _)) = listener.accept().await {
            let _ = s
                .write_all(b"SSH-2.0-OpenSSH_9.6p1 Ubuntu-3ubuntu13\r\n")
                .await;
        }
    });
    port
}

async fn serve(state: Shared, handler: Handler) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let app = axum::Router::new().fallback(
        move |State(s): State<Shared>,
              method: Method,
              uri: Uri,
              headers: HeaderMap,
              body: Bytes| async move { handle(s, handler, method, uri, headers, body).await },
    );
    let app = app.with_state(state);
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    url
}

type Handler = fn(&mut Mock, &Method, &Uri, &str, &str) -> (StatusCode, String);

async fn handle(
    s: Shared,
    handler: Handler,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let hang = {
        let mut m = s.lock().unwrap();
        m.requests.push(format!("{method} {}", uri.path()));
        m.auth.push(auth.clone());
        if m.faults.hang_next > 0 {
            m.faults.hang_next -= 1;
            true
        } else {
            false
        }
    };
    if hang {
        std::future::pending::<()>().await;
    }
    let (status, text) = {
        let mut m = s.lock().unwrap();
        if m.faults.fail_next > 0 {
            m.faults.fail_next -= 1;
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "<html>502 upstream</html>".to_string(),
            )
        } else {
            let body = String::from_utf8_lossy(&body).to_string();
            handler(&mut m, &method, &uri, &auth, &body)
        }
    };
    (
        status,
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        text,
    )
        .into_response()
}

// ---------------------------------------------------------------- Vast.ai

pub async fn vast(ssh_port: u16) -> Provider {
    let state: Shared = Arc::new(Mutex::new(Mock {
        ssh_port,
        ..Mock::default()
    }));
    let url = serve(Arc::clone(&state), vast_answer).await;
    Provider { url, state }
}

/// The search example's rows: two RTX 4090s, a 3090, an A100.
fn vast_offers() -> Vec<Value> {
    vec![
        json!({"id": 4242, "ask_contract_id": 4242, "gpu_name": "RTX 4090", "num_gpus": 1, "gpu_ram": 24564,
            "dph_total": 0.383, "dph_base": 0.35, "reliability2": 0.991, "geolocation": "Sweden, SE"}),
        json!({"id": 4243, "gpu_name": "RTX 4090", "num_gpus": 1, "gpu_ram": 24564,
            "dph_total": 0.41, "dph_base": 0.38, "reliability2": 0.998, "geolocation": "Canada, CA"}),
        json!({"id": 5150, "gpu_name": "RTX 3090", "num_gpus": 1, "gpu_ram": 24576,
            "dph_total": 0.22, "dph_base": 0.2, "reliability2": 0.97, "geolocation": "Poland, PL"}),
        json!({"id": 6001, "gpu_name": "A100 SXM4", "num_gpus": 1, "gpu_ram": 81920,
            "dph_total": 1.1, "dph_base": 1.05, "reliability2": 0.995, "geolocation": "US"}),
    ]
}

fn vast_row(i: &Instance, ssh_port: u16) -> Value {
    let running = i.boot_left == 0;
    let mut row = json!({
        "id": i.id.parse::<u64>().unwrap_or(0),
        "label": i.label,
        "gpu_name": i.gpu,
        "num_gpus": 1,
        "dph_total": i.price,
        "actual_status": if running { json!("running") } else { json!("loading") },
        "intended_status": "running",
        "ssh_host": "127.0.0.1",
        "ssh_port": ssh_port,
    });
    if running {
        row["public_ipaddr"] = json!("127.0.0.1");
        row["ports"] = json!({"22/tcp": [{"HostIp": "0.0.0.0", "HostPort": ssh_port.to_string()}]});
    }
    row
}

fn vast_answer(
    m: &mut Mock,
    method: &Method,
    uri: &Uri,
    auth: &str,
    body: &str,
) -> (StatusCode, String) {
    if auth != format!("Bearer {VAST_KEY}") {
        // Vast answers a wrong key with 404 and `auth_error`.
        return (
            StatusCode::NOT_FOUND,
            json!({"success": false, "error": "auth_error", "msg": "Invalid user key"}).to_string(),
        );
    }
    let path = uri.path();
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    match (method.as_str(), segments.as_slice()) {
        ("POST", ["api", "v0", "bundles"]) => {
            let q: Value = serde_json::from_str(body).unwrap_or(Value::Null);
            let min_mb = q["gpu_ram"]["gte"].as_f64().unwrap_or(0.0);
            let offers: Vec<Value> = vast_offers()
                .into_iter()
                .filter(|o| o["gpu_ram"].as_f64().unwrap_or(0.0) >= min_mb)
                .collect();
            (StatusCode::OK, json!({"offers": offers}).to_string())
        }
        ("PUT", ["api", "v0", "asks", offer]) => {
            let offer = offer.to_string();
            if m.faults.taken.contains(&offer) {
                return (
                    StatusCode::GONE,
                    json!({"success": false, "error": "no_such_ask",
                        "msg": format!("Instance type {offer} is no longer available."), "ask_id": offer})
                    .to_string(),
                );
            }
            if m.faults.reject_create {
                let msg = if m.faults.echo_key_on_reject {
                    format!("invalid_args for request with {auth}")
                } else {
                    "invalid_args".to_string()
                };
                return (
                    StatusCode::BAD_REQUEST,
                    json!({"success": false, "error": "invalid_args", "msg": msg}).to_string(),
                );
            }
            let Some(row) = vast_offers()
                .into_iter()
                .find(|o| o["id"].as_u64().is_some() && o["id"].as_u64() == offer.parse().ok())
            else {
                return (
                    StatusCode::NOT_FOUND,
                    json!({"success": false, "error": "no_such_ask", "msg": "not available"})
                        .to_string(),
                );
            };
            let b: Value = serde_json::from_str(body).unwrap_or(Value::Null);
            m.note_ledger(b["label"].as_str().unwrap_or(""));
            m.creates += 1;
            m.next_id += 1;
            let id = format!("{}", 9000 + m.next_id);
            let price = m
                .faults
                .bill_at
                .unwrap_or(row["dph_total"].as_f64().unwrap_or(0.0));
            m.instances.insert(
                id.clone(),
                Instance {
                    id: id.clone(),
                    label: b["label"].as_str().unwrap_or("").to_string(),
                    gpu: row["gpu_name"].as_str().unwrap_or("").to_string(),
                    price,
                    boot_left: m.faults.boot_polls,
                    destroyed: false,
                    lag: 0,
                },
            );
            if m.faults.lose_create_answer {
                m.faults.lose_create_answer = false;
                return (StatusCode::BAD_GATEWAY, "<html>bad gateway</html>".into());
            }
            (
                StatusCode::OK,
                json!({"success": true, "new_contract": id.parse::<u64>().unwrap()}).to_string(),
            )
        }
        ("GET", ["api", "v0", "instances"]) => (
            StatusCode::GONE,
            json!({"error": "deprecated_endpoint"}).to_string(),
        ),
        ("GET", ["api", "v0", "instances", id]) => {
            let ssh = m.ssh_port;
            match m.instances.get_mut(*id).filter(|i| !i.destroyed) {
                Some(i) => {
                    i.boot_left = i.boot_left.saturating_sub(1);
                    let row = vast_row(i, ssh);
                    (StatusCode::OK, json!({"instances": row}).to_string())
                }
                None => (StatusCode::OK, json!({"instances": null}).to_string()),
            }
        }
        ("GET", ["api", "v1", "instances"]) => {
            if m.faults.garbled_listing {
                return (StatusCode::OK, "\"\"".into());
            }
            let ssh = m.ssh_port;
            let mut rows = Vec::new();
            for i in m.instances.values_mut() {
                if i.destroyed {
                    if i.lag == 0 {
                        continue;
                    }
                    i.lag -= 1;
                }
                rows.push(vast_row(i, ssh));
            }
            // Pages of 25, as the API gives them.
            let after: usize = uri
                .query()
                .unwrap_or("")
                .split('&')
                .find_map(|kv| kv.strip_prefix("after_token="))
                .and_then(|t| t.parse().ok())
                .unwrap_or(0);
            let page: Vec<Value> = rows.iter().skip(after).take(25).cloned().collect();
            let next = if after + 25 < rows.len() {
                json!((after + 25).to_string())
            } else {
                Value::Null
            };
            (
                StatusCode::OK,
                json!({"success": true, "instances_found": rows.len(), "next_token": next, "instances": page})
                    .to_string(),
            )
        }
        ("DELETE", ["api", "v0", "instances", id]) => {
            m.destroys += 1;
            let lag = m.faults.lag_after_destroy;
            match m.instances.get_mut(*id).filter(|i| !i.destroyed) {
                Some(i) => {
                    i.destroyed = true;
                    i.lag = lag;
                    m.faults.lag_after_destroy = 0;
                    (StatusCode::OK, json!({"success": true}).to_string())
                }
                None => (
                    StatusCode::NOT_FOUND,
                    json!({"success": false, "error": "not_found"}).to_string(),
                ),
            }
        }
        _ => (
            StatusCode::NOT_FOUND,
            json!({"error": "no_route", "path": path}).to_string(),
        ),
    }
}

// ---------------------------------------------------------------- RunPod

pub async fn runpod(ssh_port: u16) -> Provider {
    let state: Shared = Arc::new(Mutex::new(Mock {
        ssh_port,
        ..Mock::default()
    }));
    let url = serve(Arc::clone(&state), runpod_answer).await;
    Provider { url, state }
}

/// The text after `key: "` up to the closing quote, unescaped.
fn arg(query: &str, key: &str) -> Option<String> {
    let start = query.find(&format!("{key}: \""))? + key.len() + 2;
    let rest = &query[start..];
    let mut end = 1;
    let bytes = rest.as_bytes();
    while end < bytes.len() && !(bytes[end] == b'"' && bytes[end - 1] != b'\\') {
        end += 1;
    }
    serde_json::from_str(&rest[..=end]).ok()
}

fn pod(i: &Instance, ssh_port: u16) -> Value {
    let running = i.boot_left == 0;
    json!({
        "id": i.id,
        "name": i.label,
        "desiredStatus": "RUNNING",
        "costPerHr": i.price,
        "machine": {"gpuDisplayName": i.gpu},
        "runtime": if running {
            json!({"uptimeInSeconds": 12, "ports": [
                {"ip": "10.0.0.2", "isIpPublic": false, "privatePort": 22, "publicPort": 22, "type": "tcp"},
                {"ip": "127.0.0.1", "isIpPublic": true, "privatePort": 22, "publicPort": ssh_port, "type": "tcp"}]})
        } else {
            Value::Null
        },
    })
}

fn graphql_error(message: &str) -> (StatusCode, String) {
    (
        StatusCode::OK,
        json!({"errors": [{"message": message}], "data": null}).to_string(),
    )
}

fn runpod_answer(
    m: &mut Mock,
    method: &Method,
    uri: &Uri,
    auth: &str,
    body: &str,
) -> (StatusCode, String) {
    if method != Method::POST || uri.path() != "/graphql" {
        return (StatusCode::NOT_FOUND, "{}".into());
    }
    if auth != format!("Bearer {RUNPOD_KEY}") {
        return (
            StatusCode::UNAUTHORIZED,
            "{\"error\":\"unauthorized\"}".into(),
        );
    }
    let query = serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| v["query"].as_str().map(str::to_string))
        .unwrap_or_default();
    let ssh = m.ssh_port;
    if query.contains("gpuTypes") {
        let types = json!([
            {"id": "NVIDIA GeForce RTX 4090", "displayName": "RTX 4090", "memoryInGb": 24,
             "secureCloud": true, "communityCloud": true, "securePrice": 0.69, "communityPrice": 0.34,
             "lowestPrice": {"stockStatus": "High"}},
            {"id": "NVIDIA RTX A4000", "displayName": "RTX A4000", "memoryInGb": 16,
             "secureCloud": true, "communityCloud": true, "securePrice": 0.32, "communityPrice": 0.17,
             "lowestPrice": {"stockStatus": "Low"}},
            {"id": "NVIDIA A100 80GB PCIe", "displayName": "A100 80GB", "memoryInGb": 80,
             "secureCloud": true, "communityCloud": false, "securePrice": 1.64, "communityPrice": null,
             "lowestPrice": {"stockStatus": "Medium"}}
        ]);
        return (
            StatusCode::OK,
            json!({"data": {"gpuTypes": types}}).to_string(),
        );
    }
    if query.contains("podFindAndDeployOnDemand") {
        let gpu = arg(&query, "gpuTypeId").unwrap_or_default();
        let cloud = if query.contains("cloudType: COMMUNITY") {
            "COMMUNITY"
        } else {
            "SECURE"
        };
        if m.faults.taken.contains(&format!("{cloud}:{gpu}")) {
            return graphql_error(
                "There are no longer any instances available with the requested specifications. Please refresh and try again.",
            );
        }
        m.note_ledger(&arg(&query, "name").unwrap_or_default());
        m.creates += 1;
        m.next_id += 1;
        let id = format!("pod{:04}x", m.next_id);
        let price = m
            .faults
            .bill_at
            .unwrap_or(if gpu.contains("4090") { 0.35 } else { 0.5 });
        m.instances.insert(
            id.clone(),
            Instance {
                id: id.clone(),
                label: arg(&query, "name").unwrap_or_default(),
                gpu: gpu.replace("NVIDIA GeForce ", ""),
                price,
                boot_left: m.faults.boot_polls,
                destroyed: false,
                lag: 0,
            },
        );
        if m.faults.lose_create_answer {
            m.faults.lose_create_answer = false;
            return (StatusCode::GATEWAY_TIMEOUT, "upstream timeout".into());
        }
        return (
            StatusCode::OK,
            json!({"data": {"podFindAndDeployOnDemand": {"id": id, "costPerHr": price, "desiredStatus": "RUNNING"}}})
                .to_string(),
        );
    }
    if query.contains("podTerminate") {
        m.destroys += 1;
        let id = arg(&query, "podId").unwrap_or_default();
        let lag = m.faults.lag_after_destroy;
        return match m.instances.get_mut(&id).filter(|i| !i.destroyed) {
            Some(i) => {
                i.destroyed = true;
                i.lag = lag;
                m.faults.lag_after_destroy = 0;
                (
                    StatusCode::OK,
                    json!({"data": {"podTerminate": null}}).to_string(),
                )
            }
            None => graphql_error("pod not found"),
        };
    }
    if query.contains("myself") {
        if m.faults.garbled_listing {
            return (
                StatusCode::OK,
                json!({"data": {"myself": null}}).to_string(),
            );
        }
        let mut pods = Vec::new();
        for i in m.instances.values_mut() {
            if i.destroyed {
                if i.lag == 0 {
                    continue;
                }
                i.lag -= 1;
            }
            pods.push(pod(i, ssh));
        }
        return (
            StatusCode::OK,
            json!({"data": {"myself": {"pods": pods}}}).to_string(),
        );
    }
    if query.contains("pod(input") {
        let id = arg(&query, "podId").unwrap_or_default();
        return match m.instances.get_mut(&id).filter(|i| !i.destroyed) {
            Some(i) => {
                i.boot_left = i.boot_left.saturating_sub(1);
                (
                    StatusCode::OK,
                    json!({"data": {"pod": pod(i, ssh)}}).to_string(),
                )
            }
            None => (StatusCode::OK, json!({"data": {"pod": null}}).to_string()),
        };
    }
    graphql_error("unknown query")
}

// ---------------------------------------------------------------- config

/// Fast timings for tests: short waits, few retries; a hang times out quickly.
pub fn timing() -> Timing {
    Timing {
        request_timeout: Duration::from_millis(700),
        retries: 3,
        retry_base_delay: Duration::from_millis(5),
        poll_interval: Duration::from_millis(5),
        boot_deadline: Duration::from_secs(20),
        teardown_deadline: Duration::from_secs(20),
        ssh_timeout: Duration::from_secs(5),
        quote_ttl: Duration::from_secs(600),
        watchdog_interval: Duration::from_millis(20),
        idle_grace: Duration::from_secs(600),
    }
}

/// Both providers pointed at the mocks, with their keys.
pub fn config(vast: &Provider, runpod: Option<&Provider>) -> CloudConfig {
    CloudConfig {
        vast: ProviderSettings {
            base_url: vast.url.clone(),
            key: Some(ApiKey::new(VAST_KEY)),
        },
        runpod: ProviderSettings {
            base_url: runpod.map_or_else(|| "http://127.0.0.1:9".to_string(), |r| r.url.clone()),
            key: runpod.map(|_| ApiKey::new(RUNPOD_KEY)),
        },
        timing: timing(),
        ssh: Default::default(),
    }
}

/// Every file under `dir` whose bytes contain `needle`.
pub fn files_containing(dir: &Path, needle: &str) -> Vec<String> {
    let mut hits = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if let Ok(bytes) = std::fs::read(&p)
                && String::from_utf8_lossy(&bytes).contains(needle)
            {
                hits.push(p.display().to_string());
            }
        }
    }
    hits
}

/// A log sink: what `tracing` wrote while it was the default subscriber.
#[derive(Clone, Default)]
pub struct Logs(pub Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Logs {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).to_string()
    }
}

/// Captures every log line of the whole test binary (all threads).
pub fn capture_logs() -> Logs {
    static LOGS: std::sync::OnceLock<Logs> = std::sync::OnceLock::new();
    LOGS.get_or_init(|| {
        let logs = Logs::default();
        let sink = logs.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(move || sink.clone())
            .finish();
        let _ = tracing::subscriber::set_global_default(subscriber);
        logs
    })
    .clone()
}

/// An MCP client connected in-process to a server on `root` whose cloud
/// tools talk to `cfg`'s (mock) providers.
pub async fn connect(
    root: &Path,
    cfg: CloudConfig,
) -> rmcp::service::RunningService<rmcp::RoleClient, ()> {
    use rmcp::ServiceExt;
    let (server_io, client_io) = tokio::io::duplex(1 << 22);
    let ws = ategnatos::studio::Workspace::open(root).unwrap();
    let shared = ategnatos::mcp::Shared::with_cloud(ws, cfg);
    tokio::spawn(async move {
        if let Ok(s) = ategnatos::mcp::AtegnatosServer::new(shared)
            .serve(server_io)
            .await
        {
            let _ = s.waiting().await;
        }
    });
    ().serve(client_io).await.unwrap()
}

/// Calls a tool; its text and whether it is an error.
pub async fn call(
    client: &rmcp::service::RunningService<rmcp::RoleClient, ()>,
    name: &'static str,
    arguments: Value,
) -> (String, bool, Value) {
    let r = client
        .call_tool(
            rmcp::model::CallToolRequestParams::new(name)
                .with_arguments(arguments.as_object().unwrap().clone()),
        )
        .await
        .unwrap();
    let text = r
        .content
        .iter()
        .filter_map(|c| c.as_text().map(|t| t.text.clone()))
        .collect::<Vec<_>>()
        .join("\n");
    (
        text,
        r.is_error == Some(true),
        r.structured_content.unwrap_or(Value::Null),
    )
}
