//! How much GPU memory a LoRA training run needs, before it runs.
//!
//! The estimate adds up what sits on the GPU at the peak: the frozen
//! denoiser (by storage precision), text encoders and VAE unless their
//! outputs are cached, the LoRA weights with their gradients and optimizer
//! state, the activations of the batch (proportional to batch × pixels,
//! reduced by gradient checkpointing), and a fixed runtime overhead. The
//! constants come from a fit to 24 measured runs of PyTorch trainers
//! (SimpleTuner's benchmark sweep and project docs; `research/vram.md` A.4):
//! mean error about 10 %. A plan fits when the estimate, as `nvidia-smi` would
//! show it, stays within 80 % of the card (a 20 % safety margin).

use serde::{Deserialize, Serialize};

use super::catalog::{Architecture, ModelSpec};

const GIB: f64 = 1024.0 * 1024.0 * 1024.0;
/// Allocator, workspaces and other runtime overhead (GiB).
const RUNTIME_OVERHEAD: f64 = 0.82;
/// CUDA context and allocator cache, seen by `nvidia-smi` but not by PyTorch's allocator (GiB).
const CONTEXT_OVERHEAD: f64 = 0.94;
/// Fraction of activation memory kept with gradient checkpointing.
const CHECKPOINT_KEEP_UNET: f64 = 0.154;
const CHECKPOINT_KEEP_DIT: f64 = 0.086;
/// DiT activations per megapixel per (billion parameters / 1000 hidden width).
const DIT_ACTIVATION_SCALE: f64 = 5.39;
/// Part of the GPU an estimate may use: the rest is the safety margin.
pub const SAFE_FRACTION: f64 = 0.8;
/// Batch sizes beyond this are not proposed (the per-sample cost is the least certain part).
pub const MAX_BATCH: u32 = 16;

/// How the frozen weights are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Precision {
    Fp32,
    Fp16,
    Bf16,
    /// 8-bit float storage with bf16 compute (kohya `fp8_base`).
    Fp8,
    Int8,
    /// 4-bit NormalFloat (QLoRA).
    Nf4,
    Int4,
}

impl Precision {
    /// Bytes per parameter in memory, including quantisation scales.
    pub fn bytes(self) -> f64 {
        match self {
            Precision::Fp32 => 4.0,
            Precision::Fp16 | Precision::Bf16 => 2.0,
            Precision::Fp8 | Precision::Int8 => 1.02,
            Precision::Nf4 => 0.5625,
            Precision::Int4 => 0.53,
        }
    }

    /// The next smaller storage a plan can shrink to.
    pub fn smaller(self) -> Option<Precision> {
        match self {
            Precision::Fp32 => Some(Precision::Bf16),
            Precision::Fp16 | Precision::Bf16 => Some(Precision::Fp8),
            Precision::Fp8 | Precision::Int8 => Some(Precision::Nf4),
            Precision::Nf4 | Precision::Int4 => None,
        }
    }
}

/// The optimizer, which decides how much state each trained parameter carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Optimizer {
    #[serde(rename = "adamw")]
    AdamW,
    #[serde(rename = "adamw8bit")]
    AdamW8bit,
    Prodigy,
    Lion,
    Adafactor,
}

impl Optimizer {
    /// Optimizer state bytes per trained parameter.
    pub fn state_bytes(self) -> f64 {
        match self {
            Optimizer::AdamW => 8.0,
            Optimizer::AdamW8bit => 2.0,
            Optimizer::Prodigy => 16.0,
            Optimizer::Lion => 4.0,
            Optimizer::Adafactor => 0.5,
        }
    }
}

/// Which layers get LoRA adapters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum LoraTarget {
    /// Attention projections only.
    Attention,
    /// Every linear layer (attention, feed-forward, projections).
    All,
}

/// Everything that decides peak training memory.
#[derive(Debug, Clone)]
pub struct MemoryConfig<'a> {
    pub model: &'a ModelSpec,
    pub width: u32,
    pub height: u32,
    pub batch: u32,
    pub rank: u32,
    pub target: LoraTarget,
    pub optimizer: Optimizer,
    pub base_precision: Precision,
    /// LoRA weights kept in bf16 (2 bytes) instead of fp32 master copies (4 bytes).
    pub lora_bf16: bool,
    pub gradient_checkpointing: bool,
    pub cache_text_encoder_outputs: bool,
    pub cache_latents: bool,
    pub train_text_encoder: bool,
}

/// One part of the estimate.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct MemoryPart {
    pub name: String,
    pub gib: f64,
    /// Why it costs this much, in words.
    pub why: String,
}

/// A memory estimate, part by part.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct MemoryEstimate {
    pub parts: Vec<MemoryPart>,
    /// Peak as PyTorch's allocator reports it (GiB).
    pub allocated_gib: f64,
    /// Peak as `nvidia-smi` shows it, with the CUDA context (GiB): compare this with the card.
    pub total_gib: f64,
    /// Memory that does not grow with the batch (GiB, `nvidia-smi` level).
    pub static_gib: f64,
    /// Memory each extra sample in the batch adds (GiB).
    pub per_sample_gib: f64,
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// Activation GiB per megapixel-equivalent of one sample without checkpointing.
fn activation_per_mp(model: &ModelSpec) -> f64 {
    match model.size.architecture {
        Architecture::Unet => model.size.activation_gib_per_mp,
        Architecture::Dit => {
            DIT_ACTIVATION_SCALE * model.size.denoiser_b * 1000.0
                / f64::from(model.size.hidden.max(1))
        }
    }
}

/// Sequence size of one sample in megapixel-equivalents (DiTs also attend over the text).
fn sample_size(model: &ModelSpec, width: u32, height: u32) -> f64 {
    let mp = f64::from(width) * f64::from(height) / (1024.0 * 1024.0);
    match model.size.architecture {
        Architecture::Unet => mp,
        Architecture::Dit => mp + f64::from(model.size.text_tokens) / 4096.0,
    }
}

/// Estimates the peak memory of training with `c`.
pub fn estimate(c: &MemoryConfig) -> MemoryEstimate {
    let size = &c.model.size;
    let mut parts = Vec::new();
    let mut part = |name: &str, gib: f64, why: String| {
        if gib > 0.0 {
            parts.push(MemoryPart {
                name: name.into(),
                gib: round2(gib),
                why,
            });
        }
    };
    part(
        "runtime",
        RUNTIME_OVERHEAD + CONTEXT_OVERHEAD,
        "CUDA context, allocator cache and workspaces".into(),
    );
    part(
        "denoiser weights",
        size.denoiser_b * 1e9 * c.base_precision.bytes() / GIB,
        format!(
            "{:.2} billion frozen parameters at {} bytes each ({:?})",
            size.denoiser_b,
            c.base_precision.bytes(),
            c.base_precision
        ),
    );
    if !c.cache_text_encoder_outputs || c.train_text_encoder {
        part(
            "text encoders",
            size.text_encoders_b * 1e9 * 2.0 / GIB,
            format!(
                "{:.2} billion parameters kept on the GPU because their outputs are not cached",
                size.text_encoders_b
            ),
        );
    }
    if !c.cache_latents {
        part(
            "VAE",
            size.vae_b * 1e9 * 2.0 / GIB,
            "encodes each picture on the fly because latents are not cached".into(),
        );
    }
    let lora_bytes = if c.lora_bf16 { 2.0 } else { 4.0 };
    let per_rank = match c.target {
        LoraTarget::Attention => size.lora_attention_m_per_rank,
        LoraTarget::All => size.lora_all_m_per_rank,
    };
    let lora_params = per_rank * 1e6 * f64::from(c.rank);
    part(
        "LoRA + optimizer",
        lora_params * (2.0 * lora_bytes + c.optimizer.state_bytes()) / GIB,
        format!(
            "{:.1} million trained parameters: weights and gradients ({lora_bytes} bytes each) plus {:?} state ({} bytes)",
            lora_params / 1e6,
            c.optimizer,
            c.optimizer.state_bytes()
        ),
    );
    if c.train_text_encoder {
        let te = size.te_lora_m_per_rank * 1e6 * f64::from(c.rank);
        part(
            "text-encoder LoRA",
            te * (2.0 * lora_bytes + c.optimizer.state_bytes()) / GIB + 0.35 * f64::from(c.batch),
            "training the text encoder adds its adapters and its activations".into(),
        );
    }
    let keep = if c.gradient_checkpointing {
        match size.architecture {
            Architecture::Unet => CHECKPOINT_KEEP_UNET,
            Architecture::Dit => CHECKPOINT_KEEP_DIT,
        }
    } else {
        1.0
    };
    let s = sample_size(c.model, c.width, c.height);
    let first = s * activation_per_mp(c.model) * keep;
    // The fit rests mostly on batch-1 runs; extra samples are costed no lower than
    // a floor from batch sweeps, so a large batch is never promised on thin evidence.
    let floor = match size.architecture {
        Architecture::Unet => s * activation_per_mp(c.model) * 0.125,
        Architecture::Dit if size.denoiser_b > 9.0 => s * 3.0,
        Architecture::Dit => 0.0,
    };
    let per_sample = first.max(floor);
    part(
        "activations",
        first + per_sample * f64::from(c.batch.saturating_sub(1)),
        format!(
            "{} sample(s) of {}×{}{}",
            c.batch,
            c.width,
            c.height,
            if c.gradient_checkpointing {
                ", recomputed in the backward pass (gradient checkpointing)"
            } else {
                ", all kept for the backward pass"
            }
        ),
    );
    let total: f64 = parts.iter().map(|p| p.gib).sum();
    let activations = parts
        .iter()
        .find(|p| p.name == "activations")
        .map_or(0.0, |p| p.gib);
    MemoryEstimate {
        allocated_gib: round2(total - CONTEXT_OVERHEAD),
        total_gib: round2(total),
        static_gib: round2(total - activations),
        per_sample_gib: round2(per_sample),
        parts,
    }
}

/// The largest batch that fits `vram_gib` with the safety margin (0 when even one sample does not).
pub fn largest_batch(c: &MemoryConfig, vram_gib: f64) -> u32 {
    let mut batch = 0;
    for b in 1..=MAX_BATCH {
        let e = estimate(&MemoryConfig {
            batch: b,
            ..c.clone()
        });
        if e.total_gib <= vram_gib * SAFE_FRACTION {
            batch = b;
        } else {
            break;
        }
    }
    batch
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::catalog::{ModelSize, lookup};

    /// Chroma (8.9B, Flux-like) is in the measured data but not in our catalog.
    fn chroma() -> ModelSpec {
        let flux = lookup("flux-dev").unwrap();
        ModelSpec {
            id: "chroma",
            size: ModelSize {
                denoiser_b: 8.9,
                lora_all_m_per_rank: 3.6,
                ..flux.size.clone()
            },
            ..flux.clone()
        }
    }

    /// A measured run: (label, model, side, batch, rank, target, base precision, GC, metric is nvidia-smi, GiB).
    type Point = (
        &'static str,
        &'static str,
        u32,
        u32,
        u32,
        LoraTarget,
        Precision,
        bool,
        bool,
        f64,
    );

    /// research/vram.md A.1, every point used in the fit: SimpleTuner's benchmark sweep
    /// (peak allocated, adamw_bf16, text-encoder outputs and latents cached) and its Flux docs.
    const MEASURED: &[Point] = &[
        (
            "ST-sd15-bf16-nogc",
            "sd15",
            512,
            1,
            16,
            LoraTarget::Attention,
            Precision::Bf16,
            false,
            false,
            2.87,
        ),
        (
            "ST-sd15-bf16-gc",
            "sd15",
            512,
            1,
            16,
            LoraTarget::Attention,
            Precision::Bf16,
            true,
            false,
            1.98,
        ),
        (
            "ST-sd15-int8-gc",
            "sd15",
            512,
            1,
            16,
            LoraTarget::Attention,
            Precision::Int8,
            true,
            false,
            1.79,
        ),
        (
            "ST-sd15-fp8-gc",
            "sd15",
            512,
            1,
            16,
            LoraTarget::Attention,
            Precision::Fp8,
            true,
            false,
            1.96,
        ),
        (
            "ST-sdxl-bf16-nogc",
            "sdxl",
            1024,
            1,
            8,
            LoraTarget::Attention,
            Precision::Bf16,
            false,
            false,
            13.03,
        ),
        (
            "ST-sdxl-bf16-gc",
            "sdxl",
            1024,
            1,
            8,
            LoraTarget::Attention,
            Precision::Bf16,
            true,
            false,
            6.53,
        ),
        (
            "ST-sdxl-int8-gc",
            "sdxl",
            1024,
            1,
            8,
            LoraTarget::Attention,
            Precision::Int8,
            true,
            false,
            4.64,
        ),
        (
            "ST-sdxl-fp8-gc",
            "sdxl",
            1024,
            1,
            8,
            LoraTarget::Attention,
            Precision::Fp8,
            true,
            false,
            5.10,
        ),
        (
            "ST-sd35m-bf16-nogc",
            "sd35-medium",
            1024,
            3,
            128,
            LoraTarget::Attention,
            Precision::Bf16,
            false,
            false,
            34.59,
        ),
        (
            "ST-sd35m-bf16-gc",
            "sd35-medium",
            1024,
            3,
            128,
            LoraTarget::Attention,
            Precision::Bf16,
            true,
            false,
            7.67,
        ),
        (
            "ST-sd35m-int8-gc",
            "sd35-medium",
            1024,
            3,
            128,
            LoraTarget::Attention,
            Precision::Int8,
            true,
            false,
            6.58,
        ),
        (
            "ST-sd35m-fp8-gc",
            "sd35-medium",
            1024,
            3,
            128,
            LoraTarget::Attention,
            Precision::Fp8,
            true,
            false,
            5.69,
        ),
        (
            "ST-sd35m-fp8-nogc",
            "sd35-medium",
            1024,
            3,
            128,
            LoraTarget::Attention,
            Precision::Fp8,
            false,
            false,
            35.21,
        ),
        (
            "ST-chroma-bf16-nogc",
            "chroma",
            1024,
            1,
            16,
            LoraTarget::All,
            Precision::Bf16,
            false,
            false,
            26.18,
        ),
        (
            "ST-chroma-bf16-gc",
            "chroma",
            1024,
            1,
            16,
            LoraTarget::All,
            Precision::Bf16,
            true,
            false,
            17.67,
        ),
        (
            "ST-chroma-int8-gc",
            "chroma",
            1024,
            1,
            16,
            LoraTarget::All,
            Precision::Int8,
            true,
            false,
            10.41,
        ),
        (
            "ST-chroma-fp8-gc",
            "chroma",
            1024,
            1,
            16,
            LoraTarget::All,
            Precision::Fp8,
            true,
            false,
            10.64,
        ),
        (
            "STdoc-flux-bf16",
            "flux-dev",
            1024,
            1,
            16,
            LoraTarget::All,
            Precision::Bf16,
            true,
            true,
            30.00,
        ),
        (
            "STdoc-flux-int8",
            "flux-dev",
            1024,
            1,
            16,
            LoraTarget::All,
            Precision::Int8,
            true,
            true,
            18.00,
        ),
        (
            "STdoc-flux-int4",
            "flux-dev",
            1024,
            1,
            16,
            LoraTarget::All,
            Precision::Int4,
            true,
            true,
            13.00,
        ),
        (
            "STdoc-flux-nf4",
            "flux-dev",
            1024,
            1,
            16,
            LoraTarget::All,
            Precision::Nf4,
            true,
            true,
            9.00,
        ),
    ];

    fn predict(p: &Point, chroma: &ModelSpec) -> f64 {
        let (_, model, side, batch, rank, target, precision, gc, smi, _) = *p;
        let spec = if model == "chroma" {
            chroma
        } else {
            lookup(model).unwrap()
        };
        let e = estimate(&MemoryConfig {
            model: spec,
            width: side,
            height: side,
            batch,
            rank,
            target,
            optimizer: Optimizer::Lion, // adamw_bf16: bf16 states, 4 bytes per parameter
            base_precision: precision,
            lora_bf16: true,
            gradient_checkpointing: gc,
            cache_text_encoder_outputs: true,
            cache_latents: true,
            train_text_encoder: false,
        });
        if smi { e.total_gib } else { e.allocated_gib }
    }

    #[test]
    fn calibration_error_is_within_bounds() {
        let chroma = chroma();
        let mut errors = Vec::new();
        for p in MEASURED {
            let err = (predict(p, &chroma) - p.9) / p.9;
            assert!(
                err.abs() <= 0.40,
                "{}: predicted {:.2}, measured {:.2} ({:+.0} %)",
                p.0,
                predict(p, &chroma),
                p.9,
                err * 100.0
            );
            errors.push(err.abs());
        }
        let mae = errors.iter().sum::<f64>() / errors.len() as f64;
        let worst = errors.iter().cloned().fold(0.0, f64::max);
        eprintln!(
            "calibration: {} points, mean absolute error {:.1} %, worst {:.1} %",
            errors.len(),
            mae * 100.0,
            worst * 100.0
        );
        assert!(mae <= 0.15, "mean absolute error {:.1} %", mae * 100.0);
    }

    #[test]
    fn reported_out_of_memory_configs_are_predicted_not_to_fit() {
        // Flux in bf16 needs "a bit more than 30G" (SimpleTuner docs): it cannot fit a 24 GB card,
        // nor 1024 px on a 12 GB one in any precision short of 4 bits; SDXL without
        // checkpointing at 1024 px does not fit 12 GB.
        let flux = lookup("flux-dev").unwrap();
        let base = MemoryConfig {
            model: flux,
            width: 1024,
            height: 1024,
            batch: 1,
            rank: 16,
            target: LoraTarget::All,
            optimizer: Optimizer::AdamW8bit,
            base_precision: Precision::Bf16,
            lora_bf16: true,
            gradient_checkpointing: true,
            cache_text_encoder_outputs: true,
            cache_latents: true,
            train_text_encoder: false,
        };
        assert_eq!(largest_batch(&base, 24.0), 0);
        assert_eq!(
            largest_batch(
                &MemoryConfig {
                    base_precision: Precision::Fp8,
                    ..base.clone()
                },
                12.0
            ),
            0
        );
        let sdxl = MemoryConfig {
            model: lookup("sdxl").unwrap(),
            gradient_checkpointing: false,
            target: LoraTarget::Attention,
            ..base
        };
        assert_eq!(largest_batch(&sdxl, 12.0), 0);
    }

    #[test]
    fn breakdown_names_every_part_and_batch_grows_it() {
        let c = MemoryConfig {
            model: lookup("sdxl").unwrap(),
            width: 1024,
            height: 1024,
            batch: 1,
            rank: 32,
            target: LoraTarget::Attention,
            optimizer: Optimizer::AdamW8bit,
            base_precision: Precision::Bf16,
            lora_bf16: false,
            gradient_checkpointing: true,
            cache_text_encoder_outputs: false,
            cache_latents: false,
            train_text_encoder: false,
        };
        let one = estimate(&c);
        let names: Vec<&str> = one.parts.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "runtime",
                "denoiser weights",
                "text encoders",
                "VAE",
                "LoRA + optimizer",
                "activations"
            ]
        );
        let four = estimate(&MemoryConfig {
            batch: 4,
            ..c.clone()
        });
        assert!((four.total_gib - one.total_gib - 3.0 * one.per_sample_gib).abs() < 0.05);
        assert!(largest_batch(&c, 24.0) > largest_batch(&c, 12.0));
    }
}
