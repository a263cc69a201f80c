//! kohya-ss/sd-scripts: the dataset TOML (`--dataset_config`), the training
//! arguments TOML (`--config_file`), sample prompts, and the exact
//! `accelerate launch` line.
//!
//! The dataset TOML is checked by a strict schema (an unknown key stops the
//! run), so only the keys of `library/config_util.py` are written, and
//! `caption_extension = ".txt"` always (its default is `.caption`). The
//! arguments TOML is read without any check (a typo is silently ignored and a
//! value is not converted), so every key is an argparse option name and every
//! value has its final type (`research/backends.md` §1.1).

use toml::{Table, Value};

use super::{
    Rendered, RunPaths, caches_text_encoder_outputs, model_source, path_text, sample_prompts,
};
use crate::plan::catalog::{ModelFamily, ModelSpec};
use crate::plan::training::{
    Backend, BaseWeights, LrScheduler, Optimizer, Precision, TrainingPlan,
};

/// The training script for a family.
pub fn script(family: ModelFamily) -> &'static str {
    match family {
        ModelFamily::Sd15 => "train_network.py",
        ModelFamily::Sdxl => "sdxl_train_network.py",
        // SD3 is refused by validation for kohya; flux_train_network is the closest name.
        ModelFamily::Flux | ModelFamily::Sd3 => "flux_train_network.py",
    }
}

pub fn optimizer_type(o: Optimizer) -> &'static str {
    match o {
        Optimizer::AdamW => "AdamW",
        Optimizer::AdamW8bit => "AdamW8bit",
        Optimizer::Prodigy => "Prodigy",
        Optimizer::Lion => "Lion",
        Optimizer::Lion8bit => "Lion8bit",
        Optimizer::Adafactor => "AdaFactor",
    }
}

fn optimizer_args(o: Optimizer) -> Option<Vec<&'static str>> {
    match o {
        // A fixed learning rate, not Adafactor's own schedule.
        Optimizer::Adafactor => Some(vec![
            "scale_parameter=False",
            "relative_step=False",
            "warmup_init=False",
        ]),
        Optimizer::Prodigy => Some(vec![
            "decouple=True",
            "weight_decay=0.01",
            "use_bias_correction=True",
            "safeguard_warmup=True",
        ]),
        _ => None,
    }
}

fn scheduler(s: LrScheduler) -> &'static str {
    match s {
        LrScheduler::Constant => "constant",
        LrScheduler::ConstantWithWarmup => "constant_with_warmup",
        LrScheduler::Cosine => "cosine",
    }
}

fn string(s: impl Into<String>) -> Value {
    Value::String(s.into())
}

fn int(n: impl Into<i64>) -> Value {
    Value::Integer(n.into())
}

/// `dataset.toml`: one subset per folder of pictures.
pub fn dataset_toml(plan: &TrainingPlan, paths: &RunPaths) -> Table {
    let res = i64::from(plan.resolution);
    let mut general = Table::new();
    general.insert("enable_bucket".into(), Value::Boolean(true));
    general.insert("bucket_no_upscale".into(), Value::Boolean(true));
    general.insert("bucket_reso_steps".into(), int(64));
    general.insert("min_bucket_reso".into(), int((res / 2).max(256)));
    general.insert("max_bucket_reso".into(), int((res * 2).min(2048)));
    general.insert(
        "caption_extension".into(),
        string(format!(
            ".{}",
            plan.caption_extension.trim_start_matches('.')
        )),
    );
    // Must be off while text-encoder outputs are cached (kohya asserts it).
    general.insert("shuffle_caption".into(), Value::Boolean(false));
    general.insert("keep_tokens".into(), int(1));

    let subsets: Vec<Value> = plan
        .image_folders
        .iter()
        .filter(|f| f.images > 0)
        .map(|f| {
            let mut s = Table::new();
            s.insert("image_dir".into(), string(path_text(&paths.abs(&f.path))));
            s.insert("num_repeats".into(), int(plan.repeats));
            // Used only for a picture without a caption file.
            s.insert("class_tokens".into(), string(plan.trigger_word.clone()));
            Value::Table(s)
        })
        .collect();
    let mut dataset = Table::new();
    // An integer (or [width, height]) here: the string "1024,1024" is refused by the schema.
    if plan.height() == plan.width() {
        dataset.insert("resolution".into(), int(res));
    } else {
        dataset.insert(
            "resolution".into(),
            Value::Array(vec![int(plan.width()), int(plan.height())]),
        );
    }
    dataset.insert("batch_size".into(), int(plan.batch_size));
    dataset.insert("subsets".into(), Value::Array(subsets));

    let mut doc = Table::new();
    doc.insert("general".into(), Value::Table(general));
    doc.insert("datasets".into(), Value::Array(vec![Value::Table(dataset)]));
    doc
}

/// `config.toml`: the training script's arguments.
pub fn training_toml(plan: &TrainingPlan, model: &ModelSpec, paths: &RunPaths) -> Table {
    let family = model.family;
    let mut t = Table::new();
    let mut set = |k: &str, v: Value| {
        t.insert(k.to_string(), v);
    };
    // kohya loads Flux only from single files; SD/SDXL also from the Hub.
    let single_file = family == ModelFamily::Flux;
    let model_path = model_source(plan, model, paths, single_file);
    set("pretrained_model_name_or_path", string(model_path.clone()));
    if family == ModelFamily::Flux {
        let dir = std::path::Path::new(&model_path)
            .parent()
            .map(path_text)
            .unwrap_or_default();
        set("clip_l", string(format!("{dir}/clip_l.safetensors")));
        set("t5xxl", string(format!("{dir}/t5xxl_fp16.safetensors")));
        set("ae", string(format!("{dir}/ae.safetensors")));
        // The default 3.5 is wrong for training dev.
        set("guidance_scale", Value::Float(1.0));
        set("timestep_sampling", string("flux_shift"));
        set("model_prediction_type", string("raw"));
    }
    set(
        "dataset_config",
        string(path_text(&paths.config_dir.join("dataset.toml"))),
    );
    set("output_dir", string(path_text(&paths.output_dir)));
    set("output_name", string(plan.project.clone()));
    set("save_model_as", string("safetensors"));
    set(
        "save_precision",
        string(if plan.precision == Precision::Bf16 {
            "bf16"
        } else {
            "fp16"
        }),
    );
    set("save_every_n_epochs", int(plan.save_every_epochs));
    set("save_state", Value::Boolean(true));
    set("logging_dir", string(path_text(&paths.logging_dir)));

    set(
        "network_module",
        string(if family == ModelFamily::Flux {
            "networks.lora_flux"
        } else {
            "networks.lora"
        }),
    );
    set("network_dim", int(plan.rank));
    // Always explicit: kohya's default alpha is 1.
    set("network_alpha", Value::Float(f64::from(plan.alpha)));
    set(
        "network_train_unet_only",
        Value::Boolean(!plan.train_text_encoder),
    );

    set("optimizer_type", string(optimizer_type(plan.optimizer)));
    if let Some(args) = optimizer_args(plan.optimizer) {
        set(
            "optimizer_args",
            Value::Array(args.into_iter().map(string).collect()),
        );
    }
    set("learning_rate", Value::Float(plan.learning_rate));
    set("unet_lr", Value::Float(plan.learning_rate));
    if plan.train_text_encoder {
        let te = plan.text_encoder_lr.unwrap_or(plan.learning_rate / 2.0);
        // One value per text encoder, as a list (nargs in argparse).
        let n = model.architecture.text_encoders.len().max(1);
        set("text_encoder_lr", Value::Array(vec![Value::Float(te); n]));
    }
    set("lr_scheduler", string(scheduler(plan.lr_scheduler)));
    set("lr_warmup_steps", int(plan.warmup_steps));
    set("max_train_epochs", int(plan.epochs));
    set("train_batch_size", int(plan.batch_size));
    set(
        "seed",
        Value::Integer(plan.seed.min(i64::MAX as u64) as i64),
    );

    set(
        "mixed_precision",
        string(match plan.precision {
            Precision::Bf16 => "bf16",
            Precision::Fp16 => "fp16",
            Precision::Fp32 => "no",
        }),
    );
    if family == ModelFamily::Sdxl && plan.precision == Precision::Fp16 {
        // SDXL's VAE overflows in fp16.
        set("no_half_vae", Value::Boolean(true));
    }
    if plan.base_weights == BaseWeights::Fp8 {
        set("fp8_base", Value::Boolean(true));
    }
    if plan.bf16_lora {
        set("full_bf16", Value::Boolean(true));
    }
    if plan.blocks_to_swap > 0 {
        set("blocks_to_swap", int(plan.blocks_to_swap));
    }
    set(
        "gradient_checkpointing",
        Value::Boolean(plan.gradient_checkpointing),
    );
    set("sdpa", Value::Boolean(true));
    set("cache_latents", Value::Boolean(plan.cache_latents));
    set("cache_latents_to_disk", Value::Boolean(plan.cache_latents));
    // `train_network.py` (SD1.5) has no such option: kohya would drop the key
    // without a word and keep the text encoder on the GPU.
    if caches_text_encoder_outputs(Backend::Kohya, family) {
        set(
            "cache_text_encoder_outputs",
            Value::Boolean(plan.cache_text_embeddings),
        );
    }
    if family == ModelFamily::Flux {
        set(
            "cache_text_encoder_outputs_to_disk",
            Value::Boolean(plan.cache_text_embeddings),
        );
    }
    if matches!(family, ModelFamily::Sd15 | ModelFamily::Sdxl) {
        set("min_snr_gamma", Value::Float(5.0));
    }
    set("max_data_loader_n_workers", int(2));
    set("persistent_data_loader_workers", Value::Boolean(true));
    if plan.sample_images {
        set(
            "sample_prompts",
            string(path_text(&paths.config_dir.join("sample_prompts.txt"))),
        );
        set("sample_every_n_epochs", int(plan.save_every_epochs));
        set("sample_sampler", string("euler_a"));
    }
    t
}

/// `sample_prompts.txt`: one prompt per line with kohya's inline options.
pub fn prompts_file(plan: &TrainingPlan, model: &ModelSpec) -> String {
    let (cfg, steps) = match model.family {
        ModelFamily::Flux => (1.0, 20),
        _ => (7.0, 25),
    };
    sample_prompts(plan)
        .iter()
        .map(|p| {
            format!(
                "{p} --w {} --h {} --d {} --l {cfg} --s {steps}\n",
                plan.width(),
                plan.height(),
                plan.seed
            )
        })
        .collect()
}

/// All kohya files and the launch command.
pub fn render(plan: &TrainingPlan, model: &ModelSpec, paths: &RunPaths) -> Rendered {
    let training = training_toml(plan, model, paths);
    let mut model_files = vec![];
    for key in ["pretrained_model_name_or_path", "clip_l", "t5xxl", "ae"] {
        if let Some(Value::String(s)) = training.get(key) {
            model_files.push(s.clone());
        }
    }
    Rendered {
        files: vec![
            (
                "dataset.toml".into(),
                toml::to_string(&dataset_toml(plan, paths)).unwrap_or_default(),
            ),
            (
                "config.toml".into(),
                toml::to_string(&training).unwrap_or_default(),
            ),
            ("sample_prompts.txt".into(), prompts_file(plan, model)),
        ],
        command: vec![
            "accelerate".into(),
            "launch".into(),
            "--num_cpu_threads_per_process".into(),
            "1".into(),
            script(model.family).into(),
            "--config_file".into(),
            path_text(&paths.config_dir.join("config.toml")),
        ],
        working_dir: "the sd-scripts checkout (its virtual environment active)".into(),
        model_files,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backends::tests::{test_paths, trainer_args};
    use crate::plan::training::tests::sample_plan;
    use crate::plan::training::{Backend, ImageFolder};

    fn parse(text: &str) -> Table {
        text.parse::<Table>()
            .unwrap_or_else(|e| panic!("not TOML: {e}\n{text}"))
    }

    /// Every key of `table` is defined in `defs` (kohya's own definitions,
    /// `fixtures/trainer-args/`).
    fn keys_within(table: &Table, defs: &serde_json::Value, where_: &str) {
        for k in table.keys() {
            assert!(defs.get(k).is_some(), "`{k}` is not accepted in {where_}");
        }
    }

    fn rendered(plan: &TrainingPlan) -> (Table, Table, Rendered) {
        let model = plan.model().unwrap();
        let r = render(plan, model, &test_paths(Backend::Kohya));
        let file = |n: &str| r.files.iter().find(|f| f.0 == n).unwrap().1.clone();
        (parse(&file("dataset.toml")), parse(&file("config.toml")), r)
    }

    #[test]
    fn the_dataset_toml_passes_kohyas_strict_schema() {
        let schema = trainer_args("kohya-dataset.json");
        let mut plan = sample_plan();
        plan.image_folders.push(ImageFolder {
            path: "pics/fox/more".into(),
            images: 4,
        });
        let (ds, _, _) = rendered(&plan);
        let general = ds["general"].as_table().unwrap();
        keys_within(general, &schema["general"], "[general]");
        assert_eq!(general["caption_extension"].as_str(), Some(".txt"));
        let datasets = ds["datasets"].as_array().unwrap();
        assert_eq!(datasets.len(), 1);
        let d = datasets[0].as_table().unwrap();
        let mut without_subsets = d.clone();
        without_subsets.remove("subsets");
        keys_within(&without_subsets, &schema["datasets"], "[[datasets]]");
        // An integer, never the string "1024,1024".
        assert_eq!(d["resolution"].as_integer(), Some(1024));
        let subsets = d["subsets"].as_array().unwrap();
        assert_eq!(subsets.len(), 2);
        for s in subsets {
            let s = s.as_table().unwrap();
            keys_within(s, &schema["subsets"], "[[datasets.subsets]]");
            assert_eq!(s["num_repeats"].as_integer(), Some(5));
            assert!(
                s["image_dir"]
                    .as_str()
                    .unwrap()
                    .starts_with("/studio/pics/fox")
            );
        }
        // Buckets must be multiples of the step.
        for k in ["min_bucket_reso", "max_bucket_reso"] {
            assert_eq!(general[k].as_integer().unwrap() % 64, 0);
        }
    }

    #[test]
    fn the_training_toml_uses_only_the_scripts_own_arguments() {
        for (model, te) in [
            ("sd15", true),
            ("sd15", false),
            ("sdxl", false),
            ("flux-dev", false),
        ] {
            let mut plan = sample_plan();
            plan.base_model = model.into();
            plan.train_text_encoder = te;
            plan.cache_text_embeddings = !te;
            plan.text_encoder_lr = te.then_some(5e-5);
            plan.resolution = if model == "sd15" { 512 } else { 1024 };
            plan.optimizer = Optimizer::Adafactor;
            let (_, cfg, r) = rendered(&plan);
            let script = &r.command[4];
            let defs = trainer_args(&format!("kohya-{}.json", script.trim_end_matches(".py")));
            keys_within(&cfg, &defs["options"], script);
            // Alpha always written, as a number.
            assert_eq!(cfg["network_alpha"].as_float(), Some(16.0));
            assert_eq!(cfg["network_dim"].as_integer(), Some(32));
            assert_eq!(cfg["gradient_checkpointing"].as_bool(), Some(true));
            assert_eq!(cfg["max_train_epochs"].as_integer(), Some(15));
            assert!(cfg["optimizer_args"].as_array().is_some());
            assert_eq!(cfg["network_train_unet_only"].as_bool(), Some(!te));
            if te {
                // A list, one value per text encoder.
                assert_eq!(cfg["text_encoder_lr"].as_array().unwrap().len(), 1);
            }
            match model {
                "sd15" => {
                    assert_eq!(script, "train_network.py");
                    // The SD1.5 script cannot cache text-encoder outputs.
                    assert!(!cfg.contains_key("cache_text_encoder_outputs"));
                }
                "sdxl" => {
                    assert_eq!(script, "sdxl_train_network.py");
                    assert_eq!(cfg["cache_text_encoder_outputs"].as_bool(), Some(true));
                }
                _ => {
                    assert_eq!(script, "flux_train_network.py");
                    assert_eq!(cfg["cache_text_encoder_outputs"].as_bool(), Some(true));
                    assert_eq!(cfg["guidance_scale"].as_float(), Some(1.0));
                    assert_eq!(cfg["network_module"].as_str(), Some("networks.lora_flux"));
                    assert!(cfg["ae"].as_str().unwrap().ends_with("/ae.safetensors"));
                    assert_eq!(r.model_files.len(), 4);
                }
            }
        }
    }

    #[test]
    fn the_launch_line_is_exact() {
        let (_, _, r) = rendered(&sample_plan());
        assert_eq!(
            r.command,
            vec![
                "accelerate",
                "launch",
                "--num_cpu_threads_per_process",
                "1",
                "sdxl_train_network.py",
                "--config_file",
                "/studio/workspace/configs/ink-fox/kohya/config.toml",
            ]
        );
    }

    #[test]
    fn fp16_sdxl_keeps_the_vae_in_full_precision_and_fp8_is_written() {
        let mut plan = sample_plan();
        plan.precision = Precision::Fp16;
        plan.base_weights = BaseWeights::Fp8;
        let (_, cfg, _) = rendered(&plan);
        assert_eq!(cfg["no_half_vae"].as_bool(), Some(true));
        assert_eq!(cfg["fp8_base"].as_bool(), Some(true));
        assert_eq!(cfg["mixed_precision"].as_str(), Some("fp16"));
    }

    #[test]
    fn sample_prompts_carry_the_trigger_and_options() {
        let plan = sample_plan();
        let text = prompts_file(&plan, plan.model().unwrap());
        assert!(
            text.lines()
                .all(|l| l.starts_with("zkfox") && l.contains("--w 1024"))
        );
    }
}
