//! Subcommands of the `ategnatos` binary: argument parsing and printing only.

/// `print!` for the commands' reports, through [`write_out`].
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::cli::write_out(format_args!($($arg)*))
    };
}

/// `println!` for the commands' reports, through [`write_out`].
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::cli::write_out(format_args!("{}\n", format_args!($($arg)*)))
    };
}

pub mod audit;
pub mod bench;
pub mod dedup;
pub mod plan;
pub mod progress;
pub mod project;
pub mod serve;

use std::io::Write;

use ategnatos::studio::Workspace;

/// Writes a report to standard output. `println!` panics when the reader
/// has gone away (`ategnatos duplicates DIR | head`); here the program
/// ends quietly instead, with the status a shell gives a program stopped
/// by a closed pipe (141). Every command has finished its work on disk
/// before it prints, so nothing is left half-done. Any other failure to
/// write (a full disk behind a redirect) is said on standard error.
pub fn write_out(text: std::fmt::Arguments) {
    let mut stdout = std::io::stdout().lock();
    let written = stdout.write_fmt(text).and_then(|()| stdout.flush());
    match written {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(141),
        Err(e) => {
            eprintln!("error: could not write the report to standard output: {e}");
            std::process::exit(2)
        }
    }
}

/// A command-line failure: what happened, and what to do.
#[derive(Debug)]
pub struct CliError {
    pub message: String,
    pub hint: Option<String>,
}

impl std::fmt::Display for CliError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "error: {}", self.message)?;
        if let Some(h) = &self.hint {
            write!(f, "\nhint: {h}")?;
        }
        Ok(())
    }
}

impl CliError {
    pub fn new(message: impl std::fmt::Display, hint: Option<String>) -> Self {
        CliError {
            message: message.to_string(),
            hint,
        }
    }
}

/// Opens the workspace at `root`, or says why not.
pub fn open_workspace(root: &std::path::Path) -> Result<Workspace, CliError> {
    Workspace::open(root).map_err(|e| CliError::new(&e, e.hint()))
}
