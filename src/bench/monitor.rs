//! `ategnatos bench monitor`: what watching a trainer costs. A child (this
//! program again, as `bench emit`) prints kohya's tqdm progress lines —
//! `\r` redraws on stderr, a loss in each — at a set rate; the monitor that
//! watches every training run reads, logs and parses them. The figure is the
//! CPU time of this process (every thread: the stream readers, the parser,
//! the log writer) over the wall time, as a share of one core, beside a
//! baseline that only reads the same streams and throws the lines away.

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::plan::training::Backend;
use crate::run::monitor::{WatchLimits, watch};
use crate::run::process::{Event, Next, Supervised};
use crate::studio::NoProgress;

/// Prints `lines` kohya progress lines to stderr at `rate` a second (as
/// fast as it can when `rate` is 0).
pub fn emit(lines: u64, rate: u64) {
    let err = std::io::stderr();
    let mut out = std::io::BufWriter::with_capacity(1 << 16, err.lock());
    let start = Instant::now();
    let total = lines.max(1);
    for i in 1..=lines {
        let pct = i * 100 / total;
        let loss = 0.1 * (1.0 + (i as f64 * 0.37).sin() * 0.1) / (1.0 + i as f64 / 5000.0);
        let _ = write!(
            out,
            "\rsteps: {pct:3}%|{:<10}| {i}/{total} [00:{:02}<00:00, 99.50it/s, avr_loss={loss:.4}]",
            "#".repeat((pct / 10) as usize),
            start.elapsed().as_secs() % 60
        );
        if rate > 0 && i % 100 == 0 {
            let _ = out.flush();
            let due = Duration::from_secs_f64(i as f64 / rate as f64);
            let now = start.elapsed();
            if due > now {
                // Pacing the output to the rate asked, not a synchronisation.
                std::thread::sleep(due - now);
            }
        }
    }
    let _ = writeln!(out);
    let _ = out.flush();
}

/// CPU time of this process so far (user + system, every thread).
pub fn cpu_time() -> Duration {
    #[cfg(unix)]
    {
        // SAFETY: getrusage fills the struct it is given; zeroed is a valid
        // starting value for it.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: RUSAGE_SELF with a valid pointer.
        if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } != 0 {
            return Duration::ZERO;
        }
        let tv = |t: libc::timeval| {
            Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
        };
        tv(usage.ru_utime) + tv(usage.ru_stime)
    }
    #[cfg(not(unix))]
    {
        Duration::ZERO
    }
}

/// One measured pass.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Pass {
    pub what: &'static str,
    pub lines: u64,
    pub wall_s: f64,
    pub cpu_s: f64,
    /// CPU time over wall time: 0.05 is 5 % of one core.
    pub core_share: f64,
    pub lines_per_s: f64,
}

fn emitter(exe: &Path, lines: u64, rate: u64) -> std::process::Command {
    let mut cmd = std::process::Command::new(exe);
    cmd.args([
        "bench",
        "emit",
        "--lines",
        &lines.to_string(),
        "--rate",
        &rate.to_string(),
    ]);
    cmd
}

fn pass(what: &'static str, lines: u64, wall: Duration, cpu: Duration) -> Pass {
    let wall_s = wall.as_secs_f64().max(1e-9);
    Pass {
        what,
        lines,
        wall_s,
        cpu_s: cpu.as_secs_f64(),
        core_share: cpu.as_secs_f64() / wall_s,
        lines_per_s: lines as f64 / wall_s,
    }
}

/// The monitor on `lines` lines at `rate`, logging to `log_dir`.
pub fn monitored(exe: &Path, lines: u64, rate: u64, log_dir: &Path) -> std::io::Result<Pass> {
    let child = Supervised::spawn(&mut emitter(exe, lines, rate)).map_err(std::io::Error::other)?;
    let mut log = crate::run::monitor::open_log(&log_dir.join("monitor-bench.log"))?;
    let limits = WatchLimits {
        stall: Duration::from_secs(60),
        limit: Duration::from_secs(3600),
        grace: Duration::from_secs(5),
        steps_wanted: lines,
    };
    let (t0, c0) = (Instant::now(), cpu_time());
    let w = watch(child, Backend::Kohya, &mut log, &limits, &NoProgress);
    let (wall, cpu) = (t0.elapsed(), cpu_time().saturating_sub(c0));
    if w.points.len() as u64 != lines {
        return Err(std::io::Error::other(format!(
            "the monitor saw {} of {lines} steps",
            w.points.len()
        )));
    }
    Ok(pass("monitor (parse, log, watch)", lines, wall, cpu))
}

/// Only reading the same streams, lines thrown away.
pub fn read_only(exe: &Path, lines: u64, rate: u64) -> std::io::Result<Pass> {
    let mut child =
        Supervised::spawn(&mut emitter(exe, lines, rate)).map_err(std::io::Error::other)?;
    let (t0, c0) = (Instant::now(), cpu_time());
    let mut seen = 0u64;
    loop {
        match child.next(Duration::from_secs(60)) {
            Next::Event(Event::Line { .. }) => seen += 1,
            Next::Event(_) => {}
            Next::Timeout | Next::Done => break,
        }
    }
    let (wall, cpu) = (t0.elapsed(), cpu_time().saturating_sub(c0));
    Ok(pass("baseline (read lines only)", seen, wall, cpu))
}
