//! The engine's own config: the TOML file `ategnatos engine train CONFIG`
//! reads. It is self-contained (the plan writers produce it); every field
//! that changes the result is explicit, alpha included.
//!
//! ```toml
//! [model]
//! checkpoint = "models/v1-5-pruned-emaonly.safetensors"  # or a diffusers folder
//! prediction = "epsilon"
//!
//! [network]
//! rank = 16
//! alpha = 8.0
//!
//! [training]
//! learning_rate = 1e-4
//! epochs = 10
//!
//! [data]
//! latents = "workspace/cache/ink-foxes.latents.safetensors"
//!
//! [output]
//! dir = "workspace/output/ink-foxes"
//! name = "ink-foxes"
//! ```

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::EngineError;
use super::clip::ClipConfig;
use super::lora::LoraSpec;
use super::optim::LrScheduleKind;
use super::precision::BasePrecision;
use super::schedule::Prediction;
use super::unet::{LoraTargets, UNetConfig};
use super::vae::VaeConfig;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EngineConfig {
    pub model: ModelSection,
    #[serde(default)]
    pub network: NetworkSection,
    #[serde(default)]
    pub training: TrainingSection,
    pub data: DataSection,
    pub output: OutputSection,
}

/// Which architecture numbers to build.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Architecture {
    #[default]
    Sd15,
    /// The tiny test model (CPU tests and the CLI's own end-to-end test).
    Tiny,
    /// SD1.5's real block layout (four stages, two resnets each, attention
    /// in the first three, an 8× VAE) at toy widths: every key an SD1.5
    /// checkpoint has, in a file of a few hundred kilobytes, for tests and
    /// for a dry run of the whole path on a CPU.
    Sd15Toy,
    /// Stable Diffusion XL 1.0 (and its fine-tunes: Pony, Illustrious, …).
    Sdxl,
    /// SDXL's block layout (three stages, 2 and 3 transformer blocks, two
    /// text encoders, the size conditioning) at toy widths.
    SdxlToy,
}

impl Architecture {
    /// Every architecture, by the name the config uses.
    pub const ALL: [(Architecture, &'static str); 5] = [
        (Architecture::Sd15, "sd15"),
        (Architecture::Tiny, "tiny"),
        (Architecture::Sd15Toy, "sd15_toy"),
        (Architecture::Sdxl, "sdxl"),
        (Architecture::SdxlToy, "sdxl_toy"),
    ];

    /// The name the config uses (`architecture = "sd15"`).
    pub fn name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(a, _)| *a == self)
            .map(|(_, n)| *n)
            .unwrap_or("sd15")
    }

    /// The architecture a config name means.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.iter().find(|(_, n)| *n == name).map(|(a, _)| *a)
    }

    /// The model family, as errors name it.
    pub fn family_name(self) -> &'static str {
        match self {
            Architecture::Sd15 | Architecture::Tiny | Architecture::Sd15Toy => "SD1.5",
            Architecture::Sdxl | Architecture::SdxlToy => "SDXL",
        }
    }

    /// Whether this is an SDXL-shaped model (two text encoders, the size
    /// conditioning, kohya's SDXL LoRA names).
    pub fn is_sdxl(self) -> bool {
        matches!(self, Architecture::Sdxl | Architecture::SdxlToy)
    }

    pub fn unet(self) -> UNetConfig {
        match self {
            Architecture::Sd15 => UNetConfig::sd15(),
            Architecture::Tiny => UNetConfig::tiny(),
            Architecture::Sd15Toy => UNetConfig::sd15_toy(),
            Architecture::Sdxl => UNetConfig::sdxl(),
            Architecture::SdxlToy => UNetConfig::sdxl_toy(),
        }
    }
    /// The (first) text encoder: CLIP ViT-L in both families.
    pub fn clip(self) -> ClipConfig {
        match self {
            Architecture::Sd15 | Architecture::Sdxl => ClipConfig::sd15(),
            Architecture::Tiny | Architecture::Sd15Toy | Architecture::SdxlToy => {
                ClipConfig::tiny()
            }
        }
    }
    /// SDXL's second text encoder (OpenCLIP ViT-bigG with its projection).
    pub fn clip2(self) -> Option<ClipConfig> {
        match self {
            Architecture::Sdxl => Some(ClipConfig::sdxl_bigg()),
            Architecture::SdxlToy => Some(ClipConfig::tiny_bigg()),
            _ => None,
        }
    }
    pub fn vae(self) -> VaeConfig {
        match self {
            Architecture::Sd15 => VaeConfig::sd15(),
            Architecture::Tiny => VaeConfig::tiny(),
            Architecture::Sd15Toy => VaeConfig::sd15_toy(),
            Architecture::Sdxl => VaeConfig::sdxl(),
            Architecture::SdxlToy => VaeConfig {
                scaling_factor: VaeConfig::sdxl().scaling_factor,
                ..VaeConfig::sd15_toy()
            },
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSection {
    /// An ldm single-file `.safetensors` or a diffusers folder.
    pub checkpoint: PathBuf,
    #[serde(default)]
    pub architecture: Architecture,
    #[serde(default = "default_prediction")]
    pub prediction: Prediction,
    /// 1 = last CLIP layer (SD1.5's default), 2 = penultimate.
    #[serde(default = "one")]
    pub clip_skip: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkSection {
    pub rank: usize,
    /// Always explicit: kohya defaults to 1, others to the rank.
    pub alpha: f64,
    #[serde(default)]
    pub dropout: f64,
    /// LoCon on 3×3 convs; 0 turns it off.
    #[serde(default)]
    pub conv_rank: usize,
    #[serde(default = "one_f64")]
    pub conv_alpha: f64,
    #[serde(default)]
    pub train_text_encoder: bool,
}

impl Default for NetworkSection {
    fn default() -> Self {
        Self {
            rank: 16,
            alpha: 8.0,
            dropout: 0.0,
            conv_rank: 0,
            conv_alpha: 1.0,
            train_text_encoder: false,
        }
    }
}

impl NetworkSection {
    pub fn unet_targets(&self) -> LoraTargets {
        LoraTargets {
            linear: Some(LoraSpec {
                rank: self.rank,
                alpha: self.alpha,
                dropout: self.dropout,
            }),
            conv3x3: (self.conv_rank > 0).then_some(LoraSpec {
                rank: self.conv_rank,
                alpha: self.conv_alpha,
                dropout: self.dropout,
            }),
        }
    }

    pub fn text_encoder_spec(&self) -> Option<LoraSpec> {
        self.train_text_encoder.then_some(LoraSpec {
            rank: self.rank,
            alpha: self.alpha,
            dropout: self.dropout,
        })
    }
}

/// Which optimizer updates the adapters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OptimizerKind {
    AdamW,
    Lion,
    /// Finds its own step size; keep the learning rate at 1.0.
    Prodigy,
}

/// Where the tensors live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviceKind {
    Cpu,
    Cuda,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainingSection {
    pub device: DeviceKind,
    pub learning_rate: f64,
    /// Defaults to `learning_rate`.
    pub text_encoder_lr: Option<f64>,
    pub optimizer: OptimizerKind,
    pub weight_decay: f64,
    pub lr_scheduler: LrScheduleKind,
    pub warmup_steps: usize,
    pub epochs: usize,
    /// Stops early when set; otherwise `epochs` decide.
    pub max_steps: Option<usize>,
    pub batch_size: usize,
    pub seed: u64,
    pub min_snr_gamma: Option<f64>,
    pub noise_offset: f64,
    /// Shuffle the sample order every epoch.
    pub shuffle: bool,
    /// Recompute instead of keep: every attention keeps only its q, k, v and
    /// recomputes its scores in the backward pass ([`super::recompute`]),
    /// and burn's `BalancedCheckpointing` recomputes the cheap element-wise
    /// ops. Not PyTorch's whole-block checkpointing: the other activations
    /// of a transformer block are still kept. At 512 px it lowers a step's
    /// peak from 16.1 to 6.6 GB for 6 % more time (docs/engine.md).
    pub gradient_checkpointing: bool,
    /// The precision the frozen linear and convolution weights are held in
    /// (`f32`, `bf16`, `f16`); the LoRA, its optimizer state and the
    /// arithmetic stay in f32 (see [`super::precision`]).
    pub base_precision: BasePrecision,
}

impl Default for TrainingSection {
    fn default() -> Self {
        Self {
            device: DeviceKind::Cpu,
            learning_rate: 1e-4,
            text_encoder_lr: None,
            optimizer: OptimizerKind::AdamW,
            weight_decay: 1e-2,
            lr_scheduler: LrScheduleKind::Constant,
            warmup_steps: 0,
            epochs: 10,
            max_steps: None,
            batch_size: 1,
            seed: 42,
            min_snr_gamma: None,
            noise_offset: 0.0,
            shuffle: true,
            gradient_checkpointing: false,
            base_precision: BasePrecision::F32,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataSection {
    /// The latent cache: a safetensors file with `N.latents` `[4, h, w]` and
    /// `N.input_ids` `[77]` per sample (see [`super::train::LatentDataset`]).
    /// With `folders`, the engine writes it and keeps it current.
    pub latents: PathBuf,
    /// Folders of pictures with their captions; empty = train from an
    /// existing `latents` file only.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub folders: Vec<PathBuf>,
    /// The captions' extension (`txt` for `image.png` → `image.txt`).
    #[serde(default = "default_caption_extension")]
    pub caption_extension: String,
    /// Side of the square the buckets keep the area of, in pixels.
    #[serde(default = "default_resolution")]
    pub resolution: usize,
    /// Bucket sides are multiples of this, in pixels.
    #[serde(default = "default_bucket_step")]
    pub bucket_step: usize,
    /// Shuffle each caption's comma-separated tags at every step, keeping
    /// the first `keep_tokens` (the trigger word) in place.
    #[serde(default)]
    pub shuffle_caption: bool,
    #[serde(default = "one")]
    pub keep_tokens: usize,
    /// A folder with CLIP's `vocab.json` and `merges.txt`; found by itself
    /// for diffusers checkpoints (see [`super::data::find_tokenizer`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokenizer: Option<PathBuf>,
    /// Repeats of the dataset per epoch (kohya's `num_repeats`).
    #[serde(default = "one")]
    pub repeats: usize,
}

fn default_caption_extension() -> String {
    "txt".into()
}
fn default_resolution() -> usize {
    512
}
fn default_bucket_step() -> usize {
    64
}

/// How saved tensors are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum SavePrecision {
    #[default]
    Fp16,
    Bf16,
    Fp32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputSection {
    pub dir: PathBuf,
    pub name: String,
    /// Also write `NAME-000002.safetensors` every N epochs; 0 = only at the end.
    #[serde(default)]
    pub save_every_n_epochs: usize,
    #[serde(default)]
    pub save_precision: SavePrecision,
}

fn default_prediction() -> Prediction {
    Prediction::Epsilon
}
fn one() -> usize {
    1
}
fn one_f64() -> f64 {
    1.0
}

impl EngineConfig {
    /// Reads and validates a config file. Relative paths inside it are
    /// resolved against the file's folder.
    pub fn load(path: &Path) -> Result<Self, EngineError> {
        let text = std::fs::read_to_string(path).map_err(|source| EngineError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let mut config = Self::parse(&text).map_err(|reason| EngineError::BadConfig {
            path: path.to_path_buf(),
            reason,
        })?;
        if let Some(base) = path.parent() {
            let data = &mut config.data;
            let paths = [
                &mut config.model.checkpoint,
                &mut data.latents,
                &mut config.output.dir,
            ]
            .into_iter()
            .chain(data.folders.iter_mut())
            .chain(data.tokenizer.iter_mut());
            for p in paths {
                if p.is_relative() {
                    *p = base.join(&*p);
                }
            }
        }
        Ok(config)
    }

    /// Parses and validates TOML text.
    pub fn parse(text: &str) -> Result<Self, String> {
        let config: Self = toml::from_str(text).map_err(|e| e.to_string())?;
        config.validate()?;
        Ok(config)
    }

    /// The checks a bad value would otherwise turn into a panic or a
    /// wasted run.
    pub fn validate(&self) -> Result<(), String> {
        let n = &self.network;
        let t = &self.training;
        if n.rank == 0 {
            return Err("`network.rank` must be at least 1".into());
        }
        if n.alpha.is_nan() || n.alpha <= 0.0 {
            return Err("`network.alpha` must be above 0".into());
        }
        if !(0.0..1.0).contains(&n.dropout) {
            return Err("`network.dropout` must be in [0, 1)".into());
        }
        if !t.learning_rate.is_finite() || t.learning_rate <= 0.0 {
            return Err("`training.learning_rate` must be above 0".into());
        }
        if t.batch_size == 0 {
            return Err("`training.batch_size` must be at least 1".into());
        }
        if t.epochs == 0 && t.max_steps.is_none() {
            return Err("set `training.epochs` or `training.max_steps`".into());
        }
        let d = &self.data;
        let unit = 8 * self.model.architecture.unet().downscale();
        if d.bucket_step == 0 || !d.bucket_step.is_multiple_of(unit) {
            return Err(format!(
                "`data.bucket_step` must be a multiple of {unit} pixels (the VAE's 8 times the UNet's downscaling)"
            ));
        }
        if d.resolution < d.bucket_step || !d.resolution.is_multiple_of(d.bucket_step) {
            return Err(format!(
                "`data.resolution` must be a multiple of `data.bucket_step` ({})",
                d.bucket_step
            ));
        }
        if d.caption_extension.trim_start_matches('.').is_empty() {
            return Err("`data.caption_extension` is empty; captions are usually `txt`".into());
        }
        if d.repeats == 0 {
            return Err("`data.repeats` must be at least 1".into());
        }
        if self.model.clip_skip == 0 {
            return Err("`model.clip_skip` starts at 1 (the last layer)".into());
        }
        if self.model.architecture.is_sdxl() && self.model.clip_skip != 1 {
            return Err(format!(
                "`model.clip_skip` {} does nothing for SDXL: it always reads both text encoders' second-to-last layer, as it was trained; leave clip_skip at 1",
                self.model.clip_skip
            ));
        }
        if self.output.name.is_empty()
            || !self
                .output
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
        {
            return Err(format!(
                "`output.name` `{}` must be letters, digits, `-`, `_` or `.`",
                self.output.name
            ));
        }
        self.model.architecture.unet().validate()?;
        Ok(())
    }

    /// Where the final LoRA goes.
    pub fn output_path(&self) -> PathBuf {
        self.output
            .dir
            .join(format!("{}.safetensors", self.output.name))
    }

    /// Where the checkpoint after `epoch` goes (kohya's naming).
    pub fn epoch_path(&self, epoch: usize) -> PathBuf {
        self.output
            .dir
            .join(format!("{}-{epoch:06}.safetensors", self.output.name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
[model]
checkpoint = "sd15.safetensors"
[network]
rank = 8
alpha = 4.0
[data]
latents = "cache.safetensors"
[output]
dir = "out"
name = "ink-foxes"
"#;

    #[test]
    fn a_minimal_config_gets_the_documented_defaults() {
        let c = EngineConfig::parse(MINIMAL).unwrap();
        assert_eq!(c.model.prediction, Prediction::Epsilon);
        assert_eq!(c.training.optimizer, OptimizerKind::AdamW);
        assert_eq!(c.network.unet_targets().conv3x3, None);
        assert_eq!(c.output.save_precision, SavePrecision::Fp16);
    }

    #[test]
    fn a_typo_is_refused_not_ignored() {
        let text = MINIMAL.replace("rank = 8", "rank = 8\nrnak = 4");
        let err = EngineConfig::parse(&text).unwrap_err();
        assert!(err.contains("rnak"), "{err}");
    }

    #[test]
    fn zero_rank_is_refused() {
        let err = EngineConfig::parse(&MINIMAL.replace("rank = 8", "rank = 0")).unwrap_err();
        assert!(err.contains("network.rank"), "{err}");
    }
}
