//! Finding every pair of 64-bit hashes within a Hamming distance, fast, at
//! any count: a flat, tiled, parallel brute force over XOR + popcount.
//!
//! Each picture has four hashes (whole, mirrored, centre, centre mirrored;
//! see [`super::phash`]). A pair `(i, j)`, `i < j`, is at the smallest
//! distance over [`super::phash::VIEW_PAIRS`]: `i` whole against every view
//! of `j`, and `i`'s centre against `j` whole and mirrored.
//!
//! Why a brute force, chosen by measurement (`ategnatos bench duplicates`
//! prints it on the machine it runs on): it compares every pair over
//! contiguous arrays, 8 pairs per instruction with AVX-512 `vpopcntq`
//! (AVX2 or plain code elsewhere, chosen at run time), in tiles that stay in
//! cache. On 2 shared cores it took 1.8 CPU-s for 100,000 pictures (all six
//! view pairs) and 200 CPU-s for 1,000,000. Trees and indexes pay a random
//! memory access per candidate instead: the research measured a BK-tree
//! crate at 30 s for 50,000 hashes where a brute force took 0.73 s, and the
//! multi-index hashing here (Norouzi et al., 2012: split the hash into `m`
//! parts; two hashes within `t` bits agree within `⌊t/m⌋` bits on some part)
//! took 32 CPU-s for 100,000 pictures: with four hashes per picture and
//! 10–16-bit radii its candidate lists are long. It stays, tested against
//! the brute force, as the measured alternative. For very large sets the
//! brute force compares whole pictures and mirror images only
//! ([`WHOLE_VIEWS_FROM`]).

use std::ops::Range;

use rayon::prelude::*;

use super::phash::{PictureHash, VIEW_PAIRS, View};

/// The four hashes of every picture, one array per view, so that the
/// comparisons run over contiguous memory.
#[derive(Debug, Clone, Default)]
pub struct Views {
    pub full: Vec<u64>,
    pub mirrored: Vec<u64>,
    pub centre: Vec<u64>,
    pub centre_mirrored: Vec<u64>,
}

impl Views {
    pub fn from_hashes(hashes: &[PictureHash]) -> Views {
        Views {
            full: hashes.iter().map(|h| h.hash).collect(),
            mirrored: hashes.iter().map(|h| h.mirrored).collect(),
            centre: hashes.iter().map(|h| h.centre).collect(),
            centre_mirrored: hashes.iter().map(|h| h.centre_mirrored).collect(),
        }
    }

    pub fn len(&self) -> usize {
        self.full
            .len()
            .min(self.mirrored.len())
            .min(self.centre.len())
            .min(self.centre_mirrored.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn get(&self, view: View, i: usize) -> u64 {
        match view {
            View::Full => self.full[i],
            View::Mirrored => self.mirrored[i],
            View::Centre => self.centre[i],
            View::CentreMirrored => self.centre_mirrored[i],
        }
    }
}

/// One pair of pictures within the distance asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct HashPair {
    /// Index of the first picture (`a < b`).
    pub a: u32,
    /// Index of the second picture.
    pub b: u32,
    /// Bits that differ in the best-matching views.
    pub distance: u8,
    /// Index into [`VIEW_PAIRS`] of the best-matching views.
    pub views: u8,
}

impl HashPair {
    /// The best match was with `b` mirrored.
    pub fn mirrored(&self) -> bool {
        VIEW_PAIRS.get(usize::from(self.views)).is_some_and(|v| v.2)
    }

    /// The best match was between a centre (or a window, for larger
    /// crops) and a whole picture.
    pub fn cropped(&self) -> bool {
        self.views == WINDOW_VIEWS || VIEW_PAIRS.get(usize::from(self.views)).is_some_and(|v| v.3)
    }

    fn from_key(a: usize, b: usize, key: u32) -> HashPair {
        HashPair {
            a: a as u32,
            b: b as u32,
            distance: (key >> 3) as u8,
            views: (key & 7) as u8,
        }
    }
}

/// How the search was done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SearchMethod {
    /// Every pair, all six view pairs (copies, mirrored, cropped).
    BruteForce,
    /// Every pair, whole pictures and mirror images only (crops are not
    /// looked for): used for very large sets.
    BruteForceWholeAndMirror,
    /// Multi-index hashing (all six view pairs).
    MultiIndex,
}

/// Which view pairs the brute force compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ViewSet {
    /// All six of [`VIEW_PAIRS`].
    All,
    /// The first two: whole against whole, and against the mirror image.
    WholeAndMirror,
}

/// From this many pictures on, the search compares whole pictures and mirror
/// images only (no crops). Measured (`ategnatos bench duplicates`, 2 shared
/// cores, AVX-512): 1,000,000 pictures took 200 CPU-s over all six view
/// pairs and 109 CPU-s over the two whole ones (≈ 55 s on 2 free cores).
/// Hashing that many pictures takes hours anyway; below this size every
/// kind of copy is looked for.
pub const WHOLE_VIEWS_FROM: usize = 300_000;

/// Every pair within `max_distance` bits, sorted, with the method chosen by
/// size. Multi-index hashing is never chosen: it measured 17× slower than
/// the brute force at 100,000 pictures (see the module notes).
pub fn pairs_within(views: &Views, max_distance: u32) -> (Vec<HashPair>, SearchMethod) {
    if views.len() >= WHOLE_VIEWS_FROM {
        (
            brute_force_views(views, max_distance, ViewSet::WholeAndMirror),
            SearchMethod::BruteForceWholeAndMirror,
        )
    } else {
        (brute_force(views, max_distance), SearchMethod::BruteForce)
    }
}

/// `distance × 8 + view pair`: the minimum of these keys is the closest
/// match, ties going to the earlier (plainer) view pair.
#[inline(always)]
fn pair_key(a: u64, a_centre: u64, h: u64, m: u64, c: u64, cm: u64) -> u32 {
    let k0 = (a ^ h).count_ones() << 3;
    let k1 = ((a ^ m).count_ones() << 3) | 1;
    let k2 = ((a ^ c).count_ones() << 3) | 2;
    let k3 = ((a_centre ^ h).count_ones() << 3) | 3;
    let k4 = ((a ^ cm).count_ones() << 3) | 4;
    let k5 = ((a_centre ^ m).count_ones() << 3) | 5;
    k0.min(k1).min(k2).min(k3).min(k4).min(k5)
}

/// [`pair_key`] over the first two view pairs only.
#[inline(always)]
fn pair_key_whole(a: u64, h: u64, m: u64) -> u32 {
    let k0 = (a ^ h).count_ones() << 3;
    let k1 = ((a ^ m).count_ones() << 3) | 1;
    k0.min(k1)
}

/// The key of pair `(i, j)`, computed plainly.
fn key_of(views: &Views, i: usize, j: usize) -> u32 {
    pair_key(
        views.full[i],
        views.centre[i],
        views.full[j],
        views.mirrored[j],
        views.centre[j],
        views.centre_mirrored[j],
    )
}

/// Pictures compared per block in the brute force: a multiple of the vector
/// width, small enough to stay in registers.
const BLOCK: usize = 16;

#[inline(always)]
fn scan_row_generic<const ALL: bool>(
    i: usize,
    cols: Range<usize>,
    v: &Views,
    t: u32,
    out: &mut Vec<HashPair>,
) {
    let (a, ac) = (v.full[i], v.centre[i]);
    let start = cols.start.max(i + 1);
    let n = cols.end.min(v.len());
    if start >= n {
        return;
    }
    let (h, m, c, cm) = (
        &v.full[start..n],
        &v.mirrored[start..n],
        &v.centre[start..n],
        &v.centre_mirrored[start..n],
    );
    let limit = (t << 3) | 7;
    let full = h.len() / BLOCK * BLOCK;
    let mut j = 0;
    while j < full {
        let mut keys = [0u32; BLOCK];
        for k in 0..BLOCK {
            keys[k] = if ALL {
                pair_key(a, ac, h[j + k], m[j + k], c[j + k], cm[j + k])
            } else {
                pair_key_whole(a, h[j + k], m[j + k])
            };
        }
        // Hits are rare: test the whole block branch-free, then look closer.
        if keys.iter().fold(false, |any, &x| any | (x <= limit)) {
            for (k, &x) in keys.iter().enumerate() {
                if x <= limit {
                    out.push(HashPair::from_key(i, start + j + k, x));
                }
            }
        }
        j += BLOCK;
    }
    for k in full..h.len() {
        let x = if ALL {
            pair_key(a, ac, h[k], m[k], c[k], cm[k])
        } else {
            pair_key_whole(a, h[k], m[k])
        };
        if x <= limit {
            out.push(HashPair::from_key(i, start + k, x));
        }
    }
}

/// The brute-force row with AVX-512: 8 pictures per step, 6 (or 2) XOR +
/// popcount pairs each, all in 64-bit lanes.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512vpopcntdq")]
fn scan_row_avx512<const ALL: bool>(
    i: usize,
    cols: Range<usize>,
    v: &Views,
    t: u32,
    out: &mut Vec<HashPair>,
) {
    use std::arch::x86_64::*;
    const LANES: usize = 8;
    let n = cols.end.min(v.len());
    let start = cols.start.max(i + 1);
    let a = _mm512_set1_epi64(v.full[i] as i64);
    let ac = _mm512_set1_epi64(v.centre[i] as i64);
    let limit_scalar = (t << 3) | 7;
    let limit = _mm512_set1_epi64(i64::from(t));
    let d = |x: __m512i, y: __m512i| _mm512_popcnt_epi64(_mm512_xor_si512(x, y));
    let (full, mirrored, centre, centre_mirrored) = (
        &v.full[..n],
        &v.mirrored[..n],
        &v.centre[..n],
        &v.centre_mirrored[..n],
    );
    let key_of_lane = |x: usize| {
        if ALL {
            pair_key(
                v.full[i],
                v.centre[i],
                full[x],
                mirrored[x],
                centre[x],
                centre_mirrored[x],
            )
        } else {
            pair_key_whole(v.full[i], full[x], mirrored[x])
        }
    };
    let mut j = start;
    while j + LANES <= n {
        // SAFETY: `j + LANES <= n` and every slice has `n` elements, so the
        // 64-byte unaligned loads stay inside them.
        let (h, m) = unsafe {
            (
                _mm512_loadu_si512(full.as_ptr().add(j).cast()),
                _mm512_loadu_si512(mirrored.as_ptr().add(j).cast()),
            )
        };
        // Only the smallest distance here; which views gave it is worked
        // out again for the rare hits.
        let mut k = _mm512_min_epu64(d(a, h), d(a, m));
        if ALL {
            // SAFETY: as above.
            let (c, cm) = unsafe {
                (
                    _mm512_loadu_si512(centre.as_ptr().add(j).cast()),
                    _mm512_loadu_si512(centre_mirrored.as_ptr().add(j).cast()),
                )
            };
            k = _mm512_min_epu64(k, _mm512_min_epu64(d(a, c), d(ac, h)));
            k = _mm512_min_epu64(k, _mm512_min_epu64(d(a, cm), d(ac, m)));
        }
        let hits = _mm512_cmple_epu64_mask(k, limit);
        if hits != 0 {
            for lane in 0..LANES {
                if hits & (1 << lane) != 0 {
                    out.push(HashPair::from_key(i, j + lane, key_of_lane(j + lane)));
                }
            }
        }
        j += LANES;
    }
    for x in j..n {
        let key = key_of_lane(x);
        if key <= limit_scalar {
            out.push(HashPair::from_key(i, x, key));
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,popcnt")]
fn scan_row_avx2<const ALL: bool>(
    i: usize,
    cols: Range<usize>,
    v: &Views,
    t: u32,
    out: &mut Vec<HashPair>,
) {
    scan_row_generic::<ALL>(i, cols, v, t, out)
}

/// The widest vector unit this CPU has, checked once per search.
#[derive(Clone, Copy)]
enum Simd {
    Avx512,
    Avx2,
    Plain,
}

fn detect_simd() -> Simd {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512vpopcntdq")
        {
            return Simd::Avx512;
        }
        if std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("popcnt")
        {
            return Simd::Avx2;
        }
    }
    Simd::Plain
}

/// How one brute-force search runs: the CPU's vector unit, the view pairs
/// compared, and the distance.
#[derive(Clone, Copy)]
struct Scan {
    simd: Simd,
    all: bool,
    t: u32,
}

/// Compares picture `i` with pictures `cols` (only those after `i`).
fn scan_row(scan: Scan, i: usize, cols: Range<usize>, v: &Views, out: &mut Vec<HashPair>) {
    let t = scan.t;
    match (scan.simd, scan.all) {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: only chosen after `detect_simd` found these features on this CPU.
        (Simd::Avx512, true) => unsafe { scan_row_avx512::<true>(i, cols, v, t, out) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above.
        (Simd::Avx512, false) => unsafe { scan_row_avx512::<false>(i, cols, v, t, out) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above.
        (Simd::Avx2, true) => unsafe { scan_row_avx2::<true>(i, cols, v, t, out) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above.
        (Simd::Avx2, false) => unsafe { scan_row_avx2::<false>(i, cols, v, t, out) },
        (_, true) => scan_row_generic::<true>(i, cols, v, t, out),
        (_, false) => scan_row_generic::<false>(i, cols, v, t, out),
    }
}

/// From this many pictures on, larger crops are not looked for: comparing
/// every picture's [`super::phash::WINDOWS`] window hashes with every other
/// picture costs 64 N² popcounts (about 1 CPU-s at 20,000 pictures with
/// AVX-512).
pub const WINDOWS_UP_TO: usize = 20_000;

/// Pairs where one picture whole is within `max_distance` bits of some
/// window of the other (`windows`: [`super::phash::WINDOWS`] hashes per
/// picture, in order; `full`: each picture's whole hash): the other is a
/// larger crop of it. Each pair once, `a < b`, at its smallest distance,
/// marked with [`WINDOW_VIEWS`].
pub fn window_pairs(full: &[u64], windows: &[u64], max_distance: u32) -> Vec<HashPair> {
    use super::phash::WINDOWS;
    let n = full.len();
    if windows.len() != n * WINDOWS {
        return Vec::new();
    }
    let simd = detect_simd();
    let mut found: Vec<(u32, u32, u8)> = (0..n)
        .into_par_iter()
        .fold(Vec::new, |mut out, i| {
            let mut hits: Vec<(u32, u8)> = Vec::new();
            for &q in &windows[i * WINDOWS..(i + 1) * WINDOWS] {
                match simd {
                    #[cfg(target_arch = "x86_64")]
                    // SAFETY: only chosen after `detect_simd` found these features on this CPU.
                    Simd::Avx512 => unsafe { query_avx512(q, full, max_distance, &mut hits) },
                    _ => query_plain(q, full, max_distance, &mut hits),
                }
            }
            for (j, d) in hits {
                if j as usize != i {
                    let (a, b) = (i.min(j as usize) as u32, i.max(j as usize) as u32);
                    out.push((a, b, d));
                }
            }
            out
        })
        .reduce(Vec::new, |mut a, b| {
            a.extend(b);
            a
        });
    // Each pair at its smallest distance, once.
    found.sort_unstable();
    found.dedup_by_key(|p| (p.0, p.1));
    found
        .into_iter()
        .map(|(a, b, d)| HashPair {
            a,
            b,
            distance: d,
            views: WINDOW_VIEWS,
        })
        .collect()
}

/// [`HashPair::views`] of a pair found by [`window_pairs`].
pub const WINDOW_VIEWS: u8 = 6;

fn query_plain(q: u64, full: &[u64], t: u32, hits: &mut Vec<(u32, u8)>) {
    query_plain_from(q, full, 0, t, hits)
}

/// [`query_plain`] 8 hashes at a time.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512vpopcntdq")]
fn query_avx512(q: u64, full: &[u64], t: u32, hits: &mut Vec<(u32, u8)>) {
    use std::arch::x86_64::*;
    const LANES: usize = 8;
    let n = full.len();
    let a = _mm512_set1_epi64(q as i64);
    let limit = _mm512_set1_epi64(i64::from(t));
    let mut j = 0;
    while j + LANES <= n {
        // SAFETY: `j + LANES <= n`, so the 64-byte unaligned load stays in `full`.
        let h = unsafe { _mm512_loadu_si512(full.as_ptr().add(j).cast()) };
        let d = _mm512_popcnt_epi64(_mm512_xor_si512(a, h));
        if _mm512_cmple_epu64_mask(d, limit) != 0 {
            for (lane, &x) in full[j..j + LANES].iter().enumerate() {
                let d = (q ^ x).count_ones();
                if d <= t {
                    hits.push(((j + lane) as u32, d as u8));
                }
            }
        }
        j += LANES;
    }
    query_plain_from(q, full, j, t, hits);
}

fn query_plain_from(q: u64, full: &[u64], from: usize, t: u32, hits: &mut Vec<(u32, u8)>) {
    for (j, &h) in full.iter().enumerate().skip(from) {
        let d = (q ^ h).count_ones();
        if d <= t {
            hits.push((j as u32, d as u8));
        }
    }
}

/// Rows per tile of the brute force.
const TILE_ROWS: usize = 128;
/// Columns per tile: 4 views × 8 bytes × 1024 = 32 KB, so a tile's columns
/// stay in the L1/L2 cache while every row of the tile runs over them,
/// instead of streaming every column from memory for every row.
const TILE_COLS: usize = 1024;

/// Compares every row of `rows` with every later picture, tile by tile.
fn scan_rows(scan: Scan, rows: Range<usize>, v: &Views, out: &mut Vec<HashPair>) {
    let n = v.len();
    let mut col = rows.start;
    while col < n {
        let cols = col..(col + TILE_COLS).min(n);
        for i in rows.clone() {
            scan_row(scan, i, cols.clone(), v, out);
        }
        col += TILE_COLS;
    }
}

/// Compares every pair over all six view pairs.
pub fn brute_force(views: &Views, max_distance: u32) -> Vec<HashPair> {
    brute_force_views(views, max_distance, ViewSet::All)
}

/// Compares every pair over the chosen view pairs.
pub fn brute_force_views(views: &Views, max_distance: u32, view_set: ViewSet) -> Vec<HashPair> {
    let n = views.len();
    let scan = Scan {
        simd: detect_simd(),
        all: view_set == ViewSet::All,
        t: max_distance,
    };
    // Row block b costs about (n - b × TILE_ROWS) comparisons per row: pair
    // block b with block last - b so every task has the same work.
    let blocks = n.div_ceil(TILE_ROWS);
    let rows = |b: usize| b * TILE_ROWS..((b + 1) * TILE_ROWS).min(n);
    let mut pairs: Vec<HashPair> = (0..blocks.div_ceil(2))
        .into_par_iter()
        .fold(Vec::new, |mut out, b| {
            scan_rows(scan, rows(b), views, &mut out);
            let other = blocks - 1 - b;
            if other != b {
                scan_rows(scan, rows(other), views, &mut out);
            }
            out
        })
        .reduce(Vec::new, |mut a, mut b| {
            a.append(&mut b);
            a
        });
    pairs.sort_unstable();
    pairs
}

/// A multi-index: every view of every picture, sorted by one part of the hash.
struct PartIndex {
    shift: u32,
    bits: u32,
    /// `offsets[key]..offsets[key + 1]` are the entries whose part is `key`.
    offsets: Vec<u32>,
    /// Picture indexes; each appears once per view.
    entries: Vec<u32>,
}

const ALL_VIEWS: [View; 4] = [
    View::Full,
    View::Mirrored,
    View::Centre,
    View::CentreMirrored,
];

impl PartIndex {
    fn build(views: &Views, shift: u32, bits: u32) -> PartIndex {
        let n = views.len();
        let mask = (1u64 << bits) - 1;
        let key = |h: u64| ((h >> shift) & mask) as usize;
        let mut offsets = vec![0u32; (1usize << bits) + 1];
        for view in ALL_VIEWS {
            for i in 0..n {
                offsets[key(views.get(view, i)) + 1] += 1;
            }
        }
        for k in 1..offsets.len() {
            offsets[k] += offsets[k - 1];
        }
        let mut fill = offsets.clone();
        let mut entries = vec![0u32; n * ALL_VIEWS.len()];
        for view in ALL_VIEWS {
            for i in 0..n {
                let slot = &mut fill[key(views.get(view, i))];
                entries[*slot as usize] = i as u32;
                *slot += 1;
            }
        }
        PartIndex {
            shift,
            bits,
            offsets,
            entries,
        }
    }

    fn bucket(&self, key: usize) -> &[u32] {
        let (lo, hi) = (self.offsets[key] as usize, self.offsets[key + 1] as usize);
        &self.entries[lo..hi]
    }
}

/// Calls `f` with every `bits`-bit key within `radius` bits of `key`.
fn for_each_neighbour(key: usize, bits: u32, radius: u32, f: &mut impl FnMut(usize)) {
    fn go(key: usize, from: u32, bits: u32, left: u32, f: &mut impl FnMut(usize)) {
        f(key);
        if left == 0 {
            return;
        }
        for b in from..bits {
            go(key ^ (1 << b), b + 1, bits, left - 1, f);
        }
    }
    go(key, 0, bits, radius, f);
}

/// How many parts to split the hash into for `n` pictures: parts of about
/// log2(8n) bits (8n = entries: 4 views, 2 query views) keep buckets near
/// one entry each, and at most 22 bits keep each part's offset table small
/// (16 MB).
fn part_count(n: usize) -> u32 {
    let log = (usize::BITS - (8 * n.max(1)).leading_zeros()).clamp(8, 22);
    (64 / log).clamp(3, 8)
}

/// Multi-index hashing: the same pairs as [`brute_force`], checking only
/// candidates that share a nearly equal part with the whole picture or its
/// centre.
pub fn multi_index(views: &Views, max_distance: u32) -> Vec<HashPair> {
    let n = views.len();
    let parts = part_count(n);
    let radius = max_distance / parts;
    let mut indexes = Vec::new();
    let mut shift = 0;
    for p in 0..parts {
        let bits = (64 - shift) / (parts - p);
        indexes.push(PartIndex::build(views, shift, bits));
        shift += bits;
    }
    let limit = (max_distance << 3) | 7;
    // One "already checked for query i" stamp array per worker thread: a
    // candidate can turn up in several parts and views, and is checked once.
    let stamps: Vec<std::sync::Mutex<Vec<u32>>> = (0..rayon::current_num_threads().max(1))
        .map(|_| std::sync::Mutex::new(vec![u32::MAX; n]))
        .collect();
    let mut pairs: Vec<HashPair> = (0..n)
        .into_par_iter()
        .with_min_len(256)
        .fold(Vec::new, |mut out, i| {
            let slot = rayon::current_thread_index().unwrap_or(0) % stamps.len();
            let Ok(mut seen) = stamps[slot].lock() else {
                return out;
            };
            for query in [views.full[i], views.centre[i]] {
                for index in &indexes {
                    let key = ((query >> index.shift) & ((1u64 << index.bits) - 1)) as usize;
                    for_each_neighbour(key, index.bits, radius, &mut |k| {
                        for &entry in index.bucket(k) {
                            let j = entry as usize;
                            if j <= i || seen[j] == i as u32 {
                                continue;
                            }
                            seen[j] = i as u32;
                            let x = key_of(views, i, j);
                            if x <= limit {
                                out.push(HashPair::from_key(i, j, x));
                            }
                        }
                    });
                }
            }
            out
        })
        .reduce(Vec::new, |mut a, mut b| {
            a.append(&mut b);
            a
        });
    pairs.sort_unstable();
    pairs
}

/// Deterministic pseudo-random hashes with planted near-copies, for tests
/// and the benchmark: every tenth picture has a partner a few bits away.
pub fn synthetic_views(n: usize, seed: u64) -> Views {
    let mut rng = super::synth::Rng::new(seed);
    let mut random = |n: usize| -> Vec<u64> { (0..n).map(|_| rng.next_u64()).collect() };
    let mut v = Views {
        full: random(n),
        mirrored: random(n),
        centre: random(n),
        centre_mirrored: random(n),
    };
    let mut rng = super::synth::Rng::new(seed ^ 0xBEEF);
    for i in 0..n / 10 {
        let mut near = |h: u64| {
            let mut h = h;
            for _ in 0..rng.below(6) {
                h ^= 1 << rng.below(64);
            }
            h
        };
        let j = n - 1 - i;
        v.full[j] = near(v.full[i]);
        v.mirrored[j] = near(v.mirrored[i]);
        v.centre[j] = near(v.centre[i]);
        v.centre_mirrored[j] = near(v.centre_mirrored[i]);
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_pairs_find_a_picture_near_a_window_of_another() {
        use crate::dataset::phash::WINDOWS;
        let mut rng = crate::dataset::synth::Rng::new(9);
        let n = 40;
        let full: Vec<u64> = (0..n).map(|_| rng.next_u64()).collect();
        let mut windows: Vec<u64> = (0..n * WINDOWS).map(|_| rng.next_u64()).collect();
        // Picture 3's window 17 is picture 30 whole, 5 bits off; picture
        // 21's window 0 is picture 2 whole, 13 bits off (too far).
        windows[3 * WINDOWS + 17] = full[30] ^ 0b11111;
        windows[21 * WINDOWS] = full[2] ^ ((1 << 13) - 1);
        let pairs = window_pairs(&full, &windows, 12);
        let plain: Vec<(u32, u32, u8)> = {
            let mut out = std::collections::BTreeMap::new();
            for i in 0..n {
                for (j, &whole) in full.iter().enumerate() {
                    if i == j {
                        continue;
                    }
                    let d = windows[i * WINDOWS..(i + 1) * WINDOWS]
                        .iter()
                        .map(|w| (w ^ whole).count_ones())
                        .min()
                        .unwrap();
                    if d <= 12 {
                        let key = (i.min(j) as u32, i.max(j) as u32);
                        let e = out.entry(key).or_insert(d as u8);
                        *e = (*e).min(d as u8);
                    }
                }
            }
            out.into_iter().map(|((a, b), d)| (a, b, d)).collect()
        };
        let got: Vec<(u32, u32, u8)> = pairs.iter().map(|p| (p.a, p.b, p.distance)).collect();
        assert_eq!(got, plain);
        assert!(got.contains(&(3, 30, 5)), "{got:?}");
        assert!(!got.iter().any(|p| (p.0, p.1) == (2, 21)), "{got:?}");
        assert!(pairs.iter().all(|p| p.cropped() && !p.mirrored()));
        assert!(
            window_pairs(&full, &windows[1..], 12).is_empty(),
            "a short list is refused"
        );
    }

    fn naive(v: &Views, t: u32) -> Vec<HashPair> {
        let mut out = Vec::new();
        for i in 0..v.len() {
            for j in i + 1..v.len() {
                let a = PictureHash {
                    hash: v.full[i],
                    mirrored: v.mirrored[i],
                    centre: v.centre[i],
                    centre_mirrored: v.centre_mirrored[i],
                };
                let b = PictureHash {
                    hash: v.full[j],
                    mirrored: v.mirrored[j],
                    centre: v.centre[j],
                    centre_mirrored: v.centre_mirrored[j],
                };
                let c = a.compare(&b);
                if c.distance <= t {
                    let views = VIEW_PAIRS
                        .iter()
                        .position(|p| (a.view(p.0) ^ b.view(p.1)).count_ones() == c.distance)
                        .unwrap() as u8;
                    out.push(HashPair {
                        a: i as u32,
                        b: j as u32,
                        distance: c.distance as u8,
                        views,
                    });
                }
            }
        }
        out
    }

    fn naive_whole(v: &Views, t: u32) -> Vec<HashPair> {
        let mut out = Vec::new();
        for i in 0..v.len() {
            for j in i + 1..v.len() {
                let key = pair_key_whole(v.full[i], v.full[j], v.mirrored[j]);
                if key >> 3 <= t {
                    out.push(HashPair::from_key(i, j, key));
                }
            }
        }
        out
    }

    #[test]
    fn brute_force_and_multi_index_agree_with_the_definition() {
        let mut v = synthetic_views(2_000, 11);
        // Plant mirrored, cropped and exact copies too.
        for i in 0..40 {
            v.full[600 + i] = v.mirrored[1200 + i];
            v.centre[700 + i] = v.full[1300 + i];
            v.full[800 + i] = v.centre_mirrored[1400 + i];
            v.full[900 + i] = v.full[1500 + i];
        }
        for t in [0, 3, 10, 14] {
            let want = naive(&v, t);
            assert_eq!(brute_force(&v, t), want, "brute force at {t}");
            assert_eq!(multi_index(&v, t), want, "multi-index at {t}");
        }
        let pairs = naive(&v, 10);
        assert!(pairs.len() >= 300);
        assert!(pairs.iter().any(|p| p.mirrored() && !p.cropped()));
        assert!(pairs.iter().any(|p| p.cropped() && !p.mirrored()));
        assert!(pairs.iter().any(|p| p.cropped() && p.mirrored()));
    }

    #[test]
    fn every_code_path_finds_the_same_pairs() {
        let v = synthetic_views(700, 5);
        let want = naive(&v, 12);
        let whole: Vec<HashPair> = want.iter().copied().filter(|p| p.views < 2).collect();
        let mut generic = Vec::new();
        for i in 0..v.len() {
            scan_row_generic::<true>(i, 0..v.len(), &v, 12, &mut generic);
        }
        generic.sort_unstable();
        assert_eq!(generic, want);
        let mut simds = vec![detect_simd(), Simd::Plain];
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("popcnt")
        {
            simds.push(Simd::Avx2);
        }
        for simd in simds {
            for all in [true, false] {
                let scan = Scan { simd, all, t: 12 };
                let mut rows = Vec::new();
                for i in 0..v.len() {
                    scan_row(scan, i, 0..v.len(), &v, &mut rows);
                }
                rows.sort_unstable();
                let expected: Vec<HashPair> = if all {
                    want.clone()
                } else {
                    naive_whole(&v, 12)
                };
                assert_eq!(rows, expected, "all views: {all}");
            }
        }
        assert!(whole.len() <= naive_whole(&v, 12).len());
        assert_eq!(
            brute_force_views(&v, 12, ViewSet::WholeAndMirror),
            naive_whole(&v, 12)
        );
    }

    #[test]
    fn tiny_inputs() {
        let empty = Views::default();
        assert!(brute_force(&empty, 10).is_empty());
        assert!(multi_index(&synthetic_views(1, 1), 10).is_empty());
        let mut two = synthetic_views(2, 3);
        two.full[1] = two.full[0];
        assert_eq!(brute_force(&two, 0).len(), 1);
    }
}
