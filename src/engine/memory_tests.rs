//! Peak memory while loading a checkpoint, measured where it can be: in a
//! process of its own. The test writes a mid-size checkpoint (SD1.5's UNet
//! layout at a quarter of its widths, 215 MB in f32), then runs this very
//! test binary again on the ignored [`load_in_this_process`], which loads
//! it as training does and prints its resident memory before loading and
//! its peak after. Reading the whole file first (what the engine did) needs
//! the file plus the model; streaming tensor by tensor needs the model plus
//! one tensor.
//!
//! The full-size figure (SD1.5, 4 GB of f32 weights) comes from
//! `ategnatos-engine-bench --memory --arch sd15`, too big for CI.

use std::path::Path;
use std::process::Command;

use safetensors::Dtype;

use super::init_checkpoint::{FileTensor, module_tensors, write_tensors};
use super::unet::{LoraTargets, UNet2DConditionModel, UNetConfig};
use super::vae::VaeConfig;
use super::weights::{Checkpoint, Component, load_component};
use super::{CpuBackend, bench};

const CHECKPOINT_ENV: &str = "ATEGNATOS_MEMORY_TEST_CHECKPOINT";

/// SD1.5's UNet layout at a quarter of its widths: 54 M parameters.
fn quarter_unet() -> UNetConfig {
    UNetConfig {
        block_out_channels: vec![80, 160, 320, 320],
        norm_num_groups: 16,
        cross_attention_dim: 192,
        ..UNetConfig::sd15()
    }
}

/// Run by the test below in a child process; does nothing on its own.
#[test]
#[ignore = "run by loading_a_checkpoint_holds_the_model_plus_one_tensor in a process of its own"]
fn load_in_this_process() {
    let Some(dir) = std::env::var_os(CHECKPOINT_ENV) else {
        return;
    };
    let config = quarter_unet();
    let checkpoint = Checkpoint::open(Path::new(&dir), &[Component::Unet]).unwrap();
    let weights = checkpoint
        .component(Component::Unet, &config, &VaeConfig::tiny())
        .unwrap();
    let device = Default::default();
    let before = bench::resident_bytes().unwrap();
    let unet = UNet2DConditionModel::<CpuBackend>::init(&config, &LoraTargets::default(), &device);
    let (unet, report) = load_component(unet, &weights, &device);
    assert!(report.is_complete(), "{}", report.summary());
    let peak = bench::peak_resident_bytes().unwrap();
    let model = bench::base_parameter_bytes(&unet);
    println!("MEMORY before={before} peak={peak} model={model}");
}

#[test]
#[cfg(target_os = "linux")]
fn loading_a_checkpoint_holds_the_model_plus_one_tensor() {
    let dir = tempfile::tempdir().unwrap();
    let config = quarter_unet();
    let unet = UNet2DConditionModel::<CpuBackend>::init(
        &config,
        &LoraTargets::default(),
        &Default::default(),
    );
    let tensors = module_tensors(&unet, Component::Unet);
    let named = tensors
        .iter()
        .map(|t| FileTensor::whole(t.name.clone(), t))
        .collect();
    let file = dir.path().join(Component::Unet.diffusers_file());
    let file_bytes = write_tensors(&file, named, Dtype::F32, 1, &Default::default()).unwrap();

    let output = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "engine::memory_tests::load_in_this_process",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHECKPOINT_ENV, dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // libtest prints `test … ... ` on the same line before the output
    let line = stdout
        .lines()
        .find_map(|l| l.find("MEMORY ").map(|at| &l[at..]))
        .unwrap_or_else(|| panic!("no MEMORY line in {stdout}"));
    let field = |name: &str| -> u64 {
        line.split_whitespace()
            .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in {line}"))
    };
    let (before, peak, model) = (field("before"), field("peak"), field("model"));
    // the model in f32 plus a small constant: the largest tensor here is
    // 7 MB, read once, converted once and transposed once
    let bound = model + 64 * 1024 * 1024;
    let grown = peak.saturating_sub(before);
    assert!(
        grown <= bound,
        "loading grew the process by {grown} bytes; the model is {model} bytes, the file {file_bytes}"
    );
    // and the bound is one that reading the whole file first would break
    assert!(
        file_bytes + model > bound,
        "the test file is too small to tell"
    );
}
