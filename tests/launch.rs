//! Training behind the four gates, with the fake trainer as a real
//! subprocess: refused while a gate is stale, a full run to COMPLETE with
//! its record and log, a NaN loss stopping the run as FAILED with the step.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout,
    clippy::disallowed_methods
)]

mod common;

use std::path::{Path, PathBuf};

use common::fake_trainer::{ategnatos, install, project_through_gate_2, run};

/// A GPU machine with kohya installed, the project through Gate 4.
fn through_gate_4(root: &Path) -> PathBuf {
    project_through_gate_2(root, "kohya", 1);
    let dir = install(root, "kohya", &[], true);
    let smi = dir.join("fake-nvidia-smi");
    run(
        ategnatos(root, Some(&smi)).args(["gate", "3", "--project", "fox"]),
        0,
    );
    run(ategnatos(root, Some(&smi)).args(["dry-run", "fox"]), 0);
    dir
}

fn runs(root: &Path) -> usize {
    std::fs::read_dir(root.join("grimoire/training/fox/runs"))
        .map(|d| d.count())
        .unwrap_or(0)
}

#[test]
fn training_starts_only_behind_fresh_gates_and_runs_to_complete() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().canonicalize().unwrap();
    let dir = through_gate_4(&root);
    let smi = dir.join("fake-nvidia-smi");

    // A caption edited after the gates: refused, the gate named, nothing started.
    let caption = root.join("clean/p0.txt");
    let old = std::fs::read_to_string(&caption).unwrap();
    std::fs::write(&caption, format!("{old}, dusk")).unwrap();
    let said = run(ategnatos(&root, Some(&smi)).args(["train", "fox"]), 2);
    assert!(said.contains("training comes after gate 1"), "{said}");
    assert!(
        said.contains("stale") && said.contains("run gate 1 again"),
        "{said}"
    );
    assert_eq!(runs(&root), 0);
    std::fs::write(&caption, old).unwrap();

    // Fresh again: the whole run, to COMPLETE.
    let text = run(
        ategnatos(&root, Some(&smi)).args(["train", "fox", "--json"]),
        0,
    );
    let r: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(r["state"], "complete", "{r}");
    let done = r["steps_done"].as_u64().unwrap();
    assert!(done >= 10, "{r}");
    assert!(
        r["last_loss"].as_f64().unwrap() < r["first_loss"].as_f64().unwrap(),
        "{r}"
    );
    // The exact command Gate 2 wrote: the generated config, not a copy.
    assert!(
        r["command_line"]
            .as_str()
            .unwrap()
            .contains("workspace/configs/fox/kohya/config.toml"),
        "{r}"
    );
    let log = root.join(r["log_file"].as_str().unwrap());
    let log = std::fs::read_to_string(log).unwrap();
    assert!(log.contains("model saved."), "{log}");
    assert!(log.contains(&format!("{done}/{done}")), "{log}");
    // Its status reads back the same.
    let status = run(ategnatos(&root, Some(&smi)).args(["status", "fox"]), 0);
    assert!(
        status.contains("COMPLETE") && status.contains(&format!("step {done} of")),
        "{status}"
    );
}

#[test]
fn a_nan_loss_stops_the_run_as_failed_with_the_step() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().canonicalize().unwrap();
    let dir = through_gate_4(&root);
    let smi = dir.join("fake-nvidia-smi");
    // kohya would train on with `avr_loss=nan`; the run must stop.
    std::fs::write(
        dir.join("fake-trainer.json"),
        r#"{"fail": "nan", "at_step": 5}"#,
    )
    .unwrap();
    let text = run(
        ategnatos(&root, Some(&smi)).args(["train", "fox", "--json"]),
        1,
    );
    let r: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(r["state"], "failed", "{r}");
    assert_eq!(r["steps_done"], 4, "{r}");
    let failure = r["failure"].as_str().unwrap();
    assert!(
        failure.contains("the loss became NaN at step 5"),
        "{failure}"
    );
    let log = std::fs::read_to_string(root.join(r["log_file"].as_str().unwrap())).unwrap();
    assert!(log.contains("avr_loss=nan"), "{log}");
    let status = run(ategnatos(&root, Some(&smi)).args(["status", "fox"]), 0);
    assert!(status.contains("FAILED"), "{status}");
}
