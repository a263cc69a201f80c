//! [`TrainingPlan`]: the one standard config the workflow reasons about
//! (DESIGN decision 2), the choices it is made of, what each backend can do
//! with them, and where the plan is kept.
//!
//! The plan is stored as `grimoire/.state/projects/<name>/plan.json`; its
//! [`TrainingPlan::hash`] is Gate 2's fingerprint, so editing the plan makes
//! the gate stale.

use serde::{Deserialize, Serialize};

use super::catalog::{self, ModelFamily, ModelSpec, UnknownModel};
use crate::studio::project::TrainingType;
use crate::studio::{StudioError, Workspace, write_json_atomic};

/// How long and how carefully to train.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Preset {
    /// 5 epochs: a first look, to see whether the dataset works.
    Quick,
    /// 15 epochs: the usual choice.
    Standard,
    /// 25 epochs: more detail, more risk of over-training; compare checkpoints.
    Thorough,
}

impl Preset {
    pub fn epochs(self) -> u32 {
        match self {
            Preset::Quick => 5,
            Preset::Standard => 15,
            Preset::Thorough => 25,
        }
    }

    pub fn word(self) -> &'static str {
        match self {
            Preset::Quick => "quick",
            Preset::Standard => "standard",
            Preset::Thorough => "thorough",
        }
    }
}

/// The program that does the training.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Backend {
    /// kohya-ss/sd-scripts (`train_network.py`, `sdxl_train_network.py`, `flux_train_network.py`).
    Kohya,
    /// bghira/SimpleTuner.
    SimpleTuner,
    /// ostris/ai-toolkit.
    AiToolkit,
    /// Ategnatos' own engine (`ategnatos engine train`).
    Native,
}

/// The optimizer: how each step turns the error into a change of the LoRA.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub enum Optimizer {
    AdamW,
    /// AdamW with 8-bit state (bitsandbytes): same results, a quarter of the state memory.
    AdamW8bit,
    /// Finds its own step size; the learning rate stays at 1.
    Prodigy,
    Lion,
    /// Lion with 8-bit state (bitsandbytes): one byte of memory per trained number.
    Lion8bit,
    Adafactor,
}

/// Number format of the computation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Precision {
    /// bfloat16: stable, needs an Ampere (RTX 30xx) or newer GPU.
    Bf16,
    /// float16: for older GPUs; can overflow (NaN) on Flux.
    Fp16,
    /// float32: slow and large; only for debugging.
    Fp32,
}

/// How the frozen base model is stored in GPU memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum BaseWeights {
    /// In the computation's precision (2 bytes per parameter in bf16/fp16).
    Full,
    /// 8-bit float storage, computed in bf16 (kohya `fp8_base`): half the memory.
    Fp8,
    /// 8-bit integer quantisation (SimpleTuner `int8-quanto`).
    Int8,
    /// 4-bit integer quantisation (SimpleTuner `int4-quanto`).
    Int4,
    /// 4-bit NormalFloat (QLoRA, SimpleTuner `nf4-bnb`): a quarter of the memory, slower.
    Nf4,
}

/// How the learning rate changes over the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum LrScheduler {
    Constant,
    ConstantWithWarmup,
    Cosine,
}

/// A folder of training pictures and how many it holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ImageFolder {
    /// Relative to the workspace root.
    pub path: String,
    /// Pictures directly in it.
    pub images: u32,
}

/// The training plan: everything a trainer needs, in one place.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TrainingPlan {
    /// The project this plan trains.
    pub project: String,
    /// Catalog id of the base model (`sdxl`, `flux-dev`, ...).
    pub base_model: String,
    /// The base model's checkpoint (file, folder or Hugging Face id); empty
    /// means the catalog's default download or `models/<file>` in the workspace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_path: Option<String>,
    pub training_type: TrainingType,
    pub preset: Preset,
    pub backend: Backend,
    /// The dataset folder, relative to the workspace root.
    pub dataset: String,
    /// The folders that hold pictures (the dataset folder and any subfolders).
    pub image_folders: Vec<ImageFolder>,
    /// Caption file extension, without the dot.
    pub caption_extension: String,
    pub trigger_word: String,
    /// How often each picture is shown per epoch (kohya's `num_repeats`).
    pub repeats: u32,
    /// Passes over the (repeated) dataset.
    pub epochs: u32,
    /// Pictures per step.
    pub batch_size: u32,
    /// Training resolution in pixels (a multiple of 64): the width, and the
    /// height too unless `height` is given.
    pub resolution: u32,
    /// Training height when it differs from the width (`resolution`); absent
    /// means square.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub height: Option<u32>,
    /// LoRA rank (dimension): how much the LoRA can hold.
    pub rank: u32,
    /// LoRA alpha: scales the LoRA's effect by alpha / rank. Always written explicitly.
    pub alpha: f32,
    /// Which layers get a LoRA; absent means the backend's default
    /// ([`Backend::lora_coverage`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lora_targets: Option<LoraCoverage>,
    pub optimizer: Optimizer,
    /// Learning rate of the image model's LoRA (Prodigy: 1.0).
    pub learning_rate: f64,
    /// Also train a LoRA on the text encoder(s) (SD1.5 / SDXL only).
    pub train_text_encoder: bool,
    /// Learning rate of the text-encoder LoRA, when trained.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text_encoder_lr: Option<f64>,
    pub lr_scheduler: LrScheduler,
    pub warmup_steps: u32,
    pub precision: Precision,
    pub base_weights: BaseWeights,
    /// Keep the LoRA's own weights and gradients in bf16 instead of 32-bit
    /// (kohya `full_bf16`): half their memory, a little less exact.
    #[serde(default, skip_serializing_if = "is_false")]
    pub bf16_lora: bool,
    /// Transformer blocks kept in CPU memory and brought to the GPU one at a
    /// time (kohya `blocks_to_swap`, Flux): less GPU memory, slower steps.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub blocks_to_swap: u32,
    /// Load and quantise the base model on the CPU, and keep parts that are
    /// not working off the GPU (ai-toolkit `low_vram`, SimpleTuner
    /// `quantize_via = cpu`): a lower peak at start, a slower start.
    #[serde(default, skip_serializing_if = "is_false")]
    pub low_vram: bool,
    /// Recompute activations in the backward pass instead of keeping them.
    pub gradient_checkpointing: bool,
    /// Encode every picture with the VAE once, before training.
    pub cache_latents: bool,
    /// Encode every caption once, before training, and unload the text encoders.
    pub cache_text_embeddings: bool,
    /// Save a checkpoint every this many epochs.
    pub save_every_epochs: u32,
    /// Generate sample pictures at each save (they show how training goes;
    /// making them needs memory of its own).
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub sample_images: bool,
    pub seed: u64,
    /// The GPU this plan was sized for (a table name, or as the driver named it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu: Option<String>,
}

// Defaults of the fields added after plans were first stored: a stored plan
// without them loads with these, and a plan that keeps them serialises (and
// hashes) exactly as before.
fn is_false(b: &bool) -> bool {
    !*b
}

fn is_true(b: &bool) -> bool {
    *b
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

fn yes() -> bool {
    true
}

impl TrainingPlan {
    /// Training width in pixels.
    pub fn width(&self) -> u32 {
        self.resolution
    }

    /// Training height in pixels (the width when square).
    pub fn height(&self) -> u32 {
        self.height.unwrap_or(self.resolution)
    }

    /// `1024×1024`, `832×1216`.
    pub fn size_words(&self) -> String {
        format!("{}×{}", self.width(), self.height())
    }

    /// The layers that get a LoRA: the plan's choice or the backend's default.
    pub fn targets(&self, family: ModelFamily) -> LoraCoverage {
        self.lora_targets
            .unwrap_or_else(|| self.backend.lora_coverage(family))
    }

    /// The catalog entry of the base model.
    pub fn model(&self) -> Result<&'static ModelSpec, UnknownModel> {
        catalog::lookup(&self.base_model)
    }

    /// Pictures in all folders.
    pub fn image_count(&self) -> u32 {
        self.image_folders.iter().map(|f| f.images).sum()
    }

    /// Pictures shown per epoch (pictures × repeats).
    pub fn samples_per_epoch(&self) -> u64 {
        u64::from(self.image_count()) * u64::from(self.repeats)
    }

    /// Optimizer steps per epoch (rounded up, as the trainers do).
    pub fn steps_per_epoch(&self) -> u64 {
        self.samples_per_epoch()
            .div_ceil(u64::from(self.batch_size.max(1)))
    }

    /// Optimizer steps in the whole run: pictures × repeats × epochs / batch.
    pub fn total_steps(&self) -> u64 {
        self.steps_per_epoch() * u64::from(self.epochs)
    }

    /// The fingerprint Gate 2 records: a hash of the plan's canonical JSON.
    pub fn hash(&self) -> String {
        let bytes = serde_json::to_vec(self).unwrap_or_default();
        format!("plan-{}", &blake3::hash(&bytes).to_hex()[..32])
    }
}

/// Which layers get a LoRA.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum LoraCoverage {
    /// The attention projections (q, k, v, out).
    Attention,
    /// Every linear layer of the blocks (attention, feed-forward, projections).
    AllLinear,
}

/// What a backend can do, as data.
#[derive(Debug, Clone, Copy)]
pub struct BackendSupport {
    pub families: &'static [ModelFamily],
    pub optimizers: &'static [Optimizer],
    pub base_weights: &'static [BaseWeights],
    pub precisions: &'static [Precision],
    pub text_encoder_training: &'static [ModelFamily],
    /// Families whose transformer blocks it can swap to the CPU.
    pub block_swap: &'static [ModelFamily],
    /// It can load and quantise on the CPU (`low_vram`).
    pub low_vram: bool,
    /// It can keep the LoRA in bf16 (`bf16_lora`).
    pub bf16_lora: bool,
}

use ModelFamily::{Flux, Sd3, Sd15, Sdxl};

const ALL_OPTIMIZERS: &[Optimizer] = &[
    Optimizer::AdamW,
    Optimizer::AdamW8bit,
    Optimizer::Prodigy,
    Optimizer::Lion,
    Optimizer::Lion8bit,
    Optimizer::Adafactor,
];

impl Backend {
    pub const ALL: [Backend; 4] = [
        Backend::Kohya,
        Backend::SimpleTuner,
        Backend::AiToolkit,
        Backend::Native,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Backend::Kohya => "kohya sd-scripts",
            Backend::SimpleTuner => "SimpleTuner",
            Backend::AiToolkit => "ai-toolkit",
            Backend::Native => "the Ategnatos engine",
        }
    }

    /// What this backend supports. Sources: `research/backends.md` §1 and §4
    /// (kohya's three training scripts; SimpleTuner's `mixed_precision`
    /// bf16|no and `base_model_precision`; ai-toolkit's `quantize`); the
    /// native engine: DESIGN decision 11 (burn 0.21 has AdamW; Lion and Prodigy
    /// are ours; no 8-bit state, no quantised base, 16-bit base weights at
    /// most, SD1.5 and SDXL).
    pub fn support(self) -> BackendSupport {
        match self {
            Backend::Kohya => BackendSupport {
                families: &[Sd15, Sdxl, Flux],
                optimizers: ALL_OPTIMIZERS,
                base_weights: &[BaseWeights::Full, BaseWeights::Fp8],
                precisions: &[Precision::Bf16, Precision::Fp16, Precision::Fp32],
                text_encoder_training: &[Sd15, Sdxl],
                // flux_train_network.py `--blocks_to_swap`.
                block_swap: &[Flux],
                // kohya loads the model on the CPU already.
                low_vram: false,
                // `--full_bf16`.
                bf16_lora: true,
            },
            Backend::SimpleTuner => BackendSupport {
                families: &[Sd15, Sdxl, Flux, Sd3],
                optimizers: ALL_OPTIMIZERS,
                base_weights: &[
                    BaseWeights::Full,
                    BaseWeights::Fp8,
                    BaseWeights::Int8,
                    BaseWeights::Int4,
                    BaseWeights::Nf4,
                ],
                precisions: &[Precision::Bf16, Precision::Fp32],
                text_encoder_training: &[],
                block_swap: &[],
                // `quantize_via = cpu`, which our configs always write.
                low_vram: true,
                // Its LoRA is bf16 with AdamW already (`adamw_bf16`); other
                // optimizers need 32-bit weights there.
                bf16_lora: false,
            },
            Backend::AiToolkit => BackendSupport {
                families: &[Sd15, Sdxl, Flux, Sd3],
                optimizers: ALL_OPTIMIZERS,
                base_weights: &[BaseWeights::Full, BaseWeights::Fp8],
                precisions: &[Precision::Bf16, Precision::Fp16],
                text_encoder_training: &[Sd15, Sdxl],
                block_swap: &[],
                // `model.low_vram`.
                low_vram: true,
                bf16_lora: false,
            },
            // What `src/engine` trains today: SD1.5 and SDXL (UNet and,
            // optionally, the text encoders) with AdamW, Lion or Prodigy;
            // bf16/fp16 hold the frozen weights in 16 bits (the LoRA, its
            // optimizer and the arithmetic stay f32: `base_precision`).
            Backend::Native => BackendSupport {
                families: &[Sd15, Sdxl],
                optimizers: &[Optimizer::AdamW, Optimizer::Prodigy, Optimizer::Lion],
                base_weights: &[BaseWeights::Full],
                precisions: &[Precision::Bf16, Precision::Fp16, Precision::Fp32],
                text_encoder_training: &[Sd15, Sdxl],
                block_swap: &[],
                low_vram: false,
                bf16_lora: false,
            },
        }
    }

    /// Which layers get a LoRA by default: kohya `networks.lora` /
    /// `lora_flux` and ai-toolkit adapt every linear layer of the blocks;
    /// SimpleTuner adapts attention (UNets, SD3) and `flux_lora_target = all`
    /// on Flux; our engine adapts attention.
    pub fn lora_coverage(self, family: ModelFamily) -> LoraCoverage {
        match (self, family) {
            (Backend::Kohya | Backend::AiToolkit, _) => LoraCoverage::AllLinear,
            (Backend::SimpleTuner, Flux) => LoraCoverage::AllLinear,
            (Backend::SimpleTuner | Backend::Native, _) => LoraCoverage::Attention,
        }
    }

    /// The layer choices this backend can write for a family: kohya's LoRA
    /// modules adapt every linear layer of a block; ai-toolkit can limit
    /// them by name (`only_if_contains`); SimpleTuner adapts attention on the
    /// UNets and SD3.5, and either on Flux (`flux_lora_target`); our engine
    /// adapts attention.
    pub fn lora_targets(self, family: ModelFamily) -> &'static [LoraCoverage] {
        match (self, family) {
            (Backend::Kohya, _) => &[LoraCoverage::AllLinear],
            (Backend::AiToolkit, _) | (Backend::SimpleTuner, Flux) => {
                &[LoraCoverage::Attention, LoraCoverage::AllLinear]
            }
            (Backend::SimpleTuner | Backend::Native, _) => &[LoraCoverage::Attention],
        }
    }

    /// Parses `kohya`, `simpletuner`, `ai-toolkit`, `native`.
    pub fn parse(text: &str) -> Option<Backend> {
        match text
            .trim()
            .to_ascii_lowercase()
            .replace(['_', ' '], "-")
            .as_str()
        {
            "kohya" | "sd-scripts" | "kohya-ss" => Some(Backend::Kohya),
            "simpletuner" | "simple-tuner" => Some(Backend::SimpleTuner),
            "ai-toolkit" | "aitoolkit" | "ostris" => Some(Backend::AiToolkit),
            "native" | "ategnatos" | "engine" => Some(Backend::Native),
            _ => None,
        }
    }
}

impl Optimizer {
    pub fn parse(text: &str) -> Option<Optimizer> {
        match text
            .trim()
            .to_ascii_lowercase()
            .replace(['_', '-', ' '], "")
            .as_str()
        {
            "adamw" => Some(Optimizer::AdamW),
            "adamw8bit" | "adamw8" => Some(Optimizer::AdamW8bit),
            "prodigy" => Some(Optimizer::Prodigy),
            "lion" => Some(Optimizer::Lion),
            "lion8bit" | "lion8" => Some(Optimizer::Lion8bit),
            "adafactor" => Some(Optimizer::Adafactor),
            _ => None,
        }
    }

    /// Optimizer state kept per trainable parameter, in bytes (fp32 state:
    /// AdamW two moments = 8, Lion one = 4, Prodigy ≈ 4 tensors = 16,
    /// Adafactor factored second moment ≈ 0.5; bitsandbytes' 8-bit states:
    /// AdamW8bit two one-byte moments = 2, Lion8bit one = 1, plus a block
    /// scale per 2,048 numbers, which rounds away).
    pub fn state_bytes(self) -> f64 {
        match self {
            Optimizer::AdamW => 8.0,
            Optimizer::AdamW8bit => 2.0,
            Optimizer::Prodigy => 16.0,
            Optimizer::Lion => 4.0,
            Optimizer::Lion8bit => 1.0,
            Optimizer::Adafactor => 0.5,
        }
    }

    /// The name as the tools take it.
    pub fn word(self) -> &'static str {
        match self {
            Optimizer::AdamW => "AdamW",
            Optimizer::AdamW8bit => "AdamW8bit",
            Optimizer::Prodigy => "Prodigy",
            Optimizer::Lion => "Lion",
            Optimizer::Lion8bit => "Lion8bit",
            Optimizer::Adafactor => "Adafactor",
        }
    }
}

/// Where a project's plan is kept.
pub fn plan_path(ws: &Workspace, project: &str) -> Result<std::path::PathBuf, StudioError> {
    Ok(ws.project_state_dir(project)?.join("plan.json"))
}

/// Stores the plan (atomically).
pub fn save_plan(ws: &Workspace, plan: &TrainingPlan) -> Result<std::path::PathBuf, StudioError> {
    let path = plan_path(ws, &plan.project)?;
    write_json_atomic(&path, plan)?;
    Ok(path)
}

/// Loads the project's plan, `None` when there is none yet.
pub fn load_plan(ws: &Workspace, project: &str) -> Result<Option<TrainingPlan>, StudioError> {
    ws.read_json(&plan_path(ws, project)?)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A valid SDXL character plan for tests.
    pub fn sample_plan() -> TrainingPlan {
        TrainingPlan {
            project: "ink-fox".into(),
            base_model: "sdxl".into(),
            model_path: None,
            training_type: TrainingType::Character,
            preset: Preset::Standard,
            backend: Backend::Kohya,
            dataset: "pics/fox".into(),
            image_folders: vec![ImageFolder {
                path: "pics/fox".into(),
                images: 20,
            }],
            caption_extension: "txt".into(),
            trigger_word: "zkfox".into(),
            repeats: 5,
            epochs: 15,
            batch_size: 2,
            resolution: 1024,
            rank: 32,
            alpha: 16.0,
            optimizer: Optimizer::AdamW8bit,
            learning_rate: 1e-4,
            train_text_encoder: false,
            text_encoder_lr: None,
            lr_scheduler: LrScheduler::Cosine,
            warmup_steps: 0,
            precision: Precision::Bf16,
            base_weights: BaseWeights::Full,
            gradient_checkpointing: true,
            cache_latents: true,
            cache_text_embeddings: true,
            save_every_epochs: 1,
            seed: 42,
            gpu: Some("RTX 4090".into()),
            height: None,
            lora_targets: None,
            bf16_lora: false,
            blocks_to_swap: 0,
            low_vram: false,
            sample_images: true,
        }
    }

    #[test]
    fn steps_follow_images_repeats_epochs_and_batch() {
        let p = sample_plan();
        assert_eq!(p.samples_per_epoch(), 100);
        assert_eq!(p.steps_per_epoch(), 50);
        assert_eq!(p.total_steps(), 750);
    }

    #[test]
    fn editing_the_plan_changes_its_hash() {
        let p = sample_plan();
        let mut q = p.clone();
        assert_eq!(p.hash(), q.hash());
        q.rank = 16;
        assert_ne!(p.hash(), q.hash());
    }

    #[test]
    fn plans_are_stored_and_loaded() {
        let dir = tempfile::tempdir().unwrap();
        let ws = Workspace::open(dir.path()).unwrap();
        assert!(load_plan(&ws, "ink-fox").unwrap().is_none());
        save_plan(&ws, &sample_plan()).unwrap();
        assert_eq!(load_plan(&ws, "ink-fox").unwrap().unwrap(), sample_plan());
    }

    #[test]
    fn a_plan_stored_before_the_memory_options_loads_and_keeps_its_fingerprint() {
        let plan = sample_plan();
        let json = serde_json::to_value(&plan).unwrap();
        // Defaults are left out of the stored plan, so it reads (and hashes)
        // as it did before the fields existed.
        for key in [
            "height",
            "lora_targets",
            "bf16_lora",
            "blocks_to_swap",
            "low_vram",
            "sample_images",
        ] {
            assert!(json.get(key).is_none(), "{key} written: {json}");
        }
        let old = serde_json::to_string(&json).unwrap();
        let back: TrainingPlan = serde_json::from_str(&old).unwrap();
        assert_eq!(back, plan);
        assert!(back.sample_images && back.blocks_to_swap == 0 && !back.low_vram);
        assert_eq!(back.hash(), plan.hash());
        // A plan that uses them stores them and hashes differently.
        let swapped = TrainingPlan {
            blocks_to_swap: 16,
            height: Some(1216),
            sample_images: false,
            ..plan.clone()
        };
        let json = serde_json::to_value(&swapped).unwrap();
        assert_eq!(json["blocks_to_swap"], 16);
        assert_eq!(json["height"], 1216);
        assert_eq!(json["sample_images"], false);
        assert_ne!(swapped.hash(), plan.hash());
        assert_eq!(swapped.size_words(), "1024×1216");
    }

    #[test]
    fn names_parse() {
        assert_eq!(Backend::parse("ai_toolkit"), Some(Backend::AiToolkit));
        assert_eq!(Backend::parse("SimpleTuner"), Some(Backend::SimpleTuner));
        assert_eq!(Optimizer::parse("AdamW8bit"), Some(Optimizer::AdamW8bit));
        assert_eq!(Optimizer::parse("adamw-8bit"), Some(Optimizer::AdamW8bit));
        assert_eq!(Optimizer::parse("Lion8bit"), Some(Optimizer::Lion8bit));
        assert_eq!(Optimizer::parse("sgd"), None);
    }
}
