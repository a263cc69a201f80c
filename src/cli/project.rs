//! `ategnatos project …`, `ategnatos captions …` and `ategnatos gate N`: the
//! project, captioning and gate tools from a shell.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use ategnatos::dataset::captioning;
use ategnatos::dataset::intent::{self, ProjectRequest};
use ategnatos::gates::status;
use ategnatos::studio::project::{self, TrainingType};

use super::{CliError, open_workspace, progress::Bar};
use ategnatos::studio::Hint;

#[derive(clap::Subcommand)]
pub enum ProjectCmd {
    /// Start a training project.
    Start {
        name: String,
        /// style, character or object.
        #[arg(long = "type", value_parser = <TrainingType as std::str::FromStr>::from_str)]
        training_type: TrainingType,
        #[arg(long)]
        base_model: String,
        #[arg(long)]
        trigger: String,
        /// Picture folder, relative to the workspace root.
        #[arg(long)]
        dataset: String,
        #[arg(long, default_value = "")]
        description: String,
        #[arg(long, default_value = "txt")]
        caption_ext: String,
    },
    /// List the projects.
    List,
    /// Where a project's gates stand.
    Status { name: String },
}

#[derive(clap::Subcommand)]
pub enum CaptionsCmd {
    /// Pick varied pictures to caption first and print the captioning rules.
    Preview {
        #[arg(long)]
        project: String,
        #[arg(long, default_value_t = 5)]
        count: usize,
        /// Also save the preview JPEGs into this folder.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Write captions from a JSON file of picture path → caption.
    Write {
        #[arg(long)]
        project: String,
        file: PathBuf,
    },
    /// Record that the artist approved these pictures' captions.
    Approve {
        #[arg(long)]
        project: String,
        paths: Vec<String>,
    },
    /// Put back a picture's previous caption.
    Restore {
        #[arg(long)]
        project: String,
        path: String,
        #[arg(long)]
        batch: Option<String>,
    },
}

pub fn run_project(root: &Path, cmd: ProjectCmd) -> Result<ExitCode, CliError> {
    let ws = open_workspace(root)?;
    match cmd {
        ProjectCmd::Start {
            name,
            training_type,
            base_model,
            trigger,
            dataset,
            description,
            caption_ext,
        } => {
            let req = ProjectRequest {
                name,
                training_type,
                base_model,
                description,
                trigger_word: trigger,
                dataset,
                caption_extension: caption_ext,
            };
            let started =
                intent::start_project(&ws, &req).map_err(|e| CliError::new(&e, e.hint()))?;
            outln!("{}", started.plain_summary());
        }
        ProjectCmd::List => {
            let projects = project::list(&ws);
            if projects.is_empty() {
                // Standard output stays a plain list (empty here).
                eprintln!("No projects yet: start one with `ategnatos project start`.");
            }
            for p in projects {
                outln!(
                    "{}\t{}\t{}\t{}",
                    p.name,
                    p.training_type.word(),
                    p.base_model,
                    p.dataset
                );
            }
        }
        ProjectCmd::Status { name } => {
            let p = intent::require_project(&ws, &name).map_err(|e| CliError::new(&e, e.hint()))?;
            let s = status::project_status(&ws, &p).map_err(|e| CliError::new(&e, e.hint()))?;
            for g in &s.gates {
                let state = match g.state {
                    status::GateState::NotRun => "not run",
                    status::GateState::Pass => "PASS",
                    status::GateState::Fail => "FAIL",
                    status::GateState::Stale => "stale",
                };
                outln!(
                    "{:<24} {state:<8} {}",
                    g.title,
                    g.checked_at.as_deref().unwrap_or("")
                );
                // A recorded gate that does not pass says why.
                if g.checked_at.is_some() && g.state != status::GateState::Pass {
                    outln!("{:<24} {}", "", g.reason);
                }
            }
            outln!("next: {}", s.next_step);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Where `captions preview --out` may write: inside the workspace, outside
/// the project's dataset.
fn preview_folder(
    ws: &ategnatos::studio::Workspace,
    project: &str,
    dir: &Path,
) -> Result<PathBuf, CliError> {
    let path_err = |e: ategnatos::studio::paths::PathError| CliError::new(&e, e.hint());
    let folder = ws.resolve(&super::shell_path(dir)).map_err(path_err)?;
    let project = intent::require_project(ws, project).map_err(|e| CliError::new(&e, e.hint()))?;
    let dataset = captioning::dataset_dir(ws, &project).map_err(|e| CliError::new(&e, e.hint()))?;
    if folder.starts_with(&dataset) {
        return Err(CliError::new(
            format!(
                "`{}` is inside the dataset `{}`: the preview pictures would be trained on as pictures",
                ws.display_path(&folder),
                ws.display_path(&dataset)
            ),
            Some("choose a folder outside the dataset, for example `--out previews`".into()),
        ));
    }
    Ok(folder)
}

pub fn run_captions(root: &Path, cmd: CaptionsCmd) -> Result<ExitCode, CliError> {
    let ws = open_workspace(root)?;
    let fail = |e: captioning::CaptionError| CliError::new(&e, e.hint());
    match cmd {
        CaptionsCmd::Preview {
            project,
            count,
            out,
        } => {
            // Preview pictures go inside the workspace, and never into the
            // dataset, where they would be trained on as pictures.
            let out = match &out {
                Some(dir) => Some(preview_folder(&ws, &project, dir)?),
                None => None,
            };
            let p = captioning::caption_preview(
                &ws,
                &project,
                count.clamp(1, 12),
                &[],
                captioning::PREVIEW_SIDE,
            )
            .map_err(fail)?;
            outln!("{}\n", p.instructions);
            for item in &p.items {
                outln!(
                    "{}  ({}×{})  {}",
                    item.path,
                    item.width,
                    item.height,
                    item.current_caption.as_deref().unwrap_or("(no caption)")
                );
                if let Some(dir) = &out {
                    let name = item.path.replace('/', "_");
                    let file = dir.join(format!("{name}.preview.jpg"));
                    ategnatos::studio::write_atomic(&file, &item.jpeg(85))
                        .map_err(|e| CliError::new(&e, e.hint()))?;
                }
            }
        }
        CaptionsCmd::Write { project, file } => {
            let text = std::fs::read_to_string(&file).map_err(|e| {
                CliError::new(format!("cannot read `{}`: {e}", file.display()), None)
            })?;
            let map: std::collections::BTreeMap<String, String> = serde_json::from_str(&text)
                .map_err(|e| {
                    CliError::new(
                        format!(
                            "`{}` is not a JSON object of picture → caption: {e}",
                            file.display()
                        ),
                        Some("write it as {\"fox-01.png\": \"zkfox, a fox …\"}".into()),
                    )
                })?;
            let pairs: Vec<(String, String)> = map.into_iter().collect();
            let r = captioning::write_captions(&ws, &project, &pairs).map_err(fail)?;
            outln!("{}", r.plain_summary());
        }
        CaptionsCmd::Approve { project, paths } => {
            let s = captioning::approve_captions(&ws, &project, &paths).map_err(fail)?;
            outln!("{} approved caption(s) in `{project}`.", s.approved.len());
        }
        CaptionsCmd::Restore {
            project,
            path,
            batch,
        } => {
            let r = captioning::restore_caption(&ws, &project, &path, batch.as_deref())
                .map_err(fail)?;
            outln!("restored `{}`: {}", r.path, r.caption);
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn run_gate(
    root: &Path,
    gate: u8,
    project: &str,
    gpu: Option<&str>,
) -> Result<ExitCode, CliError> {
    let ws = open_workspace(root)?;
    let bar = Bar::new();
    let g = ategnatos::gates::run_by_number(&ws, project, gate, gpu, &bar);
    bar.finish();
    let g = g.map_err(|e| CliError::new(&e, e.hint()))?;
    outln!("{}", g.summary);
    Ok(if g.passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
