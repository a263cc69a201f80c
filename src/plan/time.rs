//! How long a plan trains, and what it costs on a rented GPU.
//!
//! steps = pictures × repeats × epochs / batch; seconds per step come from a
//! small table of seconds per megapixel per picture on an RTX 4090, by model,
//! scaled by the GPU's relative speed ([`super::gpu::GpuSpec::relative_speed`])
//! and by what the plan turns on. The anchors and their sources are in
//! [`SPEED_TABLE`]; expect ±50 %: trainers, drivers and data loading vary.

use serde::Serialize;

use super::catalog::ModelSpec;
use super::gpu::Gpu;
use super::training::{Backend, BaseWeights, Precision, TrainingPlan};

/// Seconds per megapixel per picture on an RTX 4090, without gradient
/// checkpointing, for one model.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct SpeedAnchor {
    /// Catalog ids this row covers.
    pub models: &'static [&'static str],
    pub seconds_per_megapixel: f64,
    /// Where the number comes from.
    pub source: &'static str,
}

/// The speed table.
pub static SPEED_TABLE: &[SpeedAnchor] = &[
    SpeedAnchor {
        models: &["sd15"],
        seconds_per_megapixel: 0.36,
        source: "diffusers text-to-image LoRA guide: 15,000 steps × 4 accumulated pictures at 512² in about 5 h on an 11 GB RTX 2080 Ti (0.30 s per picture), scaled to a 4090 (×0.30)",
    },
    SpeedAnchor {
        models: &["sdxl", "pony", "illustrious"],
        seconds_per_megapixel: 0.55,
        source: "bmaltais/kohya_ss#1730: SDXL LoRA at 1024² on an RTX 3090, 1.2 s/it once it fits in memory, scaled to a 4090 (×0.55) and without checkpointing (÷1.2)",
    },
    SpeedAnchor {
        models: &["flux-dev", "flux-schnell"],
        seconds_per_megapixel: 1.50,
        source: "Hugging Face 'FLUX.1-dev QLoRA' post: 700 steps × 4 pictures at 512×768 in 41 min on an RTX 4090 with NF4 weights and checkpointing (0.88 s per picture, 2.34 s/MP), less the NF4 (÷1.3) and checkpointing (÷1.2) slow-downs",
    },
    SpeedAnchor {
        models: &["sd35-medium"],
        seconds_per_megapixel: 0.65,
        source: "no direct measurement: between SDXL and Flux by denoiser size (2.5B, like SDXL, with a longer token sequence)",
    },
    SpeedAnchor {
        models: &["sd35-large"],
        seconds_per_megapixel: 1.1,
        source: "no direct measurement: between SDXL and Flux by denoiser size (8.1B vs 11.9B)",
    },
];

/// Gradient checkpointing recomputes activations: 17–22 % slower per the
/// diffusers SDXL docs; we use 20 %.
const CHECKPOINTING_SLOWDOWN: f64 = 1.2;
/// Optimizer step, data loading and logging, per step.
const STEP_OVERHEAD_SECONDS: f64 = 0.1;

/// How long a plan takes.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct TimeEstimate {
    pub gpu: String,
    /// Optimizer steps: pictures × repeats × epochs / batch.
    pub steps: u64,
    pub seconds_per_step: f64,
    /// Loading the model and caching latents/captions before step 1.
    pub setup_minutes: f64,
    /// Setup plus training, in minutes.
    pub total_minutes: f64,
    /// At the given hourly price, when one was given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cost: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub price_per_hour: Option<f64>,
    /// Where the speed figure comes from.
    pub basis: String,
}

impl TimeEstimate {
    pub fn plain_summary(&self) -> String {
        let mut s = format!(
            "About {} on the {} ({} steps at about {:.1} s each, plus {:.0} min to load and cache)",
            duration_words(self.total_minutes),
            self.gpu,
            self.steps,
            self.seconds_per_step,
            self.setup_minutes
        );
        if let (Some(cost), Some(price)) = (self.cost, self.price_per_hour) {
            s.push_str(&format!(", costing about ${cost:.2} at ${price:.2}/hour"));
        }
        s.push_str(". Rough: ±50 %.");
        s
    }
}

/// `45 minutes`, `2 h 10 min`.
pub fn duration_words(minutes: f64) -> String {
    let m = minutes.round().max(1.0) as u64;
    if m < 60 {
        format!("{m} minutes")
    } else {
        format!("{} h {:02} min", m / 60, m % 60)
    }
}

/// Estimates a plan's training time on `gpu`, and its cost at `price_per_hour`.
pub fn estimate_time(
    plan: &TrainingPlan,
    model: &ModelSpec,
    gpu: &Gpu,
    price_per_hour: Option<f64>,
) -> TimeEstimate {
    let anchor = SPEED_TABLE
        .iter()
        .find(|a| a.models.contains(&model.id))
        .or_else(|| SPEED_TABLE.last());
    let base = anchor.map(|a| a.seconds_per_megapixel).unwrap_or(1.0);
    let megapixels = f64::from(plan.width()) * f64::from(plan.height()) / 1_048_576.0;
    let mut factor = 1.0;
    if plan.gradient_checkpointing {
        factor *= CHECKPOINTING_SLOWDOWN;
    }
    factor *= match plan.base_weights {
        BaseWeights::Full => 1.0,
        BaseWeights::Fp8 => 1.05,
        BaseWeights::Int8 => 1.15,
        BaseWeights::Nf4 | BaseWeights::Int4 => 1.3,
    };
    if plan.precision == Precision::Fp32 {
        factor *= 2.5;
    }
    if plan.train_text_encoder {
        factor *= 1.15;
    }
    if !plan.cache_latents {
        factor *= 1.1;
    }
    if plan.backend == Backend::Native {
        // burn's attention is not fused under autodiff (vram.md §B.6).
        factor *= 1.5;
    }
    let speed = gpu.relative_speed.max(0.05);
    let per_picture = base * megapixels * factor / speed;
    let seconds_per_step = per_picture * f64::from(plan.batch_size.max(1)) + STEP_OVERHEAD_SECONDS;
    let steps = plan.total_steps();
    let setup_minutes = match model.family {
        super::catalog::ModelFamily::Sd15 => 2.0,
        super::catalog::ModelFamily::Sdxl => 4.0,
        _ => 8.0,
    } + plan.image_count() as f64 * 0.02 / speed;
    let total_minutes = setup_minutes + steps as f64 * seconds_per_step / 60.0;
    let price = price_per_hour.filter(|p| p.is_finite() && *p >= 0.0);
    TimeEstimate {
        gpu: gpu.name.clone(),
        steps,
        seconds_per_step,
        setup_minutes,
        total_minutes,
        cost: price.map(|p| p * total_minutes / 60.0),
        price_per_hour: price,
        basis: anchor.map(|a| a.source.to_string()).unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::catalog::{CATALOG, lookup};
    use crate::plan::gpu;
    use crate::plan::training::tests::sample_plan;

    #[test]
    fn every_model_has_a_speed_row() {
        for m in CATALOG {
            assert!(
                SPEED_TABLE.iter().any(|a| a.models.contains(&m.id)),
                "{}",
                m.id
            );
        }
    }

    #[test]
    fn the_flux_anchor_reproduces_its_source() {
        // 700 steps × 4 pictures, 512×768, NF4, checkpointing, on a 4090: 41 minutes.
        let model = lookup("flux-dev").unwrap();
        let a = SPEED_TABLE
            .iter()
            .find(|a| a.models.contains(&"flux-dev"))
            .unwrap();
        let mp = 512.0 * 768.0 / 1_048_576.0;
        let minutes = 2800.0 * a.seconds_per_megapixel * mp * 1.3 * 1.2 / 60.0;
        assert!((minutes - 41.0).abs() < 3.0, "{minutes}");
        assert_eq!(model.family, crate::plan::catalog::ModelFamily::Flux);
    }

    #[test]
    fn steps_time_and_cost() {
        let plan = sample_plan();
        let model = lookup("sdxl").unwrap();
        let fast = estimate_time(&plan, model, &gpu::lookup("4090").unwrap(), Some(0.5));
        assert_eq!(fast.steps, 750);
        let slow = estimate_time(&plan, model, &gpu::lookup("3060 12GB").unwrap(), None);
        assert!(slow.total_minutes > fast.total_minutes * 2.0);
        let cost = fast.cost.unwrap();
        assert!((cost - 0.5 * fast.total_minutes / 60.0).abs() < 1e-9);
        let text = fast.plain_summary();
        assert!(text.contains("RTX 4090") && text.contains('$'), "{text}");
    }

    #[test]
    fn durations_read_naturally() {
        assert_eq!(duration_words(45.2), "45 minutes");
        assert_eq!(duration_words(130.0), "2 h 10 min");
    }
}
