//! The native LoRA engine's benchmarks.
//!
//! Seconds per training step on random weights:
//! `ategnatos-engine-bench --arch sd15 --batch 1,4 --rank 16 --size 64 --device cuda`
//! times the full-size SD1.5 UNet (+ CLIP) at 512 px; `--device cpu` on the
//! CPU (`--device ndarray` too, in a build with `--features bench-ndarray`:
//! burn's other CPU backend, for comparison). `scripts/engine_cpu_backends.py`
//! runs them side by side with diffusers + peft.
//!
//! Lower precision and checkpointing, each variant in a process of its own
//! (peak resident memory is per process):
//! `ategnatos-engine-bench --arch sd15 --size 32 --batch 1 --rank 4 --compare`
//! runs f32, bf16 base weights, gradient checkpointing, and both, round-robin,
//! and prints seconds per step and the peak beside the f32 run's. One
//! variant alone: `--base bf16` (`f32`, `bf16`, `f16`) and `--checkpointing`;
//! `--base bf16 --plain-cast` multiplies by a cast copy with burn's own ops
//! instead (what the graph would keep without the engine's own product).
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
use ategnatos::engine::precision::BasePrecision;
use burn::backend::Autodiff;
use burn::backend::autodiff::checkpoint::strategy::BalancedCheckpointing;

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
    if args.iter().any(|a| a == "--compare") {
        return compare(&args, &value("--rounds", "1"));
    }
    let base_name = value("--base", "f32");
    let base_precision = match base_name.as_str() {
        "f32" => BasePrecision::F32,
        "bf16" => BasePrecision::Bf16,
        "f16" => BasePrecision::F16,
        _ => {
            eprintln!("error: unknown --base `{base_name}` (f32, bf16 or f16)");
            return ExitCode::from(2);
        }
    };
    let checkpointing = args.iter().any(|a| a == "--checkpointing");
    // what a plain `weight.cast(F32)` in the forward pass would keep
    ategnatos::engine::precision::use_plain_cast_for_benchmark(
        args.iter().any(|a| a == "--plain-cast"),
    );
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
            base_precision,
            checkpointing,
        };
        let result = match device.as_str() {
            "cpu" if checkpointing => run_benchmark::<
                Autodiff<ategnatos::engine::CpuBackend, BalancedCheckpointing>,
            >(&spec, &Default::default()),
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

/// Runs this benchmark once per variant (f32; bf16 base weights;
/// checkpointing; both), each in a child process, `rounds` times
/// round-robin, and prints each run's line and a table against f32.
fn compare(args: &[String], rounds: &str) -> ExitCode {
    let Ok(me) = std::env::current_exe() else {
        eprintln!("error: cannot find this benchmark's own executable");
        return ExitCode::from(1);
    };
    let Ok(rounds) = rounds.parse::<usize>() else {
        eprintln!("error: --rounds takes a whole number");
        return ExitCode::from(2);
    };
    // everything but --compare and --rounds N passes through
    let mut passed = Vec::new();
    let mut skip = false;
    for a in args {
        if skip {
            skip = false;
            continue;
        }
        match a.as_str() {
            "--compare" => {}
            "--rounds" | "--base" => skip = true,
            "--checkpointing" => {}
            _ => passed.push(a.clone()),
        }
    }
    let variants: [(&str, &[&str]); 4] = [
        ("f32", &["--base", "f32"]),
        ("bf16 base", &["--base", "bf16"]),
        ("checkpointing", &["--base", "f32", "--checkpointing"]),
        (
            "bf16 + checkpointing",
            &["--base", "bf16", "--checkpointing"],
        ),
    ];
    let mut figures: Vec<Vec<(f64, f64)>> = vec![Vec::new(); variants.len()];
    for round in 0..rounds.max(1) {
        for (i, (name, extra)) in variants.iter().enumerate() {
            let output = Command::new(&me).args(&passed).args(*extra).output();
            let output = match output {
                Ok(o) if o.status.success() => o,
                Ok(o) => {
                    eprintln!(
                        "error: the {name} run failed: {}",
                        String::from_utf8_lossy(&o.stderr)
                    );
                    return ExitCode::from(1);
                }
                Err(e) => {
                    eprintln!("error: could not run {}: {e}", me.display());
                    return ExitCode::from(1);
                }
            };
            let text = String::from_utf8_lossy(&output.stdout);
            for line in text.lines() {
                println!("round {} {name}: {line}", round + 1);
                let field = |key: &str| {
                    line.split_whitespace()
                        .find_map(|kv| kv.strip_prefix(key))
                        .and_then(|v| v.parse::<f64>().ok())
                };
                // `mean=1.2345 s/step` and `peak_rss=1234.5 MB`
                if let (Some(secs), Some(mb)) = (field("mean="), field("peak_rss=")) {
                    figures[i].push((secs, mb));
                }
            }
        }
    }
    let mean = |v: &[(f64, f64)], pick: fn(&(f64, f64)) -> f64| {
        v.iter().map(pick).sum::<f64>() / v.len().max(1) as f64
    };
    let (base_secs, base_mb) = (mean(&figures[0], |f| f.0), mean(&figures[0], |f| f.1));
    println!("| variant | s/step | peak RSS | peak against f32 |");
    println!("|---|---|---|---|");
    for ((name, _), runs) in variants.iter().zip(&figures) {
        let (secs, mb) = (mean(runs, |f| f.0), mean(runs, |f| f.1));
        println!(
            "| {name} | {secs:.3} ({:.2}×) | {mb:.0} MB | {:.2}× |",
            secs / base_secs,
            mb / base_mb
        );
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
