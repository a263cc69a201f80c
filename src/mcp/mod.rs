//! The MCP protocol layer, and nothing else: tool routing, resources,
//! prompts, progress and jobs, each tool a thin call into a domain module.
//!
//! [`AtegnatosServer`] is the handler; one is built per connection (per
//! session over HTTP) around a shared [`Shared`] that holds the workspace,
//! the job registry and the resource subscribers. rmcp types stay in here.
#![allow(deprecated)] // logging and legacy resources/subscribe: what 2025-era clients use

pub mod jobs;
mod prompts;
mod reply;
mod resources;
mod schema;
pub mod tools;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use rmcp::handler::server::router::{prompt::PromptRouter, tool::ToolRouter};
use rmcp::model::*;
use rmcp::service::{RequestContext, SubscriptionContext};
use rmcp::{ErrorData as McpError, Peer, RoleServer, ServerHandler, ServiceExt};
use tokio::sync::{Mutex, broadcast};

use crate::studio::Workspace;
use jobs::JobRegistry;

/// State shared by every connection of one server process.
pub struct Shared {
    pub workspace: Workspace,
    pub jobs: JobRegistry,
    /// How often progress is sent while a tool waits on a job.
    pub progress_interval: Duration,
    subscribers: Mutex<HashMap<String, Vec<Peer<RoleServer>>>>,
    /// Every connected client, told when the resource list changes.
    peers: Mutex<Vec<Peer<RoleServer>>>,
    /// Resources announced so far; a new one changes the list.
    announced: Mutex<std::collections::HashSet<String>>,
    updates: broadcast::Sender<String>,
    /// Provider URLs and keys (from the environment) for the cloud tools.
    pub cloud: crate::cloud::CloudConfig,
    /// Whether the task that publishes training runs' changes is running.
    runs_watched: std::sync::atomic::AtomicBool,
    /// This program, for the processes the server starts (a training run's
    /// supervisor); unset, the running executable. Tests that serve from
    /// their own binary set it to `ategnatos`.
    pub exe: std::sync::OnceLock<std::path::PathBuf>,
}

impl Shared {
    pub fn new(workspace: Workspace) -> Arc<Self> {
        Self::with_cloud(workspace, crate::cloud::CloudConfig::from_env())
    }

    /// As [`Shared::new`], with the providers given (tests point them at mocks).
    pub fn with_cloud(workspace: Workspace, cloud: crate::cloud::CloudConfig) -> Arc<Self> {
        Arc::new(Shared {
            workspace,
            jobs: JobRegistry::default(),
            progress_interval: Duration::from_secs(2),
            subscribers: Mutex::new(HashMap::new()),
            peers: Mutex::new(Vec::new()),
            announced: Mutex::new(std::collections::HashSet::new()),
            updates: broadcast::channel(256).0,
            cloud,
            runs_watched: std::sync::atomic::AtomicBool::new(false),
            exe: std::sync::OnceLock::new(),
        })
    }

    /// Starts (once) a task that publishes `ategnatos://runs/...` whenever a
    /// run's record changes: runs are written by their own supervisors, not
    /// by this server, so their changes are found by looking.
    pub fn watch_runs(self: &Arc<Self>) {
        use std::sync::atomic::Ordering;
        if self.runs_watched.swap(true, Ordering::SeqCst) {
            return;
        }
        let shared = Arc::clone(self);
        tokio::spawn(async move {
            let mut seen: HashMap<String, std::time::SystemTime> = HashMap::new();
            let mut first = true;
            loop {
                let ws = shared.workspace.clone();
                let stamps = tokio::task::spawn_blocking(move || resources::run_stamps(&ws))
                    .await
                    .unwrap_or_default();
                for (uri, stamp) in stamps {
                    let changed = seen.insert(uri.clone(), stamp) != Some(stamp);
                    if changed && !first {
                        shared.publish(&uri).await;
                    }
                }
                first = false;
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        });
    }

    /// Tells every subscriber of `uri` that it changed, and every client that
    /// the resource list changed when `uri` is new.
    pub async fn publish(&self, uri: &str) {
        if self.announced.lock().await.insert(uri.to_string()) {
            let mut peers = self.peers.lock().await;
            peers.retain(|p| !p.is_transport_closed());
            for peer in peers.iter() {
                let _ = peer.notify_resource_list_changed().await;
            }
        }
        let peers = {
            let mut subs = self.subscribers.lock().await;
            let list = subs.entry(uri.to_string()).or_default();
            list.retain(|p| !p.is_transport_closed());
            list.clone()
        };
        for peer in peers {
            let _ = peer
                .notify_resource_updated(ResourceUpdatedNotificationParam::new(uri.to_string()))
                .await;
        }
        let _ = self.updates.send(uri.to_string());
    }
}

/// The MCP handler.
#[derive(Clone)]
pub struct AtegnatosServer {
    shared: Arc<Shared>,
    log_level: Arc<AtomicU8>,
    tool_router: ToolRouter<Self>,
    prompt_router: PromptRouter<Self>,
}

const INSTRUCTIONS: &str = "Ategnatos takes an artist from a folder of pictures to a trained LoRA behind four gates; never skip one. \
The chain: start_project; audit_dataset (fix what it reports); find_duplicates, then quarantine_files for the copies the artist agrees to set aside; \
caption_preview, the artist approves sample captions (approve_captions), write_captions for the rest; run_gate 1 (dataset); \
plan_training (explain every parameter), generate_config, run_gate 2 (plan); check_environment (show the artist what to fix), run_gate 3 (environment); \
dry_run, a few real steps of the exact plan, is run_gate 4 (dry run) with its log; then launch_training, followed with training_status; finally eval_grid shows the LoRA at several weights through ComfyUI (comfyui_submit runs any workflow). \
No local GPU: renting one costs money. spinup_instance without a quote id only quotes; show the artist the offer and the run's cost, and rent (call it again with the quote, the offer and a price cap) only after their explicit yes to that price; teardown_instance when done, list_instances shows what bills. \
project_status says where a project stands and what is next. estimate_vram answers 'will it fit'; curate_dataset and structure_dataset help shape a set. \
Guides in plain words are resources, ategnatos://guides/{topic} (captions, parameters, vram, failure-modes, feedback-map and more): read the one that fits before explaining; the prompts of each phase bring in a project's real state. \
Every path, in arguments and results, is relative to the workspace root. \
Long tools return a job id when they need more than wait_seconds: follow it with job_status. \
Explain every result to the artist in plain words; every refusal includes what to do.";

impl AtegnatosServer {
    pub fn new(shared: Arc<Shared>) -> Self {
        AtegnatosServer {
            shared,
            log_level: Arc::new(AtomicU8::new(level_rank(LoggingLevel::Info))),
            tool_router: tools::router(),
            prompt_router: prompts::router(),
        }
    }

    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// Sends a log notification if the client's level lets it through.
    pub(crate) async fn log(&self, peer: &Peer<RoleServer>, level: LoggingLevel, message: String) {
        if level_rank(level) >= self.log_level.load(Ordering::Relaxed) {
            let _ = peer
                .notify_logging_message(
                    LoggingMessageNotificationParam::new(level, serde_json::Value::String(message))
                        .with_logger("ategnatos"),
                )
                .await;
        }
    }
}

fn level_rank(l: LoggingLevel) -> u8 {
    match l {
        LoggingLevel::Debug => 0,
        LoggingLevel::Info => 1,
        LoggingLevel::Notice => 2,
        LoggingLevel::Warning => 3,
        LoggingLevel::Error => 4,
        LoggingLevel::Critical => 5,
        LoggingLevel::Alert => 6,
        LoggingLevel::Emergency => 7,
    }
}

#[rmcp::tool_handler(router = self.tool_router)]
#[rmcp::prompt_handler(router = self.prompt_router)]
impl ServerHandler for AtegnatosServer {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_prompts()
                .enable_resources()
                .enable_resources_subscribe()
                .enable_resources_list_changed()
                .enable_logging()
                .build(),
        )
        .with_server_info(Implementation::new("ategnatos", env!("CARGO_PKG_VERSION")))
        .with_instructions(
            match crate::cloud::watchdog::billing_warning(&self.shared.workspace) {
                Some(warning) => format!("{warning}\n\n{INSTRUCTIONS}"),
                None => INSTRUCTIONS.to_string(),
            },
        )
    }

    async fn on_initialized(&self, ctx: rmcp::service::NotificationContext<RoleServer>) {
        self.shared.peers.lock().await.push(ctx.peer);
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        _ctx: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, McpError> {
        let shared = Arc::clone(&self.shared);
        let listed = tokio::task::spawn_blocking(move || resources::list(&shared))
            .await
            .map_err(|e| {
                McpError::internal_error(format!("listing resources crashed: {e}"), None)
            })?;
        Ok(ListResourcesResult::with_all_items(listed))
    }

    async fn list_resource_templates(
        &self,
        _request: Option<PaginatedRequestParams>,
        _ctx: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, McpError> {
        Ok(ListResourceTemplatesResult::with_all_items(
            resources::templates(),
        ))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        _ctx: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, McpError> {
        let shared = Arc::clone(&self.shared);
        tokio::task::spawn_blocking(move || resources::read(&shared, &request.uri))
            .await
            .map_err(|e| {
                McpError::internal_error(format!("reading the resource crashed: {e}"), None)
            })?
            .map(Into::into)
    }

    async fn subscribe(
        &self,
        request: SubscribeRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        if !resources::is_known_scheme(&request.uri) {
            return Err(McpError::invalid_params(
                format!("`{}` is not an Ategnatos resource URI", request.uri),
                None,
            ));
        }
        if request.uri.starts_with("ategnatos://runs/") {
            self.shared.watch_runs();
        }
        self.shared
            .subscribers
            .lock()
            .await
            .entry(request.uri)
            .or_default()
            .push(ctx.peer);
        Ok(())
    }

    async fn unsubscribe(
        &self,
        request: UnsubscribeRequestParams,
        _ctx: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        self.shared.subscribers.lock().await.remove(&request.uri);
        Ok(())
    }

    fn accepted_subscription_filter(
        &self,
        requested: &SubscriptionFilter,
    ) -> Option<SubscriptionFilter> {
        Some(requested.supported_by(&self.get_info().capabilities))
    }

    async fn listen(&self, context: SubscriptionContext) -> Result<(), McpError> {
        let mut rx = self.shared.updates.subscribe();
        loop {
            tokio::select! {
                _ = context.cancelled() => return Ok(()),
                msg = rx.recv() => match msg {
                    Ok(uri) => { let _ = context.sink().notify_resource_updated(uri).await; }
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(_) => return Ok(()),
                }
            }
        }
    }

    async fn set_level(
        &self,
        request: SetLevelRequestParams,
        _ctx: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        self.log_level
            .store(level_rank(request.level), Ordering::Relaxed);
        Ok(())
    }
}

/// Serves MCP on stdin/stdout until the client goes away.
pub async fn serve_stdio(
    shared: Arc<Shared>,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    crate::cloud::watchdog::start(&shared.workspace, &shared.cloud);
    let service = AtegnatosServer::new(shared)
        .serve(rmcp::transport::stdio())
        .await?;
    let reason = service.waiting().await?;
    tracing::info!("stdio session ended: {reason:?}");
    Ok(())
}

/// Serves streamable HTTP at `http://ADDR/mcp` until Ctrl-C.
pub async fn serve_http(
    shared: Arc<Shared>,
    addr: SocketAddr,
    ready: Option<tokio::sync::oneshot::Sender<SocketAddr>>,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    use rmcp::transport::streamable_http_server::{
        StreamableHttpServerConfig, StreamableHttpService, session::local::LocalSessionManager,
    };
    crate::cloud::watchdog::start(&shared.workspace, &shared.cloud);
    let ct = tokio_util::sync::CancellationToken::new();
    let service = StreamableHttpService::new(
        move || Ok(AtegnatosServer::new(Arc::clone(&shared))),
        LocalSessionManager::default().into(),
        StreamableHttpServerConfig::default()
            .with_sse_keep_alive(Some(Duration::from_secs(15)))
            .with_cancellation_token(ct.child_token()),
    );
    let app = axum::Router::new().nest_service("/mcp", service);
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    tracing::info!("serving MCP over HTTP at http://{bound}/mcp");
    if let Some(tx) = ready {
        let _ = tx.send(bound);
    }
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            let _ = tokio::signal::ctrl_c().await;
            ct.cancel();
        })
        .await?;
    Ok(())
}
