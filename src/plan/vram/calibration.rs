//! The calibration of the memory model: measured peaks from public reports
//! (each row names its source and the settings it needs), the fit of
//! [`Fit`]'s constants on them, and the tests that hold the error — in
//! sample, and on points left out by source (fit without a source's
//! points, predict them).
//!
//! Units: reports in "GB" are read as GiB (what `nvidia-smi` and the task
//! manager show); the doubt is ±7 %. `Allocated` rows are PyTorch's
//! `max_memory_allocated` (no CUDA context), `DeviceTotal` rows what the
//! card shows. Where a report leaves a setting out, the trainer's default
//! (or the project's own example config) is assumed and said in `note`.
//!
//! `cargo test --lib plan::vram::calibration -- --nocapture` prints the
//! table, the fit and the errors by family and trainer (the figures in
//! `docs/benchmarks.md`).

use super::super::catalog::{Architecture, FLUX_ARCH, SD15_ARCH, SD35_MEDIUM_ARCH, SDXL_ARCH};
use super::phases::{FITTED, Fit, GIB, MemorySetup, Phase, Trainer, all_phases, phase_gib};
use super::{setup_for_plan, swapped_params};
use crate::plan::catalog::ModelFamily;
use crate::plan::training::tests::sample_plan;
use crate::plan::training::{Backend, BaseWeights, Optimizer, TrainingPlan};

/// Chroma (a Flux derivative) appears in SimpleTuner's sweep and docs; it is
/// not in our catalog, so its numbers live here: 8.9B parameters, Flux's
/// width, and Flux's all-linear LoRA count less the per-block modulation
/// layers Chroma removed (4.79M − 1.28M per rank).
static CHROMA_ARCH: Architecture = Architecture {
    denoiser_params: 8_900_000_000,
    lora_params_per_rank_all: 3_510_000,
    activation_gib_per_mp: 5.39 * 8.9 * 1000.0 / 3072.0,
    ..FLUX_ARCH
};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Metric {
    /// `torch.cuda.max_memory_allocated`.
    Allocated,
    /// `nvidia-smi`, the task manager, or a rounded figure in a project's docs.
    DeviceTotal,
}

/// Where a group of points was read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Source {
    key: &'static str,
    url: &'static str,
}

const ST_SWEEP: Source = Source {
    key: "simpletuner-sweep",
    url: "https://github.com/bghira/SimpleTuner/blob/6a43fd488/documentation/experimental/SEGMENTED_CHECKPOINTING.md",
};
const ST_FLUX_DOC: Source = Source {
    key: "simpletuner-flux-doc",
    url: "https://github.com/bghira/SimpleTuner/blob/bc8e6ab77/documentation/quickstart/FLUX.md",
};
const ST_FLUX_DOC_2024: Source = Source {
    key: "simpletuner-flux-doc-2024-08",
    url: "https://github.com/bghira/SimpleTuner/blob/c5e5bf238/documentation/quickstart/FLUX.md",
};
const ST_CHROMA_DOC: Source = Source {
    key: "simpletuner-chroma-doc",
    url: "https://github.com/bghira/SimpleTuner/blob/bc8e6ab77/documentation/quickstart/CHROMA.md",
};
const ST_ISSUE_1326: Source = Source {
    key: "simpletuner-issue-1326",
    url: "https://github.com/bghira/SimpleTuner/issues/1326",
};
const HF_QLORA: Source = Source {
    key: "hf-flux-qlora-blog",
    url: "https://huggingface.co/blog/flux-qlora",
};
const KOHYA_PR_1374: Source = Source {
    key: "kohya-pr-1374",
    url: "https://github.com/kohya-ss/sd-scripts/pull/1374",
};
const KOHYA_PR_1057: Source = Source {
    key: "kohya-pr-1057",
    url: "https://github.com/kohya-ss/sd-scripts/pull/1057",
};
const FLUXGYM_135: Source = Source {
    key: "fluxgym-issue-135",
    url: "https://github.com/cocktailpeanut/fluxgym/issues/135",
};
const FLUXGYM_473: Source = Source {
    key: "fluxgym-issue-473",
    url: "https://github.com/cocktailpeanut/fluxgym/issues/473",
};
/// The Colab notebook the Hugging Face QLoRA post links to (the same
/// experiment, run on a T4): grouped under the post's key, so that leaving
/// the post out leaves its notebook out too.
const HF_QLORA_COLAB: Source = Source {
    key: "hf-flux-qlora-blog",
    url: "https://github.com/DerekLiu35/notebooks/blob/fae1410/flux_lora_quant_blogpost.ipynb",
};
/// Unsloth Studio's diffusion LoRA trainer (diffusers models with peft
/// adapters), measured by its authors; the settings are the trainer's
/// defaults at the merge commit (`studio/backend/core/training/`
/// `diffusion_train_common.py` and `diffusion_dit_trainer.py` at 55043acf50).
const UNSLOTH_PR_6839: Source = Source {
    key: "unsloth-pr-6839",
    url: "https://github.com/unslothai/unsloth/pull/6839",
};
const DIFFUSERS_SD3_COLAB: Source = Source {
    key: "diffusers-sd3-colab",
    url: "https://github.com/huggingface/diffusers/blob/58eb52c08/examples/research_projects/sd3_lora_colab/README.md",
};

const KOHYA_FLUX_DOC: Source = Source {
    key: "kohya-flux-doc",
    url: "https://github.com/kohya-ss/sd-scripts/blob/48d368fa5/docs/flux_train_network.md",
};
const KOHYA_SDXL_DOC: Source = Source {
    key: "kohya-sdxl-doc",
    url: "https://github.com/kohya-ss/sd-scripts/blob/48d368fa5/docs/train_SDXL-en.md",
};
const KOHYA_MISC_MODELS: Source = Source {
    key: "kohya-misc-models",
    url: "https://huggingface.co/kohya-ss/misc-models",
};
const AITK_24GB: Source = Source {
    key: "ai-toolkit-flux-24gb-example",
    url: "https://github.com/ostris/ai-toolkit/blob/27a03a91f/config/examples/train_lora_flux_24gb.yaml",
};
/// Ostris (ai-toolkit's author) on X, early August 2024, as quoted on a
/// public bookmark page (the post itself is on x.com, which keeps no
/// stable public copy).
const AITK_OSTRIS_R256: Source = Source {
    key: "ai-toolkit-ostris-flux-r256",
    url: "https://mike.gold/notes/x-bookmarks/ai/big-lora-for-flux1-big-efficient",
};
const ST_ISSUE_1149: Source = Source {
    key: "simpletuner-issue-1149",
    url: "https://github.com/bghira/SimpleTuner/issues/1149",
};

/// A documented limit rather than a measured peak: a recipe said to work
/// on a card (its peak is at most the card), or a setting said to need more
/// (its peak is at least that much). Compared with the plan's largest phase.
struct Bound {
    id: &'static str,
    source: Source,
    plan: TrainingPlan,
    at_most: Option<f64>,
    at_least: Option<f64>,
}

fn flux_plan(backend: Backend, f: impl Fn(&mut TrainingPlan)) -> TrainingPlan {
    let mut p = sample_plan();
    p.base_model = "flux-dev".into();
    p.backend = backend;
    p.batch_size = 1;
    p.rank = 16;
    p.alpha = 16.0;
    f(&mut p);
    p
}

/// Every documented limit read for the calibration.
fn bounds() -> Vec<Bound> {
    // kohya docs/flux_train_network.md, "Recommended Settings by GPU
    // Memory" (with --fp8_base), on the doc's sample command: dim 16,
    // AdamW8bit, checkpointing, cached text encoder outputs and latents,
    // 1024² datasets; no sample prompts.
    let kohya_doc = |blocks: u32, batch: u32| {
        flux_plan(Backend::Kohya, |p| {
            p.base_weights = BaseWeights::Fp8;
            p.blocks_to_swap = blocks;
            p.batch_size = batch;
            p.sample_images = false;
        })
    };
    let at_most = |id, source, plan, gib| Bound {
        id,
        source,
        plan,
        at_most: Some(gib),
        at_least: None,
    };
    let at_least = |id, source, plan, gib| Bound {
        id,
        source,
        plan,
        at_most: None,
        at_least: Some(gib),
    };
    vec![
        at_most(
            "kohya-doc-flux-24gb-batch2",
            KOHYA_FLUX_DOC,
            kohya_doc(0, 2),
            24.0,
        ),
        at_most(
            "kohya-doc-flux-12gb-swap16",
            KOHYA_FLUX_DOC,
            kohya_doc(16, 1),
            12.0,
        ),
        at_most(
            "kohya-doc-flux-10gb-swap22",
            KOHYA_FLUX_DOC,
            kohya_doc(22, 1),
            10.0,
        ),
        at_most(
            "kohya-doc-flux-8gb-swap28",
            KOHYA_FLUX_DOC,
            kohya_doc(28, 1),
            8.0,
        ),
        // docs/train_SDXL-en.md: "LoRA training can be done with 8GB" with
        // U-Net only, cached text encoder outputs and latents, an 8-bit
        // optimizer and dim 4–8.
        at_most(
            "kohya-doc-sdxl-8gb",
            KOHYA_SDXL_DOC,
            {
                let mut p = sample_plan();
                p.batch_size = 1;
                p.rank = 4;
                p.alpha = 4.0;
                p.sample_images = false;
                p
            },
            8.0,
        ),
        // kohya's Flux LoRA card: dim 4, AdamW8bit, bf16 base, 1024² batch
        // 1, checkpointing and caches: "requires > 26GB VRAM".
        at_least(
            "kohya-card-flux-d4-bf16",
            KOHYA_MISC_MODELS,
            flux_plan(Backend::Kohya, |p| {
                p.rank = 4;
                p.alpha = 4.0;
                p.sample_images = false;
            }),
            24.0,
        ),
        // ai-toolkit's 24 GB Flux example: rank 16, `quantize: true` (8-bit,
        // T5 too), AdamW8bit, up to 1024², checkpointing, captions not
        // cached, samples at 1024², quantised on the GPU.
        at_most(
            "ai-toolkit-flux-24gb-example",
            AITK_24GB,
            flux_plan(Backend::AiToolkit, |p| {
                p.base_weights = BaseWeights::Fp8;
                p.cache_text_embeddings = false;
                p.optimizer = Optimizer::AdamW8bit;
            }),
            24.0,
        ),
        // SimpleTuner #1149: int8 Flux trains on 16 GB with
        // `quantize_via = cpu` (what our configs write; the default, the
        // GPU, runs out of memory at start).
        at_most(
            "simpletuner-1149-int8-on-cpu",
            ST_ISSUE_1149,
            flux_plan(Backend::SimpleTuner, |p| {
                p.base_weights = BaseWeights::Int8;
                p.low_vram = true;
                p.sample_images = false;
            }),
            16.0,
        ),
    ]
}

fn bound_peak(b: &Bound, fit: &Fit) -> f64 {
    let model = b.plan.model().unwrap();
    all_phases(&setup_for_plan(&b.plan, model, b.plan.batch_size), fit)
        .iter()
        .map(|p| p.total_gib)
        .fold(0.0, f64::max)
}

/// A limit holds when the predicted peak is within this share of it: the
/// limits are recommendations and round figures, and the model's own
/// in-sample error is about twice that.
const BOUND_TOLERANCE: f64 = 0.05;

/// Squared log distance by which a bound is broken (0 when it holds).
fn bound_violation(b: &Bound, fit: &Fit) -> f64 {
    let peak = bound_peak(b, fit);
    let over = b.at_most.map_or(0.0, |m| {
        (peak / (m * (1.0 + BOUND_TOLERANCE))).ln().max(0.0)
    });
    let under = b
        .at_least
        .map_or(0.0, |l| (l * (1.0 - BOUND_TOLERANCE) / peak).ln().max(0.0));
    over.powi(2) + under.powi(2)
}

/// One measured peak with the settings that produced it.
#[derive(Clone, Debug)]
struct Point {
    id: &'static str,
    source: Source,
    family: &'static str,
    trainer: Trainer,
    arch: &'static Architecture,
    size: (u32, u32),
    batch: u32,
    /// Trainable LoRA numbers (rank × per-rank count of the targets).
    lora_params: f64,
    lora_bytes: f64,
    state_bytes: f64,
    base_bytes: f64,
    /// kohya `blocks_to_swap` (Flux).
    blocks_to_swap: u32,
    checkpointing: bool,
    /// Text-encoder bytes per weight (for the caption-encoding phase, and
    /// during training when they stay on the GPU).
    te_bytes: f64,
    /// The text encoders stay on the GPU while training (captions not cached).
    te_resident: bool,
    /// The base model is moved to the GPU in 16 bits and quantised there.
    quantize_on_gpu: bool,
    phase: Phase,
    /// The run made sample pictures (validation), so its peak may be theirs.
    samples: bool,
    metric: Metric,
    measured_gib: f64,
    note: &'static str,
}

const M: f64 = 1e6;
/// LoRA numbers per rank (from the layer shapes, `vram.md` §A.2).
const SD15_ATTN: f64 = 0.20 * M;
const SDXL_ATTN: f64 = 1.30 * M;
const SDXL_ALL: f64 = 2.66 * M;
const SD35M_ATTN: f64 = 0.75 * M;
const CHROMA_ALL: f64 = 3.51 * M;
const FLUX_ATTN: f64 = 1.16736 * M;
const FLUX_ALL: f64 = 4.79 * M;
/// `to_q/k/v/out` on every block plus the double blocks' `add_q/k/v_proj`
/// and `to_add_out`: 19 × 4 × (3072 + 3072) more per rank than `FLUX_ATTN`.
const FLUX_ATTN_JOINT: f64 = FLUX_ATTN + 19.0 * 4.0 * 6144.0;

/// Bytes per text-encoder weight when T5 is loaded in 8 bits (bitsandbytes
/// LLM.int8, counted at 1 byte like the plan's fp8 T5) and the CLIP encoders
/// at `clip_bytes` (PyTorch's default fp32 when a script names no dtype).
fn t5_int8_te_bytes(arch: &Architecture, clip_bytes: f64) -> f64 {
    let all: f64 = arch.text_encoders.iter().map(|t| t.params as f64).sum();
    let bytes: f64 = arch
        .text_encoders
        .iter()
        .map(|t| {
            t.params as f64
                * if t.name.starts_with("T5") {
                    1.0
                } else {
                    clip_bytes
                }
        })
        .sum();
    bytes / all
}

/// Base bytes: bf16 2, fp8/int8 1.02, int4 0.53, NF4 0.5625 (as the plan's);
/// int2 (calibration only, the plan does not offer it) 0.28: two bits and
/// the same per-group scales as int4.
const BF16: f64 = 2.0;
const Q8: f64 = 1.02;
const Q4: f64 = 0.53;
const NF4: f64 = 0.5625;
const Q2: f64 = 0.28;

#[allow(clippy::too_many_arguments)]
fn point(
    id: &'static str,
    source: Source,
    family: &'static str,
    trainer: Trainer,
    arch: &'static Architecture,
    size: (u32, u32),
    batch: u32,
    lora_params: f64,
    base_bytes: f64,
    checkpointing: bool,
    metric: Metric,
    measured_gib: f64,
) -> Point {
    Point {
        id,
        source,
        family,
        trainer,
        arch,
        size,
        batch,
        lora_params,
        // SimpleTuner's default `adamw_bf16`: bf16 weights, bf16 state.
        lora_bytes: 2.0,
        state_bytes: 4.0,
        base_bytes,
        blocks_to_swap: 0,
        checkpointing,
        te_bytes: 2.0,
        te_resident: false,
        quantize_on_gpu: false,
        phase: Phase::Train,
        samples: false,
        metric,
        measured_gib,
        note: "",
    }
}

/// Every measured peak read for the calibration.
#[rustfmt::skip]
fn points() -> Vec<Point> {
    use Metric::{Allocated, DeviceTotal};
    use Trainer::{AiToolkit, Diffusers, Kohya, SimpleTuner};
    let st = |id, arch, fam, size, batch, lora, base, gc, gib| {
        Point { note: "SimpleTuner example config (adamw_bf16, latents and text embeddings cached), H100, validation off", ..point(id, ST_SWEEP, fam, SimpleTuner, arch, size, batch, lora, base, gc, Allocated, gib) }
    };
    let st_flux = |id, source, rank: f64, base, size, gib| {
        Point { samples: true, note: "LoRA on every Flux layer (flux_lora_target all), adamw_bf16, 1024², batch 1, checkpointing and caches on, validation at 1024² (the quickstart's example config); \"a bit more than\" read as the figure", ..point(id, source, "Flux", SimpleTuner, &FLUX_ARCH, size, 1, FLUX_ALL * rank, base, true, DeviceTotal, gib) }
    };
    let chroma_doc = |id, base, gib| {
        Point { samples: true, note: "rank-16 LoRA, adamw_bf16, 1024², batch 1, checkpointing, caches and validation at 1024² (the example config)", ..point(id, ST_CHROMA_DOC, "Chroma", SimpleTuner, &CHROMA_ARCH, (1024, 1024), 1, CHROMA_ALL * 16.0, base, true, DeviceTotal, gib) }
    };
    // kohya PR #1374, FurkanGozukara on an A6000 (2024-08-19): rank-128
    // lora_flux on every layer, Adafactor, checkpointing, text encoder
    // outputs and latents cached to disk, `network_train_unet_only` (his
    // config in bmaltais/kohya_ss#2701, 2024-08-18); 1024² assumed.
    let kohya_r128 = |id, lora_bytes, base, gib| Point {
        lora_bytes,
        state_bytes: 0.5,
        note: "rank 128 on every layer, Adafactor, checkpointing, caches on, batch 1; resolution not stated (1024² assumed)",
        ..point(id, KOHYA_PR_1374, "Flux", Kohya, &FLUX_ARCH, (1024, 1024), 1, FLUX_ALL * 128.0, base, true, DeviceTotal, gib)
    };
    // fluxgym's "20G" preset (app.py): kohya flux_train_network with
    // --fp8_base, AdamW8bit, --network_dim 4, 512 px, checkpointing, caches.
    let fluxgym = |id, source, gib| Point {
        lora_bytes: 4.0,
        state_bytes: 2.0,
        note: "fluxgym 20G preset: fp8_base, AdamW8bit, rank 4, 512², batch 1, checkpointing, caches (defaults assumed)",
        ..point(id, source, "Flux", Kohya, &FLUX_ARCH, (512, 512), 1, FLUX_ALL * 4.0, Q8, true, DeviceTotal, gib)
    };
    let sd35_te = |id, te_bytes, gib| Point {
        te_bytes,
        phase: Phase::CacheText,
        note: "encoding captions with SD3's three text encoders (CLIP-L, CLIP-G, T5-XXL) before training",
        ..point(id, DIFFUSERS_SD3_COLAB, "SD3.5", Diffusers, &SD35_MEDIUM_ARCH, (1024, 1024), 1, 0.0, BF16, true, DeviceTotal, gib)
    };
    vec![
        // SimpleTuner's checkpointing sweep (H100 column, peak allocated).
        // The W8A8 int8 and fp8-compute rows without checkpointing are left
        // out: compute modes the plan cannot express.
        st("ST-sd15-bf16-nogc", &SD15_ARCH, "SD1.5", (512, 512), 1, SD15_ATTN * 16.0, BF16, false, 2.87),
        st("ST-sd15-bf16-gc", &SD15_ARCH, "SD1.5", (512, 512), 1, SD15_ATTN * 16.0, BF16, true, 1.98),
        st("ST-sd15-int8-gc", &SD15_ARCH, "SD1.5", (512, 512), 1, SD15_ATTN * 16.0, Q8, true, 1.79),
        st("ST-sd15-fp8-gc", &SD15_ARCH, "SD1.5", (512, 512), 1, SD15_ATTN * 16.0, Q8, true, 1.96),
        st("ST-sdxl-bf16-nogc", &SDXL_ARCH, "SDXL", (1024, 1024), 1, SDXL_ATTN * 8.0, BF16, false, 13.03),
        st("ST-sdxl-bf16-gc", &SDXL_ARCH, "SDXL", (1024, 1024), 1, SDXL_ATTN * 8.0, BF16, true, 6.53),
        st("ST-sdxl-int8-gc", &SDXL_ARCH, "SDXL", (1024, 1024), 1, SDXL_ATTN * 8.0, Q8, true, 4.64),
        st("ST-sdxl-fp8-gc", &SDXL_ARCH, "SDXL", (1024, 1024), 1, SDXL_ATTN * 8.0, Q8, true, 5.10),
        st("ST-sd35m-bf16-nogc", &SD35_MEDIUM_ARCH, "SD3.5", (1024, 1024), 3, SD35M_ATTN * 128.0, BF16, false, 34.59),
        st("ST-sd35m-bf16-gc", &SD35_MEDIUM_ARCH, "SD3.5", (1024, 1024), 3, SD35M_ATTN * 128.0, BF16, true, 7.67),
        st("ST-sd35m-int8-gc", &SD35_MEDIUM_ARCH, "SD3.5", (1024, 1024), 3, SD35M_ATTN * 128.0, Q8, true, 6.58),
        st("ST-sd35m-fp8wo-gc", &SD35_MEDIUM_ARCH, "SD3.5", (1024, 1024), 3, SD35M_ATTN * 128.0, Q8, true, 5.69),
        st("ST-sd35m-fp8wo-nogc", &SD35_MEDIUM_ARCH, "SD3.5", (1024, 1024), 3, SD35M_ATTN * 128.0, Q8, false, 35.21),
        st("ST-chroma-bf16-nogc", &CHROMA_ARCH, "Chroma", (1024, 1024), 1, CHROMA_ALL * 16.0, BF16, false, 26.18),
        st("ST-chroma-bf16-gc", &CHROMA_ARCH, "Chroma", (1024, 1024), 1, CHROMA_ALL * 16.0, BF16, true, 17.67),
        st("ST-chroma-int8-gc", &CHROMA_ARCH, "Chroma", (1024, 1024), 1, CHROMA_ALL * 16.0, Q8, true, 10.41),
        st("ST-chroma-fp8-gc", &CHROMA_ARCH, "Chroma", (1024, 1024), 1, CHROMA_ALL * 16.0, Q8, true, 10.64),
        // SimpleTuner's Flux quickstart, today and in August 2024.
        st_flux("STdoc-flux-r16-bf16", ST_FLUX_DOC, 16.0, BF16, (1024, 1024), 30.0),
        st_flux("STdoc-flux-r16-int8", ST_FLUX_DOC, 16.0, Q8, (1024, 1024), 18.0),
        st_flux("STdoc-flux-r16-int4", ST_FLUX_DOC, 16.0, Q4, (1024, 1024), 13.0),
        st_flux("STdoc-flux-r16-nf4", ST_FLUX_DOC, 16.0, NF4, (1024, 1024), 9.0),
        st_flux("STdoc-flux-r1-bf16", ST_FLUX_DOC, 1.0, BF16, (1024, 1024), 30.0),
        st_flux("STdoc-flux-r16-int2", ST_FLUX_DOC, 16.0, Q2, (1024, 1024), 9.0),
        // "lowest VRAM utilisation (9090M): nf4-bnb, Lion 8Bit Paged, 512px, bs1".
        Point { state_bytes: 1.0, note: "nf4-bnb, bnb-lion8bit-paged, 512², batch 1, checkpointing, rank 16 on every layer (quickstart default)", ..st_flux("STdoc-flux-nf4-lion8-512", ST_FLUX_DOC, 16.0, NF4, (512, 512), 9090.0 / 1024.0) },
        st_flux("STdoc2024-flux-r16-bf16", ST_FLUX_DOC_2024, 16.0, BF16, (1024, 1024), 32.0),
        st_flux("STdoc2024-flux-r16-int8", ST_FLUX_DOC_2024, 16.0, Q8, (1024, 1024), 20.0),
        st_flux("STdoc2024-flux-r1-bf16", ST_FLUX_DOC_2024, 1.0, BF16, (1024, 1024), 32.0),
        // The same page: "a bit more than 13G VRAM when quantising to int2 + bf16 base/LoRA weights" (today's page says 9G).
        st_flux("STdoc2024-flux-r16-int2", ST_FLUX_DOC_2024, 16.0, Q2, (1024, 1024), 13.0),
        // SimpleTuner's Chroma quickstart.
        chroma_doc("STdoc-chroma-bf16", BF16, 28.0),
        chroma_doc("STdoc-chroma-int8", Q8, 16.0),
        chroma_doc("STdoc-chroma-int4", Q4, 11.0),
        chroma_doc("STdoc-chroma-nf4", NF4, 8.0),
        // SimpleTuner #1326: Flux with int8 on an RTX 4090, "~18GB" while training.
        Point { samples: false, note: "int8 on a 4090, while training (after the validation pictures); the rest as the Flux quickstart's defaults (assumed)", ..st_flux("ST1326-flux-int8", ST_ISSUE_1326, 16.0, Q8, (1024, 1024), 18.0) },
        // Hugging Face QLoRA post, RTX 4090: rank 4 on attention, 512×768,
        // AdamW8bit, fp32 LoRA weights, latents and text embeddings cached.
        Point { lora_bytes: 4.0, state_bytes: 2.0, note: "diffusers train_dreambooth_lora_flux_miniature: rank 4 on attention, AdamW8bit, 512×768, checkpointing, caches", ..point("HF-flux-qlora-nf4", HF_QLORA, "Flux", Diffusers, &FLUX_ARCH, (512, 768), 1, FLUX_ATTN * 4.0, NF4, true, DeviceTotal, 9.0) },
        Point { lora_bytes: 4.0, state_bytes: 2.0, note: "as above with the base in bf16", ..point("HF-flux-lora-bf16", HF_QLORA, "Flux", Diffusers, &FLUX_ARCH, (512, 768), 1, FLUX_ATTN * 4.0, BF16, true, DeviceTotal, 26.0) },
        // The post's Colab notebook, run on a T4: "the QLoRA fine-tuning process with these
        // settings used approximately 9.8 GB of VRAM" (markdown after the training cell;
        // the cell itself printed max_memory_reserved 8.385 GB, in GiB), and the caption
        // encoding cell printed "Max memory allocated: 7.867 GB" (max_memory_allocated / 1024³).
        Point { lora_bytes: 4.0, state_bytes: 2.0, note: "notebook's T4 run: NF4 base, fp16 mixed precision with the LoRA cast to fp32, rank 4 on to_q/k/v/out, AdamW8bit, 512×768, batch 1, checkpointing, latents cached and the VAE deleted, captions pre-encoded", ..point("HFcolab-flux-qlora-nf4-t4", HF_QLORA_COLAB, "Flux", Diffusers, &FLUX_ARCH, (512, 768), 1, FLUX_ATTN * 4.0, NF4, true, DeviceTotal, 9.8) },
        Point { te_bytes: t5_int8_te_bytes(&FLUX_ARCH, 4.0), phase: Phase::CacheText, note: "notebook's caption encoding: T5-XXL with load_in_8bit, CLIP-L in PyTorch's default fp32 (the pipeline names no dtype), no transformer or VAE loaded", ..point("HFcolab-flux-te-t5int8", HF_QLORA_COLAB, "Flux", Diffusers, &FLUX_ARCH, (512, 768), 1, 0.0, NF4, true, Allocated, 7.867) },
        // Unsloth PR #6839 (B200, 40 steps, 512px FLUX, batch 1): "nf4 (default) … FLUX
        // peak 10.4 GB"; "int8 (eager) … 24.0 GB (dense-load transient)". The trainer
        // prints max_memory_allocated / 1e9 (decimal GB). Defaults at the merge commit:
        // rank 16, LoRA on to_q/k/v/out and add_q/k/v_proj/to_add_out, LoRA cast to fp32,
        // AdamW8bit, checkpointing on, latents cached, captions encoded and the text
        // encoders freed before the transformer loads. int8 loads the transformer in bf16
        // on the GPU and quantises it there: its peak is the load.
        Point { lora_bytes: 4.0, state_bytes: 2.0, note: "Unsloth Studio defaults: NF4 base, rank 16 on the attention projections of both streams, fp32 LoRA, AdamW8bit, 512², batch 1, checkpointing, latents and captions cached", ..point("unsloth6839-flux-nf4-512", UNSLOTH_PR_6839, "Flux", Diffusers, &FLUX_ARCH, (512, 512), 1, FLUX_ATTN_JOINT * 16.0, NF4, true, Allocated, 10.4e9 / GIB) },
        Point { lora_bytes: 4.0, state_bytes: 2.0, quantize_on_gpu: true, phase: Phase::Load, note: "as above with base_precision int8: the bf16 transformer is moved to the GPU and quantised there (\"dense-load transient\")", ..point("unsloth6839-flux-int8-load", UNSLOTH_PR_6839, "Flux", Diffusers, &FLUX_ARCH, (512, 512), 1, FLUX_ATTN_JOINT * 16.0, Q8, true, Allocated, 24.0e9 / GIB) },
        // kohya PR #1374 (see `kohya_r128`).
        kohya_r128("kohya1374-flux-r128-bf16", 4.0, BF16, 44.18),
        kohya_r128("kohya1374-flux-r128-fullbf16", 2.0, BF16, 42.58),
        kohya_r128("kohya1374-flux-r128-fp16", 4.0, BF16, 44.14),
        kohya_r128("kohya1374-flux-r128-fullfp16", 2.0, BF16, 42.55),
        kohya_r128("kohya1374-flux-r128-fp8", 4.0, Q8, 33.53),
        // The same thread, 2024-08-20: rank 4, fp8_base, full_bf16, his toml.
        Point { lora_bytes: 2.0, state_bytes: 0.5, note: "rank 4, fp8_base, full_bf16, Adafactor, checkpointing, caches to disk, batch 1; resolution not stated (1024² assumed)", ..point("kohya1374-flux-r4-fp8", KOHYA_PR_1374, "Flux", Kohya, &FLUX_ARCH, (1024, 1024), 1, FLUX_ALL * 4.0, Q8, true, DeviceTotal, 17.0) },
        // kohya PR #1057 (fp8 base, KohakuBlueleaf): SDXL LoRA/LyCORIS,
        // 1024² batch 1, latents and text encoders cached: 4.4 GB.
        Point { lora_bytes: 4.0, state_bytes: 2.0, note: "fp8 base, 1024², batch 1, caches; dim, optimizer and checkpointing not stated (rank 8 on every layer, AdamW8bit, checkpointing assumed)", ..point("kohya1057-sdxl-fp8", KOHYA_PR_1057, "SDXL", Kohya, &SDXL_ARCH, (1024, 1024), 1, SDXL_ALL * 8.0, Q8, true, DeviceTotal, 4.4) },
        // Ostris on X: "38.5gb VRAM" for a Flux LoRA with gradient
        // checkpointing, rank 256, T5 in 8 bit, full bf16. ai-toolkit did not
        // cache captions then (its author in ai-toolkit #105, 2024-08-19:
        // text-embedding caching "is not planned"), so T5 and CLIP-L stay on
        // the GPU; the rest is its Flux example of the time
        // (train_lora_flux_24gb.yaml at fa02e774, 2024-08-10): AdamW8bit,
        // batch 1, buckets up to 1024², LoRA on every linear layer of the
        // transformer.
        Point { lora_bytes: 2.0, state_bytes: 2.0, te_bytes: Q8, te_resident: true, note: "rank 256 on every transformer layer, bf16 base and LoRA (full bf16), T5 (and CLIP-L, counted alike) in 8 bit and on the GPU, checkpointing; AdamW8bit, batch 1 and 1024² from the example config of the time (assumed); its EMA of the LoRA weights (example default) is not modelled", ..point("aitk-ostris-flux-r256", AITK_OSTRIS_R256, "Flux", AiToolkit, &FLUX_ARCH, (1024, 1024), 1, FLUX_ALL * 256.0, BF16, true, DeviceTotal, 38.5) },
        fluxgym("fluxgym135-flux-fp8-r4-512", FLUXGYM_135, 18.0),
        fluxgym("fluxgym473-flux-fp8-r4-512", FLUXGYM_473, 17.0),
        // diffusers' SD3 LoRA Colab project: encoding the captions "will take
        // about 20GB" in fp32 and 12GB in fp16.
        sd35_te("diffusers-sd3-te-fp32", 4.0, 20.0),
        sd35_te("diffusers-sd3-te-fp16", 2.0, 12.0),
        // The same README: "We use an 8bit … T5 to reduce memory requirements to ~10.5GB";
        // compute_embeddings.py loads T5 with load_in_8bit and the pipeline (both CLIPs)
        // without a dtype, i.e. in fp32.
        Point { note: "encoding captions with T5-XXL in 8 bits (LLM.int8) and CLIP-L/CLIP-G in fp32", ..sd35_te("diffusers-sd3-te-t5int8", t5_int8_te_bytes(&SD35_MEDIUM_ARCH, 4.0), 10.5) },
    ]
}

/// The memory setup of a point.
fn setup(p: &Point) -> MemorySetup<'_> {
    let (swapped, buffer) = swapped_params(ModelFamily::Flux, p.blocks_to_swap);
    MemorySetup {
        arch: p.arch,
        trainer: p.trainer,
        width: p.size.0,
        height: p.size.1,
        batch: p.batch,
        lora_params: p.lora_params,
        lora_bytes: p.lora_bytes,
        optimizer_state_bytes: p.state_bytes,
        base_bytes: p.base_bytes,
        swapped_params: swapped,
        swap_buffer_params: buffer,
        text_encoder_bytes: p.te_bytes,
        gradient_checkpointing: p.checkpointing,
        text_encoders_resident: p.te_resident,
        cache_text: !p.te_resident,
        cache_latents: true,
        text_encoder_lora_params: 0.0,
        quantize_on_gpu: p.quantize_on_gpu,
        denoiser_during_caching: false,
        sample_images: p.samples,
        device_total: p.metric == Metric::DeviceTotal,
    }
}

/// The predicted peak of what the report measured: its phase, and the
/// sample pictures too when the run made them.
fn predict(p: &Point, fit: &Fit) -> f64 {
    let s = setup(p);
    let main = phase_gib(&s, p.phase, fit).unwrap_or(0.0);
    if p.samples {
        main.max(phase_gib(&s, Phase::Sample, fit).unwrap_or(0.0))
    } else {
        main
    }
}

/// The constants the fit moves, as a vector.
const NAMES: [&str; 8] = [
    "runtime overhead GiB",
    "CUDA context GiB",
    "UNet activation scale",
    "transformer activation scale",
    "checkpointing share, UNet",
    "checkpointing share, transformer",
    "checkpointing share, kohya transformer",
    "kohya LoRA working bytes",
];

fn to_vec(f: &Fit) -> [f64; 8] {
    [
        f.runtime_overhead_gib,
        f.cuda_context_gib,
        f.unet_activation_scale,
        f.dit_activation_scale,
        f.checkpointing_unet,
        f.checkpointing_dit,
        f.checkpointing_kohya_dit,
        f.kohya_lora_working_bytes,
    ]
}

/// Bounds keep every constant physical.
const LOWER: [f64; 8] = [0.2, 0.3, 0.3, 0.3, 0.02, 0.02, 0.02, 0.0];
const UPPER: [f64; 8] = [3.0, 2.0, 3.0, 3.0, 1.0, 1.0, 1.0, 32.0];

fn from_vec(v: &[f64; 8]) -> Fit {
    let c: Vec<f64> = v
        .iter()
        .zip(LOWER.iter().zip(UPPER.iter()))
        .map(|(x, (lo, hi))| x.clamp(*lo, *hi))
        .collect();
    Fit {
        runtime_overhead_gib: c[0],
        cuda_context_gib: c[1],
        unet_activation_scale: c[2],
        dit_activation_scale: c[3],
        checkpointing_unet: c[4],
        checkpointing_dit: c[5],
        checkpointing_kohya_dit: c[6],
        kohya_lora_working_bytes: c[7],
    }
}

/// The research fit (`vram.md` §A.4) the refit starts from; a weak pull
/// towards it keeps a constant that the remaining points cannot see (when
/// a source is left out) from wandering.
const PRIOR: Fit = Fit {
    runtime_overhead_gib: 0.82,
    cuda_context_gib: 0.94,
    unet_activation_scale: 1.0,
    dit_activation_scale: 1.0,
    checkpointing_unet: 0.154,
    checkpointing_dit: 0.086,
    checkpointing_kohya_dit: 0.086,
    kohya_lora_working_bytes: 0.0,
};
const PRIOR_WEIGHT: f64 = 0.01;
/// A broken documented limit weighs as much as a thousand points off by the same
/// ratio: the limits hold, the points are fitted.
const BOUND_WEIGHT: f64 = 1000.0;

/// Sum of squared log errors, plus how far the documented limits are
/// broken, plus the pull to the prior.
fn loss(v: &[f64; 8], pts: &[&Point], limits: &[&Bound]) -> f64 {
    let fit = from_vec(v);
    let data: f64 = pts
        .iter()
        .map(|p| (predict(p, &fit) / p.measured_gib).ln().powi(2))
        .sum::<f64>()
        + BOUND_WEIGHT * limits.iter().map(|b| bound_violation(b, &fit)).sum::<f64>();
    let prior = to_vec(&PRIOR);
    let pull: f64 = to_vec(&fit)
        .iter()
        .zip(prior.iter())
        .zip(UPPER.iter())
        .map(|((x, p), hi)| ((x - p) / hi).powi(2))
        .sum();
    data + PRIOR_WEIGHT * pull
}

/// Nelder–Mead on the bounded constants, from the prior, restarted from
/// its own best point until it stops improving (a simplex can stall).
fn fit(pts: &[&Point], limits: &[&Bound]) -> Fit {
    let mut start = to_vec(&PRIOR);
    let mut best = loss(&start, pts, limits);
    for _ in 0..6 {
        let (v, l) = nelder_mead(start, pts, limits);
        if l >= best - 1e-10 {
            break;
        }
        start = v;
        best = l;
    }
    from_vec(&start)
}

fn nelder_mead(start: [f64; 8], pts: &[&Point], limits: &[&Bound]) -> ([f64; 8], f64) {
    let n = 8;
    let mut simplex: Vec<[f64; 8]> = vec![start];
    for i in 0..n {
        let mut v = start;
        v[i] += 0.15 * (UPPER[i] - LOWER[i]);
        simplex.push(v);
    }
    let mut values: Vec<f64> = simplex.iter().map(|v| loss(v, pts, limits)).collect();
    for _ in 0..4000 {
        let mut order: Vec<usize> = (0..=n).collect();
        order.sort_by(|a, b| values[*a].total_cmp(&values[*b]));
        simplex = order.iter().map(|i| simplex[*i]).collect();
        values = order.iter().map(|i| values[*i]).collect();
        if (values[n] - values[0]).abs() < 1e-12 {
            break;
        }
        let mut centroid = [0.0; 8];
        for v in &simplex[..n] {
            for k in 0..n {
                centroid[k] += v[k] / n as f64;
            }
        }
        let along = |t: f64| {
            let mut v = [0.0; 8];
            for k in 0..n {
                v[k] = centroid[k] + t * (simplex[n][k] - centroid[k]);
            }
            v
        };
        let reflected = along(-1.0);
        let fr = loss(&reflected, pts, limits);
        if fr < values[0] {
            let expanded = along(-2.0);
            let fe = loss(&expanded, pts, limits);
            if fe < fr {
                simplex[n] = expanded;
                values[n] = fe;
            } else {
                simplex[n] = reflected;
                values[n] = fr;
            }
        } else if fr < values[n - 1] {
            simplex[n] = reflected;
            values[n] = fr;
        } else {
            let contracted = along(0.5);
            let fc = loss(&contracted, pts, limits);
            if fc < values[n] {
                simplex[n] = contracted;
                values[n] = fc;
            } else {
                let best = simplex[0];
                for (v, val) in simplex.iter_mut().zip(values.iter_mut()).skip(1) {
                    for k in 0..n {
                        v[k] = best[k] + 0.5 * (v[k] - best[k]);
                    }
                    *val = loss(v, pts, limits);
                }
            }
        }
    }
    let best = (0..=n)
        .min_by(|a, b| values[*a].total_cmp(&values[*b]))
        .unwrap_or(0);
    (simplex[best], values[best])
}

fn rel_error(p: &Point, fit: &Fit) -> f64 {
    (predict(p, fit) - p.measured_gib) / p.measured_gib
}

struct Summary {
    mean: f64,
    worst: f64,
    worst_id: &'static str,
}

fn summarise<'a>(errors: impl Iterator<Item = (&'a Point, f64)>) -> Summary {
    let mut n = 0.0;
    let mut sum = 0.0;
    let mut worst = (0.0, "");
    for (p, e) in errors {
        n += 1.0;
        sum += e.abs();
        if e.abs() > worst.0 {
            worst = (e.abs(), p.id);
        }
    }
    Summary {
        mean: if n > 0.0 { sum / n } else { 0.0 },
        worst: worst.0,
        worst_id: worst.1,
    }
}

fn trainer_word(t: Trainer) -> &'static str {
    match t {
        Trainer::Kohya => "kohya",
        Trainer::SimpleTuner => "SimpleTuner",
        Trainer::AiToolkit => "ai-toolkit",
        Trainer::Native => "native",
        Trainer::Diffusers => "diffusers",
    }
}

/// Leave-one-source-out: each point predicted by the fit without its source.
fn left_out_errors(pts: &[Point], limits: &[Bound]) -> Vec<(usize, f64)> {
    let mut sources: Vec<&str> = pts.iter().map(|p| p.source.key).collect();
    sources.dedup();
    sources.sort();
    sources.dedup();
    let mut out = Vec::new();
    for key in sources {
        let train: Vec<&Point> = pts.iter().filter(|p| p.source.key != key).collect();
        let kept: Vec<&Bound> = limits.iter().filter(|b| b.source.key != key).collect();
        let f = fit(&train, &kept);
        for (i, p) in pts.iter().enumerate() {
            if p.source.key == key {
                out.push((i, rel_error(p, &f)));
            }
        }
    }
    out.sort_by_key(|(i, _)| *i);
    out
}

#[test]
fn every_point_names_its_source_and_the_table_covers_the_families_and_trainers() {
    let pts = points();
    eprintln!("{} measured peaks", pts.len());
    assert!(pts.len() >= 52, "{}", pts.len());
    for p in &pts {
        assert!(p.source.url.starts_with("https://"), "{}", p.id);
        assert!(p.measured_gib > 0.0 && p.batch >= 1, "{}", p.id);
    }
    let mut ids: Vec<&str> = pts.iter().map(|p| p.id).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), pts.len(), "ids are unique");
    for family in ["SD1.5", "SDXL", "Flux"] {
        assert!(pts.iter().any(|p| p.family == family), "{family}");
    }
    for t in [Trainer::Kohya, Trainer::SimpleTuner, Trainer::AiToolkit] {
        assert!(pts.iter().any(|p| p.trainer == t), "{t:?}");
    }
}

#[test]
fn calibration_report_and_error_bounds() {
    let pts = points();
    let limits = bounds();
    let all: Vec<&Point> = pts.iter().collect();
    let refit = fit(&all, &limits.iter().collect::<Vec<_>>());
    eprintln!("refit on {} points:", pts.len());
    for ((name, now), new) in NAMES.iter().zip(to_vec(&FITTED)).zip(to_vec(&refit)) {
        eprintln!("  {name:<40} in use {now:>8.4}   refit {new:>8.4}");
    }
    let loso = left_out_errors(&pts, &limits);
    eprintln!(
        "\n{:<30} {:<8} {:<12} {:>9} {:>9} {:>8} {:>8}",
        "point", "family", "trainer", "measured", "predicted", "error", "left out"
    );
    for (i, p) in pts.iter().enumerate() {
        eprintln!(
            "{:<30} {:<8} {:<12} {:>9.2} {:>9.2} {:>+7.0}% {:>+7.0}%",
            p.id,
            p.family,
            trainer_word(p.trainer),
            p.measured_gib,
            predict(p, &FITTED),
            rel_error(p, &FITTED) * 100.0,
            loso[i].1 * 100.0
        );
    }
    eprintln!("\nsettings and sources:");
    for p in &pts {
        eprintln!("  {:<30} {} — {}", p.id, p.source.url, p.note);
    }
    let in_sample = summarise(pts.iter().map(|p| (p, rel_error(p, &FITTED))));
    let left_out = summarise(loso.iter().map(|(i, e)| (&pts[*i], *e)));
    eprintln!(
        "\nall {} points: in sample mean {:.1} %, worst {:.1} % ({}); left out by source mean {:.1} %, worst {:.1} % ({})",
        pts.len(),
        in_sample.mean * 100.0,
        in_sample.worst * 100.0,
        in_sample.worst_id,
        left_out.mean * 100.0,
        left_out.worst * 100.0,
        left_out.worst_id
    );
    type Keep = fn(&Point) -> bool;
    let groups: [(&str, Keep); 9] = [
        ("SD1.5", |p| p.family == "SD1.5"),
        ("SDXL", |p| p.family == "SDXL"),
        ("SD3.5", |p| p.family == "SD3.5"),
        ("Flux", |p| p.family == "Flux"),
        ("Chroma", |p| p.family == "Chroma"),
        ("kohya", |p| p.trainer == Trainer::Kohya),
        ("SimpleTuner", |p| p.trainer == Trainer::SimpleTuner),
        ("ai-toolkit", |p| p.trainer == Trainer::AiToolkit),
        ("diffusers", |p| p.trainer == Trainer::Diffusers),
    ];
    for (name, keep) in &groups {
        let ins = summarise(
            pts.iter()
                .filter(|p| keep(p))
                .map(|p| (p, rel_error(p, &FITTED))),
        );
        let out = summarise(
            loso.iter()
                .filter(|(i, _)| keep(&pts[*i]))
                .map(|(i, e)| (&pts[*i], *e)),
        );
        let n = pts.iter().filter(|p| keep(p)).count();
        eprintln!(
            "  {name:<12} {n:>3} points: in sample mean {:>5.1} % worst {:>5.1} %; left out mean {:>5.1} % worst {:>5.1} %",
            ins.mean * 100.0,
            ins.worst * 100.0,
            out.mean * 100.0,
            out.worst * 100.0
        );
    }
    eprintln!("\ndocumented limits (peak over every phase):");
    for b in &limits {
        eprintln!(
            "  {:<34} predicted {:>6.2} GiB, {}  {}",
            b.id,
            bound_peak(b, &FITTED),
            match (b.at_most, b.at_least) {
                (Some(m), _) => format!("at most {m} GiB"),
                (_, Some(l)) => format!("at least {l} GiB"),
                _ => String::new(),
            },
            b.source.url
        );
        assert!(
            // Within the tolerance (to the fit's rounding).
            bound_violation(b, &FITTED) < 1e-5,
            "{}: predicted {:.2} GiB breaks its documented limit",
            b.id,
            bound_peak(b, &FITTED)
        );
    }
    // The constants in use are the fit's (not tuned by hand afterwards):
    // they do as well as a fresh fit, and each is close to it.
    let limit_refs: Vec<&Bound> = limits.iter().collect();
    let in_use = loss(&to_vec(&FITTED), &all, &limit_refs);
    let best = loss(&to_vec(&refit), &all, &limit_refs);
    eprintln!("\nfit loss: in use {in_use:.5}, refit {best:.5}");
    assert!(
        in_use <= best * 1.01 + 1e-6,
        "in use {in_use}, refit {best}"
    );
    for ((name, now), new) in NAMES.iter().zip(to_vec(&FITTED)).zip(to_vec(&refit)) {
        assert!(
            (now - new).abs() <= 0.05 * new.abs() + 0.01,
            "{name}: in use {now}, refit {new}"
        );
    }
    // The bounds are what the fit achieves (11.5 %, 42.9 %, 22.1 % on the 52
    // points; 10.8 %, 39.6 %, 19.8 % on the first 46) with a little room for
    // the simplex's rounding.
    assert!(
        in_sample.mean <= 0.125,
        "mean {:.1} %",
        in_sample.mean * 100.0
    );
    assert!(
        in_sample.worst <= 0.44,
        "worst {:.1} %",
        in_sample.worst * 100.0
    );
    assert!(
        left_out.mean <= 0.23,
        "left-out mean {:.1} %",
        left_out.mean * 100.0
    );
}

/// What the artist is told about the estimate's accuracy — the note every
/// estimate carries, the README's tool table and `docs/benchmarks.md` — is
/// what this table and fit give: how many peaks from how many sources, the
/// mean and worst error in sample, the mean error on a source left out, and
/// how many documented limits hold.
#[test]
fn the_accuracy_the_estimate_states_is_the_fits() {
    let pts = points();
    let limits = bounds();
    let in_sample = summarise(pts.iter().map(|p| (p, rel_error(p, &FITTED))));
    let loso = left_out_errors(&pts, &limits);
    let left_out = summarise(loso.iter().map(|(i, e)| (&pts[*i], *e)));
    let mut sources: Vec<&str> = pts.iter().map(|p| p.source.key).collect();
    sources.sort();
    sources.dedup();
    let pct = |x: f64| format!("{:.1} %", x * 100.0);
    let figures = [
        format!("{} measured", pts.len()),
        format!("{} public sources", sources.len()),
        pct(in_sample.mean),
        pct(in_sample.worst),
        pct(left_out.mean),
    ];
    let stated = [
        ("the estimate's accuracy note", super::ACCURACY),
        ("README.md", include_str!("../../../README.md")),
        (
            "docs/benchmarks.md",
            include_str!("../../../docs/benchmarks.md"),
        ),
    ];
    for (name, text) in stated {
        for figure in &figures {
            assert!(
                text.contains(figure.as_str()),
                "{name} does not say `{figure}`"
            );
        }
    }
    let held = format!("{} documented limits", limits.len());
    for (name, text) in [stated[0], stated[2]] {
        assert!(text.contains(held.as_str()), "{name} does not say `{held}`");
    }
}

#[test]
fn the_rank_128_flux_run_on_48_gb_is_not_called_a_fit() {
    // The point of issue 13: kohya's rank-128 Flux run measured 44.18 GB
    // on an A6000; the old estimate said about 28 GB and "fits" 48 GB.
    let pts = points();
    let p = pts
        .iter()
        .find(|p| p.id == "kohya1374-flux-r128-bf16")
        .unwrap();
    let predicted = predict(p, &FITTED);
    assert!(predicted > 0.8 * 48.0, "{predicted}");
    assert!(
        (predicted - p.measured_gib).abs() / p.measured_gib < 0.2,
        "{predicted}"
    );
}
