//! `ategnatos plan`, `ategnatos vram`, `ategnatos config`: Gate 2's tools
//! from a shell.

use std::path::Path;
use std::process::ExitCode;

use ategnatos::backends;
use ategnatos::plan::planner::{self, PlanOverrides, PlanRequest, VramQuery};
use ategnatos::plan::training::{Backend, BaseWeights, LoraCoverage, Optimizer, Precision, Preset};
use ategnatos::plan::vram::Phase;

use super::{CliError, open_workspace, print_json};
use ategnatos::studio::Hint;

fn parse_preset(s: &str) -> Result<Preset, String> {
    match s.to_ascii_lowercase().as_str() {
        "quick" => Ok(Preset::Quick),
        "standard" => Ok(Preset::Standard),
        "thorough" => Ok(Preset::Thorough),
        other => Err(format!(
            "`{other}` is not a preset: use quick, standard or thorough"
        )),
    }
}

fn parse_backend(s: &str) -> Result<Backend, String> {
    Backend::parse(s).ok_or_else(|| {
        format!("`{s}` is not a backend: use kohya, simpletuner, ai-toolkit or native")
    })
}

fn parse_optimizer(s: &str) -> Result<Optimizer, String> {
    Optimizer::parse(s).ok_or_else(|| {
        format!(
            "`{s}` is not an optimizer: use AdamW, AdamW8bit, Prodigy, Lion, Lion8bit or Adafactor"
        )
    })
}

fn parse_precision(s: &str) -> Result<Precision, String> {
    match s.to_ascii_lowercase().as_str() {
        "bf16" => Ok(Precision::Bf16),
        "fp16" => Ok(Precision::Fp16),
        "fp32" => Ok(Precision::Fp32),
        other => Err(format!(
            "`{other}` is not a precision: use bf16, fp16 or fp32"
        )),
    }
}

fn parse_weights(s: &str) -> Result<BaseWeights, String> {
    match s.to_ascii_lowercase().as_str() {
        "full" => Ok(BaseWeights::Full),
        "fp8" => Ok(BaseWeights::Fp8),
        "int8" => Ok(BaseWeights::Int8),
        "int4" => Ok(BaseWeights::Int4),
        "nf4" => Ok(BaseWeights::Nf4),
        other => Err(format!(
            "`{other}` is not a base-weight storage: use full, fp8, int8, int4 or nf4"
        )),
    }
}

fn parse_targets(s: &str) -> Result<LoraCoverage, String> {
    match s.to_ascii_lowercase().replace(['-', ' '], "_").as_str() {
        "attention" | "attn" => Ok(LoraCoverage::Attention),
        "all_linear" | "all" | "linear" => Ok(LoraCoverage::AllLinear),
        other => Err(format!(
            "`{other}` is not a choice of LoRA layers: use attention or all-linear"
        )),
    }
}

/// Choices over the preset; each one given is kept as is.
#[derive(clap::Args, Default)]
pub struct Choices {
    #[arg(long)]
    rank: Option<u32>,
    #[arg(long)]
    alpha: Option<f32>,
    /// AdamW, AdamW8bit, Prodigy, Lion, Lion8bit or Adafactor.
    #[arg(long, value_parser = parse_optimizer)]
    optimizer: Option<Optimizer>,
    #[arg(long = "lr")]
    learning_rate: Option<f64>,
    #[arg(long)]
    epochs: Option<u32>,
    /// Save a checkpoint every this many epochs.
    #[arg(long)]
    save_every: Option<u32>,
    #[arg(long)]
    repeats: Option<u32>,
    #[arg(long = "batch")]
    batch_size: Option<u32>,
    /// Training width in pixels (and height, unless --height).
    #[arg(long)]
    resolution: Option<u32>,
    /// Training height, for non-square training (832×1216: --resolution 832 --height 1216).
    #[arg(long)]
    height: Option<u32>,
    /// Which layers get a LoRA: attention or all-linear.
    #[arg(long, value_parser = parse_targets)]
    lora_targets: Option<LoraCoverage>,
    /// bf16, fp16 or fp32.
    #[arg(long, value_parser = parse_precision)]
    precision: Option<Precision>,
    /// How the frozen base model is stored: full, fp8, int8, int4 or nf4.
    #[arg(long, value_parser = parse_weights)]
    base_weights: Option<BaseWeights>,
    /// Keep the LoRA's weights in bf16 (kohya full_bf16): true or false.
    #[arg(long)]
    bf16_lora: Option<bool>,
    /// Flux transformer blocks to keep in CPU memory (kohya, 0–35).
    #[arg(long)]
    blocks_to_swap: Option<u32>,
    /// Load and quantise the base model on the CPU (ai-toolkit low_vram, SimpleTuner quantize_via=cpu): true or false.
    #[arg(long)]
    low_vram: Option<bool>,
    /// Make sample pictures at each save: true or false.
    #[arg(long)]
    samples: Option<bool>,
    /// true or false.
    #[arg(long)]
    gradient_checkpointing: Option<bool>,
    #[arg(long)]
    cache_latents: Option<bool>,
    #[arg(long)]
    cache_text: Option<bool>,
    #[arg(long)]
    train_text_encoder: Option<bool>,
    /// The base model's checkpoint file or folder (or a Hugging Face id).
    #[arg(long)]
    model_path: Option<String>,
}

impl Choices {
    fn overrides(&self) -> PlanOverrides {
        PlanOverrides {
            rank: self.rank,
            alpha: self.alpha,
            optimizer: self.optimizer,
            learning_rate: self.learning_rate,
            epochs: self.epochs,
            save_every_epochs: self.save_every,
            repeats: self.repeats,
            batch_size: self.batch_size,
            resolution: self.resolution,
            height: self.height,
            lora_targets: self.lora_targets,
            precision: self.precision,
            base_weights: self.base_weights,
            bf16_lora: self.bf16_lora,
            blocks_to_swap: self.blocks_to_swap,
            low_vram: self.low_vram,
            sample_images: self.samples,
            gradient_checkpointing: self.gradient_checkpointing,
            cache_latents: self.cache_latents,
            cache_text_embeddings: self.cache_text,
            train_text_encoder: self.train_text_encoder,
            model_path: self.model_path.clone(),
            ..PlanOverrides::default()
        }
    }
}

#[derive(clap::Args)]
pub struct PlanCmd {
    /// The project.
    project: String,
    /// quick, standard or thorough.
    #[arg(long, value_parser = parse_preset, default_value = "standard")]
    preset: Preset,
    /// kohya, simpletuner, ai-toolkit or native.
    #[arg(long, value_parser = parse_backend, default_value = "kohya")]
    backend: Backend,
    /// The GPU to fit: `RTX 4090`, `RTX 3060 12GB` (with the memory where the
    /// card comes in several sizes), `A100 80GB`, or just `12GB` (default: the
    /// one the NVIDIA driver reports).
    #[arg(long)]
    gpu: Option<String>,
    /// Hourly price of a rented GPU, for the cost.
    #[arg(long)]
    price: Option<f64>,
    #[command(flatten)]
    choices: Choices,
    /// Print the full result as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
pub struct VramCmd {
    /// A project whose stored plan to estimate.
    #[arg(long, conflicts_with = "model")]
    project: Option<String>,
    /// Or a base model on its own (sd15, sdxl, flux-dev, ...).
    #[arg(long)]
    model: Option<String>,
    #[arg(long, value_parser = parse_backend)]
    backend: Option<Backend>,
    /// The GPU to compare with (default: the plan's, or the driver's).
    #[arg(long)]
    gpu: Option<String>,
    #[arg(long)]
    price: Option<f64>,
    #[command(flatten)]
    choices: Choices,
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
pub struct ConfigCmd {
    /// The project.
    project: String,
    /// The GPU for the figures in config.md (default: the plan's).
    #[arg(long)]
    gpu: Option<String>,
    #[arg(long)]
    json: bool,
}

pub fn run_plan(root: &Path, cmd: PlanCmd) -> Result<ExitCode, CliError> {
    let ws = open_workspace(root)?;
    let req = PlanRequest {
        project: cmd.project,
        preset: cmd.preset,
        backend: cmd.backend,
        gpu: cmd.gpu,
        price_per_hour: cmd.price,
        overrides: cmd.choices.overrides(),
    };
    let out = planner::plan_training(&ws, &req).map_err(|e| CliError::new(&e, e.hint()))?;
    if cmd.json {
        print_json(&out)?;
    } else {
        outln!("{}\n", out.plain_summary());
        if let Some(s) = &out.shrink {
            for step in &s.steps {
                outln!(
                    "  step {}: {} ({:.1} → {:.1} GB) — {}",
                    step.step,
                    step.change,
                    step.before_gib,
                    step.after_gib,
                    step.why
                );
            }
        }
        for p in &out.parameters {
            outln!("  {:<28} {:<14} {}", p.name, p.value, p.meaning);
        }
    }
    Ok(match out.vram.fits {
        Some(false) => ExitCode::from(1),
        _ => ExitCode::SUCCESS,
    })
}

pub fn run_vram(root: &Path, cmd: VramCmd) -> Result<ExitCode, CliError> {
    let ws = open_workspace(root)?;
    let q = VramQuery {
        project: cmd.project,
        base_model: cmd.model,
        backend: cmd.backend,
        gpu: cmd.gpu,
        price_per_hour: cmd.price,
        choices: cmd.choices.overrides(),
    };
    let a = planner::answer_vram(&ws, &q).map_err(|e| CliError::new(&e, e.hint()))?;
    if cmd.json {
        print_json(&a)?;
    } else {
        outln!("{}\n", a.plain_summary());
        outln!("  Phases of the run:");
        for p in &a.estimate.phases {
            outln!(
                "  {:<28} {:>6.2} GB{}",
                phase_word(p.phase),
                p.gib,
                if p.phase == a.estimate.peak_phase {
                    "  ← the peak"
                } else {
                    ""
                }
            );
        }
        outln!("\n  The peak, part by part:");
        for c in &a.estimate.components {
            outln!("  {:<28} {:>6.2} GB  {}", c.part, c.gib, c.why);
        }
        outln!("  {:<28} {:>6.2} GB", "total", a.estimate.total_gib);
    }
    Ok(match a.estimate.fits {
        Some(false) => ExitCode::from(1),
        _ => ExitCode::SUCCESS,
    })
}

fn phase_word(p: Phase) -> &'static str {
    match p {
        Phase::Load => "loading the base model",
        Phase::CacheText => "encoding the captions",
        Phase::CacheLatents => "encoding the pictures",
        Phase::Train => "training steps",
        Phase::Sample => "sample pictures",
        Phase::Save => "saving a checkpoint",
    }
}

pub fn run_config(root: &Path, cmd: ConfigCmd) -> Result<ExitCode, CliError> {
    let ws = open_workspace(root)?;
    let g = backends::generate_config(&ws, &cmd.project, cmd.gpu.as_deref())
        .map_err(|e| CliError::new(&e, e.hint()))?;
    if cmd.json {
        print_json(&g)?;
    } else {
        outln!("{}", g.plain_summary());
    }
    Ok(ExitCode::SUCCESS)
}
