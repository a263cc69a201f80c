//! Where a backend is installed, whether it is that backend, which entry
//! scripts it starts from, and the one `pip install` line for everything it
//! lacks.
//!
//! An install is looked for, in order: the folder the user names (inside
//! the workspace), `ATEGNATOS_<BACKEND>_DIR` (`ATEGNATOS_KOHYA_DIR`,
//! `ATEGNATOS_SIMPLETUNER_DIR`, `ATEGNATOS_AI_TOOLKIT_DIR`), the folder
//! recorded by the last environment check, then the usual folder names in
//! the workspace (`backends/kohya`, `sd-scripts`, `kohya_ss`, ...).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::python::MissingModule;
use crate::plan::catalog::ModelFamily;
use crate::plan::training::{Backend, BaseWeights, Optimizer, TrainingPlan};

/// A backend folder and how it was found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Located {
    /// The folder named or found.
    pub dir: PathBuf,
    /// Where its entry scripts are (kohya_ss keeps sd-scripts in a subfolder).
    pub scripts_dir: PathBuf,
    pub found_by: String,
}

/// The environment variable that names a backend's folder.
pub fn env_var(backend: Backend) -> Option<&'static str> {
    match backend {
        Backend::Kohya => Some("ATEGNATOS_KOHYA_DIR"),
        Backend::SimpleTuner => Some("ATEGNATOS_SIMPLETUNER_DIR"),
        Backend::AiToolkit => Some("ATEGNATOS_AI_TOOLKIT_DIR"),
        Backend::Native => None,
    }
}

/// Usual folder names, relative to the workspace root.
fn usual_folders(backend: Backend) -> &'static [&'static str] {
    match backend {
        Backend::Kohya => &[
            "backends/kohya",
            "backends/sd-scripts",
            "backends/kohya_ss",
            "sd-scripts",
            "kohya_ss",
        ],
        Backend::SimpleTuner => &[
            "backends/simpletuner",
            "backends/SimpleTuner",
            "SimpleTuner",
        ],
        Backend::AiToolkit => &["backends/ai-toolkit", "ai-toolkit"],
        Backend::Native => &[],
    }
}

/// Where to get a backend.
pub fn clone_hint(backend: Backend) -> &'static str {
    match backend {
        Backend::Kohya => {
            "git clone https://github.com/kohya-ss/sd-scripts backends/kohya, then create its venv and `pip install -r requirements.txt`"
        }
        Backend::SimpleTuner => {
            "git clone https://github.com/bghira/SimpleTuner backends/simpletuner, then `pip install -e '.[cuda]'` in its venv"
        }
        Backend::AiToolkit => {
            "git clone https://github.com/ostris/ai-toolkit backends/ai-toolkit, then create its venv and `pip install -r requirements.txt`"
        }
        Backend::Native => "the engine is built into Ategnatos",
    }
}

/// Looks for an install; `given` is an already-resolved folder the user named.
pub fn locate(
    root: &Path,
    backend: Backend,
    given: Option<&Path>,
    recorded: Option<&Path>,
) -> Option<Located> {
    let mut candidates: Vec<(PathBuf, String)> = Vec::new();
    if let Some(g) = given {
        // What the user named is used as it is, so a wrong folder is said.
        return Some(layout(
            backend,
            g.to_path_buf(),
            "the folder you named".into(),
        ));
    }
    if let Some(var) = env_var(backend)
        && let Some(dir) = std::env::var_os(var).filter(|v| !v.is_empty())
    {
        return Some(layout(backend, PathBuf::from(dir), var.to_string()));
    }
    if let Some(r) = recorded {
        candidates.push((r.to_path_buf(), "the last environment check".into()));
    }
    for rel in usual_folders(backend) {
        candidates.push((root.join(rel), format!("the usual folder `{rel}`")));
    }
    candidates
        .into_iter()
        .find(|(dir, _)| dir.is_dir())
        .map(|(dir, why)| layout(backend, dir, why))
}

fn layout(backend: Backend, dir: PathBuf, found_by: String) -> Located {
    // bmaltais/kohya_ss: the GUI, with sd-scripts as a git submodule.
    let scripts_dir = if backend == Backend::Kohya && dir.join("sd-scripts").is_dir() {
        dir.join("sd-scripts")
    } else {
        dir.clone()
    };
    Located {
        dir,
        scripts_dir,
        found_by,
    }
}

/// The files the trainer starts from, relative to its scripts folder.
pub fn entry_scripts(backend: Backend, family: Option<ModelFamily>) -> Vec<String> {
    match backend {
        Backend::Kohya => match family {
            Some(f) => vec![crate::backends::kohya::script(f).to_string()],
            None => vec![
                "train_network.py".into(),
                "sdxl_train_network.py".into(),
                "flux_train_network.py".into(),
            ],
        },
        Backend::SimpleTuner => vec![
            "simpletuner/helpers/training/trainer.py".into(),
            "simpletuner/cli/__init__.py".into(),
        ],
        Backend::AiToolkit => vec!["run.py".into()],
        Backend::Native => Vec::new(),
    }
}

/// What is wrong with a folder as this backend's install, with what to do;
/// `None` when it looks right.
pub fn misfit(backend: Backend, located: &Located) -> Option<(String, String)> {
    let shown = located.dir.display();
    if !located.dir.is_dir() {
        return Some((
            format!("the {} folder `{shown}` does not exist", backend.name()),
            format!("install it: {}", clone_hint(backend)),
        ));
    }
    let empty = |d: &Path| {
        std::fs::read_dir(d)
            .map(|mut e| e.next().is_none())
            .unwrap_or(true)
    };
    if backend == Backend::Kohya
        && located.scripts_dir != located.dir
        && empty(&located.scripts_dir)
    {
        return Some((
            format!(
                "`{shown}` is kohya_ss, but its `sd-scripts` folder (a git submodule) is empty"
            ),
            format!("run `git submodule update --init --recursive` in `{shown}`"),
        ));
    }
    let looks_right = match backend {
        Backend::Kohya => {
            entry_scripts(backend, None)
                .iter()
                .any(|s| located.scripts_dir.join(s).is_file())
                || located.scripts_dir.join("library/train_util.py").is_file()
        }
        Backend::SimpleTuner => located.scripts_dir.join("simpletuner").is_dir(),
        Backend::AiToolkit => {
            located.scripts_dir.join("run.py").is_file()
                && located.scripts_dir.join("toolkit").is_dir()
        }
        Backend::Native => true,
    };
    if looks_right {
        return None;
    }
    let expected = match backend {
        Backend::Kohya => "`train_network.py`, `sdxl_train_network.py` or `library/train_util.py`",
        Backend::SimpleTuner => "the `simpletuner` package folder",
        Backend::AiToolkit => "`run.py` and the `toolkit` folder",
        Backend::Native => "",
    };
    Some((
        format!(
            "`{shown}` is not a {} installation: it has no {expected}",
            backend.name()
        ),
        format!(
            "name the folder you cloned it into, or install it: {}",
            clone_hint(backend)
        ),
    ))
}

/// The installed commit (`git rev-parse HEAD` read from the files), so an
/// update of the trainer makes Gate 3 stale.
pub fn git_commit(dir: &Path) -> Option<String> {
    let mut git = dir.join(".git");
    if git.is_file() {
        // A submodule: `gitdir: ../.git/modules/sd-scripts`.
        let text = std::fs::read_to_string(&git).ok()?;
        let rel = text.trim().strip_prefix("gitdir:")?.trim();
        git = dir.join(rel);
    }
    let head = std::fs::read_to_string(git.join("HEAD")).ok()?;
    let head = head.trim();
    let commit = match head.strip_prefix("ref:") {
        None => head.to_string(),
        Some(r) => {
            let r = r.trim();
            match std::fs::read_to_string(git.join(r)) {
                Ok(c) => c.trim().to_string(),
                Err(_) => std::fs::read_to_string(git.join("packed-refs"))
                    .ok()?
                    .lines()
                    .find(|l| l.ends_with(r))?
                    .split_whitespace()
                    .next()?
                    .to_string(),
            }
        }
    };
    (commit.len() >= 7 && commit.chars().all(|c| c.is_ascii_hexdigit()))
        .then(|| commit[..12.min(commit.len())].to_string())
}

/// Modules the plan needs that the scripts import only when asked (the
/// optimizer, quantisation); kohya also needs `accelerate` to launch.
pub fn modules_the_plan_needs(backend: Backend, plan: Option<&TrainingPlan>) -> Vec<String> {
    let mut m: Vec<&str> = Vec::new();
    if backend == Backend::Kohya {
        m.push("accelerate");
    }
    if let Some(plan) = plan {
        match (backend, plan.optimizer) {
            (Backend::Native, _) => {}
            (_, Optimizer::AdamW8bit | Optimizer::Lion8bit) => m.push("bitsandbytes"),
            (_, Optimizer::Prodigy) => m.push("prodigyopt"),
            (Backend::SimpleTuner, Optimizer::Lion) => m.push("optimi"),
            (_, Optimizer::Lion) => m.push("lion_pytorch"),
            (_, Optimizer::Adafactor) => m.push("transformers"),
            (_, Optimizer::AdamW) => {}
        }
        match (backend, plan.base_weights) {
            (Backend::SimpleTuner, BaseWeights::Int8 | BaseWeights::Int4) => m.push("optimum"),
            (Backend::SimpleTuner, BaseWeights::Nf4) => m.push("bitsandbytes"),
            (Backend::AiToolkit, BaseWeights::Fp8) => m.push("optimum"),
            _ => {}
        }
    }
    m.dedup();
    m.into_iter().map(String::from).collect()
}

/// Import names whose pip package has another name.
const PACKAGE_OF: &[(&str, &str)] = &[
    ("PIL", "Pillow"),
    ("cv2", "opencv-python"),
    ("yaml", "PyYAML"),
    ("sklearn", "scikit-learn"),
    ("skimage", "scikit-image"),
    ("google", "protobuf"),
    ("bs4", "beautifulsoup4"),
    ("dateutil", "python-dateutil"),
    ("attr", "attrs"),
    ("lycoris", "lycoris-lora"),
    ("optimum", "optimum-quanto"),
    ("optimi", "torch-optimi"),
    ("huggingface_hub", "huggingface-hub"),
    ("lion_pytorch", "lion-pytorch"),
    ("oyaml", "oyaml"),
];

fn normalise(name: &str) -> String {
    name.to_ascii_lowercase().replace(['_', '.'], "-")
}

/// Requirement lines of a `requirements.txt`, by normalised package name.
pub fn parse_requirements(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(|l| l.split('#').next().unwrap_or("").trim())
        .filter(|l| !l.is_empty() && !l.starts_with('-') && !l.contains("://"))
        .filter_map(|l| {
            let spec = l.split(';').next().unwrap_or(l).trim();
            let name: String = spec
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
                .collect();
            (!name.is_empty()).then(|| (normalise(&name), spec.replace(' ', "")))
        })
        .collect()
}

/// The pip requirement that provides `module`: the install's own pinned
/// line when it has one, else the package's name.
pub fn package_for(module: &str, requirements: &[(String, String)]) -> String {
    let package = PACKAGE_OF
        .iter()
        .find(|(m, _)| *m == module)
        .map(|(_, p)| p.to_string())
        .unwrap_or_else(|| module.replace('_', "-"));
    for wanted in [normalise(&package), normalise(module)] {
        if let Some((_, spec)) = requirements.iter().find(|(n, _)| *n == wanted) {
            return spec.clone();
        }
    }
    package
}

/// A missing module with the package that brings it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct MissingPackage {
    pub module: String,
    /// What `pip install` takes (`imagesize==1.4.1`).
    pub package: String,
    pub imported_by: String,
}

/// Each missing module with its package, and the one line that installs them all.
pub fn pip_line(
    python: &Path,
    missing: &[MissingModule],
    requirements: &[(String, String)],
) -> (Vec<MissingPackage>, Option<String>) {
    let packages: Vec<MissingPackage> = missing
        .iter()
        .map(|m| MissingPackage {
            module: m.module.clone(),
            package: package_for(&m.module, requirements),
            imported_by: m.imported_by.clone(),
        })
        .collect();
    if packages.is_empty() {
        return (packages, None);
    }
    let mut specs: Vec<String> = packages.iter().map(|p| p.package.clone()).collect();
    specs.dedup();
    let line = format!(
        "{} -m pip install {}",
        crate::backends::shell_quote(&python.to_string_lossy()),
        specs
            .iter()
            .map(|s| crate::backends::shell_quote(s))
            .collect::<Vec<_>>()
            .join(" ")
    );
    (packages, Some(line))
}

#[cfg(test)]
mod tests {
    use super::*;

    const KOHYA_REQUIREMENTS: &str = "accelerate==0.33.0\ntransformers==4.44.0\ndiffusers[torch]==0.25.0\nftfy==6.1.1\n# albumentations==1.3.0\nopencv-python==4.8.1.78\neinops==0.7.0\npytorch-lightning==1.9.0\nbitsandbytes==0.44.0\nprodigyopt==1.0\nlion-pytorch==0.0.6\nschedulefree==1.4\ntensorboard\nsafetensors==0.4.4\ntoml==0.10.2\nvoluptuous==0.13.1\nhuggingface-hub==0.24.5\nimagesize==1.4.1\nnumpy<=2.0\nrich==13.7.0\nsentencepiece==0.2.0\n-e .\n";

    #[test]
    fn every_missing_module_gets_its_pinned_package_in_one_line() {
        let reqs = parse_requirements(KOHYA_REQUIREMENTS);
        let missing: Vec<MissingModule> = [
            ("imagesize", "library/train_util.py"),
            ("rich", "library/utils.py"),
            ("sentencepiece", "library/strategy_sd.py"),
            ("lion_pytorch", "the plan"),
            ("prodigyopt", "the plan"),
            ("cv2", "library/train_util.py"),
            ("zz_unknown", "x.py"),
        ]
        .iter()
        .map(|(m, by)| MissingModule {
            module: m.to_string(),
            imported_by: by.to_string(),
        })
        .collect();
        let (packages, line) = pip_line(Path::new("/k/venv/bin/python"), &missing, &reqs);
        assert_eq!(packages[3].package, "lion-pytorch==0.0.6");
        assert_eq!(packages[5].package, "opencv-python==4.8.1.78");
        assert_eq!(
            line.unwrap(),
            "/k/venv/bin/python -m pip install imagesize==1.4.1 rich==13.7.0 sentencepiece==0.2.0 lion-pytorch==0.0.6 prodigyopt==1.0 opencv-python==4.8.1.78 zz-unknown"
        );
        assert_eq!(package_for("numpy", &reqs), "numpy<=2.0");
    }

    #[test]
    fn a_folder_that_is_not_the_backend_is_said_with_how_to_get_it() {
        let dir = tempfile::tempdir().unwrap();
        let found = locate(dir.path(), Backend::Kohya, Some(dir.path()), None).unwrap();
        let (message, what) = misfit(Backend::Kohya, &found).unwrap();
        assert!(
            message.contains("is not a kohya sd-scripts installation"),
            "{message}"
        );
        assert!(
            what.contains("git clone https://github.com/kohya-ss/sd-scripts"),
            "{what}"
        );
        // kohya_ss with an empty submodule.
        std::fs::create_dir_all(dir.path().join("sd-scripts")).unwrap();
        let found = locate(dir.path(), Backend::Kohya, Some(dir.path()), None).unwrap();
        let (message, what) = misfit(Backend::Kohya, &found).unwrap();
        assert!(
            message.contains("submodule") && what.contains("git submodule update --init"),
            "{message}"
        );
        std::fs::write(
            dir.path().join("sd-scripts/train_network.py"),
            "import toml\n",
        )
        .unwrap();
        let found = locate(dir.path(), Backend::Kohya, Some(dir.path()), None).unwrap();
        assert_eq!(misfit(Backend::Kohya, &found), None);
        assert_eq!(found.scripts_dir, dir.path().join("sd-scripts"));
    }

    #[test]
    fn the_commit_is_read_from_a_checkout_and_a_submodule() {
        let dir = tempfile::tempdir().unwrap();
        let git = dir.path().join("repo/.git");
        std::fs::create_dir_all(git.join("refs/heads")).unwrap();
        std::fs::write(git.join("HEAD"), "ref: refs/heads/main\n").unwrap();
        std::fs::write(
            git.join("refs/heads/main"),
            "48d368fa557731ad0488c07304dfeba8c07910eb\n",
        )
        .unwrap();
        assert_eq!(
            git_commit(&dir.path().join("repo")).as_deref(),
            Some("48d368fa5577")
        );
        std::fs::create_dir_all(dir.path().join("repo/sub")).unwrap();
        std::fs::create_dir_all(git.join("modules/sub")).unwrap();
        std::fs::write(
            dir.path().join("repo/sub/.git"),
            "gitdir: ../.git/modules/sub\n",
        )
        .unwrap();
        std::fs::write(
            git.join("modules/sub/HEAD"),
            "bc8e6ab7738ce457a2ed8eb2d26cadd91c6442cb\n",
        )
        .unwrap();
        assert_eq!(
            git_commit(&dir.path().join("repo/sub")).as_deref(),
            Some("bc8e6ab7738c")
        );
    }
}
