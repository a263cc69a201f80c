//! Guides: markdown pages in `guides/` at the repository root, built into the
//! binary and served as `ategnatos://guides/{topic}`. Each explains one topic
//! to an artist in the same shape — In plain words, What you need to know,
//! Why it matters, Details, Sources — under a short front matter:
//!
//! ```text
//! ---
//! summary: One line saying what the guide answers.
//! ---
//! # Title
//! ## In plain words
//! ...
//! ```
//!
//! The topic is the file's name without `.md`.

use crate::studio::Hint;

/// The sections every guide has, in this order.
pub const SECTIONS: [&str; 5] = [
    "In plain words",
    "What you need to know",
    "Why it matters",
    "Details",
    "Sources",
];

/// URI prefix of a guide resource.
pub const URI_PREFIX: &str = "ategnatos://guides/";

macro_rules! guides {
    ($($topic:literal),* $(,)?) => {
        /// Every guide: (topic, text as written).
        pub const GUIDES: &[(&str, &str)] = &[
            $(($topic, include_str!(concat!("../../guides/", $topic, ".md")))),*
        ];
    };
}

guides![
    "training-basics",
    "dataset-size",
    "content-and-style",
    "captions",
    "curation",
    "parameters",
    "optimizers",
    "presets",
    "backends",
    "cuda-pytorch",
    "vram",
    "preflight",
    "evaluation",
    "lora-strength",
    "failure-modes",
    "gpu-providers",
    "prompt-syntax",
    "prompt-weighting",
    "negative-prompts",
    "asset-specs",
    "feedback-map",
];

/// A parsed guide.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Guide {
    pub topic: &'static str,
    /// The `# ` heading.
    pub title: String,
    /// The front matter's one line.
    pub summary: String,
    /// The whole file, front matter included.
    pub text: &'static str,
    /// The `## ` sections in order, each with its body.
    pub sections: Vec<(String, String)>,
}

impl Guide {
    pub fn uri(&self) -> String {
        format!("{URI_PREFIX}{}", self.topic)
    }

    /// The body of the section named `name`.
    pub fn section(&self, name: &str) -> Option<&str> {
        self.sections
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, body)| body.as_str())
    }

    /// The text without its front matter: what a reader is shown.
    pub fn body(&self) -> &'static str {
        split_front_matter(self.text).map_or(self.text, |(_, body)| body)
    }
}

/// Why a guide could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GuideError {
    #[error("there is no guide on `{topic}`")]
    Unknown { topic: String },
    #[error("the guide `{topic}` has no front matter (a `---` block first)")]
    NoFrontMatter { topic: String },
    #[error("the guide `{topic}` has no `summary:` line in its front matter")]
    NoSummary { topic: String },
    #[error("the guide `{topic}` has no `# ` title after its front matter")]
    NoTitle { topic: String },
    #[error("the guide `{topic}` has sections {found:?}, not {expected:?} in that order")]
    Sections {
        topic: String,
        found: Vec<String>,
        expected: Vec<String>,
    },
    #[error("the section `{section}` of the guide `{topic}` is empty")]
    EmptySection { topic: String, section: String },
    #[error("the Sources of the guide `{topic}` name no public address (https://…)")]
    NoSourceLink { topic: String },
}

impl Hint for GuideError {
    fn hint(&self) -> Option<String> {
        match self {
            GuideError::Unknown { .. } => Some(format!(
                "the guides are: {}",
                GUIDES
                    .iter()
                    .map(|(t, _)| *t)
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
            _ => Some(format!(
                "each guide is `---`, `summary: …`, `---`, a `# ` title, then the sections {}",
                SECTIONS.join(" / ")
            )),
        }
    }
}

/// (front matter, rest) when the text opens with a `---` block.
fn split_front_matter(text: &str) -> Option<(&str, &str)> {
    let rest = text
        .strip_prefix("---\n")
        .or_else(|| text.strip_prefix("---\r\n"))?;
    let end = rest.find("\n---")?;
    let matter = &rest[..end];
    let after = &rest[end + 4..];
    let body = after.split_once('\n').map_or("", |(_, b)| b);
    Some((matter, body))
}

/// Reads a guide's text and checks its shape.
pub fn parse(topic: &'static str, text: &'static str) -> Result<Guide, GuideError> {
    let t = || topic.to_string();
    let (matter, body) =
        split_front_matter(text).ok_or_else(|| GuideError::NoFrontMatter { topic: t() })?;
    let summary = matter
        .lines()
        .find_map(|l| l.strip_prefix("summary:"))
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .ok_or_else(|| GuideError::NoSummary { topic: t() })?;
    let mut lines = body.lines().skip_while(|l| l.trim().is_empty());
    let title = lines
        .next()
        .and_then(|l| l.strip_prefix("# "))
        .map(|s| s.trim().to_string())
        .ok_or_else(|| GuideError::NoTitle { topic: t() })?;
    let mut sections: Vec<(String, String)> = Vec::new();
    let mut in_fence = false;
    for line in lines {
        if line.trim_start().starts_with("```") {
            in_fence = !in_fence;
        }
        if !in_fence && let Some(name) = line.strip_prefix("## ") {
            sections.push((name.trim().to_string(), String::new()));
        } else if let Some((_, text)) = sections.last_mut() {
            text.push_str(line);
            text.push('\n');
        }
    }
    let found: Vec<String> = sections.iter().map(|(n, _)| n.clone()).collect();
    if found != SECTIONS {
        return Err(GuideError::Sections {
            topic: t(),
            found,
            expected: SECTIONS.iter().map(|s| s.to_string()).collect(),
        });
    }
    if let Some((name, _)) = sections.iter().find(|(_, b)| b.trim().is_empty()) {
        return Err(GuideError::EmptySection {
            topic: t(),
            section: name.clone(),
        });
    }
    let sources = sections.last().map_or("", |(_, b)| b.as_str());
    if !sources.contains("https://") {
        return Err(GuideError::NoSourceLink { topic: t() });
    }
    Ok(Guide {
        topic,
        title,
        summary,
        text,
        sections,
    })
}

/// Every guide that reads well, in the order of [`GUIDES`]. One whose shape
/// is broken is left out here (the tests name it).
pub fn all() -> Vec<Guide> {
    GUIDES
        .iter()
        .filter_map(|(topic, text)| parse(topic, text).ok())
        .collect()
}

/// The guide on `topic` (`vram`, `failure-modes`, ...).
pub fn find(topic: &str) -> Result<Guide, GuideError> {
    let (topic, text) =
        GUIDES
            .iter()
            .find(|(t, _)| *t == topic)
            .ok_or_else(|| GuideError::Unknown {
                topic: topic.to_string(),
            })?;
    parse(topic, text)
}

/// The topic of a guide URI, when `uri` is one.
pub fn topic_of(uri: &str) -> Option<&str> {
    uri.strip_prefix(URI_PREFIX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_built_in_guide_has_the_five_sections_in_order() {
        for (topic, text) in GUIDES {
            let guide = parse(topic, text).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(guide.sections.len(), SECTIONS.len(), "{topic}");
            assert!(guide.body().starts_with("# "), "{topic}");
        }
        assert_eq!(all().len(), GUIDES.len());
    }

    #[test]
    fn a_guide_out_of_shape_is_refused_with_what_is_wrong() {
        let no_matter = "# Title\n## In plain words\nx\n";
        assert_eq!(
            parse("t", no_matter),
            Err(GuideError::NoFrontMatter { topic: "t".into() })
        );
        let missing = "---\nsummary: s\n---\n# T\n## In plain words\na\n## Why it matters\nb\n";
        let err = parse("t", missing).unwrap_err();
        assert!(matches!(&err, GuideError::Sections { found, .. } if found.len() == 2));
        assert!(err.hint().unwrap().contains("What you need to know"));
        let no_link = "---\nsummary: s\n---\n# T\n## In plain words\na\n## What you need to know\nb\n## Why it matters\nc\n## Details\nd\n## Sources\nmy memory\n";
        assert_eq!(
            parse("t", no_link),
            Err(GuideError::NoSourceLink { topic: "t".into() })
        );
        // A `## ` line inside a code block is not a section.
        let fenced = "---\nsummary: s\n---\n# T\n## In plain words\na\n```\n## not a section\n```\n## What you need to know\nb\n## Why it matters\nc\n## Details\nd\n## Sources\nhttps://example.org\n";
        assert!(parse("t", fenced).is_ok());
    }

    #[test]
    fn an_unknown_topic_names_the_guides_there_are() {
        let err = find("cooking").unwrap_err();
        assert_eq!(err.to_string(), "there is no guide on `cooking`");
        assert!(err.hint().unwrap().contains("failure-modes"));
        assert_eq!(find("vram").unwrap().uri(), "ategnatos://guides/vram");
    }
}
