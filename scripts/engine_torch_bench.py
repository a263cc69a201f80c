#!/usr/bin/env python3
"""The PyTorch side of the native engine's training-step benchmark.

`ategnatos-engine-bench` times the engine's real training step; this script
times the same step in diffusers + peft, so the two figures can be compared
on one machine in one run (docs/benchmarks.md, "Native engine"):

* the same model: SD1.5's UNet2DConditionModel and CLIP ViT-L text encoder
  (or, with --arch sdxl, SDXL's UNet, CLIP ViT-L and OpenCLIP ViT-bigG),
  built from the configs below (the numbers of the models' unet/ and
  text_encoder*/ config.json on Hugging Face), with random weights, or loaded
  from a checkpoint in the diffusers layout (`ategnatos engine
  init-checkpoint --layout diffusers` writes one with random weights);
* the same LoRA: kohya's default targets (every linear layer and 1x1 conv
  inside the spatial transformers: proj_in, to_q, to_k, to_v, to_out.0,
  ff.net.0.proj, ff.net.2, proj_out), rank = alpha, float32;
* the same step: random latents and token ids, a random timestep per image,
  DDPM noise (SD1.5's scaled-linear betas), the frozen text encoder, the UNet,
  MSE against the noise, backward into the adapters only, AdamW
  (weight decay 1e-2, eps 1e-8), no gradient checkpointing.

Each timing ends with `loss.item()`, which waits for the step. Peak memory is
the process's peak RSS (CPU) or torch's peak allocation (CUDA).

    python3 -m venv /tmp/engine-torch
    /tmp/engine-torch/bin/pip install torch diffusers transformers peft safetensors
    /tmp/engine-torch/bin/python scripts/engine_torch_bench.py \\
        --size 8 --batch 1 --rank 4 --threads 2 --steps 3 --warmup 1

It prints one line per batch size, in the format the Rust benchmark uses:
`device=cpu impl=diffusers+peft batch=1 rank=4 latents=8x8 ... mean=1.42 s/step`.
"""

import argparse
import os
import resource
import sys
import time

import torch


SD15_UNET = dict(
    sample_size=64,
    in_channels=4,
    out_channels=4,
    down_block_types=(
        "CrossAttnDownBlock2D",
        "CrossAttnDownBlock2D",
        "CrossAttnDownBlock2D",
        "DownBlock2D",
    ),
    up_block_types=(
        "UpBlock2D",
        "CrossAttnUpBlock2D",
        "CrossAttnUpBlock2D",
        "CrossAttnUpBlock2D",
    ),
    block_out_channels=(320, 640, 1280, 1280),
    layers_per_block=2,
    attention_head_dim=8,
    cross_attention_dim=768,
    norm_num_groups=32,
)

SD15_CLIP = dict(
    vocab_size=49408,
    max_position_embeddings=77,
    hidden_size=768,
    intermediate_size=3072,
    num_hidden_layers=12,
    num_attention_heads=12,
    hidden_act="quick_gelu",
    layer_norm_eps=1e-5,
    projection_dim=768,
)

SDXL_UNET = dict(
    sample_size=128,
    in_channels=4,
    out_channels=4,
    down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
    up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
    block_out_channels=(320, 640, 1280),
    layers_per_block=2,
    attention_head_dim=(5, 10, 20),
    cross_attention_dim=2048,
    transformer_layers_per_block=(1, 2, 10),
    use_linear_projection=True,
    addition_embed_type="text_time",
    addition_time_embed_dim=256,
    projection_class_embeddings_input_dim=2816,
    norm_num_groups=32,
)

SDXL_CLIP_G = dict(
    vocab_size=49408,
    max_position_embeddings=77,
    hidden_size=1280,
    intermediate_size=5120,
    num_hidden_layers=32,
    num_attention_heads=20,
    hidden_act="gelu",
    layer_norm_eps=1e-5,
    projection_dim=1280,
)

KOHYA_TARGETS = [
    "proj_in",
    "proj_out",
    "to_q",
    "to_k",
    "to_v",
    "to_out.0",
    "ff.net.0.proj",
    "ff.net.2",
]


def build(arch, checkpoint, device):
    """The UNet and text encoder(s), random or loaded strictly from a
    diffusers folder's safetensors (no config.json needed)."""
    from diffusers import UNet2DConditionModel
    from safetensors.torch import load_file
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    if arch == "sdxl":
        unet = UNet2DConditionModel(**SDXL_UNET)
        encoders = [
            CLIPTextModel(CLIPTextConfig(**SD15_CLIP)),
            CLIPTextModelWithProjection(CLIPTextConfig(**SDXL_CLIP_G)),
        ]
        files = ["text_encoder/model.safetensors", "text_encoder_2/model.safetensors"]
    else:
        unet = UNet2DConditionModel(**SD15_UNET)
        encoders = [CLIPTextModel(CLIPTextConfig(**SD15_CLIP))]
        files = ["text_encoder/model.safetensors"]
    if checkpoint:
        unet.load_state_dict(
            load_file(os.path.join(checkpoint, "unet/diffusion_pytorch_model.safetensors")), strict=True
        )
        for encoder, name in zip(encoders, files):
            state = load_file(os.path.join(checkpoint, name))
            missing, unexpected = encoder.load_state_dict(state, strict=False)
            # position_ids is a buffer some exports carry and others do not
            missing = [k for k in missing if not k.endswith("position_ids")]
            unexpected = [k for k in unexpected if not k.endswith("position_ids")]
            if missing or unexpected:
                raise SystemExit(f"{name}: missing {missing[:5]}, unexpected {unexpected[:5]}")
    return unet.to(device, torch.float32), [e.to(device, torch.float32) for e in encoders]


def add_lora(unet, rank):
    from peft import LoraConfig

    unet.requires_grad_(False)
    unet.add_adapter(
        LoraConfig(r=rank, lora_alpha=rank, init_lora_weights=True, target_modules=KOHYA_TARGETS)
    )
    params = [p for p in unet.parameters() if p.requires_grad]
    return params


def peak_memory_mb(device):
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    # ru_maxrss is KiB on Linux
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--arch", default="sd15", choices=["sd15", "sdxl"])
    parser.add_argument("--checkpoint", help="a diffusers folder; random weights without it")
    parser.add_argument("--size", type=int, default=8, help="latent side (64 for 512 px)")
    parser.add_argument("--batch", default="1", help="batch sizes, comma-separated")
    parser.add_argument("--rank", type=int, default=4)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=0, help="torch threads; 0 = torch's default")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    args = parser.parse_args()

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    device = torch.device(args.device)
    from diffusers import DDPMScheduler

    unet, encoders = build(args.arch, args.checkpoint, device)
    for encoder in encoders:
        encoder.requires_grad_(False)
    params = add_lora(unet, args.rank)
    trainable = sum(p.numel() for p in params)
    optimizer = torch.optim.AdamW(params, lr=1e-4, weight_decay=1e-2, eps=1e-8)
    scheduler = DDPMScheduler(
        num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear"
    )
    unet.train()

    for batch in [int(b) for b in args.batch.split(",") if b.strip()]:
        latents = torch.rand(batch, 4, args.size, args.size, device=device) * 2 - 1
        ids = torch.randint(0, SD15_CLIP["vocab_size"], (batch, 77), device=device)
        side = args.size * 8
        # original size, crop top-left, target size: SDXL's size conditioning
        time_ids = torch.tensor([[side, side, 0, 0, side, side]] * batch, device=device, dtype=torch.float32)
        times = []
        for i in range(args.warmup + args.steps):
            start = time.perf_counter()
            noise = torch.randn_like(latents)
            t = torch.randint(0, 1000, (batch,), device=device)
            noisy = scheduler.add_noise(latents, noise, t)
            with torch.no_grad():
                if args.arch == "sdxl":
                    # the penultimate hidden states of both, side by side, and
                    # the second one's pooled projection
                    first = encoders[0](ids, output_hidden_states=True)
                    second = encoders[1](ids, output_hidden_states=True)
                    context = torch.cat([first.hidden_states[-2], second.hidden_states[-2]], dim=-1)
                    extra = {"text_embeds": second.text_embeds, "time_ids": time_ids}
                else:
                    context = encoders[0](ids)[0]
                    extra = None
            pred = unet(noisy, t, context, added_cond_kwargs=extra).sample
            loss = torch.nn.functional.mse_loss(pred, noise)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            loss.item()
            if i >= args.warmup:
                times.append(time.perf_counter() - start)
        mean = sum(times) / max(len(times), 1)
        print(
            f"device={args.device} impl=diffusers+peft torch={torch.__version__} "
            f"threads={torch.get_num_threads()} batch={batch} rank={args.rank} "
            f"latents={args.size}x{args.size} trainable={trainable} steps={len(times)} "
            f"mean={mean:.4f} s/step peak={peak_memory_mb(device):.0f} MB",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
