//! The workspace on disk: where state lives, how it is written, and which
//! paths a tool may touch.
//!
//! A workspace root holds `grimoire/` (human-readable reports, with the JSON
//! records that are the source of truth under `grimoire/.state/`) and
//! `workspace/` (generated configs, quarantine, outputs). Every write goes
//! through [`atomic::write_atomic`]; every path a tool receives goes through
//! [`Workspace::resolve`].

pub mod atomic;
pub mod clock;
pub mod font;
pub mod paths;
pub mod progress;
pub mod project;

use std::path::{Path, PathBuf};

pub use atomic::{write_atomic, write_json_atomic};
pub use paths::PathError;
pub use progress::{NoProgress, Progress};

/// An error that says what the person can do about it: every refusal, in
/// the tools and on the command line, is its message plus this hint.
pub trait Hint: std::fmt::Display {
    /// What to do, in one sentence; `None` when the message says it all.
    fn hint(&self) -> Option<String>;
}

/// Errors from opening the workspace or touching its state.
#[derive(Debug, thiserror::Error)]
pub enum StudioError {
    #[error("the workspace root `{path}` does not exist or is not a folder")]
    RootMissing { path: PathBuf },
    #[error("could not create `{path}`: {source}")]
    Create {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("could not write `{path}`: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("could not read `{path}`: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the state file `{path}` is not valid: {reason}")]
    Corrupt { path: PathBuf, reason: String },
    #[error("`{name}` is not a usable project name: {reason}")]
    BadProjectName { name: String, reason: &'static str },
    #[error(transparent)]
    Path(#[from] PathError),
}

impl Hint for StudioError {
    /// What the user can do about it, in one sentence.
    fn hint(&self) -> Option<String> {
        match self {
            StudioError::RootMissing { .. } => Some(
                "create the folder first, or start Ategnatos with `--root` pointing at your studio folder".into(),
            ),
            StudioError::BadProjectName { .. } => Some(
                "use 1 to 64 letters, digits, `-` or `_`, for example `ink-foxes`".into(),
            ),
            StudioError::Corrupt { .. } => Some(
                "the file was edited or damaged; re-run the step that writes it".into(),
            ),
            StudioError::Path(e) => e.hint(),
            _ => None,
        }
    }
}

/// The studio folder every tool works in.
#[derive(Debug, Clone)]
pub struct Workspace {
    root: PathBuf,
}

impl Workspace {
    /// Opens the workspace at `root`. Nothing is created: `grimoire/` and
    /// `workspace/` appear with the first thing written into them, so a
    /// command that only reads leaves the folder as it found it.
    pub fn open(root: &Path) -> Result<Self, StudioError> {
        let root = root
            .canonicalize()
            .ok()
            .filter(|p| p.is_dir())
            .ok_or_else(|| StudioError::RootMissing {
                path: root.to_path_buf(),
            })?;
        Ok(Workspace { root })
    }

    /// The canonical workspace root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `grimoire/`: the human-readable state.
    pub fn grimoire(&self) -> PathBuf {
        self.root.join("grimoire")
    }

    /// `grimoire/.state/`: JSON records, the source of truth.
    pub fn state_dir(&self) -> PathBuf {
        self.grimoire().join(".state")
    }

    /// `workspace/`: configs, quarantine, outputs.
    pub fn work_dir(&self) -> PathBuf {
        self.root.join("workspace")
    }

    /// `grimoire/training/<name>/`, after checking the name.
    pub fn project_dir(&self, name: &str) -> Result<PathBuf, StudioError> {
        check_project_name(name)?;
        Ok(self.grimoire().join("training").join(name))
    }

    /// `grimoire/.state/projects/<name>/`, after checking the name.
    pub fn project_state_dir(&self, name: &str) -> Result<PathBuf, StudioError> {
        check_project_name(name)?;
        Ok(self.state_dir().join("projects").join(name))
    }

    /// Resolves a path a user or a client gave us; see [`paths::resolve_inside`].
    pub fn resolve(&self, user_path: &str) -> Result<PathBuf, PathError> {
        paths::resolve_inside(&self.root, user_path)
    }

    /// The path as the user should see it: relative to the root when inside it.
    pub fn display_path(&self, path: &Path) -> String {
        path.strip_prefix(&self.root)
            .map(|p| {
                if p.as_os_str().is_empty() {
                    ".".to_string()
                } else {
                    p.to_string_lossy().into_owned()
                }
            })
            .unwrap_or_else(|_| path.to_string_lossy().into_owned())
    }

    /// Reads a JSON record written by [`write_json_atomic`]; `Ok(None)` when absent.
    pub fn read_json<T: serde::de::DeserializeOwned>(
        &self,
        path: &Path,
    ) -> Result<Option<T>, StudioError> {
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(StudioError::Read {
                    path: path.to_path_buf(),
                    source,
                });
            }
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| StudioError::Corrupt {
                path: path.to_path_buf(),
                reason: e.to_string(),
            })
    }
}

/// Project names become folder names and URI segments, so they are kept plain.
pub fn check_project_name(name: &str) -> Result<(), StudioError> {
    let bad = |reason| {
        Err(StudioError::BadProjectName {
            name: name.to_string(),
            reason,
        })
    };
    if name.is_empty() || name.len() > 64 {
        return bad("it must be 1 to 64 characters long");
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return bad("only letters, digits, `-` and `_` are allowed");
    }
    if name.starts_with('-') {
        return bad("it must not start with `-`");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opening_creates_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let ws = Workspace::open(dir.path()).unwrap();
        assert!(!ws.grimoire().exists() && !ws.work_dir().exists());
        write_json_atomic(&ws.state_dir().join("x.json"), &1).unwrap();
        assert!(ws.state_dir().is_dir());
    }

    #[test]
    fn project_names_are_plain() {
        assert!(check_project_name("ink-foxes_2").is_ok());
        for bad in ["", "../x", "a b", "-x", "é", &"x".repeat(65)] {
            assert!(check_project_name(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn missing_root_is_refused_with_a_hint() {
        let err = Workspace::open(Path::new("/definitely/not/here")).unwrap_err();
        assert!(err.hint().unwrap().contains("--root"));
    }
}
