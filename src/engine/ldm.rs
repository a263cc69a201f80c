//! The rename table from the original Stable Diffusion (ldm / "single
//! file") key layout to the diffusers layout our modules are named after.
//!
//! The table is data: a list of [`Rename`] rows (an ldm prefix, its diffusers
//! prefix, and the renames that apply inside that block). The rows that
//! depend on the block structure (`input_blocks.4.1.` is
//! `down_blocks.1.attentions.0.` only because SD1.5 has two resnets per
//! stage) are generated from the model config, so the tiny test model and
//! SD1.5 share one rule set. The same mapping as diffusers'
//! `convert_from_ckpt.py`, written out as rows.

use crate::engine::unet::UNetConfig;
use crate::engine::vae::VaeConfig;

/// Where each component lives in an ldm checkpoint.
pub const UNET_PREFIX: &str = "model.diffusion_model.";
pub const VAE_PREFIX: &str = "first_stage_model.";
pub const CLIP_PREFIX: &str = "cond_stage_model.transformer.";
/// SDXL's first text encoder (transformers' layout inside).
pub const SDXL_CLIP_PREFIX: &str = "conditioner.embedders.0.transformer.";
/// SDXL's second text encoder, in OpenCLIP's own layout.
pub const OPEN_CLIP_PREFIX: &str = "conditioner.embedders.1.model.";

/// OpenCLIP tensors SDXL training does not use (the contrastive scale, the
/// causal mask kept as a buffer).
pub const OPEN_CLIP_UNUSED: &[&str] = &["logit_scale", "attn_mask"];

/// Inside a UNet resnet (`ResBlock`): ldm's sequential indices.
pub const UNET_RESNET_INNER: &[(&str, &str)] = &[
    ("in_layers.0", "norm1"),
    ("in_layers.2", "conv1"),
    ("emb_layers.1", "time_emb_proj"),
    ("out_layers.0", "norm2"),
    ("out_layers.3", "conv2"),
    ("skip_connection", "conv_shortcut"),
];

/// Inside a VAE resnet only the shortcut is named differently.
pub const VAE_RESNET_INNER: &[(&str, &str)] = &[("nin_shortcut", "conv_shortcut")];

/// Fixed UNet rows (not depending on the block layout).
const UNET_FIXED: &[(&str, &str)] = &[
    ("time_embed.0.", "time_embedding.linear_1."),
    ("time_embed.2.", "time_embedding.linear_2."),
    ("input_blocks.0.0.", "conv_in."),
    ("out.0.", "conv_norm_out."),
    ("out.2.", "conv_out."),
];

/// Fixed VAE rows (encoder and quant_conv only).
const VAE_FIXED: &[(&str, &str)] = &[
    ("encoder.conv_in.", "encoder.conv_in."),
    ("encoder.norm_out.", "encoder.conv_norm_out."),
    ("encoder.conv_out.", "encoder.conv_out."),
    ("quant_conv.", "quant_conv."),
    (
        "encoder.mid.attn_1.norm.",
        "encoder.mid_block.attentions.0.group_norm.",
    ),
    (
        "encoder.mid.attn_1.q.",
        "encoder.mid_block.attentions.0.to_q.",
    ),
    (
        "encoder.mid.attn_1.k.",
        "encoder.mid_block.attentions.0.to_k.",
    ),
    (
        "encoder.mid.attn_1.v.",
        "encoder.mid_block.attentions.0.to_v.",
    ),
    (
        "encoder.mid.attn_1.proj_out.",
        "encoder.mid_block.attentions.0.to_out.0.",
    ),
];

/// Older diffusers VAE files name the mid-block attention differently.
pub const VAE_DIFFUSERS_LEGACY: &[(&str, &str)] = &[
    (
        "encoder.mid_block.attentions.0.query.",
        "encoder.mid_block.attentions.0.to_q.",
    ),
    (
        "encoder.mid_block.attentions.0.key.",
        "encoder.mid_block.attentions.0.to_k.",
    ),
    (
        "encoder.mid_block.attentions.0.value.",
        "encoder.mid_block.attentions.0.to_v.",
    ),
    (
        "encoder.mid_block.attentions.0.proj_attn.",
        "encoder.mid_block.attentions.0.to_out.0.",
    ),
];

/// VAE keys the engine never needs (the decoder): not loaded, not an error.
pub const VAE_UNUSED_PREFIXES: &[&str] = &["decoder.", "post_quant_conv."];

/// CLIP keys that are buffers, not weights.
pub const CLIP_UNUSED_SUFFIXES: &[&str] = &["position_ids"];

/// One row: keys starting with `from` start with `to` instead, and `inner`
/// renames the segments right after the prefix.
#[derive(Debug, Clone, PartialEq)]
pub struct Rename {
    pub from: String,
    pub to: String,
    pub inner: &'static [(&'static str, &'static str)],
}

fn row(from: String, to: String, inner: &'static [(&'static str, &'static str)]) -> Rename {
    Rename { from, to, inner }
}

/// The UNet rows for a model of this shape.
pub fn unet_table(config: &UNetConfig) -> Vec<Rename> {
    let mut rows: Vec<Rename> = UNET_FIXED
        .iter()
        .map(|(f, t)| row(f.to_string(), t.to_string(), &[]))
        .collect();
    let n = config.block_out_channels.len();
    let per = config.layers_per_block + 1;
    for (i, &attn) in config.down_block_attention.iter().enumerate() {
        for j in 0..config.layers_per_block {
            let idx = 1 + i * per + j;
            rows.push(row(
                format!("input_blocks.{idx}.0."),
                format!("down_blocks.{i}.resnets.{j}."),
                UNET_RESNET_INNER,
            ));
            if attn {
                rows.push(row(
                    format!("input_blocks.{idx}.1."),
                    format!("down_blocks.{i}.attentions.{j}."),
                    &[],
                ));
            }
        }
        if i + 1 < n {
            rows.push(row(
                format!("input_blocks.{}.0.op.", (i + 1) * per),
                format!("down_blocks.{i}.downsamplers.0.conv."),
                &[],
            ));
        }
    }
    if config.addition.is_some() {
        rows.push(row(
            "label_emb.0.0.".into(),
            "add_embedding.linear_1.".into(),
            &[],
        ));
        rows.push(row(
            "label_emb.0.2.".into(),
            "add_embedding.linear_2.".into(),
            &[],
        ));
    }
    rows.push(row(
        "middle_block.0.".into(),
        "mid_block.resnets.0.".into(),
        UNET_RESNET_INNER,
    ));
    rows.push(row(
        "middle_block.1.".into(),
        "mid_block.attentions.0.".into(),
        &[],
    ));
    rows.push(row(
        "middle_block.2.".into(),
        "mid_block.resnets.1.".into(),
        UNET_RESNET_INNER,
    ));
    for (i, &attn) in config.down_block_attention.iter().rev().enumerate() {
        for j in 0..per {
            let idx = i * per + j;
            rows.push(row(
                format!("output_blocks.{idx}.0."),
                format!("up_blocks.{i}.resnets.{j}."),
                UNET_RESNET_INNER,
            ));
            if attn {
                rows.push(row(
                    format!("output_blocks.{idx}.1."),
                    format!("up_blocks.{i}.attentions.{j}."),
                    &[],
                ));
            }
        }
        if i + 1 < n {
            let idx = i * per + per - 1;
            let slot = if attn { 2 } else { 1 };
            rows.push(row(
                format!("output_blocks.{idx}.{slot}.conv."),
                format!("up_blocks.{i}.upsamplers.0.conv."),
                &[],
            ));
        }
    }
    rows
}

/// The VAE encoder rows for a model of this shape.
pub fn vae_table(config: &VaeConfig) -> Vec<Rename> {
    let mut rows: Vec<Rename> = VAE_FIXED
        .iter()
        .map(|(f, t)| row(f.to_string(), t.to_string(), &[]))
        .collect();
    let n = config.block_out_channels.len();
    for i in 0..n {
        for j in 0..config.layers_per_block {
            rows.push(row(
                format!("encoder.down.{i}.block.{j}."),
                format!("encoder.down_blocks.{i}.resnets.{j}."),
                VAE_RESNET_INNER,
            ));
        }
        if i + 1 < n {
            rows.push(row(
                format!("encoder.down.{i}.downsample.conv."),
                format!("encoder.down_blocks.{i}.downsamplers.0.conv."),
                &[],
            ));
        }
    }
    rows.push(row(
        "encoder.mid.block_1.".into(),
        "encoder.mid_block.resnets.0.".into(),
        VAE_RESNET_INNER,
    ));
    rows.push(row(
        "encoder.mid.block_2.".into(),
        "encoder.mid_block.resnets.1.".into(),
        VAE_RESNET_INNER,
    ));
    rows
}

/// Renames one key (component prefix already removed) by the longest
/// matching row; `None` when no row matches.
pub fn rename(key: &str, table: &[Rename]) -> Option<String> {
    let best = table
        .iter()
        .filter(|r| key.starts_with(&r.from))
        .max_by_key(|r| r.from.len())?;
    let mut rest = key[best.from.len()..].to_string();
    for (from, to) in best.inner {
        if let Some(tail) = rest.strip_prefix(from)
            && (tail.is_empty() || tail.starts_with('.'))
        {
            rest = format!("{to}{tail}");
            break;
        }
    }
    Some(format!("{}{rest}", best.to))
}

/// A diffusers name (component prefix removed) in the ldm layout: the
/// rename table run backwards. `None` when no row covers the name.
pub fn to_ldm(name: &str, table: &[Rename]) -> Option<String> {
    let row = table
        .iter()
        .filter(|r| name.starts_with(&r.to))
        .max_by_key(|r| r.to.len())?;
    let mut rest = name[row.to.len()..].to_string();
    for (from, to) in row.inner {
        if let Some(tail) = rest.strip_prefix(to)
            && tail.starts_with('.')
        {
            rest = format!("{from}{tail}");
            break;
        }
    }
    Some(format!("{}{rest}", row.from))
}

/// A CLIP key from an ldm checkpoint (prefix removed) in transformers'
/// layout: older checkpoints lack the `text_model.` level.
pub fn clip_key(key: &str) -> String {
    if key.starts_with("text_model.") {
        key.to_string()
    } else {
        format!("text_model.{key}")
    }
}

/// One of our tensors inside an OpenCLIP tensor: its transformers name,
/// which third of the rows it is (q, k, v of a fused `in_proj`), and
/// whether it is stored transposed.
#[derive(Debug, Clone, PartialEq)]
pub struct OpenClipPart {
    pub name: String,
    pub part: Option<(usize, usize)>,
    pub transposed: bool,
}

/// Inside an OpenCLIP residual block: its names against transformers'.
const OPEN_CLIP_BLOCK: &[(&str, &str)] = &[
    ("ln_1.", "layer_norm1."),
    ("ln_2.", "layer_norm2."),
    ("attn.out_proj.", "self_attn.out_proj."),
    ("mlp.c_fc.", "mlp.fc1."),
    ("mlp.c_proj.", "mlp.fc2."),
];

/// What an OpenCLIP text-tower key (prefix removed) holds, in transformers'
/// `CLIPTextModelWithProjection` names; `None` for a key with no place
/// (see [`OPEN_CLIP_UNUSED`] for the ones that are not an error). The same
/// mapping as diffusers' `convert_open_clip_checkpoint`.
pub fn open_clip_keys(key: &str) -> Option<Vec<OpenClipPart>> {
    let one = |name: String, transposed: bool| {
        Some(vec![OpenClipPart {
            name,
            part: None,
            transposed,
        }])
    };
    match key {
        "token_embedding.weight" => {
            return one("text_model.embeddings.token_embedding.weight".into(), false);
        }
        "positional_embedding" => {
            return one(
                "text_model.embeddings.position_embedding.weight".into(),
                false,
            );
        }
        "text_projection" => return one("text_projection.weight".into(), true),
        _ => {}
    }
    if let Some(rest) = key.strip_prefix("ln_final.") {
        return one(format!("text_model.final_layer_norm.{rest}"), false);
    }
    let rest = key.strip_prefix("transformer.resblocks.")?;
    let (layer, inner) = rest.split_once('.')?;
    let layer: usize = layer.parse().ok()?;
    let base = format!("text_model.encoder.layers.{layer}.");
    let fused = match inner {
        "attn.in_proj_weight" => Some("weight"),
        "attn.in_proj_bias" => Some("bias"),
        _ => None,
    };
    if let Some(kind) = fused {
        return Some(
            ["q_proj", "k_proj", "v_proj"]
                .iter()
                .enumerate()
                .map(|(i, proj)| OpenClipPart {
                    name: format!("{base}self_attn.{proj}.{kind}"),
                    part: Some((i, 3)),
                    transposed: false,
                })
                .collect(),
        );
    }
    let (from, to) = OPEN_CLIP_BLOCK
        .iter()
        .find(|(from, _)| inner.starts_with(from))?;
    one(format!("{base}{to}{}", &inner[from.len()..]), false)
}

/// A transformers name of the second text encoder in OpenCLIP's layout:
/// the key, and which third of it the tensor is (`None` for a whole one);
/// the other way from [`open_clip_keys`]. `text_projection` is stored
/// transposed.
pub fn to_open_clip(name: &str) -> Option<(String, Option<usize>)> {
    match name {
        "text_model.embeddings.token_embedding.weight" => {
            return Some(("token_embedding.weight".into(), None));
        }
        "text_model.embeddings.position_embedding.weight" => {
            return Some(("positional_embedding".into(), None));
        }
        "text_projection.weight" => return Some(("text_projection".into(), None)),
        _ => {}
    }
    if let Some(rest) = name.strip_prefix("text_model.final_layer_norm.") {
        return Some((format!("ln_final.{rest}"), None));
    }
    let rest = name.strip_prefix("text_model.encoder.layers.")?;
    let (layer, inner) = rest.split_once('.')?;
    let base = format!("transformer.resblocks.{layer}.");
    for (i, proj) in ["q_proj", "k_proj", "v_proj"].iter().enumerate() {
        if let Some(kind) = inner.strip_prefix(&format!("self_attn.{proj}.")) {
            return Some((format!("{base}attn.in_proj_{kind}"), Some(i)));
        }
    }
    let (from, to) = OPEN_CLIP_BLOCK
        .iter()
        .find(|(_, to)| inner.starts_with(to))?;
    Some((format!("{base}{from}{}", &inner[to.len()..]), None))
}

/// Applies simple prefix renames (used for legacy diffusers names).
pub fn rename_prefix(key: &str, pairs: &[(&str, &str)]) -> String {
    for (from, to) in pairs {
        if let Some(rest) = key.strip_prefix(from) {
            return format!("{to}{rest}");
        }
    }
    key.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sd15_unet_rows_match_the_known_mapping() {
        let table = unet_table(&UNetConfig::sd15());
        let cases = [
            (
                "input_blocks.1.0.in_layers.0.weight",
                "down_blocks.0.resnets.0.norm1.weight",
            ),
            (
                "input_blocks.1.1.proj_in.weight",
                "down_blocks.0.attentions.0.proj_in.weight",
            ),
            (
                "input_blocks.3.0.op.weight",
                "down_blocks.0.downsamplers.0.conv.weight",
            ),
            (
                "input_blocks.4.0.skip_connection.bias",
                "down_blocks.1.resnets.0.conv_shortcut.bias",
            ),
            (
                "input_blocks.11.0.out_layers.3.weight",
                "down_blocks.3.resnets.1.conv2.weight",
            ),
            (
                "middle_block.1.transformer_blocks.0.attn2.to_k.weight",
                "mid_block.attentions.0.transformer_blocks.0.attn2.to_k.weight",
            ),
            (
                "output_blocks.2.1.conv.weight",
                "up_blocks.0.upsamplers.0.conv.weight",
            ),
            (
                "output_blocks.5.2.conv.bias",
                "up_blocks.1.upsamplers.0.conv.bias",
            ),
            (
                "output_blocks.8.1.transformer_blocks.0.ff.net.0.proj.weight",
                "up_blocks.2.attentions.2.transformer_blocks.0.ff.net.0.proj.weight",
            ),
            (
                "output_blocks.11.0.emb_layers.1.weight",
                "up_blocks.3.resnets.2.time_emb_proj.weight",
            ),
            ("time_embed.2.bias", "time_embedding.linear_2.bias"),
            ("out.2.weight", "conv_out.weight"),
        ];
        for (ldm, diffusers) in cases {
            assert_eq!(rename(ldm, &table).as_deref(), Some(diffusers), "{ldm}");
        }
        assert_eq!(rename("label_emb.0.weight", &table), None);
    }

    #[test]
    fn sdxl_unet_rows_match_the_known_mapping() {
        let table = unet_table(&UNetConfig::sdxl());
        let cases = [
            (
                "input_blocks.1.0.in_layers.2.weight",
                "down_blocks.0.resnets.0.conv1.weight",
            ),
            (
                "input_blocks.3.0.op.weight",
                "down_blocks.0.downsamplers.0.conv.weight",
            ),
            (
                "input_blocks.4.1.proj_in.weight",
                "down_blocks.1.attentions.0.proj_in.weight",
            ),
            (
                "input_blocks.8.1.transformer_blocks.9.attn2.to_k.weight",
                "down_blocks.2.attentions.1.transformer_blocks.9.attn2.to_k.weight",
            ),
            (
                "middle_block.1.transformer_blocks.3.ff.net.2.bias",
                "mid_block.attentions.0.transformer_blocks.3.ff.net.2.bias",
            ),
            (
                "output_blocks.2.2.conv.weight",
                "up_blocks.0.upsamplers.0.conv.weight",
            ),
            (
                "output_blocks.5.2.conv.bias",
                "up_blocks.1.upsamplers.0.conv.bias",
            ),
            (
                "output_blocks.8.0.skip_connection.weight",
                "up_blocks.2.resnets.2.conv_shortcut.weight",
            ),
            ("label_emb.0.0.weight", "add_embedding.linear_1.weight"),
            ("label_emb.0.2.bias", "add_embedding.linear_2.bias"),
        ];
        for (ldm, diffusers) in cases {
            assert_eq!(rename(ldm, &table).as_deref(), Some(diffusers), "{ldm}");
            assert_eq!(
                to_ldm(diffusers, &table).as_deref(),
                Some(ldm),
                "{diffusers}"
            );
        }
        assert_eq!(rename("input_blocks.1.1.proj_in.weight", &table), None);
    }

    #[test]
    fn open_clip_keys_split_and_come_back() {
        let parts = open_clip_keys("transformer.resblocks.31.attn.in_proj_weight").unwrap();
        let names: Vec<_> = parts.iter().map(|p| (p.name.as_str(), p.part)).collect();
        assert_eq!(
            names,
            [
                (
                    "text_model.encoder.layers.31.self_attn.q_proj.weight",
                    Some((0, 3))
                ),
                (
                    "text_model.encoder.layers.31.self_attn.k_proj.weight",
                    Some((1, 3))
                ),
                (
                    "text_model.encoder.layers.31.self_attn.v_proj.weight",
                    Some((2, 3))
                ),
            ]
        );
        for (key, name) in [
            (
                "transformer.resblocks.0.mlp.c_fc.bias",
                "text_model.encoder.layers.0.mlp.fc1.bias",
            ),
            (
                "transformer.resblocks.7.attn.out_proj.weight",
                "text_model.encoder.layers.7.self_attn.out_proj.weight",
            ),
            ("ln_final.weight", "text_model.final_layer_norm.weight"),
            (
                "positional_embedding",
                "text_model.embeddings.position_embedding.weight",
            ),
        ] {
            let parts = open_clip_keys(key).unwrap();
            assert_eq!(parts[0].name, name);
            assert_eq!(to_open_clip(name), Some((key.to_string(), None)));
        }
        assert!(open_clip_keys("text_projection").unwrap()[0].transposed);
        assert_eq!(open_clip_keys("logit_scale"), None);
        assert_eq!(
            to_open_clip("text_model.encoder.layers.2.self_attn.v_proj.bias"),
            Some(("transformer.resblocks.2.attn.in_proj_bias".into(), Some(2)))
        );
    }

    #[test]
    fn sd15_vae_rows_match_the_known_mapping() {
        let table = vae_table(&VaeConfig::sd15());
        assert_eq!(
            rename("encoder.down.1.block.0.nin_shortcut.weight", &table).as_deref(),
            Some("encoder.down_blocks.1.resnets.0.conv_shortcut.weight")
        );
        assert_eq!(
            rename("encoder.mid.attn_1.proj_out.bias", &table).as_deref(),
            Some("encoder.mid_block.attentions.0.to_out.0.bias")
        );
        assert_eq!(rename("decoder.conv_in.weight", &table), None);
    }
}
