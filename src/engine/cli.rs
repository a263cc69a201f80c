//! The child-process entry point, `ategnatos engine train CONFIG
//! [--dry-run]`, and the progress lines it prints.
//!
//! The lines copy kohya's `train_network.py` output (tqdm's `steps:` bar
//! with `avr_loss`, the `running training` block, `epoch N/M`,
//! `saving checkpoint: PATH`, `model saved.`) so the monitor that reads
//! kohya's logs reads ours unchanged. They go to stdout, one per line; this
//! module is the only place in the engine that prints.

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use burn::backend::Autodiff;
use burn::backend::autodiff::checkpoint::strategy::BalancedCheckpointing;
use burn::tensor::backend::AutodiffBackend;

use super::config::{Architecture, DeviceKind, EngineConfig};
use super::data::PrepareEvent;
use super::init_checkpoint::write_random_checkpoint;
use super::model::{LoraModel, check_checkpoint};
use super::train::{TrainEvent, TrainOutcome, train};
use super::weights::{Checkpoint, Component, Layout};
use super::{CpuBackend, CpuTrainBackend, EngineError};
use crate::studio::Hint;

/// Exit codes of the engine process.
pub const EXIT_OK: i32 = 0;
pub const EXIT_FAILED: i32 = 1;
pub const EXIT_USAGE: i32 = 2;

const USAGE: &str = "usage: ategnatos engine train CONFIG [--dry-run]
       ategnatos engine check CHECKPOINT [--arch sd15|sd15_toy|tiny] [--load]
       ategnatos engine init-checkpoint OUT [--arch sd15|sd15_toy|tiny] [--layout ldm|diffusers] [--dtype f16|bf16|f32] [--seed N]";

/// `args` are what follows `ategnatos engine`: `train CONFIG [--dry-run]`,
/// `check CHECKPOINT [--arch A] [--load]` or `init-checkpoint OUT [--arch A]
/// [--layout L] [--dtype D] [--seed N]`. Errors go to stderr as `error: …`
/// and `hint: …`.
pub fn run_engine_cli(args: &[String]) -> i32 {
    let mut out = std::io::stdout();
    let result = match args {
        [cmd, config] if cmd == "train" => run_train(Path::new(config), false, &mut out).map(drop),
        [cmd, config, flag] | [cmd, flag, config] if cmd == "train" && flag == "--dry-run" => {
            run_train(Path::new(config), true, &mut out).map(drop)
        }
        [cmd, rest @ ..] if cmd == "check" || cmd == "init-checkpoint" => {
            let Some(options) = Options::parse(rest) else {
                eprintln!("{USAGE}");
                return EXIT_USAGE;
            };
            if cmd == "check" {
                run_check(&options, &mut out)
            } else {
                run_init_checkpoint(&options, &mut out)
            }
        }
        _ => {
            eprintln!("{USAGE}");
            return EXIT_USAGE;
        }
    };
    match result {
        Ok(()) => EXIT_OK,
        Err(e) => {
            eprintln!("error: {e}");
            if let Some(hint) = e.hint() {
                eprintln!("hint: {hint}");
            }
            EXIT_FAILED
        }
    }
}

/// The path and `--flag value` options of `check` and `init-checkpoint`.
struct Options {
    path: std::path::PathBuf,
    arch: Architecture,
    layout: Layout,
    dtype: String,
    seed: u64,
    load: bool,
}

impl Options {
    fn parse(args: &[String]) -> Option<Self> {
        let mut options = Options {
            path: std::path::PathBuf::new(),
            arch: Architecture::Sd15,
            layout: Layout::Ldm,
            dtype: "f16".into(),
            seed: 0,
            load: false,
        };
        let mut path = None;
        let mut it = args.iter();
        while let Some(arg) = it.next() {
            match arg.as_str() {
                "--load" => options.load = true,
                "--arch" => options.arch = Architecture::parse(it.next()?)?,
                "--layout" => {
                    options.layout = match it.next()?.as_str() {
                        "ldm" | "single-file" => Layout::Ldm,
                        "diffusers" => Layout::Diffusers,
                        _ => return None,
                    }
                }
                "--dtype" => options.dtype = it.next()?.clone(),
                "--seed" => options.seed = it.next()?.parse().ok()?,
                flag if flag.starts_with("--") => return None,
                other if path.is_none() => path = Some(other.into()),
                _ => return None,
            }
        }
        options.path = path?;
        Some(options)
    }
}

/// `engine check`: the header check of every component the file has, and
/// with `--load`, the UNet and text encoder loaded as training loads them,
/// with the process's peak memory.
fn run_check(options: &Options, out: &mut dyn Write) -> Result<(), EngineError> {
    let arch = options.arch;
    let components = super::model::model_components(arch);
    let checkpoint = Checkpoint::open(&options.path, &components)?;
    let checked = check_checkpoint(&checkpoint, arch, &components)?;
    line(
        out,
        &format!(
            "{}: fits the {} model ({} tensors checked by name and shape)",
            options.path.display(),
            arch.family_name(),
            checked.iter().map(|r| r.loaded).sum::<usize>()
        ),
    );
    if !options.load {
        return Ok(());
    }
    let before = super::bench::resident_bytes();
    let device = Default::default();
    let model = LoraModel::<CpuTrainBackend>::init(arch, &Default::default(), &device);
    let started = Instant::now();
    let (model, _) = model.load_base(&checkpoint, arch, &device, &mut |_, _| {})?;
    let model_bytes = super::bench::base_parameter_bytes(&model);
    line(
        out,
        &format!(
            "loaded in {:.1} s: {} of weights in f32; peak resident memory {} (before loading: {})",
            started.elapsed().as_secs_f64(),
            super::bench::megabytes(Some(model_bytes)),
            super::bench::megabytes(super::bench::peak_resident_bytes()),
            super::bench::megabytes(before),
        ),
    );
    Ok(())
}

/// `engine init-checkpoint`: a random checkpoint with real names and shapes.
fn run_init_checkpoint(options: &Options, out: &mut dyn Write) -> Result<(), EngineError> {
    let written = write_random_checkpoint(
        options.arch,
        options.layout,
        &options.dtype,
        &options.path,
        options.seed,
    )?;
    line(
        out,
        &format!(
            "wrote a random {} checkpoint to {}: {} tensors, {:.1} MB (random weights: for tests and benchmarks, not for pictures)",
            options.arch.name(),
            written.path.display(),
            written.tensors,
            written.bytes as f64 / 1e6
        ),
    );
    Ok(())
}

/// Loads the config, checkpoint and latent cache, then trains (or, with
/// `dry_run`, runs two real steps and writes nothing), printing progress
/// lines to `out`.
pub fn run_train(
    config_path: &Path,
    dry_run: bool,
    out: &mut dyn Write,
) -> Result<TrainOutcome, EngineError> {
    let mut config = EngineConfig::load(config_path)?;
    if dry_run {
        config.training.max_steps = Some(config.training.max_steps.unwrap_or(2).min(2));
    }
    let checkpointing = config.training.gradient_checkpointing;
    match config.training.device {
        DeviceKind::Cpu if checkpointing => run_on::<Autodiff<CpuBackend, BalancedCheckpointing>>(
            &config,
            &Default::default(),
            dry_run,
            out,
        ),
        DeviceKind::Cpu => run_on::<CpuTrainBackend>(&config, &Default::default(), dry_run, out),
        DeviceKind::Cuda => run_cuda(&config, dry_run, out),
    }
}

#[cfg(feature = "cuda")]
fn run_cuda(
    config: &EngineConfig,
    dry_run: bool,
    out: &mut dyn Write,
) -> Result<TrainOutcome, EngineError> {
    type Cuda = burn::backend::Cuda<f32>;
    let device = Default::default();
    if config.training.gradient_checkpointing {
        run_on::<Autodiff<Cuda, BalancedCheckpointing>>(config, &device, dry_run, out)
    } else {
        run_on::<Autodiff<Cuda>>(config, &device, dry_run, out)
    }
}

#[cfg(not(feature = "cuda"))]
fn run_cuda(_: &EngineConfig, _: bool, _: &mut dyn Write) -> Result<TrainOutcome, EngineError> {
    Err(EngineError::BackendUnavailable {
        backend: "cuda".into(),
    })
}

fn run_on<B: AutodiffBackend>(
    config: &EngineConfig,
    device: &B::Device,
    dry_run: bool,
    out: &mut dyn Write,
) -> Result<TrainOutcome, EngineError> {
    let arch = config.model.architecture;
    // Every name and shape first, from the headers: a checkpoint that does
    // not fit is refused before a picture is encoded or a weight read.
    let mut components = super::model::model_components(arch);
    if !config.data.folders.is_empty() {
        components.push(Component::Vae);
    }
    let checkpoint = Checkpoint::open(&config.model.checkpoint, &components)?;
    let checked = check_checkpoint(&checkpoint, arch, &components)?;
    line(
        out,
        &format!(
            "checkpoint: {} ({} layout): all {} tensors the {} model needs are there, in the right shapes",
            config.model.checkpoint.display(),
            match checkpoint.layout {
                Layout::Ldm => "single-file",
                Layout::Diffusers => "diffusers",
            },
            checked.iter().map(|r| r.loaded).sum::<usize>(),
            arch.family_name()
        ),
    );

    // The latents next: the VAE is dropped before the UNet is loaded.
    let started = Instant::now();
    let mut bar = Throttle::default();
    let prepared =
        super::data::prepare::<B>(config, &checkpoint, device, &mut |event| match event {
            PrepareEvent::Line(text) => line(out, &text),
            PrepareEvent::LoadingVae { done, total } => {
                if bar.due(done, total) {
                    line(
                        out,
                        &tqdm_line("loading vae", done, total, started.elapsed(), ""),
                    );
                }
            }
            PrepareEvent::Encoded { done, total, .. } => {
                if done == 0 {
                    bar = Throttle::default();
                }
                if done == 0 || bar.due(done, total) {
                    line(
                        out,
                        &tqdm_line("caching latents", done, total, started.elapsed(), ""),
                    );
                }
            }
        })?;

    let model = LoraModel::<B>::init(arch, &config.network, device);
    let started = Instant::now();
    let mut bar = Throttle::default();
    line(
        out,
        &tqdm_line(
            "loading model",
            0,
            checked_total(&checked),
            Duration::ZERO,
            "",
        ),
    );
    let precision = config.training.base_precision;
    let (model, reports) =
        model.load_base_in(&checkpoint, arch, precision, device, &mut |done, total| {
            if bar.due(done, total) {
                line(
                    out,
                    &tqdm_line("loading model", done, total, started.elapsed(), ""),
                );
            }
        })?;
    drop(checkpoint);
    for report in &reports {
        line(out, &format!("loaded {}", report.summary()));
    }
    let dataset = prepared.dataset;
    let mut on_event = |event: &TrainEvent| {
        if let Some(text) = format_event(event) {
            line(out, &text);
        }
    };
    let (_, outcome) = train(
        config,
        model,
        &dataset,
        prepared.tokenizer.as_ref(),
        device,
        !dry_run,
        &mut on_event,
    )?;
    line(
        out,
        if dry_run {
            "dry run finished, nothing saved."
        } else {
            "model saved."
        },
    );
    Ok(outcome)
}

/// UNet + text encoder tensors, the ones `load_base` reads.
fn checked_total(reports: &[super::weights::LoadReport]) -> usize {
    reports
        .iter()
        .filter(|r| r.component != Component::Vae.name())
        .map(|r| r.loaded)
        .sum()
}

/// When a progress bar prints: its first and last update, and in between
/// at most once a second, so a 1,000-tensor load is a dozen lines.
#[derive(Default)]
struct Throttle {
    last: Option<Instant>,
}

impl Throttle {
    fn due(&mut self, done: usize, total: usize) -> bool {
        let now = Instant::now();
        let due = done >= total
            || self
                .last
                .is_none_or(|t| now.duration_since(t) >= Duration::from_secs(1));
        if due {
            self.last = Some(now);
        }
        due
    }
}

fn line(out: &mut dyn Write, text: &str) {
    // a closed stdout must not kill a training run
    let _ = writeln!(out, "{text}");
    let _ = out.flush();
}

/// The kohya line(s) for an event.
pub fn format_event(event: &TrainEvent) -> Option<String> {
    match event {
        TrainEvent::Start {
            num_images,
            batches_per_epoch,
            epochs,
            total_steps,
            batch_size,
        } => Some(format!(
            "running training / 学習開始\n  num train images * repeats / 学習画像の数×繰り返し回数: {num_images}\n  num reg images / 正則化画像の数: 0\n  num batches per epoch / 1epochのバッチ数: {batches_per_epoch}\n  num epochs / epoch数: {epochs}\n  batch size per device / バッチサイズ: {batch_size}\n  total optimization steps / 学習ステップ数: {total_steps}\n{}",
            tqdm_line("steps", 0, *total_steps, Duration::ZERO, "")
        )),
        TrainEvent::Epoch { epoch, epochs } => Some(format!("\nepoch {epoch}/{epochs}")),
        TrainEvent::Step {
            step,
            total_steps,
            avr_loss,
            elapsed,
            ..
        } => Some(tqdm_line(
            "steps",
            *step,
            *total_steps,
            *elapsed,
            &format!("avr_loss={}", format_g3(*avr_loss)),
        )),
        TrainEvent::Saved { path } => Some(format!("saving checkpoint: {}", path.display())),
        TrainEvent::Note(text) => Some(text.clone()),
    }
}

/// tqdm's default bar: `desc: pct%|bar| n/total [elapsed<remaining, rate, postfix]`.
pub fn tqdm_line(desc: &str, n: usize, total: usize, elapsed: Duration, postfix: &str) -> String {
    let frac = if total == 0 {
        0.0
    } else {
        n as f64 / total as f64
    };
    let secs = elapsed.as_secs_f64();
    let rate = if secs > 0.0 { n as f64 / secs } else { 0.0 };
    let remaining = if rate > 0.0 {
        format_interval((total.saturating_sub(n)) as f64 / rate)
    } else {
        "?".into()
    };
    let rate_text = if rate == 0.0 {
        "?it/s".to_string()
    } else if rate >= 1.0 {
        format!("{rate:5.2}it/s")
    } else {
        format!("{:5.2}s/it", 1.0 / rate)
    };
    let postfix = if postfix.is_empty() {
        String::new()
    } else {
        format!(", {postfix}")
    };
    format!(
        "{desc}: {:3.0}%|{}| {n}/{total} [{}<{remaining}, {rate_text}{postfix}]",
        frac * 100.0,
        bar(frac, 10),
        format_interval(secs),
    )
}

fn bar(frac: f64, width: usize) -> String {
    const PARTS: [char; 8] = [' ', '▏', '▎', '▍', '▌', '▋', '▊', '▉'];
    let fill = frac.clamp(0.0, 1.0) * width as f64;
    let full = fill.floor() as usize;
    let mut s: String = "█".repeat(full);
    if full < width {
        s.push(PARTS[((fill - full as f64) * 8.0).floor() as usize % 8]);
        s.push_str(&" ".repeat(width - full - 1));
    }
    s
}

/// tqdm's `format_interval`: `MM:SS`, or `H:MM:SS` past an hour.
fn format_interval(secs: f64) -> String {
    let total = secs.max(0.0) as u64;
    let (h, m, s) = (total / 3600, (total / 60) % 60, total % 60);
    if h > 0 {
        format!("{h}:{m:02}:{s:02}")
    } else {
        format!("{m:02}:{s:02}")
    }
}

/// Python's `{:.3g}`, which tqdm uses for postfix numbers.
pub fn format_g3(x: f32) -> String {
    if x.is_nan() {
        return "nan".into();
    }
    if x.is_infinite() {
        return if x > 0.0 { "inf".into() } else { "-inf".into() };
    }
    if x == 0.0 {
        return "0".into();
    }
    let exp = x.abs().log10().floor() as i32;
    if !(-4..3).contains(&exp) {
        let s = format!("{:.2e}", x); // e.g. 1.50e-5
        let (mantissa, e) = s.split_once('e').unwrap_or((&s, "0"));
        let mantissa = mantissa.trim_end_matches('0').trim_end_matches('.');
        let e: i32 = e.parse().unwrap_or(0);
        let sign = if e < 0 { '-' } else { '+' };
        return format!("{mantissa}e{sign}{:02}", e.abs());
    }
    let decimals = (2 - exp).max(0) as usize;
    let s = format!("{x:.decimals$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_lines_match_kohyas_tqdm_shape() {
        let text = tqdm_line("steps", 92, 920, Duration::from_secs(83), "avr_loss=0.123");
        assert_eq!(
            text,
            "steps:  10%|█         | 92/920 [01:23<12:27,  1.11it/s, avr_loss=0.123]"
        );
    }

    #[test]
    fn postfix_numbers_use_three_significant_digits() {
        assert_eq!(format_g3(0.12345), "0.123");
        assert_eq!(format_g3(0.012345), "0.0123");
        assert_eq!(format_g3(1.5e-5), "1.5e-05");
        assert_eq!(format_g3(12.0), "12");
        assert_eq!(format_g3(f32::NAN), "nan");
    }
}
