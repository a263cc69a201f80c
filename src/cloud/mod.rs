//! Rented GPUs without surprise bills: quotes, spin-up, the instance ledger,
//! reconciliation with the provider, verified teardown, and the watchdog.
//!
//! Money moves in two steps (DESIGN decision 9). [`quote`] asks the
//! providers for offers that fit a plan and stores them with an expiry; a
//! spin-up ([`lifecycle::spin_up`]) must name the quote, one of its offers
//! and a price cap the artist agreed to. The [`ledger`] entry is written
//! before the provider is called, every instance carries our label, and
//! [`lifecycle::reconcile`] matches the ledger with the provider's own
//! listing, so no instance is ever forgotten. Teardown destroys (a stopped
//! instance still bills for its disk) and then lists until the instance is
//! gone. The [`watchdog`] destroys an instance that passes its time or money
//! cap, or idles after its run ended.
//!
//! Providers sit behind one trait ([`provider::Provider`]): [`vast`] and
//! [`runpod`], over HTTP through [`http`] (retries for transient failures
//! only). Keys come from the environment only and are an [`ApiKey`] that
//! prints as stars (DESIGN decision 10). Where SkyPilot is installed,
//! [`skypilot`] hands a run to it instead, torn down when idle.

pub mod http;
pub mod ledger;
pub mod lifecycle;
pub mod provider;
pub mod quote;
pub mod remote;
pub mod runpod;
pub mod secret;
pub mod skypilot;
pub mod ssh;
pub mod vast;
pub mod watchdog;

use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use provider::{Offer, Provider, ProviderKind, RemoteInstance, RemoteState};
pub use secret::ApiKey;

use crate::studio::Hint;
use crate::studio::StudioError;

/// Where one provider's API is, and the key for it.
#[derive(Debug, Clone)]
pub struct ProviderSettings {
    /// Scheme and host (no trailing slash), e.g. `https://console.vast.ai`.
    pub base_url: String,
    pub key: Option<ApiKey>,
}

/// How long to wait for what, and how often to ask.
#[derive(Debug, Clone)]
pub struct Timing {
    /// One HTTP request, from connect to the last byte.
    pub request_timeout: Duration,
    /// Retries of a transient failure (429, 5xx, connection refused, timeout).
    pub retries: u32,
    /// First wait between retries; doubles each time.
    pub retry_base_delay: Duration,
    /// Between two status questions while booting or verifying a teardown.
    pub poll_interval: Duration,
    /// From create until the instance runs and answers SSH.
    pub boot_deadline: Duration,
    /// From destroy until the provider no longer lists the instance.
    pub teardown_deadline: Duration,
    /// One SSH banner check.
    pub ssh_timeout: Duration,
    /// How long a quote's prices hold.
    pub quote_ttl: Duration,
    /// Between two watchdog rounds.
    pub watchdog_interval: Duration,
    /// How long an instance may sit after its run ended.
    pub idle_grace: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            request_timeout: Duration::from_secs(30),
            retries: 4,
            retry_base_delay: Duration::from_secs(1),
            poll_interval: Duration::from_secs(5),
            boot_deadline: Duration::from_secs(20 * 60),
            teardown_deadline: Duration::from_secs(5 * 60),
            ssh_timeout: Duration::from_secs(10),
            quote_ttl: Duration::from_secs(10 * 60),
            watchdog_interval: Duration::from_secs(60),
            idle_grace: Duration::from_secs(10 * 60),
        }
    }
}

/// Everything the cloud module needs to reach the providers.
#[derive(Debug, Clone)]
pub struct CloudConfig {
    pub vast: ProviderSettings,
    pub runpod: ProviderSettings,
    pub timing: Timing,
    /// How instances are reached over SSH.
    pub ssh: ssh::SshSettings,
}

/// The environment variable that holds each provider's key.
pub const VAST_KEY_VAR: &str = "VAST_API_KEY";
pub const RUNPOD_KEY_VAR: &str = "RUNPOD_API_KEY";

impl CloudConfig {
    /// Keys from `VAST_API_KEY` and `RUNPOD_API_KEY`; base URLs from
    /// `ATEGNATOS_VAST_URL` / `ATEGNATOS_RUNPOD_URL` when set (tests point
    /// them at mock providers); `ATEGNATOS_CLOUD_POLL_MS` shortens polling
    /// and retry waits (tests again).
    pub fn from_env() -> CloudConfig {
        let url = |var: &str, default: &str| {
            std::env::var(var)
                .ok()
                .filter(|u| !u.trim().is_empty())
                .unwrap_or_else(|| default.to_string())
                .trim_end_matches('/')
                .to_string()
        };
        let mut timing = Timing::default();
        if let Some(ms) = std::env::var("ATEGNATOS_CLOUD_POLL_MS")
            .ok()
            .and_then(|v| v.parse::<u64>().ok())
        {
            timing.poll_interval = Duration::from_millis(ms);
            timing.retry_base_delay = Duration::from_millis(ms);
        }
        CloudConfig {
            vast: ProviderSettings {
                base_url: url("ATEGNATOS_VAST_URL", vast::DEFAULT_BASE_URL),
                key: ApiKey::from_env(VAST_KEY_VAR),
            },
            runpod: ProviderSettings {
                base_url: url("ATEGNATOS_RUNPOD_URL", runpod::DEFAULT_BASE_URL),
                key: ApiKey::from_env(RUNPOD_KEY_VAR),
            },
            timing,
            ssh: ssh::SshSettings::from_env(),
        }
    }

    pub fn settings(&self, kind: ProviderKind) -> &ProviderSettings {
        match kind {
            ProviderKind::Vast => &self.vast,
            ProviderKind::Runpod => &self.runpod,
        }
    }

    /// Providers whose key is set.
    pub fn keyed(&self) -> Vec<ProviderKind> {
        ProviderKind::ALL
            .into_iter()
            .filter(|k| self.settings(*k).key.is_some())
            .collect()
    }

    /// A client for `kind`, or why not (its key is missing).
    pub fn provider(&self, kind: ProviderKind) -> Result<Box<dyn Provider>, CloudError> {
        let settings = self.settings(kind);
        let key = settings
            .key
            .clone()
            .ok_or(CloudError::MissingKey { provider: kind })?;
        let http = http::Http::new(kind, key, &self.timing)?;
        Ok(match kind {
            ProviderKind::Vast => Box::new(vast::Vast::new(http, &settings.base_url)),
            ProviderKind::Runpod => Box::new(runpod::Runpod::new(http, &settings.base_url)),
        })
    }
}

/// Everything that can go wrong with a rented GPU, in words.
#[derive(Debug, thiserror::Error)]
pub enum CloudError {
    #[error("no {provider} API key: `{}` is not set", provider.key_var())]
    MissingKey { provider: ProviderKind },
    #[error("{provider} refused the API key (HTTP {status})")]
    BadKey { provider: ProviderKind, status: u16 },
    #[error("{provider} did not answer {what} after {retries} retries: {cause}")]
    Unreachable {
        provider: ProviderKind,
        what: String,
        retries: u32,
        cause: String,
    },
    #[error("{provider}'s answer to {what} could not be read: {reason}")]
    Unparseable {
        provider: ProviderKind,
        what: String,
        reason: String,
    },
    #[error("{provider} refused {what} (HTTP {status}): {message}")]
    Rejected {
        provider: ProviderKind,
        what: String,
        status: u16,
        message: String,
    },
    #[error("offer `{offer_id}` on {provider} was taken since the quote: {message}")]
    OfferGone {
        provider: ProviderKind,
        offer_id: String,
        message: String,
    },
    #[error("{provider} did not say whether it created the instance: {cause}")]
    CreateOutcomeUnknown {
        provider: ProviderKind,
        cause: String,
    },
    #[error("there is no quote `{quote_id}`")]
    QuoteNotFound { quote_id: String },
    #[error("quote `{quote_id}` expired at {expired_at}: its prices may have changed")]
    QuoteExpired {
        quote_id: String,
        expired_at: String,
    },
    #[error("offer `{offer_id}` is not in quote `{quote_id}` (its offers: {offers})")]
    OfferNotInQuote {
        quote_id: String,
        offer_id: String,
        offers: String,
    },
    #[error(
        "offer `{offer_id}` costs ${price:.3}/h, above the cap of ${cap:.3}/h the artist agreed to"
    )]
    OverCap {
        offer_id: String,
        price: f64,
        cap: f64,
    },
    #[error("`{value}` is not a usable {what}")]
    BadArgument { what: &'static str, value: String },
    #[error("no offer fits: {reason}")]
    NoOffers { reason: String },
    #[error("there is no instance `{id}` in the ledger")]
    InstanceNotFound { id: String },
    #[error("{0}")]
    Failed(String),
    #[error(transparent)]
    Studio(#[from] StudioError),
}

impl Hint for CloudError {
    /// What the user can do about it, in one sentence.
    fn hint(&self) -> Option<String> {
        Some(match self {
            CloudError::MissingKey { provider } => format!(
                "create an API key in your {} account and set `{}` in the environment that starts Ategnatos; keys are never taken as arguments or stored",
                provider.name(),
                provider.key_var()
            ),
            CloudError::BadKey { provider, .. } => format!(
                "check `{}`: the key may be mistyped, revoked or lack the rights to rent",
                provider.key_var()
            ),
            CloudError::Unreachable { provider, .. } => format!(
                "{} may be busy or down; try again in a few minutes",
                provider.name()
            ),
            CloudError::Unparseable { provider, .. } => format!(
                "{}'s API may have changed; nothing was assumed. Check your instances in its web console",
                provider.name()
            ),
            CloudError::Rejected { .. } => {
                "read the provider's message; ask for a new quote with spinup_instance".into()
            }
            CloudError::OfferGone { .. } => {
                "someone rented it first: ask for a fresh quote (spinup_instance without quote_id) and choose again".into()
            }
            CloudError::CreateOutcomeUnknown { .. } => {
                "call list_instances: it finds the instance by its label if it was made".into()
            }
            CloudError::QuoteNotFound { .. } | CloudError::QuoteExpired { .. } => {
                "ask for a fresh quote with spinup_instance without quote_id".into()
            }
            CloudError::OfferNotInQuote { .. } => "use an offer_id the quote listed".into(),
            CloudError::OverCap { .. } => {
                "choose a cheaper offer, or ask the artist whether a higher cap is fine".into()
            }
            CloudError::BadArgument { .. } => "give a positive number".into(),
            CloudError::NoOffers { .. } => {
                "allow a higher price, less memory (a smaller plan), or another provider".into()
            }
            CloudError::InstanceNotFound { .. } => {
                "list_instances shows the instances the ledger and the providers know".into()
            }
            CloudError::Failed(_) => return None,
            CloudError::Studio(e) => return e.hint(),
        })
    }
}

/// Where an instance is in its life, as the ledger records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum InstanceState {
    /// Written before the provider was asked; whether it exists is not known yet.
    Pending,
    /// The provider made it; it is booting.
    Starting,
    /// It runs and answers SSH.
    Running,
    /// Destroy asked; waiting for the provider to stop listing it.
    TearingDown,
    /// Destroyed, and verified gone.
    Terminated,
    /// The provider refused or never made it: nothing bills.
    NotCreated,
}

impl InstanceState {
    /// True while it may cost money.
    pub fn may_bill(self) -> bool {
        !matches!(self, InstanceState::Terminated | InstanceState::NotCreated)
    }

    pub fn word(self) -> &'static str {
        match self {
            InstanceState::Pending => "PENDING",
            InstanceState::Starting => "STARTING",
            InstanceState::Running => "RUNNING",
            InstanceState::TearingDown => "TEARING_DOWN",
            InstanceState::Terminated => "TERMINATED",
            InstanceState::NotCreated => "NOT_CREATED",
        }
    }
}

/// A short random-looking suffix for ids: the clock, the process and a
/// counter, hashed (no random-number crate needed).
pub(crate) fn fresh_suffix() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let seed = format!("{nanos}-{}-{n}", std::process::id());
    blake3::hash(seed.as_bytes()).to_hex()[..6].to_string()
}

/// Dollars, as the artist reads them: `$0.38`.
pub fn dollars(x: f64) -> String {
    if x > 0.0 && x < 0.01 {
        format!("${x:.3}")
    } else {
        format!("${x:.2}")
    }
}
