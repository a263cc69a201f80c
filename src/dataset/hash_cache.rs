//! The perceptual-hash cache: hashes of pictures already seen, so a second
//! duplicate search over an unchanged folder reads no picture at all.
//!
//! One JSON file, `grimoire/.state/picture-hashes.json`, keyed by the path
//! relative to the workspace root. An entry is used when the file's size and
//! modification time (to the nanosecond) are unchanged; a file whose size or
//! time changed is read and its content hash (BLAKE3) looked up, so a copied,
//! moved or touched picture is still not decoded again. The cache is a
//! convenience: a missing or damaged file only means hashing again, and a
//! change of hash algorithm empties it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use base64::Engine;
use serde::{Deserialize, Serialize};

use super::phash::{HashedFile, PictureHash};
use crate::studio::StudioError;

/// File name under `grimoire/.state/`.
pub const CACHE_FILE: &str = "picture-hashes.json";

/// Changes whenever the hash of a picture would change: old entries are then
/// dropped instead of being compared with new ones. Version 3: JPEGs of 256
/// px and more are hashed from their 8×8 block means (a bit or two away from
/// a full decode's hashes). Version 5: 64 window hashes per picture (larger
/// crops), and crop verdicts from the closer look (turns, larger crops,
/// overlays).
pub const ALGORITHM: &str =
    "dct8x8-median/area32-luma601/mirror/centre92/small16/jpegdc256/webp-y/windows64/5";

/// What is remembered about one picture file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheEntry {
    pub size: u64,
    /// Modification time, nanoseconds since the Unix epoch.
    pub modified_ns: u64,
    /// BLAKE3 of the file's bytes.
    pub content: String,
    pub hash: PictureHash,
    pub width: u32,
    pub height: u32,
    pub format: String,
    /// The 16×16 grey thumbnail, base64.
    #[serde(default)]
    pub small: String,
    /// The window hashes ([`super::phash::window_hashes`]), little-endian,
    /// base64.
    #[serde(default)]
    pub windows: String,
}

impl CacheEntry {
    /// The entry for a file just hashed.
    pub fn new(size: u64, modified_ns: u64, content: String, hashed: &HashedFile) -> Self {
        CacheEntry {
            size,
            modified_ns,
            content,
            hash: hashed.hash,
            width: hashed.width,
            height: hashed.height,
            format: hashed.format.clone(),
            small: base64::engine::general_purpose::STANDARD_NO_PAD.encode(&hashed.small),
            windows: base64::engine::general_purpose::STANDARD_NO_PAD.encode(
                hashed
                    .windows
                    .iter()
                    .flat_map(|w| w.to_le_bytes())
                    .collect::<Vec<u8>>(),
            ),
        }
    }

    /// The hash result it remembers.
    pub fn hashed(&self) -> HashedFile {
        HashedFile {
            hash: self.hash,
            width: self.width,
            height: self.height,
            format: self.format.clone(),
            small: base64::engine::general_purpose::STANDARD_NO_PAD
                .decode(&self.small)
                .unwrap_or_default(),
            colour: None,
            windows: base64::engine::general_purpose::STANDARD_NO_PAD
                .decode(&self.windows)
                .unwrap_or_default()
                .chunks_exact(8)
                .map(|b| u64::from_le_bytes(b.try_into().unwrap_or([0; 8])))
                .collect(),
        }
    }
}

#[derive(Serialize, Deserialize)]
struct CacheFile {
    algorithm: String,
    entries: HashMap<String, CacheEntry>,
    /// Crop-check verdicts: (content key, content key, copies?).
    #[serde(default)]
    verdicts: Vec<(u64, u64, bool)>,
}

/// A short key for a file's content: the first 64 bits of its BLAKE3.
fn content_key(content: &str) -> u64 {
    content
        .get(..16)
        .and_then(|h| u64::from_str_radix(h, 16).ok())
        .unwrap_or(0)
}

fn pair_key(a: &str, b: &str) -> (u64, u64) {
    let (a, b) = (content_key(a), content_key(b));
    (a.min(b), a.max(b))
}

/// The cache, loaded in memory.
#[derive(Debug, Default)]
pub struct HashCache {
    path: Option<PathBuf>,
    entries: HashMap<String, CacheEntry>,
    by_content: HashMap<String, String>,
    /// Whether two pictures (by content) were confirmed as copies: the crop
    /// check is the costly part of a search over an unchanged folder.
    verdicts: HashMap<(u64, u64), bool>,
    changed: bool,
}

/// Size and modification time of a file, as the cache keys them.
pub fn file_stamp(meta: &std::fs::Metadata) -> (u64, u64) {
    let modified_ns = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0);
    (meta.len(), modified_ns)
}

impl HashCache {
    /// Loads the cache of the workspace whose state folder is `state_dir`;
    /// empty when there is none yet, it cannot be read, or it was made by
    /// another hash algorithm.
    pub fn load(state_dir: &Path) -> HashCache {
        let path = state_dir.join(CACHE_FILE);
        let (entries, verdicts) = std::fs::read(&path)
            .ok()
            .and_then(|bytes| serde_json::from_slice::<CacheFile>(&bytes).ok())
            .filter(|f| f.algorithm == ALGORITHM)
            .map(|f| {
                let verdicts = f
                    .verdicts
                    .into_iter()
                    .map(|(a, b, v)| ((a, b), v))
                    .collect();
                (f.entries, verdicts)
            })
            .unwrap_or_default();
        let by_content = entries
            .iter()
            .map(|(k, e)| (e.content.clone(), k.clone()))
            .collect();
        HashCache {
            path: Some(path),
            entries,
            by_content,
            verdicts,
            changed: false,
        }
    }

    /// A cache that remembers nothing and saves nothing.
    pub fn disabled() -> HashCache {
        HashCache::default()
    }

    /// The entry for `key` if the file still has this size and time.
    pub fn get(&self, key: &str, size: u64, modified_ns: u64) -> Option<&CacheEntry> {
        self.entries
            .get(key)
            .filter(|e| e.size == size && e.modified_ns == modified_ns && modified_ns != 0)
    }

    /// Any entry for a file with these exact bytes.
    pub fn get_by_content(&self, content: &str) -> Option<&CacheEntry> {
        self.by_content
            .get(content)
            .and_then(|k| self.entries.get(k))
            .filter(|e| e.content == content)
    }

    /// The remembered verdict for two pictures (by content), if any.
    pub fn verdict(&self, a: &str, b: &str) -> Option<bool> {
        self.verdicts.get(&pair_key(a, b)).copied()
    }

    /// Remembers whether two pictures (by content) are copies.
    pub fn remember_verdict(&mut self, a: &str, b: &str, copies: bool) {
        if self.path.is_some() && self.verdicts.insert(pair_key(a, b), copies) != Some(copies) {
            self.changed = true;
        }
    }

    /// Remembers `entry` for `key` (only when the cache is enabled).
    pub fn insert(&mut self, key: String, entry: CacheEntry) {
        if self.path.is_none() || self.entries.get(&key) == Some(&entry) {
            return;
        }
        self.by_content.insert(entry.content.clone(), key.clone());
        self.entries.insert(key, entry);
        self.changed = true;
    }

    /// Forgets entries under `prefix` (a folder key ending in `/`, or `""`)
    /// whose key is not in `seen`: pictures removed from the folder.
    pub fn forget_missing(&mut self, prefix: &str, seen: &std::collections::HashSet<String>) {
        let before = self.entries.len();
        self.entries
            .retain(|k, _| !k.starts_with(prefix) || seen.contains(k));
        if self.entries.len() != before {
            self.by_content
                .retain(|_, k| self.entries.contains_key(k.as_str()));
            self.changed = true;
        }
    }

    /// Number of remembered pictures.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Writes the cache back (atomically) if anything changed.
    pub fn save(&mut self) -> Result<(), StudioError> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        if !self.changed {
            return Ok(());
        }
        // Keep only verdicts about pictures still remembered.
        let live: std::collections::HashSet<u64> = self
            .entries
            .values()
            .map(|e| content_key(&e.content))
            .collect();
        let mut verdicts: Vec<(u64, u64, bool)> = self
            .verdicts
            .iter()
            .filter(|((a, b), _)| live.contains(a) && live.contains(b))
            .map(|((a, b), v)| (*a, *b, *v))
            .collect();
        verdicts.sort_unstable();
        let file = CacheFile {
            algorithm: ALGORITHM.to_string(),
            entries: std::mem::take(&mut self.entries),
            verdicts,
        };
        // Compact: this file is for the program, and can hold many thousand entries.
        let result = serde_json::to_vec(&file)
            .map_err(|e| StudioError::Write {
                path: path.clone(),
                source: std::io::Error::other(e),
            })
            .and_then(|bytes| crate::studio::write_atomic(path, &bytes));
        self.entries = file.entries;
        if result.is_ok() {
            self.changed = false;
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(name: &str) -> String {
        blake3::hash(name.as_bytes()).to_hex().to_string()
    }

    fn entry(content: &str, size: u64, t: u64) -> CacheEntry {
        CacheEntry {
            size,
            modified_ns: t,
            content: hex(content),
            hash: PictureHash {
                hash: 7,
                mirrored: 9,
                centre: 11,
                centre_mirrored: 13,
            },
            width: 10,
            height: 20,
            format: "png".into(),
            small: String::new(),
            windows: base64::engine::general_purpose::STANDARD_NO_PAD
                .encode([t.to_le_bytes(), size.to_le_bytes()].concat()),
        }
    }

    #[test]
    fn round_trip_and_invalidation() {
        let dir = tempfile::tempdir().unwrap();
        let mut cache = HashCache::load(dir.path());
        assert!(cache.is_empty());
        cache.insert("pics/a.png".into(), entry("c1", 100, 5));
        cache.insert("other/b.png".into(), entry("c2", 200, 6));
        cache.save().unwrap();

        let mut cache = HashCache::load(dir.path());
        assert_eq!(cache.len(), 2);
        assert!(cache.get("pics/a.png", 100, 5).is_some());
        assert_eq!(
            cache.get("pics/a.png", 100, 5).unwrap().hashed().windows,
            vec![5, 100],
            "window hashes come back"
        );
        assert!(cache.get("pics/a.png", 101, 5).is_none(), "size changed");
        assert!(cache.get("pics/a.png", 100, 6).is_none(), "time changed");
        assert_eq!(cache.get_by_content(&hex("c2")).unwrap().size, 200);
        cache.remember_verdict(&hex("c1"), &hex("c2"), true);
        cache.save().unwrap();
        let mut cache = HashCache::load(dir.path());
        assert_eq!(cache.verdict(&hex("c2"), &hex("c1")), Some(true));
        assert_eq!(cache.verdict(&hex("c2"), &hex("c3")), None);

        cache.forget_missing("pics/", &Default::default());
        assert!(cache.get("pics/a.png", 100, 5).is_none());
        assert!(cache.get_by_content(&hex("c1")).is_none());
        cache.save().unwrap();
        let cache = HashCache::load(dir.path());
        assert_eq!(
            cache.verdict(&hex("c2"), &hex("c1")),
            None,
            "verdicts about forgotten pictures go"
        );
        assert!(
            cache.get("other/b.png", 200, 6).is_some(),
            "other folders are kept"
        );
    }

    #[test]
    fn damaged_or_foreign_cache_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(CACHE_FILE), b"{not json").unwrap();
        assert!(HashCache::load(dir.path()).is_empty());
        std::fs::write(
            dir.path().join(CACHE_FILE),
            br#"{"algorithm":"old","entries":{"a":{"size":1,"modified_ns":1,"content":"x","hash":{"hash":1,"mirrored":1,"centre":1,"centre_mirrored":1},"width":1,"height":1,"format":"png"}}}"#,
        )
        .unwrap();
        assert!(HashCache::load(dir.path()).is_empty());
        let mut off = HashCache::disabled();
        off.insert("a".into(), entry("c", 1, 1));
        assert!(off.is_empty());
        off.save().unwrap();
    }
}
