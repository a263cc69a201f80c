//! A workspace with a fake trainer installed (`fixtures/fake-trainer/`), a
//! project through gates 1 and 2, and the `ategnatos` command run with the
//! machine the test chooses: a fake `nvidia-smi` for a GPU, or none.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use ategnatos::gates::{self, Gate, GateRecord, GateStatus};
use ategnatos::studio::Workspace;

pub const FAKE_GPU: &str = "NVIDIA GeForce RTX 4090,24564,23012,550.54.14,8.9";

pub fn fake_trainer_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/fake-trainer/fake_trainer.py")
}

/// The Python the tests run the fake trainer with.
pub fn python() -> String {
    std::env::var("ATEGNATOS_TEST_PYTHON").unwrap_or_else(|_| "python3".into())
}

/// Lays out a fake install of `backend` in `root/backends/<folder>`, with
/// `missing` modules its library imports, and a fake GPU when `gpu`.
pub fn install(root: &Path, backend: &str, missing: &[&str], gpu: bool) -> PathBuf {
    let folder = match backend {
        "kohya" => "kohya",
        "simpletuner" => "simpletuner",
        _ => "ai-toolkit",
    };
    let dir = root.join("backends").join(folder);
    let mut cmd = Command::new(python());
    cmd.arg(fake_trainer_script())
        .args(["install", "--backend", backend, "--dir"])
        .arg(&dir);
    if !missing.is_empty() {
        cmd.args(["--missing", &missing.join(",")]);
    }
    if gpu {
        cmd.args(["--gpu", FAKE_GPU]);
    }
    let out = cmd.output().expect("python3 runs");
    assert!(out.status.success(), "install: {out:?}");
    dir
}

/// The `ategnatos` command in `root`, on a machine whose only GPU source is
/// `smi` (a fake `nvidia-smi`, or none: NVML is off in tests).
pub fn ategnatos(root: &Path, smi: Option<&Path>) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ategnatos"));
    cmd.arg("--root")
        .arg(root)
        .current_dir(root)
        .env("ATEGNATOS_NVML_LIBRARY", "off")
        .env(
            "ATEGNATOS_NVIDIA_SMI",
            smi.map(Path::to_path_buf)
                .unwrap_or_else(|| root.join("no-such-nvidia-smi")),
        )
        .env_remove("ATEGNATOS_KOHYA_DIR")
        .env_remove("ATEGNATOS_SIMPLETUNER_DIR")
        .env_remove("ATEGNATOS_AI_TOOLKIT_DIR")
        .env_remove("ATEGNATOS_PYTHON")
        .env_remove("VIRTUAL_ENV");
    cmd
}

pub fn said(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Runs and expects `code`.
pub fn run(cmd: &mut Command, code: i32) -> String {
    let out = cmd.output().unwrap();
    let text = said(&out);
    assert_eq!(out.status.code(), Some(code), "{cmd:?}:\n{text}");
    text
}

/// Records Gate 1 as passed for the pictures as they are (the tests here
/// are about gates 3 and 4; Gate 1's own tests show it passing for real).
pub fn pass_gate1(root: &Path, project: &str) {
    let ws = Workspace::open(root).unwrap();
    let p = ategnatos::studio::project::load(&ws, project)
        .unwrap()
        .unwrap();
    let fp = gates::status::current_fingerprint(&ws, &p, Gate::Dataset).unwrap();
    gates::store(
        &ws,
        &GateRecord::new(project, Gate::Dataset, GateStatus::Pass, fp),
    )
    .unwrap();
}

/// A 2 KB safetensors file: a real header and its data.
pub fn small_model(path: &Path) {
    let n = 512usize;
    let header = format!(
        "{{\"w\":{{\"dtype\":\"F32\",\"shape\":[{n}],\"data_offsets\":[0,{}]}}}}",
        n * 4
    );
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend(header.as_bytes());
    bytes.extend(vec![0u8; n * 4]);
    super::write(path, &bytes);
}

/// A project `fox` (SD1.5, 6 captioned pictures), Gate 1 passed, planned
/// for `backend` on an RTX 4090 with batch `batch`, its config written and
/// Gate 2 passed.
pub fn project_through_gate_2(root: &Path, backend: &str, batch: u32) {
    project_through_gate_2_with(root, backend, batch, &[]);
}

/// As [`project_through_gate_2`], with more `plan` options.
pub fn project_through_gate_2_with(root: &Path, backend: &str, batch: u32, plan: &[&str]) {
    super::clean_set(root, 6);
    small_model(&root.join("models/base.safetensors"));
    run(
        ategnatos(root, None)
            .args(["project", "start", "fox", "--type", "style"])
            .args(["--base-model", "sd15", "--trigger", super::TRIGGER])
            .args(["--dataset", "clean"]),
        0,
    );
    pass_gate1(root, "fox");
    run(
        ategnatos(root, None)
            .args(["plan", "fox", "--backend", backend, "--gpu", "RTX 4090"])
            .args(["--batch", &batch.to_string()])
            .args(["--model-path", "models/base.safetensors"])
            .args(plan),
        0,
    );
    run(ategnatos(root, None).args(["config", "fox"]), 0);
    run(
        ategnatos(root, None).args(["gate", "2", "--project", "fox"]),
        0,
    );
}

/// A gate's stored record.
pub fn record(root: &Path, gate: Gate) -> GateRecord {
    let ws = Workspace::open(root).unwrap();
    gates::load(&ws, "fox", gate).unwrap().unwrap()
}

/// Each gate's state now (`PASS`, `stale`, `not run`, ...), as `ategnatos
/// project status` prints it on the machine `smi` describes, and its text.
pub fn states(root: &Path, smi: Option<&Path>) -> (Vec<String>, String) {
    let text = run(ategnatos(root, smi).args(["project", "status", "fox"]), 0);
    let states = text
        .lines()
        .filter(|l| !l.starts_with(' ') && !l.starts_with("next:"))
        .map(|l| {
            l.chars()
                .skip(25)
                .take(8)
                .collect::<String>()
                .trim()
                .to_string()
        })
        .collect();
    (states, text)
}
