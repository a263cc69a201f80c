//! A project planned for the native engine on the CPU, with a toy SD1.5
//! checkpoint: what the native dry-run and training tests start from.

use std::path::{Path, PathBuf};

use ategnatos::backends::load_manifest;
use ategnatos::studio::Workspace;

use super::fake_trainer::{ategnatos, pass_gate1, run};

pub const CHECKPOINT: &str = "models/toy.safetensors";

/// A project `fox` (SD1.5, 4 captioned pictures) planned for the native
/// engine on this machine's CPU at 256 px, its engine config written and
/// Gate 2 passed, then the config turned to the toy architecture, and a toy
/// checkpoint where the plan says the model is.
pub fn native_project(root: &Path) {
    native_project_with(root, &[]);
}

/// As [`native_project`], with more `plan` options.
pub fn native_project_with(root: &Path, plan: &[&str]) {
    native_project_for(root, "sd15", plan);
}

/// As [`native_project_with`], for the base model `family` (`sd15` or
/// `sdxl`): its toy architecture (`sd15_toy`, `sdxl_toy`) stands in.
pub fn native_project_for(root: &Path, family: &str, plan: &[&str]) {
    let toy = format!("{family}_toy");
    super::clean_set(root, 4);
    run(
        ategnatos(root, None)
            .args(["engine", "init-checkpoint", CHECKPOINT])
            .args(["--arch", &toy, "--seed", "3"]),
        0,
    );
    run(
        ategnatos(root, None)
            .args(["project", "start", "fox", "--type", "style"])
            .args(["--base-model", family, "--trigger", super::TRIGGER])
            .args(["--dataset", "clean"]),
        0,
    );
    pass_gate1(root, "fox");
    run(
        ategnatos(root, None)
            .args(["plan", "fox", "--backend", "native"])
            // the lowest each family's plan allows
            .args(["--batch", "2", "--rank", "4", "--resolution"])
            .arg(if family == "sdxl" { "512" } else { "256" })
            .args(["--model-path", CHECKPOINT])
            .args(plan),
        0,
    );
    run(ategnatos(root, None).args(["config", "fox"]), 0);
    run(
        ategnatos(root, None).args(["gate", "2", "--project", "fox"]),
        0,
    );

    let engine_toml = engine_toml(root);
    let mut config: toml::Table = std::fs::read_to_string(&engine_toml)
        .unwrap()
        .parse()
        .unwrap();
    let model = config["model"].as_table_mut().unwrap();
    assert_eq!(model["architecture"].as_str(), Some(family));
    assert!(
        model["checkpoint"].as_str().unwrap().ends_with(CHECKPOINT),
        "{model:?}"
    );
    model.insert("architecture".into(), toy.into());
    assert_eq!(config["training"]["device"].as_str(), Some("cpu"));
    std::fs::write(&engine_toml, toml::to_string(&config).unwrap()).unwrap();
}

/// Where `generate_config` wrote the engine's config.
pub fn engine_toml(root: &Path) -> PathBuf {
    let ws = Workspace::open(root).unwrap();
    let generated = load_manifest(&ws, "fox").unwrap().unwrap();
    let file = generated
        .files
        .iter()
        .find(|f| f.path.ends_with("engine.toml"))
        .unwrap();
    root.join(&file.path)
}
