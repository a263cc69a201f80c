//! The native engine on this machine: whether this binary was built with
//! its CUDA backend, whether the CUDA driver and NVRTC (which the engine's
//! CUDA backend loads at run time) can be loaded, and how slow the CPU is.

use serde::{Deserialize, Serialize};

/// The engine's CPU figure: `ategnatos-engine-bench` on the tiny test model
/// (rank 16, 8×8 latents), batch 1 (README, "The native engine"). SD1.5 on
/// the CPU has not been measured; its UNet does far more work per step.
pub const TINY_CPU_SECONDS_PER_STEP: f64 = 0.137;

/// What the engine can use here.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct NativeReport {
    /// This binary has the CUDA backend (`--features cuda`).
    pub cuda_build: bool,
    /// `libcuda` (the driver's CUDA library) loads; `None` where not checked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver_loads: Option<bool>,
    /// NVRTC (CUDA's run-time compiler) loads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nvrtc_loads: Option<bool>,
    /// In plain words.
    pub summary: String,
}

#[cfg(unix)]
fn loads(names: &[&str]) -> Option<bool> {
    for name in names {
        let Ok(c) = std::ffi::CString::new(*name) else {
            continue;
        };
        // SAFETY: dlopen with a valid C string; the handle is closed at
        // once and nothing from the library is called.
        unsafe {
            let handle = libc::dlopen(c.as_ptr(), libc::RTLD_LAZY | libc::RTLD_LOCAL);
            if !handle.is_null() {
                libc::dlclose(handle);
                return Some(true);
            }
        }
    }
    Some(false)
}

#[cfg(not(unix))]
fn loads(_names: &[&str]) -> Option<bool> {
    None
}

const CUDA_DRIVER: &[&str] = &["libcuda.so.1", "libcuda.so", "libcuda.dylib"];
const NVRTC: &[&str] = &[
    "libnvrtc.so",
    "libnvrtc.so.13",
    "libnvrtc.so.12",
    "libnvrtc.so.11.2",
];

/// Checks the engine's CUDA requirements.
pub fn check_native() -> NativeReport {
    let cuda_build = cfg!(feature = "cuda");
    let driver_loads = loads(CUDA_DRIVER);
    let nvrtc_loads = loads(NVRTC);
    let cpu = format!(
        "On the CPU the engine is slow: its benchmark takes {TINY_CPU_SECONDS_PER_STEP} s a step for the tiny test model, and SD1.5 does far more work per step (not yet measured on a CPU); expect hours for a few hundred steps."
    );
    let summary = match (cuda_build, driver_loads, nvrtc_loads) {
        (true, Some(true), Some(true)) => {
            "This build has the CUDA backend, and the CUDA driver and NVRTC load: the engine can train on the GPU.".into()
        }
        (true, Some(false), _) => format!(
            "This build has the CUDA backend, but the CUDA driver library (libcuda) does not load: install the NVIDIA driver. {cpu}"
        ),
        (true, _, Some(false)) => format!(
            "This build has the CUDA backend, but NVRTC (libnvrtc, CUDA's run-time compiler) does not load: install the CUDA toolkit's NVRTC (e.g. `pip install nvidia-cuda-nvrtc-cu12` and add its lib folder to LD_LIBRARY_PATH). {cpu}"
        ),
        (true, _, _) => "This build has the CUDA backend.".into(),
        (false, _, _) => format!(
            "This build of Ategnatos has no CUDA backend: the engine trains on the CPU only (`cargo install --path . --features cuda` builds one for NVIDIA GPUs). {cpu}"
        ),
    };
    NativeReport {
        cuda_build,
        driver_loads,
        nvrtc_loads,
        summary,
    }
}

/// Whether the engine can train on a GPU here.
pub fn can_use_gpu(r: &NativeReport) -> bool {
    r.cuda_build && r.driver_loads != Some(false) && r.nvrtc_loads != Some(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_report_says_what_this_build_can_do() {
        let r = check_native();
        assert_eq!(r.cuda_build, cfg!(feature = "cuda"));
        if !cfg!(feature = "cuda") {
            assert!(r.summary.contains("no CUDA backend") && r.summary.contains("--features cuda"));
            assert!(!can_use_gpu(&r));
        }
        #[cfg(unix)]
        assert_eq!(loads(&["/definitely/not/a/library.so"]), Some(false));
    }
}
