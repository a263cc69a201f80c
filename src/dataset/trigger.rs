//! Trigger words: the made-up word a LoRA learns to answer to.
//!
//! A good trigger has no meaning for the base model yet, so everything the
//! pictures share attaches to it. What the model already knows is what its
//! text encoder's tokenizer keeps whole: SD1.5, SDXL and Flux all read
//! prompts with CLIP ViT-L/14's tokenizer, and a word that tokenizer keeps as
//! one whole-word token (`sunset`, `castle`, `sks`) has a meaning the LoRA
//! would have to fight. A made-up word splits into pieces (`zkinkfox` →
//! z · kin · k · fox); when every piece is itself an ordinary word (`inkfox`
//! → ink · fox) the trigger is accepted with a warning, since the model
//! leans on those words. Pieces of one or two letters never count as words:
//! almost every pair of letters is a token of its own (`qx`, `zz`), so being
//! one says nothing about meaning. The vocabulary is built in
//! (`crate::clip_bpe`); no model has to be downloaded to check a trigger.

use serde::Serialize;

use crate::clip_bpe::{self, Bpe, END_OF_WORD};
use crate::studio::Hint;

/// Triggers that are known to collide with something the base model knows.
const KNOWN_COLLISIONS: &[(&str, &str)] = &[
    (
        "sks",
        "it is also a rifle the base models know, so rifles creep into the pictures",
    ),
    (
        "ohwx",
        "it is used by thousands of published LoRAs, so your LoRA will clash with them when combined",
    ),
];

/// How CLIP's tokenizer reads an accepted trigger word.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct TriggerCheck {
    /// The tokens CLIP makes of the trigger, in order (`z`, `kin`, `k`, `fox`).
    pub tokens: Vec<String>,
    /// Why the trigger may train poorly although it is accepted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warning: Option<String>,
}

impl TriggerCheck {
    /// `z · kin · k · fox (4 tokens)`.
    pub fn split(&self) -> String {
        split_text(&self.tokens)
    }

    /// One or two sentences for the artist: how the trigger splits, and the
    /// warning when there is one.
    pub fn plain_summary(&self, word: &str) -> String {
        let mut s = format!("CLIP reads `{}` as {}.", word.trim(), self.split());
        if let Some(w) = &self.warning {
            s.push_str(&format!(" Warning: {w}."));
        }
        s
    }
}

fn split_text(tokens: &[String]) -> String {
    let n = tokens.len();
    format!(
        "{} ({n} token{})",
        tokens.join(" · "),
        if n == 1 { "" } else { "s" }
    )
}

/// Why a trigger word is refused.
#[derive(Debug, thiserror::Error)]
pub enum TriggerError {
    #[error("the trigger word `{word}` is {reason}")]
    Unusable { word: String, reason: String },
    #[error(
        "the built-in CLIP vocabulary cannot be read ({0}), so trigger words cannot be checked"
    )]
    Vocabulary(&'static str),
}

impl Hint for TriggerError {
    fn hint(&self) -> Option<String> {
        match self {
            TriggerError::Unusable { word, .. } => Some(suggestion_hint(word)),
            TriggerError::Vocabulary(_) => {
                Some("this copy of ategnatos is damaged: reinstall it".into())
            }
        }
    }
}

/// Made-up words built from `word` that pass the check without a warning
/// and do not contain the word's own whole token, best first.
fn suggestions(word: &str, clip: &Bpe) -> Vec<String> {
    let letters: String = word
        .chars()
        .filter(char::is_ascii_alphabetic)
        .take(8)
        .collect::<String>()
        .to_ascii_lowercase();
    let own_token = format!("{letters}{END_OF_WORD}");
    [
        format!("z{letters}qx"),
        format!("zk{letters}"),
        format!("{letters}qx"),
        format!("zq{letters}"),
        format!("{letters}zk"),
        "zkvirqx".to_string(),
        "qxmarzk".to_string(),
    ]
    .into_iter()
    .filter(|c| {
        !clip.tokens(c).contains(&own_token)
            && matches!(assess(c, clip), Ok(check) if check.warning.is_none())
    })
    .collect()
}

/// What to use instead of a refused `word`.
fn suggestion_hint(word: &str) -> String {
    let advice = "4 to 12 letters, no spaces, not an English word";
    let Ok(clip) = clip_bpe::clip() else {
        return format!("make up a word the model cannot know: {advice}");
    };
    let shown: Vec<String> = suggestions(word, clip)
        .iter()
        .take(2)
        .map(|c| {
            let tokens = display_tokens(clip, &clip.tokens(c));
            format!("`{c}` ({})", tokens.join(" · "))
        })
        .collect();
    if shown.is_empty() {
        format!("make up a word the model cannot know: {advice}")
    } else {
        format!(
            "make up a word the model cannot know, such as {}: {advice}",
            shown.join(" or ")
        )
    }
}

fn display_tokens(clip: &Bpe, tokens: &[String]) -> Vec<String> {
    tokens.iter().map(|t| clip.token_text(t)).collect()
}

/// A piece that is an ordinary word: three letters or more, and a whole
/// word of its own in CLIP's vocabulary (`ink` in `inkfox`).
fn is_ordinary_word(clip: &Bpe, token: &str) -> bool {
    let text = clip.token_text(token);
    text.chars().count() >= 3
        && text.chars().all(|c| c.is_ascii_alphabetic())
        && clip.id(&format!("{text}{END_OF_WORD}")).is_some()
}

/// Checks a trigger word: 3–24 characters of letters, digits, `_` or `-`,
/// with at least one letter, and not a word CLIP's tokenizer keeps whole (a
/// word the base model already knows). Returns how CLIP splits it, with a
/// warning when every piece is an ordinary word.
pub fn check_trigger(word: &str) -> Result<TriggerCheck, TriggerError> {
    let clip = clip_bpe::clip().map_err(TriggerError::Vocabulary)?;
    assess(word, clip)
}

fn assess(word: &str, clip: &Bpe) -> Result<TriggerCheck, TriggerError> {
    let refuse = |reason: String| {
        Err(TriggerError::Unusable {
            word: word.to_string(),
            reason,
        })
    };
    let w = word.trim();
    let raw = clip.tokens(w);
    let tokens = display_tokens(clip, &raw);
    if w.chars().count() < 3 {
        return refuse(
            "too short: two letters or fewer are pieces of many other words to the text encoder"
                .into(),
        );
    }
    if w.chars().count() > 24 {
        return refuse(format!(
            "too long: CLIP reads it as {}, and a trigger split into many tokens weakens the link",
            split_text(&tokens)
        ));
    }
    if !w
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return refuse(format!(
            "not a single plain word: CLIP reads it as {}; use letters and digits only, without spaces",
            split_text(&tokens)
        ));
    }
    if w.chars().all(|c| c.is_ascii_digit()) {
        return refuse("only digits: the text encoder reads each digit as a separate token".into());
    }
    if !w.chars().any(|c| c.is_ascii_alphabetic()) {
        return refuse(format!(
            "without a letter: CLIP reads it as {}, digits and symbols each a token of their own, with no word to learn",
            split_text(&tokens)
        ));
    }
    let lower = w.to_ascii_lowercase();
    if let Some((_, why)) = KNOWN_COLLISIONS.iter().find(|(k, _)| *k == lower) {
        return refuse(format!("a poor choice: {why}"));
    }
    if let [only] = raw.as_slice()
        && only.ends_with(END_OF_WORD)
    {
        return refuse(format!(
            "a word the model already knows (one token): training would mix your pictures with every {lower} it has seen"
        ));
    }
    let letter_pieces: Vec<&String> = raw
        .iter()
        .filter(|t| clip.token_text(t).chars().any(|c| c.is_ascii_alphabetic()))
        .collect();
    let warning = letter_pieces
        .iter()
        .all(|t| is_ordinary_word(clip, t))
        .then(|| {
            let words: Vec<String> = letter_pieces.iter().map(|t| clip.token_text(t)).collect();
            let instead = suggestions(w, clip)
                .first()
                .map(|s| format!(", as in `{s}`"))
                .unwrap_or_default();
            format!(
                "every piece is a word the model already knows ({}), so the LoRA starts from their meaning; a made-up piece keeps it apart{instead}",
                words.join(", ")
            )
        });
    Ok(TriggerCheck { tokens, warning })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(word: &str) -> String {
        check_trigger(word).unwrap_err().to_string()
    }

    #[test]
    fn words_clip_keeps_whole_are_refused_as_known() {
        for word in ["sunset", "lantern", "castle", "velvet", "Style", "foxes"] {
            let err = check_trigger(word).unwrap_err();
            let message = err.to_string();
            assert!(
                message.contains("a word the model already knows (one token)"),
                "{message}"
            );
            let lower = word.to_lowercase();
            assert!(
                message.contains(&format!("every {lower} it has seen")),
                "{message}"
            );
            // The suggestions are themselves accepted, without a warning.
            let hint = err.hint().unwrap();
            let suggested: Vec<&str> = hint.split('`').skip(1).step_by(2).collect();
            assert_eq!(suggested.len(), 2, "{hint}");
            for s in suggested {
                assert!(s.contains(&lower), "{hint}");
                let check = check_trigger(s).unwrap();
                assert_eq!(check.warning, None, "{s}");
                // It may hold the word as a piece, never as the word's own token.
                let raw = clip_bpe::clip().unwrap().tokens(s);
                assert!(!raw.contains(&format!("{lower}</w>")), "{s}: {raw:?}");
            }
        }
        assert!(
            check_trigger("sunset")
                .unwrap_err()
                .hint()
                .unwrap()
                .contains("`zsunsetqx` (z · sunset · qx)")
        );
    }

    #[test]
    fn made_up_triggers_are_accepted_with_their_split() {
        let check = check_trigger("zkinkfox").unwrap();
        assert_eq!(check.tokens, ["z", "kin", "k", "fox"]);
        assert_eq!(check.warning, None);
        assert_eq!(
            check.plain_summary("zkinkfox"),
            "CLIP reads `zkinkfox` as z · kin · k · fox (4 tokens)."
        );
        let check = check_trigger("ohwxstyle").unwrap();
        assert_eq!(check.split(), "oh · wx · style (3 tokens)");
        assert_eq!(check.warning, None);
        for ok in ["zkfox", "inkqx", "mrz_style", "k4tz", "zsunsetstyle"] {
            let check = check_trigger(ok).unwrap();
            assert!(check.tokens.len() >= 2, "{ok}: {:?}", check.tokens);
            assert_eq!(check.warning, None, "{ok}");
        }
        // Digits and underscores split the way CLIP splits them.
        assert_eq!(
            check_trigger("mrz_style").unwrap().tokens,
            ["mr", "z", "_", "style"]
        );
        assert_eq!(check_trigger("k4tz").unwrap().tokens, ["k", "4", "tz"]);
    }

    #[test]
    fn triggers_made_of_ordinary_words_pass_with_a_warning() {
        for (word, pieces) in [
            ("inkfox", "ink, fox"),
            ("moonfox", "moon, fox"),
            ("ink_fox", "ink, fox"),
            ("sunset_1", "sunset"),
        ] {
            let check = check_trigger(word).unwrap();
            let warning = check.warning.clone().unwrap_or_default();
            assert!(
                warning.contains(&format!("({pieces})")),
                "{word}: {warning}"
            );
            let instead = warning.split('`').nth(1).unwrap_or_default();
            assert_eq!(check_trigger(instead).unwrap().warning, None, "{warning}");
            assert!(check.plain_summary(word).contains(" Warning: every piece"));
        }
        assert_eq!(
            check_trigger("inkfox").unwrap().split(),
            "ink · fox (2 tokens)"
        );
    }

    #[test]
    fn malformed_and_colliding_triggers_are_refused_with_a_reason() {
        assert!(refusal("sks").contains("rifle"));
        assert!(refusal("OHWX").contains("published LoRAs"));
        assert!(refusal("ab").contains("too short"));
        let spaced = refusal("ink fox");
        assert!(spaced.contains("ink · fox (2 tokens)"), "{spaced}");
        assert!(spaced.contains("without spaces"), "{spaced}");
        assert!(refusal("1234").contains("only digits"));
        assert!(refusal("__-_").contains("without a letter"));
        assert!(refusal("zkfoxzkfoxzkfoxzkfoxzkfox").contains("too long"));
    }

    /// Three-letter strings CLIP keeps whole are words or abbreviations it
    /// has seen as such; ones it splits are fine.
    #[test]
    fn short_triggers_follow_what_clip_keeps_whole() {
        assert!(refusal("tok").contains("already knows"));
        assert_eq!(check_trigger("zwx").unwrap().tokens, ["z", "wx"]);
        assert_eq!(check_trigger("xyz").unwrap().warning, None);
    }
}
