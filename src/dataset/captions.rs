//! The caption beside a picture: where it is, whether it can be read, and
//! whether it carries the trigger word.
//!
//! Trainers pair `name.png` with `name.<ext>` (kohya: the image path without
//! its extension, plus the caption extension), so we do exactly the same.

use std::path::{Path, PathBuf};

use serde::Serialize;

/// What state a picture's caption is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CaptionStatus {
    Ok,
    Missing,
    Empty,
    NotUtf8,
    Unreadable,
}

/// A caption as the audit saw it.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct CaptionInfo {
    pub status: CaptionStatus,
    /// Comma-separated parts (tags) in the caption.
    pub tags: usize,
    /// Whitespace-separated words in the caption.
    pub words: usize,
    /// Whether the trigger word is in it; absent when no trigger was given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub has_trigger: Option<bool>,
    /// Why it could not be read, in words.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
    #[serde(skip)]
    pub size: u64,
    #[serde(skip)]
    pub hash: Option<String>,
}

/// The caption file trainers pair with `image` (extension without the dot).
pub fn caption_path_for(image: &Path, extension: &str) -> PathBuf {
    image.with_extension(extension.trim_start_matches('.'))
}

/// Reads and checks the caption at `path`.
pub fn read_caption(path: &Path, trigger: Option<&str>) -> CaptionInfo {
    let mut info = CaptionInfo {
        status: CaptionStatus::Ok,
        tags: 0,
        words: 0,
        has_trigger: None,
        problem: None,
        size: 0,
        hash: None,
    };
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            info.status = CaptionStatus::Missing;
            return info;
        }
        Err(e) => {
            info.status = CaptionStatus::Unreadable;
            info.problem = Some(super::walk::plain_io_reason(&e));
            return info;
        }
    };
    info.size = bytes.len() as u64;
    info.hash = Some(blake3::hash(&bytes).to_hex().to_string());
    let text = match std::str::from_utf8(&bytes) {
        Ok(t) => t,
        Err(e) => {
            info.status = CaptionStatus::NotUtf8;
            info.problem = Some(format!(
                "byte {} is not valid UTF-8 (the file was saved in another text encoding)",
                e.valid_up_to()
            ));
            return info;
        }
    };
    let text = text.trim_start_matches('\u{feff}');
    if text.trim().is_empty() {
        info.status = CaptionStatus::Empty;
        return info;
    }
    info.tags = text.split(',').filter(|t| !t.trim().is_empty()).count();
    info.words = text.split_whitespace().count();
    info.has_trigger = trigger.map(|t| contains_trigger(text, t));
    info
}

/// True when `trigger` appears in `caption` as a whole word (any case).
pub fn contains_trigger(caption: &str, trigger: &str) -> bool {
    let trigger = trigger.trim().to_lowercase();
    if trigger.is_empty() {
        return true;
    }
    let caption = caption.to_lowercase();
    let is_word = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '_');
    caption.match_indices(&trigger).any(|(at, m)| {
        let before = caption[..at].chars().next_back();
        let after = caption[at + m.len()..].chars().next();
        !is_word(before) && !is_word(after)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trigger_is_matched_as_a_word() {
        assert!(contains_trigger("ohwx, 1girl, ink", "ohwx"));
        assert!(contains_trigger("A painting in OHWX style", "ohwx"));
        assert!(contains_trigger("zk_fox style, forest", "zk_fox style"));
        assert!(!contains_trigger("ohwxy, 1girl", "ohwx"));
        assert!(!contains_trigger("a fox", "ohwx"));
    }

    #[test]
    fn caption_states() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.txt");
        assert_eq!(read_caption(&p, None).status, CaptionStatus::Missing);
        std::fs::write(&p, " \n").unwrap();
        assert_eq!(read_caption(&p, None).status, CaptionStatus::Empty);
        std::fs::write(&p, b"caf\xe9, fox").unwrap();
        let info = read_caption(&p, None);
        assert_eq!(info.status, CaptionStatus::NotUtf8);
        assert!(info.problem.unwrap().contains("byte 3"));
        std::fs::write(&p, "ohwx, a fox, ink wash").unwrap();
        let info = read_caption(&p, Some("ohwx"));
        assert_eq!(
            (info.tags, info.words, info.has_trigger),
            (3, 5, Some(true))
        );
        assert_eq!(
            caption_path_for(Path::new("x/a.b.png"), ".txt"),
            Path::new("x/a.b.txt")
        );
    }
}
