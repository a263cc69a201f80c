//! bghira/SimpleTuner: `config.json` (trainer options, the CLI flags without
//! `--`) and `multidatabackend.json` (a list of data backends).
//!
//! What trips people (`research/backends.md` §1.2, §5): captions default to
//! the file name (we write `caption_strategy: "textfile"`), repeats count the
//! extra passes (kohya N = SimpleTuner N−1), strings like `"False"` are truthy
//! inside the dataset file (we write JSON booleans), and an aspect bucket with
//! fewer samples than one batch makes the bucket manager find nothing.

use serde_json::{Map, Value, json};

use super::{Rendered, RunPaths, model_source, path_text, sample_prompts};
use crate::plan::catalog::{ModelFamily, ModelSpec};
use crate::plan::training::{
    BaseWeights, LoraCoverage, LrScheduler, Optimizer, Precision, TrainingPlan,
};

fn model_family(f: ModelFamily) -> &'static str {
    match f {
        ModelFamily::Sd15 => "sd1x",
        ModelFamily::Sdxl => "sdxl",
        ModelFamily::Flux => "flux",
        ModelFamily::Sd3 => "sd3",
    }
}

/// SimpleTuner's flavour name for the catalog's stock models.
fn model_flavour(model_id: &str) -> Option<&'static str> {
    match model_id {
        "sdxl" => Some("base-1.0"),
        "flux-dev" => Some("dev"),
        "flux-schnell" => Some("schnell"),
        "sd35-medium" => Some("medium"),
        "sd35-large" => Some("large"),
        _ => None,
    }
}

pub fn optimizer_name(o: Optimizer, precision: Precision) -> &'static str {
    match o {
        Optimizer::AdamW if precision == Precision::Bf16 => "adamw_bf16",
        Optimizer::AdamW => "optimi-adamw",
        Optimizer::AdamW8bit => "bnb-adamw8bit",
        Optimizer::Prodigy => "prodigy",
        Optimizer::Lion => "optimi-lion",
        Optimizer::Lion8bit => "bnb-lion8bit",
        Optimizer::Adafactor => "torch-adafactor",
    }
}

fn base_precision(w: BaseWeights) -> &'static str {
    match w {
        BaseWeights::Full => "no_change",
        BaseWeights::Fp8 => "fp8-quanto",
        BaseWeights::Int8 => "int8-quanto",
        BaseWeights::Int4 => "int4-quanto",
        BaseWeights::Nf4 => "nf4-bnb",
    }
}

/// The trainer config.
/// The side of the square with the plan's picture area, a multiple of 64
/// (`pixel_area` resolutions are areas: 832×1216 trains at about 1024²).
pub fn area_side(plan: &TrainingPlan) -> u32 {
    let area = f64::from(plan.width()) * f64::from(plan.height());
    ((area.sqrt() / 64.0).round() as u32).max(1) * 64
}

pub fn config_json(plan: &TrainingPlan, model: &ModelSpec, paths: &RunPaths) -> Value {
    let family = model.family;
    let interval = plan.steps_per_epoch().max(1) * u64::from(plan.save_every_epochs.max(1));
    let mut c = Map::new();
    let mut set = |k: &str, v: Value| {
        c.insert(k.to_string(), v);
    };
    set("model_type", json!("lora"));
    set("model_family", json!(model_family(family)));
    if plan.model_path.is_none()
        && let Some(f) = model_flavour(model.id)
    {
        set("model_flavour", json!(f));
    }
    set(
        "pretrained_model_name_or_path",
        json!(model_source(plan, model, paths, false)),
    );
    set("lora_type", json!("standard"));
    set("lora_rank", json!(plan.rank));
    // Always explicit: SimpleTuner's default alpha is the rank.
    set("lora_alpha", json!(plan.alpha));
    if family == ModelFamily::Flux {
        set(
            "flux_lora_target",
            json!(match plan.targets(family) {
                LoraCoverage::Attention => "mmdit",
                LoraCoverage::AllLinear => "all",
            }),
        );
    }
    set(
        "data_backend_config",
        json!(path_text(&paths.config_dir.join("multidatabackend.json"))),
    );
    set("output_dir", json!(path_text(&paths.output_dir)));
    set("resolution", json!(area_side(plan)));
    set("resolution_type", json!("pixel_area"));
    set("train_batch_size", json!(plan.batch_size));
    set("gradient_accumulation_steps", json!(1));
    // Epochs decide; 0 lets them.
    set("num_train_epochs", json!(plan.epochs));
    set("max_train_steps", json!(0));
    set("learning_rate", json!(plan.learning_rate));
    set(
        "lr_scheduler",
        json!(match plan.lr_scheduler {
            LrScheduler::Constant => "constant",
            LrScheduler::ConstantWithWarmup => "constant_with_warmup",
            LrScheduler::Cosine => "cosine",
        }),
    );
    set("lr_warmup_steps", json!(plan.warmup_steps));
    set(
        "optimizer",
        json!(optimizer_name(plan.optimizer, plan.precision)),
    );
    set(
        "mixed_precision",
        json!(if plan.precision == Precision::Bf16 {
            "bf16"
        } else {
            "no"
        }),
    );
    set(
        "base_model_precision",
        json!(base_precision(plan.base_weights)),
    );
    if plan.base_weights != BaseWeights::Full {
        // Quantise on the CPU: the GPU never holds the full-size base.
        set("quantize_via", json!("cpu"));
    }
    set("gradient_checkpointing", json!(plan.gradient_checkpointing));
    set("max_grad_norm", json!(1.0));
    if family.is_transformer() {
        set("flow_schedule_auto_shift", json!(true));
    } else {
        // An integer: SimpleTuner's `--snr_gamma` is an int option, and
        // `--snr_gamma=5.0` stops the run.
        set("snr_gamma", json!(5));
    }
    set("checkpoint_step_interval", json!(interval));
    set("checkpoints_total_limit", json!(10));
    set("resume_from_checkpoint", json!("latest"));
    let prompts = sample_prompts(plan);
    set(
        "validation_prompt",
        json!(prompts.first().cloned().unwrap_or_default()),
    );
    set("validation_step_interval", json!(interval));
    set(
        "validation_resolution",
        json!(format!("{}x{}", plan.width(), plan.height())),
    );
    if !plan.sample_images {
        set("validation_disable", json!(true));
    }
    set(
        "validation_guidance",
        json!(if family == ModelFamily::Flux {
            3.5
        } else {
            7.0
        }),
    );
    set("validation_num_inference_steps", json!(20));
    set("seed", json!(plan.seed));
    set("report_to", json!("none"));
    set("push_to_hub", json!(false));
    Value::Object(c)
}

/// The dataset list: one image backend per folder, then the text-embed cache.
pub fn multidatabackend_json(plan: &TrainingPlan, model: &ModelSpec, paths: &RunPaths) -> Value {
    // A bucket holding a single picture still fills a batch when the picture
    // repeats at least batch-size times; otherwise crop everything square so
    // all pictures share one bucket.
    let square = plan.repeats < plan.batch_size;
    let mut backends: Vec<Value> = plan
        .image_folders
        .iter()
        .filter(|f| f.images > 0)
        .enumerate()
        .map(|(i, f)| {
            let id = format!("{}-{}", plan.project, i + 1);
            let mut b = Map::new();
            b.insert("id".into(), json!(id));
            b.insert("type".into(), json!("local"));
            b.insert("dataset_type".into(), json!("image"));
            b.insert(
                "instance_data_dir".into(),
                json!(path_text(&paths.abs(&f.path))),
            );
            b.insert("caption_strategy".into(), json!("textfile"));
            b.insert("resolution".into(), json!(area_side(plan)));
            b.insert("resolution_type".into(), json!("pixel_area"));
            b.insert("crop".into(), json!(square));
            if square {
                b.insert("crop_style".into(), json!("center"));
                b.insert("crop_aspect".into(), json!("square"));
            }
            // kohya's N passes = SimpleTuner's N−1 extra repeats.
            b.insert("repeats".into(), json!(plan.repeats.saturating_sub(1)));
            b.insert(
                "cache_dir_vae".into(),
                json!(path_text(
                    &paths.cache_dir.join("vae").join(model.id).join(&id)
                )),
            );
            b.insert("text_embeds".into(), json!("text-embeds"));
            Value::Object(b)
        })
        .collect();
    backends.push(json!({
        "id": "text-embeds",
        "type": "local",
        "dataset_type": "text_embeds",
        "default": true,
        "cache_dir": path_text(&paths.cache_dir.join("text").join(model.id)),
        "write_batch_size": 128
    }));
    Value::Array(backends)
}

/// Both files and the command.
pub fn render(plan: &TrainingPlan, model: &ModelSpec, paths: &RunPaths) -> Rendered {
    let config = config_json(plan, model, paths);
    let pretty = |v: &Value| serde_json::to_string_pretty(v).unwrap_or_default() + "\n";
    Rendered {
        files: vec![
            ("config.json".into(), pretty(&config)),
            (
                "multidatabackend.json".into(),
                pretty(&multidatabackend_json(plan, model, paths)),
            ),
        ],
        // `simpletuner train` has no `--config`; `--env <folder>` reads
        // `<folder>/config.json` (an absolute folder is taken as it is).
        command: vec![
            "simpletuner".into(),
            "train".into(),
            "--env".into(),
            path_text(&paths.config_dir),
        ],
        working_dir: "any folder, with SimpleTuner's environment active".into(),
        model_files: config
            .get("pretrained_model_name_or_path")
            .and_then(Value::as_str)
            .map(|s| vec![s.to_string()])
            .unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backends::tests::{test_paths, trainer_args};
    use crate::plan::training::tests::sample_plan;
    use crate::plan::training::{Backend, ImageFolder};

    fn parse(plan: &TrainingPlan) -> (Map<String, Value>, Vec<Value>, Rendered) {
        let model = plan.model().unwrap();
        let r = render(plan, model, &test_paths(Backend::SimpleTuner));
        let file = |n: &str| r.files.iter().find(|f| f.0 == n).unwrap().1.clone();
        let config: Value = serde_json::from_str(&file("config.json")).unwrap();
        let data: Value = serde_json::from_str(&file("multidatabackend.json")).unwrap();
        (
            config.as_object().unwrap().clone(),
            data.as_array().unwrap().clone(),
            r,
        )
    }

    #[test]
    fn config_json_uses_simpletuner_options_with_real_types() {
        let defs = trainer_args("simpletuner.json");
        for model in ["sd15", "sdxl", "flux-dev", "sd35-medium"] {
            let mut plan = sample_plan();
            plan.backend = Backend::SimpleTuner;
            plan.base_model = model.into();
            plan.optimizer = Optimizer::AdamW;
            plan.base_weights = BaseWeights::Int8;
            let (c, _, _) = parse(&plan);
            for k in c.keys() {
                assert!(
                    defs["options"].get(k).is_some(),
                    "{model}: `{k}` is not a SimpleTuner option"
                );
            }
            assert_eq!(c["lora_alpha"], json!(16.0));
            assert_eq!(c["lora_rank"], json!(32));
            assert_eq!(c["gradient_checkpointing"], json!(true));
            assert_eq!(c["optimizer"], json!("adamw_bf16"));
            assert_eq!(c["base_model_precision"], json!("int8-quanto"));
            assert_eq!(c["num_train_epochs"], json!(15));
            assert!(c["checkpoint_step_interval"].as_u64().unwrap() > 0);
        }
    }

    #[test]
    fn snr_gamma_is_an_integer_as_simpletuner_parses_it() {
        assert_eq!(
            trainer_args("simpletuner.json")["options"]["snr_gamma"]["type"],
            json!("int")
        );
        let mut plan = sample_plan();
        plan.backend = Backend::SimpleTuner;
        let (c, _, _) = parse(&plan);
        // `--snr_gamma=5.0` would stop the run.
        assert!(c["snr_gamma"].is_u64(), "{}", c["snr_gamma"]);
    }

    #[test]
    fn the_command_reads_the_config_folder_through_env() {
        let launch = trainer_args("simpletuner.json")["launch"]["options"].clone();
        let mut plan = sample_plan();
        plan.backend = Backend::SimpleTuner;
        let (_, _, r) = parse(&plan);
        assert_eq!(
            r.command,
            vec![
                "simpletuner",
                "train",
                "--env",
                "/studio/workspace/configs/ink-fox/simpletuner"
            ]
        );
        assert!(launch.get("env").is_some() && launch.get("config").is_none());
        // The folder holds the config.json that `--env` reads.
        assert!(r.files.iter().any(|f| f.0 == "config.json"));
    }

    #[test]
    fn datasets_read_text_captions_and_convert_repeats() {
        let keys = trainer_args("simpletuner-databackend.json")["keys"].clone();
        let mut plan = sample_plan();
        plan.backend = Backend::SimpleTuner;
        plan.image_folders.push(ImageFolder {
            path: "pics/fox/more".into(),
            images: 3,
        });
        let (_, data, _) = parse(&plan);
        assert_eq!(data.len(), 3);
        let embeds: Vec<&Value> = data
            .iter()
            .filter(|b| b["dataset_type"] == "text_embeds")
            .collect();
        assert_eq!(embeds.len(), 1);
        assert_eq!(embeds[0]["default"], json!(true));
        for b in &data {
            for k in b.as_object().unwrap().keys() {
                assert!(keys.get(k).is_some(), "`{k}` is not a data backend key");
            }
            if b["dataset_type"] == "image" {
                assert_eq!(b["caption_strategy"], json!("textfile"));
                // kohya 5 → SimpleTuner 4, as a number; booleans as booleans.
                assert_eq!(b["repeats"], json!(4));
                assert!(b["crop"].is_boolean());
            }
        }
    }

    #[test]
    fn buckets_always_hold_a_batch() {
        let mut plan = sample_plan();
        plan.backend = Backend::SimpleTuner;
        plan.repeats = 1;
        plan.batch_size = 2;
        let (_, data, _) = parse(&plan);
        assert_eq!(data[0]["crop"], json!(true));
        assert_eq!(data[0]["crop_aspect"], json!("square"));
        plan.repeats = 2;
        let (_, data, _) = parse(&plan);
        assert_eq!(data[0]["crop"], json!(false));
    }
}
