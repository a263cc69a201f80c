//! Making a project's plan: preset → the user's own choices → fitted to the
//! GPU by the shrink ladder → validated → stored; and every parameter
//! explained in one plain line for the artist.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::catalog::{self, ModelSpec, UnknownModel};
use super::gpu::{self, Gpu, GpuNameError};
use super::presets::{default_learning_rate, preset_plan};
use super::time::{TimeEstimate, estimate_time};
use super::training::{
    Backend, BaseWeights, ImageFolder, LoraCoverage, LrScheduler, Optimizer, Precision, Preset,
    TrainingPlan, load_plan, save_plan,
};
use super::validate::{Rejection, validate};
use super::vram::{Locked, ShrinkReport, VramEstimate, estimate_vram, shrink_to_fit};
use crate::studio::project::{self, Project};
use crate::studio::{StudioError, Workspace};

/// Why a plan could not be made, estimated or loaded.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("there is no project named `{name}`")]
    NoSuchProject { name: String },
    #[error("project `{project}` has no training plan yet")]
    NoPlan { project: String },
    #[error("there is nothing to estimate: neither a project nor a base model was named")]
    NothingToEstimate,
    #[error("the dataset folder `{path}` cannot be read: {reason}")]
    Dataset { path: String, reason: String },
    #[error("the plan is not safe to train: {}", .rejections.iter().map(|r| r.message.as_str()).collect::<Vec<_>>().join("; "))]
    Invalid { rejections: Vec<Rejection> },
    #[error(transparent)]
    Model(#[from] UnknownModel),
    #[error(transparent)]
    Gpu(#[from] GpuNameError),
    #[error(transparent)]
    Studio(#[from] StudioError),
}

impl PlanError {
    pub fn hint(&self) -> Option<String> {
        match self {
            PlanError::NoSuchProject { .. } => Some(
                "start the project first (start_project), or check the name with list_projects"
                    .into(),
            ),
            PlanError::NothingToEstimate => {
                Some("name a project (its stored plan) or a base model to estimate".into())
            }
            PlanError::NoPlan { .. } => Some("make one with plan_training".into()),
            PlanError::Dataset { .. } => {
                Some("check the project's dataset folder exists inside the workspace".into())
            }
            PlanError::Invalid { rejections } => Some(
                rejections
                    .iter()
                    .map(|r| r.what_to_do.as_str())
                    .collect::<Vec<_>>()
                    .join("; "),
            ),
            PlanError::Model(e) => e.hint(),
            PlanError::Gpu(e) => e.hint(),
            PlanError::Studio(e) => e.hint(),
        }
    }
}

/// Choices the user makes over the preset; each one given is kept as is (the
/// shrink ladder does not undo it).
#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PlanOverrides {
    /// LoRA rank (1–256).
    #[serde(default)]
    pub rank: Option<u32>,
    /// LoRA alpha (default: half the rank on SD1.5/SDXL, the rank on Flux/SD3.5).
    #[serde(default)]
    pub alpha: Option<f32>,
    #[serde(default)]
    pub optimizer: Option<Optimizer>,
    /// Learning rate (default: the optimizer's usual one; Prodigy 1.0).
    #[serde(default)]
    pub learning_rate: Option<f64>,
    #[serde(default)]
    pub epochs: Option<u32>,
    #[serde(default)]
    pub repeats: Option<u32>,
    #[serde(default)]
    pub batch_size: Option<u32>,
    /// Training width in pixels (a multiple of 64); square unless `height`.
    #[serde(default)]
    pub resolution: Option<u32>,
    /// Training height, for non-square.
    #[serde(default)]
    pub height: Option<u32>,
    #[serde(default)]
    pub lora_targets: Option<LoraCoverage>,
    /// LoRA weights in bf16 (kohya full_bf16).
    #[serde(default)]
    pub bf16_lora: Option<bool>,
    /// Flux blocks kept on the CPU (kohya, 0–35).
    #[serde(default)]
    pub blocks_to_swap: Option<u32>,
    /// Load and quantise on the CPU.
    #[serde(default)]
    pub low_vram: Option<bool>,
    /// Sample pictures at each save.
    #[serde(default)]
    pub sample_images: Option<bool>,
    #[serde(default)]
    pub precision: Option<Precision>,
    #[serde(default)]
    pub base_weights: Option<BaseWeights>,
    #[serde(default)]
    pub gradient_checkpointing: Option<bool>,
    #[serde(default)]
    pub cache_latents: Option<bool>,
    #[serde(default)]
    pub cache_text_embeddings: Option<bool>,
    #[serde(default)]
    pub train_text_encoder: Option<bool>,
    #[serde(default)]
    pub text_encoder_lr: Option<f64>,
    #[serde(default)]
    pub lr_scheduler: Option<LrScheduler>,
    /// The base model's checkpoint file or folder (or a Hugging Face id).
    #[serde(default)]
    pub model_path: Option<String>,
    #[serde(default)]
    pub seed: Option<u64>,
    #[serde(default)]
    pub save_every_epochs: Option<u32>,
}

impl PlanOverrides {
    /// Applies the choices to `plan` and says which the ladder must keep.
    pub fn apply(&self, plan: &mut TrainingPlan, model: &ModelSpec) -> Locked {
        if let Some(v) = self.rank {
            plan.rank = v;
            if self.alpha.is_none() {
                plan.alpha = if model.family.is_transformer() {
                    v as f32
                } else {
                    v as f32 / 2.0
                };
            }
        }
        if let Some(v) = self.alpha {
            plan.alpha = v;
        }
        if let Some(v) = self.optimizer {
            plan.optimizer = v;
            plan.learning_rate = default_learning_rate(v, model.family);
        }
        if let Some(v) = self.learning_rate {
            plan.learning_rate = v;
        }
        if let Some(v) = self.epochs {
            plan.epochs = v;
        }
        if let Some(v) = self.repeats {
            plan.repeats = v;
        }
        if let Some(v) = self.batch_size {
            plan.batch_size = v;
        }
        if let Some(v) = self.resolution {
            plan.resolution = v;
        }
        if let Some(v) = self.height {
            plan.height = (v != plan.resolution).then_some(v);
        }
        if let Some(v) = self.lora_targets {
            plan.lora_targets = Some(v);
        }
        if let Some(v) = self.bf16_lora {
            plan.bf16_lora = v;
        }
        if let Some(v) = self.blocks_to_swap {
            plan.blocks_to_swap = v;
        }
        if let Some(v) = self.low_vram {
            plan.low_vram = v;
        }
        if let Some(v) = self.sample_images {
            plan.sample_images = v;
        }
        if let Some(v) = self.precision {
            plan.precision = v;
        }
        if let Some(v) = self.base_weights {
            plan.base_weights = v;
        }
        if let Some(v) = self.gradient_checkpointing {
            plan.gradient_checkpointing = v;
        }
        if let Some(v) = self.cache_latents {
            plan.cache_latents = v;
        }
        if let Some(v) = self.train_text_encoder {
            plan.train_text_encoder = v;
            if v {
                plan.cache_text_embeddings = false;
                plan.text_encoder_lr = Some(plan.learning_rate / 2.0);
            } else {
                plan.text_encoder_lr = None;
            }
        }
        if let Some(v) = self.cache_text_embeddings {
            plan.cache_text_embeddings = v;
        }
        if let Some(v) = self.text_encoder_lr {
            plan.text_encoder_lr = Some(v);
        }
        if let Some(v) = self.lr_scheduler {
            plan.lr_scheduler = v;
        }
        if let Some(v) = &self.model_path {
            plan.model_path = Some(v.clone()).filter(|p| !p.trim().is_empty());
        }
        if let Some(v) = self.seed {
            plan.seed = v;
        }
        if let Some(v) = self.save_every_epochs {
            plan.save_every_epochs = v;
        }
        Locked {
            batch_size: self.batch_size.is_some(),
            gradient_checkpointing: self.gradient_checkpointing.is_some(),
            cache_latents: self.cache_latents.is_some(),
            cache_text_embeddings: self.cache_text_embeddings.is_some(),
            train_text_encoder: self.train_text_encoder.is_some(),
            optimizer: self.optimizer.is_some(),
            base_weights: self.base_weights.is_some(),
            bf16_lora: self.bf16_lora.is_some(),
            blocks_to_swap: self.blocks_to_swap.is_some(),
            low_vram: self.low_vram.is_some(),
            sample_images: self.sample_images.is_some(),
        }
    }
}

/// What to plan.
#[derive(Debug, Clone)]
pub struct PlanRequest {
    pub project: String,
    pub preset: Preset,
    pub backend: Backend,
    /// The GPU to plan for; `None` asks the driver.
    pub gpu: Option<String>,
    /// Hourly price of a rented GPU, for the cost.
    pub price_per_hour: Option<f64>,
    pub overrides: PlanOverrides,
}

/// One parameter of the plan, explained.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct ParamLine {
    pub name: String,
    pub value: String,
    /// What it does, in one plain line.
    pub meaning: String,
}

/// A new plan, with everything the artist should hear about it.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct PlanOutcome {
    pub plan: TrainingPlan,
    /// Gate 2's fingerprint of this plan.
    pub plan_hash: String,
    /// `plan.json`, relative to the workspace.
    pub plan_file: String,
    pub vram: VramEstimate,
    /// What the shrink ladder changed to fit the GPU.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shrink: Option<ShrinkReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time: Option<TimeEstimate>,
    /// Every parameter, explained.
    pub parameters: Vec<ParamLine>,
    /// The next step.
    pub next_step: String,
}

impl PlanOutcome {
    pub fn plain_summary(&self) -> String {
        let p = &self.plan;
        let model = catalog::lookup(&p.base_model)
            .map(|m| m.name)
            .unwrap_or("the base model");
        let mut s = format!(
            "Plan for `{}`: {} LoRA on {}, {} preset — {} epochs of {} pictures × {} repeats, {} per step = {} steps, with {}.",
            p.project,
            p.training_type.with_article(),
            model,
            p.preset.word(),
            p.epochs,
            p.image_count(),
            p.repeats,
            p.batch_size,
            p.total_steps(),
            p.backend.name()
        );
        if let Some(shrink) = &self.shrink
            && !shrink.steps.is_empty()
        {
            s.push(' ');
            s.push_str(&shrink.plain_summary());
        } else {
            s.push(' ');
            s.push_str(&self.vram.plain_summary());
        }
        if let Some(t) = &self.time {
            s.push(' ');
            s.push_str(&t.plain_summary());
        }
        s.push_str(&format!(" Next: {}", self.next_step));
        s
    }
}

/// Lists the folders under the dataset that hold pictures, with their counts.
pub fn image_folders(ws: &Workspace, dataset: &str) -> Result<Vec<ImageFolder>, PlanError> {
    let dir = crate::studio::paths::resolve_existing(ws.root(), dataset).map_err(|e| {
        PlanError::Dataset {
            path: dataset.to_string(),
            reason: e.to_string(),
        }
    })?;
    let listing =
        crate::dataset::walk::list_files(&dir, ws.root()).map_err(|e| PlanError::Dataset {
            path: dataset.to_string(),
            reason: crate::dataset::walk::plain_io_reason(&e),
        })?;
    let mut counts: BTreeMap<String, u32> = BTreeMap::new();
    for f in &listing.files {
        let is_image = f
            .path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(crate::dataset::is_image_extension);
        if is_image {
            *counts.entry(f.folder.clone()).or_default() += 1;
        }
    }
    let base = dataset.trim_end_matches('/');
    Ok(counts
        .into_iter()
        .map(|(folder, images)| ImageFolder {
            path: if folder.is_empty() {
                base.to_string()
            } else {
                format!("{base}/{folder}")
            },
            images,
        })
        .collect())
}

fn require_project(ws: &Workspace, name: &str) -> Result<Project, PlanError> {
    project::load(ws, name)?.ok_or_else(|| PlanError::NoSuchProject {
        name: name.to_string(),
    })
}

/// Makes the project's plan from a preset and the user's choices, fits it to
/// the GPU (named, or found through the driver), validates it and stores it
/// as `plan.json`. An unsafe plan is refused with every reason.
pub fn plan_training(ws: &Workspace, req: &PlanRequest) -> Result<PlanOutcome, PlanError> {
    let project = require_project(ws, &req.project)?;
    let model = catalog::lookup(&project.base_model)?;
    let gpu = gpu::resolve(req.gpu.as_deref())?;
    let folders = image_folders(ws, &project.dataset)?;
    let mut plan = preset_plan(&project, model, req.preset, req.backend, folders);
    let locked = req.overrides.apply(&mut plan, model);
    let shrink = gpu
        .as_ref()
        .map(|g| shrink_to_fit(&plan, model, g, &locked));
    if let Some(report) = &shrink {
        plan = report.plan.clone();
    }
    plan.gpu = gpu.as_ref().map(|g| g.name.clone());
    let rejections = validate(&plan, gpu.as_ref());
    if !rejections.is_empty() {
        return Err(PlanError::Invalid { rejections });
    }
    let path = save_plan(ws, &plan)?;
    Ok(outcome(
        ws,
        plan,
        model,
        gpu.as_ref(),
        shrink,
        req.price_per_hour,
        &path,
    ))
}

fn outcome(
    ws: &Workspace,
    plan: TrainingPlan,
    model: &ModelSpec,
    gpu: Option<&Gpu>,
    shrink: Option<ShrinkReport>,
    price: Option<f64>,
    path: &std::path::Path,
) -> PlanOutcome {
    let vram = estimate_vram(&plan, model, gpu);
    let time = gpu.map(|g| estimate_time(&plan, model, g, price));
    let next_step = match vram.fits {
        Some(false) => "the plan does not fit this GPU: pick a bigger (rented) GPU, or lower the resolution or rank, and plan again".to_string(),
        _ => "write the trainer's config (generate_config), then run gate 2 (run_gate 2)".to_string(),
    };
    PlanOutcome {
        plan_hash: plan.hash(),
        plan_file: ws.display_path(path),
        parameters: explain_parameters(&plan, model),
        plan,
        vram,
        shrink,
        time,
        next_step,
    }
}

/// The project's stored plan with a fresh estimate against `gpu` (or the
/// plan's own GPU, or the one the driver reports).
pub fn review_plan(
    ws: &Workspace,
    project: &str,
    gpu_name: Option<&str>,
    price_per_hour: Option<f64>,
) -> Result<PlanOutcome, PlanError> {
    let plan = load_plan(ws, project)?.ok_or_else(|| PlanError::NoPlan {
        project: project.to_string(),
    })?;
    let model = catalog::lookup(&plan.base_model)?;
    let gpu = gpu::resolve(gpu_name.or(plan.gpu.as_deref()))?;
    let path = super::training::plan_path(ws, project)?;
    Ok(outcome(
        ws,
        plan,
        model,
        gpu.as_ref(),
        None,
        price_per_hour,
        &path,
    ))
}

/// A plan for a model without a project (for quick "will it fit" questions):
/// the character preset on 20 pictures, with the given choices.
pub fn sketch_plan(
    model_id: &str,
    backend: Backend,
    overrides: &PlanOverrides,
) -> Result<(TrainingPlan, &'static ModelSpec), PlanError> {
    let model = catalog::lookup(model_id)?;
    let project = project::new_project(
        "sketch",
        project::TrainingType::Character,
        model.id,
        "",
        "sketch",
        ".",
        "txt",
    );
    let mut plan = preset_plan(
        &project,
        model,
        Preset::Standard,
        backend,
        vec![ImageFolder {
            path: ".".into(),
            images: 20,
        }],
    );
    overrides.apply(&mut plan, model);
    Ok((plan, model))
}

/// A "will it fit" question: a project's stored plan, or a model on its own.
#[derive(Debug, Clone, Default)]
pub struct VramQuery {
    /// A project whose stored plan to estimate.
    pub project: Option<String>,
    /// Or a base model (catalog id) with the standard character preset.
    pub base_model: Option<String>,
    /// The backend (default: the plan's, or kohya).
    pub backend: Option<Backend>,
    /// The GPU (default: the plan's, or the one the driver reports).
    pub gpu: Option<String>,
    pub price_per_hour: Option<f64>,
    /// Changes to try on top (not saved).
    pub choices: PlanOverrides,
}

/// The answer to a [`VramQuery`].
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct VramAnswer {
    pub estimate: VramEstimate,
    /// What plan_training would change to make it fit, when it does not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shrink_preview: Option<ShrinkReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time: Option<TimeEstimate>,
    /// The plan that was estimated.
    pub plan: TrainingPlan,
}

impl VramAnswer {
    pub fn plain_summary(&self) -> String {
        let mut s = self.estimate.plain_summary();
        if let Some(p) = &self.shrink_preview
            && p.fits
            && !p.steps.is_empty()
        {
            let changes: Vec<&str> = p.steps.iter().map(|s| s.change.as_str()).collect();
            s.push_str(&format!(
                " plan_training would make it fit with: {} ({:.1} GB).",
                changes.join("; "),
                p.end_gib
            ));
        }
        if let Some(t) = &self.time {
            s.push(' ');
            s.push_str(&t.plain_summary());
        }
        s
    }
}

/// Estimates memory (and time, with a GPU) for a project's plan or a model.
pub fn answer_vram(ws: &Workspace, q: &VramQuery) -> Result<VramAnswer, PlanError> {
    let (mut plan, model) = match (&q.project, &q.base_model) {
        (Some(project), _) => {
            let plan = load_plan(ws, project)?.ok_or_else(|| PlanError::NoPlan {
                project: project.clone(),
            })?;
            let model = catalog::lookup(&plan.base_model)?;
            (plan, model)
        }
        (None, Some(id)) => sketch_plan(
            id,
            q.backend.unwrap_or(Backend::Kohya),
            &PlanOverrides::default(),
        )?,
        (None, None) => return Err(PlanError::NothingToEstimate),
    };
    if let Some(b) = q.backend {
        plan.backend = b;
    }
    let locked = q.choices.apply(&mut plan, model);
    // Settings plan_training would refuse (rank 0, a resolution the model
    // cannot use, a precision the backend does not train) get no estimate
    // either: an estimate would read as if they could be trained.
    let rejections = validate(&plan, None);
    if !rejections.is_empty() {
        return Err(PlanError::Invalid { rejections });
    }
    let gpu = gpu::resolve(q.gpu.as_deref().or(plan.gpu.as_deref()))?;
    let estimate = estimate_vram(&plan, model, gpu.as_ref());
    let shrink_preview = match (&gpu, estimate.fits) {
        (Some(g), Some(false)) => Some(shrink_to_fit(&plan, model, g, &locked)),
        _ => None,
    };
    let time = gpu
        .as_ref()
        .map(|g| estimate_time(&plan, model, g, q.price_per_hour));
    Ok(VramAnswer {
        estimate,
        shrink_preview,
        time,
        plan,
    })
}

fn yes_no(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

/// Every parameter of the plan with a one-line plain explanation.
pub fn explain_parameters(plan: &TrainingPlan, model: &ModelSpec) -> Vec<ParamLine> {
    let line = |name: &str, value: String, meaning: String| ParamLine {
        name: name.into(),
        value,
        meaning,
    };
    let mut out = vec![
        line(
            "backend",
            plan.backend.name().into(),
            "the program that does the training".into(),
        ),
        line(
            "base model",
            model.name.into(),
            format!(
                "the model the LoRA adds to; it was made for {} px pictures",
                model.native_resolution
            ),
        ),
        line(
            "preset",
            plan.preset.word().into(),
            "how long and how carefully to train (quick 5, standard 15, thorough 25 epochs)".into(),
        ),
        line(
            "trigger word",
            plan.trigger_word.clone(),
            "the made-up word that calls the LoRA up in a prompt".into(),
        ),
        line(
            "pictures",
            plan.image_count().to_string(),
            format!("training pictures found in `{}`", plan.dataset),
        ),
        line(
            "repeats",
            plan.repeats.to_string(),
            "how often each picture is shown per epoch".into(),
        ),
        line(
            "epochs",
            plan.epochs.to_string(),
            "how many times the whole (repeated) set is shown".into(),
        ),
        line(
            "batch size",
            plan.batch_size.to_string(),
            "pictures learned from at once in one step; more needs more GPU memory".into(),
        ),
        line(
            "steps",
            plan.total_steps().to_string(),
            "learning steps in total: pictures × repeats × epochs ÷ batch size".into(),
        ),
        line(
            "resolution",
            plan.size_words(),
            if plan.height.is_some() {
                "the picture area training works at (width × height); pictures of other shapes are bucketed to about the same area".into()
            } else {
                "the size pictures are scaled to (with their aspect ratio kept in buckets)".into()
            },
        ),
        line(
            "rank",
            plan.rank.to_string(),
            "how much the LoRA can hold: higher learns more detail, and over-learns sooner".into(),
        ),
        line(
            "alpha",
            format!("{}", plan.alpha),
            format!(
                "scales the LoRA's effect by alpha ÷ rank (= {:.2}); written out because the trainers' defaults disagree",
                f64::from(plan.alpha) / f64::from(plan.rank.max(1))
            ),
        ),
        line(
            "LoRA layers",
            match plan.targets(model.family) {
                LoraCoverage::Attention => "attention only",
                LoraCoverage::AllLinear => "all linear layers",
            }
            .into(),
            match plan.targets(model.family) {
                LoraCoverage::Attention => "the LoRA sits on the layers that relate parts of the picture to each other and to the prompt: smaller, learns styles and subjects well",
                LoraCoverage::AllLinear => "the LoRA sits on every linear layer of each block: it can learn more, and needs more memory",
            }
            .into(),
        ),
        line(
            "optimizer",
            plan.optimizer.word().into(),
            optimizer_meaning(plan.optimizer).into(),
        ),
        line(
            "learning rate",
            format!("{:e}", plan.learning_rate),
            if plan.optimizer == Optimizer::Prodigy {
                "Prodigy finds its own step size; 1.0 leaves it as found".into()
            } else {
                "how big each learning step is: too high burns the picture in, too low learns nothing".into()
            },
        ),
        line(
            "learning-rate schedule",
            format!("{:?}", plan.lr_scheduler),
            match plan.lr_scheduler {
                LrScheduler::Constant => "the same step size throughout".into(),
                LrScheduler::ConstantWithWarmup => {
                    "starts gently, then keeps the same step size".into()
                }
                LrScheduler::Cosine => {
                    "steps get smaller towards the end, settling the details".into()
                }
            },
        ),
        line(
            "train text encoder",
            yes_no(plan.train_text_encoder).into(),
            "also teach the part that reads the prompt (helps SD1.5 faces, costs memory)".into(),
        ),
    ];
    if let Some(te) = plan.text_encoder_lr {
        out.push(line(
            "text encoder learning rate",
            format!("{te:e}"),
            "kept below the image model's: the text encoder over-learns first".into(),
        ));
    }
    out.extend([
        line("precision", format!("{:?}", plan.precision).to_lowercase(), match plan.precision {
            Precision::Bf16 => "16-bit numbers that do not overflow; needs an RTX 30xx or newer".into(),
            Precision::Fp16 => "16-bit numbers for older GPUs; can overflow on big models".into(),
            Precision::Fp32 => "full 32-bit numbers: slow and large".into(),
        }),
        line("base model storage", super::vram::weights_word(plan.base_weights).into(), "how the frozen base model is kept in GPU memory; smaller is slower and a little less exact".into()),
        line("LoRA weights", if plan.bf16_lora { "bf16" } else { "32-bit" }.into(), if plan.bf16_lora {
            "the LoRA's own numbers and their gradients are kept in 16 bits: half their memory, slightly coarser updates".into()
        } else {
            "the LoRA's own numbers are kept in 32 bits while the model computes in 16: the usual, most exact choice".into()
        }),
        line("blocks swapped to the CPU", plan.blocks_to_swap.to_string(), if plan.blocks_to_swap > 0 {
            format!("{} of the transformer's blocks wait in CPU memory and come to the GPU one at a time: less GPU memory, slower steps", plan.blocks_to_swap)
        } else {
            "the whole model stays on the GPU (swapping blocks to the CPU saves GPU memory at the cost of speed)".into()
        }),
        line("low VRAM loading", yes_no(plan.low_vram).into(), if plan.low_vram {
            "the base model is loaded and made smaller on the CPU, not on the GPU: a slower start, a lower peak at start".into()
        } else {
            "the base model is loaded straight onto the GPU (a quantised one is made smaller there, which briefly needs its full size)".into()
        }),
        line("gradient checkpointing", yes_no(plan.gradient_checkpointing).into(), "recompute in-between results instead of keeping them: much less memory, about 20 % slower".into()),
        line("cache latents", yes_no(plan.cache_latents).into(), "encode each picture once before training so the picture encoder can leave the GPU".into()),
        match crate::backends::text_encoder_cache_limit(plan.backend, model.family) {
            Some(limit) => line("cache text embeddings", "no (not possible here)".into(), limit),
            None => line("cache text embeddings", yes_no(plan.cache_text_embeddings).into(), "encode each caption once before training so the text encoders can leave the GPU".into()),
        },
        line("save every", format!("{} epoch(s)", plan.save_every_epochs), "a checkpoint to compare and fall back on".into()),
        line("sample pictures", yes_no(plan.sample_images).into(), if plan.sample_images {
            "a few pictures are made at each save to show how training goes; making them needs some memory of its own".into()
        } else {
            "no pictures during training (saves memory); try the saved checkpoints afterwards".into()
        }),
        line("seed", plan.seed.to_string(), "makes the run repeatable".into()),
    ]);
    out
}

fn optimizer_meaning(o: Optimizer) -> &'static str {
    match o {
        Optimizer::AdamW => {
            "the standard optimizer: reliable, 8 bytes of memory per trained number"
        }
        Optimizer::AdamW8bit => {
            "AdamW with its memory in 8 bits: same results, a quarter of the memory"
        }
        Optimizer::Prodigy => "finds its own learning rate: good when unsure, uses more memory",
        Optimizer::Lion => "light on memory; needs a smaller learning rate than AdamW",
        Optimizer::Lion8bit => "Lion with its memory in 8 bits: the lightest optimizer memory",
        Optimizer::Adafactor => "very light on memory; a little less predictable",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::vram::plan_phases;
    use crate::studio::project::{TrainingType, new_project, save};

    fn studio_with_project(images: usize, model: &str) -> (tempfile::TempDir, Workspace) {
        let dir = tempfile::tempdir().unwrap();
        let ws = Workspace::open(dir.path()).unwrap();
        let pics = dir.path().join("pics/fox");
        std::fs::create_dir_all(pics.join("extra")).unwrap();
        for i in 0..images {
            std::fs::write(pics.join(format!("fox-{i:02}.png")), b"png").unwrap();
            std::fs::write(pics.join(format!("fox-{i:02}.txt")), b"zkfox, a fox").unwrap();
        }
        std::fs::write(pics.join("extra/more.jpg"), b"jpg").unwrap();
        let p = new_project(
            "ink-fox",
            TrainingType::Character,
            model,
            "",
            "zkfox",
            "pics/fox",
            "txt",
        );
        save(&ws, &p, "# intent\n").unwrap();
        (dir, ws)
    }

    fn request(gpu: &str) -> PlanRequest {
        PlanRequest {
            project: "ink-fox".into(),
            preset: Preset::Standard,
            backend: Backend::Kohya,
            gpu: Some(gpu.into()),
            price_per_hour: Some(0.4),
            overrides: PlanOverrides::default(),
        }
    }

    #[test]
    fn a_project_gets_a_stored_plan_that_fits() {
        let (_d, ws) = studio_with_project(19, "sdxl");
        let out = plan_training(&ws, &request("RTX 4090")).unwrap();
        assert_eq!(out.plan.image_count(), 20);
        assert_eq!(out.plan.image_folders.len(), 2);
        assert_eq!(out.vram.fits, Some(true));
        assert_eq!(out.plan.gpu.as_deref(), Some("RTX 4090"));
        assert!(out.time.as_ref().unwrap().cost.is_some());
        assert_eq!(load_plan(&ws, "ink-fox").unwrap().unwrap(), out.plan);
        assert_eq!(out.plan_file, "grimoire/.state/projects/ink-fox/plan.json");
        let text = out.plain_summary();
        assert!(
            text.contains("standard preset") && text.contains("fits"),
            "{text}"
        );
        assert!(out.parameters.iter().any(|p| p.name == "alpha"));
    }

    #[test]
    fn a_small_card_gets_a_shrunk_plan_and_explicit_choices_are_kept() {
        let (_d, ws) = studio_with_project(19, "sdxl");
        let mut req = request("RTX 4060");
        req.overrides.rank = Some(16);
        let out = plan_training(&ws, &req).unwrap();
        let shrink = out.shrink.as_ref().unwrap();
        assert!(!shrink.steps.is_empty());
        assert!(shrink.fits, "{}", shrink.plain_summary());
        assert_eq!(out.plan.rank, 16);
        assert_eq!(out.plan.alpha, 8.0);
        assert!(out.plain_summary().contains("Changed:"));
    }

    #[test]
    fn an_unsafe_choice_is_refused_and_nothing_is_stored() {
        let (_d, ws) = studio_with_project(19, "sdxl");
        let mut req = request("RTX 4090");
        req.overrides.learning_rate = Some(0.05);
        let err = plan_training(&ws, &req).unwrap_err();
        assert!(err.to_string().contains("learning rate"), "{err}");
        assert!(err.hint().unwrap().contains("burns"));
        assert!(load_plan(&ws, "ink-fox").unwrap().is_none());
    }

    #[test]
    fn unknown_projects_and_gpus_say_what_to_do() {
        let (_d, ws) = studio_with_project(3, "sdxl");
        let mut req = request("RTX 4090");
        req.project = "nope".into();
        assert!(
            plan_training(&ws, &req)
                .unwrap_err()
                .hint()
                .unwrap()
                .contains("start_project")
        );
        let err = plan_training(&ws, &request("voodoo")).unwrap_err();
        assert!(err.hint().unwrap().contains("RTX 4090"));
        let err = review_plan(&ws, "ink-fox", None, None).unwrap_err();
        assert!(matches!(err, PlanError::NoPlan { .. }));
    }

    #[test]
    fn vram_questions_about_a_model_or_a_project() {
        let (_d, ws) = studio_with_project(19, "sdxl");
        let q = VramQuery {
            base_model: Some("flux-dev".into()),
            gpu: Some("RTX 4090".into()),
            ..VramQuery::default()
        };
        let a = answer_vram(&ws, &q).unwrap();
        assert_eq!(a.estimate.fits, Some(false));
        let preview = a.shrink_preview.as_ref().unwrap();
        assert!(preview.fits);
        assert!(
            a.plain_summary()
                .contains("plan_training would make it fit"),
            "{}",
            a.plain_summary()
        );
        plan_training(&ws, &request("RTX 4090")).unwrap();
        let q = VramQuery {
            project: Some("ink-fox".into()),
            choices: PlanOverrides {
                batch_size: Some(4),
                ..PlanOverrides::default()
            },
            ..VramQuery::default()
        };
        let a = answer_vram(&ws, &q).unwrap();
        assert_eq!(a.plan.batch_size, 4);
        assert_eq!(a.estimate.gpu.as_ref().unwrap().name, "RTX 4090");
        // Trying a change does not save it.
        assert_ne!(load_plan(&ws, "ink-fox").unwrap().unwrap().batch_size, 4);
        let err = answer_vram(&ws, &VramQuery::default()).unwrap_err();
        assert!(err.hint().unwrap().contains("base model"));
        // What plan_training refuses gets no estimate either.
        let q = VramQuery {
            project: Some("ink-fox".into()),
            choices: PlanOverrides {
                rank: Some(0),
                ..PlanOverrides::default()
            },
            ..VramQuery::default()
        };
        let err = answer_vram(&ws, &q).unwrap_err();
        assert!(matches!(err, PlanError::Invalid { .. }), "{err}");
        assert!(err.to_string().contains("rank `0`"), "{err}");
    }

    #[test]
    fn flux_on_a_12_gb_card_swaps_blocks_and_every_new_setting_is_explained() {
        let (_d, ws) = studio_with_project(19, "flux-dev");
        let out = plan_training(&ws, &request("12GB")).unwrap();
        assert_eq!(out.vram.fits, Some(true), "{}", out.plain_summary());
        let shrink = out.shrink.as_ref().unwrap();
        assert!(
            shrink.steps.iter().any(|s| s.change.starts_with("swap ")),
            "{}",
            shrink.plain_summary()
        );
        assert!(out.plan.blocks_to_swap > 0);
        let line = |name: &str| {
            out.parameters
                .iter()
                .find(|p| p.name == name)
                .unwrap_or_else(|| panic!("no `{name}` line"))
                .clone()
        };
        let swap = line("blocks swapped to the CPU");
        assert_eq!(swap.value, out.plan.blocks_to_swap.to_string());
        assert!(swap.meaning.contains("slower steps"));
        for name in [
            "LoRA layers",
            "LoRA weights",
            "low VRAM loading",
            "sample pictures",
        ] {
            assert!(!line(name).meaning.is_empty());
        }
        // The artist's own choice of block count is kept, and a lower one is
        // refused nowhere: it is only reported as not fitting.
        let mut req = request("12GB");
        req.overrides.blocks_to_swap = Some(4);
        let out = plan_training(&ws, &req).unwrap();
        assert_eq!(out.plan.blocks_to_swap, 4);
        assert!(
            out.shrink
                .as_ref()
                .unwrap()
                .kept
                .contains(&"the blocks to swap".to_string())
        );
    }

    #[test]
    fn non_square_sizes_and_layer_choices_reach_the_estimate() {
        let (_d, ws) = studio_with_project(19, "sdxl");
        let q = |choices: PlanOverrides| VramQuery {
            base_model: Some("sdxl".into()),
            backend: Some(Backend::AiToolkit),
            gpu: Some("24GB".into()),
            choices,
            ..VramQuery::default()
        };
        let square = answer_vram(&ws, &q(PlanOverrides::default())).unwrap();
        let portrait = answer_vram(
            &ws,
            &q(PlanOverrides {
                resolution: Some(832),
                height: Some(1216),
                ..PlanOverrides::default()
            }),
        )
        .unwrap();
        assert_eq!(portrait.plan.size_words(), "832×1216");
        assert!(portrait.estimate.total_gib < square.estimate.total_gib + 0.5);
        let attention = answer_vram(
            &ws,
            &q(PlanOverrides {
                lora_targets: Some(LoraCoverage::Attention),
                ..PlanOverrides::default()
            }),
        )
        .unwrap();
        let parts = |a: &VramAnswer| {
            plan_phases(&a.plan, catalog::lookup("sdxl").unwrap())
                .into_iter()
                .find(|p| p.phase == super::super::vram::Phase::Train)
                .unwrap()
                .total_gib
        };
        assert!(parts(&attention) < parts(&square));
        // kohya cannot do attention-only: refused with what to do.
        let err = answer_vram(
            &ws,
            &VramQuery {
                backend: Some(Backend::Kohya),
                ..q(PlanOverrides {
                    lora_targets: Some(LoraCoverage::Attention),
                    ..PlanOverrides::default()
                })
            },
        )
        .unwrap_err();
        assert!(err.to_string().contains("attention layers only"), "{err}");
        assert!(err.hint().unwrap().contains("ai-toolkit"));
    }

    #[test]
    fn sketches_answer_will_it_fit_without_a_project() {
        let o = PlanOverrides {
            batch_size: Some(1),
            ..PlanOverrides::default()
        };
        let (plan, model) = sketch_plan("flux-dev", Backend::Kohya, &o).unwrap();
        let e = estimate_vram(&plan, model, Some(&gpu::lookup("4090").unwrap()));
        assert_eq!(e.fits, Some(false));
        assert!(!e.changes_that_fit.is_empty());
    }
}
