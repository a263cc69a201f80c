//! Briefings: where a project stands, read from the workspace, for one phase
//! of the conversation (the intent interview, the caption review, the plan
//! walkthrough, reading the evaluation, diagnosing a failure). The MCP
//! prompts put a briefing under their instructions, so Claude starts from
//! the project's real records — gate results, captions, plan, runs — and not
//! from a guess.
//!
//! A briefing only reads; a record that cannot be read is said in words, and
//! the rest of the briefing still comes.

use std::fmt::Write as _;
use std::path::Path;

use crate::comfy::{eval, register};
use crate::dataset::{caption_rules, captioning, intent, walk};
use crate::gates::{self, Gate, GateRecord, GateStatus, status};
use crate::plan::catalog::{self, CaptionFormat};
use crate::plan::planner::explain_parameters;
use crate::plan::training::load_plan;
use crate::run::launch::{RunRecord, list_runs};
use crate::studio::project::{self, Project};
use crate::studio::{Hint, StudioError, Workspace};

/// The phase of the conversation a briefing serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// What the LoRA should learn, before or just after `start_project`.
    Intent,
    /// Sample captions shown to the artist for approval.
    Captions,
    /// The training plan, parameter by parameter.
    Plan,
    /// The evaluation grid of a trained LoRA.
    Evaluation,
    /// A run that failed or a result the artist does not like.
    Failure,
}

/// Most findings of one gate a briefing lists.
const MAX_FINDINGS: usize = 8;
/// Most approved captions a briefing quotes.
const MAX_CAPTIONS: usize = 8;
/// Most of `eval.md` a briefing quotes.
const MAX_EVAL_CHARS: usize = 4000;
/// Last lines of a failed run's output a briefing quotes.
const MAX_TAIL_LINES: usize = 12;
/// Longest line quoted from a trainer's output.
const MAX_LINE_CHARS: usize = 300;

/// Why there is no briefing.
#[derive(Debug, thiserror::Error)]
pub enum BriefingError {
    #[error(transparent)]
    Studio(#[from] StudioError),
    #[error("this phase needs a project name, and none was given")]
    NoProjectGiven { known: Vec<String> },
    #[error("there is no project named `{name}`")]
    NoSuchProject { name: String, known: Vec<String> },
}

impl Hint for BriefingError {
    fn hint(&self) -> Option<String> {
        match self {
            BriefingError::Studio(e) => e.hint(),
            BriefingError::NoProjectGiven { known }
            | BriefingError::NoSuchProject { known, .. } => Some(if known.is_empty() {
                "there are no projects in this workspace yet: start one with start_project (the intent_interview prompt helps)".into()
            } else {
                format!("the projects here are: {}", known.join(", "))
            }),
        }
    }
}

fn project_names(ws: &Workspace) -> Vec<String> {
    project::list(ws).into_iter().map(|p| p.name).collect()
}

/// The briefing for `phase`. `project` may be absent (or not exist yet)
/// only for the intent interview; `dataset` is the picture folder the artist
/// named before a project exists.
pub fn briefing(
    ws: &Workspace,
    phase: Phase,
    project: Option<&str>,
    dataset: Option<&str>,
) -> Result<String, BriefingError> {
    let name = project.map(str::trim).filter(|n| !n.is_empty());
    let loaded = match name {
        Some(n) => {
            crate::studio::check_project_name(n)?;
            project::load(ws, n)?
        }
        None => None,
    };
    let Some(p) = loaded else {
        return match (phase, name) {
            (Phase::Intent, _) => Ok(before_project(ws, name, dataset)),
            (_, None) => Err(BriefingError::NoProjectGiven {
                known: project_names(ws),
            }),
            (_, Some(n)) => Err(BriefingError::NoSuchProject {
                name: n.to_string(),
                known: project_names(ws),
            }),
        };
    };
    let mut out = String::new();
    header(ws, &p, &mut out)?;
    match phase {
        Phase::Intent => intent_part(&p, &mut out),
        Phase::Captions => captions_part(ws, &p, &mut out)?,
        Phase::Plan => plan_part(ws, &p, &mut out)?,
        Phase::Evaluation => evaluation_part(ws, &p, &mut out)?,
        Phase::Failure => failure_part(ws, &p, &mut out)?,
    }
    Ok(out)
}

/// The intent interview before any project: what exists, and the folder.
fn before_project(ws: &Workspace, name: Option<&str>, dataset: Option<&str>) -> String {
    let mut out = String::from("### Where things stand\n\n");
    match name {
        Some(n) => {
            let _ = writeln!(
                out,
                "- There is no project `{n}` yet: start_project creates it once the interview is done."
            );
        }
        None => out.push_str("- No project name chosen yet: agree on one with the artist (letters, digits, `-`, `_`).\n"),
    }
    let known = project_names(ws);
    if known.is_empty() {
        out.push_str("- This workspace has no projects yet.\n");
    } else {
        let _ = writeln!(out, "- Projects in this workspace: {}.", known.join(", "));
    }
    if let Some(d) = dataset.map(str::trim).filter(|d| !d.is_empty()) {
        let _ = writeln!(out, "- Pictures: {}", folder_words(ws, d));
    }
    out
}

/// "`pics/fox`: 23 pictures, 20 with a `.txt` caption", or why it cannot be read.
fn folder_words(ws: &Workspace, folder: &str) -> String {
    let dir = match ws.resolve(folder) {
        Ok(dir) => dir,
        Err(e) => return format!("`{folder}` cannot be used: {e}"),
    };
    match count_pictures(ws, &dir, "txt") {
        Ok((pictures, captioned)) => format!(
            "`{folder}` holds {pictures} picture(s), {captioned} with a `.txt` caption beside it"
        ),
        Err(e) => format!(
            "`{folder}` could not be read ({})",
            walk::plain_io_reason(&e)
        ),
    }
}

/// Pictures under `dir`, and how many have a caption with `ext` beside them.
fn count_pictures(ws: &Workspace, dir: &Path, ext: &str) -> std::io::Result<(usize, usize)> {
    let listing = walk::list_files(dir, ws.root())?;
    let mut pictures = 0;
    let mut captioned = 0;
    for f in &listing.files {
        let is_picture = f
            .path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(crate::dataset::is_image_extension);
        if is_picture {
            pictures += 1;
            if f.path.with_extension(ext).is_file() {
                captioned += 1;
            }
        }
    }
    Ok((pictures, captioned))
}

fn model_name(p: &Project) -> String {
    catalog::lookup(&p.base_model).map_or_else(
        |_| format!("`{}` (not in the model catalog)", p.base_model),
        |m| format!("{} (`{}`)", m.name, m.id),
    )
}

/// The project, its pictures and its four gates.
fn header(ws: &Workspace, p: &Project, out: &mut String) -> Result<(), BriefingError> {
    let (lo, hi) = p.training_type.expected_images();
    let _ = writeln!(out, "### Project `{}`\n", p.name);
    let _ = writeln!(
        out,
        "- Learns: {} · base model: {} · trigger word: `{}`",
        p.training_type.with_article(),
        model_name(p),
        p.trigger_word
    );
    let _ = writeln!(
        out,
        "- Pictures: {} ({} LoRA wants {lo}–{hi})",
        folder_words_ext(ws, &p.dataset, &p.caption_extension),
        p.training_type.word()
    );
    if !p.description.is_empty() {
        let _ = writeln!(out, "- In the artist's words: {}", p.description);
    }
    let st = status::project_status(ws, p)?;
    out.push_str("\n### Gates\n\n");
    for g in &st.gates {
        let state = match g.state {
            status::GateState::NotRun => "not run",
            status::GateState::Pass => "PASS",
            status::GateState::Fail => "FAIL",
            status::GateState::Stale => "STALE",
        };
        let _ = write!(out, "- {} — {state}: {}", g.title, g.reason);
        if !g.reason.contains(&g.resource_uri) {
            let _ = write!(out, " ({})", g.resource_uri);
        }
        out.push('\n');
    }
    let _ = writeln!(out, "- Next step: {}", st.next_step);
    if let Some(done) = register::completion(ws, &p.name)? {
        let _ = writeln!(
            out,
            "- {}: `{}` registered at {}",
            done.status, done.lora, done.completed_at
        );
    }
    out.push('\n');
    Ok(())
}

fn folder_words_ext(ws: &Workspace, folder: &str, ext: &str) -> String {
    let Ok(dir) = ws.resolve(folder) else {
        return format!("`{folder}` (outside the workspace)");
    };
    match count_pictures(ws, &dir, ext) {
        Ok((pictures, captioned)) => {
            format!("`{folder}`: {pictures} picture(s), {captioned} with a `.{ext}` caption")
        }
        Err(e) => format!(
            "`{folder}` could not be read ({})",
            walk::plain_io_reason(&e)
        ),
    }
}

/// A gate's stored record: its summary and first findings.
fn gate_findings(
    ws: &Workspace,
    p: &Project,
    gate: Gate,
    out: &mut String,
) -> Result<Option<GateRecord>, BriefingError> {
    let Some(rec) = gates::load(ws, &p.name, gate)? else {
        return Ok(None);
    };
    let _ = writeln!(
        out,
        "### Gate {} record ({}, {})\n",
        rec.number,
        match rec.status {
            GateStatus::Pass => "PASS",
            GateStatus::Fail => "FAIL",
        },
        rec.checked_at
    );
    // The gates list above already shows a summary that is the gate's reason.
    if !rec.summary.is_empty() && !out.contains(&rec.summary) {
        let _ = writeln!(out, "{}\n", rec.summary);
    }
    for f in rec.findings.iter().take(MAX_FINDINGS) {
        let _ = write!(out, "- [{}] {} — {}", f.severity, f.message, f.what_to_do);
        if let Some(files) = f.files_line() {
            let _ = write!(out, " (files: {files})");
        }
        out.push('\n');
    }
    if rec.findings.len() > MAX_FINDINGS {
        let _ = writeln!(
            out,
            "- … and {} more findings in {}",
            rec.findings.len() - MAX_FINDINGS,
            gates::uri(&p.name, gate)
        );
    }
    out.push('\n');
    Ok(Some(rec))
}

fn intent_part(p: &Project, out: &mut String) {
    out.push_str("### Content and style, as recorded\n\n");
    for note in intent::caption_notes(p.training_type) {
        let _ = writeln!(out, "- {note}");
    }
    out.push('\n');
}

fn captions_part(ws: &Workspace, p: &Project, out: &mut String) -> Result<(), BriefingError> {
    if let Ok(model) = catalog::lookup(&p.base_model) {
        let format = match model.caption_format {
            CaptionFormat::Tags => "comma-separated tags",
            CaptionFormat::NaturalLanguage => "plain sentences",
        };
        let _ = writeln!(
            out,
            "### Caption rules for {}\n\nFormat: {format}.\n\n{}\n",
            model.name,
            caption_rules::instructions(model, p.training_type, &p.trigger_word)
        );
    }
    out.push_str("### Content and style\n\n");
    for note in intent::caption_notes(p.training_type) {
        let _ = writeln!(out, "- {note}");
    }
    out.push('\n');
    let state = captioning::load_state(ws, &p.name)?;
    out.push_str("### Samples and approvals\n\n");
    if state.samples.is_empty() {
        out.push_str("- No samples chosen yet: caption_preview picks a few varied pictures.\n");
    } else {
        let _ = writeln!(
            out,
            "- Samples shown so far ({}): {}",
            state.samples.len(),
            quoted(&state.samples)
        );
    }
    if state.approved.is_empty() {
        out.push_str(
            "- No caption approved yet: the rest of the set cannot be captioned until one is.\n",
        );
    } else {
        let _ = writeln!(out, "- Approved captions ({}):", state.approved.len());
        for a in state.approved.iter().take(MAX_CAPTIONS) {
            let _ = writeln!(out, "  - `{}`: {}", a.path, a.caption);
        }
        if state.approved.len() > MAX_CAPTIONS {
            let _ = writeln!(
                out,
                "  - … and {} more",
                state.approved.len() - MAX_CAPTIONS
            );
        }
    }
    out.push('\n');
    gate_findings(ws, p, Gate::Dataset, out)?;
    Ok(())
}

fn quoted(items: &[String]) -> String {
    items
        .iter()
        .map(|s| format!("`{s}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn plan_part(ws: &Workspace, p: &Project, out: &mut String) -> Result<(), BriefingError> {
    let Some(plan) = load_plan(ws, &p.name)? else {
        out.push_str("### Plan\n\nNo plan yet: plan_training makes one (tell it the artist's GPU, or that they will rent one).\n\n");
        return Ok(());
    };
    let _ = writeln!(
        out,
        "### Plan, parameter by parameter{}\n",
        plan.gpu
            .as_deref()
            .map(|g| format!(" (sized for {g})"))
            .unwrap_or_default()
    );
    match catalog::lookup(&plan.base_model) {
        Ok(model) => {
            for line in explain_parameters(&plan, model) {
                let _ = writeln!(
                    out,
                    "- **{}**: {} — {}",
                    line.name, line.value, line.meaning
                );
            }
        }
        Err(e) => {
            let _ = writeln!(out, "- The plan's base model cannot be read: {e}");
        }
    }
    out.push('\n');
    gate_findings(ws, p, Gate::Config, out)?;
    Ok(())
}

/// The newest run, in a few lines.
fn run_part(run: &RunRecord, out: &mut String, with_tail: bool) {
    let _ = writeln!(out, "### Newest training run\n\n{}\n", run.plain_summary());
    if let Some(s) = run.seconds_per_step {
        let _ = writeln!(out, "- {s:.2} s per step");
    }
    if with_tail && !run.tail.is_empty() {
        out.push_str("- The trainer's last lines:\n\n```text\n");
        let skip = run.tail.len().saturating_sub(MAX_TAIL_LINES);
        for line in &run.tail[skip..] {
            let _ = writeln!(out, "{}", clip(line, MAX_LINE_CHARS));
        }
        out.push_str("```\n");
    }
    out.push('\n');
}

/// A report quoted as a markdown block quote, so its headings stay inside it.
fn quote(text: &str) -> String {
    text.trim_end()
        .lines()
        .map(|l| {
            if l.is_empty() {
                ">".to_string()
            } else {
                format!("> {l}")
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn clip(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_string(),
    }
}

/// The LoRA files beside the newest run's final one (its checkpoints).
fn checkpoint_files(ws: &Workspace, p: &Project) -> Vec<String> {
    let Some(last) = eval::final_lora(ws, &p.name) else {
        return Vec::new();
    };
    let Some(dir) = last.parent() else {
        return Vec::new();
    };
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<String> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|f| f.extension().is_some_and(|e| e == "safetensors"))
        .map(|f| ws.display_path(&f))
        .collect();
    files.sort();
    files
}

fn evaluation_part(ws: &Workspace, p: &Project, out: &mut String) -> Result<(), BriefingError> {
    if let Some(run) = list_runs(&ws.project_dir(&p.name)?).first() {
        run_part(run, out, false);
    } else {
        out.push_str("### Training\n\nNo training run is recorded for this project.\n\n");
    }
    let files = checkpoint_files(ws, p);
    if !files.is_empty() {
        let _ = writeln!(
            out,
            "### LoRA files of the newest run\n\n{}\n",
            files
                .iter()
                .map(|f| format!("- `{f}`"))
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
    let eval_md = ws.project_dir(&p.name)?.join("eval.md");
    match std::fs::read_to_string(&eval_md) {
        Ok(text) => {
            let _ = writeln!(
                out,
                "### The evaluation ({})\n\n{}\n",
                ws.display_path(&eval_md),
                quote(&clip(&text, MAX_EVAL_CHARS))
            );
        }
        Err(_) => out.push_str("### The evaluation\n\nNo evaluation yet: eval_grid renders the LoRA at several weights through ComfyUI and writes eval.md.\n\n"),
    }
    Ok(())
}

fn failure_part(ws: &Workspace, p: &Project, out: &mut String) -> Result<(), BriefingError> {
    match list_runs(&ws.project_dir(&p.name)?).first() {
        Some(run) => run_part(run, out, true),
        None => out.push_str("### Training\n\nNo training run is recorded: what follows is the dry run and the plan.\n\n"),
    }
    if let Some(plan) = load_plan(ws, &p.name)? {
        let _ = writeln!(
            out,
            "### What the run was asked to do\n\n- {} pictures × {} repeats × {} epochs ÷ batch {} = {} steps\n- rank {}, alpha {}, {} at learning rate {:e}, {} precision, resolution {}\n- a checkpoint every {} epoch(s)\n",
            plan.image_count(),
            plan.repeats,
            plan.epochs,
            plan.batch_size,
            plan.total_steps(),
            plan.rank,
            plan.alpha,
            plan.optimizer.word(),
            plan.learning_rate,
            format!("{:?}", plan.precision).to_lowercase(),
            plan.size_words(),
            plan.save_every_epochs
        );
    }
    if let Some(rec) = gate_findings(ws, p, Gate::DryRun, out)?
        && let Some(details) = &rec.details
    {
        let text = serde_json::to_string(details).unwrap_or_default();
        let _ = writeln!(out, "Dry-run measurements: `{}`\n", clip(&text, 1200));
    }
    gate_findings(ws, p, Gate::Dataset, out)?;
    let eval_md = ws.project_dir(&p.name)?.join("eval.md");
    if let Ok(text) = std::fs::read_to_string(&eval_md) {
        let _ = writeln!(
            out,
            "### The evaluation so far ({})\n\n{}\n",
            ws.display_path(&eval_md),
            quote(&clip(&text, MAX_EVAL_CHARS / 2))
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn workspace() -> (tempfile::TempDir, Workspace) {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().canonicalize().unwrap();
        let ws = Workspace::open(&root).unwrap();
        (tmp, ws)
    }

    #[test]
    fn a_phase_past_the_interview_needs_a_project_that_exists() {
        let (_tmp, ws) = workspace();
        let err = briefing(&ws, Phase::Plan, Some("foxes"), None).unwrap_err();
        assert_eq!(err.to_string(), "there is no project named `foxes`");
        assert!(err.hint().unwrap().contains("start_project"));
        assert!(matches!(
            briefing(&ws, Phase::Failure, None, None),
            Err(BriefingError::NoProjectGiven { .. })
        ));
        assert!(matches!(
            briefing(&ws, Phase::Captions, Some("../up"), None),
            Err(BriefingError::Studio(_))
        ));
    }

    #[test]
    fn the_interview_before_a_project_counts_the_pictures_named() {
        let (_tmp, ws) = workspace();
        let dir = ws.root().join("pics");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("a.png"), b"x").unwrap();
        std::fs::write(dir.join("a.txt"), b"zkfox").unwrap();
        std::fs::write(dir.join("b.jpg"), b"x").unwrap();
        let text = briefing(&ws, Phase::Intent, Some("foxes"), Some("pics")).unwrap();
        assert!(text.contains("no project `foxes` yet"), "{text}");
        assert!(
            text.contains("`pics` holds 2 picture(s), 1 with a `.txt` caption"),
            "{text}"
        );
        let outside = briefing(&ws, Phase::Intent, None, Some("../elsewhere")).unwrap();
        assert!(
            outside.contains("`../elsewhere` cannot be used"),
            "{outside}"
        );
    }

    #[test]
    fn a_long_line_is_clipped_on_a_character_boundary() {
        assert_eq!(clip("héllo", 2), "hé…");
        assert_eq!(clip("hi", 5), "hi");
    }
}
