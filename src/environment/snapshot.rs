//! The environment snapshot Gate 3 records: which GPUs, driver, backend
//! commit, Python and PyTorch the check saw. Free memory is not part of it
//! (it changes by the second); an upgraded PyTorch, another GPU, a new
//! driver or a pulled trainer are.
//!
//! [`now`] re-reads a recorded snapshot cheaply — the GPU probe (no Python),
//! the git commit from `.git`, PyTorch's version from its `version.py` — so
//! `project_status` can tell a stale Gate 3 without running the probe.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::gpu::{GpuProbe, probe_gpus};
use super::{InstallReport, PythonReport};
use crate::plan::training::Backend;

/// What Gate 3's fingerprint covers.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct EnvSnapshot {
    /// Each GPU's name and memory (`NVIDIA GeForce RTX 4090 (24564 MiB)`).
    pub gpus: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend: Option<Backend>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub install_dir: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub install_commit: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub python: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub torch: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub torch_version_file: Option<PathBuf>,
    /// This program's version and whether it has the CUDA backend.
    pub engine: String,
}

impl EnvSnapshot {
    /// `env-` and a hash of the snapshot.
    pub fn fingerprint(&self) -> String {
        let bytes = serde_json::to_vec(self).unwrap_or_default();
        format!("env-{}", &blake3::hash(&bytes).to_hex()[..32])
    }
}

fn engine() -> String {
    format!(
        "ategnatos {}{}",
        env!("CARGO_PKG_VERSION"),
        if cfg!(feature = "cuda") { " cuda" } else { "" }
    )
}

fn gpu_names(probe: &GpuProbe) -> Vec<String> {
    probe
        .gpus
        .iter()
        .map(|g| format!("{} ({} MiB)", g.name, g.memory_total_mib))
        .collect()
}

/// `__version__ = '2.5.1+cu124'` in PyTorch's `version.py`.
pub fn torch_version_in(path: &Path) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    text.lines().find_map(|l| {
        let rest = l.trim().strip_prefix("__version__")?;
        let value = rest.split_once('=')?.1.trim();
        let value = value.split('#').next()?.trim();
        Some(value.trim_matches(['\'', '"']).to_string())
    })
}

/// The snapshot of a check that just ran.
pub fn take(
    gpus: &GpuProbe,
    backend: Option<Backend>,
    install: Option<&InstallReport>,
    python: Option<&PythonReport>,
) -> EnvSnapshot {
    let torch = python
        .and_then(|p| p.answer.as_ref())
        .map(|a| &a.torch)
        .filter(|t| t.installed);
    let version_file = torch
        .and_then(|t| t.version_file.as_ref())
        .map(PathBuf::from);
    EnvSnapshot {
        gpus: gpu_names(gpus),
        driver: gpus.driver_version.clone(),
        backend,
        install_dir: install.map(|i| i.dir.clone()),
        install_commit: install.and_then(|i| i.commit.clone()),
        python: python.map(|p| p.interpreter.clone()),
        torch: version_file
            .as_deref()
            .and_then(torch_version_in)
            .or_else(|| torch.and_then(|t| t.version.clone())),
        torch_version_file: version_file,
        engine: engine(),
    }
}

/// The recorded snapshot as the machine is now.
pub fn now(recorded: &EnvSnapshot) -> EnvSnapshot {
    let gpus = probe_gpus();
    let install_commit = recorded.install_dir.as_deref().and_then(|dir| {
        super::install::git_commit(&dir.join("sd-scripts"))
            .or_else(|| super::install::git_commit(dir))
    });
    EnvSnapshot {
        gpus: gpu_names(&gpus),
        driver: gpus.driver_version.clone(),
        backend: recorded.backend,
        install_dir: recorded.install_dir.clone(),
        install_commit,
        python: recorded.python.clone().filter(|p| p.exists()),
        torch: match &recorded.torch_version_file {
            Some(f) => torch_version_in(f),
            None => recorded.torch.clone(),
        },
        torch_version_file: recorded.torch_version_file.clone(),
        engine: engine(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn torchs_version_file_is_read_as_pytorch_writes_it() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("version.py");
        std::fs::write(
            &f,
            "from typing import Optional\n\n__all__ = ['__version__', 'debug', 'cuda', 'git_version', 'hip']\n__version__ = '2.5.1+cu124'\ndebug = False\ncuda: Optional[str] = '12.4'\ngit_version = 'a8d6afb511a69687bbb2b7e88a3cf67917e1697e'\nhip: Optional[str] = None\n",
        )
        .unwrap();
        assert_eq!(torch_version_in(&f).as_deref(), Some("2.5.1+cu124"));
        assert_eq!(torch_version_in(&dir.path().join("absent.py")), None);
    }

    #[test]
    fn a_different_torch_is_a_different_fingerprint() {
        let a = EnvSnapshot {
            torch: Some("2.5.1+cu124".into()),
            engine: engine(),
            ..EnvSnapshot::default()
        };
        let b = EnvSnapshot {
            torch: Some("2.6.0+cu124".into()),
            ..a.clone()
        };
        assert_ne!(a.fingerprint(), b.fingerprint());
        assert_eq!(a.fingerprint(), a.clone().fingerprint());
    }
}
