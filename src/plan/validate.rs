//! Whether a plan is safe to train: ranges per model family, what the chosen
//! backend and GPU can do, and the cross-field rules the trainers assert at
//! start-up (after they have loaded the model, i.e. after money was spent).
//! Every rejection says, in plain words, what is wrong and what to do.

use serde::Serialize;

use super::catalog::{ModelFamily, lookup};
use super::gpu::Gpu;
use super::presets::safe_learning_rate;
use super::training::{Backend, BaseWeights, LoraCoverage, Optimizer, Precision, TrainingPlan};
use super::vram::{MAX_FLUX_BLOCKS_TO_SWAP, weights_word};

/// One reason a plan cannot be trained as it is.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct Rejection {
    /// The plan field at fault (`learning_rate`, `resolution`, ...).
    pub field: String,
    /// What is wrong, with the value.
    pub message: String,
    /// What to do about it.
    pub what_to_do: String,
}

fn reject(out: &mut Vec<Rejection>, field: &str, message: String, what_to_do: String) {
    out.push(Rejection {
        field: field.into(),
        message,
        what_to_do,
    });
}

fn optimizer_word(o: Optimizer) -> &'static str {
    o.word()
}

fn targets_word(t: LoraCoverage) -> &'static str {
    match t {
        LoraCoverage::Attention => "the attention layers only",
        LoraCoverage::AllLinear => "every linear layer",
    }
}

fn precision_word(p: Precision) -> &'static str {
    match p {
        Precision::Bf16 => "bf16",
        Precision::Fp16 => "fp16",
        Precision::Fp32 => "fp32",
    }
}

/// Every reason `plan` cannot be trained (on `gpu`, when known); empty means
/// it is safe. Memory is not checked here: see [`super::vram`].
pub fn validate(plan: &TrainingPlan, gpu: Option<&Gpu>) -> Vec<Rejection> {
    let mut out = Vec::new();
    let model = match lookup(&plan.base_model) {
        Ok(m) => m,
        Err(e) => {
            reject(
                &mut out,
                "base_model",
                e.to_string(),
                e.hint().unwrap_or_default(),
            );
            return out;
        }
    };
    let family = model.family;
    let support = plan.backend.support();
    let backend = plan.backend.name();

    if !support.families.contains(&family) {
        let others: Vec<&str> = Backend::ALL
            .iter()
            .filter(|b| b.support().families.contains(&family))
            .map(|b| b.name())
            .collect();
        reject(
            &mut out,
            "backend",
            format!("{backend} cannot train {} LoRAs", family.word()),
            format!("use {} for {}", others.join(" or "), model.name),
        );
    }
    if plan.trigger_word.trim().is_empty() {
        reject(
            &mut out,
            "trigger_word",
            "the plan has no trigger word".into(),
            "set the project's made-up trigger word (e.g. `zkfox`) so the LoRA can be called up"
                .into(),
        );
    }
    let images = plan.image_count();
    if images == 0 {
        reject(
            &mut out,
            "image_folders",
            format!("the dataset `{}` holds no pictures", plan.dataset),
            "add the training pictures, run gate 1, then plan again".into(),
        );
    }
    if model.hf_repo.is_none()
        && plan
            .model_path
            .as_deref()
            .is_none_or(|p| p.trim().is_empty())
    {
        reject(
            &mut out,
            "model_path",
            format!(
                "{} has no official download the trainers can fetch by themselves",
                model.name
            ),
            format!(
                "download its checkpoint (e.g. `{}`) into the workspace and give its path as model_path",
                model.checkpoint_file
            ),
        );
    }

    if plan.backend == Backend::SimpleTuner
        && plan.caption_extension.trim_start_matches('.') != "txt"
    {
        reject(
            &mut out,
            "caption_extension",
            format!("SimpleTuner reads captions only from `.txt` files, not `.{}`", plan.caption_extension.trim_start_matches('.')),
            "rename the caption files to .txt (and the project's caption extension), or use kohya or ai-toolkit".into(),
        );
    }

    // LoRA shape.
    if !(1..=256).contains(&plan.rank) {
        reject(
            &mut out,
            "rank",
            format!("rank `{}` is outside 1–256", plan.rank),
            "use 16–32 for most LoRAs (up to 64–128 for a detailed style); higher only makes a bigger file that over-learns".into(),
        );
    }
    if !(plan.alpha.is_finite() && plan.alpha > 0.0) {
        reject(
            &mut out,
            "alpha",
            format!("alpha `{}` must be a positive number", plan.alpha),
            "use half the rank (SD1.5/SDXL) or the rank itself (Flux/SD3.5)".into(),
        );
    } else if f64::from(plan.alpha) > 2.0 * f64::from(plan.rank) {
        reject(
            &mut out,
            "alpha",
            format!(
                "alpha `{}` is more than twice the rank `{}`: every update is magnified",
                plan.alpha, plan.rank
            ),
            format!(
                "set alpha to at most the rank ({}), usually half of it",
                plan.rank
            ),
        );
    }
    if plan.backend == Backend::AiToolkit
        && family.is_transformer()
        && (f64::from(plan.alpha) - f64::from(plan.rank)).abs() > 1e-6
    {
        reject(
            &mut out,
            "alpha",
            format!(
                "ai-toolkit saves {} LoRAs with alpha equal to the rank, whatever the config says; alpha `{}` ≠ rank `{}` would train one strength and save another",
                family.word(),
                plan.alpha,
                plan.rank
            ),
            format!("set alpha to {}", plan.rank),
        );
    }

    // Optimizer and learning rate.
    if !support.optimizers.contains(&plan.optimizer) {
        let alternatives: Vec<&str> = support
            .optimizers
            .iter()
            .map(|o| optimizer_word(*o))
            .collect();
        reject(
            &mut out,
            "optimizer",
            format!(
                "{backend} has no {} optimizer",
                optimizer_word(plan.optimizer)
            ),
            format!("pick one of: {}", alternatives.join(", ")),
        );
    }
    let (lo, hi) = safe_learning_rate(plan.optimizer, family);
    if !(plan.learning_rate.is_finite() && plan.learning_rate >= lo && plan.learning_rate <= hi) {
        let what = if plan.optimizer == Optimizer::Prodigy {
            "Prodigy finds its own step size and the learning rate only scales it: keep it at 1.0"
                .to_string()
        } else if plan.learning_rate > hi {
            format!(
                "too high burns the LoRA in (noise, NaN, copies of the training pictures): use {:.0e}–{:.0e}, usually {:.0e}",
                lo,
                hi,
                super::presets::default_learning_rate(plan.optimizer, family)
            )
        } else {
            format!(
                "too low learns nothing in this many steps: use {:.0e}–{:.0e}",
                lo, hi
            )
        };
        reject(
            &mut out,
            "learning_rate",
            format!(
                "learning rate `{}` is outside the safe range for {} on {} ({lo:.0e}–{hi:.0e})",
                plan.learning_rate,
                optimizer_word(plan.optimizer),
                family.word()
            ),
            what,
        );
    }

    // Length and batch.
    if !(1..=100).contains(&plan.epochs) {
        reject(
            &mut out,
            "epochs",
            format!("`{}` epochs is outside 1–100", plan.epochs),
            "use a preset: 5 (quick), 15 (standard) or 25 (thorough)".into(),
        );
    }
    if !(1..=100).contains(&plan.repeats) {
        reject(
            &mut out,
            "repeats",
            format!("`{}` repeats is outside 1–100", plan.repeats),
            "show each picture 1–20 times per epoch; more pictures need fewer repeats".into(),
        );
    }
    if !(1..=32).contains(&plan.batch_size) {
        reject(
            &mut out,
            "batch_size",
            format!("batch size `{}` is outside 1–32", plan.batch_size),
            "use 1–4; a larger batch rarely trains a better LoRA and needs far more memory".into(),
        );
    } else if images > 0 && u64::from(plan.batch_size) > plan.samples_per_epoch() {
        reject(
            &mut out,
            "batch_size",
            format!(
                "a batch of {} is more than the {} pictures an epoch shows ({} × {} repeats)",
                plan.batch_size,
                plan.samples_per_epoch(),
                images,
                plan.repeats
            ),
            "lower the batch size or raise the repeats".into(),
        );
    }
    if plan.save_every_epochs == 0 {
        reject(
            &mut out,
            "save_every_epochs",
            "checkpoints must be saved at least every so many epochs, not `0`".into(),
            "save every 1–5 epochs so you can pick the best one".into(),
        );
    }

    // Resolution.
    let native = model.native_resolution;
    let (lowest, highest) = ((native / 2).max(256), (native * 3 / 2).min(2048));
    let mut sides = vec![("resolution", "resolution", plan.resolution)];
    if let Some(h) = plan.height {
        sides.push(("height", "height", h));
    }
    for (field, word, side) in sides {
        if !side.is_multiple_of(64) {
            reject(
                &mut out,
                field,
                format!("{word} `{side}` is not a multiple of 64"),
                format!("use {native} (the model's own) or another multiple of 64"),
            );
        }
        if side < lowest || side > highest {
            reject(
                &mut out,
                field,
                format!(
                    "{word} `{side}` is far from the {native} px {} was made for",
                    model.name
                ),
                format!("train between {lowest} and {highest} px; {native} is best"),
            );
        }
    }
    if let Some(h) = plan.height {
        let (long, short) = (h.max(plan.resolution), h.min(plan.resolution).max(1));
        if long > 2 * short {
            reject(
                &mut out,
                "height",
                format!(
                    "{}×{h} is more than twice as long as it is wide",
                    plan.resolution
                ),
                "keep the sides within 2:1 (832×1216, 768×1344 ...); the trainers bucket pictures of other shapes by themselves".into(),
            );
        }
        if plan.backend == Backend::Native && h != plan.resolution {
            reject(
                &mut out,
                "height",
                format!(
                    "the Ategnatos engine trains square pictures only, not {}×{h}",
                    plan.resolution
                ),
                format!(
                    "leave the height out to train at {0}×{0}, or use kohya",
                    plan.resolution
                ),
            );
        }
    }

    // LoRA layers.
    if let Some(t) = plan.lora_targets {
        let possible = plan.backend.lora_targets(family);
        if !possible.contains(&t) {
            let ok: Vec<&str> = possible.iter().map(|t| targets_word(*t)).collect();
            reject(
                &mut out,
                "lora_targets",
                format!(
                    "{backend} cannot put a {} LoRA on {}",
                    family.word(),
                    targets_word(t)
                ),
                format!(
                    "leave lora_targets out ({backend} uses {}), or use ai-toolkit, which can do both",
                    ok.join(" or ")
                ),
            );
        }
    }

    // Memory options.
    if plan.blocks_to_swap > 0 {
        if !support.block_swap.contains(&family) {
            reject(
                &mut out,
                "blocks_to_swap",
                format!(
                    "{backend} cannot swap {} blocks to the CPU (blocks_to_swap `{}`)",
                    family.word(),
                    plan.blocks_to_swap
                ),
                "set blocks_to_swap to 0; block swapping is kohya's, for Flux".into(),
            );
        } else if plan.blocks_to_swap > MAX_FLUX_BLOCKS_TO_SWAP {
            reject(
                &mut out,
                "blocks_to_swap",
                format!(
                    "blocks_to_swap `{}` is more than the {MAX_FLUX_BLOCKS_TO_SWAP} blocks kohya can swap",
                    plan.blocks_to_swap
                ),
                format!("use 1–{MAX_FLUX_BLOCKS_TO_SWAP}; 16 suits a 12 GB card, 28 an 8 GB one"),
            );
        }
    }
    if plan.low_vram && !support.low_vram {
        reject(
            &mut out,
            "low_vram",
            format!("{backend} has no low_vram setting"),
            if plan.backend == Backend::Kohya {
                "turn low_vram off: kohya loads the base model on the CPU already".into()
            } else {
                "turn low_vram off".into()
            },
        );
    }
    if plan.bf16_lora {
        if !support.bf16_lora {
            reject(
                &mut out,
                "bf16_lora",
                format!("{backend} cannot keep the LoRA's weights in bf16"),
                if plan.backend == Backend::SimpleTuner {
                    "turn bf16_lora off: SimpleTuner keeps the LoRA in bf16 by itself with AdamW (adamw_bf16)".into()
                } else {
                    "turn bf16_lora off, or use kohya (full_bf16)".into()
                },
            );
        } else if plan.precision != Precision::Bf16 {
            reject(
                &mut out,
                "bf16_lora",
                format!(
                    "bf16 LoRA weights need bf16 precision, not {}",
                    precision_word(plan.precision)
                ),
                "set precision to bf16, or turn bf16_lora off".into(),
            );
        }
    }

    // Precision.
    if !support.precisions.contains(&plan.precision) {
        let ok: Vec<&str> = support
            .precisions
            .iter()
            .map(|p| precision_word(*p))
            .collect();
        reject(
            &mut out,
            "precision",
            format!(
                "{backend} does not train in {}",
                precision_word(plan.precision)
            ),
            format!("use {}", ok.join(" or ")),
        );
    }
    if family == ModelFamily::Flux && plan.precision == Precision::Fp16 {
        reject(
            &mut out,
            "precision",
            "Flux overflows in fp16: the loss turns to NaN and the LoRA comes out empty".into(),
            "use bf16 (on an RTX 30xx/A-series or newer GPU)".into(),
        );
    }
    if let Some(gpu) = gpu
        && plan.precision == Precision::Bf16
        && !gpu.generation.supports_bf16()
    {
        reject(
            &mut out,
            "precision",
            format!(
                "the {} cannot compute in bf16 (it predates the RTX 30 series)",
                gpu.name
            ),
            if family == ModelFamily::Flux {
                "Flux needs bf16: rent an Ampere or newer GPU (RTX 3090/4090, A100, L40S, H100)"
                    .into()
            } else {
                "use fp16 on this GPU".into()
            },
        );
    }
    if !support.base_weights.contains(&plan.base_weights) {
        let ok: Vec<&str> = support
            .base_weights
            .iter()
            .map(|w| weights_word(*w))
            .collect();
        reject(
            &mut out,
            "base_weights",
            format!(
                "{backend} cannot store the base model in {}",
                weights_word(plan.base_weights)
            ),
            format!(
                "use {} — or a backend that can (SimpleTuner has int8 and NF4)",
                ok.join(" or ")
            ),
        );
    }
    if plan.base_weights != BaseWeights::Full && plan.precision == Precision::Fp32 {
        reject(
            &mut out,
            "base_weights",
            "a quantised base model is computed in 16 bits; it does not mix with fp32 training"
                .into(),
            "use bf16 precision, or full-precision base weights".into(),
        );
    }

    // Text encoder.
    if plan.train_text_encoder {
        if !matches!(family, ModelFamily::Sd15 | ModelFamily::Sdxl) {
            reject(
                &mut out,
                "train_text_encoder",
                format!(
                    "Ategnatos does not train {}'s text encoders (T5 alone is 4.7 billion weights)",
                    family.word()
                ),
                "train the image model only; it learns the trigger word on its own".into(),
            );
        } else if !support.text_encoder_training.contains(&family) {
            reject(
                &mut out,
                "train_text_encoder",
                format!("{backend} does not train the text encoder in our plans"),
                "turn text encoder training off, or use kohya".into(),
            );
        }
        if plan.cache_text_embeddings {
            reject(
                &mut out,
                "cache_text_embeddings",
                "captions cannot be cached while the text encoder is trained: it changes every step".into(),
                "turn one of the two off (caching saves memory; training the text encoder helps SD1.5 faces)".into(),
            );
        }
        if let Some(te) = plan.text_encoder_lr
            && plan.optimizer != Optimizer::Prodigy
            && te > plan.learning_rate
        {
            reject(
                &mut out,
                "text_encoder_lr",
                format!(
                    "the text encoder's learning rate `{te}` is higher than the image model's `{}`",
                    plan.learning_rate
                ),
                "use half the image model's rate or less: a fast text encoder over-learns first"
                    .into(),
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::gpu;
    use crate::plan::training::tests::sample_plan;

    fn fields(plan: &TrainingPlan, gpu: Option<&Gpu>) -> Vec<String> {
        validate(plan, gpu).into_iter().map(|r| r.field).collect()
    }

    #[test]
    fn the_sample_plan_is_valid() {
        assert!(validate(&sample_plan(), Some(&gpu::lookup("4090").unwrap())).is_empty());
    }

    #[test]
    fn invalid_plans_are_refused_with_the_reason() {
        type Edit = Box<dyn Fn(&mut TrainingPlan)>;
        let cases: Vec<(&str, Edit, &str)> = vec![
            ("rank", Box::new(|p| p.rank = 512), "outside 1–256"),
            ("rank", Box::new(|p| p.rank = 0), "outside 1–256"),
            ("alpha", Box::new(|p| p.alpha = 0.0), "positive"),
            ("alpha", Box::new(|p| p.alpha = 128.0), "twice the rank"),
            (
                "learning_rate",
                Box::new(|p| p.learning_rate = 0.01),
                "outside the safe range",
            ),
            (
                "learning_rate",
                Box::new(|p| {
                    p.optimizer = Optimizer::Prodigy;
                    p.learning_rate = 1e-4;
                }),
                "outside the safe range for Prodigy",
            ),
            (
                "resolution",
                Box::new(|p| p.resolution = 1000),
                "not a multiple of 64",
            ),
            (
                "resolution",
                Box::new(|p| p.resolution = 256),
                "far from the 1024 px",
            ),
            ("epochs", Box::new(|p| p.epochs = 0), "outside 1–100"),
            (
                "batch_size",
                Box::new(|p| p.batch_size = 200),
                "outside 1–32",
            ),
            (
                "batch_size",
                Box::new(|p| {
                    p.repeats = 1;
                    p.image_folders[0].images = 3;
                    p.batch_size = 4;
                }),
                "more than the 3 pictures",
            ),
            (
                "image_folders",
                Box::new(|p| p.image_folders[0].images = 0),
                "holds no pictures",
            ),
            (
                "trigger_word",
                Box::new(|p| p.trigger_word = " ".into()),
                "no trigger word",
            ),
            (
                "backend",
                Box::new(|p| p.base_model = "sd35-large".into()),
                "cannot train SD3.5",
            ),
            (
                "optimizer",
                Box::new(|p| p.backend = Backend::Native),
                "no AdamW8bit",
            ),
            (
                "base_weights",
                Box::new(|p| p.base_weights = BaseWeights::Nf4),
                "4-bit",
            ),
            (
                "precision",
                Box::new(|p| {
                    p.backend = Backend::SimpleTuner;
                    p.precision = Precision::Fp16;
                }),
                "does not train in fp16",
            ),
            (
                "precision",
                Box::new(|p| {
                    p.base_model = "flux-dev".into();
                    p.alpha = 32.0;
                    p.precision = Precision::Fp16;
                }),
                "NaN",
            ),
            (
                "alpha",
                Box::new(|p| {
                    p.base_model = "flux-dev".into();
                    p.backend = Backend::AiToolkit;
                }),
                "alpha equal to the rank",
            ),
            (
                "train_text_encoder",
                Box::new(|p| {
                    p.base_model = "flux-dev".into();
                    p.alpha = 32.0;
                    p.train_text_encoder = true;
                    p.cache_text_embeddings = false;
                }),
                "T5",
            ),
            (
                "cache_text_embeddings",
                Box::new(|p| p.train_text_encoder = true),
                "cannot be cached",
            ),
            (
                "text_encoder_lr",
                Box::new(|p| {
                    p.train_text_encoder = true;
                    p.cache_text_embeddings = false;
                    p.text_encoder_lr = Some(5e-4);
                }),
                "higher than the image model",
            ),
            (
                "model_path",
                Box::new(|p| p.base_model = "pony".into()),
                "no official download",
            ),
            (
                "height",
                Box::new(|p| p.height = Some(1000)),
                "not a multiple of 64",
            ),
            (
                "height",
                Box::new(|p| {
                    p.resolution = 640;
                    p.height = Some(1536);
                }),
                "twice as long",
            ),
            (
                "height",
                Box::new(|p| {
                    p.base_model = "sd15".into();
                    p.backend = Backend::Native;
                    p.optimizer = Optimizer::AdamW;
                    p.precision = Precision::Fp32;
                    p.resolution = 512;
                    p.height = Some(768);
                }),
                "square pictures only",
            ),
            (
                "lora_targets",
                Box::new(|p| p.lora_targets = Some(LoraCoverage::Attention)),
                "cannot put a SDXL LoRA on the attention layers only",
            ),
            (
                "blocks_to_swap",
                Box::new(|p| p.blocks_to_swap = 8),
                "cannot swap SDXL blocks",
            ),
            (
                "blocks_to_swap",
                Box::new(|p| {
                    p.base_model = "flux-dev".into();
                    p.alpha = 32.0;
                    p.blocks_to_swap = 40;
                }),
                "more than the 35 blocks",
            ),
            (
                "low_vram",
                Box::new(|p| p.low_vram = true),
                "no low_vram setting",
            ),
            (
                "bf16_lora",
                Box::new(|p| {
                    p.bf16_lora = true;
                    p.precision = Precision::Fp16;
                }),
                "need bf16 precision",
            ),
            (
                "bf16_lora",
                Box::new(|p| {
                    p.backend = Backend::AiToolkit;
                    p.bf16_lora = true;
                }),
                "cannot keep the LoRA's weights in bf16",
            ),
            (
                "optimizer",
                Box::new(|p| {
                    p.base_model = "sd15".into();
                    p.backend = Backend::Native;
                    p.precision = Precision::Fp32;
                    p.resolution = 512;
                    p.optimizer = Optimizer::Lion8bit;
                    p.learning_rate = 3e-5;
                }),
                "no Lion8bit",
            ),
        ];
        for (field, edit, words) in cases {
            let mut plan = sample_plan();
            edit(&mut plan);
            let rejections = validate(&plan, None);
            let hit = rejections.iter().find(|r| r.field == field);
            let Some(hit) = hit else {
                panic!("no `{field}` rejection for {words:?}: {rejections:?}");
            };
            assert!(hit.message.contains(words), "{field}: {}", hit.message);
            assert!(!hit.what_to_do.is_empty());
        }
    }

    #[test]
    fn the_memory_options_are_accepted_where_the_backend_has_them() {
        let mut flux = sample_plan();
        flux.base_model = "flux-dev".into();
        flux.alpha = 32.0;
        flux.blocks_to_swap = 35;
        flux.bf16_lora = true;
        flux.resolution = 832;
        flux.height = Some(1216);
        assert!(
            validate(&flux, None).is_empty(),
            "{:?}",
            validate(&flux, None)
        );
        let mut aitk = sample_plan();
        aitk.backend = Backend::AiToolkit;
        aitk.low_vram = true;
        aitk.lora_targets = Some(LoraCoverage::Attention);
        aitk.optimizer = Optimizer::Lion8bit;
        aitk.learning_rate = 3e-5;
        assert!(
            validate(&aitk, None).is_empty(),
            "{:?}",
            validate(&aitk, None)
        );
        let mut st = sample_plan();
        st.backend = Backend::SimpleTuner;
        st.base_weights = BaseWeights::Int4;
        st.low_vram = true;
        assert!(validate(&st, None).is_empty(), "{:?}", validate(&st, None));
    }

    #[test]
    fn bf16_on_a_pre_ampere_card_is_refused() {
        let t4 = gpu::lookup("T4").unwrap();
        assert_eq!(fields(&sample_plan(), Some(&t4)), vec!["precision"]);
        let mut fp16 = sample_plan();
        fp16.precision = Precision::Fp16;
        assert!(validate(&fp16, Some(&t4)).is_empty());
    }
}
