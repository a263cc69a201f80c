//! SkyPilot hand-off: where `sky` is installed, a training run can go to any
//! cloud SkyPilot knows (Lambda, RunPod, Vast.ai, the big three...). This
//! module writes the SkyPilot task YAML for a run (the GPUs that fit, the
//! disk, the docker image, the setup and run commands, the files to upload)
//! and launches it detached with autostop *and* `--down`, so an idle cluster
//! is torn down, not stopped (a stopped one still bills for its disk).
//!
//! SkyPilot reads its own credentials (`sky check`); no key of ours is put
//! in the YAML or on the command line. What the run executes is the
//! launcher's business: this module takes the setup and run commands as
//! given.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Serialize;

use super::CloudError;
use super::http::snippet;
use crate::backends::shell_quote;
use crate::studio::{Workspace, write_atomic};

/// GPUs by SkyPilot's accelerator names, with their memory (GB), smallest first.
const ACCELERATORS: &[(&str, f64)] = &[
    ("L4", 24.0),
    ("A10G", 24.0),
    ("RTX3090", 24.0),
    ("RTX4090", 24.0),
    ("A100", 40.0),
    ("L40S", 48.0),
    ("A6000", 48.0),
    ("A100-80GB", 80.0),
    ("H100", 80.0),
];

/// How long an idle cluster lives before SkyPilot tears it down.
pub const IDLE_MINUTES: u32 = 10;

/// A run to hand to SkyPilot.
#[derive(Debug, Clone)]
pub struct SkyTask {
    /// Cluster name (our label, so it is found again).
    pub name: String,
    /// Smallest GPU memory the run needs, GB.
    pub min_vram_gb: f64,
    pub disk_gb: u32,
    /// Docker image, if not SkyPilot's default.
    pub image: Option<String>,
    /// Remote path → local file or folder to upload (dataset, config).
    pub file_mounts: BTreeMap<String, PathBuf>,
    pub setup: String,
    pub run: String,
    pub envs: BTreeMap<String, String>,
}

/// What `sky launch` was asked and said.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct SkyLaunch {
    pub cluster: String,
    /// The task file, relative to the workspace root.
    pub task_file: String,
    pub command: Vec<String>,
    /// The last lines `sky` printed.
    pub output: String,
}

/// SkyPilot accelerator names with at least `min_vram_gb` of memory
/// (nominal sizes: a plan's 23.9 GB fits a 24 GB card).
pub fn accelerators_for(min_vram_gb: f64) -> Vec<&'static str> {
    ACCELERATORS
        .iter()
        .filter(|(_, gb)| gb + 0.5 >= min_vram_gb)
        .map(|(name, _)| *name)
        .collect()
}

/// The task YAML for `task`.
pub fn task_yaml(task: &SkyTask) -> Result<String, CloudError> {
    let gpus = accelerators_for(task.min_vram_gb);
    if gpus.is_empty() {
        return Err(CloudError::NoOffers {
            reason: format!(
                "no GPU SkyPilot names has {:.0} GB of memory",
                task.min_vram_gb
            ),
        });
    }
    let mut resources = serde_json::json!({
        "accelerators": gpus.iter().map(|g| (g.to_string(), 1)).collect::<BTreeMap<String, u32>>(),
        "disk_size": task.disk_gb,
        "autostop": {"idle_minutes": IDLE_MINUTES, "down": true},
    });
    if let Some(image) = &task.image {
        resources["image_id"] = serde_json::json!(format!("docker:{image}"));
    }
    let mut doc = serde_json::json!({
        "name": task.name,
        "resources": resources,
    });
    if !task.file_mounts.is_empty() {
        doc["file_mounts"] = serde_json::json!(
            task.file_mounts
                .iter()
                .map(|(remote, local)| (remote.clone(), local.to_string_lossy().into_owned()))
                .collect::<BTreeMap<_, _>>()
        );
    }
    if !task.envs.is_empty() {
        doc["envs"] = serde_json::json!(task.envs);
    }
    if !task.setup.trim().is_empty() {
        doc["setup"] = serde_json::json!(task.setup);
    }
    doc["run"] = serde_json::json!(task.run);
    serde_norway::to_string(&doc)
        .map_err(|e| CloudError::Failed(format!("could not write the SkyPilot task: {e}")))
}

/// `sky` on `path` (a `PATH`-style list), if it is there.
pub fn find_sky(path: Option<&OsStr>) -> Option<PathBuf> {
    std::env::split_paths(path?)
        .map(|dir| dir.join("sky"))
        .find(|p| p.is_file())
}

/// Writes the task under `grimoire/.state/cloud/sky/` and runs
/// `sky launch -c NAME TASK -y -d -i 10 --down` with `sky`.
pub fn launch(ws: &Workspace, task: &SkyTask, sky: &Path) -> Result<SkyLaunch, CloudError> {
    for (remote, local) in &task.file_mounts {
        if !local.exists() {
            return Err(CloudError::Failed(format!(
                "`{}` (to upload to `{remote}`) does not exist",
                local.display()
            )));
        }
    }
    let yaml = task_yaml(task)?;
    let file = super::ledger::cloud_dir(ws)
        .join("sky")
        .join(format!("{}.yaml", task.name));
    write_atomic(&file, yaml.as_bytes())?;
    let args: Vec<String> = vec![
        "launch".into(),
        "-c".into(),
        task.name.clone(),
        file.to_string_lossy().into_owned(),
        "-y".into(),
        "-d".into(),
        "-i".into(),
        IDLE_MINUTES.to_string(),
        "--down".into(),
    ];
    let out = Command::new(sky)
        .args(&args)
        .current_dir(ws.root())
        .output()
        .map_err(|e| CloudError::Failed(format!("could not run `{}`: {e}", sky.display())))?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let tail: Vec<&str> = text.lines().rev().take(20).collect();
    let tail = tail.into_iter().rev().collect::<Vec<_>>().join("\n");
    if !out.status.success() {
        return Err(CloudError::Failed(format!(
            "`sky launch` failed ({}): {}",
            out.status,
            snippet(&tail)
        )));
    }
    let task_file = file
        .strip_prefix(ws.root())
        .unwrap_or(&file)
        .to_string_lossy()
        .into_owned();
    let mut command = vec!["sky".to_string()];
    command.extend(args);
    Ok(SkyLaunch {
        cluster: task.name.clone(),
        task_file,
        command,
        output: tail,
    })
}

/// Where the run's studio lands on a SkyPilot cluster (under the login's home).
pub const SKY_ROOT: &str = "~/ategnatos-studio";

/// What a hand-off started.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct SkyHandOff {
    /// In words, with how to follow it and bring the LoRA home.
    pub summary: String,
    pub launch: SkyLaunch,
    /// GPUs SkyPilot may choose from.
    pub accelerators: Vec<String>,
    pub disk_gb: u32,
}

/// Hands `project`'s run to SkyPilot: this program and the project's files
/// go up as file mounts, and the run there renames the studio folder in the
/// copies, passes gates 2 and 3 and the dry run, and trains in the
/// foreground (so `sky logs` follows it and the job ends with the run).
/// The cluster is torn down (`--down`) after [`IDLE_MINUTES`] idle.
pub fn hand_off(
    ws: &Workspace,
    project_name: &str,
    sky: &Path,
    program: Option<PathBuf>,
) -> Result<SkyHandOff, CloudError> {
    use crate::plan::training::load_plan;
    use crate::plan::vram::estimate_vram;
    let project = crate::studio::project::load(ws, project_name)?
        .ok_or_else(|| CloudError::Failed(format!("there is no project `{project_name}`")))?;
    super::remote::require_gate1(ws, &project)?;
    let plan = load_plan(ws, &project.name)?.ok_or_else(|| {
        CloudError::Failed(format!(
            "project `{}` has no training plan to size the machine from; make one with plan_training",
            project.name
        ))
    })?;
    let model = plan
        .model()
        .map_err(|e| CloudError::Failed(e.to_string()))?;
    let min_vram_gb = estimate_vram(&plan, model, None).min_gpu_gb;
    let disk_gb = super::quote::disk_for_plan(&plan, model);
    let (send, _) = super::remote::project_files(ws, &project.name)?;
    let program = match program {
        Some(p) => p,
        None => std::env::current_exe()
            .map_err(|e| CloudError::Failed(format!("cannot find this program's file: {e}")))?,
    };
    let mut file_mounts = BTreeMap::new();
    file_mounts.insert(format!("{SKY_ROOT}/.ategnatos/bin/ategnatos"), program);
    for rel in &send {
        file_mounts.insert(format!("{SKY_ROOT}/{rel}"), ws.root().join(rel));
    }
    let name = format!(
        "ategnatos-{}-{}",
        project.name.to_lowercase().replace('_', "-"),
        super::fresh_suffix()
    );
    let p = shell_quote(&project.name);
    let run = format!(
        "set -e\ncd {SKY_ROOT}\nA=./.ategnatos/bin/ategnatos\nchmod +x \"$A\"\n\
         \"$A\" --root . cloud rehome {p} --from {from}\n\
         \"$A\" --root . gate 2 --project {p}\n\
         \"$A\" --root . gate 3 --project {p}\n\
         \"$A\" --root . dry-run {p}\n\
         \"$A\" --root . train {p}\n",
        from = shell_quote(&ws.root().display().to_string())
    );
    let task = SkyTask {
        name: name.clone(),
        min_vram_gb,
        disk_gb,
        image: None,
        file_mounts,
        setup: String::new(),
        run,
        envs: BTreeMap::new(),
    };
    let accelerators = accelerators_for(min_vram_gb)
        .into_iter()
        .map(str::to_string)
        .collect();
    let launch = launch(ws, &task, sky)?;
    let summary = format!(
        "Handed `{}` to SkyPilot as cluster `{name}` (any of {}; {disk_gb} GB disk): the gates, the dry run and the training run there. Follow it with `sky logs {name}`. When it is COMPLETE, bring the LoRA home within {IDLE_MINUTES} minutes, before SkyPilot tears the cluster down: `rsync -a {name}:ategnatos-studio/grimoire/training/{}/ grimoire/training/{}/`. Stop it any time with `sky down -y {name}`.",
        project.name,
        accelerators_for(min_vram_gb).join(", "),
        project.name,
        project.name
    );
    Ok(SkyHandOff {
        summary,
        launch,
        accelerators,
        disk_gb,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(dataset: PathBuf) -> SkyTask {
        SkyTask {
            name: "ategnatos-abc123-i-1".into(),
            min_vram_gb: 23.9,
            disk_gb: 80,
            image: Some("pytorch/pytorch:2.4.0-cuda12.1-cudnn9-devel".into()),
            file_mounts: BTreeMap::from([("/data".to_string(), dataset)]),
            setup: "pip install -r requirements.txt".into(),
            run: "accelerate launch train_network.py --config_file /data/config.toml".into(),
            envs: BTreeMap::new(),
        }
    }

    #[test]
    fn the_task_asks_for_any_gpu_that_fits_and_tears_down_when_idle() {
        let yaml = task_yaml(&task(PathBuf::from("/tmp/set"))).unwrap();
        let v: serde_json::Value = serde_norway::from_str(&yaml).unwrap();
        let gpus: Vec<&String> = v["resources"]["accelerators"]
            .as_object()
            .unwrap()
            .keys()
            .collect();
        assert!(gpus.iter().any(|g| *g == "RTX4090"), "{yaml}");
        assert!(gpus.iter().all(|g| *g != "T4"), "{yaml}");
        assert_eq!(v["resources"]["autostop"]["down"], true);
        assert_eq!(v["resources"]["disk_size"], 80);
        assert_eq!(
            v["resources"]["image_id"],
            "docker:pytorch/pytorch:2.4.0-cuda12.1-cudnn9-devel"
        );
        assert_eq!(v["file_mounts"]["/data"], "/tmp/set");
        assert!(v["run"].as_str().unwrap().contains("train_network.py"));
        assert_eq!(accelerators_for(60.0), ["A100-80GB", "H100"]);
        let mut huge = task(PathBuf::from("/tmp/set"));
        huge.min_vram_gb = 200.0;
        assert!(task_yaml(&huge).is_err());
    }

    #[cfg(unix)]
    #[test]
    fn a_fake_sky_on_path_records_what_it_was_asked_to_launch() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let ws = Workspace::open(dir.path()).unwrap();
        let bin = dir.path().join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        let record = dir.path().join("asked.txt");
        let sky = bin.join("sky");
        std::fs::write(
            &sky,
            format!(
                "#!/bin/sh\necho \"$@\" > '{}'\ncat \"$4\" >> '{}'\necho 'Job submitted, ID: 1'\n",
                record.display(),
                record.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&sky, std::fs::Permissions::from_mode(0o755)).unwrap();
        let path = std::env::join_paths([dir.path().join("nothing"), bin.clone()]).unwrap();
        let found = find_sky(Some(&path)).unwrap();
        assert_eq!(found, sky);
        assert!(find_sky(Some(OsStr::new("/nonexistent-dir"))).is_none());

        let dataset = dir.path().join("set");
        std::fs::create_dir_all(&dataset).unwrap();
        let done = launch(&ws, &task(dataset.clone()), &found).unwrap();
        assert!(done.output.contains("Job submitted"), "{}", done.output);
        let asked = std::fs::read_to_string(&record).unwrap();
        let first = asked.lines().next().unwrap();
        assert!(
            first.starts_with("launch -c ategnatos-abc123-i-1 ")
                && first.ends_with(" -y -d -i 10 --down"),
            "{first}"
        );
        assert!(asked.contains("RTX4090") && asked.contains(&dataset.display().to_string()));
        assert!(
            done.task_file.starts_with("grimoire/"),
            "{}",
            done.task_file
        );

        // A dataset that is not there: refused before sky is run.
        std::fs::remove_file(&record).unwrap();
        let missing = task(dir.path().join("gone"));
        assert!(launch(&ws, &missing, &found).is_err());
        assert!(!record.exists());
    }
}
