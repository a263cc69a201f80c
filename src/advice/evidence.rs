//! What a finished (or stopped) training run left behind, gathered for a
//! diagnosis: its record (`runs/<id>/run.json`), its loss series (read from
//! `train.log` with the monitor's own step parser, since the record keeps
//! only the first and last loss), the plan it ran (epochs, repeats, batch,
//! learning rate), the captions it learned from, and the checkpoints in its
//! output folder. Only reads.

use std::path::Path;

use serde::Serialize;

use crate::backends;
use crate::dataset::captions::read_caption_text;
use crate::plan::training::{Optimizer, TrainingPlan, load_plan};
use crate::run::launch::{RunRecord, RunState, list_runs};
use crate::run::progress::parse_step;
use crate::studio::project::{Project, TrainingType};
use crate::studio::{StudioError, Workspace};

/// How the loss moved over the run.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct LossTrend {
    /// Steps with a loss read from the log.
    pub points: usize,
    /// Mean loss of the first quarter of the run.
    pub early: f64,
    /// Of the third quarter.
    pub late_middle: f64,
    /// Of the last quarter.
    pub end: f64,
    /// The step where the loss first became NaN or infinite.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nan_at_step: Option<u64>,
    /// The spread of the last half relative to its mean (0 = smooth).
    pub jitter: f64,
}

impl LossTrend {
    /// Still dropping over the last quarter: more training would learn more.
    pub fn still_falling(&self) -> bool {
        self.end < self.late_middle * 0.9
    }

    /// Far below where it started: the pictures are being memorised.
    pub fn fell_far(&self) -> bool {
        self.end < self.early * 0.5
    }

    /// From a series of (step, loss); `None` with fewer than 8 points.
    pub fn of(series: &[(u64, f64)]) -> Option<LossTrend> {
        let nan_at_step = series.iter().find(|(_, l)| !l.is_finite()).map(|(s, _)| *s);
        let finite: Vec<f64> = series
            .iter()
            .map(|(_, l)| *l)
            .filter(|l| l.is_finite())
            .collect();
        if finite.len() < 8 {
            return nan_at_step.map(|s| LossTrend {
                points: series.len(),
                early: f64::NAN,
                late_middle: f64::NAN,
                end: f64::NAN,
                nan_at_step: Some(s),
                jitter: 0.0,
            });
        }
        let n = finite.len();
        let mean = |part: &[f64]| part.iter().sum::<f64>() / part.len().max(1) as f64;
        let early = mean(&finite[..n / 4]);
        let late_middle = mean(&finite[n / 2..n * 3 / 4]);
        let end = mean(&finite[n * 3 / 4..]);
        let half = &finite[n / 2..];
        let m = mean(half);
        let var = half.iter().map(|l| (l - m).powi(2)).sum::<f64>() / half.len() as f64;
        Some(LossTrend {
            points: series.len(),
            early,
            late_middle,
            end,
            nan_at_step,
            jitter: if m > 0.0 { var.sqrt() / m } else { 0.0 },
        })
    }
}

/// The captions' numbers.
#[derive(Debug, Clone, Default, Serialize, schemars::JsonSchema)]
pub struct CaptionStats {
    pub captions: usize,
    /// Captions that contain the trigger word.
    pub with_trigger: usize,
    /// Captions that name a colour.
    pub with_colour_words: usize,
    pub mean_words: f64,
    /// Words (besides the trigger) in at least 80% of the captions: the
    /// model ties them to the trigger.
    pub in_almost_every_caption: Vec<String>,
}

/// A checkpoint file the run saved.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Checkpoint {
    /// Relative to the workspace.
    pub file: String,
    /// The epoch it was saved at, when its name says (the final one has none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub epoch: Option<u32>,
}

/// Everything the diagnosis reasons from.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Evidence {
    pub project: String,
    pub training_type: TrainingType,
    pub base_model: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_state: Option<RunState>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_failure: Option<String>,
    pub steps_done: u64,
    pub total_steps: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub loss: Option<LossTrend>,
    pub pictures: u32,
    pub repeats: u32,
    pub epochs: u32,
    pub batch_size: u32,
    pub save_every_epochs: u32,
    pub resolution: u32,
    pub learning_rate: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub optimizer: Option<Optimizer>,
    /// How many times training showed each picture (repeats × epochs done).
    pub views_per_picture: f64,
    pub captions: CaptionStats,
    pub checkpoints: Vec<Checkpoint>,
}

impl Evidence {
    /// Steps in one epoch, when known.
    pub fn steps_per_epoch(&self) -> Option<u64> {
        (self.epochs > 0 && self.total_steps > 0).then(|| self.total_steps / u64::from(self.epochs))
    }
}

/// Why there is nothing to reason from.
#[derive(Debug, thiserror::Error)]
pub enum EvidenceError {
    #[error("project `{project}` has no run `{run}`")]
    NoSuchRun {
        project: String,
        run: String,
        runs: Vec<String>,
    },
    #[error(transparent)]
    Studio(#[from] StudioError),
}

/// Gathers the evidence for `project`'s run `run` (the newest by default).
/// A project without a run or a plan still gives what it has: the
/// diagnosis says what it could not see.
pub fn gather(
    ws: &Workspace,
    project: &Project,
    run: Option<&str>,
) -> Result<Evidence, EvidenceError> {
    let project_dir = ws.project_dir(&project.name)?;
    let runs = list_runs(&project_dir);
    let record: Option<RunRecord> = match run {
        Some(id) => Some(runs.iter().find(|r| r.id == id).cloned().ok_or_else(|| {
            EvidenceError::NoSuchRun {
                project: project.name.clone(),
                run: id.to_string(),
                runs: runs.iter().map(|r| r.id.clone()).collect(),
            }
        })?),
        None => runs.first().cloned(),
    };
    let plan = load_plan(ws, &project.name)?;
    let series = record
        .as_ref()
        .map(|r| loss_series(&ws.root().join(&r.log_file), r))
        .unwrap_or_default();
    let loss = LossTrend::of(&series);
    let pictures = plan
        .as_ref()
        .map(|p| p.image_folders.iter().map(|f| f.images).sum())
        .unwrap_or(0);
    let (repeats, epochs, batch, save_every, resolution, lr, optimizer) = match &plan {
        Some(p) => (
            p.repeats,
            p.epochs,
            p.batch_size,
            p.save_every_epochs,
            p.resolution,
            p.learning_rate,
            Some(p.optimizer),
        ),
        None => (0, 0, 0, 0, 0, 0.0, None),
    };
    let (steps_done, total_steps) = record
        .as_ref()
        .map(|r| (r.steps_done, r.total_steps))
        .unwrap_or((0, 0));
    let views_per_picture = if record.is_some() && pictures > 0 && batch > 0 {
        steps_done as f64 * f64::from(batch) / f64::from(pictures)
    } else {
        f64::from(repeats) * f64::from(epochs)
    };
    Ok(Evidence {
        project: project.name.clone(),
        training_type: project.training_type,
        base_model: project.base_model.clone(),
        run_id: record.as_ref().map(|r| r.id.clone()),
        run_state: record.as_ref().map(|r| r.state),
        run_failure: record.as_ref().and_then(|r| r.failure.clone()),
        steps_done,
        total_steps,
        loss,
        pictures,
        repeats,
        epochs,
        batch_size: batch,
        save_every_epochs: save_every,
        resolution,
        learning_rate: lr,
        optimizer,
        views_per_picture,
        captions: caption_stats(ws, project, plan.as_ref()),
        checkpoints: checkpoints(ws, &project.name),
    })
}

/// (step, loss) from a trainer's log, each step once (its last report).
pub fn loss_series(log: &Path, record: &RunRecord) -> Vec<(u64, f64)> {
    let Ok(bytes) = std::fs::read(log) else {
        return Vec::new();
    };
    let text = String::from_utf8_lossy(&bytes);
    let mut series: Vec<(u64, f64)> = Vec::new();
    // tqdm rewrites its line with `\r`: every update is a report.
    for line in text.split(['\n', '\r']) {
        if let Some(step) = parse_step(record.backend, line)
            && let Some(loss) = step.loss
        {
            match series.last_mut() {
                Some(last) if last.0 == step.step => last.1 = loss,
                _ => series.push((step.step, loss)),
            }
        }
    }
    series
}

/// Words that name a colour, as captions write them.
const COLOUR_WORDS: &[&str] = &[
    "red",
    "orange",
    "yellow",
    "green",
    "blue",
    "purple",
    "violet",
    "pink",
    "brown",
    "black",
    "white",
    "grey",
    "gray",
    "teal",
    "cyan",
    "magenta",
    "gold",
    "golden",
    "silver",
    "beige",
    "ochre",
    "crimson",
    "scarlet",
    "navy",
    "turquoise",
    "maroon",
    "amber",
    "pastel",
    "monochrome",
    "colorful",
    "colourful",
    "blonde",
    "sepia",
    "indigo",
    "lavender",
    "olive",
    "coral",
    "tan",
];

fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

/// Whether a caption names a colour.
pub fn names_a_colour(caption: &str) -> bool {
    words(caption)
        .iter()
        .any(|w| COLOUR_WORDS.contains(&w.as_str()))
}

fn caption_stats(ws: &Workspace, project: &Project, plan: Option<&TrainingPlan>) -> CaptionStats {
    let folders: Vec<String> = match plan {
        Some(p) if !p.image_folders.is_empty() => {
            p.image_folders.iter().map(|f| f.path.clone()).collect()
        }
        _ => vec![project.dataset.clone()],
    };
    let ext = plan
        .map(|p| p.caption_extension.clone())
        .unwrap_or_else(|| project.caption_extension.clone());
    let mut texts = Vec::new();
    for folder in folders {
        let Ok(dir) = ws.resolve(&folder) else {
            continue;
        };
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue;
        };
        let mut files: Vec<_> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e.to_string_lossy() == ext))
            .collect();
        files.sort();
        texts.extend(files.iter().filter_map(|f| read_caption_text(f).ok()));
    }
    let trigger = project.trigger_word.to_lowercase();
    let n = texts.len();
    let mut counts: std::collections::BTreeMap<String, usize> = Default::default();
    let mut total_words = 0;
    let mut with_trigger = 0;
    let mut with_colour = 0;
    for t in &texts {
        let ws_ = words(t);
        total_words += ws_.len();
        if ws_.contains(&trigger) {
            with_trigger += 1;
        }
        if names_a_colour(t) {
            with_colour += 1;
        }
        let unique: std::collections::BTreeSet<String> = ws_.into_iter().collect();
        for w in unique {
            *counts.entry(w).or_default() += 1;
        }
    }
    const FILLER: &[&str] = &[
        "a", "an", "the", "of", "in", "on", "with", "and", "is", "at",
    ];
    let in_almost_every_caption = if n >= 5 {
        counts
            .into_iter()
            .filter(|(w, c)| *w != trigger && !FILLER.contains(&w.as_str()) && *c * 5 >= n * 4)
            .map(|(w, _)| w)
            .take(8)
            .collect()
    } else {
        Vec::new()
    };
    CaptionStats {
        captions: n,
        with_trigger,
        with_colour_words: with_colour,
        mean_words: if n > 0 {
            total_words as f64 / n as f64
        } else {
            0.0
        },
        in_almost_every_caption,
    }
}

/// The `.safetensors` files in the output folder of the configs last
/// generated, oldest epoch first.
fn checkpoints(ws: &Workspace, project: &str) -> Vec<Checkpoint> {
    let Ok(Some(generated)) = backends::load_manifest(ws, project) else {
        return Vec::new();
    };
    let Ok(dir) = ws.resolve(&generated.output_dir) else {
        return Vec::new();
    };
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut found: Vec<Checkpoint> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "safetensors"))
        .map(|p| {
            let stem = p
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            // kohya `name-000004`, SimpleTuner and ai-toolkit `..._4` / `-step00000400`.
            let digits: String = stem
                .chars()
                .rev()
                .take_while(char::is_ascii_digit)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            Checkpoint {
                file: ws.display_path(&p),
                epoch: (!digits.is_empty() && !stem.contains("step"))
                    .then(|| digits.parse().ok())
                    .flatten(),
            }
        })
        .collect();
    found.sort_by_key(|c| (c.epoch.is_none(), c.epoch));
    found
}
