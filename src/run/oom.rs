//! Out of GPU memory: the batch is halved and, where the trainer supports
//! it, gradient accumulation doubled so each optimizer step still sees as
//! many pictures. The adjusted configs are written beside the originals
//! (`config.batch2.toml`, `job.batch2.yaml`, SimpleTuner's `<env>-batch2/`),
//! which are never changed, and the command is pointed at them.

use std::path::{Path, PathBuf};

use crate::plan::training::Backend;
use crate::studio::write_atomic;

/// A halved batch, ready to run.
#[derive(Debug, Clone, PartialEq)]
pub struct Adjusted {
    /// The command's arguments (after the program), pointing at the new configs.
    pub args: Vec<String>,
    pub batch: u32,
    pub accumulation: u32,
    /// The files written.
    pub written: Vec<PathBuf>,
}

/// Why the batch could not be halved.
#[derive(Debug, thiserror::Error)]
pub enum AdjustError {
    #[error("the batch is already 1")]
    BatchOfOne,
    #[error("the command names no config file to adjust")]
    NoConfig,
    #[error("could not read `{path}`: {why}")]
    Read { path: PathBuf, why: String },
    #[error("could not write `{path}`: {why}")]
    Write { path: PathBuf, why: String },
}

fn resolve(root: &Path, arg: &str) -> PathBuf {
    let p = PathBuf::from(arg);
    if p.is_absolute() { p } else { root.join(p) }
}

/// `dir/config.toml` → `dir/config.batch2.toml`.
fn beside(path: &Path, batch: u32) -> PathBuf {
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    // A retry of a retry replaces the tag rather than stacking them.
    let stem = match stem.rfind(".batch") {
        Some(i) => stem[..i].to_string(),
        None => stem,
    };
    let ext = path
        .extension()
        .map(|e| format!(".{}", e.to_string_lossy()))
        .unwrap_or_default();
    path.with_file_name(format!("{stem}.batch{batch}{ext}"))
}

/// The argument as it was written (absolute or relative), for a new path.
fn same_style(original_arg: &str, root: &Path, new: &Path) -> String {
    if Path::new(original_arg).is_absolute() {
        new.to_string_lossy().into_owned()
    } else {
        new.strip_prefix(root)
            .unwrap_or(new)
            .to_string_lossy()
            .into_owned()
    }
}

fn read(path: &Path) -> Result<String, AdjustError> {
    std::fs::read_to_string(path).map_err(|e| AdjustError::Read {
        path: path.to_path_buf(),
        why: e.to_string(),
    })
}

fn write(path: &Path, text: &str) -> Result<(), AdjustError> {
    write_atomic(path, text.as_bytes()).map_err(|e| AdjustError::Write {
        path: path.to_path_buf(),
        why: e.to_string(),
    })
}

fn toml_table(path: &Path) -> Result<toml::Table, AdjustError> {
    read(path)?
        .parse::<toml::Table>()
        .map_err(|e| AdjustError::Read {
            path: path.to_path_buf(),
            why: e.to_string(),
        })
}

fn toml_text(path: &Path, t: &toml::Table) -> Result<String, AdjustError> {
    toml::to_string(t).map_err(|e| AdjustError::Write {
        path: path.to_path_buf(),
        why: e.to_string(),
    })
}

/// Halves the batch of the run `args` describe (the command after its
/// program), from `batch` with `accumulation` steps.
pub fn halve_batch(
    backend: Backend,
    root: &Path,
    args: &[String],
    batch: u32,
    accumulation: u32,
) -> Result<Adjusted, AdjustError> {
    if batch <= 1 {
        return Err(AdjustError::BatchOfOne);
    }
    let new_batch = batch / 2;
    let accumulates = backend != Backend::Native;
    let new_accum = if accumulates {
        accumulation.max(1) * 2
    } else {
        accumulation.max(1)
    };
    let mut args = args.to_vec();
    let mut written = Vec::new();
    match backend {
        Backend::Kohya => {
            let i = args
                .iter()
                .position(|a| a == "--config_file")
                .map(|i| i + 1)
                .filter(|&i| i < args.len())
                .ok_or(AdjustError::NoConfig)?;
            let path = resolve(root, &args[i]);
            let mut config = toml_table(&path)?;
            config.insert("train_batch_size".into(), i64::from(new_batch).into());
            config.insert(
                "gradient_accumulation_steps".into(),
                i64::from(new_accum).into(),
            );
            if let Some(toml::Value::String(ds)) = config.get("dataset_config").cloned() {
                let ds_path = resolve(root, &ds);
                let mut dataset = toml_table(&ds_path)?;
                if let Some(toml::Value::Array(sets)) = dataset.get_mut("datasets") {
                    for set in sets.iter_mut() {
                        if let toml::Value::Table(t) = set {
                            t.insert("batch_size".into(), i64::from(new_batch).into());
                        }
                    }
                }
                if let Some(toml::Value::Table(general)) = dataset.get_mut("general")
                    && general.contains_key("batch_size")
                {
                    general.insert("batch_size".into(), i64::from(new_batch).into());
                }
                let new_ds = beside(&ds_path, new_batch);
                write(&new_ds, &toml_text(&new_ds, &dataset)?)?;
                config.insert(
                    "dataset_config".into(),
                    same_style(&ds, root, &new_ds).into(),
                );
                written.push(new_ds);
            }
            let new_path = beside(&path, new_batch);
            write(&new_path, &toml_text(&new_path, &config)?)?;
            args[i] = same_style(&args[i], root, &new_path);
            written.push(new_path);
        }
        Backend::SimpleTuner => {
            let i = args
                .iter()
                .position(|a| a == "--env")
                .map(|i| i + 1)
                .filter(|&i| i < args.len())
                .ok_or(AdjustError::NoConfig)?;
            let dir = resolve(root, &args[i]);
            let path = dir.join("config.json");
            let text = read(&path)?;
            let mut config: serde_json::Map<String, serde_json::Value> =
                serde_json::from_str(&text).map_err(|e| AdjustError::Read {
                    path: path.clone(),
                    why: e.to_string(),
                })?;
            // SimpleTuner's keys may carry their `--`; keep the file's style.
            let dashed = config.keys().any(|k| k.starts_with("--"));
            let key = |k: &str| if dashed { format!("--{k}") } else { k.into() };
            config.insert(key("train_batch_size"), new_batch.into());
            config.insert(key("gradient_accumulation_steps"), new_accum.into());
            let name = dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "config".into());
            let base = match name.rfind("-batch") {
                Some(i) => name[..i].to_string(),
                None => name,
            };
            let new_dir = dir.with_file_name(format!("{base}-batch{new_batch}"));
            let new_path = new_dir.join("config.json");
            let text = serde_json::to_string_pretty(&config).map_err(|e| AdjustError::Write {
                path: new_path.clone(),
                why: e.to_string(),
            })?;
            write(&new_path, &text)?;
            args[i] = same_style(&args[i], root, &new_dir);
            written.push(new_path);
        }
        Backend::AiToolkit => {
            let i = args
                .iter()
                .rposition(|a| a.ends_with(".yaml") || a.ends_with(".yml"))
                .ok_or(AdjustError::NoConfig)?;
            let path = resolve(root, &args[i]);
            let mut job: serde_norway::Value =
                serde_norway::from_str(&read(&path)?).map_err(|e| AdjustError::Read {
                    path: path.clone(),
                    why: e.to_string(),
                })?;
            let train = job
                .get_mut("config")
                .and_then(|c| c.get_mut("process"))
                .and_then(|p| p.get_mut(0))
                .and_then(|p| p.get_mut("train"))
                .and_then(|t| t.as_mapping_mut())
                .ok_or_else(|| AdjustError::Read {
                    path: path.clone(),
                    why: "it has no `config.process[0].train` section".into(),
                })?;
            train.insert("batch_size".into(), u64::from(new_batch).into());
            train.insert(
                "gradient_accumulation_steps".into(),
                u64::from(new_accum).into(),
            );
            let new_path = beside(&path, new_batch);
            let text = serde_norway::to_string(&job).map_err(|e| AdjustError::Write {
                path: new_path.clone(),
                why: e.to_string(),
            })?;
            write(&new_path, &text)?;
            args[i] = same_style(&args[i], root, &new_path);
            written.push(new_path);
        }
        Backend::Native => {
            let i = args
                .iter()
                .rposition(|a| a.ends_with(".toml"))
                .ok_or(AdjustError::NoConfig)?;
            let path = resolve(root, &args[i]);
            let mut config = toml_table(&path)?;
            let Some(toml::Value::Table(training)) = config.get_mut("training") else {
                return Err(AdjustError::Read {
                    path,
                    why: "it has no `[training]` section".into(),
                });
            };
            training.insert("batch_size".into(), i64::from(new_batch).into());
            let new_path = beside(&path, new_batch);
            write(&new_path, &toml_text(&new_path, &config)?)?;
            args[i] = same_style(&args[i], root, &new_path);
            written.push(new_path);
        }
    }
    Ok(Adjusted {
        args,
        batch: new_batch,
        accumulation: new_accum,
        written,
    })
}

/// What was changed, in words.
pub fn describe(backend: Backend, from: (u32, u32), to: &Adjusted) -> String {
    if backend == Backend::Native {
        format!(
            "out of GPU memory at batch {}: retrying at batch {} (the engine has no gradient accumulation, so each step sees half as many pictures)",
            from.0, to.batch
        )
    } else {
        format!(
            "out of GPU memory at batch {}: retrying at batch {} with gradient accumulation {} (was {}), so each step still learns from {} pictures",
            from.0,
            to.batch,
            to.accumulation,
            from.1.max(1),
            to.batch * to.accumulation
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kohya_gets_a_halved_copy_and_the_original_stays() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let cfg = root.join("configs/config.toml");
        let ds = root.join("configs/dataset.toml");
        std::fs::create_dir_all(cfg.parent().unwrap()).unwrap();
        let original_ds = "[general]\ncaption_extension = \".txt\"\n\n[[datasets]]\nbatch_size = 4\n\n[[datasets.subsets]]\nimage_dir = \"/x\"\n";
        std::fs::write(&ds, original_ds).unwrap();
        let original = format!(
            "train_batch_size = 4\ndataset_config = \"{}\"\noutput_name = \"fox\"\n",
            ds.display()
        );
        std::fs::write(&cfg, &original).unwrap();
        let args: Vec<String> = ["launch", "train_network.py", "--config_file"]
            .iter()
            .map(|s| s.to_string())
            .chain([cfg.to_string_lossy().into_owned()])
            .collect();
        let a = halve_batch(Backend::Kohya, root, &args, 4, 1).unwrap();
        assert_eq!((a.batch, a.accumulation), (2, 2));
        assert_eq!(
            a.args[3],
            root.join("configs/config.batch2.toml").to_string_lossy()
        );
        let new: toml::Table = std::fs::read_to_string(&a.args[3])
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(new["train_batch_size"].as_integer(), Some(2));
        assert_eq!(new["gradient_accumulation_steps"].as_integer(), Some(2));
        assert_eq!(new["output_name"].as_str(), Some("fox"));
        let new_ds: toml::Table = std::fs::read_to_string(new["dataset_config"].as_str().unwrap())
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(new_ds["datasets"][0]["batch_size"].as_integer(), Some(2));
        assert_eq!(std::fs::read_to_string(&cfg).unwrap(), original);
        assert_eq!(std::fs::read_to_string(&ds).unwrap(), original_ds);
        // A second halving names its own files, not `.batch2.batch1`.
        let b = halve_batch(Backend::Kohya, root, &a.args, 2, 2).unwrap();
        assert!(b.args[3].ends_with("config.batch1.toml"), "{:?}", b.args);
        assert_eq!(b.accumulation, 4);
        assert!(matches!(
            halve_batch(Backend::Kohya, root, &b.args, 1, 4),
            Err(AdjustError::BatchOfOne)
        ));
        assert!(describe(Backend::Kohya, (4, 1), &a).contains("still learns from 4 pictures"));
    }

    #[test]
    fn ai_toolkit_and_simpletuner_keep_their_file_shapes() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let job = root.join("job.yaml");
        std::fs::write(
            &job,
            "job: extension\nconfig:\n  name: fox\n  process:\n  - type: sd_trainer\n    train:\n      batch_size: 4\n      gradient_accumulation_steps: 1\n      steps: 100\n",
        )
        .unwrap();
        let a = halve_batch(
            Backend::AiToolkit,
            root,
            &["run.py".into(), job.to_string_lossy().into_owned()],
            4,
            1,
        )
        .unwrap();
        let v: serde_norway::Value =
            serde_norway::from_str(&std::fs::read_to_string(&a.args[1]).unwrap()).unwrap();
        let train = &v["config"]["process"][0]["train"];
        assert_eq!(train["batch_size"].as_u64(), Some(2));
        assert_eq!(train["gradient_accumulation_steps"].as_u64(), Some(2));
        assert_eq!(train["steps"].as_u64(), Some(100));

        let env = root.join("st");
        std::fs::create_dir_all(&env).unwrap();
        std::fs::write(
            env.join("config.json"),
            r#"{"--train_batch_size": 4, "--output_dir": "/out"}"#,
        )
        .unwrap();
        let s = halve_batch(
            Backend::SimpleTuner,
            root,
            &[
                "train".into(),
                "--env".into(),
                env.to_string_lossy().into_owned(),
            ],
            4,
            1,
        )
        .unwrap();
        assert!(s.args[2].ends_with("st-batch2"), "{:?}", s.args);
        let c: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(Path::new(&s.args[2]).join("config.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(c["--train_batch_size"], 2);
        assert_eq!(c["--gradient_accumulation_steps"], 2);
        assert_eq!(c["--output_dir"], "/out");
    }
}
