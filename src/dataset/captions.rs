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

/// How a caption is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CaptionStyle {
    /// Comma-separated tags.
    Tags,
    /// Sentences.
    Sentences,
}

/// A caption as the audit saw it.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct CaptionInfo {
    pub status: CaptionStatus,
    /// Comma-separated parts (tags) in the caption.
    pub tags: usize,
    /// Whitespace-separated words in the caption.
    pub words: usize,
    /// Estimated CLIP tokens (see [`estimate_clip_tokens`]); the text encoder reads 75.
    pub tokens: usize,
    /// Tags that appear more than once.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub duplicate_tags: Vec<String>,
    /// Tags or sentences (absent when empty or unreadable).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub style: Option<CaptionStyle>,
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

/// Reads a caption file's bytes. A caption that is a link (symbolic) is
/// not followed: captions are read only from real files beside their
/// pictures, so a link cannot bring the text of a file from elsewhere on
/// the computer (outside the workspace) into a report, a preview, a copy
/// or the caption history.
pub fn read_caption_file(path: &Path) -> std::io::Result<Vec<u8>> {
    let meta = std::fs::symlink_metadata(path)?;
    if meta.file_type().is_symlink() {
        return Err(std::io::Error::other(
            "the caption is a link to another file; captions are read only from real files \
             beside their pictures — put a copy of the text there instead of the link",
        ));
    }
    std::fs::read(path)
}

/// [`read_caption_file`] as text; `InvalidData` when it is not UTF-8.
pub fn read_caption_text(path: &Path) -> std::io::Result<String> {
    String::from_utf8(read_caption_file(path)?)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}

/// Reads and checks the caption at `path`.
pub fn read_caption(path: &Path, trigger: Option<&str>) -> CaptionInfo {
    let mut info = CaptionInfo {
        status: CaptionStatus::Ok,
        tags: 0,
        words: 0,
        tokens: 0,
        duplicate_tags: Vec::new(),
        style: None,
        has_trigger: None,
        problem: None,
        size: 0,
        hash: None,
    };
    let bytes = match read_caption_file(path) {
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
    let parts: Vec<&str> = text
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .collect();
    info.tags = parts.len();
    info.words = text.split_whitespace().count();
    info.tokens = estimate_clip_tokens(text);
    info.style = Some(caption_style(text));
    let mut seen = std::collections::HashSet::new();
    for part in &parts {
        let tag = part.to_lowercase();
        if !seen.insert(tag.clone()) && !info.duplicate_tags.contains(&tag) {
            info.duplicate_tags.push(tag);
        }
    }
    info.has_trigger = trigger.map(|t| contains_trigger(text, t));
    info
}

/// Tags or sentences: tags are short comma-separated parts; sentences are
/// long parts or end with full stops.
pub fn caption_style(text: &str) -> CaptionStyle {
    let parts: Vec<&str> = text
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .collect();
    let words: usize = parts.iter().map(|p| p.split_whitespace().count()).sum();
    let per_part = words as f64 / parts.len().max(1) as f64;
    let sentence_ends = text.matches(". ").count() + usize::from(text.trim_end().ends_with('.'));
    let short_tag_list = parts.len() >= 3 && per_part <= 3.5 && sentence_ends == 0;
    let just_a_few_words = parts.len() <= 2 && words <= 4;
    if short_tag_list || just_a_few_words {
        CaptionStyle::Tags
    } else {
        CaptionStyle::Sentences
    }
}

/// Estimates how many tokens CLIP's tokenizer makes of `text` (without the
/// start and end tokens).
///
/// CLIP lower-cases, splits into letter runs, single digits and punctuation
/// runs, then applies byte-pair merges from its 49,408-entry vocabulary. We do
/// not ship that vocabulary, so a letter run counts as one token up to 7
/// letters and one more per 5 letters beyond (`watercolor` → 2, CLIP: `water`
/// `color`); each digit is one token; each punctuation run is one. Common long
/// words that CLIP keeps whole make this err high, which is the safe side for
/// the 75-token limit.
pub fn estimate_clip_tokens(text: &str) -> usize {
    let mut tokens = 0;
    let mut letters = 0usize;
    let mut in_punct = false;
    let flush = |letters: &mut usize, tokens: &mut usize| {
        if *letters > 0 {
            *tokens += 1 + letters.saturating_sub(7).div_ceil(5);
            *letters = 0;
        }
    };
    for c in text.chars() {
        if c.is_alphabetic() {
            letters += 1;
            in_punct = false;
        } else {
            flush(&mut letters, &mut tokens);
            if c.is_numeric() {
                tokens += 1;
                in_punct = false;
            } else if c.is_whitespace() {
                in_punct = false;
            } else if !in_punct {
                tokens += 1;
                in_punct = true;
            }
        }
    }
    flush(&mut letters, &mut tokens);
    tokens
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
    fn token_estimates_follow_clip_splitting() {
        // Short words, single digits and commas count one token each, as in CLIP.
        assert_eq!(estimate_clip_tokens("a fox, 2 cats"), 5);
        assert_eq!(estimate_clip_tokens("watercolor"), 2);
        assert_eq!(estimate_clip_tokens("..."), 1);
        let long = "soft watercolor washes, ".repeat(20);
        assert!(estimate_clip_tokens(&long) > 75);
    }

    #[test]
    fn tags_and_sentences_are_told_apart() {
        assert_eq!(
            caption_style("ohwx, 1girl, solo, ink wash, red scarf"),
            CaptionStyle::Tags
        );
        assert_eq!(
            caption_style(
                "ohwx, a watercolor painting of a fox sleeping under a pine tree at dusk."
            ),
            CaptionStyle::Sentences
        );
        assert_eq!(
            caption_style("A fox sleeps. Soft light falls on the snow."),
            CaptionStyle::Sentences
        );
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
