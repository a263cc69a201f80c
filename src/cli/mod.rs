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
pub mod cloud;
pub mod comfy;
pub mod dedup;
pub mod env;
pub mod plan;
pub mod progress;
pub mod project;
pub mod serve;

use std::io::Write;

use ategnatos::studio::Hint;
use ategnatos::studio::Workspace;

/// Writes a report to standard output. `println!` panics when the reader
/// has gone away (`ategnatos duplicates DIR | head`); here the program
/// ends quietly instead, with the status a shell gives a program stopped
/// by a closed pipe (141). Every command has finished its work on disk
/// before it prints, so nothing is left half-done. Any other failure to
/// write (a full disk behind a redirect) is said on standard error.
pub fn write_out(text: std::fmt::Arguments) {
    write_raw(&for_shell(&text.to_string()));
}

/// `--json`: the result printed exactly as the MCP tool returns it.
pub fn print_json<T: serde::Serialize>(value: &T) -> Result<(), CliError> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| CliError::new(format!("cannot print the result: {e}"), None))?;
    write_raw(&format!("{text}\n"));
    Ok(())
}

/// A path argument, relative to where the command runs (like any shell
/// tool's), as a string the workspace path policy checks.
pub fn shell_path(p: &std::path::Path) -> String {
    let full = if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir()
            .map(|d| d.join(p))
            .unwrap_or_else(|_| p.to_path_buf())
    };
    full.to_string_lossy().into_owned()
}

fn write_raw(text: &str) {
    let mut stdout = std::io::stdout().lock();
    let written = stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush());
    match written {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(141),
        Err(e) => {
            eprintln!("error: could not write the report to standard output: {e}");
            std::process::exit(2)
        }
    }
}

/// The MCP tools named in the reports, hints and next steps (which the
/// server and the command line share), and the command that does the same
/// from a shell.
const COMMANDS: &[(&str, &str)] = &[
    ("approve_captions", "ategnatos captions approve"),
    ("audit_dataset", "ategnatos audit"),
    ("caption_preview", "ategnatos captions preview"),
    ("check_environment", "ategnatos env"),
    ("comfyui_submit", "ategnatos comfy submit"),
    ("curate_dataset", "ategnatos curate"),
    ("dry_run", "ategnatos dry-run"),
    ("estimate_vram", "ategnatos vram"),
    ("eval_grid", "ategnatos eval"),
    ("find_duplicates", "ategnatos duplicates"),
    ("generate_config", "ategnatos config"),
    ("launch_training", "ategnatos train"),
    ("list_instances", "ategnatos cloud list"),
    ("list_projects", "ategnatos project list"),
    ("plan_training", "ategnatos plan"),
    ("project_status", "ategnatos project status"),
    ("quarantine_files", "ategnatos quarantine"),
    ("restore_caption", "ategnatos captions restore"),
    ("restore_quarantine", "ategnatos restore"),
    ("run_gate", "ategnatos gate"),
    ("spinup_instance", "ategnatos cloud up"),
    ("start_project", "ategnatos project start"),
    ("structure_dataset", "ategnatos structure"),
    ("teardown_instance", "ategnatos cloud down"),
    ("training_status", "ategnatos status"),
    ("write_captions", "ategnatos captions write"),
];

/// `text` with every MCP tool name replaced by its command, in backticks
/// (`run_gate 2` becomes `` `ategnatos gate 2` ``), for a person at a
/// terminal.
pub fn for_shell(text: &str) -> String {
    let is_word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    'scan: while !rest.is_empty() {
        let at_boundary = !out.chars().next_back().is_some_and(is_word);
        if at_boundary {
            for (tool, command) in COMMANDS {
                let Some(after) = rest.strip_prefix(tool) else {
                    continue;
                };
                if after.chars().next().is_some_and(is_word) {
                    continue;
                }
                // A gate number belongs to the command.
                let number: String = after
                    .strip_prefix(' ')
                    .map(|n| n.chars().take_while(char::is_ascii_digit).collect())
                    .unwrap_or_default();
                let (command, after) = if number.is_empty() {
                    (command.to_string(), after)
                } else {
                    (format!("{command} {number}"), &after[1 + number.len()..])
                };
                let quoted = out.ends_with('`') && after.starts_with('`');
                if quoted {
                    out.push_str(&command);
                } else {
                    out.push('`');
                    out.push_str(&command);
                    out.push('`');
                }
                rest = after;
                continue 'scan;
            }
        }
        let c = rest.chars().next().unwrap_or_default();
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::for_shell;

    #[test]
    fn tool_names_become_the_commands_that_do_the_same() {
        assert_eq!(
            for_shell(
                "move them out with `quarantine_files`; (caption_preview then write_captions)"
            ),
            "move them out with `ategnatos quarantine`; (`ategnatos captions preview` then `ategnatos captions write`)"
        );
        assert_eq!(
            for_shell("Next: run gate 2 (run_gate 2). Or `run_gate 3`, or run_gate."),
            "Next: run gate 2 (`ategnatos gate 2`). Or `ategnatos gate 3`, or `ategnatos gate`."
        );
        // Only whole names: fields that contain a name stay as they are.
        assert_eq!(
            for_shell("the suggested_quarantine list; my_run_gate_x; café"),
            "the suggested_quarantine list; my_run_gate_x; café"
        );
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
