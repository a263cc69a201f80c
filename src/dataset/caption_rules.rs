//! How to caption for each base model: the rules `caption_preview` hands to
//! the model that writes the captions, and the normalisation
//! `write_captions` applies.

use crate::plan::catalog::{CaptionFormat, ModelSpec};
use crate::studio::project::TrainingType;

/// The captioning instructions for a base model and training type.
pub fn instructions(model: &ModelSpec, kind: TrainingType, trigger: &str) -> String {
    let mut out = match model.caption_format {
        CaptionFormat::Tags => format!(
            "Write comma-separated booru-style tags for {name}, lower case, spaces instead of underscores. \
             Start with the trigger word `{trigger}`{pony}. Then content tags (how many subjects, who or what, pose, \
             clothing, objects, setting, time of day), then style tags (medium, technique and brushwork, palette, \
             lighting, composition, edges, texture). About 15–35 tags, under 75 CLIP tokens. No sentences.",
            name = model.name,
            pony = if model.id == "pony" {
                ", then `score_9, score_8_up, score_7_up`, a source tag (`source_anime`, `source_cartoon`, `source_furry` or `source_pony`) and a rating tag (`rating_safe`, `rating_questionable` or `rating_explicit`)"
            } else {
                ""
            }
        ),
        CaptionFormat::NaturalLanguage => format!(
            "Write plain English for {name}: start with the trigger word `{trigger}`, then one to three sentences — \
             first what is in the picture (subjects, pose, setting, light), then how it is made (medium, brushwork, \
             palette, composition, edges, texture). Concrete words, no lists of tags, no quality words like \
             'masterpiece'. Keep it under about 60 words so CLIP reads all of it.",
            name = model.name,
        ),
    };
    out.push_str(match kind {
        TrainingType::Style => " This is a style LoRA: describe the style in the same words on every picture, and name the content precisely, so the model can tell which is which.",
        TrainingType::Character => " This is a character LoRA: name what changes (outfit, pose, expression, place), not the character's fixed traits, which the trigger word will learn.",
        TrainingType::Object => " This is an object LoRA: name the surroundings and how the object is used; refer to the object itself by the trigger word and a plain class word.",
    });
    out
}

/// Tidies a caption for the base model's format and puts the trigger word
/// first. Returns the text and whether the trigger had to be added.
pub fn normalise(text: &str, format: CaptionFormat, trigger: &str) -> (String, bool) {
    // Control characters (a NUL, an escape) are invisible in an editor and
    // end up as tokens; they become spaces like line breaks do.
    let visible: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let collapsed: String = visible.split_whitespace().collect::<Vec<_>>().join(" ");
    let has_trigger = super::captions::contains_trigger(&collapsed, trigger);
    match format {
        CaptionFormat::Tags => {
            let mut tags: Vec<String> = Vec::new();
            for part in collapsed
                .split(',')
                .map(str::trim)
                .filter(|t| !t.is_empty())
            {
                let tag = part.to_string();
                if !tags.iter().any(|t| t.eq_ignore_ascii_case(&tag)) {
                    tags.push(tag);
                }
            }
            // The trigger goes first, whether it was there or not.
            tags.retain(|t| !t.eq_ignore_ascii_case(trigger));
            tags.insert(0, trigger.to_string());
            (tags.join(", "), !has_trigger)
        }
        CaptionFormat::NaturalLanguage => {
            // A sentence that already names the trigger keeps its wording.
            if has_trigger {
                (collapsed, false)
            } else {
                (format!("{trigger}, {collapsed}"), true)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::catalog::lookup;

    #[test]
    fn tags_are_tidied_deduplicated_and_led_by_the_trigger() {
        let (t, added) = normalise(
            "fox,  snow ,, Fox, zkfox ,ink   wash",
            CaptionFormat::Tags,
            "zkfox",
        );
        assert_eq!(t, "zkfox, fox, snow, ink wash");
        assert!(!added);
        let (t, added) = normalise("fox, snow", CaptionFormat::Tags, "zkfox");
        assert_eq!((t.as_str(), added), ("zkfox, fox, snow", true));
    }

    #[test]
    fn control_characters_become_spaces() {
        let (t, _) = normalise(
            "fox\u{0}in snow,\u{1b}[31m red\r\n scarf",
            CaptionFormat::Tags,
            "zkfox",
        );
        assert_eq!(t, "zkfox, fox in snow, [31m red scarf");
        assert!(!t.chars().any(char::is_control));
    }

    #[test]
    fn sentences_get_the_trigger_prepended_once() {
        let (t, added) = normalise(
            "A fox   sleeps in snow.",
            CaptionFormat::NaturalLanguage,
            "zkfox",
        );
        assert_eq!((t.as_str(), added), ("zkfox, A fox sleeps in snow.", true));
        let (t, added) = normalise(
            "zkfox, a fox sleeps.",
            CaptionFormat::NaturalLanguage,
            "zkfox",
        );
        assert_eq!((t.as_str(), added), ("zkfox, a fox sleeps.", false));
    }

    #[test]
    fn pony_rules_name_score_tags() {
        let text = instructions(lookup("pony").unwrap(), TrainingType::Style, "zkfox");
        assert!(text.contains("score_9") && text.contains("zkfox"));
        assert!(
            instructions(
                lookup("flux-dev").unwrap(),
                TrainingType::Character,
                "zkfox"
            )
            .contains("sentences")
        );
    }
}
