//! Gate 2 (training plan): PASS when the project's plan validates and its
//! estimated peak fits the GPU with the 20 % margin. The record's fingerprint
//! is the plan's hash, so editing the plan makes the gate stale.

use serde::Serialize;

use super::chain::{ChainError, require_earlier};
use super::{Gate, GateFinding, GateRecord, GateStatus};
use crate::backends::load_manifest;
use crate::plan::gpu::{self, Gpu};
use crate::plan::planner::{PlanError, image_folders};
use crate::plan::training::{Backend, TrainingPlan, load_plan};
use crate::plan::validate::validate;
use crate::plan::vram::{VramEstimate, estimate_vram};
use crate::studio::Hint;
use crate::studio::Workspace;
use crate::studio::project;

/// The Gate 2 decision.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Gate2Report {
    pub project: String,
    /// GO or NO-GO.
    pub decision: String,
    pub status: GateStatus,
    /// The fingerprint recorded: the plan's hash.
    pub plan_hash: String,
    /// The GPU the plan was checked against.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gpu: Option<Gpu>,
    pub vram: VramEstimate,
    /// What blocks training, each with its fix.
    pub blockers: Vec<GateFinding>,
    /// Worth fixing; does not block.
    pub warnings: Vec<GateFinding>,
    pub resource_uri: String,
}

impl Gate2Report {
    pub fn plain_summary(&self) -> String {
        let mut s = format!("Gate 2 for `{}`: {}.", self.project, self.decision);
        match (&self.gpu, self.vram.fits) {
            (Some(g), Some(true)) => s.push_str(&format!(
                " The plan needs about {:.1} GB and fits the {} ({:.0} GB) with the 20 % margin.",
                self.vram.total_gib, g.name, g.vram_gib
            )),
            (Some(g), Some(false)) => s.push_str(&format!(
                " The plan needs about {:.1} GB: too much for the {} ({:.1} GB allowed).",
                self.vram.total_gib,
                g.name,
                self.vram.budget_gib.unwrap_or_default()
            )),
            _ => {}
        }
        for b in &self.blockers {
            s.push_str(&format!(" Blocking: {} — {}.", b.message, b.what_to_do));
        }
        for w in &self.warnings {
            s.push_str(&format!(" Warning: {} — {}.", w.message, w.what_to_do));
        }
        if self.blockers.is_empty() {
            s.push_str(" Next: gate 3 (environment).");
        }
        s
    }
}

fn finding(severity: &str, message: String, what_to_do: String) -> GateFinding {
    GateFinding {
        severity: severity.into(),
        message,
        what_to_do,
        ..GateFinding::default()
    }
}

/// Why Gate 2 could not run.
#[derive(Debug, thiserror::Error)]
pub enum Gate2Error {
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error(transparent)]
    Chain(#[from] ChainError),
}

impl Hint for Gate2Error {
    fn hint(&self) -> Option<String> {
        match self {
            Gate2Error::Plan(e) => e.hint(),
            Gate2Error::Chain(e) => e.hint(),
        }
    }
}

impl From<crate::studio::StudioError> for Gate2Error {
    fn from(e: crate::studio::StudioError) -> Self {
        Gate2Error::Plan(e.into())
    }
}

/// Our engine trains on a GPU only in a build with its CUDA backend; a plan
/// for a GPU in a build without one would fail the moment training starts.
fn engine_cannot_use(plan: &TrainingPlan, gpu: Option<&Gpu>) -> Option<GateFinding> {
    // A plan without a GPU trains the engine on the CPU, which every build can.
    if plan.backend != Backend::Native || cfg!(feature = "cuda") || plan.gpu.is_none() {
        return None;
    }
    let gpu = gpu?;
    Some(finding(
        "blocking",
        format!(
            "the plan trains with the Ategnatos engine on the {}, but this build of Ategnatos has no CUDA backend: the engine would refuse to start",
            gpu.name
        ),
        "install a build with CUDA: `cargo install --path . --features cuda` (it needs the NVIDIA driver and NVRTC where it runs); or plan with another backend (kohya, simple_tuner, ai_toolkit)".into(),
    ))
}

/// Runs Gate 2 for a project against `gpu_name` (or the plan's GPU, or the
/// one the driver reports) and records the result. Gate 1 must have passed.
pub fn run_gate2(
    ws: &Workspace,
    project_name: &str,
    gpu_name: Option<&str>,
) -> Result<Gate2Report, Gate2Error> {
    let project = project::load(ws, project_name)?.ok_or_else(|| PlanError::NoSuchProject {
        name: project_name.to_string(),
    })?;
    let plan = load_plan(ws, project_name)?.ok_or_else(|| PlanError::NoPlan {
        project: project_name.to_string(),
    })?;
    let model = plan.model().map_err(PlanError::from)?;
    let gpu = gpu::resolve(gpu_name.or(plan.gpu.as_deref())).map_err(PlanError::from)?;
    require_earlier(ws, &project, Gate::Config)?;
    let mut blockers = Vec::new();
    let mut warnings = Vec::new();

    let same_model = crate::plan::catalog::lookup(&project.base_model)
        .map(|m| m.id == model.id)
        .unwrap_or(false);
    let drift = [
        (
            "base model",
            &project.base_model,
            &plan.base_model,
            !same_model,
        ),
        (
            "trigger word",
            &project.trigger_word,
            &plan.trigger_word,
            project.trigger_word != plan.trigger_word,
        ),
        (
            "dataset",
            &project.dataset,
            &plan.dataset,
            project.dataset != plan.dataset,
        ),
    ];
    for (what, now, planned, differs) in drift {
        if differs {
            blockers.push(finding(
                "blocking",
                format!(
                    "the plan was made for {what} `{planned}` but the project now says `{now}`"
                ),
                "make the plan again (plan_training)".into(),
            ));
        }
    }
    if project.training_type != plan.training_type {
        blockers.push(finding(
            "blocking",
            format!(
                "the plan trains {} LoRA but the project is now {} LoRA",
                plan.training_type.with_article(),
                project.training_type.with_article()
            ),
            "make the plan again (plan_training)".into(),
        ));
    }
    for r in validate(&plan, gpu.as_ref()) {
        blockers.push(finding("blocking", r.message, r.what_to_do));
    }
    if let Some(refusal) = engine_cannot_use(&plan, gpu.as_ref()) {
        blockers.push(refusal);
    }
    let vram = estimate_vram(&plan, model, gpu.as_ref());
    let cpu_engine = plan.backend == Backend::Native && plan.gpu.is_none();
    match (&gpu, vram.fits) {
        // The engine's CPU plan: allowed, and said to be slow.
        _ if cpu_engine => warnings.push(finding(
            "warning",
            format!(
                "the plan trains with the Ategnatos engine on the CPU: {} steps, far slower than on a GPU (the engine's benchmark takes {} s a step for its tiny test model; SD1.5 does much more per step)",
                plan.total_steps(),
                crate::environment::native::TINY_CPU_SECONDS_PER_STEP
            ),
            "keep it for a first look, or plan for a GPU (plan_training with gpu) to train in earnest".into(),
        )),
        (None, _) => blockers.push(finding(
            "blocking",
            "no GPU to check the plan against: none was named and the NVIDIA driver found none"
                .into(),
            "name the GPU you will train on (e.g. `RTX 4090`, or a rented `A100 80GB`)".into(),
        )),
        (Some(g), Some(false)) => blockers.push(finding(
            "blocking",
            format!(
                "the plan needs about {:.1} GB but the {} allows {:.1} GB (80 % of {:.0} GB)",
                vram.total_gib,
                g.name,
                vram.budget_gib.unwrap_or_default(),
                g.vram_gib
            ),
            match vram.changes_that_fit.first() {
                Some(c) => format!(
                    "{} (plan_training shrinks it for you), or use a bigger GPU",
                    c.change
                ),
                None => format!(
                    "use a GPU with at least {:.0} GB, or plan again with a lower resolution",
                    vram.min_gpu_gb.ceil()
                ),
            },
        )),
        _ => {}
    }
    if let Ok(folders) = image_folders(ws, &plan.dataset) {
        let now: u32 = folders.iter().map(|f| f.images).sum();
        if now != plan.image_count() {
            warnings.push(finding(
                "warning",
                format!(
                    "the dataset now has {now} pictures; the plan was made for {}",
                    plan.image_count()
                ),
                "make the plan again so steps and repeats match the pictures".into(),
            ));
        }
    }
    let hash = plan.hash();
    match load_manifest(ws, project_name)? {
        Some(m) if m.plan_hash == hash => {}
        Some(_) => warnings.push(finding(
            "warning",
            "the trainer's config files were written from an earlier version of the plan".into(),
            "write them again (generate_config)".into(),
        )),
        None => warnings.push(finding(
            "warning",
            "no trainer config has been written for this plan yet".into(),
            "write it (generate_config) before gate 4's dry run".into(),
        )),
    }

    let status = if blockers.is_empty() {
        GateStatus::Pass
    } else {
        GateStatus::Fail
    };
    let mut report = Gate2Report {
        project: project_name.to_string(),
        decision: if status == GateStatus::Pass {
            "GO"
        } else {
            "NO-GO"
        }
        .into(),
        status,
        plan_hash: hash.clone(),
        gpu,
        vram,
        blockers,
        warnings,
        resource_uri: super::uri(project_name, Gate::Config),
    };
    let mut record = GateRecord::new(project_name, Gate::Config, status, hash);
    record.scope = "plan".into();
    record.summary = report.plain_summary();
    record.findings = report
        .blockers
        .iter()
        .chain(report.warnings.iter())
        .cloned()
        .collect();
    let config_md = ws.project_dir(project_name)?.join("config.md");
    if config_md.is_file() {
        record.report = Some(ws.display_path(&config_md));
    }
    report.resource_uri = super::store(ws, &record)?;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gates::status::{GateState, project_status};
    use crate::plan::planner::{PlanOverrides, PlanRequest, plan_training};
    use crate::plan::training::{Backend, Preset, save_plan};
    use crate::studio::Hint;
    use crate::studio::project::{TrainingType, new_project, save};

    fn studio() -> (tempfile::TempDir, Workspace) {
        let dir = tempfile::tempdir().unwrap();
        let ws = Workspace::open(dir.path()).unwrap();
        let pics = dir.path().join("pics/fox");
        std::fs::create_dir_all(&pics).unwrap();
        for i in 0..20 {
            std::fs::write(pics.join(format!("fox-{i:02}.png")), b"png").unwrap();
        }
        let p = new_project(
            "ink-fox",
            TrainingType::Character,
            "sdxl",
            "",
            "zkfox",
            "pics/fox",
            "txt",
        );
        save(&ws, &p, "# intent\n").unwrap();
        pass_gate1(&ws);
        (dir, ws)
    }

    /// Gate 1 recorded as passed for the pictures as they are.
    pub(crate) fn pass_gate1(ws: &Workspace) {
        let p = project::load(ws, "ink-fox").unwrap().unwrap();
        let fp = crate::gates::status::current_fingerprint(ws, &p, Gate::Dataset).unwrap();
        crate::gates::store(
            ws,
            &GateRecord::new("ink-fox", Gate::Dataset, GateStatus::Pass, fp),
        )
        .unwrap();
    }

    fn plan(ws: &Workspace, gpu: &str) {
        plan_training(
            ws,
            &PlanRequest {
                project: "ink-fox".into(),
                preset: Preset::Standard,
                backend: Backend::Kohya,
                gpu: Some(gpu.into()),
                price_per_hour: None,
                overrides: PlanOverrides::default(),
            },
        )
        .unwrap();
    }

    #[test]
    fn a_fitting_plan_passes_and_editing_it_makes_the_gate_stale() {
        let (_d, ws) = studio();
        plan(&ws, "RTX 4090");
        crate::backends::generate_config(&ws, "ink-fox", None).unwrap();
        let g = run_gate2(&ws, "ink-fox", None).unwrap();
        assert_eq!(g.status, GateStatus::Pass, "{}", g.plain_summary());
        assert!(g.warnings.is_empty(), "{:?}", g.warnings);
        let rec = super::super::load(&ws, "ink-fox", Gate::Config)
            .unwrap()
            .unwrap();
        assert_eq!(rec.fingerprint, g.plan_hash);
        assert_eq!(
            rec.report.as_deref(),
            Some("grimoire/training/ink-fox/config.md")
        );
        let p = project::load(&ws, "ink-fox").unwrap().unwrap();
        let gate2 = |ws: &Workspace| project_status(ws, &p).unwrap().gates[1].state;
        assert_eq!(gate2(&ws), GateState::Pass);
        // Editing the plan makes the record stale.
        let mut edited = load_plan(&ws, "ink-fox").unwrap().unwrap();
        edited.rank = 16;
        save_plan(&ws, &edited).unwrap();
        assert_eq!(gate2(&ws), GateState::Stale);
        // And the new run warns that the configs are from the old plan.
        let again = run_gate2(&ws, "ink-fox", None).unwrap();
        assert_eq!(again.status, GateStatus::Pass);
        assert!(
            again
                .warnings
                .iter()
                .any(|w| w.message.contains("earlier version"))
        );
        assert_eq!(gate2(&ws), GateState::Pass);
    }

    #[test]
    fn a_plan_that_does_not_fit_the_gpu_fails() {
        let (_d, ws) = studio();
        plan(&ws, "RTX 4090");
        let g = run_gate2(&ws, "ink-fox", Some("RTX 4060")).unwrap();
        assert_eq!(g.status, GateStatus::Fail);
        assert!(
            g.blockers.iter().any(|b| b.message.contains("allows")),
            "{:?}",
            g.blockers
        );
        assert!(g.plain_summary().contains("NO-GO"));
    }

    #[test]
    fn an_invalid_or_outdated_plan_fails_with_the_reason() {
        let (_d, ws) = studio();
        plan(&ws, "RTX 4090");
        let mut p = load_plan(&ws, "ink-fox").unwrap().unwrap();
        p.learning_rate = 0.1;
        p.trigger_word = "otherword".into();
        save_plan(&ws, &p).unwrap();
        let g = run_gate2(&ws, "ink-fox", None).unwrap();
        assert_eq!(g.status, GateStatus::Fail);
        let text: Vec<&str> = g.blockers.iter().map(|b| b.message.as_str()).collect();
        assert!(text.iter().any(|t| t.contains("learning rate")), "{text:?}");
        assert!(
            text.iter().any(|t| t.contains("trigger word `otherword`")),
            "{text:?}"
        );
    }

    #[test]
    fn gate_2_waits_for_gate_1_and_says_so() {
        let (d, ws) = studio();
        plan(&ws, "RTX 4090");
        // A picture changes after gate 1: gate 1 is stale, gate 2 refuses.
        std::fs::write(d.path().join("pics/fox/fox-00.png"), b"other").unwrap();
        let err = run_gate2(&ws, "ink-fox", None).unwrap_err();
        assert!(err.to_string().contains("gate 1"), "{err}");
        assert!(err.to_string().contains("stale"), "{err}");
        assert_eq!(
            err.hint().unwrap(),
            "run gate 1 again (run_gate 1); the gates after it follow"
        );
        std::fs::remove_file(
            ws.project_state_dir("ink-fox")
                .unwrap()
                .join("gates/1-dataset.json"),
        )
        .unwrap();
        let err = run_gate2(&ws, "ink-fox", None).unwrap_err();
        assert!(err.to_string().contains("has not run"), "{err}");
        assert!(err.hint().unwrap().contains("run_gate 1"));
        assert!(
            super::super::load(&ws, "ink-fox", Gate::Config)
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn no_plan_says_what_to_do() {
        let (_d, ws) = studio();
        let err = run_gate2(&ws, "ink-fox", Some("4090")).unwrap_err();
        assert!(err.hint().unwrap().contains("plan_training"));
    }
}
