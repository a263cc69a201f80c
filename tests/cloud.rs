//! Rented GPUs against mock Vast.ai and RunPod servers on 127.0.0.1: the
//! quote, the spin-up behind the ledger, verified teardown, reconciliation
//! after crashes and lost answers, the watchdog's caps, and no key in any
//! output, log or file.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout,
    clippy::disallowed_methods
)]

mod cloud_support;

use std::path::Path;

use ategnatos::cloud::ledger::{self, InstanceRecord};
use ategnatos::cloud::lifecycle::{self, SpinUpRequest};
use ategnatos::cloud::quote::{self, Quote, QuoteRequest};
use ategnatos::cloud::{CloudConfig, CloudError, InstanceState, ProviderKind, watchdog};
use ategnatos::studio::Hint;
use ategnatos::studio::{NoProgress, Workspace, clock};
use cloud_support as mock;

fn workspace() -> (tempfile::TempDir, Workspace) {
    let dir = tempfile::tempdir().unwrap();
    let ws = Workspace::open(dir.path()).unwrap();
    (dir, ws)
}

fn ledger_dir(ws: &Workspace) -> std::path::PathBuf {
    ledger::cloud_dir(ws).join("instances")
}

async fn quote_for(ws: &Workspace, cfg: &CloudConfig, provider: ProviderKind) -> Quote {
    quote::make_quote(
        ws,
        cfg,
        &QuoteRequest {
            provider: Some(provider),
            min_vram_gb: Some(20.0),
            hours: Some(1.0),
            ..QuoteRequest::default()
        },
    )
    .await
    .unwrap()
}

fn rent(q: &Quote, offer: &str, cap: f64) -> SpinUpRequest {
    SpinUpRequest {
        quote_id: q.quote_id.clone(),
        offer_id: offer.to_string(),
        max_price_per_hour: cap,
        ..SpinUpRequest::default()
    }
}

async fn spin(
    ws: &Workspace,
    cfg: &CloudConfig,
    req: &SpinUpRequest,
) -> Result<lifecycle::SpinUp, CloudError> {
    let prepared = lifecycle::prepare(ws, cfg, req)?;
    lifecycle::spin_up(ws, cfg, &prepared, &NoProgress).await
}

fn studio_md(root: &Path) -> String {
    std::fs::read_to_string(root.join("grimoire/studio.md")).unwrap_or_default()
}

/// A ledger entry as a spin-up writes it just before asking the provider.
fn pending_entry(ws: &Workspace, provider: ProviderKind) -> InstanceRecord {
    let (instance_id, label) = ledger::new_identity(ws);
    let now = clock::unix_now();
    let r = InstanceRecord {
        instance_id,
        provider,
        label,
        provider_id: None,
        state: InstanceState::Pending,
        gpu: "RTX 4090".into(),
        project: None,
        quote_id: None,
        offer_id: None,
        price_per_hour: Some(0.383),
        max_price_per_hour: Some(0.5),
        max_hours: Some(2.0),
        max_total_usd: Some(1.0),
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
    ledger::save(ws, &r).unwrap();
    r
}

#[tokio::test]
async fn a_quote_ranks_all_in_offers_from_both_providers_and_rents_nothing() {
    let ssh = mock::ssh_stand_in().await;
    let vast = mock::vast(ssh).await;
    let runpod = mock::runpod(ssh).await;
    let cfg = mock::config(&vast, Some(&runpod));
    let (_d, ws) = workspace();
    let q = quote::make_quote(
        &ws,
        &cfg,
        &QuoteRequest {
            min_vram_gb: Some(20.0),
            hours: Some(2.0),
            ..QuoteRequest::default()
        },
    )
    .await
    .unwrap();
    let ids: Vec<&str> = q.offers.iter().map(|o| o.offer_id.as_str()).collect();
    // Cheapest run first; the 16 GB A4000 does not fit 20 GB.
    assert_eq!(ids.first(), Some(&"5150"), "{ids:?}");
    assert!(
        ids.contains(&"COMMUNITY:NVIDIA GeForce RTX 4090"),
        "{ids:?}"
    );
    assert!(!ids.iter().any(|i| i.contains("A4000")), "{ids:?}");
    assert!(
        q.offers
            .windows(2)
            .all(|w| w[0].estimated_cost <= w[1].estimated_cost)
    );
    let best = &q.offers[0];
    assert!((best.estimated_cost - 0.44).abs() < 1e-9, "{best:?}");
    let summary = q.plain_summary();
    assert!(
        summary.contains("$0.22/h") && summary.contains("$0.44"),
        "{summary}"
    );
    assert!(summary.contains("Nothing is rented yet"), "{summary}");
    assert_eq!(vast.with(|m| m.creates) + runpod.with(|m| m.creates), 0);
    assert!(ledger::all(&ws).unwrap().is_empty());
}

#[tokio::test]
async fn spin_up_writes_the_ledger_first_then_teardown_lists_until_gone() {
    let ssh = mock::ssh_stand_in().await;
    let vast = mock::vast(ssh).await;
    let cfg = mock::config(&vast, None);
    let (dir, ws) = workspace();
    vast.with(|m| {
        m.faults.boot_polls = 3;
        m.ledger_dir = Some(ledger_dir(&ws));
    });
    let q = quote_for(&ws, &cfg, ProviderKind::Vast).await;
    let up = spin(&ws, &cfg, &rent(&q, "4242", 0.40)).await.unwrap();
    let r = &up.instance.record;
    assert_eq!(vast.with(|m| m.pending_at_create.clone()), [true]);
    assert_eq!(r.state, InstanceState::Running);
    assert!(up.ssh_banner.starts_with("SSH-2.0-"), "{}", up.ssh_banner);
    assert_eq!(r.ssh.as_ref().unwrap().port, ssh);
    assert!(r.label.starts_with(&ledger::label_prefix(&ws)));
    let studio = studio_md(dir.path());
    assert!(
        studio.contains(&r.instance_id) && studio.contains("RUNNING"),
        "{studio}"
    );
    // The first two listings after the destroy still show it.
    vast.with(|m| m.faults.lag_after_destroy = 2);
    let down = lifecycle::tear_down(&ws, &cfg, &r.instance_id, "asked", &NoProgress)
        .await
        .unwrap();
    assert_eq!(down.instance.record.state, InstanceState::Terminated);
    assert_eq!(down.verification_polls, 3);
    assert!(down.instance.record.total_cost_usd.is_some());
    assert!(vast.with(|m| m.alive().is_empty()));
    assert!(down.plain_summary().contains("Nothing bills"));
    assert!(studio_md(dir.path()).contains("None may be billing now."));
    // Again, by the provider's id: already gone, nothing sent.
    let destroys = vast.with(|m| m.destroys);
    let provider_id = r.provider_id.clone().unwrap();
    let again = lifecycle::tear_down(&ws, &cfg, &provider_id, "asked", &NoProgress)
        .await
        .unwrap();
    assert!(again.already_gone);
    assert_eq!(vast.with(|m| m.destroys), destroys);
    // The retired listing endpoint was never read.
    assert!(
        !vast.with(|m| m.requests.iter().any(|r| r == "GET /api/v0/instances/")),
        "read the deprecated listing"
    );
}

#[tokio::test]
async fn runpod_rents_a_community_pod_and_terminates_it() {
    let ssh = mock::ssh_stand_in().await;
    let vast = mock::vast(ssh).await;
    let runpod = mock::runpod(ssh).await;
    let cfg = mock::config(&vast, Some(&runpod));
    let (_d, ws) = workspace();
    runpod.with(|m| {
        m.faults.boot_polls = 2;
        m.ledger_dir = Some(ledger_dir(&ws));
    });
    let q = quote_for(&ws, &cfg, ProviderKind::Runpod).await;
    let offer = "COMMUNITY:NVIDIA GeForce RTX 4090";
    let up = spin(&ws, &cfg, &rent(&q, offer, 0.40)).await.unwrap();
    assert_eq!(runpod.with(|m| m.pending_at_create.clone()), [true]);
    let id = up.instance.record.instance_id.clone();
    assert_eq!(up.instance.record.provider, ProviderKind::Runpod);
    let listed = lifecycle::reconcile(&ws, &cfg).await.unwrap();
    assert!(listed.instances.iter().any(|v| v.record.instance_id == id));
    assert!(listed.changes.is_empty(), "{:?}", listed.changes);
    runpod.with(|m| m.faults.lag_after_destroy = 1);
    let down = lifecycle::tear_down(&ws, &cfg, &id, "asked", &NoProgress)
        .await
        .unwrap();
    assert_eq!(down.verification_polls, 2);
    assert!(runpod.with(|m| m.alive().is_empty()));
}

#[tokio::test]
async fn five_hundreds_and_timeouts_are_retried_then_reported_with_a_count() {
    let logs = mock::capture_logs();
    let ssh = mock::ssh_stand_in().await;
    let vast = mock::vast(ssh).await;
    let cfg = mock::config(&vast, None);
    let (_d, ws) = workspace();
    vast.with(|m| {
        m.faults.fail_next = 1;
        m.faults.hang_next = 1;
    });
    let q = quote_for(&ws, &cfg, ProviderKind::Vast).await;
    assert!(!q.offers.is_empty());
    assert_eq!(vast.with(|m| m.requests.len()), 3);
    assert!(
        logs.text().contains("the offer search failed"),
        "{}",
        logs.text()
    );
    vast.with(|m| m.faults.fail_next = 50);
    let e = quote::make_quote(
        &ws,
        &cfg,
        &QuoteRequest {
            provider: Some(ProviderKind::Vast),
            min_vram_gb: Some(20.0),
            ..QuoteRequest::default()
        },
    )
    .await
    .unwrap_err();
    assert!(
        matches!(e, CloudError::Unreachable { retries: 3, .. }),
        "{e}"
    );
    assert!(e.to_string().contains("after 3 retries"), "{e}");
    assert!(e.hint().unwrap().contains("try again"));
}

#[tokio::test]
async fn an_offer_taken_since_the_quote_is_refused_and_nothing_bills() {
    let ssh = mock::ssh_stand_in().await;
    let vast = mock::vast(ssh).await;
    let cfg = mock::config(&vast, None);
    let (_d, ws) = workspace();
    let q = quote_for(&ws, &cfg, ProviderKind::Vast).await;
    vast.with(|m| m.faults.taken.push("4242".into()));
    let e = spin(&ws, &cfg, &rent(&q, "4242", 0.5)).await.unwrap_err();
    assert!(matches!(e, CloudError::OfferGone { .. }), "{e}");
    assert!(e.hint().unwrap().contains("fresh quote"));
    let records = ledger::all(&ws).unwrap();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].state, InstanceState::NotCreated);
    assert!(vast.with(|m| m.alive().is_empty()));
    assert!(watchdog::billing_warning(&ws).is_none());
}

#[tokio::test]
async fn a_create_whose_answer_is_lost_is_found_by_its_label_and_destroyed() {
    let ssh = mock::ssh_stand_in().await;
    let vast = mock::vast(ssh).await;
    let runpod = mock::runpod(ssh).await;
    let cfg = mock::config(&vast, Some(&runpod));
    let (_d, ws) = workspace();
    for (p, kind, offer) in [
        (&vast, ProviderKind::Vast, "4242"),
        (
            &runpod,
            ProviderKind::Runpod,
            "COMMUNITY:NVIDIA GeForce RTX 4090",
        ),
    ] {
        p.with(|m| m.faults.lose_create_answer = true);
        let q = quote_for(&ws, &cfg, kind).await;
        let e = spin(&ws, &cfg, &rent(&q, offer, 0.5)).await.unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains("found by its label") && text.contains("Nothing bills"),
            "{text}"
        );
        // Made once (a create is never retried blindly), then destroyed.
        assert_eq!(p.with(|m| (m.creates, m.destroys)), (1, 1), "{kind}");
        assert!(p.with(|m| m.alive().is_empty()), "{kind}");
    }
    let records = ledger::all(&ws).unwrap();
    assert_eq!(records.len(), 2);
    assert!(
        records
            .iter()
            .all(|r| r.state == InstanceState::Terminated && r.provider_id.is_some())
    );
}

#[tokio::test]
async fn a_server_killed_between_ledger_and_create_is_reconciled_at_restart() {
    let ssh = mock::ssh_stand_in().await;
    let vast = mock::vast(ssh).await;
    let cfg = mock::config(&vast, None);
    let (_d, ws) = workspace();
    // Killed before the create was sent: nothing carries the label.
    let never = pending_entry(&ws, ProviderKind::Vast);
    // Killed after the provider made it, before its id was written.
    let made = pending_entry(&ws, ProviderKind::Vast);
    let made_id = vast.with(|m| m.plant(&made.label, "RTX 4090", 0.383));
    // Made with this studio's label, its ledger entry lost.
    let (_, lost_label) = ledger::new_identity(&ws);
    let lost_id = vast.with(|m| m.plant(&lost_label, "RTX 3090", 0.22));
    // Another studio folder's, and one Ategnatos did not start.
    let foreign = vast.with(|m| m.plant("ategnatos-ffffff-i-20260101-000000-abcdef", "A100", 1.1));
    let stranger = vast.with(|m| m.plant("my-comfy-box", "RTX 4090", 0.4));
    assert!(
        watchdog::billing_warning(&ws)
            .unwrap()
            .contains("2 rented GPU")
    );

    let r = lifecycle::reconcile(&ws, &cfg).await.unwrap();
    let state = |id: &str| {
        ledger::find(&ws, id)
            .unwrap()
            .map(|r| (r.state, r.orphan, r.flags.len()))
    };
    assert_eq!(
        state(&never.instance_id).unwrap().0,
        InstanceState::NotCreated
    );
    let (s, orphan, flags) = state(&made.instance_id).unwrap();
    assert!(s.may_bill() && orphan && flags == 1, "{s:?}");
    assert_eq!(
        ledger::find(&ws, &made_id).unwrap().unwrap().instance_id,
        made.instance_id
    );
    let (_, orphan, flags) = state(&lost_id).unwrap();
    assert!(orphan && flags == 1);
    assert_eq!(r.other_studios.len(), 1);
    assert_eq!(r.other_studios[0].provider_id, foreign);
    assert_eq!(r.not_ours, 1);
    assert_eq!(r.changes.len(), 3, "{:?}", r.changes);
    assert!(
        r.plain_summary().contains("2 instance(s) may bill"),
        "{}",
        r.plain_summary()
    );

    // The watchdog destroys our orphans and leaves the others alone.
    let sweep = watchdog::sweep(&ws, &cfg).await;
    assert_eq!(sweep.actions.len(), 2, "{sweep:?}");
    assert!(sweep.actions.iter().all(|a| a.destroyed));
    let mut alive: Vec<String> = vast.with(|m| m.alive().iter().map(|i| i.id.clone()).collect());
    alive.sort();
    let mut expected = vec![foreign, stranger];
    expected.sort();
    assert_eq!(alive, expected);
    assert!(watchdog::billing_warning(&ws).is_none());
    // Reconciling again changes nothing.
    assert!(
        lifecycle::reconcile(&ws, &cfg)
            .await
            .unwrap()
            .changes
            .is_empty()
    );
}

#[tokio::test]
async fn a_listing_that_cannot_be_read_is_an_error_never_none() {
    let ssh = mock::ssh_stand_in().await;
    let vast = mock::vast(ssh).await;
    let runpod = mock::runpod(ssh).await;
    let cfg = mock::config(&vast, Some(&runpod));
    let (_d, ws) = workspace();
    let made = pending_entry(&ws, ProviderKind::Vast);
    vast.with(|m| {
        m.plant(&made.label, "RTX 4090", 0.383);
        m.faults.garbled_listing = true;
    });
    let e = lifecycle::reconcile(&ws, &cfg).await.unwrap_err();
    assert!(matches!(e, CloudError::Unparseable { .. }), "{e}");
    assert!(e.hint().unwrap().contains("web console"));
    // Nothing was concluded from it.
    assert_eq!(
        ledger::find(&ws, &made.instance_id).unwrap().unwrap().state,
        InstanceState::Pending
    );
    vast.with(|m| m.faults.garbled_listing = false);
    runpod.with(|m| m.faults.garbled_listing = true);
    let e = lifecycle::reconcile(&ws, &cfg).await.unwrap_err();
    assert!(e.to_string().contains("myself.pods"), "{e}");
}

#[tokio::test]
async fn the_watchdog_destroys_an_instance_past_its_time_or_money_cap() {
    let ssh = mock::ssh_stand_in().await;
    let vast = mock::vast(ssh).await;
    let cfg = mock::config(&vast, None);
    let (_d, ws) = workspace();
    let q = quote_for(&ws, &cfg, ProviderKind::Vast).await;
    let mut timed = rent(&q, "4242", 0.4);
    timed.max_hours = Some(1.5);
    let timed = spin(&ws, &cfg, &timed).await.unwrap().instance.record;
    let mut priced = rent(&q, "4243", 0.45);
    priced.max_total_usd = Some(0.5);
    let priced = spin(&ws, &cfg, &priced).await.unwrap().instance.record;
    let fine = spin(&ws, &cfg, &rent(&q, "5150", 0.3))
        .await
        .unwrap()
        .instance
        .record;
    assert!(watchdog::sweep(&ws, &cfg).await.actions.is_empty());
    // 1.6 h ago: past 1.5 h; 1.3 h at $0.41 is past $0.50; the third is young.
    let back = |id: &str, secs: u64| {
        ledger::update(&ws, id, |r| r.created_unix -= secs).unwrap();
    };
    back(&timed.instance_id, 5_760);
    back(&priced.instance_id, 4_680);
    back(&fine.instance_id, 600);
    let sweep = watchdog::sweep(&ws, &cfg).await;
    let mut reasons: Vec<(String, String)> = sweep
        .actions
        .iter()
        .map(|a| (a.instance_id.clone(), a.reason.clone()))
        .collect();
    reasons.sort();
    let mut expected = vec![
        (
            timed.instance_id.clone(),
            "passed its time cap of 1.50 h".to_string(),
        ),
        (
            priced.instance_id.clone(),
            "passed its money cap of $0.50".to_string(),
        ),
    ];
    expected.sort();
    assert_eq!(reasons, expected);
    let alive: Vec<String> = vast.with(|m| m.alive().iter().map(|i| i.id.clone()).collect());
    assert_eq!(alive, [fine.provider_id.clone().unwrap()]);
    let ended = ledger::find(&ws, &timed.instance_id).unwrap().unwrap();
    assert_eq!(ended.state, InstanceState::Terminated);
    assert!(ended.teardown_reason.unwrap().contains("time cap"));
    // An idle instance after its run ended goes too.
    let mut cfg = cfg;
    cfg.timing.idle_grace = std::time::Duration::ZERO;
    ledger::mark_run_ended(&ws, &fine.instance_id).unwrap();
    let sweep = watchdog::sweep(&ws, &cfg).await;
    assert_eq!(sweep.actions.len(), 1);
    assert!(sweep.actions[0].reason.contains("idle"));
    assert!(vast.with(|m| m.alive().is_empty()));
}

#[tokio::test]
async fn prices_above_the_cap_and_stale_quotes_are_refused_before_any_money_moves() {
    let ssh = mock::ssh_stand_in().await;
    let vast = mock::vast(ssh).await;
    let cfg = mock::config(&vast, None);
    let (_d, ws) = workspace();
    let q = quote_for(&ws, &cfg, ProviderKind::Vast).await;
    let e = spin(&ws, &cfg, &rent(&q, "4242", 0.38)).await.unwrap_err();
    assert!(matches!(e, CloudError::OverCap { .. }), "{e}");
    assert!(e.to_string().contains("`4242` costs $0.383/h"), "{e}");
    let e = spin(&ws, &cfg, &rent(&q, "9999", 5.0)).await.unwrap_err();
    assert!(e.to_string().contains("`9999` is not in quote"), "{e}");
    let e = spin(&ws, &cfg, &rent(&q, "4242", f64::NAN))
        .await
        .unwrap_err();
    assert!(matches!(e, CloudError::BadArgument { .. }), "{e}");
    let e = spin(&ws, &cfg, &rent(&q, "4242", 0.5).clone_with_missing_quote())
        .await
        .unwrap_err();
    assert!(matches!(e, CloudError::QuoteNotFound { .. }), "{e}");
    // The quote's time runs out.
    let path = ledger::cloud_dir(&ws).join(format!("quotes/{}.json", q.quote_id));
    let mut stored: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    stored["expires_unix"] = serde_json::json!(clock::unix_now() - 1);
    std::fs::write(&path, stored.to_string()).unwrap();
    let e = spin(&ws, &cfg, &rent(&q, "4242", 0.5)).await.unwrap_err();
    assert!(matches!(e, CloudError::QuoteExpired { .. }), "{e}");
    assert!(e.hint().unwrap().contains("fresh quote"));
    assert_eq!(vast.with(|m| m.creates), 0);
    assert!(ledger::all(&ws).unwrap().is_empty());

    // The provider bills more than it quoted: destroyed at once.
    let q = quote_for(&ws, &cfg, ProviderKind::Vast).await;
    vast.with(|m| m.faults.bill_at = Some(0.9));
    let e = spin(&ws, &cfg, &rent(&q, "4242", 0.5)).await.unwrap_err();
    let text = e.to_string();
    assert!(
        text.contains("above the cap") && text.contains("destroyed and verified gone"),
        "{text}"
    );
    assert!(vast.with(|m| m.alive().is_empty()));
}

trait MissingQuote {
    fn clone_with_missing_quote(&self) -> SpinUpRequest;
}

impl MissingQuote for SpinUpRequest {
    fn clone_with_missing_quote(&self) -> SpinUpRequest {
        SpinUpRequest {
            quote_id: "q-20200101-000000-000000".into(),
            ..self.clone()
        }
    }
}

#[tokio::test]
async fn no_key_appears_in_any_output_log_or_file() {
    let logs = mock::capture_logs();
    let ssh = mock::ssh_stand_in().await;
    let vast = mock::vast(ssh).await;
    let runpod = mock::runpod(ssh).await;
    let cfg = mock::config(&vast, Some(&runpod));
    let (dir, ws) = workspace();
    let mut outputs = vec![format!("{cfg:?}")];
    vast.with(|m| m.faults.fail_next = 2);
    let q = quote::make_quote(
        &ws,
        &cfg,
        &QuoteRequest {
            min_vram_gb: Some(20.0),
            ..QuoteRequest::default()
        },
    )
    .await
    .unwrap();
    outputs.push(q.plain_summary());
    outputs.push(serde_json::to_string(&q).unwrap());
    // A rejection that quotes the Authorization header back.
    vast.with(|m| {
        m.faults.reject_create = true;
        m.faults.echo_key_on_reject = true;
    });
    let e = spin(&ws, &cfg, &rent(&q, "4242", 0.5)).await.unwrap_err();
    assert!(e.to_string().contains("Bearer ****"), "{e}");
    outputs.push(format!("{e} {e:?} {:?}", e.hint()));
    vast.with(|m| m.faults.reject_create = false);
    let up = spin(
        &ws,
        &cfg,
        &rent(&q, "COMMUNITY:NVIDIA GeForce RTX 4090", 0.5),
    )
    .await
    .unwrap();
    outputs.push(up.plain_summary());
    outputs.push(serde_json::to_string(&up).unwrap());
    let listed = lifecycle::reconcile(&ws, &cfg).await.unwrap();
    outputs.push(listed.plain_summary());
    outputs.push(serde_json::to_string(&listed).unwrap());
    let down = lifecycle::tear_down(
        &ws,
        &cfg,
        &up.instance.record.instance_id,
        "done",
        &NoProgress,
    )
    .await
    .unwrap();
    outputs.push(down.plain_summary());
    outputs.push(serde_json::to_string(&down).unwrap());
    // A wrong key: refused, and the wrong key is not shown either.
    let mut wrong = cfg.clone();
    wrong.vast.key = Some(ategnatos::cloud::ApiKey::new("vast-WRONG-key-000000"));
    let e = quote_for_err(&ws, &wrong).await;
    assert!(matches!(e, CloudError::BadKey { .. }), "{e}");
    outputs.push(format!("{e} {e:?} {:?}", e.hint()));

    // The keys did reach the providers.
    assert!(vast.with(|m| m.auth.iter().any(|a| a.contains(mock::VAST_KEY))));
    assert!(runpod.with(|m| m.auth.iter().any(|a| a.contains(mock::RUNPOD_KEY))));
    let log = logs.text();
    assert!(log.contains("retry"), "the retries were not logged: {log}");
    for key in [mock::VAST_KEY, mock::RUNPOD_KEY, "vast-WRONG-key-000000"] {
        for o in &outputs {
            assert!(!o.contains(key), "key in an output: {o}");
        }
        assert!(!log.contains(key), "key in the log");
        assert_eq!(
            mock::files_containing(dir.path(), key),
            Vec::<String>::new()
        );
    }
}

async fn quote_for_err(ws: &Workspace, cfg: &CloudConfig) -> CloudError {
    quote::make_quote(
        ws,
        cfg,
        &QuoteRequest {
            provider: Some(ProviderKind::Vast),
            min_vram_gb: Some(20.0),
            ..QuoteRequest::default()
        },
    )
    .await
    .unwrap_err()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tools_refuse_to_spend_without_a_quote_and_an_agreed_cap() {
    let ssh = mock::ssh_stand_in().await;
    let vast = mock::vast(ssh).await;
    let cfg = mock::config(&vast, None);
    let dir = tempfile::tempdir().unwrap();
    let client = mock::connect(dir.path(), cfg.clone()).await;
    let info = client
        .peer_info()
        .unwrap()
        .instructions
        .clone()
        .unwrap_or_default();
    assert!(!info.contains("WARNING"), "{info}");

    let (text, err, quote) = mock::call(
        &client,
        "spinup_instance",
        serde_json::json!({"min_vram_gb": 20}),
    )
    .await;
    assert!(!err && text.contains("Nothing is rented yet"), "{text}");
    let quote_id = quote["quote_id"].as_str().unwrap().to_string();
    assert_eq!(quote["offers"][0]["offer_id"], "5150");

    // Every way of asking to rent without the artist's agreed price is refused.
    for (args, says) in [
        (
            serde_json::json!({"quote_id": quote_id, "offer_id": "4242"}),
            "max_price_per_hour",
        ),
        (
            serde_json::json!({"offer_id": "4242", "max_price_per_hour": 1.0}),
            "quote_id",
        ),
        (
            serde_json::json!({"quote_id": quote_id, "offer_id": "4242", "max_price_per_hour": 0.3}),
            "above the cap",
        ),
        (
            serde_json::json!({"quote_id": "q-nope", "offer_id": "4242", "max_price_per_hour": 1.0}),
            "no quote",
        ),
    ] {
        let (text, err, _) = mock::call(&client, "spinup_instance", args.clone()).await;
        assert!(err, "{args}: {text}");
        assert!(
            text.contains(says) && text.contains("\nhint: "),
            "{args}: {text}"
        );
    }
    assert_eq!(vast.with(|m| m.creates), 0);

    let (text, err, _) = mock::call(
        &client,
        "spinup_instance",
        serde_json::json!({"quote_id": quote_id, "offer_id": "4242", "max_price_per_hour": 0.4, "wait_seconds": 120}),
    )
    .await;
    assert!(!err && text.contains("answers SSH"), "{text}");
    let ws = Workspace::open(dir.path()).unwrap();
    let active = ledger::active(&ws).unwrap();
    assert_eq!(active.len(), 1);
    let id = active[0].instance_id.clone();

    let (text, err, listed) = mock::call(&client, "list_instances", serde_json::json!({})).await;
    assert!(!err && text.contains("1 instance(s) may bill"), "{text}");
    assert_eq!(listed["instances"][0]["instance_id"], id.as_str());

    // A server started now warns at once.
    let second = mock::connect(dir.path(), cfg).await;
    let info = second
        .peer_info()
        .unwrap()
        .instructions
        .clone()
        .unwrap_or_default();
    assert!(
        info.starts_with("WARNING: 1 rented GPU") && info.contains(&id),
        "{info}"
    );

    let (text, err, _) = mock::call(
        &client,
        "teardown_instance",
        serde_json::json!({"instance_id": id, "wait_seconds": 120}),
    )
    .await;
    assert!(!err && text.contains("Nothing bills"), "{text}");
    assert!(vast.with(|m| m.alive().is_empty()));
    let (text, err, _) = mock::call(
        &client,
        "teardown_instance",
        serde_json::json!({"instance_id": id}),
    )
    .await;
    assert!(!err && text.contains("already destroyed"), "{text}");
    let (text, err, _) = mock::call(
        &client,
        "teardown_instance",
        serde_json::json!({"instance_id": "i-nope"}),
    )
    .await;
    assert!(err && text.contains("list_instances"), "{text}");
}
