//! `ategnatos bench audit`: the audit's speed and memory against simply
//! decoding every file once with the `image` crate, in the same run.
//! `ategnatos bench duplicates`: the duplicate search's precision, recall,
//! speed and memory on a labelled set, with imagededup in the same run.

// `bench audit` generates its pictures into a folder of its own; nothing of
// the person's is written here.
#![allow(clippy::disallowed_methods)]

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use ategnatos::bench::duplicates as dedup_bench;
use ategnatos::dataset::{self, AuditOptions};
use ategnatos::studio::NoProgress;
use rayon::prelude::*;
use thumbs::synth;

use super::CliError;

#[derive(clap::Args)]
pub struct BenchCmd {
    #[command(subcommand)]
    which: Which,
}

#[derive(clap::Subcommand)]
enum Which {
    /// What watching a trainer costs: CPU share of one core at a progress-line rate, vs only reading the lines.
    Monitor {
        /// Progress lines a second the fake trainer prints.
        #[arg(long, default_value_t = 10_000)]
        rate: u64,
        /// Seconds to run at that rate.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// Lines for the as-fast-as-it-goes pass.
        #[arg(long, default_value_t = 1_000_000)]
        flat_out: u64,
    },
    /// Print kohya progress lines (the monitor benchmark's fake trainer).
    #[command(hide = true)]
    Emit {
        #[arg(long)]
        lines: u64,
        #[arg(long, default_value_t = 0)]
        rate: u64,
    },
    /// Audit throughput vs plain decoding, CPU use and peak memory.
    Audit {
        /// Number of pictures to generate (mixed 768–1536 px, JPEG and PNG).
        #[arg(long, default_value_t = 2000)]
        images: usize,
        /// Where to generate them (reused when it already holds the same set).
        #[arg(long, default_value = "bench-data")]
        dir: PathBuf,
    },
    /// Duplicate search: precision/recall per kind of copy, speed, memory,
    /// pair-search time at 100k/1M hashes, and imagededup on the same set.
    Duplicates {
        /// Distinct base pictures to generate.
        #[arg(long, default_value_t = 2000)]
        base: usize,
        /// How many of them get one copy of each kind (resize 50 %, JPEG q60, 8 % crop, +15 % brightness, mirror).
        #[arg(long, default_value_t = 200)]
        with_variants: usize,
        /// Families of 5 same-background pictures that must not be grouped.
        #[arg(long, default_value_t = 20)]
        hard_negatives: usize,
        /// Side of the base pictures in pixels.
        #[arg(long, default_value_t = 512)]
        size: u32,
        /// Hash counts for the pair-search timing.
        #[arg(long, value_delimiter = ',', default_value = "100000,1000000")]
        search_sizes: Vec<usize>,
        /// Time the brute force only up to this many hashes.
        #[arg(long, default_value_t = 1_000_000)]
        brute_force_up_to: usize,
        /// Python with imagededup installed (research/dedup.md says how); leave out to skip it.
        #[arg(long)]
        python: Option<PathBuf>,
        /// research/dedup-scripts/bench_python.py
        #[arg(
            long,
            default_value = "../shared/research/dedup-scripts/bench_python.py"
        )]
        script: PathBuf,
        /// Where to generate the set (reused when it already holds the same set).
        #[arg(long, default_value = "bench-data")]
        dir: PathBuf,
        /// Print the figures as JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// Only time the pair search (no pictures generated).
        #[arg(long)]
        search_only: bool,
        /// How the searches and the scored hashes decode JPEGs: from the
        /// 8×8 block means (`dc`, the default), grey only, or in full colour.
        #[arg(long, value_enum, default_value_t = JpegMode::Dc)]
        jpeg: JpegMode,
    },
}

/// `--jpeg` values.
#[derive(Clone, Copy, clap::ValueEnum)]
enum JpegMode {
    Dc,
    Grey,
    Full,
}

impl JpegMode {
    fn decode(self) -> ategnatos::likeness::phash::JpegDecode {
        use ategnatos::likeness::phash::JpegDecode;
        match self {
            JpegMode::Dc => JpegDecode::DcOnly,
            JpegMode::Grey => JpegDecode::GreyOnly,
            JpegMode::Full => JpegDecode::Full,
        }
    }
}

fn bench_monitor(rate: u64, seconds: u64, flat_out: u64) -> Result<ExitCode, CliError> {
    use ategnatos::bench::monitor::{monitored, read_only};
    let exe = std::env::current_exe().map_err(|e| CliError::new(e.to_string(), None))?;
    let dir = tempfile_dir()?;
    let paced = rate.max(1) * seconds.max(1);
    let io = |e: std::io::Error| CliError::new(e.to_string(), None);
    let passes = [
        read_only(&exe, paced, rate).map_err(io)?,
        monitored(&exe, paced, rate, &dir).map_err(io)?,
        read_only(&exe, flat_out, 0).map_err(io)?,
        monitored(&exe, flat_out, 0, &dir).map_err(io)?,
    ];
    let _ = std::fs::remove_dir_all(&dir);
    out!(
        "| pass | lines | rate asked | wall s | CPU s | share of one core | lines/s |\n|---|---|---|---|---|---|---|\n"
    );
    for (i, p) in passes.iter().enumerate() {
        let asked = if i < 2 {
            format!("{rate}/s")
        } else {
            "flat out".into()
        };
        out!(
            "| {} | {} | {asked} | {:.2} | {:.3} | {:.1} % | {:.0} |\n",
            p.what,
            p.lines,
            p.wall_s,
            p.cpu_s,
            p.core_share * 100.0,
            p.lines_per_s
        );
    }
    let monitor_cost = passes[1].cpu_s / passes[0].cpu_s.max(1e-9);
    out!(
        "\nAt {rate} lines/s the monitor uses {:.1} % of one core ({:.1}x the CPU of only reading the lines); flat out it keeps up with {:.0} lines/s.\n",
        passes[1].core_share * 100.0,
        monitor_cost,
        passes[3].lines_per_s
    );
    Ok(ExitCode::SUCCESS)
}

/// A scratch folder for the benchmark's log.
fn tempfile_dir() -> Result<PathBuf, CliError> {
    let dir = std::env::temp_dir().join(format!("ategnatos-bench-monitor-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| CliError::new(e.to_string(), None))?;
    Ok(dir)
}

pub fn run(cmd: BenchCmd) -> Result<ExitCode, CliError> {
    match cmd.which {
        Which::Monitor {
            rate,
            seconds,
            flat_out,
        } => bench_monitor(rate, seconds, flat_out),
        Which::Emit { lines, rate } => {
            ategnatos::bench::monitor::emit(lines, rate);
            Ok(ExitCode::SUCCESS)
        }
        Which::Audit { images, dir } => bench_audit(images, &dir),
        Which::Duplicates {
            base,
            with_variants,
            hard_negatives,
            size,
            search_sizes,
            brute_force_up_to,
            python,
            script,
            dir,
            json,
            search_only,
            jpeg,
        } => {
            if search_only {
                let timings =
                    dedup_bench::search_timings(&search_sizes, brute_force_up_to, &mut |line| {
                        eprintln!("{line}")
                    });
                out!("{}", dedup_bench::search_table(&timings));
                return Ok(ExitCode::SUCCESS);
            }
            let options = dedup_bench::BenchOptions {
                dir,
                set: dedup_bench::SetSpec {
                    base,
                    with_variants: with_variants.min(base),
                    hard_negative_families: hard_negatives,
                    size: size.clamp(64, 4096),
                    captions: false,
                    seed: 1234,
                },
                search_sizes,
                brute_force_up_to,
                python,
                python_script: Some(script),
                jpeg: jpeg.decode(),
                kinds: dedup_bench::VariantKind::ALL.to_vec(),
            };
            let report = dedup_bench::run_bench(&options, &mut |line| eprintln!("{line}"))
                .map_err(|e| CliError::new(e, None))?;
            if json {
                outln!(
                    "{}",
                    serde_json::to_string_pretty(&report).map_err(|e| CliError::new(e, None))?
                );
            } else {
                out!("{}", report.to_text());
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Generates `n` pictures (with captions) into `dir/audit-n`, unless done before.
fn generate(n: usize, dir: &Path) -> Result<PathBuf, CliError> {
    let set = dir.join(format!("audit-{n}"));
    let marker = set.join(".complete");
    if marker.exists() {
        return Ok(set);
    }
    std::fs::create_dir_all(&set)
        .map_err(|e| CliError::new(format!("cannot create `{}`: {e}", set.display()), None))?;
    eprintln!("generating {n} pictures in {} …", set.display());
    (0..n).into_par_iter().try_for_each(|i| {
        let mut rng = synth::Rng::new(i as u64);
        let w = 768 + rng.below(769);
        let h = 768 + rng.below(769);
        let pic = image::DynamicImage::ImageRgb8(synth::smooth_picture(i as u64, w, h));
        let (format, ext) = if i % 2 == 0 {
            (image::ImageFormat::Jpeg, "jpg")
        } else {
            (image::ImageFormat::Png, "png")
        };
        let bytes = synth::encode(&pic, format).map_err(|e| CliError::new(e, None))?;
        std::fs::write(set.join(format!("{i:05}.{ext}")), bytes)
            .map_err(|e| CliError::new(e, None))?;
        std::fs::write(
            set.join(format!("{i:05}.txt")),
            format!("zkbench, picture {i}, soft gradients"),
        )
        .map_err(|e| CliError::new(e, None))
    })?;
    std::fs::write(&marker, b"").map_err(|e| CliError::new(e, None))?;
    Ok(set)
}

/// CPU seconds (user + system) this process has used.
fn cpu_seconds() -> f64 {
    dedup_bench::stat_cpu_seconds("/proc/self/stat")
}

/// Peak resident memory in MB since the last reset.
fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// Resets the kernel's peak-RSS counter (Linux 4.0+), so each phase is measured alone.
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", b"5");
}

struct Phase {
    name: &'static str,
    seconds: f64,
    cpu: f64,
    peak_mb: f64,
}

fn measure(
    name: &'static str,
    f: impl FnOnce() -> Result<(), CliError>,
) -> Result<Phase, CliError> {
    reset_peak_rss();
    let cpu0 = cpu_seconds();
    let t0 = Instant::now();
    f()?;
    Ok(Phase {
        name,
        seconds: t0.elapsed().as_secs_f64(),
        cpu: cpu_seconds() - cpu0,
        peak_mb: peak_rss_mb(),
    })
}

fn bench_audit(n: usize, dir: &Path) -> Result<ExitCode, CliError> {
    let set = generate(n, dir)?;
    let root = set.canonicalize().map_err(|e| CliError::new(e, None))?;
    let mut files: Vec<PathBuf> = std::fs::read_dir(&root)
        .map_err(|e| CliError::new(e, None))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "jpg" || e == "png"))
        .collect();
    files.sort();
    let decode_one = |p: &PathBuf| {
        image::open(p)
            .map(drop)
            .map_err(|e| CliError::new(format!("{}: {e}", p.display()), None))
    };
    // Warm the page cache so every phase reads from memory.
    let _ = measure("warm-up", || {
        files.par_iter().try_for_each(|p| {
            std::fs::read(p)
                .map(drop)
                .map_err(|e| CliError::new(e, None))
        })
    })?;
    let threads = rayon::current_num_threads();
    let seq = measure("decode, 1 thread", || files.iter().try_for_each(decode_one))?;
    let par = measure("decode, all threads", || {
        files.par_iter().try_for_each(decode_one)
    })?;
    let options = AuditOptions {
        trigger_word: Some("zkbench".into()),
        ..AuditOptions::default()
    };
    let mut blocking = 0;
    let audit = measure("audit", || {
        let r = dataset::audit_dataset(&root, "bench", &root, &options, &NoProgress)
            .map_err(|e| CliError::new(e, None))?;
        blocking = r.summary.blocking;
        Ok(())
    })?;
    outln!(
        "ategnatos bench audit: {} pictures (768–1536 px, half JPEG, half PNG), {threads} threads",
        files.len()
    );
    outln!(
        "{:<22} {:>9} {:>10} {:>10} {:>10}",
        "phase",
        "seconds",
        "images/s",
        "cores used",
        "peak MB"
    );
    for p in [&seq, &par, &audit] {
        outln!(
            "{:<22} {:>9.2} {:>10.1} {:>10.2} {:>10.0}",
            p.name,
            p.seconds,
            files.len() as f64 / p.seconds,
            p.cpu / p.seconds,
            p.peak_mb
        );
    }
    outln!(
        "audit / parallel decode: {:.2}x the time (target ≤ 1.30x)",
        audit.seconds / par.seconds
    );
    outln!(
        "audit / 1-thread decode: {:.2}x the time",
        audit.seconds / seq.seconds
    );
    if blocking > 0 {
        outln!("note: the generated set produced {blocking} blocking problems (unexpected)");
    }
    Ok(ExitCode::SUCCESS)
}
