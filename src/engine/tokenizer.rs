//! CLIP's byte-level BPE tokenizer, read from the model's own
//! `vocab.json` and `merges.txt` (the `tokenizer/` folder of an SD1.5
//! diffusers repository), plus kohya-style caption shuffling.
//!
//! Text is whitespace-collapsed and lower-cased, split the way CLIP's regex
//! splits it (special tokens, English contractions, letter runs, single
//! digits, runs of other symbols), each piece's UTF-8 bytes mapped to
//! printable characters, the last one marked `</w>`, and BPE merges applied
//! lowest rank first. SD1.5 frames every caption as
//! `<|startoftext|> … <|endoftext|>` and pads to 77 with `<|endoftext|>`.
//! (ftfy's mojibake repair and HTML unescaping are not done.)

use std::collections::HashMap;
use std::path::Path;

use super::EngineError;
use super::train::SplitMix64;

pub const START_OF_TEXT: &str = "<|startoftext|>";
pub const END_OF_TEXT: &str = "<|endoftext|>";

/// A loaded tokenizer.
#[derive(Debug, Clone)]
pub struct ClipTokenizer {
    encoder: HashMap<String, i64>,
    ranks: HashMap<(String, String), usize>,
    byte_chars: Vec<char>,
    pub bos: i64,
    pub eos: i64,
}

/// GPT-2's reversible byte → printable-character table.
fn byte_chars() -> Vec<char> {
    let mut printable: Vec<u32> = (u32::from('!')..=u32::from('~'))
        .chain(u32::from('¡')..=u32::from('¬'))
        .chain(u32::from('®')..=u32::from('ÿ'))
        .collect();
    let mut table = vec!['\0'; 256];
    for &b in &printable {
        table[b as usize] = char::from_u32(b).unwrap_or('\0');
    }
    let mut extra = 0;
    for b in 0..256u32 {
        if !printable.contains(&b) {
            table[b as usize] = char::from_u32(256 + extra).unwrap_or('\0');
            extra += 1;
            printable.push(b);
        }
    }
    table
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
        let encoder: HashMap<String, i64> =
            serde_json::from_str(vocab_json).map_err(|e| format!("vocab.json: {e}"))?;
        let ranks = merges
            .lines()
            .filter(|l| !l.starts_with("#version") && !l.trim().is_empty())
            .enumerate()
            .filter_map(|(rank, line)| {
                let (a, b) = line.split_once(' ')?;
                Some(((a.to_string(), b.to_string()), rank))
            })
            .collect();
        let bos = *encoder
            .get(START_OF_TEXT)
            .ok_or_else(|| format!("vocab.json has no `{START_OF_TEXT}`"))?;
        let eos = *encoder
            .get(END_OF_TEXT)
            .ok_or_else(|| format!("vocab.json has no `{END_OF_TEXT}`"))?;
        Ok(Self {
            encoder,
            ranks,
            byte_chars: byte_chars(),
            bos,
            eos,
        })
    }

    /// Token ids of `text`, without the start/end tokens. Pieces the vocab
    /// does not know are skipped.
    pub fn encode(&self, text: &str) -> Vec<i64> {
        let cleaned = text
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .to_lowercase();
        let mut ids = Vec::new();
        for piece in pre_tokenize(&cleaned) {
            if let Some(&id) = (piece == START_OF_TEXT || piece == END_OF_TEXT)
                .then(|| self.encoder.get(piece))
                .flatten()
            {
                ids.push(id);
                continue;
            }
            let mapped: String = piece.bytes().map(|b| self.byte_chars[b as usize]).collect();
            for token in self.bpe(&mapped) {
                if let Some(&id) = self.encoder.get(&token) {
                    ids.push(id);
                }
            }
        }
        ids
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

    fn bpe(&self, piece: &str) -> Vec<String> {
        let chars: Vec<char> = piece.chars().collect();
        let Some((last, init)) = chars.split_last() else {
            return Vec::new();
        };
        let mut word: Vec<String> = init.iter().map(|c| c.to_string()).collect();
        word.push(format!("{last}</w>"));
        loop {
            let best = word
                .windows(2)
                .enumerate()
                .filter_map(|(i, pair)| {
                    self.ranks
                        .get(&(pair[0].clone(), pair[1].clone()))
                        .map(|&rank| (rank, i))
                })
                .min();
            let Some((_, i)) = best else {
                break;
            };
            let merged = format!("{}{}", word[i], word[i + 1]);
            // merge every occurrence of this pair, left to right
            let (a, b) = (word[i].clone(), word[i + 1].clone());
            let mut next = Vec::with_capacity(word.len());
            let mut j = 0;
            while j < word.len() {
                if j + 1 < word.len() && word[j] == a && word[j + 1] == b {
                    next.push(merged.clone());
                    j += 2;
                } else {
                    next.push(word[j].clone());
                    j += 1;
                }
            }
            word = next;
        }
        word
    }
}

/// CLIP's split: `<|startoftext|>|<|endoftext|>|'s|'t|'re|'ve|'m|'ll|'d|
/// [\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+`, written out by hand.
fn pre_tokenize(text: &str) -> Vec<&str> {
    let mut pieces = Vec::new();
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        if c.is_whitespace() {
            rest = &rest[c.len_utf8()..];
            continue;
        }
        let special = [START_OF_TEXT, END_OF_TEXT]
            .into_iter()
            .find(|s| rest.starts_with(s));
        let contraction = ["'s", "'t", "'re", "'ve", "'m", "'ll", "'d"]
            .into_iter()
            .find(|s| rest.starts_with(s));
        let len = if let Some(s) = special.or(contraction) {
            s.len()
        } else if c.is_alphabetic() {
            rest.find(|ch: char| !ch.is_alphabetic())
                .unwrap_or(rest.len())
        } else if c.is_numeric() {
            c.len_utf8()
        } else {
            rest.find(|ch: char| ch.is_whitespace() || ch.is_alphabetic() || ch.is_numeric())
                .unwrap_or(rest.len())
        };
        pieces.push(&rest[..len]);
        rest = &rest[len..];
    }
    pieces
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
