//! Tests of the estimate and the shrink ladder as a user meets them: what a
//! reported run is predicted to need, what the documented recipes fit, which
//! phase holds the peak, and how a plan is shrunk.

use super::*;
use crate::plan::catalog;
use crate::plan::gpu;
use crate::plan::training::tests::sample_plan;

/// A plan on `model` and `backend` with the test's own changes.
fn plan_for(model: &str, backend: Backend, f: impl Fn(&mut TrainingPlan)) -> TrainingPlan {
    let mut p = sample_plan();
    p.base_model = model.into();
    p.backend = backend;
    f(&mut p);
    p
}

fn flux(backend: Backend, f: impl Fn(&mut TrainingPlan)) -> TrainingPlan {
    plan_for("flux-dev", backend, |p| {
        p.batch_size = 1;
        p.rank = 16;
        p.alpha = 16.0;
        f(p)
    })
}

fn estimate(plan: &TrainingPlan, card: &str) -> VramEstimate {
    let model = plan.model().unwrap();
    let gpu = gpu::lookup(card).unwrap();
    estimate_vram(plan, model, Some(&gpu))
}

fn peak(plan: &TrainingPlan) -> f64 {
    plan_peak_gib(plan, plan.model().unwrap())
}

fn phase_gib(plan: &TrainingPlan, phase: Phase) -> f64 {
    plan_phases(plan, plan.model().unwrap())
        .into_iter()
        .find(|p| p.phase == phase)
        .map(|p| p.total_gib)
        .unwrap_or(0.0)
}

#[test]
fn every_reported_out_of_memory_is_predicted_not_to_fit() {
    let cases = [
        // kohya sd-scripts #648: SDXL, bs 2, rank 16, AdamW8bit, fp16, checkpointing,
        // latents cached, text encoders trained; OOM on a 12 GB card.
        (
            "kohya#648 SDXL TE-training bs2 on 12 GB",
            plan_for("sdxl", Backend::Kohya, |p| {
                p.batch_size = 2;
                p.rank = 16;
                p.alpha = 8.0;
                p.precision = Precision::Fp16;
                p.train_text_encoder = true;
                p.cache_text_embeddings = false;
                p.text_encoder_lr = Some(1e-4);
            }),
            "12GB",
        ),
        // bmaltais/kohya_ss #3329: SDXL on an 8 GB RTX 3070 Ti without checkpointing or
        // cached captions; fixed by turning both on.
        (
            "kohya_ss#3329 SDXL no-GC on 8 GB",
            plan_for("sdxl", Backend::Kohya, |p| {
                p.batch_size = 1;
                p.rank = 8;
                p.gradient_checkpointing = false;
                p.cache_text_embeddings = false;
            }),
            "8GB",
        ),
        // Hugging Face FLUX QLoRA post: a bf16 Flux LoRA needs 26 GB, more than a 24 GB RTX 4090.
        (
            "HF flux bf16 LoRA on 24 GB",
            plan_for("flux-dev", Backend::AiToolkit, |p| {
                p.batch_size = 1;
                p.rank = 4;
                p.alpha = 4.0;
                p.resolution = 768;
            }),
            "24GB",
        ),
        // kohya's Flux docs: fp8_base without block swapping needs more than 16 GB.
        (
            "kohya Flux fp8 on 16 GB",
            flux(Backend::Kohya, |p| p.base_weights = BaseWeights::Fp8),
            "16GB",
        ),
        // SimpleTuner FLUX quickstart: 1024 px needs at least 12 GB even in NF4.
        (
            "SimpleTuner Flux nf4 1024 on 10 GB",
            flux(Backend::SimpleTuner, |p| p.base_weights = BaseWeights::Nf4),
            "10GB",
        ),
        // The same quickstart: fp8 (int8-class) Flux at 1024 px is past a 12 GB card.
        (
            "SimpleTuner Flux fp8 1024 on 12 GB",
            flux(Backend::SimpleTuner, |p| p.base_weights = BaseWeights::Fp8),
            "12GB",
        ),
        // kohya's own Flux LoRA (huggingface.co/kohya-ss/misc-models): rank 4,
        // AdamW8bit, bf16 base, caches and checkpointing "requires > 26GB VRAM".
        (
            "kohya misc-models Flux d4 bf16 on 24 GB",
            flux(Backend::Kohya, |p| {
                p.rank = 4;
                p.alpha = 4.0;
                p.sample_images = false;
            }),
            "24GB",
        ),
    ];
    for (name, plan, card) in cases {
        let e = estimate(&plan, card);
        assert_eq!(
            e.fits,
            Some(false),
            "{name}: predicted {:.1} GiB fits {card}",
            e.total_gib
        );
    }
}

#[test]
fn quantising_on_the_gpu_is_a_peak_at_start_and_the_estimate_says_so() {
    // ai-toolkit quantises on the GPU unless told `low_vram`.
    let on_gpu = flux(Backend::AiToolkit, |p| p.base_weights = BaseWeights::Fp8);
    let e = estimate(&on_gpu, "24GB");
    assert_eq!(e.peak_phase, Phase::Load);
    assert!(
        e.plain_summary()
            .contains("at its peak, while quantising the base model at start"),
        "{}",
        e.plain_summary()
    );
    assert!(
        e.components
            .iter()
            .any(|c| c.part == "base model at 16 bits while quantising"),
        "{:?}",
        e.components
    );
    assert!(
        e.changes_that_fit
            .iter()
            .any(|c| c.change.contains("low_vram")),
        "{:?}",
        e.changes_that_fit
    );
    // Loading on the CPU removes that peak; training is then the largest.
    let on_cpu = TrainingPlan {
        low_vram: true,
        ..on_gpu.clone()
    };
    assert!(phase_gib(&on_cpu, Phase::Load) < phase_gib(&on_gpu, Phase::Load) - 8.0);
    assert_ne!(estimate(&on_cpu, "24GB").peak_phase, Phase::Load);
}

#[test]
fn the_result_lists_phases_compactly_and_breaks_down_only_the_peak() {
    let plan = sample_plan();
    let e = estimate(&plan, "24GB");
    let json = serde_json::to_value(&e).unwrap();
    let phases = json["phases"].as_array().unwrap();
    assert!((4..=6).contains(&phases.len()), "{phases:?}");
    for p in phases {
        let keys: Vec<&String> = p.as_object().unwrap().keys().collect();
        assert_eq!(keys, vec!["gib", "phase"], "{p}");
    }
    let largest = phases
        .iter()
        .map(|p| p["gib"].as_f64().unwrap())
        .fold(0.0, f64::max);
    assert!((largest - e.total_gib).abs() < 1e-9);
    let sum: f64 = e.components.iter().map(|c| c.gib).sum();
    assert!((sum - e.total_gib).abs() < 1e-9);
    assert!(phases.iter().any(|p| p["phase"] == "train"));
    assert!(phases.iter().any(|p| p["phase"] == "sample"));
}

#[test]
fn breakdown_names_its_parts_and_batch_grows_it() {
    let plan = TrainingPlan {
        sample_images: false,
        ..sample_plan()
    };
    let model = catalog::lookup("sdxl").unwrap();
    let e = estimate(&plan, "RTX 4090");
    assert_eq!(e.peak_phase, Phase::Train);
    let parts: Vec<&str> = e.components.iter().map(|c| c.part.as_str()).collect();
    for part in [
        "base model (UNet)",
        "activations",
        "optimizer state",
        "CUDA context",
    ] {
        assert!(parts.contains(&part), "{parts:?}");
    }
    assert!(e.fits.unwrap());
    let max = e.max_batch_that_fits.unwrap();
    assert!((2..=MAX_SUGGESTED_BATCH).contains(&max), "{max}");
    let b = plan_breakdown(&plan, model);
    assert!(b.total_gib(max) <= e.budget_gib.unwrap());
    assert!(max == MAX_SUGGESTED_BATCH || b.total_gib(max + 1) > e.budget_gib.unwrap());
    assert!(e.plain_summary().contains("fits the RTX 4090"));
}

#[test]
fn every_option_moves_the_estimate_the_way_it_should() {
    let base = flux(Backend::SimpleTuner, |p| {
        p.base_weights = BaseWeights::Int8;
        p.low_vram = true;
        p.sample_images = false;
    });
    let train = |p: &TrainingPlan| phase_gib(p, Phase::Train);
    let with = |f: &dyn Fn(&mut TrainingPlan)| {
        let mut p = base.clone();
        f(&mut p);
        p
    };
    // Attention-only LoRA is smaller than one on every linear layer.
    let attention = with(&|p| p.lora_targets = Some(LoraCoverage::Attention));
    assert!(train(&attention) < train(&base));
    // A non-square size costs what its area costs.
    let portrait = with(&|p| {
        p.resolution = 832;
        p.height = Some(1216);
    });
    let square_832 = with(&|p| p.resolution = 832);
    assert!(train(&square_832) < train(&portrait) && train(&portrait) < train(&base));
    assert!(
        (train(&portrait) - train(&base)).abs() < 0.3,
        "832×1216 ≈ 1024²"
    );
    // 8-bit optimizer state is smaller than 32-bit.
    let adamw = with(&|p| p.optimizer = Optimizer::AdamW8bit);
    let lion = with(&|p| p.optimizer = Optimizer::Lion);
    let lion8 = with(&|p| p.optimizer = Optimizer::Lion8bit);
    assert!(train(&lion8) < train(&lion));
    assert!(train(&lion8) < train(&adamw));
    // 4-bit bases are smaller than 8-bit ones; int4 a little smaller than NF4.
    let int4 = with(&|p| p.base_weights = BaseWeights::Int4);
    let nf4 = with(&|p| p.base_weights = BaseWeights::Nf4);
    assert!(train(&int4) < train(&nf4) && train(&nf4) < train(&base));
    // bf16 LoRA weights halve the LoRA's own memory (kohya, AdamW).
    let kohya = flux(Backend::Kohya, |p| {
        p.rank = 64;
        p.alpha = 64.0;
        p.optimizer = Optimizer::AdamW;
        p.base_weights = BaseWeights::Fp8;
    });
    let kohya_bf16 = TrainingPlan {
        bf16_lora: true,
        ..kohya.clone()
    };
    let lora = 64.0 * 4.79e6 * 4.0 * 2.0 / 1_073_741_824.0;
    assert!((train(&kohya) - train(&kohya_bf16) - lora / 2.0).abs() < 0.05);
    // Swapping blocks lowers every phase that holds the model, more for more blocks.
    let swap = |n| TrainingPlan {
        blocks_to_swap: n,
        ..kohya.clone()
    };
    assert!(train(&swap(8)) < train(&kohya));
    assert!(train(&swap(30)) < train(&swap(8)) - 3.0);
    assert!(phase_gib(&swap(30), Phase::Sample) < phase_gib(&kohya, Phase::Sample));
    // Each trainer's checkpointing keeps its own share.
    let kind = catalog::lookup("flux-dev")
        .unwrap()
        .architecture
        .denoiser_kind;
    let native = phases::checkpointing_share(Trainer::Native, kind, &FITTED);
    let simpletuner = phases::checkpointing_share(Trainer::SimpleTuner, kind, &FITTED);
    assert!(native > simpletuner);
}

#[test]
fn sample_pictures_cost_memory_of_their_own() {
    let with = sample_plan();
    let without = TrainingPlan {
        sample_images: false,
        ..with.clone()
    };
    let names = |p: &TrainingPlan| -> Vec<Phase> {
        plan_phases(p, p.model().unwrap())
            .iter()
            .map(|x| x.phase)
            .collect()
    };
    assert!(names(&with).contains(&Phase::Sample));
    assert!(!names(&without).contains(&Phase::Sample));
    let sample = plan_phases(&with, with.model().unwrap())
        .into_iter()
        .find(|p| p.phase == Phase::Sample)
        .unwrap();
    assert!(sample.components.iter().any(|c| c.part == "VAE"));
    assert!(
        sample
            .components
            .iter()
            .any(|c| c.part == "VAE decoding" || c.part == "picture making")
    );
    assert!(peak(&without) <= peak(&with));
}

#[test]
fn a_plan_too_big_for_8_gb_is_shrunk_step_by_step() {
    let mut plan = sample_plan();
    plan.batch_size = 4;
    plan.gradient_checkpointing = false;
    plan.cache_latents = false;
    plan.cache_text_embeddings = false;
    plan.train_text_encoder = true;
    plan.text_encoder_lr = Some(5e-5);
    plan.optimizer = Optimizer::AdamW;
    let model = catalog::lookup("sdxl").unwrap();
    let card = gpu::lookup("8GB").unwrap();
    let report = shrink_to_fit(&plan, model, &card, &Locked::default());
    let changes: Vec<&str> = report.steps.iter().map(|s| s.change.as_str()).collect();
    eprintln!("{}", report.plain_summary());
    assert_eq!(changes[0], "batch 4 → 1");
    assert_eq!(changes[1], "gradient checkpointing on");
    assert_eq!(changes[2], "cache latents");
    assert_eq!(
        changes[3],
        "stop training the text encoder; cache text embeddings"
    );
    assert!(report.fits, "{}", report.plain_summary());
    // Each step lowers the estimate and says why.
    for s in &report.steps {
        assert!(s.after_gib < s.before_gib, "{}", s.change);
        assert!(!s.why.is_empty());
    }
    assert!(report.steps.last().unwrap().fits);
    assert!(
        report.steps[..report.steps.len() - 1]
            .iter()
            .all(|s| !s.fits)
    );
    assert!(report.end_gib <= 0.8 * 8.0);
    let p = &report.plan;
    assert!(p.gradient_checkpointing && p.cache_latents && p.cache_text_embeddings);
    assert!(!p.train_text_encoder);
    assert!(report.plain_summary().contains("batch 4 → 1"));
}

#[test]
fn the_ladder_swaps_blocks_and_shrinks_the_optimizer_for_kohya_flux_on_12_gb() {
    let plan = flux(Backend::Kohya, |p| p.optimizer = Optimizer::AdamW);
    let model = plan.model().unwrap();
    let report = shrink_to_fit(
        &plan,
        model,
        &gpu::lookup("12GB").unwrap(),
        &Locked::default(),
    );
    eprintln!("{}", report.plain_summary());
    let changes: Vec<&str> = report.steps.iter().map(|s| s.change.as_str()).collect();
    assert!(report.fits, "{}", report.plain_summary());
    assert!(
        changes.contains(&"optimizer AdamW → AdamW8bit"),
        "{changes:?}"
    );
    assert!(changes.contains(&"base model in fp8"), "{changes:?}");
    let swap = report
        .steps
        .iter()
        .find(|s| s.change.starts_with("swap "))
        .expect("a block-swap step");
    assert!(swap.why.contains("CPU memory"));
    let n = report.plan.blocks_to_swap;
    assert!((1..=MAX_FLUX_BLOCKS_TO_SWAP).contains(&n));
    // The fewest blocks that fit: one fewer would not.
    let fewer = TrainingPlan {
        blocks_to_swap: n - 1,
        ..report.plan.clone()
    };
    assert!(plan_peak_gib(&fewer, model) > report.budget_gib);
    // The same plan on SimpleTuner has no block swap: 4-bit instead.
    let st = TrainingPlan {
        backend: Backend::SimpleTuner,
        ..plan
    };
    let report = shrink_to_fit(
        &st,
        model,
        &gpu::lookup("12GB").unwrap(),
        &Locked::default(),
    );
    assert_eq!(report.plan.blocks_to_swap, 0);
}

#[test]
fn the_ladder_leaves_locked_choices_alone_and_says_so() {
    let mut plan = sample_plan();
    plan.batch_size = 4;
    plan.gradient_checkpointing = false;
    let model = catalog::lookup("sdxl").unwrap();
    let card = gpu::lookup("8GB").unwrap();
    let locked = Locked {
        batch_size: true,
        ..Locked::default()
    };
    let report = shrink_to_fit(&plan, model, &card, &locked);
    assert_eq!(report.plan.batch_size, 4);
    assert!(report.kept.contains(&"the batch size".to_string()));
    assert_eq!(report.steps[0].change, "gradient checkpointing on");
}

#[test]
fn flux_on_16_gb_goes_down_to_four_bit_with_simpletuner() {
    let plan = flux(Backend::SimpleTuner, |_| {});
    let model = plan.model().unwrap();
    let report = shrink_to_fit(
        &plan,
        model,
        &gpu::lookup("16GB").unwrap(),
        &Locked::default(),
    );
    assert!(report.fits, "{}", report.plain_summary());
    assert_eq!(report.plan.base_weights, BaseWeights::Nf4);
    // ai-toolkit has neither a 4-bit base nor block swap: it says so.
    let aitk = TrainingPlan {
        backend: Backend::AiToolkit,
        ..plan
    };
    let report = shrink_to_fit(
        &aitk,
        model,
        &gpu::lookup("12GB").unwrap(),
        &Locked::default(),
    );
    assert!(!report.fits);
    assert!(report.plain_summary().contains("does not fit"));
}

#[test]
fn a_plan_that_does_not_fit_lists_single_changes_that_would() {
    let mut plan = sample_plan();
    plan.gradient_checkpointing = false;
    plan.batch_size = 1;
    let e = estimate(&plan, "12GB");
    assert_eq!(e.fits, Some(false));
    assert!(
        e.changes_that_fit
            .iter()
            .any(|c| c.change == "turn on gradient checkpointing")
    );
    assert!(e.plain_summary().contains("It would fit if you"));
}

#[test]
fn the_native_engine_costs_more_than_pytorch_trainers() {
    let plan = TrainingPlan {
        base_model: "sd15".into(),
        precision: Precision::Fp32,
        ..sample_plan()
    };
    let model = catalog::lookup("sd15").unwrap();
    let native = TrainingPlan {
        backend: Backend::Native,
        optimizer: Optimizer::AdamW,
        ..plan.clone()
    };
    assert!(
        plan_breakdown(&native, model).total_gib(1) > plan_breakdown(&plan, model).total_gib(1)
    );
}

#[test]
fn the_memory_options_reach_the_trainers_configs() {
    use crate::backends::tests::test_paths;
    use crate::backends::{ai_toolkit, kohya, simpletuner};
    // kohya: block swap, bf16 LoRA, a non-square size, no samples.
    let plan = flux(Backend::Kohya, |p| {
        p.base_weights = BaseWeights::Fp8;
        p.blocks_to_swap = 16;
        p.bf16_lora = true;
        p.resolution = 832;
        p.height = Some(1216);
        p.sample_images = false;
    });
    let model = plan.model().unwrap();
    let paths = test_paths(Backend::Kohya);
    let t = kohya::training_toml(&plan, model, &paths);
    assert_eq!(t["blocks_to_swap"].as_integer(), Some(16));
    assert_eq!(t["full_bf16"].as_bool(), Some(true));
    assert!(t.get("sample_prompts").is_none());
    let d = kohya::dataset_toml(&plan, &paths);
    let res = &d["datasets"].as_array().unwrap()[0]["resolution"];
    assert_eq!(res.as_array().unwrap().len(), 2, "{res}");
    assert!(kohya::prompts_file(&plan, model).contains("--w 832 --h 1216"));
    let samples = TrainingPlan {
        sample_images: true,
        ..plan.clone()
    };
    assert!(kohya::training_toml(&samples, model, &paths).contains_key("sample_prompts"));

    // ai-toolkit: low_vram, attention-only LoRA, no samples.
    let plan = flux(Backend::AiToolkit, |p| {
        p.base_weights = BaseWeights::Fp8;
        p.low_vram = true;
        p.lora_targets = Some(LoraCoverage::Attention);
        p.sample_images = false;
    });
    let job = ai_toolkit::job(&plan, model, &test_paths(Backend::AiToolkit));
    let process = &job["config"]["process"][0];
    assert_eq!(process["model"]["low_vram"], true);
    assert_eq!(process["train"]["disable_sampling"], true);
    assert!(
        process["network"]["network_kwargs"]["only_if_contains"]
            .as_array()
            .unwrap()
            .contains(&serde_json::json!("to_q"))
    );

    // SimpleTuner: attention-only Flux LoRA, Lion8bit, int4, no validation,
    // a non-square size as its area.
    let plan = flux(Backend::SimpleTuner, |p| {
        p.base_weights = BaseWeights::Int4;
        p.optimizer = Optimizer::Lion8bit;
        p.learning_rate = 3e-5;
        p.lora_targets = Some(LoraCoverage::Attention);
        p.resolution = 832;
        p.height = Some(1216);
        p.sample_images = false;
    });
    let c = simpletuner::config_json(&plan, model, &test_paths(Backend::SimpleTuner));
    assert_eq!(c["flux_lora_target"], "mmdit");
    assert_eq!(c["optimizer"], "bnb-lion8bit");
    assert_eq!(c["base_model_precision"], "int4-quanto");
    assert_eq!(c["validation_disable"], true);
    assert_eq!(c["resolution"], 1024);
    assert_eq!(c["validation_resolution"], "832x1216");
}
