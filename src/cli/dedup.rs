//! `ategnatos duplicates DIR`, `quarantine FILE…`, `restore [ID]`,
//! `curate DIR` and `structure`: copies, setting pictures aside, variety and
//! the kohya layout from a shell.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use ategnatos::dataset::curate::{self, CurateOptions, CurationReport};
use ategnatos::dataset::dedup::{self, DuplicateOptions, DuplicateReport, ShowOptions};
use ategnatos::dataset::quarantine;
use ategnatos::dataset::structure::{self, Concept, StructureOptions};
use ategnatos::studio::paths;
use ategnatos::studio::project::TrainingType;

use super::{CliError, open_workspace, print_json, progress::Bar, shell_path};

#[derive(clap::Args)]
pub struct DuplicatesCmd {
    /// Folder with the pictures.
    dir: PathBuf,
    /// Largest hash difference (bits of 64, 0–24) compared closely; lower finds only closer copies.
    #[arg(long, default_value_t = dedup::DEFAULT_THRESHOLD)]
    threshold: u32,
    /// Caption file extension.
    #[arg(long, default_value = "txt")]
    caption_ext: String,
    /// Hash every picture again instead of using the cache.
    #[arg(long)]
    no_cache: bool,
    /// Do not write contact sheets.
    #[arg(long)]
    no_sheets: bool,
    /// List every group (default: the largest 30), each with its contact sheet.
    #[arg(long)]
    all: bool,
    /// Print the report as JSON on stdout.
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
pub struct QuarantineCmd {
    /// Files to set aside (their captions go along).
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Why, kept in the manifest.
    #[arg(long)]
    reason: Option<String>,
    #[arg(long, default_value = "txt")]
    caption_ext: String,
}

#[derive(clap::Args)]
pub struct RestoreCmd {
    /// Quarantine id (default: the latest not yet restored).
    id: Option<String>,
}

#[derive(clap::Args)]
pub struct CurateCmd {
    /// Folder with the pictures.
    dir: PathBuf,
    /// How many pictures to keep.
    #[arg(long)]
    target: Option<usize>,
    /// style, character or object: default target size and regularisation advice.
    #[arg(long = "type", value_parser = parse_type)]
    training_type: Option<TrainingType>,
    /// Largest difference (bits of 64) for look-alikes.
    #[arg(long, default_value_t = curate::DEFAULT_SIMILAR_THRESHOLD)]
    similar: u32,
    #[arg(long, default_value = "txt")]
    caption_ext: String,
    /// Print the report as JSON on stdout.
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
pub struct StructureCmd {
    /// New training folder (must not exist or be empty).
    #[arg(long)]
    dest: PathBuf,
    /// A concept as SOURCE_DIR:NAME or SOURCE_DIR:NAME:REPEATS; repeat for several.
    #[arg(long = "concept", required = true)]
    concepts: Vec<String>,
    /// Steps (batch size 1) to reach, for automatic repeats.
    #[arg(long, default_value_t = structure::DEFAULT_TARGET_STEPS)]
    target_steps: u64,
    /// Epochs, for automatic repeats.
    #[arg(long, default_value_t = structure::DEFAULT_EPOCHS)]
    epochs: u32,
    #[arg(long, default_value = "txt")]
    caption_ext: String,
    /// Print the report as JSON on stdout.
    #[arg(long)]
    json: bool,
}

fn parse_type(s: &str) -> Result<TrainingType, String> {
    match s.to_ascii_lowercase().as_str() {
        "style" => Ok(TrainingType::Style),
        "character" => Ok(TrainingType::Character),
        "object" => Ok(TrainingType::Object),
        other => Err(format!(
            "`{other}` is not a training type: use style, character or object"
        )),
    }
}

fn existing(root: &Path, p: &Path) -> Result<PathBuf, CliError> {
    paths::resolve_existing(root, &shell_path(p)).map_err(|e| CliError::new(&e, e.hint()))
}

pub fn duplicates(root: &Path, cmd: DuplicatesCmd) -> Result<ExitCode, CliError> {
    let ws = open_workspace(root)?;
    let dir = existing(ws.root(), &cmd.dir)?;
    let options = DuplicateOptions {
        threshold: cmd.threshold,
        caption_extension: cmd.caption_ext.trim_start_matches('.').to_string(),
        use_cache: !cmd.no_cache,
        ..DuplicateOptions::default()
    };
    let show = ShowOptions {
        max_groups: (!cmd.all).then_some(LISTED_GROUPS),
        contact_sheets: !cmd.no_sheets,
        max_previews: 0,
    };
    let bar = Bar::new();
    let shown = dedup::find_duplicates_shown(&dir, &ws, &options, &show, &bar);
    bar.finish();
    let shown = shown.map_err(|e| CliError::new(&e, e.hint()))?;
    if let Some(note) = &shown.note {
        eprintln!("note: {note}");
    }
    if cmd.json {
        print_json(&shown.report)?;
    } else {
        out!("{}", render_duplicates(&shown.report));
        if shown.report.groups_not_shown > 0 {
            outln!(
                "\n{} more group(s) not listed: `--all` lists every group.",
                shown.report.groups_not_shown
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Groups listed (with sheets) unless `--all` is given.
const LISTED_GROUPS: usize = 30;

/// The duplicate report as a person reads it in a terminal.
pub fn render_duplicates(r: &DuplicateReport) -> String {
    let mut out = format!("{}\n", r.plain_summary());
    for g in &r.groups {
        out.push_str(&format!(
            "\ngroup {} — keep `{}` ({}){}\n",
            g.id,
            g.keeper,
            g.keeper_reason,
            g.contact_sheet
                .as_ref()
                .map(|s| format!(", sheet {s}"))
                .unwrap_or_default()
        ));
        for m in &g.members {
            let how = if m.keep {
                "keep".to_string()
            } else {
                format!(
                    "{}{}{}, distance {}",
                    m.likeness.words(),
                    if m.mirrored { ", mirrored" } else { "" },
                    if m.cropped { ", cropped" } else { "" },
                    m.distance
                )
            };
            out.push_str(&format!(
                "  {:<4} {}  {}x{} {}  [{how}]\n",
                if m.keep { "✓" } else { "·" },
                m.path,
                m.width,
                m.height,
                m.format
            ));
        }
    }
    for u in &r.unreadable {
        out.push_str(&format!("unreadable: {} — {}\n", u.path, u.reason));
    }
    out
}

pub fn quarantine(root: &Path, cmd: QuarantineCmd) -> Result<ExitCode, CliError> {
    let ws = open_workspace(root)?;
    let files = cmd
        .files
        .iter()
        .map(|f| existing(ws.root(), f))
        .collect::<Result<Vec<_>, _>>()?;
    let report = quarantine::quarantine_files(
        &ws,
        &files,
        cmd.caption_ext.trim_start_matches('.'),
        cmd.reason.as_deref(),
    )
    .map_err(|e| CliError::new(&e, e.hint()))?;
    outln!("{}", report.plain_summary());
    Ok(ExitCode::SUCCESS)
}

pub fn restore(root: &Path, cmd: RestoreCmd) -> Result<ExitCode, CliError> {
    let ws = open_workspace(root)?;
    let report = quarantine::restore_quarantine(&ws, cmd.id.as_deref())
        .map_err(|e| CliError::new(&e, e.hint()))?;
    outln!("{}", report.plain_summary());
    Ok(ExitCode::SUCCESS)
}

pub fn curate(root: &Path, cmd: CurateCmd) -> Result<ExitCode, CliError> {
    let ws = open_workspace(root)?;
    let dir = existing(ws.root(), &cmd.dir)?;
    let options = CurateOptions {
        target_size: cmd.target,
        training_type: cmd.training_type,
        similar_threshold: cmd.similar,
        caption_extension: cmd.caption_ext.trim_start_matches('.').to_string(),
        use_cache: true,
    };
    let bar = Bar::new();
    let report = curate::curate_dataset(&dir, &ws, &options, &bar);
    bar.finish();
    let report = report.map_err(|e| CliError::new(&e, e.hint()))?;
    if cmd.json {
        print_json(&report)?;
    } else {
        out!("{}", render_curation(&report));
    }
    Ok(ExitCode::SUCCESS)
}

fn render_curation(r: &CurationReport) -> String {
    let mut out = format!("{}\n", r.plain_summary());
    for c in &r.clusters {
        out.push_str(&format!(
            "\nlook-alikes {} (within {} bits): {}\n",
            c.id,
            c.max_distance,
            c.members.join(", ")
        ));
    }
    if let Some(s) = &r.subset {
        out.push_str(&format!("\nkeep ({}):\n", s.keep.len()));
        for k in &s.keep {
            out.push_str(&format!("  {:>3}. {}  — {}\n", k.rank, k.path, k.reason));
        }
        out.push_str(&format!("leave out ({}):\n", s.leave_out.len()));
        for l in &s.leave_out {
            out.push_str(&format!("       {}  — {}\n", l.path, l.reason));
        }
    }
    out
}

/// `SOURCE:NAME` or `SOURCE:NAME:REPEATS` (the source may itself hold `:`).
fn parse_concept(spec: &str) -> Option<(String, String, Option<u32>)> {
    let mut parts: Vec<&str> = spec.split(':').collect();
    let repeats = if parts.len() >= 3 {
        parts.last().and_then(|r| r.parse::<u32>().ok())
    } else {
        None
    };
    if repeats.is_some() {
        parts.pop();
    }
    let name = parts.pop()?;
    if parts.is_empty() || name.is_empty() {
        return None;
    }
    Some((parts.join(":"), name.to_string(), repeats))
}

pub fn structure(root: &Path, cmd: StructureCmd) -> Result<ExitCode, CliError> {
    let ws = open_workspace(root)?;
    let destination = paths::resolve_inside(ws.root(), &shell_path(&cmd.dest))
        .map_err(|e| CliError::new(&e, e.hint()))?;
    let mut concepts = Vec::new();
    for spec in &cmd.concepts {
        let Some((source, name, repeats)) = parse_concept(spec) else {
            return Err(CliError::new(
                format!("`{spec}` is not SOURCE_DIR:NAME or SOURCE_DIR:NAME:REPEATS"),
                Some(
                    "for example `--concept pics/foxes:zkfox` or `--concept pics/foxes:zkfox:10`"
                        .into(),
                ),
            ));
        };
        concepts.push(Concept {
            source: existing(ws.root(), Path::new(&source))?,
            name,
            repeats,
        });
    }
    let options = StructureOptions {
        destination,
        concepts,
        target_steps: cmd.target_steps,
        epochs: cmd.epochs,
        caption_extension: cmd.caption_ext.trim_start_matches('.').to_string(),
    };
    let report =
        structure::structure_dataset(&ws, &options).map_err(|e| CliError::new(&e, e.hint()))?;
    if cmd.json {
        print_json(&report)?;
    } else {
        outln!("{}", report.plain_summary());
        for s in &report.subsets {
            outln!("  {}  ← {}  ({})", s.folder, s.source, s.repeats_reason);
        }
    }
    Ok(ExitCode::SUCCESS)
}
