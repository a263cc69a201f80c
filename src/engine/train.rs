//! The training loop: cached latents and caption tokens in, a kohya LoRA
//! out.
//!
//! One step: sample a timestep per image, noise the latents with the DDPM
//! schedule, run the text encoder and the UNet, take the (min-SNR weighted)
//! MSE against the epsilon or velocity target, back-propagate into the
//! adapters only, and step the optimizer. Batches are formed inside
//! same-size groups, which is aspect-ratio bucketing for latents of
//! different sizes. The loop reports [`TrainEvent`]s; the child-process
//! entry point ([`super::cli`]) turns them into kohya-style lines.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use burn::module::AutodiffModule;
use burn::optim::adaptor::OptimizerAdaptor;
use burn::optim::{AdamW, AdamWConfig, GradientsParams, Optimizer};
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::{Distribution, ElementConversion, Tensor, TensorData};

use super::EngineError;
use super::cache::bucket_side_range;
use super::config::{EngineConfig, OptimizerKind};
use super::kohya_metadata::{
    BucketInfo, DatasetDir, ModelIdentity, Ordered, TrainingFacts, tag_frequency,
};
use super::lora_file::{Alphas, save_lora};
use super::model::LoraModel;
use super::optim::{Lion, LrSchedule, Prodigy, ProdigyConfig};
use super::precision::cast_base_weights;
use super::rng::SplitMix64;
use super::safetensors_file::SafetensorsFile;
use super::schedule::NoiseSchedule;
use super::tokenizer::{ClipTokenizer, shuffle_caption};

/// One cached training sample.
#[derive(Debug, Clone, PartialEq)]
pub struct LatentSample {
    /// `[c, h, w]`, already multiplied by the VAE scaling factor.
    pub latents: Vec<f32>,
    pub shape: [usize; 3],
    /// CLIP token ids, padded to the encoder's length.
    pub input_ids: Vec<i64>,
    /// The caption the ids came from, when the cache kept it (needed to
    /// shuffle tags at every step).
    pub caption: Option<String>,
    /// The name of the folder the picture came from (kohya's dataset
    /// dirs, for the LoRA's metadata), when the cache kept it.
    pub folder: Option<String>,
    /// The picture's own `(width, height)` before it was fitted to its
    /// bucket (kohya's `ss_bucket_info` reports how far the buckets' aspect
    /// ratios are from the pictures'), when the cache kept it.
    pub image_size: Option<(u32, u32)>,
}

/// The latent cache: a safetensors file holding, for sample N,
/// `N.latents` (`[c, h, w]`, f32/f16) and `N.input_ids` (`[seq]`, i64/i32);
/// its metadata keeps each caption as `N.caption` and what the cache was
/// built from as `ategnatos.fingerprint` (see [`super::data`]).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LatentDataset {
    pub samples: Vec<LatentSample>,
    pub fingerprint: Option<String>,
}

const FINGERPRINT_KEY: &str = "ategnatos.fingerprint";

/// `512x768` → `(512, 768)`.
fn parse_size(text: &str) -> Option<(u32, u32)> {
    let (w, h) = text.split_once('x')?;
    Some((w.parse().ok()?, h.parse().ok()?))
}

impl LatentDataset {
    pub fn load(path: &Path) -> Result<Self, EngineError> {
        let bad = |reason: String| EngineError::BadDataset {
            path: path.to_path_buf(),
            reason,
        };
        let file = SafetensorsFile::open(path)?;
        let mut samples = Vec::new();
        for i in 0.. {
            let key = format!("{i}.latents");
            if file.shape(&key).is_none() {
                break;
            }
            let (latents, shape) = file.read_f32(&key)?;
            let [c, h, w] = <[usize; 3]>::try_from(shape.as_slice())
                .map_err(|_| bad(format!("`{key}` must be [channels, h, w], not {shape:?}")))?;
            let (input_ids, _) = file
                .read_i64(&format!("{i}.input_ids"))
                .map_err(|_| bad(format!("sample {i} has latents but no `{i}.input_ids`")))?;
            samples.push(LatentSample {
                latents,
                shape: [c, h, w],
                input_ids,
                caption: file.metadata.get(&format!("{i}.caption")).cloned(),
                folder: file.metadata.get(&format!("{i}.folder")).cloned(),
                image_size: file
                    .metadata
                    .get(&format!("{i}.size"))
                    .and_then(|t| parse_size(t)),
            });
        }
        if samples.is_empty() {
            return Err(bad("it holds no `0.latents`; the cache is empty".into()));
        }
        let seq = samples[0].input_ids.len();
        if samples.iter().any(|s| s.input_ids.len() != seq) {
            return Err(bad("caption token lists have different lengths".into()));
        }
        Ok(Self {
            samples,
            fingerprint: file.metadata.get(FINGERPRINT_KEY).cloned(),
        })
    }

    /// Writes the cache format [`LatentDataset::load`] reads.
    pub fn to_bytes(&self) -> Result<Vec<u8>, String> {
        let mut owned: Vec<(String, safetensors::Dtype, Vec<usize>, Vec<u8>)> = Vec::new();
        let mut metadata = std::collections::HashMap::new();
        if let Some(print) = &self.fingerprint {
            metadata.insert(FINGERPRINT_KEY.to_string(), print.clone());
        }
        for (i, s) in self.samples.iter().enumerate() {
            if let Some(caption) = &s.caption {
                metadata.insert(format!("{i}.caption"), caption.clone());
            }
            if let Some(folder) = &s.folder {
                metadata.insert(format!("{i}.folder"), folder.clone());
            }
            if let Some((w, h)) = s.image_size {
                metadata.insert(format!("{i}.size"), format!("{w}x{h}"));
            }
            owned.push((
                format!("{i}.latents"),
                safetensors::Dtype::F32,
                s.shape.to_vec(),
                s.latents.iter().flat_map(|v| v.to_le_bytes()).collect(),
            ));
            owned.push((
                format!("{i}.input_ids"),
                safetensors::Dtype::I64,
                vec![s.input_ids.len()],
                s.input_ids.iter().flat_map(|v| v.to_le_bytes()).collect(),
            ));
        }
        let views = owned
            .iter()
            .map(|(name, dtype, shape, bytes)| {
                safetensors::tensor::TensorView::new(*dtype, shape.clone(), bytes)
                    .map(|v| (name.clone(), v))
                    .map_err(|e| e.to_string())
            })
            .collect::<Result<Vec<_>, _>>()?;
        let metadata = (!metadata.is_empty()).then_some(metadata);
        safetensors::serialize(views, metadata).map_err(|e| e.to_string())
    }

    /// Batches of sample indices for one epoch: `repeats` copies of every
    /// sample, grouped by latent size, shuffled within and across groups.
    pub fn epoch_batches(
        &self,
        batch_size: usize,
        repeats: usize,
        rng: Option<&mut SplitMix64>,
    ) -> Vec<Vec<usize>> {
        let mut groups: BTreeMap<[usize; 3], Vec<usize>> = BTreeMap::new();
        for (i, s) in self.samples.iter().enumerate() {
            for _ in 0..repeats.max(1) {
                groups.entry(s.shape).or_default().push(i);
            }
        }
        let mut batches = Vec::new();
        let mut rng = rng;
        for (_, mut idx) in groups {
            if let Some(r) = rng.as_deref_mut() {
                r.shuffle(&mut idx);
            }
            batches.extend(idx.chunks(batch_size.max(1)).map(<[usize]>::to_vec));
        }
        if let Some(r) = rng {
            r.shuffle(&mut batches);
        }
        batches
    }
}

/// What the loop reports as it goes.
#[derive(Debug, Clone, PartialEq)]
pub enum TrainEvent {
    Start {
        num_images: usize,
        batches_per_epoch: usize,
        epochs: usize,
        total_steps: usize,
        batch_size: usize,
    },
    Epoch {
        epoch: usize,
        epochs: usize,
    },
    Step {
        step: usize,
        total_steps: usize,
        loss: f32,
        /// kohya's `avr_loss`: the mean over the last epoch's worth of steps.
        avr_loss: f32,
        lr: f64,
        elapsed: Duration,
    },
    Saved {
        path: PathBuf,
    },
    /// A line about what the loop is doing (e.g. hashing the base model).
    Note(String),
}

/// What a finished run did.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainOutcome {
    pub steps: usize,
    pub losses: Vec<f32>,
    pub saved: Vec<PathBuf>,
}

enum AnyOptimizer<M: AutodiffModule<B>, B: AutodiffBackend> {
    AdamW(OptimizerAdaptor<AdamW, M, B>),
    Lion(OptimizerAdaptor<Lion, M, B>),
    Prodigy(Prodigy<B>),
}

impl<M: AutodiffModule<B>, B: AutodiffBackend> AnyOptimizer<M, B> {
    fn new(config: &EngineConfig) -> Self {
        let wd = config.training.weight_decay;
        match config.training.optimizer {
            OptimizerKind::AdamW => AnyOptimizer::AdamW(
                AdamWConfig::new()
                    .with_weight_decay(wd as f32)
                    .with_epsilon(1e-8)
                    .init(),
            ),
            OptimizerKind::Lion => AnyOptimizer::Lion(
                Lion {
                    beta_1: 0.9,
                    beta_2: 0.99,
                    weight_decay: wd,
                }
                .init(),
            ),
            OptimizerKind::Prodigy => AnyOptimizer::Prodigy(Prodigy::new(ProdigyConfig {
                weight_decay: wd,
                ..ProdigyConfig::default()
            })),
        }
    }

    fn step(&mut self, lr: f64, module: M, grads: GradientsParams) -> M {
        match self {
            AnyOptimizer::AdamW(o) => o.step(lr, module, grads),
            AnyOptimizer::Lion(o) => o.step(lr, module, grads),
            AnyOptimizer::Prodigy(o) => o.step(lr, module, &grads),
        }
    }
}

/// The steps a config will run over this dataset.
pub fn plan_steps(config: &EngineConfig, dataset: &LatentDataset) -> (usize, usize, usize) {
    let t = &config.training;
    let per_epoch = dataset
        .epoch_batches(t.batch_size, config.data.repeats, None)
        .len();
    let by_epochs = per_epoch * t.epochs;
    let total = match t.max_steps {
        Some(max) if t.epochs == 0 => max,
        Some(max) => max.min(by_epochs),
        None => by_epochs,
    };
    let epochs = if per_epoch == 0 {
        0
    } else {
        total.div_ceil(per_epoch)
    };
    (per_epoch, epochs, total)
}

/// Trains `model`'s adapters on `dataset`; writes epoch checkpoints and the
/// final LoRA as the config says (nothing when `write_files` is false: the
/// dry run). The model must hold loaded base weights.
pub fn train<B: AutodiffBackend>(
    config: &EngineConfig,
    model: LoraModel<B>,
    dataset: &LatentDataset,
    tokenizer: Option<&ClipTokenizer>,
    device: &B::Device,
    write_files: bool,
    on_event: &mut dyn FnMut(&TrainEvent),
) -> Result<(LoraModel<B>, TrainOutcome), EngineError> {
    let t = &config.training;
    let mut model = cast_base_weights(model, t.base_precision);
    B::seed(device, t.seed);
    let mut rng = SplitMix64::new(t.seed);
    let schedule = NoiseSchedule::sd15();
    let (per_epoch, epochs, total_steps) = plan_steps(config, dataset);
    let lr_unet = LrSchedule {
        kind: t.lr_scheduler,
        peak: t.learning_rate,
        warmup_steps: t.warmup_steps,
        total_steps,
    };
    let lr_te = LrSchedule {
        peak: t.text_encoder_lr.unwrap_or(t.learning_rate),
        ..lr_unet
    };
    let mut opt_unet = AnyOptimizer::new(config);
    let mut opt_te = AnyOptimizer::new(config);
    let mut opt_te2 = AnyOptimizer::new(config);
    let started = Instant::now();
    let started_unix = crate::studio::clock::unix_now();
    let mut outcome = TrainOutcome {
        steps: 0,
        losses: Vec::with_capacity(total_steps),
        saved: Vec::new(),
    };
    let run = if write_files {
        on_event(&TrainEvent::Note(format!(
            "hashing {} for the LoRA's metadata (ss_new_sd_model_hash)",
            config.model.checkpoint.display()
        )));
        let identity =
            ModelIdentity::of(&config.model.checkpoint, &mut |_, _| {}).map_err(|source| {
                EngineError::Read {
                    path: config.model.checkpoint.clone(),
                    source,
                }
            })?;
        Some(RunFacts::new(
            config,
            dataset,
            identity,
            per_epoch,
            total_steps,
            started_unix,
        ))
    } else {
        None
    };
    on_event(&TrainEvent::Start {
        num_images: dataset.samples.len() * config.data.repeats.max(1),
        batches_per_epoch: per_epoch,
        epochs,
        total_steps,
        batch_size: t.batch_size,
    });

    super::alloc::keep_freed_memory();
    let mut step = 0;
    for epoch in 1..=epochs {
        on_event(&TrainEvent::Epoch { epoch, epochs });
        let order = if t.shuffle { Some(&mut rng) } else { None };
        let batches = dataset.epoch_batches(t.batch_size, config.data.repeats, order);
        for batch in batches {
            if step >= total_steps {
                break;
            }
            let timesteps: Vec<usize> = batch.iter().map(|_| rng.below(schedule.len())).collect();
            let ids = match tokenizer {
                Some(tokenizer) if config.data.shuffle_caption => shuffled_ids(
                    dataset,
                    &batch,
                    tokenizer,
                    config.data.keep_tokens,
                    &mut rng,
                ),
                _ => batch_ids(dataset, &batch),
            };
            let loss = step_loss(
                config, &model, dataset, &batch, ids, &timesteps, &schedule, device,
            );
            let loss_value: f32 = loss.clone().into_scalar().elem();
            let grads = loss.backward();
            let mut grads_for = grads;
            let unet_grads = GradientsParams::from_module(&mut grads_for, &model.unet);
            let te_grads = GradientsParams::from_module(&mut grads_for, &model.text_encoder);
            let te2_grads = model
                .text_encoder_2
                .as_ref()
                .map(|te2| GradientsParams::from_module(&mut grads_for, te2));
            model.unet = opt_unet.step(lr_unet.at(step), model.unet, unet_grads);
            if !te_grads.is_empty() {
                model.text_encoder = opt_te.step(lr_te.at(step), model.text_encoder, te_grads);
            }
            if let Some(grads) = te2_grads
                && !grads.is_empty()
                && let Some(te2) = model.text_encoder_2.take()
            {
                model.text_encoder_2 = Some(opt_te2.step(lr_te.at(step), te2, grads));
            }
            outcome.losses.push(loss_value);
            step += 1;
            outcome.steps = step;
            let window = per_epoch.max(1);
            let recent = &outcome.losses[outcome.losses.len().saturating_sub(window)..];
            let avr_loss = recent.iter().sum::<f32>() / recent.len() as f32;
            on_event(&TrainEvent::Step {
                step,
                total_steps,
                loss: loss_value,
                avr_loss,
                lr: lr_unet.at(step - 1),
                elapsed: started.elapsed(),
            });
            if !loss_value.is_finite() {
                return Err(EngineError::NonFiniteLoss {
                    step,
                    loss: loss_value,
                });
            }
        }
        let every = config.output.save_every_n_epochs;
        if let Some(run) = run
            .as_ref()
            .filter(|_| every > 0 && epoch % every == 0 && epoch < epochs)
        {
            let path = config.epoch_path(epoch);
            save(config, &model, dataset, run, step, epoch, epochs, &path)?;
            on_event(&TrainEvent::Saved { path: path.clone() });
            outcome.saved.push(path);
        }
    }
    let Some(run) = run else {
        return Ok((model, outcome));
    };
    let path = config.output_path();
    save(config, &model, dataset, &run, step, epochs, epochs, &path)?;
    on_event(&TrainEvent::Saved { path: path.clone() });
    outcome.saved.push(path);
    Ok((model, outcome))
}

/// The cached caption tokens of a batch, one row per sample.
pub(crate) fn batch_ids(dataset: &LatentDataset, batch: &[usize]) -> Vec<i64> {
    batch
        .iter()
        .flat_map(|&i| dataset.samples[i].input_ids.iter().copied())
        .collect()
}

/// The batch's captions with their tags shuffled (the first `keep` stay in
/// place, so the trigger word stays first), tokenized again. Samples whose
/// caption the cache did not keep use their cached tokens.
pub(crate) fn shuffled_ids(
    dataset: &LatentDataset,
    batch: &[usize],
    tokenizer: &ClipTokenizer,
    keep: usize,
    rng: &mut SplitMix64,
) -> Vec<i64> {
    batch
        .iter()
        .flat_map(|&i| {
            let sample = &dataset.samples[i];
            match &sample.caption {
                Some(caption) => tokenizer
                    .encode_padded(&shuffle_caption(caption, keep, rng), sample.input_ids.len()),
                None => sample.input_ids.clone(),
            }
        })
        .collect()
}

/// The loss of one batch (caption tokens `ids`, `[batch, seq]` flattened),
/// with the graph for backward.
#[allow(clippy::too_many_arguments)]
pub(crate) fn step_loss<B: AutodiffBackend>(
    config: &EngineConfig,
    model: &LoraModel<B>,
    dataset: &LatentDataset,
    batch: &[usize],
    ids: Vec<i64>,
    timesteps: &[usize],
    schedule: &NoiseSchedule,
    device: &B::Device,
) -> Tensor<B, 1> {
    let b = batch.len();
    let [c, h, w] = dataset.samples[batch[0]].shape;
    let seq = dataset.samples[batch[0]].input_ids.len();
    let latents: Vec<f32> = batch
        .iter()
        .flat_map(|&i| dataset.samples[i].latents.iter().copied())
        .collect();
    let latents = Tensor::<B, 4>::from_data(TensorData::new(latents, [b, c, h, w]), device);

    let mut noise = latents.random_like(Distribution::Normal(0.0, 1.0)); // [b, c, h, w]
    if config.training.noise_offset > 0.0 {
        let offset = Tensor::<B, 4>::random([b, c, 1, 1], Distribution::Normal(0.0, 1.0), device);
        noise = noise + offset.mul_scalar(config.training.noise_offset);
    }
    let noisy = schedule.add_noise(latents.clone(), noise.clone(), timesteps);
    let prediction = config.model.prediction;
    let target = schedule.target(prediction, latents, noise, timesteps);

    // [b, seq, d]; SDXL: both encoders side by side, and the pooled embedding
    let (context, pooled) = model.encode_text(ids, b, seq, config.model.clip_skip, device);
    let sizes: Vec<Option<(u32, u32)>> = batch
        .iter()
        .map(|&i| dataset.samples[i].image_size)
        .collect();
    let added = model.added_cond(pooled, &sizes, (w * 8, h * 8), device);
    let t_values: Vec<f32> = timesteps.iter().map(|&t| t as f32).collect();
    let t_tensor = Tensor::<B, 1>::from_data(TensorData::new(t_values, [b]), device);
    let predicted = model.unet.forward(noisy, t_tensor, context, added); // [b, c, h, w]

    let per_sample = (predicted - target)
        .powi_scalar(2)
        .flatten::<2>(1, 3)
        .mean_dim(1); // [b, 1]
    let weights = schedule.loss_weights(prediction, timesteps, config.training.min_snr_gamma);
    let weights = Tensor::<B, 2>::from_data(TensorData::new(weights, [b, 1]), device);
    (per_sample * weights).mean()
}

/// The facts about a run that do not change between its saves.
struct RunFacts {
    model: ModelIdentity,
    dataset_dirs: Vec<DatasetDir>,
    tag_frequency: Ordered<Ordered<usize>>,
    batches_per_epoch: usize,
    max_train_steps: usize,
    started_at: u64,
}

impl RunFacts {
    fn new(
        config: &EngineConfig,
        dataset: &LatentDataset,
        model: ModelIdentity,
        batches_per_epoch: usize,
        max_train_steps: usize,
        started_at: u64,
    ) -> Self {
        let fallback = config
            .data
            .latents
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "latents".into());
        let folder = |s: &LatentSample| s.folder.clone().unwrap_or_else(|| fallback.clone());
        let mut dirs: Ordered<usize> = Ordered::default();
        for sample in &dataset.samples {
            *dirs.entry_or(&folder(sample), || 0) += 1;
        }
        let dataset_dirs = dirs
            .0
            .into_iter()
            .map(|(name, img_count)| DatasetDir {
                name,
                n_repeats: config.data.repeats,
                img_count,
            })
            .collect();
        let folders: Vec<String> = dataset.samples.iter().map(folder).collect();
        let tag_frequency = tag_frequency(
            dataset
                .samples
                .iter()
                .zip(&folders)
                .filter_map(|(s, f)| s.caption.as_deref().map(|c| (f.as_str(), c))),
        );
        Self {
            model,
            dataset_dirs,
            tag_frequency,
            batches_per_epoch,
            max_train_steps,
            started_at,
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn save<B: AutodiffBackend>(
    config: &EngineConfig,
    model: &LoraModel<B>,
    dataset: &LatentDataset,
    run: &RunFacts,
    steps: usize,
    epoch: usize,
    epochs: usize,
    path: &Path,
) -> Result<(), EngineError> {
    let n = &config.network;
    let t = &config.training;
    let resolution = config.data.resolution;
    let facts = TrainingFacts {
        output_name: config.output.name.clone(),
        modelspec_architecture: if config.model.architecture.is_sdxl() {
            "stable-diffusion-xl-v1-base"
        } else {
            "stable-diffusion-v1"
        },
        base_model_version: if config.model.architecture.is_sdxl() {
            "sdxl_base_v1-0"
        } else {
            "sd_v1"
        },
        rank: n.rank,
        alpha: n.alpha,
        dropout: n.dropout,
        conv_rank: n.conv_rank,
        conv_alpha: n.conv_alpha,
        train_text_encoder: n.train_text_encoder,
        learning_rate: t.learning_rate,
        text_encoder_lr: t.text_encoder_lr.unwrap_or(t.learning_rate),
        optimizer: match t.optimizer {
            OptimizerKind::AdamW => "burn.optim.AdamW".into(),
            OptimizerKind::Lion => "ategnatos.Lion".into(),
            OptimizerKind::Prodigy => "ategnatos.Prodigy".into(),
        },
        lr_scheduler: format!("{:?}", t.lr_scheduler).to_lowercase(),
        warmup_steps: t.warmup_steps,
        steps,
        max_train_steps: run.max_train_steps,
        epoch,
        epochs,
        batch_size: t.batch_size,
        batches_per_epoch: run.batches_per_epoch,
        num_train_images: dataset.samples.len() * config.data.repeats.max(1),
        seed: t.seed,
        clip_skip: config.model.clip_skip,
        noise_offset: t.noise_offset,
        min_snr_gamma: t.min_snr_gamma,
        v_prediction: config.model.prediction == super::schedule::Prediction::VPrediction,
        resolution: (resolution, resolution),
        bucket_side_range: bucket_side_range(resolution, config.data.bucket_step),
        bucket_info: BucketInfo::of(
            dataset.samples.iter().map(|s| {
                let [_, h, w] = s.shape;
                ((w * 8, h * 8), s.image_size)
            }),
            config.data.repeats.max(1),
        ),
        shuffle_caption: config.data.shuffle_caption,
        keep_tokens: config.data.keep_tokens,
        mixed_precision: t.base_precision.kohya_name(),
        gradient_checkpointing: t.gradient_checkpointing,
        model: run.model.clone(),
        dataset_dirs: run.dataset_dirs.clone(),
        tag_frequency: run.tag_frequency.clone(),
        started_at: run.started_at,
        finished_at: crate::studio::clock::unix_now(),
    };
    let alphas = Alphas {
        linear: n.alpha,
        conv: n.conv_alpha,
    };
    save_lora(
        path,
        model,
        (alphas, config.model.architecture),
        &facts.metadata(),
        config.output.save_precision,
    )?;
    Ok(())
}
