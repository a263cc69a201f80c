//! The native engine trained to COMPLETE through the four gates and
//! `ategnatos train`, on the CPU, with a toy SD1.5 checkpoint: the run's
//! supervisor starts this very binary as `ategnatos engine train`, keeps its
//! checkpoint, and records the LoRA it wrote.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout,
    clippy::disallowed_methods
)]

mod common;

use common::fake_trainer::{ategnatos, run};
use common::native::native_project_with;
use serde_json::Value;

#[test]
fn the_native_engine_trains_a_toy_model_to_complete_behind_the_gates() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().canonicalize().unwrap();
    // Four pictures shown once, batch 2: two steps an epoch, two epochs,
    // a checkpoint after the first.
    native_project_with(
        &root,
        &["--epochs", "2", "--repeats", "1", "--save-every", "1"],
    );
    run(
        ategnatos(&root, None).args(["gate", "2", "--project", "fox"]),
        0,
    );
    run(
        ategnatos(&root, None).args(["gate", "3", "--project", "fox"]),
        0,
    );
    run(ategnatos(&root, None).args(["dry-run", "fox"]), 0);
    let text = run(ategnatos(&root, None).args(["train", "fox", "--json"]), 0);
    let r: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(r["state"], "complete", "{r}");
    assert_eq!(r["backend"], "native", "{r}");
    assert!(
        r["command_line"].as_str().unwrap().contains("engine train"),
        "{r}"
    );
    assert_eq!(r["steps_done"], r["total_steps"], "{r}");
    assert_eq!(r["total_steps"], 4, "{r}");
    let loss = r["last_loss"].as_f64().unwrap();
    assert!(loss.is_finite() && loss > 0.0, "{r}");
    // The engine's LoRA, a whole safetensors file, and the epoch-1 save kept.
    let lora = root.join(r["final_lora"]["path"].as_str().unwrap());
    let bytes = std::fs::read(&lora).unwrap();
    let header = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let meta: Value = serde_json::from_slice(&bytes[8..8 + header]).unwrap();
    assert!(
        meta.as_object()
            .unwrap()
            .keys()
            .any(|k| k.contains("lora_down")),
        "{meta}"
    );
    assert_eq!(r["checkpoints"].as_array().unwrap().len(), 1, "{r}");
    let progress =
        std::fs::read_to_string(root.join(r["progress_file"].as_str().unwrap())).unwrap();
    assert!(progress.contains("**COMPLETE**"), "{progress}");
}
