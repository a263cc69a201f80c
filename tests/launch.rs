//! Training behind the four gates, with the fake trainer as a real
//! subprocess under a real supervisor process: refused while a gate is
//! stale; a full run to COMPLETE with its record, log, progress.md, loss
//! chart, the last three checkpoints and the LoRA; a NaN loss stopping the
//! run as FAILED with the step; out of memory retried at half the batch;
//! plateau and divergence warnings; a cancel that leaves no process of the
//! trainer's group behind.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout,
    clippy::disallowed_methods
)]

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::fake_trainer::{ategnatos, install, project_through_gate_2_with, run};
use serde_json::Value;

/// A GPU machine with kohya installed, the project through Gate 4.
fn through_gate_4(root: &Path, batch: u32, plan: &[&str]) -> PathBuf {
    project_through_gate_2_with(root, "kohya", batch, plan);
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

/// `ategnatos train fox --json`, expecting `code`: the final record.
fn train(root: &Path, dir: &Path, code: i32) -> Value {
    let smi = dir.join("fake-nvidia-smi");
    let text = run(
        ategnatos(root, Some(&smi)).args(["train", "fox", "--json"]),
        code,
    );
    serde_json::from_str(&text).unwrap()
}

fn status(root: &Path, dir: &Path) -> Value {
    let smi = dir.join("fake-nvidia-smi");
    let text = run(
        ategnatos(root, Some(&smi)).args(["status", "fox", "--json"]),
        0,
    );
    serde_json::from_str(&text).unwrap()
}

fn kept(root: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(root.join("grimoire/training/fox/checkpoints"))
        .map(|d| {
            d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .filter(|n| n.ends_with(".safetensors"))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

#[test]
fn training_starts_only_behind_fresh_gates_and_runs_to_complete() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().canonicalize().unwrap();
    let dir = through_gate_4(&root, 1, &["--epochs", "8", "--save-every", "1"]);
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
    let r = train(&root, &dir, 0);
    assert_eq!(r["state"], "complete", "{r}");
    let done = r["steps_done"].as_u64().unwrap();
    assert_eq!(done, r["total_steps"].as_u64().unwrap(), "{r}");
    assert_eq!(r["epoch"], 8, "{r}");
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
    let log = std::fs::read_to_string(root.join(r["log_file"].as_str().unwrap())).unwrap();
    assert!(log.contains("model saved."), "{log}");
    assert!(log.contains(&format!("{done}/{done}")), "{log}");

    // Seven in-between saves (epochs 1 to 7); the last three are kept, and
    // the trainer's own folder still holds all of them.
    assert_eq!(
        kept(&root),
        [
            "fox-000005.safetensors",
            "fox-000006.safetensors",
            "fox-000007.safetensors"
        ]
    );
    assert_eq!(r["checkpoints"].as_array().unwrap().len(), 3, "{r}");
    let lora = r["final_lora"]["path"].as_str().unwrap();
    assert!(lora.ends_with("fox.safetensors"), "{r}");
    assert!(root.join(lora).is_file());
    let out = root.join(lora).parent().unwrap().to_path_buf();
    let saves = std::fs::read_dir(out)
        .unwrap()
        .filter(|e| {
            let name = e.as_ref().unwrap().file_name();
            let name = name.to_string_lossy();
            name.starts_with("fox-0000") && name.ends_with(".safetensors")
        })
        .count();
    assert_eq!(saves, 7);
    assert!(
        r["next_step"].as_str().unwrap().contains("eval_grid"),
        "{r}"
    );

    // progress.md and the loss chart beside the log.
    let progress =
        std::fs::read_to_string(root.join(r["progress_file"].as_str().unwrap())).unwrap();
    assert!(progress.contains("**COMPLETE**"), "{progress}");
    assert!(progress.contains("fox-000007.safetensors"), "{progress}");
    assert!(progress.contains("![loss by step](loss.png)"), "{progress}");
    let chart = image::open(root.join(r["loss_chart"].as_str().unwrap())).unwrap();
    assert!(chart.width() >= 600 && chart.height() >= 300);

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
    let dir = through_gate_4(&root, 1, &[]);
    // kohya would train on with `avr_loss=nan`; the run must stop.
    std::fs::write(
        dir.join("fake-trainer.json"),
        r#"{"fail": "nan", "at_step": 5}"#,
    )
    .unwrap();
    let r = train(&root, &dir, 1);
    assert_eq!(r["state"], "failed", "{r}");
    assert_eq!(r["steps_done"], 4, "{r}");
    let failure = r["failure"].as_str().unwrap();
    assert!(
        failure.contains("the loss became NaN at step 5"),
        "{failure}"
    );
    let log = std::fs::read_to_string(root.join(r["log_file"].as_str().unwrap())).unwrap();
    assert!(log.contains("avr_loss=nan"), "{log}");
    let s = status(&root, &dir);
    assert_eq!(s["state"], "failed", "{s}");
    let progress =
        std::fs::read_to_string(root.join(r["progress_file"].as_str().unwrap())).unwrap();
    assert!(
        progress.contains("**FAILED**") && progress.contains("NaN"),
        "{progress}"
    );
}

#[test]
fn out_of_memory_halves_the_batch_until_it_fits() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().canonicalize().unwrap();
    let dir = through_gate_4(&root, 4, &[]);
    let config = root.join("workspace/configs/fox/kohya/config.toml");
    let original = std::fs::read_to_string(&config).unwrap();
    // The GPU holds batch 1 only: 4 fails, 2 fails, 1 trains.
    std::fs::write(
        dir.join("fake-trainer.json"),
        r#"{"fail": "oom", "above_batch": 1}"#,
    )
    .unwrap();
    let r = train(&root, &dir, 0);
    assert_eq!(r["state"], "complete", "{r}");
    assert_eq!(r["attempts"], 3, "{r}");
    assert_eq!(
        (
            r["batch_size"].as_u64(),
            r["gradient_accumulation"].as_u64()
        ),
        (Some(1), Some(4)),
        "{r}"
    );
    let adjustments: Vec<&str> = r["adjustments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(adjustments.len(), 2, "{r}");
    assert!(
        adjustments[0].contains("at batch 4: retrying at batch 2 with gradient accumulation 2"),
        "{adjustments:?}"
    );
    assert!(
        adjustments[1].contains("at batch 2: retrying at batch 1 with gradient accumulation 4"),
        "{adjustments:?}"
    );
    // The adjusted configs sit beside the original, which is unchanged.
    let batch1: toml::Table = std::fs::read_to_string(config.with_file_name("config.batch1.toml"))
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(batch1["train_batch_size"].as_integer(), Some(1));
    assert_eq!(batch1["gradient_accumulation_steps"].as_integer(), Some(4));
    assert_eq!(std::fs::read_to_string(&config).unwrap(), original);
    assert!(
        r["command_line"]
            .as_str()
            .unwrap()
            .contains("config.batch1.toml"),
        "{r}"
    );
    let progress =
        std::fs::read_to_string(root.join(r["progress_file"].as_str().unwrap())).unwrap();
    assert!(progress.contains("## What was adjusted"), "{progress}");
    assert!(progress.contains("retrying at batch 1"), "{progress}");
    let log = std::fs::read_to_string(root.join(r["log_file"].as_str().unwrap())).unwrap();
    assert_eq!(log.matches("CUDA out of memory").count(), 2, "{log}");
}

#[test]
fn a_flat_loss_and_a_rising_loss_are_warned_about() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().canonicalize().unwrap();
    let dir = through_gate_4(&root, 1, &["--epochs", "8"]);
    std::fs::write(dir.join("fake-trainer.json"), r#"{"loss": "flat"}"#).unwrap();
    let flat = train(&root, &dir, 0);
    let kinds = |r: &Value| -> Vec<String> {
        r["warnings"]
            .as_array()
            .map(|w| {
                w.iter()
                    .map(|x| x["kind"].as_str().unwrap().to_string())
                    .collect()
            })
            .unwrap_or_default()
    };
    assert_eq!(kinds(&flat), ["plateau"], "{flat}");
    assert!(
        flat["warnings"][0]["message"]
            .as_str()
            .unwrap()
            .contains("has not moved for 5 epochs")
    );

    std::fs::write(dir.join("fake-trainer.json"), r#"{"loss": "rise"}"#).unwrap();
    let rise = train(&root, &dir, 0);
    assert_eq!(kinds(&rise), ["divergence"], "{rise}");
    let progress =
        std::fs::read_to_string(root.join(rise["progress_file"].as_str().unwrap())).unwrap();
    assert!(
        progress.contains("## Warnings") && progress.contains("learning rate"),
        "{progress}"
    );

    // A falling loss gives none.
    std::fs::remove_file(dir.join("fake-trainer.json")).unwrap();
    let fine = train(&root, &dir, 0);
    assert!(kinds(&fine).is_empty(), "{fine}");
}

/// Waits (reading the record, up to a minute) until `done` says yes.
fn until(root: &Path, dir: &Path, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let s = status(root, dir);
        if done(&s) {
            return s;
        }
        assert!(Instant::now() < deadline, "waited a minute for {what}: {s}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn cancel_stops_the_trainers_whole_group_and_keeps_the_checkpoints() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().canonicalize().unwrap();
    // Six pictures shown once an epoch, batch 1: six steps an epoch.
    let dir = through_gate_4(
        &root,
        1,
        &["--epochs", "4", "--save-every", "1", "--repeats", "1"],
    );
    let smi = dir.join("fake-nvidia-smi");
    // It holds after step 8 (epoch 2; epoch 1 was saved) until told.
    std::fs::write(dir.join("fake-trainer.json"), r#"{"hold_at_step": 8}"#).unwrap();
    let started = run(
        ategnatos(&root, Some(&smi)).args(["train", "fox", "--detach", "--json"]),
        0,
    );
    let started: Value = serde_json::from_str(&started).unwrap();
    assert!(
        started["summary"]
            .as_str()
            .unwrap()
            .starts_with("Ready to train: 6 pictures"),
        "{started}"
    );
    assert!(
        started["resource_uri"]
            .as_str()
            .unwrap()
            .starts_with("ategnatos://runs/fox/")
    );
    let s = until(&root, &dir, "step 8 and a checkpoint", |s| {
        s["steps_done"].as_u64() >= Some(8)
            && s["checkpoints"].as_array().is_some_and(|c| !c.is_empty())
    });
    assert_eq!(s["total_steps"], 24, "{s}");
    assert_eq!(s["epoch"], 2, "{s}");
    assert_eq!(s["state"], "running", "{s}");
    let trainer = s["pid"].as_u64().unwrap() as i32;
    let supervisor = s["supervisor_pid"].as_u64().unwrap() as i32;
    // SAFETY: signal 0 only asks whether the group has a member.
    assert_eq!(
        unsafe { libc::kill(-trainer, 0) },
        0,
        "the trainer's group runs"
    );

    // A second start while it runs is refused.
    let said = run(ategnatos(&root, Some(&smi)).args(["train", "fox"]), 2);
    assert!(said.contains("already training"), "{said}");

    let text = run(
        ategnatos(&root, Some(&smi)).args(["cancel", "fox", "--json"]),
        0,
    );
    let r: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(r["state"], "cancelled", "{r}");
    assert!(r["ended_at"].is_string(), "{r}");
    // No process of the trainer's group is left, and the supervisor is gone.
    let gone = |pid: i32, group: bool| {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            // SAFETY: signal 0 asks only whether the target exists.
            let alive = unsafe { libc::kill(if group { -pid } else { pid }, 0) } == 0;
            let zombie_or_gone = !alive
                || std::fs::read_to_string(format!("/proc/{pid}/stat"))
                    .map(|s| s[s.rfind(')').unwrap() + 1..].trim_start().starts_with('Z'))
                    .unwrap_or(true);
            if zombie_or_gone && !(group && alive) {
                return true;
            }
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    assert!(
        gone(trainer, true),
        "a process of the trainer's group is still alive"
    );
    assert!(gone(supervisor, false), "the supervisor is still alive");
    // What was saved before the stop is kept and named.
    assert_eq!(kept(&root), ["fox-000001.safetensors"]);
    let next = r["next_step"].as_str().unwrap();
    assert!(
        next.contains("newest checkpoint") && next.contains("fox-000001.safetensors"),
        "{r}"
    );
    let s = status(&root, &dir);
    assert_eq!(s["state"], "cancelled", "{s}");
}
