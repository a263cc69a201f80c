//! The checkpoints of a run: every LoRA file the trainer writes into its
//! output folder during the run is taken, once it is whole (it reads back
//! as a complete safetensors file), into `grimoire/training/<name>/
//! checkpoints/` — a hard link where the disk allows, else a copy written
//! atomically — and only the newest few are kept there. An older one goes
//! only after the newer one is in place and reads back whole, so a full
//! disk never costs a checkpoint that was already kept. The trainer's own
//! output folder is never touched.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

/// Checkpoints kept per run by default.
pub const KEEP: usize = 3;

/// One kept LoRA file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Checkpoint {
    /// Where it is kept (relative to the workspace when shown).
    pub path: String,
    pub bytes: u64,
}

/// Whether `path` is a complete safetensors file: an 8-byte header length,
/// a JSON header of that length, and tensors that end exactly at the end
/// of the file.
pub fn is_whole_safetensors(path: &Path) -> bool {
    use std::io::Read;
    let Ok(mut f) = std::fs::File::open(path) else {
        return false;
    };
    let Ok(size) = f.metadata().map(|m| m.len()) else {
        return false;
    };
    let mut len = [0u8; 8];
    if f.read_exact(&mut len).is_err() {
        return false;
    }
    let n = u64::from_le_bytes(len);
    if n == 0 || n > 100 << 20 || 8 + n > size {
        return false;
    }
    let mut header = vec![0u8; n as usize];
    if f.read_exact(&mut header).is_err() {
        return false;
    }
    let Ok(serde_json::Value::Object(map)) = serde_json::from_slice::<serde_json::Value>(&header)
    else {
        return false;
    };
    let end = map
        .iter()
        .filter(|(k, _)| k.as_str() != "__metadata__")
        .filter_map(|(_, v)| v.get("data_offsets")?.get(1)?.as_u64())
        .max()
        .unwrap_or(0);
    8 + n + end == size
}

/// Whether a file name is a trainer's in-between save rather than its
/// final LoRA: kohya's `name-000005` / `name-step00000250`, ai-toolkit's
/// `name_000000250`, or anything in SimpleTuner's `checkpoint-250/`.
pub fn is_intermediate(path: &Path) -> bool {
    if path
        .parent()
        .and_then(Path::file_name)
        .is_some_and(|d| d.to_string_lossy().starts_with("checkpoint-"))
    {
        return true;
    }
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let digits = stem.chars().rev().take_while(char::is_ascii_digit).count();
    if digits < 4 {
        return false;
    }
    let before = stem[..stem.len() - digits].to_string();
    before.ends_with('-') || before.ends_with('_') || before.ends_with("-step")
}

/// Safetensors files under `dir` (and one level down) modified since
/// `since`, oldest first.
pub fn written_since(dir: &Path, since: SystemTime) -> Vec<(PathBuf, SystemTime)> {
    let mut found = Vec::new();
    let visit = |d: &Path, found: &mut Vec<(PathBuf, SystemTime)>, deeper: &mut Vec<PathBuf>| {
        let Ok(entries) = std::fs::read_dir(d) else {
            return;
        };
        for e in entries.flatten() {
            let path = e.path();
            let Ok(meta) = e.metadata() else { continue };
            if meta.is_dir() {
                deeper.push(path);
            } else if path.extension().is_some_and(|x| x == "safetensors")
                && let Ok(modified) = meta.modified()
                && modified >= since
            {
                found.push((path, modified));
            }
        }
    };
    let mut deeper = Vec::new();
    visit(dir, &mut found, &mut deeper);
    for d in std::mem::take(&mut deeper) {
        let mut none = Vec::new();
        visit(&d, &mut found, &mut none);
    }
    found.sort_by(|a, b| a.1.cmp(&b.1).then_with(|| a.0.cmp(&b.0)));
    found
}

/// Keeps the checkpoints of one run.
#[derive(Debug)]
pub struct Keeper {
    /// The trainer's output folder.
    pub source: PathBuf,
    /// `grimoire/training/<name>/checkpoints/`.
    pub dest: PathBuf,
    pub keep: usize,
    pub since: SystemTime,
    /// Source files already taken (or refused as the final LoRA).
    taken: BTreeSet<PathBuf>,
    /// Kept files, oldest first.
    pub kept: Vec<PathBuf>,
    /// Sizes seen on the last scan, to take a file only once it stopped
    /// growing.
    sizes: Vec<(PathBuf, u64)>,
}

impl Keeper {
    pub fn new(source: PathBuf, dest: PathBuf, keep: usize, since: SystemTime) -> Keeper {
        Keeper {
            source,
            dest,
            keep: keep.max(1),
            since,
            taken: BTreeSet::new(),
            kept: Vec::new(),
            sizes: Vec::new(),
        }
    }

    /// Takes every new, whole in-between checkpoint and rotates. Returns
    /// the names newly kept. `settled` takes files whose size has not been
    /// seen yet too (the trainer has ended).
    pub fn scan(&mut self, settled: bool) -> Vec<String> {
        let mut newly = Vec::new();
        let mut sizes = Vec::new();
        for (path, _) in written_since(&self.source, self.since) {
            if self.taken.contains(&path) || !is_intermediate(&path) {
                continue;
            }
            let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
            let stable = settled || self.sizes.iter().any(|(p, s)| *p == path && *s == size);
            sizes.push((path.clone(), size));
            if !stable || !is_whole_safetensors(&path) {
                continue;
            }
            match self.take(&path) {
                Ok(kept) => {
                    self.taken.insert(path);
                    newly.push(
                        kept.file_name()
                            .map(|n| n.to_string_lossy().into_owned())
                            .unwrap_or_default(),
                    );
                    self.kept.push(kept);
                    self.rotate();
                }
                Err(e) => {
                    tracing::warn!("could not keep the checkpoint {}: {e}", path.display());
                }
            }
        }
        self.sizes = sizes;
        newly
    }

    /// Links (or copies) `path` into the kept folder and checks the kept
    /// file reads back whole.
    fn take(&self, path: &Path) -> std::io::Result<PathBuf> {
        let name = checkpoint_name(path);
        std::fs::create_dir_all(&self.dest)?;
        let dest = self.dest.join(&name);
        let temp = self.dest.join(format!(".{name}.part"));
        let _ = std::fs::remove_file(&temp);
        if std::fs::hard_link(path, &temp).is_err() {
            std::fs::copy(path, &temp)?;
        }
        if !is_whole_safetensors(&temp) {
            let _ = std::fs::remove_file(&temp);
            return Err(std::io::Error::other("the copy does not read back whole"));
        }
        std::fs::rename(&temp, &dest)?;
        Ok(dest)
    }

    /// Removes the oldest kept files beyond `keep` — each only while the
    /// newest one is there and whole.
    fn rotate(&mut self) {
        while self.kept.len() > self.keep {
            let newest_ok = self.kept.last().is_some_and(|p| is_whole_safetensors(p));
            if !newest_ok {
                return;
            }
            let old = self.kept.remove(0);
            if let Err(e) = std::fs::remove_file(&old) {
                tracing::warn!("could not remove the old checkpoint {}: {e}", old.display());
            }
        }
    }

    /// The kept files with their sizes.
    pub fn listed(&self, shown: impl Fn(&Path) -> String) -> Vec<Checkpoint> {
        self.kept
            .iter()
            .map(|p| Checkpoint {
                path: shown(p),
                bytes: std::fs::metadata(p).map(|m| m.len()).unwrap_or(0),
            })
            .collect()
    }

    /// The trainer's final LoRA: the newest whole file it wrote this run
    /// that is not an in-between save (else the newest whole one).
    pub fn final_lora(&self) -> Option<PathBuf> {
        let written = written_since(&self.source, self.since);
        let whole: Vec<&PathBuf> = written
            .iter()
            .map(|(p, _)| p)
            .filter(|p| is_whole_safetensors(p))
            .collect();
        whole
            .iter()
            .rev()
            .find(|p| !is_intermediate(p))
            .or_else(|| whole.last())
            .map(|p| (*p).clone())
    }
}

/// The kept name: the file's own, or `checkpoint-250.safetensors` for
/// SimpleTuner's `checkpoint-250/pytorch_lora_weights.safetensors`.
fn checkpoint_name(path: &Path) -> String {
    let own = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "checkpoint.safetensors".into());
    match path.parent().and_then(Path::file_name) {
        Some(d) if d.to_string_lossy().starts_with("checkpoint-") => {
            format!("{}.safetensors", d.to_string_lossy())
        }
        _ => own,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lora(path: &Path, floats: usize) {
        let header = format!(
            "{{\"w\":{{\"dtype\":\"F32\",\"shape\":[{floats}],\"data_offsets\":[0,{}]}}}}",
            floats * 4
        );
        let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
        bytes.extend(header.as_bytes());
        bytes.extend(vec![0u8; floats * 4]);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    }

    #[test]
    fn whole_and_cut_files_are_told_apart() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.safetensors");
        lora(&p, 16);
        assert!(is_whole_safetensors(&p));
        let bytes = std::fs::read(&p).unwrap();
        std::fs::write(&p, &bytes[..bytes.len() - 3]).unwrap();
        assert!(!is_whole_safetensors(&p));
        std::fs::write(&p, b"not a tensor file").unwrap();
        assert!(!is_whole_safetensors(&p));
    }

    #[test]
    fn in_between_saves_are_named_as_the_trainers_name_them() {
        for name in [
            "out/fox-000005.safetensors",
            "out/fox-step00000250.safetensors",
            "out/fox/fox_000000250.safetensors",
            "out/checkpoint-250/pytorch_lora_weights.safetensors",
        ] {
            assert!(is_intermediate(Path::new(name)), "{name}");
        }
        for name in [
            "out/fox.safetensors",
            "out/fox-v2.safetensors",
            "out/pytorch_lora_weights.safetensors",
            "out/fox_v3.safetensors",
            "out/fox-12.safetensors",
        ] {
            assert!(!is_intermediate(Path::new(name)), "{name}");
        }
    }

    #[test]
    fn rotation_keeps_the_last_three_and_never_the_cut_one() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let dest = dir.path().join("kept");
        std::fs::create_dir_all(&out).unwrap();
        let since = SystemTime::now() - std::time::Duration::from_secs(5);
        let mut keeper = Keeper::new(out.clone(), dest.clone(), 3, since);
        for epoch in 1..=5 {
            lora(&out.join(format!("fox-{epoch:06}.safetensors")), 8 + epoch);
            // The first scan sees it, the second takes it once it stopped growing.
            keeper.scan(false);
            keeper.scan(false);
        }
        let mut names: Vec<String> = std::fs::read_dir(&dest)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(
            names,
            [
                "fox-000003.safetensors",
                "fox-000004.safetensors",
                "fox-000005.safetensors"
            ]
        );
        // A cut-off save (a full disk) is not taken, and costs nothing kept.
        let cut = out.join("fox-000006.safetensors");
        lora(&cut, 20);
        let bytes = std::fs::read(&cut).unwrap();
        std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
        keeper.scan(true);
        assert_eq!(std::fs::read_dir(&dest).unwrap().count(), 3);
        assert!(dest.join("fox-000003.safetensors").is_file());
        // The trainer's own files are all still there.
        assert_eq!(std::fs::read_dir(&out).unwrap().count(), 6);
        // The final LoRA is told from the saves.
        lora(&out.join("fox.safetensors"), 9);
        assert_eq!(keeper.final_lora().unwrap(), out.join("fox.safetensors"));
    }
}
