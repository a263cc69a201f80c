//! Free space on the workspace's disk against what a run will write: the
//! base model when it still has to be downloaded, the latent and text
//! caches, every checkpoint the plan keeps (and kohya's training states).
//! Sizes are estimates from the model's parameter counts and the plan, and
//! are said as "about".

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::plan::catalog::{ModelFamily, ModelSpec};
use crate::plan::training::{Backend, LoraCoverage, TrainingPlan};

const GIB: f64 = 1_073_741_824.0;
/// Logs, samples, configs and the latent cache's own overhead.
const HEADROOM_GIB: f64 = 2.0;

/// Free bytes for an unprivileged user on the volume holding `path`.
pub fn free_bytes(path: &Path) -> Option<u64> {
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        let c = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
        let mut stat = std::mem::MaybeUninit::<libc::statvfs>::uninit();
        // SAFETY: `c` is a valid NUL-terminated path and `stat` points to
        // writable memory of the right type; statvfs only writes into it.
        let rc = unsafe { libc::statvfs(c.as_ptr(), stat.as_mut_ptr()) };
        if rc != 0 {
            return None;
        }
        // SAFETY: statvfs returned 0, so it filled the struct.
        let stat = unsafe { stat.assume_init() };
        #[allow(clippy::unnecessary_cast)] // the field types differ by platform
        Some(stat.f_bavail as u64 * stat.f_frsize as u64)
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        None
    }
}

/// One thing the run will write.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct DiskPart {
    pub what: String,
    pub gib: f64,
}

/// What a run needs on disk, part by part.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct DiskNeed {
    pub parts: Vec<DiskPart>,
    pub total_gib: f64,
}

/// Bytes of the model's weights in fp16, the usual download.
pub fn model_bytes(model: &ModelSpec) -> f64 {
    let a = model.architecture;
    let te: u64 = a.text_encoders.iter().map(|t| t.params).sum();
    (a.denoiser_params + te + a.vae_params) as f64 * 2.0
}

/// Estimates what `plan` writes; `model_present` says whether the base
/// model is already on this disk.
pub fn estimate_need(plan: &TrainingPlan, model: &ModelSpec, model_present: bool) -> DiskNeed {
    let mut parts = Vec::new();
    let a = model.architecture;
    if !model_present {
        parts.push(DiskPart {
            what: format!("{} to download", model.name),
            gib: model_bytes(model) / GIB,
        });
    }
    let images = f64::from(plan.image_count());
    if plan.cache_latents {
        let channels = if model.family.is_transformer() {
            16.0
        } else {
            4.0
        };
        let side = f64::from(plan.resolution) / 8.0;
        // Latents are cached as float32, one file per picture (and bucket).
        parts.push(DiskPart {
            what: "latent cache".into(),
            gib: images * channels * side * side * 4.0 / GIB,
        });
    }
    let caches_text = crate::backends::caches_text_encoder_outputs(plan.backend, model.family)
        && plan.cache_text_embeddings;
    if caches_text {
        // Hidden states per caption, in 16-bit: CLIP's 77 tokens, or T5's 512.
        let per_caption = match model.family {
            ModelFamily::Sd15 => 77.0 * 768.0 * 2.0,
            ModelFamily::Sdxl => 77.0 * 2048.0 * 2.0 + 1280.0 * 2.0,
            ModelFamily::Flux | ModelFamily::Sd3 => 512.0 * 4096.0 * 2.0 + 768.0 * 2.0,
        };
        parts.push(DiskPart {
            what: "text-embedding cache".into(),
            gib: images * per_caption / GIB,
        });
    }
    let per_rank = match plan.backend.lora_coverage(model.family) {
        LoraCoverage::Attention => a.lora_params_per_rank_attention,
        LoraCoverage::AllLinear => a.lora_params_per_rank_all,
    };
    let lora_params = per_rank as f64 * f64::from(plan.rank);
    let lora_gib = lora_params * 2.0 / GIB;
    let saves = plan.epochs.div_ceil(plan.save_every_epochs.max(1)) + 1;
    parts.push(DiskPart {
        what: format!("{saves} LoRA checkpoints"),
        gib: f64::from(saves) * lora_gib,
    });
    if plan.backend == Backend::Kohya {
        // `save_state`: weights and two optimizer moments in float32 per save.
        parts.push(DiskPart {
            what: format!("{saves} training states (for resuming)"),
            gib: f64::from(saves) * lora_params * 12.0 / GIB,
        });
    }
    parts.push(DiskPart {
        what: "logs, samples and headroom".into(),
        gib: HEADROOM_GIB,
    });
    let total_gib = parts.iter().map(|p| p.gib).sum();
    DiskNeed { parts, total_gib }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::training::tests::sample_plan;

    #[test]
    fn a_missing_model_counts_and_a_present_one_does_not() {
        let plan = sample_plan();
        let model = plan.model().unwrap();
        let absent = estimate_need(&plan, model, false);
        let present = estimate_need(&plan, model, true);
        // SDXL: about 6.9 GB of fp16 weights to download.
        let download = absent.total_gib - present.total_gib;
        assert!((6.0..7.5).contains(&download), "{download}");
        assert!(present.parts.iter().any(|p| p.what == "latent cache"));
        assert!(present.total_gib > HEADROOM_GIB);
    }

    #[cfg(unix)]
    #[test]
    fn the_free_space_of_a_real_folder_is_read() {
        let dir = tempfile::tempdir().unwrap();
        assert!(free_bytes(dir.path()).is_some_and(|b| b > 0));
        assert_eq!(free_bytes(Path::new("/definitely/not/here")), None);
    }
}
