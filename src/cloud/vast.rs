//! Vast.ai over its REST API, as its OpenAPI files and vast-cli use it.
//!
//! - offers: `POST /api/v0/bundles/` with the query object as the body;
//!   `dph_total` is the all-in $/h with `allocated_storage` GB of disk;
//! - create: `PUT /api/v0/asks/{offer}/`, answering `new_contract` (the
//!   instance id); 404/410 `no_such_ask` means the offer was taken;
//! - one instance: `GET /api/v0/instances/{id}/?owner=me` (`{"instances": row|null}`);
//! - all instances: `GET /api/v1/instances/`, 25 a page with `next_token`
//!   (the old `/api/v0/instances/` answers 410 and must not be read as
//!   "none": that is how other tools lost track of billing instances);
//! - destroy: `DELETE /api/v0/instances/{id}/`; 404 means already gone.
//!
//! A wrong key may come back as HTTP 404 with `auth_error` in the body.

use reqwest::Method;
use serde_json::{Value, json};

use super::CloudError;
use super::http::{Answer, Call, Http, snippet};
use super::provider::{
    BoxFuture, CreateSpec, Destroyed, Need, Offer, Provider, ProviderKind, RemoteInstance,
    RemoteState, SshEndpoint,
};

pub const DEFAULT_BASE_URL: &str = "https://console.vast.ai";
/// CUDA 12.1 and PyTorch, the image the trainers' install scripts expect.
pub const DEFAULT_IMAGE: &str = "pytorch/pytorch:2.4.0-cuda12.1-cudnn9-devel";
/// Hosts below this reliability are not offered.
const MIN_RELIABILITY: f64 = 0.95;
/// Pages of 25 instances read at most (2,500 instances).
const MAX_PAGES: usize = 100;

const KIND: ProviderKind = ProviderKind::Vast;

pub struct Vast {
    http: Http,
    base: String,
}

impl Vast {
    pub fn new(http: Http, base_url: &str) -> Vast {
        Vast {
            http,
            base: base_url.trim_end_matches('/').to_string(),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The provider's message from an error body (`msg`, `error`, `detail`).
    fn message(&self, answer: &Answer) -> String {
        let text = serde_json::from_str::<Value>(&answer.body)
            .ok()
            .and_then(|v| {
                ["msg", "error", "detail"]
                    .iter()
                    .find_map(|k| v.get(k).and_then(Value::as_str).map(str::to_string))
            })
            .unwrap_or_else(|| snippet(&answer.body));
        self.http.key().scrub(&text)
    }

    /// A 404 that is really a refused key.
    fn check_auth(&self, answer: &Answer) -> Result<(), CloudError> {
        if answer.status == 404 && answer.body.contains("auth_error") {
            return Err(CloudError::BadKey {
                provider: KIND,
                status: 404,
            });
        }
        Ok(())
    }

    fn rejected(&self, what: &str, answer: &Answer) -> CloudError {
        CloudError::Rejected {
            provider: KIND,
            what: what.to_string(),
            status: answer.status,
            message: self.message(answer),
        }
    }
}

/// The search body: one GPU, verified and rentable hosts, at least the
/// memory and disk asked for, cheapest all-in price first.
pub fn search_query(need: &Need) -> Value {
    json!({
        "verified": {"eq": true},
        "external": {"eq": false},
        "rentable": {"eq": true},
        "rented": {"eq": false},
        "num_gpus": {"eq": 1},
        // MB, as vast-cli sends it (GB × 1000).
        "gpu_ram": {"gte": (need.min_vram_gb * 1000.0).floor()},
        "disk_space": {"gte": need.disk_gb},
        "reliability": {"gte": MIN_RELIABILITY},
        "order": [["dph_total", "asc"]],
        "type": "on-demand",
        "limit": 64,
        "allocated_storage": need.disk_gb,
    })
}

fn number(v: &Value, key: &str) -> Option<f64> {
    v.get(key).and_then(Value::as_f64).filter(|x| x.is_finite())
}

fn text(v: &Value, key: &str) -> Option<String> {
    v.get(key)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

/// An id, which Vast sends as a number.
fn id_of(v: &Value) -> Option<String> {
    match v.get("id")? {
        Value::Number(n) => n.as_u64().map(|n| n.to_string()),
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        _ => None,
    }
}

/// One offer row; `None` for a row without an id or a price.
pub fn parse_offer(row: &Value, disk_gb: u32) -> Option<Offer> {
    let offer_id = id_of(row)?;
    let price = number(row, "dph_total").filter(|p| *p > 0.0)?;
    let gpu_mb = number(row, "gpu_ram").unwrap_or(0.0);
    Some(Offer {
        offer_id,
        provider: KIND,
        gpu: text(row, "gpu_name").unwrap_or_else(|| "unknown GPU".into()),
        num_gpus: number(row, "num_gpus").map_or(1, |n| n as u32),
        vram_gb: (gpu_mb / 1024.0 * 10.0).round() / 10.0,
        price_per_hour: price,
        disk_gb,
        reliability: number(row, "reliability2").or_else(|| number(row, "reliability")),
        location: text(row, "geolocation"),
        availability: None,
        estimated_hours: 0.0,
        estimated_cost: 0.0,
    })
}

/// Vast's `actual_status` in our words.
fn state_of(row: &Value) -> (RemoteState, String) {
    let status = text(row, "actual_status");
    let state = match status.as_deref() {
        Some("running") => RemoteState::Running,
        None | Some("loading" | "created" | "scheduling" | "starting") => RemoteState::Booting,
        Some("exited" | "stopped") => RemoteState::Stopped,
        Some(_) => RemoteState::Other,
    };
    (state, status.unwrap_or_else(|| "scheduling".into()))
}

/// SSH: the direct port mapping when there is one, else Vast's SSH proxy.
fn ssh_of(row: &Value) -> Option<SshEndpoint> {
    let direct = row
        .get("ports")
        .and_then(|p| p.get("22/tcp"))
        .and_then(Value::as_array)
        .and_then(|maps| maps.first())
        .and_then(|m| m.get("HostPort"))
        .and_then(|p| match p {
            Value::String(s) => s.parse::<u16>().ok(),
            Value::Number(n) => n.as_u64().and_then(|n| u16::try_from(n).ok()),
            _ => None,
        });
    let endpoint = |host: String, port: u16| SshEndpoint {
        host,
        port,
        user: "root".into(),
    };
    if let (Some(host), Some(port)) = (text(row, "public_ipaddr"), direct) {
        return Some(endpoint(host, port));
    }
    let port = number(row, "ssh_port").and_then(|p| u16::try_from(p as u64).ok())?;
    Some(endpoint(text(row, "ssh_host")?, port))
}

/// One instance row; `None` when it has no id.
pub fn parse_instance(row: &Value) -> Option<RemoteInstance> {
    let provider_id = id_of(row)?;
    let (state, status_text) = state_of(row);
    Some(RemoteInstance {
        provider_id,
        label: text(row, "label"),
        ssh: if state == RemoteState::Running {
            ssh_of(row)
        } else {
            None
        },
        state,
        status_text,
        gpu: text(row, "gpu_name"),
        price_per_hour: number(row, "dph_total"),
    })
}

/// One page of `GET /api/v1/instances/`: its instances and the next token.
/// Anything but the documented shape is an error.
pub fn parse_instance_page(page: &Value) -> Result<(Vec<RemoteInstance>, Option<String>), String> {
    let rows = page
        .get("instances")
        .and_then(Value::as_array)
        .ok_or("it has no `instances` list")?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        out.push(
            parse_instance(row).ok_or_else(|| {
                format!("an instance without an id: {}", snippet(&row.to_string()))
            })?,
        );
    }
    let next = match page.get("next_token") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.is_empty() => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(other) => return Err(format!("`next_token` is {other}, not text")),
    };
    Ok((out, next))
}

impl Provider for Vast {
    fn kind(&self) -> ProviderKind {
        KIND
    }

    fn search<'a>(&'a self, need: &'a Need) -> BoxFuture<'a, Result<Vec<Offer>, CloudError>> {
        Box::pin(async move {
            let what = "the offer search";
            let answer = self
                .http
                .send(
                    Call::Safe,
                    what,
                    Method::POST,
                    &self.url("/api/v0/bundles/"),
                    Some(&search_query(need)),
                )
                .await?;
            self.check_auth(&answer)?;
            if !answer.is_success() {
                return Err(self.rejected(what, &answer));
            }
            let body = answer.json(KIND, what)?;
            let rows = body
                .get("offers")
                .and_then(Value::as_array)
                .ok_or_else(|| CloudError::Unparseable {
                    provider: KIND,
                    what: what.into(),
                    reason: format!("no `offers` list in {}", snippet(&answer.body)),
                })?;
            Ok(rows
                .iter()
                .filter_map(|r| parse_offer(r, need.disk_gb))
                .collect())
        })
    }

    fn create<'a>(
        &'a self,
        offer_id: &'a str,
        spec: &'a CreateSpec,
    ) -> BoxFuture<'a, Result<String, CloudError>> {
        Box::pin(async move {
            let what = "the create";
            let body = json!({
                "client_id": "me",
                "image": spec.image,
                "disk": spec.disk_gb,
                "label": spec.label,
                "runtype": "ssh_direct",
                // Fail rather than leave a stopped (disk-billing) instance.
                "cancel_unavail": true,
            });
            let answer = self
                .http
                .send(
                    Call::Create,
                    what,
                    Method::PUT,
                    &self.url(&format!("/api/v0/asks/{offer_id}/")),
                    Some(&body),
                )
                .await?;
            self.check_auth(&answer)?;
            if matches!(answer.status, 404 | 410) {
                return Err(CloudError::OfferGone {
                    provider: KIND,
                    offer_id: offer_id.to_string(),
                    message: self.message(&answer),
                });
            }
            if !answer.is_success() {
                return Err(self.rejected(what, &answer));
            }
            // A success whose id cannot be read may still have made it.
            let unknown = |why: String| CloudError::CreateOutcomeUnknown {
                provider: KIND,
                cause: why,
            };
            let v: Value = serde_json::from_str(&answer.body)
                .map_err(|e| unknown(format!("its answer is not JSON ({e})")))?;
            if v.get("success").and_then(Value::as_bool) == Some(false) {
                return Err(self.rejected(what, &answer));
            }
            match v.get("new_contract") {
                Some(Value::Number(n)) if n.as_u64().is_some() => Ok(n.to_string()),
                Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
                _ => Err(unknown(format!(
                    "no `new_contract` in {}",
                    snippet(&answer.body)
                ))),
            }
        })
    }

    fn instance<'a>(
        &'a self,
        provider_id: &'a str,
    ) -> BoxFuture<'a, Result<Option<RemoteInstance>, CloudError>> {
        Box::pin(async move {
            let what = "the instance status";
            let answer = self
                .http
                .send(
                    Call::Safe,
                    what,
                    Method::GET,
                    &self.url(&format!("/api/v0/instances/{provider_id}/?owner=me")),
                    None,
                )
                .await?;
            self.check_auth(&answer)?;
            if answer.status == 404 {
                return Ok(None);
            }
            if !answer.is_success() {
                return Err(self.rejected(what, &answer));
            }
            let body = answer.json(KIND, what)?;
            match body.get("instances") {
                Some(Value::Null) => Ok(None),
                Some(row @ Value::Object(_)) => {
                    parse_instance(row)
                        .map(Some)
                        .ok_or_else(|| CloudError::Unparseable {
                            provider: KIND,
                            what: what.into(),
                            reason: "the instance has no id".into(),
                        })
                }
                _ => Err(CloudError::Unparseable {
                    provider: KIND,
                    what: what.into(),
                    reason: format!("no `instances` object in {}", snippet(&answer.body)),
                }),
            }
        })
    }

    fn list(&self) -> BoxFuture<'_, Result<Vec<RemoteInstance>, CloudError>> {
        Box::pin(async move {
            let what = "the instance listing";
            let mut all = Vec::new();
            let mut token: Option<String> = None;
            for _ in 0..MAX_PAGES {
                let mut params = vec![("limit", "25".to_string())];
                if let Some(t) = &token {
                    params.push(("after_token", t.clone()));
                }
                let url = reqwest::Url::parse_with_params(&self.url("/api/v1/instances/"), &params)
                    .map_err(|e| {
                        CloudError::Failed(format!("bad Vast.ai URL `{}`: {e}", self.base))
                    })?;
                let answer = self
                    .http
                    .send(Call::Safe, what, Method::GET, url.as_str(), None)
                    .await?;
                self.check_auth(&answer)?;
                if !answer.is_success() {
                    // 410 `deprecated_endpoint` and friends: an error, never "none".
                    return Err(CloudError::Unparseable {
                        provider: KIND,
                        what: what.into(),
                        reason: format!("HTTP {}: {}", answer.status, self.message(&answer)),
                    });
                }
                let page = answer.json(KIND, what)?;
                let (rows, next) =
                    parse_instance_page(&page).map_err(|reason| CloudError::Unparseable {
                        provider: KIND,
                        what: what.into(),
                        reason,
                    })?;
                all.extend(rows);
                match next {
                    Some(t) => token = Some(t),
                    None => return Ok(all),
                }
            }
            Err(CloudError::Unparseable {
                provider: KIND,
                what: what.into(),
                reason: format!("more than {MAX_PAGES} pages: the listing never ended"),
            })
        })
    }

    fn destroy<'a>(&'a self, provider_id: &'a str) -> BoxFuture<'a, Result<Destroyed, CloudError>> {
        Box::pin(async move {
            let what = "the destroy";
            let answer = self
                .http
                .send(
                    Call::Safe,
                    what,
                    Method::DELETE,
                    &self.url(&format!("/api/v0/instances/{provider_id}/")),
                    Some(&json!({})),
                )
                .await?;
            self.check_auth(&answer)?;
            if answer.status == 404 {
                return Ok(Destroyed::AlreadyGone);
            }
            if !answer.is_success() {
                return Err(self.rejected(what, &answer));
            }
            let ok = serde_json::from_str::<Value>(&answer.body)
                .ok()
                .and_then(|v| v.get("success").and_then(Value::as_bool));
            match ok {
                Some(false) => Err(self.rejected(what, &answer)),
                _ => Ok(Destroyed::Now),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_offer_row_from_the_search_example_reads_all_in() {
        let row = json!({"id": 4242, "gpu_name": "RTX 4090", "num_gpus": 1, "gpu_ram": 24564,
            "dph_total": 0.383, "dph_base": 0.35, "reliability2": 0.991, "geolocation": "Sweden, SE"});
        let o = parse_offer(&row, 60).unwrap();
        assert_eq!(o.offer_id, "4242");
        assert_eq!((o.vram_gb, o.price_per_hour, o.disk_gb), (24.0, 0.383, 60));
        assert_eq!(o.location.as_deref(), Some("Sweden, SE"));
        assert!(
            parse_offer(&json!({"id": 1}), 60).is_none(),
            "no price, no offer"
        );
    }

    #[test]
    fn a_running_row_gives_its_direct_ssh_port() {
        let row = json!({"id": 77, "label": "ategnatos-x", "actual_status": "running",
            "public_ipaddr": "203.0.113.9", "ssh_host": "ssh4.vast.ai", "ssh_port": 20077,
            "ports": {"22/tcp": [{"HostIp": "0.0.0.0", "HostPort": "41022"}]}, "dph_total": 0.4});
        let i = parse_instance(&row).unwrap();
        assert_eq!(i.state, RemoteState::Running);
        let ssh = i.ssh.unwrap();
        assert_eq!((ssh.host.as_str(), ssh.port), ("203.0.113.9", 41022));
        let booting = parse_instance(&json!({"id": 78, "actual_status": null})).unwrap();
        assert_eq!(booting.state, RemoteState::Booting);
        assert!(booting.ssh.is_none());
    }

    #[test]
    fn a_page_without_an_instances_list_is_an_error_not_none() {
        assert!(parse_instance_page(&json!({"error": "deprecated_endpoint"})).is_err());
        assert!(parse_instance_page(&json!({"instances": "none"})).is_err());
        assert!(parse_instance_page(&json!({"instances": [{"label": "x"}]})).is_err());
        let (rows, next) =
            parse_instance_page(&json!({"instances": [], "next_token": null})).unwrap();
        assert!(rows.is_empty() && next.is_none());
    }
}
