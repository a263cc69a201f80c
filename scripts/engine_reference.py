#!/usr/bin/env python3
"""Reference outputs for the native engine's models, from diffusers and
transformers themselves.

The Rust engine (src/engine/) re-implements SD1.5's UNet2DConditionModel,
CLIP text encoder and VAE encoder. This script runs the real PyTorch models on
the same weights and inputs and writes their outputs to small JSON files under
fixtures/engine-reference/, one per variant. The Rust test
`engine::reference_tests` compares our forward passes with those files; CI
needs neither Python nor torch.

The weights and inputs are not random: the Rust side makes them with a fixed
generator (SplitMix64, seeded by each tensor's name), and an ignored Rust test
writes them out for this script, one folder per variant:

    <dir>/<variant>/configs.json            our configs, in our field names
    <dir>/<variant>/inputs.safetensors      latents, timesteps, context,
                                            token ids, images
    <dir>/<variant>/unet/...safetensors     diffusers layout; text_encoder/
    <dir>/<variant>/vae/...safetensors      only where the variant has CLIP
    <dir>/<variant>/ldm.safetensors         the same weights as one ldm-layout
                                            file, named by our ldm tables

The variants are `tiny` (the tiny test configs), `tiny-small-activations`
(the same, with the residual streams near 1e-3 so the norms' eps matter),
`sd15-shaped` (SD1.5's block layout at toy widths) and `sdxl-shaped`
(SDXL's, with both text encoders: CLIPTextModel and
CLIPTextModelWithProjection); src/engine/reference_tests.rs says why each
exists. The JSON holds only outputs, so
regenerating it means running both steps:

    # 1. the weights, inputs and configs, written by Rust
    export CARGO_TARGET_DIR=/work/target-ref   # or your usual target dir
    ENGINE_REFERENCE_DIR=/tmp/engine-reference \
        cargo test --lib engine::reference_tests::write_reference_inputs -- --ignored

    # 2. the outputs, computed by diffusers and transformers (CPU, float32;
    #    any torch build works, a CUDA one just runs on the CPU here)
    python3 -m venv /work/pyenv-torch
    /work/pyenv-torch/bin/pip install torch diffusers transformers safetensors numpy
    /work/pyenv-torch/bin/python scripts/engine_reference.py \
        /tmp/engine-reference fixtures/engine-reference

    # 3. the check
    cargo test --lib engine::reference_tests -- --nocapture

The committed JSON was made with torch 2.15.0, diffusers 0.42.1,
transformers 5.24.0, safetensors 0.8.0, numpy 2.4.6, Python 3.11.7, on an
x86-64 CPU; each file also records the versions it came from. Another
version should give the same numbers to about 1e-6: if it does not, the
library changed its model code, and the diff is worth reading.

The models are built from configs.json, which step 1 writes from the Rust
configs, so the two sides cannot drift apart. Loading goes through each
library's own `from_pretrained` and is strict: a key the Rust model has and
the reference does not (or the other way round) stops the script. Only the
VAE decoder's keys may be missing, since the engine has no decoder.

The ldm-layout file is converted with diffusers' own single-file converters
(`convert_ldm_unet_checkpoint`, `convert_ldm_vae_checkpoint`,
`convert_ldm_clip_checkpoint`) and must give back exactly the diffusers-layout
weights: that checks src/engine/ldm.rs's rename tables against diffusers'.
Each JSON file names the components this was checked for.
"""

import argparse
import json
import platform
import sys
from pathlib import Path

import numpy
import safetensors
import torch
from safetensors.torch import load_file

import diffusers
import transformers
from diffusers import AutoencoderKL, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection


def unet_model(cfg):
    """diffusers' UNet2DConditionModel for our `UNetConfig`."""
    attn = cfg["down_block_attention"]
    sdxl = {}
    if cfg.get("addition_time_embed_dim"):
        sdxl = dict(
            addition_embed_type="text_time",
            addition_time_embed_dim=cfg["addition_time_embed_dim"],
            projection_class_embeddings_input_dim=6 * cfg["addition_time_embed_dim"]
            + cfg["pooled_dim"],
        )
    if cfg.get("head_channels"):
        # SDXL's config lists heads per stage (5, 10, 20): 64-channel heads
        heads = tuple(c // cfg["head_channels"] for c in cfg["block_out_channels"])
    else:
        # SD1.5's config says `attention_head_dim: 8` and means 8 heads;
        # diffusers keeps that reading for old configs, and so do we.
        heads = cfg["heads"]
    return UNet2DConditionModel(
        sample_size=8,
        in_channels=cfg["in_channels"],
        out_channels=cfg["out_channels"],
        center_input_sample=False,
        flip_sin_to_cos=True,
        freq_shift=0,
        down_block_types=tuple(
            "CrossAttnDownBlock2D" if a else "DownBlock2D" for a in attn
        ),
        mid_block_type="UNetMidBlock2DCrossAttn",
        up_block_types=tuple(
            "CrossAttnUpBlock2D" if a else "UpBlock2D" for a in reversed(attn)
        ),
        only_cross_attention=False,
        block_out_channels=tuple(cfg["block_out_channels"]),
        layers_per_block=cfg["layers_per_block"],
        downsample_padding=1,
        mid_block_scale_factor=1,
        act_fn="silu",
        norm_num_groups=cfg["norm_num_groups"],
        norm_eps=cfg["norm_eps"],
        cross_attention_dim=cfg["cross_attention_dim"],
        transformer_layers_per_block=cfg["transformer_depth"],
        attention_head_dim=heads,
        use_linear_projection=bool(cfg.get("linear_projection")),
        **sdxl,
    )


def clip_model(cfg):
    """transformers' CLIPTextModel for our `ClipConfig` (SD1.5: quick_gelu),
    or CLIPTextModelWithProjection for SDXL's second encoder (exact GELU,
    and `eos_token_id` 2 as in SDXL's config, which makes transformers pool
    at the first position of the row's largest id)."""
    projection = cfg.get("projection_dim")
    config = CLIPTextConfig(
        vocab_size=cfg["vocab_size"],
        hidden_size=cfg["hidden_size"],
        intermediate_size=cfg["intermediate_size"],
        projection_dim=projection or cfg["hidden_size"],
        num_hidden_layers=cfg["num_hidden_layers"],
        num_attention_heads=cfg["num_attention_heads"],
        max_position_embeddings=cfg["max_position_embeddings"],
        hidden_act="gelu" if cfg.get("exact_gelu") else "quick_gelu",
        layer_norm_eps=cfg["layer_norm_eps"],
        attention_dropout=0.0,
        # only the pooled output reads these; keep them inside the tiny vocabulary
        pad_token_id=1,
        bos_token_id=0 if projection else cfg["vocab_size"] - 2,
        eos_token_id=2 if projection else cfg["vocab_size"] - 1,
    )
    if projection:
        return CLIPTextModelWithProjection(config)
    return CLIPTextModel(config)


def vae_model(cfg):
    """diffusers' AutoencoderKL for our `VaeConfig` (we only run its encoder)."""
    n = len(cfg["block_out_channels"])
    return AutoencoderKL(
        in_channels=cfg["in_channels"],
        out_channels=cfg["in_channels"],
        down_block_types=("DownEncoderBlock2D",) * n,
        up_block_types=("UpDecoderBlock2D",) * n,
        block_out_channels=tuple(cfg["block_out_channels"]),
        layers_per_block=cfg["layers_per_block"],
        act_fn="silu",
        latent_channels=cfg["latent_channels"],
        norm_num_groups=cfg["norm_num_groups"],
        sample_size=16,
        scaling_factor=cfg["scaling_factor"],
    )


def load_strict(model, folder, allowed_missing=()):
    """Loads `folder` (a diffusers-layout component folder holding the
    weights step 1 wrote) with the library's own `from_pretrained`, the way a
    real SD1.5 folder is loaded, after saving `model`'s config there. Every
    file key must be used and every model key filled, except those starting
    with one of `allowed_missing`."""
    if hasattr(model, "save_config"):
        model.save_config(folder)  # diffusers
    else:
        model.config.save_pretrained(folder)  # transformers
    loaded, info = type(model).from_pretrained(
        folder, output_loading_info=True, torch_dtype=torch.float32
    )
    missing = [
        k for k in info["missing_keys"] if not k.startswith(tuple(allowed_missing))
    ]
    problems = {
        "missing from the file": missing,
        "not in the model": list(info["unexpected_keys"]),
        "wrong shape": list(info.get("mismatched_keys", [])),
    }
    if any(problems.values()):
        sys.exit(f"{folder}: the weights do not fit the reference model: {problems}")
    return loaded.float().eval()


def tensor_json(t):
    """Shape and every value; 9 significant digits round-trip a float32."""
    flat = t.detach().to(torch.float32).flatten().tolist()
    return {
        "shape": list(t.shape),
        "values": [float(f"{x:.9g}") for x in flat],
    }


def versions():
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "diffusers": diffusers.__version__,
        "transformers": transformers.__version__,
        "safetensors": safetensors.__version__,
        "numpy": numpy.__version__,
    }


def dumps(doc):
    """JSON with each output's values eight to a line and each key pair on
    its own line: small diffs when numbers change, and a file a person can
    scroll."""
    rows = {}

    def pack(lines, indent):
        key = f"@rows{len(rows)}@"
        pad = " " * indent
        rows[key] = f"[\n{pad}" + f",\n{pad}".join(lines) + f"\n{pad[:-1]}]"
        return key

    for out in doc["outputs"].values():
        values = out["values"]
        out["values"] = pack(
            [
                ", ".join(json.dumps(v) for v in values[i : i + 8])
                for i in range(0, len(values), 8)
            ],
            4,
        )
        key = f"@rows{len(rows)}@"
        rows[key] = json.dumps(out["shape"])  # on one line
        out["shape"] = key
    for name, pairs in doc.get("ldm_key_map", {}).items():
        doc["ldm_key_map"][name] = pack([json.dumps(p) for p in pairs], 3)
    text = json.dumps(doc, indent=1)
    for key, body in rows.items():
        text = text.replace(f'"{key}"', body)
    return text + "\n"


def check_ldm_file(folder, unet, vae, clip2=None):
    """Converts `folder`/ldm.safetensors (our ldm rename tables, run
    backwards) with diffusers' single-file converters, and requires exactly
    the diffusers-layout weights back. Returns what was checked."""
    from diffusers.loaders.single_file_utils import (
        convert_ldm_clip_checkpoint,
        convert_ldm_unet_checkpoint,
        convert_ldm_vae_checkpoint,
        convert_open_clip_checkpoint,
    )

    ldm = load_file(str(folder / "ldm.safetensors"))
    checks = []
    if unet is not None:
        checks.append(
            ("unet", convert_ldm_unet_checkpoint(ldm, dict(unet.config)),
             folder / "unet" / "diffusion_pytorch_model.safetensors")
        )
    if vae is not None:
        checks.append(
            ("vae", convert_ldm_vae_checkpoint(ldm, dict(vae.config)),
             folder / "vae" / "diffusion_pytorch_model.safetensors")
        )
    if (folder / "text_encoder").is_dir():
        checks.append(
            ("text_encoder", convert_ldm_clip_checkpoint(ldm),
             folder / "text_encoder" / "model.safetensors")
        )
    if clip2 is not None:
        checks.append(
            ("text_encoder_2",
             convert_open_clip_checkpoint(clip2, ldm, prefix="conditioner.embedders.1.model."),
             folder / "text_encoder_2" / "model.safetensors")
        )
    for name, converted, diffusers_file in checks:
        expected = load_file(str(diffusers_file))
        if name == "vae":
            # the decoder is not ours to write
            converted = {k: v for k, v in converted.items() if k in expected}
        missing = sorted(set(expected) - set(converted))
        extra = sorted(set(converted) - set(expected))
        differ = sorted(
            k for k in set(expected) & set(converted)
            if expected[k].shape != converted[k].shape
            or not torch.equal(expected[k], converted[k].to(expected[k].dtype))
        )
        if missing or extra or differ:
            sys.exit(
                f"{folder}/ldm.safetensors, {name}: diffusers' converter disagrees "
                f"with our ldm tables\n  not produced: {missing[:10]}\n"
                f"  unexpected: {extra[:10]}\n  other values: {differ[:10]}"
            )
    # Which ldm key became which diffusers key, found by value (every tensor
    # is distinct), for the Rust test to hold our tables to.
    by_value = {v.flatten().numpy().tobytes(): k for k, v in ldm.items()}
    key_map = {}
    for name, converted, _ in checks:
        if name in ("text_encoder", "text_encoder_2"):
            continue  # a prefix swap; OpenCLIP's fused q/k/v pair by no value
        key_map[name] = sorted(
            [by_value[v.flatten().numpy().tobytes()], k] for k, v in converted.items()
        )
    return [name for name, _, _ in checks], key_map


def run_variant(folder):
    """Every model the variant in `folder` has, run on its inputs: a dict of
    output name → tensor, plus a description of what went in."""
    configs = json.loads((folder / "configs.json").read_text())
    inputs = load_file(str(folder / "inputs.safetensors"))
    outputs, described = {}, {"activation_scale": configs["activation_scale"]}

    if "unet" in configs:
        unet = load_strict(unet_model(configs["unet"]), folder / "unet")
        added = None
        if "unet.time_ids" in inputs:
            added = {
                "text_embeds": inputs["unet.text_embeds"],
                "time_ids": inputs["unet.time_ids"],
            }
        outputs["unet.sample"] = unet(
            inputs["unet.latents"],
            inputs["unet.timesteps"],
            encoder_hidden_states=inputs["unet.context"],
            added_cond_kwargs=added,
        ).sample
        described["unet"] = {
            "config": configs["unet"],
            "latents": list(inputs["unet.latents"].shape),
            "timesteps": inputs["unet.timesteps"].tolist(),
            "context": list(inputs["unet.context"].shape),
        }

    if "clip" in configs:
        clip = load_strict(clip_model(configs["clip"]), folder / "text_encoder")
        ids = inputs["clip.input_ids"]
        out = clip(input_ids=ids, output_hidden_states=True)
        outputs["clip.last_hidden_state"] = out.last_hidden_state
        # clip_skip 2 as kohya and the A1111 family do it: the hidden state
        # before the last layer, then the final LayerNorm all the same.
        # (transformers 5 dropped the `text_model` wrapper; 4.x has it)
        final_layer_norm = getattr(clip, "text_model", clip).final_layer_norm
        outputs["clip.clip_skip_2"] = final_layer_norm(out.hidden_states[-2])
        described["clip"] = {"config": configs["clip"], "input_ids": ids.tolist()}

    clip2 = None
    if "clip2" in configs:
        # SDXL: both encoders' penultimate hidden states (no final norm),
        # and the second's pooled, projected embedding
        outputs["clip.penultimate"] = out.hidden_states[-2]
        clip2 = load_strict(clip_model(configs["clip2"]), folder / "text_encoder_2")
        out2 = clip2(input_ids=ids, output_hidden_states=True)
        outputs["clip2.penultimate"] = out2.hidden_states[-2]
        outputs["clip2.text_embeds"] = out2.text_embeds
        described["clip2"] = {"config": configs["clip2"], "input_ids": ids.tolist()}

    if "vae" in configs:
        vae = load_strict(
            vae_model(configs["vae"]),
            folder / "vae",
            allowed_missing=("decoder.", "post_quant_conv."),
        )
        dist = vae.encode(inputs["vae.images"]).latent_dist
        outputs["vae.mean"] = dist.mean
        outputs["vae.logvar"] = dist.logvar
        described["vae"] = {
            "config": configs["vae"],
            "images": list(inputs["vae.images"].shape),
        }
    key_map = None
    if (folder / "ldm.safetensors").is_file():
        checked, key_map = check_ldm_file(
            folder,
            unet if "unet" in configs else None,
            vae if "vae" in configs else None,
            clip2,
        )
        described["ldm_layout_checked_by_diffusers_converter"] = checked
        if not configs.get("record_ldm_key_map"):
            key_map = None
    return described, outputs, key_map


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("inputs", type=Path, help="the folder step 1 wrote")
    parser.add_argument("out", type=Path, help="where the JSON files go")
    args = parser.parse_args()

    torch.manual_seed(0)
    torch.set_grad_enabled(False)
    diffusers.utils.logging.set_verbosity_error()
    transformers.utils.logging.set_verbosity_error()
    args.out.mkdir(parents=True, exist_ok=True)
    folders = sorted(p.parent for p in args.inputs.glob("*/configs.json"))
    if not folders:
        sys.exit(f"{args.inputs} has no <variant>/configs.json: run step 1 first")
    for folder in folders:
        described, outputs, key_map = run_variant(folder)
        doc = {
            "generated_by": "scripts/engine_reference.py",
            "variant": folder.name,
            "versions": versions(),
            "inputs": described,
            "outputs": {k: tensor_json(v) for k, v in outputs.items()},
        }
        if key_map:
            # [ldm key, diffusers key] as diffusers' converters pair them
            doc["ldm_key_map"] = key_map
        path = args.out / f"{folder.name}.json"
        path.write_text(dumps(doc))
        json.loads(path.read_text())  # still valid JSON
        sizes = ", ".join(f"{k} {list(v.shape)}" for k, v in outputs.items())
        print(f"wrote {path}: {sizes}")


if __name__ == "__main__":
    main()
