//! RunPod over its GraphQL API (`POST /graphql`), as runpod-python uses it.
//!
//! - prices: `gpuTypes { id memoryInGb securePrice communityPrice … }`, one
//!   offer per GPU type and cloud (secure or community); the offer id is
//!   `SECURE:<gpu type id>` or `COMMUNITY:<gpu type id>`;
//! - create: `podFindAndDeployOnDemand`; "There are no longer any instances
//!   available" means the offer was taken;
//! - one pod: `pod(input:{podId})`; all pods: `myself { pods }`;
//! - terminate: `podTerminate` (never `podStop`: a stopped pod bills for
//!   its disk), which answers nothing, so the caller lists to verify.
//!
//! GraphQL errors come as HTTP 200 with an `errors` list, so every answer's
//! `errors` is read before its `data`.

use reqwest::Method;
use serde_json::{Value, json};

use super::CloudError;
use super::http::{Answer, Call, Http, snippet};
use super::provider::{
    BoxFuture, CreateSpec, Destroyed, Need, Offer, Provider, ProviderKind, RemoteInstance,
    RemoteState, SshEndpoint,
};

pub const DEFAULT_BASE_URL: &str = "https://api.runpod.io";
/// RunPod's PyTorch image (CUDA 12.4, SSH started by its entrypoint).
pub const DEFAULT_IMAGE: &str = "runpod/pytorch:2.4.0-py3.11-cuda12.4.1-devel-ubuntu22.04";
/// Container disk while the pod runs: RunPod's published $0.10 per GB per
/// month, per hour (730 h a month). The pod's own `costPerHr` is checked
/// against the cap once it exists.
const DISK_PER_GB_HOUR: f64 = 0.10 / 730.0;

const KIND: ProviderKind = ProviderKind::Runpod;

const POD_FIELDS: &str = "id name desiredStatus costPerHr machine { gpuDisplayName } \
runtime { uptimeInSeconds ports { ip isIpPublic privatePort publicPort type } }";

pub struct Runpod {
    http: Http,
    endpoint: String,
}

/// A GraphQL answer: its `data` and the messages of its `errors`.
struct Reply {
    data: Value,
    errors: Vec<String>,
}

impl Runpod {
    pub fn new(http: Http, base_url: &str) -> Runpod {
        Runpod {
            http,
            endpoint: format!("{}/graphql", base_url.trim_end_matches('/')),
        }
    }

    async fn graphql(&self, call: Call, what: &str, query: String) -> Result<Reply, CloudError> {
        let answer = self
            .http
            .send(
                call,
                what,
                Method::POST,
                &self.endpoint,
                Some(&json!({ "query": query })),
            )
            .await?;
        if !answer.is_success() {
            return Err(self.rejected(what, &answer, snippet(&answer.body)));
        }
        let body = answer.json(KIND, what)?;
        let errors = body
            .get("errors")
            .and_then(Value::as_array)
            .map(|list| {
                list.iter()
                    .map(|e| {
                        let m = e
                            .get("message")
                            .and_then(Value::as_str)
                            .map(str::to_string)
                            .unwrap_or_else(|| e.to_string());
                        self.http.key().scrub(&m)
                    })
                    .collect()
            })
            .unwrap_or_default();
        let data = body.get("data").cloned().unwrap_or(Value::Null);
        Ok(Reply { data, errors })
    }

    fn rejected(&self, what: &str, answer: &Answer, message: String) -> CloudError {
        CloudError::Rejected {
            provider: KIND,
            what: what.to_string(),
            status: answer.status,
            message: self.http.key().scrub(&message),
        }
    }

    /// GraphQL errors as one error; a refused key as `BadKey`.
    fn errors_to_error(what: &str, errors: &[String]) -> CloudError {
        let joined = errors.join("; ");
        let lower = joined.to_ascii_lowercase();
        if lower.contains("unauthorized") || lower.contains("api key") {
            return CloudError::BadKey {
                provider: KIND,
                status: 200,
            };
        }
        CloudError::Rejected {
            provider: KIND,
            what: what.to_string(),
            status: 200,
            message: joined,
        }
    }
}

/// A GraphQL string literal (JSON's escaping is GraphQL's).
fn literal(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())
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

/// Offers from the `gpuTypes` list: each GPU type with enough memory, once
/// per cloud it is sold in, priced with the disk.
pub fn parse_offers(types: &[Value], need: &Need) -> Vec<Offer> {
    let mut out = Vec::new();
    for t in types {
        let (Some(id), Some(memory)) = (text(t, "id"), number(t, "memoryInGb")) else {
            continue;
        };
        // Nominal sizes (24) against the plan's GiB (23.99 on the card).
        if memory + 0.5 < need.min_vram_gb {
            continue;
        }
        let stock = t.get("lowestPrice").and_then(|l| text(l, "stockStatus"));
        for (cloud, flag, price_key) in [
            ("SECURE", "secureCloud", "securePrice"),
            ("COMMUNITY", "communityCloud", "communityPrice"),
        ] {
            let sold = t.get(flag).and_then(Value::as_bool).unwrap_or(true);
            let Some(price) = number(t, price_key).filter(|p| *p > 0.0) else {
                continue;
            };
            if !sold {
                continue;
            }
            out.push(Offer {
                offer_id: format!("{cloud}:{id}"),
                provider: KIND,
                gpu: text(t, "displayName").unwrap_or_else(|| id.clone()),
                num_gpus: 1,
                vram_gb: memory,
                price_per_hour: price + f64::from(need.disk_gb) * DISK_PER_GB_HOUR,
                disk_gb: need.disk_gb,
                reliability: None,
                location: Some(format!("{} cloud", cloud.to_ascii_lowercase())),
                availability: stock.clone(),
                estimated_hours: 0.0,
                estimated_cost: 0.0,
            });
        }
    }
    out.sort_by(|a, b| a.price_per_hour.total_cmp(&b.price_per_hour));
    out
}

/// One pod; `None` when it has no id.
pub fn parse_pod(pod: &Value) -> Option<RemoteInstance> {
    let provider_id = text(pod, "id")?;
    let status = text(pod, "desiredStatus").unwrap_or_else(|| "UNKNOWN".into());
    let runtime = pod.get("runtime").filter(|r| !r.is_null());
    let state = match (status.as_str(), runtime) {
        ("RUNNING", Some(_)) => RemoteState::Running,
        ("RUNNING" | "CREATED" | "RESTARTING", None) => RemoteState::Booting,
        ("EXITED", _) => RemoteState::Stopped,
        ("TERMINATED", _) => RemoteState::Gone,
        _ => RemoteState::Other,
    };
    let ssh = runtime
        .and_then(|r| r.get("ports"))
        .and_then(Value::as_array)
        .and_then(|ports| {
            ports.iter().find(|p| {
                number(p, "privatePort") == Some(22.0)
                    && p.get("isIpPublic").and_then(Value::as_bool) == Some(true)
            })
        })
        .and_then(|p| {
            Some(SshEndpoint {
                host: text(p, "ip")?,
                port: u16::try_from(number(p, "publicPort")? as u64).ok()?,
                user: "root".into(),
            })
        });
    Some(RemoteInstance {
        provider_id,
        label: text(pod, "name"),
        ssh: if state == RemoteState::Running {
            ssh
        } else {
            None
        },
        state,
        status_text: status,
        gpu: pod.get("machine").and_then(|m| text(m, "gpuDisplayName")),
        price_per_hour: number(pod, "costPerHr"),
    })
}

impl Provider for Runpod {
    fn kind(&self) -> ProviderKind {
        KIND
    }

    fn search<'a>(&'a self, need: &'a Need) -> BoxFuture<'a, Result<Vec<Offer>, CloudError>> {
        Box::pin(async move {
            let what = "the GPU price list";
            let query = "query GpuTypes { gpuTypes { id displayName memoryInGb secureCloud communityCloud \
securePrice communityPrice lowestPrice(input: {gpuCount: 1}) { stockStatus } } }";
            let reply = self.graphql(Call::Safe, what, query.into()).await?;
            if !reply.errors.is_empty() {
                return Err(Self::errors_to_error(what, &reply.errors));
            }
            let types = reply
                .data
                .get("gpuTypes")
                .and_then(Value::as_array)
                .ok_or_else(|| CloudError::Unparseable {
                    provider: KIND,
                    what: what.into(),
                    reason: "no `gpuTypes` list".into(),
                })?;
            Ok(parse_offers(types, need))
        })
    }

    fn create<'a>(
        &'a self,
        offer_id: &'a str,
        spec: &'a CreateSpec,
    ) -> BoxFuture<'a, Result<String, CloudError>> {
        Box::pin(async move {
            let what = "the create";
            let Some((cloud, gpu_type)) = offer_id
                .split_once(':')
                .filter(|(c, _)| matches!(*c, "SECURE" | "COMMUNITY"))
            else {
                return Err(CloudError::BadArgument {
                    what: "RunPod offer id",
                    value: offer_id.to_string(),
                });
            };
            let query = format!(
                "mutation {{ podFindAndDeployOnDemand(input: {{ cloudType: {cloud}, gpuCount: 1, \
gpuTypeId: {}, name: {}, imageName: {}, containerDiskInGb: {}, volumeInGb: 0, ports: \"22/tcp\", \
startSsh: true, supportPublicIp: true }}) {{ id costPerHr desiredStatus }} }}",
                literal(gpu_type),
                literal(&spec.label),
                literal(&spec.image),
                spec.disk_gb
            );
            let reply = self.graphql(Call::Create, what, query).await?;
            if !reply.errors.is_empty() {
                let joined = reply.errors.join("; ");
                if joined
                    .to_ascii_lowercase()
                    .contains("no longer any instances available")
                {
                    return Err(CloudError::OfferGone {
                        provider: KIND,
                        offer_id: offer_id.to_string(),
                        message: joined,
                    });
                }
                return Err(Self::errors_to_error(what, &reply.errors));
            }
            reply
                .data
                .get("podFindAndDeployOnDemand")
                .and_then(|p| text(p, "id"))
                .ok_or_else(|| CloudError::CreateOutcomeUnknown {
                    provider: KIND,
                    cause: "its answer holds no pod id".into(),
                })
        })
    }

    fn instance<'a>(
        &'a self,
        provider_id: &'a str,
    ) -> BoxFuture<'a, Result<Option<RemoteInstance>, CloudError>> {
        Box::pin(async move {
            let what = "the pod status";
            let query = format!(
                "query Pod {{ pod(input: {{podId: {}}}) {{ {POD_FIELDS} }} }}",
                literal(provider_id)
            );
            let reply = self.graphql(Call::Safe, what, query).await?;
            if !reply.errors.is_empty() {
                if reply
                    .errors
                    .iter()
                    .any(|e| e.to_ascii_lowercase().contains("not found"))
                {
                    return Ok(None);
                }
                return Err(Self::errors_to_error(what, &reply.errors));
            }
            match reply.data.get("pod") {
                None | Some(Value::Null) => Ok(None),
                Some(pod) => parse_pod(pod)
                    .map(Some)
                    .ok_or_else(|| CloudError::Unparseable {
                        provider: KIND,
                        what: what.into(),
                        reason: "the pod has no id".into(),
                    }),
            }
        })
    }

    fn list(&self) -> BoxFuture<'_, Result<Vec<RemoteInstance>, CloudError>> {
        Box::pin(async move {
            let what = "the pod listing";
            let query = format!("query Pods {{ myself {{ pods {{ {POD_FIELDS} }} }} }}");
            let reply = self.graphql(Call::Safe, what, query).await?;
            if !reply.errors.is_empty() {
                return Err(Self::errors_to_error(what, &reply.errors));
            }
            let unparseable = |reason: String| CloudError::Unparseable {
                provider: KIND,
                what: what.into(),
                reason,
            };
            let pods = reply
                .data
                .get("myself")
                .and_then(|m| m.get("pods"))
                .and_then(Value::as_array)
                .ok_or_else(|| unparseable("no `myself.pods` list".into()))?;
            pods.iter()
                .map(|p| {
                    parse_pod(p).ok_or_else(|| {
                        unparseable(format!("a pod without an id: {}", snippet(&p.to_string())))
                    })
                })
                .collect()
        })
    }

    fn destroy<'a>(&'a self, provider_id: &'a str) -> BoxFuture<'a, Result<Destroyed, CloudError>> {
        Box::pin(async move {
            let what = "the terminate";
            let query = format!(
                "mutation {{ podTerminate(input: {{podId: {}}}) }}",
                literal(provider_id)
            );
            let reply = self.graphql(Call::Safe, what, query).await?;
            if reply.errors.is_empty() {
                return Ok(Destroyed::Now);
            }
            if reply
                .errors
                .iter()
                .any(|e| e.to_ascii_lowercase().contains("not found"))
            {
                return Ok(Destroyed::AlreadyGone);
            }
            Err(Self::errors_to_error(what, &reply.errors))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_gpu_type_is_offered_once_per_cloud_with_its_disk() {
        let types = vec![
            json!({"id": "NVIDIA GeForce RTX 4090", "displayName": "RTX 4090", "memoryInGb": 24,
                "secureCloud": true, "communityCloud": true, "securePrice": 0.69, "communityPrice": 0.34,
                "lowestPrice": {"stockStatus": "High"}}),
            json!({"id": "NVIDIA RTX A4000", "displayName": "RTX A4000", "memoryInGb": 16,
                "secureCloud": true, "communityCloud": false, "securePrice": 0.32, "communityPrice": 0.0}),
        ];
        let need = Need {
            min_vram_gb: 20.0,
            disk_gb: 73,
            gpu: None,
        };
        let offers = parse_offers(&types, &need);
        let ids: Vec<&str> = offers.iter().map(|o| o.offer_id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "COMMUNITY:NVIDIA GeForce RTX 4090",
                "SECURE:NVIDIA GeForce RTX 4090"
            ]
        );
        // 73 GB at $0.10/GB/month is one cent an hour.
        assert!((offers[0].price_per_hour - 0.35).abs() < 1e-9);
        assert_eq!(offers[0].availability.as_deref(), Some("High"));
    }

    #[test]
    fn a_pod_runs_once_its_runtime_is_up_and_gives_its_public_ssh_port() {
        let booting = parse_pod(&json!({"id": "p1", "name": "ategnatos-x", "desiredStatus": "RUNNING", "runtime": null})).unwrap();
        assert_eq!(booting.state, RemoteState::Booting);
        let up = parse_pod(&json!({"id": "p1", "desiredStatus": "RUNNING", "costPerHr": 0.69,
            "runtime": {"ports": [{"ip": "10.0.0.2", "isIpPublic": false, "privatePort": 22, "publicPort": 22},
                                  {"ip": "194.0.2.4", "isIpPublic": true, "privatePort": 22, "publicPort": 10341}]}})).unwrap();
        assert_eq!(up.state, RemoteState::Running);
        assert_eq!(up.ssh.unwrap().port, 10341);
        let gone = parse_pod(&json!({"id": "p1", "desiredStatus": "TERMINATED"})).unwrap();
        assert_eq!(gone.state, RemoteState::Gone);
    }

    #[test]
    fn strings_are_quoted_for_graphql() {
        assert_eq!(literal("a\"b\\c"), r#""a\"b\\c""#);
    }
}
