//! Gate 4's dry run on the native engine, for real, on the CPU: a project
//! planned for the `native` backend, its `engine.toml` written by
//! `generate_config` and passed by Gate 2, a random checkpoint from `engine
//! init-checkpoint`, and `run::dry_run` starting this very binary as
//! `ategnatos engine train` for a few steps. It passes with its steps and
//! finite losses; with the checkpoint gone it fails and names the file.
//!
//! The one thing the plan cannot say is the toy model: the catalog's SD1.5
//! is 860 M parameters, so the test turns `[model] architecture` in the
//! written file from `sd15` to `sd15_toy` (SD1.5's block layout at toy
//! widths) and changes nothing else.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout,
    clippy::disallowed_methods
)]

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use ategnatos::backends::load_manifest;
use ategnatos::run::diagnose::FailureKind;
use ategnatos::run::dry_run::{DryRunOutcome, DryRunSpec, Launcher, dry_run};
use ategnatos::studio::{NoProgress, Workspace};

use common::native::{CHECKPOINT, native_project, native_project_for};

/// The dry run as Gate 4 starts it, with this test's binary as the engine.
fn spec(root: &Path, steps: u32, run_name: &str) -> DryRunSpec {
    let ws = Workspace::open(root).unwrap();
    let generated = load_manifest(&ws, "fox").unwrap().unwrap();
    let work = root.join("dry-run-test");
    DryRunSpec {
        project: "fox".into(),
        generated,
        root: root.to_path_buf(),
        steps,
        batch_size: 2,
        launcher: Launcher {
            engine_exe: Some(PathBuf::from(env!("CARGO_BIN_EXE_ategnatos"))),
            ..Launcher::default()
        },
        config_dir: work.join(run_name).join("config"),
        output_dir: work.join(run_name).join("output"),
        log_path: work.join(run_name).join("dry-run.log"),
        // Generous bounds: they stop a hung engine, they time nothing.
        stall: Duration::from_secs(300),
        limit: Duration::from_secs(600),
    }
}

fn shown(outcome: &DryRunOutcome) -> String {
    serde_json::to_string_pretty(outcome).unwrap()
}

#[test]
fn the_native_engine_dry_run_trains_a_toy_model_on_the_cpu() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().canonicalize().unwrap();
    native_project(&root);

    let spec = spec(&root, 3, "ok");
    let outcome = dry_run(&spec, &NoProgress).unwrap();
    let said = shown(&outcome);
    assert!(outcome.passed, "{said}");
    assert!(outcome.diagnosis.is_none(), "{said}");
    assert!(outcome.stopped.is_none(), "{said}");
    assert!(outcome.exit.is_some_and(|e| e.success()), "{said}");
    assert_eq!(outcome.steps_wanted, 3);
    assert_eq!(outcome.steps_done, 3, "{said}");
    assert_eq!(outcome.losses.len(), 3, "{said}");
    for point in &outcome.losses {
        let loss = point.loss.unwrap_or(f64::NAN);
        assert!(loss.is_finite() && loss > 0.0, "{said}");
    }
    assert!(outcome.model_loaded && outcome.dataset_read, "{said}");
    // The engine counted the pictures (times the plan's repeats) and the
    // step time is measured, for the full run's estimate.
    assert!(outcome.images.is_some_and(|n| n >= 4), "{said}");
    assert!(outcome.seconds_per_step.is_some_and(|s| s > 0.0), "{said}");
    // The engine it ran is this binary, on the dry run's own copy of the
    // config, which stops after three steps and writes to a fresh folder.
    assert!(
        outcome.command_line.contains("engine train")
            && outcome
                .command_line
                .contains("dry-run-test/ok/config/engine.toml"),
        "{said}"
    );
    let copy: toml::Table = std::fs::read_to_string(spec.config_dir.join("engine.toml"))
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(copy["training"]["max_steps"].as_integer(), Some(3));
    assert_eq!(
        copy["output"]["dir"].as_str().map(PathBuf::from),
        Some(spec.output_dir.clone())
    );
    // What the engine printed is kept in the log.
    let log = std::fs::read_to_string(&spec.log_path).unwrap();
    assert!(log.contains("engine train"), "{log}");
    assert!(log.contains("loss"), "{log}");
}

/// The same chain for SDXL: `plan --base-model sdxl --backend native`,
/// `generate_config` writing `architecture = "sdxl"`, Gate 2, and the dry run
/// training the SDXL-shaped toy (both text encoders, the size conditioning).
#[test]
fn the_native_engine_dry_run_trains_a_toy_sdxl_model_on_the_cpu() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().canonicalize().unwrap();
    native_project_for(&root, "sdxl", &[]);

    let outcome = dry_run(&spec(&root, 2, "sdxl"), &NoProgress).unwrap();
    let said = shown(&outcome);
    assert!(outcome.passed, "{said}");
    assert_eq!(outcome.steps_done, 2, "{said}");
    assert!(
        outcome
            .losses
            .iter()
            .all(|p| p.loss.is_some_and(|l| l.is_finite() && l > 0.0)),
        "{said}"
    );
    let log = std::fs::read_to_string(root.join("dry-run-test/sdxl/dry-run.log")).unwrap();
    assert!(log.contains("the SDXL model needs are there"), "{log}");
}

#[test]
fn a_missing_checkpoint_fails_the_native_dry_run_and_names_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().canonicalize().unwrap();
    native_project(&root);
    std::fs::remove_file(root.join(CHECKPOINT)).unwrap();

    let outcome = dry_run(&spec(&root, 2, "missing"), &NoProgress).unwrap();
    let said = shown(&outcome);
    assert!(!outcome.passed, "{said}");
    assert_eq!(outcome.steps_done, 0, "{said}");
    assert!(!outcome.model_loaded, "{said}");
    let diagnosis = outcome.diagnosis.as_ref().expect(&said);
    assert_eq!(diagnosis.kind, FailureKind::MissingFile, "{said}");
    assert!(diagnosis.message.contains(CHECKPOINT), "{said}");
    assert!(!diagnosis.what_to_do.is_empty(), "{said}");
}
