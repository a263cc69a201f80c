//! The trainer's Python: which interpreter (the backend's own virtual
//! environment first), and what one short probe run inside it says —
//! Python and PyTorch versions, PyTorch's CUDA build, whether it sees the GPU
//! or Apple's MPS, xformers and bitsandbytes, and every module the trainer
//! imports that cannot be found (`probe.py`).
//!
//! The probe runs with a time limit; a Python that hangs is stopped, one
//! that is not Python is named, and neither ever stops the check.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::run::process::{ProcessError, run_captured};

const PROBE: &str = include_str!("probe.py");
const MARKER: &str = "ATEGNATOS_PROBE ";

/// How long the probe may take by default (importing torch for the first
/// time after an install can take a minute on a slow disk).
pub const DEFAULT_PROBE_LIMIT: Duration = Duration::from_secs(120);

/// An interpreter and why it was chosen.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PythonChoice {
    pub path: PathBuf,
    /// `the backend's venv`, `ATEGNATOS_PYTHON`, `PATH`.
    pub found_by: String,
}

/// Where a backend's environment's `python` may be, relative to its folder.
const VENV_PYTHONS: &[&str] = &[
    "venv/bin/python",
    ".venv/bin/python",
    "venv/Scripts/python.exe",
    ".venv/Scripts/python.exe",
];

/// The interpreter for a backend installed in `install` (its own venv, or
/// the one of the folder above it, as kohya_ss keeps sd-scripts inside),
/// else `ATEGNATOS_PYTHON`, else an active `VIRTUAL_ENV`, else `python3` on
/// `PATH`.
pub fn find_python(install: Option<&Path>) -> Option<PythonChoice> {
    if let Some(dir) = install {
        for base in [Some(dir), dir.parent()].into_iter().flatten() {
            for rel in VENV_PYTHONS {
                let p = base.join(rel);
                if p.exists() {
                    return Some(PythonChoice {
                        path: p,
                        found_by: "the backend's own virtual environment".into(),
                    });
                }
            }
        }
    }
    if let Some(p) = std::env::var_os("ATEGNATOS_PYTHON").filter(|p| !p.is_empty()) {
        return Some(PythonChoice {
            path: PathBuf::from(p),
            found_by: "ATEGNATOS_PYTHON".into(),
        });
    }
    if let Some(venv) = std::env::var_os("VIRTUAL_ENV") {
        let p = Path::new(&venv).join("bin/python");
        if p.exists() {
            return Some(PythonChoice {
                path: p,
                found_by: "the active virtual environment (VIRTUAL_ENV)".into(),
            });
        }
    }
    let path = std::env::var_os("PATH")?;
    for dir in std::env::split_paths(&path) {
        for name in ["python3", "python", "python.exe"] {
            let p = dir.join(name);
            if p.is_file() {
                return Some(PythonChoice {
                    path: p,
                    found_by: "PATH".into(),
                });
            }
        }
    }
    None
}

/// PyTorch as the probe found it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct TorchInfo {
    pub installed: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The CUDA it was built for; `None` for a CPU or MPS build.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cuda: Option<String>,
    /// `torch/version.py`, re-read to notice an upgrade.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_file: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cuda_available: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_count: Option<u32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub devices: Vec<String>,
    /// `torch.cuda.get_arch_list()`: the GPUs it has kernels for.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub arch_list: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bf16: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mps_available: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mps_built: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mps_memory_bytes: Option<u64>,
    /// Importing torch failed with this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cuda_error: Option<String>,
}

/// A module the trainer imports that its Python cannot find.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct MissingModule {
    pub module: String,
    /// The file that imports it (relative to the install), or `the plan`.
    pub imported_by: String,
}

/// The import check of the trainer's entry scripts.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ImportCheck {
    /// Files of the trainer read.
    pub scanned: u32,
    pub missing: Vec<MissingModule>,
    #[serde(default)]
    pub missing_entry_scripts: Vec<String>,
    #[serde(default)]
    pub unreadable: Vec<String>,
}

/// What the probe printed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ProbeAnswer {
    pub python: String,
    pub executable: String,
    pub platform: String,
    pub machine: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub imports: Option<ImportCheck>,
    #[serde(default)]
    pub packages: BTreeMap<String, Option<String>>,
    #[serde(default)]
    pub torch: TorchInfo,
}

/// What to check beside torch.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ProbeRequest {
    /// The trainer's folder (put first on `sys.path`, as running its script does).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub install_dir: Option<PathBuf>,
    /// Entry scripts, relative to the install.
    pub entry_scripts: Vec<String>,
    /// Modules the plan needs beside what the scripts import.
    pub extra_modules: Vec<String>,
}

/// Why the probe gave no answer, in words, with what to do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ProbeProblem {
    pub message: String,
    pub what_to_do: String,
}

/// Finds the probe's line in what the interpreter printed.
pub fn parse_probe_output(stdout: &str) -> Option<ProbeAnswer> {
    let line = stdout.lines().rev().find_map(|l| l.strip_prefix(MARKER))?;
    serde_json::from_str(line).ok()
}

fn shown(text: &str) -> String {
    let t: String = text.trim().chars().take(200).collect();
    if t.is_empty() {
        "nothing".into()
    } else {
        format!("`{t}`")
    }
}

/// Runs the probe in `python`, in `cwd`, within `limit`.
pub fn run_probe(
    python: &Path,
    request: &ProbeRequest,
    cwd: Option<&Path>,
    limit: Duration,
) -> Result<ProbeAnswer, ProbeProblem> {
    let args = serde_json::to_string(request).unwrap_or_else(|_| "{}".into());
    let mut cmd = Command::new(python);
    cmd.arg("-c").arg(PROBE).arg(args);
    if let Some(dir) = cwd {
        cmd.current_dir(dir);
    }
    let shown_python = python.display();
    let out = match run_captured(&mut cmd, limit) {
        Ok(out) => out,
        Err(ProcessError::Spawn { source, .. }) => {
            return Err(ProbeProblem {
                message: format!("could not start the Python `{shown_python}`: {source}"),
                what_to_do: "check that the path is a Python interpreter you can run (the backend's `venv/bin/python`), or recreate the backend's virtual environment".into(),
            });
        }
        Err(ProcessError::TimedOut { seconds, .. }) => {
            return Err(ProbeProblem {
                message: format!(
                    "the Python `{shown_python}` did not answer within {seconds} s and was stopped"
                ),
                what_to_do: "run that Python by hand to see where it hangs (a first `import torch` after an install can be slow: try again), or recreate the backend's virtual environment".into(),
            });
        }
    };
    match parse_probe_output(&out.stdout) {
        Some(answer) => Ok(answer),
        None => Err(ProbeProblem {
            message: format!(
                "`{shown_python}` is not a working Python: asked to run a short script it ended with {} and printed {}{}",
                out.exit.describe(),
                shown(&out.stdout),
                if out.stderr.trim().is_empty() {
                    String::new()
                } else {
                    format!(" (errors: {})", shown(&out.stderr))
                }
            ),
            what_to_do: "point the backend at a real Python 3.10 or newer (recreate its virtual environment with `python3 -m venv venv` and install its requirements)".into(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_probes_line_is_found_among_other_output() {
        let text = "some warning from sitecustomize\nATEGNATOS_PROBE {\"python\": \"3.11.7\", \"executable\": \"/v/bin/python\", \"platform\": \"linux\", \"machine\": \"x86_64\", \"packages\": {\"xformers\": null, \"bitsandbytes\": \"0.43.1\"}, \"torch\": {\"installed\": true, \"version\": \"2.5.1+cu124\", \"cuda\": \"12.4\", \"cuda_available\": true, \"arch_list\": [\"sm_80\", \"sm_86\", \"sm_90\"]}}\n";
        let a = parse_probe_output(text).unwrap();
        assert_eq!(a.python, "3.11.7");
        assert_eq!(a.torch.version.as_deref(), Some("2.5.1+cu124"));
        assert_eq!(a.torch.cuda_available, Some(true));
        assert_eq!(a.packages["bitsandbytes"].as_deref(), Some("0.43.1"));
        assert_eq!(parse_probe_output("hello\n"), None);
    }

    #[cfg(unix)]
    #[test]
    fn the_real_probe_runs_in_the_real_python_and_finds_what_is_missing() {
        let Some(python) = find_python(None) else {
            return; // no Python on this machine: the check says so elsewhere
        };
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("library")).unwrap();
        std::fs::write(
            dir.path().join("train.py"),
            "import os\nimport json\nfrom library import util\ntry:\n    import optional_thing\nexcept ImportError:\n    pass\ndef f():\n    import lazy_thing\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("library/__init__.py"), "").unwrap();
        std::fs::write(
            dir.path().join("library/util.py"),
            "import zz_not_installed_one\nfrom . import helpers\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("library/helpers.py"),
            "import zz_not_installed_two.sub\nimport sys\nif sys.platform == 'win32':\n    import winreg\n",
        )
        .unwrap();
        let request = ProbeRequest {
            install_dir: Some(dir.path().to_path_buf()),
            entry_scripts: vec!["train.py".into(), "absent.py".into()],
            extra_modules: vec!["zz_plan_module".into()],
        };
        let answer = run_probe(
            &python.path,
            &request,
            Some(dir.path()),
            DEFAULT_PROBE_LIMIT,
        )
        .unwrap();
        let imports = answer.imports.unwrap();
        let missing: Vec<(&str, &str)> = imports
            .missing
            .iter()
            .map(|m| (m.module.as_str(), m.imported_by.as_str()))
            .collect();
        assert_eq!(
            missing,
            vec![
                ("zz_not_installed_one", "library/util.py"),
                ("zz_not_installed_two", "library/helpers.py"),
                ("zz_plan_module", "the plan"),
            ]
        );
        assert_eq!(imports.missing_entry_scripts, vec!["absent.py".to_string()]);
        assert_eq!(imports.scanned, 4);
    }
}
