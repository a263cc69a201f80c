//! Gate 4 end to end: the plan's own trainer (the fake one in
//! `fixtures/fake-trainer/`, run as a real subprocess through the real
//! command line each backend uses) runs a few steps on the real dataset and
//! model file. A clean run passes with its losses; each way the real
//! trainers fail is diagnosed and named in the record; a changed caption
//! makes gates 1 and 4 stale, a changed plan gates 2 and 4.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout,
    clippy::disallowed_methods
)]

mod common;

use std::path::{Path, PathBuf};

use ategnatos::gates::{Gate, GateStatus};
use common::fake_trainer::{ategnatos, install, project_through_gate_2, record, run, states};

/// A GPU machine with `backend` installed, the project through Gate 3.
fn through_gate_3(root: &Path, backend: &str, batch: u32) -> PathBuf {
    project_through_gate_2(root, backend, batch);
    let dir = install(root, backend, &[], true);
    let smi = dir.join("fake-nvidia-smi");
    run(
        ategnatos(root, Some(&smi)).args(["gate", "3", "--project", "fox"]),
        0,
    );
    dir
}

fn fail_with(dir: &Path, setting: &str) {
    std::fs::write(dir.join("fake-trainer.json"), setting).unwrap();
}

/// Runs the dry run, expecting FAIL, and returns the record's findings as text.
fn dry_run_fails(root: &Path, smi: &Path, extra: &[&str]) -> String {
    let text = run(
        ategnatos(root, Some(smi))
            .args(["dry-run", "fox"])
            .args(extra),
        1,
    );
    let rec = record(root, Gate::DryRun);
    assert_eq!(rec.status, GateStatus::Fail, "{text}");
    let findings: Vec<String> = rec
        .findings
        .iter()
        .map(|f| format!("{} — {}", f.message, f.what_to_do))
        .collect();
    format!("{}\n{text}", findings.join("\n"))
}

#[test]
fn kohya_passes_then_each_failure_is_diagnosed_and_named() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().canonicalize().unwrap();
    let dir = through_gate_3(&root, "kohya", 2);
    let smi = dir.join("fake-nvidia-smi");

    // A clean run: three steps with finite losses, the log kept.
    let text = run(
        ategnatos(&root, Some(&smi)).args(["dry-run", "fox", "--json"]),
        0,
    );
    let g: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(g["decision"], "GO", "{g}");
    assert_eq!(g["outcome"]["steps_done"], 3, "{g}");
    assert_eq!(g["outcome"]["losses"].as_array().unwrap().len(), 3, "{g}");
    // 6 pictures × the plan's repeats, as kohya counts them.
    assert!(g["outcome"]["images"].as_u64().unwrap() >= 6, "{g}");
    assert!(
        g["outcome"]["command_line"]
            .as_str()
            .unwrap()
            .contains("--max_train_steps 3")
    );
    let log = std::fs::read_to_string(root.join("grimoire/training/fox/dry-run.log")).unwrap();
    assert!(
        log.contains("steps: 100%") && log.contains("avr_loss="),
        "{log}"
    );
    let rec = record(&root, Gate::DryRun);
    assert_eq!(rec.status, GateStatus::Pass);
    assert!(
        rec.fingerprint.contains("dataset=")
            && rec.fingerprint.contains("plan=")
            && rec.fingerprint.contains("environment=env-"),
        "{}",
        rec.fingerprint
    );
    let (now, _) = states(&root, Some(&smi));
    assert_eq!(now, ["PASS", "PASS", "PASS", "PASS"]);

    // Out of memory above batch 1: named, with the batch to try.
    fail_with(&dir, r#"{"fail": "oom", "above_batch": 1}"#);
    let said = dry_run_fails(&root, &smi, &[]);
    assert!(said.contains("out of GPU memory"), "{said}");
    assert!(
        said.contains("batch 2") && said.contains("batch 1"),
        "{said}"
    );
    assert!(said.contains("20.00 MiB"), "{said}");

    // The loss becomes NaN at step 2: kohya would train on; the run is stopped.
    fail_with(&dir, r#"{"fail": "nan", "at_step": 2}"#);
    let said = dry_run_fails(&root, &smi, &[]);
    assert!(said.contains("the loss became NaN"), "{said}");

    // A crash.
    fail_with(&dir, r#"{"fail": "crash", "at_step": 2}"#);
    let said = dry_run_fails(&root, &smi, &[]);
    assert!(said.contains("the trainer crashed"), "{said}");
    assert!(said.contains("Expected all tensors"), "{said}");

    // Silence: stopped after the stall limit, as a hang.
    fail_with(&dir, r#"{"fail": "hang", "at_step": 2}"#);
    let said = dry_run_fails(&root, &smi, &["--stall", "2"]);
    assert!(said.contains("the trainer hung"), "{said}");
    std::fs::remove_file(dir.join("fake-trainer.json")).unwrap();

    // A module uninstalled since Gate 3: named, with its install line.
    let util = dir.join("library/train_util.py");
    let before = std::fs::read_to_string(&util).unwrap();
    std::fs::write(&util, format!("{before}import sentencepiece\n")).unwrap();
    let said = dry_run_fails(&root, &smi, &[]);
    assert!(said.contains("`sentencepiece`"), "{said}");
    assert!(said.contains("pip install sentencepiece"), "{said}");
    std::fs::write(&util, before).unwrap();

    // The model file moved away since Gate 3: the path is named.
    let model = root.join("models/base.safetensors");
    std::fs::rename(&model, root.join("models/elsewhere.safetensors")).unwrap();
    let said = dry_run_fails(&root, &smi, &[]);
    assert!(said.contains("a file is missing"), "{said}");
    assert!(said.contains("models/base.safetensors"), "{said}");
    std::fs::rename(root.join("models/elsewhere.safetensors"), &model).unwrap();

    // A caption that is not UTF-8 (recorded as passed at Gate 1 here, to
    // reach the trainer): the file is named.
    let caption = root.join("clean/p1.txt");
    let text_before = std::fs::read(&caption).unwrap();
    std::fs::write(&caption, b"zkfox, caf\xe9 au lait\n").unwrap();
    common::fake_trainer::pass_gate1(&root, "fox");
    let said = dry_run_fails(&root, &smi, &[]);
    assert!(said.contains("a caption cannot be read"), "{said}");
    assert!(said.contains("p1.txt"), "{said}");
    std::fs::write(&caption, text_before).unwrap();
    common::fake_trainer::pass_gate1(&root, "fox");

    // Fixed: it passes again.
    run(ategnatos(&root, Some(&smi)).args(["dry-run", "fox"]), 0);
    let (now, _) = states(&root, Some(&smi));
    assert_eq!(now, ["PASS", "PASS", "PASS", "PASS"]);
}

#[test]
fn a_changed_caption_makes_gates_1_and_4_stale_and_a_changed_plan_gates_2_and_4() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().canonicalize().unwrap();
    let dir = through_gate_3(&root, "kohya", 1);
    let smi = dir.join("fake-nvidia-smi");
    run(
        ategnatos(&root, Some(&smi)).args(["gate", "4", "--project", "fox"]),
        0,
    );
    let (now, _) = states(&root, Some(&smi));
    assert_eq!(now, ["PASS", "PASS", "PASS", "PASS"]);

    let caption = root.join("clean/p0.txt");
    let old = std::fs::read_to_string(&caption).unwrap();
    std::fs::write(&caption, format!("{old}, moonlight")).unwrap();
    let (now, text) = states(&root, Some(&smi));
    assert_eq!(now, ["stale", "PASS", "PASS", "stale"], "{text}");
    assert!(text.contains("the pictures or captions changed"), "{text}");
    // Gate 4 is refused until Gate 1 runs again.
    let said = run(ategnatos(&root, Some(&smi)).args(["dry-run", "fox"]), 2);
    assert!(said.contains("run gate 1 again"), "{said}");
    std::fs::write(&caption, old).unwrap();
    let (now, _) = states(&root, Some(&smi));
    assert_eq!(now, ["PASS", "PASS", "PASS", "PASS"]);

    run(
        ategnatos(&root, Some(&smi)).args(["plan", "fox", "--gpu", "RTX 4090", "--rank", "8"]),
        0,
    );
    let (now, text) = states(&root, Some(&smi));
    assert_eq!(now, ["PASS", "stale", "PASS", "stale"], "{text}");
    assert!(text.contains("the plan changed"), "{text}");
}

#[test]
fn simpletuner_and_ai_toolkit_dry_runs_read_their_own_output() {
    for backend in ["simpletuner", "ai-toolkit"] {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().canonicalize().unwrap();
        let dir = through_gate_3(&root, backend, 1);
        let smi = dir.join("fake-nvidia-smi");
        let text = run(
            ategnatos(&root, Some(&smi)).args(["dry-run", "fox", "--steps", "2", "--json"]),
            0,
        );
        let g: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(g["decision"], "GO", "{backend}: {g}");
        assert_eq!(g["outcome"]["steps_done"], 2, "{backend}: {g}");
        // The loss becomes NaN: SimpleTuner raises, ai-toolkit says `loss is nan`.
        fail_with(&dir, r#"{"fail": "nan", "at_step": 2}"#);
        let said = dry_run_fails(&root, &smi, &[]);
        assert!(said.contains("the loss became NaN"), "{backend}: {said}");
        // Out of memory, each in its own words.
        fail_with(&dir, r#"{"fail": "oom", "above_batch": 0}"#);
        let said = dry_run_fails(&root, &smi, &[]);
        assert!(said.contains("out of GPU memory"), "{backend}: {said}");
    }
}
