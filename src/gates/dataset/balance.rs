//! How the captions balance content and style: which name a style element
//! (medium, brushwork, palette, light), which describe too little content.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::dataset::AuditReport;

/// How the captions split content and style.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct CaptionBalance {
    /// Captions that name at least one style element (medium, brushwork, palette, light, ...).
    pub naming_style: usize,
    /// Captions with at least three content words beyond the trigger and style words.
    pub naming_content: usize,
    pub captions: usize,
    /// The style words used most often, with counts.
    pub top_style_words: Vec<(String, usize)>,
    /// Pictures whose captions name no style element (named in the findings).
    #[serde(skip)]
    pub without_style: Vec<String>,
    /// Pictures whose captions describe little content (named in the findings).
    #[serde(skip)]
    pub thin_content: Vec<String>,
}

/// Words that describe how a picture is made rather than what is in it.
const STYLE_WORDS: &[&str] = &[
    "watercolor",
    "watercolour",
    "ink",
    "oil",
    "acrylic",
    "gouache",
    "pencil",
    "charcoal",
    "pastel",
    "crayon",
    "marker",
    "digital",
    "painting",
    "painted",
    "sketch",
    "sketchy",
    "lineart",
    "linework",
    "line",
    "lines",
    "brush",
    "brushwork",
    "brushstrokes",
    "strokes",
    "impasto",
    "wash",
    "washes",
    "hatching",
    "crosshatching",
    "stippling",
    "cel",
    "shading",
    "shaded",
    "flat",
    "gradient",
    "gradients",
    "palette",
    "colors",
    "colours",
    "muted",
    "vivid",
    "saturated",
    "desaturated",
    "pastel",
    "monochrome",
    "greyscale",
    "grayscale",
    "sepia",
    "warm",
    "cool",
    "light",
    "lighting",
    "backlit",
    "rim",
    "shadow",
    "shadows",
    "chiaroscuro",
    "glow",
    "composition",
    "symmetrical",
    "centered",
    "framing",
    "closeup",
    "wide",
    "perspective",
    "edges",
    "edge",
    "soft",
    "hard",
    "loose",
    "tight",
    "texture",
    "textured",
    "grain",
    "grainy",
    "paper",
    "canvas",
    "bleed",
    "splatter",
    "matte",
    "glossy",
    "sumi",
    "ukiyo-e",
    "woodblock",
    "lithograph",
    "engraving",
    "etching",
    "impressionist",
    "expressive",
    "minimal",
    "minimalist",
    "detailed",
    "painterly",
];

pub(super) fn balance(
    report: &AuditReport,
    workspace_root: &std::path::Path,
    caption_ext: &str,
    trigger: &str,
) -> CaptionBalance {
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    let (mut naming_style, mut naming_content, mut captions) = (0, 0, 0);
    let (mut without_style, mut thin_content) = (Vec::new(), Vec::new());
    for f in &report.files {
        let path = workspace_root.join(&f.path);
        let Ok(text) = crate::dataset::captions::read_caption_text(
            &crate::dataset::captions::caption_path_for(&path, caption_ext),
        ) else {
            continue;
        };
        captions += 1;
        let words: Vec<String> = text
            .to_lowercase()
            .split(|c: char| !c.is_alphanumeric() && c != '-')
            .filter(|w| !w.is_empty() && *w != trigger.to_lowercase())
            .map(String::from)
            .collect();
        let style: Vec<&String> = words
            .iter()
            .filter(|w| STYLE_WORDS.contains(&w.as_str()))
            .collect();
        if style.is_empty() {
            without_style.push(f.path.clone());
        } else {
            naming_style += 1;
        }
        if words.len() - style.len() >= 3 {
            naming_content += 1;
        } else {
            thin_content.push(f.path.clone());
        }
        for w in style {
            *counts.entry(w.clone()).or_default() += 1;
        }
    }
    let mut top: Vec<(String, usize)> = counts.into_iter().collect();
    top.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    top.truncate(8);
    CaptionBalance {
        naming_style,
        naming_content,
        captions,
        top_style_words: top,
        without_style,
        thin_content,
    }
}
