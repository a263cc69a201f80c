//! The base model the trainer will load: is it there, is it whole, and is
//! it about the size the model should be?
//!
//! A `.safetensors` file is checked from its header (8-byte length, JSON
//! table of tensors) against its size, which catches a truncated download
//! and a Git LFS pointer (the failure behind kohya's `HeaderTooLarge`); a
//! diffusers folder must hold the denoiser's weights; a Hugging Face id is
//! downloaded by the trainer on its first run.

use std::io::Read;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::Severity;
use crate::plan::catalog::ModelSpec;

/// What the check found about one model file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ModelFileReport {
    /// As the config names it.
    pub given: String,
    /// `file`, `folder` or `hugging_face`.
    pub kind: String,
    pub exists: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size_gib: Option<f64>,
    /// About what the model's weights take in 16-bit.
    pub expected_gib: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub problem: Option<ModelProblem>,
}

/// Why the file will not do (or may not), with what to do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ModelProblem {
    pub severity: Severity,
    pub message: String,
    pub what_to_do: String,
}

const GIB: f64 = 1_073_741_824.0;
/// A header larger than this is not a safetensors header (the library's own limit).
const MAX_HEADER: u64 = 100_000_000;

/// What is wrong with a safetensors file of `len` bytes that starts with
/// `head` (at least its first 8 bytes and its header); `None` when whole.
pub fn safetensors_problem(head: &[u8], len: u64) -> Option<String> {
    if head.starts_with(b"version https://git-lfs") {
        return Some("it is a Git LFS pointer (a small text file), not the weights".into());
    }
    let Some(n) = head.get(..8).map(|b| {
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        u64::from_le_bytes(a)
    }) else {
        return Some(format!("it is only {len} bytes long"));
    };
    if n > MAX_HEADER || n + 8 > len {
        return Some("its header is larger than the file (HeaderTooLarge): it is cut off or not a safetensors file".into());
    }
    let Some(header) = head.get(8..8 + n as usize) else {
        return Some("its header could not be read".into());
    };
    let Ok(table) = serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(header)
    else {
        return Some(
            "its header is not valid JSON: it is damaged or not a safetensors file".into(),
        );
    };
    let end = table
        .iter()
        .filter(|(k, _)| *k != "__metadata__")
        .filter_map(|(_, v)| v.get("data_offsets")?.get(1)?.as_u64())
        .max()
        .unwrap_or(0);
    let needed = 8 + n + end;
    if needed > len {
        return Some(format!(
            "it is cut off: its tensors need {needed} bytes but the file has {len}"
        ));
    }
    None
}

fn read_head(path: &Path) -> std::io::Result<(Vec<u8>, u64)> {
    let mut f = std::fs::File::open(path)?;
    let len = f.metadata()?.len();
    let mut first = [0u8; 8];
    let got = f.read(&mut first)?;
    let mut head = first[..got].to_vec();
    if got == 8 {
        let n = u64::from_le_bytes(first);
        if n <= MAX_HEADER && n + 8 <= len {
            let mut header = vec![0u8; n as usize];
            f.read_exact(&mut header)?;
            head.extend(header);
        } else if first.starts_with(b"version ") {
            let mut rest = Vec::new();
            f.take(64).read_to_end(&mut rest)?;
            head.extend(rest);
        }
    }
    Ok((head, len))
}

fn looks_like_hub_id(given: &str) -> bool {
    !given.starts_with('/')
        && !given.starts_with('.')
        && given.split('/').count() == 2
        && !given.contains('\\')
        && !Path::new(given)
            .extension()
            .is_some_and(|e| e == "safetensors" || e == "ckpt")
}

fn problem(severity: Severity, message: String, what_to_do: String) -> Option<ModelProblem> {
    Some(ModelProblem {
        severity,
        message,
        what_to_do,
    })
}

/// Checks one model path (absolute, or a Hugging Face id) for `model`.
pub fn check_model(given: &str, model: &ModelSpec) -> ModelFileReport {
    let expected_gib = super::disk::model_bytes(model) / GIB;
    let path = Path::new(given);
    let mut report = ModelFileReport {
        given: given.to_string(),
        kind: "file".into(),
        exists: path.exists(),
        size_gib: None,
        expected_gib,
        problem: None,
    };
    if !report.exists && looks_like_hub_id(given) {
        report.kind = "hugging_face".into();
        report.problem = if model.gated {
            problem(
                Severity::Warning,
                format!("`{given}` is downloaded from Hugging Face on the first run, and its licence must be accepted there"),
                "accept the licence on the model's Hugging Face page and set HF_TOKEN, or download it into the workspace and plan with model_path".into(),
            )
        } else {
            problem(
                Severity::Info,
                format!("`{given}` is downloaded from Hugging Face on the first run (about {expected_gib:.0} GB)"),
                "nothing to do if this machine can reach huggingface.co; otherwise download it into the workspace and plan with model_path".into(),
            )
        };
        return report;
    }
    if !report.exists {
        report.problem = problem(
            Severity::Blocking,
            format!("the model file `{given}` is not there"),
            "download the model there, or plan with the path of the one you have (plan_training with model_path), then write the config again (generate_config)".into(),
        );
        return report;
    }
    if path.is_dir() {
        report.kind = "folder".into();
        let weights = ["unet", "transformer"].iter().any(|sub| {
            std::fs::read_dir(path.join(sub))
                .map(|entries| {
                    entries.filter_map(|e| e.ok()).any(|e| {
                        let n = e.file_name().to_string_lossy().into_owned();
                        n.ends_with(".safetensors") || n.ends_with(".bin")
                    })
                })
                .unwrap_or(false)
        });
        if !weights {
            report.problem = problem(
                Severity::Blocking,
                format!("the model folder `{given}` has no `unet/` or `transformer/` weights: it is not a diffusers model"),
                "point the plan at the model's single `.safetensors` file, or at a complete diffusers folder".into(),
            );
        }
        return report;
    }
    let (head, len) = match read_head(path) {
        Ok(h) => h,
        Err(e) => {
            report.problem = problem(
                Severity::Blocking,
                format!("the model file `{given}` cannot be read: {e}"),
                "check the file's permissions, or download it again".into(),
            );
            return report;
        }
    };
    report.size_gib = Some(len as f64 / GIB);
    let is_safetensors = path.extension().is_some_and(|e| e == "safetensors");
    if let Some(why) = is_safetensors
        .then(|| safetensors_problem(&head, len))
        .flatten()
    {
        report.problem = problem(
            Severity::Blocking,
            format!("the model file `{given}` is not usable: {why}"),
            "download it again and compare its size with the source's (with Git LFS, run `git lfs pull`)".into(),
        );
    } else if (len as f64) < expected_gib * GIB * 0.4 {
        report.problem = problem(
            Severity::Warning,
            format!(
                "the model file `{given}` is {:.2} GB, much smaller than {} (about {expected_gib:.1} GB in 16-bit)",
                len as f64 / GIB,
                model.name
            ),
            "check that it is the right model (not a LoRA or a pruned part); a smaller file may not load".into(),
        );
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    fn safetensors_bytes(data_len: usize) -> Vec<u8> {
        let header = format!(
            "{{\"w\":{{\"dtype\":\"F32\",\"shape\":[{}],\"data_offsets\":[0,{}]}}}}",
            data_len / 4,
            data_len
        );
        let mut b = (header.len() as u64).to_le_bytes().to_vec();
        b.extend(header.as_bytes());
        b.extend(vec![0u8; data_len]);
        b
    }

    #[test]
    fn a_whole_file_a_cut_one_and_an_lfs_pointer_are_told_apart() {
        let whole = safetensors_bytes(64);
        assert_eq!(safetensors_problem(&whole, whole.len() as u64), None);
        let cut = &whole[..whole.len() - 10];
        assert!(
            safetensors_problem(cut, cut.len() as u64)
                .unwrap()
                .contains("cut off")
        );
        let lfs = b"version https://git-lfs.github.com/spec/v1\noid sha256:4c8f\nsize 6938078334\n";
        assert!(
            safetensors_problem(lfs, lfs.len() as u64)
                .unwrap()
                .contains("LFS")
        );
        let text = b"not a model at all, just some text that goes on";
        assert!(
            safetensors_problem(text, text.len() as u64)
                .unwrap()
                .contains("HeaderTooLarge")
        );
    }

    #[test]
    fn files_on_disk_are_checked_and_hub_ids_are_left_to_download() {
        let dir = tempfile::tempdir().unwrap();
        let sd15 = crate::plan::catalog::lookup("sd15").unwrap();
        let flux = crate::plan::catalog::lookup("flux-dev").unwrap();
        let missing = check_model(&dir.path().join("no.safetensors").to_string_lossy(), sd15);
        assert_eq!(missing.problem.unwrap().severity, Severity::Blocking);
        let small = dir.path().join("tiny.safetensors");
        std::fs::write(&small, safetensors_bytes(64)).unwrap();
        let r = check_model(&small.to_string_lossy(), sd15);
        assert_eq!(r.problem.unwrap().severity, Severity::Warning);
        let lfs = dir.path().join("lfs.safetensors");
        std::fs::write(
            &lfs,
            b"version https://git-lfs.github.com/spec/v1\noid sha256:ab\nsize 9\n",
        )
        .unwrap();
        let r = check_model(&lfs.to_string_lossy(), sd15);
        assert!(r.problem.unwrap().message.contains("Git LFS pointer"));
        let hub = check_model("black-forest-labs/FLUX.1-dev", flux);
        assert_eq!(hub.kind, "hugging_face");
        assert_eq!(hub.problem.unwrap().severity, Severity::Warning);
        let folder = dir.path().join("empty-model");
        std::fs::create_dir_all(&folder).unwrap();
        let r = check_model(&folder.to_string_lossy(), sd15);
        assert!(r.problem.unwrap().message.contains("not a diffusers model"));
    }
}
