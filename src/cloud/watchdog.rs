//! The watchdog: our own guard on every rented instance, because provider
//! timers cannot be trusted (RunPod's `--terminate-after` was accepted and
//! ignored). Each round reconciles the ledger with the providers, then
//! destroys every instance that passed its time cap or its money cap, sat
//! idle after its run ended, did not boot in time, or that no spin-up or
//! run uses (an orphan found by its label).
//!
//! At server start, [`billing_warning`] reads the ledger (no network) for
//! the MCP instructions and `project_status`, and the first round of
//! [`run`] asks the providers and logs what still bills.

use serde::Serialize;

use super::ledger::{self, InstanceRecord};
use super::lifecycle::{self, in_flight};
use super::{CloudConfig, InstanceState, Timing, dollars};
use crate::studio::{NoProgress, Workspace, clock};

/// Why an instance must go now, if it must.
pub fn reason_to_destroy(r: &InstanceRecord, now: u64, t: &Timing) -> Option<String> {
    if !r.state.may_bill() || r.state == InstanceState::Pending || in_flight(&r.instance_id) {
        return None;
    }
    if r.state == InstanceState::TearingDown {
        return Some("finishing a teardown that was not verified".into());
    }
    if r.orphan {
        return Some("no spin-up or run uses it (found by its label)".into());
    }
    let hours = r.hours(now);
    if let Some(cap) = r.max_hours
        && hours >= cap
    {
        return Some(format!("passed its time cap of {cap:.2} h"));
    }
    if let Some(cap) = r.max_total_usd
        && r.cost(now) >= cap
    {
        return Some(format!("passed its money cap of {}", dollars(cap)));
    }
    if let Some(ended) = r.run_ended_unix
        && now.saturating_sub(ended) >= t.idle_grace.as_secs()
    {
        return Some(format!(
            "idle for {:.0} min after its run ended",
            now.saturating_sub(ended) as f64 / 60.0
        ));
    }
    if r.state == InstanceState::Starting
        && now.saturating_sub(r.created_unix) >= t.boot_deadline.as_secs()
    {
        return Some(format!(
            "did not boot within {:.0} min",
            t.boot_deadline.as_secs_f64() / 60.0
        ));
    }
    None
}

/// One instance the watchdog acted on.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Action {
    pub instance_id: String,
    pub reason: String,
    /// Destroyed and verified gone.
    pub destroyed: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// What one watchdog round did.
#[derive(Debug, Clone, Default, Serialize, schemars::JsonSchema)]
pub struct Sweep {
    pub actions: Vec<Action>,
    /// Reconciliation failed: caps were still enforced from the ledger.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reconcile_error: Option<String>,
    /// What reconciliation changed.
    pub changes: Vec<String>,
}

/// One round: reconcile, then destroy whatever must go.
pub async fn sweep(ws: &Workspace, cfg: &CloudConfig) -> Sweep {
    let mut out = Sweep::default();
    match lifecycle::reconcile(ws, cfg).await {
        Ok(r) => out.changes = r.changes,
        Err(e) => out.reconcile_error = Some(e.to_string()),
    }
    let records = match ledger::active(ws) {
        Ok(r) => r,
        Err(e) => {
            out.reconcile_error = Some(e.to_string());
            return out;
        }
    };
    let now = clock::unix_now();
    for r in records {
        let Some(reason) = reason_to_destroy(&r, now, &cfg.timing) else {
            continue;
        };
        tracing::warn!(instance = %r.instance_id, "watchdog: destroying {}: {reason}", r.name());
        let done = lifecycle::tear_down(
            ws,
            cfg,
            &r.instance_id,
            &format!("watchdog: {reason}"),
            &NoProgress,
        )
        .await;
        out.actions.push(match done {
            Ok(t) => {
                tracing::info!("watchdog: {}", t.plain_summary());
                Action {
                    instance_id: r.instance_id,
                    reason,
                    destroyed: true,
                    error: None,
                }
            }
            Err(e) => {
                tracing::error!(instance = %r.instance_id, "watchdog: destroying failed: {e}");
                Action {
                    instance_id: r.instance_id,
                    reason,
                    destroyed: false,
                    error: Some(e.to_string()),
                }
            }
        });
    }
    out
}

/// The warning for the server's instructions and `project_status`, from
/// the ledger alone: `None` when no instance may bill.
pub fn billing_warning(ws: &Workspace) -> Option<String> {
    let active = match ledger::active(ws) {
        Ok(a) => a,
        Err(e) => {
            return Some(format!(
                "WARNING: the instance ledger could not be read ({e}); a rented GPU may be billing. Call list_instances."
            ));
        }
    };
    if active.is_empty() {
        return None;
    }
    let now = clock::unix_now();
    let items: Vec<String> = active
        .iter()
        .map(|r| {
            format!(
                "{} {} {} since {} (about {} so far)",
                r.name(),
                r.gpu,
                r.state.word(),
                r.created_at,
                dollars(r.cost(now))
            )
        })
        .collect();
    Some(format!(
        "WARNING: {} rented GPU instance(s) of this studio may still be billing: {}. Tell the artist; call list_instances to check with the provider and teardown_instance to stop the bill.",
        active.len(),
        items.join("; ")
    ))
}

/// Starts the watchdog for a server: says at once, in the log, what the
/// ledger holds that may bill, then runs [`run`] in the background.
pub fn start(ws: &Workspace, cfg: &CloudConfig) {
    if let Some(w) = billing_warning(ws) {
        tracing::warn!("cloud: {w}");
    }
    tokio::spawn(run(ws.clone(), cfg.clone()));
}

/// Runs the watchdog until the process ends: a first round at once (asks
/// every keyed provider, so leftovers a lost ledger forgot are found and
/// logged), then a round every `watchdog_interval` while the ledger holds
/// an instance that may bill.
pub async fn run(ws: Workspace, cfg: CloudConfig) {
    let mut first = true;
    loop {
        let has_active = ledger::active(&ws).map(|a| !a.is_empty()).unwrap_or(true);
        if has_active || first && !cfg.keyed().is_empty() {
            let report = sweep(&ws, &cfg).await;
            if let Some(e) = &report.reconcile_error {
                tracing::warn!("cloud: could not check the providers: {e}");
            }
            for c in &report.changes {
                tracing::warn!("cloud: {c}");
            }
            if first {
                match billing_warning(&ws) {
                    Some(w) => tracing::warn!("cloud: {w}"),
                    None if report.reconcile_error.is_none() => {
                        tracing::info!("cloud: no rented instance of this studio is billing")
                    }
                    None => {}
                }
            }
        }
        first = false;
        tokio::time::sleep(cfg.timing.watchdog_interval).await;
    }
}
