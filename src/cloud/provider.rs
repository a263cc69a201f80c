//! The one trait every GPU provider implements, and the plain types it
//! speaks: what a run needs, an offer, an instance as the provider sees it.
//!
//! A provider answers five questions: which offers fit ([`Provider::search`]),
//! make one ([`Provider::create`]), how is this one ([`Provider::instance`]),
//! which instances does the account hold ([`Provider::list`]), destroy this
//! one ([`Provider::destroy`]). Each implementation maps its own API onto
//! these; everything above them (quotes, ledger, teardown, watchdog) is
//! written once.

use std::future::Future;
use std::pin::Pin;

use serde::{Deserialize, Serialize};

use super::CloudError;

/// A boxed future, so the trait can be used as `dyn Provider`.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The providers we rent from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ProviderKind {
    Vast,
    Runpod,
}

impl ProviderKind {
    pub const ALL: [ProviderKind; 2] = [ProviderKind::Vast, ProviderKind::Runpod];

    /// As the artist knows it.
    pub fn name(self) -> &'static str {
        match self {
            ProviderKind::Vast => "Vast.ai",
            ProviderKind::Runpod => "RunPod",
        }
    }

    /// The id tools and the command line take.
    pub fn id(self) -> &'static str {
        match self {
            ProviderKind::Vast => "vast",
            ProviderKind::Runpod => "runpod",
        }
    }

    pub fn key_var(self) -> &'static str {
        match self {
            ProviderKind::Vast => super::VAST_KEY_VAR,
            ProviderKind::Runpod => super::RUNPOD_KEY_VAR,
        }
    }

    /// Where the artist can see and destroy instances by hand.
    pub fn console_url(self) -> &'static str {
        match self {
            ProviderKind::Vast => "https://cloud.vast.ai/instances/",
            ProviderKind::Runpod => "https://www.runpod.io/console/pods",
        }
    }

    /// `vast`, `Vast.ai`, `runpod`, `RunPod` (any case).
    pub fn parse(text: &str) -> Option<ProviderKind> {
        match text.trim().to_ascii_lowercase().as_str() {
            "vast" | "vast.ai" | "vastai" => Some(ProviderKind::Vast),
            "runpod" | "run-pod" => Some(ProviderKind::Runpod),
            _ => None,
        }
    }
}

impl std::fmt::Display for ProviderKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// What a run needs from a machine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Need {
    /// Smallest GPU memory, GB (the plan's estimate with its 20 % margin).
    pub min_vram_gb: f64,
    /// Disk, GB (base model, dataset, caches, checkpoints, the trainer).
    pub disk_gb: u32,
    /// Only GPUs whose name contains this (e.g. `4090`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu: Option<String>,
}

/// One machine a provider offers, priced all-in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Offer {
    /// What to pass as `offer_id` to rent it.
    pub offer_id: String,
    pub provider: ProviderKind,
    pub gpu: String,
    pub num_gpus: u32,
    /// GPU memory, GB.
    pub vram_gb: f64,
    /// All-in dollars per hour: GPU(s) and the requested disk.
    pub price_per_hour: f64,
    /// Disk included in the price, GB.
    pub disk_gb: u32,
    /// Host reliability, 0–1 (Vast.ai), when the provider gives one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reliability: Option<f64>,
    /// Where the machine is (country, or RunPod's cloud).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// How easy it is to get (RunPod's stock status).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub availability: Option<String>,
    /// Hours this run needs on this GPU (training plus setup).
    pub estimated_hours: f64,
    /// `price_per_hour × estimated_hours`.
    pub estimated_cost: f64,
}

/// The instance as the provider describes it now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RemoteState {
    /// Scheduled, pulling its image or starting.
    Booting,
    Running,
    /// Stopped or exited: no GPU bill, but its disk still bills.
    Stopped,
    /// Terminated: the provider still shows it, but it no longer bills.
    Gone,
    /// A state we do not know (the provider's word is kept).
    Other,
}

/// Where to reach an instance over SSH.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct SshEndpoint {
    pub host: String,
    pub port: u16,
    /// The user to log in as.
    pub user: String,
}

/// One instance in the provider's listing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct RemoteInstance {
    pub provider_id: String,
    /// The label (Vast.ai) or name (RunPod) it was created with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    pub state: RemoteState,
    /// The provider's own word for the state (`loading`, `EXITED`, ...).
    pub status_text: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price_per_hour: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssh: Option<SshEndpoint>,
}

/// What to create.
#[derive(Debug, Clone)]
pub struct CreateSpec {
    /// Our label: how the instance is found again if its id is lost.
    pub label: String,
    /// Docker image to boot.
    pub image: String,
    pub disk_gb: u32,
}

/// What a destroy found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Destroyed {
    /// The provider accepted the destroy.
    Now,
    /// The provider no longer knew the instance.
    AlreadyGone,
}

/// A GPU provider.
pub trait Provider: Send + Sync {
    fn kind(&self) -> ProviderKind;

    /// Offers that fit `need`, priced with its disk, cheapest first. The
    /// estimate fields are left at zero; the quote fills them.
    fn search<'a>(&'a self, need: &'a Need) -> BoxFuture<'a, Result<Vec<Offer>, CloudError>>;

    /// Rents `offer_id`. The id of the new instance, or: `OfferGone` (taken,
    /// nothing made), `Rejected`/`BadKey` (nothing made), or
    /// `CreateOutcomeUnknown` (the answer was lost: it may exist).
    fn create<'a>(
        &'a self,
        offer_id: &'a str,
        spec: &'a CreateSpec,
    ) -> BoxFuture<'a, Result<String, CloudError>>;

    /// One instance; `None` when the provider no longer has it.
    fn instance<'a>(
        &'a self,
        provider_id: &'a str,
    ) -> BoxFuture<'a, Result<Option<RemoteInstance>, CloudError>>;

    /// Every instance of the account. An answer that cannot be read is an
    /// error, never an empty list.
    fn list(&self) -> BoxFuture<'_, Result<Vec<RemoteInstance>, CloudError>>;

    /// Destroys (never stops) an instance.
    fn destroy<'a>(&'a self, provider_id: &'a str) -> BoxFuture<'a, Result<Destroyed, CloudError>>;
}
