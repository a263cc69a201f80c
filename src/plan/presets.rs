//! Presets: a good first plan for each training type, model family and
//! length (Quick 5 epochs, Standard 15, Thorough 25), and each optimizer's
//! sensible learning rate.
//!
//! The numbers are the community's usual starting points, as the backends'
//! own docs and examples write them (`research/backends.md` §1): rank 16–32,
//! alpha rank/2 on the UNets and alpha = rank on the transformers (ai-toolkit
//! forces it there), AdamW 1e-4, Lion about a third of that, Prodigy 1.
//! Presets assume a roomy GPU; the shrink ladder then fits them to the real one.

use super::catalog::{ModelFamily, ModelSpec};
use super::training::{
    Backend, BaseWeights, ImageFolder, LrScheduler, Optimizer, Precision, Preset, TrainingPlan,
};
use crate::studio::project::Project;
use crate::studio::project::TrainingType;

/// The learning rate an optimizer starts from for a family.
pub fn default_learning_rate(optimizer: Optimizer, family: ModelFamily) -> f64 {
    let adam = match family {
        ModelFamily::Sd15 | ModelFamily::Sdxl => 1e-4,
        ModelFamily::Flux | ModelFamily::Sd3 => 1e-4,
    };
    match optimizer {
        Optimizer::AdamW | Optimizer::AdamW8bit | Optimizer::Adafactor => adam,
        Optimizer::Lion | Optimizer::Lion8bit => adam / 3.0,
        Optimizer::Prodigy => 1.0,
    }
}

/// The learning-rate range that trains without burning or stalling, per
/// optimizer and family: (lowest, highest).
pub fn safe_learning_rate(optimizer: Optimizer, family: ModelFamily) -> (f64, f64) {
    let transformer = family.is_transformer();
    match optimizer {
        Optimizer::Prodigy => (0.5, 1.5),
        Optimizer::Lion | Optimizer::Lion8bit if transformer => (1e-6, 1.5e-4),
        Optimizer::Lion | Optimizer::Lion8bit => (1e-6, 3e-4),
        _ if transformer => (5e-6, 5e-4),
        _ => (5e-6, 1e-3),
    }
}

/// Rank for a training type and family: characters and styles need more room
/// than a single object; transformers learn more per rank.
fn rank_for(kind: TrainingType, family: ModelFamily) -> u32 {
    match (kind, family.is_transformer()) {
        (TrainingType::Object, _) => 16,
        (TrainingType::Style, true) => 32,
        (TrainingType::Character, true) => 16,
        (_, false) => 32,
    }
}

/// Pictures to show per epoch, before dividing by the dataset size.
fn samples_per_epoch_target(kind: TrainingType, family: ModelFamily) -> f64 {
    let base = match kind {
        TrainingType::Character => 100.0,
        TrainingType::Object => 80.0,
        TrainingType::Style => 60.0,
    };
    // Transformers converge in fewer steps.
    match family {
        ModelFamily::Sd15 | ModelFamily::Sdxl => base,
        ModelFamily::Sd3 => base * 0.7,
        ModelFamily::Flux => base * 0.5,
    }
}

/// Repeats so an epoch shows about the target number of pictures.
pub fn repeats_for(kind: TrainingType, family: ModelFamily, images: u32) -> u32 {
    let target = samples_per_epoch_target(kind, family);
    ((target / f64::from(images.max(1))).ceil() as u32).clamp(1, 20)
}

/// The preset plan for a project (before it is fitted to a GPU).
pub fn preset_plan(
    project: &Project,
    model: &ModelSpec,
    preset: Preset,
    backend: Backend,
    image_folders: Vec<ImageFolder>,
) -> TrainingPlan {
    let family = model.family;
    let kind = project.training_type;
    let images: u32 = image_folders.iter().map(|f| f.images).sum();
    let rank = rank_for(kind, family);
    let alpha = if family.is_transformer() {
        rank as f32
    } else {
        rank as f32 / 2.0
    };
    let optimizer = if backend.support().optimizers.contains(&Optimizer::AdamW8bit) {
        Optimizer::AdamW8bit
    } else {
        Optimizer::AdamW
    };
    // SD1.5 characters learn faces better with the text encoder trained too.
    let train_text_encoder = family == ModelFamily::Sd15
        && kind == TrainingType::Character
        && backend.support().text_encoder_training.contains(&family);
    let batch_size = match family {
        ModelFamily::Sd15 => 4,
        ModelFamily::Sdxl => 2,
        ModelFamily::Flux | ModelFamily::Sd3 => 1,
    };
    let learning_rate = default_learning_rate(optimizer, family);
    TrainingPlan {
        project: project.name.clone(),
        base_model: model.id.to_string(),
        model_path: None,
        training_type: kind,
        preset,
        backend,
        dataset: project.dataset.clone(),
        image_folders,
        caption_extension: project.caption_extension.clone(),
        trigger_word: project.trigger_word.clone(),
        repeats: repeats_for(kind, family, images),
        epochs: preset.epochs(),
        batch_size,
        resolution: model.native_resolution,
        rank,
        alpha,
        optimizer,
        learning_rate,
        train_text_encoder,
        text_encoder_lr: train_text_encoder.then_some(learning_rate / 2.0),
        lr_scheduler: match preset {
            Preset::Quick => LrScheduler::Constant,
            Preset::Standard | Preset::Thorough => LrScheduler::Cosine,
        },
        warmup_steps: 0,
        precision: if backend.support().precisions.contains(&Precision::Bf16) {
            Precision::Bf16
        } else {
            Precision::Fp32
        },
        base_weights: BaseWeights::Full,
        // The transformers practically always need it; the UNets train faster
        // without, except on the native engine, where it keeps 0.41× of the
        // memory for 1.06× of the time (SD1.5 at 512 px, docs/engine.md).
        gradient_checkpointing: family.is_transformer() || backend == Backend::Native,
        cache_latents: true,
        cache_text_embeddings: !train_text_encoder
            && crate::backends::caches_text_encoder_outputs(backend, family),
        save_every_epochs: match preset {
            Preset::Quick => 1,
            Preset::Standard => 3,
            Preset::Thorough => 5,
        },
        seed: 42,
        gpu: None,
        height: None,
        lora_targets: None,
        bf16_lora: false,
        blocks_to_swap: 0,
        low_vram: false,
        sample_images: true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::catalog::{CATALOG, lookup};
    use crate::plan::validate::validate;
    use crate::studio::project::new_project;

    fn project(kind: TrainingType, model: &str) -> Project {
        new_project("ink-fox", kind, model, "", "zkfox", "pics/fox", "txt")
    }

    fn folders(n: u32) -> Vec<ImageFolder> {
        vec![ImageFolder {
            path: "pics/fox".into(),
            images: n,
        }]
    }

    #[test]
    fn presets_set_the_epochs_the_artist_was_promised() {
        let model = lookup("sdxl").unwrap();
        let p = project(TrainingType::Character, "sdxl");
        for (preset, epochs) in [
            (Preset::Quick, 5),
            (Preset::Standard, 15),
            (Preset::Thorough, 25),
        ] {
            let plan = preset_plan(&p, model, preset, Backend::Kohya, folders(20));
            assert_eq!(plan.epochs, epochs);
        }
    }

    #[test]
    fn the_native_engine_checkpoints_by_default_and_kohyas_unets_do_not() {
        let model = crate::plan::catalog::lookup("sd15").unwrap();
        let plan = |backend| {
            preset_plan(
                &project(TrainingType::Style, "sd15"),
                model,
                Preset::Standard,
                backend,
                folders(25),
            )
        };
        assert!(plan(Backend::Native).gradient_checkpointing);
        assert!(!plan(Backend::Kohya).gradient_checkpointing);
    }

    #[test]
    fn every_preset_for_every_model_type_and_backend_is_valid() {
        for model in CATALOG {
            for kind in [
                TrainingType::Style,
                TrainingType::Character,
                TrainingType::Object,
            ] {
                for preset in [Preset::Quick, Preset::Standard, Preset::Thorough] {
                    for backend in Backend::ALL {
                        if !backend.support().families.contains(&model.family) {
                            continue;
                        }
                        let mut plan = preset_plan(
                            &project(kind, model.id),
                            model,
                            preset,
                            backend,
                            folders(25),
                        );
                        if model.hf_repo.is_none() {
                            plan.model_path = Some("models/pony.safetensors".into());
                        }
                        let problems = validate(&plan, None);
                        assert!(
                            problems.is_empty(),
                            "{} {:?} {:?} {:?}: {:?}",
                            model.id,
                            kind,
                            preset,
                            backend,
                            problems
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn learning_rates_follow_the_optimizer() {
        assert_eq!(
            default_learning_rate(Optimizer::Prodigy, ModelFamily::Flux),
            1.0
        );
        assert!(
            default_learning_rate(Optimizer::Lion, ModelFamily::Sdxl)
                < default_learning_rate(Optimizer::AdamW, ModelFamily::Sdxl)
        );
        for o in [
            Optimizer::AdamW,
            Optimizer::AdamW8bit,
            Optimizer::Prodigy,
            Optimizer::Lion,
            Optimizer::Lion8bit,
            Optimizer::Adafactor,
        ] {
            for f in [
                ModelFamily::Sd15,
                ModelFamily::Sdxl,
                ModelFamily::Flux,
                ModelFamily::Sd3,
            ] {
                let (lo, hi) = safe_learning_rate(o, f);
                let lr = default_learning_rate(o, f);
                assert!(lo <= lr && lr <= hi, "{o:?} {f:?}");
            }
        }
    }

    #[test]
    fn repeats_scale_with_the_dataset() {
        assert_eq!(
            repeats_for(TrainingType::Character, ModelFamily::Sdxl, 20),
            5
        );
        assert_eq!(
            repeats_for(TrainingType::Character, ModelFamily::Sdxl, 500),
            1
        );
        assert_eq!(repeats_for(TrainingType::Object, ModelFamily::Sdxl, 1), 20);
    }
}
