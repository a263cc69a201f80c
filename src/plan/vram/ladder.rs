//! The shrink ladder: the changes that make a plan fit a GPU, tried in the
//! order that costs the artist least (the batch first, then recomputing
//! instead of keeping, caching, loading on the CPU, smaller optimizer and
//! LoRA numbers, a smaller base model, swapping blocks, and last no sample
//! pictures), each reported with why it helps; and the single changes the
//! estimate lists when a plan does not fit.

use serde::Serialize;

use super::super::catalog::{ModelFamily, ModelSpec};
use super::super::gpu::Gpu;
use super::super::training::{BaseWeights, LoraCoverage, Optimizer, Precision, TrainingPlan};
use super::{MAX_FLUX_BLOCKS_TO_SWAP, SAFETY_MARGIN, plan_breakdown, plan_peak_gib, weights_word};

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
    pub bf16_lora: bool,
    pub blocks_to_swap: bool,
    pub low_vram: bool,
    pub sample_images: bool,
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
            if changes.is_empty() {
                "nothing the backend can change".to_string()
            } else {
                changes.join("; ")
            }
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

type Rung = fn(&TrainingPlan, &ModelSpec, f64) -> Option<(TrainingPlan, String, String)>;

/// Shrinks a plan until it fits `gpu`: first the batch, then gradient
/// checkpointing, then caching, loading on the CPU, 8-bit optimizer state,
/// bf16 LoRA weights, 8-bit base weights, block swapping, 4-bit base weights
/// and last no sample pictures, where the backend has them. Each change is
/// reported with why it helps; a change that would not lower the peak is not
/// made; it stops as soon as the plan fits.
pub fn shrink_to_fit(
    plan: &TrainingPlan,
    model: &ModelSpec,
    gpu: &Gpu,
    locked: &Locked,
) -> ShrinkReport {
    let budget = gpu.vram_gib * (1.0 - SAFETY_MARGIN);
    let total = |p: &TrainingPlan| plan_peak_gib(p, model);
    let start = total(plan);
    let mut current = plan.clone();
    let mut steps: Vec<ShrinkStep> = Vec::new();
    let mut kept = Vec::new();

    let rungs: [(bool, &'static str, Rung); 11] = [
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
        (locked.low_vram, "loading on the GPU", rung_low_vram),
        (locked.optimizer, "the optimizer", rung_optimizer_8bit),
        (locked.bf16_lora, "32-bit LoRA weights", rung_bf16_lora),
        (locked.base_weights, "the base model's precision", rung_fp8),
        (locked.blocks_to_swap, "the blocks to swap", rung_block_swap),
        (locked.base_weights, "the base model's precision", rung_4bit),
        (locked.sample_images, "sample pictures", rung_no_samples),
    ];
    for (is_locked, what, rung) in rungs {
        let before = total(&current);
        if before <= budget {
            break;
        }
        let Some((next, change, why)) = rung(&current, model, budget) else {
            continue;
        };
        let after = total(&next);
        if !supported(&next, model) || after >= before {
            continue;
        }
        if is_locked {
            if !kept.contains(&what.to_string()) {
                kept.push(what.to_string());
            }
            continue;
        }
        steps.push(ShrinkStep {
            step: steps.len() as u32 + 1,
            change,
            why,
            before_gib: before,
            after_gib: after,
            fits: after <= budget,
        });
        current = next;
        // A step that shrinks training can leave the start (quantising on
        // the GPU) as the peak: load on the CPU then, where the backend can.
        if !locked.low_vram
            && after > budget
            && let Some((next, change, why)) = rung_low_vram(&current, model, budget)
        {
            let lowered = total(&next);
            if supported(&next, model) && lowered < after {
                steps.push(ShrinkStep {
                    step: steps.len() as u32 + 1,
                    change,
                    why,
                    before_gib: after,
                    after_gib: lowered,
                    fits: lowered <= budget,
                });
                current = next;
            }
        }
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

/// The backend can do what the changed plan asks.
fn supported(p: &TrainingPlan, model: &ModelSpec) -> bool {
    let s = p.backend.support();
    s.optimizers.contains(&p.optimizer)
        && s.base_weights.contains(&p.base_weights)
        && (!p.bf16_lora || (s.bf16_lora && p.precision == Precision::Bf16))
        && (!p.low_vram || s.low_vram)
        && (p.blocks_to_swap == 0 || s.block_swap.contains(&model.family))
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
    let new = super::max_batch(p, model, budget).clamp(1, p.batch_size);
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
    model: &ModelSpec,
    _: f64,
) -> Option<(TrainingPlan, String, String)> {
    if p.cache_text_embeddings && !p.train_text_encoder {
        return None;
    }
    // A trainer that cannot cache them keeps the text encoders on the GPU:
    // only stopping text-encoder training saves memory there.
    let can_cache = crate::backends::caches_text_encoder_outputs(p.backend, model.family);
    if !can_cache && !p.train_text_encoder {
        return None;
    }
    let mut next = p.clone();
    next.cache_text_embeddings = can_cache;
    if !can_cache {
        next.train_text_encoder = false;
        next.text_encoder_lr = None;
        return Some((
            next,
            "stop training the text encoder".into(),
            "its LoRA, gradients and optimizer state leave the GPU (this trainer keeps the text encoder itself there). The image model still learns the trigger word.".into(),
        ));
    }
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

fn rung_low_vram(
    p: &TrainingPlan,
    _: &ModelSpec,
    _: f64,
) -> Option<(TrainingPlan, String, String)> {
    (!p.low_vram).then(|| {
        let mut next = p.clone();
        next.low_vram = true;
        (
            next,
            "load and quantise the base model on the CPU (low_vram)".into(),
            "the base model no longer passes through the GPU at full size before it is made smaller, and stays off it while the caches are filled: a slower start, the same training".into(),
        )
    })
}

fn rung_optimizer_8bit(
    p: &TrainingPlan,
    _: &ModelSpec,
    _: f64,
) -> Option<(TrainingPlan, String, String)> {
    let to = match p.optimizer {
        Optimizer::AdamW => Optimizer::AdamW8bit,
        Optimizer::Lion => Optimizer::Lion8bit,
        _ => return None,
    };
    let mut next = p.clone();
    next.optimizer = to;
    Some((
        next,
        format!("optimizer {} → {}", p.optimizer.word(), to.word()),
        "the optimizer keeps its memory in 8 bits instead of 32: a quarter of the size, practically the same result".into(),
    ))
}

fn rung_bf16_lora(
    p: &TrainingPlan,
    _: &ModelSpec,
    _: f64,
) -> Option<(TrainingPlan, String, String)> {
    (!p.bf16_lora && p.precision == Precision::Bf16).then(|| {
        let mut next = p.clone();
        next.bf16_lora = true;
        (
            next,
            "LoRA weights in bf16".into(),
            "the LoRA's own numbers and their gradients are kept in 16 bits instead of 32: half their memory, slightly coarser updates".into(),
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

/// The smallest block count that fits, or the most kohya swaps.
fn blocks_that_fit(p: &TrainingPlan, model: &ModelSpec, budget: f64) -> Option<u32> {
    if model.family != ModelFamily::Flux || p.blocks_to_swap >= MAX_FLUX_BLOCKS_TO_SWAP {
        return None;
    }
    let start = p.blocks_to_swap + 1;
    let fitting = (start..=MAX_FLUX_BLOCKS_TO_SWAP).find(|n| {
        let mut q = p.clone();
        q.blocks_to_swap = *n;
        plan_peak_gib(&q, model) <= budget
    });
    Some(fitting.unwrap_or(MAX_FLUX_BLOCKS_TO_SWAP))
}

fn rung_block_swap(
    p: &TrainingPlan,
    model: &ModelSpec,
    budget: f64,
) -> Option<(TrainingPlan, String, String)> {
    let n = blocks_that_fit(p, model, budget)?;
    let mut next = p.clone();
    next.blocks_to_swap = n;
    Some((
        next,
        format!("swap {n} transformer blocks to the CPU"),
        format!(
            "{n} of the model's blocks wait in CPU memory and come to the GPU one at a time when needed: the same training, slower steps (the more blocks, the slower)"
        ),
    ))
}

fn rung_4bit(p: &TrainingPlan, _: &ModelSpec, _: f64) -> Option<(TrainingPlan, String, String)> {
    if !matches!(
        p.base_weights,
        BaseWeights::Full | BaseWeights::Fp8 | BaseWeights::Int8
    ) || p.precision == Precision::Fp32
    {
        return None;
    }
    let support = p.backend.support();
    let to = [BaseWeights::Nf4, BaseWeights::Int4]
        .into_iter()
        .find(|w| support.base_weights.contains(w))?;
    let mut next = p.clone();
    next.base_weights = to;
    Some((
        next,
        format!("base model in {}", weights_word(to)),
        "the frozen base model is stored in 4 bits (QLoRA): a quarter of its memory, slower steps and a little less fidelity".into(),
    ))
}

fn rung_no_samples(
    p: &TrainingPlan,
    _: &ModelSpec,
    _: f64,
) -> Option<(TrainingPlan, String, String)> {
    p.sample_images.then(|| {
        let mut next = p.clone();
        next.sample_images = false;
        (
            next,
            "no sample pictures during training".into(),
            "making a sample picture needs the picture decoder and working memory on top of what training holds; the checkpoints are still saved and can be tried afterwards".into(),
        )
    })
}

/// Each change the estimate can suggest, applied alone (those the backend
/// cannot do are left out).
pub(super) fn single_changes(
    plan: &TrainingPlan,
    model: &ModelSpec,
    budget: f64,
) -> Vec<(String, TrainingPlan)> {
    let support = plan.backend.support();
    let mut out = Vec::new();
    let mut try_change = |what: String, f: &dyn Fn(&mut TrainingPlan)| {
        let mut p = plan.clone();
        f(&mut p);
        if p != *plan && supported(&p, model) {
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
        let can_cache = crate::backends::caches_text_encoder_outputs(plan.backend, model.family);
        try_change(
            if can_cache {
                "stop training the text encoder and cache text embeddings".into()
            } else {
                "stop training the text encoder".into()
            },
            &|p| {
                p.train_text_encoder = false;
                p.text_encoder_lr = None;
                p.cache_text_embeddings = can_cache
            },
        );
    }
    try_change(
        "load and quantise the base model on the CPU (low_vram)".into(),
        &|p| p.low_vram = true,
    );
    match plan.optimizer {
        Optimizer::AdamW => try_change("use the 8-bit AdamW optimizer".into(), &|p| {
            p.optimizer = Optimizer::AdamW8bit
        }),
        Optimizer::Lion => try_change("use the 8-bit Lion optimizer".into(), &|p| {
            p.optimizer = Optimizer::Lion8bit
        }),
        _ => {}
    }
    if plan.precision == Precision::Bf16 {
        try_change("keep the LoRA weights in bf16".into(), &|p| {
            p.bf16_lora = true
        });
    }
    if plan.precision != Precision::Fp32 && plan.base_weights == BaseWeights::Full {
        for w in [BaseWeights::Fp8, BaseWeights::Int4, BaseWeights::Nf4] {
            try_change(
                format!("store the base model in {}", weights_word(w)),
                &|p| p.base_weights = w,
            );
        }
    }
    if let Some(n) = blocks_that_fit(plan, model, budget) {
        try_change(format!("swap {n} transformer blocks to the CPU"), &|p| {
            p.blocks_to_swap = n
        });
    }
    if plan.targets(model.family) == LoraCoverage::AllLinear
        && plan
            .backend
            .lora_targets(model.family)
            .contains(&LoraCoverage::Attention)
    {
        try_change("put the LoRA on the attention layers only".into(), &|p| {
            p.lora_targets = Some(LoraCoverage::Attention)
        });
    }
    try_change("make no sample pictures during training".into(), &|p| {
        p.sample_images = false
    });
    let native = model.native_resolution;
    let lower = |side: u32| side.saturating_sub(256).max(native / 2);
    let (w, h) = (plan.width(), plan.height());
    if lower(w) < w && lower(h) < h && lower(w.min(h)) >= 256 {
        let (nw, nh) = (lower(w), lower(h));
        try_change(format!("train at {nw}×{nh} instead of {w}×{h}"), &|p| {
            p.resolution = nw;
            p.height = (nw != nh).then_some(nh);
        });
    }
    out
}
