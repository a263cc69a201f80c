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

The variants are `tiny` (the tiny test configs), `tiny-small-activations`
(the same, with the residual streams near 1e-3 so the norms' eps matter) and
`sd15-shaped` (SD1.5's block layout at toy widths); src/engine/
reference_tests.rs says why each exists. The JSON holds only outputs, so
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
from transformers import CLIPTextConfig, CLIPTextModel


def unet_model(cfg):
    """diffusers' UNet2DConditionModel for our `UNetConfig`."""
    attn = cfg["down_block_attention"]
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
        # SD1.5's config says `attention_head_dim: 8` and means 8 heads;
        # diffusers keeps that reading for old configs, and so do we.
        attention_head_dim=cfg["heads"],
        use_linear_projection=False,
    )


def clip_model(cfg):
    """transformers' CLIPTextModel for our `ClipConfig` (SD1.5: quick_gelu)."""
    config = CLIPTextConfig(
        vocab_size=cfg["vocab_size"],
        hidden_size=cfg["hidden_size"],
        intermediate_size=cfg["intermediate_size"],
        projection_dim=cfg["hidden_size"],
        num_hidden_layers=cfg["num_hidden_layers"],
        num_attention_heads=cfg["num_attention_heads"],
        max_position_embeddings=cfg["max_position_embeddings"],
        hidden_act="quick_gelu",
        layer_norm_eps=cfg["layer_norm_eps"],
        attention_dropout=0.0,
        # only the pooled output reads these; keep them inside the tiny vocabulary
        pad_token_id=1,
        bos_token_id=cfg["vocab_size"] - 2,
        eos_token_id=cfg["vocab_size"] - 1,
    )
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
    """JSON with each output's values eight to a line: small diffs when
    numbers change, and a file a person can scroll."""
    rows = {}

    def pack(values):
        key = f"@values{len(rows)}@"
        rows[key] = ",\n    ".join(
            ", ".join(json.dumps(v) for v in values[i : i + 8])
            for i in range(0, len(values), 8)
        )
        return key

    for out in doc["outputs"].values():
        out["values"] = pack(out["values"])
    text = json.dumps(doc, indent=1)
    for key, body in rows.items():
        text = text.replace(f'"{key}"', f"[\n    {body}\n   ]")
    return text + "\n"


def run_variant(folder):
    """Every model the variant in `folder` has, run on its inputs: a dict of
    output name → tensor, plus a description of what went in."""
    configs = json.loads((folder / "configs.json").read_text())
    inputs = load_file(str(folder / "inputs.safetensors"))
    outputs, described = {}, {"activation_scale": configs["activation_scale"]}

    if "unet" in configs:
        unet = load_strict(unet_model(configs["unet"]), folder / "unet")
        outputs["unet.sample"] = unet(
            inputs["unet.latents"],
            inputs["unet.timesteps"],
            encoder_hidden_states=inputs["unet.context"],
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
    return described, outputs


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
        described, outputs = run_variant(folder)
        doc = {
            "generated_by": "scripts/engine_reference.py",
            "variant": folder.name,
            "versions": versions(),
            "inputs": described,
            "outputs": {k: tensor_json(v) for k, v in outputs.items()},
        }
        path = args.out / f"{folder.name}.json"
        path.write_text(dumps(doc))
        json.loads(path.read_text())  # still valid JSON
        sizes = ", ".join(f"{k} {list(v.shape)}" for k, v in outputs.items())
        print(f"wrote {path}: {sizes}")


if __name__ == "__main__":
    main()
