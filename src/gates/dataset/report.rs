//! `dataset-report.md`: the decision, what the LoRA should learn and where it
//! will be weak, and the fixes, in words an artist reads.

use super::{CaptionBalance, Gate1Report};
use crate::dataset::AuditReport;
use crate::studio::project::{Project, TrainingType};

pub(super) fn strengths_and_limits(
    project: &Project,
    report: &AuditReport,
    balance: &CaptionBalance,
) -> (Vec<String>, Vec<String>) {
    let mut strengths = Vec::new();
    let mut limits = Vec::new();
    let styles: Vec<&str> = balance
        .top_style_words
        .iter()
        .take(4)
        .map(|(w, _)| w.as_str())
        .collect();
    match project.training_type {
        TrainingType::Style if !styles.is_empty() => strengths.push(format!(
            "It should learn the {} look the captions describe ({}).",
            project.trigger_word,
            styles.join(", ")
        )),
        TrainingType::Style => strengths.push(format!(
            "It should learn what the pictures share, under `{}`.",
            project.trigger_word
        )),
        TrainingType::Character => strengths.push(format!(
            "It should learn to draw the character as `{}` in the poses and outfits shown.",
            project.trigger_word
        )),
        TrainingType::Object => strengths.push(format!(
            "It should learn the object as `{}` from the angles shown.",
            project.trigger_word
        )),
    }
    let ratios = &report.summary.aspect_ratios;
    if let Some(top) = ratios.iter().max_by_key(|b| b.count)
        && top.count * 10 >= report.summary.readable * 8
    {
        limits.push(format!(
            "Most pictures are {}; other shapes will be less reliable.",
            top.ratio
        ));
    }
    if let Some(small) = &report.summary.smallest {
        limits.push(format!("The smallest picture is {small}; detail finer than the pictures hold will not be learned."));
    }
    let greys = report
        .summary
        .color_modes
        .iter()
        .filter(|(k, _)| k.starts_with("greyscale"))
        .map(|(_, v)| *v)
        .sum::<usize>();
    if greys * 2 > report.summary.readable {
        limits.push(
            "Most pictures are greyscale: the LoRA will lean towards draining colour.".into(),
        );
    }
    (strengths, limits)
}

pub(super) fn render_markdown(g: &Gate1Report, project: &Project, report: &AuditReport) -> String {
    let s = &report.summary;
    let mut md = format!(
        "# Dataset report: {}\n\n**Decision: {}**\n\n",
        g.project, g.decision
    );
    md.push_str("## Summary\n\n");
    md.push_str(&format!(
        "- Pictures: {} ({} readable, {} captioned); {} LoRA wants {}–{}\n",
        s.images,
        s.readable,
        s.captioned,
        project.training_type.with_article(),
        g.expected_min,
        g.expected_max
    ));
    if let (Some(w), Some(h)) = (s.mean_width, s.mean_height) {
        md.push_str(&format!(
            "- Size: average {w}×{h}, smallest {}, largest {} (minimum short side {})\n",
            s.smallest.as_ref().map_or("-".into(), ToString::to_string),
            s.largest.as_ref().map_or("-".into(), ToString::to_string),
            report.min_short_side
        ));
    }
    md.push_str(&format!(
        "- Base model: {} · trigger word `{}`\n",
        project.base_model, project.trigger_word
    ));
    md.push_str("\n## Diversity\n\n");
    let ratios: Vec<String> = s
        .aspect_ratios
        .iter()
        .map(|b| format!("{} ×{}", b.ratio, b.count))
        .collect();
    md.push_str(&format!(
        "- Aspect ratios: {}\n",
        if ratios.is_empty() {
            "-".into()
        } else {
            ratios.join(", ")
        }
    ));
    let modes: Vec<String> = s
        .color_modes
        .iter()
        .map(|(k, v)| format!("{k} ×{v}"))
        .collect();
    md.push_str(&format!(
        "- Colour: {}\n",
        if modes.is_empty() {
            "-".into()
        } else {
            modes.join(", ")
        }
    ));
    md.push_str(&format!(
        "- Duplicates: {}\n",
        match g.duplicates.len() {
            0 => "no copies found".to_string(),
            1 => "1 group of copies (the same picture, resized, re-saved, cropped or mirrored)"
                .to_string(),
            n => format!(
                "{n} groups of copies (the same picture, resized, re-saved, cropped or mirrored)"
            ),
        }
    ));
    md.push_str("\n## Content and style balance\n\n");
    let b = &g.balance;
    md.push_str(&format!(
        "- {} of {} captions name the style; {} describe the content\n",
        b.naming_style, b.captions, b.naming_content
    ));
    if !b.top_style_words.is_empty() {
        let words: Vec<String> = b
            .top_style_words
            .iter()
            .map(|(w, n)| format!("{w} ×{n}"))
            .collect();
        md.push_str(&format!("- Style words used: {}\n", words.join(", ")));
    }
    md.push_str("\n## Quality issues\n\n");
    if g.blockers.is_empty() && g.warnings.is_empty() {
        md.push_str("None.\n");
    }
    for f in g.blockers.iter().chain(g.warnings.iter()) {
        md.push_str(&format!(
            "- **{}** {} — {}\n",
            f.severity, f.message, f.what_to_do
        ));
        if let Some(files) = f.files_line() {
            md.push_str(&format!("  - {files}\n"));
        }
    }
    md.push_str(&format!("\n## Decision: {}\n\n", g.decision));
    if g.blockers.is_empty() {
        md.push_str("### What it will train well\n\n");
        for s in &g.strengths {
            md.push_str(&format!("- {s}\n"));
        }
        md.push_str("\n### Known limits\n\n");
        if g.limits.is_empty() {
            md.push_str("- None found in the pictures themselves.\n");
        }
        for l in &g.limits {
            md.push_str(&format!("- {l}\n"));
        }
    } else {
        md.push_str("### Fixes, in order\n\n");
        for (i, f) in g.blockers.iter().enumerate() {
            md.push_str(&format!("{}. {} — {}\n", i + 1, f.message, f.what_to_do));
        }
        md.push_str("\nThen run gate 1 again.\n");
    }
    md.push_str(&format!("\nFingerprint `{}`\n", g.fingerprint));
    md
}
