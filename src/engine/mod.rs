//! The native LoRA trainer: Stable Diffusion 1.5 in burn, trained on the CPU
//! (burn's flex backend, what every test uses) or on an NVIDIA GPU (burn's
//! CUDA backend, with the crate feature `cuda`).
//!
//! It runs as a child process like every other trainer
//! (`ategnatos engine train CONFIG`, see [`cli`]) and prints kohya-style
//! progress lines a monitor can read.
//!
//! Map: [`nn`] and [`lora`] are the layers; [`unet`], [`clip`], [`vae`] the
//! SD1.5 models, one file per block, parameters named as their diffusers
//! checkpoint keys; [`model`] pairs the UNet and text encoder being trained;
//! [`weights`] + [`ldm`] (+ [`safetensors_file`]) load checkpoints in both
//! key layouts; [`tokenizer`] is CLIP's BPE; [`cache`] turns images and
//! captions into the latent cache; [`schedule`] is the DDPM noise schedule;
//! [`optim`] the learning-rate schedules, Lion and Prodigy; [`rng`] the seeded
//! generator; [`train`] the loop;
//! [`lora_file`] writes and reads kohya LoRA files; [`config`] is the TOML
//! the child process reads; [`bench`] times training steps.

use crate::studio::Hint;

pub mod alloc;
pub mod bench;
pub mod cache;
pub mod cli;
pub mod clip;
pub mod config;
pub mod data;
pub mod diagnose;
pub mod init_checkpoint;
pub mod kohya_metadata;
pub mod ldm;
pub mod lora;
pub mod lora_file;
pub mod model;
pub mod nn;
pub mod optim;
pub mod precision;
pub mod recompute;
pub mod rng;
pub mod safetensors_file;
pub mod schedule;
pub mod tokenizer;
pub mod train;
pub mod unet;
pub mod vae;
pub mod weights;

#[cfg(test)]
mod memory_tests;
#[cfg(test)]
mod precision_tests;
#[cfg(test)]
mod reference_tests;
#[cfg(test)]
mod test_files;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod toy_tests;

use std::path::PathBuf;

pub use config::EngineConfig;
pub use weights::LoadReport;

/// The CPU backend every test and CPU run uses: burn's flex backend (SIMD
/// kernels, threads, im2col + gemm convolutions); its timing against the
/// other CPU backends and torch is run by `scripts/engine_cpu_backends.py`
/// (docs/benchmarks.md, "Native engine").
pub type CpuBackend = burn::backend::Flex;
/// The CPU backend with autodiff, for training.
pub type CpuTrainBackend = burn::backend::Autodiff<CpuBackend>;

#[cfg(test)]
pub(crate) type TestBackend = CpuBackend;
#[cfg(test)]
pub(crate) type TestAutodiff = CpuTrainBackend;

/// What can go wrong in the engine.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("could not read `{path}`: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the engine config `{path}` is not valid: {reason}")]
    BadConfig { path: PathBuf, reason: String },
    #[error("`{path}` is not a usable weights file: {reason}")]
    BadWeights { path: PathBuf, reason: String },
    #[error("the checkpoint does not fit the model: {}", .0.summary())]
    IncompleteWeights(Box<LoadReport>),
    #[error("`{}` does not fit the {expected} model: {}", .path.display(), .diagnosis.what)]
    WrongCheckpoint {
        path: PathBuf,
        expected: String,
        diagnosis: diagnose::Diagnosis,
        reports: Vec<LoadReport>,
    },
    #[error("the training data `{path}` is not usable: {reason}")]
    BadDataset { path: PathBuf, reason: String },
    #[error("the loss became `{loss}` at step {step}; training stopped")]
    NonFiniteLoss { step: usize, loss: f32 },
    #[error("the LoRA file `{path}` does not fit this model: {reason}")]
    BadLora { path: PathBuf, reason: String },
    #[error("could not write the LoRA: {0}")]
    Write(#[from] crate::studio::StudioError),
    #[error("this build has no `{backend}` backend")]
    BackendUnavailable { backend: String },
    #[error("`{}` has no caption", .image.display())]
    Uncaptioned { image: PathBuf },
    #[error("CLIP's tokenizer files (vocab.json, merges.txt) were not found; looked in: {}", .looked.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "))]
    NoTokenizer { looked: Vec<PathBuf> },
}

impl Hint for EngineError {
    /// What the user can do about it, in one sentence.
    fn hint(&self) -> Option<String> {
        match self {
            EngineError::Read { .. } => Some("check that the path exists and is readable".into()),
            EngineError::BadConfig { .. } => Some(
                "regenerate the config with the plan tools, or fix the field named above".into(),
            ),
            EngineError::BadWeights { .. } => Some(
                "re-download the checkpoint: a file that is truncated or a Git LFS pointer cannot be read".into(),
            ),
            EngineError::IncompleteWeights(_) => Some(
                "this checkpoint is not a Stable Diffusion 1.5 model (SDXL, SD2 and inpainting models have other layers); pick an SD1.5 base".into(),
            ),
            EngineError::WrongCheckpoint { diagnosis, .. } => Some(diagnosis.hint.clone()),
            EngineError::BadDataset { .. } => Some(
                "re-run latent caching for this dataset; every sample needs latents and caption tokens".into(),
            ),
            EngineError::NonFiniteLoss { .. } => Some(
                "lower the learning rate (or use alpha below rank), then train again".into(),
            ),
            EngineError::BadLora { .. } => Some(
                "use a LoRA trained for SD1.5 with the same rank and layer set".into(),
            ),
            EngineError::Write(e) => e.hint(),
            EngineError::Uncaptioned { .. } => Some(
                "write a caption for it (caption_preview, then write_captions), or move it out of the training folder".into(),
            ),
            EngineError::NoTokenizer { .. } => Some(
                "set `data.tokenizer` to a folder holding vocab.json and merges.txt (the `tokenizer` folder of the model's diffusers repository), or leave it out to use CLIP's vocabulary built into Ategnatos".into(),
            ),
            EngineError::BackendUnavailable { .. } => Some(
                "build Ategnatos with `--features cuda` to train on an NVIDIA GPU, or set `device = \"cpu\"`".into(),
            ),
        }
    }
}
