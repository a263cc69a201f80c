//! NVML that loads but errors: a real shared library, built by the test
//! with the system's C compiler, that exports NVML's entry points and
//! answers `nvmlInit_v2` with "driver not loaded", as a machine with a
//! half-removed NVIDIA driver does. The environment check says so plainly,
//! goes on to `nvidia-smi`, and reports the rest; Gate 3 never passes by
//! default.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout,
    clippy::disallowed_methods
)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::fake_trainer::{ategnatos, install, project_through_gate_2, run};
use serde_json::Value;

/// `libnvidia-ml.so` that loads and refuses to start (NVML_ERROR_DRIVER_NOT_LOADED = 9).
fn broken_nvml(dir: &Path) -> PathBuf {
    let src = dir.join("fake_nvml.c");
    std::fs::write(
        &src,
        "int nvmlInit_v2(void) { return 9; }\n\
         int nvmlInitWithFlags(unsigned int flags) { (void)flags; return 9; }\n\
         int nvmlShutdown(void) { return 0; }\n\
         const char *nvmlErrorString(int result) { (void)result; return \"Driver Not Loaded\"; }\n",
    )
    .unwrap();
    let lib = dir.join("libnvidia-ml.so.1");
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let out = Command::new(&cc)
        .args(["-shared", "-fPIC", "-o"])
        .arg(&lib)
        .arg(&src)
        .output()
        .expect("a C compiler (the build needs one too)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    lib
}

#[test]
fn nvml_that_loads_but_errors_is_said_plainly_and_the_rest_is_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().canonicalize().unwrap();
    project_through_gate_2(&root, "kohya", 1);
    let dir = install(&root, "kohya", &[], true);
    let lib = broken_nvml(&root);

    // With nvidia-smi there, the GPU comes from it, and why NVML did not is said.
    let smi = dir.join("fake-nvidia-smi");
    let text = run(
        ategnatos(&root, Some(&smi))
            .env("ATEGNATOS_NVML_LIBRARY", &lib)
            .args(["env", "--project", "fox", "--json"]),
        0,
    );
    let r: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(r["gpu"]["source"], "nvidia_smi", "{r}");
    let notes = r["gpu"]["notes"].to_string();
    assert!(notes.contains("loaded but did not start"), "{notes}");
    assert!(!r["gpu"]["gpus"].as_array().unwrap().is_empty(), "{r}");
    assert!(r["python"]["answer"]["torch"]["version"].is_string(), "{r}");

    // Without it, no GPU: said plainly, the rest still reported, Gate 3 FAIL.
    let text = run(
        ategnatos(&root, None)
            .env("ATEGNATOS_NVML_LIBRARY", &lib)
            .args(["env", "--project", "fox", "--json"]),
        1,
    );
    let r: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(r["gpu"]["gpus"].as_array().unwrap().len(), 0, "{r}");
    assert!(
        r["gpu"]["notes"]
            .to_string()
            .contains("loaded but did not start"),
        "{r}"
    );
    assert!(r["python"]["answer"]["torch"]["version"].is_string(), "{r}");
    assert!(r["disk"].is_object(), "{r}");
    let said = run(
        ategnatos(&root, None)
            .env("ATEGNATOS_NVML_LIBRARY", &lib)
            .args(["gate", "3", "--project", "fox"]),
        1,
    );
    assert!(
        said.contains("NO-GO") && said.contains("loaded but did not start"),
        "{said}"
    );
}
