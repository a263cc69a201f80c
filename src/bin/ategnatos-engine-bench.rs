//! The native LoRA engine's benchmarks.
//!
//! Seconds per training step on random weights:
//! `ategnatos-engine-bench --arch sd15 --batch 1,4 --rank 16 --size 64 --device cuda`
//! times the full-size SD1.5 UNet (+ CLIP) at 512 px; `--device cpu` on the
//! CPU (`--device ndarray` too, in a build with `--features bench-ndarray`:
//! burn's other CPU backend, for comparison). `scripts/engine_cpu_backends.py`
//! runs them side by side with diffusers + peft.
//!
//! Memory while loading a checkpoint:
//! `ategnatos-engine-bench --memory --arch sd15 [--layout ldm] [--dtype f16]`
//! writes a random full-size checkpoint (real names and shapes) to a
//! temporary folder, loads it in a child process as training does, and
//! prints that process's peak resident memory beside the model's size.
// A benchmark prints its table on stdout; a closed pipe is not a concern here.
#![allow(clippy::print_stdout)]

use std::process::{Command, ExitCode};

use ategnatos::engine::bench::{BenchSpec, run_benchmark};
use ategnatos::engine::config::Architecture;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let value = |flag: &str, default: &str| -> String {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .cloned()
            .unwrap_or_else(|| default.to_string())
    };
    let arch_name = value("--arch", "tiny");
    let Some(arch) = Architecture::parse(&arch_name) else {
        eprintln!("error: unknown --arch `{arch_name}` (sd15, sdxl, sd15_toy, sdxl_toy or tiny)");
        return ExitCode::from(2);
    };
    if args.iter().any(|a| a == "--memory") {
        return memory(arch, &value("--layout", "ldm"), &value("--dtype", "f16"));
    }
    let number = |flag: &str, default: &str| -> Option<usize> { value(flag, default).parse().ok() };
    let (Some(rank), Some(size), Some(steps), Some(warmup)) = (
        number("--rank", "16"),
        number(
            "--size",
            if arch == Architecture::Sd15 {
                "64"
            } else {
                "8"
            },
        ),
        number("--steps", "5"),
        number("--warmup", "1"),
    ) else {
        eprintln!("error: --rank, --size, --steps and --warmup take whole numbers");
        return ExitCode::from(2);
    };
    let batches: Vec<usize> = value("--batch", "1,4")
        .split(',')
        .filter_map(|b| b.trim().parse().ok())
        .collect();
    let device = value("--device", "cpu");
    for batch in batches {
        let spec = BenchSpec {
            arch,
            batch,
            rank,
            latent_size: size,
            warmup_steps: warmup,
            steps,
        };
        let result = match device.as_str() {
            "cpu" => {
                run_benchmark::<ategnatos::engine::CpuTrainBackend>(&spec, &Default::default())
            }
            #[cfg(feature = "bench-ndarray")]
            "ndarray" => run_benchmark::<burn::backend::Autodiff<burn::backend::NdArray<f32>>>(
                &spec,
                &Default::default(),
            ),
            #[cfg(feature = "cuda")]
            "cuda" => run_benchmark::<burn::backend::Autodiff<burn::backend::Cuda<f32>>>(
                &spec,
                &Default::default(),
            ),
            other => {
                eprintln!(
                    "error: device `{other}` is not in this build (cpu; cuda with --features cuda; ndarray with --features bench-ndarray)"
                );
                return ExitCode::from(2);
            }
        };
        println!("device={device} {}", result.summary());
    }
    ExitCode::SUCCESS
}

/// Writes a random checkpoint of `arch`, then loads it in a child process
/// (`ategnatos engine check --load`, which prints its own peak memory).
fn memory(arch: Architecture, layout: &str, dtype: &str) -> ExitCode {
    let Ok(dir) = tempfile_dir() else {
        eprintln!("error: could not create a temporary folder");
        return ExitCode::from(1);
    };
    let name = if layout == "diffusers" {
        "checkpoint".to_string()
    } else {
        "checkpoint.safetensors".to_string()
    };
    let path = dir.join(name);
    let Some(engine) = sibling("ategnatos") else {
        eprintln!(
            "error: the `ategnatos` binary is not beside this one; build it first (cargo build --release)"
        );
        return ExitCode::from(1);
    };
    let run = |args: &[&str]| -> bool {
        match Command::new(&engine).args(args).status() {
            Ok(status) => status.success(),
            Err(e) => {
                eprintln!("error: could not run {}: {e}", engine.display());
                false
            }
        }
    };
    let path_text = path.display().to_string();
    let ok = run(&[
        "engine",
        "init-checkpoint",
        &path_text,
        "--arch",
        arch.name(),
        "--layout",
        layout,
        "--dtype",
        dtype,
    ]) && run(&[
        "engine",
        "check",
        &path_text,
        "--arch",
        arch.name(),
        "--load",
    ]);
    let _ = std::fs::remove_dir_all(&dir);
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

fn tempfile_dir() -> std::io::Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("ategnatos-engine-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// A binary of this package beside the running one.
fn sibling(name: &str) -> Option<std::path::PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let path = exe.with_file_name(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    path.is_file().then_some(path)
}
