//! Child processes that cannot hang the server: each runs in its own process
//! group, its two output streams are read on their own threads and split on
//! `\r` as well as `\n` (tqdm redraws a bar with `\r`), and it is stopped as a
//! group — SIGTERM, a grace period, then SIGKILL — so a trainer's own
//! children (accelerate's workers, data loaders) go with it.
//!
//! [`Supervised`] hands out [`Event`]s with a timeout, so a caller waits on
//! output, exit, or a deadline, never on a sleep. [`run_captured`] is the
//! short form for a probe: run to the end or to a time limit.

use std::io::Read;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

/// Which output stream a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Stream {
    Stdout,
    Stderr,
}

/// How a process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
pub struct ExitInfo {
    /// The exit code, when it exited by itself.
    pub code: Option<i32>,
    /// The signal that ended it (unix).
    pub signal: Option<i32>,
}

impl ExitInfo {
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }

    /// `exit code 1`, `killed by signal 9 (SIGKILL)`.
    pub fn describe(&self) -> String {
        match (self.code, self.signal) {
            (Some(c), _) => format!("exit code {c}"),
            (None, Some(s)) => format!("killed by signal {s} ({})", signal_name(s)),
            (None, None) => "an unknown way".into(),
        }
    }

    fn from_status(status: std::process::ExitStatus) -> ExitInfo {
        #[cfg(unix)]
        let signal = std::os::unix::process::ExitStatusExt::signal(&status);
        #[cfg(not(unix))]
        let signal = None;
        ExitInfo {
            code: status.code(),
            signal,
        }
    }
}

/// The usual name of a signal number.
pub fn signal_name(signal: i32) -> &'static str {
    match signal {
        1 => "SIGHUP",
        2 => "SIGINT",
        4 => "SIGILL",
        6 => "SIGABRT",
        7 => "SIGBUS",
        8 => "SIGFPE",
        9 => "SIGKILL",
        11 => "SIGSEGV",
        13 => "SIGPIPE",
        15 => "SIGTERM",
        _ => "signal",
    }
}

/// What a supervised process did.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// One line (or one tqdm redraw), without its terminator and ANSI codes.
    Line { stream: Stream, text: String },
    /// Output arrived that did not finish a line yet (a bar being drawn).
    Activity,
    /// The process itself ended (its children may still run).
    Exited(ExitInfo),
}

/// What waiting for the next event gave.
#[derive(Debug, Clone, PartialEq)]
pub enum Next {
    Event(Event),
    /// Nothing happened within the time asked.
    Timeout,
    /// The process has ended and both streams are closed.
    Done,
}

/// A running child process in its own process group.
pub struct Supervised {
    pid: u32,
    events: Receiver<Event>,
    exited: Option<ExitInfo>,
}

/// Why a process could not be run to its end.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    #[error("could not start `{program}`: {source}")]
    Spawn {
        program: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("`{program}` did not finish within {seconds} s and was stopped")]
    TimedOut {
        program: PathBuf,
        seconds: u64,
        /// What it printed before it was stopped.
        output: String,
    },
}

impl Supervised {
    /// Starts `cmd` with no stdin, both outputs piped, in a new process group.
    pub fn spawn(cmd: &mut Command) -> Result<Supervised, ProcessError> {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        #[cfg(unix)]
        std::os::unix::process::CommandExt::process_group(cmd, 0);
        let mut child = cmd.spawn().map_err(|source| ProcessError::Spawn {
            program: PathBuf::from(cmd.get_program()),
            source,
        })?;
        let pid = child.id();
        let (tx, rx) = mpsc::channel();
        if let Some(out) = child.stdout.take() {
            read_lines(out, Stream::Stdout, tx.clone());
        }
        if let Some(err) = child.stderr.take() {
            read_lines(err, Stream::Stderr, tx.clone());
        }
        wait_for_exit(child, tx);
        Ok(Supervised {
            pid,
            events: rx,
            exited: None,
        })
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// How it ended, once it has.
    pub fn exit(&self) -> Option<ExitInfo> {
        self.exited
    }

    /// The next event, waiting at most `timeout`.
    pub fn next(&mut self, timeout: Duration) -> Next {
        match self.events.recv_timeout(timeout) {
            Ok(event) => {
                if let Event::Exited(info) = event {
                    self.exited = Some(info);
                    // Whatever it left running (a data loader, a worker)
                    // would hold the streams open: the group goes too.
                    self.signal_group(Signal::Kill);
                }
                Next::Event(event)
            }
            Err(RecvTimeoutError::Timeout) => Next::Timeout,
            Err(RecvTimeoutError::Disconnected) => Next::Done,
        }
    }

    /// Sends `signal` to the whole group; a group that is gone is fine.
    pub fn signal_group(&self, signal: Signal) {
        signal_group(self.pid, signal);
    }

    /// Stops the group: SIGTERM, then SIGKILL after `grace` if it is still
    /// there. Returns the events that arrived meanwhile (its last words).
    pub fn terminate(&mut self, grace: Duration) -> Vec<Event> {
        let mut seen = Vec::new();
        if self.exited.is_none() {
            self.signal_group(Signal::Term);
            let deadline = Instant::now() + grace;
            while self.exited.is_none() {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                match self.next(left) {
                    Next::Event(e) => seen.push(e),
                    Next::Timeout => break,
                    Next::Done => return seen,
                }
            }
        }
        self.signal_group(Signal::Kill);
        seen.extend(self.drain(Duration::from_secs(5)));
        seen
    }

    /// Every remaining event, until the streams close or `limit` passes.
    pub fn drain(&mut self, limit: Duration) -> Vec<Event> {
        let deadline = Instant::now() + limit;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.next(left) {
                Next::Event(e) => seen.push(e),
                Next::Timeout | Next::Done => return seen,
            }
        }
    }
}

impl Drop for Supervised {
    fn drop(&mut self) {
        // Never leave a trainer running behind a dropped handle.
        if self.exited.is_none() {
            self.signal_group(Signal::Kill);
        }
    }
}

/// Sends `signal` to the process group `pgid` (a trainer started by
/// [`Supervised::spawn`] leads its own); a group that is gone is fine.
pub fn signal_group(pgid: u32, signal: Signal) {
    #[cfg(unix)]
    {
        let sig = match signal {
            Signal::Term => libc::SIGTERM,
            Signal::Kill => libc::SIGKILL,
        };
        let Ok(pgid) = i32::try_from(pgid) else {
            return;
        };
        if pgid <= 1 {
            return;
        }
        // SAFETY: kill(2) with a negative pid signals that process group;
        // it has no memory effects, and ESRCH (already gone) is ignored.
        unsafe {
            libc::kill(-pgid, sig);
        }
    }
    #[cfg(not(unix))]
    {
        let _ = signal;
        let _ = Command::new("taskkill")
            .args(["/T", "/F", "/PID", &pgid.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// The two signals a supervisor sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    Term,
    Kill,
}

fn wait_for_exit(mut child: Child, tx: Sender<Event>) {
    std::thread::spawn(move || {
        let info = match child.wait() {
            Ok(status) => ExitInfo::from_status(status),
            Err(_) => ExitInfo {
                code: None,
                signal: None,
            },
        };
        let _ = tx.send(Event::Exited(info));
    });
}

fn read_lines<R: Read + Send + 'static>(mut reader: R, stream: Stream, tx: Sender<Event>) {
    std::thread::spawn(move || {
        let mut pending: Vec<u8> = Vec::new();
        let mut chunk = [0u8; 8192];
        loop {
            let n = match reader.read(&mut chunk) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let mut finished_one = false;
            for &b in &chunk[..n] {
                if b == b'\n' || b == b'\r' {
                    if !pending.is_empty() {
                        let text = clean_line(&pending);
                        pending.clear();
                        finished_one = true;
                        if tx.send(Event::Line { stream, text }).is_err() {
                            return;
                        }
                    }
                } else {
                    pending.push(b);
                }
            }
            if !finished_one && tx.send(Event::Activity).is_err() {
                return;
            }
        }
        if !pending.is_empty() {
            let _ = tx.send(Event::Line {
                stream,
                text: clean_line(&pending),
            });
        }
    });
}

/// A line as text: invalid UTF-8 replaced, ANSI escape sequences removed.
pub fn clean_line(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // CSI: ESC [ parameters final-byte; other escapes: ESC + one char.
            if chars.peek() == Some(&'[') {
                chars.next();
                for c in chars.by_ref() {
                    if ('@'..='~').contains(&c) {
                        break;
                    }
                }
            } else {
                chars.next();
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// What a finished short process printed.
#[derive(Debug, Clone)]
pub struct Captured {
    pub exit: ExitInfo,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `cmd` to its end, or stops it (and its group) after `limit`.
pub fn run_captured(cmd: &mut Command, limit: Duration) -> Result<Captured, ProcessError> {
    let program = PathBuf::from(cmd.get_program());
    let mut child = Supervised::spawn(cmd)?;
    let deadline = Instant::now() + limit;
    let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
    let keep = |event: Event, stdout: &mut Vec<String>, stderr: &mut Vec<String>| {
        if let Event::Line { stream, text } = event {
            match stream {
                Stream::Stdout => stdout.push(text),
                Stream::Stderr => stderr.push(text),
            }
        }
    };
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match child.next(left) {
            Next::Event(e) => keep(e, &mut stdout, &mut stderr),
            Next::Done => break,
            Next::Timeout => {
                for e in child.terminate(Duration::from_secs(2)) {
                    keep(e, &mut stdout, &mut stderr);
                }
                let mut output = stdout;
                output.extend(stderr);
                return Err(ProcessError::TimedOut {
                    program,
                    seconds: limit.as_secs(),
                    output: output.join("\n"),
                });
            }
        }
    }
    let exit = child.exit().unwrap_or(ExitInfo {
        code: None,
        signal: None,
    });
    Ok(Captured {
        exit,
        stdout: stdout.join("\n"),
        stderr: stderr.join("\n"),
    })
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    fn sh(script: &str) -> Command {
        let mut c = Command::new("sh");
        c.arg("-c").arg(script);
        c
    }

    #[test]
    fn lines_split_on_carriage_returns_and_lose_their_colours() {
        let out = run_captured(
            &mut sh(r"printf 'a\rsteps:  50%%|\033[32m#\033[0m| 1/2\rdone\n'; echo oops >&2"),
            Duration::from_secs(30),
        )
        .unwrap();
        assert!(out.exit.success());
        assert_eq!(out.stdout, "a\nsteps:  50%|#| 1/2\ndone");
        assert_eq!(out.stderr, "oops");
    }

    /// Linux: the process is gone (absent, or a zombie waiting for init).
    #[cfg(target_os = "linux")]
    fn is_gone(pid: &str) -> bool {
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Err(_) => true,
            Ok(stat) => stat
                .rsplit_once(')')
                .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
        }
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_child_that_outlives_its_limit_is_stopped_with_its_children() {
        // The grandchild prints its pid, then would sleep for a minute.
        let err = run_captured(
            &mut sh("sleep 60 & echo $!; wait"),
            Duration::from_millis(500),
        )
        .unwrap_err();
        let ProcessError::TimedOut { output, .. } = err else {
            panic!("{err:?}");
        };
        let pid = output.trim();
        assert!(pid.parse::<u32>().is_ok(), "{output}");
        // The kill is sent to the whole group before run_captured returns;
        // the kernel finishes it a moment later. Wait for that (not for a
        // fixed time): a grandchild that was never signalled would still be
        // sleeping when the deadline passes.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !is_gone(pid) && std::time::Instant::now() < deadline {
            std::thread::yield_now();
        }
        assert!(is_gone(pid), "the grandchild {pid} is still running");
    }

    #[test]
    fn exit_codes_and_signals_are_told_apart() {
        let out = run_captured(&mut sh("exit 3"), Duration::from_secs(30)).unwrap();
        assert_eq!(out.exit.describe(), "exit code 3");
        let out = run_captured(&mut sh("kill -SEGV $$"), Duration::from_secs(30)).unwrap();
        assert_eq!(out.exit.signal, Some(11));
        assert_eq!(out.exit.describe(), "killed by signal 11 (SIGSEGV)");
    }

    #[test]
    fn a_program_that_is_not_there_is_named() {
        let err = run_captured(
            &mut Command::new("/definitely/not/a/program"),
            Duration::from_secs(5),
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("/definitely/not/a/program"),
            "{err}"
        );
    }
}
