//! A Mac with Apple Silicon, as the trainer's own PyTorch reports it (the
//! fake trainer's `--torch mps`: no CUDA, the Metal backend available, its
//! recommended memory): the environment check trains on "Apple MPS", checks
//! the plan's memory against the Mac's, names the changes an MPS run needs,
//! and blocks what MPS cannot do (an 8-bit optimizer).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout,
    clippy::disallowed_methods
)]

mod common;

use std::process::Command;

use common::fake_trainer::{ategnatos, fake_trainer_script, project_through_gate_2, python, run};
use serde_json::Value;

#[test]
fn apple_silicon_trains_on_mps_with_the_changes_it_needs() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().canonicalize().unwrap();
    project_through_gate_2(&root, "kohya", 1);
    let out = Command::new(python())
        .arg(fake_trainer_script())
        .args(["install", "--backend", "kohya", "--torch", "mps", "--dir"])
        .arg(root.join("backends/kohya"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");

    // The preset's 8-bit optimizer cannot run there: blocked, with what to plan instead.
    let text = run(
        ategnatos(&root, None).args(["env", "--project", "fox", "--json"]),
        1,
    );
    let r: Value = serde_json::from_str(&text).unwrap();
    let findings = r["findings"].to_string();
    assert!(
        findings.contains("bitsandbytes library has no MPS support")
            && findings.contains("plan again with AdamW or Lion"),
        "{findings}"
    );

    // Planned with AdamW, it runs on the Mac's MPS with the changes it needs.
    run(
        ategnatos(&root, None).args([
            "plan",
            "fox",
            "--optimizer",
            "AdamW",
            "--backend",
            "kohya",
            "--model-path",
            "models/base.safetensors",
        ]),
        0,
    );
    run(ategnatos(&root, None).args(["config", "fox"]), 0);
    let text = run(
        ategnatos(&root, None).args(["env", "--project", "fox", "--json"]),
        0,
    );
    let r: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(r["accelerator"], "Apple MPS", "{r}");
    assert_eq!(r["python"]["answer"]["torch"]["mps_available"], true, "{r}");
    assert_eq!(r["memory"]["device"], "Apple MPS", "{r}");
    assert!(
        (r["memory"]["total_gib"].as_f64().unwrap() - 16.0).abs() < 0.01,
        "{r}"
    );
    let changes = r["apple_plan_changes"].to_string();
    assert!(changes.contains("no fp16 mixed precision"), "{changes}");
    assert!(
        changes.contains("bitsandbytes has no MPS support"),
        "{changes}"
    );
    assert!(
        r["summary"].as_str().unwrap().contains("with Apple's MPS"),
        "{r}"
    );
}
