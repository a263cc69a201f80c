//! The memory model itself: what a training run holds on the GPU in each of
//! its phases — loading (and quantising) the base model, encoding captions
//! and pictures for the caches, the training steps, making sample pictures,
//! saving a checkpoint — part by part.
//!
//! The fitted constants live in [`Fit`]; [`FITTED`] holds the values the
//! calibration in `calibration.rs` found on the measured peaks it lists.

use serde::Serialize;

use super::super::catalog::{Architecture, DenoiserKind};

pub(super) const GIB: f64 = 1_073_741_824.0;

/// Whose code runs the training: the trainers differ in how much their
/// gradient checkpointing keeps, where they quantise, and what they leave on
/// the GPU while caching.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trainer {
    Kohya,
    SimpleTuner,
    AiToolkit,
    /// Our burn engine: naive attention memory, op-level checkpointing.
    Native,
    /// The Hugging Face diffusers example scripts (calibration points only).
    Diffusers,
}

/// A phase of a run, in the order they happen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Loading the base model at start (and quantising it, where that
    /// happens on the GPU).
    Load,
    /// Encoding every caption once for the text-embedding cache.
    CacheText,
    /// Encoding every picture once for the latent cache.
    CacheLatents,
    /// The training steps.
    Train,
    /// Making sample pictures during training.
    Sample,
    /// Saving a checkpoint.
    Save,
}

impl Phase {
    pub const ALL: [Phase; 6] = [
        Phase::Load,
        Phase::CacheText,
        Phase::CacheLatents,
        Phase::Train,
        Phase::Sample,
        Phase::Save,
    ];

    /// "while …" words for the summary.
    pub fn words(self, quantising: bool) -> &'static str {
        match self {
            Phase::Load if quantising => "while quantising the base model at start",
            Phase::Load => "while loading the base model at start",
            Phase::CacheText => "while encoding the captions at start",
            Phase::CacheLatents => "while encoding the pictures at start",
            Phase::Train => "during the training steps",
            Phase::Sample => "while making sample pictures",
            Phase::Save => "while saving a checkpoint",
        }
    }
}

/// The fitted constants of the model (see `calibration.rs` for the fit).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Fit {
    /// Allocator, cuDNN/cuBLAS workspaces and other runtime memory, GiB.
    pub runtime_overhead_gib: f64,
    /// CUDA context and the allocator's cache: what `nvidia-smi` shows on
    /// top of PyTorch's own peak, GiB.
    pub cuda_context_gib: f64,
    /// Scales the catalog's activation constant of the UNets.
    pub unet_activation_scale: f64,
    /// Scales the catalog's activation constant of the transformers.
    pub dit_activation_scale: f64,
    /// Share of the activations SimpleTuner and ai-toolkit keep with
    /// gradient checkpointing on a UNet (diffusers' per-block checkpointing).
    pub checkpointing_unet: f64,
    /// The same share on a transformer.
    pub checkpointing_dit: f64,
    /// The share kohya's own Flux implementation keeps (it checkpoints each
    /// double and single block of its own model code).
    pub checkpointing_kohya_dit: f64,
    /// Memory kohya's Flux LoRA training (`lora_flux`) holds per trainable number beyond
    /// its weight, gradient and optimizer state, bytes. Fitted on kohya's
    /// rank-128 reports, which hold about 12 GiB more than their weights,
    /// gradients, optimizer state and checkpointed activations add up to;
    /// what holds it (autocast copies, optimizer scratch) is not identified.
    pub kohya_lora_working_bytes: f64,
}

/// The constants fitted on the calibration table (`calibration.rs`).
pub const FITTED: Fit = Fit {
    runtime_overhead_gib: 0.9398,
    cuda_context_gib: 1.5346,
    unet_activation_scale: 0.9664,
    dit_activation_scale: 1.1082,
    checkpointing_unet: 0.1182,
    checkpointing_dit: 0.0672,
    checkpointing_kohya_dit: 0.02,
    kohya_lora_working_bytes: 21.57,
};

/// Extra activation memory per sample when a text encoder is trained, GiB.
const TEXT_ENCODER_TRAINING_GIB_PER_SAMPLE: f64 = 0.35;
/// Transient memory of encoding a picture with the VAE, GiB per megapixel
/// (`vram.md` §A.5: 1–3 GiB for SDXL's VAE at 1024²).
const VAE_ENCODE_GIB_PER_MP: f64 = 1.5;
/// Transient memory of decoding a sample picture with the VAE, GiB per
/// megapixel: the decoder's largest feature maps are 128 channels at full
/// size (256 MiB per map at 1024² in 16 bits), a few alive at once. An
/// estimate from the layer shapes; no public measurement was found.
const VAE_DECODE_GIB_PER_MP: f64 = 1.2;
/// Share of the training activations (without checkpointing) a
/// forward-only pass holds at its peak (about one block's working set).
/// An estimate from the block structure, not a measurement.
const INFERENCE_ACTIVATION_SHARE: f64 = 0.1;
/// Working memory of a text encoder encoding one caption, GiB.
const TEXT_ENCODE_WORKING_GIB: f64 = 0.3;
/// Fraction of activations burn still holds with its op-level checkpointing
/// (it recomputes memory-bound ops only, `vram.md` §B.6); an assumption
/// until measured.
const NATIVE_CHECKPOINTING_FACTOR: f64 = 0.5;

/// Everything the memory model needs, in the trainers' terms.
#[derive(Debug, Clone)]
pub struct MemorySetup<'a> {
    pub arch: &'a Architecture,
    pub trainer: Trainer,
    pub width: u32,
    pub height: u32,
    pub batch: u32,
    /// Trainable LoRA parameters on the denoiser.
    pub lora_params: f64,
    /// Bytes per LoRA parameter (4 for fp32 master weights, 2 for bf16).
    pub lora_bytes: f64,
    /// Optimizer state bytes per trainable parameter.
    pub optimizer_state_bytes: f64,
    /// Bytes per frozen denoiser parameter.
    pub base_bytes: f64,
    /// Denoiser parameters kept in CPU memory by block swapping.
    pub swapped_params: f64,
    /// Denoiser parameters of the largest block in flight while swapping.
    pub swap_buffer_params: f64,
    /// Bytes per text-encoder parameter while on the GPU.
    pub text_encoder_bytes: f64,
    pub gradient_checkpointing: bool,
    /// Text encoders stay on the GPU during training (not cached, or trained).
    pub text_encoders_resident: bool,
    /// Captions are encoded once at start (the text-encoder caching phase).
    pub cache_text: bool,
    /// Pictures are encoded once at start; otherwise the VAE stays on the
    /// GPU and encodes every step.
    pub cache_latents: bool,
    /// Trainable LoRA parameters on the text encoders (0 when not trained).
    pub text_encoder_lora_params: f64,
    /// The base model is quantised on the GPU at start (it passes through
    /// the GPU in 16 bits).
    pub quantize_on_gpu: bool,
    /// The denoiser stays on the GPU while the caches are filled.
    pub denoiser_during_caching: bool,
    /// Sample pictures are made during training.
    pub sample_images: bool,
    /// Include the CUDA context (compare with a card's size or `nvidia-smi`),
    /// or not (compare with PyTorch's `max_memory_allocated`).
    pub device_total: bool,
}

/// One part of the estimate.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct VramComponent {
    /// What takes the memory.
    pub part: String,
    /// GiB.
    pub gib: f64,
    /// Why it is this big, in plain words.
    pub why: String,
}

/// The training phase: a fixed part and a per-sample part.
#[derive(Debug, Clone)]
pub struct MemoryBreakdown {
    pub components: Vec<VramComponent>,
    /// Everything that does not grow with the batch.
    pub static_gib: f64,
    /// Working memory of the first sample.
    pub first_sample_gib: f64,
    /// Working memory of each further sample.
    pub extra_sample_gib: f64,
}

impl MemoryBreakdown {
    pub fn total_gib(&self, batch: u32) -> f64 {
        self.static_gib
            + self.first_sample_gib
            + f64::from(batch.saturating_sub(1)) * self.extra_sample_gib
    }
}

/// One phase's peak, part by part.
#[derive(Debug, Clone)]
pub struct PhaseBreakdown {
    pub phase: Phase,
    pub components: Vec<VramComponent>,
    pub total_gib: f64,
}

fn gb(x: f64) -> String {
    format!("{x:.1} GB")
}

/// Image megapixels plus, for transformers, the text tokens in the same sequence.
fn sequence_megapixels(arch: &Architecture, width: u32, height: u32) -> (f64, f64) {
    let image = f64::from(width) * f64::from(height) / 1_048_576.0;
    let seq = match arch.denoiser_kind {
        DenoiserKind::Unet => image,
        DenoiserKind::Dit => image + f64::from(arch.text_tokens) / 4096.0,
    };
    (image, seq)
}

/// Activation memory of one sample without checkpointing, GiB per megapixel.
fn activation_gib_per_mp(arch: &Architecture, fit: &Fit) -> f64 {
    arch.activation_gib_per_mp
        * match arch.denoiser_kind {
            DenoiserKind::Unet => fit.unet_activation_scale,
            DenoiserKind::Dit => fit.dit_activation_scale,
        }
}

/// The share of activations this trainer's gradient checkpointing keeps.
pub fn checkpointing_share(trainer: Trainer, kind: DenoiserKind, fit: &Fit) -> f64 {
    match (trainer, kind) {
        (Trainer::Native, _) => NATIVE_CHECKPOINTING_FACTOR,
        (Trainer::Kohya, DenoiserKind::Dit) => fit.checkpointing_kohya_dit,
        // kohya's UNets checkpoint per block like diffusers'; no kohya
        // measurement without checkpointing was found to fit it separately.
        (_, DenoiserKind::Unet) => fit.checkpointing_unet,
        (_, DenoiserKind::Dit) => fit.checkpointing_dit,
    }
}

/// The parts of a phase; the plain-words reasons are only written when
/// asked for (the calibration fit evaluates the model many thousand times).
struct Parts {
    parts: Vec<VramComponent>,
    explain: bool,
}

impl Parts {
    fn new(explain: bool) -> Self {
        Parts {
            parts: Vec::new(),
            explain,
        }
    }

    fn push(&mut self, part: &str, gib: f64, why: impl FnOnce() -> String) {
        self.parts.push(VramComponent {
            part: part.to_string(),
            gib,
            why: if self.explain { why() } else { String::new() },
        });
    }

    fn total(&self) -> f64 {
        self.parts.iter().map(|c| c.gib).sum()
    }
}

fn denoiser_word(arch: &Architecture) -> &'static str {
    match arch.denoiser_kind {
        DenoiserKind::Unet => "base model (UNet)",
        DenoiserKind::Dit => "base model (transformer)",
    }
}

/// The denoiser's resident weights (less what block swapping keeps on the CPU).
fn push_denoiser(p: &mut Parts, s: &MemorySetup) {
    let arch = s.arch;
    let all = arch.denoiser_params as f64;
    let swapped = s.swapped_params.clamp(0.0, all);
    let resident = all - swapped;
    if swapped > 0.0 {
        p.push(
            denoiser_word(arch),
            (resident + s.swap_buffer_params) * s.base_bytes / GIB,
            || format!(
                "{:.1} of {:.1} billion frozen weights at {} bytes each stay on the GPU; block swapping keeps the rest in CPU memory and brings one block at a time",
                resident / 1e9,
                all / 1e9,
                s.base_bytes
            ),);
    } else {
        p.push(denoiser_word(arch), all * s.base_bytes / GIB, || {
            format!(
                "{:.1} billion frozen weights at {} bytes each",
                all / 1e9,
                s.base_bytes
            )
        });
    }
}

fn text_encoder_params(arch: &Architecture) -> (u64, String) {
    let params: u64 = arch.text_encoders.iter().map(|t| t.params).sum();
    let names: Vec<&str> = arch.text_encoders.iter().map(|t| t.name).collect();
    (params, names.join(" + "))
}

fn push_overhead(p: &mut Parts, s: &MemorySetup, fit: &Fit) {
    p.push("runtime overhead", fit.runtime_overhead_gib, || {
        "PyTorch's allocator and math-library workspaces".into()
    });
    if s.device_total {
        p.push("CUDA context", fit.cuda_context_gib, || {
            "the driver's own memory for the process".into()
        });
    }
}

fn push_resident_text_encoders(p: &mut Parts, s: &MemorySetup) {
    if s.text_encoders_resident {
        let (params, names) = text_encoder_params(s.arch);
        p.push(
            "text encoders",
            params as f64 * s.text_encoder_bytes / GIB,
            || {
                format!(
                    "{names} stay on the GPU because {}",
                    if s.text_encoder_lora_params > 0.0 {
                        "a text encoder is trained"
                    } else {
                        "captions are not cached"
                    }
                )
            },
        );
    }
}

/// The training steps, by component, with the batch split out.
pub fn train_breakdown(s: &MemorySetup, fit: &Fit) -> MemoryBreakdown {
    train_parts(s, fit, true)
}

fn train_parts(s: &MemorySetup, fit: &Fit, explain: bool) -> MemoryBreakdown {
    let arch = s.arch;
    let mut p = Parts::new(explain);
    push_denoiser(&mut p, s);
    push_resident_text_encoders(&mut p, s);
    if !s.cache_latents {
        p.push("VAE", arch.vae_params as f64 * 2.0 / GIB, || {
            "the picture encoder stays on the GPU because latents are not cached".into()
        });
    }
    let per_param = 2.0 * s.lora_bytes;
    p.push(
        "LoRA weights and gradients",
        s.lora_params * per_param / GIB,
        || {
            format!(
                "{:.1} million trainable numbers at {} bytes, each with its gradient",
                s.lora_params / 1e6,
                s.lora_bytes
            )
        },
    );
    p.push(
        "optimizer state",
        s.lora_params * s.optimizer_state_bytes / GIB,
        || {
            format!(
                "{} bytes of optimizer memory per trainable number",
                s.optimizer_state_bytes
            )
        },
    );
    if s.trainer == Trainer::Kohya
        && arch.denoiser_kind == DenoiserKind::Dit
        && fit.kohya_lora_working_bytes > 0.0
    {
        p.push(
            "LoRA working memory",
            (s.lora_params + s.text_encoder_lora_params) * fit.kohya_lora_working_bytes / GIB,
            || format!(
                "16-bit copies and optimizer scratch space, about {:.1} bytes per trainable number",
                fit.kohya_lora_working_bytes
            ),);
    }
    if s.text_encoder_lora_params > 0.0 {
        p.push(
            "text-encoder LoRA",
            s.text_encoder_lora_params * (per_param + s.optimizer_state_bytes) / GIB,
            || "the text encoder's LoRA with its gradients and optimizer state".into(),
        );
    }
    push_overhead(&mut p, s, fit);
    let static_gib = p.total();

    let (image_mp, seq_mp) = sequence_megapixels(arch, s.width, s.height);
    let checkpointing = if s.gradient_checkpointing {
        checkpointing_share(s.trainer, arch.denoiser_kind, fit)
    } else {
        1.0
    };
    let activations = seq_mp * activation_gib_per_mp(arch, fit) * checkpointing;
    let floor = if s.gradient_checkpointing {
        seq_mp * arch.extra_sample_floor_gib_per_mp
    } else {
        0.0
    };
    let mut side = 0.0;
    if s.text_encoder_lora_params > 0.0 {
        side += TEXT_ENCODER_TRAINING_GIB_PER_SAMPLE;
    }
    if !s.cache_latents {
        side += image_mp * VAE_ENCODE_GIB_PER_MP;
    }
    if s.trainer == Trainer::Native {
        side += seq_mp * seq_mp * arch.native_attention_gib_per_mp2;
    }
    let first_sample_gib = activations + side;
    let extra_sample_gib = activations.max(floor) + side;
    let batch = s.batch.max(1);
    let act_total = first_sample_gib + f64::from(batch - 1) * extra_sample_gib;
    p.push("activations", act_total, || {
        format!(
            "in-between results kept for learning: {batch} picture(s) of {}×{} at {} each{}",
            s.width,
            s.height,
            gb(first_sample_gib),
            if s.gradient_checkpointing {
                ", reduced by gradient checkpointing"
            } else {
                ", without gradient checkpointing"
            }
        )
    });
    MemoryBreakdown {
        components: p.parts,
        static_gib,
        first_sample_gib,
        extra_sample_gib,
    }
}

/// One phase's peak, by component; `None` when the run has no such phase.
pub fn phase_breakdown(s: &MemorySetup, phase: Phase, fit: &Fit) -> Option<PhaseBreakdown> {
    phase_parts(s, phase, fit, true)
}

/// One phase's peak in GiB, without the words.
pub fn phase_gib(s: &MemorySetup, phase: Phase, fit: &Fit) -> Option<f64> {
    phase_parts(s, phase, fit, false).map(|p| p.total_gib)
}

fn phase_parts(s: &MemorySetup, phase: Phase, fit: &Fit, explain: bool) -> Option<PhaseBreakdown> {
    let arch = s.arch;
    let mut p = Parts::new(explain);
    match phase {
        Phase::Train => {
            let b = train_parts(s, fit, explain);
            let total = b.total_gib(s.batch);
            return Some(PhaseBreakdown {
                phase,
                components: b.components,
                total_gib: total,
            });
        }
        Phase::Load => {
            if s.quantize_on_gpu && s.swapped_params <= 0.0 {
                p.push(
                    "base model at 16 bits while quantising",
                    arch.denoiser_params as f64 * 2.0 / GIB,
                    || "the trainer moves the whole base model to the GPU in 16 bits and quantises it there; loading and quantising on the CPU avoids this".into(),);
            } else {
                push_denoiser(&mut p, s);
            }
        }
        Phase::CacheText => {
            if !s.cache_text {
                return None;
            }
            if s.denoiser_during_caching {
                push_denoiser(&mut p, s);
            }
            let (params, names) = text_encoder_params(arch);
            p.push(
                "text encoders",
                params as f64 * s.text_encoder_bytes / GIB,
                || format!("{names} encode every caption once"),
            );
            p.push("encoding", TEXT_ENCODE_WORKING_GIB, || {
                "working memory of encoding one caption".into()
            });
        }
        Phase::CacheLatents => {
            if !s.cache_latents {
                return None;
            }
            if s.denoiser_during_caching {
                push_denoiser(&mut p, s);
            }
            let (image_mp, _) = sequence_megapixels(arch, s.width, s.height);
            p.push("VAE", arch.vae_params as f64 * 2.0 / GIB, || {
                "the picture encoder encodes every picture once".into()
            });
            p.push("encoding", image_mp * VAE_ENCODE_GIB_PER_MP, || {
                format!(
                    "working memory of encoding one {}×{} picture",
                    s.width, s.height
                )
            });
        }
        Phase::Sample => {
            if !s.sample_images {
                return None;
            }
            push_denoiser(&mut p, s);
            push_resident_text_encoders(&mut p, s);
            p.push(
                "LoRA and optimizer state",
                s.lora_params * (s.lora_bytes + s.optimizer_state_bytes) / GIB,
                || "the LoRA and its optimizer memory stay while pictures are made".into(),
            );
            let (image_mp, seq_mp) = sequence_megapixels(arch, s.width, s.height);
            // UNets and SD3.5 run the prompt and the negative prompt together;
            // Flux-dev has its guidance built in.
            let guidance = match (arch.denoiser_kind, arch.text_tokens) {
                (DenoiserKind::Dit, 512) => 1.0,
                _ => 2.0,
            };
            // Denoising, then decoding: their working memories come one
            // after the other, so the larger of the two counts.
            let denoise =
                seq_mp * activation_gib_per_mp(arch, fit) * INFERENCE_ACTIVATION_SHARE * guidance;
            let decode = image_mp * VAE_DECODE_GIB_PER_MP;
            p.push("VAE", arch.vae_params as f64 * 2.0 / GIB, || {
                "the picture decoder comes to the GPU to turn samples into pixels".into()
            });
            if decode >= denoise {
                p.push("VAE decoding", decode, || {
                    format!(
                        "working memory of decoding a {}×{} sample (more than one denoising step needs)",
                        s.width, s.height
                    )
                });
            } else {
                p.push("picture making", denoise, || {
                    format!(
                        "working memory of one denoising step of a {}×{} sample, without learning (more than decoding it needs)",
                        s.width, s.height
                    )
                });
            }
        }
        Phase::Save => {
            push_denoiser(&mut p, s);
            push_resident_text_encoders(&mut p, s);
            p.push(
                "LoRA, optimizer state and the saved copy",
                s.lora_params * (s.lora_bytes + s.optimizer_state_bytes + 2.0) / GIB,
                || "the LoRA is copied to 16 bits to be written".into(),
            );
        }
    }
    push_overhead(&mut p, s, fit);
    let total = p.total();
    Some(PhaseBreakdown {
        phase,
        components: p.parts,
        total_gib: total,
    })
}

/// Every phase the run has, in order.
pub fn all_phases(s: &MemorySetup, fit: &Fit) -> Vec<PhaseBreakdown> {
    Phase::ALL
        .iter()
        .filter_map(|ph| phase_breakdown(s, *ph, fit))
        .collect()
}
