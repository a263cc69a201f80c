//! The tiny models checked against diffusers and transformers: on the same
//! weights and inputs, our UNet, CLIP text encoder and VAE encoder must give
//! the outputs the PyTorch libraries give. Those outputs are committed in
//! `fixtures/engine-reference/*.json`, made by `scripts/engine_reference.py`,
//! whose header says how to regenerate them; this test needs no Python.
//!
//! Weights and inputs are not stored anywhere: [`uniform`] makes them from a
//! fixed generator seeded by each tensor's name, so the test rebuilds them
//! in memory, and the ignored [`write_reference_inputs`] writes the very same
//! ones (as a diffusers folder plus `inputs.safetensors` and `configs.json`)
//! for the script to read. The test loads them through [`Checkpoint`] from
//! a diffusers folder it writes, so key names and the linear transposes are
//! checked along the way.
//!
//! Tolerance: `|ours − reference| ≤ 1e-4 · max(1, |reference|)` per value.
//! Both sides compute in float32 and differ only in summation order and in
//! the last bit of `exp`/`erf`/`sin`; on these models that leaves about 1e-6
//! (the measured figures are in `MEASURED` below). Every bug this check found
//! moved outputs by 1e-2 or more, so 1e-4 leaves a wide margin on both sides
//! while still catching a wrong constant that shifts outputs by 0.01%.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::tensor::{Int, Tensor, TensorData};
use serde_json::{Value, json};

use super::TestBackend;
use super::clip::{ClipConfig, ClipTextModel};
use super::lora::LoraSpec;
use super::train::SplitMix64;
use super::unet::{LoraTargets, UNet2DConditionModel, UNetConfig};
use super::vae::{AutoencoderKlEncoder, VaeConfig};
use super::weights::{Checkpoint, Component, load_component, named_tensors};

/// See the module docs for why this number.
const TOLERANCE: f32 = 1e-4;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/engine-reference")
}

/// FNV-1a of a tensor's name: the seed of its values.
fn seed_of(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// `n` values uniform in [-1, 1) from the stream named `name`; each is a
/// multiple of 2⁻²³, so float32 holds it exactly.
fn uniform(name: &str, n: usize) -> Vec<f32> {
    let mut rng = SplitMix64::new(seed_of(name));
    (0..n)
        .map(|_| (rng.next_u64() >> 40) as f32 / (1u64 << 23) as f32 - 1.0)
        .collect()
}

/// The value of one checkpoint tensor, in PyTorch's layout. Weights are
/// uniform in ±√(3 / fan_in), which keeps activations near unit variance
/// through every layer, so each path (timestep, context, skip) visibly moves
/// the output; norms get weights near 1 and biases near 0, not exactly, so a
/// swapped or ignored affine shows.
fn reference_tensor(key: &str, shape: &[usize], parent: &str) -> Vec<f32> {
    let n = shape.iter().product();
    let is_bias = key.ends_with(".bias");
    let (scale, offset) = match parent {
        "Struct:GroupNorm" | "Struct:LayerNorm" if is_bias => (0.2, 0.0),
        "Struct:GroupNorm" | "Struct:LayerNorm" => (0.2, 1.0),
        "Struct:Embedding" => (1.0, 0.0),
        _ if is_bias => (0.1, 0.0),
        _ => {
            let fan_in: usize = shape.iter().skip(1).product();
            ((3.0 / fan_in.max(1) as f32).sqrt(), 0.0)
        }
    };
    uniform(key, n)
        .into_iter()
        .map(|u| u * scale + offset)
        .collect()
}

/// Every base parameter of `module` as (key, PyTorch shape, values).
fn reference_weights<M: burn::module::Module<TestBackend>>(
    module: &M,
) -> BTreeMap<String, (Vec<usize>, Vec<f32>)> {
    named_tensors(module)
        .into_iter()
        .filter(|(key, _, _)| !key.contains(".lora."))
        .map(|(key, data, parent)| {
            let mut shape = data.shape.to_vec();
            if parent == "Struct:Linear" && shape.len() == 2 {
                shape.reverse(); // burn [in, out] → PyTorch [out, in]
            }
            let values = reference_tensor(&key, &shape, &parent);
            (key, (shape, values))
        })
        .collect()
}

/// A tensor to write: its dtype, shape and little-endian bytes.
type Raw = (safetensors::Dtype, Vec<usize>, Vec<u8>);

fn f32_raw(shape: &[usize], values: &[f32]) -> Raw {
    let bytes = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    (safetensors::Dtype::F32, shape.to_vec(), bytes)
}

fn write_safetensors(path: &Path, tensors: &BTreeMap<String, Raw>) {
    let views: Vec<_> = tensors
        .iter()
        .map(|(k, (dtype, shape, bytes))| {
            let view = safetensors::tensor::TensorView::new(*dtype, shape.clone(), bytes).unwrap();
            (k.clone(), view)
        })
        .collect();
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, safetensors::serialize(views, None).unwrap()).unwrap();
}

/// Writes the three tiny models' weights as a diffusers folder.
fn write_diffusers_folder(dir: &Path) {
    let device = Default::default();
    let unet = UNet2DConditionModel::<TestBackend>::init(
        &UNetConfig::tiny(),
        &LoraTargets::default(),
        &device,
    );
    let clip = ClipTextModel::<TestBackend>::init(&ClipConfig::tiny(), None, &device);
    let vae = AutoencoderKlEncoder::<TestBackend>::init(&VaeConfig::tiny(), &device);
    for (weights, file) in [
        (
            reference_weights(&unet),
            "unet/diffusion_pytorch_model.safetensors",
        ),
        (reference_weights(&clip), "text_encoder/model.safetensors"),
        (
            reference_weights(&vae),
            "vae/diffusion_pytorch_model.safetensors",
        ),
    ] {
        let raw = weights
            .iter()
            .map(|(k, (shape, values))| (k.clone(), f32_raw(shape, values)))
            .collect();
        write_safetensors(&dir.join(file), &raw);
    }
}

/// The inputs every model is run on. The latents and images are not square,
/// so a swapped height and width cannot hide; the two batch items have
/// different timesteps, contexts and token ids.
struct Inputs {
    latents: (Vec<usize>, Vec<f32>),
    timesteps: Vec<f32>,
    context: (Vec<usize>, Vec<f32>),
    input_ids: (Vec<usize>, Vec<i64>),
    images: (Vec<usize>, Vec<f32>),
}

impl Inputs {
    fn new() -> Self {
        let unet = UNetConfig::tiny();
        let clip = ClipConfig::tiny();
        let vae = VaeConfig::tiny();
        let latents = vec![2, unet.in_channels, 8, 12];
        let context = vec![2, 6, unet.cross_attention_dim];
        let ids = vec![2, clip.max_position_embeddings];
        let images = vec![2, vae.in_channels, 16, 24];
        let count = |shape: &[usize]| shape.iter().product::<usize>();
        let mut rng = SplitMix64::new(seed_of("clip.input_ids"));
        Self {
            latents: (
                latents.clone(),
                uniform("unet.latents", count(&latents))
                    .into_iter()
                    .map(|u| u * 1.5)
                    .collect(),
            ),
            timesteps: vec![37.0, 801.0],
            context: (context.clone(), uniform("unet.context", count(&context))),
            input_ids: (
                ids.clone(),
                (0..count(&ids))
                    .map(|_| rng.below(clip.vocab_size) as i64)
                    .collect(),
            ),
            images: (images.clone(), uniform("vae.images", count(&images))),
        }
    }

    fn write(&self, path: &Path) {
        let mut raw = BTreeMap::new();
        raw.insert("unet.latents".into(), f32_raw(&self.latents.0, &self.latents.1));
        raw.insert(
            "unet.timesteps".into(),
            f32_raw(&[self.timesteps.len()], &self.timesteps),
        );
        raw.insert("unet.context".into(), f32_raw(&self.context.0, &self.context.1));
        raw.insert(
            "clip.input_ids".into(),
            (
                safetensors::Dtype::I64,
                self.input_ids.0.clone(),
                self.input_ids
                    .1
                    .iter()
                    .flat_map(|v| v.to_le_bytes())
                    .collect(),
            ),
        );
        raw.insert("vae.images".into(), f32_raw(&self.images.0, &self.images.1));
        write_safetensors(path, &raw);
    }
}

fn float_tensor<const D: usize>((shape, values): &(Vec<usize>, Vec<f32>)) -> Tensor<TestBackend, D> {
    Tensor::from_data(
        TensorData::new(values.clone(), shape.clone()),
        &Default::default(),
    )
}

/// The tiny configs in the words the Python script builds its models from.
fn configs_json() -> Value {
    let (u, c, v) = (UNetConfig::tiny(), ClipConfig::tiny(), VaeConfig::tiny());
    json!({
        "unet": {
            "in_channels": u.in_channels,
            "out_channels": u.out_channels,
            "block_out_channels": u.block_out_channels,
            "down_block_attention": u.down_block_attention,
            "layers_per_block": u.layers_per_block,
            "heads": u.heads,
            "cross_attention_dim": u.cross_attention_dim,
            "norm_num_groups": u.norm_num_groups,
            "norm_eps": u.norm_eps,
            "transformer_depth": u.transformer_depth,
        },
        "clip": {
            "vocab_size": c.vocab_size,
            "max_position_embeddings": c.max_position_embeddings,
            "hidden_size": c.hidden_size,
            "intermediate_size": c.intermediate_size,
            "num_hidden_layers": c.num_hidden_layers,
            "num_attention_heads": c.num_attention_heads,
            "layer_norm_eps": c.layer_norm_eps,
        },
        "vae": {
            "in_channels": v.in_channels,
            "latent_channels": v.latent_channels,
            "block_out_channels": v.block_out_channels,
            "layers_per_block": v.layers_per_block,
            "norm_num_groups": v.norm_num_groups,
            "scaling_factor": v.scaling_factor,
        },
    })
}

/// Step 1 of regenerating the fixtures (see `scripts/engine_reference.py`):
/// writes the weights, inputs and configs to `$ENGINE_REFERENCE_DIR`
/// (default: `engine-reference` in the system temp folder).
#[test]
#[ignore = "writes the inputs of scripts/engine_reference.py; run by hand"]
fn write_reference_inputs() {
    let dir = std::env::var_os("ENGINE_REFERENCE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("engine-reference"));
    write_diffusers_folder(&dir);
    Inputs::new().write(&dir.join("inputs.safetensors"));
    let configs = serde_json::to_string_pretty(&configs_json()).unwrap();
    std::fs::write(dir.join("configs.json"), configs).unwrap();
    eprintln!("wrote the reference inputs to {}", dir.display());
}

/// One output of a fixture file.
struct Expected {
    shape: Vec<usize>,
    values: Vec<f32>,
}

fn expected(file: &str, output: &str) -> Expected {
    let path = fixtures().join(file);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let doc: Value = serde_json::from_str(&text).unwrap();
    let out = &doc["outputs"][output];
    let numbers = |v: &Value| -> Vec<f64> {
        v.as_array()
            .unwrap_or_else(|| panic!("{file}: `{output}` has no numbers"))
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect()
    };
    Expected {
        shape: numbers(&out["shape"]).into_iter().map(|x| x as usize).collect(),
        values: numbers(&out["values"]).into_iter().map(|x| x as f32).collect(),
    }
}

/// Asserts `ours` matches the fixture within [`TOLERANCE`] and returns the
/// largest absolute difference.
fn assert_matches<const D: usize>(
    what: &str,
    ours: Tensor<TestBackend, D>,
    file: &str,
    output: &str,
) -> f32 {
    let reference = expected(file, output);
    assert_eq!(ours.dims().to_vec(), reference.shape, "{what}: shape");
    let ours = ours.into_data().to_vec::<f32>().unwrap();
    let mut worst = (0.0f32, 0usize);
    for (i, (a, b)) in ours.iter().zip(&reference.values).enumerate() {
        let diff = (a - b).abs();
        assert!(
            diff <= TOLERANCE * b.abs().max(1.0),
            "{what} differs from the reference at flat index {i}: ours {a}, reference {b} \
             (tolerance {TOLERANCE} × max(1, |reference|))"
        );
        if diff > worst.0 {
            worst = (diff, i);
        }
    }
    eprintln!(
        "{what}: max |ours − reference| = {:.2e} (at index {})",
        worst.0, worst.1
    );
    worst.0
}

/// A diffusers folder with the reference weights, opened for loading.
fn reference_checkpoint(dir: &Path) -> Checkpoint {
    write_diffusers_folder(dir);
    let all = [Component::Unet, Component::TextEncoder, Component::Vae];
    Checkpoint::open(dir, &all).unwrap()
}

fn load<M: burn::module::Module<TestBackend>>(
    module: M,
    checkpoint: &Checkpoint,
    component: Component,
) -> M {
    let weights = checkpoint
        .component(component, &UNetConfig::tiny(), &VaeConfig::tiny())
        .unwrap();
    let (module, report) = load_component(module, &weights, &Default::default());
    assert!(report.is_complete(), "{}", report.summary());
    module
}

#[test]
fn unet_output_matches_diffusers() {
    let dir = tempfile::tempdir().unwrap();
    let checkpoint = reference_checkpoint(dir.path());
    let inputs = Inputs::new();
    let device = Default::default();
    let spec = LoraSpec {
        rank: 2,
        alpha: 1.0,
        dropout: 0.0,
    };
    // Plain, and with fresh adapters on every layer kohya trains (their `up`
    // starts at zero, so they must not change the output at all).
    for (what, targets) in [
        ("UNet", LoraTargets::default()),
        (
            "UNet with fresh LoRA",
            LoraTargets {
                linear: Some(spec),
                conv3x3: Some(spec),
            },
        ),
    ] {
        let unet = UNet2DConditionModel::<TestBackend>::init(&UNetConfig::tiny(), &targets, &device);
        let unet = load(unet, &checkpoint, Component::Unet);
        let out = unet.forward(
            float_tensor(&inputs.latents),
            Tensor::from_data(TensorData::from(inputs.timesteps.as_slice()), &device),
            float_tensor(&inputs.context),
        );
        assert_matches(what, out, "unet.json", "sample");
    }
}

#[test]
fn clip_hidden_states_match_transformers() {
    let dir = tempfile::tempdir().unwrap();
    let checkpoint = reference_checkpoint(dir.path());
    let inputs = Inputs::new();
    let device = Default::default();
    let clip = ClipTextModel::<TestBackend>::init(&ClipConfig::tiny(), None, &device);
    let clip = load(clip, &checkpoint, Component::TextEncoder);
    let ids = || {
        Tensor::<TestBackend, 2, Int>::from_data(
            TensorData::new(inputs.input_ids.1.clone(), inputs.input_ids.0.clone()),
            &device,
        )
    };
    assert_matches(
        "CLIP last hidden state",
        clip.forward(ids(), 1),
        "clip.json",
        "last_hidden_state",
    );
    assert_matches(
        "CLIP clip_skip 2",
        clip.forward(ids(), 2),
        "clip.json",
        "clip_skip_2",
    );
}

#[test]
fn vae_moments_match_diffusers() {
    let dir = tempfile::tempdir().unwrap();
    let checkpoint = reference_checkpoint(dir.path());
    let inputs = Inputs::new();
    let vae = AutoencoderKlEncoder::<TestBackend>::init(&VaeConfig::tiny(), &Default::default());
    let vae = load(vae, &checkpoint, Component::Vae);
    let (mean, logvar) = vae.encode_moments(float_tensor(&inputs.images));
    assert_matches("VAE latent mean", mean, "vae.json", "mean");
    assert_matches("VAE latent logvar", logvar, "vae.json", "logvar");
}
