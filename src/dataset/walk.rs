//! Listing a dataset folder: every file under it, and every entry that could
//! not be listed, without ever following a link out of the workspace or
//! around a loop.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

/// A file found under the dataset folder.
#[derive(Debug, Clone)]
pub struct FoundFile {
    /// Full path on disk.
    pub path: PathBuf,
    /// Path relative to the dataset folder, as shown to the user (lossy when the
    /// name is not UTF-8).
    pub rel: String,
    /// Folder relative to the dataset folder (`""` for the top folder).
    pub folder: String,
    /// False when some component of the name is not valid UTF-8.
    pub utf8_name: bool,
}

/// Why an entry under the dataset folder could not be listed or followed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WalkProblemKind {
    /// A folder or link we were not allowed to read.
    NotReadable(String),
    /// A folder link that leads back into a folder already being listed.
    SymlinkLoop,
    /// A link whose target does not exist.
    BrokenLink,
    /// A link that leads out of the workspace.
    OutsideWorkspace,
}

/// An entry that could not be listed.
#[derive(Debug, Clone)]
pub struct WalkProblem {
    pub rel: String,
    pub kind: WalkProblemKind,
}

/// Everything under a folder.
#[derive(Debug, Default)]
pub struct Listing {
    pub files: Vec<FoundFile>,
    pub folders: Vec<String>,
    pub problems: Vec<WalkProblem>,
}

/// Lists every file under `dir` (recursively, sorted by path), following links
/// only while they stay inside `workspace_root`.
pub fn list_files(dir: &Path, workspace_root: &Path) -> std::io::Result<Listing> {
    let mut listing = Listing::default();
    let mut visiting = HashSet::new();
    let canonical = dir.canonicalize()?;
    visiting.insert(canonical);
    // Make sure the top folder itself can be read: that failure is the caller's.
    std::fs::read_dir(dir)?;
    walk_dir(dir, dir, workspace_root, &mut visiting, &mut listing);
    listing.files.sort_by(|a, b| a.path.cmp(&b.path));
    listing.folders.sort();
    Ok(listing)
}

fn rel_of(base: &Path, path: &Path) -> (String, bool) {
    let rel = path.strip_prefix(base).unwrap_or(path);
    match rel.to_str() {
        Some(s) => (s.to_string(), true),
        None => (rel.to_string_lossy().into_owned(), false),
    }
}

fn walk_dir(
    base: &Path,
    dir: &Path,
    root: &Path,
    visiting: &mut HashSet<PathBuf>,
    out: &mut Listing,
) {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            out.problems.push(WalkProblem {
                rel: rel_of(base, dir).0,
                kind: WalkProblemKind::NotReadable(plain_io_reason(&e)),
            });
            return;
        }
    };
    let mut children: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    children.sort();
    for path in children {
        let (rel, utf8_name) = rel_of(base, &path);
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        let is_link = meta.file_type().is_symlink();
        let target_meta = if is_link {
            match std::fs::metadata(&path) {
                Ok(m) => m,
                Err(_) => {
                    // A dangling link named like a picture is a file the trainer will fail on.
                    let broken = std::fs::read_link(&path).is_ok()
                        && path.canonicalize().is_err()
                        && !is_loop(&path);
                    out.problems.push(WalkProblem {
                        rel,
                        kind: if broken {
                            WalkProblemKind::BrokenLink
                        } else {
                            WalkProblemKind::SymlinkLoop
                        },
                    });
                    continue;
                }
            }
        } else {
            meta
        };
        if is_link {
            match path.canonicalize() {
                Ok(real) if !real.starts_with(root) => {
                    out.problems.push(WalkProblem {
                        rel,
                        kind: WalkProblemKind::OutsideWorkspace,
                    });
                    continue;
                }
                Ok(_) => {}
                Err(_) => {
                    out.problems.push(WalkProblem {
                        rel,
                        kind: WalkProblemKind::SymlinkLoop,
                    });
                    continue;
                }
            }
        }
        if target_meta.is_dir() {
            let Ok(real) = path.canonicalize() else {
                continue;
            };
            if !visiting.insert(real.clone()) {
                out.problems.push(WalkProblem {
                    rel,
                    kind: WalkProblemKind::SymlinkLoop,
                });
                continue;
            }
            out.folders.push(rel);
            walk_dir(base, &path, root, visiting, out);
            visiting.remove(&real);
        } else if target_meta.is_file() {
            let folder = path.parent().map(|p| rel_of(base, p).0).unwrap_or_default();
            out.files.push(FoundFile {
                path,
                rel,
                folder,
                utf8_name,
            });
        }
    }
}

/// A link that resolves to itself (ELOOP) rather than to nothing.
fn is_loop(path: &Path) -> bool {
    matches!(
        std::fs::metadata(path),
        Err(e) if e.raw_os_error() == Some(40)
    )
}

/// An I/O error in words an artist understands.
pub fn plain_io_reason(e: &std::io::Error) -> String {
    use std::io::ErrorKind::*;
    match e.kind() {
        PermissionDenied => "permission denied: Ategnatos is not allowed to read it".into(),
        NotFound => "it disappeared or its link points nowhere".into(),
        IsADirectory => "it is a folder, not a file".into(),
        _ if e.raw_os_error() == Some(40) => "it is a link that points back at itself".into(),
        _ => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_nested_files_and_reports_links() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        let data = root.join("data");
        std::fs::create_dir_all(data.join("10_fox/sub")).unwrap();
        std::fs::write(data.join("a.png"), b"x").unwrap();
        std::fs::write(data.join("10_fox/sub/b.png"), b"x").unwrap();
        std::os::unix::fs::symlink(&data, data.join("10_fox/loop")).unwrap();
        std::os::unix::fs::symlink(data.join("nowhere.png"), data.join("dangling.png")).unwrap();
        std::os::unix::fs::symlink("/etc", data.join("etc")).unwrap();
        std::os::unix::fs::symlink("self.png", data.join("self.png")).unwrap();

        let l = list_files(&data, &root).unwrap();
        let rels: Vec<_> = l.files.iter().map(|f| f.rel.as_str()).collect();
        assert_eq!(rels, ["10_fox/sub/b.png", "a.png"]);
        let kind = |r: &str| {
            l.problems
                .iter()
                .find(|p| p.rel == r)
                .map(|p| p.kind.clone())
        };
        assert_eq!(kind("10_fox/loop"), Some(WalkProblemKind::SymlinkLoop));
        assert_eq!(kind("dangling.png"), Some(WalkProblemKind::BrokenLink));
        assert_eq!(kind("etc"), Some(WalkProblemKind::OutsideWorkspace));
        assert_eq!(kind("self.png"), Some(WalkProblemKind::SymlinkLoop));
    }
}
