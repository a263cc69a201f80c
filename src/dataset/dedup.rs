//! Near-duplicate search: which pictures in a folder are copies of each other
//! (resized, re-encoded, slightly cropped, brightened, mirrored, or the very
//! same file), grouped, with the copy to keep in each group.
//!
//! Duplicates make a LoRA memorise those pictures instead of learning the
//! style or subject. Every picture is decoded once, in parallel, to a
//! perceptual hash ([`super::phash`]) plus a BLAKE3 content hash; hashes of
//! unchanged files come from the cache ([`super::hash_cache`]). Pairs within
//! the threshold are found by [`super::hamming`] and joined into groups
//! (connected pairs). Nothing in the folder is changed: moving copies aside
//! is [`super::quarantine`]'s job, on the user's word.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use rayon::prelude::*;
use serde::Serialize;

use super::captions;
use super::contact_sheet;
use super::crop_check;
use super::hamming::{self, HashPair, SearchMethod, Views};
use super::hash_cache::{self, CacheEntry, HashCache};
use super::manifest;
use super::phash::{self, HashedFile, JpegDecode, PictureHash};
use super::walk;
use crate::studio::{Progress, Workspace};

/// Default largest distance (differing bits of 64) between the hashes of two
/// pictures for them to be compared closely. Measured on the labelled set
/// (`dedup_bench::distance_profile_print`, 200 bases, 256 px): resized,
/// re-encoded, brightened and mirrored copies land within 4 bits, 8 %-cropped
/// ones within 16 (with the centre hash; up to 22 without). Unrelated
/// pictures start at 12 bits, which is why pairs past [`SURE_DISTANCE`] are
/// confirmed before they count: with that, 16 bits gave precision 0.996 and
/// recall 0.998 on 3,100 pictures of 512 px (`ategnatos bench duplicates`).
pub const DEFAULT_THRESHOLD: u32 = 16;
/// The largest threshold accepted: beyond it the close comparison would run
/// on a large share of all pairs.
pub const MAX_THRESHOLD: u32 = 24;
/// Threshold used for very large sets ([`hamming::WHOLE_VIEWS_FROM`] pictures
/// and more), where only whole pictures and mirror images are compared:
/// resized, re-encoded, brightened and mirrored copies are within it, and a
/// looser one would mean millions of candidates to confirm.
pub const LARGE_SET_THRESHOLD: u32 = 10;

/// The threshold in force for `n` pictures.
pub fn effective_threshold(n: usize, threshold: u32) -> u32 {
    if n >= hamming::WHOLE_VIEWS_FROM {
        threshold.min(LARGE_SET_THRESHOLD)
    } else {
        threshold
    }
}

/// Pairs this close are copies without a closer look: the hash alone is sure.
pub const SURE_DISTANCE: u32 = 4;
/// Smallest similarity of the aligned thumbnails ([`crop_check`]) for a pair
/// past [`SURE_DISTANCE`] to count as copies. Measured on the labelled set:
/// every true pair scored at least 0.96, same-background pictures more than
/// 10 bits apart at most 0.94, and unrelated pictures below 0.80.
pub const MIN_ALIGNED_SIMILARITY: f32 = 0.95;

/// What to search for.
#[derive(Debug, Clone)]
pub struct DuplicateOptions {
    /// Largest hash distance in bits (0–24) for a pair to be compared closely.
    pub threshold: u32,
    /// Caption file extension, without the dot.
    pub caption_extension: String,
    /// Use and update the hash cache under `grimoire/.state/`.
    pub use_cache: bool,
    /// How JPEGs are decoded for hashing; the default except when measuring
    /// (cached hashes do not record which way they were made).
    pub jpeg: JpegDecode,
}

impl Default for DuplicateOptions {
    fn default() -> Self {
        DuplicateOptions {
            threshold: DEFAULT_THRESHOLD,
            caption_extension: "txt".into(),
            use_cache: true,
            jpeg: JpegDecode::default(),
        }
    }
}

/// Why a duplicate search (or anything built on hashing a folder) could not run.
#[derive(Debug, thiserror::Error)]
pub enum DedupError {
    #[error("`{path}` is not a folder")]
    NotAFolder { path: String },
    #[error("the folder `{path}` cannot be read: {reason}")]
    Unreadable { path: String, reason: String },
    #[error("a target of 0 pictures would keep none of them")]
    ZeroTarget,
    #[error("the threshold `{threshold}` is out of range: it must be 0 to {max} bits")]
    BadThreshold {
        threshold: u32,
        /// The largest this tool takes.
        max: u32,
        /// This tool's default.
        default: u32,
    },
    #[error("the search was cancelled")]
    Cancelled,
}

impl DedupError {
    /// What the user can do about it.
    pub fn hint(&self) -> Option<String> {
        match self {
            DedupError::NotAFolder { .. } => {
                Some("give the folder that holds the pictures, not a single file".into())
            }
            DedupError::Unreadable { .. } => Some("check the folder's permissions".into()),
            DedupError::BadThreshold { max, default, .. } => Some(format!(
                "leave it out for the default `{default}`; a lower number groups only closer copies, a higher one (up to {max}) also heavier edits"
            )),
            DedupError::ZeroTarget => Some(
                "give how many pictures to keep (for example 40), or leave the target out".into(),
            ),
            DedupError::Cancelled => None,
        }
    }
}

/// One picture of the folder, hashed.
#[derive(Debug, Clone)]
pub struct HashedPicture {
    /// Full path on disk.
    pub path: PathBuf,
    /// Path relative to the workspace root, as shown and as tools take it.
    pub shown: String,
    pub file_size: u64,
    /// BLAKE3 of the file's bytes.
    pub content: String,
    pub hashed: HashedFile,
    /// The caption beside it, when there is one (workspace-relative).
    pub caption: Option<String>,
}

/// A picture that could not be hashed.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct UnreadablePicture {
    /// Path relative to the workspace root.
    pub path: String,
    /// Why, in words.
    pub reason: String,
}

/// Every picture of a folder hashed, from the cache where possible.
#[derive(Debug, Clone)]
pub struct HashedFolder {
    /// Sorted by path.
    pub pictures: Vec<HashedPicture>,
    pub unreadable: Vec<UnreadablePicture>,
    /// Pictures decoded in this run.
    pub hashed_now: usize,
    /// Pictures whose hash came from the cache.
    pub from_cache: usize,
}

enum Outcome {
    Hashed(Box<HashedPicture>, Option<CacheEntry>, bool),
    Failed(UnreadablePicture),
}

/// The workspace's hash cache, or one that remembers nothing.
pub fn open_cache(workspace: &Workspace, use_cache: bool) -> HashCache {
    if use_cache {
        HashCache::load(&workspace.state_dir())
    } else {
        HashCache::disabled()
    }
}

/// Saves the cache; a note for the report when that failed (the results
/// are right either way).
pub fn save_cache(cache: &mut HashCache) -> Option<String> {
    cache.save().err().map(|e| {
        format!(
            "the hash cache could not be saved ({e}); the next search will hash every picture again"
        )
    })
}

/// Most memory the colour thumbnails kept for contact sheets may take in
/// one search: about 4,500 pictures' worth. Pictures past it keep none;
/// the few of them a result shows are decoded again for their sheet.
pub const COLOUR_BUDGET_BYTES: usize = 30 << 20;

/// Hashes every picture under `dir` (decoding only those `cache` does not
/// know), in parallel, reporting progress per picture, and updates `cache`
/// (the caller saves it).
pub fn hash_folder(
    dir: &Path,
    workspace: &Workspace,
    caption_extension: &str,
    cache: &mut HashCache,
    jpeg: JpegDecode,
    progress: &dyn Progress,
) -> Result<HashedFolder, DedupError> {
    hash_folder_keeping(dir, workspace, caption_extension, cache, jpeg, 0, progress)
}

/// [`hash_folder`], keeping colour thumbnails for contact sheets from the
/// decoding (up to `colour_budget` bytes of them; 0 keeps none).
pub fn hash_folder_keeping(
    dir: &Path,
    workspace: &Workspace,
    caption_extension: &str,
    cache: &mut HashCache,
    jpeg: JpegDecode,
    colour_budget: usize,
    progress: &dyn Progress,
) -> Result<HashedFolder, DedupError> {
    let shown_dir = workspace.display_path(dir);
    if !dir.is_dir() {
        return Err(DedupError::NotAFolder { path: shown_dir });
    }
    let listing = walk::list_files(dir, workspace.root()).map_err(|e| DedupError::Unreadable {
        path: shown_dir.clone(),
        reason: walk::plain_io_reason(&e),
    })?;
    let caption_extension = caption_extension.trim_start_matches('.');
    let (pictures, _) = manifest::classify(&listing.files, caption_extension);
    let total = pictures.len() as u64;
    let done = AtomicU64::new(0);
    let colour_used = AtomicUsize::new(0);
    let thumb_bytes = 3 * (phash::COLOUR_SIDE * phash::COLOUR_SIDE) as usize;
    progress.report(0, Some(total), &format!("hashing {total} pictures"));
    let outcomes: Vec<Outcome> = pictures
        .par_iter()
        .map(|file| {
            if progress.is_cancelled() {
                return None;
            }
            let colour = colour_budget > 0
                && colour_used.fetch_add(thumb_bytes, Ordering::Relaxed) + thumb_bytes
                    <= colour_budget;
            let outcome = hash_one(
                &file.path,
                workspace,
                caption_extension,
                cache,
                jpeg,
                colour,
            );
            let n = done.fetch_add(1, Ordering::Relaxed) + 1;
            progress.report(n, Some(total), &format!("hashed {n} of {total} pictures"));
            Some(outcome)
        })
        .collect::<Option<Vec<_>>>()
        .ok_or(DedupError::Cancelled)?;

    let mut out = HashedFolder {
        pictures: Vec::with_capacity(outcomes.len()),
        unreadable: Vec::new(),
        hashed_now: 0,
        from_cache: 0,
    };
    let mut seen = HashSet::new();
    for outcome in outcomes {
        match outcome {
            Outcome::Hashed(picture, entry, cached) => {
                if cached {
                    out.from_cache += 1;
                } else {
                    out.hashed_now += 1;
                }
                seen.insert(picture.shown.clone());
                if let Some(entry) = entry {
                    cache.insert(picture.shown.clone(), entry);
                }
                out.pictures.push(*picture);
            }
            Outcome::Failed(f) => out.unreadable.push(f),
        }
    }
    let prefix = match shown_dir.as_str() {
        "." => String::new(),
        d => format!("{d}/"),
    };
    cache.forget_missing(&prefix, &seen);
    out.pictures.sort_by(|a, b| a.shown.cmp(&b.shown));
    Ok(out)
}

fn hash_one(
    path: &Path,
    workspace: &Workspace,
    caption_extension: &str,
    cache: &HashCache,
    jpeg: JpegDecode,
    colour: bool,
) -> Outcome {
    let shown = workspace.display_path(path);
    let failed = |reason: String| {
        Outcome::Failed(UnreadablePicture {
            path: shown.clone(),
            reason,
        })
    };
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) => return failed(walk::plain_io_reason(&e)),
    };
    let (size, modified_ns) = hash_cache::file_stamp(&meta);
    let caption_path = captions::caption_path_for(path, caption_extension);
    let caption = caption_path
        .is_file()
        .then(|| workspace.display_path(&caption_path));
    let picture = |content: String, hashed: HashedFile| HashedPicture {
        path: path.to_path_buf(),
        shown: shown.clone(),
        file_size: size,
        content,
        hashed,
        caption: caption.clone(),
    };
    if let Some(entry) = cache.get(&shown, size, modified_ns) {
        return Outcome::Hashed(
            Box::new(picture(entry.content.clone(), entry.hashed())),
            None,
            true,
        );
    }
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) => return failed(walk::plain_io_reason(&e)),
    };
    let content = blake3::hash(&bytes).to_hex().to_string();
    if let Some(entry) = cache.get_by_content(&content) {
        let hashed = entry.hashed();
        let entry = CacheEntry::new(size, modified_ns, content.clone(), &hashed);
        return Outcome::Hashed(Box::new(picture(content, hashed)), Some(entry), true);
    }
    match phash::hash_file_bytes_keeping(&bytes, jpeg, colour) {
        Ok(hashed) => {
            let entry = CacheEntry::new(size, modified_ns, content.clone(), &hashed);
            Outcome::Hashed(Box::new(picture(content, hashed)), Some(entry), false)
        }
        Err(failure) => failed(failure.plain()),
    }
}

/// How alike two pictures are, in words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Likeness {
    /// The very same bytes.
    IdenticalFile,
    /// Distance 0–2: the same picture, re-saved or resized.
    LooksIdentical,
    /// Distance 3–6: the same picture, slightly changed.
    NearIdentical,
    /// Distance 7 and more, confirmed by aligning the pictures: the same
    /// picture edited (cropped, turned, brightened, retouched, or with a
    /// logo or text laid over it).
    Edited,
}

impl Likeness {
    fn of(distance: u32, identical_file: bool) -> Likeness {
        match (identical_file, distance) {
            (true, _) => Likeness::IdenticalFile,
            (_, 0..=2) => Likeness::LooksIdentical,
            (_, 3..=6) => Likeness::NearIdentical,
            _ => Likeness::Edited,
        }
    }

    /// The likeness in a few words.
    pub fn words(self) -> &'static str {
        match self {
            Likeness::IdenticalFile => "the very same file",
            Likeness::LooksIdentical => "looks identical",
            Likeness::NearIdentical => "nearly identical",
            Likeness::Edited => "an edited copy",
        }
    }
}

/// One picture of a duplicate group.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct GroupMember {
    /// Path relative to the workspace root.
    pub path: String,
    pub width: u32,
    pub height: u32,
    /// Real format (`png`, `jpeg`, `webp`, ...).
    pub format: String,
    pub file_size: u64,
    /// Bits (of 64) that differ from the suggested keeper: 0 looks the same,
    /// up to the threshold still counts as a copy.
    pub distance: u32,
    /// How alike it is to the keeper, in words.
    pub likeness: Likeness,
    /// It matches the keeper's mirror image (flipped left–right).
    pub mirrored: bool,
    /// It matches best as a crop of the keeper (or the keeper of it).
    pub cropped: bool,
    /// This is the suggested keeper of the group.
    pub keep: bool,
    /// Its caption file (moves along if the picture is set aside).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub caption: Option<String>,
}

/// Pictures that are copies of each other.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct DuplicateGroup {
    /// 1-based number of the group in this report.
    pub id: usize,
    /// The suggested keeper's path.
    pub keeper: String,
    /// Why that one: largest resolution, then the better format.
    pub keeper_reason: String,
    /// Keeper first, then by distance.
    pub members: Vec<GroupMember>,
    /// Largest distance of a member from the keeper.
    pub max_distance: u32,
    /// A small JPEG with every member side by side (keeper first, green
    /// frame), relative to the workspace root, when one was made.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub contact_sheet: Option<String>,
}

/// Everything the duplicate search found.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct DuplicateReport {
    /// The folder searched, relative to the workspace root.
    pub folder: String,
    /// Hash distance (bits of 64) within which pairs were compared closely
    /// (at most 10 for very large sets).
    pub threshold: u32,
    /// Pictures compared.
    pub pictures: usize,
    /// Pictures decoded in this run (the others came from the hash cache).
    pub hashed_now: usize,
    /// Pictures whose hash came from the cache.
    pub from_cache: usize,
    /// Groups of copies, largest first (only the largest, when the result
    /// is bounded: see `groups_not_shown`).
    pub groups: Vec<DuplicateGroup>,
    /// Groups found but not listed in `groups`.
    pub groups_not_shown: usize,
    /// Pictures that are in some group (listed or not).
    pub pictures_in_groups: usize,
    /// The pictures of the listed groups that are not keepers: pass them to
    /// `quarantine_files` to set them aside (captions move along), after the
    /// user agrees.
    pub suggested_quarantine: Vec<String>,
    /// Copies in the groups not listed (not in `suggested_quarantine`).
    pub suggested_not_shown: usize,
    /// Byte-identical extra copies among them.
    pub identical_files: usize,
    /// Pairs whose hashes were within the threshold but that did not match
    /// once aligned: similar pictures (same background or layout), not copies.
    pub similar_not_copies: usize,
    /// Pictures that could not be decoded (see the audit for details).
    pub unreadable: Vec<UnreadablePicture>,
    /// How pairs were searched (chosen by number of pictures).
    pub search_method: SearchMethod,
    /// A note about the hash cache, when it could not be saved.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache_note: Option<String>,
}

/// Formats ranked for keeping: lossless first.
fn format_rank(format: &str) -> u8 {
    match format {
        "png" | "tiff" | "bmp" => 3,
        "webp" => 2,
        "jpeg" => 1,
        _ => 0,
    }
}

fn format_label(format: &str) -> String {
    match format {
        "png" | "tiff" | "bmp" => format!("{} (lossless)", format.to_uppercase()),
        other => other.to_uppercase(),
    }
}

/// Index of the picture to keep: most pixels, then the better format, then
/// the one closest to all the others (the original an edit was made from is
/// one edit from each copy; two copies are two edits apart), then a
/// captioned one, then the larger file (less compressed), then by name.
fn choose_keeper(members: &[&HashedPicture]) -> (usize, String) {
    let spread = |p: &HashedPicture| -> u32 {
        members
            .iter()
            .map(|o| p.hashed.hash.distance(&o.hashed.hash))
            .sum()
    };
    let key = |p: &HashedPicture| {
        (
            u64::from(p.hashed.width) * u64::from(p.hashed.height),
            format_rank(&p.hashed.format),
            std::cmp::Reverse(spread(p)),
            p.caption.is_some(),
            p.file_size,
        )
    };
    let mut best = 0;
    for (i, p) in members.iter().enumerate().skip(1) {
        if key(p) > key(members[best]) {
            best = i;
        }
    }
    let keeper = members[best];
    let others: Vec<&&HashedPicture> = members
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != best)
        .map(|(_, p)| p)
        .collect();
    let pixels = |p: &HashedPicture| u64::from(p.hashed.width) * u64::from(p.hashed.height);
    let reason = if others.iter().all(|p| p.content == keeper.content) {
        "identical files: the first by name".to_string()
    } else if others.iter().all(|p| pixels(p) < pixels(keeper)) {
        format!(
            "largest picture ({}×{})",
            keeper.hashed.width, keeper.hashed.height
        )
    } else if others.iter().all(|p| {
        format_rank(&p.hashed.format) < format_rank(&keeper.hashed.format)
            || pixels(p) < pixels(keeper)
    }) {
        format!(
            "largest picture ({}×{}), and {} keeps more detail than the others' format",
            keeper.hashed.width,
            keeper.hashed.height,
            format_label(&keeper.hashed.format)
        )
    } else {
        format!(
            "largest picture ({}×{}), and the closest to all the others: likely the original",
            keeper.hashed.width, keeper.hashed.height
        )
    };
    (best, reason)
}

/// Joins pairs into groups (connected pairs); returns the groups of two or
/// more, each sorted.
pub fn connected_groups(n: usize, pairs: impl Iterator<Item = (usize, usize)>) -> Vec<Vec<usize>> {
    let mut parent: Vec<usize> = (0..n).collect();
    fn find(parent: &mut [usize], mut x: usize) -> usize {
        while parent[x] != x {
            parent[x] = parent[parent[x]];
            x = parent[x];
        }
        x
    }
    for (a, b) in pairs {
        let (ra, rb) = (find(&mut parent, a), find(&mut parent, b));
        if ra != rb {
            parent[ra.max(rb)] = ra.min(rb);
        }
    }
    let mut groups: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for i in 0..n {
        let r = find(&mut parent, i);
        groups.entry(r).or_default().push(i);
    }
    groups.into_values().filter(|g| g.len() > 1).collect()
}

/// Pairs from the whole-picture views at most this far apart get the
/// closer look ([`crop_check::closer_look`]) when the first look did not
/// confirm them: rotated and overlaid copies of the labelled set are within
/// 12 bits, while most unrelated candidates are 13–16 bits apart.
pub const CLOSER_LOOK_DISTANCE: u32 = 12;
/// Largest distance between a picture and a window of another for the pair
/// to be a candidate larger crop (see [`phash::window_hashes`]).
pub const WINDOW_THRESHOLD: u32 = 12;

/// The first look at a candidate pair: a copy when sure by hash, or when
/// its thumbnails match once one is aligned as a crop of the other; `None`
/// when only the closer look can tell (window pairs, and close pairs the
/// crop check did not confirm).
fn first_look(a: &HashedPicture, b: &HashedPicture, pair: &HashPair) -> Option<bool> {
    if u32::from(pair.distance) <= SURE_DISTANCE || a.content == b.content {
        return Some(true);
    }
    let first = crop_check::crop_similarity_until(
        &a.hashed.small,
        &b.hashed.small,
        orientation_of(pair),
        MIN_ALIGNED_SIMILARITY,
    );
    if first.is_some_and(|s| s >= MIN_ALIGNED_SIMILARITY) {
        return Some(true);
    }
    if pair.views != hamming::WINDOW_VIEWS && u32::from(pair.distance) > CLOSER_LOOK_DISTANCE {
        return Some(false);
    }
    None
}

/// Which way round to look: only the way the hashes matched best.
fn orientation_of(pair: &HashPair) -> crop_check::Orientation {
    if pair.mirrored() {
        crop_check::Orientation::Mirrored
    } else {
        crop_check::Orientation::AsIs
    }
}

/// The closer look: a copy once aligned as a larger crop or a small turn,
/// or matching everywhere but one small patch near the edge (a logo or
/// text laid over it).
fn closer_look(a: &HashedPicture, b: &HashedPicture, pair: &HashPair) -> bool {
    crop_check::closer_look(
        &a.hashed.small,
        &b.hashed.small,
        orientation_of(pair),
        MIN_ALIGNED_SIMILARITY,
    )
    .is_some_and(|e| e.aligned >= MIN_ALIGNED_SIMILARITY || e.is_overlaid_copy())
}

/// Pairs of copies among pictures already hashed: candidates within
/// `threshold` bits, each confirmed (verdicts `cache` remembers are reused,
/// new ones are added to it). Returns the confirmed pairs, how many
/// candidates were not confirmed, and how the candidates were searched.
pub fn duplicate_pairs(
    pictures: &[HashedPicture],
    threshold: u32,
    cache: &mut HashCache,
) -> (Vec<HashPair>, usize, SearchMethod) {
    let hashes: Vec<PictureHash> = pictures.iter().map(|p| p.hashed.hash).collect();
    let views = Views::from_hashes(&hashes);
    let (mut candidates, method) =
        hamming::pairs_within(&views, effective_threshold(pictures.len(), threshold));
    // Larger crops: one picture whole near a window of the other.
    if pictures.len() <= hamming::WINDOWS_UP_TO
        && threshold >= WINDOW_THRESHOLD
        && pictures
            .iter()
            .all(|p| p.hashed.windows.len() == phash::WINDOWS)
    {
        let windows: Vec<u64> = pictures
            .iter()
            .flat_map(|p| p.hashed.windows.iter().copied())
            .collect();
        let known: HashSet<(u32, u32)> = candidates.iter().map(|p| (p.a, p.b)).collect();
        candidates.extend(
            hamming::window_pairs(&views.full, &windows, WINDOW_THRESHOLD)
                .into_iter()
                .filter(|p| !known.contains(&(p.a, p.b))),
        );
    }
    // First look, in parallel: remembered verdicts, pairs sure by hash, and
    // the crop check; `None` where only the closer look can tell.
    let first: Vec<Option<(bool, bool)>> = candidates
        .par_iter()
        .map(|p| {
            let (a, b) = (&pictures[p.a as usize], &pictures[p.b as usize]);
            if let Some(v) = cache.verdict(&a.content, &b.content) {
                return Some((v, false));
            }
            first_look(a, b, p).map(|v| (v, true))
        })
        .collect();
    let mut joined = UnionFind::new(pictures.len());
    let mut verdicts: Vec<Option<(bool, bool)>> = first;
    for (p, v) in candidates.iter().zip(&verdicts) {
        if let Some((true, _)) = v {
            joined.join(p.a as usize, p.b as usize);
        }
    }
    // The closer look costs a hundred first looks: it is spent only on
    // pairs not already in one group through confirmed pairs (grouping
    // cannot change), closest first, a batch at a time, and one pair per
    // two groups in a batch (a heavily cropped copy is a window pair of
    // every other copy of its picture: one confirmed look joins them all).
    let mut pending: Vec<usize> = (0..candidates.len())
        .filter(|&i| verdicts[i].is_none())
        .collect();
    pending.sort_by_key(|&i| (candidates[i].distance, i));
    while !pending.is_empty() {
        let mut todo = Vec::new();
        let mut later = Vec::new();
        let mut between = HashSet::new();
        for &i in &pending {
            let (ra, rb) = (
                joined.root(candidates[i].a as usize),
                joined.root(candidates[i].b as usize),
            );
            if ra == rb {
                continue;
            }
            if todo.len() < CLOSER_LOOK_BATCH && between.insert((ra.min(rb), ra.max(rb))) {
                todo.push(i);
            } else {
                later.push(i);
            }
        }
        let looked: Vec<bool> = todo
            .par_iter()
            .map(|&i| {
                let p = &candidates[i];
                closer_look(&pictures[p.a as usize], &pictures[p.b as usize], p)
            })
            .collect();
        for (&i, ok) in todo.iter().zip(looked) {
            verdicts[i] = Some((ok, true));
            if ok {
                joined.join(candidates[i].a as usize, candidates[i].b as usize);
            }
        }
        pending = later;
    }
    let mut pairs = Vec::new();
    let mut rejected = 0;
    for (p, v) in candidates.into_iter().zip(verdicts) {
        let Some((ok, new)) = v else {
            // Joined through other copies before its closer look was needed.
            continue;
        };
        if new && u32::from(p.distance) > SURE_DISTANCE {
            cache.remember_verdict(
                &pictures[p.a as usize].content,
                &pictures[p.b as usize].content,
                ok,
            );
        }
        if ok {
            pairs.push(p);
        } else {
            rejected += 1;
        }
    }
    (pairs, rejected, method)
}

/// Candidates given the closer look together, between two updates of the
/// groups.
const CLOSER_LOOK_BATCH: usize = 64;

/// Pictures joined by confirmed pairs so far.
struct UnionFind(Vec<usize>);

impl UnionFind {
    fn new(n: usize) -> UnionFind {
        UnionFind((0..n).collect())
    }

    fn root(&mut self, mut x: usize) -> usize {
        while self.0[x] != x {
            self.0[x] = self.0[self.0[x]];
            x = self.0[x];
        }
        x
    }

    fn join(&mut self, a: usize, b: usize) {
        let (ra, rb) = (self.root(a), self.root(b));
        if ra != rb {
            self.0[ra.max(rb)] = ra.min(rb);
        }
    }
}

/// Finds the near-duplicate groups among pictures already hashed: pairs
/// within `threshold`, confirmed, joined into groups. Also returns how many
/// candidate pairs were not confirmed.
pub fn group_duplicates(
    pictures: &[HashedPicture],
    threshold: u32,
    cache: &mut HashCache,
) -> (Vec<DuplicateGroup>, usize, SearchMethod) {
    let (pairs, similar_not_copies, method) = duplicate_pairs(pictures, threshold, cache);
    let components = connected_groups(
        pictures.len(),
        pairs.iter().map(|p| (p.a as usize, p.b as usize)),
    );
    let mut groups: Vec<DuplicateGroup> = components
        .into_iter()
        .map(|indexes| {
            let members: Vec<&HashedPicture> = indexes.iter().map(|&i| &pictures[i]).collect();
            let (k, keeper_reason) = choose_keeper(&members);
            let keeper = members[k];
            let mut out: Vec<GroupMember> = members
                .iter()
                .enumerate()
                .map(|(i, p)| {
                    let (distance, mirrored, cropped) = if i == k {
                        (0, false, false)
                    } else {
                        let c = keeper.hashed.hash.compare(&p.hashed.hash);
                        (c.distance, c.mirrored, c.cropped)
                    };
                    let identical = i != k && p.content == keeper.content;
                    GroupMember {
                        path: p.shown.clone(),
                        width: p.hashed.width,
                        height: p.hashed.height,
                        format: p.hashed.format.clone(),
                        file_size: p.file_size,
                        distance,
                        likeness: if i == k {
                            Likeness::LooksIdentical
                        } else {
                            Likeness::of(distance, identical)
                        },
                        mirrored,
                        cropped,
                        keep: i == k,
                        caption: p.caption.clone(),
                    }
                })
                .collect();
            out.sort_by(|a, b| {
                b.keep
                    .cmp(&a.keep)
                    .then(a.distance.cmp(&b.distance))
                    .then(a.path.cmp(&b.path))
            });
            DuplicateGroup {
                id: 0,
                keeper: keeper.shown.clone(),
                keeper_reason,
                max_distance: out.iter().map(|m| m.distance).max().unwrap_or(0),
                members: out,
                contact_sheet: None,
            }
        })
        .collect();
    groups.sort_by(|a, b| {
        b.members
            .len()
            .cmp(&a.members.len())
            .then(a.keeper.cmp(&b.keeper))
    });
    for (i, g) in groups.iter_mut().enumerate() {
        g.id = i + 1;
    }
    (groups, similar_not_copies, method)
}

/// Finds groups of near-duplicate pictures under `dir`: every group, no
/// contact sheets (what Gate 1 uses).
pub fn find_duplicates(
    dir: &Path,
    workspace: &Workspace,
    options: &DuplicateOptions,
    progress: &dyn Progress,
) -> Result<DuplicateReport, DedupError> {
    search(dir, workspace, options, 0, progress).map(|(report, _)| report)
}

/// How much of a duplicate search a result shows.
#[derive(Debug, Clone)]
pub struct ShowOptions {
    /// Groups listed (the largest first); `None` lists every group.
    pub max_groups: Option<usize>,
    /// Write a contact sheet per listed group.
    pub contact_sheets: bool,
    /// Sheets whose JPEG bytes come back as previews.
    pub max_previews: usize,
}

impl ShowOptions {
    /// What `find_duplicates` shows: the 10 largest groups, each with its
    /// contact sheet, and the first 4 sheets as previews.
    pub fn tool_default() -> ShowOptions {
        ShowOptions {
            max_groups: Some(10),
            contact_sheets: true,
            max_previews: 4,
        }
    }
}

/// A duplicate search as a result shows it.
#[derive(Debug)]
pub struct ShownDuplicates {
    pub report: DuplicateReport,
    /// JPEG bytes of the first groups' contact sheets.
    pub previews: Vec<Vec<u8>>,
    /// Sheets drawn in this search (the others were unchanged and reused).
    pub sheets_drawn: usize,
    /// Why contact sheets are missing, when they are.
    pub note: Option<String>,
}

/// Finds groups of near-duplicate pictures under `dir` as a person sees
/// them (`ategnatos duplicates`, `find_duplicates`): the largest groups,
/// each with its contact sheet (drawn from thumbnails kept while hashing,
/// reused while the group is unchanged), and previews of the first sheets.
pub fn find_duplicates_shown(
    dir: &Path,
    workspace: &Workspace,
    options: &DuplicateOptions,
    show: &ShowOptions,
    progress: &dyn Progress,
) -> Result<ShownDuplicates, DedupError> {
    let budget = if show.contact_sheets {
        COLOUR_BUDGET_BYTES
    } else {
        0
    };
    let (mut report, pictures) = search(dir, workspace, options, budget, progress)?;
    if let Some(max) = show.max_groups {
        report.limit_groups(max);
    }
    let mut shown = ShownDuplicates {
        report,
        previews: Vec::new(),
        sheets_drawn: 0,
        note: None,
    };
    if !show.contact_sheets {
        return Ok(shown);
    }
    let by_path: HashMap<&str, &HashedPicture> =
        pictures.iter().map(|p| (p.shown.as_str(), p)).collect();
    let groups: Vec<Vec<contact_sheet::SheetMember>> = shown
        .report
        .groups
        .iter()
        .map(|g| {
            g.members
                .iter()
                .filter_map(|m| by_path.get(m.path.as_str()))
                .map(|p| contact_sheet::SheetMember {
                    content: &p.content,
                    path: &p.path,
                    thumb: p.hashed.colour.as_ref(),
                })
                .collect()
        })
        .collect();
    let folder = contact_sheet::sheets_folder(workspace, &shown.report.folder);
    let sheets = contact_sheet::write_sheets(&groups, &folder, show.max_previews);
    for (group, sheet) in shown.report.groups.iter_mut().zip(&sheets.sheets) {
        group.contact_sheet = sheet.as_ref().map(|s| workspace.display_path(&s.path));
    }
    shown.previews = sheets.previews;
    shown.sheets_drawn = sheets.drawn;
    shown.note = sheets.note;
    Ok(shown)
}

/// The search itself: the report (every group) and the hashed pictures.
fn search(
    dir: &Path,
    workspace: &Workspace,
    options: &DuplicateOptions,
    colour_budget: usize,
    progress: &dyn Progress,
) -> Result<(DuplicateReport, Vec<HashedPicture>), DedupError> {
    if options.threshold > MAX_THRESHOLD {
        return Err(DedupError::BadThreshold {
            threshold: options.threshold,
            max: MAX_THRESHOLD,
            default: DEFAULT_THRESHOLD,
        });
    }
    let mut cache = open_cache(workspace, options.use_cache);
    let folder = hash_folder_keeping(
        dir,
        workspace,
        &options.caption_extension,
        &mut cache,
        options.jpeg,
        colour_budget,
        progress,
    )?;
    let n = folder.pictures.len() as u64;
    progress.report(n, Some(n), &format!("comparing {n} pictures"));
    let (groups, similar_not_copies, search_method) =
        group_duplicates(&folder.pictures, options.threshold, &mut cache);
    let cache_note = save_cache(&mut cache);
    // A link cannot be set aside (quarantine_files refuses it: it holds no
    // picture of its own), so it is not suggested; the group still shows it.
    let is_link = |shown: &str| {
        workspace
            .resolve(shown)
            .ok()
            .and_then(|p| std::fs::symlink_metadata(p).ok())
            .is_some_and(|m| m.is_symlink())
    };
    let suggested_quarantine: Vec<String> = groups
        .iter()
        .flat_map(|g| g.members.iter().filter(|m| !m.keep).map(|m| m.path.clone()))
        .filter(|p| !is_link(p))
        .collect();
    let identical_files = groups
        .iter()
        .flat_map(|g| g.members.iter())
        .filter(|m| m.likeness == Likeness::IdenticalFile)
        .count();
    let report = DuplicateReport {
        folder: workspace.display_path(dir),
        threshold: effective_threshold(folder.pictures.len(), options.threshold),
        pictures: folder.pictures.len(),
        hashed_now: folder.hashed_now,
        from_cache: folder.from_cache,
        pictures_in_groups: groups.iter().map(|g| g.members.len()).sum(),
        groups,
        groups_not_shown: 0,
        suggested_quarantine,
        suggested_not_shown: 0,
        identical_files,
        similar_not_copies,
        unreadable: folder.unreadable,
        search_method,
        cache_note,
    };
    Ok((report, folder.pictures))
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

impl DuplicateReport {
    /// Lists only the `max` largest groups (counting the others), and
    /// suggests setting aside only the copies of those: the person sees
    /// what they agree to.
    pub fn limit_groups(&mut self, max: usize) {
        if self.groups.len() <= max {
            return;
        }
        let hidden = self.groups.split_off(max);
        let hidden_paths: HashSet<&str> = hidden
            .iter()
            .flat_map(|g| g.members.iter().map(|m| m.path.as_str()))
            .collect();
        let before = self.suggested_quarantine.len();
        self.suggested_quarantine
            .retain(|p| !hidden_paths.contains(p.as_str()));
        self.suggested_not_shown += before - self.suggested_quarantine.len();
        self.groups_not_shown += hidden.len();
    }

    /// The short plain-language paragraph shown to the person.
    pub fn plain_summary(&self) -> String {
        let mut out = format!(
            "Compared {} in `{}`",
            plural(self.pictures, "picture", "pictures"),
            self.folder
        );
        let all_groups = self.groups.len() + self.groups_not_shown;
        if all_groups == 0 {
            out.push_str(": no duplicates found.");
        } else {
            let extra = self.suggested_quarantine.len() + self.suggested_not_shown;
            out.push_str(&format!(
                ": {} of copies ({} in all). Keeping the best of each and setting the other {} aside would leave {} pictures; a LoRA trained with the copies learns those pictures by heart instead of the style.",
                plural(all_groups, "group", "groups"),
                plural(self.pictures_in_groups, "picture", "pictures"),
                extra,
                self.pictures - extra
            ));
            if self.identical_files > 0 {
                out.push_str(&format!(
                    " {} the very same file twice.",
                    if self.identical_files == 1 {
                        "1 of them is".to_string()
                    } else {
                        format!("{} of them are", self.identical_files)
                    }
                ));
            }
            if let Some(g) = self.groups.first() {
                let kinds: Vec<&str> = {
                    let mut k: Vec<Likeness> =
                        g.members.iter().skip(1).map(|m| m.likeness).collect();
                    k.sort();
                    k.dedup();
                    k.into_iter().map(Likeness::words).collect()
                };
                out.push_str(&format!(
                    " Largest group: {} pictures around `{}` ({}{}).",
                    g.members.len(),
                    g.keeper,
                    kinds.join(", "),
                    if g.members.iter().any(|m| m.mirrored) {
                        ", including a mirrored copy"
                    } else {
                        ""
                    }
                ));
            }
            if self.groups_not_shown > 0 {
                out.push_str(&format!(
                    " Listed here: the {} largest groups ({} suggested); {} with {} are not listed — set the listed copies aside, then search again to see them.",
                    self.groups.len(),
                    plural(self.suggested_quarantine.len(), "copy", "copies"),
                    plural(self.groups_not_shown, "more group", "more groups"),
                    plural(self.suggested_not_shown, "copy", "copies"),
                ));
            }
            out.push_str(" Look at the groups, then set aside the ones you agree with (quarantine_files; restore_quarantine undoes it).");
        }
        out.push_str(&format!(
            " Threshold: {} of 64 bits (lower finds only closer copies, higher also heavier edits).",
            self.threshold
        ));
        if self.search_method == SearchMethod::BruteForceWholeAndMirror {
            out.push_str(" With this many pictures only whole and mirrored copies were looked for, not cropped ones.");
        }
        if self.similar_not_copies > 0 {
            out.push_str(&format!(
                " {} looked alike at first but are different pictures once aligned (not counted; curate_dataset shows pictures that are too alike).",
                plural(self.similar_not_copies, "pair", "pairs")
            ));
        }
        if !self.unreadable.is_empty() {
            out.push_str(&format!(
                " {} could not be read and {} left out; the audit says why.",
                plural(self.unreadable.len(), "picture", "pictures"),
                if self.unreadable.len() == 1 {
                    "was"
                } else {
                    "were"
                }
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use image::DynamicImage;

    use super::*;
    use crate::dataset::dedup_bench::{SetSpec, VariantKind, img_dir, write_labelled_set};
    use crate::studio::NoProgress;

    fn studio() -> (tempfile::TempDir, Workspace) {
        let dir = tempfile::tempdir().unwrap();
        let ws = Workspace::open(dir.path()).unwrap();
        (dir, ws)
    }

    fn name(path: &str) -> String {
        path.rsplit('/').next().unwrap().to_string()
    }

    #[test]
    fn finds_every_kind_of_copy_and_nothing_else() {
        let (_d, ws) = studio();
        let set = ws.root().join("set");
        let spec = SetSpec {
            base: 16,
            with_variants: 4,
            hard_negative_families: 0,
            size: 256,
            captions: true,
            seed: 5,
        };
        let truth = write_labelled_set(&set, &spec).unwrap();
        let report = find_duplicates(
            &img_dir(&set),
            &ws,
            &DuplicateOptions::default(),
            &NoProgress,
        )
        .unwrap();
        assert_eq!(report.pictures, 16 + 4 * VariantKind::PLAIN.len());
        assert!(report.unreadable.is_empty());
        let found: BTreeSet<BTreeSet<String>> = report
            .groups
            .iter()
            .map(|g| g.members.iter().map(|m| name(&m.path)).collect())
            .collect();
        let want: BTreeSet<BTreeSet<String>> = truth
            .groups
            .iter()
            .map(|g| g.iter().map(|m| m.file.clone()).collect())
            .collect();
        assert_eq!(found, want, "{}", report.plain_summary());
        for g in &report.groups {
            let keeper = &g.members[0];
            assert!(keeper.keep && keeper.path == g.keeper);
            assert!(
                g.members
                    .iter()
                    .all(|m| m.width * m.height <= keeper.width * keeper.height)
            );
            assert!(g.members.iter().all(|m| m.caption.is_some()));
            let mirror = g
                .members
                .iter()
                .find(|m| m.path.contains("_mirror"))
                .unwrap();
            assert!(mirror.mirrored || mirror.keep, "{mirror:?}");
        }
        assert_eq!(
            report.suggested_quarantine.len(),
            4 * VariantKind::PLAIN.len()
        );
        assert!(
            report.plain_summary().contains("4 groups"),
            "{}",
            report.plain_summary()
        );
    }

    #[test]
    fn finds_turned_heavily_cropped_and_overlaid_copies() {
        let (_d, ws) = studio();
        let set = ws.root().join("set");
        let spec = SetSpec {
            base: 12,
            with_variants: 4,
            hard_negative_families: 0,
            size: 384,
            captions: false,
            seed: 11,
        };
        let truth =
            crate::dataset::dedup_bench::write_labelled_set_with(&set, &spec, &VariantKind::ALL)
                .unwrap();
        let report = find_duplicates(
            &img_dir(&set),
            &ws,
            &DuplicateOptions::default(),
            &NoProgress,
        )
        .unwrap();
        // Every group is made of one picture and its copies: nothing else.
        let group_of: std::collections::HashMap<String, usize> = truth
            .groups
            .iter()
            .enumerate()
            .flat_map(|(i, g)| g.iter().map(move |m| (m.file.clone(), i)))
            .collect();
        for g in &report.groups {
            let owners: BTreeSet<Option<usize>> = g
                .members
                .iter()
                .map(|m| group_of.get(&name(&m.path)).copied())
                .collect();
            assert_eq!(owners.len(), 1, "{g:?}");
            assert!(!owners.contains(&None), "{g:?}");
        }
        let found: BTreeSet<String> = report
            .groups
            .iter()
            .flat_map(|g| g.members.iter().map(|m| name(&m.path)))
            .collect();
        for kind in VariantKind::ALL {
            let copies: Vec<&str> = truth
                .groups
                .iter()
                .flat_map(|g| g.iter())
                .filter(|m| m.transform == kind.name())
                .map(|m| m.file.as_str())
                .collect();
            let hits = copies.iter().filter(|c| found.contains(**c)).count();
            assert!(
                hits >= copies.len() - 1,
                "{}: {hits} of {} found",
                kind.name(),
                copies.len()
            );
        }
        let cropped: usize = truth
            .groups
            .iter()
            .flat_map(|g| g.iter())
            .filter(|m| m.transform == "crop25" && found.contains(&m.file))
            .count();
        assert_eq!(cropped, 4, "every 15–30 % crop is found");
    }

    #[test]
    fn identical_files_and_the_cache() {
        let (_d, ws) = studio();
        let dir = ws.root().join("pics");
        std::fs::create_dir_all(&dir).unwrap();
        for seed in 0..6u64 {
            let img = DynamicImage::ImageRgb8(crate::dataset::dedup_bench::base_picture(seed, 128));
            let bytes =
                crate::dataset::dedup_bench::encode(&img, image::ImageFormat::Png, 95).unwrap();
            std::fs::write(dir.join(format!("p{seed}.png")), &bytes).unwrap();
        }
        std::fs::copy(dir.join("p2.png"), dir.join("p2 copy.png")).unwrap();
        let options = DuplicateOptions::default();
        let first = find_duplicates(&dir, &ws, &options, &NoProgress).unwrap();
        assert_eq!((first.hashed_now, first.from_cache), (7, 0));
        assert_eq!(first.groups.len(), 1);
        assert_eq!(first.identical_files, 1);
        let copy = &first.groups[0].members[1];
        assert_eq!((copy.likeness, copy.distance), (Likeness::IdenticalFile, 0));
        assert_eq!(
            first.groups[0].keeper, "pics/p2 copy.png",
            "same file: first by name"
        );

        let second = find_duplicates(&dir, &ws, &options, &NoProgress).unwrap();
        assert_eq!((second.hashed_now, second.from_cache), (0, 7));
        assert_eq!(second.groups[0].members.len(), 2);

        // A touched file is read again but not decoded: its bytes are known.
        let bytes = std::fs::read(dir.join("p4.png")).unwrap();
        std::fs::remove_file(dir.join("p4.png")).unwrap();
        std::fs::write(dir.join("p4-renamed.png"), bytes).unwrap();
        let third = find_duplicates(&dir, &ws, &options, &NoProgress).unwrap();
        assert_eq!((third.hashed_now, third.from_cache), (0, 7));

        // A link to a picture is grouped with it, but not suggested for
        // quarantine, which refuses links.
        std::os::unix::fs::symlink("p5.png", dir.join("p5z.png")).unwrap();
        let fourth = find_duplicates(&dir, &ws, &options, &NoProgress).unwrap();
        assert_eq!(fourth.groups.len(), 2);
        assert!(
            fourth
                .groups
                .iter()
                .any(|g| g.members.iter().any(|m| m.path == "pics/p5z.png"))
        );
        assert_eq!(fourth.suggested_quarantine, vec!["pics/p2.png".to_string()]);
    }

    #[test]
    fn refuses_a_bad_threshold_and_a_file() {
        let (_d, ws) = studio();
        let options = DuplicateOptions {
            threshold: 40,
            ..DuplicateOptions::default()
        };
        let err = find_duplicates(ws.root(), &ws, &options, &NoProgress).unwrap_err();
        assert!(err.hint().unwrap().contains("default"));
        std::fs::write(ws.root().join("x.png"), b"x").unwrap();
        let err = find_duplicates(
            &ws.root().join("x.png"),
            &ws,
            &DuplicateOptions::default(),
            &NoProgress,
        )
        .unwrap_err();
        assert!(matches!(err, DedupError::NotAFolder { .. }));
    }

    /// Writes `n` distinct pictures, each with a half-size copy: `n` groups.
    fn groups_of_two(dir: &Path, n: u64) {
        std::fs::create_dir_all(dir).unwrap();
        for seed in 0..n {
            let img =
                DynamicImage::ImageRgb8(crate::dataset::dedup_bench::base_picture(seed + 40, 160));
            let write = |name: String, img: &DynamicImage, format| {
                let bytes = crate::dataset::dedup_bench::encode(img, format, 92).unwrap();
                std::fs::write(dir.join(name), bytes).unwrap();
            };
            write(format!("p{seed}.png"), &img, image::ImageFormat::Png);
            write(
                format!("p{seed}-small.jpg"),
                &img.thumbnail(80, 80),
                image::ImageFormat::Jpeg,
            );
        }
    }

    fn sheet_files(ws: &Workspace) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        let mut stack = vec![ws.work_dir().join("duplicates")];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
                if e.path().is_dir() {
                    stack.push(e.path());
                } else {
                    out.insert(ws.display_path(&e.path()));
                }
            }
        }
        out
    }

    #[test]
    fn sheets_only_for_listed_groups_and_reused_while_unchanged() {
        let (_d, ws) = studio();
        let dir = ws.root().join("pics");
        groups_of_two(&dir, 5);
        let options = DuplicateOptions::default();
        let show = ShowOptions {
            max_groups: Some(3),
            contact_sheets: true,
            max_previews: 2,
        };
        let first = find_duplicates_shown(&dir, &ws, &options, &show, &NoProgress).unwrap();
        let r = &first.report;
        assert_eq!((r.groups.len(), r.groups_not_shown), (3, 2));
        assert_eq!(
            (r.suggested_quarantine.len(), r.suggested_not_shown),
            (3, 2)
        );
        assert_eq!(r.pictures_in_groups, 10);
        let summary = r.plain_summary();
        assert!(summary.contains("5 groups of copies"), "{summary}");
        assert!(summary.contains("2 more groups with 2 copies"), "{summary}");
        assert!(summary.contains("leave 5 pictures"), "{summary}");
        assert_eq!(first.sheets_drawn, 3);
        assert_eq!(first.previews.len(), 2);
        let sheets: BTreeSet<String> = r
            .groups
            .iter()
            .map(|g| g.contact_sheet.clone().unwrap())
            .collect();
        assert_eq!(sheet_files(&ws), sheets, "one sheet per listed group");
        for s in &sheets {
            let img = image::open(ws.root().join(s)).unwrap();
            assert_eq!(img.height(), contact_sheet::TILE + 6, "{s}");
        }

        // The same folder again: every sheet is reused, nothing is written.
        let stamps = |files: &BTreeSet<String>| -> Vec<std::time::SystemTime> {
            files
                .iter()
                .map(|f| {
                    std::fs::metadata(ws.root().join(f))
                        .unwrap()
                        .modified()
                        .unwrap()
                })
                .collect()
        };
        let before = stamps(&sheets);
        let second = find_duplicates_shown(&dir, &ws, &options, &show, &NoProgress).unwrap();
        assert_eq!(second.report.from_cache, 10);
        assert_eq!(second.sheets_drawn, 0);
        assert_eq!(second.previews, first.previews);
        assert_eq!(sheet_files(&ws), sheets);
        assert_eq!(stamps(&sheets), before, "no sheet rewritten");

        // A group that changes gets a new sheet (its members decoded again,
        // their hashes coming from the cache) and the old one goes.
        let keeper = &second.report.groups[0].keeper;
        let stem = keeper.trim_end_matches(".png");
        let img = image::open(ws.root().join(keeper)).unwrap();
        std::fs::write(
            ws.root().join(format!("{stem}-flip.png")),
            crate::dataset::dedup_bench::encode(&img.fliph(), image::ImageFormat::Png, 95).unwrap(),
        )
        .unwrap();
        let third = find_duplicates_shown(&dir, &ws, &options, &show, &NoProgress).unwrap();
        assert_eq!(third.report.groups[0].members.len(), 3);
        assert_eq!(third.sheets_drawn, 1);
        let now = sheet_files(&ws);
        assert_eq!(now.len(), 3, "{now:?}");
        assert_eq!(now.difference(&sheets).count(), 1);
        let grown = image::open(
            ws.root()
                .join(third.report.groups[0].contact_sheet.as_ref().unwrap()),
        )
        .unwrap();
        assert_eq!(grown.width(), 3 * (contact_sheet::TILE + 6));

        // Every group listed: sheets for all of them, in the same folder.
        let all = ShowOptions {
            max_groups: None,
            ..show
        };
        let fourth = find_duplicates_shown(&dir, &ws, &options, &all, &NoProgress).unwrap();
        assert_eq!(
            (fourth.report.groups.len(), fourth.report.groups_not_shown),
            (5, 0)
        );
        assert_eq!(fourth.sheets_drawn, 2);
        assert_eq!(sheet_files(&ws).len(), 5);
    }

    #[test]
    fn groups_are_connected_pairs() {
        let groups = connected_groups(6, [(0, 1), (1, 2), (4, 5)].into_iter());
        assert_eq!(groups, vec![vec![0, 1, 2], vec![4, 5]]);
    }
}
