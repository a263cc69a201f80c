//! The Ategnatos engine's own config, `engine.toml`, run as
//! `ategnatos engine train <engine.toml>` (DESIGN decision 14).
//!
//! [`EngineConfig`] is the format: the engine reads it with
//! `deny_unknown_fields`, so the keys it accepts are exactly these fields.

use serde::{Deserialize, Serialize};

use super::{Rendered, RunPaths, model_source, path_text, sample_prompts};
use crate::plan::catalog::{ModelFamily, ModelSpec, PredictionType};
use crate::plan::training::{LrScheduler, Optimizer, Precision, TrainingPlan};

/// The whole engine config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EngineConfig {
    pub model: EngineModel,
    pub network: EngineNetwork,
    pub data: EngineData,
    pub train: EngineTrain,
    pub output: EngineOutput,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EngineModel {
    /// Catalog id.
    pub id: String,
    pub family: ModelFamily,
    pub prediction: PredictionType,
    /// Single-file checkpoint.
    pub checkpoint: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EngineNetwork {
    pub rank: u32,
    pub alpha: f32,
    /// `attention`: q, k, v and out projections.
    pub targets: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EngineData {
    pub folders: Vec<String>,
    pub caption_extension: String,
    pub trigger_word: String,
    pub repeats: u32,
    pub resolution: u32,
    pub batch_size: u32,
    pub cache_latents: bool,
    pub cache_text_embeddings: bool,
    pub cache_dir: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EngineTrain {
    pub epochs: u32,
    pub optimizer: Optimizer,
    pub learning_rate: f64,
    pub lr_scheduler: LrScheduler,
    pub warmup_steps: u32,
    pub precision: Precision,
    pub gradient_checkpointing: bool,
    pub seed: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EngineOutput {
    pub dir: String,
    pub name: String,
    pub save_every_epochs: u32,
    pub sample_prompts: Vec<String>,
}

/// The plan as the engine's config.
pub fn engine_config(plan: &TrainingPlan, model: &ModelSpec, paths: &RunPaths) -> EngineConfig {
    EngineConfig {
        model: EngineModel {
            id: model.id.into(),
            family: model.family,
            prediction: model.prediction,
            checkpoint: model_source(plan, model, paths, true),
        },
        network: EngineNetwork {
            rank: plan.rank,
            alpha: plan.alpha,
            targets: "attention".into(),
        },
        data: EngineData {
            folders: plan
                .image_folders
                .iter()
                .filter(|f| f.images > 0)
                .map(|f| path_text(&paths.abs(&f.path)))
                .collect(),
            caption_extension: plan.caption_extension.trim_start_matches('.').into(),
            trigger_word: plan.trigger_word.clone(),
            repeats: plan.repeats,
            resolution: plan.resolution,
            batch_size: plan.batch_size,
            cache_latents: plan.cache_latents,
            cache_text_embeddings: plan.cache_text_embeddings,
            cache_dir: path_text(&paths.cache_dir),
        },
        train: EngineTrain {
            epochs: plan.epochs,
            optimizer: plan.optimizer,
            learning_rate: plan.learning_rate,
            lr_scheduler: plan.lr_scheduler,
            warmup_steps: plan.warmup_steps,
            precision: plan.precision,
            gradient_checkpointing: plan.gradient_checkpointing,
            seed: plan.seed,
        },
        output: EngineOutput {
            dir: path_text(&paths.output_dir),
            name: plan.project.clone(),
            save_every_epochs: plan.save_every_epochs,
            sample_prompts: sample_prompts(plan),
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
        model_files: vec![config.model.checkpoint.clone()],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backends::tests::test_paths;
    use crate::plan::training::Backend;
    use crate::plan::training::tests::sample_plan;

    #[test]
    fn engine_toml_round_trips_through_the_strict_format() {
        let mut plan = sample_plan();
        plan.backend = Backend::Native;
        plan.optimizer = Optimizer::AdamW;
        let model = plan.model().unwrap();
        let r = render(&plan, model, &test_paths(Backend::Native));
        let text = &r.files[0].1;
        let back: EngineConfig = toml::from_str(text).unwrap();
        assert_eq!(
            back,
            engine_config(&plan, model, &test_paths(Backend::Native))
        );
        assert_eq!(back.network.alpha, 16.0);
        assert_eq!(
            back.model.checkpoint,
            "/studio/models/sd_xl_base_1.0.safetensors"
        );
        let table: toml::Table = text.parse().unwrap();
        let sections: Vec<&str> = table.keys().map(String::as_str).collect();
        assert_eq!(
            sections,
            vec!["model", "network", "data", "train", "output"]
        );
        // An extra key is refused, as the engine will refuse it.
        let bad = text.replace("[network]\n", "[network]\ndropout = 0.1\n");
        assert!(toml::from_str::<EngineConfig>(&bad).is_err());
    }
}
