#!/usr/bin/env python3
"""The native engine on an NVIDIA GPU against diffusers + peft, ready to run
on the first machine that has one: seconds per step and peak GPU memory side
by side, for the record in docs/engine.md.

    python3 scripts/engine_gpu_bench.py --python /path/to/python-with-torch

It builds `ategnatos-engine-bench` with `--features cuda`, then for each case
runs the engine's benchmark and scripts/engine_torch_bench.py (the same model,
LoRA targets, rank and AdamW step on random weights) with `--device cuda`,
polling `nvidia-smi` for each process's GPU memory (the same yardstick for
both; torch's own peak allocation is printed too). Cases:

    sd15   512 px  (64x64 latents)  batch 1 and 4, rank 16
    sdxl  1024 px (128x128 latents) batch 1 and 4, rank 16

Needs: the NVIDIA driver, a CUDA toolkit's NVRTC for burn's kernels, Rust,
and a Python with torch (CUDA build), diffusers, transformers and peft.
"""

import argparse
import os
import re
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

CASES = [
    # (arch, latent side, batches, rank)
    ("sd15", 64, "1,4", 16),
    ("sdxl", 128, "1,4", 16),
]


def gpu_memory_of(pid):
    """MiB of GPU memory the process uses now, per nvidia-smi (0 if none)."""
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits"],
            capture_output=True, text=True, timeout=10,
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return 0
    total = 0
    for line in out.splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) == 2 and parts[0] == str(pid) and parts[1].isdigit():
            total += int(parts[1])
    return total


def run_with_peak(cmd, timeout):
    """Runs cmd, polling its GPU memory; returns (stdout, peak MiB)."""
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    peak = [0]
    done = threading.Event()

    def poll():
        while not done.is_set():
            peak[0] = max(peak[0], gpu_memory_of(proc.pid))
            time.sleep(0.2)

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
        out += "\n(timed out)"
    done.set()
    poller.join()
    return out, peak[0], proc.returncode


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--python", default=sys.executable)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--cases", default="sd15,sdxl",
                        help="which of sd15, sdxl to run (comma-separated)")
    parser.add_argument("--timeout", type=int, default=1200, help="seconds per command")
    parser.add_argument("--no-build", action="store_true")
    args = parser.parse_args()

    if not args.no_build:
        subprocess.run(
            ["cargo", "build", "--release", "--features", "cuda", "--bin", "ategnatos-engine-bench"],
            cwd=ROOT, check=True,
        )
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    engine = os.path.join(target, "release", "ategnatos-engine-bench")
    wanted = {c.strip() for c in args.cases.split(",")}
    rows = []
    for arch, size, batches, rank in CASES:
        if arch not in wanted:
            continue
        for batch in batches.split(","):
            common = ["--batch", batch, "--rank", str(rank), "--size", str(size),
                      "--steps", str(args.steps), "--warmup", str(args.warmup)]
            ours, our_peak, rc = run_with_peak(
                [engine, "--arch", arch, "--device", "cuda"] + common, args.timeout)
            ours_mean = re.findall(r"mean=([0-9.]+) s/step", ours)
            if rc != 0 or not ours_mean:
                print(f"engine {arch} batch {batch} failed:\n{ours[-2000:]}", flush=True)
            theirs, their_peak, rc2 = run_with_peak(
                [args.python, os.path.join(ROOT, "scripts", "engine_torch_bench.py"),
                 "--arch", arch, "--device", "cuda"] + common, args.timeout)
            their_mean = re.findall(r"mean=([0-9.]+) s/step", theirs)
            torch_alloc = re.findall(r"peak=([0-9]+) MB", theirs)
            if rc2 != 0 or not their_mean:
                print(f"diffusers {arch} batch {batch} failed:\n{theirs[-2000:]}", flush=True)
            rows.append((arch, size * 8, batch, rank,
                         ours_mean[-1] if ours_mean else "-", our_peak,
                         their_mean[-1] if their_mean else "-", their_peak,
                         torch_alloc[-1] if torch_alloc else "-"))
            print(rows[-1], flush=True)

    gpu = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total,driver_version",
                          "--format=csv,noheader"], capture_output=True, text=True).stdout.strip()
    print(f"\nGPU: {gpu}")
    print("| model | px | batch | rank | engine s/step | engine peak MiB (nvidia-smi) "
          "| diffusers+peft s/step | diffusers peak MiB (nvidia-smi) | torch max allocated MB | ratio |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for arch, px, batch, rank, om, op, tm, tp, ta in rows:
        ratio = f"{float(om) / float(tm):.2f}x" if om != "-" and tm != "-" else "-"
        print(f"| {arch} | {px} | {batch} | {rank} | {om} | {op} | {tm} | {tp} | {ta} | {ratio} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
