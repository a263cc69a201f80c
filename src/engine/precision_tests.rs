//! Half-precision base weights and gradient checkpointing held to the f32
//! run: the same `sd15_toy` checkpoint, the same data and seed, a few AdamW
//! steps each way; the losses and the trained LoRA weights must agree within
//! the tolerances stated here, and the base weights must not move.
//!
//! The tolerances, over four steps at learning rate 1e-3: bf16 keeps 8
//! significant bits, so each base weight is off by up to 2⁻⁹ (0.2 %) of
//! itself; the losses must agree with f32's to 1 % (measured: 0.10 %) and
//! the LoRA's change over the run (what training wrote) to 10 % of its size
//! (measured: 4.8 %; AdamW's first steps are close to the gradient's sign,
//! so a small gradient that changes sign moves its weight the other way).
//! f16 keeps 11 bits: 0.2 % and 2.5 % (measured: 0.013 % and 0.94 %).
//! Checkpointing changes what is kept for the backward pass, not what is
//! computed: 1e-6 and 1e-5 (measured: identical).

use std::path::Path;

use burn::backend::Autodiff;
use burn::backend::autodiff::checkpoint::strategy::BalancedCheckpointing;
use burn::module::{Module, ModuleMapper, Param};
use burn::optim::{AdamWConfig, GradientsParams, Optimizer};
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::{DType, Distribution, ElementConversion, Int, Tensor, TensorData};

use super::config::{Architecture, EngineConfig};
use super::init_checkpoint::write_random_checkpoint;
use super::model::LoraModel;
use super::precision::{BasePrecision, cast_base_weights, frozen_conv2d, frozen_matmul};
use super::rng::SplitMix64;
use super::train::{LatentDataset, LatentSample, train};
use super::weights::{Checkpoint, Component, Layout, named_tensors};
use super::{CpuBackend, TestAutodiff, TestBackend};

/// What a run leaves to compare: its losses, every LoRA tensor, every base
/// tensor before and after (as f32, by name).
struct Run {
    losses: Vec<f32>,
    lora: Tensors,
    base_before: Tensors,
    base_after: Tensors,
    /// The fresh LoRA, before any step.
    lora_before: Tensors,
}

/// Tensors by name, as f32 values.
type Tensors = Vec<(String, Vec<f32>)>;

fn values(data: TensorData) -> Vec<f32> {
    data.convert::<f32>().to_vec::<f32>().unwrap()
}

fn split<B: burn::tensor::backend::Backend>(model: &LoraModel<B>) -> (Tensors, Tensors) {
    let (lora, base): (Vec<_>, Vec<_>) = named_tensors(model)
        .into_iter()
        .map(|(name, data, _)| (name, values(data)))
        .partition(|(name, _)| name.contains(".lora."));
    (lora, base)
}

/// Two 8×8 latents with their 8 caption tokens.
fn dataset() -> LatentDataset {
    let mut rng = SplitMix64::new(11);
    let samples = (0..2)
        .map(|i| LatentSample {
            latents: (0..4 * 8 * 8)
                .map(|_| (rng.below(2001) as f32 / 1000.0) - 1.0)
                .collect(),
            shape: [4, 8, 8],
            input_ids: (0..8).map(|j| ((i * 8 + j * 3) % 64) as i64).collect(),
            caption: None,
            folder: None,
            image_size: None,
        })
        .collect();
    LatentDataset {
        samples,
        fingerprint: None,
    }
}

/// Gives every adapter's `down` matrix values from the test's generator
/// (burn's, shared with the tests beside this one, made them at init); `up`
/// stays zero as kohya starts it.
struct SeededAdapters(SplitMix64);

impl<B: burn::tensor::backend::Backend> ModuleMapper<B> for SeededAdapters {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        if !param.is_require_grad() {
            return param;
        }
        let rng = &mut self.0;
        param.map(|tensor| {
            let shape = tensor.shape();
            let values = values(tensor.clone().into_data());
            if values.iter().all(|v| *v == 0.0) {
                return tensor;
            }
            let seeded: Vec<f32> = values
                .iter()
                .map(|_| (rng.below(2001) as f32 / 1000.0 - 1.0) * 0.2)
                .collect();
            Tensor::from_data(TensorData::new(seeded, shape), &tensor.device()).require_grad()
        })
    }
}

/// The training loss of `model` on the whole dataset at step `step`, with
/// timesteps and noise from the test's own generator: burn's generator is
/// one per process, and tests running beside this one draw from it too.
fn loss<B: AutodiffBackend>(
    model: &LoraModel<B>,
    data: &LatentDataset,
    step: usize,
    device: &B::Device,
) -> Tensor<B, 1> {
    let schedule = super::schedule::NoiseSchedule::sd15();
    let mut rng = SplitMix64::new(1000 + step as u64);
    let n = data.samples.len();
    let latents: Vec<f32> = data
        .samples
        .iter()
        .flat_map(|s| s.latents.clone())
        .collect();
    let latents = Tensor::<B, 4>::from_data(TensorData::new(latents, [n, 4, 8, 8]), device);
    let noise: Vec<f32> = (0..n * 4 * 8 * 8)
        .map(|_| (rng.below(2001) as f32 / 1000.0) - 1.0)
        .collect();
    let noise = Tensor::<B, 4>::from_data(TensorData::new(noise, [n, 4, 8, 8]), device);
    let timesteps: Vec<usize> = (0..n).map(|_| rng.below(1000)).collect();
    let noisy = schedule.add_noise(latents, noise.clone(), &timesteps);
    let ids: Vec<i64> = data
        .samples
        .iter()
        .flat_map(|s| s.input_ids.clone())
        .collect();
    let ids = Tensor::<B, 2, Int>::from_data(TensorData::new(ids, [n, 8]), device);
    let context = model.text_encoder.forward(ids, 1);
    let t: Vec<f32> = timesteps.iter().map(|&t| t as f32).collect();
    let t = Tensor::<B, 1>::from_data(TensorData::new(t, [n]), device);
    let predicted = model.unet.forward(noisy, t, context, None);
    (predicted - noise).powi_scalar(2).mean()
}

/// Four AdamW steps on the UNet's and the text encoder's adapters, as
/// [`super::train::train`] takes them, from the checkpoint's base weights
/// held in `base`.
fn run<B: AutodiffBackend>(checkpoint: &Path, base: BasePrecision) -> Run {
    let device = Default::default();
    let arch = Architecture::Sd15Toy;
    let network = super::config::NetworkSection {
        rank: 4,
        alpha: 4.0,
        conv_rank: 2,
        conv_alpha: 2.0,
        train_text_encoder: true,
        dropout: 0.0,
    };
    let file = Checkpoint::open(checkpoint, &[Component::Unet, Component::TextEncoder]).unwrap();
    let model = LoraModel::<B>::init(arch, &network, &device);
    let (model, _) = model
        .load_base(&file, arch, &device, &mut |_, _| {})
        .unwrap();
    let mut model = cast_base_weights(model.map(&mut SeededAdapters(SplitMix64::new(9))), base);
    let (lora_before, base_before) = split(&model);
    let data = dataset();
    let mut opt_unet = AdamWConfig::new().init();
    let mut opt_te = AdamWConfig::new().init();
    let mut losses = Vec::new();
    for step in 0..4 {
        let loss = loss(&model, &data, step, &device);
        losses.push(loss.clone().into_scalar().elem::<f32>());
        let mut grads = loss.backward();
        let unet_grads = GradientsParams::from_module(&mut grads, &model.unet);
        let te_grads = GradientsParams::from_module(&mut grads, &model.text_encoder);
        model.unet = opt_unet.step(1e-3, model.unet, unet_grads);
        model.text_encoder = opt_te.step(1e-3, model.text_encoder, te_grads);
    }
    let (lora, base_after) = split(&model);
    Run {
        losses,
        lora,
        base_before,
        base_after,
        lora_before,
    }
}

fn toy_checkpoint(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("toy.safetensors");
    write_random_checkpoint(Architecture::Sd15Toy, Layout::Ldm, "f32", &path, 3).unwrap();
    path
}

fn norm(v: impl Iterator<Item = f32>) -> f32 {
    v.map(|x| x * x).sum::<f32>().sqrt()
}

/// ‖(a − start) − (b − start)‖ / ‖b − start‖ over every LoRA tensor: how
/// far run `a`'s training moved the LoRA from where run `b`'s did.
fn lora_change_error(a: &Run, b: &Run) -> f32 {
    assert_eq!(a.lora.len(), b.lora.len());
    let mut diff = 0.0f32;
    let mut size = 0.0f32;
    for (((name, va), (_, vb)), (_, v0)) in a.lora.iter().zip(&b.lora).zip(&b.lora_before) {
        assert!(a.lora.iter().any(|(n, _)| n == name));
        diff += norm(va.iter().zip(vb).map(|(x, y)| x - y)).powi(2);
        size += norm(vb.iter().zip(v0).map(|(x, y)| x - y)).powi(2);
    }
    assert!(size > 0.0, "the reference run did not move the LoRA");
    (diff / size).sqrt()
}

fn max_loss_error(a: &Run, b: &Run) -> f32 {
    assert_eq!(a.losses.len(), b.losses.len());
    a.losses
        .iter()
        .zip(&b.losses)
        .map(|(x, y)| (x - y).abs() / y.abs())
        .fold(0.0, f32::max)
}

/// The base weights after the run are the ones before it, bit for bit.
fn base_is_frozen(run: &Run) {
    assert_eq!(run.base_before.len(), run.base_after.len());
    for ((name, before), (_, after)) in run.base_before.iter().zip(&run.base_after) {
        assert!(
            before == after,
            "base weight `{name}` changed during training"
        );
    }
}

#[test]
fn half_precision_base_weights_train_like_f32_and_stay_frozen() {
    let dir = tempfile::tempdir().unwrap();
    let checkpoint = toy_checkpoint(dir.path());
    let f32_run = run::<TestAutodiff>(&checkpoint, BasePrecision::F32);
    assert_eq!(f32_run.losses.len(), 4);
    base_is_frozen(&f32_run);

    for (base, loss_tol, lora_tol) in [
        (BasePrecision::Bf16, 0.01, 0.10),
        (BasePrecision::F16, 0.002, 0.025),
    ] {
        let half = run::<TestAutodiff>(&checkpoint, base);
        let loss_err = max_loss_error(&half, &f32_run);
        let lora_err = lora_change_error(&half, &f32_run);
        assert!(
            loss_err < loss_tol,
            "{base:?}: losses {:?} against f32's {:?} ({loss_err})",
            half.losses,
            f32_run.losses
        );
        assert!(
            lora_err < lora_tol,
            "{base:?}: the LoRA moved {lora_err} away from f32's"
        );
        // the run's base weights are the checkpoint's in half precision
        base_is_frozen(&half);
        let rounded = half
            .base_before
            .iter()
            .zip(&f32_run.base_before)
            .filter(|(h, f)| h.1 != f.1)
            .count();
        assert!(rounded > 0, "{base:?}: no base weight was rounded");
    }
}

#[test]
fn gradient_checkpointing_trains_like_f32() {
    let dir = tempfile::tempdir().unwrap();
    let checkpoint = toy_checkpoint(dir.path());
    let plain = run::<TestAutodiff>(&checkpoint, BasePrecision::F32);
    let checkpointed =
        run::<Autodiff<CpuBackend, BalancedCheckpointing>>(&checkpoint, BasePrecision::F32);
    let loss_err = max_loss_error(&checkpointed, &plain);
    let lora_err = lora_change_error(&checkpointed, &plain);
    assert!(
        loss_err < 1e-6,
        "losses {:?} against {:?}",
        checkpointed.losses,
        plain.losses
    );
    assert!(
        lora_err < 1e-5,
        "the LoRA moved {lora_err} away from the plain run's"
    );
    base_is_frozen(&checkpointed);

    // and both at once, against the bf16 run without checkpointing
    let half = run::<TestAutodiff>(&checkpoint, BasePrecision::Bf16);
    let both = run::<Autodiff<CpuBackend, BalancedCheckpointing>>(&checkpoint, BasePrecision::Bf16);
    assert!(max_loss_error(&both, &half) < 1e-6);
    assert!(lora_change_error(&both, &half) < 1e-5);
    base_is_frozen(&both);
}

/// The half-weight products give the input the gradient the f32 product
/// gives with the same (rounded) weight: linear layers broadcast over a
/// batch, and convolutions with and without stride (a downsampler drops a
/// row, which the backward pass must give back).
#[test]
fn half_weight_products_give_the_f32_gradients() {
    let device = Default::default();
    let w =
        Tensor::<TestBackend, 2>::random([6, 5], Distribution::Default, &device).cast(DType::BF16);
    let w32 = w.clone().cast(DType::F32);
    let x = Tensor::<TestBackend, 3>::random([2, 3, 6], Distribution::Default, &device);
    let grad_of = |weight: Tensor<TestBackend, 2>| {
        let x = Tensor::<TestAutodiff, 3>::from_inner(x.clone()).require_grad();
        let w = Tensor::<TestAutodiff, 2>::from_inner(weight);
        let y = frozen_matmul(x.clone(), w);
        let grads = (y.clone() * y).sum().backward();
        x.grad(&grads).unwrap().into_data()
    };
    let expected = grad_of(w32);
    let got = grad_of(w);
    got.assert_approx_eq::<f32>(&expected, burn::tensor::Tolerance::absolute(1e-5));

    for (stride, padding, kernel, side) in [(1, 1, 3, 6), (2, 1, 3, 7), (1, 0, 1, 5)] {
        let w = Tensor::<TestBackend, 4>::random(
            [4, 3, kernel, kernel],
            Distribution::Default,
            &device,
        )
        .cast(DType::F16);
        let w32 = w.clone().cast(DType::F32);
        let x =
            Tensor::<TestBackend, 4>::random([2, 3, side, side], Distribution::Default, &device);
        let options = burn::tensor::ops::ConvOptions::new([stride; 2], [padding; 2], [1, 1], 1);
        let bias = Tensor::<TestBackend, 1>::random([4], Distribution::Default, &device);
        let grad_of = |weight: Tensor<TestBackend, 4>| {
            let x = Tensor::<TestAutodiff, 4>::from_inner(x.clone()).require_grad();
            let w = Tensor::<TestAutodiff, 4>::from_inner(weight);
            let b = Tensor::<TestAutodiff, 1>::from_inner(bias.clone());
            let y = frozen_conv2d(x.clone(), w, Some(b), options.clone());
            let out = y.clone().into_data();
            let grads = (y.clone() * y).sum().backward();
            (out, x.grad(&grads).unwrap().into_data())
        };
        let (out32, grad32) = grad_of(w32);
        let (out16, grad16) = grad_of(w);
        out16.assert_approx_eq::<f32>(&out32, burn::tensor::Tolerance::absolute(1e-5));
        grad16.assert_approx_eq::<f32>(&grad32, burn::tensor::Tolerance::absolute(1e-4));
    }
}

/// Casting stores the linear and convolution weights in half and leaves the
/// adapters, norms and biases in f32: the model's base shrinks to about
/// half.
#[test]
fn casting_halves_the_base_and_keeps_the_adapters_in_f32() {
    let device = Default::default();
    let config = super::config::NetworkSection {
        conv_rank: 2,
        ..Default::default()
    };
    let model = LoraModel::<TestAutodiff>::init(Architecture::Sd15Toy, &config, &device);
    let f32_bytes = super::bench::base_parameter_bytes(&model);
    let model = cast_base_weights(model, BasePrecision::Bf16);
    let half_bytes = super::bench::base_parameter_bytes(&model);
    assert!(
        half_bytes < f32_bytes * 6 / 10,
        "{half_bytes} bytes in bf16 against {f32_bytes} in f32"
    );
    let unet = &model.unet;
    let block = &unet.down_blocks[0].attentions[0].transformer_blocks[0];
    assert_eq!(block.attn1.to_q.weight.val().dtype(), DType::BF16);
    let lora = block.attn1.to_q.lora.as_ref().unwrap();
    assert_eq!(lora.down.val().dtype(), DType::F32);
    assert!(lora.down.is_require_grad());
    assert_eq!(block.norm1.weight.val().dtype(), DType::F32);
}

/// Loading straight into bf16 gives, tensor for tensor, what loading in
/// f32 and casting after gives (the f32 model just never exists), for the
/// SDXL toy's three components too.
#[test]
fn loading_in_half_precision_equals_loading_then_casting() {
    let dir = tempfile::tempdir().unwrap();
    let device = Default::default();
    for arch in [Architecture::Sd15Toy, Architecture::SdxlToy] {
        let path = dir.path().join(format!("{}.safetensors", arch.name()));
        write_random_checkpoint(arch, Layout::Ldm, "f32", &path, 5).unwrap();
        let components = super::model::model_components(arch);
        let file = Checkpoint::open(&path, &components).unwrap();
        let network = super::config::NetworkSection::default();
        let (cast, _) = LoraModel::<TestBackend>::init(arch, &network, &device)
            .load_base(&file, arch, &device, &mut |_, _| {})
            .unwrap();
        let cast = cast_base_weights(cast, BasePrecision::Bf16);
        let (direct, _) = LoraModel::<TestBackend>::init(arch, &network, &device)
            .load_base_in(&file, arch, BasePrecision::Bf16, &device, &mut |_, _| {})
            .unwrap();
        // the base weights (the adapters are fresh random ones in each)
        let base = |m: &LoraModel<TestBackend>| {
            named_tensors(m)
                .into_iter()
                .filter(|(name, _, _)| !name.contains(".lora."))
                .collect::<Vec<_>>()
        };
        let (a, b) = (base(&cast), base(&direct));
        assert_eq!(a.len(), b.len());
        let mut halves = 0;
        for ((name, x, _), (_, y, _)) in a.into_iter().zip(b) {
            assert_eq!(x.dtype, y.dtype, "{name}");
            halves += usize::from(y.dtype == DType::BF16);
            assert_eq!(x.to_vec::<f32>().ok(), y.to_vec::<f32>().ok(), "{name}");
            assert_eq!(x.as_bytes(), y.as_bytes(), "{name}");
        }
        assert!(halves > 100, "{arch:?}: {halves} tensors in bf16");
    }
}

#[test]
fn the_config_takes_a_base_precision_and_refuses_others() {
    let dir = Path::new("unused");
    let text = |base: &str| {
        format!(
            "[model]\ncheckpoint = \"c\"\n[training]\nbase_precision = \"{base}\"\n[data]\nlatents = \"l\"\n[output]\ndir = \"{}\"\nname = \"n\"\n",
            dir.display()
        )
    };
    for (name, expected) in [
        ("f32", BasePrecision::F32),
        ("bf16", BasePrecision::Bf16),
        ("f16", BasePrecision::F16),
    ] {
        let config = EngineConfig::parse(&text(name)).unwrap();
        assert_eq!(config.training.base_precision, expected);
    }
    let err = EngineConfig::parse(&text("fp8")).unwrap_err();
    assert!(err.contains("fp8") && err.contains("bf16"), "{err}");
    let default =
        EngineConfig::parse(&text("f32").replace("base_precision = \"f32\"\n", "")).unwrap();
    assert_eq!(default.training.base_precision, BasePrecision::F32);
}

/// `engine train` with `base_precision = "bf16"` trains on bf16 base
/// weights and says so in the LoRA's metadata as kohya does.
#[test]
fn train_holds_the_base_in_the_configured_precision() {
    let dir = tempfile::tempdir().unwrap();
    let checkpoint = toy_checkpoint(dir.path());
    let text = format!(
        "[model]\ncheckpoint = \"{}\"\narchitecture = \"sd15_toy\"\n[network]\nrank = 2\nalpha = 1.0\n[training]\nepochs = 0\nmax_steps = 1\nbatch_size = 2\nbase_precision = \"bf16\"\n[data]\nlatents = \"{}\"\n[output]\ndir = \"{}\"\nname = \"half\"\n",
        checkpoint.display(),
        dir.path().join("latents.safetensors").display(),
        dir.path().join("out").display()
    );
    let config = EngineConfig::parse(&text).unwrap();
    let device = Default::default();
    let file = Checkpoint::open(&checkpoint, &[Component::Unet, Component::TextEncoder]).unwrap();
    let model = LoraModel::<TestAutodiff>::init(Architecture::Sd15Toy, &config.network, &device);
    let (model, _) = model
        .load_base(&file, Architecture::Sd15Toy, &device, &mut |_, _| {})
        .unwrap();
    let (trained, outcome) =
        train(&config, model, &dataset(), None, &device, true, &mut |_| {}).unwrap();
    assert_eq!(outcome.steps, 1);
    assert!(outcome.losses[0].is_finite());
    let block = &trained.unet.down_blocks[0].attentions[0].transformer_blocks[0];
    assert_eq!(block.ff.net.2.weight.val().dtype(), DType::BF16);
    let saved = super::safetensors_file::SafetensorsFile::open(&config.output_path()).unwrap();
    assert_eq!(
        saved.metadata.get("ss_mixed_precision").map(String::as_str),
        Some("bf16")
    );
}

/// Both levers together run a training step on every architecture the
/// config names at toy size (SDXL's second text encoder, its projection and
/// size conditioning included).
#[test]
fn half_weights_with_checkpointing_step_every_toy_architecture() {
    for arch in [
        Architecture::Tiny,
        Architecture::Sd15Toy,
        Architecture::SdxlToy,
    ] {
        let spec = super::bench::BenchSpec {
            arch,
            batch: 2,
            rank: 2,
            latent_size: 8,
            warmup_steps: 0,
            steps: 2,
            base_precision: BasePrecision::Bf16,
            checkpointing: true,
        };
        let result = super::bench::run_benchmark::<Autodiff<CpuBackend, BalancedCheckpointing>>(
            &spec,
            &Default::default(),
        );
        assert_eq!(result.step_times.len(), 2, "{arch:?}");
        assert!(result.trainable_params > 0, "{arch:?}");
    }
}
