//! Seconds per training step of the real training step on random weights
//! (speed does not depend on the weights' values), and the memory a
//! checkpoint takes to load. Run it with
//! `cargo run --release --bin ategnatos-engine-bench -- --arch sd15 --batch 4`.

use std::time::{Duration, Instant};

use burn::module::AutodiffModule;
use burn::optim::{AdamWConfig, GradientsParams, Optimizer};
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::{ElementConversion, Tensor};

use super::config::{Architecture, EngineConfig};
use super::model::LoraModel;
use super::precision::{BasePrecision, cast_base_weights};
use super::rng::SplitMix64;
use super::schedule::NoiseSchedule;
use super::train::{LatentDataset, LatentSample, batch_ids, step_loss};

/// What to measure.
#[derive(Debug, Clone)]
pub struct BenchSpec {
    pub arch: Architecture,
    pub batch: usize,
    pub rank: usize,
    /// Latent side (64 for 512 px).
    pub latent_size: usize,
    pub warmup_steps: usize,
    pub steps: usize,
    /// The precision the frozen weights are held in.
    pub base_precision: BasePrecision,
    /// Informational: whether the caller's backend type checkpoints (the
    /// backend is the type parameter of [`run_benchmark`]).
    pub checkpointing: bool,
}

/// The measurement.
#[derive(Debug, Clone)]
pub struct BenchResult {
    pub spec: BenchSpec,
    pub trainable_params: usize,
    pub step_times: Vec<Duration>,
    /// The process's peak resident memory after the last step (building
    /// the model included): meaningful when the process ran this one
    /// benchmark.
    pub peak_rss: Option<u64>,
}

impl BenchResult {
    pub fn mean_seconds(&self) -> f64 {
        let n = self.step_times.len().max(1) as f64;
        self.step_times
            .iter()
            .map(Duration::as_secs_f64)
            .sum::<f64>()
            / n
    }

    pub fn summary(&self) -> String {
        format!(
            "arch={:?} base={} checkpointing={} batch={} rank={} latents={}x{} trainable={} steps={} mean={:.4} s/step peak_rss={}",
            self.spec.arch,
            self.spec.base_precision.kohya_name(),
            self.spec.checkpointing,
            self.spec.batch,
            self.spec.rank,
            self.spec.latent_size,
            self.spec.latent_size,
            self.trainable_params,
            self.step_times.len(),
            self.mean_seconds(),
            megabytes(self.peak_rss),
        )
    }
}

/// Runs `warmup_steps + steps` AdamW steps; times the last `steps`. Each
/// timing ends with reading the loss back, which waits for the device.
pub fn run_benchmark<B: AutodiffBackend>(spec: &BenchSpec, device: &B::Device) -> BenchResult {
    B::seed(device, 0);
    let arch = spec.arch;
    let mut config = bench_config(arch);
    config.network.rank = spec.rank;
    config.network.alpha = spec.rank as f64;
    let clip = arch.clip();
    let seq = clip.max_position_embeddings;
    let mut rng = SplitMix64::new(0);
    let samples = (0..spec.batch)
        .map(|_| LatentSample {
            latents: (0..4 * spec.latent_size * spec.latent_size)
                .map(|_| (rng.below(2000) as f32 / 1000.0) - 1.0)
                .collect(),
            shape: [4, spec.latent_size, spec.latent_size],
            input_ids: (0..seq)
                .map(|_| rng.below(clip.vocab_size) as i64)
                .collect(),
            caption: None,
            folder: None,
            image_size: None,
        })
        .collect();
    let dataset = LatentDataset {
        samples,
        fingerprint: None,
    };
    let batch: Vec<usize> = (0..spec.batch).collect();
    let schedule = NoiseSchedule::sd15();

    let model = LoraModel::<B>::init(arch, &config.network, device);
    let mut model = cast_base_weights(model, spec.base_precision);
    let trainable = count_trainable(&model);
    let mut optim = AdamWConfig::new().init::<B, super::unet::UNet2DConditionModel<B>>();
    let mut times = Vec::with_capacity(spec.steps);
    super::alloc::keep_freed_memory();
    for i in 0..spec.warmup_steps + spec.steps {
        let timesteps: Vec<usize> = batch.iter().map(|_| rng.below(1000)).collect();
        let start = Instant::now();
        let ids = batch_ids(&dataset, &batch);
        let loss = step_loss(
            &config, &model, &dataset, &batch, ids, &timesteps, &schedule, device,
        );
        let mut grads = loss.clone().backward();
        let grads = GradientsParams::from_module(&mut grads, &model.unet);
        model.unet = optim.step(1e-4, model.unet, grads);
        let _: f32 = loss.into_scalar().elem();
        if i >= spec.warmup_steps {
            times.push(start.elapsed());
        }
    }
    BenchResult {
        spec: spec.clone(),
        trainable_params: trainable,
        step_times: times,
        peak_rss: peak_resident_bytes(),
    }
}

/// A field of `/proc/self/status` in bytes (Linux; `None` elsewhere).
fn proc_status_bytes(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    let kib: u64 = line
        .trim_start_matches(field)
        .trim_start_matches(':')
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib * 1024)
}

/// The process's resident memory now.
pub fn resident_bytes() -> Option<u64> {
    proc_status_bytes("VmRSS")
}

/// The process's peak resident memory so far (the kernel's high-water
/// mark, what `/usr/bin/time -v` calls "Maximum resident set size").
pub fn peak_resident_bytes() -> Option<u64> {
    proc_status_bytes("VmHWM")
}

/// `1234.5 MB`, or `unknown` where the system does not say.
pub fn megabytes(bytes: Option<u64>) -> String {
    match bytes {
        Some(b) => format!("{:.1} MB", b as f64 / 1e6),
        None => "unknown".into(),
    }
}

/// Bytes of the model's base (non-adapter) parameters in their stored
/// precision.
pub fn base_parameter_bytes<B: burn::tensor::backend::Backend, M: burn::module::Module<B>>(
    model: &M,
) -> u64 {
    struct Sum {
        path: Vec<String>,
        bytes: u64,
    }
    impl<B: burn::tensor::backend::Backend> burn::module::ModuleVisitor<B> for Sum {
        fn enter_module(&mut self, name: &str, container_type: &str) {
            if crate::engine::weights::is_variant(container_type) {
                return;
            }
            self.path.push(name.to_string());
        }
        fn exit_module(&mut self, _: &str, container_type: &str) {
            if crate::engine::weights::is_variant(container_type) {
                return;
            }
            self.path.pop();
        }
        fn visit_float<const D: usize>(&mut self, param: &burn::module::Param<Tensor<B, D>>) {
            if !self.path.iter().any(|n| n == "lora") {
                let tensor = param.val();
                let size = tensor.dtype().size() as u64;
                self.bytes += tensor.shape().num_elements() as u64 * size;
            }
        }
    }
    let mut sum = Sum {
        path: Vec::new(),
        bytes: 0,
    };
    model.visit(&mut sum);
    sum.bytes
}

fn count_trainable<B: AutodiffBackend, M: AutodiffModule<B>>(model: &M) -> usize {
    struct Count(usize);
    impl<B: burn::tensor::backend::Backend> burn::module::ModuleVisitor<B> for Count {
        fn visit_float<const D: usize>(&mut self, param: &burn::module::Param<Tensor<B, D>>) {
            if param.is_require_grad() {
                self.0 += param.shape().num_elements();
            }
        }
    }
    let mut count = Count(0);
    model.visit(&mut count);
    count.0
}

fn bench_config(arch: Architecture) -> EngineConfig {
    let arch_name = arch.name();
    let text = format!(
        "[model]\ncheckpoint = \"unused\"\narchitecture = \"{arch_name}\"\n[data]\nlatents = \"unused\"\n[output]\ndir = \"unused\"\nname = \"bench\"\n"
    );
    // the text is ours and valid; a failure here is a bug in this function
    #[allow(clippy::panic)]
    EngineConfig::parse(&text).unwrap_or_else(|e| panic!("benchmark config: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::TestAutodiff;

    #[test]
    fn tiny_benchmark_runs_and_times_every_step() {
        let spec = BenchSpec {
            arch: Architecture::Tiny,
            batch: 1,
            rank: 4,
            latent_size: 8,
            warmup_steps: 1,
            steps: 2,
            base_precision: BasePrecision::F32,
            checkpointing: false,
        };
        let result = run_benchmark::<TestAutodiff>(&spec, &Default::default());
        assert_eq!(result.step_times.len(), 2);
        assert!(result.trainable_params > 0);
    }
}
