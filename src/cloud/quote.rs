//! Quotes: what a run needs, the offers that fit, priced for the whole run,
//! and stored with an expiry so a spin-up can only rent what was shown.
//!
//! For a project with a plan, the GPU memory is the plan's peak estimate
//! with its 20 % margin, the disk is [`disk_for_plan`], and the hours are
//! the plan's time estimate on each offer's GPU plus [`SETUP_HOURS`]; so a
//! faster card can be the cheaper run. Without a project the caller says
//! the memory, disk and hours. Offers are ranked by the run's estimated
//! cost, then by price, then by reliability.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::provider::{Need, Offer, ProviderKind};
use super::{CloudConfig, CloudError, dollars};
use crate::plan::catalog::ModelSpec;
use crate::plan::gpu;
use crate::plan::time::{duration_words, estimate_time};
use crate::plan::training::{TrainingPlan, load_plan};
use crate::plan::vram::estimate_vram;
use crate::studio::Hint;
use crate::studio::{Workspace, clock, write_json_atomic};

/// Booting, installing the trainer, uploading the dataset and bringing the
/// LoRA home, on top of the training itself.
pub const SETUP_HOURS: f64 = 0.25;
/// Offers kept in a quote.
const MAX_OFFERS: usize = 8;
/// Disk when nothing says otherwise, GB.
const DEFAULT_DISK_GB: u32 = 60;

/// What the caller asks a quote for.
#[derive(Debug, Clone, Default)]
pub struct QuoteRequest {
    /// One provider, or every provider whose key is set.
    pub provider: Option<ProviderKind>,
    /// Size the machine from this project's plan.
    pub project: Option<String>,
    pub min_vram_gb: Option<f64>,
    pub disk_gb: Option<u32>,
    /// Hours of use, when there is no plan to estimate them.
    pub hours: Option<f64>,
    /// Only GPUs whose name contains this.
    pub gpu: Option<String>,
    /// Leave out offers above this $/h.
    pub max_price_per_hour: Option<f64>,
}

/// A provider that could not be asked, and why.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ProviderProblem {
    pub provider: ProviderKind,
    pub error: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

/// Offers for a run, valid until `expires_at`.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Quote {
    pub quote_id: String,
    pub created_at: String,
    pub expires_at: String,
    pub expires_unix: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    pub need: Need,
    /// Where the memory, disk and hours come from.
    pub basis: String,
    /// Cheapest run first.
    pub offers: Vec<Offer>,
    /// Providers that could not be asked.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<ProviderProblem>,
}

impl Quote {
    pub fn plain_summary(&self) -> String {
        let mut s = String::new();
        match self.offers.first() {
            None => s.push_str(&format!("No offer fits ({}).", self.basis)),
            Some(best) => {
                s.push_str(&format!(
                    "Best: {} on {} with {:.0} GB at {}/h all-in (disk included); this run needs about {}, so about {}. ",
                    best.gpu,
                    best.provider,
                    best.vram_gb,
                    dollars(best.price_per_hour),
                    duration_words(best.estimated_hours * 60.0),
                    dollars(best.estimated_cost)
                ));
                if self.offers.len() > 1 {
                    let others: Vec<String> = self.offers[1..]
                        .iter()
                        .take(3)
                        .map(|o| {
                            format!(
                                "{} {} {}/h (≈{})",
                                o.provider,
                                o.gpu,
                                dollars(o.price_per_hour),
                                dollars(o.estimated_cost)
                            )
                        })
                        .collect();
                    s.push_str(&format!("Others: {}. ", others.join("; ")));
                }
                s.push_str(&format!(
                    "Sized for: {}. Quote `{}` holds until {}. Nothing is rented yet: ask the artist for an explicit yes and a price cap, then call spinup_instance with quote_id, offer_id and max_price_per_hour.",
                    self.basis, self.quote_id, self.expires_at
                ));
            }
        }
        for p in &self.problems {
            s.push_str(&format!(" {} could not be asked: {}.", p.provider, p.error));
        }
        s
    }

    pub fn offer(&self, offer_id: &str) -> Option<&Offer> {
        self.offers.iter().find(|o| o.offer_id == offer_id.trim())
    }
}

fn quotes_dir(ws: &Workspace) -> PathBuf {
    super::ledger::cloud_dir(ws).join("quotes")
}

/// Loads a stored quote; `None` when there is no such quote.
pub fn load(ws: &Workspace, quote_id: &str) -> Result<Option<Quote>, CloudError> {
    let id = quote_id.trim();
    if id.is_empty() || !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
        return Ok(None);
    }
    Ok(ws.read_json(&quotes_dir(ws).join(format!("{id}.json")))?)
}

/// Disk for a plan, GB: the trainer's environment, the base model twice
/// (the download and the copy the trainer loads), the dataset with its
/// latent cache, and the checkpoints, rounded up to 10 GB.
pub fn disk_for_plan(plan: &TrainingPlan, model: &ModelSpec) -> u32 {
    let a = model.architecture;
    let text_params: u64 = a.text_encoders.iter().map(|t| t.params).sum();
    let weights_gb = (a.denoiser_params + text_params + a.vae_params) as f64 * 2.0 / 1e9;
    // A picture, its caption and its cached latent: about 3 MB.
    let dataset_gb = f64::from(plan.image_count()) * 0.003;
    let checkpoints = plan.epochs.div_ceil(plan.save_every_epochs.max(1));
    let lora_gb = f64::from(plan.rank) * 0.002 * f64::from(checkpoints);
    let environment_gb = 25.0;
    let total = environment_gb + 2.0 * weights_gb + 2.0 * dataset_gb + lora_gb;
    ((total / 10.0).ceil() * 10.0) as u32
}

/// The card an offer names, for the time estimate: by name, by name and
/// memory, or (a card our table lacks) by memory alone.
fn card_of(offer: &Offer) -> Option<gpu::Gpu> {
    let gb = offer.vram_gb.round();
    gpu::lookup(&offer.gpu)
        .or_else(|_| gpu::lookup(&format!("{} {gb}GB", offer.gpu)))
        .or_else(|_| gpu::lookup(&format!("{gb}GB")))
        .ok()
}

/// How the run's hours are found for each offer.
enum Hours<'a> {
    Plan(&'a TrainingPlan, &'static ModelSpec),
    Fixed(f64),
}

impl Hours<'_> {
    fn for_offer(&self, offer: &Offer) -> f64 {
        match self {
            Hours::Fixed(h) => *h,
            Hours::Plan(plan, model) => {
                let minutes = card_of(offer)
                    .map(|card| estimate_time(plan, model, &card, None).total_minutes)
                    .unwrap_or(60.0);
                minutes / 60.0 + SETUP_HOURS
            }
        }
    }
}

fn positive(what: &'static str, v: Option<f64>) -> Result<Option<f64>, CloudError> {
    match v {
        Some(x) if !(x.is_finite() && x > 0.0) => Err(CloudError::BadArgument {
            what,
            value: x.to_string(),
        }),
        other => Ok(other),
    }
}

/// Asks the providers, ranks the offers for the run, and stores the quote.
pub async fn make_quote(
    ws: &Workspace,
    cfg: &CloudConfig,
    req: &QuoteRequest,
) -> Result<Quote, CloudError> {
    let min_vram = positive("GPU memory (GB)", req.min_vram_gb)?;
    let hours_given = positive("number of hours", req.hours)?;
    let cap = positive("price per hour", req.max_price_per_hour)?;
    if req.disk_gb == Some(0) {
        return Err(CloudError::BadArgument {
            what: "disk size (GB)",
            value: "0".into(),
        });
    }
    let plan = match &req.project {
        Some(p) => {
            let plan = load_plan(ws, p)?.ok_or_else(|| {
                CloudError::Failed(format!(
                    "project `{p}` has no training plan to size the machine from; make one with plan_training, or give min_vram_gb and hours"
                ))
            })?;
            let model = plan
                .model()
                .map_err(|e| CloudError::Failed(e.to_string()))?;
            Some((plan, model))
        }
        None => None,
    };
    let mut basis = Vec::new();
    let vram = match (min_vram, &plan) {
        (Some(v), _) => {
            basis.push(format!("{v:.0} GB of GPU memory as asked"));
            v
        }
        (None, Some((plan, model))) => {
            let e = estimate_vram(plan, model, None);
            basis.push(format!(
                "{:.1} GB of GPU memory (the plan's {:.1} GB peak with the 20 % margin)",
                e.min_gpu_gb, e.total_gib
            ));
            e.min_gpu_gb
        }
        (None, None) => {
            return Err(CloudError::Failed(
                "a quote needs to know the machine: give a project with a plan, or min_vram_gb"
                    .into(),
            ));
        }
    };
    let disk_gb = match (req.disk_gb, &plan) {
        (Some(d), _) => d,
        (None, Some((plan, model))) => disk_for_plan(plan, model),
        (None, None) => DEFAULT_DISK_GB,
    };
    basis.push(format!("{disk_gb} GB of disk"));
    let hours = match (hours_given, &plan) {
        (Some(h), _) => {
            basis.push(format!("{h} h of use"));
            Hours::Fixed(h)
        }
        (None, Some((plan, model))) => {
            basis.push(format!(
                "the plan's training time on each GPU plus {:.0} min to set up and bring the LoRA home",
                SETUP_HOURS * 60.0
            ));
            Hours::Plan(plan, model)
        }
        (None, None) => {
            basis.push("1 h of use".into());
            Hours::Fixed(1.0)
        }
    };
    let need = Need {
        min_vram_gb: (vram * 10.0).ceil() / 10.0,
        disk_gb,
        gpu: req
            .gpu
            .as_ref()
            .map(|g| g.trim().to_string())
            .filter(|g| !g.is_empty()),
    };
    let providers = match req.provider {
        Some(p) => vec![p],
        None => {
            let keyed = cfg.keyed();
            if keyed.is_empty() {
                return Err(CloudError::MissingKey {
                    provider: ProviderKind::Vast,
                });
            }
            keyed
        }
    };
    let mut offers = Vec::new();
    let mut problems = Vec::new();
    for kind in providers.iter().copied() {
        let found = match cfg.provider(kind) {
            Ok(p) => p.search(&need).await,
            Err(e) => Err(e),
        };
        match found {
            Ok(list) => offers.extend(list),
            // Asked for one provider: its failure is the answer.
            Err(e) if providers.len() == 1 => return Err(e),
            Err(e) => problems.push(ProviderProblem {
                provider: kind,
                hint: e.hint(),
                error: e.to_string(),
            }),
        }
    }
    let wanted = need.gpu.as_ref().map(|g| squash(g));
    offers.retain(|o| {
        wanted
            .as_ref()
            .is_none_or(|w| squash(&o.gpu).contains(w.as_str()))
            && cap.is_none_or(|c| o.price_per_hour <= c)
    });
    for o in &mut offers {
        o.estimated_hours = (hours.for_offer(o) * 100.0).round() / 100.0;
        o.estimated_cost = (o.price_per_hour * o.estimated_hours * 1000.0).round() / 1000.0;
    }
    offers.sort_by(|a, b| {
        a.estimated_cost
            .total_cmp(&b.estimated_cost)
            .then(a.price_per_hour.total_cmp(&b.price_per_hour))
            .then(
                b.reliability
                    .unwrap_or(0.0)
                    .total_cmp(&a.reliability.unwrap_or(0.0)),
            )
    });
    offers.truncate(MAX_OFFERS);
    if offers.is_empty() && problems.len() == providers.len() {
        let p = &problems[0];
        return Err(CloudError::Failed(format!(
            "no provider could be asked: {}",
            p.error
        )));
    }
    let now = clock::unix_now();
    let expires_unix = now + cfg.timing.quote_ttl.as_secs();
    let quote = Quote {
        quote_id: format!("q-{}-{}", clock::stamp(now), super::fresh_suffix()),
        created_at: clock::rfc3339(now),
        expires_at: clock::rfc3339(expires_unix),
        expires_unix,
        project: req.project.clone(),
        need,
        basis: basis.join(", "),
        offers,
        problems,
    };
    write_json_atomic(
        &quotes_dir(ws).join(format!("{}.json", quote.quote_id)),
        &quote,
    )?;
    Ok(quote)
}

/// Lowercase, letters and digits only: `RTX_4090` finds `RTX 4090`.
fn squash(s: &str) -> String {
    s.chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::training::tests::sample_plan;

    #[test]
    fn disk_grows_with_the_base_model() {
        let mut plan = sample_plan();
        plan.base_model = "sd15".into();
        let sd15 = disk_for_plan(&plan, plan.model().unwrap());
        plan.base_model = "flux-dev".into();
        let flux = disk_for_plan(&plan, plan.model().unwrap());
        assert!(sd15 >= 30 && sd15.is_multiple_of(10), "{sd15}");
        assert!(flux >= sd15 + 40, "flux {flux} vs sd15 {sd15}");
    }

    #[test]
    fn gpu_filters_ignore_case_and_spacing() {
        assert!(squash("NVIDIA GeForce RTX 4090").contains(&squash("rtx_4090")));
    }
}
