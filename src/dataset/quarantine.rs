//! Setting pictures aside without deleting them: quarantine and restore.
//!
//! [`quarantine_files`] moves the chosen files, and the caption beside each
//! picture, into `workspace/quarantine/<stamp>/files/`, keeping their path
//! relative to the workspace root, and writes `manifest.json` beside them
//! (what was moved, from where, its size and BLAKE3). Every file is checked
//! before the first one moves, so a refusal changes nothing; if a move fails
//! half-way, the files already moved go back. [`restore_quarantine`] puts
//! everything back where it was, and refuses (before moving anything) when a
//! file has since appeared at an original location. Nothing is ever deleted.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::captions;
use crate::studio::{StudioError, Workspace, clock};

/// Name of the manifest inside each quarantine folder.
pub const MANIFEST: &str = "manifest.json";

/// What a quarantined file is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum EntryKind {
    /// A file the user chose.
    Chosen,
    /// The caption beside a chosen picture, moved along with it.
    Caption,
}

/// One moved file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct QuarantineEntry {
    /// Where it was, relative to the workspace root.
    pub original: String,
    /// Where it is now, relative to the workspace root.
    pub stored: String,
    pub kind: EntryKind,
    pub size: u64,
    /// BLAKE3 of its bytes when it was moved.
    pub content_hash: String,
}

/// The record of one quarantine, `workspace/quarantine/<id>/manifest.json`.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct QuarantineManifest {
    /// The folder name: when it was made (`20261122-123456`).
    pub id: String,
    pub created: String,
    /// Why, as the user or the tool said it.
    #[serde(default)]
    pub reason: Option<String>,
    pub entries: Vec<QuarantineEntry>,
    /// When the files were put back, if they were.
    #[serde(default)]
    pub restored: Option<String>,
}

/// What `quarantine_files` did.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct QuarantineReport {
    /// Quarantine id: give it to `restore_quarantine` to undo.
    pub id: String,
    /// The quarantine folder, relative to the workspace root.
    pub folder: String,
    /// Every file moved (chosen files and their captions).
    pub moved: Vec<QuarantineEntry>,
    /// Pictures (and other chosen files) moved.
    pub chosen: usize,
    /// Captions moved along with them.
    pub captions: usize,
}

/// What `restore_quarantine` did.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct RestoreReport {
    pub id: String,
    /// Files put back, relative to the workspace root.
    pub restored: Vec<String>,
    /// Files whose content changed while in quarantine (put back anyway).
    pub changed_while_away: Vec<String>,
}

/// Why files could not be quarantined or restored.
#[derive(Debug, thiserror::Error)]
pub enum QuarantineError {
    #[error("no files were given")]
    NothingGiven,
    #[error("these paths are not files that can be set aside: {}", list(.paths))]
    NotFiles { paths: Vec<String> },
    #[error("these are links to other files, not pictures of their own: {}", list(.paths))]
    Links { paths: Vec<String> },
    #[error("these files are Ategnatos's own records or already in quarantine: {}", list(.paths))]
    Protected { paths: Vec<String> },
    #[error("there is no quarantine to restore")]
    NoQuarantine,
    #[error("there is no quarantine `{id}`")]
    UnknownQuarantine { id: String, known: Vec<String> },
    #[error("quarantine `{id}` was already restored on {when}")]
    AlreadyRestored { id: String, when: String },
    #[error("restoring would overwrite files that exist now: {}", list(.paths))]
    WouldOverwrite { paths: Vec<String> },
    #[error("these quarantined files are missing: {}", list(.paths))]
    MissingStored { paths: Vec<String> },
    #[error("could not move `{path}`: {reason}; the files already moved were put back")]
    Move { path: String, reason: String },
    #[error(transparent)]
    Studio(#[from] StudioError),
}

fn list(paths: &[String]) -> String {
    let shown: Vec<String> = paths.iter().take(8).map(|p| format!("`{p}`")).collect();
    let more = paths.len().saturating_sub(8);
    if more > 0 {
        format!("{} and {more} more", shown.join(", "))
    } else {
        shown.join(", ")
    }
}

impl QuarantineError {
    /// What the user can do about it.
    pub fn hint(&self) -> Option<String> {
        match self {
            QuarantineError::NothingGiven => Some("list the pictures to set aside, for example the `suggested_quarantine` of find_duplicates".into()),
            QuarantineError::NotFiles { .. } => Some("give existing picture or caption files inside the workspace, not folders".into()),
            QuarantineError::Links { .. } => Some("a link trains its picture a second time: remove the link itself (the picture it points to stays where it is), or set aside the file it points to".into()),
            QuarantineError::Protected { .. } => Some("leave `grimoire/` and `workspace/quarantine/` alone; restore_quarantine brings quarantined files back".into()),
            QuarantineError::NoQuarantine => Some("nothing has been set aside yet".into()),
            QuarantineError::UnknownQuarantine { known, .. } => Some(if known.is_empty() {
                "nothing has been set aside yet".into()
            } else {
                format!("known quarantines: {}", list(known))
            }),
            QuarantineError::AlreadyRestored { .. } => Some("its files are back in place already".into()),
            QuarantineError::WouldOverwrite { .. } => Some("move or rename those files first; Ategnatos never overwrites a file when restoring".into()),
            QuarantineError::MissingStored { .. } => Some("someone moved files out of the quarantine folder; put them back there, then restore again".into()),
            QuarantineError::Move { .. } => Some("check the permissions of the folders involved and that the disk is not full".into()),
            QuarantineError::Studio(e) => e.hint(),
        }
    }
}

/// `workspace/quarantine/`.
pub fn quarantine_root(workspace: &Workspace) -> PathBuf {
    workspace.work_dir().join("quarantine")
}

fn hash_file(path: &Path) -> std::io::Result<(u64, String)> {
    let bytes = std::fs::read(path)?;
    Ok((
        bytes.len() as u64,
        blake3::hash(&bytes).to_hex().to_string(),
    ))
}

/// Moves `from` to `to` (creating `to`'s folder). Across filesystems, where a
/// rename cannot work, copies, checks the copy, then removes the original.
fn move_file(from: &Path, to: &Path) -> std::io::Result<()> {
    if let Some(parent) = to.parent() {
        std::fs::create_dir_all(parent)?;
    }
    if to.exists() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::AlreadyExists,
            "a file is already there",
        ));
    }
    match std::fs::rename(from, to) {
        Ok(()) => Ok(()),
        Err(e) if e.raw_os_error() == Some(18) => {
            // EXDEV: another filesystem.
            std::fs::copy(from, to)?;
            std::fs::File::open(to)?.sync_all()?;
            if hash_file(from)? != hash_file(to)? {
                let _ = std::fs::remove_file(to);
                return Err(std::io::Error::other("the copy differs from the original"));
            }
            std::fs::remove_file(from)
        }
        Err(e) => Err(e),
    }
}

/// Removes empty folders from `dir` up to (not including) `stop`.
fn prune_empty(mut dir: Option<&Path>, stop: &Path) {
    while let Some(d) = dir {
        if d == stop || !d.starts_with(stop) || std::fs::remove_dir(d).is_err() {
            break;
        }
        dir = d.parent();
    }
}

/// A fresh quarantine id (and folder) for now.
fn new_folder(root: &Path) -> (String, PathBuf) {
    let base = clock::stamp(clock::unix_now());
    let mut id = base.clone();
    let mut n = 2;
    while root.join(&id).exists() {
        id = format!("{base}-{n}");
        n += 1;
    }
    let dir = root.join(&id);
    (id, dir)
}

/// Moves `paths` (files inside the workspace, already resolved) and the
/// caption beside each picture into a new quarantine folder.
pub fn quarantine_files(
    workspace: &Workspace,
    paths: &[PathBuf],
    caption_extension: &str,
    reason: Option<&str>,
) -> Result<QuarantineReport, QuarantineError> {
    if paths.is_empty() {
        return Err(QuarantineError::NothingGiven);
    }
    let qroot = quarantine_root(workspace);
    let grimoire = workspace.grimoire();
    let mut not_files = Vec::new();
    let mut links = Vec::new();
    let mut protected = Vec::new();
    let mut chosen: Vec<PathBuf> = Vec::new();
    let mut seen = BTreeSet::new();
    for p in paths {
        let shown = workspace.display_path(p);
        let meta = std::fs::symlink_metadata(p);
        if p.starts_with(workspace.root()) && meta.as_ref().is_ok_and(|m| m.is_symlink()) {
            links.push(shown);
        } else if !p.starts_with(workspace.root()) || !meta.as_ref().is_ok_and(|m| m.is_file()) {
            not_files.push(shown);
        } else if p.starts_with(&qroot) || p.starts_with(&grimoire) {
            protected.push(shown);
        } else if seen.insert(p.clone()) {
            chosen.push(p.clone());
        }
    }
    if !not_files.is_empty() {
        return Err(QuarantineError::NotFiles { paths: not_files });
    }
    if !links.is_empty() {
        return Err(QuarantineError::Links { paths: links });
    }
    if !protected.is_empty() {
        return Err(QuarantineError::Protected { paths: protected });
    }
    let ext = caption_extension.trim_start_matches('.');
    let mut plan: Vec<(PathBuf, EntryKind)> = Vec::new();
    for p in &chosen {
        plan.push((p.clone(), EntryKind::Chosen));
        let is_picture = super::inspect::extension_of(p).is_some_and(|e| e != ext);
        let caption = captions::caption_path_for(p, ext);
        if is_picture && caption.is_file() && seen.insert(caption.clone()) {
            plan.push((caption, EntryKind::Caption));
        }
    }
    let (id, folder) = new_folder(&qroot);
    let mut entries = Vec::new();
    for (path, kind) in &plan {
        let (size, content_hash) = hash_file(path).map_err(|e| QuarantineError::Move {
            path: workspace.display_path(path),
            reason: super::walk::plain_io_reason(&e),
        })?;
        let rel = path.strip_prefix(workspace.root()).unwrap_or(path);
        let stored = folder.join("files").join(rel);
        entries.push(QuarantineEntry {
            original: workspace.display_path(path),
            stored: workspace.display_path(&stored),
            kind: *kind,
            size,
            content_hash,
        });
    }
    let manifest = QuarantineManifest {
        id: id.clone(),
        created: clock::now_rfc3339(),
        reason: reason.map(str::to_string),
        entries,
        restored: None,
    };
    // The manifest goes first: whatever happens next, it says what was meant.
    let manifest_path = folder.join(MANIFEST);
    crate::studio::write_json_atomic(&manifest_path, &manifest)?;
    let mut moved: Vec<(PathBuf, PathBuf)> = Vec::new();
    for (path, _) in &plan {
        let rel = path.strip_prefix(workspace.root()).unwrap_or(path);
        let stored = folder.join("files").join(rel);
        if let Err(e) = move_file(path, &stored) {
            for (from, to) in moved.iter().rev() {
                let _ = move_file(to, from);
                prune_empty(to.parent(), &folder);
            }
            let mut failed = manifest.clone();
            failed.restored = Some(format!(
                "{} (the quarantine failed and was undone)",
                clock::now_rfc3339()
            ));
            let _ = crate::studio::write_json_atomic(&manifest_path, &failed);
            return Err(QuarantineError::Move {
                path: workspace.display_path(path),
                reason: super::walk::plain_io_reason(&e),
            });
        }
        moved.push((path.clone(), stored));
    }
    let captions = manifest
        .entries
        .iter()
        .filter(|e| e.kind == EntryKind::Caption)
        .count();
    Ok(QuarantineReport {
        id,
        folder: workspace.display_path(&folder),
        chosen: manifest.entries.len() - captions,
        captions,
        moved: manifest.entries,
    })
}

/// Every quarantine's manifest, oldest first.
pub fn list_quarantines(workspace: &Workspace) -> Vec<QuarantineManifest> {
    let Ok(entries) = std::fs::read_dir(quarantine_root(workspace)) else {
        return Vec::new();
    };
    let mut out: Vec<QuarantineManifest> = entries
        .flatten()
        .filter_map(|e| {
            let bytes = std::fs::read(e.path().join(MANIFEST)).ok()?;
            serde_json::from_slice(&bytes).ok()
        })
        .collect();
    out.sort_by(|a, b| a.id.cmp(&b.id));
    out
}

/// Puts the files of quarantine `id` (default: the latest not yet restored)
/// back where they were.
pub fn restore_quarantine(
    workspace: &Workspace,
    id: Option<&str>,
) -> Result<RestoreReport, QuarantineError> {
    let all = list_quarantines(workspace);
    let manifest = match id {
        Some(id) => all.iter().find(|m| m.id == id).cloned().ok_or_else(|| {
            QuarantineError::UnknownQuarantine {
                id: id.to_string(),
                known: all.iter().map(|m| m.id.clone()).collect(),
            }
        })?,
        None => all
            .iter()
            .rev()
            .find(|m| m.restored.is_none())
            .cloned()
            .ok_or(QuarantineError::NoQuarantine)?,
    };
    if let Some(when) = &manifest.restored {
        return Err(QuarantineError::AlreadyRestored {
            id: manifest.id.clone(),
            when: when.clone(),
        });
    }
    let resolve = |shown: &str| workspace.root().join(shown);
    let missing: Vec<String> = manifest
        .entries
        .iter()
        .filter(|e| !resolve(&e.stored).is_file())
        .map(|e| e.stored.clone())
        .collect();
    if !missing.is_empty() {
        return Err(QuarantineError::MissingStored { paths: missing });
    }
    let taken: Vec<String> = manifest
        .entries
        .iter()
        .filter(|e| std::fs::symlink_metadata(resolve(&e.original)).is_ok())
        .map(|e| e.original.clone())
        .collect();
    if !taken.is_empty() {
        return Err(QuarantineError::WouldOverwrite { paths: taken });
    }
    let folder = quarantine_root(workspace).join(&manifest.id);
    let mut restored = Vec::new();
    let mut changed_while_away = Vec::new();
    let mut back: Vec<(PathBuf, PathBuf)> = Vec::new();
    for e in &manifest.entries {
        let (from, to) = (resolve(&e.stored), resolve(&e.original));
        if hash_file(&from).map(|(_, h)| h).ok().as_deref() != Some(e.content_hash.as_str()) {
            changed_while_away.push(e.original.clone());
        }
        if let Err(err) = move_file(&from, &to) {
            for (f, t) in back.iter().rev() {
                let _ = move_file(t, f);
            }
            return Err(QuarantineError::Move {
                path: e.stored.clone(),
                reason: super::walk::plain_io_reason(&err),
            });
        }
        back.push((from.clone(), to));
        prune_empty(from.parent(), &folder);
        restored.push(e.original.clone());
    }
    let mut done = manifest.clone();
    done.restored = Some(clock::now_rfc3339());
    crate::studio::write_json_atomic(&folder.join(MANIFEST), &done)?;
    Ok(RestoreReport {
        id: manifest.id,
        restored,
        changed_while_away,
    })
}

impl QuarantineReport {
    /// The short plain-language paragraph shown to the person.
    pub fn plain_summary(&self) -> String {
        let pictures = if self.chosen == 1 {
            "1 file".to_string()
        } else {
            format!("{} files", self.chosen)
        };
        let captions = match self.captions {
            0 => String::new(),
            1 => " and its caption".to_string(),
            n => format!(" and {n} captions"),
        };
        format!(
            "Set aside {pictures}{captions} in `{}`. Nothing was deleted: restore_quarantine with id `{}` puts them back exactly where they were.",
            self.folder, self.id
        )
    }
}

impl RestoreReport {
    /// The short plain-language paragraph shown to the person.
    pub fn plain_summary(&self) -> String {
        let mut out = format!(
            "Put back {} file{} from quarantine `{}`.",
            self.restored.len(),
            if self.restored.len() == 1 { "" } else { "s" },
            self.id
        );
        if !self.changed_while_away.is_empty() {
            out.push_str(&format!(
                " {} changed while in quarantine and {} restored as {} now.",
                list(&self.changed_while_away),
                if self.changed_while_away.len() == 1 {
                    "was"
                } else {
                    "were"
                },
                if self.changed_while_away.len() == 1 {
                    "it is"
                } else {
                    "they are"
                }
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    /// Every file under `dir` with its bytes.
    fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
        let mut out = BTreeMap::new();
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap().flatten() {
                let p = e.path();
                if p.is_dir() {
                    stack.push(p);
                } else {
                    out.insert(
                        p.strip_prefix(dir).unwrap().to_path_buf(),
                        std::fs::read(&p).unwrap(),
                    );
                }
            }
        }
        out
    }

    fn studio_with_pictures() -> (tempfile::TempDir, Workspace, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let ws = Workspace::open(dir.path()).unwrap();
        let pics = ws.root().join("pics");
        std::fs::create_dir_all(pics.join("sub")).unwrap();
        for (name, bytes) in [
            ("a.png", &b"picture a"[..]),
            ("a.txt", b"zkfox, a"),
            ("b.jpg", b"picture b"),
            ("b.txt", b"zkfox, b"),
            ("sub/c.webp", b"picture c"),
            ("d.png", b"picture d, no caption"),
        ] {
            std::fs::write(pics.join(name), bytes).unwrap();
        }
        (dir, ws, pics)
    }

    #[test]
    fn quarantine_then_restore_leaves_the_folder_byte_identical() {
        let (_d, ws, pics) = studio_with_pictures();
        let before = snapshot(&pics);
        let chosen = [
            pics.join("a.png"),
            pics.join("sub/c.webp"),
            pics.join("d.png"),
            pics.join("a.png"),
        ];
        let report = quarantine_files(&ws, &chosen, "txt", Some("duplicates")).unwrap();
        assert_eq!((report.chosen, report.captions), (3, 1));
        assert!(!pics.join("a.png").exists() && !pics.join("a.txt").exists());
        assert!(pics.join("b.txt").exists());
        let stored = ws.root().join(&report.moved[0].stored);
        assert_eq!(std::fs::read(stored).unwrap(), b"picture a");
        assert!(report.plain_summary().contains("Nothing was deleted"));
        let manifest = &list_quarantines(&ws)[0];
        assert_eq!(manifest.entries.len(), 4);
        assert_eq!(manifest.reason.as_deref(), Some("duplicates"));

        let restored = restore_quarantine(&ws, None).unwrap();
        assert_eq!(restored.restored.len(), 4);
        assert_eq!(snapshot(&pics), before);
        assert!(
            list_quarantines(&ws)[0].restored.is_some(),
            "manifest kept as history"
        );
        let again = restore_quarantine(&ws, Some(&report.id)).unwrap_err();
        assert!(matches!(again, QuarantineError::AlreadyRestored { .. }));
        assert!(matches!(
            restore_quarantine(&ws, None),
            Err(QuarantineError::NoQuarantine)
        ));
    }

    #[test]
    fn restore_never_overwrites() {
        let (_d, ws, pics) = studio_with_pictures();
        let report = quarantine_files(&ws, &[pics.join("b.jpg")], "txt", None).unwrap();
        std::fs::write(pics.join("b.txt"), b"a new caption").unwrap();
        let err = restore_quarantine(&ws, Some(&report.id)).unwrap_err();
        assert!(
            matches!(err, QuarantineError::WouldOverwrite { .. }),
            "{err}"
        );
        assert!(err.hint().unwrap().contains("never overwrites"));
        // Nothing moved: the picture is still in quarantine, the new caption kept.
        assert!(!pics.join("b.jpg").exists());
        assert_eq!(std::fs::read(pics.join("b.txt")).unwrap(), b"a new caption");
    }

    #[test]
    fn refusals_change_nothing() {
        let (_d, ws, pics) = studio_with_pictures();
        let before = snapshot(&pics);
        let err = quarantine_files(
            &ws,
            &[pics.join("a.png"), pics.join("nope.png")],
            "txt",
            None,
        )
        .unwrap_err();
        assert!(matches!(err, QuarantineError::NotFiles { .. }), "{err}");
        let err = quarantine_files(&ws, std::slice::from_ref(&pics), "txt", None).unwrap_err();
        assert!(matches!(err, QuarantineError::NotFiles { .. }));
        std::fs::create_dir_all(ws.state_dir()).unwrap();
        std::fs::write(ws.state_dir().join("x.json"), b"{}").unwrap();
        let err = quarantine_files(&ws, &[ws.state_dir().join("x.json")], "txt", None).unwrap_err();
        assert!(matches!(err, QuarantineError::Protected { .. }));
        assert!(matches!(
            quarantine_files(&ws, &[], "txt", None),
            Err(QuarantineError::NothingGiven)
        ));
        // A link to a picture is refused as a link, with what to do instead.
        std::os::unix::fs::symlink("a.png", pics.join("again.png")).unwrap();
        let with_link = snapshot(&pics);
        let err = quarantine_files(&ws, &[pics.join("again.png")], "txt", None).unwrap_err();
        assert!(matches!(err, QuarantineError::Links { .. }), "{err}");
        assert!(err.to_string().contains("again.png"), "{err}");
        assert!(err.hint().unwrap().contains("remove the link itself"));
        assert_eq!(snapshot(&pics), with_link);
        std::fs::remove_file(pics.join("again.png")).unwrap();
        assert_eq!(snapshot(&pics), before);
        let err = restore_quarantine(&ws, Some("20990101-000000")).unwrap_err();
        assert!(matches!(err, QuarantineError::UnknownQuarantine { .. }));
    }

    #[test]
    fn two_quarantines_in_the_same_second_get_their_own_folders() {
        let (_d, ws, pics) = studio_with_pictures();
        let a = quarantine_files(&ws, &[pics.join("a.png")], "txt", None).unwrap();
        let b = quarantine_files(&ws, &[pics.join("b.jpg")], "txt", None).unwrap();
        assert_ne!(a.id, b.id);
        // The latest first by default, then the older one.
        assert_eq!(restore_quarantine(&ws, None).unwrap().id, b.id);
        assert_eq!(restore_quarantine(&ws, None).unwrap().id, a.id);
    }
}
