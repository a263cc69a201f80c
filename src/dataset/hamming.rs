//! Finding every pair of 64-bit hashes within a Hamming distance, fast, at
//! any count: a flat parallel brute force up to about a million hashes, and
//! multi-index hashing above that.
//!
//! A pair `(i, j)`, `i < j`, is at distance `min(d(h_i, h_j), d(h_i, m_j))`,
//! where `m_j` is the hash of `j`'s mirror image (see [`super::phash`]).
//!
//! Why two methods, chosen by measurement (`ategnatos bench duplicates`
//! prints the crossover on the machine it runs on): the brute force compares
//! every pair with XOR + popcount over contiguous arrays, which the CPU does
//! 8 pairs per instruction (AVX-512 `vpopcntq`, or AVX2); its cost grows with
//! n², while a tree or index pays random memory accesses per candidate. The
//! research measured a BK-tree crate at 30 s for 50,000 hashes where the
//! brute force took 0.73 s. Multi-index hashing (Norouzi et al., 2012) splits
//! the hash into `m` parts: two hashes within `t` bits agree within
//! `⌊t/m⌋` bits on at least one part, so only those candidates are checked.
//! Its cost grows with n × (candidates per query), which wins once n is large.

use rayon::prelude::*;

/// One pair of hashes within the distance asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct HashPair {
    /// Index of the first hash (`a < b`).
    pub a: u32,
    /// Index of the second hash.
    pub b: u32,
    /// Bits that differ (the closer of `b` and its mirror image).
    pub distance: u8,
    /// The mirror image of `b` was the closer one.
    pub mirrored: bool,
}

/// How the search was done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SearchMethod {
    BruteForce,
    MultiIndex,
}

/// Hash counts from which multi-index hashing is used by default.
/// MEASURE-ME: set from the benchmark's crossover.
pub const MULTI_INDEX_FROM: usize = 300_000;

/// Every pair within `max_distance` bits, sorted, with the method chosen by
/// size.
pub fn pairs_within(
    hashes: &[u64],
    mirrored: &[u64],
    max_distance: u32,
) -> (Vec<HashPair>, SearchMethod) {
    if hashes.len() >= MULTI_INDEX_FROM && max_distance < 32 {
        (
            multi_index(hashes, mirrored, max_distance),
            SearchMethod::MultiIndex,
        )
    } else {
        (
            brute_force(hashes, mirrored, max_distance),
            SearchMethod::BruteForce,
        )
    }
}

/// Hashes compared per block in the brute force: a multiple of the vector
/// width, small enough to stay in registers.
const BLOCK: usize = 16;

/// Distances from `a` to every hash in a block, with the mirror flag in bit 7.
#[inline(always)]
fn block_distances(a: u64, hs: &[u64; BLOCK], ms: &[u64; BLOCK]) -> [u8; BLOCK] {
    let mut out = [0u8; BLOCK];
    for k in 0..BLOCK {
        let d = (a ^ hs[k]).count_ones() as u8;
        let m = (a ^ ms[k]).count_ones() as u8;
        out[k] = if m < d { m | 0x80 } else { d };
    }
    out
}

#[inline(always)]
fn scan_row_generic(i: usize, hashes: &[u64], mirrored: &[u64], t: u32, out: &mut Vec<HashPair>) {
    let a = hashes[i];
    let start = i + 1;
    let hs = &hashes[start..];
    let ms = &mirrored[start..];
    let mut push = |j: usize, d: u8| {
        out.push(HashPair {
            a: i as u32,
            b: (start + j) as u32,
            distance: d & 0x7F,
            mirrored: d & 0x80 != 0,
        })
    };
    let full = hs.len() / BLOCK * BLOCK;
    for (block, (hc, mc)) in hs[..full]
        .chunks_exact(BLOCK)
        .zip(ms[..full].chunks_exact(BLOCK))
        .enumerate()
    {
        let (Ok(hc), Ok(mc)) = (<&[u64; BLOCK]>::try_from(hc), <&[u64; BLOCK]>::try_from(mc))
        else {
            continue;
        };
        let d = block_distances(a, hc, mc);
        // Hits are rare: test the whole block branch-free, then look closer.
        if d.iter()
            .fold(false, |any, &x| any | (u32::from(x & 0x7F) <= t))
        {
            for (k, &x) in d.iter().enumerate() {
                if u32::from(x & 0x7F) <= t {
                    push(block * BLOCK + k, x);
                }
            }
        }
    }
    for j in full..hs.len() {
        let d = (a ^ hs[j]).count_ones() as u8;
        let m = (a ^ ms[j]).count_ones() as u8;
        let x = if m < d { m | 0x80 } else { d };
        if u32::from(x & 0x7F) <= t {
            push(j, x);
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vpopcntdq,popcnt")]
fn scan_row_avx512(i: usize, hashes: &[u64], mirrored: &[u64], t: u32, out: &mut Vec<HashPair>) {
    scan_row_generic(i, hashes, mirrored, t, out)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,popcnt")]
fn scan_row_avx2(i: usize, hashes: &[u64], mirrored: &[u64], t: u32, out: &mut Vec<HashPair>) {
    scan_row_generic(i, hashes, mirrored, t, out)
}

/// The widest vector unit this CPU has, checked once.
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
            && std::arch::is_x86_feature_detected!("avx512bw")
            && std::arch::is_x86_feature_detected!("avx512vpopcntdq")
            && std::arch::is_x86_feature_detected!("popcnt")
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

fn scan_row(
    simd: Simd,
    i: usize,
    hashes: &[u64],
    mirrored: &[u64],
    t: u32,
    out: &mut Vec<HashPair>,
) {
    match simd {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: only chosen after `detect_simd` found these features on this CPU.
        Simd::Avx512 => unsafe { scan_row_avx512(i, hashes, mirrored, t, out) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above.
        Simd::Avx2 => unsafe { scan_row_avx2(i, hashes, mirrored, t, out) },
        _ => scan_row_generic(i, hashes, mirrored, t, out),
    }
}

/// Compares every pair. `hashes` and `mirrored` have the same length.
pub fn brute_force(hashes: &[u64], mirrored: &[u64], max_distance: u32) -> Vec<HashPair> {
    let n = hashes.len().min(mirrored.len());
    let (hashes, mirrored) = (&hashes[..n], &mirrored[..n]);
    let simd = detect_simd();
    // Row i costs n - i comparisons: pair row i with row n-1-i so every task
    // has the same work, and let rayon split the tasks.
    let half = n.div_ceil(2);
    let mut pairs: Vec<HashPair> = (0..half)
        .into_par_iter()
        .with_min_len(64)
        .fold(Vec::new, |mut out, i| {
            scan_row(simd, i, hashes, mirrored, max_distance, &mut out);
            let other = n - 1 - i;
            if other != i {
                scan_row(simd, other, hashes, mirrored, max_distance, &mut out);
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

/// A multi-index: the hashes (and their mirror images) sorted by each part.
struct PartIndex {
    shift: u32,
    bits: u32,
    /// `offsets[key]..offsets[key + 1]` are the entries whose part is `key`.
    offsets: Vec<u32>,
    /// Hash indexes; each appears once for its hash and once for its mirror.
    entries: Vec<u32>,
}

impl PartIndex {
    fn build(hashes: &[u64], mirrored: &[u64], shift: u32, bits: u32) -> PartIndex {
        let mask = (1u64 << bits) - 1;
        let key = |h: u64| ((h >> shift) & mask) as usize;
        let mut offsets = vec![0u32; (1usize << bits) + 1];
        for (&h, &m) in hashes.iter().zip(mirrored) {
            offsets[key(h) + 1] += 1;
            offsets[key(m) + 1] += 1;
        }
        for k in 1..offsets.len() {
            offsets[k] += offsets[k - 1];
        }
        let mut fill = offsets.clone();
        let mut entries = vec![0u32; hashes.len() * 2];
        for (i, (&h, &m)) in hashes.iter().zip(mirrored).enumerate() {
            for h in [h, m] {
                let slot = &mut fill[key(h)];
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

/// How many parts to split the hash into for `n` hashes: parts of about
/// log2(2n) bits keep buckets near one entry each, and at most 22 bits keep
/// each part's offset table small (16 MB).
fn part_count(n: usize) -> u32 {
    let log = (usize::BITS - (2 * n.max(1)).leading_zeros()).clamp(8, 22);
    (64 / log).clamp(3, 8)
}

/// Multi-index hashing: the same pairs as [`brute_force`], checking only
/// candidates that share a nearly equal part.
pub fn multi_index(hashes: &[u64], mirrored: &[u64], max_distance: u32) -> Vec<HashPair> {
    let n = hashes.len().min(mirrored.len());
    let (hashes, mirrored) = (&hashes[..n], &mirrored[..n]);
    let parts = part_count(n);
    let radius = max_distance / parts;
    let mut indexes = Vec::new();
    let mut shift = 0;
    for p in 0..parts {
        let bits = (64 - shift) / (parts - p);
        indexes.push(PartIndex::build(hashes, mirrored, shift, bits));
        shift += bits;
    }
    // One "already checked for query i" stamp array per worker thread: a
    // candidate can turn up in several parts, and is checked once.
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
            let a = hashes[i];
            for index in &indexes {
                let key = ((a >> index.shift) & ((1u64 << index.bits) - 1)) as usize;
                for_each_neighbour(key, index.bits, radius, &mut |k| {
                    for &entry in index.bucket(k) {
                        let j = entry as usize;
                        if j <= i || seen[j] == i as u32 {
                            continue;
                        }
                        seen[j] = i as u32;
                        let d = (a ^ hashes[j]).count_ones();
                        let m = (a ^ mirrored[j]).count_ones();
                        let (dist, flip) = if m < d { (m, true) } else { (d, false) };
                        if dist <= max_distance {
                            out.push(HashPair {
                                a: i as u32,
                                b: j as u32,
                                distance: dist as u8,
                                mirrored: flip,
                            });
                        }
                    }
                });
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
/// and the benchmark: every tenth hash has a partner a few bits away.
pub fn synthetic_hashes(n: usize, seed: u64) -> (Vec<u64>, Vec<u64>) {
    let mut rng = super::synth::Rng::new(seed);
    let mut hashes: Vec<u64> = (0..n).map(|_| rng.next_u64()).collect();
    for i in 0..n / 10 {
        let mut h = hashes[i];
        for _ in 0..rng.below(6) {
            h ^= 1 << rng.below(64);
        }
        hashes[n - 1 - i] = h;
    }
    // A mirror image is another picture as far as bits go.
    let mirrored = hashes
        .iter()
        .map(|h| h.rotate_left(17) ^ 0x5555_5555_5555_5555)
        .collect();
    (hashes, mirrored)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(hashes: &[u64], mirrored: &[u64], t: u32) -> Vec<HashPair> {
        let mut out = Vec::new();
        for i in 0..hashes.len() {
            for j in i + 1..hashes.len() {
                let d = (hashes[i] ^ hashes[j]).count_ones();
                let m = (hashes[i] ^ mirrored[j]).count_ones();
                let (dist, flip) = if m < d { (m, true) } else { (d, false) };
                if dist <= t {
                    out.push(HashPair {
                        a: i as u32,
                        b: j as u32,
                        distance: dist as u8,
                        mirrored: flip,
                    });
                }
            }
        }
        out
    }

    #[test]
    fn brute_force_and_multi_index_agree_with_the_definition() {
        let (mut h, mut m) = synthetic_hashes(3_000, 11);
        // Plant mirrored copies and exact duplicates too.
        for i in 0..50 {
            h[1000 + i] = m[2000 + i];
            h[1500 + i] = h[2500 + i];
        }
        m[0] = h[1];
        for t in [0, 3, 10, 14] {
            let want = naive(&h, &m, t);
            assert_eq!(brute_force(&h, &m, t), want, "brute force at {t}");
            assert_eq!(multi_index(&h, &m, t), want, "multi-index at {t}");
        }
        assert!(naive(&h, &m, 10).len() >= 400);
    }

    #[test]
    fn tiny_inputs() {
        assert!(brute_force(&[], &[], 10).is_empty());
        assert!(multi_index(&[1], &[2], 10).is_empty());
        assert_eq!(brute_force(&[5, 5], &[0, 0], 0).len(), 1);
    }
}
