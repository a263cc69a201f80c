//! How much GPU memory a training plan needs at its peak, whether that fits
//! a card with a 20 % safety margin, and how to shrink a plan until it does.
//!
//! The model is the one fitted in `research/vram.md` §A.4 on measured peaks
//! of PyTorch trainers (SimpleTuner's sweep, the Hugging Face FLUX QLoRA post,
//! kohya's Flux PR): frozen weights by precision, text encoders and VAE unless
//! cached, LoRA weights with their gradients and optimizer state, activations
//! proportional to batch × pixels (reduced by gradient checkpointing), and a
//! fixed overhead. The calibration table in the tests holds those points and
//! bounds the error. Our own engine has not measured its peaks yet; for it
//! the estimate adds the attention memory burn keeps for backward (§B.6).

use serde::Serialize;

use super::catalog::{Architecture, DenoiserKind, ModelSpec};
use super::gpu::Gpu;
use super::training::{Backend, BaseWeights, LoraCoverage, Optimizer, Precision, TrainingPlan};

const GIB: f64 = 1_073_741_824.0;
/// Allocator, cuDNN/cuBLAS workspaces and other runtime memory (fitted).
const RUNTIME_OVERHEAD_GIB: f64 = 0.82;
/// CUDA context and the allocator's cache: what `nvidia-smi` shows on top of
/// PyTorch's own peak (fitted).
const CUDA_CONTEXT_GIB: f64 = 0.94;
/// Extra activation memory per sample when a text encoder is trained (fitted).
const TEXT_ENCODER_TRAINING_GIB_PER_SAMPLE: f64 = 0.35;
/// Transient memory of encoding a picture with the VAE during training when
/// latents are not cached (§A.5: 1–3 GiB for SDXL's VAE at 1024²).
const VAE_ENCODE_GIB_PER_MP: f64 = 1.5;
/// Fraction of activations burn still holds with its op-level checkpointing
/// (it recomputes memory-bound ops only, §B.6); an assumption until measured.
const NATIVE_CHECKPOINTING_FACTOR: f64 = 0.5;
/// The share of the card kept free: a plan fits when its peak is at most 80 %.
pub const SAFETY_MARGIN: f64 = 0.20;
/// We never suggest a larger batch: the per-sample slope is the least certain
/// part of the model (most anchors are batch 1).
pub const MAX_SUGGESTED_BATCH: u32 = 16;

/// Everything the memory model needs, in the trainers' terms.
#[derive(Debug, Clone)]
pub struct MemorySetup<'a> {
    pub arch: &'a Architecture,
    pub width: u32,
    pub height: u32,
    pub batch: u32,
    /// Trainable LoRA parameters on the denoiser.
    pub lora_params: f64,
    /// Bytes per LoRA parameter (4 for fp32 master weights, 2 for pure bf16).
    pub lora_bytes: f64,
    /// Optimizer state bytes per trainable parameter.
    pub optimizer_state_bytes: f64,
    /// Bytes per frozen denoiser parameter.
    pub base_bytes: f64,
    /// Bytes per text-encoder parameter while resident.
    pub text_encoder_bytes: f64,
    pub gradient_checkpointing: bool,
    /// Text encoders stay on the GPU (not cached, or trained).
    pub text_encoders_resident: bool,
    /// The VAE stays on the GPU and encodes every step (latents not cached).
    pub vae_resident: bool,
    /// Trainable LoRA parameters on the text encoders (0 when not trained).
    pub text_encoder_lora_params: f64,
    /// Our burn engine: naive attention memory, op-level checkpointing.
    pub native_engine: bool,
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

/// The model's answer for one setup: a fixed part and a per-sample part.
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

    /// The largest batch (≤ [`MAX_SUGGESTED_BATCH`]) whose peak stays within
    /// `budget_gib`; 0 when not even one picture fits.
    pub fn max_batch(&self, budget_gib: f64) -> u32 {
        (1..=MAX_SUGGESTED_BATCH)
            .take_while(|b| self.total_gib(*b) <= budget_gib)
            .last()
            .unwrap_or(0)
    }
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

fn gb(x: f64) -> String {
    format!("{x:.1} GB")
}

/// Peak memory of one setup, by component.
pub fn breakdown(setup: &MemorySetup) -> MemoryBreakdown {
    let arch = setup.arch;
    let mut components = Vec::new();
    let mut push = |part: &str, gib: f64, why: String| {
        components.push(VramComponent {
            part: part.to_string(),
            gib,
            why,
        })
    };
    let denoiser = arch.denoiser_params as f64 * setup.base_bytes / GIB;
    push(
        match arch.denoiser_kind {
            DenoiserKind::Unet => "base model (UNet)",
            DenoiserKind::Dit => "base model (transformer)",
        },
        denoiser,
        format!(
            "{:.1} billion frozen weights at {} bytes each",
            arch.denoiser_params as f64 / 1e9,
            setup.base_bytes
        ),
    );
    if setup.text_encoders_resident {
        let params: u64 = arch.text_encoders.iter().map(|t| t.params).sum();
        let names: Vec<&str> = arch.text_encoders.iter().map(|t| t.name).collect();
        push(
            "text encoders",
            params as f64 * setup.text_encoder_bytes / GIB,
            format!(
                "{} stay on the GPU because captions are not cached{}",
                names.join(" + "),
                if setup.text_encoder_lora_params > 0.0 {
                    " and a text encoder is trained"
                } else {
                    ""
                }
            ),
        );
    }
    if setup.vae_resident {
        push(
            "VAE",
            arch.vae_params as f64 * 2.0 / GIB,
            "the picture encoder stays on the GPU because latents are not cached".into(),
        );
    }
    let per_param = 2.0 * setup.lora_bytes;
    push(
        "LoRA weights and gradients",
        setup.lora_params * per_param / GIB,
        format!(
            "{:.1} million trainable numbers, each with its gradient",
            setup.lora_params / 1e6
        ),
    );
    push(
        "optimizer state",
        setup.lora_params * setup.optimizer_state_bytes / GIB,
        format!(
            "{} bytes of optimizer memory per trainable number",
            setup.optimizer_state_bytes
        ),
    );
    if setup.text_encoder_lora_params > 0.0 {
        push(
            "text-encoder LoRA",
            setup.text_encoder_lora_params * (per_param + setup.optimizer_state_bytes) / GIB,
            "the text encoder's LoRA with its gradients and optimizer state".into(),
        );
    }
    push(
        "runtime overhead",
        RUNTIME_OVERHEAD_GIB,
        "PyTorch's allocator and math-library workspaces".into(),
    );
    if setup.device_total {
        push(
            "CUDA context",
            CUDA_CONTEXT_GIB,
            "the driver's own memory for the process".into(),
        );
    }
    let static_gib: f64 = components.iter().map(|c| c.gib).sum();

    let (image_mp, seq_mp) = sequence_megapixels(arch, setup.width, setup.height);
    let checkpointing = match (setup.gradient_checkpointing, setup.native_engine) {
        (false, _) => 1.0,
        (true, false) => arch.checkpointing_factor,
        (true, true) => NATIVE_CHECKPOINTING_FACTOR,
    };
    let activations = seq_mp * arch.activation_gib_per_mp * checkpointing;
    let floor = if setup.gradient_checkpointing {
        seq_mp * arch.extra_sample_floor_gib_per_mp
    } else {
        0.0
    };
    let mut side = 0.0;
    if setup.text_encoder_lora_params > 0.0 {
        side += TEXT_ENCODER_TRAINING_GIB_PER_SAMPLE;
    }
    if setup.vae_resident {
        side += image_mp * VAE_ENCODE_GIB_PER_MP;
    }
    if setup.native_engine {
        side += seq_mp * seq_mp * arch.native_attention_gib_per_mp2;
    }
    let first_sample_gib = activations + side;
    let extra_sample_gib = activations.max(floor) + side;
    let batch = setup.batch.max(1);
    let act_total = first_sample_gib + f64::from(batch - 1) * extra_sample_gib;
    components.push(VramComponent {
        part: "activations".into(),
        gib: act_total,
        why: format!(
            "in-between results kept for learning: {batch} picture(s) of {}×{} at {} each{}",
            setup.width,
            setup.height,
            gb(first_sample_gib),
            if setup.gradient_checkpointing {
                ", reduced by gradient checkpointing"
            } else {
                ", without gradient checkpointing"
            }
        ),
    });
    MemoryBreakdown {
        components,
        static_gib,
        first_sample_gib,
        extra_sample_gib,
    }
}

/// Bytes per frozen denoiser weight (§A.4: fp8/int8 carry scales, NF4 its
/// block constants).
pub fn base_bytes(precision: Precision, weights: BaseWeights) -> f64 {
    match (weights, precision) {
        (BaseWeights::Full, Precision::Fp32) => 4.0,
        (BaseWeights::Full, _) => 2.0,
        (BaseWeights::Fp8 | BaseWeights::Int8, _) => 1.02,
        (BaseWeights::Nf4, _) => 0.5625,
    }
}

/// The memory setup a plan asks of its backend, at `batch`.
pub fn setup_for_plan<'a>(
    plan: &TrainingPlan,
    model: &'a ModelSpec,
    batch: u32,
) -> MemorySetup<'a> {
    let arch = model.architecture;
    let per_rank = match plan.backend.lora_coverage(model.family) {
        LoraCoverage::Attention => arch.lora_params_per_rank_attention,
        LoraCoverage::AllLinear => arch.lora_params_per_rank_all,
    };
    // SimpleTuner's AdamW is `adamw_bf16`: bf16 weights and bf16 state.
    let simpletuner_bf16_adamw = plan.backend == Backend::SimpleTuner
        && plan.optimizer == Optimizer::AdamW
        && plan.precision == Precision::Bf16;
    let (lora_bytes, optimizer_state_bytes) = if simpletuner_bf16_adamw {
        (2.0, 4.0)
    } else {
        (4.0, plan.optimizer.state_bytes())
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
    MemorySetup {
        arch,
        width: plan.resolution,
        height: plan.resolution,
        batch,
        lora_params: per_rank as f64 * f64::from(plan.rank),
        lora_bytes,
        optimizer_state_bytes,
        base_bytes: base_bytes(plan.precision, plan.base_weights),
        text_encoder_bytes: if plan.precision == Precision::Fp32 {
            4.0
        } else {
            2.0
        },
        gradient_checkpointing: plan.gradient_checkpointing,
        text_encoders_resident: !plan.cache_text_embeddings || plan.train_text_encoder,
        vae_resident: !plan.cache_latents,
        text_encoder_lora_params,
        native_engine: plan.backend == Backend::Native,
        device_total: true,
    }
}

/// Peak memory of a plan as it stands.
pub fn plan_breakdown(plan: &TrainingPlan, model: &ModelSpec) -> MemoryBreakdown {
    breakdown(&setup_for_plan(plan, model, plan.batch_size))
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

/// How much memory a plan needs, and whether it fits the GPU.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct VramEstimate {
    pub base_model: String,
    /// Peak GPU memory, GiB (as `nvidia-smi` would show it).
    pub total_gib: f64,
    /// Where the memory goes, largest first.
    pub components: Vec<VramComponent>,
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
            "Training {} this way needs about {:.1} GB of GPU memory at its peak (mostly {}).",
            self.base_model,
            self.total_gib,
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

const ACCURACY: &str = "Calibrated on 25 measured training peaks from SimpleTuner, kohya and diffusers (mean error under 15 %, none worse than 40 %); batches above 1 and the Ategnatos engine are less certain. A 2-step dry run (gate 4) measures the real peak.";

/// Estimates a plan's peak memory and compares it with `gpu`.
pub fn estimate_vram(plan: &TrainingPlan, model: &ModelSpec, gpu: Option<&Gpu>) -> VramEstimate {
    let b = plan_breakdown(plan, model);
    let total = b.total_gib(plan.batch_size);
    let mut components = b.components.clone();
    components.sort_by(|x, y| y.gib.total_cmp(&x.gib));
    let budget = gpu.map(|g| g.vram_gib * (1.0 - SAFETY_MARGIN));
    let fits = budget.map(|bud| total <= bud);
    let changes_that_fit = match (fits, budget) {
        (Some(false), Some(bud)) => single_changes(plan, model)
            .into_iter()
            .filter_map(|(change, p)| {
                let t = plan_breakdown(&p, model).total_gib(p.batch_size);
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
        components,
        per_extra_picture_gib: b.extra_sample_gib,
        gpu: gpu.cloned(),
        budget_gib: budget,
        fits,
        max_batch_that_fits: budget.map(|bud| b.max_batch(bud)),
        min_gpu_gb: total / (1.0 - SAFETY_MARGIN),
        changes_that_fit,
        accuracy: ACCURACY.into(),
    }
}

/// Each change the shrink ladder could make, applied alone.
fn single_changes(plan: &TrainingPlan, model: &ModelSpec) -> Vec<(String, TrainingPlan)> {
    let support = plan.backend.support();
    let mut out = Vec::new();
    let mut try_change = |what: String, f: &dyn Fn(&mut TrainingPlan)| {
        let mut p = plan.clone();
        f(&mut p);
        if p != *plan {
            out.push((what, p));
        }
    };
    try_change("train 1 picture per step".into(), &|p| p.batch_size = 1);
    try_change("turn on gradient checkpointing".into(), &|p| {
        p.gradient_checkpointing = true
    });
    try_change("cache latents".into(), &|p| p.cache_latents = true);
    if support.text_encoder_training.is_empty() || !plan.train_text_encoder {
        try_change("cache text embeddings".into(), &|p| {
            p.cache_text_embeddings = true
        });
    } else {
        try_change(
            "stop training the text encoder and cache text embeddings".into(),
            &|p| {
                p.train_text_encoder = false;
                p.text_encoder_lr = None;
                p.cache_text_embeddings = true
            },
        );
    }
    if support.optimizers.contains(&Optimizer::AdamW8bit) && plan.optimizer == Optimizer::AdamW {
        try_change("use the 8-bit AdamW optimizer".into(), &|p| {
            p.optimizer = Optimizer::AdamW8bit
        });
    }
    for w in [BaseWeights::Fp8, BaseWeights::Nf4] {
        if support.base_weights.contains(&w) && plan.base_weights == BaseWeights::Full {
            try_change(
                format!("store the base model in {}", weights_word(w)),
                &|p| p.base_weights = w,
            );
        }
    }
    let lower = plan
        .resolution
        .saturating_sub(256)
        .max(model.native_resolution / 2);
    if lower < plan.resolution && lower >= 256 {
        try_change(
            format!(
                "train at {lower}×{lower} instead of {0}×{0}",
                plan.resolution
            ),
            &|p| p.resolution = lower,
        );
    }
    out
}

pub fn weights_word(w: BaseWeights) -> &'static str {
    match w {
        BaseWeights::Full => "full precision",
        BaseWeights::Fp8 => "8-bit float (fp8)",
        BaseWeights::Int8 => "8-bit integers (int8)",
        BaseWeights::Nf4 => "4-bit (NF4)",
    }
}

/// Plan fields the user chose explicitly; the shrink ladder leaves them alone.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Locked {
    pub batch_size: bool,
    pub gradient_checkpointing: bool,
    pub cache_latents: bool,
    pub cache_text_embeddings: bool,
    pub train_text_encoder: bool,
    pub optimizer: bool,
    pub base_weights: bool,
}

/// One rung of the shrink ladder.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct ShrinkStep {
    /// 1, 2, ... in the order they were taken.
    pub step: u32,
    /// What changed (`batch 4 → 1`).
    pub change: String,
    /// Why this saves memory, and what it costs, in plain words.
    pub why: String,
    pub before_gib: f64,
    pub after_gib: f64,
    /// True when the plan fits after this step.
    pub fits: bool,
}

/// What the shrink ladder did to a plan.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct ShrinkReport {
    pub gpu: Gpu,
    pub budget_gib: f64,
    pub start_gib: f64,
    pub end_gib: f64,
    pub fits: bool,
    /// The changes, in order; empty when the plan already fit.
    pub steps: Vec<ShrinkStep>,
    /// Choices the user made that the ladder did not touch.
    pub kept: Vec<String>,
    /// The plan after the changes.
    pub plan: TrainingPlan,
}

impl ShrinkReport {
    pub fn plain_summary(&self) -> String {
        if self.steps.is_empty() && self.fits {
            return format!(
                "The plan fits the {} as it is ({:.1} GB of {:.1} GB allowed).",
                self.gpu.name, self.end_gib, self.budget_gib
            );
        }
        let changes: Vec<String> = self.steps.iter().map(|s| s.change.clone()).collect();
        let mut s = format!(
            "The plan needed {:.1} GB but the {} allows {:.1} GB (80 % of {:.0} GB). Changed: {}.",
            self.start_gib,
            self.gpu.name,
            self.budget_gib,
            self.gpu.vram_gib,
            changes.join("; ")
        );
        if self.fits {
            s.push_str(&format!(" It now needs {:.1} GB and fits.", self.end_gib));
        } else {
            s.push_str(&format!(
                " Even so it needs {:.1} GB: it does not fit this GPU. Use one with at least {:.0} GB, or a lower resolution.",
                self.end_gib,
                (self.end_gib / (1.0 - SAFETY_MARGIN)).ceil()
            ));
        }
        if !self.kept.is_empty() {
            s.push_str(&format!(" Kept as you chose: {}.", self.kept.join(", ")));
        }
        s
    }
}

/// Shrinks a plan until it fits `gpu`: first the batch, then gradient
/// checkpointing, then caching, then lower precision (8-bit optimizer state,
/// then 8-bit and 4-bit base weights where the backend has them). Each change
/// is reported with why it helps; it stops as soon as the plan fits.
pub fn shrink_to_fit(
    plan: &TrainingPlan,
    model: &ModelSpec,
    gpu: &Gpu,
    locked: &Locked,
) -> ShrinkReport {
    let budget = gpu.vram_gib * (1.0 - SAFETY_MARGIN);
    let total = |p: &TrainingPlan| plan_breakdown(p, model).total_gib(p.batch_size);
    let start = total(plan);
    let mut current = plan.clone();
    let mut steps: Vec<ShrinkStep> = Vec::new();
    let mut kept = Vec::new();
    let support = plan.backend.support();

    type Rung = (
        bool,
        &'static str,
        fn(&TrainingPlan, &ModelSpec, f64) -> Option<(TrainingPlan, String, String)>,
    );
    let rungs: [Rung; 7] = [
        (locked.batch_size, "the batch size", rung_batch),
        (
            locked.gradient_checkpointing,
            "gradient checkpointing off",
            rung_checkpointing,
        ),
        (
            locked.cache_latents,
            "latents not cached",
            rung_cache_latents,
        ),
        (
            locked.cache_text_embeddings || locked.train_text_encoder,
            "text encoder training / uncached captions",
            rung_cache_text,
        ),
        (locked.optimizer, "the optimizer", rung_optimizer_8bit),
        (locked.base_weights, "the base model's precision", rung_fp8),
        (locked.base_weights, "the base model's precision", rung_nf4),
    ];
    for (is_locked, what, rung) in rungs {
        let before = total(&current);
        if before <= budget {
            break;
        }
        let Some((next, change, why)) = rung(&current, model, budget) else {
            continue;
        };
        if is_locked {
            if !kept.contains(&what.to_string()) {
                kept.push(what.to_string());
            }
            continue;
        }
        if !next_supported(&next, &support) {
            continue;
        }
        let after = total(&next);
        steps.push(ShrinkStep {
            step: steps.len() as u32 + 1,
            change,
            why,
            before_gib: before,
            after_gib: after,
            fits: after <= budget,
        });
        current = next;
    }
    let end = total(&current);
    ShrinkReport {
        gpu: gpu.clone(),
        budget_gib: budget,
        start_gib: start,
        end_gib: end,
        fits: end <= budget,
        steps,
        kept,
        plan: current,
    }
}

fn next_supported(p: &TrainingPlan, s: &super::training::BackendSupport) -> bool {
    s.optimizers.contains(&p.optimizer) && s.base_weights.contains(&p.base_weights)
}

fn rung_batch(
    p: &TrainingPlan,
    model: &ModelSpec,
    budget: f64,
) -> Option<(TrainingPlan, String, String)> {
    if p.batch_size <= 1 {
        return None;
    }
    let b = plan_breakdown(p, model);
    let new = b.max_batch(budget).clamp(1, p.batch_size);
    if new == p.batch_size {
        return None;
    }
    let mut next = p.clone();
    next.batch_size = new;
    Some((
        next,
        format!("batch {} → {new}", p.batch_size),
        format!(
            "each picture in a step needs its own working memory (about {:.1} GB here); fewer pictures per step means more, smaller steps over the same pictures",
            b.extra_sample_gib
        ),
    ))
}

fn rung_checkpointing(
    p: &TrainingPlan,
    _: &ModelSpec,
    _: f64,
) -> Option<(TrainingPlan, String, String)> {
    (!p.gradient_checkpointing).then(|| {
        let mut next = p.clone();
        next.gradient_checkpointing = true;
        (
            next,
            "gradient checkpointing on".into(),
            "the trainer keeps only some in-between results and recomputes the rest when it learns: much less memory, about 20 % slower".into(),
        )
    })
}

fn rung_cache_latents(
    p: &TrainingPlan,
    _: &ModelSpec,
    _: f64,
) -> Option<(TrainingPlan, String, String)> {
    (!p.cache_latents).then(|| {
        let mut next = p.clone();
        next.cache_latents = true;
        (
            next,
            "cache latents".into(),
            "every picture is encoded once before training, so the picture encoder (VAE) leaves the GPU; random crops and flips are then fixed per picture".into(),
        )
    })
}

fn rung_cache_text(
    p: &TrainingPlan,
    _: &ModelSpec,
    _: f64,
) -> Option<(TrainingPlan, String, String)> {
    if p.cache_text_embeddings && !p.train_text_encoder {
        return None;
    }
    let mut next = p.clone();
    next.cache_text_embeddings = true;
    let (change, extra) = if p.train_text_encoder {
        next.train_text_encoder = false;
        next.text_encoder_lr = None;
        (
            "stop training the text encoder; cache text embeddings",
            " The text encoder no longer learns; the image model still learns the trigger word.",
        )
    } else {
        ("cache text embeddings", "")
    };
    Some((
        next,
        change.into(),
        format!(
            "every caption is encoded once before training, so the text encoders leave the GPU.{extra}"
        ),
    ))
}

fn rung_optimizer_8bit(
    p: &TrainingPlan,
    _: &ModelSpec,
    _: f64,
) -> Option<(TrainingPlan, String, String)> {
    (p.optimizer == Optimizer::AdamW).then(|| {
        let mut next = p.clone();
        next.optimizer = Optimizer::AdamW8bit;
        (
            next,
            "optimizer AdamW → AdamW8bit".into(),
            "the optimizer keeps its memory in 8 bits instead of 32: a quarter of the size, practically the same result".into(),
        )
    })
}

fn rung_fp8(p: &TrainingPlan, _: &ModelSpec, _: f64) -> Option<(TrainingPlan, String, String)> {
    (p.base_weights == BaseWeights::Full && p.precision != Precision::Fp32).then(|| {
        let mut next = p.clone();
        next.base_weights = BaseWeights::Fp8;
        (
            next,
            "base model in fp8".into(),
            "the frozen base model is stored in 8 bits and computed in 16: half its memory, a small loss of fine detail".into(),
        )
    })
}

fn rung_nf4(p: &TrainingPlan, _: &ModelSpec, _: f64) -> Option<(TrainingPlan, String, String)> {
    (matches!(p.base_weights, BaseWeights::Full | BaseWeights::Fp8) && p.precision != Precision::Fp32).then(|| {
        let mut next = p.clone();
        next.base_weights = BaseWeights::Nf4;
        (
            next,
            "base model in 4-bit (NF4)".into(),
            "the frozen base model is stored in 4 bits (QLoRA): a quarter of its memory, slower steps and a little less fidelity".into(),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::catalog::{self, FLUX_ARCH, SD15_ARCH, SD35_MEDIUM_ARCH, SDXL_ARCH};
    use crate::plan::gpu;
    use crate::plan::training::tests::sample_plan;

    /// Chroma (a Flux derivative) appears in SimpleTuner's sweep; it is not in
    /// our catalog, so its numbers live here: 8.9B parameters, Flux's width,
    /// and Flux's all-linear LoRA count less the per-block modulation layers
    /// Chroma removed (4.79M − 1.28M per rank).
    static CHROMA_ARCH: Architecture = Architecture {
        denoiser_params: 8_900_000_000,
        lora_params_per_rank_all: 3_510_000,
        activation_gib_per_mp: 5.39 * 8.9 * 1000.0 / 3072.0,
        ..FLUX_ARCH
    };

    #[derive(Clone, Copy)]
    enum Metric {
        /// `torch.cuda.max_memory_allocated`.
        Allocated,
        /// `nvidia-smi` or a rounded figure in a project's docs.
        DeviceTotal,
    }

    struct Point {
        id: &'static str,
        arch: &'static Architecture,
        res: (u32, u32),
        batch: u32,
        lora_params: f64,
        lora_bytes: f64,
        state_bytes: f64,
        base_bytes: f64,
        checkpointing: bool,
        metric: Metric,
        measured_gib: f64,
    }

    const M: f64 = 1e6;
    // Precision bytes: bf16 2, fp8/int8 1.02, int4 0.53, nf4 0.5625.
    // SimpleTuner's `adamw_bf16`: bf16 LoRA (2 bytes) and bf16 state (4 bytes).
    #[rustfmt::skip]
    fn calibration_points() -> Vec<Point> {
        use Metric::*;
        let st = |id, arch, res, batch, lora_params, base_bytes, checkpointing, measured_gib| Point {
            id, arch, res, batch, lora_params, lora_bytes: 2.0, state_bytes: 4.0, base_bytes,
            checkpointing, metric: Allocated, measured_gib,
        };
        let doc = |p: Point| Point { metric: DeviceTotal, ..p };
        let sd15 = 0.20 * M * 16.0;
        let sdxl = 1.30 * M * 8.0;
        let sd35m = 0.75 * M * 128.0;
        let chroma = 3.51 * M * 16.0;
        let flux_all = 4.79 * M * 16.0;
        vec![
            // [S1] SimpleTuner SEGMENTED_CHECKPOINTING.md sweep, H100, peak allocated,
            // latents and text embeddings cached. (The W8A8 int8 no-checkpointing rows
            // are left out: a compute mode the plan cannot express.)
            st("ST-sd15-bf16-nogc", &SD15_ARCH, (512, 512), 1, sd15, 2.0, false, 2.87),
            st("ST-sd15-bf16-gc", &SD15_ARCH, (512, 512), 1, sd15, 2.0, true, 1.98),
            st("ST-sd15-int8-gc", &SD15_ARCH, (512, 512), 1, sd15, 1.02, true, 1.79),
            st("ST-sd15-fp8ao-gc", &SD15_ARCH, (512, 512), 1, sd15, 1.02, true, 1.96),
            st("ST-sdxl-bf16-nogc", &SDXL_ARCH, (1024, 1024), 1, sdxl, 2.0, false, 13.03),
            st("ST-sdxl-bf16-gc", &SDXL_ARCH, (1024, 1024), 1, sdxl, 2.0, true, 6.53),
            st("ST-sdxl-int8-gc", &SDXL_ARCH, (1024, 1024), 1, sdxl, 1.02, true, 4.64),
            st("ST-sdxl-fp8ao-gc", &SDXL_ARCH, (1024, 1024), 1, sdxl, 1.02, true, 5.10),
            st("ST-sd35m-bf16-nogc", &SD35_MEDIUM_ARCH, (1024, 1024), 3, sd35m, 2.0, false, 34.59),
            st("ST-sd35m-bf16-gc", &SD35_MEDIUM_ARCH, (1024, 1024), 3, sd35m, 2.0, true, 7.67),
            st("ST-sd35m-int8-gc", &SD35_MEDIUM_ARCH, (1024, 1024), 3, sd35m, 1.02, true, 6.58),
            st("ST-sd35m-fp8wo-gc", &SD35_MEDIUM_ARCH, (1024, 1024), 3, sd35m, 1.02, true, 5.69),
            st("ST-sd35m-fp8wo-nogc", &SD35_MEDIUM_ARCH, (1024, 1024), 3, sd35m, 1.02, false, 35.21),
            st("ST-chroma-bf16-nogc", &CHROMA_ARCH, (1024, 1024), 1, chroma, 2.0, false, 26.18),
            st("ST-chroma-bf16-gc", &CHROMA_ARCH, (1024, 1024), 1, chroma, 2.0, true, 17.67),
            st("ST-chroma-int8-gc", &CHROMA_ARCH, (1024, 1024), 1, chroma, 1.02, true, 10.41),
            st("ST-chroma-fp8ao-gc", &CHROMA_ARCH, (1024, 1024), 1, chroma, 1.02, true, 10.64),
            // [S2] SimpleTuner FLUX quickstart: rank-16 LoRA on every layer, GiB per the docs.
            doc(st("STdoc-flux-bf16", &FLUX_ARCH, (1024, 1024), 1, flux_all, 2.0, true, 30.0)),
            doc(st("STdoc-flux-int8", &FLUX_ARCH, (1024, 1024), 1, flux_all, 1.02, true, 18.0)),
            doc(st("STdoc-flux-int4", &FLUX_ARCH, (1024, 1024), 1, flux_all, 0.53, true, 13.0)),
            doc(st("STdoc-flux-nf4", &FLUX_ARCH, (1024, 1024), 1, flux_all, 0.5625, true, 9.0)),
            // "lowest VRAM utilisation (9090M): nf4-bnb, Lion 8Bit Paged, 512px, bs1".
            Point { state_bytes: 1.0, ..doc(st("STdoc-flux-nf4-lion8-512", &FLUX_ARCH, (512, 512), 1, flux_all, 0.5625, true, 8.88)) },
            // [S3] Hugging Face FLUX QLoRA post, RTX 4090: rank 4 on attention, 512×768,
            // AdamW8bit, fp32 LoRA weights, latents and text embeddings cached.
            Point { lora_bytes: 4.0, state_bytes: 2.0, ..doc(st("HF-flux-qlora-nf4", &FLUX_ARCH, (512, 768), 1, 1.16736 * M * 4.0, 0.5625, true, 9.0)) },
            Point { lora_bytes: 4.0, state_bytes: 2.0, ..doc(st("HF-flux-lora-bf16", &FLUX_ARCH, (512, 768), 1, 1.16736 * M * 4.0, 2.0, true, 26.0)) },
            // [S4] kohya sd-scripts PR #1374, A6000: rank 4, fp8_base, full_bf16, Adafactor,
            // everything cached (resolution not stated: kohya's Flux default 1024 assumed).
            Point { state_bytes: 0.5, ..doc(st("kohya-flux-fp8-adafactor", &FLUX_ARCH, (1024, 1024), 1, 4.79 * M * 4.0, 1.02, true, 17.0)) },
        ]
    }

    fn predict(p: &Point) -> f64 {
        let setup = MemorySetup {
            arch: p.arch,
            width: p.res.0,
            height: p.res.1,
            batch: p.batch,
            lora_params: p.lora_params,
            lora_bytes: p.lora_bytes,
            optimizer_state_bytes: p.state_bytes,
            base_bytes: p.base_bytes,
            text_encoder_bytes: 2.0,
            gradient_checkpointing: p.checkpointing,
            text_encoders_resident: false,
            vae_resident: false,
            text_encoder_lora_params: 0.0,
            native_engine: false,
            device_total: matches!(p.metric, Metric::DeviceTotal),
        };
        breakdown(&setup).total_gib(p.batch)
    }

    #[test]
    fn calibration_error_is_bounded() {
        let points = calibration_points();
        let mut errors = Vec::new();
        for p in &points {
            let pred = predict(p);
            let err = (pred - p.measured_gib) / p.measured_gib;
            eprintln!(
                "{:<28} measured {:>6.2}  predicted {:>6.2}  {:+.0} %",
                p.id,
                p.measured_gib,
                pred,
                err * 100.0
            );
            errors.push((p.id, err.abs()));
        }
        let mae = errors.iter().map(|e| e.1).sum::<f64>() / errors.len() as f64;
        let worst = errors
            .iter()
            .copied()
            .fold(("", 0.0), |a, b| if b.1 > a.1 { b } else { a });
        eprintln!(
            "{} points, mean absolute error {:.1} %, worst {} {:.1} %",
            errors.len(),
            mae * 100.0,
            worst.0,
            worst.1 * 100.0
        );
        assert!(points.len() >= 25);
        assert!(mae <= 0.15, "mean absolute error {:.1} %", mae * 100.0);
        assert!(
            worst.1 <= 0.40,
            "{} is off by {:.1} %",
            worst.0,
            worst.1 * 100.0
        );
    }

    /// A plan-level setup for the out-of-memory reports below.
    fn plan_for(model: &str, backend: Backend, f: impl Fn(&mut TrainingPlan)) -> TrainingPlan {
        let mut p = sample_plan();
        p.base_model = model.into();
        p.backend = backend;
        f(&mut p);
        p
    }

    fn fits(plan: &TrainingPlan, card: &str) -> (bool, f64) {
        let model = plan.model().unwrap();
        let gpu = gpu::lookup(card).unwrap();
        let e = estimate_vram(plan, model, Some(&gpu));
        (e.fits.unwrap(), e.total_gib)
    }

    #[test]
    fn every_reported_out_of_memory_is_predicted_not_to_fit() {
        let cases = [
            // kohya sd-scripts #648: SDXL, bs 2, rank 16, AdamW8bit, fp16, checkpointing,
            // latents cached, text encoders trained; OOM on a 12 GB card.
            (
                "kohya#648 SDXL TE-training bs2 on 12 GB",
                plan_for("sdxl", Backend::Kohya, |p| {
                    p.batch_size = 2;
                    p.rank = 16;
                    p.alpha = 8.0;
                    p.precision = Precision::Fp16;
                    p.train_text_encoder = true;
                    p.cache_text_embeddings = false;
                    p.text_encoder_lr = Some(1e-4);
                }),
                "RTX 3060",
            ),
            // bmaltais/kohya_ss #3329: SDXL on an 8 GB RTX 3070 Ti without checkpointing or
            // cached captions; fixed by turning both on.
            (
                "kohya_ss#3329 SDXL no-GC on 8 GB",
                plan_for("sdxl", Backend::Kohya, |p| {
                    p.batch_size = 1;
                    p.rank = 8;
                    p.gradient_checkpointing = false;
                    p.cache_text_embeddings = false;
                }),
                "8GB",
            ),
            // Hugging Face FLUX QLoRA post: a bf16 Flux LoRA needs 26 GB, more than a 24 GB RTX 4090.
            (
                "HF flux bf16 LoRA on 24 GB",
                plan_for("flux-dev", Backend::AiToolkit, |p| {
                    p.batch_size = 1;
                    p.rank = 4;
                    p.alpha = 4.0;
                    p.resolution = 768;
                }),
                "RTX 4090",
            ),
            // kohya's Flux docs: fp8_base without block swapping needs more than 16 GB.
            (
                "kohya Flux fp8 on 16 GB",
                plan_for("flux-dev", Backend::Kohya, |p| {
                    p.batch_size = 1;
                    p.rank = 16;
                    p.alpha = 16.0;
                    p.base_weights = BaseWeights::Fp8;
                }),
                "RTX 4080",
            ),
            // SimpleTuner FLUX quickstart: 1024 px needs at least 12 GB even in NF4.
            (
                "SimpleTuner Flux nf4 1024 on 10 GB",
                plan_for("flux-dev", Backend::SimpleTuner, |p| {
                    p.batch_size = 1;
                    p.rank = 16;
                    p.alpha = 16.0;
                    p.base_weights = BaseWeights::Nf4;
                }),
                "RTX 3080",
            ),
            // The same quickstart: fp8 (int8-class) Flux at 1024 px is past a 12 GB card.
            (
                "SimpleTuner Flux fp8 1024 on 12 GB",
                plan_for("flux-dev", Backend::SimpleTuner, |p| {
                    p.batch_size = 1;
                    p.rank = 16;
                    p.alpha = 16.0;
                    p.base_weights = BaseWeights::Fp8;
                }),
                "RTX 3060",
            ),
        ];
        for (name, plan, card) in cases {
            let (fit, total) = fits(&plan, card);
            assert!(!fit, "{name}: predicted {total:.1} GiB fits {card}");
        }
    }

    #[test]
    fn kohyas_8gb_sdxl_recipe_stays_under_8_gib() {
        // docs/train_SDXL-en.md: "8GB possible, 10GB recommended" with unet-only,
        // cached text encoder outputs and latents, 8-bit optimizer, dim 4-8.
        let plan = plan_for("sdxl", Backend::Kohya, |p| {
            p.batch_size = 1;
            p.rank = 4;
            p.alpha = 4.0;
        });
        let (fits_10, total) = fits(&plan, "RTX 3080");
        assert!(total < 8.0, "{total}");
        assert!(fits_10, "{total}");
    }

    #[test]
    fn breakdown_names_its_parts_and_batch_grows_it() {
        let plan = sample_plan();
        let model = catalog::lookup("sdxl").unwrap();
        let e = estimate_vram(&plan, model, Some(&gpu::lookup("4090").unwrap()));
        let parts: Vec<&str> = e.components.iter().map(|c| c.part.as_str()).collect();
        for part in [
            "base model (UNet)",
            "activations",
            "optimizer state",
            "CUDA context",
        ] {
            assert!(parts.contains(&part), "{parts:?}");
        }
        let sum: f64 = e.components.iter().map(|c| c.gib).sum();
        assert!((sum - e.total_gib).abs() < 1e-9);
        assert!(e.fits.unwrap());
        let max = e.max_batch_that_fits.unwrap();
        assert!((2..=MAX_SUGGESTED_BATCH).contains(&max), "{max}");
        let b = plan_breakdown(&plan, model);
        assert!(b.total_gib(max) <= e.budget_gib.unwrap());
        assert!(max == MAX_SUGGESTED_BATCH || b.total_gib(max + 1) > e.budget_gib.unwrap());
        assert!(e.plain_summary().contains("fits the RTX 4090"));
    }

    #[test]
    fn a_plan_too_big_for_8_gb_is_shrunk_step_by_step() {
        let mut plan = sample_plan();
        plan.batch_size = 4;
        plan.gradient_checkpointing = false;
        plan.cache_latents = false;
        plan.cache_text_embeddings = false;
        plan.train_text_encoder = true;
        plan.text_encoder_lr = Some(5e-5);
        plan.optimizer = Optimizer::AdamW;
        let model = catalog::lookup("sdxl").unwrap();
        let card = gpu::lookup("RTX 4060").unwrap();
        assert_eq!(card.vram_gib, 8.0);
        let report = shrink_to_fit(&plan, model, &card, &Locked::default());
        let changes: Vec<&str> = report.steps.iter().map(|s| s.change.as_str()).collect();
        eprintln!("{}", report.plain_summary());
        assert_eq!(changes[0], "batch 4 → 1");
        assert_eq!(changes[1], "gradient checkpointing on");
        assert_eq!(changes[2], "cache latents");
        assert_eq!(
            changes[3],
            "stop training the text encoder; cache text embeddings"
        );
        assert!(report.fits, "{}", report.plain_summary());
        // Each step lowers the estimate and says why.
        for s in &report.steps {
            assert!(s.after_gib < s.before_gib, "{}", s.change);
            assert!(!s.why.is_empty());
        }
        assert!(report.steps.last().unwrap().fits);
        assert!(
            report.steps[..report.steps.len() - 1]
                .iter()
                .all(|s| !s.fits)
        );
        assert!(report.end_gib <= 0.8 * 8.0);
        let p = &report.plan;
        assert!(p.gradient_checkpointing && p.cache_latents && p.cache_text_embeddings);
        assert!(!p.train_text_encoder);
        assert!(report.plain_summary().contains("batch 4 → 1"));
    }

    #[test]
    fn the_ladder_leaves_locked_choices_alone_and_says_so() {
        let mut plan = sample_plan();
        plan.batch_size = 4;
        plan.gradient_checkpointing = false;
        let model = catalog::lookup("sdxl").unwrap();
        let card = gpu::lookup("RTX 4060").unwrap();
        let locked = Locked {
            batch_size: true,
            ..Locked::default()
        };
        let report = shrink_to_fit(&plan, model, &card, &locked);
        assert_eq!(report.plan.batch_size, 4);
        assert!(report.kept.contains(&"the batch size".to_string()));
        assert_eq!(report.steps[0].change, "gradient checkpointing on");
    }

    #[test]
    fn flux_on_16_gb_goes_down_to_four_bit_with_simpletuner() {
        let plan = plan_for("flux-dev", Backend::SimpleTuner, |p| {
            p.batch_size = 1;
            p.rank = 16;
            p.alpha = 16.0;
        });
        let model = plan.model().unwrap();
        let report = shrink_to_fit(
            &plan,
            model,
            &gpu::lookup("RTX 4060 Ti").unwrap(),
            &Locked::default(),
        );
        assert!(report.fits, "{}", report.plain_summary());
        assert_eq!(report.plan.base_weights, BaseWeights::Nf4);
        // kohya has no 4-bit base: the same plan cannot fit there, and it says so.
        let kohya = TrainingPlan {
            backend: Backend::Kohya,
            ..plan
        };
        let report = shrink_to_fit(
            &kohya,
            model,
            &gpu::lookup("RTX 4060 Ti").unwrap(),
            &Locked::default(),
        );
        assert!(!report.fits);
        assert!(report.plain_summary().contains("does not fit"));
    }

    #[test]
    fn a_plan_that_does_not_fit_lists_single_changes_that_would() {
        let mut plan = sample_plan();
        plan.gradient_checkpointing = false;
        plan.batch_size = 1;
        let model = catalog::lookup("sdxl").unwrap();
        let e = estimate_vram(&plan, model, Some(&gpu::lookup("RTX 3060").unwrap()));
        assert_eq!(e.fits, Some(false));
        assert!(
            e.changes_that_fit
                .iter()
                .any(|c| c.change == "turn on gradient checkpointing")
        );
        assert!(e.plain_summary().contains("It would fit if you"));
    }

    #[test]
    fn the_native_engine_costs_more_than_pytorch_trainers() {
        let plan = TrainingPlan {
            base_model: "sd15".into(),
            precision: Precision::Fp32,
            ..sample_plan()
        };
        let model = catalog::lookup("sd15").unwrap();
        let native = TrainingPlan {
            backend: Backend::Native,
            optimizer: Optimizer::AdamW,
            ..plan.clone()
        };
        assert!(
            plan_breakdown(&native, model).total_gib(1) > plan_breakdown(&plan, model).total_gib(1)
        );
    }
}
