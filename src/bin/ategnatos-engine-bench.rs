//! Seconds per training step of the native LoRA engine on random weights.
//!
//! `ategnatos-engine-bench --arch sd15 --batch 1,4 --rank 16 --size 64 --device cuda`
//! times the full-size SD1.5 UNet (+ CLIP) at 512 px; `--arch tiny --device cpu`
//! gives the CPU figures the README records.

use std::process::ExitCode;

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
    let arch = match value("--arch", "tiny").as_str() {
        "sd15" => Architecture::Sd15,
        "tiny" => Architecture::Tiny,
        other => {
            eprintln!("error: unknown --arch `{other}` (sd15 or tiny)");
            return ExitCode::from(2);
        }
    };
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
            #[cfg(feature = "cuda")]
            "cuda" => run_benchmark::<burn::backend::Autodiff<burn::backend::Cuda<f32>>>(
                &spec,
                &Default::default(),
            ),
            other => {
                eprintln!(
                    "error: device `{other}` is not in this build (cpu, or cuda with --features cuda)"
                );
                return ExitCode::from(2);
            }
        };
        println!("device={device} {}", result.summary());
    }
    ExitCode::SUCCESS
}
