//! NVML through real shared libraries, built by the tests with the
//! system's C compiler and loaded the way the driver's `libnvidia-ml` is:
//! one that answers as a machine with an RTX 4090 does (the GPU, its memory,
//! the driver and its CUDA version come from NVML, with no `nvidia-smi` to
//! fall back on), and one that loads but answers `nvmlInit_v2` with "driver
//! not loaded", as a half-removed driver does — said plainly, `nvidia-smi`
//! asked instead, the rest reported, and Gate 3 never passing by default.
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
    build(
        dir,
        "broken",
        "int nvmlInit_v2(void) { return 9; }\n\
         int nvmlInitWithFlags(unsigned int flags) { (void)flags; return 9; }\n\
         int nvmlShutdown(void) { return 0; }\n\
         const char *nvmlErrorString(int result) { (void)result; return \"Driver Not Loaded\"; }\n",
    )
}

/// `libnvidia-ml.so` of a machine with one RTX 4090 (24,564 MiB, 20,000
/// free), driver 550.54.14 with CUDA 12.4; the functions NVML's C API
/// declares, with its structs' layouts (`nvmlMemory_v2_t`).
fn rtx_4090_nvml(dir: &Path) -> PathBuf {
    build(
        dir,
        "rtx4090",
        r#"
#include <string.h>
typedef struct { unsigned int version; unsigned long long total, reserved, free, used; } memory_v2;
static int device_handle;
int nvmlInit_v2(void) { return 0; }
int nvmlInitWithFlags(unsigned int flags) { (void)flags; return 0; }
int nvmlShutdown(void) { return 0; }
const char *nvmlErrorString(int r) { (void)r; return "Unknown Error"; }
int nvmlDeviceGetCount_v2(unsigned int *n) { *n = 1; return 0; }
int nvmlDeviceGetHandleByIndex_v2(unsigned int i, void **d) { if (i) return 2; *d = &device_handle; return 0; }
int nvmlDeviceGetName(void *d, char *name, unsigned int len) { (void)d; strncpy(name, "NVIDIA GeForce RTX 4090", len); return 0; }
int nvmlDeviceGetMemoryInfo_v2(void *d, memory_v2 *m) {
    (void)d;
    m->total = 24564ULL << 20; m->free = 20000ULL << 20; m->reserved = 0; m->used = m->total - m->free;
    return 0;
}
int nvmlDeviceGetCudaComputeCapability(void *d, int *major, int *minor) { (void)d; *major = 8; *minor = 9; return 0; }
int nvmlSystemGetDriverVersion(char *v, unsigned int len) { strncpy(v, "550.54.14", len); return 0; }
int nvmlSystemGetCudaDriverVersion_v2(int *v) { *v = 12040; return 0; }
"#,
    )
}

fn build(dir: &Path, name: &str, source: &str) -> PathBuf {
    let src = dir.join(format!("{name}.c"));
    std::fs::write(&src, source).unwrap();
    let lib_dir = dir.join(name);
    std::fs::create_dir_all(&lib_dir).unwrap();
    let lib = lib_dir.join("libnvidia-ml.so.1");
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
fn the_gpu_driver_and_cuda_version_come_from_nvml() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().canonicalize().unwrap();
    project_through_gate_2(&root, "kohya", 1);
    install(&root, "kohya", &[], true);
    let lib = rtx_4090_nvml(&root);
    // No nvidia-smi anywhere: everything below is NVML's.
    let text = run(
        ategnatos(&root, None)
            .env("ATEGNATOS_NVML_LIBRARY", &lib)
            .args(["env", "--project", "fox", "--json"]),
        0,
    );
    let r: Value = serde_json::from_str(&text).unwrap();
    let gpu = &r["gpu"];
    assert_eq!(gpu["source"], "nvml", "{r}");
    assert_eq!(gpu["driver_version"], "550.54.14", "{r}");
    assert_eq!(gpu["cuda_version"], "12.4", "{r}");
    assert_eq!(gpu["gpus"][0]["name"], "NVIDIA GeForce RTX 4090", "{r}");
    assert_eq!(gpu["gpus"][0]["memory_total_mib"], 24564, "{r}");
    assert_eq!(gpu["gpus"][0]["memory_free_mib"], 20000, "{r}");
    assert_eq!(gpu["gpus"][0]["compute_capability"], "8.9", "{r}");
    let summary = r["summary"].as_str().unwrap();
    assert!(
        summary.contains("Your RTX 4090 has 24 GB, 19.5 free")
            && summary.contains("Driver 550.54.14 supports CUDA 12.4"),
        "{summary}"
    );
    let said = run(
        ategnatos(&root, None)
            .env("ATEGNATOS_NVML_LIBRARY", &lib)
            .args(["gate", "3", "--project", "fox"]),
        0,
    );
    assert!(said.contains("GO"), "{said}");
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
