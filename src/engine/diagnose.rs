//! What a checkpoint that does not fit the model is, said plainly.
//!
//! [`super::weights::check_component`] lists every missing, unexpected and
//! mis-shaped tensor from the file's header. A list of 600 keys helps no
//! one, so this module turns it into one sentence and one thing to do: a
//! checkpoint of another family is named as such (SDXL, SD 2.x, SD3, Flux,
//! an inpainting or instruct-pix2pix model, a LoRA rather than a base model),
//! and a partial match says which kind of layer differs and how, with an
//! example key — "160 attention keys have other names than SD1.5's: e.g.
//! `…` (a diffusers export of another version?)".

use super::weights::LoadReport;

/// One sentence on what the file is, one on what to do.
#[derive(Debug, Clone, PartialEq)]
pub struct Diagnosis {
    pub what: String,
    pub hint: String,
}

/// A family the file belongs to, told from its key names and shapes alone.
/// `expected` names the model the config asked for (e.g. `SD1.5`).
pub fn other_family<'a>(
    tensors: impl Iterator<Item = (&'a str, &'a [usize])> + Clone,
    expected: &str,
) -> Option<Diagnosis> {
    let any = |pred: &dyn Fn(&str) -> bool| tensors.clone().any(|(k, _)| pred(k));
    let shape_of = |pred: &dyn Fn(&str) -> bool| {
        tensors
            .clone()
            .find(|(k, _)| pred(k))
            .map(|(_, s)| s.to_vec())
    };
    let pick = |family: &str| Diagnosis {
        what: format!("this is {family}, not an {expected} model"),
        hint: format!(
            "pick an {expected} checkpoint (or set `model.architecture` to the model this file is, where the engine supports it)"
        ),
    };
    if any(&|k| {
        k.starts_with("lora_unet_")
            || k.starts_with("lora_te")
            || k.contains(".lora_down.")
            || k.contains(".lora_A.")
    }) {
        return Some(Diagnosis {
            what: "this is a LoRA, not a base checkpoint".into(),
            hint: "point `model.checkpoint` at the base model the LoRA is trained on (e.g. v1-5-pruned-emaonly.safetensors)".into(),
        });
    }
    if any(&|k| k.contains("double_blocks.") || k.contains("single_blocks.")) {
        return Some(pick("a Flux checkpoint"));
    }
    if any(&|k| k.contains("joint_blocks.")) {
        return Some(pick("a Stable Diffusion 3 checkpoint"));
    }
    let is_sdxl = any(&|k| {
        k.starts_with("model.diffusion_model.label_emb.")
            || k.starts_with("add_embedding.")
            || k.starts_with("conditioner.embedders.1.")
    });
    if is_sdxl && expected != "SDXL" {
        return Some(pick("an SDXL checkpoint"));
    }
    if !is_sdxl
        && expected == "SDXL"
        && any(&|k| k.contains("input_blocks.") || k.contains("down_blocks."))
    {
        return Some(pick("a Stable Diffusion 1.x or 2.x checkpoint"));
    }
    if expected == "SD1.5" {
        let open_clip = any(&|k| k.starts_with("cond_stage_model.model."));
        let context = shape_of(&|k| k.ends_with("attn2.to_k.weight"));
        if open_clip || context.is_some_and(|s| s.get(1) == Some(&1024)) {
            return Some(pick(
                "a Stable Diffusion 2.x checkpoint (its text encoder is OpenCLIP, 1024 wide)",
            ));
        }
    }
    let conv_in = shape_of(&|k| {
        k == "model.diffusion_model.input_blocks.0.0.weight" || k == "conv_in.weight"
    });
    match conv_in.as_deref() {
        Some([_, 9, ..]) => Some(Diagnosis {
            what: format!(
                "this is an inpainting model (its first layer takes 9 channels, an {expected} model 4)"
            ),
            hint:
                "train on the plain model the inpainting one was made from; the LoRA works on both"
                    .into(),
        }),
        Some([_, 8, ..]) => Some(pick(
            "an instruct-pix2pix model (its first layer takes 8 channels)",
        )),
        _ => None,
    }
}

/// The kind of layer a key belongs to, for grouping a partial match.
fn layer_kind(key: &str) -> &'static str {
    let k = key.to_ascii_lowercase();
    if [
        "attn",
        "attention",
        "to_q",
        "to_k",
        "to_v",
        "query",
        "proj_attn",
        "self_attn",
    ]
    .iter()
    .any(|p| k.contains(p))
    {
        "attention"
    } else if [
        "resnets",
        "in_layers",
        "out_layers",
        "emb_layers",
        "skip_connection",
        ".block.",
    ]
    .iter()
    .any(|p| k.contains(p))
    {
        "resnet"
    } else if k.contains("norm") {
        "normalisation"
    } else if k.contains("embed") {
        "embedding"
    } else {
        "other"
    }
}

fn example(keys: &[&str]) -> String {
    keys.first().map(|k| format!("`{k}`")).unwrap_or_default()
}

/// One sentence for a checkpoint of the right family whose keys or shapes
/// differ: the biggest group of differences, named by layer kind.
pub fn partial_match(reports: &[LoadReport], expected: &str) -> Diagnosis {
    let mut parts = Vec::new();
    let mut renamed_hint = false;
    for report in reports.iter().filter(|r| !r.is_complete()) {
        let component = match report.component.as_str() {
            "unet" => "UNet",
            "text_encoder" => "text encoder",
            "vae" => "VAE",
            other => other,
        };
        // unexpected and missing keys of the same kind are names that differ
        let kinds = ["attention", "resnet", "normalisation", "embedding", "other"];
        for kind in kinds {
            let missing: Vec<&str> = report
                .missing
                .iter()
                .map(String::as_str)
                .filter(|k| layer_kind(k) == kind)
                .collect();
            let unexpected: Vec<&str> = report
                .unexpected
                .iter()
                .map(String::as_str)
                .filter(|k| layer_kind(k) == kind)
                .collect();
            if !missing.is_empty() && !unexpected.is_empty() {
                renamed_hint = true;
                parts.push(format!(
                    "{} {component} {kind} keys have other names than {expected}'s: e.g. {} where {expected} has {} (a diffusers export of another version?)",
                    unexpected.len(),
                    example(&unexpected),
                    example(&missing)
                ));
            } else if !missing.is_empty() {
                parts.push(format!(
                    "{} {component} {kind} weights of {expected} are missing: e.g. {}",
                    missing.len(),
                    example(&missing)
                ));
            } else if !unexpected.is_empty() {
                parts.push(format!(
                    "{} {component} {kind} tensors are not {expected}'s: e.g. {}",
                    unexpected.len(),
                    example(&unexpected)
                ));
            }
        }
        if let Some(m) = report.mismatched.first() {
            parts.push(format!(
                "{} {component} weights have other shapes: e.g. `{}` is {:?} where {expected} has {:?} (a model of another size?)",
                report.mismatched.len(),
                m.key,
                m.found,
                m.expected
            ));
        }
        if let Some(e) = report.errors.first() {
            parts.push(format!(
                "{} {component} tensors could not be read: {e}",
                report.errors.len()
            ));
        }
    }
    let hint = if renamed_hint {
        format!(
            "convert the checkpoint to the single-file layout or to diffusers' current layout (diffusers' `convert_*` scripts), or use the original {expected} release"
        )
    } else {
        format!("use an {expected} checkpoint: this one was changed or cut short")
    };
    Diagnosis {
        what: parts.join("; "),
        hint,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tensors(list: &[(&'static str, Vec<usize>)]) -> Vec<(&'static str, Vec<usize>)> {
        list.to_vec()
    }

    fn family(list: &[(&'static str, Vec<usize>)]) -> Option<Diagnosis> {
        let owned = tensors(list);
        other_family(owned.iter().map(|(k, s)| (*k, s.as_slice())), "SD1.5")
    }

    #[test]
    fn other_families_are_named() {
        let sdxl = family(&[(
            "model.diffusion_model.label_emb.0.0.weight",
            vec![1280, 2816],
        )]);
        assert!(sdxl.unwrap().what.contains("SDXL"));
        let sd2 = family(&[(
            "model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight",
            vec![320, 1024],
        )]);
        assert!(sd2.unwrap().what.contains("2.x"));
        let inpaint = family(&[(
            "model.diffusion_model.input_blocks.0.0.weight",
            vec![320, 9, 3, 3],
        )]);
        assert!(inpaint.unwrap().what.contains("inpainting"));
        let lora = family(&[(
            "lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight",
            vec![4, 320],
        )]);
        assert!(lora.unwrap().what.contains("LoRA"));
        let sd15 = family(&[
            (
                "model.diffusion_model.input_blocks.0.0.weight",
                vec![320, 4, 3, 3],
            ),
            (
                "model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight",
                vec![320, 768],
            ),
        ]);
        assert_eq!(sd15, None);
    }

    #[test]
    fn renamed_attention_keys_are_called_renamed() {
        let report = LoadReport {
            component: "unet".into(),
            missing: vec!["mid_block.attentions.0.transformer_blocks.0.attn1.to_q.weight".into()],
            unexpected: vec![
                "mid_block.attentions.0.transformer_blocks.0.attn1.query.weight".into(),
            ],
            ..LoadReport::default()
        };
        let d = partial_match(&[report], "SD1.5");
        assert!(
            d.what.starts_with("1 UNet attention keys have other names than SD1.5's: e.g. `mid_block.attentions.0.transformer_blocks.0.attn1.query.weight`"),
            "{}",
            d.what
        );
        assert!(d.what.contains("another version"), "{}", d.what);
    }
}
