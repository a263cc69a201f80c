//! How much GPU memory a training plan needs at its peak, in which phase of
//! the run that peak comes, whether it fits a card with a 20 % safety
//! margin, and how to shrink a plan until it does.
//!
//! A run has phases ([`phases`]): loading (and, for some trainers,
//! quantising) the base model, encoding captions and pictures for the
//! caches, the training steps, sample pictures, saving. Each is computed part
//! by part and the largest is the plan's peak. The model was fitted on
//! measured peaks of the PyTorch trainers (the calibration table in
//! `calibration.rs`, each row with its source); [`ladder`] shrinks a plan that
//! does not fit, step by step.

mod ladder;
pub mod phases;

#[cfg(test)]
mod calibration;

use serde::Serialize;

pub use ladder::{Locked, ShrinkReport, ShrinkStep, shrink_to_fit};
pub use phases::{
    FITTED, Fit, MemoryBreakdown, MemorySetup, Phase, PhaseBreakdown, Trainer, VramComponent,
};

use super::catalog::{ModelFamily, ModelSpec};
use super::gpu::Gpu;
use super::training::{Backend, BaseWeights, LoraCoverage, Optimizer, Precision, TrainingPlan};

/// The share of the card kept free: a plan fits when its peak is at most 80 %.
pub const SAFETY_MARGIN: f64 = 0.20;
/// We never suggest a larger batch: the per-sample slope is the least certain
/// part of the model (most anchors are batch 1).
pub const MAX_SUGGESTED_BATCH: u32 = 16;
/// The most Flux blocks kohya swaps (`flux_train_network.py` refuses more
/// than 17 double and 36 single blocks; 35 is the largest count it splits so).
pub const MAX_FLUX_BLOCKS_TO_SWAP: u32 = 35;

/// Flux's block sizes, from its layer shapes (hidden 3072, MLP 12288): a
/// double block holds two streams of attention, MLP and modulation
/// (339.7 million weights), a single block one fused stream (141.6 million).
const FLUX_DOUBLE_BLOCK_PARAMS: f64 = 339.7e6;
const FLUX_SINGLE_BLOCK_PARAMS: f64 = 141.6e6;

/// Bytes per frozen denoiser weight (fp8/int8 carry scales, NF4 and int4
/// their block constants).
pub fn base_bytes(precision: Precision, weights: BaseWeights) -> f64 {
    match (weights, precision) {
        (BaseWeights::Full, Precision::Fp32) => 4.0,
        (BaseWeights::Full, _) => 2.0,
        (BaseWeights::Fp8 | BaseWeights::Int8, _) => 1.02,
        (BaseWeights::Int4, _) => 0.53,
        (BaseWeights::Nf4, _) => 0.5625,
    }
}

/// Denoiser weights kohya keeps in CPU memory for `blocks_to_swap` (it
/// swaps half the count as double blocks, the rest twice over as single
/// blocks), and the block in flight.
pub fn swapped_params(family: ModelFamily, blocks: u32) -> (f64, f64) {
    if family != ModelFamily::Flux || blocks == 0 {
        return (0.0, 0.0);
    }
    let n = blocks.min(MAX_FLUX_BLOCKS_TO_SWAP);
    let double = f64::from(n / 2);
    let single = f64::from((n - n / 2) * 2);
    (
        double * FLUX_DOUBLE_BLOCK_PARAMS + single * FLUX_SINGLE_BLOCK_PARAMS,
        FLUX_SINGLE_BLOCK_PARAMS,
    )
}

fn trainer(backend: Backend) -> Trainer {
    match backend {
        Backend::Kohya => Trainer::Kohya,
        Backend::SimpleTuner => Trainer::SimpleTuner,
        Backend::AiToolkit => Trainer::AiToolkit,
        Backend::Native => Trainer::Native,
    }
}

/// Bytes per LoRA weight: 32-bit master weights under mixed precision,
/// 16-bit with `bf16_lora` (kohya `full_bf16`) and with SimpleTuner's
/// `adamw_bf16`, which keeps weights and state in bf16.
fn lora_bytes(plan: &TrainingPlan) -> f64 {
    let simpletuner_bf16_adamw = plan.backend == Backend::SimpleTuner
        && plan.optimizer == Optimizer::AdamW
        && plan.precision == Precision::Bf16;
    if plan.bf16_lora || simpletuner_bf16_adamw {
        2.0
    } else {
        4.0
    }
}

/// The memory setup a plan asks of its backend, at `batch`.
pub fn setup_for_plan<'a>(
    plan: &TrainingPlan,
    model: &'a ModelSpec,
    batch: u32,
) -> MemorySetup<'a> {
    let arch = model.architecture;
    let per_rank = match plan.targets(model.family) {
        LoraCoverage::Attention => arch.lora_params_per_rank_attention,
        LoraCoverage::AllLinear => arch.lora_params_per_rank_all,
    };
    let simpletuner_bf16_adamw = plan.backend == Backend::SimpleTuner
        && plan.optimizer == Optimizer::AdamW
        && plan.precision == Precision::Bf16;
    let optimizer_state_bytes = if simpletuner_bf16_adamw {
        4.0
    } else {
        plan.optimizer.state_bytes()
    };
    let text_encoder_lora_params = if plan.train_text_encoder {
        arch.text_encoders
            .iter()
            .map(|t| t.lora_params_per_rank as f64)
            .sum::<f64>()
            * f64::from(plan.rank)
    } else {
        0.0
    };
    let trainer = trainer(plan.backend);
    let quantised = plan.base_weights != BaseWeights::Full;
    let (swapped, buffer) = swapped_params(model.family, plan.blocks_to_swap);
    MemorySetup {
        arch,
        trainer,
        width: plan.width(),
        height: plan.height(),
        batch,
        lora_params: per_rank as f64 * f64::from(plan.rank),
        lora_bytes: lora_bytes(plan),
        optimizer_state_bytes,
        base_bytes: base_bytes(plan.precision, plan.base_weights),
        swapped_params: swapped,
        swap_buffer_params: buffer,
        text_encoder_bytes: match plan.precision {
            Precision::Fp32 => 4.0,
            // kohya's `fp8_base` stores T5 in fp8 as well, and ai-toolkit
            // quantises T5 whenever it quantises the model (`quantize_te`
            // defaults to `quantize`).
            _ if (trainer == Trainer::Kohya && plan.base_weights == BaseWeights::Fp8)
                || (trainer == Trainer::AiToolkit && quantised) =>
            {
                text_encoder_bytes_with_fp8_t5(model)
            }
            _ => 2.0,
        },
        gradient_checkpointing: plan.gradient_checkpointing,
        text_encoders_resident: !plan.cache_text_embeddings
            || plan.train_text_encoder
            || !crate::backends::caches_text_encoder_outputs(plan.backend, model.family),
        cache_text: plan.cache_text_embeddings && !plan.train_text_encoder,
        cache_latents: plan.cache_latents,
        text_encoder_lora_params,
        // ai-toolkit quantises on the GPU unless told `low_vram`; kohya
        // converts while loading on the CPU, and our SimpleTuner configs
        // always say `quantize_via = cpu` (its default is the GPU).
        quantize_on_gpu: quantised && !plan.low_vram && trainer == Trainer::AiToolkit,
        // kohya moves the model off the GPU while it caches and SimpleTuner
        // fills its caches before loading it; ai-toolkit keeps it loaded
        // unless told `low_vram`.
        denoiser_during_caching: trainer == Trainer::AiToolkit && !plan.low_vram,
        sample_images: plan.sample_images,
        device_total: true,
    }
}

/// Average bytes per text-encoder weight when kohya's `fp8_base` stores
/// T5-XXL in fp8 and the CLIP encoders stay 16-bit.
fn text_encoder_bytes_with_fp8_t5(model: &ModelSpec) -> f64 {
    let encoders = model.architecture.text_encoders;
    let all: u64 = encoders.iter().map(|t| t.params).sum();
    if all == 0 {
        return 2.0;
    }
    let bytes: f64 = encoders
        .iter()
        .map(|t| {
            let b = if t.name.starts_with("T5") { 1.0 } else { 2.0 };
            t.params as f64 * b
        })
        .sum();
    bytes / all as f64
}

/// Every phase of a plan's run, with the constants in use.
pub fn plan_phases(plan: &TrainingPlan, model: &ModelSpec) -> Vec<PhaseBreakdown> {
    phases::all_phases(&setup_for_plan(plan, model, plan.batch_size), &FITTED)
}

/// The training phase of a plan (batch split out).
pub fn plan_breakdown(plan: &TrainingPlan, model: &ModelSpec) -> MemoryBreakdown {
    phases::train_breakdown(&setup_for_plan(plan, model, plan.batch_size), &FITTED)
}

/// A plan's peak over all phases, GiB.
pub fn plan_peak_gib(plan: &TrainingPlan, model: &ModelSpec) -> f64 {
    plan_phases(plan, model)
        .iter()
        .map(|p| p.total_gib)
        .fold(0.0, f64::max)
}

/// The largest batch (≤ [`MAX_SUGGESTED_BATCH`]) whose peak stays within
/// `budget_gib` in every phase; 0 when not even one picture fits.
pub fn max_batch(plan: &TrainingPlan, model: &ModelSpec, budget_gib: f64) -> u32 {
    let other = plan_phases(plan, model)
        .iter()
        .filter(|p| p.phase != Phase::Train)
        .map(|p| p.total_gib)
        .fold(0.0, f64::max);
    if other > budget_gib {
        return 0;
    }
    let train = plan_breakdown(plan, model);
    (1..=MAX_SUGGESTED_BATCH)
        .take_while(|b| train.total_gib(*b) <= budget_gib)
        .last()
        .unwrap_or(0)
}

/// A change that would make the plan fit, with its effect.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct FitChange {
    /// What to change, in words.
    pub change: String,
    /// The peak after this one change, GiB.
    pub total_gib: f64,
    /// Whether this change alone makes it fit.
    pub fits: bool,
}

/// One phase's peak, for the compact list in the result.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct PhasePeak {
    pub phase: Phase,
    /// GiB.
    pub gib: f64,
}

/// How much memory a plan needs, and whether it fits the GPU.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct VramEstimate {
    pub base_model: String,
    /// Peak GPU memory, GiB (as `nvidia-smi` would show it): the largest phase.
    pub total_gib: f64,
    /// The phase of the peak.
    pub peak_phase: Phase,
    /// The peak's phase in words ("while quantising the base model at start").
    pub peak_when: String,
    /// Where the memory of the peak phase goes, largest first.
    pub components: Vec<VramComponent>,
    /// Every phase of the run with its own peak.
    pub phases: Vec<PhasePeak>,
    /// Memory each further picture in a batch adds, GiB.
    pub per_extra_picture_gib: f64,
    /// The GPU it was compared with; absent when none was named or found.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gpu: Option<Gpu>,
    /// 80 % of the GPU's memory: the most a plan may use.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub budget_gib: Option<f64>,
    /// True when the peak stays within the budget (20 % margin kept free).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fits: Option<bool>,
    /// The largest batch that fits (0: not even one picture; at most 16).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_batch_that_fits: Option<u32>,
    /// Smallest GPU memory (GB) this plan fits with the margin.
    pub min_gpu_gb: f64,
    /// Single changes that would make it fit, when it does not.
    pub changes_that_fit: Vec<FitChange>,
    /// How far to trust the number.
    pub accuracy: String,
}

impl VramEstimate {
    pub fn plain_summary(&self) -> String {
        let biggest: Vec<String> = self
            .components
            .iter()
            .take(3)
            .map(|c| format!("{} {:.1} GB", c.part, c.gib))
            .collect();
        let mut s = format!(
            "Training {} this way needs about {:.1} GB of GPU memory at its peak, {} (mostly {}).",
            self.base_model,
            self.total_gib,
            self.peak_when,
            biggest.join(", ")
        );
        match (&self.gpu, self.fits, self.budget_gib) {
            (Some(gpu), Some(true), Some(budget)) => s.push_str(&format!(
                " It fits the {} ({:.0} GB) with the 20 % safety margin ({:.1} GB allowed){}.",
                gpu.name,
                gpu.vram_gib,
                budget,
                match self.max_batch_that_fits {
                    Some(b) if b > 1 => format!("; up to {b} pictures per step would fit"),
                    _ => String::new(),
                }
            )),
            (Some(gpu), Some(false), Some(budget)) => {
                s.push_str(&format!(
                    " That does not fit the {} ({:.0} GB): only {:.1} GB may be used, keeping 20 % free.",
                    gpu.name, gpu.vram_gib, budget
                ));
                if let Some(c) = self.changes_that_fit.first() {
                    s.push_str(&format!(" It would fit if you {}.", c.change));
                } else {
                    s.push_str(&format!(
                        " No single change is enough: let plan_training shrink the plan step by step, or use a GPU with at least {:.0} GB.",
                        self.min_gpu_gb.ceil()
                    ));
                }
            }
            _ => s.push_str(&format!(
                " It needs a GPU with at least {:.0} GB to keep the 20 % safety margin.",
                self.min_gpu_gb.ceil()
            )),
        }
        s
    }
}

const ACCURACY: &str = "Fitted on 52 measured training peaks from 13 public sources (kohya, SimpleTuner, ai-toolkit and diffusers-based trainers; mean error 11.5 %, worst 42.9 %; a source's points predicted without them: mean 22.1 %) and held to 8 documented limits; loading, caching and sample-picture peaks, batches above 1 and the Ategnatos engine are less certain. A 2-step dry run (gate 4) measures the real peak.";

/// Estimates a plan's peak memory over its phases and compares it with `gpu`.
pub fn estimate_vram(plan: &TrainingPlan, model: &ModelSpec, gpu: Option<&Gpu>) -> VramEstimate {
    let phases = plan_phases(plan, model);
    let peak = phases
        .iter()
        .max_by(|a, b| a.total_gib.total_cmp(&b.total_gib));
    let (total, peak_phase, mut components) = match peak {
        Some(p) => (p.total_gib, p.phase, p.components.clone()),
        None => (0.0, Phase::Train, Vec::new()),
    };
    components.sort_by(|x, y| y.gib.total_cmp(&x.gib));
    let setup = setup_for_plan(plan, model, plan.batch_size);
    let train = plan_breakdown(plan, model);
    let budget = gpu.map(|g| g.vram_gib * (1.0 - SAFETY_MARGIN));
    let fits = budget.map(|bud| total <= bud);
    let changes_that_fit = match (fits, budget) {
        (Some(false), Some(bud)) => ladder::single_changes(plan, model, bud)
            .into_iter()
            .filter_map(|(change, p)| {
                let t = plan_peak_gib(&p, model);
                (t <= bud).then_some(FitChange {
                    change,
                    total_gib: t,
                    fits: true,
                })
            })
            .collect(),
        _ => Vec::new(),
    };
    VramEstimate {
        base_model: model.name.to_string(),
        total_gib: total,
        peak_phase,
        peak_when: peak_phase.words(setup.quantize_on_gpu).to_string(),
        components,
        phases: phases
            .iter()
            .map(|p| PhasePeak {
                phase: p.phase,
                gib: p.total_gib,
            })
            .collect(),
        per_extra_picture_gib: train.extra_sample_gib,
        gpu: gpu.cloned(),
        budget_gib: budget,
        fits,
        max_batch_that_fits: budget.map(|bud| max_batch(plan, model, bud)),
        min_gpu_gb: total / (1.0 - SAFETY_MARGIN),
        changes_that_fit,
        accuracy: ACCURACY.into(),
    }
}

pub fn weights_word(w: BaseWeights) -> &'static str {
    match w {
        BaseWeights::Full => "full precision",
        BaseWeights::Fp8 => "8-bit float (fp8)",
        BaseWeights::Int8 => "8-bit integers (int8)",
        BaseWeights::Int4 => "4-bit integers (int4)",
        BaseWeights::Nf4 => "4-bit (NF4)",
    }
}

#[cfg(test)]
mod tests;
