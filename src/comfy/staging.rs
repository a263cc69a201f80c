//! Result folders written whole or not at all: files go to a hidden
//! `workspace/outputs/.<job>.partial/` and the folder is renamed to
//! `workspace/outputs/<job>/` once everything is in it. Work that fails or
//! is cancelled leaves nothing behind.

use std::path::{Path, PathBuf};

use super::ComfyError;
use crate::studio::{StudioError, Workspace};

/// A result folder being filled.
pub struct Staging {
    tmp: PathBuf,
    dest: PathBuf,
    committed: bool,
}

/// `workspace/outputs/`.
pub fn outputs_dir(ws: &Workspace) -> PathBuf {
    ws.work_dir().join("outputs")
}

impl Staging {
    /// Starts `workspace/outputs/<name>/`; a name already used is refused.
    pub fn new(ws: &Workspace, name: &str) -> Result<Staging, ComfyError> {
        let plain = !name.is_empty()
            && name.len() <= 100
            && !name.starts_with(['.', '-'])
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !plain {
            return Err(ComfyError::Invalid {
                message: format!("`{name}` cannot name an output folder"),
                hint: "use letters, digits, `-`, `_` and `.` only".into(),
            });
        }
        let base = outputs_dir(ws);
        let dest = base.join(name);
        if dest.exists() {
            return Err(ComfyError::Invalid {
                message: format!(
                    "the output folder `{}` already exists",
                    ws.display_path(&dest)
                ),
                hint: "pick another name; results are never written over".into(),
            });
        }
        let tmp = base.join(format!(".{name}.partial"));
        if tmp.exists() {
            let _ = std::fs::remove_dir_all(&tmp);
        }
        std::fs::create_dir_all(&tmp).map_err(|source| StudioError::Create {
            path: tmp.clone(),
            source,
        })?;
        Ok(Staging {
            tmp,
            dest,
            committed: false,
        })
    }

    /// Where files go until [`Staging::commit`].
    pub fn path(&self) -> &Path {
        &self.tmp
    }

    /// The folder's final place.
    pub fn dest(&self) -> &Path {
        &self.dest
    }

    /// `path` (inside the staging folder) as it will be after the commit.
    pub fn final_path(&self, path: &Path) -> PathBuf {
        path.strip_prefix(&self.tmp)
            .map(|rel| self.dest.join(rel))
            .unwrap_or_else(|_| path.to_path_buf())
    }

    /// Moves the finished folder into place.
    pub fn commit(mut self) -> Result<PathBuf, ComfyError> {
        std::fs::rename(&self.tmp, &self.dest).map_err(|source| StudioError::Write {
            path: self.dest.clone(),
            source,
        })?;
        self.committed = true;
        Ok(self.dest.clone())
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_dir_all(&self.tmp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_folder_appears_whole_or_not_at_all() {
        let dir = tempfile::tempdir().unwrap();
        let ws = Workspace::open(dir.path()).unwrap();
        {
            let s = Staging::new(&ws, "job-1").unwrap();
            std::fs::write(s.path().join("a.png"), b"x").unwrap();
        }
        assert!(!outputs_dir(&ws).join("job-1").exists());
        assert_eq!(std::fs::read_dir(outputs_dir(&ws)).unwrap().count(), 0);
        let s = Staging::new(&ws, "job-1").unwrap();
        let file = s.path().join("a.png");
        std::fs::write(&file, b"x").unwrap();
        let fin = s.final_path(&file);
        let dest = s.commit().unwrap();
        assert!(fin.is_file() && dest.is_dir());
        assert!(Staging::new(&ws, "job-1").is_err());
        assert!(Staging::new(&ws, "../x").is_err());
    }
}
