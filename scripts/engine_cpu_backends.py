#!/usr/bin/env python3
"""The native engine's training step on every CPU backend burn 0.21 offers,
and in diffusers + peft, side by side in one run.

Builds `ategnatos-engine-bench` once per backend variant (cargo features, see
Cargo.toml), copies each binary aside, then runs every variant in turn,
round after round (A B C D A B C D ...), so a machine whose speed drifts
affects all of them alike. Each figure is the engine's own mean seconds per
step after its warm-up steps; the ratios are against the last variant named
in --baseline (by default diffusers + peft).

    python3 scripts/engine_cpu_backends.py --arch sd15 --size 8 --batch 1 --rank 4 \\
        --steps 3 --warmup 1 --rounds 2 --python /tmp/engine-torch/bin/python

Variants (pick with --variants, comma-separated):
    flex          burn's flex backend: SIMD, threads, im2col + gemm (the engine's CPU backend)
    ndarray       burn's ndarray backend as `default-features = false` left it: one thread, no SIMD
    ndarray-fast  ndarray with its `simd` and `multi-threads` features
    ndarray-blas  ndarray-fast with OpenBLAS matrix products (needs libopenblas-dev)
    torch         diffusers + peft (scripts/engine_torch_bench.py; needs --python with torch,
                  diffusers, transformers and peft), --threads threads (0 = torch's default)
    torch-1t      the same on one thread
    flex-1t       flex on one thread (RAYON_NUM_THREADS=1)

Before/after timings of an engine change: `--binary before=/path/to/old/bench`
adds a variant that runs that binary (built elsewhere) with `--device cpu`,
round-robin with the rest.

On a machine other jobs share, threads wait on each other (torch's OpenMP
most of all), so the one-thread variants are the steadier comparison there;
the script prints the load average before and after each round.
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# variant -> (cargo features, --device)
RUST = {
    "flex": ("", "cpu"),
    "ndarray": ("bench-ndarray", "ndarray"),
    "ndarray-fast": ("bench-ndarray-fast", "ndarray"),
    "ndarray-blas": ("bench-ndarray-blas", "ndarray"),
}


def build(variant, out_dir):
    features, _ = RUST[variant]
    cmd = ["cargo", "build", "--release", "--bin", "ategnatos-engine-bench"]
    if features:
        cmd += ["--features", features]
    print(f"building {variant}: {' '.join(cmd)}", flush=True)
    subprocess.run(cmd, cwd=ROOT, check=True)
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    binary = os.path.join(out_dir, f"ategnatos-engine-bench-{variant}")
    shutil.copy2(os.path.join(target, "release", "ategnatos-engine-bench"), binary)
    return binary


def run(cmd, env=None):
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True,
                          env=None if env is None else {**os.environ, **env})
    wall = time.perf_counter() - start
    if done.returncode != 0:
        sys.stderr.write(done.stdout + done.stderr)
        raise SystemExit(f"failed: {' '.join(cmd)}")
    means = [float(m) for m in re.findall(r"mean=([0-9.]+) s/step", done.stdout)]
    return means, done.stdout.strip(), wall


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--arch", default="sd15")
    parser.add_argument("--size", type=int, default=8, help="latent side (64 for 512 px)")
    parser.add_argument("--batch", default="1")
    parser.add_argument("--rank", type=int, default=4)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0 = its default)")
    parser.add_argument("--variants", default="flex,ndarray,ndarray-fast,ndarray-blas,torch")
    parser.add_argument("--baseline", default="torch")
    parser.add_argument("--python", default=sys.executable)
    parser.add_argument("--bin-dir", default="/tmp/ategnatos-engine-backends")
    parser.add_argument("--no-build", action="store_true", help="reuse the binaries in --bin-dir")
    parser.add_argument("--binary", action="append", default=[], metavar="NAME=PATH",
                        help="one more variant: this ategnatos-engine-bench binary on --device cpu")
    args = parser.parse_args()

    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    os.makedirs(args.bin_dir, exist_ok=True)
    commands = {}
    envs = {}
    common = [
        "--arch", args.arch, "--batch", args.batch, "--rank", str(args.rank),
        "--size", str(args.size), "--steps", str(args.steps), "--warmup", str(args.warmup),
    ]
    extra = {}
    for item in args.binary:
        name, _, path = item.partition("=")
        if not name or not path:
            raise SystemExit(f"--binary wants NAME=PATH, not {item}")
        extra[name] = path
        if name not in variants:
            variants.append(name)
    built = {}
    for v in variants:
        if v in extra:
            commands[v] = [extra[v], "--device", "cpu"] + common
            continue
        if v in ("torch", "torch-1t"):
            threads = 1 if v == "torch-1t" else args.threads
            commands[v] = [
                args.python, os.path.join(ROOT, "scripts", "engine_torch_bench.py"),
                "--size", str(args.size), "--batch", args.batch, "--rank", str(args.rank),
                "--steps", str(args.steps), "--warmup", str(args.warmup),
                "--threads", str(threads),
            ]
            continue
        base = v[: -len("-1t")] if v.endswith("-1t") else v
        if base not in RUST:
            raise SystemExit(f"unknown variant {v}")
        if v != base:
            envs[v] = {"RAYON_NUM_THREADS": "1"}
        binary = os.path.join(args.bin_dir, f"ategnatos-engine-bench-{base}")
        if not args.no_build and base not in built:
            binary = build(base, args.bin_dir)
        built[base] = binary
        commands[v] = [binary, "--device", RUST[base][1]] + common

    results = {v: [] for v in variants}
    for r in range(args.rounds):
        for v in variants:
            load_before = os.getloadavg()[0]
            means, text, wall = run(commands[v], envs.get(v))
            results[v].append(means)
            print(f"round {r + 1} {v}: {text.splitlines()[-1] if text else ''} (process {wall:.1f} s, "
                  f"load {load_before:.1f} -> {os.getloadavg()[0]:.1f})", flush=True)

    batches = args.batch.split(",")
    base = results.get(args.baseline)
    print(f"\narch={args.arch} latents={args.size}x{args.size} rank={args.rank} "
          f"steps={args.steps} (after {args.warmup} warm-up) rounds={args.rounds}")
    for i, b in enumerate(batches):
        print(f"batch {b}:")
        for v in variants:
            per_round = [m[i] for m in results[v]]
            best = min(per_round)
            line = f"  {v:13s} " + " ".join(f"{x:8.3f}" for x in per_round) + f"  s/step (best {best:.3f})"
            if base and v != args.baseline:
                ratios = [x / y[i] for x, y in zip(per_round, base)]
                line += "  vs " + args.baseline + ": " + " ".join(f"{q:.2f}x" for q in ratios)
            print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
