//! External trainers (and our own engine) as config writers: one
//! [`TrainingPlan`] becomes the files and the exact command each backend
//! needs, under `workspace/configs/<project>/<backend>/`, plus the artist's
//! `grimoire/training/<name>/config.md`.
//!
//! Each writer is a pure `render` function from the plan to file contents
//! (tested by parsing them back against the keys the backend accepts);
//! [`generate_config`] resolves paths, writes everything atomically and
//! records which plan the files were written from.

pub mod ai_toolkit;
pub mod kohya;
pub mod native;
pub mod report;
pub mod simpletuner;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::plan::catalog::{ModelFamily, ModelSpec};
use crate::plan::gpu::{self, Gpu};
use crate::plan::planner::PlanError;
use crate::plan::training::{Backend, TrainingPlan, load_plan};
use crate::plan::validate::validate;
use crate::studio::{StudioError, Workspace, clock, write_atomic, write_json_atomic};

/// Where a run reads and writes, as absolute paths on the training machine.
#[derive(Debug, Clone)]
pub struct RunPaths {
    /// The workspace root.
    pub root: PathBuf,
    /// `workspace/configs/<project>/<backend>/`.
    pub config_dir: PathBuf,
    /// `workspace/outputs/<project>/<run>/`: checkpoints and samples.
    pub output_dir: PathBuf,
    /// `workspace/cache/<project>/<backend>/`: latents and text embeddings.
    pub cache_dir: PathBuf,
    /// `workspace/logs/<project>/<run>/`.
    pub logging_dir: PathBuf,
    /// A fresh name for this run (so no trainer silently resumes an old one).
    pub run_name: String,
}

impl RunPaths {
    pub fn new(ws: &Workspace, project: &str, backend: Backend, run_name: &str) -> RunPaths {
        let work = ws.work_dir();
        RunPaths {
            root: ws.root().to_path_buf(),
            config_dir: work
                .join("configs")
                .join(project)
                .join(backend_slug(backend)),
            output_dir: work.join("outputs").join(project).join(run_name),
            cache_dir: work.join("cache").join(project).join(backend_slug(backend)),
            logging_dir: work.join("logs").join(project).join(run_name),
            run_name: run_name.to_string(),
        }
    }

    /// A workspace-relative path as an absolute one.
    pub fn abs(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }
}

/// Whether `backend`'s trainer for `family` can encode every caption once,
/// before training, and take the text encoders off the GPU.
///
/// kohya has `--cache_text_encoder_outputs` in `sdxl_train_network.py` and
/// `flux_train_network.py` but not in `train_network.py` (SD 1.5), which
/// keeps the text encoder on the GPU whatever the config says
/// (`fixtures/trainer-args/kohya-*.json`). SimpleTuner always caches text
/// embeds (its `text_embeds` data backend); ai-toolkit caches with
/// `cache_text_embeddings` for every model. Our engine caches caption tokens
/// and runs the text encoder every step.
pub fn caches_text_encoder_outputs(backend: Backend, family: ModelFamily) -> bool {
    match backend {
        Backend::Kohya => family != ModelFamily::Sd15,
        Backend::SimpleTuner | Backend::AiToolkit => true,
        Backend::Native => false,
    }
}

/// In plain words, why a plan's "cache text embeddings" cannot happen with
/// its backend and model; `None` where it can.
pub fn text_encoder_cache_limit(backend: Backend, family: ModelFamily) -> Option<String> {
    if caches_text_encoder_outputs(backend, family) {
        return None;
    }
    let who = match backend {
        Backend::Kohya => format!(
            "kohya's {} trainer (`{}`)",
            family.word(),
            kohya::script(family)
        ),
        other => other.name().to_string(),
    };
    Some(format!(
        "{who} cannot encode the captions ahead of time: the text encoder stays on the GPU for the whole run, and the memory estimate counts it"
    ))
}

/// Folder name of a backend.
pub fn backend_slug(backend: Backend) -> &'static str {
    match backend {
        Backend::Kohya => "kohya",
        Backend::SimpleTuner => "simpletuner",
        Backend::AiToolkit => "ai-toolkit",
        Backend::Native => "native",
    }
}

/// A path as text for a config file.
pub fn path_text(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

/// What a backend's writer produces.
#[derive(Debug, Clone, Default)]
pub struct Rendered {
    /// File name (inside the backend's config folder) and contents.
    pub files: Vec<(String, String)>,
    /// The exact command, one argument per item.
    pub command: Vec<String>,
    /// Where to run it (`the sd-scripts checkout`, ...).
    pub working_dir: String,
    /// Model files the trainer will load (for gate 3 to check).
    pub model_files: Vec<String>,
}

/// Where the base model comes from for a backend: the plan's own path (made
/// absolute when it is inside the workspace), else the catalog's download,
/// else `models/<checkpoint>` in the workspace.
pub fn model_source(
    plan: &TrainingPlan,
    model: &ModelSpec,
    paths: &RunPaths,
    single_file: bool,
) -> String {
    if let Some(p) = plan
        .model_path
        .as_deref()
        .map(str::trim)
        .filter(|p| !p.is_empty())
    {
        let inside = paths.abs(p);
        return if Path::new(p).is_absolute() || !inside.exists() && looks_like_hub_id(p) {
            p.to_string()
        } else {
            path_text(&inside)
        };
    }
    match model.hf_repo {
        Some(repo) if !single_file => repo.to_string(),
        _ => path_text(&paths.root.join("models").join(model.checkpoint_file)),
    }
}

fn looks_like_hub_id(p: &str) -> bool {
    p.split('/').count() == 2 && !p.contains('.') && !p.contains('\\')
}

/// Sample / validation prompts for the trigger word.
pub fn sample_prompts(plan: &TrainingPlan) -> Vec<String> {
    use crate::studio::project::TrainingType;
    let t = &plan.trigger_word;
    match plan.training_type {
        TrainingType::Character => vec![
            format!("{t}, portrait, looking at the viewer"),
            format!("{t}, full body, standing in a park"),
        ],
        TrainingType::Style => vec![
            format!("{t}, a lighthouse on a cliff at dusk"),
            format!("{t}, a cup of coffee on a wooden table"),
        ],
        TrainingType::Object => vec![
            format!("{t}, on a table, studio light"),
            format!("{t}, held in a hand, outdoors"),
        ],
    }
}

/// One file written.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct GeneratedFile {
    /// Relative to the workspace root.
    pub path: String,
    /// What it is, in words.
    pub role: String,
}

/// The configs written for a plan.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct GeneratedConfig {
    pub project: String,
    pub backend: Backend,
    /// The run's fresh name (its output folder).
    pub run_name: String,
    /// The plan these files were written from (gate 2's fingerprint).
    pub plan_hash: String,
    pub files: Vec<GeneratedFile>,
    /// The exact command, one argument per item.
    pub command: Vec<String>,
    /// The command as one shell line.
    pub command_line: String,
    /// Where to run the command.
    pub working_dir: String,
    /// Checkpoints and samples go here (relative to the workspace).
    pub output_dir: String,
    /// Model files the trainer loads; gate 3 checks they are there.
    pub model_files: Vec<String>,
    /// `grimoire/training/<name>/config.md`, relative to the workspace.
    pub config_md: String,
}

impl GeneratedConfig {
    pub fn plain_summary(&self) -> String {
        // `the kohya sd-scripts config`, `the Ategnatos engine config`.
        let backend = self.backend.name();
        let named = if backend.starts_with("the ") {
            backend.to_string()
        } else {
            format!("the {backend}")
        };
        format!(
            "Wrote {} config for `{}` ({} files, run `{}`): {}. Start it with `{}` in {}. The explanation of every setting is in {}. Next: run gate 2 (run_gate 2).",
            named,
            self.project,
            self.files.len(),
            self.run_name,
            self.files
                .iter()
                .map(|f| f.path.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            self.command_line,
            self.working_dir,
            self.config_md
        )
    }
}

/// Quotes one argument for a POSIX shell when it needs it.
pub fn shell_quote(arg: &str) -> String {
    let plain = !arg.is_empty()
        && arg
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=@+,".contains(c));
    if plain {
        arg.to_string()
    } else {
        format!("'{}'", arg.replace('\'', r"'\''"))
    }
}

/// Where the record of the last generated configs is kept.
pub fn manifest_path(ws: &Workspace, project: &str) -> Result<PathBuf, StudioError> {
    Ok(ws.project_state_dir(project)?.join("configs.json"))
}

/// The configs last generated for a project, if any.
pub fn load_manifest(
    ws: &Workspace,
    project: &str,
) -> Result<Option<GeneratedConfig>, StudioError> {
    ws.read_json(&manifest_path(ws, project)?)
}

fn render(plan: &TrainingPlan, model: &ModelSpec, paths: &RunPaths) -> Rendered {
    match plan.backend {
        Backend::Kohya => kohya::render(plan, model, paths),
        Backend::SimpleTuner => simpletuner::render(plan, model, paths),
        Backend::AiToolkit => ai_toolkit::render(plan, model, paths),
        Backend::Native => native::render(plan, model, paths),
    }
}

/// Writes the project's plan as its backend's config files (and config.md),
/// after checking the plan is still valid. `gpu` overrides the plan's GPU for
/// the memory and time figures in config.md.
pub fn generate_config(
    ws: &Workspace,
    project: &str,
    gpu_name: Option<&str>,
) -> Result<GeneratedConfig, PlanError> {
    let plan = load_plan(ws, project)?.ok_or_else(|| PlanError::NoPlan {
        project: project.to_string(),
    })?;
    let model = plan.model()?;
    let gpu: Option<Gpu> = gpu::resolve(gpu_name.or(plan.gpu.as_deref()))?;
    let rejections = validate(&plan, gpu.as_ref());
    if !rejections.is_empty() {
        return Err(PlanError::Invalid { rejections });
    }
    let run_name = format!("{}-{}", plan.project, clock::stamp(clock::unix_now()));
    let paths = RunPaths::new(ws, &plan.project, plan.backend, &run_name);
    let rendered = render(&plan, model, &paths);
    let mut files = Vec::new();
    for (name, content) in &rendered.files {
        let path = paths.config_dir.join(name);
        write_atomic(&path, content.as_bytes())?;
        files.push(GeneratedFile {
            path: ws.display_path(&path),
            role: file_role(name).into(),
        });
    }
    let command_line = rendered
        .command
        .iter()
        .map(|a| shell_quote(a))
        .collect::<Vec<_>>()
        .join(" ");
    let config_md_path = ws.project_dir(&plan.project)?.join("config.md");
    let mut generated = GeneratedConfig {
        project: plan.project.clone(),
        backend: plan.backend,
        run_name,
        plan_hash: plan.hash(),
        files,
        command: rendered.command.clone(),
        command_line,
        working_dir: rendered.working_dir.clone(),
        output_dir: ws.display_path(&paths.output_dir),
        model_files: rendered.model_files.clone(),
        config_md: ws.display_path(&config_md_path),
    };
    let md = report::config_md(&plan, model, gpu.as_ref(), &generated);
    write_atomic(&config_md_path, md.as_bytes())?;
    generated.files.push(GeneratedFile {
        path: generated.config_md.clone(),
        role: "every setting explained, for people".into(),
    });
    write_json_atomic(&manifest_path(ws, &plan.project)?, &generated)?;
    Ok(generated)
}

fn file_role(name: &str) -> &'static str {
    match name {
        "dataset.toml" => "kohya dataset config (--dataset_config)",
        "config.toml" => "kohya training arguments (--config_file)",
        "sample_prompts.txt" => "prompts for sample pictures during training",
        "config.json" => "SimpleTuner trainer config",
        "multidatabackend.json" => "SimpleTuner dataset config",
        "job.yaml" => "ai-toolkit job",
        "engine.toml" => "Ategnatos engine config",
        _ => "config",
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::plan::training::tests::sample_plan;

    /// A trainer's own definitions, as `scripts/extract_trainer_args.py`
    /// extracted them (`fixtures/trainer-args/<name>`).
    pub fn trainer_args(name: &str) -> serde_json::Value {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fixtures/trainer-args")
            .join(name);
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    /// Paths for rendering in tests.
    pub fn test_paths(backend: Backend) -> RunPaths {
        RunPaths {
            root: PathBuf::from("/studio"),
            config_dir: PathBuf::from(format!(
                "/studio/workspace/configs/ink-fox/{}",
                backend_slug(backend)
            )),
            output_dir: PathBuf::from("/studio/workspace/outputs/ink-fox/ink-fox-20261122-123456"),
            cache_dir: PathBuf::from(format!(
                "/studio/workspace/cache/ink-fox/{}",
                backend_slug(backend)
            )),
            logging_dir: PathBuf::from("/studio/workspace/logs/ink-fox/ink-fox-20261122-123456"),
            run_name: "ink-fox-20261122-123456".into(),
        }
    }

    #[test]
    fn shell_quoting() {
        assert_eq!(shell_quote("train_network.py"), "train_network.py");
        assert_eq!(shell_quote("/a b/c"), "'/a b/c'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
    }

    #[test]
    fn model_sources() {
        let plan = sample_plan();
        let model = plan.model().unwrap();
        let paths = test_paths(Backend::Kohya);
        assert_eq!(
            model_source(&plan, model, &paths, false),
            "stabilityai/stable-diffusion-xl-base-1.0"
        );
        assert_eq!(
            model_source(&plan, model, &paths, true),
            "/studio/models/sd_xl_base_1.0.safetensors"
        );
        let mut own = plan.clone();
        own.model_path = Some("models/my.safetensors".into());
        assert_eq!(
            model_source(&own, model, &paths, false),
            "/studio/models/my.safetensors"
        );
        own.model_path = Some("someone/fine-tune".into());
        assert_eq!(
            model_source(&own, model, &paths, false),
            "someone/fine-tune"
        );
    }

    #[test]
    fn generate_config_writes_every_backend_and_records_the_plan() {
        let dir = tempfile::tempdir().unwrap();
        let ws = Workspace::open(dir.path()).unwrap();
        for backend in Backend::ALL {
            let mut plan = sample_plan();
            plan.backend = backend;
            if backend == Backend::Native {
                plan = native::tests::native_plan();
            }
            crate::plan::training::save_plan(&ws, &plan).unwrap();
            let g = generate_config(&ws, "ink-fox", None).unwrap();
            assert_eq!(g.plan_hash, plan.hash());
            for f in &g.files {
                assert!(dir.path().join(&f.path).is_file(), "{}", f.path);
            }
            assert!(
                g.files
                    .iter()
                    .all(|f| f.path.starts_with("workspace/configs/ink-fox/")
                        || f.path == "grimoire/training/ink-fox/config.md")
            );
            let md = std::fs::read_to_string(dir.path().join(&g.config_md)).unwrap();
            assert!(md.contains("alpha") && md.contains("GB"), "{md}");
            assert_eq!(
                load_manifest(&ws, "ink-fox").unwrap().unwrap().plan_hash,
                plan.hash()
            );
            assert!(g.plain_summary().contains(backend.name()));
        }
    }

    #[test]
    fn kohya_caches_text_encoder_outputs_exactly_where_its_script_can() {
        for family in [ModelFamily::Sd15, ModelFamily::Sdxl, ModelFamily::Flux] {
            let script = kohya::script(family).trim_end_matches(".py");
            let defs = trainer_args(&format!("kohya-{script}.json"));
            assert_eq!(
                caches_text_encoder_outputs(Backend::Kohya, family),
                defs["options"].get("cache_text_encoder_outputs").is_some(),
                "{script}"
            );
        }
    }

    /// kohya's SD1.5 script keeps the text encoder on the GPU: the estimate
    /// counts it, the plan says so, and config.md says so in words.
    #[test]
    fn a_text_encoder_the_trainer_cannot_cache_is_counted_and_said() {
        use crate::plan::planner::explain_parameters;
        use crate::plan::vram::estimate_vram;
        let mut plan = sample_plan();
        plan.base_model = "sd15".into();
        plan.resolution = 512;
        plan.cache_text_embeddings = true;
        plan.train_text_encoder = false;
        let model = plan.model().unwrap();
        let parts = |p: &TrainingPlan| {
            estimate_vram(p, model, None)
                .components
                .iter()
                .map(|c| c.part.clone())
                .collect::<Vec<_>>()
        };
        let kohya = plan.clone();
        let mut simpletuner = plan.clone();
        simpletuner.backend = Backend::SimpleTuner;
        assert!(parts(&kohya).contains(&"text encoders".to_string()));
        assert!(!parts(&simpletuner).contains(&"text encoders".to_string()));

        let line = |p: &TrainingPlan| {
            explain_parameters(p, model)
                .into_iter()
                .find(|l| l.name == "cache text embeddings")
                .unwrap()
        };
        let said = line(&kohya);
        assert!(said.value.starts_with("no"), "{said:?}");
        assert!(
            said.meaning.contains("train_network.py") && said.meaning.contains("stays on the GPU"),
            "{said:?}"
        );
        assert_eq!(line(&simpletuner).value, "yes");

        let dir = tempfile::tempdir().unwrap();
        let ws = Workspace::open(dir.path()).unwrap();
        crate::plan::training::save_plan(&ws, &kohya).unwrap();
        let g = generate_config(&ws, "ink-fox", None).unwrap();
        let md = std::fs::read_to_string(dir.path().join(&g.config_md)).unwrap();
        assert!(md.contains("Captions are not cached"), "{md}");
        let cfg = std::fs::read_to_string(
            dir.path()
                .join("workspace/configs/ink-fox/kohya/config.toml"),
        )
        .unwrap();
        assert!(!cfg.contains("cache_text_encoder_outputs"), "{cfg}");
    }

    /// Shrinking a kohya SD1.5 plan never claims to cache captions; it may
    /// stop text-encoder training, which does save memory there.
    #[test]
    fn the_shrink_ladder_does_not_cache_what_the_trainer_cannot() {
        use crate::plan::vram::{Locked, shrink_to_fit};
        let mut plan = sample_plan();
        plan.base_model = "sd15".into();
        plan.resolution = 512;
        plan.batch_size = 4;
        plan.gradient_checkpointing = false;
        plan.train_text_encoder = true;
        plan.text_encoder_lr = Some(5e-5);
        plan.cache_text_embeddings = false;
        let model = plan.model().unwrap();
        let mut gpu = gpu::lookup("RTX 4060").unwrap();
        gpu.vram_gib = 3.0;
        let report = shrink_to_fit(&plan, model, &gpu, &Locked::default());
        let changes: Vec<&str> = report.steps.iter().map(|s| s.change.as_str()).collect();
        assert!(
            changes.contains(&"stop training the text encoder"),
            "{changes:?}"
        );
        assert!(
            !changes.iter().any(|c| c.contains("cache text")),
            "{changes:?}"
        );
        assert!(!report.plan.cache_text_embeddings && !report.plan.train_text_encoder);
        let te = report
            .steps
            .iter()
            .find(|s| s.change == "stop training the text encoder");
        assert!(te.is_some_and(|s| s.after_gib < s.before_gib));

        // The same plan on SimpleTuner does cache.
        plan.backend = Backend::SimpleTuner;
        plan.train_text_encoder = false;
        plan.text_encoder_lr = None;
        let report = shrink_to_fit(&plan, model, &gpu, &Locked::default());
        assert!(
            report
                .steps
                .iter()
                .any(|s| s.change == "cache text embeddings")
        );
    }

    #[test]
    fn an_invalid_plan_gets_no_config() {
        let dir = tempfile::tempdir().unwrap();
        let ws = Workspace::open(dir.path()).unwrap();
        let mut plan = sample_plan();
        plan.rank = 1000;
        crate::plan::training::save_plan(&ws, &plan).unwrap();
        let err = generate_config(&ws, "ink-fox", None).unwrap_err();
        assert!(err.to_string().contains("rank"));
        assert!(!dir.path().join("workspace/configs/ink-fox").exists());
    }
}
