//! ostris/ai-toolkit: one job YAML (`job: extension`, `config.process[]`
//! with network, save, datasets, train, model, sample), run as
//! `python run.py <job.yaml>`.
//!
//! ai-toolkit resumes silently from the newest save in
//! `<training_folder>/<name>/`, so every job gets a fresh name
//! (`research/backends.md` §1.3). It only counts steps, so the plan's epochs
//! become steps here.

use serde_json::{Value, json};

use super::{Rendered, RunPaths, model_source, path_text, sample_prompts};
use crate::plan::catalog::{ModelFamily, ModelSpec};
use crate::plan::training::{
    BaseWeights, LoraCoverage, LrScheduler, Optimizer, Precision, TrainingPlan,
};

fn arch(f: ModelFamily) -> &'static str {
    match f {
        ModelFamily::Sd15 => "sd1",
        ModelFamily::Sdxl => "sdxl",
        ModelFamily::Flux => "flux",
        ModelFamily::Sd3 => "sd3",
    }
}

pub fn optimizer_name(o: Optimizer) -> &'static str {
    match o {
        Optimizer::AdamW => "adamw",
        Optimizer::AdamW8bit => "adamw8bit",
        Optimizer::Prodigy => "prodigy",
        Optimizer::Lion => "lion",
        Optimizer::Lion8bit => "lion8bit",
        Optimizer::Adafactor => "adafactor",
    }
}

/// The job, as a JSON value (serialised to YAML by [`render`]).
pub fn job(plan: &TrainingPlan, model: &ModelSpec, paths: &RunPaths) -> Value {
    let family = model.family;
    let flow = family.is_transformer();
    let scheduler = if flow { "flowmatch" } else { "ddpm" };
    let save_every = plan.steps_per_epoch().max(1) * u64::from(plan.save_every_epochs.max(1));
    let dtype = match plan.precision {
        Precision::Fp16 => "fp16",
        _ => "bf16",
    };
    let datasets: Vec<Value> = plan
        .image_folders
        .iter()
        .filter(|f| f.images > 0)
        .map(|f| {
            json!({
                "folder_path": path_text(&paths.abs(&f.path)),
                "caption_ext": plan.caption_extension.trim_start_matches('.'),
                "caption_dropout_rate": 0.0,
                "shuffle_tokens": false,
                "cache_latents_to_disk": plan.cache_latents,
                "resolution": [super::simpletuner::area_side(plan)],
                "num_repeats": plan.repeats,
            })
        })
        .collect();
    let mut train = json!({
        "batch_size": plan.batch_size,
        "steps": plan.total_steps(),
        "gradient_accumulation_steps": 1,
        "train_unet": true,
        "train_text_encoder": plan.train_text_encoder,
        "gradient_checkpointing": plan.gradient_checkpointing,
        "noise_scheduler": scheduler,
        "optimizer": optimizer_name(plan.optimizer),
        "lr": plan.learning_rate,
        "lr_scheduler": match plan.lr_scheduler {
            LrScheduler::Constant => "constant",
            LrScheduler::ConstantWithWarmup => "constant_with_warmup",
            LrScheduler::Cosine => "cosine",
        },
        "dtype": dtype,
        "cache_text_embeddings": plan.cache_text_embeddings,
        "max_grad_norm": 1.0,
    });
    if let Some(t) = train.as_object_mut() {
        if plan.train_text_encoder {
            t.insert(
                "text_encoder_lr".into(),
                json!(plan.text_encoder_lr.unwrap_or(plan.learning_rate / 2.0)),
            );
        }
        if !flow {
            t.insert("min_snr_gamma".into(), json!(5.0));
        }
        if !plan.sample_images {
            t.insert("disable_sampling".into(), json!(true));
        }
        if plan.optimizer == Optimizer::Adafactor {
            t.insert(
                "optimizer_params".into(),
                json!({"scale_parameter": false, "relative_step": false, "warmup_init": false}),
            );
        }
    }
    let mut model_block = json!({
        "name_or_path": model_source(plan, model, paths, false),
        "arch": arch(family),
        "quantize": plan.base_weights == BaseWeights::Fp8,
    });
    if let Some(m) = model_block.as_object_mut() {
        if plan.base_weights == BaseWeights::Fp8 {
            m.insert("qtype".into(), json!("qfloat8"));
        }
        if plan.low_vram {
            m.insert("low_vram".into(), json!(true));
        }
        if model.id == "flux-schnell" {
            // schnell is step-distilled; ai-toolkit trains it through this adapter.
            m.insert(
                "assistant_lora_path".into(),
                json!("ostris/FLUX.1-schnell-training-adapter"),
            );
        }
    }
    let mut network = json!({
        "type": "lora",
        "linear": plan.rank,
        // Always explicit: ai-toolkit's default alpha is 1.
        "linear_alpha": plan.alpha,
    });
    if plan.targets(family) == LoraCoverage::Attention
        && let Some(n) = network.as_object_mut()
    {
        // Attention projections only (diffusers' module names).
        n.insert(
            "network_kwargs".into(),
            json!({"only_if_contains": ["to_q", "to_k", "to_v", "to_out"]}),
        );
    }
    let (guidance, sample_steps) = match (family, model.id) {
        (_, "flux-schnell") => (1.0, 4),
        (ModelFamily::Flux, _) => (3.5, 20),
        _ => (7.0, 25),
    };
    json!({
        "job": "extension",
        "config": {
            "name": paths.run_name,
            "process": [{
                "type": "sd_trainer",
                "training_folder": path_text(paths.output_dir.parent().unwrap_or(&paths.output_dir)),
                "trigger_word": plan.trigger_word,
                "network": network,
                "save": {
                    "dtype": if plan.precision == Precision::Fp16 { "float16" } else { "bf16" },
                    "save_every": save_every,
                    "max_step_saves_to_keep": 10,
                    "push_to_hub": false,
                },
                "datasets": datasets,
                "train": train,
                "model": model_block,
                "sample": {
                    "sampler": scheduler,
                    "sample_every": save_every,
                    "width": plan.width(),
                    "height": plan.height(),
                    "prompts": sample_prompts(plan),
                    "seed": plan.seed,
                    "walk_seed": true,
                    "guidance_scale": guidance,
                    "sample_steps": sample_steps,
                },
            }],
        },
        "meta": {"name": "[name]", "version": "1.0"},
    })
}

/// The job file and the command.
pub fn render(plan: &TrainingPlan, model: &ModelSpec, paths: &RunPaths) -> Rendered {
    let job = job(plan, model, paths);
    let yaml = serde_norway::to_string(&job).unwrap_or_default();
    Rendered {
        files: vec![("job.yaml".into(), yaml)],
        command: vec![
            "python".into(),
            "run.py".into(),
            path_text(&paths.config_dir.join("job.yaml")),
        ],
        working_dir: "the ai-toolkit checkout (its virtual environment active)".into(),
        model_files: vec![model_source(plan, model, paths, false)],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backends::tests::{test_paths, trainer_args};
    use crate::plan::training::Backend;
    use crate::plan::training::tests::sample_plan;
    use serde_norway::Value as Yaml;

    /// Every key of `v` is one ai-toolkit reads in `schema` (unknown keys
    /// are ignored there, so a typo would be lost without a word).
    fn keys(v: &Yaml, schemas: &serde_json::Value, schema: &str) {
        let map = v
            .as_mapping()
            .unwrap_or_else(|| panic!("{schema} is not a mapping"));
        for k in map.keys() {
            let k = k.as_str().unwrap();
            assert!(
                schemas[schema].get(k).is_some(),
                "`{k}` is not read by ai-toolkit in {schema}"
            );
        }
    }

    fn parsed(plan: &TrainingPlan) -> Yaml {
        let model = plan.model().unwrap();
        let r = render(plan, model, &test_paths(Backend::AiToolkit));
        serde_norway::from_str(&r.files[0].1).unwrap()
    }

    #[test]
    fn the_job_yaml_has_the_shape_ai_toolkit_reads() {
        let schemas = trainer_args("ai-toolkit.json")["schemas"].clone();
        for model in ["sdxl", "flux-dev", "flux-schnell", "sd35-medium"] {
            let mut plan = sample_plan();
            plan.backend = Backend::AiToolkit;
            plan.base_model = model.into();
            if model != "sdxl" {
                plan.alpha = 32.0;
                plan.base_weights = BaseWeights::Fp8;
            }
            let job = parsed(&plan);
            assert_eq!(job["job"].as_str(), Some("extension"));
            assert_eq!(job["meta"]["name"].as_str(), Some("[name]"));
            let name = job["config"]["name"].as_str().unwrap();
            assert_eq!(name, "ink-fox-20261122-123456");
            let process = job["config"]["process"].as_sequence().unwrap();
            assert_eq!(process.len(), 1);
            let p = &process[0];
            keys(p, &schemas, "process");
            for (section, schema) in [
                ("network", "NetworkConfig"),
                ("save", "SaveConfig"),
                ("train", "TrainConfig"),
                ("model", "ModelConfig"),
                ("sample", "SampleConfig"),
            ] {
                assert_eq!(schemas["process"][section]["schema"], schema);
                keys(&p[section], &schemas, schema);
            }
            for d in p["datasets"].as_sequence().unwrap() {
                keys(d, &schemas, "DatasetConfig");
                assert_eq!(d["caption_ext"].as_str(), Some("txt"));
            }
            // The sd_trainer process takes its device from accelerate, not from the job.
            assert!(p.get("device").is_none());
            assert!(p["network"]["linear_alpha"].as_f64().is_some());
            assert_eq!(p["train"]["steps"].as_u64(), Some(plan.total_steps()));
            let sched = p["train"]["noise_scheduler"].as_str().unwrap();
            assert_eq!(sched, p["sample"]["sampler"].as_str().unwrap());
            assert_eq!(sched == "flowmatch", model != "sdxl");
            assert_eq!(p["model"]["quantize"].as_bool(), Some(model != "sdxl"));
        }
    }

    #[test]
    fn every_run_gets_a_fresh_name() {
        let plan = sample_plan();
        let model = plan.model().unwrap();
        let mut a = test_paths(Backend::AiToolkit);
        let j1 = job(&plan, model, &a);
        a.run_name = "ink-fox-20261122-130000".into();
        let j2 = job(&plan, model, &a);
        assert_ne!(j1["config"]["name"], j2["config"]["name"]);
    }
}
