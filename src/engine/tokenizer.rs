//! The engine's CLIP tokenizer, read from the model's own `vocab.json` and
//! `merges.txt` (the `tokenizer/` folder of an SD1.5 diffusers repository),
//! plus kohya-style caption shuffling.
//!
//! The BPE itself (byte table, CLIP's pre-tokenisation, merges) lives in
//! `crate::clip_bpe`, shared with the trigger word check. SD1.5 frames every
//! caption as `<|startoftext|> … <|endoftext|>` and pads to 77 with
//! `<|endoftext|>`.

use std::path::Path;

use super::EngineError;
use super::rng::SplitMix64;
use crate::clip_bpe::Bpe;
pub use crate::clip_bpe::{END_OF_TEXT, START_OF_TEXT};

/// A loaded tokenizer.
#[derive(Debug, Clone)]
pub struct ClipTokenizer {
    bpe: Bpe,
    pub bos: i64,
    pub eos: i64,
}

impl ClipTokenizer {
    /// Reads `vocab.json` and `merges.txt`.
    pub fn from_files(vocab: &Path, merges: &Path) -> Result<Self, EngineError> {
        let read = |p: &Path| {
            std::fs::read_to_string(p).map_err(|source| EngineError::Read {
                path: p.to_path_buf(),
                source,
            })
        };
        Self::from_strs(&read(vocab)?, &read(merges)?).map_err(|reason| EngineError::BadWeights {
            path: vocab.to_path_buf(),
            reason,
        })
    }

    pub fn from_strs(vocab_json: &str, merges: &str) -> Result<Self, String> {
        let bpe = Bpe::from_vocab_and_merges(vocab_json, merges)?;
        let bos = bpe
            .id(START_OF_TEXT)
            .ok_or_else(|| format!("vocab.json has no `{START_OF_TEXT}`"))?;
        let eos = bpe
            .id(END_OF_TEXT)
            .ok_or_else(|| format!("vocab.json has no `{END_OF_TEXT}`"))?;
        Ok(Self { bpe, bos, eos })
    }

    /// Token ids of `text`, without the start/end tokens. Pieces the vocab
    /// does not know are skipped.
    pub fn encode(&self, text: &str) -> Vec<i64> {
        self.bpe.encode(text)
    }

    /// `[bos, …, eos]`, cut to `len` (keeping the final eos) and padded with
    /// eos: what SD1.5's text encoder is fed.
    pub fn encode_padded(&self, text: &str, len: usize) -> Vec<i64> {
        let mut ids = vec![self.bos];
        ids.extend(self.encode(text));
        ids.truncate(len.saturating_sub(1));
        ids.push(self.eos);
        ids.resize(len, self.eos);
        ids
    }
}

/// kohya's `shuffle_caption` with `keep_tokens`: the comma-separated tags
/// after the first `keep` stay in the caption but change order, so the
/// trigger word stays first.
pub fn shuffle_caption(caption: &str, keep: usize, rng: &mut SplitMix64) -> String {
    let mut tags: Vec<&str> = caption
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .collect();
    let cut = keep.min(tags.len());
    rng.shuffle(&mut tags[cut..]);
    tags.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clip_bpe::pre_tokenize;

    /// A vocabulary in CLIP's format, small enough to reason about.
    fn tiny() -> ClipTokenizer {
        let vocab = r#"{"<|startoftext|>": 0, "<|endoftext|>": 1, "a": 2, "a</w>": 3, "ink</w>": 4,
            "fox</w>": 5, "fo": 6, "x</w>": 7, "i": 8, "n": 9, "k</w>": 10, "in": 11, ",</w>": 12,
            "'s</w>": 13, "1</w>": 14, "2</w>": 15, "f": 16, "o": 17, "es</w>": 18, "foxes</w>": 19,
            "e": 20, "s</w>": 21, "x": 22}"#;
        let merges =
            "#version: 0.2\ni n\nin k</w>\nf o\nfo x</w>\ne s</w>\nfo x\nfox es</w>\n' s</w>\n";
        ClipTokenizer::from_strs(vocab, merges).unwrap()
    }

    #[test]
    fn merges_apply_by_rank_and_words_end_with_w() {
        let t = tiny();
        assert_eq!(t.encode("ink fox"), vec![4, 5]);
        assert_eq!(t.encode("  INK   Foxes "), vec![4, 19]);
    }

    #[test]
    fn contractions_digits_and_punctuation_split_like_clip() {
        assert_eq!(
            pre_tokenize("fox's ink, 12"),
            vec!["fox", "'s", "ink", ",", "1", "2"]
        );
        assert_eq!(tiny().encode("fox's, 12"), vec![5, 13, 12, 14, 15]);
    }

    #[test]
    fn padded_ids_are_framed_cut_and_padded_with_eos() {
        let t = tiny();
        assert_eq!(t.encode_padded("ink fox", 6), vec![0, 4, 5, 1, 1, 1]);
        assert_eq!(t.encode_padded("ink fox ink fox", 4), vec![0, 4, 5, 1]);
    }

    /// The built-in vocabulary written out as a model's `vocab.json` and
    /// `merges.txt`, read back the way the engine reads a model's files:
    /// both give every text the same ids.
    #[test]
    fn the_built_in_vocabulary_tokenizes_like_the_files_of_a_model() {
        let clip = crate::clip_bpe::clip().unwrap();
        let (vocab, merges) = clip.to_files();
        let files = ClipTokenizer::from_strs(&vocab, &merges).unwrap();
        assert_eq!((files.bos, files.eos), (49406, 49407));
        for text in [
            "zkinkfox, a fox in the snow, ink wash",
            "ohwxstyle portrait of a woman's face, 2girls",
            "mrz_style k4tz café!! naïve 日本 <|endoftext|>",
            "sunset lantern castle velvet",
        ] {
            let ids = files.encode(text);
            assert!(ids.len() >= text.split_whitespace().count(), "{text}");
            assert_eq!(ids, clip.encode(text), "{text}");
        }
    }

    #[test]
    fn shuffling_keeps_the_trigger_first_and_every_tag() {
        let mut rng = SplitMix64::new(9);
        let caption = "inkfox, red, forest, night, snow";
        let mut seen_other_order = false;
        for _ in 0..10 {
            let s = shuffle_caption(caption, 1, &mut rng);
            assert!(s.starts_with("inkfox, "), "{s}");
            let mut tags: Vec<&str> = s.split(", ").collect();
            seen_other_order |= s != caption;
            tags.sort_unstable();
            assert_eq!(tags, vec!["forest", "inkfox", "night", "red", "snow"]);
        }
        assert!(seen_other_order);
    }
}
