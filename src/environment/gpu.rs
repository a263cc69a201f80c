//! Which NVIDIA GPUs this machine has, their memory (total and free), the
//! driver, the CUDA version the driver supports, and who else holds GPU
//! memory.
//!
//! [`probe_gpus`] asks, in order, and stops at the first that answers:
//! 1. `ATEGNATOS_NVML_LIBRARY`: the NVML library to load instead of the
//!    system's (`off` skips NVML);
//! 2. NVML, the driver's management library, loaded at run time;
//! 3. `nvidia-smi` (`ATEGNATOS_NVIDIA_SMI`, else the one on `PATH`), with a
//!    time limit;
//! 4. `/proc/driver/nvidia/version`, which gives the driver version alone.
//!
//! Without any of them (no driver, a Mac, a CPU box) the probe says so in
//! plain words and the rest of the environment check goes on. The parsers
//! are pure functions tested on the text these tools print.

use std::process::Command;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::compat::{self, Version};
use crate::run::process::run_captured;

/// A GPU as the driver reports it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct GpuInfo {
    pub index: u32,
    /// As the driver names it (`NVIDIA GeForce RTX 4090`).
    pub name: String,
    pub memory_total_mib: u64,
    /// Free now; `None` when the source does not say.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_free_mib: Option<u64>,
    /// `8.9` for an RTX 4090.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compute_capability: Option<String>,
    /// Other programs holding memory on it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub processes: Vec<GpuProcess>,
}

impl GpuInfo {
    pub fn total_gib(&self) -> f64 {
        self.memory_total_mib as f64 / 1024.0
    }

    pub fn free_gib(&self) -> Option<f64> {
        self.memory_free_mib.map(|m| m as f64 / 1024.0)
    }

    /// The name without `NVIDIA` / `GeForce`.
    pub fn short_name(&self) -> String {
        self.name
            .replace("NVIDIA ", "")
            .replace("GeForce ", "")
            .trim()
            .to_string()
    }
}

/// A program using GPU memory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct GpuProcess {
    pub pid: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub used_mib: Option<u64>,
}

/// Where the GPU facts came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum GpuSource {
    Nvml,
    NvidiaSmi,
    /// `/proc/driver/nvidia/version`: the driver is loaded, the GPUs unknown.
    ProcDriver,
    /// Nothing answered.
    None,
}

/// What the GPU probe found.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct GpuProbe {
    pub source: GpuSource,
    pub gpus: Vec<GpuInfo>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver_version: Option<String>,
    /// The newest CUDA the driver supports (`12.4`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cuda_version: Option<String>,
    /// What each source said, in plain words (why NVML is absent, ...).
    pub notes: Vec<String>,
}

impl GpuProbe {
    pub fn first(&self) -> Option<&GpuInfo> {
        self.gpus.first()
    }
}

/// How long `nvidia-smi` may take before it counts as hung.
const SMI_LIMIT: Duration = Duration::from_secs(15);

/// Probes the GPUs; see the module docs for the order.
pub fn probe_gpus() -> GpuProbe {
    let mut notes = Vec::new();
    let override_lib = std::env::var_os("ATEGNATOS_NVML_LIBRARY");
    let skip_nvml = override_lib
        .as_deref()
        .is_some_and(|v| v == "off" || v.is_empty());
    if skip_nvml {
        notes.push("NVML skipped (ATEGNATOS_NVML_LIBRARY=off)".to_string());
    } else {
        match nvml(override_lib.as_deref()) {
            Ok(probe) => return probe,
            Err(why) => notes.push(why),
        }
    }
    match nvidia_smi() {
        Ok(mut probe) => {
            probe.notes = notes;
            return probe;
        }
        Err(why) => notes.push(why),
    }
    let driver = std::fs::read_to_string("/proc/driver/nvidia/version")
        .ok()
        .and_then(|t| parse_proc_driver_version(&t));
    if let Some(d) = driver {
        notes.push(format!(
            "the NVIDIA driver {d} is loaded, but neither NVML nor nvidia-smi could list the GPUs"
        ));
        return GpuProbe {
            source: GpuSource::ProcDriver,
            gpus: Vec::new(),
            cuda_version: cuda_for_driver(&d),
            driver_version: Some(d),
            notes,
        };
    }
    GpuProbe {
        source: GpuSource::None,
        gpus: Vec::new(),
        driver_version: None,
        cuda_version: None,
        notes,
    }
}

fn cuda_for_driver(driver: &str) -> Option<String> {
    let d = Version::parse(driver)?;
    compat::table()
        .max_cuda_for_driver(&d)
        .map(|v| v.to_string())
}

fn nvml(library: Option<&std::ffi::OsStr>) -> Result<GpuProbe, String> {
    use nvml_wrapper::Nvml;
    let init = match library {
        Some(path) => Nvml::builder().lib_path(path).init(),
        None => Nvml::init(),
    };
    let nvml = init.map_err(|e| {
        let which = library
            .map(|p| format!("`{}`", p.to_string_lossy()))
            .unwrap_or_else(|| "libnvidia-ml".into());
        match e {
            nvml_wrapper::error::NvmlError::LibloadingError(_) => format!(
                "NVML ({which}) could not be loaded: no NVIDIA driver is installed here (a Mac, or a machine without an NVIDIA GPU)"
            ),
            other => format!("NVML ({which}) loaded but did not start: {other}"),
        }
    })?;
    let count = nvml
        .device_count()
        .map_err(|e| format!("NVML started but could not count the GPUs: {e}"))?;
    let driver_version = nvml.sys_driver_version().ok();
    let cuda_version = nvml
        .sys_cuda_driver_version()
        .ok()
        .map(|n| Version::from_cuda_int(n).to_string())
        .or_else(|| driver_version.as_deref().and_then(cuda_for_driver));
    let mut gpus = Vec::new();
    let mut notes = Vec::new();
    for index in 0..count {
        let device = match nvml.device_by_index(index) {
            Ok(d) => d,
            Err(e) => {
                notes.push(format!("GPU {index} could not be read: {e}"));
                continue;
            }
        };
        let name = device.name().unwrap_or_else(|_| format!("GPU {index}"));
        let (total, free) = match device.memory_info() {
            Ok(m) => (m.total / (1 << 20), Some(m.free / (1 << 20))),
            Err(e) => {
                notes.push(format!("the memory of GPU {index} could not be read: {e}"));
                (0, None)
            }
        };
        let compute_capability = device
            .cuda_compute_capability()
            .ok()
            .map(|cc| format!("{}.{}", cc.major, cc.minor));
        let processes = device
            .running_compute_processes()
            .unwrap_or_default()
            .into_iter()
            .map(|p| GpuProcess {
                pid: p.pid,
                name: nvml
                    .sys_process_name(p.pid, 64)
                    .ok()
                    .or_else(|| process_name(p.pid)),
                used_mib: match p.used_gpu_memory {
                    nvml_wrapper::enums::device::UsedGpuMemory::Used(b) => Some(b / (1 << 20)),
                    nvml_wrapper::enums::device::UsedGpuMemory::Unavailable => None,
                },
            })
            .collect();
        gpus.push(GpuInfo {
            index,
            name,
            memory_total_mib: total,
            memory_free_mib: free,
            compute_capability,
            processes,
        });
    }
    Ok(GpuProbe {
        source: GpuSource::Nvml,
        gpus,
        driver_version,
        cuda_version,
        notes,
    })
}

fn process_name(pid: u32) -> Option<String> {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .ok()
        .map(|s| s.trim().to_string())
}

const SMI_FIELDS: &str = "index,name,memory.total,memory.free,driver_version,compute_cap";
const SMI_FIELDS_OLD: &str = "index,name,memory.total,memory.free,driver_version";

fn nvidia_smi() -> Result<GpuProbe, String> {
    let program = std::env::var_os("ATEGNATOS_NVIDIA_SMI").unwrap_or_else(|| "nvidia-smi".into());
    let shown = program.to_string_lossy().into_owned();
    let run = |fields: &str| {
        run_captured(
            Command::new(&program)
                .arg(format!("--query-gpu={fields}"))
                .arg("--format=csv,noheader,nounits"),
            SMI_LIMIT,
        )
    };
    let mut out = run(SMI_FIELDS).map_err(|e| match e {
        crate::run::process::ProcessError::Spawn { .. } => {
            format!("`{shown}` is not installed or not on PATH")
        }
        other => format!("`{shown}` failed: {other}"),
    })?;
    // Drivers older than 510 do not know `compute_cap`.
    if !out.exit.success() && out.stdout.contains("compute_cap") {
        out = run(SMI_FIELDS_OLD).map_err(|e| format!("`{shown}` failed: {e}"))?;
    }
    if !out.exit.success() {
        let said = if out.stdout.trim().is_empty() {
            out.stderr.trim().to_string()
        } else {
            out.stdout.trim().to_string()
        };
        return Err(format!("`{shown}` answered with an error: {said}"));
    }
    let gpus = parse_nvidia_smi_csv(&out.stdout)?;
    let driver_version = parse_smi_driver(&out.stdout);
    Ok(GpuProbe {
        source: GpuSource::NvidiaSmi,
        cuda_version: driver_version.as_deref().and_then(cuda_for_driver),
        gpus,
        driver_version,
        notes: Vec::new(),
    })
}

/// Rows of `nvidia-smi --query-gpu=index,name,memory.total,memory.free,
/// driver_version[,compute_cap] --format=csv,noheader,nounits`.
pub fn parse_nvidia_smi_csv(text: &str) -> Result<Vec<GpuInfo>, String> {
    let mut gpus = Vec::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let cells: Vec<&str> = line.split(',').map(str::trim).collect();
        if cells.len() < 5 {
            return Err(format!(
                "nvidia-smi printed a line we cannot read: `{line}`"
            ));
        }
        let number = |s: &str| s.parse::<u64>().ok();
        let index = cells[0]
            .parse::<u32>()
            .map_err(|_| format!("nvidia-smi printed a line we cannot read: `{line}`"))?;
        let total = number(cells[2])
            .ok_or_else(|| format!("nvidia-smi gave no memory size in `{line}`"))?;
        gpus.push(GpuInfo {
            index,
            name: cells[1].to_string(),
            memory_total_mib: total,
            memory_free_mib: number(cells[3]),
            compute_capability: cells
                .get(5)
                .filter(|c| Version::parse(c).is_some())
                .map(|c| c.to_string()),
            processes: Vec::new(),
        });
    }
    Ok(gpus)
}

fn parse_smi_driver(text: &str) -> Option<String> {
    text.lines()
        .filter_map(|l| l.split(',').nth(4))
        .map(str::trim)
        .find(|d| Version::parse(d).is_some())
        .map(String::from)
}

/// The driver version in `/proc/driver/nvidia/version` (proprietary and
/// open kernel modules word it differently).
pub fn parse_proc_driver_version(text: &str) -> Option<String> {
    let line = text.lines().find(|l| l.starts_with("NVRM version:"))?;
    let after = &line[line.find("Kernel Module")? + "Kernel Module".len()..];
    after
        .split_whitespace()
        .find(|w| w.contains('.') && w.chars().all(|c| c.is_ascii_digit() || c == '.'))
        .map(String::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    // `nvidia-smi --query-gpu=index,name,memory.total,memory.free,driver_version,compute_cap
    //  --format=csv,noheader,nounits` on a two-GPU box.
    const SMI_TWO: &str = "0, NVIDIA GeForce RTX 4090, 24564, 23012, 550.54.14, 8.9\n1, NVIDIA GeForce RTX 3060, 12288, 11946, 550.54.14, 8.6\n";
    // A data-centre card, and a driver whose nvidia-smi has no compute_cap field.
    const SMI_H100: &str = "0, NVIDIA H100 80GB HBM3, 81559, 81007, 535.183.01, 9.0\n";
    const SMI_OLD: &str = "0, Tesla T4, 15360, 15101, 470.82.01\n";
    // `/proc/driver/nvidia/version`, proprietary and open kernel modules.
    const PROC_PROPRIETARY: &str = "NVRM version: NVIDIA UNIX x86_64 Kernel Module  550.54.14  Thu Feb 22 01:44:30 UTC 2024\nGCC version:  gcc version 12.3.0 (Ubuntu 12.3.0-1ubuntu1~22.04)\n";
    const PROC_OPEN: &str = "NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  570.86.15  Release Build  (dvs-builder@U16-I3-B03-4-3)  Thu Jan 23 23:41:38 UTC 2025\nGCC version:  gcc version 11.4.0 (Ubuntu 11.4.0-1ubuntu1~22.04)\n";

    #[test]
    fn nvidia_smi_rows_give_each_gpus_memory_and_generation() {
        let gpus = parse_nvidia_smi_csv(SMI_TWO).unwrap();
        assert_eq!(gpus.len(), 2);
        assert_eq!(gpus[0].short_name(), "RTX 4090");
        assert_eq!(gpus[0].memory_total_mib, 24564);
        assert_eq!(gpus[0].memory_free_mib, Some(23012));
        assert_eq!(gpus[1].compute_capability.as_deref(), Some("8.6"));
        assert!((gpus[0].total_gib() - 23.99).abs() < 0.01);
        let h100 = parse_nvidia_smi_csv(SMI_H100).unwrap();
        assert_eq!(h100[0].short_name(), "H100 80GB HBM3");
        let old = parse_nvidia_smi_csv(SMI_OLD).unwrap();
        assert_eq!(old[0].compute_capability, None);
        assert_eq!(parse_smi_driver(SMI_H100).as_deref(), Some("535.183.01"));
    }

    #[test]
    fn a_line_that_is_not_a_gpu_row_is_refused_by_name() {
        let err = parse_nvidia_smi_csv(
            "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.",
        )
        .unwrap_err();
        assert!(err.contains("NVIDIA-SMI has failed"), "{err}");
    }

    #[test]
    fn the_driver_version_is_read_from_both_kernel_modules() {
        assert_eq!(
            parse_proc_driver_version(PROC_PROPRIETARY).as_deref(),
            Some("550.54.14")
        );
        assert_eq!(
            parse_proc_driver_version(PROC_OPEN).as_deref(),
            Some("570.86.15")
        );
        assert_eq!(parse_proc_driver_version("nothing here"), None);
    }

    #[test]
    fn an_nvml_library_that_is_not_there_is_said_plainly() {
        let probe = nvml(Some(std::ffi::OsStr::new("/nonexistent/libnvidia-ml.so.1")));
        let why = probe.err().unwrap();
        assert!(
            why.contains("could not be loaded") && why.contains("no NVIDIA driver"),
            "{why}"
        );
    }

    /// A real library without NVML's symbols: it loads, then NVML cannot start.
    #[cfg(target_os = "linux")]
    #[test]
    fn an_nvml_that_loads_but_errors_is_said_plainly() {
        let probe = nvml(Some(std::ffi::OsStr::new("libc.so.6")));
        let why = probe.err().unwrap();
        assert!(why.contains("loaded but did not start"), "{why}");
    }
}
