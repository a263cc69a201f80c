//! The instance ledger: one JSON record per rented instance under
//! `grimoire/.state/cloud/instances/`, written atomically, and the
//! "Rented GPUs" section of `grimoire/studio.md` rendered from it.
//!
//! A record is written before the provider is asked to create anything
//! (state `PENDING`), so an instance can be forgotten neither by a crash nor
//! by a lost answer: its label (`ategnatos-<workspace tag>-<instance id>`)
//! finds it in the provider's listing. Records are never deleted; a
//! destroyed instance stays as `TERMINATED` with its total cost.
//!
//! Costs are estimates from the hourly price the provider reported (or the
//! quoted one until it does), counted from the moment the record was written:
//! they err on the high side, and the provider's bill is the authority.

use std::path::PathBuf;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use super::provider::{ProviderKind, SshEndpoint};
use super::{CloudError, InstanceState, dollars};
use crate::studio::{StudioError, Workspace, clock, write_atomic, write_json_atomic};

/// Every label we give starts with this.
pub const LABEL_ROOT: &str = "ategnatos-";

/// Serialises read-modify-write of records within this process (the
/// watchdog and a tool may touch the same instance).
static LEDGER_LOCK: Mutex<()> = Mutex::new(());

/// Something that happened to an instance, with its time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Event {
    pub at: String,
    pub what: String,
}

/// One rented instance, as the ledger knows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct InstanceRecord {
    /// Our id (`i-20261122-123456-a1b2c3`); tools take it or the provider's.
    pub instance_id: String,
    pub provider: ProviderKind,
    /// The label (Vast.ai) or pod name (RunPod) it carries.
    pub label: String,
    /// The provider's id, once known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_id: Option<String>,
    pub state: InstanceState,
    pub gpu: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quote_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offer_id: Option<String>,
    /// The $/h it bills at: the provider's figure once known, else the quote's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price_per_hour: Option<f64>,
    /// The price cap the artist agreed to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_price_per_hour: Option<f64>,
    /// Time cap: destroyed after this many hours.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_hours: Option<f64>,
    /// Money cap: destroyed once it has cost about this much.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_total_usd: Option<f64>,
    /// When the record was written; billing is counted from here.
    pub created_at: String,
    pub created_unix: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub running_since: Option<String>,
    /// When its training run ended; it is destroyed if it idles after.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_ended_unix: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub terminated_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub terminated_unix: Option<u64>,
    /// About what it cost, in dollars, once terminated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_cost_usd: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssh: Option<SshEndpoint>,
    /// Why it was destroyed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub teardown_reason: Option<String>,
    /// Things the artist should know ("found at the provider, not in the ledger").
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub flags: Vec<String>,
    /// No spin-up or run uses it (found by its label after a lost answer,
    /// a crash, or a lost ledger): the watchdog destroys it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub orphan: bool,
    #[serde(default)]
    pub events: Vec<Event>,
}

impl InstanceRecord {
    /// Hours it has billed (until its termination, or `now`).
    pub fn hours(&self, now: u64) -> f64 {
        let end = self.terminated_unix.unwrap_or(now);
        end.saturating_sub(self.created_unix) as f64 / 3600.0
    }

    /// About what it has cost so far.
    pub fn cost(&self, now: u64) -> f64 {
        self.price_per_hour.unwrap_or(0.0) * self.hours(now)
    }

    pub fn note(&mut self, what: impl Into<String>) {
        self.events.push(Event {
            at: clock::now_rfc3339(),
            what: what.into(),
        });
    }

    /// `i-… (Vast.ai 12345)`.
    pub fn name(&self) -> String {
        match &self.provider_id {
            Some(id) => format!("`{}` ({} {id})", self.instance_id, self.provider),
            None => format!("`{}` ({})", self.instance_id, self.provider),
        }
    }
}

/// `grimoire/.state/cloud/`.
pub fn cloud_dir(ws: &Workspace) -> PathBuf {
    ws.state_dir().join("cloud")
}

fn instances_dir(ws: &Workspace) -> PathBuf {
    cloud_dir(ws).join("instances")
}

fn record_path(ws: &Workspace, instance_id: &str) -> PathBuf {
    instances_dir(ws).join(format!("{instance_id}.json"))
}

/// Six hex digits naming this workspace, so two studio folders on one
/// account tell their instances apart.
pub fn workspace_tag(ws: &Workspace) -> String {
    let root = ws.root().to_string_lossy();
    blake3::hash(root.as_bytes()).to_hex()[..6].to_string()
}

/// What every label of this workspace starts with.
pub fn label_prefix(ws: &Workspace) -> String {
    format!("{LABEL_ROOT}{}-", workspace_tag(ws))
}

/// A fresh instance id and its label.
pub fn new_identity(ws: &Workspace) -> (String, String) {
    let id = format!(
        "i-{}-{}",
        clock::stamp(clock::unix_now()),
        super::fresh_suffix()
    );
    let label = format!("{}{id}", label_prefix(ws));
    (id, label)
}

/// The instance id inside one of this workspace's labels.
pub fn id_from_label(ws: &Workspace, label: &str) -> Option<String> {
    label
        .strip_prefix(&label_prefix(ws))
        .filter(|id| {
            id.starts_with("i-") && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
        .map(str::to_string)
}

/// Writes a record (atomically) and re-renders `studio.md`.
pub fn save(ws: &Workspace, record: &InstanceRecord) -> Result<(), CloudError> {
    let _guard = LEDGER_LOCK.lock().unwrap_or_else(|p| p.into_inner());
    write_json_atomic(&record_path(ws, &record.instance_id), record)?;
    drop(_guard);
    render_studio(ws)?;
    Ok(())
}

/// Changes one record under the ledger lock and saves it; the record as saved.
pub fn update(
    ws: &Workspace,
    instance_id: &str,
    change: impl FnOnce(&mut InstanceRecord),
) -> Result<InstanceRecord, CloudError> {
    let guard = LEDGER_LOCK.lock().unwrap_or_else(|p| p.into_inner());
    let mut record = load(ws, instance_id)?.ok_or_else(|| CloudError::InstanceNotFound {
        id: instance_id.to_string(),
    })?;
    change(&mut record);
    write_json_atomic(&record_path(ws, instance_id), &record)?;
    drop(guard);
    render_studio(ws)?;
    Ok(record)
}

pub fn load(ws: &Workspace, instance_id: &str) -> Result<Option<InstanceRecord>, CloudError> {
    if !instance_id
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Ok(None);
    }
    Ok(ws.read_json(&record_path(ws, instance_id))?)
}

/// Every record, oldest first. A damaged record is an error: skipping it
/// could hide an instance that bills.
pub fn all(ws: &Workspace) -> Result<Vec<InstanceRecord>, CloudError> {
    let dir = instances_dir(ws);
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => return Err(StudioError::Read { path: dir, source }.into()),
    };
    let mut records = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        let is_record = path.extension().is_some_and(|e| e == "json")
            && !path
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with('.'));
        if is_record && let Some(r) = ws.read_json::<InstanceRecord>(&path)? {
            records.push(r);
        }
    }
    records.sort_by(|a, b| (a.created_unix, &a.instance_id).cmp(&(b.created_unix, &b.instance_id)));
    Ok(records)
}

/// The record an id names: ours (`i-…`) or the provider's.
pub fn find(ws: &Workspace, id: &str) -> Result<Option<InstanceRecord>, CloudError> {
    let id = id.trim();
    if let Some(r) = load(ws, id)? {
        return Ok(Some(r));
    }
    Ok(all(ws)?
        .into_iter()
        .rev()
        .find(|r| r.provider_id.as_deref() == Some(id) || r.label == id))
}

/// Records that may still bill.
pub fn active(ws: &Workspace) -> Result<Vec<InstanceRecord>, CloudError> {
    Ok(all(ws)?
        .into_iter()
        .filter(|r| r.state.may_bill())
        .collect())
}

/// Records that a run on the instance has ended: the watchdog destroys it
/// once it has idled for the grace period. For the remote run to call.
pub fn mark_run_ended(ws: &Workspace, instance_id: &str) -> Result<InstanceRecord, CloudError> {
    update(ws, instance_id, |r| {
        r.run_ended_unix = Some(clock::unix_now());
        r.note("its training run ended");
    })
}

const SECTION_START: &str = "<!-- ategnatos:instances -->";
const SECTION_END: &str = "<!-- /ategnatos:instances -->";

/// The "Rented GPUs" section: every instance that may bill, then the last
/// few that ended.
pub fn studio_section(records: &[InstanceRecord], now: u64) -> String {
    let mut s = format!("{SECTION_START}\n## Rented GPUs\n\n");
    let active: Vec<&InstanceRecord> = records.iter().filter(|r| r.state.may_bill()).collect();
    if active.is_empty() {
        s.push_str("None may be billing now.\n");
    } else {
        s.push_str("| instance | provider | id there | GPU | state | $/h | since | cost so far | caps |\n|---|---|---|---|---|---|---|---|---|\n");
        for r in &active {
            let caps = match (r.max_hours, r.max_total_usd) {
                (Some(h), Some(m)) => format!("{h:.1} h, {}", dollars(m)),
                (Some(h), None) => format!("{h:.1} h"),
                (None, Some(m)) => dollars(m),
                (None, None) => "none".into(),
            };
            s.push_str(&format!(
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
                r.instance_id,
                r.provider,
                r.provider_id.as_deref().unwrap_or("?"),
                r.gpu,
                r.state.word(),
                r.price_per_hour.map(dollars).unwrap_or_else(|| "?".into()),
                r.created_at,
                dollars(r.cost(now)),
                caps
            ));
        }
        s.push_str("\n`teardown_instance` (or `ategnatos cloud down ID`) destroys one and checks that it is gone.\n");
    }
    let ended: Vec<&InstanceRecord> = records
        .iter()
        .rev()
        .filter(|r| r.state == InstanceState::Terminated)
        .take(5)
        .collect();
    if !ended.is_empty() {
        s.push_str("\nRecently destroyed (verified gone):\n\n");
        for r in ended {
            s.push_str(&format!(
                "- {} on {} ({}): about {} over {:.1} h{}\n",
                r.instance_id,
                r.provider,
                r.gpu,
                dollars(r.total_cost_usd.unwrap_or(0.0)),
                r.hours(r.terminated_unix.unwrap_or(now)),
                r.teardown_reason
                    .as_deref()
                    .map(|why| format!(", {why}"))
                    .unwrap_or_default()
            ));
        }
    }
    s.push_str(SECTION_END);
    s.push('\n');
    s
}

/// Writes the instances section into `grimoire/studio.md`, keeping the rest
/// of the file as it is.
pub fn render_studio(ws: &Workspace) -> Result<(), CloudError> {
    let path = ws.grimoire().join("studio.md");
    let section = studio_section(&all(ws)?, clock::unix_now());
    let old = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(source) => return Err(StudioError::Read { path, source }.into()),
    };
    let new = match (old.find(SECTION_START), old.find(SECTION_END)) {
        (Some(a), Some(b)) if a < b => {
            let after = &old[b + SECTION_END.len()..];
            format!("{}{}{}", &old[..a], section.trim_end_matches('\n'), after)
        }
        _ if old.trim().is_empty() => format!("# Studio\n\n{section}"),
        _ => format!("{}\n\n{section}", old.trim_end()),
    };
    if new != old {
        write_atomic(&path, new.as_bytes())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(ws: &Workspace, state: InstanceState) -> InstanceRecord {
        let (instance_id, label) = new_identity(ws);
        InstanceRecord {
            instance_id,
            provider: ProviderKind::Vast,
            label,
            provider_id: Some("4321".into()),
            state,
            gpu: "RTX 4090".into(),
            project: None,
            quote_id: None,
            offer_id: None,
            price_per_hour: Some(0.4),
            max_price_per_hour: Some(0.5),
            max_hours: Some(2.0),
            max_total_usd: Some(1.0),
            created_at: clock::rfc3339(1_000),
            created_unix: 1_000,
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
        }
    }

    #[test]
    fn labels_carry_the_workspace_and_give_back_the_id() {
        let dir = tempfile::tempdir().unwrap();
        let ws = Workspace::open(dir.path()).unwrap();
        let (id, label) = new_identity(&ws);
        assert_eq!(id_from_label(&ws, &label).as_deref(), Some(id.as_str()));
        let other = tempfile::tempdir().unwrap();
        let ws2 = Workspace::open(other.path()).unwrap();
        assert_eq!(id_from_label(&ws2, &label), None);
    }

    #[test]
    fn studio_md_keeps_what_others_wrote_and_lists_active_instances() {
        let dir = tempfile::tempdir().unwrap();
        let ws = Workspace::open(dir.path()).unwrap();
        let studio = ws.grimoire().join("studio.md");
        write_atomic(&studio, b"# My studio\n\n## LoRAs\n\n- fox v1\n").unwrap();
        let r = record(&ws, InstanceState::Running);
        save(&ws, &r).unwrap();
        let text = std::fs::read_to_string(&studio).unwrap();
        assert!(
            text.starts_with("# My studio\n\n## LoRAs\n\n- fox v1\n"),
            "{text}"
        );
        assert!(
            text.contains(&r.instance_id) && text.contains("RUNNING"),
            "{text}"
        );
        update(&ws, &r.instance_id, |r| r.state = InstanceState::Terminated).unwrap();
        let text = std::fs::read_to_string(&studio).unwrap();
        assert!(text.contains("None may be billing now."), "{text}");
        assert_eq!(text.matches("## Rented GPUs").count(), 1, "{text}");
        assert!(text.contains("- fox v1"));
    }

    #[test]
    fn a_damaged_record_is_an_error_not_a_missing_instance() {
        let dir = tempfile::tempdir().unwrap();
        let ws = Workspace::open(dir.path()).unwrap();
        save(&ws, &record(&ws, InstanceState::Running)).unwrap();
        write_atomic(&instances_dir(&ws).join("i-broken.json"), b"{not json").unwrap();
        assert!(all(&ws).is_err());
    }

    #[test]
    fn cost_counts_hours_from_the_record_to_termination() {
        let dir = tempfile::tempdir().unwrap();
        let ws = Workspace::open(dir.path()).unwrap();
        let mut r = record(&ws, InstanceState::Running);
        assert!((r.cost(1_000 + 1_800) - 0.2).abs() < 1e-9);
        r.terminated_unix = Some(1_000 + 3_600);
        assert!((r.cost(99_999) - 0.4).abs() < 1e-9);
    }
}
