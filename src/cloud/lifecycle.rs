//! An instance's life: spin-up from a quote, verified teardown, and
//! reconciliation of the ledger with what the provider lists.
//!
//! Spin-up: the quote, offer and cap are checked first ([`prepare`]); then
//! the ledger entry is written (`PENDING`), then the provider is asked,
//! then its status is polled until the instance runs and its SSH server
//! answers ([`super::ssh::banner`]). A price above the cap, a boot past its
//! deadline, or a cancelled job destroys the instance. A create whose
//! answer was lost is resolved by the label: found, it is destroyed (the
//! spin-up cannot vouch for it); not found, the entry stays `PENDING` and
//! the next reconciliation settles it.
//!
//! Teardown destroys (never stops), then lists until the provider no longer
//! has it, and only then records `TERMINATED` with the total cost.

use std::collections::BTreeSet;
use std::sync::Mutex;

use serde::Serialize;

use super::ledger::{self, InstanceRecord};
use super::provider::{
    CreateSpec, Destroyed, Offer, Provider, ProviderKind, RemoteInstance, RemoteState,
};
use super::quote::{self, Quote};
use super::{CloudConfig, CloudError, InstanceState, dollars, runpod, vast};
use crate::studio::Hint;
use crate::studio::{Progress, Workspace, clock};

/// Instances a spin-up in this process is still working on: reconciliation
/// leaves them to it.
static IN_FLIGHT: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());

/// Marks an instance as being spun up until dropped.
struct InFlight(String);

impl InFlight {
    fn enter(id: &str) -> InFlight {
        IN_FLIGHT
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id.to_string());
        InFlight(id.to_string())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        IN_FLIGHT
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.0);
    }
}

/// True while a spin-up in this process works on `id`.
pub fn in_flight(id: &str) -> bool {
    IN_FLIGHT
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .contains(id)
}

/// The hint for a failed spin-up: for an offer taken since the quote, the
/// quote's next offer within the cap (while the quote holds); else the
/// error's own.
pub fn failed_spin_up_hint(prepared: &Prepared, e: &CloudError) -> Option<String> {
    let CloudError::OfferGone { offer_id, .. } = e else {
        return e.hint();
    };
    let others = other_offers_within(&prepared.quote, prepared.max_price_per_hour, offer_id);
    match others.first() {
        Some(o) if clock::unix_now() <= prepared.quote.expires_unix => Some(format!(
            "quote `{}` also has `{}` ({} on {}, {}/h, within the cap): ask the artist, then call again with that offer_id; or ask for a fresh quote",
            prepared.quote.quote_id,
            o.offer_id,
            o.gpu,
            o.provider,
            dollars(o.price_per_hour)
        )),
        _ => e.hint(),
    }
}

/// The second step of a spin-up: which quoted offer, and the caps.
#[derive(Debug, Clone, Default)]
pub struct SpinUpRequest {
    pub quote_id: String,
    pub offer_id: String,
    /// The most the artist agreed to pay per hour.
    pub max_price_per_hour: f64,
    /// Time cap, hours (default: twice the run's estimate, at least 1 h).
    pub max_hours: Option<f64>,
    /// Money cap, dollars (default: the price cap × the time cap).
    pub max_total_usd: Option<f64>,
    /// Docker image (default: a PyTorch image for the provider).
    pub image: Option<String>,
}

/// A spin-up that passed its checks, ready to spend money.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub quote: Quote,
    pub offer: Offer,
    pub max_price_per_hour: f64,
    pub max_hours: f64,
    pub max_total_usd: f64,
    pub image: String,
}

/// An instance with what it has cost so far.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct InstanceView {
    #[serde(flatten)]
    pub record: InstanceRecord,
    pub hours_so_far: f64,
    pub cost_so_far_usd: f64,
}

impl InstanceView {
    pub fn of(record: InstanceRecord) -> InstanceView {
        let now = clock::unix_now();
        InstanceView {
            hours_so_far: (record.hours(now) * 100.0).round() / 100.0,
            cost_so_far_usd: (record.cost(now) * 1000.0).round() / 1000.0,
            record,
        }
    }
}

/// A finished spin-up.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct SpinUp {
    pub instance: InstanceView,
    /// What the SSH server said first.
    pub ssh_banner: String,
}

impl SpinUp {
    pub fn plain_summary(&self) -> String {
        let r = &self.instance.record;
        let ssh = r
            .ssh
            .as_ref()
            .map(|s| format!("ssh -p {} {}@{}", s.port, s.user, s.host))
            .unwrap_or_default();
        format!(
            "{} is running ({}, {}/h) and answers SSH (`{ssh}`). It bills until teardown_instance destroys it; the watchdog destroys it after {:.1} h or about {}, whichever comes first.",
            r.name(),
            r.gpu,
            r.price_per_hour.map(dollars).unwrap_or_else(|| "?".into()),
            r.max_hours.unwrap_or(0.0),
            dollars(r.max_total_usd.unwrap_or(0.0)),
        )
    }
}

fn round_up_quarter(h: f64) -> f64 {
    (h * 4.0).ceil() / 4.0
}

/// Checks a spin-up before anything is spent: the key, the quote (exists,
/// not expired), the offer (in the quote, within the cap), the caps.
pub fn prepare(
    ws: &Workspace,
    cfg: &CloudConfig,
    req: &SpinUpRequest,
) -> Result<Prepared, CloudError> {
    let cap = req.max_price_per_hour;
    if !(cap.is_finite() && cap > 0.0) {
        return Err(CloudError::BadArgument {
            what: "max_price_per_hour",
            value: cap.to_string(),
        });
    }
    let quote = quote::load(ws, &req.quote_id)?.ok_or_else(|| CloudError::QuoteNotFound {
        quote_id: req.quote_id.clone(),
    })?;
    if clock::unix_now() > quote.expires_unix {
        return Err(CloudError::QuoteExpired {
            quote_id: quote.quote_id.clone(),
            expired_at: quote.expires_at.clone(),
        });
    }
    let offer = quote
        .offer(&req.offer_id)
        .cloned()
        .ok_or_else(|| CloudError::OfferNotInQuote {
            quote_id: quote.quote_id.clone(),
            offer_id: req.offer_id.clone(),
            offers: quote
                .offers
                .iter()
                .map(|o| format!("`{}`", o.offer_id))
                .collect::<Vec<_>>()
                .join(", "),
        })?;
    if offer.price_per_hour > cap + 1e-9 {
        return Err(CloudError::OverCap {
            offer_id: offer.offer_id.clone(),
            price: offer.price_per_hour,
            cap,
        });
    }
    if cfg.settings(offer.provider).key.is_none() {
        return Err(CloudError::MissingKey {
            provider: offer.provider,
        });
    }
    let max_hours = match req.max_hours {
        Some(h) if !(h.is_finite() && h > 0.0) => {
            return Err(CloudError::BadArgument {
                what: "max_hours",
                value: h.to_string(),
            });
        }
        Some(h) => h,
        None => round_up_quarter((offer.estimated_hours * 2.0).max(1.0)),
    };
    let max_total_usd = match req.max_total_usd {
        Some(m) if !(m.is_finite() && m > 0.0) => {
            return Err(CloudError::BadArgument {
                what: "max_total_usd",
                value: m.to_string(),
            });
        }
        Some(m) => m,
        None => (cap * max_hours * 100.0).ceil() / 100.0,
    };
    // Caps below the run's own estimate would destroy it before it ends.
    if max_hours < offer.estimated_hours {
        return Err(CloudError::Failed(format!(
            "the time cap of {max_hours} h is shorter than the {:.2} h this run needs on offer `{}`: the watchdog would destroy it before the LoRA is saved; raise max_hours",
            offer.estimated_hours, offer.offer_id
        )));
    }
    if max_total_usd < offer.estimated_cost {
        return Err(CloudError::Failed(format!(
            "the money cap of {} is below this run's estimated {} on offer `{}`: the watchdog would destroy it before the LoRA is saved; raise max_total_usd",
            dollars(max_total_usd),
            dollars(offer.estimated_cost),
            offer.offer_id
        )));
    }
    let image = req
        .image
        .as_ref()
        .map(|i| i.trim().to_string())
        .filter(|i| !i.is_empty())
        .unwrap_or_else(|| {
            match offer.provider {
                ProviderKind::Vast => vast::DEFAULT_IMAGE,
                ProviderKind::Runpod => runpod::DEFAULT_IMAGE,
            }
            .to_string()
        });
    Ok(Prepared {
        quote,
        offer,
        max_price_per_hour: cap,
        max_hours,
        max_total_usd,
        image,
    })
}

/// Rents the prepared offer and waits until it runs and answers SSH.
pub async fn spin_up(
    ws: &Workspace,
    cfg: &CloudConfig,
    prepared: &Prepared,
    progress: &dyn Progress,
) -> Result<SpinUp, CloudError> {
    let offer = &prepared.offer;
    let provider = cfg.provider(offer.provider)?;
    let (instance_id, label) = ledger::new_identity(ws);
    let now = clock::unix_now();
    let mut record = InstanceRecord {
        instance_id: instance_id.clone(),
        provider: offer.provider,
        label: label.clone(),
        provider_id: None,
        state: InstanceState::Pending,
        gpu: offer.gpu.clone(),
        project: prepared.quote.project.clone(),
        quote_id: Some(prepared.quote.quote_id.clone()),
        offer_id: Some(offer.offer_id.clone()),
        price_per_hour: Some(offer.price_per_hour),
        max_price_per_hour: Some(prepared.max_price_per_hour),
        max_hours: Some(prepared.max_hours),
        max_total_usd: Some(prepared.max_total_usd),
        created_at: clock::rfc3339(now),
        created_unix: now,
        running_since: None,
        run_ended_unix: None,
        terminated_at: None,
        terminated_unix: None,
        total_cost_usd: None,
        ssh: None,
        teardown_reason: None,
        flags: Vec::new(),
        orphan: false,
        events: Vec::new(),
    };
    record.note(format!(
        "written before asking {} to rent offer {} (cap {}/h)",
        offer.provider,
        offer.offer_id,
        dollars(prepared.max_price_per_hour)
    ));
    let _flight = InFlight::enter(&instance_id);
    // The entry exists before the provider is asked: nothing goes unrecorded.
    ledger::save(ws, &record)?;
    progress.report(
        0,
        Some(3),
        &format!("asking {} to rent {}", offer.provider, offer.gpu),
    );
    let spec = CreateSpec {
        label: label.clone(),
        image: prepared.image.clone(),
        disk_gb: offer.disk_gb,
    };
    let provider_id = match provider.create(&offer.offer_id, &spec).await {
        Ok(id) => id,
        // The answer was lost: it may exist.
        Err(e @ CloudError::CreateOutcomeUnknown { .. }) => {
            return Err(
                resolve_lost_create(ws, cfg, provider.as_ref(), &instance_id, &label, e).await,
            );
        }
        Err(e) => {
            // Refused, taken, or never reached (connection refused, 429): nothing was made.
            ledger::update(ws, &instance_id, |r| {
                r.state = InstanceState::NotCreated;
                r.note(format!("not created: {e}"));
            })?;
            return Err(e);
        }
    };
    ledger::update(ws, &instance_id, |r| {
        r.provider_id = Some(provider_id.clone());
        r.state = InstanceState::Starting;
        r.note(format!("created: {} id {provider_id}", r.provider));
    })?;
    match boot(
        ws,
        cfg,
        provider.as_ref(),
        prepared,
        &instance_id,
        &provider_id,
        progress,
    )
    .await
    {
        Ok((record, banner)) => Ok(SpinUp {
            instance: InstanceView::of(record),
            ssh_banner: banner,
        }),
        Err(Abandon { reason, error }) => {
            let torn =
                destroy_and_verify(ws, cfg, provider.as_ref(), &instance_id, &reason, progress)
                    .await;
            Err(match torn {
                Ok(t) => CloudError::Failed(format!(
                    "{error}; so it was destroyed and verified gone (about {} spent)",
                    dollars(t.instance.record.total_cost_usd.unwrap_or(0.0))
                )),
                Err(te) => CloudError::Failed(format!(
                    "{error}; destroying it failed too: {te}. It may still bill: run teardown_instance `{instance_id}`, or destroy it at {}",
                    provider.kind().console_url()
                )),
            })
        }
    }
}

/// Why a boot was given up, and the error to report.
struct Abandon {
    reason: String,
    error: String,
}

/// Polls until the instance runs and its SSH server answers.
async fn boot(
    ws: &Workspace,
    cfg: &CloudConfig,
    provider: &dyn Provider,
    prepared: &Prepared,
    instance_id: &str,
    provider_id: &str,
    progress: &dyn Progress,
) -> Result<(InstanceRecord, String), Abandon> {
    let t = &cfg.timing;
    let deadline = tokio::time::Instant::now() + t.boot_deadline;
    let cap = prepared.max_price_per_hour;
    let mut price_seen: Option<f64> = None;
    let mut last_problem = String::new();
    loop {
        if progress.is_cancelled() {
            return Err(Abandon {
                reason: "its spin-up was cancelled".into(),
                error: "the spin-up was cancelled before the instance was ready".into(),
            });
        }
        match provider.instance(provider_id).await {
            Ok(Some(inst)) => {
                if let Some(p) = inst.price_per_hour
                    && price_seen != Some(p)
                {
                    price_seen = Some(p);
                    if p > cap + 1e-9 {
                        return Err(Abandon {
                            reason: format!("it billed {}/h, above the cap", dollars(p)),
                            error: format!(
                                "{} bills this instance at {}/h, above the cap of {}/h the artist agreed to",
                                provider.kind(),
                                dollars(p),
                                dollars(cap)
                            ),
                        });
                    }
                    let _ = ledger::update(ws, instance_id, |r| r.price_per_hour = Some(p));
                }
                match (&inst.state, &inst.ssh) {
                    (RemoteState::Running, Some(ssh)) => {
                        progress.report(2, Some(3), "running; waiting for its SSH server");
                        match super::ssh::banner(ssh, t.ssh_timeout).await {
                            Ok(banner) => {
                                progress.report(3, Some(3), "running and answering SSH");
                                let ssh = ssh.clone();
                                let saved = ledger::update(ws, instance_id, |r| {
                                    r.state = InstanceState::Running;
                                    r.running_since = Some(clock::now_rfc3339());
                                    r.ssh = Some(ssh.clone());
                                    r.note(format!(
                                        "running; SSH at {}:{} answers",
                                        ssh.host, ssh.port
                                    ));
                                });
                                return saved.map(|r| (r, banner)).map_err(|e| Abandon {
                                    reason: "its ledger entry could not be written".into(),
                                    error: format!("the ledger could not record it: {e}"),
                                });
                            }
                            Err(why) => last_problem = why,
                        }
                    }
                    (RemoteState::Running | RemoteState::Booting, _) => {
                        progress.report(
                            1,
                            Some(3),
                            &format!("booting ({} says `{}`)", provider.kind(), inst.status_text),
                        );
                    }
                    (RemoteState::Gone, _) => {
                        return Err(Abandon {
                            reason: "the provider ended it while it booted".into(),
                            error: format!(
                                "{} ended the instance while it booted",
                                provider.kind()
                            ),
                        });
                    }
                    (RemoteState::Stopped | RemoteState::Other, _) => {
                        return Err(Abandon {
                            reason: format!("it went `{}` while booting", inst.status_text),
                            error: format!(
                                "the instance went `{}` instead of starting",
                                inst.status_text
                            ),
                        });
                    }
                }
            }
            Ok(None) => {
                return Err(Abandon {
                    reason: "the provider no longer had it while it booted".into(),
                    error: format!(
                        "{} no longer lists the instance it just made",
                        provider.kind()
                    ),
                });
            }
            // Retried already; keep polling until the deadline.
            Err(e) => last_problem = e.to_string(),
        }
        if tokio::time::Instant::now() >= deadline {
            let minutes = t.boot_deadline.as_secs_f64() / 60.0;
            return Err(Abandon {
                reason: format!("it did not come up within {minutes:.0} min"),
                error: format!(
                    "the instance did not run and answer SSH within {minutes:.0} minutes{}",
                    if last_problem.is_empty() {
                        String::new()
                    } else {
                        format!(" (last: {last_problem})")
                    }
                ),
            });
        }
        tokio::time::sleep(t.poll_interval).await;
    }
}

/// A create whose answer was lost: find it by label and destroy it, or
/// leave the entry `PENDING` for reconciliation. Returns the error to report.
async fn resolve_lost_create(
    ws: &Workspace,
    cfg: &CloudConfig,
    provider: &dyn Provider,
    instance_id: &str,
    label: &str,
    cause: CloudError,
) -> CloudError {
    let _ = ledger::update(ws, instance_id, |r| {
        r.note(format!("the create's answer was lost: {cause}"));
    });
    let found = match provider.list().await {
        Ok(list) => list.into_iter().find(|i| i.label.as_deref() == Some(label)),
        Err(e) => {
            return CloudError::Failed(format!(
                "{cause}. Looking for it by its label failed too ({e}); the ledger keeps it as PENDING `{instance_id}`, and list_instances settles it"
            ));
        }
    };
    let Some(inst) = found else {
        let _ = ledger::update(ws, instance_id, |r| {
            r.note("no instance carries its label yet; left PENDING for reconciliation");
        });
        return cause;
    };
    let _ = ledger::update(ws, instance_id, |r| {
        r.provider_id = Some(inst.provider_id.clone());
        r.state = InstanceState::Starting;
        r.orphan = true;
        r.flags
            .push("made although the create's answer was lost".into());
        r.note(format!(
            "found by its label: {} id {}",
            r.provider, inst.provider_id
        ));
    });
    let torn = destroy_and_verify(
        ws,
        cfg,
        provider,
        instance_id,
        "its create's answer was lost, so the spin-up could not vouch for it",
        &crate::studio::NoProgress,
    )
    .await;
    match torn {
        Ok(t) => CloudError::Failed(format!(
            "{} made the instance but its answer was lost ({cause}); it was found by its label and destroyed, verified gone (about {} spent). Nothing bills. Ask for a fresh quote to try again",
            provider.kind(),
            dollars(t.instance.record.total_cost_usd.unwrap_or(0.0))
        )),
        Err(e) => CloudError::Failed(format!(
            "{} made the instance but its answer was lost; destroying it failed: {e}. Run teardown_instance `{instance_id}`",
            provider.kind()
        )),
    }
}

/// A finished teardown.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Teardown {
    pub instance: InstanceView,
    /// It was already destroyed (or never made) before this call.
    pub already_gone: bool,
    /// Listings it took until the provider no longer had it.
    pub verification_polls: u32,
}

impl Teardown {
    pub fn plain_summary(&self) -> String {
        let r = &self.instance.record;
        if r.state == InstanceState::NotCreated {
            return format!(
                "{} was never created at {}: nothing bills.",
                r.name(),
                r.provider
            );
        }
        let cost = dollars(r.total_cost_usd.unwrap_or(0.0));
        if self.already_gone {
            format!(
                "{} was already destroyed (at {}); it cost about {cost}. Nothing bills.",
                r.name(),
                r.terminated_at.as_deref().unwrap_or("?")
            )
        } else {
            format!(
                "{} is destroyed and {} no longer lists it (checked {} time(s)). TERMINATED after {:.2} h, about {cost} in all. Nothing bills.",
                r.name(),
                r.provider,
                self.verification_polls,
                self.instance.hours_so_far
            )
        }
    }

    fn already(record: InstanceRecord) -> Teardown {
        Teardown {
            instance: InstanceView::of(record),
            already_gone: true,
            verification_polls: 0,
        }
    }
}

/// Destroys an instance named by our id or the provider's, and verifies it
/// is gone. Idempotent: a terminated one is reported as it is.
pub async fn tear_down(
    ws: &Workspace,
    cfg: &CloudConfig,
    id: &str,
    reason: &str,
    progress: &dyn Progress,
) -> Result<Teardown, CloudError> {
    let record = ledger::find(ws, id)?.ok_or_else(|| CloudError::InstanceNotFound {
        id: id.trim().to_string(),
    })?;
    if !record.state.may_bill() {
        return Ok(Teardown::already(record));
    }
    if in_flight(&record.instance_id) {
        return Err(CloudError::Failed(format!(
            "{} is still being spun up in this server: cancel that job (cancel_job) and it destroys the instance itself",
            record.name()
        )));
    }
    let provider = cfg.provider(record.provider)?;
    if record.provider_id.is_none() {
        // Written, but its create never reported back: look for its label.
        let list = provider.list().await?;
        match list
            .into_iter()
            .find(|i| i.label.as_deref() == Some(&record.label))
        {
            Some(inst) => {
                ledger::update(ws, &record.instance_id, |r| {
                    r.provider_id = Some(inst.provider_id.clone());
                    r.note(format!(
                        "found by its label: {} id {}",
                        r.provider, inst.provider_id
                    ));
                })?;
            }
            None => {
                let r = ledger::update(ws, &record.instance_id, |r| {
                    r.state = InstanceState::NotCreated;
                    r.note("no instance carries its label: it was never created");
                })?;
                return Ok(Teardown::already(r));
            }
        }
    }
    destroy_and_verify(
        ws,
        cfg,
        provider.as_ref(),
        &record.instance_id,
        reason,
        progress,
    )
    .await
}

fn is_listed(list: &[RemoteInstance], provider_id: &str) -> bool {
    list.iter()
        .any(|i| i.provider_id == provider_id && i.state != RemoteState::Gone)
}

/// Destroy, then list until the provider no longer has it, then TERMINATED.
async fn destroy_and_verify(
    ws: &Workspace,
    cfg: &CloudConfig,
    provider: &dyn Provider,
    instance_id: &str,
    reason: &str,
    progress: &dyn Progress,
) -> Result<Teardown, CloudError> {
    let record = ledger::update(ws, instance_id, |r| {
        r.state = InstanceState::TearingDown;
        r.teardown_reason = Some(reason.to_string());
        r.note(format!("destroying: {reason}"));
    })?;
    let Some(provider_id) = record.provider_id.clone() else {
        return Err(CloudError::Failed(format!(
            "{} has no provider id to destroy",
            record.name()
        )));
    };
    progress.report(
        0,
        None,
        &format!("destroying {} {provider_id}", provider.kind()),
    );
    let destroyed = provider.destroy(&provider_id).await?;
    if destroyed == Destroyed::AlreadyGone {
        let _ = ledger::update(ws, instance_id, |r| {
            r.note("the provider no longer knew it");
        });
    }
    let t = &cfg.timing;
    let deadline = tokio::time::Instant::now() + t.teardown_deadline;
    let mut polls = 0u32;
    loop {
        polls += 1;
        progress.report(
            u64::from(polls),
            None,
            &format!("checking that {} no longer lists it", provider.kind()),
        );
        let still = match provider.list().await {
            Ok(list) => is_listed(&list, &provider_id),
            Err(e) => {
                tracing::warn!(instance = instance_id, "verifying the teardown: {e}");
                true
            }
        };
        if !still {
            break;
        }
        if tokio::time::Instant::now() >= deadline {
            ledger::update(ws, instance_id, |r| {
                r.note(format!("still listed after {polls} checks"));
            })?;
            return Err(CloudError::Failed(format!(
                "{} still lists {} {provider_id} {:.0} s after the destroy ({polls} checks): it may still bill. Run teardown_instance again; if it stays, destroy it at {}",
                provider.kind(),
                record.name(),
                t.teardown_deadline.as_secs_f64(),
                provider.kind().console_url()
            )));
        }
        // Ask again now and then: a destroy can be dropped.
        if polls.is_multiple_of(5) {
            let _ = provider.destroy(&provider_id).await;
        }
        tokio::time::sleep(t.poll_interval).await;
    }
    let now = clock::unix_now();
    let record = ledger::update(ws, instance_id, |r| {
        r.state = InstanceState::Terminated;
        r.terminated_unix = Some(now);
        r.terminated_at = Some(clock::rfc3339(now));
        r.total_cost_usd = Some((r.cost(now) * 1000.0).round() / 1000.0);
        r.ssh = None;
        r.note(format!("verified gone after {polls} listing(s)"));
    })?;
    Ok(Teardown {
        instance: InstanceView::of(record),
        already_gone: false,
        verification_polls: polls,
    })
}

/// An instance at a provider that another studio folder started.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct ForeignInstance {
    pub provider: ProviderKind,
    pub provider_id: String,
    pub label: String,
    pub status: String,
}

/// The ledger after checking it against the providers.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Reconciled {
    /// Instances that may bill, then the ones that ended (newest 10).
    pub instances: Vec<InstanceView>,
    /// Providers whose listing was read.
    pub checked: Vec<ProviderKind>,
    /// What reconciliation changed in the ledger.
    pub changes: Vec<String>,
    /// Ategnatos instances of other studio folders on the same accounts (left alone).
    pub other_studios: Vec<ForeignInstance>,
    /// Instances on the accounts that Ategnatos did not start (left alone).
    pub not_ours: usize,
}

impl Reconciled {
    pub fn plain_summary(&self) -> String {
        let active: Vec<&InstanceView> = self
            .instances
            .iter()
            .filter(|v| v.record.state.may_bill())
            .collect();
        let checked: Vec<&str> = self.checked.iter().map(|k| k.name()).collect();
        let mut s = if checked.is_empty() {
            "No provider key is set, so no provider was asked; the ledger holds no instance that may bill.".to_string()
        } else if active.is_empty() {
            format!(
                "Checked with {}: no instance of this studio bills.",
                checked.join(" and ")
            )
        } else {
            let items: Vec<String> = active
                .iter()
                .map(|v| {
                    format!(
                        "{} {} {} at {}/h, about {} so far{}",
                        v.record.name(),
                        v.record.gpu,
                        v.record.state.word(),
                        v.record
                            .price_per_hour
                            .map(dollars)
                            .unwrap_or_else(|| "?".into()),
                        dollars(v.cost_so_far_usd),
                        if v.record.flags.is_empty() {
                            String::new()
                        } else {
                            format!(" ({})", v.record.flags.join("; "))
                        }
                    )
                })
                .collect();
            format!(
                "Checked with {}: {} instance(s) may bill: {}. teardown_instance destroys one.",
                checked.join(" and "),
                active.len(),
                items.join("; ")
            )
        };
        if !self.changes.is_empty() {
            s.push_str(&format!(" Ledger updated: {}.", self.changes.join("; ")));
        }
        if !self.other_studios.is_empty() {
            s.push_str(&format!(
                " {} instance(s) from another Ategnatos studio folder were left alone.",
                self.other_studios.len()
            ));
        }
        s
    }
}

/// Reads every relevant provider's listing and brings the ledger in line:
/// PENDING entries are found by label or marked never created; an instance
/// the provider no longer has is TERMINATED; one the provider has with this
/// studio's label and the ledger lacks is added and flagged. Destroys
/// nothing. A listing that cannot be read is an error, never "none".
pub async fn reconcile(ws: &Workspace, cfg: &CloudConfig) -> Result<Reconciled, CloudError> {
    let records = ledger::all(ws)?;
    let mut providers = cfg.keyed();
    for r in records.iter().filter(|r| r.state.may_bill()) {
        if !providers.contains(&r.provider) {
            providers.push(r.provider);
        }
    }
    let mut listings = Vec::new();
    for kind in providers {
        let list = cfg.provider(kind)?.list().await?;
        listings.push((kind, list));
    }
    let prefix = ledger::label_prefix(ws);
    let mut changes = Vec::new();
    let mut other_studios = Vec::new();
    let mut not_ours = 0usize;
    let now = clock::unix_now();
    for (kind, list) in &listings {
        let mut matched: BTreeSet<String> = BTreeSet::new();
        for r in records.iter().filter(|r| r.provider == *kind) {
            let found = list.iter().find(|i| {
                r.provider_id.as_deref() == Some(i.provider_id.as_str())
                    || i.label.as_deref() == Some(r.label.as_str())
            });
            if let Some(i) = found {
                matched.insert(i.provider_id.clone());
            }
            if !r.state.may_bill() || in_flight(&r.instance_id) {
                continue;
            }
            if let Some(change) = settle(ws, r, found, now)? {
                changes.push(change);
            }
        }
        for inst in list {
            if matched.contains(&inst.provider_id) || inst.state == RemoteState::Gone {
                continue;
            }
            match inst.label.as_deref() {
                Some(l) if l.starts_with(&prefix) => {
                    changes.push(adopt(ws, *kind, inst, now)?);
                }
                Some(l) if l.starts_with(ledger::LABEL_ROOT) => {
                    other_studios.push(ForeignInstance {
                        provider: *kind,
                        provider_id: inst.provider_id.clone(),
                        label: l.to_string(),
                        status: inst.status_text.clone(),
                    })
                }
                _ => not_ours += 1,
            }
        }
    }
    let mut all = ledger::all(ws)?;
    all.sort_by_key(|r| (!r.state.may_bill(), std::cmp::Reverse(r.created_unix)));
    let mut ended = 0;
    all.retain(|r| {
        r.state.may_bill() || {
            ended += 1;
            ended <= 10
        }
    });
    Ok(Reconciled {
        instances: all.into_iter().map(InstanceView::of).collect(),
        checked: listings.iter().map(|(k, _)| *k).collect(),
        changes,
        other_studios,
        not_ours,
    })
}

/// Brings one ledger record in line with what the provider lists.
fn settle(
    ws: &Workspace,
    r: &InstanceRecord,
    found: Option<&RemoteInstance>,
    now: u64,
) -> Result<Option<String>, CloudError> {
    let Some(inst) = found else {
        return Ok(Some(match r.state {
            InstanceState::Pending => {
                ledger::update(ws, &r.instance_id, |r| {
                    r.state = InstanceState::NotCreated;
                    r.note("no instance carries its label: it was never created");
                })?;
                format!("{} was never created (nothing bills)", r.name())
            }
            _ => {
                ledger::update(ws, &r.instance_id, |r| {
                    r.state = InstanceState::Terminated;
                    r.terminated_unix = Some(now);
                    r.terminated_at = Some(clock::rfc3339(now));
                    r.total_cost_usd = Some((r.cost(now) * 1000.0).round() / 1000.0);
                    r.ssh = None;
                    r.note("the provider no longer lists it: ended outside Ategnatos");
                })?;
                format!(
                    "{} is gone at {} (ended outside Ategnatos)",
                    r.name(),
                    r.provider
                )
            }
        }));
    };
    let was_pending = r.provider_id.is_none();
    // Not in flight yet never confirmed running: its spin-up died with the
    // server (or lost its answer), and nothing will use it.
    let abandoned = matches!(r.state, InstanceState::Pending | InstanceState::Starting);
    let new_state = match (&inst.state, r.state) {
        (RemoteState::Gone, _) => InstanceState::Terminated,
        (_, InstanceState::TearingDown) => InstanceState::TearingDown,
        (RemoteState::Running, _) => InstanceState::Running,
        (_, InstanceState::Pending) => InstanceState::Starting,
        (_, state) => state,
    };
    let stopped = inst.state == RemoteState::Stopped;
    let stop_flag = format!(
        "stopped at {}: its disk still bills until it is destroyed",
        r.provider
    );
    let needs_change = was_pending
        || (abandoned && !r.orphan)
        || new_state != r.state
        || inst
            .price_per_hour
            .is_some_and(|p| Some(p) != r.price_per_hour)
        || (stopped && !r.flags.contains(&stop_flag));
    if !needs_change {
        return Ok(None);
    }
    let updated = ledger::update(ws, &r.instance_id, |rec| {
        if was_pending {
            rec.provider_id = Some(inst.provider_id.clone());
            rec.note(format!(
                "found by its label: {} id {}",
                rec.provider, inst.provider_id
            ));
        }
        if abandoned && !rec.orphan {
            rec.orphan = true;
            rec.flags.push(
                "made, but its spin-up never finished (the server stopped or the answer was lost)"
                    .into(),
            );
        }
        if let Some(p) = inst.price_per_hour {
            rec.price_per_hour = Some(p);
        }
        if stopped && !rec.flags.contains(&stop_flag) {
            rec.flags.push(stop_flag.clone());
        }
        if new_state == InstanceState::Terminated {
            rec.terminated_unix = Some(now);
            rec.terminated_at = Some(clock::rfc3339(now));
            rec.total_cost_usd = Some((rec.cost(now) * 1000.0).round() / 1000.0);
            rec.ssh = None;
        }
        rec.state = new_state;
    })?;
    Ok(Some(if abandoned && !r.orphan {
        format!(
            "{} was made although its spin-up never finished: flagged; the watchdog destroys it",
            updated.name()
        )
    } else {
        format!("{} is {}", updated.name(), updated.state.word())
    }))
}

/// Adds an instance the provider has with this studio's label and the
/// ledger lacks, flagged.
fn adopt(
    ws: &Workspace,
    kind: ProviderKind,
    inst: &RemoteInstance,
    now: u64,
) -> Result<String, CloudError> {
    let label = inst.label.clone().unwrap_or_default();
    let instance_id = ledger::id_from_label(ws, &label)
        .filter(|id| ledger::load(ws, id).ok().flatten().is_none())
        .unwrap_or_else(|| ledger::new_identity(ws).0);
    let mut record = InstanceRecord {
        instance_id,
        provider: kind,
        label,
        provider_id: Some(inst.provider_id.clone()),
        state: match inst.state {
            RemoteState::Running => InstanceState::Running,
            _ => InstanceState::Starting,
        },
        gpu: inst.gpu.clone().unwrap_or_else(|| "unknown GPU".into()),
        project: None,
        quote_id: None,
        offer_id: None,
        price_per_hour: inst.price_per_hour,
        max_price_per_hour: None,
        max_hours: None,
        max_total_usd: None,
        created_at: clock::rfc3339(now),
        created_unix: now,
        running_since: None,
        run_ended_unix: None,
        terminated_at: None,
        terminated_unix: None,
        total_cost_usd: None,
        ssh: inst.ssh.clone(),
        teardown_reason: None,
        flags: vec![format!(
            "found at {kind} with this studio's label but not in the ledger; its cost before {} is not counted",
            clock::rfc3339(now)
        )],
        orphan: true,
        events: Vec::new(),
    };
    record.note(format!(
        "added from {kind}'s listing ({})",
        inst.status_text
    ));
    ledger::save(ws, &record)?;
    Ok(format!(
        "{} was found at {kind} and added, flagged; the watchdog destroys it",
        record.name()
    ))
}

/// Offers a quote kept: used in hints after an offer was taken.
pub fn other_offers_within(quote: &Quote, cap: f64, taken: &str) -> Vec<Offer> {
    quote
        .offers
        .iter()
        .filter(|o| o.offer_id != taken && o.price_per_hour <= cap)
        .cloned()
        .collect()
}
