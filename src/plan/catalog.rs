//! The base models we know, as data: adding a model is adding an entry to
//! [`CATALOG`], not a new code branch.

use serde::Serialize;

/// How captions for a model are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CaptionFormat {
    /// Comma-separated booru-style tags (`ohwx, 1girl, watercolor, ...`).
    Tags,
    /// Plain sentences (`ohwx, a watercolor painting of ...`).
    NaturalLanguage,
}

/// Architecture family: models in one family share trainer scripts and memory behaviour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ModelFamily {
    Sd15,
    Sdxl,
    Flux,
    Sd3,
}

/// Denoiser architecture: memory of activations scales differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Architecture {
    /// Convolutional UNet (SD1.5, SDXL).
    Unet,
    /// Transformer over image and text tokens (Flux, SD3).
    Dit,
}

/// The numbers memory and time estimates need (research/vram.md A.2).
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct ModelSize {
    pub architecture: Architecture,
    /// Denoiser parameters, in billions.
    pub denoiser_b: f64,
    /// Text encoder parameters, in billions (all encoders together).
    pub text_encoders_b: f64,
    /// VAE parameters, in billions.
    pub vae_b: f64,
    /// Transformer width (DiTs only; 0 for UNets).
    pub hidden: u32,
    /// Text tokens in the joint sequence (DiTs only).
    pub text_tokens: u32,
    /// Activation memory per megapixel of one sample without checkpointing, GiB.
    pub activation_gib_per_mp: f64,
    /// LoRA parameters per unit of rank on attention layers, in millions.
    pub lora_attention_m_per_rank: f64,
    /// LoRA parameters per unit of rank on all linear layers, in millions.
    pub lora_all_m_per_rank: f64,
    /// Text-encoder LoRA parameters per unit of rank (CLIP encoders), in millions.
    pub te_lora_m_per_rank: f64,
    /// Prediction type the model was trained with.
    pub prediction: &'static str,
}

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
    pub size: ModelSize,
}

const SD15_SIZE: ModelSize = ModelSize {
    architecture: Architecture::Unet,
    denoiser_b: 0.8595,
    text_encoders_b: 0.1231,
    vae_b: 0.0837,
    hidden: 0,
    text_tokens: 77,
    activation_gib_per_mp: 1.73,
    lora_attention_m_per_rank: 0.20,
    lora_all_m_per_rank: 0.42,
    te_lora_m_per_rank: 0.166,
    prediction: "epsilon",
};

const SDXL_SIZE: ModelSize = ModelSize {
    architecture: Architecture::Unet,
    denoiser_b: 2.5675,
    text_encoders_b: 0.8178,
    vae_b: 0.0837,
    hidden: 0,
    text_tokens: 77,
    activation_gib_per_mp: 7.35,
    lora_attention_m_per_rank: 1.30,
    lora_all_m_per_rank: 2.66,
    te_lora_m_per_rank: 0.903,
    prediction: "epsilon",
};

const FLUX_SIZE: ModelSize = ModelSize {
    architecture: Architecture::Dit,
    denoiser_b: 11.901,
    text_encoders_b: 4.885,
    vae_b: 0.0838,
    hidden: 3072,
    text_tokens: 512,
    activation_gib_per_mp: 0.0,
    lora_attention_m_per_rank: 1.167,
    lora_all_m_per_rank: 4.79,
    te_lora_m_per_rank: 0.166,
    prediction: "flow matching",
};

const SD35_TEXT_B: f64 = 0.124 + 0.695 + 4.762;

/// Every base model we know.
pub static CATALOG: &[ModelSpec] = &[
    ModelSpec {
        id: "sd15",
        name: "Stable Diffusion 1.5",
        aliases: &["sd1.5", "sd-1.5", "sd_1.5", "sd1", "stable-diffusion-1.5"],
        family: ModelFamily::Sd15,
        native_resolution: 512,
        caption_format: CaptionFormat::Tags,
        size: SD15_SIZE,
    },
    ModelSpec {
        id: "sdxl",
        name: "Stable Diffusion XL 1.0",
        aliases: &["sdxl1.0", "sdxl-1.0", "sd-xl"],
        family: ModelFamily::Sdxl,
        native_resolution: 1024,
        caption_format: CaptionFormat::Tags,
        size: SDXL_SIZE,
    },
    ModelSpec {
        id: "pony",
        name: "Pony Diffusion V6 XL",
        aliases: &["ponyxl", "pony-xl", "pony-v6"],
        family: ModelFamily::Sdxl,
        native_resolution: 1024,
        caption_format: CaptionFormat::Tags,
        size: SDXL_SIZE,
    },
    ModelSpec {
        id: "illustrious",
        name: "Illustrious XL",
        aliases: &["illustrious-xl", "illustriousxl"],
        family: ModelFamily::Sdxl,
        native_resolution: 1024,
        caption_format: CaptionFormat::Tags,
        size: SDXL_SIZE,
    },
    ModelSpec {
        id: "flux-dev",
        name: "FLUX.1 [dev]",
        aliases: &["flux", "flux1-dev", "flux.1-dev", "flux_dev"],
        family: ModelFamily::Flux,
        native_resolution: 1024,
        caption_format: CaptionFormat::NaturalLanguage,
        size: FLUX_SIZE,
    },
    ModelSpec {
        id: "flux-schnell",
        name: "FLUX.1 [schnell]",
        aliases: &["flux1-schnell", "flux.1-schnell", "flux_schnell"],
        family: ModelFamily::Flux,
        native_resolution: 1024,
        caption_format: CaptionFormat::NaturalLanguage,
        size: FLUX_SIZE,
    },
    ModelSpec {
        id: "sd35-medium",
        name: "Stable Diffusion 3.5 Medium",
        aliases: &["sd3.5-medium", "sd3.5m", "sd35m"],
        family: ModelFamily::Sd3,
        native_resolution: 1024,
        caption_format: CaptionFormat::NaturalLanguage,
        size: ModelSize {
            architecture: Architecture::Dit,
            denoiser_b: 2.47,
            text_encoders_b: SD35_TEXT_B,
            vae_b: 0.0838,
            hidden: 1536,
            text_tokens: 154,
            activation_gib_per_mp: 0.0,
            lora_attention_m_per_rank: 0.75,
            lora_all_m_per_rank: 1.5,
            te_lora_m_per_rank: 0.903,
            prediction: "flow matching",
        },
    },
    ModelSpec {
        id: "sd35-large",
        name: "Stable Diffusion 3.5 Large",
        aliases: &["sd3.5-large", "sd3.5l", "sd35l", "sd3.5"],
        family: ModelFamily::Sd3,
        native_resolution: 1024,
        caption_format: CaptionFormat::NaturalLanguage,
        size: ModelSize {
            architecture: Architecture::Dit,
            denoiser_b: 8.1,
            text_encoders_b: SD35_TEXT_B,
            vae_b: 0.0838,
            hidden: 2432,
            text_tokens: 154,
            activation_gib_per_mp: 0.0,
            lora_attention_m_per_rank: 1.9,
            lora_all_m_per_rank: 3.8,
            te_lora_m_per_rank: 0.903,
            prediction: "flow matching",
        },
    },
];

/// A model id we do not know.
#[derive(Debug, thiserror::Error)]
#[error("`{given}` is not a base model Ategnatos knows")]
pub struct UnknownModel {
    pub given: String,
}

impl UnknownModel {
    pub fn hint(&self) -> Option<String> {
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
