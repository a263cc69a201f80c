//! `diagnose_training` on scripted runs: a run's record and log written as
//! a trainer would leave them, with the artist's words, must put the right
//! cause first (overtrained, undertrained, NaN, colours learned into the
//! trigger because no caption names one).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout,
    clippy::disallowed_methods
)]

mod common;

use std::path::Path;

use ategnatos::dataset::intent::{ProjectRequest, start_project};
use ategnatos::plan::training::{Backend, Preset, load_plan, save_plan};
use ategnatos::plan::{PlanRequest, plan_training};
use ategnatos::run::launch::RunState;
use ategnatos::studio::Workspace;
use ategnatos::studio::project::TrainingType;
use common::client::{call, connect, text};
use common::{TRIGGER, caption, pictures};
use serde_json::{Value, json};

const PICTURES: u64 = 20;

/// Project `fox`: 20 pictures captioned by `captions(i)`, planned for kohya
/// on an RTX 4090, then set to `epochs` × `repeats`, saving every 2 epochs.
fn project(root: &Path, captions: impl Fn(u64) -> String, epochs: u32, repeats: u32) -> u32 {
    pictures(root, "set", PICTURES, (40, 96, 96), None);
    for i in 0..PICTURES {
        caption(&root.join("set"), &format!("p{i:02}"), &captions(i));
    }
    let ws = Workspace::open(root).unwrap();
    start_project(
        &ws,
        &ProjectRequest {
            name: "fox".into(),
            training_type: TrainingType::Style,
            base_model: "sd15".into(),
            description: String::new(),
            trigger_word: TRIGGER.into(),
            dataset: "set".into(),
            caption_extension: "txt".into(),
        },
    )
    .unwrap();
    common::fake_trainer::pass_gate1(root, "fox");
    plan_training(
        &ws,
        &PlanRequest {
            project: "fox".into(),
            preset: Preset::Standard,
            backend: Backend::Kohya,
            gpu: Some("RTX 4090".into()),
            price_per_hour: None,
            overrides: Default::default(),
        },
    )
    .unwrap();
    let mut plan = load_plan(&ws, "fox").unwrap().unwrap();
    plan.epochs = epochs;
    plan.repeats = repeats;
    plan.save_every_epochs = 2;
    save_plan(&ws, &plan).unwrap();
    plan.batch_size
}

fn varied(i: u64) -> String {
    let things = ["a heron", "a boat", "two cats", "a lighthouse", "a tree"];
    let places = ["by the river", "at night", "in the snow", "on a hill"];
    format!(
        "{TRIGGER}, {} {}",
        things[i as usize % things.len()],
        places[i as usize % places.len()]
    )
}

/// A finished (or failed) kohya run whose log shows `losses`, one per step.
fn run(
    root: &Path,
    batch: u32,
    total: u64,
    losses: &[f64],
    state: RunState,
    failure: Option<&str>,
) {
    let id = "20261207-010000";
    let dir = root.join("grimoire/training/fox/runs").join(id);
    std::fs::create_dir_all(&dir).unwrap();
    let mut log = String::from("prepare dataset\nnum train images * repeats: 200\n");
    for (i, loss) in losses.iter().enumerate() {
        let step = i as u64 + 1;
        let shown = if loss.is_nan() {
            "nan".to_string()
        } else {
            format!("{loss:.4}")
        };
        log.push_str(&format!(
            "steps: {:3}%|####      | {step}/{total} [00:10<00:10, 2.00it/s, avr_loss={shown}]\r",
            step * 100 / total
        ));
    }
    log.push('\n');
    std::fs::write(dir.join("train.log"), log).unwrap();
    let steps_done = losses.iter().filter(|l| l.is_finite()).count() as u64;
    // Written as JSON with the fields every version of the record has.
    let record = json!({
        "id": id,
        "project": "fox",
        "backend": "kohya",
        "state": state,
        "started_at": "2026-12-07T01:00:00Z",
        "ended_at": "2026-12-07T02:00:00Z",
        "command_line": "accelerate launch train_network.py",
        "working_dir": ".",
        "log_file": format!("grimoire/training/fox/runs/{id}/train.log"),
        "steps_done": steps_done,
        "total_steps": total,
        "first_loss": losses.first().copied(),
        "last_loss": losses.iter().rev().find(|l| l.is_finite()).copied(),
        "failure": failure,
    });
    std::fs::write(dir.join("run.json"), serde_json::to_vec(&record).unwrap()).unwrap();
    let _ = batch;
}

/// A loss that goes from `from` to `to` over `n` steps, with a small wobble.
fn loss_curve(n: usize, from: f64, to: f64) -> Vec<f64> {
    (0..n)
        .map(|i| {
            let t = i as f64 / (n - 1) as f64;
            from + (to - from) * t + if i % 2 == 0 { 0.002 } else { -0.002 }
        })
        .collect()
}

/// A loss that falls early, then holds.
fn settled_curve(n: usize) -> Vec<f64> {
    (0..n)
        .map(|i| {
            let t = (i as f64 / n as f64 * 6.0).min(1.0);
            0.14 - 0.04 * t + if i % 2 == 0 { 0.003 } else { -0.003 }
        })
        .collect()
}

async fn diagnose(root: &Path, symptoms: &str) -> Value {
    let client = connect(root).await;
    let r = call(
        &client,
        "diagnose_training",
        json!({"project": "fox", "symptoms": symptoms}),
    )
    .await;
    assert_ne!(r.is_error, Some(true), "{}", text(&r));
    let d = r.structured_content.clone().unwrap();
    assert!(text(&r).contains("Most likely"), "{}", text(&r));
    d
}

fn steps(epochs: u32, repeats: u32, batch: u32) -> u64 {
    PICTURES * u64::from(epochs) * u64::from(repeats) / u64::from(batch)
}

#[tokio::test]
async fn a_lora_that_copies_its_pictures_after_a_long_run_is_overtrained_and_an_earlier_epoch_is_offered()
 {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let batch = project(root, varied, 40, 12);
    let total = steps(40, 12, batch);
    run(
        root,
        batch,
        total,
        &loss_curve(total as usize, 0.15, 0.03),
        RunState::Complete,
        None,
    );
    let d = diagnose(
        root,
        "It just copies my training pictures, same pose every time",
    )
    .await;
    let top = &d["causes"][0];
    assert_eq!(top["cause"], "overtrained", "{d:#}");
    assert_eq!(top["likelihood"], "likely");
    // About 120 views at 12 repeats is epoch 10, a saved one (every 2).
    assert_eq!(top["checkpoint"]["epoch"], 10, "{d:#}");
    assert!(
        top["fix"]
            .as_str()
            .unwrap()
            .contains("10 epochs instead of 40"),
        "{d:#}"
    );
    // The loss came from train.log (the record keeps only its ends).
    assert!(top["why"].to_string().contains("the loss fell"), "{d:#}");
    assert_eq!(d["evidence"]["loss"]["points"], total);
}

#[tokio::test]
async fn a_trigger_that_does_nothing_after_a_short_run_is_undertrained() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let batch = project(root, varied, 2, 1);
    let total = steps(2, 1, batch);
    run(
        root,
        batch,
        total,
        &loss_curve(total as usize, 0.16, 0.09),
        RunState::Complete,
        None,
    );
    let d = diagnose(
        root,
        "The trigger does nothing, it looks like the base model",
    )
    .await;
    assert_eq!(d["causes"][0]["cause"], "undertrained", "{d:#}");
    assert_eq!(d["causes"][0]["checkpoint"]["epoch"], 2, "{d:#}");
    assert!(
        d["causes"][0]["why"].to_string().contains("still falling"),
        "{d:#}"
    );
    // The same words after a very long run point elsewhere.
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let batch = project(root, varied, 40, 12);
    let total = steps(40, 12, batch);
    run(
        root,
        batch,
        total,
        &settled_curve(total as usize),
        RunState::Complete,
        None,
    );
    let d = diagnose(
        root,
        "The trigger does nothing, it looks like the base model",
    )
    .await;
    assert_ne!(d["causes"][0]["cause"], "undertrained", "{d:#}");
}

#[tokio::test]
async fn black_pictures_from_a_run_whose_loss_became_nan_blame_the_nan_and_the_epoch_before_it() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let batch = project(root, varied, 10, 10);
    let total = steps(10, 10, batch);
    let per_epoch = total / 10;
    // Fine for five and a half epochs, then NaN.
    let mut losses = settled_curve((per_epoch * 11 / 2) as usize);
    losses.push(f64::NAN);
    run(
        root,
        batch,
        total,
        &losses,
        RunState::Failed,
        Some("the loss became NaN"),
    );
    let d = diagnose(root, "all I get are black images").await;
    let top = &d["causes"][0];
    assert_eq!(top["cause"], "loss_became_nan", "{d:#}");
    assert_eq!(top["checkpoint"]["epoch"], 4, "{d:#}");
}

#[tokio::test]
async fn a_colour_cast_with_captions_that_name_no_colour_blames_the_captions() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let batch = project(root, varied, 10, 10);
    let total = steps(10, 10, batch);
    run(
        root,
        batch,
        total,
        &settled_curve(total as usize),
        RunState::Complete,
        None,
    );
    let said = "the colours are off, everything gets an orange tint";
    let d = diagnose(root, said).await;
    let top = &d["causes"][0];
    assert_eq!(top["cause"], "colours_not_in_captions", "{d:#}");
    assert_eq!(top["likelihood"], "likely");
    assert!(top["why"].to_string().contains("0 of 20 captions"), "{d:#}");

    // The same complaint when the captions do name the colours: not the captions' fault.
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let colours = ["red", "teal", "golden", "grey", "blue"];
    let batch = project(
        root,
        |i| format!("{}, {} sky", varied(i), colours[i as usize % 5]),
        10,
        10,
    );
    run(
        root,
        batch,
        total,
        &settled_curve(total as usize),
        RunState::Complete,
        None,
    );
    let d = diagnose(root, said).await;
    let colour = d["causes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["cause"] == "colours_not_in_captions");
    assert!(colour.is_none_or(|c| c["likelihood"] != "likely"), "{d:#}");
}

#[tokio::test]
async fn an_unknown_run_is_refused_with_the_runs_there_are() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let batch = project(root, varied, 10, 10);
    run(
        root,
        batch,
        100,
        &settled_curve(100),
        RunState::Complete,
        None,
    );
    let client = connect(root).await;
    let r = call(
        &client,
        "diagnose_training",
        json!({"project": "fox", "run": "19990101-000000"}),
    )
    .await;
    assert_eq!(r.is_error, Some(true));
    let said = text(&r);
    assert!(
        said.contains("`19990101-000000`") && said.contains("20261207-010000"),
        "{said}"
    );
}
