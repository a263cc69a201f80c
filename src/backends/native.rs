//! The Ategnatos engine's own config, `engine.toml`, run as
//! `ategnatos engine train <engine.toml>` (DESIGN decision 14).
//!
//! The file is [`crate::engine::EngineConfig`] itself, the format the engine
//! reads with `deny_unknown_fields`: what is written here is exactly what
//! trains. The engine lists the plan's folders, encodes the pictures with
//! the checkpoint's VAE into the cache folder once, and reuses that cache
//! until a picture, caption or the model changes.

use std::path::PathBuf;

use super::{Rendered, RunPaths, model_source, path_text};
use crate::engine::EngineConfig;
use crate::engine::config::{
    Architecture, DataSection, DeviceKind, ModelSection, NetworkSection, OptimizerKind,
    OutputSection, SavePrecision, TrainingSection,
};
use crate::engine::optim::LrScheduleKind;
use crate::engine::precision::BasePrecision;
use crate::engine::schedule::Prediction;
use crate::plan::catalog::{ModelFamily, ModelSpec, PredictionType};
use crate::plan::training::{LrScheduler, Optimizer, Precision, TrainingPlan};

/// The plan as the engine's config. The plan must have passed validation
/// (the native engine trains SD1.5 and SDXL with AdamW, Lion or Prodigy, its
/// frozen weights in f32, bf16 or f16;
/// anything else is refused there, before a file is written).
pub fn engine_config(plan: &TrainingPlan, model: &ModelSpec, paths: &RunPaths) -> EngineConfig {
    let learning_rate = plan.learning_rate;
    EngineConfig {
        model: ModelSection {
            checkpoint: PathBuf::from(model_source(plan, model, paths, true)),
            architecture: match model.family {
                ModelFamily::Sdxl => Architecture::Sdxl,
                _ => Architecture::Sd15,
            },
            prediction: match model.prediction {
                PredictionType::VPrediction => Prediction::VPrediction,
                PredictionType::Epsilon | PredictionType::FlowMatching => Prediction::Epsilon,
            },
            clip_skip: 1,
        },
        network: NetworkSection {
            rank: plan.rank as usize,
            alpha: f64::from(plan.alpha),
            train_text_encoder: plan.train_text_encoder,
            ..NetworkSection::default()
        },
        training: TrainingSection {
            // A GPU in the plan means CUDA (a build with `--features cuda`);
            // without one the engine trains on the CPU, slowly.
            device: if plan.gpu.is_some() {
                DeviceKind::Cuda
            } else {
                DeviceKind::Cpu
            },
            learning_rate,
            text_encoder_lr: plan.text_encoder_lr,
            optimizer: match plan.optimizer {
                Optimizer::Lion | Optimizer::Lion8bit => OptimizerKind::Lion,
                Optimizer::Prodigy => OptimizerKind::Prodigy,
                Optimizer::AdamW | Optimizer::AdamW8bit | Optimizer::Adafactor => {
                    OptimizerKind::AdamW
                }
            },
            lr_scheduler: match plan.lr_scheduler {
                LrScheduler::Constant | LrScheduler::ConstantWithWarmup => LrScheduleKind::Constant,
                LrScheduler::Cosine => LrScheduleKind::Cosine,
            },
            warmup_steps: plan.warmup_steps as usize,
            epochs: plan.epochs as usize,
            batch_size: plan.batch_size as usize,
            seed: plan.seed,
            gradient_checkpointing: plan.gradient_checkpointing,
            // the plan's precision is the frozen weights'; the LoRA, its
            // optimizer and the arithmetic stay f32 in the engine
            base_precision: match plan.precision {
                Precision::Bf16 => BasePrecision::Bf16,
                Precision::Fp16 => BasePrecision::F16,
                Precision::Fp32 => BasePrecision::F32,
            },
            ..TrainingSection::default()
        },
        data: DataSection {
            latents: paths.cache_dir.join("latents.safetensors"),
            folders: plan
                .image_folders
                .iter()
                .filter(|f| f.images > 0)
                .map(|f| paths.abs(&f.path))
                .collect(),
            caption_extension: plan.caption_extension.trim_start_matches('.').into(),
            resolution: plan.resolution as usize,
            bucket_step: 64,
            // Tag captions (SD1.5's style) are shuffled with the trigger
            // word kept first, as kohya's `shuffle_caption` + `keep_tokens`.
            shuffle_caption: true,
            keep_tokens: 1,
            tokenizer: None,
            repeats: plan.repeats.max(1) as usize,
        },
        output: OutputSection {
            dir: paths.output_dir.clone(),
            name: plan.project.clone(),
            save_every_n_epochs: plan.save_every_epochs as usize,
            save_precision: SavePrecision::Fp16,
        },
    }
}

/// The engine file and the command.
pub fn render(plan: &TrainingPlan, model: &ModelSpec, paths: &RunPaths) -> Rendered {
    let config = engine_config(plan, model, paths);
    Rendered {
        files: vec![(
            "engine.toml".into(),
            toml::to_string(&config).unwrap_or_default(),
        )],
        command: vec![
            "ategnatos".into(),
            "engine".into(),
            "train".into(),
            path_text(&paths.config_dir.join("engine.toml")),
        ],
        working_dir: "the workspace root".into(),
        model_files: vec![path_text(&config.model.checkpoint)],
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::backends::tests::test_paths;
    use crate::plan::training::Backend;
    use crate::plan::training::tests::sample_plan;

    pub(crate) fn native_plan() -> TrainingPlan {
        let mut plan = sample_plan();
        plan.backend = Backend::Native;
        plan.base_model = "sd15".into();
        plan.optimizer = Optimizer::Prodigy;
        plan.learning_rate = 1.0;
        plan.precision = crate::plan::training::Precision::Fp32;
        plan.resolution = 512;
        plan.batch_size = 4;
        plan
    }

    #[test]
    fn the_written_file_is_what_the_engine_reads() {
        let plan = native_plan();
        let model = plan.model().unwrap();
        let paths = test_paths(Backend::Native);
        let r = render(&plan, model, &paths);
        let text = &r.files[0].1;
        // The engine's own strict parser, with its validation.
        let back = EngineConfig::parse(text).unwrap();
        assert_eq!(back, engine_config(&plan, model, &paths));
        assert_eq!(back.training.optimizer, OptimizerKind::Prodigy);
        assert_eq!(back.network.rank, plan.rank as usize);
        assert_eq!(back.data.repeats, plan.repeats as usize);
        assert!(back.data.shuffle_caption && back.data.keep_tokens == 1);
        assert_eq!(
            back.model.checkpoint,
            PathBuf::from("/studio/models/v1-5-pruned-emaonly.safetensors")
        );
        assert!(back.data.latents.starts_with(&paths.cache_dir));
        assert!(!back.data.folders.is_empty());
        // An unknown key is refused, as the engine refuses it.
        let bad = text.replace("[network]\n", "[network]\nlayers = \"all\"\n");
        assert!(EngineConfig::parse(&bad).is_err());
    }

    #[test]
    fn an_sdxl_plan_passes_validation_and_writes_the_sdxl_architecture() {
        let mut plan = native_plan();
        plan.base_model = "sdxl".into();
        plan.resolution = 1024;
        plan.train_text_encoder = true;
        plan.cache_text_embeddings = false;
        let rejections = crate::plan::validate::validate(&plan, None);
        assert!(rejections.is_empty(), "{rejections:?}");
        let model = plan.model().unwrap();
        let r = render(&plan, model, &test_paths(Backend::Native));
        let back = EngineConfig::parse(&r.files[0].1).unwrap();
        assert_eq!(back.model.architecture, Architecture::Sdxl);
        assert!(back.network.train_text_encoder);
        assert_eq!(back.data.resolution, 1024);
        assert_eq!(back.training.base_precision, BasePrecision::F32);
        // a bf16 plan holds the frozen weights in bf16
        plan.precision = Precision::Bf16;
        plan.gradient_checkpointing = true;
        assert!(crate::plan::validate::validate(&plan, None).is_empty());
        let back = engine_config(&plan, model, &test_paths(Backend::Native));
        assert_eq!(back.training.base_precision, BasePrecision::Bf16);
        assert!(back.training.gradient_checkpointing);
        // SD1.5 stays SD1.5
        let sd15 = native_plan();
        let back = engine_config(&sd15, sd15.model().unwrap(), &test_paths(Backend::Native));
        assert_eq!(back.model.architecture, Architecture::Sd15);
    }
}
