//! CLIP's byte-level BPE: the vocabulary and merge rules of the CLIP ViT-L/14
//! tokenizer that SD1.5, SDXL and Flux all read prompts with, and the
//! algorithm that turns text into its tokens.
//!
//! Two things use it: the native engine (`engine::tokenizer`), which loads
//! the `vocab.json` and `merges.txt` of the model it trains, and the trigger
//! word check (`dataset::trigger`), which asks what the text encoder already
//! knows before any model is downloaded. For that the vocabulary is built in:
//! `clip_bpe/merges.zlib`, 168 KB, made by `scripts/clip_vocab.py` from the
//! `bpe_simple_vocab_16e6.txt.gz` OpenAI published (taken from the
//! `open_clip_torch` 3.3.0 wheel; the script says how and checks its hash).
//!
//! Text is whitespace-collapsed and lower-cased, split the way CLIP's regex
//! splits it (special tokens, English contractions, letter runs, single
//! digits, runs of other symbols), each piece's UTF-8 bytes mapped to
//! printable characters, the last one marked `</w>` (end of word), and BPE
//! merges applied lowest rank first. ftfy's mojibake repair and HTML
//! unescaping are not done; letters are Rust's `char::is_alphabetic`, which
//! also counts a few combining marks the regex's `\p{L}` does not.

use std::collections::HashMap;
use std::sync::LazyLock;

pub const START_OF_TEXT: &str = "<|startoftext|>";
pub const END_OF_TEXT: &str = "<|endoftext|>";
/// Marks the last piece of a word.
pub const END_OF_WORD: &str = "</w>";

/// Tokens in CLIP's vocabulary: 256 byte characters, the same 256 ending a
/// word, one token per merge, and the two special tokens.
pub const CLIP_VOCAB_SIZE: usize = 49_408;
const CLIP_MERGES: usize = CLIP_VOCAB_SIZE - 512 - 2;
/// Merges in rank order, each two little-endian u16 ids (see the module doc).
static CLIP_MERGES_ZLIB: &[u8] = include_bytes!("clip_bpe/merges.zlib");

/// A vocabulary and its merge ranks.
#[derive(Debug, Clone)]
pub struct Bpe {
    encoder: HashMap<String, i64>,
    ranks: HashMap<(String, String), usize>,
    byte_chars: [char; 256],
}

/// CLIP's own vocabulary, built into the binary; decoded on first use.
pub fn clip() -> Result<&'static Bpe, &'static str> {
    static CLIP: LazyLock<Result<Bpe, String>> =
        LazyLock::new(|| Bpe::from_packed(CLIP_MERGES_ZLIB));
    CLIP.as_ref().map_err(String::as_str)
}

/// GPT-2's reversible byte → printable-character mapping, as pairs in the
/// order CLIP's vocabulary lists them: the printable bytes first (each as
/// itself), then the others mapped to U+0100 onwards.
fn byte_order() -> Vec<(u8, char)> {
    let printable = |b: u8| matches!(b, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF);
    let mut order: Vec<(u8, char)> = (0..=255u8)
        .filter(|&b| printable(b))
        .map(|b| (b, char::from(b)))
        .collect();
    let others = (0..=255u8).filter(|&b| !printable(b));
    for (i, b) in others.enumerate() {
        order.push((b, char::from_u32(256 + i as u32).unwrap_or('\0')));
    }
    order
}

fn byte_chars() -> [char; 256] {
    let mut table = ['\0'; 256];
    for (b, c) in byte_order() {
        table[usize::from(b)] = c;
    }
    table
}

impl Bpe {
    /// From a `vocab.json` (token → id) and a `merges.txt` (one `left right`
    /// pair a line, rank order, `#version` header allowed), as in a
    /// diffusers `tokenizer/` folder.
    pub fn from_vocab_and_merges(vocab_json: &str, merges: &str) -> Result<Self, String> {
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
        Ok(Self {
            encoder,
            ranks,
            byte_chars: byte_chars(),
        })
    }

    /// From the packed form `scripts/clip_vocab.py` writes.
    fn from_packed(zlib: &[u8]) -> Result<Self, String> {
        let raw = fdeflate::decompress_to_vec(zlib).map_err(|e| format!("inflating: {e:?}"))?;
        if raw.len() != CLIP_MERGES * 4 {
            return Err(format!(
                "{} bytes of merges, expected {}",
                raw.len(),
                CLIP_MERGES * 4
            ));
        }
        let mut vocab: Vec<String> = byte_order().iter().map(|(_, c)| c.to_string()).collect();
        vocab.extend(
            byte_order()
                .iter()
                .map(|(_, c)| format!("{c}{END_OF_WORD}")),
        );
        let mut ranks = HashMap::with_capacity(CLIP_MERGES);
        for (rank, pair) in raw.chunks_exact(4).enumerate() {
            let id = |at: usize| usize::from(u16::from_le_bytes([pair[at], pair[at + 1]]));
            let (a, b) = (id(0), id(2));
            let (Some(left), Some(right)) = (vocab.get(a), vocab.get(b)) else {
                return Err(format!("merge {rank} names a token not made yet"));
            };
            let merged = format!("{left}{right}");
            ranks.insert((left.clone(), right.clone()), rank);
            vocab.push(merged);
        }
        vocab.push(START_OF_TEXT.into());
        vocab.push(END_OF_TEXT.into());
        let encoder: HashMap<String, i64> = vocab
            .into_iter()
            .enumerate()
            .map(|(id, token)| (token, id as i64))
            .collect();
        if encoder.len() != CLIP_VOCAB_SIZE || ranks.len() != CLIP_MERGES {
            return Err(format!(
                "{} distinct tokens and {} merges, expected {CLIP_VOCAB_SIZE} and {CLIP_MERGES}",
                encoder.len(),
                ranks.len()
            ));
        }
        Ok(Self {
            encoder,
            ranks,
            byte_chars: byte_chars(),
        })
    }

    /// Tokens in the vocabulary.
    pub fn len(&self) -> usize {
        self.encoder.len()
    }

    pub fn is_empty(&self) -> bool {
        self.encoder.is_empty()
    }

    /// The id of one token, such as `fox</w>`.
    pub fn id(&self, token: &str) -> Option<i64> {
        self.encoder.get(token).copied()
    }

    /// The tokens of `text` as strings (`</w>` marking word ends), special
    /// tokens included, whether or not the vocabulary has them.
    pub fn tokens(&self, text: &str) -> Vec<String> {
        let cleaned = text
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .to_lowercase();
        let mut tokens = Vec::new();
        for piece in pre_tokenize(&cleaned) {
            if piece == START_OF_TEXT || piece == END_OF_TEXT {
                tokens.push(piece.to_string());
                continue;
            }
            let mapped: String = piece
                .bytes()
                .map(|b| self.byte_chars[usize::from(b)])
                .collect();
            tokens.extend(self.bpe(&mapped));
        }
        tokens
    }

    /// A token as the text it stands for, without the `</w>` mark (`fox</w>`
    /// → `fox`); a piece of a multi-byte character shows as `�`.
    pub fn token_text(&self, token: &str) -> String {
        let token = token.strip_suffix(END_OF_WORD).unwrap_or(token);
        if token == START_OF_TEXT || token == END_OF_TEXT {
            return token.to_string();
        }
        let bytes: Vec<u8> = token
            .chars()
            .filter_map(|c| self.byte_chars.iter().position(|&b| b == c))
            .filter_map(|b| u8::try_from(b).ok())
            .collect();
        String::from_utf8_lossy(&bytes).into_owned()
    }

    /// Token ids of `text`, without start/end framing. Tokens the
    /// vocabulary does not know are skipped.
    pub fn encode(&self, text: &str) -> Vec<i64> {
        self.tokens(text)
            .iter()
            .filter_map(|t| self.id(t))
            .collect()
    }

    /// Merges one pre-tokenised, byte-mapped piece.
    fn bpe(&self, piece: &str) -> Vec<String> {
        let chars: Vec<char> = piece.chars().collect();
        let Some((last, init)) = chars.split_last() else {
            return Vec::new();
        };
        let mut word: Vec<String> = init.iter().map(|c| c.to_string()).collect();
        word.push(format!("{last}{END_OF_WORD}"));
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
            // merge every occurrence of this pair, left to right
            let (a, b) = (word[i].clone(), word[i + 1].clone());
            let merged = format!("{a}{b}");
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

    /// The vocabulary as `vocab.json` and `merges.txt` text, the files a
    /// diffusers `tokenizer/` folder holds (the engine reads its built-in
    /// vocabulary through them).
    pub(crate) fn to_files(&self) -> (String, String) {
        let vocab = serde_json::to_string(&self.encoder).unwrap_or_default();
        let mut merges: Vec<(&(String, String), &usize)> = self.ranks.iter().collect();
        merges.sort_by_key(|(_, rank)| **rank);
        let mut text = String::from("#version: 0.2\n");
        for ((a, b), _) in merges {
            text.push_str(&format!("{a} {b}\n"));
        }
        (vocab, text)
    }
}

/// CLIP's split: `<|startoftext|>|<|endoftext|>|'s|'t|'re|'ve|'m|'ll|'d|
/// [\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+`, written out by hand.
pub fn pre_tokenize(text: &str) -> Vec<&str> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_built_in_vocabulary_parses_with_every_clip_token() {
        let clip = clip().unwrap();
        assert_eq!(clip.len(), CLIP_VOCAB_SIZE);
        assert_eq!(clip.id(START_OF_TEXT), Some(49406));
        assert_eq!(clip.id(END_OF_TEXT), Some(49407));
        assert_eq!(clip.id("!"), Some(0));
        assert_eq!(clip.id("!</w>"), Some(256));
    }

    #[test]
    fn a_damaged_vocabulary_is_refused_not_half_read() {
        let raw = fdeflate::decompress_to_vec(CLIP_MERGES_ZLIB).unwrap();
        let short = fdeflate::compress_to_vec(&raw[..raw.len() - 4]);
        assert!(
            Bpe::from_packed(&short)
                .unwrap_err()
                .contains("bytes of merges")
        );
        let mut forward = raw.clone();
        forward[0..2].copy_from_slice(&60_000u16.to_le_bytes());
        let forward = fdeflate::compress_to_vec(&forward);
        assert!(
            Bpe::from_packed(&forward)
                .unwrap_err()
                .contains("not made yet")
        );
        assert!(Bpe::from_packed(b"not zlib").is_err());
    }

    /// Reference ids from open_clip's own tokenizer (OpenAI's CLIP code):
    /// `python3 scripts/clip_vocab.py --reference WORD...`.
    #[test]
    fn tokens_match_clips_own_tokenizer() {
        let clip = clip().unwrap();
        let cases: &[(&str, &[i64])] = &[
            ("sunset", &[3424]),
            ("zkinkfox", &[89, 1442, 74, 3240]),
            ("ohwxstyle", &[5648, 18192, 1844]),
            ("inkfox", &[4547, 3240]),
            ("mrz_style", &[3139, 345, 318, 1844]),
            ("k4tz", &[330, 275, 4983]),
            ("a-b", &[320, 268, 321]),
            ("Style", &[1844]),
            ("fox's, 12", &[3240, 568, 267, 272, 273]),
            ("ZSunsetStyle", &[89, 37880, 1844]),
            ("café!! naïve", &[15304, 748, 1097, 35689, 563]),
            (
                "日本 ink-wash, 2girls",
                &[39121, 19277, 361, 967, 268, 7810, 267, 273, 1917],
            ),
        ];
        for (text, ids) in cases {
            assert_eq!(&clip.encode(text), ids, "{text}");
        }
        assert_eq!(clip.tokens("zkinkfox"), ["z", "kin", "k", "fox</w>"]);
        let text: Vec<String> = clip
            .tokens("café fox")
            .iter()
            .map(|t| clip.token_text(t))
            .collect();
        assert_eq!(text.concat(), "caféfox");
    }
}
