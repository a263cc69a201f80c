//! The whole path on the `sd15_toy` architecture, as a user would run it:
//! `engine init-checkpoint` writes a random checkpoint with SD1.5's block
//! layout, `engine train` checks it, caches a folder of pictures, trains and
//! writes a LoRA whose metadata is read back key by key in kohya's formats;
//! a checkpoint whose attention keys were renamed is refused before any
//! picture is encoded, with the renamed keys named. The same path on
//! `sdxl_toy`: SDXL's layout, both text encoders (the second in OpenCLIP's
//! own layout in the single file), kohya's SDXL LoRA names.

use std::path::Path;

use sha2::{Digest, Sha256};

use super::EngineError;
use super::cli::{EXIT_OK, run_engine_cli, run_train};
use super::safetensors_file::SafetensorsFile;
use crate::studio::Hint;

fn path_str(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

/// Four captioned pictures in `dir/fox`, two square (64 px) and two twice
/// as wide as high (96 x 48); returns the folder.
fn write_pictures(dir: &Path) -> std::path::PathBuf {
    let pics = dir.join("fox");
    std::fs::create_dir_all(&pics).unwrap();
    for i in 0..4u32 {
        let (w, h) = if i % 2 == 0 { (64, 64) } else { (96, 48) };
        image::RgbImage::from_fn(w, h, |x, y| {
            image::Rgb([(x * 3 + i * 40) as u8, (y * 4) as u8, (i * 60) as u8])
        })
        .save(pics.join(format!("fox{i}.png")))
        .unwrap();
        let caption = if i % 2 == 0 {
            "zkfox, Red Fox, snow"
        } else {
            "zkfox, red fox, night"
        };
        std::fs::write(pics.join(format!("fox{i}.txt")), caption).unwrap();
    }
    pics
}

fn write_config(dir: &Path, checkpoint: &Path, pics: &Path) -> std::path::PathBuf {
    write_config_for(dir, checkpoint, pics, "sd15_toy", "")
}

fn write_config_for(
    dir: &Path,
    checkpoint: &Path,
    pics: &Path,
    arch: &str,
    network: &str,
) -> std::path::PathBuf {
    let text = format!(
        r#"
[model]
checkpoint = "{}"
architecture = "{arch}"
[network]
rank = 2
alpha = 1.0
{network}
[training]
device = "cpu"
learning_rate = 1e-4
optimizer = "adam_w"
epochs = 2
batch_size = 2
seed = 7
[data]
latents = "{}"
folders = ["{}"]
resolution = 256
shuffle_caption = true
keep_tokens = 1
[output]
dir = "{}"
name = "ink-fox"
"#,
        path_str(checkpoint),
        path_str(&dir.join("cache/latents.safetensors")),
        path_str(pics),
        path_str(&dir.join("out")),
    );
    let path = dir.join("engine.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn init_checkpoint(out: &Path, layout: &str) {
    init_checkpoint_for(out, layout, "sd15_toy");
}

fn init_checkpoint_for(out: &Path, layout: &str, arch: &str) {
    let args: Vec<String> = [
        "init-checkpoint",
        &path_str(out),
        "--arch",
        arch,
        "--layout",
        layout,
        "--dtype",
        "f32",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    assert_eq!(run_engine_cli(&args), EXIT_OK);
}

#[test]
fn the_sd15_shaped_toy_trains_through_engine_train_and_its_lora_carries_kohyas_metadata() {
    let dir = tempfile::tempdir().unwrap();
    let checkpoint = dir.path().join("models/toy-sd15.safetensors");
    std::fs::create_dir_all(checkpoint.parent().unwrap()).unwrap();
    init_checkpoint(&checkpoint, "ldm");
    let pics = write_pictures(dir.path());
    let config = write_config(dir.path(), &checkpoint, &pics);

    let mut out = Vec::new();
    let outcome = run_train(&config, false, &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    assert_eq!(outcome.steps, 4, "{text}");
    // it talks while it works: the header check, the VAE, the pictures,
    // the model, then the steps
    let order = [
        "checkpoint: ",
        "loading vae: ",
        "caching latents: ",
        "loading model: ",
        "steps:   0%",
        "model saved.",
    ];
    let mut from = 0;
    for expected in order {
        let at = text[from..]
            .find(expected)
            .unwrap_or_else(|| panic!("no `{expected}` after byte {from} in:\n{text}"));
        from += at + expected.len();
    }
    assert!(
        text.contains("4/4"),
        "the last picture is reported:\n{text}"
    );

    let lora = SafetensorsFile::open(outcome.saved.last().unwrap()).unwrap();
    let meta = &lora.metadata;
    let get = |key: &str| {
        meta.get(key)
            .map(String::as_str)
            .unwrap_or_else(|| panic!("no `{key}` in {meta:?}"))
    };
    // kohya's train_network.py writes these values for the same settings
    let sha = {
        let bytes = std::fs::read(&checkpoint).unwrap();
        Sha256::digest(&bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    };
    for (key, expected) in [
        ("ss_output_name", "ink-fox"),
        ("ss_sd_model_name", "toy-sd15.safetensors"),
        ("ss_new_sd_model_hash", sha.as_str()),
        ("ss_num_epochs", "2"),
        ("ss_epoch", "2"),
        ("ss_steps", "4"),
        ("ss_max_train_steps", "4"),
        ("ss_seed", "7"),
        ("ss_shuffle_caption", "True"),
        ("ss_keep_tokens", "1"),
        ("ss_cache_latents", "True"),
        ("ss_mixed_precision", "no"),
        ("ss_network_module", "networks.lora"),
        ("ss_network_dim", "2"),
        ("ss_network_alpha", "1.0"),
        ("ss_learning_rate", "0.0001"),
        ("ss_resolution", "(256, 256)"),
        // the smallest and largest bucket side, as kohya writes
        // min_bucket_reso and max_bucket_reso (not the bucket step, 64)
        ("ss_min_bucket_reso", "128"),
        ("ss_max_bucket_reso", "512"),
        ("ss_enable_bucket", "True"),
        ("ss_bucket_no_upscale", "False"),
        ("ss_num_train_images", "4"),
        ("ss_batch_size_per_device", "2"),
        ("ss_base_model_version", "sd_v1"),
        ("ss_v2", "False"),
        (
            "ss_dataset_dirs",
            r#"{"fox": {"n_repeats": 1, "img_count": 4}}"#,
        ),
        (
            "ss_tag_frequency",
            r#"{"fox": {"zkfox": 4, "red fox": 4, "snow": 2, "night": 2}}"#,
        ),
        ("modelspec.architecture", "stable-diffusion-v1/lora"),
        ("modelspec.resolution", "256x256"),
        ("modelspec.prediction_type", "epsilon"),
    ] {
        assert_eq!(get(key), expected, "`{key}`");
    }
    // the A1111 legacy hash: 8 hex digits; the LoRA's own hashes are there
    assert_eq!(get("ss_sd_model_hash").len(), 8);
    for key in [
        "sshs_model_hash",
        "sshs_legacy_hash",
        "modelspec.title",
        "modelspec.date",
    ] {
        assert!(!get(key).is_empty(), "`{key}` is empty");
    }
    // the tag frequency parses as the JSON Civitai reads
    let tags: serde_json::Value = serde_json::from_str(get("ss_tag_frequency")).unwrap();
    assert_eq!(tags["fox"]["zkfox"], 4);
    // kohya's bucket_info: the square pictures in the 256 px square, the
    // wide ones in the bucket nearest 2:1 (320 x 192), numbered in sorted
    // order, with the mean distance of the aspect ratios
    let buckets: serde_json::Value = serde_json::from_str(get("ss_bucket_info")).unwrap();
    assert_eq!(
        buckets["buckets"],
        serde_json::json!({
            "0": {"resolution": [256, 256], "count": 2},
            "1": {"resolution": [320, 192], "count": 2},
        }),
        "{buckets}"
    );
    let error = buckets["mean_img_ar_error"].as_f64().unwrap();
    let expected = (320.0 / 192.0 - 2.0_f64).abs() / 2.0;
    assert!((error - expected).abs() < 1e-12, "{error} vs {expected}");
}

#[test]
fn a_checkpoint_with_renamed_attention_keys_is_refused_before_any_picture_is_encoded() {
    let dir = tempfile::tempdir().unwrap();
    let checkpoint = dir.path().join("models/toy-sd15");
    init_checkpoint(&checkpoint, "diffusers");
    // an export that calls the attention projections by other names
    let unet = checkpoint.join("unet/diffusion_pytorch_model.safetensors");
    let bytes = std::fs::read(&unet).unwrap();
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let renamed: Vec<(String, safetensors::tensor::TensorView)> = file
        .tensors()
        .into_iter()
        .map(|(name, view)| (name.replace(".to_q.", ".query."), view))
        .collect();
    let count = renamed
        .iter()
        .filter(|(n, _)| n.contains(".query."))
        .count();
    assert!(count > 0);
    safetensors::serialize_to_file(renamed, None, &unet).unwrap();

    let pics = write_pictures(dir.path());
    let config = write_config(dir.path(), &checkpoint, &pics);
    let mut out = Vec::new();
    let err = run_train(&config, false, &mut out).unwrap_err();
    let text = String::from_utf8(out).unwrap();
    match &err {
        EngineError::WrongCheckpoint { .. } => {}
        other => panic!("expected the checkpoint to be refused: {other:?}"),
    }
    let message = err.to_string();
    assert!(
        message.contains(&format!(
            "{count} UNet attention keys have other names than SD1.5's"
        )),
        "{message}"
    );
    assert!(message.contains(".query."), "{message}");
    assert!(err.hint().unwrap().contains("convert"), "{:?}", err.hint());
    // nothing slow ran and nothing was written
    assert!(!text.contains("caching latents"), "{text}");
    assert!(!dir.path().join("cache").exists());
    assert!(!dir.path().join("out").exists());
}

#[test]
fn the_sdxl_shaped_toy_trains_from_both_layouts_and_its_lora_has_kohyas_sdxl_names() {
    let dir = tempfile::tempdir().unwrap();
    let pics = write_pictures(dir.path());
    let mut modules_by_layout = Vec::new();
    for layout in ["ldm", "diffusers"] {
        let run = dir.path().join(layout);
        let checkpoint = run.join("models/toy-sdxl.safetensors");
        std::fs::create_dir_all(checkpoint.parent().unwrap()).unwrap();
        init_checkpoint_for(&checkpoint, layout, "sdxl_toy");
        let config = write_config_for(
            &run,
            &checkpoint,
            &pics,
            "sdxl_toy",
            "train_text_encoder = true\nconv_rank = 2\nconv_alpha = 1.0",
        );
        let mut out = Vec::new();
        let outcome = run_train(&config, false, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(outcome.steps, 4, "{text}");
        assert!(outcome.losses.iter().all(|l| l.is_finite()), "{text}");
        assert!(text.contains("the SDXL model needs are there"), "{text}");

        let lora = SafetensorsFile::open(outcome.saved.last().unwrap()).unwrap();
        let get = |key: &str| lora.metadata.get(key).cloned().unwrap_or_default();
        assert_eq!(get("ss_base_model_version"), "sdxl_base_v1-0");
        assert_eq!(
            get("modelspec.architecture"),
            "stable-diffusion-xl-v1-base/lora"
        );
        assert_eq!(
            get("modelspec.implementation"),
            "https://github.com/Stability-AI/generative-models"
        );
        assert_eq!(get("ss_v2"), "False");
        assert_eq!(get("modelspec.resolution"), "256x256");
        let modules: std::collections::BTreeSet<String> = lora
            .keys()
            .filter_map(|k| k.strip_suffix(".lora_down.weight"))
            .map(str::to_string)
            .collect();
        let count = |prefix: &str| modules.iter().filter(|m| m.starts_with(prefix)).count();
        // te1: 2 layers × 6, te2: 3 layers × 6; no `lora_te_`
        assert_eq!(count("lora_te1_text_model_encoder_layers_"), 12);
        assert_eq!(count("lora_te2_text_model_encoder_layers_"), 18);
        assert_eq!(count("lora_te_"), 0);
        // the UNet by its SGM names: no diffusers names
        assert_eq!(count("lora_unet_down_blocks_"), 0);
        for module in [
            "lora_unet_input_blocks_4_1_proj_in",
            "lora_unet_input_blocks_8_1_transformer_blocks_1_attn2_to_k",
            "lora_unet_middle_block_1_transformer_blocks_2_ff_net_0_proj",
            "lora_unet_output_blocks_0_1_transformer_blocks_2_attn1_to_out_0",
            "lora_unet_output_blocks_2_2_conv",
            "lora_unet_input_blocks_3_0_op",
            "lora_unet_input_blocks_1_0_in_layers_2",
        ] {
            assert!(modules.contains(module), "no `{module}` in {modules:?}");
        }
        // SDXL's proj_in is a linear layer: its adapter is 2-d, as kohya's
        let down = lora
            .shape("lora_unet_input_blocks_4_1_proj_in.lora_down.weight")
            .unwrap();
        assert_eq!(down, [2, 16]);
        modules_by_layout.push(modules);
    }
    assert_eq!(
        modules_by_layout[0], modules_by_layout[1],
        "both layouts train the same modules"
    );
    // clip_skip has no meaning for SDXL: refused, not silently ignored
    let config = write_config_for(
        &dir.path().join("ldm"),
        &dir.path().join("ldm/models/toy-sdxl.safetensors"),
        &pics,
        "sdxl_toy",
        "",
    );
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("[network]", "clip_skip = 2\n[network]");
    std::fs::write(&config, text).unwrap();
    let err = run_train(&config, false, &mut Vec::new()).unwrap_err();
    assert!(err.to_string().contains("clip_skip"), "{err}");
}
