//! End-to-end tests of the engine on the tiny model: checkpoints written in
//! both real key layouts by the test itself, loading, training, the saved
//! LoRA, and the ComfyUI key map for SD1.5.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use burn::tensor::{Distribution, ElementConversion, Int, Tensor, TensorData};

use super::config::{Architecture, EngineConfig, SavePrecision};
use super::ldm;
use super::lora_file::{Alphas, kohya_tensors, load_lora, save_lora};
use super::model::LoraModel;
use super::rng::SplitMix64;
use super::safetensors_file::SafetensorsFile;
use super::test_files::{f32_raw, write_safetensors};
use super::train::{LatentDataset, LatentSample, train};
use super::vae::AutoencoderKlEncoder;
use super::weights::{Checkpoint, Component, Layout, load_component, named_tensors};
use super::{EngineError, TestAutodiff, TestBackend};
use crate::studio::Hint;

type Named = Vec<(String, TensorData, String)>;

/// A tensor in the file's (PyTorch) layout.
fn to_file_layout(data: &TensorData, parent: &str) -> (Vec<usize>, Vec<f32>) {
    let shape = data.shape.to_vec();
    let values = data.to_vec::<f32>().unwrap();
    if parent == "Struct:Linear" && shape.len() == 2 {
        let (i, o) = (shape[0], shape[1]);
        let mut t = vec![0f32; values.len()];
        for r in 0..i {
            for c in 0..o {
                t[c * i + r] = values[r * o + c];
            }
        }
        (vec![o, i], t)
    } else {
        (shape, values)
    }
}

/// diffusers name → ldm name, by running the rename table backwards.
pub(super) fn to_ldm(name: &str, table: &[ldm::Rename]) -> String {
    ldm::to_ldm(name, table).unwrap_or_else(|| panic!("no row for {name}"))
}

struct TinyBase {
    unet: Named,
    clip: Named,
    vae: Named,
}

/// Random tiny weights, with the base model they came from.
fn tiny_base() -> TinyBase {
    let device = Default::default();
    let network = super::config::NetworkSection::default();
    let plain = super::config::NetworkSection { ..network };
    let model = LoraModel::<TestBackend>::init(Architecture::Tiny, &plain, &device);
    let vae = AutoencoderKlEncoder::<TestBackend>::init(&Architecture::Tiny.vae(), &device);
    let base_only = |named: Named| {
        named
            .into_iter()
            .filter(|(k, _, _)| !k.contains(".lora."))
            .collect::<Named>()
    };
    TinyBase {
        unet: base_only(named_tensors(&model.unet)),
        clip: base_only(named_tensors(&model.text_encoder)),
        vae: named_tensors(&vae),
    }
}

fn write_diffusers(dir: &Path, base: &TinyBase) {
    for (named, file) in [
        (&base.unet, "unet/diffusion_pytorch_model.safetensors"),
        (&base.clip, "text_encoder/model.safetensors"),
        (&base.vae, "vae/diffusion_pytorch_model.safetensors"),
    ] {
        let map = named
            .iter()
            .map(|(k, d, p)| {
                let (shape, values) = to_file_layout(d, p);
                (k.clone(), f32_raw(&shape, &values))
            })
            .collect();
        write_safetensors(&dir.join(file), &map);
    }
}

fn write_ldm(path: &Path, base: &TinyBase) {
    let unet_table = ldm::unet_table(&Architecture::Tiny.unet());
    let vae_table = ldm::vae_table(&Architecture::Tiny.vae());
    let mut map = BTreeMap::new();
    for (k, d, p) in &base.unet {
        map.insert(
            format!("{}{}", ldm::UNET_PREFIX, to_ldm(k, &unet_table)),
            to_file_layout(d, p),
        );
    }
    for (k, d, p) in &base.clip {
        map.insert(format!("{}{k}", ldm::CLIP_PREFIX), to_file_layout(d, p));
    }
    for (k, d, p) in &base.vae {
        let (mut shape, values) = to_file_layout(d, p);
        if k.contains("mid_block.attentions") && shape.len() == 2 {
            shape.extend([1, 1]); // ldm stores the VAE attention as 1×1 convs
        }
        map.insert(
            format!("{}{}", ldm::VAE_PREFIX, to_ldm(k, &vae_table)),
            (shape, values),
        );
    }
    // what real single files carry besides the three models
    map.insert("alphas_cumprod".into(), (vec![2], vec![0.9, 0.8]));
    map.insert(
        format!("{}decoder.conv_in.weight", ldm::VAE_PREFIX),
        (vec![1], vec![0.0]),
    );
    let map = map
        .iter()
        .map(|(k, (shape, values))| (k.clone(), f32_raw(shape, values)))
        .collect();
    write_safetensors(path, &map);
}

fn same_tensors(a: &Named, b: &Named) {
    assert_eq!(a.len(), b.len());
    for ((ka, da, _), (kb, db, _)) in a.iter().zip(b) {
        assert_eq!(ka, kb);
        assert_eq!(da.as_bytes(), db.as_bytes(), "{ka} differs");
    }
}

#[test]
fn checkpoints_round_trip_in_both_layouts_with_no_missing_keys() {
    let dir = tempfile::tempdir().unwrap();
    let base = tiny_base();
    write_diffusers(&dir.path().join("diffusers"), &base);
    write_ldm(&dir.path().join("ldm.safetensors"), &base);
    let device = Default::default();
    let all = [Component::Unet, Component::TextEncoder, Component::Vae];
    for (path, layout) in [
        (dir.path().join("diffusers"), Layout::Diffusers),
        (dir.path().join("ldm.safetensors"), Layout::Ldm),
    ] {
        let ckpt = Checkpoint::open(&path, &all).unwrap();
        assert_eq!(ckpt.layout, layout);
        let (unet_cfg, vae_cfg) = (Architecture::Tiny.unet(), Architecture::Tiny.vae());
        let network = super::config::NetworkSection::default();
        let fresh = LoraModel::<TestBackend>::init(Architecture::Tiny, &network, &device);
        let (model, reports) = fresh
            .load_base(&ckpt, Architecture::Tiny, &device, &mut |_, _| {})
            .unwrap();
        assert!(reports.iter().all(|r| r.is_complete()), "{reports:?}");
        let strip = |n: Named| {
            n.into_iter()
                .filter(|(k, _, _)| !k.contains(".lora."))
                .collect::<Named>()
        };
        same_tensors(&strip(named_tensors(&model.unet)), &base.unet);
        same_tensors(&strip(named_tensors(&model.text_encoder)), &base.clip);

        let vae_weights = ckpt.component(Component::Vae, &unet_cfg, &vae_cfg).unwrap();
        let fresh_vae = AutoencoderKlEncoder::<TestBackend>::init(&vae_cfg, &device);
        let (vae, report) = load_component(fresh_vae, &vae_weights, &device);
        assert!(report.is_complete(), "{}", report.summary());
        if layout == Layout::Ldm {
            assert_eq!(
                report.unused, 1,
                "the decoder key is not needed, not unexpected"
            );
        }
        same_tensors(&named_tensors(&vae), &base.vae);
    }
}

#[test]
fn a_checkpoint_with_a_missing_key_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let mut base = tiny_base();
    base.unet
        .retain(|(k, _, _)| k != "mid_block.attentions.0.proj_in.weight");
    write_diffusers(dir.path(), &base);
    let ckpt = Checkpoint::open(dir.path(), &[Component::Unet, Component::TextEncoder]).unwrap();
    let network = super::config::NetworkSection::default();
    let device = Default::default();
    let model = LoraModel::<TestBackend>::init(Architecture::Tiny, &network, &device);
    let err = model
        .load_base(&ckpt, Architecture::Tiny, &device, &mut |_, _| {})
        .unwrap_err();
    match &err {
        EngineError::IncompleteWeights(report) => {
            assert_eq!(
                report.missing,
                vec!["mid_block.attentions.0.proj_in.weight".to_string()]
            );
        }
        other => panic!("expected IncompleteWeights, got {other}"),
    }
    assert!(err.hint().unwrap().contains("SD1.5"));
}

#[test]
fn unexpected_keys_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let mut base = tiny_base();
    let extra = base.unet[0].clone();
    base.unet
        .push(("add_embedding.linear_1.weight".into(), extra.1, extra.2));
    write_diffusers(dir.path(), &base);
    let ckpt = Checkpoint::open(dir.path(), &[Component::Unet]).unwrap();
    let (u, v) = (Architecture::Tiny.unet(), Architecture::Tiny.vae());
    let weights = ckpt.component(Component::Unet, &u, &v).unwrap();
    let device = Default::default();
    let unet =
        super::unet::UNet2DConditionModel::<TestBackend>::init(&u, &Default::default(), &device);
    let (_, report) = load_component(unet, &weights, &device);
    assert_eq!(
        report.unexpected,
        vec!["add_embedding.linear_1.weight".to_string()]
    );
    assert!(!report.is_complete());
}

/// Four fixed samples: 8×8 latents and 8 caption tokens each.
fn fixture_dataset() -> LatentDataset {
    let mut rng = SplitMix64::new(7);
    let samples = (0..4)
        .map(|i| LatentSample {
            latents: (0..4 * 8 * 8)
                .map(|_| (rng.below(2001) as f32 / 1000.0) - 1.0)
                .collect(),
            shape: [4, 8, 8],
            input_ids: (0..8).map(|j| ((i * 8 + j) % 64) as i64).collect(),
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

fn tiny_config(dir: &Path, checkpoint: &Path) -> EngineConfig {
    let text = format!(
        r#"
[model]
checkpoint = "{}"
architecture = "tiny"
[network]
rank = 4
alpha = 4.0
conv_rank = 2
conv_alpha = 2.0
train_text_encoder = true
[training]
device = "cpu"
learning_rate = 1e-2
optimizer = "adam_w"
weight_decay = 0.0
lr_scheduler = "constant"
warmup_steps = 0
epochs = 30
batch_size = 4
seed = 3
noise_offset = 0.0
shuffle = true
[data]
latents = "{}"
[output]
dir = "{}"
name = "tiny-lora"
save_precision = "fp32"
"#,
        checkpoint.display(),
        dir.join("latents.safetensors").display(),
        dir.join("out").display()
    );
    EngineConfig::parse(&text).unwrap()
}

/// The loss over every sample at fixed timesteps and noise: comparable
/// before and after training.
fn eval_loss<B: burn::tensor::backend::Backend>(
    model: &LoraModel<B>,
    data: &LatentDataset,
    device: &B::Device,
) -> f32 {
    let schedule = super::schedule::NoiseSchedule::sd15();
    let mut total = 0.0;
    for (i, s) in data.samples.iter().enumerate() {
        let latents =
            Tensor::<B, 4>::from_data(TensorData::new(s.latents.clone(), [1, 4, 8, 8]), device);
        let mut rng = SplitMix64::new(100 + i as u64);
        let noise: Vec<f32> = (0..256)
            .map(|_| (rng.below(2001) as f32 / 1000.0) - 1.0)
            .collect();
        let noise = Tensor::<B, 4>::from_data(TensorData::new(noise, [1, 4, 8, 8]), device);
        for t in [100usize, 500, 900] {
            let noisy = schedule.add_noise(latents.clone(), noise.clone(), &[t]);
            let ids = Tensor::<B, 2, Int>::from_data(
                TensorData::new(s.input_ids.clone(), [1, 8]),
                device,
            );
            let ctx = model.text_encoder.forward(ids, 1);
            let pred =
                model
                    .unet
                    .forward(noisy, Tensor::from_floats([t as f32], device), ctx, None);
            let loss: f32 = (pred - noise.clone())
                .powi_scalar(2)
                .mean()
                .into_scalar()
                .elem();
            total += loss;
        }
    }
    total / (data.samples.len() * 3) as f32
}

fn base_params<B: burn::tensor::backend::Backend>(model: &LoraModel<B>) -> Named {
    named_tensors(model)
        .into_iter()
        .filter(|(k, _, _)| !k.contains(".lora."))
        .collect()
}

#[test]
fn training_lowers_the_loss_keeps_the_base_and_the_lora_reloads() {
    let dir = tempfile::tempdir().unwrap();
    let base = tiny_base();
    let ckpt_path = dir.path().join("ldm.safetensors");
    write_ldm(&ckpt_path, &base);
    let data = fixture_dataset();
    std::fs::write(
        dir.path().join("latents.safetensors"),
        data.to_bytes().unwrap(),
    )
    .unwrap();
    let config = tiny_config(dir.path(), &ckpt_path);
    let device = Default::default();

    // base weights from the checkpoint, adapters fresh
    let ckpt = Checkpoint::open(&ckpt_path, &[Component::Unet, Component::TextEncoder]).unwrap();
    let model = LoraModel::<TestAutodiff>::init(Architecture::Tiny, &config.network, &device);
    let (model, _) = model
        .load_base(&ckpt, Architecture::Tiny, &device, &mut |_, _| {})
        .unwrap();
    let data = LatentDataset::load(&config.data.latents).unwrap();
    let before = eval_loss(&model, &data, &device);
    let base_before = base_params(&model);

    let mut events = Vec::new();
    let (trained, outcome) = train(&config, model, &data, None, &device, true, &mut |e| {
        events.push(e.clone())
    })
    .unwrap();
    assert_eq!(outcome.steps, 30);
    let after = eval_loss(&trained, &data, &device);
    assert!(
        after < before * 0.8,
        "loss {before} → {after}: not clearly lower"
    );

    // base weights bit-identical
    same_tensors(&base_params(&trained), &base_before);

    // the saved file: kohya keys, reloads, and strength 0 is the base model
    let saved = SafetensorsFile::open(&config.output_path()).unwrap();
    assert_eq!(
        saved.metadata.get("ss_network_dim").map(String::as_str),
        Some("4")
    );
    assert_eq!(
        saved.metadata.get("ss_steps").map(String::as_str),
        Some("30")
    );
    let alphas = Alphas {
        linear: 4.0,
        conv: 2.0,
    };
    let ids = Tensor::<TestBackend, 2, Int>::from_data(
        TensorData::new(data.samples[0].input_ids.clone(), [1, 8]),
        &device,
    );
    let latents = Tensor::<TestBackend, 4>::random([1, 4, 8, 8], Distribution::Default, &device);
    let t = Tensor::<TestBackend, 1>::from_floats([321.0], &device);
    let run = |m: &LoraModel<TestBackend>| {
        let ctx = m.text_encoder.forward(ids.clone(), 1);
        m.unet
            .forward(latents.clone(), t.clone(), ctx, None)
            .into_data()
    };
    let plain_network = super::config::NetworkSection {
        conv_rank: 0,
        train_text_encoder: false,
        ..config.network.clone()
    };
    let reload = |strength: f64| {
        let fresh = LoraModel::<TestBackend>::init(Architecture::Tiny, &config.network, &device);
        let (fresh, _) = fresh
            .load_base(&ckpt, Architecture::Tiny, &device, &mut |_, _| {})
            .unwrap();
        let (m, report) = load_lora(
            fresh,
            &saved,
            (alphas, Architecture::Tiny),
            strength,
            &device,
        );
        assert!(report.is_complete(), "{}", report.summary());
        m
    };
    let trained_inner = burn::module::AutodiffModule::valid(&trained);
    run(&reload(1.0)).assert_approx_eq::<f32>(
        &run(&trained_inner),
        burn::tensor::Tolerance::absolute(1e-5),
    );

    // a base model without adapters at all
    let _ = plain_network;
    let no_lora = super::config::NetworkSection {
        rank: 1,
        ..config.network.clone()
    };
    let _ = no_lora;
    let bare_unet = super::unet::UNet2DConditionModel::<TestBackend>::init(
        &Architecture::Tiny.unet(),
        &Default::default(),
        &device,
    );
    let bare_te =
        super::clip::ClipTextModel::<TestBackend>::init(&Architecture::Tiny.clip(), None, &device);
    let (u, v) = (Architecture::Tiny.unet(), Architecture::Tiny.vae());
    let (bare_unet, _) = load_component(
        bare_unet,
        &ckpt.component(Component::Unet, &u, &v).unwrap(),
        &device,
    );
    let (bare_te, _) = load_component(
        bare_te,
        &ckpt.component(Component::TextEncoder, &u, &v).unwrap(),
        &device,
    );
    let bare = LoraModel {
        unet: bare_unet,
        text_encoder: bare_te,
        text_encoder_2: None,
    };
    assert_eq!(
        run(&reload(0.0)),
        run(&bare),
        "strength 0 must give the base output exactly"
    );

    // progress events in order: a note that the base model is being
    // hashed (for the metadata), then the start
    assert!(
        matches!(events.first(), Some(super::train::TrainEvent::Note(text)) if text.contains("hashing")),
        "{:?}",
        events.first()
    );
    assert!(matches!(
        events.get(1),
        Some(super::train::TrainEvent::Start {
            total_steps: 30,
            ..
        })
    ));
    assert!(matches!(
        events.last(),
        Some(super::train::TrainEvent::Saved { .. })
    ));
}

/// ComfyUI's SD1.5 LoRA key map (`comfy/lora.py::model_lora_keys_unet` and
/// `model_lora_keys_clip`, with `comfy/utils.py::unet_to_diffusers`),
/// re-derived here from SD1.5's numbers as an independent oracle: the
/// `lora_unet_` names of every UNet weight in diffusers and ldm naming, and
/// `lora_te_text_model_encoder_layers_N_*` for CLIP-L.
fn comfyui_sd15_lora_names() -> BTreeSet<String> {
    let resnet = [
        ("in_layers.0", "norm1"),
        ("in_layers.2", "conv1"),
        ("emb_layers.1", "time_emb_proj"),
        ("out_layers.0", "norm2"),
        ("out_layers.3", "conv2"),
        ("skip_connection", "conv_shortcut"),
    ];
    let attention = ["proj_in", "proj_out", "norm"];
    let block = [
        "norm1",
        "norm2",
        "norm3",
        "attn1.to_q",
        "attn1.to_k",
        "attn1.to_v",
        "attn1.to_out.0",
        "attn2.to_q",
        "attn2.to_k",
        "attn2.to_v",
        "attn2.to_out.0",
        "ff.net.0.proj",
        "ff.net.2",
    ];
    let res_blocks = 2; // per stage, all four stages
    let mut depth: Vec<usize> = vec![1, 1, 1, 1, 1, 1, 0, 0];
    let mut depth_out: Vec<usize> = vec![1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0];
    let mut modules: Vec<(String, String)> = Vec::new(); // (diffusers, ldm)
    for x in 0..4 {
        let mut n = 1 + (res_blocks + 1) * x;
        for i in 0..res_blocks {
            for (l, d) in resnet {
                modules.push((
                    format!("down_blocks.{x}.resnets.{i}.{d}"),
                    format!("input_blocks.{n}.0.{l}"),
                ));
            }
            if depth.remove(0) > 0 {
                for a in attention {
                    modules.push((
                        format!("down_blocks.{x}.attentions.{i}.{a}"),
                        format!("input_blocks.{n}.1.{a}"),
                    ));
                }
                for b in block {
                    modules.push((
                        format!("down_blocks.{x}.attentions.{i}.transformer_blocks.0.{b}"),
                        format!("input_blocks.{n}.1.transformer_blocks.0.{b}"),
                    ));
                }
            }
            n += 1;
        }
        modules.push((
            format!("down_blocks.{x}.downsamplers.0.conv"),
            format!("input_blocks.{n}.0.op"),
        ));
    }
    for (i, l) in [(0, 0), (1, 2)] {
        for (lr, d) in resnet {
            modules.push((
                format!("mid_block.resnets.{i}.{d}"),
                format!("middle_block.{l}.{lr}"),
            ));
        }
    }
    for a in attention {
        modules.push((
            format!("mid_block.attentions.0.{a}"),
            format!("middle_block.1.{a}"),
        ));
    }
    for b in block {
        modules.push((
            format!("mid_block.attentions.0.transformer_blocks.0.{b}"),
            format!("middle_block.1.transformer_blocks.0.{b}"),
        ));
    }
    for x in 0..4 {
        let l = res_blocks + 1;
        for i in 0..l {
            let n = l * x + i;
            let mut c = 0;
            for (lr, d) in resnet {
                modules.push((
                    format!("up_blocks.{x}.resnets.{i}.{d}"),
                    format!("output_blocks.{n}.0.{lr}"),
                ));
            }
            c += 1;
            if depth_out.pop().unwrap_or(0) > 0 {
                c += 1;
                for a in attention {
                    modules.push((
                        format!("up_blocks.{x}.attentions.{i}.{a}"),
                        format!("output_blocks.{n}.1.{a}"),
                    ));
                }
                for b in block {
                    modules.push((
                        format!("up_blocks.{x}.attentions.{i}.transformer_blocks.0.{b}"),
                        format!("output_blocks.{n}.1.transformer_blocks.0.{b}"),
                    ));
                }
            }
            if i == l - 1 {
                modules.push((
                    format!("up_blocks.{x}.upsamplers.0.conv"),
                    format!("output_blocks.{n}.{c}.conv"),
                ));
            }
        }
    }
    for (d, l) in [
        ("conv_in", "input_blocks.0.0"),
        ("conv_out", "out.2"),
        ("conv_norm_out", "out.0"),
        ("time_embedding.linear_1", "time_embed.0"),
        ("time_embedding.linear_2", "time_embed.2"),
    ] {
        modules.push((d.into(), l.into()));
    }
    let mut names = BTreeSet::new();
    for (d, l) in modules {
        names.insert(format!("lora_unet_{}", d.replace('.', "_")));
        names.insert(format!("lora_unet_{}", l.replace('.', "_")));
    }
    for b in 0..12 {
        for c in [
            "self_attn_q_proj",
            "self_attn_k_proj",
            "self_attn_v_proj",
            "self_attn_out_proj",
            "mlp_fc1",
            "mlp_fc2",
        ] {
            names.insert(format!("lora_te_text_model_encoder_layers_{b}_{c}"));
        }
    }
    names
}

#[test]
fn every_sd15_lora_key_is_one_comfyui_loads() {
    let device = Default::default();
    let comfy = comfyui_sd15_lora_names();
    // LoCon adds 22 resnets × (conv1, conv2, time_emb_proj) + 14 shortcuts + 3 down- and 3 upsamplers
    for (conv_rank, unet_modules) in [(0usize, 192usize), (4, 192 + 86)] {
        let network = super::config::NetworkSection {
            rank: 4,
            alpha: 1.0,
            dropout: 0.0,
            conv_rank,
            conv_alpha: 1.0,
            train_text_encoder: true,
        };
        // base weights stay lazy: only the small adapters are allocated
        let model = LoraModel::<TestBackend>::init(Architecture::Sd15, &network, &device);
        let tensors = kohya_tensors(
            &model,
            Alphas {
                linear: 1.0,
                conv: 1.0,
            },
            Architecture::Sd15,
        );
        let mut modules = BTreeSet::new();
        for t in &tensors {
            let module = t
                .name
                .strip_suffix(".lora_down.weight")
                .or_else(|| t.name.strip_suffix(".lora_up.weight"))
                .or_else(|| t.name.strip_suffix(".alpha"))
                .unwrap_or_else(|| panic!("`{}` has no kohya suffix", t.name));
            modules.insert(module.to_string());
        }
        let unmapped: Vec<_> = modules.iter().filter(|m| !comfy.contains(*m)).collect();
        assert!(
            unmapped.is_empty(),
            "{} of {} modules unknown to ComfyUI: {unmapped:?}",
            unmapped.len(),
            modules.len()
        );
        assert_eq!(
            tensors.len(),
            modules.len() * 3,
            "each module has down, up and alpha"
        );
        let unet = modules
            .iter()
            .filter(|m| m.starts_with("lora_unet_"))
            .count();
        let te = modules.iter().filter(|m| m.starts_with("lora_te_")).count();
        // kohya logs "create LoRA for U-Net: 192 modules" and "Text Encoder: 72 modules" for SD1.5
        assert_eq!((unet, te), (unet_modules, 72));
    }
}

/// ComfyUI's SDXL LoRA key map, re-derived from SDXL's published layout
/// (the SGM UNet ComfyUI runs: `lora_unet_` plus every weight's key with `.`
/// → `_`; `lora_te1_` / `lora_te2_` for CLIP-L and OpenCLIP-G's layers) as
/// an independent oracle.
fn comfyui_sdxl_lora_names() -> BTreeSet<String> {
    let resnet = [
        "in_layers_0",
        "in_layers_2",
        "emb_layers_1",
        "out_layers_0",
        "out_layers_3",
        "skip_connection",
    ];
    let block = [
        "norm1",
        "norm2",
        "norm3",
        "attn1_to_q",
        "attn1_to_k",
        "attn1_to_v",
        "attn1_to_out_0",
        "attn2_to_q",
        "attn2_to_k",
        "attn2_to_v",
        "attn2_to_out_0",
        "ff_net_0_proj",
        "ff_net_2",
    ];
    let mut names = BTreeSet::new();
    let mut transformer = |at: String, depth: usize| {
        for part in ["norm", "proj_in", "proj_out"] {
            names.insert(format!("lora_unet_{at}_{part}"));
        }
        for b in 0..depth {
            for item in block {
                names.insert(format!("lora_unet_{at}_transformer_blocks_{b}_{item}"));
            }
        }
    };
    // input_blocks: 1, 2 (320, no attention), 4, 5 (640, 2 blocks), 7, 8 (1280, 10 blocks)
    for (n, depth) in [(4, 2), (5, 2), (7, 10), (8, 10)] {
        transformer(format!("input_blocks_{n}_1"), depth);
    }
    transformer("middle_block_1".into(), 10);
    // output_blocks: 0–2 (1280, 10 blocks), 3–5 (640, 2 blocks), 6–8 (320)
    for n in 0..6 {
        transformer(format!("output_blocks_{n}_1"), if n < 3 { 10 } else { 2 });
    }
    let mut resnets: Vec<String> = [1, 2, 4, 5, 7, 8]
        .iter()
        .map(|n| format!("input_blocks_{n}_0"))
        .collect();
    resnets.extend(["middle_block_0".to_string(), "middle_block_2".to_string()]);
    resnets.extend((0..9).map(|n| format!("output_blocks_{n}_0")));
    for r in resnets {
        for inner in resnet {
            names.insert(format!("lora_unet_{r}_{inner}"));
        }
    }
    for m in [
        "input_blocks_0_0",
        "input_blocks_3_0_op",
        "input_blocks_6_0_op",
        "output_blocks_2_2_conv",
        "output_blocks_5_2_conv",
        "time_embed_0",
        "time_embed_2",
        "label_emb_0_0",
        "label_emb_0_2",
        "out_0",
        "out_2",
    ] {
        names.insert(format!("lora_unet_{m}"));
    }
    for (prefix, layers) in [("lora_te1", 12), ("lora_te2", 32)] {
        for b in 0..layers {
            for c in [
                "self_attn_q_proj",
                "self_attn_k_proj",
                "self_attn_v_proj",
                "self_attn_out_proj",
                "mlp_fc1",
                "mlp_fc2",
            ] {
                names.insert(format!("{prefix}_text_model_encoder_layers_{b}_{c}"));
            }
        }
    }
    names
}

#[test]
fn every_sdxl_lora_key_is_one_comfyui_loads_and_kohyas_counts_hold() {
    let device = Default::default();
    let comfy = comfyui_sdxl_lora_names();
    // LoCon adds 17 resnets × (conv1, conv2, time_emb_proj) + 11 shortcuts + 2 down- and 2 upsamplers
    for (conv_rank, unet_modules) in [(0usize, 722usize), (4, 722 + 66)] {
        let network = super::config::NetworkSection {
            rank: 4,
            alpha: 1.0,
            dropout: 0.0,
            conv_rank,
            conv_alpha: 1.0,
            train_text_encoder: true,
        };
        // base weights stay lazy: only the adapters are allocated
        let model = LoraModel::<TestBackend>::init(Architecture::Sdxl, &network, &device);
        let tensors = kohya_tensors(
            &model,
            Alphas {
                linear: 1.0,
                conv: 1.0,
            },
            Architecture::Sdxl,
        );
        let modules: BTreeSet<String> = tensors
            .iter()
            .filter_map(|t| t.name.strip_suffix(".lora_down.weight"))
            .map(str::to_string)
            .collect();
        assert_eq!(tensors.len(), modules.len() * 3, "down, up and alpha each");
        let unmapped: Vec<_> = modules.iter().filter(|m| !comfy.contains(*m)).collect();
        assert!(
            unmapped.is_empty(),
            "{} of {} modules unknown to ComfyUI: {:?}",
            unmapped.len(),
            modules.len(),
            &unmapped[..unmapped.len().min(10)]
        );
        let count = |p: &str| modules.iter().filter(|m| m.starts_with(p)).count();
        // kohya's sdxl_train_network.py logs "create LoRA for Text Encoder 1:
        // 72 modules", "Text Encoder 2: 192 modules", "U-Net: 722 modules"
        assert_eq!(
            (count("lora_unet_"), count("lora_te1_"), count("lora_te2_")),
            (unet_modules, 72, 192)
        );
    }
}

#[test]
fn saved_files_use_kohya_layouts_and_dtypes() {
    let dir = tempfile::tempdir().unwrap();
    let device = Default::default();
    let network = super::config::NetworkSection {
        rank: 4,
        alpha: 2.0,
        conv_rank: 2,
        ..Default::default()
    };
    let model = LoraModel::<TestBackend>::init(Architecture::Tiny, &network, &device);
    let path = dir.path().join("l.safetensors");
    let meta = BTreeMap::from([("ss_network_dim".to_string(), "4".to_string())]);
    save_lora(
        &path,
        &model,
        (
            Alphas {
                linear: 2.0,
                conv: 1.0,
            },
            Architecture::Tiny,
        ),
        &meta,
        SavePrecision::Fp16,
    )
    .unwrap();
    let bytes = std::fs::read(&path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let q = "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q";
    assert_eq!(
        st.tensor(&format!("{q}.lora_down.weight")).unwrap().shape(),
        &[4, 16]
    );
    assert_eq!(
        st.tensor(&format!("{q}.lora_up.weight")).unwrap().shape(),
        &[16, 4]
    );
    assert_eq!(
        st.tensor(&format!("{q}.lora_up.weight")).unwrap().dtype(),
        safetensors::Dtype::F16
    );
    let alpha = st.tensor(&format!("{q}.alpha")).unwrap();
    assert_eq!(
        (alpha.shape(), alpha.dtype()),
        (&[][..], safetensors::Dtype::F32)
    );
    let conv = "lora_unet_down_blocks_0_resnets_0_conv1";
    assert_eq!(
        st.tensor(&format!("{conv}.lora_down.weight"))
            .unwrap()
            .shape(),
        &[2, 16, 3, 3]
    );
    assert_eq!(
        st.tensor(&format!("{conv}.lora_up.weight"))
            .unwrap()
            .shape(),
        &[16, 2, 1, 1]
    );
    let proj = "lora_unet_down_blocks_0_attentions_0_proj_in";
    assert_eq!(
        st.tensor(&format!("{proj}.lora_down.weight"))
            .unwrap()
            .shape(),
        &[4, 16, 1, 1]
    );
}

#[test]
fn the_cli_trains_from_a_config_file_and_prints_kohya_lines() {
    let dir = tempfile::tempdir().unwrap();
    let base = tiny_base();
    let ckpt_path = dir.path().join("ldm.safetensors");
    write_ldm(&ckpt_path, &base);
    std::fs::write(
        dir.path().join("latents.safetensors"),
        fixture_dataset().to_bytes().unwrap(),
    )
    .unwrap();
    let config = r#"
[model]
checkpoint = "ldm.safetensors"
architecture = "tiny"
[network]
rank = 2
alpha = 1.0
[training]
device = "cpu"
learning_rate = 1e-3
optimizer = "lion"
weight_decay = 0.0
lr_scheduler = "cosine"
warmup_steps = 1
epochs = 2
batch_size = 2
seed = 1
noise_offset = 0.05
min_snr_gamma = 5.0
shuffle = true
[data]
latents = "latents.safetensors"
[output]
dir = "out"
name = "cli-lora"
save_every_n_epochs = 1
"#;
    let config_path = dir.path().join("engine.toml");
    std::fs::write(&config_path, config).unwrap();

    let mut out = Vec::new();
    let outcome = super::cli::run_train(&config_path, true, &mut out).unwrap();
    assert_eq!(outcome.steps, 2, "a dry run is two real steps");
    assert!(!dir.path().join("out").exists(), "a dry run writes nothing");

    let mut out = Vec::new();
    let outcome = super::cli::run_train(&config_path, false, &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    assert_eq!(outcome.steps, 4);
    for expected in [
        "running training / 学習開始",
        "  total optimization steps / 学習ステップ数: 4",
        "epoch 1/2",
        "steps: 100%|██████████| 4/4 [",
        "avr_loss=",
        "saving checkpoint: ",
        "cli-lora-000001.safetensors",
        "model saved.",
    ] {
        assert!(text.contains(expected), "missing `{expected}` in:\n{text}");
    }
    assert!(dir.path().join("out/cli-lora.safetensors").is_file());
    assert!(dir.path().join("out/cli-lora-000001.safetensors").is_file());
}

#[test]
fn the_cli_refuses_bad_usage_and_missing_configs() {
    assert_eq!(
        super::cli::run_engine_cli(&["train".into()]),
        super::cli::EXIT_USAGE
    );
    let missing = super::cli::run_engine_cli(&["train".into(), "/nonexistent/engine.toml".into()]);
    assert_eq!(missing, super::cli::EXIT_FAILED);
}

/// Parameter count from the lazy shapes: nothing is allocated.
fn lazy_param_count<B: burn::tensor::backend::Backend, M: burn::module::Module<B>>(
    module: &M,
) -> usize {
    struct Count(usize);
    impl<B: burn::tensor::backend::Backend> burn::module::ModuleVisitor<B> for Count {
        fn visit_float<const D: usize>(&mut self, param: &burn::module::Param<Tensor<B, D>>) {
            self.0 += param.lazy_shape().num_elements();
        }
    }
    let mut count = Count(0);
    module.visit(&mut count);
    count.0
}

#[test]
fn sd15_models_have_the_published_parameter_counts() {
    let device = Default::default();
    let unet = super::unet::UNet2DConditionModel::<TestBackend>::init(
        &super::unet::UNetConfig::sd15(),
        &Default::default(),
        &device,
    );
    // diffusers' UNet2DConditionModel for SD1.5: 859,520,964 parameters
    assert_eq!(lazy_param_count(&unet), 859_520_964);
    let clip = super::clip::ClipTextModel::<TestBackend>::init(
        &super::clip::ClipConfig::sd15(),
        None,
        &device,
    );
    // transformers' CLIPTextModel (ViT-L/14): 123,060,480 parameters
    assert_eq!(lazy_param_count(&clip), 123_060_480);
}

/// A CLIP vocabulary small enough for the tiny text encoder (64 ids):
/// the two special tokens, every letter alone and word-final, and a comma.
fn write_tiny_tokenizer(dir: &Path) {
    let mut vocab = BTreeMap::new();
    vocab.insert("<|startoftext|>".to_string(), 0);
    vocab.insert("<|endoftext|>".to_string(), 1);
    for (i, c) in ('a'..='z').enumerate() {
        vocab.insert(c.to_string(), 2 + i as i64);
        vocab.insert(format!("{c}</w>"), 28 + i as i64);
    }
    vocab.insert(",</w>".to_string(), 54);
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(
        dir.join("vocab.json"),
        serde_json::to_string(&vocab).unwrap(),
    )
    .unwrap();
    std::fs::write(dir.join("merges.txt"), "#version: 0.2\n").unwrap();
}

#[test]
fn a_generated_native_config_caches_the_pictures_and_trains() {
    use crate::backends::generate_config;
    use crate::plan::training::{ImageFolder, save_plan};

    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let ws = crate::studio::Workspace::open(root).unwrap();
    // The base model the artist has: a diffusers folder with its tokenizer.
    let checkpoint = root.join("models/tiny-sd");
    write_diffusers(&checkpoint, &tiny_base());
    write_tiny_tokenizer(&checkpoint.join("tokenizer"));
    // Four captioned pictures.
    let pics = root.join("pics/fox");
    std::fs::create_dir_all(&pics).unwrap();
    for i in 0..4u32 {
        image::RgbImage::from_fn(80, 64, |x, y| {
            image::Rgb([(x * 3 + i * 40) as u8, (y * 4) as u8, (i * 60) as u8])
        })
        .save(pics.join(format!("fox{i}.png")))
        .unwrap();
        std::fs::write(
            pics.join(format!("fox{i}.txt")),
            "zkfox, red fox, snow, night, ink",
        )
        .unwrap();
    }
    // The plan, as the plan tools save it, and Gate 2's config generator.
    let mut plan = crate::backends::native::tests::native_plan();
    plan.project = "ink-fox".into();
    plan.model_path = Some(path_str(&checkpoint));
    plan.image_folders = vec![ImageFolder {
        path: "pics/fox".into(),
        images: 4,
    }];
    plan.repeats = 1;
    plan.epochs = 2;
    plan.batch_size = 2;
    plan.save_every_epochs = 1;
    plan.gpu = None;
    save_plan(&ws, &plan).unwrap();
    let generated = generate_config(&ws, "ink-fox", None).unwrap();
    let engine_toml = generated
        .files
        .iter()
        .find(|f| f.path.ends_with("engine.toml"))
        .map(|f| root.join(&f.path))
        .unwrap();
    // The only edits: the tiny architecture and 64 px pictures stand in
    // for SD1.5's numbers, so the test trains in seconds.
    let text = std::fs::read_to_string(&engine_toml).unwrap();
    for expected in ["architecture = \"sd15\"", "resolution = 512"] {
        assert!(text.contains(expected), "{text}");
    }
    std::fs::write(
        &engine_toml,
        text.replace("architecture = \"sd15\"", "architecture = \"tiny\"")
            .replace("resolution = 512", "resolution = 64"),
    )
    .unwrap();

    let run = |dry_run: bool| {
        let mut out = Vec::new();
        let result = super::cli::run_train(&engine_toml, dry_run, &mut out);
        (result, String::from_utf8(out).unwrap())
    };
    let (result, text) = run(false);
    let outcome = result.unwrap();
    assert_eq!(outcome.steps, 4, "{text}");
    assert!(text.contains("caching latents: 4 pictures"), "{text}");
    assert!(text.contains("model saved."), "{text}");
    let lora = outcome.saved.last().unwrap();
    assert!(lora.is_file());
    let config = EngineConfig::load(&engine_toml).unwrap();
    assert!(config.data.latents.is_file());
    assert_eq!(
        config.training.optimizer,
        super::config::OptimizerKind::Prodigy
    );

    // Unchanged pictures and captions: the cache is reused, not rebuilt.
    let (result, text) = run(true);
    result.unwrap();
    assert!(text.contains("cached in"), "{text}");
    assert!(!text.contains("caching latents"), "{text}");

    // An edited caption makes it stale.
    std::fs::write(pics.join("fox2.txt"), "zkfox, fox, forest").unwrap();
    let (result, text) = run(true);
    result.unwrap();
    assert!(text.contains("caching latents: 4 pictures"), "{text}");
    let cached = LatentDataset::load(&config.data.latents).unwrap();
    assert_eq!(
        cached.samples[2].caption.as_deref(),
        Some("zkfox, fox, forest")
    );

    // A picture without a caption is refused by name, and the cache is kept.
    std::fs::remove_file(pics.join("fox3.txt")).unwrap();
    let before = std::fs::read(&config.data.latents).unwrap();
    let (result, _) = run(true);
    match result {
        Err(e @ EngineError::Uncaptioned { .. }) => {
            assert!(e.to_string().contains("fox3.png"), "{e}");
            assert!(e.hint().unwrap().contains("caption"));
        }
        other => panic!("expected the uncaptioned picture to be refused: {other:?}"),
    }
    assert_eq!(std::fs::read(&config.data.latents).unwrap(), before);
}

#[test]
fn a_single_file_checkpoint_without_a_vocabulary_uses_clips_own_or_is_refused_with_a_way_out() {
    let dir = tempfile::tempdir().unwrap();
    let ckpt = dir.path().join("sd15.safetensors");
    write_ldm(&ckpt, &tiny_base());
    let pics = dir.path().join("pics");
    std::fs::create_dir_all(&pics).unwrap();
    image::RgbImage::new(64, 64)
        .save(pics.join("a.png"))
        .unwrap();
    std::fs::write(pics.join("a.txt"), "zkfox").unwrap();
    let text = format!(
        "[model]\ncheckpoint = \"{}\"\narchitecture = \"tiny\"\n[data]\nlatents = \"cache.safetensors\"\nfolders = [\"{}\"]\nresolution = 64\n[output]\ndir = \"out\"\nname = \"x\"\n",
        path_str(&ckpt),
        path_str(&pics)
    );
    let mut config = EngineConfig::parse(&text).unwrap();
    config.data.latents = dir.path().join("cache.safetensors");
    // Nowhere to find CLIP's files: not beside the checkpoint, not in a
    // Hugging Face cache.
    let empty_home = dir.path().join("home");
    config.data.tokenizer = None;
    let found = super::data::find_tokenizer_in(&config, Some(&empty_home));
    match found {
        Err(e @ EngineError::NoTokenizer { .. }) => {
            assert!(e.hint().unwrap().contains("data.tokenizer"), "{e}");
        }
        other => panic!("expected NoTokenizer: {other:?}"),
    }
    // A full-size model falls back to CLIP's own vocabulary, built in:
    // SD1.5 and SDXL read prompts with it.
    for arch in [Architecture::Sd15, Architecture::Sdxl] {
        let mut full = config.clone();
        full.model.architecture = arch;
        let (tokenizer, from) = super::data::open_tokenizer_in(&full, Some(&empty_home)).unwrap();
        assert_eq!(from, None);
        let clip = crate::clip_bpe::clip().unwrap();
        assert_eq!(
            tokenizer.encode("zkfox, a fox in the snow"),
            clip.encode("zkfox, a fox in the snow")
        );
        assert_eq!((tokenizer.bos, tokenizer.eos), (49406, 49407));
    }
    // The tiny model's vocabulary is its own: no fallback.
    assert!(matches!(
        super::data::open_tokenizer_in(&config, Some(&empty_home)),
        Err(EngineError::NoTokenizer { .. })
    ));
    // Pointing `data.tokenizer` at the files works.
    write_tiny_tokenizer(&dir.path().join("clip"));
    config.data.tokenizer = Some(dir.path().join("clip"));
    assert_eq!(
        super::data::find_tokenizer(&config).unwrap(),
        dir.path().join("clip")
    );
}

#[test]
fn shuffled_captions_keep_the_trigger_first_and_change_the_tokens() {
    let dir = tempfile::tempdir().unwrap();
    write_tiny_tokenizer(dir.path());
    let tokenizer = super::tokenizer::ClipTokenizer::from_files(
        &dir.path().join("vocab.json"),
        &dir.path().join("merges.txt"),
    )
    .unwrap();
    let caption = "zk, a, b, c, d";
    let dataset = LatentDataset {
        samples: vec![LatentSample {
            latents: vec![0.0; 4 * 8 * 8],
            shape: [4, 8, 8],
            input_ids: tokenizer.encode_padded(caption, 16),
            caption: Some(caption.into()),
            folder: None,
            image_size: None,
        }],
        fingerprint: None,
    };
    let mut rng = SplitMix64::new(5);
    let mut orders = BTreeSet::new();
    for _ in 0..20 {
        let ids = super::train::shuffled_ids(&dataset, &[0], &tokenizer, 1, &mut rng);
        assert_eq!(ids.len(), 16);
        // <bos> z k ,  — the trigger stays first.
        assert_eq!(&ids[..4], &dataset.samples[0].input_ids[..4]);
        orders.insert(ids);
    }
    assert!(orders.len() > 3, "the other tags change order: {orders:?}");
}

fn path_str(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}
