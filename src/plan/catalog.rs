//! The base models we know, as data: adding a model is adding an entry to
//! [`CATALOG`], not a new code branch.
//!
//! Each entry carries what the rest of Gate 2 reasons with: the family (which
//! trainer script), the prediction type, and an [`Architecture`] with the
//! parameter counts and memory constants the VRAM estimate uses.

use crate::studio::Hint;
use serde::{Deserialize, Serialize};

/// How captions for a model are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CaptionFormat {
    /// Comma-separated booru-style tags (`ohwx, 1girl, watercolor, ...`).
    Tags,
    /// Plain sentences (`ohwx, a watercolor painting of ...`).
    NaturalLanguage,
}

/// Architecture family: models in one family share trainer scripts and memory behaviour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ModelFamily {
    Sd15,
    Sdxl,
    Flux,
    Sd3,
}

impl ModelFamily {
    /// The family as people say it.
    pub fn word(self) -> &'static str {
        match self {
            ModelFamily::Sd15 => "SD1.5",
            ModelFamily::Sdxl => "SDXL",
            ModelFamily::Flux => "Flux",
            ModelFamily::Sd3 => "SD3.5",
        }
    }

    /// True for the transformer (DiT) families, false for the UNets.
    pub fn is_transformer(self) -> bool {
        matches!(self, ModelFamily::Flux | ModelFamily::Sd3)
    }
}

/// What the denoiser learned to predict; trainers must be told, and a wrong
/// choice trains a LoRA that makes noise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PredictionType {
    /// The noise that was added (SD1.5, SDXL and their fine-tunes).
    Epsilon,
    /// The velocity between image and noise (SD2.x-768, some SDXL fine-tunes).
    VPrediction,
    /// Rectified-flow velocity (Flux, SD3.x).
    FlowMatching,
}

/// The denoiser's building type, which decides how activations grow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum DenoiserKind {
    Unet,
    /// A diffusion transformer over a joint image + text token sequence.
    Dit,
}

/// One text encoder of a model.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct TextEncoderSpec {
    /// `CLIP-L/14`, `OpenCLIP-bigG/14`, `T5-XXL (encoder)`.
    pub name: &'static str,
    /// Parameters.
    pub params: u64,
    /// Trainable LoRA parameters per unit of rank when this encoder is trained
    /// (0 when Ategnatos never trains it).
    pub lora_params_per_rank: u64,
}

/// The parts of a model and the numbers that decide its training memory.
///
/// Parameter counts: SDXL paper table 1 (SD1.5 and SDXL), the PEFT trainable
/// count printed in the Hugging Face FLUX QLoRA post (Flux), the SD3.5 model
/// cards; LoRA parameters per rank are derived from the layer shapes. The
/// activation constants are the fit in `research/vram.md` §A.4.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Architecture {
    pub denoiser_kind: DenoiserKind,
    /// Parameters of the UNet or transformer.
    pub denoiser_params: u64,
    /// Transformer width (0 for UNets).
    pub hidden_size: u32,
    pub text_encoders: &'static [TextEncoderSpec],
    /// Parameters of the VAE (encoder and decoder).
    pub vae_params: u64,
    /// LoRA parameters per rank on the attention projections only.
    pub lora_params_per_rank_attention: u64,
    /// LoRA parameters per rank on every linear layer of the blocks (what
    /// kohya's `networks.lora` / `lora_flux` and ai-toolkit target by default).
    pub lora_params_per_rank_all: u64,
    /// Activation memory kept for backward, GiB per megapixel per sample,
    /// without gradient checkpointing (PyTorch trainers, SDPA attention).
    pub activation_gib_per_mp: f64,
    /// Fraction of activations still held with gradient checkpointing.
    pub checkpointing_factor: f64,
    /// Text tokens the transformer attends to beside the image (0 for UNets).
    pub text_tokens: u32,
    /// Smallest memory one more sample costs with checkpointing, GiB per
    /// megapixel: batch sweeps of 9–12B transformers show 2–5 GiB per 1024²
    /// sample, more than the bs=1 fit implies (`vram.md` §A.5).
    pub extra_sample_floor_gib_per_mp: f64,
    /// Extra memory burn's attention keeps for backward, GiB per sample per
    /// megapixel² (it grows with the square of the token count); from the
    /// burn reading in `vram.md` §B.6, not yet measured on our engine.
    pub native_attention_gib_per_mp2: f64,
}

/// Activation constant of a transformer: the fit scales with depth,
/// i.e. parameters over width (`vram.md` §A.4: 5.39 · P\[B\]·1000 / hidden).
const fn dit_activation(params: u64, hidden: u32) -> f64 {
    5.39 * (params as f64 / 1e9) * 1000.0 / hidden as f64
}

const CLIP_L: TextEncoderSpec = TextEncoderSpec {
    name: "CLIP-L/14",
    params: 123_060_480,
    lora_params_per_rank: 166_000,
};
const CLIP_G: TextEncoderSpec = TextEncoderSpec {
    name: "OpenCLIP-bigG/14",
    params: 694_659_840,
    lora_params_per_rank: 737_000,
};
const T5_XXL: TextEncoderSpec = TextEncoderSpec {
    name: "T5-XXL (encoder)",
    params: 4_762_310_656,
    lora_params_per_rank: 0,
};
const VAE_4CH: u64 = 83_653_863;
const VAE_16CH: u64 = 83_819_683;

pub const SD15_ARCH: Architecture = Architecture {
    denoiser_kind: DenoiserKind::Unet,
    denoiser_params: 859_520_964,
    hidden_size: 0,
    text_encoders: &[CLIP_L],
    vae_params: VAE_4CH,
    lora_params_per_rank_attention: 200_000,
    lora_params_per_rank_all: 420_000,
    activation_gib_per_mp: 1.73,
    checkpointing_factor: 0.154,
    text_tokens: 0,
    extra_sample_floor_gib_per_mp: 0.0,
    native_attention_gib_per_mp2: 32.0,
};

pub const SDXL_ARCH: Architecture = Architecture {
    denoiser_kind: DenoiserKind::Unet,
    denoiser_params: 2_567_463_684,
    hidden_size: 0,
    text_encoders: &[CLIP_L, CLIP_G],
    vae_params: VAE_4CH,
    lora_params_per_rank_attention: 1_300_000,
    lora_params_per_rank_all: 2_660_000,
    activation_gib_per_mp: 7.35,
    checkpointing_factor: 0.154,
    text_tokens: 0,
    extra_sample_floor_gib_per_mp: 0.0,
    native_attention_gib_per_mp2: 8.2,
};

pub const FLUX_ARCH: Architecture = Architecture {
    denoiser_kind: DenoiserKind::Dit,
    denoiser_params: 11_901_408_320,
    hidden_size: 3072,
    text_encoders: &[CLIP_L, T5_XXL],
    vae_params: VAE_16CH,
    lora_params_per_rank_attention: 1_167_360,
    lora_params_per_rank_all: 4_790_000,
    activation_gib_per_mp: dit_activation(11_901_408_320, 3072),
    checkpointing_factor: 0.086,
    text_tokens: 512,
    extra_sample_floor_gib_per_mp: 3.0,
    native_attention_gib_per_mp2: 64.0,
};

pub const SD35_MEDIUM_ARCH: Architecture = Architecture {
    denoiser_kind: DenoiserKind::Dit,
    denoiser_params: 2_470_000_000,
    hidden_size: 1536,
    text_encoders: &[CLIP_L, CLIP_G, T5_XXL],
    vae_params: VAE_16CH,
    lora_params_per_rank_attention: 750_000,
    lora_params_per_rank_all: 2_000_000,
    activation_gib_per_mp: dit_activation(2_470_000_000, 1536),
    checkpointing_factor: 0.086,
    text_tokens: 154,
    extra_sample_floor_gib_per_mp: 0.0,
    native_attention_gib_per_mp2: 40.0,
};

pub const SD35_LARGE_ARCH: Architecture = Architecture {
    denoiser_kind: DenoiserKind::Dit,
    denoiser_params: 8_100_000_000,
    hidden_size: 2432,
    text_encoders: &[CLIP_L, CLIP_G, T5_XXL],
    vae_params: VAE_16CH,
    lora_params_per_rank_attention: 1_900_000,
    lora_params_per_rank_all: 5_000_000,
    activation_gib_per_mp: dit_activation(8_100_000_000, 2432),
    checkpointing_factor: 0.086,
    text_tokens: 154,
    extra_sample_floor_gib_per_mp: 3.0,
    native_attention_gib_per_mp2: 68.0,
};

/// One base model the workflow can train a LoRA for.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct ModelSpec {
    /// The id tools take (`sdxl`, `flux-dev`).
    pub id: &'static str,
    /// Display name.
    pub name: &'static str,
    /// Other spellings users type.
    #[serde(skip)]
    pub aliases: &'static [&'static str],
    pub family: ModelFamily,
    /// Training resolution the model was made for (the short side, in pixels).
    pub native_resolution: u32,
    pub caption_format: CaptionFormat,
    pub prediction: PredictionType,
    /// Parameter counts and memory constants.
    pub architecture: &'static Architecture,
    /// Hugging Face repository the trainers can download it from, when there
    /// is an official one.
    pub hf_repo: Option<&'static str>,
    /// The usual single-file checkpoint name (what kohya and ComfyUI load).
    pub checkpoint_file: &'static str,
    /// True when the licence gates the download (a Hugging Face token that
    /// accepted the licence is needed).
    pub gated: bool,
}

/// Every base model we know.
pub static CATALOG: &[ModelSpec] = &[
    ModelSpec {
        id: "sd15",
        name: "Stable Diffusion 1.5",
        aliases: &["sd1.5", "sd-1.5", "sd_1.5", "sd1", "stable-diffusion-1.5"],
        family: ModelFamily::Sd15,
        native_resolution: 512,
        caption_format: CaptionFormat::Tags,
        prediction: PredictionType::Epsilon,
        architecture: &SD15_ARCH,
        hf_repo: Some("stable-diffusion-v1-5/stable-diffusion-v1-5"),
        checkpoint_file: "v1-5-pruned-emaonly.safetensors",
        gated: false,
    },
    ModelSpec {
        id: "sdxl",
        name: "Stable Diffusion XL 1.0",
        aliases: &["sdxl1.0", "sdxl-1.0", "sd-xl"],
        family: ModelFamily::Sdxl,
        native_resolution: 1024,
        caption_format: CaptionFormat::Tags,
        prediction: PredictionType::Epsilon,
        architecture: &SDXL_ARCH,
        hf_repo: Some("stabilityai/stable-diffusion-xl-base-1.0"),
        checkpoint_file: "sd_xl_base_1.0.safetensors",
        gated: false,
    },
    ModelSpec {
        id: "pony",
        name: "Pony Diffusion V6 XL",
        aliases: &["ponyxl", "pony-xl", "pony-v6"],
        family: ModelFamily::Sdxl,
        native_resolution: 1024,
        caption_format: CaptionFormat::Tags,
        prediction: PredictionType::Epsilon,
        architecture: &SDXL_ARCH,
        hf_repo: None,
        checkpoint_file: "ponyDiffusionV6XL.safetensors",
        gated: false,
    },
    ModelSpec {
        id: "illustrious",
        name: "Illustrious XL",
        aliases: &["illustrious-xl", "illustriousxl"],
        family: ModelFamily::Sdxl,
        native_resolution: 1024,
        caption_format: CaptionFormat::Tags,
        prediction: PredictionType::Epsilon,
        architecture: &SDXL_ARCH,
        hf_repo: Some("OnomaAIResearch/Illustrious-xl-early-release-v0"),
        checkpoint_file: "Illustrious-XL-v0.1.safetensors",
        gated: false,
    },
    ModelSpec {
        id: "flux-dev",
        name: "FLUX.1 [dev]",
        aliases: &["flux", "flux1-dev", "flux.1-dev", "flux_dev"],
        family: ModelFamily::Flux,
        native_resolution: 1024,
        caption_format: CaptionFormat::NaturalLanguage,
        prediction: PredictionType::FlowMatching,
        architecture: &FLUX_ARCH,
        hf_repo: Some("black-forest-labs/FLUX.1-dev"),
        checkpoint_file: "flux1-dev.safetensors",
        gated: true,
    },
    ModelSpec {
        id: "flux-schnell",
        name: "FLUX.1 [schnell]",
        aliases: &["flux1-schnell", "flux.1-schnell", "flux_schnell"],
        family: ModelFamily::Flux,
        native_resolution: 1024,
        caption_format: CaptionFormat::NaturalLanguage,
        prediction: PredictionType::FlowMatching,
        architecture: &FLUX_ARCH,
        hf_repo: Some("black-forest-labs/FLUX.1-schnell"),
        checkpoint_file: "flux1-schnell.safetensors",
        gated: false,
    },
    ModelSpec {
        id: "sd35-medium",
        name: "Stable Diffusion 3.5 Medium",
        aliases: &["sd3.5-medium", "sd3.5m", "sd35m"],
        family: ModelFamily::Sd3,
        native_resolution: 1024,
        caption_format: CaptionFormat::NaturalLanguage,
        prediction: PredictionType::FlowMatching,
        architecture: &SD35_MEDIUM_ARCH,
        hf_repo: Some("stabilityai/stable-diffusion-3.5-medium"),
        checkpoint_file: "sd3.5_medium.safetensors",
        gated: true,
    },
    ModelSpec {
        id: "sd35-large",
        name: "Stable Diffusion 3.5 Large",
        aliases: &["sd3.5-large", "sd3.5l", "sd35l", "sd3.5"],
        family: ModelFamily::Sd3,
        native_resolution: 1024,
        caption_format: CaptionFormat::NaturalLanguage,
        prediction: PredictionType::FlowMatching,
        architecture: &SD35_LARGE_ARCH,
        hf_repo: Some("stabilityai/stable-diffusion-3.5-large"),
        checkpoint_file: "sd3.5_large.safetensors",
        gated: true,
    },
];

/// A model id we do not know.
#[derive(Debug, thiserror::Error)]
#[error("`{given}` is not a base model Ategnatos knows")]
pub struct UnknownModel {
    pub given: String,
}

impl Hint for UnknownModel {
    fn hint(&self) -> Option<String> {
        Some(format!("use one of: {}", known_ids().join(", ")))
    }
}

/// The ids of every model in the catalog.
pub fn known_ids() -> Vec<&'static str> {
    CATALOG.iter().map(|m| m.id).collect()
}

/// Finds a model by id or alias, ignoring case.
pub fn lookup(id: &str) -> Result<&'static ModelSpec, UnknownModel> {
    let wanted = id.trim().to_ascii_lowercase();
    CATALOG
        .iter()
        .find(|m| m.id == wanted || m.aliases.contains(&wanted.as_str()))
        .ok_or_else(|| UnknownModel {
            given: id.to_string(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_aliases_resolve() {
        assert_eq!(lookup("SD1.5").unwrap().id, "sd15");
        assert_eq!(lookup("flux").unwrap().id, "flux-dev");
        assert_eq!(lookup("pony").unwrap().native_resolution, 1024);
        let err = lookup("midjourney").unwrap_err();
        assert!(err.hint().unwrap().contains("sdxl"));
    }

    #[test]
    fn parameter_counts_match_the_published_sizes() {
        let flux = lookup("flux-dev").unwrap().architecture;
        // PEFT printed "all 11,906,077,760" with 4,669,440 LoRA parameters at rank 4.
        assert_eq!(
            flux.denoiser_params + 4 * flux.lora_params_per_rank_attention,
            11_906_077_760
        );
        let sdxl = lookup("sdxl").unwrap().architecture;
        let te: u64 = sdxl.text_encoders.iter().map(|t| t.params).sum();
        assert!((810_000_000..830_000_000).contains(&te), "{te}");
        // Activation constants follow the fit: SD3.5M 8.67, Flux 20.9 GiB/MP.
        let m = lookup("sd35-medium").unwrap().architecture;
        assert!((m.activation_gib_per_mp - 8.67).abs() < 0.05);
        assert!((flux.activation_gib_per_mp - 20.88).abs() < 0.05);
        for spec in CATALOG {
            assert_eq!(
                spec.family.is_transformer(),
                spec.architecture.denoiser_kind == DenoiserKind::Dit,
                "{}",
                spec.id
            );
        }
    }

    #[test]
    fn no_alias_is_claimed_twice() {
        let mut seen = std::collections::HashSet::new();
        for m in CATALOG {
            assert!(seen.insert(m.id), "{}", m.id);
            for a in m.aliases {
                assert!(seen.insert(a), "{a}");
            }
        }
    }
}
