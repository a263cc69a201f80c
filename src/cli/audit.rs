//! `ategnatos audit DIR`: the dataset audit as text or JSON.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use ategnatos::dataset::audit::Severity;
use ategnatos::dataset::layout::LayoutKind;
use ategnatos::dataset::{self, AuditOptions, AuditReport};
use ategnatos::plan::catalog;
use ategnatos::studio::paths;

use super::{CliError, open_workspace, print_json, progress::Bar, shell_path};
use ategnatos::studio::Hint;

#[derive(clap::Args)]
pub struct AuditCmd {
    /// Folder with the training pictures.
    dir: PathBuf,
    /// Save the report to grimoire/training/PROJECT/audit.json and record Gate 1.
    #[arg(long)]
    project: Option<String>,
    /// Base model (sd15, sdxl, pony, illustrious, flux-dev, ...): sets the minimum size.
    #[arg(long)]
    base_model: Option<String>,
    /// Minimum short side in pixels (overrides the base model's).
    #[arg(long)]
    min_side: Option<u32>,
    /// Flag pictures longer than 1:N.
    #[arg(long, default_value_t = dataset::audit::DEFAULT_MAX_ASPECT)]
    max_aspect: f64,
    /// Caption file extension.
    #[arg(long, default_value = "txt")]
    caption_ext: String,
    /// Trigger word every caption must contain.
    #[arg(long)]
    trigger: Option<String>,
    /// Regularisation folder to report alongside.
    #[arg(long)]
    reg_dir: Option<PathBuf>,
    /// List every picture, not only those with findings.
    #[arg(long)]
    all: bool,
    /// Print the full report as JSON on stdout.
    #[arg(long)]
    json: bool,
}

pub fn run(root: &Path, cmd: AuditCmd) -> Result<ExitCode, CliError> {
    let ws = open_workspace(root)?;
    let dir = paths::resolve_existing(ws.root(), &shell_path(&cmd.dir))
        .map_err(|e| CliError::new(&e, e.hint()))?;
    let base_model = cmd
        .base_model
        .as_deref()
        .map(catalog::lookup)
        .transpose()
        .map_err(|e| CliError::new(&e, e.hint()))?;
    let regularization_dir = match &cmd.reg_dir {
        Some(p) => Some(
            paths::resolve_existing(ws.root(), &shell_path(p))
                .map_err(|e| CliError::new(&e, e.hint()))?,
        ),
        None => None,
    };
    let mut options = AuditOptions {
        base_model,
        min_short_side: cmd.min_side,
        max_aspect_ratio: cmd.max_aspect,
        caption_extension: cmd.caption_ext.trim_start_matches('.').to_string(),
        trigger_word: cmd.trigger.clone(),
        regularization_dir,
        include_all_files: cmd.all,
    };
    if let Some(project) = &cmd.project {
        ategnatos::gates::dataset::apply_project_rules(&ws, project, &mut options)
            .map_err(|e| CliError::new(&e, e.hint()))?;
    }
    let bar = Bar::new();
    let report = dataset::audit_dataset(&dir, &ws.display_path(&dir), ws.root(), &options, &bar)
        .map_err(|e| CliError::new(&e, e.hint()));
    bar.finish();
    let report = report?;
    let mut saved = None;
    if let Some(project) = &cmd.project {
        let (record, uri) = ategnatos::gates::dataset::record_audit(&ws, project, &report)
            .map_err(|e| CliError::new(&e, e.hint()))?;
        saved = Some(format!(
            "Saved {} and recorded {uri} ({:?}).",
            record.report.unwrap_or_default(),
            record.status
        ));
    }
    if cmd.json {
        print_json(&report)?;
    } else {
        out!("{}", render_text(&report));
    }
    if let Some(s) = saved {
        eprintln!("{s}");
    }
    Ok(if report.summary.blocking > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// The report as a person reads it in a terminal.
pub fn render_text(r: &AuditReport) -> String {
    let s = &r.summary;
    let mut out = String::new();
    out.push_str(&format!("Dataset audit of {}\n\n", r.folder));
    out.push_str(&format!(
        "  pictures   {} ({} readable, {} captioned), {} other files, {:.1} MB\n",
        s.images,
        s.readable,
        s.captioned,
        s.other_files,
        s.total_bytes as f64 / 1e6
    ));
    if let (Some(w), Some(h), Some(min), Some(max)) =
        (s.mean_width, s.mean_height, &s.smallest, &s.largest)
    {
        out.push_str(&format!(
            "  size       average {w}x{h}, smallest {min}, largest {max} (minimum short side {})\n",
            r.min_short_side
        ));
    }
    if !s.aspect_ratios.is_empty() {
        let hist: Vec<String> = s
            .aspect_ratios
            .iter()
            .map(|b| format!("{} ×{}", b.ratio, b.count))
            .collect();
        out.push_str(&format!("  aspect     {}\n", hist.join(", ")));
    }
    if !s.formats.is_empty() {
        let f: Vec<String> = s.formats.iter().map(|(k, v)| format!("{k} ×{v}")).collect();
        let c: Vec<String> = s
            .color_modes
            .iter()
            .map(|(k, v)| format!("{k} ×{v}"))
            .collect();
        out.push_str(&format!(
            "  formats    {}; colour {}\n",
            f.join(", "),
            c.join(", ")
        ));
    }
    let layout = match r.layout.kind {
        LayoutKind::Flat => "flat folder".to_string(),
        LayoutKind::Empty => "empty".to_string(),
        LayoutKind::Kohya | LayoutKind::Mixed => {
            let subsets: Vec<String> = r
                .layout
                .subsets
                .iter()
                .map(|s| format!("{} ({} pictures × {} repeats)", s.name, s.images, s.repeats))
                .collect();
            format!(
                "kohya{}: {}; {} pictures per epoch",
                if r.layout.kind == LayoutKind::Mixed {
                    " (mixed)"
                } else {
                    ""
                },
                subsets.join(", "),
                r.layout.images_per_epoch
            )
        }
    };
    out.push_str(&format!("  layout     {layout}\n"));
    if let Some(reg) = &r.regularization {
        out.push_str(&format!(
            "  reg set    {} subfolders, {} pictures per epoch\n",
            reg.subsets.len(),
            reg.images_per_epoch
        ));
    }
    out.push('\n');
    if r.problems.is_empty() {
        out.push_str("No problems found.\n");
    }
    for p in &r.problems {
        let tag = match p.severity {
            Severity::Blocking => "MUST FIX",
            Severity::Warning => "warning ",
            Severity::Info => "info    ",
        };
        out.push_str(&format!(
            "{tag}  {}\n          → {}\n",
            p.message, p.what_to_do
        ));
        for e in &p.examples {
            out.push_str(&format!("            {e}\n"));
        }
        // Examples are files; a problem of the whole folder has none.
        if !p.examples.is_empty() && p.count > p.examples.len() {
            out.push_str(&format!(
                "            …and {} more\n",
                p.count - p.examples.len()
            ));
        }
    }
    out.push_str(&format!("\nfingerprint {}\n", r.fingerprint));
    out
}
