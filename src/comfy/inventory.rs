//! The studio's inventory: the checkpoints, LoRAs, upscalers and
//! ControlNets the artist's ComfyUI has, read from `/models/...` and
//! `/system_stats`, kept as `grimoire/.state/studio/comfyui.json` and shown
//! in `grimoire/studio.md` (the Models and LoRAs tables, with the base model
//! and recommended settings where the file name tells) so Claude picks
//! templates and settings that fit what is installed.
//!
//! Our part of `studio.md` sits between two marker comments; whatever else
//! the file holds (GPUs, instances, the artist's notes) is left as it is.

use serde::{Deserialize, Serialize};

use super::register::{self, LoraEntry};
use super::{ComfyClient, ComfyError};
use crate::plan::catalog::{self, ModelFamily};
use crate::studio::{StudioError, Workspace, clock, write_atomic, write_json_atomic};

const START: &str = "<!-- ategnatos:comfyui:start -->";
const END: &str = "<!-- ategnatos:comfyui:end -->";

/// What one ComfyUI has installed.
#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Inventory {
    pub server: String,
    pub checked_at: String,
    #[serde(default)]
    pub comfyui_version: Option<String>,
    /// The GPU (or `cpu`) ComfyUI renders on.
    #[serde(default)]
    pub device: Option<String>,
    #[serde(default)]
    pub vram_free_gb: Option<f64>,
    #[serde(default)]
    pub checkpoints: Vec<String>,
    /// Flux and other models loaded apart from their text encoders.
    #[serde(default)]
    pub diffusion_models: Vec<String>,
    #[serde(default)]
    pub loras: Vec<String>,
    #[serde(default)]
    pub upscale_models: Vec<String>,
    #[serde(default)]
    pub controlnets: Vec<String>,
    #[serde(default)]
    pub vae: Vec<String>,
    #[serde(default)]
    pub text_encoders: Vec<String>,
}

impl Inventory {
    pub fn plain_summary(&self) -> String {
        format!(
            "ComfyUI at {} ({}{}) has {} checkpoints, {} diffusion models, {} LoRAs, {} upscalers, {} ControlNets.",
            self.server,
            self.device.as_deref().unwrap_or("unknown device"),
            self.vram_free_gb
                .map(|g| format!(", {g} GB free"))
                .unwrap_or_default(),
            self.checkpoints.len(),
            self.diffusion_models.len(),
            self.loras.len(),
            self.upscale_models.len(),
            self.controlnets.len()
        )
    }
}

/// Reads the inventory from a server.
pub async fn fetch(client: &ComfyClient) -> Result<Inventory, ComfyError> {
    let stats = client.system_stats().await?;
    let list = |folder: &'static str| async move {
        client.models(folder).await.map(Option::unwrap_or_default)
    };
    let mut diffusion_models = list("diffusion_models").await?;
    if diffusion_models.is_empty() {
        diffusion_models = list("unet").await?;
    }
    let mut text_encoders = list("text_encoders").await?;
    if text_encoders.is_empty() {
        text_encoders = list("clip").await?;
    }
    Ok(Inventory {
        server: client.base().to_string(),
        checked_at: clock::now_rfc3339(),
        comfyui_version: stats.comfyui_version,
        device: stats.device,
        vram_free_gb: stats.vram_free_gb,
        checkpoints: list("checkpoints").await?,
        diffusion_models,
        loras: list("loras").await?,
        upscale_models: list("upscale_models").await?,
        controlnets: list("controlnet").await?,
        vae: list("vae").await?,
        text_encoders,
    })
}

fn state_file(ws: &Workspace) -> std::path::PathBuf {
    ws.state_dir().join("studio").join("comfyui.json")
}

/// The last inventory saved, if any.
pub fn load(ws: &Workspace) -> Option<Inventory> {
    ws.read_json(&state_file(ws)).ok().flatten()
}

/// Saves the inventory and renders `studio.md`.
pub fn save(ws: &Workspace, inv: &Inventory) -> Result<(), StudioError> {
    write_json_atomic(&state_file(ws), inv)?;
    render_studio(ws)
}

/// The base model a file name points at, when it does.
pub fn guess_base(file: &str) -> Option<&'static str> {
    let f = file.to_ascii_lowercase();
    let id = if f.contains("pony") {
        "pony"
    } else if f.contains("illustrious") {
        "illustrious"
    } else if f.contains("flux") && f.contains("schnell") {
        "flux-schnell"
    } else if f.contains("flux") {
        "flux-dev"
    } else if f.contains("sd3.5") || f.contains("sd35") {
        if f.contains("large") {
            "sd35-large"
        } else {
            "sd35-medium"
        }
    } else if f.contains("xl") {
        "sdxl"
    } else if f.contains("v1-5") || f.contains("sd15") || f.contains("sd_1.5") || f.contains("1.5")
    {
        "sd15"
    } else {
        return None;
    };
    Some(id)
}

/// Sampler settings that suit a base model, in words.
pub fn recommended_settings(model_id: &str) -> &'static str {
    let Ok(m) = catalog::lookup(model_id) else {
        return "";
    };
    match (m.family, m.id) {
        (_, "flux-schnell") => "1024 px, euler/simple, 4 steps, cfg 1",
        (ModelFamily::Flux, _) => {
            "1024 px, euler/simple, 20 steps, cfg 1, guidance 3.5 (txt2img-flux)"
        }
        (ModelFamily::Sd15, _) => "512 px, dpmpp_2m/karras, 25 steps, cfg 7 (txt2img)",
        (_, "pony") => "1024 px, 25 steps, cfg 7, score_9 tags first (txt2img)",
        (_, "illustrious") => "1024 px, 28 steps, cfg 5.5 (txt2img)",
        (ModelFamily::Sdxl, _) => "1024 px, dpmpp_2m/karras, 25 steps, cfg 6.5 (txt2img)",
        (ModelFamily::Sd3, _) => "1024 px, 28 steps, cfg 4.5 (own workflow)",
    }
}

fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

/// Our part of `studio.md`.
fn section(inv: Option<&Inventory>, loras: &[LoraEntry]) -> String {
    let mut s = String::new();
    s.push_str(START);
    s.push_str("\n## ComfyUI\n\n");
    match inv {
        Some(i) => s.push_str(&format!(
            "{} — ComfyUI {}, {}{}; checked {}.\n\n",
            i.server,
            i.comfyui_version.as_deref().unwrap_or("(version unknown)"),
            i.device.as_deref().unwrap_or("unknown device"),
            i.vram_free_gb
                .map(|g| format!(", {g} GB free"))
                .unwrap_or_default(),
            i.checked_at
        )),
        None => s.push_str(
            "Not checked yet (comfyui_submit without a workflow reads it from ComfyUI).\n\n",
        ),
    }
    s.push_str(
        "## Models\n\n| File | Kind | Base model | Recommended settings |\n|---|---|---|---|\n",
    );
    if let Some(i) = inv {
        let kinds: [(&str, &Vec<String>); 5] = [
            ("checkpoint", &i.checkpoints),
            ("diffusion model", &i.diffusion_models),
            ("upscaler", &i.upscale_models),
            ("ControlNet", &i.controlnets),
            ("VAE", &i.vae),
        ];
        for (kind, files) in kinds {
            for f in files {
                let base = guess_base(f);
                let settings = match kind {
                    "checkpoint" | "diffusion model" => {
                        base.map(recommended_settings).unwrap_or("")
                    }
                    "upscaler" => "upscale template",
                    "ControlNet" => base
                        .filter(|b| *b == "sdxl")
                        .map(|_| "controlnet-sdxl template")
                        .unwrap_or(""),
                    _ => "",
                };
                let base_name = base
                    .and_then(|b| catalog::lookup(b).ok())
                    .map(|m| m.name)
                    .unwrap_or("?");
                s.push_str(&format!(
                    "| {} | {kind} | {base_name} | {settings} |\n",
                    cell(f)
                ));
            }
        }
    }
    s.push_str("\n## LoRAs\n\n| File | Type | Trigger | Weight | Base model | Good for | Date | Training |\n|---|---|---|---|---|---|---|---|\n");
    for l in loras {
        s.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} |\n",
            cell(&l.file),
            l.training_type.word(),
            cell(&l.trigger),
            l.recommended_weight,
            cell(&l.base_model),
            cell(&l.good_for),
            &l.date,
            cell(&l.training)
        ));
    }
    if let Some(i) = inv {
        for f in &i.loras {
            if loras.iter().any(|l| &l.file == f) {
                continue;
            }
            let base = guess_base(f)
                .and_then(|b| catalog::lookup(b).ok())
                .map(|m| m.name)
                .unwrap_or("?");
            s.push_str(&format!(
                "| {} | ? | ? | ? | {base} | (installed in ComfyUI, not registered) | | |\n",
                cell(f)
            ));
        }
    }
    s.push_str(END);
    s.push('\n');
    s
}

/// Writes our part of `grimoire/studio.md`, keeping the rest of the file.
pub fn render_studio(ws: &Workspace) -> Result<(), StudioError> {
    let path = ws.grimoire().join("studio.md");
    let ours = section(load(ws).as_ref(), &register::load_loras(ws)?);
    let old = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(source) => return Err(StudioError::Read { path, source }),
    };
    let text = match (old.find(START), old.find(END)) {
        (Some(a), Some(b)) if b > a => {
            let after = old[b + END.len()..].trim_start_matches('\n');
            format!("{}{ours}{after}", &old[..a])
        }
        _ if old.trim().is_empty() => format!("# Studio\n\n{ours}"),
        _ => format!("{}\n\n{ours}", old.trim_end()),
    };
    write_atomic(&path, text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_tell_the_base_model() {
        assert_eq!(guess_base("sd_xl_base_1.0.safetensors"), Some("sdxl"));
        assert_eq!(guess_base("ponyDiffusionV6XL.safetensors"), Some("pony"));
        assert_eq!(
            guess_base("flux1-schnell-fp8.safetensors"),
            Some("flux-schnell")
        );
        assert_eq!(guess_base("v1-5-pruned-emaonly.safetensors"), Some("sd15"));
        assert_eq!(guess_base("dreamshaper_8.safetensors"), None);
    }

    #[test]
    fn studio_md_keeps_what_others_wrote() {
        let dir = tempfile::tempdir().unwrap();
        let ws = Workspace::open(dir.path()).unwrap();
        let path = ws.grimoire().join("studio.md");
        write_atomic(&path, b"# Studio\n\n## GPUs\n\nRTX 4090\n").unwrap();
        let inv = Inventory {
            server: "http://127.0.0.1:8188".into(),
            checkpoints: vec!["sd_xl_base_1.0.safetensors".into()],
            loras: vec!["other|lora.safetensors".into()],
            ..Inventory::default()
        };
        save(&ws, &inv).unwrap();
        save(&ws, &inv).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("## GPUs\n\nRTX 4090"));
        assert_eq!(text.matches(START).count(), 1);
        assert!(text.contains(
            "| sd_xl_base_1.0.safetensors | checkpoint | Stable Diffusion XL 1.0 | 1024 px"
        ));
        assert!(text.contains("other\\|lora.safetensors"));
    }
}
