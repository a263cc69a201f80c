//! Path policy: every path a tool receives must stay inside the workspace.
//!
//! A path is joined to the root when relative, normalised without touching the
//! disk (so `a/../../x` is caught even when `a` does not exist), and then the
//! longest part of it that exists is canonicalised, so a symlink that points
//! out of the root is caught too.

use crate::studio::Hint;
use std::path::{Component, Path, PathBuf};

/// A path that a tool may not use.
#[derive(Debug, thiserror::Error)]
pub enum PathError {
    #[error("the path is empty")]
    Empty,
    #[error("`{path}` is outside the workspace `{root}`")]
    OutsideRoot { path: String, root: PathBuf },
    #[error("`{path}` leads outside the workspace `{root}` through the symlink `{link}`")]
    SymlinkEscape {
        path: String,
        link: PathBuf,
        root: PathBuf,
    },
    #[error("`{path}` does not exist")]
    NotFound { path: String },
    #[error(
        "`{path}` goes through the link `{link}`, which points to nothing that exists (or to itself)"
    )]
    BrokenLink { path: String, link: PathBuf },
}

impl Hint for PathError {
    fn hint(&self) -> Option<String> {
        match self {
            PathError::Empty => Some("give a folder or file inside the workspace".into()),
            PathError::OutsideRoot { root, .. } | PathError::SymlinkEscape { root, .. } => {
                Some(format!(
                    "copy the pictures into `{}` (or start Ategnatos with `--root` set to a folder that contains them) and use a path inside it",
                    root.display()
                ))
            }
            PathError::NotFound { .. } => {
                Some("check the spelling; paths are relative to the workspace root".into())
            }
            PathError::BrokenLink { .. } => Some(
                "point the link at an existing file or folder inside the workspace, or remove the link".into(),
            ),
        }
    }
}

/// Resolves `user_path` against `root` (which must already be canonical) and
/// refuses anything that leaves it. The result need not exist.
pub fn resolve_inside(root: &Path, user_path: &str) -> Result<PathBuf, PathError> {
    let trimmed = user_path.trim();
    if trimmed.is_empty() {
        return Err(PathError::Empty);
    }
    let outside = || PathError::OutsideRoot {
        path: user_path.to_string(),
        root: root.to_path_buf(),
    };
    let given = Path::new(trimmed);
    let joined = if given.is_absolute() {
        given.to_path_buf()
    } else {
        root.join(given)
    };
    // Lexical normalisation first: `..` may never climb above the root.
    let mut normal = PathBuf::new();
    for comp in joined.components() {
        match comp {
            Component::ParentDir => {
                if !normal.pop() {
                    return Err(outside());
                }
            }
            Component::CurDir => {}
            other => normal.push(other),
        }
    }
    if !normal.starts_with(root) {
        return Err(outside());
    }
    // Then the real disk: the longest existing ancestor must resolve inside.
    let mut existing = normal.as_path();
    loop {
        if std::fs::symlink_metadata(existing).is_ok() {
            break;
        }
        match existing.parent() {
            Some(p) => existing = p,
            None => return Ok(normal),
        }
    }
    match existing.canonicalize() {
        Ok(real) if real.starts_with(root) => Ok(normal),
        Ok(_) => Err(PathError::SymlinkEscape {
            path: user_path.to_string(),
            link: existing.to_path_buf(),
            root: root.to_path_buf(),
        }),
        // A dangling or looping symlink: it cannot be followed, so refuse it.
        Err(_) => Err(PathError::BrokenLink {
            path: user_path.to_string(),
            link: existing.to_path_buf(),
        }),
    }
}

/// Like [`resolve_inside`], and the path must exist.
pub fn resolve_existing(root: &Path, user_path: &str) -> Result<PathBuf, PathError> {
    let path = resolve_inside(root, user_path)?;
    if std::fs::symlink_metadata(&path).is_err() {
        return Err(PathError::NotFound {
            path: user_path.to_string(),
        });
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        (dir, root)
    }

    #[test]
    fn relative_and_absolute_inside_are_accepted() {
        let (_d, root) = root();
        std::fs::create_dir(root.join("pics")).unwrap();
        assert_eq!(resolve_inside(&root, "pics").unwrap(), root.join("pics"));
        assert_eq!(
            resolve_inside(&root, root.join("pics/new.txt").to_str().unwrap()).unwrap(),
            root.join("pics/new.txt")
        );
        assert_eq!(
            resolve_inside(&root, "pics/../pics/./x").unwrap(),
            root.join("pics/x")
        );
    }

    #[test]
    fn escapes_are_refused() {
        let (_d, root) = root();
        for p in ["..", "../x", "a/../../x", "/etc/passwd", "/"] {
            assert!(
                matches!(resolve_inside(&root, p), Err(PathError::OutsideRoot { .. })),
                "{p} accepted"
            );
        }
        assert!(matches!(resolve_inside(&root, "  "), Err(PathError::Empty)));
    }

    #[test]
    fn a_link_to_nothing_is_refused_as_a_broken_link() {
        let (_d, root) = root();
        std::os::unix::fs::symlink(root.join("gone.png"), root.join("dangling.png")).unwrap();
        std::os::unix::fs::symlink(root.join("self"), root.join("self")).unwrap();
        for p in ["dangling.png", "self"] {
            let err = resolve_inside(&root, p).unwrap_err();
            assert!(matches!(err, PathError::BrokenLink { .. }), "{p}: {err:?}");
            assert!(err.to_string().contains("points to nothing"), "{err}");
        }
    }

    #[test]
    fn symlink_out_of_the_root_is_refused() {
        let (_d, root) = root();
        let outside = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(outside.path(), root.join("link")).unwrap();
        let err = resolve_inside(&root, "link/secret.png").unwrap_err();
        assert!(matches!(err, PathError::SymlinkEscape { .. }), "{err:?}");
        assert!(err.hint().unwrap().contains("copy the pictures"));
    }

    #[test]
    fn symlink_inside_the_root_is_fine() {
        let (_d, root) = root();
        std::fs::create_dir(root.join("real")).unwrap();
        std::os::unix::fs::symlink(root.join("real"), root.join("alias")).unwrap();
        assert!(resolve_inside(&root, "alias/a.png").is_ok());
    }
}
