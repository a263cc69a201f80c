//! The MCP server as clients see it: in-process over a duplex pipe, over the
//! real stdio of the built binary, and over streamable HTTP on loopback; with
//! protocol 2025-06-18 (what Claude Code sends) and the newest rmcp knows.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout,
    clippy::disallowed_methods
)]
#![allow(deprecated)] // legacy resources/subscribe is what 2025-era clients use

mod common;

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ategnatos::mcp::{AtegnatosServer, Shared};
use ategnatos::studio::Workspace;
use rmcp::model::*;
use rmcp::service::{NotificationContext, RunningService};
use rmcp::{ClientHandler, RoleClient, ServiceExt};
use serde_json::{Value, json};
use tokio::sync::Notify;

/// A client that records what the server sends it.
#[derive(Clone)]
struct Recorder {
    version: ProtocolVersion,
    progress: Arc<Mutex<Vec<ProgressNotificationParam>>>,
    updated: Arc<Mutex<Vec<String>>>,
    list_changed: Arc<Mutex<usize>>,
    event: Arc<Notify>,
}

impl Recorder {
    fn new(version: ProtocolVersion) -> Self {
        Recorder {
            version,
            progress: Arc::default(),
            updated: Arc::default(),
            list_changed: Arc::default(),
            event: Arc::new(Notify::new()),
        }
    }

    /// Waits (bounded) until `check` holds on what was recorded.
    async fn until(&self, what: &str, check: impl Fn(&Recorder) -> bool) {
        let waited = tokio::time::timeout(Duration::from_secs(30), async {
            loop {
                let notified = self.event.notified();
                if check(self) {
                    return;
                }
                notified.await;
            }
        })
        .await;
        assert!(waited.is_ok(), "never received {what}");
    }
}

impl ClientHandler for Recorder {
    fn get_info(&self) -> ClientInfo {
        InitializeRequestParams::new(
            ClientCapabilities::default(),
            Implementation::new("ategnatos-test", "1.0"),
        )
        .with_protocol_version(self.version.clone())
    }

    async fn on_progress(&self, p: ProgressNotificationParam, _c: NotificationContext<RoleClient>) {
        self.progress.lock().unwrap().push(p);
        self.event.notify_waiters();
    }

    async fn on_resource_list_changed(&self, _c: NotificationContext<RoleClient>) {
        *self.list_changed.lock().unwrap() += 1;
        self.event.notify_waiters();
    }

    async fn on_resource_updated(
        &self,
        p: ResourceUpdatedNotificationParam,
        _c: NotificationContext<RoleClient>,
    ) {
        self.updated.lock().unwrap().push(p.uri);
        self.event.notify_waiters();
    }
}

type Client = RunningService<RoleClient, Recorder>;

fn args(v: Value) -> JsonObject {
    v.as_object().unwrap().clone()
}

async fn call(client: &Client, tool: &'static str, a: Value) -> CallToolResult {
    client
        .call_tool(CallToolRequestParams::new(tool).with_arguments(args(a)))
        .await
        .unwrap()
}

fn text_of(r: &CallToolResult) -> String {
    r.content
        .iter()
        .filter_map(|c| c.as_text().map(|t| t.text.clone()))
        .collect::<Vec<_>>()
        .join("\n")
}

fn workspace_with_fixtures() -> (tempfile::TempDir, std::path::PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().canonicalize().unwrap();
    common::problem_zoo(&root);
    common::clean_set(&root, 40);
    (tmp, root)
}

/// What every transport must do, end to end.
async fn full_scenario(client: &Client, rec: &Recorder, root: &Path) {
    let info = client.peer_info().expect("server info");
    assert_eq!(
        info.server_info.as_ref().map(|i| i.name.as_str()),
        Some("ategnatos")
    );
    assert_eq!(
        info.capabilities
            .resources
            .as_ref()
            .and_then(|r| r.subscribe),
        Some(true)
    );
    assert!(
        info.instructions
            .as_deref()
            .unwrap_or("")
            .contains("audit_dataset")
    );

    // Tools, with schemas the model can read.
    let tools = client.list_all_tools().await.unwrap();
    let audit = tools
        .iter()
        .find(|t| t.name == "audit_dataset")
        .expect("audit_dataset listed");
    let schema = serde_json::to_value(&audit.input_schema).unwrap();
    assert_eq!(schema["required"], json!(["path"]));
    assert!(
        schema["properties"]["trigger_word"]["description"]
            .as_str()
            .unwrap()
            .to_lowercase()
            .contains("trigger word")
    );
    // Output schemas would cost every conversation thousands of bytes; results still carry structured content.
    assert!(tools.iter().all(|t| t.output_schema.is_none()));
    for name in ["job_status", "cancel_job"] {
        assert!(tools.iter().any(|t| t.name == name), "{name} listed");
    }

    // Subscribe to the gate, then audit with a project: the gate is recorded and we hear of it.
    let gate_uri = "ategnatos://projects/foxes/gates/1";
    client
        .subscribe(SubscribeRequestParams::new(gate_uri))
        .await
        .unwrap();
    let r = call(
        client,
        "audit_dataset",
        json!({
            "path": "zoo", "project": "foxes", "base_model": "sd15", "trigger_word": common::TRIGGER
        }),
    )
    .await;
    assert_eq!(r.is_error, Some(false), "{}", text_of(&r));
    let s = r.structured_content.as_ref().unwrap();
    assert_eq!(s["status"], "done");
    assert_eq!(s["result"]["summary"]["images"], 18);
    assert_eq!(s["result"]["problems"][0]["severity"], "blocking");
    let text = text_of(&r);
    assert!(
        text.contains("Must fix before training") && text.contains(gate_uri),
        "{text}"
    );
    rec.until("resources/updated for the gate", |r| {
        r.updated.lock().unwrap().iter().any(|u| u == gate_uri)
    })
    .await;
    rec.until("resources/list_changed for the new gate record", |r| {
        *r.list_changed.lock().unwrap() > 0
    })
    .await;
    rec.until("a progress notification", |r| {
        !r.progress.lock().unwrap().is_empty()
    })
    .await;
    assert!(root.join("grimoire/training/foxes/audit.json").is_file());

    // The gate record as a resource.
    let read = client
        .read_resource(ReadResourceRequestParams::new(gate_uri))
        .await
        .unwrap();
    let ResourceContents::TextResourceContents { text, .. } = &read.contents[0] else {
        panic!("text resource")
    };
    let gate: Value = serde_json::from_str(text).unwrap();
    assert_eq!(gate["status"], "FAIL");
    assert_eq!(gate["fingerprint"], s["result"]["fingerprint"]);
    let listed = client.list_all_resources().await.unwrap();
    assert!(listed.iter().any(|r| r.uri == gate_uri));
    assert!(
        listed
            .iter()
            .any(|r| r.uri == "ategnatos://projects/foxes/reports/audit.json")
    );
    let templates = client.list_all_resource_templates().await.unwrap();
    assert!(
        templates
            .iter()
            .any(|t| t.uri_template == "ategnatos://projects/{name}/gates/{gate}")
    );

    // A long audit returns a job at once when told not to wait, and job_status finishes it.
    let r = call(
        client,
        "audit_dataset",
        json!({ "path": "clean", "wait_seconds": 0 }),
    )
    .await;
    let s = r.structured_content.clone().unwrap();
    assert_eq!(s["status"], "running", "{}", text_of(&r));
    assert!(text_of(&r).contains("job_status"));
    let job_id = s["job_id"].as_str().unwrap().to_string();
    let r = call(
        client,
        "job_status",
        json!({ "job_id": job_id, "wait_seconds": 120 }),
    )
    .await;
    let s = r.structured_content.unwrap();
    assert_eq!(s["status"], "done");
    assert_eq!(s["result"]["summary"]["images"], 40);
    let read = client
        .read_resource(ReadResourceRequestParams::new(format!(
            "ategnatos://jobs/{job_id}"
        )))
        .await
        .unwrap();
    assert!(
        matches!(&read.contents[0], ResourceContents::TextResourceContents { text, .. } if text.contains("\"done\""))
    );

    // Prompts.
    let prompts = client.list_all_prompts().await.unwrap();
    for name in ["train", "intent_interview", "caption_review"] {
        assert!(prompts.iter().any(|p| p.name == name), "prompt {name}");
    }
    let p = client
        .get_prompt(
            GetPromptRequestParams::new("train").with_arguments(args(json!({"project": "foxes"}))),
        )
        .await
        .unwrap();
    let text = &p.messages[0].content.as_text().expect("text prompt").text;
    assert!(text.contains("foxes") && text.contains("audit_dataset"));

    refusals(client).await;
}

/// Bad input gets a clear tool error, and the server keeps serving.
async fn refusals(client: &Client) {
    let r = call(client, "audit_dataset", json!({ "path": 5 })).await;
    assert_eq!(r.is_error, Some(true));
    let r = call(client, "audit_dataset", json!({ "path": "../" })).await;
    assert_eq!(r.is_error, Some(true));
    let t = text_of(&r);
    assert!(
        t.contains("outside the workspace") && t.contains("hint:"),
        "{t}"
    );
    let r = call(client, "audit_dataset", json!({ "path": "/etc" })).await;
    assert!(text_of(&r).contains("outside the workspace"));
    let r = call(
        client,
        "audit_dataset",
        json!({ "path": "zoo", "base_model": "midjourney" }),
    )
    .await;
    assert!(r.is_error == Some(true) && text_of(&r).contains("sdxl"));
    let r = call(
        client,
        "audit_dataset",
        json!({ "path": "zoo", "project": "../evil" }),
    )
    .await;
    assert_eq!(r.is_error, Some(true));
    let r = call(client, "audit_dataset", json!({ "path": "zoo/good-1.png" })).await;
    assert!(text_of(&r).contains("not a folder"));
    for (option, value) in [
        ("max_aspect_ratio", json!(0.5)),
        ("min_short_side", json!(10)),
        ("caption_extension", json!("png")),
    ] {
        let r = call(
            client,
            "audit_dataset",
            json!({ "path": "zoo", option: value }),
        )
        .await;
        assert!(
            r.is_error == Some(true) && text_of(&r).contains(option),
            "{option}: {}",
            text_of(&r)
        );
    }
    let r = call(client, "job_status", json!({ "job_id": "nope" })).await;
    assert_eq!(r.is_error, Some(true));
    let missing = client
        .read_resource(ReadResourceRequestParams::new(
            "ategnatos://projects/nobody/gates/2",
        ))
        .await;
    assert!(missing.is_err());
    // Still alive.
    assert!(!client.list_all_tools().await.unwrap().is_empty());
}

#[tokio::test]
async fn in_process_2025_06_18() {
    let (_tmp, root) = workspace_with_fixtures();
    let shared = Shared::new(Workspace::open(&root).unwrap());
    let (server_io, client_io) = tokio::io::duplex(1 << 20);
    let server = tokio::spawn(async move {
        let running = AtegnatosServer::new(shared).serve(server_io).await.unwrap();
        let _ = running.waiting().await;
    });
    let rec = Recorder::new(ProtocolVersion::V_2025_06_18);
    let client = rec.clone().serve(client_io).await.unwrap();
    assert_eq!(
        client.peer_info().unwrap().protocol_version,
        ProtocolVersion::V_2025_06_18
    );
    full_scenario(&client, &rec, &root).await;
    client.cancel().await.unwrap();
    let _ = server.await;
}

#[tokio::test]
async fn in_process_newest_protocol() {
    use rmcp::service::{ClientLifecycleMode, ClientServiceExt};
    let (_tmp, root) = workspace_with_fixtures();
    let shared = Shared::new(Workspace::open(&root).unwrap());
    let (server_io, client_io) = tokio::io::duplex(1 << 20);
    tokio::spawn(async move {
        if let Ok(running) = AtegnatosServer::new(shared).serve(server_io).await {
            let _ = running.waiting().await;
        }
    });
    let rec = Recorder::new(ProtocolVersion::LATEST);
    let client = rec
        .clone()
        .serve_with_lifecycle(
            client_io,
            ClientLifecycleMode::Discover {
                preferred_versions: vec![ProtocolVersion::LATEST],
            },
        )
        .await
        .unwrap();
    assert_eq!(
        client.peer_info().unwrap().protocol_version,
        ProtocolVersion::LATEST
    );
    let r = call(
        &client,
        "audit_dataset",
        json!({ "path": "zoo", "project": "foxes", "trigger_word": common::TRIGGER }),
    )
    .await;
    assert_eq!(
        r.structured_content.unwrap()["result"]["summary"]["images"],
        18
    );
    let read = client
        .read_resource(ReadResourceRequestParams::new(
            "ategnatos://projects/foxes/gates/1",
        ))
        .await
        .unwrap();
    assert_eq!(read.contents.len(), 1);
    assert!(!client.list_all_prompts().await.unwrap().is_empty());
    refusals(&client).await;
}

#[tokio::test]
async fn over_stdio_of_the_built_binary() {
    use rmcp::transport::TokioChildProcess;
    let (_tmp, root) = workspace_with_fixtures();
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_ategnatos"));
    cmd.arg("--root")
        .arg(&root)
        .arg("serve")
        .stderr(std::process::Stdio::null());
    let transport = TokioChildProcess::new(cmd).unwrap();
    let rec = Recorder::new(ProtocolVersion::V_2025_06_18);
    let client = rec.clone().serve(transport).await.unwrap();
    full_scenario(&client, &rec, &root).await;
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn over_streamable_http() {
    use rmcp::transport::StreamableHttpClientTransport;
    let (_tmp, root) = workspace_with_fixtures();
    let shared = Shared::new(Workspace::open(&root).unwrap());
    let (tx, rx) = tokio::sync::oneshot::channel();
    tokio::spawn(ategnatos::mcp::serve_http(
        shared,
        "127.0.0.1:0".parse().unwrap(),
        Some(tx),
    ));
    let addr = rx.await.unwrap();
    // reqwest is built without a TLS provider of its own (see Cargo.toml); a
    // client, even for plain HTTP, needs one installed first, as our own
    // ComfyUI and provider clients do.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let transport = StreamableHttpClientTransport::from_uri(format!("http://{addr}/mcp"));
    let rec = Recorder::new(ProtocolVersion::V_2025_06_18);
    let client = rec.clone().serve(transport).await.unwrap();
    full_scenario(&client, &rec, &root).await;
    client.cancel().await.unwrap();
}
