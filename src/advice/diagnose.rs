//! Why a trained LoRA disappoints: the symptoms the artist describes (free
//! words, matched to a fixed list) weighed with the run's evidence (loss,
//! how often each picture was seen, captions, learning rate) into causes,
//! ranked, each with its fix and the checkpoint to try first.
//!
//! [`match_symptoms`] and [`rank`] are pure; [`diagnose`] gathers the
//! evidence ([`super::evidence`]) and calls them.

use serde::Serialize;

use super::evidence::{self, Evidence, EvidenceError};
use crate::dataset::intent::{IntentError, require_project};
use crate::plan::training::Optimizer;
use crate::studio::{Hint, Workspace};

/// What the artist sees in the results.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Symptom {
    CopiesTrainingPictures,
    BurnedOrOversaturated,
    IgnoresThePrompt,
    IgnoresTheTrigger,
    OnlyWorksAtFullStrength,
    WrongColours,
    Blurry,
    BlackOrNoise,
}

impl Symptom {
    pub const ALL: [Symptom; 8] = [
        Symptom::CopiesTrainingPictures,
        Symptom::BurnedOrOversaturated,
        Symptom::IgnoresThePrompt,
        Symptom::IgnoresTheTrigger,
        Symptom::OnlyWorksAtFullStrength,
        Symptom::WrongColours,
        Symptom::Blurry,
        Symptom::BlackOrNoise,
    ];

    pub fn words(self) -> &'static str {
        match self {
            Symptom::CopiesTrainingPictures => "copies the training pictures",
            Symptom::BurnedOrOversaturated => "burned, oversaturated or full of artefacts",
            Symptom::IgnoresThePrompt => {
                "ignores the prompt (always the same pose, outfit or scene)"
            }
            Symptom::IgnoresTheTrigger => "the trigger word does little or nothing",
            Symptom::OnlyWorksAtFullStrength => "only works at strength 1.0 or above",
            Symptom::WrongColours => "wrong colours, a colour cast or washed-out colours",
            Symptom::Blurry => "blurry or soft, little detail",
            Symptom::BlackOrNoise => "black pictures or pure noise",
        }
    }

    /// Phrases (lowercase) that name it.
    fn phrases(self) -> &'static [&'static str] {
        match self {
            Symptom::CopiesTrainingPictures => &[
                "copies",
                "copy ",
                "copying",
                "memoris",
                "memoriz",
                "same as the training",
                "training picture",
                "training image",
                "identical",
                "overfit",
                "replica",
                "duplicates my",
            ],
            Symptom::BurnedOrOversaturated => &[
                "burn",
                "fried",
                "oversatur",
                "over-satur",
                "too saturated",
                "too much contrast",
                "harsh",
                "artifact",
                "artefact",
                "crispy",
            ],
            Symptom::IgnoresThePrompt => &[
                "ignores my prompt",
                "ignores the prompt",
                "can't change",
                "cannot change",
                "always the same",
                "everything looks the same",
                "same pose",
                "same face",
                "inflexible",
                "rigid",
                "won't change",
                "stuck",
            ],
            Symptom::IgnoresTheTrigger => &[
                "trigger",
                "no effect",
                "nothing changes",
                "does nothing",
                "doesn't do",
                "not working",
                "doesn't work",
                "weak",
                "like the base model",
                "barely",
                "doesn't look like",
                "does not look like",
                "not learn",
                "didn't learn",
            ],
            Symptom::OnlyWorksAtFullStrength => &[
                "only at 1",
                "only works at 1",
                "full strength",
                "strength of 1",
                "strength 1",
                "weight 1",
                "at 1.0",
                "above 1",
                "1.2",
                "1.5",
            ],
            Symptom::WrongColours => &[
                "colour",
                "color",
                "tint",
                "washed",
                "hue",
                "palette",
                "desaturat",
                "cast",
                "too orange",
                "too green",
                "too blue",
                "too red",
                "too yellow",
                "sepia",
            ],
            Symptom::Blurry => &[
                "blur",
                "soft",
                "fuzzy",
                "low detail",
                "lack detail",
                "no detail",
                "smudg",
                "mushy",
                "out of focus",
            ],
            Symptom::BlackOrNoise => &[
                "black",
                "noise",
                "nan",
                "static",
                "blank",
                "grey square",
                "gray square",
                "garbage",
                "solid colour",
            ],
        }
    }
}

/// The symptoms named in `text`, in the list's order. A phrase matches
/// from the start of a word (`burn` finds `burned`; `nan` does not find
/// `dominant`, nor `cast` `forecast`).
pub fn match_symptoms(text: &str) -> Vec<Symptom> {
    let spaced: String = text
        .to_lowercase()
        .replace('\u{2019}', "'")
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || c == '.' || c == '\'' || c == '-' {
                c
            } else {
                ' '
            }
        })
        .collect();
    let t = format!(
        " {} ",
        spaced.split_whitespace().collect::<Vec<_>>().join(" ")
    );
    Symptom::ALL
        .into_iter()
        .filter(|s| {
            s.phrases()
                .iter()
                .any(|p| t.contains(&format!(" {}", p.trim_end())))
        })
        .collect()
}

/// A reason a LoRA turns out badly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Cause {
    LossBecameNan,
    Overtrained,
    Undertrained,
    ColoursNotInCaptions,
    LearningRateTooHigh,
    TriggerNotInCaptions,
    RunStoppedEarly,
    TooFewPictures,
    ResolutionTooLow,
}

impl Cause {
    fn title(self) -> &'static str {
        match self {
            Cause::LossBecameNan => "the training broke down numerically (the loss became NaN)",
            Cause::Overtrained => "trained too long: it memorised the pictures",
            Cause::Undertrained => "not trained enough: it has not learned the concept yet",
            Cause::ColoursNotInCaptions => {
                "the captions never name colours, so the colours were learned into the trigger"
            }
            Cause::LearningRateTooHigh => "the learning rate is too high",
            Cause::TriggerNotInCaptions => {
                "the trigger word is not tied to the concept in the captions"
            }
            Cause::RunStoppedEarly => "the run stopped before the end",
            Cause::TooFewPictures => "too few (or too similar) pictures",
            Cause::ResolutionTooLow => "trained below the model's own resolution",
        }
    }
}

/// Where to look first before retraining.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct CheckpointAdvice {
    /// The epoch to try, when one is better than the last.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub epoch: Option<u32>,
    /// The file, when the run's output folder has it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    pub words: String,
}

/// One likely cause.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct RankedCause {
    pub cause: Cause,
    pub title: String,
    /// `likely`, `possible` or `less likely`.
    pub likelihood: &'static str,
    pub score: i32,
    /// What points to it: the artist's words and the run's numbers.
    pub why: Vec<String>,
    pub fix: String,
    pub checkpoint: CheckpointAdvice,
}

/// The answer.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Diagnosis {
    pub project: String,
    pub symptoms: Vec<Symptom>,
    /// Set when the artist's words matched nothing on the list.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unmatched: Option<String>,
    /// Most likely first.
    pub causes: Vec<RankedCause>,
    pub evidence: Evidence,
}

impl Diagnosis {
    pub fn plain_summary(&self) -> String {
        let mut s = String::new();
        if let Some(u) = &self.unmatched {
            s.push_str(u);
            s.push(' ');
        }
        match self.causes.first() {
            None => s.push_str(&format!(
                "Nothing in the run of `{}` points to a cause. Describe what looks wrong in the pictures (copies the training pictures, burned, wrong colours, blurry, the trigger does nothing …).",
                self.project
            )),
            Some(top) => {
                s.push_str(&format!(
                    "Most likely for `{}`: {} ({}). Fix: {} Checkpoint: {}",
                    self.project,
                    top.title,
                    top.why.join("; "),
                    top.fix,
                    top.checkpoint.words
                ));
                let others: Vec<String> = self.causes[1..]
                    .iter()
                    .map(|c| format!("{} ({})", c.title, c.likelihood))
                    .collect();
                if !others.is_empty() {
                    s.push_str(&format!(" Also consider: {}.", others.join("; ")));
                }
            }
        }
        s
    }
}

/// Why no diagnosis could be made.
#[derive(Debug, thiserror::Error)]
pub enum DiagnoseError {
    #[error(transparent)]
    Project(#[from] IntentError),
    #[error(transparent)]
    Evidence(#[from] EvidenceError),
}

impl Hint for DiagnoseError {
    fn hint(&self) -> Option<String> {
        match self {
            DiagnoseError::Project(e) => e.hint(),
            DiagnoseError::Evidence(EvidenceError::NoSuchRun { runs, .. }) if runs.is_empty() => {
                Some("this project has no runs yet; leave `run` out to diagnose from the plan and captions".into())
            }
            DiagnoseError::Evidence(EvidenceError::NoSuchRun { runs, .. }) => Some(format!(
                "its runs are: {}; leave `run` out for the newest",
                runs.join(", ")
            )),
            DiagnoseError::Evidence(EvidenceError::Studio(e)) => e.hint(),
        }
    }
}

/// How many causes an answer lists.
pub const MAX_CAUSES: usize = 5;

/// Diagnoses `project`'s run (the newest unless `run` is given) from the
/// artist's `symptoms`.
pub fn diagnose(
    ws: &Workspace,
    project: &str,
    symptoms: &str,
    run: Option<&str>,
) -> Result<Diagnosis, DiagnoseError> {
    let p = require_project(ws, project)?;
    let evidence = evidence::gather(ws, &p, run)?;
    let matched = match_symptoms(symptoms);
    let unmatched = (!symptoms.trim().is_empty() && matched.is_empty()).then(|| {
        format!(
            "None of the artist's words matched a known symptom ({}); this reads the run alone.",
            Symptom::ALL.map(Symptom::words).join(", ")
        )
    });
    let causes = rank(&matched, &evidence);
    Ok(Diagnosis {
        project: p.name,
        symptoms: matched,
        unmatched,
        causes,
        evidence,
    })
}

/// Views per picture below this: not trained enough for most LoRAs.
const FEW_VIEWS: f64 = 40.0;
const VERY_FEW_VIEWS: f64 = 20.0;
/// Above this: memorising, for most LoRAs.
const MANY_VIEWS: f64 = 250.0;
const VERY_MANY_VIEWS: f64 = 400.0;
/// Where a retrain should aim.
const GOOD_VIEWS: f64 = 120.0;

/// A learning rate more than twice the usual for its optimizer.
fn usual_learning_rate(optimizer: Option<Optimizer>) -> Option<f64> {
    match optimizer? {
        Optimizer::AdamW | Optimizer::AdamW8bit | Optimizer::Adafactor => Some(1e-4),
        Optimizer::Lion | Optimizer::Lion8bit => Some(3e-5),
        Optimizer::Prodigy => Some(1.0),
    }
}

/// Scores every cause and keeps those with something for them, best first.
pub fn rank(symptoms: &[Symptom], e: &Evidence) -> Vec<RankedCause> {
    let has = |s: Symptom| symptoms.contains(&s);
    let said = |s: Symptom| format!("the artist sees: {}", s.words());
    let views = e.views_per_picture;
    let known_views = views > 0.0;
    let loss = e.loss.as_ref();
    let nan_step = loss.and_then(|l| l.nan_at_step).or_else(|| {
        e.run_failure
            .as_deref()
            .filter(|f| f.to_lowercase().contains("nan"))
            .map(|_| e.steps_done)
    });
    let mut out = Vec::new();
    let mut consider = |cause: Cause, score: i32, why: Vec<String>| {
        if score > 0 && !why.is_empty() {
            out.push((cause, score, why));
        }
    };

    // NaN: the strongest evidence there is.
    {
        let (mut score, mut why) = (0, Vec::new());
        if let Some(step) = nan_step {
            score += 6;
            why.push(format!("the loss became NaN at step {step}"));
        }
        if has(Symptom::BlackOrNoise) {
            score += 3;
            why.push(said(Symptom::BlackOrNoise));
        }
        consider(Cause::LossBecameNan, score, why);
    }
    // Overtrained.
    {
        let (mut score, mut why) = (0, Vec::new());
        for s in [
            Symptom::CopiesTrainingPictures,
            Symptom::BurnedOrOversaturated,
            Symptom::IgnoresThePrompt,
        ] {
            if has(s) {
                score += 3;
                why.push(said(s));
            }
        }
        if known_views && views > VERY_MANY_VIEWS {
            score += 3;
            why.push(format!(
                "each picture was seen about {views:.0} times (more than {VERY_MANY_VIEWS:.0} memorises)"
            ));
        } else if known_views && views > MANY_VIEWS {
            score += 2;
            why.push(format!(
                "each picture was seen about {views:.0} times (more than {MANY_VIEWS:.0} tends to memorise)"
            ));
        } else if known_views && views < FEW_VIEWS {
            score -= 3;
        }
        if let Some(l) = loss.filter(|l| l.fell_far()) {
            score += 1;
            why.push(format!(
                "the loss fell from {:.3} to {:.3}, far below where it started",
                l.early, l.end
            ));
        }
        consider(Cause::Overtrained, score, why);
    }
    // Undertrained.
    {
        let (mut score, mut why) = (0, Vec::new());
        for s in [Symptom::IgnoresTheTrigger, Symptom::OnlyWorksAtFullStrength] {
            if has(s) {
                score += 3;
                why.push(said(s));
            }
        }
        if has(Symptom::Blurry) {
            score += 1;
            why.push(said(Symptom::Blurry));
        }
        if known_views && views < VERY_FEW_VIEWS {
            score += 3;
            why.push(format!(
                "each picture was seen only about {views:.0} times (under {VERY_FEW_VIEWS:.0} is rarely enough)"
            ));
        } else if known_views && views < FEW_VIEWS {
            score += 2;
            why.push(format!(
                "each picture was seen only about {views:.0} times (under {FEW_VIEWS:.0} is often not enough)"
            ));
        } else if known_views && views > MANY_VIEWS {
            score -= 3;
        }
        if let Some(l) = loss.filter(|l| l.still_falling()) {
            score += 2;
            why.push(format!(
                "the loss was still falling at the end ({:.3} → {:.3} over the last half)",
                l.late_middle, l.end
            ));
        }
        consider(Cause::Undertrained, score, why);
    }
    // Colours.
    {
        let (mut score, mut why) = (0, Vec::new());
        if has(Symptom::WrongColours) {
            score += 3;
            why.push(said(Symptom::WrongColours));
        }
        let c = &e.captions;
        if c.captions > 0 {
            let share = c.with_colour_words as f64 / c.captions as f64;
            if share < 0.05 {
                score += 4;
                why.push(format!(
                    "{} of {} captions name a colour",
                    c.with_colour_words, c.captions
                ));
            } else if share < 0.2 {
                score += 2;
                why.push(format!(
                    "only {} of {} captions name a colour",
                    c.with_colour_words, c.captions
                ));
            } else if share >= 0.5 {
                score -= 2;
            }
        }
        // The palette of a style LoRA is meant to be learned: only a problem when seen.
        if !has(Symptom::WrongColours) {
            score = score.min(0);
        }
        consider(Cause::ColoursNotInCaptions, score, why);
    }
    // Learning rate.
    {
        let (mut score, mut why) = (0, Vec::new());
        if has(Symptom::BurnedOrOversaturated) {
            score += 2;
            why.push(said(Symptom::BurnedOrOversaturated));
        }
        if let Some(usual) = usual_learning_rate(e.optimizer)
            && e.learning_rate > usual * 2.0
        {
            score += 3;
            why.push(format!(
                "the learning rate {} is more than twice the usual {usual} for this optimizer",
                e.learning_rate
            ));
        }
        if let Some(l) = loss.filter(|l| l.jitter > 0.5) {
            score += 1;
            why.push(format!(
                "the loss jumps around (spread {:.0}% of its level)",
                l.jitter * 100.0
            ));
        }
        if nan_step.is_some() {
            score += 1;
            why.push("a NaN loss often follows a learning rate set too high".into());
        }
        if why.len() == 1 && has(Symptom::BurnedOrOversaturated) {
            // Burned alone is overtraining's sign first.
            score -= 1;
        }
        consider(Cause::LearningRateTooHigh, score, why);
    }
    // Trigger.
    {
        let (mut score, mut why) = (0, Vec::new());
        let c = &e.captions;
        if c.captions > 0 && c.with_trigger * 10 < c.captions * 9 {
            score += 3;
            why.push(format!(
                "only {} of {} captions contain the trigger word",
                c.with_trigger, c.captions
            ));
        }
        if !c.in_almost_every_caption.is_empty() {
            score += 1;
            why.push(format!(
                "{} appear in almost every caption, so they share the trigger's meaning",
                c.in_almost_every_caption
                    .iter()
                    .map(|w| format!("`{w}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        if score > 0 {
            for s in [Symptom::IgnoresTheTrigger, Symptom::OnlyWorksAtFullStrength] {
                if has(s) {
                    score += 2;
                    why.push(said(s));
                }
            }
        }
        consider(Cause::TriggerNotInCaptions, score, why);
    }
    // Stopped early.
    {
        let (mut score, mut why) = (0, Vec::new());
        let stopped = matches!(
            e.run_state,
            Some(crate::run::launch::RunState::Failed | crate::run::launch::RunState::Cancelled)
        );
        if e.total_steps > 0 && (stopped || e.steps_done * 10 < e.total_steps * 9) {
            score += 3;
            why.push(format!(
                "the run did {} of its {} steps",
                e.steps_done, e.total_steps
            ));
            if has(Symptom::IgnoresTheTrigger) || has(Symptom::OnlyWorksAtFullStrength) {
                score += 1;
            }
        }
        consider(Cause::RunStoppedEarly, score, why);
    }
    // Too few pictures.
    {
        let (mut score, mut why) = (0, Vec::new());
        if e.pictures > 0 && e.pictures < 10 {
            score += 2;
            why.push(format!("the dataset has {} pictures", e.pictures));
            for s in [Symptom::IgnoresThePrompt, Symptom::CopiesTrainingPictures] {
                if has(s) {
                    score += 1;
                    why.push(said(s));
                }
            }
        }
        consider(Cause::TooFewPictures, score, why);
    }
    // Resolution.
    {
        let (mut score, mut why) = (0, Vec::new());
        let native = if e.base_model == "sd15" { 512 } else { 1024 };
        if e.resolution > 0 && e.resolution < native * 3 / 4 {
            score += 2;
            why.push(format!(
                "it trained at {} px; {} works at {native} px",
                e.resolution, e.base_model
            ));
            if has(Symptom::Blurry) {
                score += 2;
                why.push(said(Symptom::Blurry));
            }
        }
        consider(Cause::ResolutionTooLow, score, why);
    }

    out.sort_by_key(|b| std::cmp::Reverse(b.1));
    out.truncate(MAX_CAUSES);
    out.into_iter()
        .map(|(cause, score, why)| RankedCause {
            cause,
            title: cause.title().to_string(),
            likelihood: if score >= 5 {
                "likely"
            } else if score >= 3 {
                "possible"
            } else {
                "less likely"
            },
            score,
            why,
            fix: fix(cause, e),
            checkpoint: checkpoint(cause, e, nan_step),
        })
        .collect()
}

/// Epochs that would show each picture about `GOOD_VIEWS` times.
fn good_epochs(e: &Evidence) -> Option<u32> {
    (e.repeats > 0).then(|| ((GOOD_VIEWS / f64::from(e.repeats)).round() as u32).max(1))
}

fn fix(cause: Cause, e: &Evidence) -> String {
    match cause {
        Cause::LossBecameNan => format!(
            "Retrain with bf16 (not fp16) if the GPU allows it, a lower learning rate ({}), and the VAE in 32-bit; a NaN run's later checkpoints are broken.",
            if e.learning_rate > 0.0 {
                format!("half of {}", e.learning_rate)
            } else {
                "half of the current one".into()
            }
        ),
        Cause::Overtrained => match good_epochs(e) {
            Some(n) if n < e.epochs => format!(
                "Try an earlier checkpoint first; to retrain, use {n} epochs instead of {} (each picture seen about {GOOD_VIEWS:.0} times instead of {:.0}), or lower the strength to 0.6–0.8.",
                e.epochs, e.views_per_picture
            ),
            _ => "Try an earlier checkpoint or a strength of 0.6–0.8; to retrain, use fewer epochs or a lower learning rate.".into(),
        },
        Cause::Undertrained => match good_epochs(e) {
            Some(n) if n > e.epochs => format!(
                "Retrain with {n} epochs instead of {} (each picture seen about {GOOD_VIEWS:.0} times instead of {:.0}); meanwhile the last checkpoint at strength 1.0–1.2 is the best there is.",
                e.epochs, e.views_per_picture
            ),
            _ => "Retrain longer (more epochs) or with a somewhat higher learning rate; meanwhile use the last checkpoint.".into(),
        },
        Cause::ColoursNotInCaptions => "Name the colours in the captions wherever they vary (`red scarf`, `teal background`) so they stay promptable, then retrain; until then name the colours you want in the prompt and lower the strength to 0.6–0.8.".into(),
        Cause::LearningRateTooHigh => format!(
            "Retrain with half the learning rate{}; keep the epochs.",
            if e.learning_rate > 0.0 {
                format!(" ({})", e.learning_rate / 2.0)
            } else {
                String::new()
            }
        ),
        Cause::TriggerNotInCaptions => "Put the trigger word first in every caption, and describe in the captions what should stay changeable (words in every caption get absorbed into the trigger); then retrain.".into(),
        Cause::RunStoppedEarly => "Read the run's failure (training progress or train.log), fix it, and train again; the last saved checkpoint is only part-trained.".into(),
        Cause::TooFewPictures => "Add pictures that vary what should stay changeable (poses, backgrounds, lighting): 15–30 for a character or object, 20–50 for a style.".into(),
        Cause::ResolutionTooLow => "Retrain at the model's own resolution (upscale small pictures first or remove them).".into(),
    }
}

fn checkpoint(cause: Cause, e: &Evidence, nan_step: Option<u64>) -> CheckpointAdvice {
    let saved: Vec<u32> = if e.save_every_epochs > 0 && e.epochs > 0 {
        (1..=e.epochs)
            .filter(|n| n % e.save_every_epochs == 0)
            .collect()
    } else {
        Vec::new()
    };
    let file_of = |epoch: u32| {
        e.checkpoints
            .iter()
            .find(|c| c.epoch == Some(epoch))
            .map(|c| c.file.clone())
    };
    // The newest saved epoch at or below `target`.
    let at_or_before = |target: u32| saved.iter().copied().filter(|n| *n <= target).max();
    let pick = |epoch: Option<u32>, words: String| CheckpointAdvice {
        file: epoch.and_then(file_of),
        epoch,
        words,
    };
    match cause {
        Cause::Overtrained | Cause::LearningRateTooHigh | Cause::TooFewPictures => {
            let target = if e.views_per_picture > 0.0 && e.repeats > 0 {
                ((GOOD_VIEWS / f64::from(e.repeats)) as u32).clamp(1, e.epochs.max(1))
            } else {
                (e.epochs / 2).max(1)
            };
            match at_or_before(target).or_else(|| saved.first().copied()) {
                Some(n) => pick(
                    Some(n),
                    format!(
                        "try epoch {n} of {} first (earlier, before it memorised), at strength 0.8–1.0",
                        e.epochs
                    ),
                ),
                None => pick(None, "no earlier checkpoint was saved: use the final one at strength 0.6–0.8, and save every epoch or two next time".into()),
            }
        }
        Cause::LossBecameNan => {
            let epoch = nan_step
                .zip(e.steps_per_epoch().filter(|s| *s > 0))
                .map(|(step, per)| (step / per) as u32)
                .and_then(at_or_before)
                .filter(|n| *n > 0);
            match epoch {
                Some(n) => pick(
                    Some(n),
                    format!("epoch {n}, the last one saved before the loss broke"),
                ),
                None => pick(
                    None,
                    "none: no checkpoint was saved before the loss broke".into(),
                ),
            }
        }
        Cause::Undertrained | Cause::RunStoppedEarly => match saved.last() {
            Some(n) => pick(
                Some(*n),
                format!("the last one (epoch {n}), at strength 1.0–1.2, until the retrain"),
            ),
            None => pick(None, "the last one saved".into()),
        },
        Cause::ColoursNotInCaptions => pick(
            None,
            "any: the colours are in every checkpoint; the final one at strength 0.6–0.8 with the colours named in the prompt".into(),
        ),
        Cause::TriggerNotInCaptions | Cause::ResolutionTooLow => {
            pick(None, "none will fix it: this needs a retrain".into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_artists_words_find_their_symptoms() {
        assert_eq!(
            match_symptoms("It just copies my training pictures, same pose every time"),
            [Symptom::CopiesTrainingPictures, Symptom::IgnoresThePrompt]
        );
        assert_eq!(
            match_symptoms("everything has an orange tint"),
            [Symptom::WrongColours]
        );
        assert!(match_symptoms("I like it").is_empty());
        // Inside other words they are not symptoms.
        assert!(match_symptoms("the trigger word is dominant, as forecast").len() == 1);
        assert_eq!(
            match_symptoms("Burned, crispy. Only works at 1.0!"),
            [
                Symptom::BurnedOrOversaturated,
                Symptom::OnlyWorksAtFullStrength
            ]
        );
    }
}
