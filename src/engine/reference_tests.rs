//! Our SD1.5 models checked against diffusers and transformers: on the same
//! weights and inputs, our UNet, CLIP text encoder and VAE encoder must give
//! the outputs the PyTorch libraries give. Those outputs are committed in
//! `fixtures/engine-reference/<variant>.json`, made by
//! `scripts/engine_reference.py`, whose header says how to regenerate them;
//! this test needs no Python.
//!
//! Weights and inputs are stored nowhere: [`uniform`] makes them from a fixed
//! generator seeded by each tensor's name, so the test rebuilds them in
//! memory, and the ignored [`write_reference_inputs`] writes the very same
//! ones (a diffusers folder plus `inputs.safetensors` and `configs.json` per
//! variant) for the script to read. The test loads them through
//! [`Checkpoint`] from a diffusers folder it writes, so key names and the
//! linear transposes are checked along the way.
//!
//! Four variants (see [`variants`]): `tiny` (the tiny configs the other
//! tests use, activations O(1)), `tiny-small-activations` (the same models
//! with every residual stream near 1e-3, so the norms' `eps` matter),
//! `sd15-shaped` (SD1.5's block layout at toy widths: four stages, two
//! resnets each, attention in three), and `sdxl-shaped` (SDXL's at toy
//! widths: three stages, 2- and 3-block transformers with linear
//! projections, the size and pooled-text conditioning, and both text
//! encoders, the second with exact GELU and its projection). For
//! `sdxl-shaped` the UNet and both encoders are also loaded from the
//! single file (the second encoder in OpenCLIP's fused layout) and must
//! give the same outputs.
//!
//! The script also converts the same weights, written as an ldm single file
//! by our rename tables run backwards, with diffusers' own converters and
//! requires the diffusers weights back; for `sd15-shaped`, whose keys are
//! SD1.5's, the fixture keeps the key pairs, and
//! [`ldm_keys_rename_as_diffusers_converts_them`] holds `ldm.rs` to them.
//!
//! Tolerance: `|ours − reference| ≤ 1e-4 · max(rms(reference), |reference|)`
//! per value, the rms taken over the whole output. Both sides compute in
//! float32 and differ only in summation order and the last bit of
//! `exp`/`erf`/`sin`: measured, the worst value is off by 5.5e-6 of the
//! bound's scale (UNet, sd15-shaped; VAE 3.2e-6, CLIP 7.5e-7); the SDXL
//! UNet, with its ten more transformer blocks, by 1.4e-5, and OpenCLIP's
//! hidden states and pooled embedding by 6e-7. Fifteen
//! planted bugs put their worst value off by 6e-4 (the UNet's GEGLU with
//! tanh-approximated GELU) or 1e-3 (a resnet GroupNorm `eps` ten times too
//! big) up to 3 (CLIP without its causal mask), so 1e-4 sits ~18× above the
//! noise and ~6× below the subtlest bug tried. It scales with the rms, not
//! with 1, because outputs are O(0.1–1): a fixed 1e-4 would be loose for
//! the small ones.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use burn::tensor::{Int, Tensor, TensorData};
use serde_json::{Value, json};

use super::TestBackend;
use super::clip::{ClipConfig, ClipTextModel};
use super::ldm;
use super::lora::LoraSpec;
use super::rng::SplitMix64;
use super::test_files::{f32_raw, write_safetensors};
use super::tests::to_ldm;
use super::unet::{AddedCond, LoraTargets, UNet2DConditionModel, UNetConfig};
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
/// the output; norms get weights near 1 and biases near 0, not exactly, so
/// a swapped or ignored affine shows. `scale` multiplies the layers that
/// [`writes_a_stream`] names (see [`Variant::activation_scale`]).
fn reference_tensor(key: &str, shape: &[usize], parent: &str, scale: f32) -> Vec<f32> {
    let n = shape.iter().product();
    let is_bias = key.ends_with(".bias");
    let scale = if writes_a_stream(key) { scale } else { 1.0 };
    let (scale, offset) = match parent {
        "Struct:GroupNorm" | "Struct:LayerNorm" if is_bias => (0.2, 0.0),
        "Struct:GroupNorm" | "Struct:LayerNorm" => (0.2, 1.0),
        "Struct:Embedding" => (scale, 0.0),
        _ if is_bias => (0.1 * scale, 0.0),
        _ => {
            let fan_in: usize = shape.iter().skip(1).product();
            ((3.0 / fan_in.max(1) as f32).sqrt() * scale, 0.0)
        }
    };
    uniform(key, n)
        .into_iter()
        .map(|u| u * scale + offset)
        .collect()
}

/// The layers whose output goes straight into a residual stream or a norm
/// when their input is normalised: the embeddings and input convs that start
/// a stream, a resnet's convs and timestep projection, a transformer's
/// `proj_in`, attention's value projection and an MLP's output projection.
/// Scaled by `s`, they put every stream, and so every norm's input, at ~`s`.
/// The other layers keep scale 1: queries and keys (so attention patterns
/// stay sharp), the MLP insides, the layers that read a stream already at
/// ~`s` (attention outputs, `proj_out`, shortcuts, down- and upsamplers),
/// the timestep MLP, and the output convs after the last norm (so the output
/// stays O(1)).
fn writes_a_stream(key: &str) -> bool {
    const LAYERS: [&str; 11] = [
        "conv_in",
        "conv1",
        "conv2",
        "time_emb_proj",
        "proj_in",
        "to_v",
        "v_proj",
        "fc2",
        "net.2",
        "token_embedding",
        "position_embedding",
    ];
    let layer = key.rsplit_once('.').map_or(key, |(layer, _)| layer);
    LAYERS
        .iter()
        .any(|l| layer == *l || layer.ends_with(&format!(".{l}")))
}

/// Every base parameter of `module` as (key, PyTorch shape, values).
fn reference_weights<M: burn::module::Module<TestBackend>>(
    module: &M,
    scale: f32,
) -> BTreeMap<String, (Vec<usize>, Vec<f32>)> {
    named_tensors(module)
        .into_iter()
        .filter(|(key, _, _)| !key.contains(".lora."))
        .map(|(key, data, parent)| {
            let mut shape = data.shape.to_vec();
            if parent == "Struct:Linear" && shape.len() == 2 {
                shape.reverse(); // burn [in, out] → PyTorch [out, in]
            }
            let values = reference_tensor(&key, &shape, &parent, scale);
            (key, (shape, values))
        })
        .collect()
}

/// One set of models, weights and inputs the fixtures hold outputs for.
struct Variant {
    /// The fixture file's stem and the folder the inputs are written to.
    name: &'static str,
    unet: Option<UNetConfig>,
    clip: Option<ClipConfig>,
    /// SDXL's second text encoder.
    clip2: Option<ClipConfig>,
    vae: Option<VaeConfig>,
    /// 1, or 2⁻¹⁰ to run every residual stream at activations near 1e-3
    /// (see [`writes_a_stream`]; a power of two, so those weights are the
    /// unit ones scaled exactly). Then every norm's input variance is near
    /// 1e-6, the size of the norms' `eps`, and a wrong `eps` moves the
    /// output by far more than the tolerance; at scale 1 it would move it by
    /// ~1e-6 and hide.
    activation_scale: f32,
    /// Whether the fixture keeps the ldm ↔ diffusers key pairs diffusers'
    /// converters make (for `sd15-shaped`, whose keys are SD1.5's).
    record_ldm_key_map: bool,
    /// `[batch, c, h, w]` of the UNet's latents and of the VAE's images.
    latents: [usize; 4],
    images: [usize; 4],
}

/// SD1.5's block layout at toy widths (the `sd15_toy` architecture).
fn unet_sd15_shaped() -> UNetConfig {
    UNetConfig::sd15_toy()
}

/// The SD1.5 VAE encoder's layout at toy widths.
fn vae_sd15_shaped() -> VaeConfig {
    VaeConfig::sd15_toy()
}

fn variants() -> Vec<Variant> {
    let tiny = |name, activation_scale| Variant {
        name,
        unet: Some(UNetConfig::tiny()),
        clip: Some(ClipConfig::tiny()),
        clip2: None,
        vae: Some(VaeConfig::tiny()),
        activation_scale,
        record_ldm_key_map: false,
        latents: [2, 4, 8, 12],
        images: [2, 3, 8, 16],
    };
    vec![
        tiny("tiny", 1.0),
        tiny("tiny-small-activations", 1.0 / 1024.0),
        Variant {
            name: "sd15-shaped",
            unet: Some(unet_sd15_shaped()),
            clip: None,
            clip2: None,
            vae: Some(vae_sd15_shaped()),
            activation_scale: 1.0,
            record_ldm_key_map: true,
            latents: [2, 4, 8, 8],
            images: [1, 3, 32, 48],
        },
        Variant {
            name: "sdxl-shaped",
            unet: Some(UNetConfig::sdxl_toy()),
            clip: Some(ClipConfig::tiny()),
            clip2: Some(ClipConfig::tiny_bigg()),
            vae: None,
            activation_scale: 1.0,
            record_ldm_key_map: true,
            latents: [2, 4, 8, 12],
            images: [1, 3, 8, 8],
        },
    ]
}

impl Variant {
    fn unet(&self, lora: &LoraTargets) -> Option<UNet2DConditionModel<TestBackend>> {
        let config = self.unet.as_ref()?;
        config.validate().unwrap();
        Some(UNet2DConditionModel::init(
            config,
            lora,
            &Default::default(),
        ))
    }

    fn clip(&self) -> Option<ClipTextModel<TestBackend>> {
        let config = self.clip.as_ref()?;
        Some(ClipTextModel::init(config, None, &Default::default()))
    }

    fn clip2(&self) -> Option<ClipTextModel<TestBackend>> {
        let config = self.clip2.as_ref()?;
        Some(ClipTextModel::init(config, None, &Default::default()))
    }

    fn vae(&self) -> Option<AutoencoderKlEncoder<TestBackend>> {
        let config = self.vae.as_ref()?;
        Some(AutoencoderKlEncoder::init(config, &Default::default()))
    }

    /// Writes this variant's weights as a diffusers folder.
    fn write_weights(&self, dir: &Path) {
        let s = self.activation_scale;
        let unet = self.unet(&LoraTargets::default());
        let files = [
            (
                unet.map(|m| reference_weights(&m, s)),
                "unet/diffusion_pytorch_model.safetensors",
            ),
            (
                self.clip().map(|m| reference_weights(&m, s)),
                "text_encoder/model.safetensors",
            ),
            (
                self.clip2().map(|m| reference_weights(&m, s)),
                "text_encoder_2/model.safetensors",
            ),
            (
                self.vae().map(|m| reference_weights(&m, s)),
                "vae/diffusion_pytorch_model.safetensors",
            ),
        ];
        for (weights, file) in files {
            if let Some(weights) = weights {
                let raw = weights
                    .iter()
                    .map(|(k, (shape, values))| (k.clone(), f32_raw(shape, values)))
                    .collect();
                write_safetensors(&dir.join(file), &raw);
            }
        }
    }

    /// The same weights as one ldm-layout file (`model.diffusion_model.*`,
    /// `first_stage_model.*`, `cond_stage_model.transformer.*`), named by
    /// running our ldm rename tables backwards. The script converts it with
    /// diffusers' own single-file converters and requires the diffusers
    /// weights back, which checks our tables against diffusers'.
    fn write_ldm(&self, path: &Path) {
        let s = self.activation_scale;
        let mut raw = BTreeMap::new();
        if let (Some(config), Some(unet)) = (&self.unet, self.unet(&LoraTargets::default())) {
            let table = ldm::unet_table(config);
            for (k, (shape, values)) in reference_weights(&unet, s) {
                let key = format!("{}{}", ldm::UNET_PREFIX, to_ldm(&k, &table));
                raw.insert(key, f32_raw(&shape, &values));
            }
        }
        if let (Some(config), Some(vae)) = (&self.vae, self.vae()) {
            let table = ldm::vae_table(config);
            for (k, (mut shape, values)) in reference_weights(&vae, s) {
                if k.contains("mid_block.attentions") && shape.len() == 2 {
                    shape.extend([1, 1]); // ldm's VAE attention is 1×1 convs
                }
                let key = format!("{}{}", ldm::VAE_PREFIX, to_ldm(&k, &table));
                raw.insert(key, f32_raw(&shape, &values));
            }
        }
        let clip_prefix = if self.clip2.is_some() {
            ldm::SDXL_CLIP_PREFIX
        } else {
            ldm::CLIP_PREFIX
        };
        if let Some(clip) = self.clip() {
            for (k, (shape, values)) in reference_weights(&clip, s) {
                raw.insert(format!("{clip_prefix}{k}"), f32_raw(&shape, &values));
            }
        }
        if let Some(clip2) = self.clip2() {
            // OpenCLIP's layout: q, k and v stacked in one tensor, the
            // projection transposed
            type Part = (usize, Vec<usize>, Vec<f32>);
            let mut fused: BTreeMap<String, Vec<Part>> = BTreeMap::new();
            for (k, (shape, values)) in reference_weights(&clip2, s) {
                let (key, part) = ldm::to_open_clip(&k).unwrap();
                fused
                    .entry(key)
                    .or_default()
                    .push((part.unwrap_or(0), shape, values));
            }
            for (key, mut parts) in fused {
                parts.sort_by_key(|(i, _, _)| *i);
                let (mut shape, mut values) = (parts[0].1.clone(), Vec::new());
                shape[0] *= parts.len();
                for (_, _, v) in &parts {
                    values.extend_from_slice(v);
                }
                if key == "text_projection" {
                    let (r, c) = (shape[0], shape[1]);
                    values = super::weights::transposed(&values, r, c);
                    shape = vec![c, r];
                }
                raw.insert(
                    format!("{}{key}", ldm::OPEN_CLIP_PREFIX),
                    f32_raw(&shape, &values),
                );
            }
        }
        write_safetensors(path, &raw);
    }

    /// The components this variant has, as a diffusers folder in `dir`.
    fn checkpoint(&self, dir: &Path) -> Checkpoint {
        self.write_weights(dir);
        let components: Vec<Component> = [
            (self.unet.is_some(), Component::Unet),
            (self.clip.is_some(), Component::TextEncoder),
            (self.clip2.is_some(), Component::TextEncoder2),
            (self.vae.is_some(), Component::Vae),
        ]
        .into_iter()
        .filter_map(|(has, c)| has.then_some(c))
        .collect();
        Checkpoint::open(dir, &components).unwrap()
    }

    fn inputs(&self) -> Inputs {
        let count = |shape: &[usize]| shape.iter().product::<usize>();
        let context_dim = self.unet.as_ref().map_or(1, |u| u.cross_attention_dim);
        let context = vec![self.latents[0], 6, context_dim];
        let (ids, vocab) = match &self.clip {
            Some(c) => (vec![2, c.max_position_embeddings], c.vocab_size),
            None => (vec![0, 0], 1),
        };
        let mut rng = SplitMix64::new(seed_of("clip.input_ids"));
        let batch = self.latents[0];
        let pooled = self
            .unet
            .as_ref()
            .and_then(|u| u.addition)
            .map_or(0, |a| a.pooled_dim);
        // original sizes, crops and targets as kohya would give them
        let time_ids: Vec<f32> = (0..batch)
            .flat_map(|i| {
                let i = i as f32;
                [
                    1024.0 + 64.0 * i,
                    768.0 - 32.0 * i,
                    12.0 * i,
                    40.0,
                    896.0,
                    640.0 + 128.0 * i,
                ]
            })
            .collect();
        Inputs {
            latents: (
                self.latents.to_vec(),
                uniform("unet.latents", count(&self.latents))
                    .into_iter()
                    .map(|u| u * 1.5)
                    .collect(),
            ),
            timesteps: [37.0, 801.0, 500.0, 999.0]
                .into_iter()
                .cycle()
                .take(self.latents[0])
                .collect(),
            context: (context.clone(), uniform("unet.context", count(&context))),
            input_ids: (
                ids.clone(),
                (0..count(&ids)).map(|_| rng.below(vocab) as i64).collect(),
            ),
            images: (
                self.images.to_vec(),
                uniform("vae.images", count(&self.images)),
            ),
            text_embeds: (
                vec![batch, pooled],
                uniform("unet.text_embeds", batch * pooled),
            ),
            time_ids: (vec![batch, 6], time_ids),
        }
    }

    /// The UNet's added conditioning, for a variant whose UNet has it.
    fn added(&self, inputs: &Inputs) -> Option<AddedCond<TestBackend>> {
        self.unet.as_ref()?.addition?;
        Some(AddedCond {
            text_embeds: float_tensor(&inputs.text_embeds),
            time_ids: float_tensor(&inputs.time_ids),
        })
    }

    /// The configs in the words the Python script builds its models from.
    fn configs_json(&self) -> Value {
        let mut doc = serde_json::Map::new();
        if let Some(u) = &self.unet {
            doc.insert(
                "unet".into(),
                json!({
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
                    "head_channels": u.head_channels,
                    "linear_projection": u.linear_projection,
                    "addition_time_embed_dim": u.addition.map(|a| a.time_embed_dim),
                    "pooled_dim": u.addition.map(|a| a.pooled_dim),
                }),
            );
        }
        for (name, config) in [("clip", &self.clip), ("clip2", &self.clip2)] {
            if let Some(c) = config {
                doc.insert(
                    name.into(),
                    json!({
                        "vocab_size": c.vocab_size,
                        "max_position_embeddings": c.max_position_embeddings,
                        "hidden_size": c.hidden_size,
                        "intermediate_size": c.intermediate_size,
                        "num_hidden_layers": c.num_hidden_layers,
                        "num_attention_heads": c.num_attention_heads,
                        "layer_norm_eps": c.layer_norm_eps,
                        "exact_gelu": c.exact_gelu,
                        "projection_dim": c.projection_dim,
                    }),
                );
            }
        }
        if let Some(v) = &self.vae {
            doc.insert(
                "vae".into(),
                json!({
                    "in_channels": v.in_channels,
                    "latent_channels": v.latent_channels,
                    "block_out_channels": v.block_out_channels,
                    "layers_per_block": v.layers_per_block,
                    "norm_num_groups": v.norm_num_groups,
                    "scaling_factor": v.scaling_factor,
                }),
            );
        }
        doc.insert("activation_scale".into(), json!(self.activation_scale));
        doc.insert("record_ldm_key_map".into(), json!(self.record_ldm_key_map));
        Value::Object(doc)
    }
}

/// The inputs a variant's models are run on. The tiny latents and images
/// are not square, so a swapped height and width cannot hide; the batch
/// items have different timesteps, contexts and token ids.
struct Inputs {
    latents: (Vec<usize>, Vec<f32>),
    timesteps: Vec<f32>,
    context: (Vec<usize>, Vec<f32>),
    input_ids: (Vec<usize>, Vec<i64>),
    images: (Vec<usize>, Vec<f32>),
    /// SDXL's pooled text embedding and size numbers (empty otherwise).
    text_embeds: (Vec<usize>, Vec<f32>),
    time_ids: (Vec<usize>, Vec<f32>),
}

impl Inputs {
    fn write(&self, path: &Path) {
        let mut raw = BTreeMap::new();
        raw.insert(
            "unet.latents".into(),
            f32_raw(&self.latents.0, &self.latents.1),
        );
        raw.insert(
            "unet.timesteps".into(),
            f32_raw(&[self.timesteps.len()], &self.timesteps),
        );
        raw.insert(
            "unet.context".into(),
            f32_raw(&self.context.0, &self.context.1),
        );
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
        if self.text_embeds.0.iter().all(|&d| d > 0) {
            raw.insert(
                "unet.text_embeds".into(),
                f32_raw(&self.text_embeds.0, &self.text_embeds.1),
            );
            raw.insert(
                "unet.time_ids".into(),
                f32_raw(&self.time_ids.0, &self.time_ids.1),
            );
        }
        write_safetensors(path, &raw);
    }
}

fn float_tensor<const D: usize>(
    (shape, values): &(Vec<usize>, Vec<f32>),
) -> Tensor<TestBackend, D> {
    Tensor::from_data(
        TensorData::new(values.clone(), shape.clone()),
        &Default::default(),
    )
}

/// Step 1 of regenerating the fixtures (see `scripts/engine_reference.py`):
/// writes each variant's weights, inputs and configs to
/// `$ENGINE_REFERENCE_DIR/<variant>/` (default: `engine-reference` in the
/// system temp folder).
#[test]
#[ignore = "writes the inputs of scripts/engine_reference.py; run by hand"]
fn write_reference_inputs() {
    let root = std::env::var_os("ENGINE_REFERENCE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("engine-reference"));
    for variant in variants() {
        let dir = root.join(variant.name);
        variant.write_weights(&dir);
        variant.write_ldm(&dir.join("ldm.safetensors"));
        variant.inputs().write(&dir.join("inputs.safetensors"));
        let configs = serde_json::to_string_pretty(&variant.configs_json()).unwrap();
        std::fs::write(dir.join("configs.json"), configs).unwrap();
    }
    eprintln!("wrote the reference inputs to {}", root.display());
}

/// One output of a fixture file.
struct Expected {
    shape: Vec<usize>,
    values: Vec<f32>,
}

fn fixture(variant: &str) -> (PathBuf, Value) {
    let path = fixtures().join(format!("{variant}.json"));
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let doc = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{} is not valid JSON: {e}", path.display()));
    (path, doc)
}

fn expected(variant: &str, output: &str) -> Expected {
    let (path, doc) = fixture(variant);
    let out = &doc["outputs"][output];
    let numbers = |v: &Value| -> Vec<f64> {
        v.as_array()
            .unwrap_or_else(|| panic!("{}: no output `{output}`", path.display()))
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect()
    };
    Expected {
        shape: numbers(&out["shape"])
            .into_iter()
            .map(|x| x as usize)
            .collect(),
        values: numbers(&out["values"])
            .into_iter()
            .map(|x| x as f32)
            .collect(),
    }
}

/// Asserts `ours` matches the fixture: every value within [`TOLERANCE`] ×
/// max(rms of the reference output, |reference value|).
fn assert_matches<const D: usize>(
    variant: &Variant,
    output: &str,
    what: &str,
    ours: Tensor<TestBackend, D>,
) {
    let reference = expected(variant.name, output);
    let what = format!("{what} ({})", variant.name);
    assert_eq!(ours.dims().to_vec(), reference.shape, "{what}: shape");
    let ours = ours.into_data().to_vec::<f32>().unwrap();
    let n = reference.values.len().max(1) as f32;
    let rms = (reference.values.iter().map(|v| v * v).sum::<f32>() / n).sqrt();
    let mut worst = (0.0f32, 0usize);
    for (i, (a, b)) in ours.iter().zip(&reference.values).enumerate() {
        let diff = (a - b).abs();
        assert!(
            diff <= TOLERANCE * b.abs().max(rms),
            "{what} differs from the reference at flat index {i}: ours {a}, reference {b} \
             (allowed {TOLERANCE} × max({rms:.2e}, |reference|))"
        );
        if diff > worst.0 {
            worst = (diff, i);
        }
    }
    eprintln!(
        "{what}: max |ours − reference| = {:.2e} = {:.1e} × rms {rms:.2e}",
        worst.0,
        worst.0 / rms
    );
}

fn load<M: burn::module::Module<TestBackend>>(
    module: M,
    checkpoint: &Checkpoint,
    component: Component,
) -> M {
    // the configs only matter for the ldm layout; this folder is diffusers
    let weights = checkpoint
        .component(component, &UNetConfig::tiny(), &VaeConfig::tiny())
        .unwrap();
    let (module, report) = load_component(module, &weights, &Default::default());
    assert!(report.is_complete(), "{}", report.summary());
    module
}

#[test]
fn unet_output_matches_diffusers() {
    let spec = LoraSpec {
        rank: 2,
        alpha: 1.0,
        dropout: 0.0,
    };
    let device = Default::default();
    for variant in variants() {
        let dir = tempfile::tempdir().unwrap();
        let checkpoint = variant.checkpoint(dir.path());
        let inputs = variant.inputs();
        // Plain, and with fresh adapters on every layer kohya trains (their
        // `up` starts at zero, so they must not change the output at all).
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
            let Some(unet) = variant.unet(&targets) else {
                continue;
            };
            let unet = load(unet, &checkpoint, Component::Unet);
            let out = unet.forward(
                float_tensor(&inputs.latents),
                Tensor::from_data(TensorData::from(inputs.timesteps.as_slice()), &device),
                float_tensor(&inputs.context),
                variant.added(&inputs),
            );
            assert_matches(&variant, "unet.sample", what, out);
        }
    }
}

#[test]
fn clip_hidden_states_match_transformers() {
    let device = Default::default();
    for variant in variants() {
        let Some(clip) = variant.clip() else {
            continue;
        };
        let dir = tempfile::tempdir().unwrap();
        let checkpoint = variant.checkpoint(dir.path());
        let inputs = variant.inputs();
        let clip = load(clip, &checkpoint, Component::TextEncoder);
        let ids = || {
            Tensor::<TestBackend, 2, Int>::from_data(
                TensorData::new(inputs.input_ids.1.clone(), inputs.input_ids.0.clone()),
                &device,
            )
        };
        let last = clip.forward(ids(), 1);
        assert_matches(
            &variant,
            "clip.last_hidden_state",
            "CLIP last hidden state",
            last,
        );
        let skip = clip.forward(ids(), 2);
        assert_matches(&variant, "clip.clip_skip_2", "CLIP clip_skip 2", skip);
        let Some(clip2) = variant.clip2() else {
            continue;
        };
        let (penultimate, _) = clip.penultimate(ids());
        assert_matches(
            &variant,
            "clip.penultimate",
            "CLIP penultimate hidden state (SDXL)",
            penultimate,
        );
        let clip2 = load(clip2, &checkpoint, Component::TextEncoder2);
        let (hidden, pooled) = clip2.penultimate(ids());
        assert_matches(
            &variant,
            "clip2.penultimate",
            "OpenCLIP penultimate hidden state",
            hidden,
        );
        assert_matches(
            &variant,
            "clip2.text_embeds",
            "OpenCLIP pooled, projected embedding",
            pooled.unwrap(),
        );
    }
}

/// The `sdxl-shaped` weights as one SDXL single file (UNet by SGM keys, the
/// first encoder under `conditioner.embedders.0`, the second in OpenCLIP's
/// fused layout): loaded through [`Checkpoint`], the models give the
/// reference outputs, so the split q/k/v, the transposed projection and
/// the `label_emb` rows are read as diffusers reads them.
#[test]
fn sdxl_single_file_gives_the_reference_outputs() {
    let device = Default::default();
    let variant = variants().into_iter().find(|v| v.clip2.is_some()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("sdxl.safetensors");
    variant.write_ldm(&file);
    let components = [
        Component::Unet,
        Component::TextEncoder,
        Component::TextEncoder2,
    ];
    let checkpoint = Checkpoint::open(&file, &components).unwrap();
    let unet_config = variant.unet.clone().unwrap();
    let from_file = |component| {
        checkpoint
            .component(component, &unet_config, &VaeConfig::sd15_toy())
            .unwrap()
    };
    let inputs = variant.inputs();
    let (unet, report) = load_component(
        variant.unet(&LoraTargets::default()).unwrap(),
        &from_file(Component::Unet),
        &device,
    );
    assert!(report.is_complete(), "{}", report.summary());
    let out = unet.forward(
        float_tensor(&inputs.latents),
        Tensor::from_data(TensorData::from(inputs.timesteps.as_slice()), &device),
        float_tensor(&inputs.context),
        variant.added(&inputs),
    );
    assert_matches(&variant, "unet.sample", "UNet from the single file", out);
    let ids = Tensor::<TestBackend, 2, Int>::from_data(
        TensorData::new(inputs.input_ids.1.clone(), inputs.input_ids.0.clone()),
        &device,
    );
    let (clip, report) = load_component(
        variant.clip().unwrap(),
        &from_file(Component::TextEncoder),
        &device,
    );
    assert!(report.is_complete(), "{}", report.summary());
    let (hidden, _) = clip.penultimate(ids.clone());
    assert_matches(
        &variant,
        "clip.penultimate",
        "CLIP from the single file",
        hidden,
    );
    let (clip2, report) = load_component(
        variant.clip2().unwrap(),
        &from_file(Component::TextEncoder2),
        &device,
    );
    assert!(report.is_complete(), "{}", report.summary());
    let (hidden, pooled) = clip2.penultimate(ids);
    assert_matches(
        &variant,
        "clip2.penultimate",
        "OpenCLIP from the single file",
        hidden,
    );
    assert_matches(
        &variant,
        "clip2.text_embeds",
        "OpenCLIP pooled embedding from the single file",
        pooled.unwrap(),
    );
}

#[test]
fn vae_moments_match_diffusers() {
    for variant in variants() {
        let Some(vae) = variant.vae() else {
            continue;
        };
        let dir = tempfile::tempdir().unwrap();
        let checkpoint = variant.checkpoint(dir.path());
        let inputs = variant.inputs();
        let vae = load(vae, &checkpoint, Component::Vae);
        let (mean, logvar) = vae.encode_moments(float_tensor(&inputs.images));
        assert_matches(&variant, "vae.mean", "VAE latent mean", mean);
        assert_matches(&variant, "vae.logvar", "VAE latent logvar", logvar);
    }
}

/// Our ldm rename tables turn every key of an SD1.5-layout single file into
/// the diffusers key diffusers' own converters turn it into, and together
/// cover every parameter. (The script checked the pairs by converting the
/// ldm file our tables name; this keeps the tables to them.)
#[test]
fn ldm_keys_rename_as_diffusers_converts_them() {
    let recorded: Vec<Variant> = variants()
        .into_iter()
        .filter(|v| v.record_ldm_key_map)
        .collect();
    assert_eq!(recorded.len(), 2, "sd15-shaped and sdxl-shaped");
    for variant in recorded {
        let (path, doc) = fixture(variant.name);
        let param_keys =
            |weights: BTreeMap<String, _>| weights.into_keys().collect::<BTreeSet<_>>();
        let mut components = Vec::new();
        if let Some(unet_config) = &variant.unet {
            components.push((
                "unet",
                ldm::UNET_PREFIX,
                ldm::unet_table(unet_config),
                param_keys(reference_weights(
                    &variant.unet(&LoraTargets::default()).unwrap(),
                    1.0,
                )),
            ));
        }
        if let Some(vae_config) = &variant.vae {
            components.push((
                "vae",
                ldm::VAE_PREFIX,
                ldm::vae_table(vae_config),
                param_keys(reference_weights(&variant.vae().unwrap(), 1.0)),
            ));
        }
        for (component, prefix, table, params) in components {
            let pairs = doc["ldm_key_map"][component]
                .as_array()
                .unwrap_or_else(|| panic!("{}: no `ldm_key_map.{component}`", path.display()));
            let mut renamed = BTreeSet::new();
            for pair in pairs {
                let (Some(ldm_key), Some(diffusers_key)) = (pair[0].as_str(), pair[1].as_str())
                else {
                    panic!("{}: `{pair}` is not a pair of keys", path.display());
                };
                let rest = ldm_key
                    .strip_prefix(prefix)
                    .unwrap_or_else(|| panic!("`{ldm_key}` lacks the `{prefix}` prefix"));
                assert_eq!(
                    ldm::rename(rest, &table).as_deref(),
                    Some(diffusers_key),
                    "the ldm key `{ldm_key}` is renamed differently from diffusers ({})",
                    variant.name
                );
                renamed.insert(diffusers_key.to_string());
            }
            assert_eq!(
                renamed, params,
                "the {component} keys diffusers converts are not exactly our parameters ({})",
                variant.name
            );
        }
    }
}
