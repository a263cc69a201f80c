//! Confirming that one picture is a crop of another, for pairs whose hashes
//! are close but not close enough.
//!
//! A perceptual hash compares whole frames, so a copy with 8–10 % cut off
//! (at any offset) lands 4–16 bits away: as far as two different pictures
//! with the same background. The centre hash ([`super::phash`]) catches
//! centred crops; this check catches the rest. For a pair within a looser
//! threshold, it slides and scales a window over one picture's 16×16 grey
//! thumbnail, looking for the crop that best matches the other's, and
//! measures how alike they are (normalised cross-correlation, which ignores
//! brightness and contrast changes). A real crop matches almost perfectly
//! once aligned; two pictures that merely share a background do not.

use super::phash::{THUMB_SIDE, Thumbnail};

/// Side of the small thumbnail kept per picture (256 bytes).
pub const SMALL_SIDE: usize = 16;

/// Shares of the side a crop keeps that are tried, per axis.
const SCALES: [f32; 4] = [1.0, 0.95, 0.9, 0.85];
/// Window positions tried per axis when the window is smaller than the frame.
const OFFSETS: usize = 5;

/// The 16×16 grey thumbnail (2×2 averages of the 32×32 one), row-major.
pub fn small_thumbnail(full: &Thumbnail) -> Vec<u8> {
    let step = THUMB_SIDE / SMALL_SIDE;
    let mut out = Vec::with_capacity(SMALL_SIDE * SMALL_SIDE);
    for y in 0..SMALL_SIDE {
        for x in 0..SMALL_SIDE {
            let mut sum = 0.0;
            for dy in 0..step {
                for dx in 0..step {
                    sum += full[(y * step + dy) * THUMB_SIDE + x * step + dx];
                }
            }
            out.push((sum / (step * step) as f32).round().clamp(0.0, 255.0) as u8);
        }
    }
    out
}

/// One linear interpolation tap: (index, index + 1, weight of the second).
type Tap = (usize, usize, f32);

/// Linear interpolation taps, one per destination cell, of a window of
/// `scale` at `offset` (both as shares of the side) over `side` cells:
/// (index, index + 1, weight of the second).
fn window_taps(side: usize, scale: f32, offset: f32) -> Vec<Tap> {
    let n = side as f32;
    (0..side)
        .map(|i| {
            let p = ((offset + scale * (i as f32 + 0.5) / n) * n - 0.5).clamp(0.0, n - 1.0);
            let lo = p.floor() as usize;
            (lo, (lo + 1).min(side - 1), p - lo as f32)
        })
        .collect()
}

/// Halves a square thumbnail's side by 2×2 averages.
fn halve(t: &[f32], side: usize) -> Vec<f32> {
    let half = side / 2;
    let mut out = Vec::with_capacity(half * half);
    for y in 0..half {
        for x in 0..half {
            let at = |dy: usize, dx: usize| t[(2 * y + dy) * side + 2 * x + dx];
            out.push((at(0, 0) + at(0, 1) + at(1, 0) + at(1, 1)) / 4.0);
        }
    }
    out
}

/// Every window tried along one axis: (scale, offset).
fn windows() -> Vec<(f32, f32)> {
    let mut out = Vec::new();
    for &s in &SCALES {
        if s >= 1.0 {
            out.push((1.0, 0.0));
        } else {
            for k in 0..OFFSETS {
                out.push((s, (1.0 - s) * k as f32 / (OFFSETS - 1) as f32));
            }
        }
    }
    out
}

/// The thumbnail a window is compared with, centred and normalised once.
struct Inner {
    centred: Vec<f32>,
    norm: f32,
}

impl Inner {
    fn new(t: &[f32]) -> Option<Inner> {
        let n = t.len() as f32;
        let mean = t.iter().sum::<f32>() / n;
        let centred: Vec<f32> = t.iter().map(|v| v - mean).collect();
        let norm = centred.iter().map(|v| v * v).sum::<f32>().sqrt();
        (norm > 1e-3).then_some(Inner { centred, norm })
    }

    /// Normalised cross-correlation with `w` (1 = the same up to brightness
    /// and contrast). One pass: dot product, sum and sum of squares.
    fn ncc(&self, w: &[f32]) -> f32 {
        // Eight running sums of each kind (one vector register each), so
        // the additions do not wait on one another; sides are multiples of 8.
        let (mut dot, mut sum, mut squares) = ([0.0f32; 8], [0.0f32; 8], [0.0f32; 8]);
        for (x, c) in w.chunks_exact(8).zip(self.centred.chunks_exact(8)) {
            for k in 0..8 {
                dot[k] += x[k] * c[k];
                sum[k] += x[k];
                squares[k] += x[k] * x[k];
            }
        }
        let total = |v: [f32; 8]| v.iter().sum::<f32>();
        let (dot, sum, squares) = (total(dot), total(sum), total(squares));
        let var = squares - sum * sum / w.len() as f32;
        if var <= 1e-3 {
            return 0.0;
        }
        // Σ (x − mean) c = Σ x c, because Σ c = 0.
        dot / (var.sqrt() * self.norm)
    }
}

/// Best match of `inner` (whole) inside some window of `outer` (both
/// `side` × `side`); stops early once a window reaches `enough`.
fn best_window(outer: &[f32], inner: &Inner, side: usize, enough: f32) -> f32 {
    let taps: Vec<Vec<Tap>> = windows()
        .iter()
        .map(|&(s, o)| window_taps(side, s, o))
        .collect();
    // Resample rows once per horizontal window, then columns per vertical one.
    let mut best = f32::MIN;
    let mut rows = vec![0f32; side * side];
    let mut window = vec![0f32; side * side];
    for xs in &taps {
        for y in 0..side {
            let row = &outer[y * side..(y + 1) * side];
            for (x, &(i, j, w)) in xs.iter().enumerate() {
                rows[y * side + x] = row[i] + (row[j] - row[i]) * w;
            }
        }
        for ys in &taps {
            for (y, &(i, j, w)) in ys.iter().enumerate() {
                let (top, bottom) = (
                    &rows[i * side..(i + 1) * side],
                    &rows[j * side..(j + 1) * side],
                );
                for ((out, t), b) in window[y * side..(y + 1) * side]
                    .iter_mut()
                    .zip(top)
                    .zip(bottom)
                {
                    *out = t + (b - t) * w;
                }
            }
            best = best.max(inner.ncc(&window));
            if best >= enough {
                return best;
            }
        }
    }
    best
}

/// Below this similarity at 8×8, a pair is not checked at 16×16. Measured on
/// the labelled set (`distance_profile_print`, 200 bases of 256 px): every
/// pair that passed at 16×16 scored at least 0.93 at 8×8, while 2,870 of
/// 2,874 unrelated candidate pairs scored below 0.80 (none above 0.87) and
/// half of the same-background pairs below 0.90: they stop at the cheap look.
const COARSE_ENOUGH_TO_LOOK_CLOSER: f32 = 0.90;

fn mirrored(t: &[f32]) -> Vec<f32> {
    t.chunks_exact(SMALL_SIDE)
        .flat_map(|row| row.iter().rev().copied())
        .collect()
}

/// Which way round to look for the crop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Orientation {
    /// Only as they are.
    AsIs,
    /// Only with the second picture mirrored.
    Mirrored,
    /// Both.
    Either,
}

fn to_floats(t: &[u8]) -> Vec<f32> {
    t.iter().map(|&v| f32::from(v)).collect()
}

/// How well one small thumbnail matches a crop of the other (or the other
/// way round), in the given orientation(s): the best normalised
/// cross-correlation, from −1 to 1, or the first value reaching `enough`.
/// `None` when a thumbnail is missing.
pub fn crop_similarity_until(
    a: &[u8],
    b: &[u8],
    orientation: Orientation,
    enough: f32,
) -> Option<f32> {
    if a.len() != SMALL_SIDE * SMALL_SIDE || b.len() != a.len() {
        return None;
    }
    let a = to_floats(a);
    let b = to_floats(b);
    // Either direction: `b` inside a window of `a`, or `a` inside one of `b`.
    let best_of = |a: &[f32], b: &[f32], side: usize, enough: f32| -> f32 {
        let mut best = f32::MIN;
        if let Some(inner_b) = Inner::new(b) {
            best = best.max(best_window(a, &inner_b, side, enough));
        }
        if best < enough
            && let Some(inner_a) = Inner::new(a)
        {
            best = best.max(best_window(b, &inner_a, side, enough));
        }
        best
    };
    let mut best = f32::MIN;
    let mut candidates = Vec::new();
    if matches!(orientation, Orientation::AsIs | Orientation::Either) {
        candidates.push(b.clone());
    }
    if matches!(orientation, Orientation::Mirrored | Orientation::Either) {
        candidates.push(mirrored(&b));
    }
    let coarse_a = halve(&a, SMALL_SIDE);
    for b in &candidates {
        // A cheap look at 8×8 first: most pairs that are not copies stop here.
        let coarse = best_of(
            &coarse_a,
            &halve(b, SMALL_SIDE),
            SMALL_SIDE / 2,
            f32::INFINITY,
        );
        if coarse < COARSE_ENOUGH_TO_LOOK_CLOSER && enough.is_finite() {
            best = best.max(coarse.min(COARSE_ENOUGH_TO_LOOK_CLOSER));
            continue;
        }
        best = best.max(best_of(&a, b, SMALL_SIDE, enough));
        if best >= enough {
            break;
        }
    }
    Some(if best == f32::MIN { 0.0 } else { best })
}

/// The 8×8 first look of [`crop_similarity_until`] on its own (for measuring).
pub fn coarse_crop_similarity(a: &[u8], b: &[u8], try_mirror: bool) -> Option<f32> {
    if a.len() != SMALL_SIDE * SMALL_SIDE || b.len() != a.len() {
        return None;
    }
    let half = SMALL_SIDE / 2;
    let a = halve(&to_floats(a), SMALL_SIDE);
    let b = to_floats(b);
    let mut best = f32::MIN;
    let mut look = |b: &[f32]| {
        let b = halve(b, SMALL_SIDE);
        if let Some(inner) = Inner::new(&b) {
            best = best.max(best_window(&a, &inner, half, f32::INFINITY));
        }
        if let Some(inner) = Inner::new(&a) {
            best = best.max(best_window(&b, &inner, half, f32::INFINITY));
        }
    };
    look(&b);
    if try_mirror {
        look(&mirrored(&b));
    }
    Some(best)
}

/// [`crop_similarity_until`] without stopping early.
pub fn crop_similarity(a: &[u8], b: &[u8], try_mirror: bool) -> Option<f32> {
    let orientation = if try_mirror {
        Orientation::Either
    } else {
        Orientation::AsIs
    };
    crop_similarity_until(a, b, orientation, f32::INFINITY)
}

/// What a close look at a candidate pair found, beyond the best plain
/// match: how well the pictures match once the cells that differ most are
/// left out, and where those cells are.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Evidence {
    /// Best normalised cross-correlation over every alignment tried
    /// (crops, small turns), as [`crop_similarity_until`].
    pub aligned: f32,
    /// The same at the best alignment, without the cells that differ most
    /// ([`TRIM_SHARE`] of them).
    pub trimmed: f32,
    /// Share of the cells that differ clearly once the others are matched.
    pub differing: f32,
    /// How many separate patches those cells make (4-connected, 2 cells or
    /// more).
    pub patches: usize,
    /// Every differing cell lies near the edge.
    pub near_edge: bool,
}

impl Evidence {
    /// The pictures are one picture with something laid over one place
    /// near its edge (a logo, a signature, a caption): they match almost
    /// perfectly elsewhere, and differ in a single small patch. Measured on
    /// the labelled set (`edit_profile_print`, 512 px): logo and text
    /// copies differ in 0–5 % of the cells, in one or two patches; pictures
    /// sharing a background differ in 5–19 % (median 10 %), in 2–5 patches.
    pub fn is_overlaid_copy(&self) -> bool {
        self.trimmed >= OVERLAY_TRIMMED
            && self.differing <= OVERLAY_SHARE
            && self.patches <= 1
            && self.near_edge
    }
}

/// Smallest trimmed correlation of an overlaid copy.
const OVERLAY_TRIMMED: f32 = 0.99;
/// Largest share of differing cells of an overlaid copy.
const OVERLAY_SHARE: f32 = 0.05;

/// Share of the cells left out for [`Evidence::trimmed`].
pub const TRIM_SHARE: f32 = 0.12;

/// Turns tried (degrees), each with the zoom that hides the corners it
/// brings in ("straighten" tools crop so).
const TURNS: [f32; 6] = [-5.0, -3.5, -2.0, 2.0, 3.5, 5.0];

/// The `side` × `side` window of `outer` seen turned by `degrees` about
/// its centre and zoomed to hide the corners.
fn turned_window(outer: &[f32], side: usize, degrees: f32) -> Vec<f32> {
    let (sin, cos) = degrees.to_radians().sin_cos();
    let k = 1.0 / (cos.abs() + sin.abs());
    let n = side as f32;
    let mut out = Vec::with_capacity(side * side);
    for y in 0..side {
        for x in 0..side {
            let (u, v) = ((x as f32 + 0.5) / n - 0.5, (y as f32 + 0.5) / n - 0.5);
            let (u, v) = (k * u, k * v);
            let (su, sv) = (u * cos - v * sin, u * sin + v * cos);
            let (px, py) = (
                ((su + 0.5) * n - 0.5).clamp(0.0, n - 1.0),
                ((sv + 0.5) * n - 0.5).clamp(0.0, n - 1.0),
            );
            let (x0, y0) = (px as usize, py as usize);
            let (x1, y1) = ((x0 + 1).min(side - 1), (y0 + 1).min(side - 1));
            let (tx, ty) = (px - x0 as f32, py - y0 as f32);
            let at = |x: usize, y: usize| outer[y * side + x];
            let top = at(x0, y0) + (at(x1, y0) - at(x0, y0)) * tx;
            let bottom = at(x0, y1) + (at(x1, y1) - at(x0, y1)) * tx;
            out.push(top + (bottom - top) * ty);
        }
    }
    out
}

/// Every window of `outer` tried against a whole picture: crops (scales
/// [`SCALES`] per axis at [`OFFSETS`] positions, and the larger crops of
/// `WIDE_SCALES`) and turns.
fn every_window(outer: &[f32], side: usize, wide: bool, each: &mut dyn FnMut(&[f32], bool)) {
    let mut axis: Vec<(f32, f32)> = windows();
    if wide {
        for &s in &WIDE_SCALES {
            for k in 0..WIDE_OFFSETS {
                axis.push((s, (1.0 - s) * k as f32 / (WIDE_OFFSETS - 1) as f32));
            }
        }
    }
    let taps: Vec<Vec<Tap>> = axis.iter().map(|&(s, o)| window_taps(side, s, o)).collect();
    let mut rows = vec![0f32; side * side];
    let mut window = vec![0f32; side * side];
    for xs in &taps {
        for y in 0..side {
            let row = &outer[y * side..(y + 1) * side];
            for (x, &(i, j, w)) in xs.iter().enumerate() {
                rows[y * side + x] = row[i] + (row[j] - row[i]) * w;
            }
        }
        for ys in &taps {
            for (y, &(i, j, w)) in ys.iter().enumerate() {
                for x in 0..side {
                    let (t, b) = (rows[i * side + x], rows[j * side + x]);
                    window[y * side + x] = t + (b - t) * w;
                }
            }
            each(&window, false);
        }
    }
    for &deg in &TURNS {
        each(&turned_window(outer, side, deg), true);
    }
}

/// How much better than [`super::dedup::MIN_ALIGNED_SIMILARITY`] a turned
/// alignment must match: turned copies of the labelled set scored 0.986 and
/// more (`edit_profile_print`).
const TURN_MARGIN: f32 = 0.02;

/// Larger crops looked for by [`copy_evidence`] (share of the side kept).
const WIDE_SCALES: [f32; 3] = [0.8, 0.75, 0.7];
const WIDE_OFFSETS: usize = 7;

/// Trimmed correlation, the share of differing cells, how many patches
/// they make, and whether they all lie near the edge (within a fifth of the
/// side: where logos, signatures and captions go), between two aligned
/// `side` × `side` thumbnails.
fn trimmed_look(w: &[f32], inner: &[f32], side: usize) -> (f32, f32, usize, bool) {
    let z = |t: &[f32], keep: &[bool]| -> Vec<f32> {
        let n = keep.iter().filter(|k| **k).count().max(1) as f32;
        let mean = t
            .iter()
            .zip(keep)
            .filter(|(_, k)| **k)
            .map(|(v, _)| v)
            .sum::<f32>()
            / n;
        let var = t
            .iter()
            .zip(keep)
            .filter(|(_, k)| **k)
            .map(|(v, _)| (v - mean) * (v - mean))
            .sum::<f32>()
            / n;
        let sd = var.sqrt().max(1e-3);
        t.iter().map(|v| (v - mean) / sd).collect()
    };
    let all = vec![true; w.len()];
    let (za, zb) = (z(w, &all), z(inner, &all));
    let mut d: Vec<(f32, usize)> = za
        .iter()
        .zip(&zb)
        .enumerate()
        .map(|(i, (a, b))| ((a - b).abs(), i))
        .collect();
    d.sort_by(|x, y| x.0.total_cmp(&y.0));
    let dropped = (w.len() as f32 * TRIM_SHARE).round() as usize;
    let mut keep = vec![true; w.len()];
    for &(_, i) in &d[d.len() - dropped..] {
        keep[i] = false;
    }
    let (za, zb) = (z(w, &keep), z(inner, &keep));
    let n = keep.iter().filter(|k| **k).count().max(1) as f32;
    let trimmed = za
        .iter()
        .zip(&zb)
        .zip(&keep)
        .filter(|(_, k)| **k)
        .map(|((a, b), _)| a * b)
        .sum::<f32>()
        / n;
    let differing: Vec<bool> = za
        .iter()
        .zip(&zb)
        .map(|(a, b)| (a - b).abs() > 1.0)
        .collect();
    let share = differing.iter().filter(|d| **d).count() as f32 / w.len() as f32;
    let band = side.div_ceil(5);
    let near_edge = differing
        .iter()
        .enumerate()
        .filter(|(_, d)| **d)
        .all(|(i, _)| {
            let (x, y) = (i % side, i / side);
            x < band || y < band || x >= side - band || y >= side - band
        });
    // Patches: 4-connected components of differing cells, 2 cells or more.
    let mut seen = vec![false; w.len()];
    let mut patches = 0;
    for start in 0..w.len() {
        if !differing[start] || seen[start] {
            continue;
        }
        let mut stack = vec![start];
        seen[start] = true;
        let mut size = 0;
        while let Some(c) = stack.pop() {
            size += 1;
            let (x, y) = (c % side, c / side);
            let mut push = |nx: usize, ny: usize| {
                let i = ny * side + nx;
                if differing[i] && !seen[i] {
                    seen[i] = true;
                    stack.push(i);
                }
            };
            if x > 0 {
                push(x - 1, y);
            }
            if x + 1 < side {
                push(x + 1, y);
            }
            if y > 0 {
                push(x, y - 1);
            }
            if y + 1 < side {
                push(x, y + 1);
            }
        }
        if size >= 2 {
            patches += 1;
        }
    }
    (trimmed, share, patches, near_edge)
}

/// Below this best similarity at 8×8 over every alignment (larger crops and
/// turns included), a pair is not looked at more closely: the copies of the
/// labelled set score 0.83 and more at 16×16 (their coarse look is higher).
const COARSE_WIDE_ENOUGH: f32 = 0.80;

/// A closer look than [`crop_similarity_until`], for pairs it did not
/// confirm: larger crops (up to 30 % of each side) and small turns
/// (2–5°, zoomed as "straighten" tools do) are tried too, first at 8×8,
/// then at 16×16 with early exit once `enough` is reached; failing that, the
/// three best alignments are compared without their most different cells
/// ([`Evidence::is_overlaid_copy`]). `None` when a thumbnail is missing.
pub fn closer_look(a: &[u8], b: &[u8], orientation: Orientation, enough: f32) -> Option<Evidence> {
    if a.len() != SMALL_SIDE * SMALL_SIDE || b.len() != a.len() {
        return None;
    }
    let a = to_floats(a);
    let b = to_floats(b);
    let mut candidates = Vec::new();
    if matches!(orientation, Orientation::AsIs | Orientation::Either) {
        candidates.push(b.clone());
    }
    if matches!(orientation, Orientation::Mirrored | Orientation::Either) {
        candidates.push(mirrored(&b));
    }
    let coarse_a = halve(&a, SMALL_SIDE);
    let mut best = Evidence {
        aligned: f32::MIN,
        ..Evidence::default()
    };
    for b in &candidates {
        let coarse_b = halve(b, SMALL_SIDE);
        let mut coarse = f32::MIN;
        for (outer, inner) in [(&coarse_a, &coarse_b), (&coarse_b, &coarse_a)] {
            if let Some(inner) = Inner::new(inner) {
                every_window(outer, SMALL_SIDE / 2, true, &mut |w, _| {
                    coarse = coarse.max(inner.ncc(w));
                });
            }
        }
        if coarse < COARSE_WIDE_ENOUGH {
            best.aligned = best.aligned.max(coarse.min(COARSE_WIDE_ENOUGH));
            continue;
        }
        for (outer, inner) in [(&a, b), (b, &a)] {
            let Some(inner_n) = Inner::new(inner) else {
                continue;
            };
            let mut top: Vec<(f32, Vec<f32>)> = Vec::new();
            every_window(outer, SMALL_SIDE, true, &mut |w, turned| {
                // A turn must match better than a crop: more ways to align
                // are more chances for another picture to look alike.
                let r = inner_n.ncc(w) - if turned { TURN_MARGIN } else { 0.0 };
                if top.len() < 3 || r > top[top.len() - 1].0 {
                    top.push((r, w.to_vec()));
                    top.sort_by(|x, y| y.0.total_cmp(&x.0));
                    top.truncate(3);
                }
            });
            if let Some((r, _)) = top.first() {
                best.aligned = best.aligned.max(*r);
            }
            if best.aligned >= enough {
                return Some(best);
            }
            for (r, w) in &top {
                let (trimmed, differing, patches, near_edge) = trimmed_look(w, inner, SMALL_SIDE);
                let e = Evidence {
                    aligned: best.aligned.max(*r),
                    trimmed,
                    differing,
                    patches,
                    near_edge,
                };
                if e.is_overlaid_copy() {
                    return Some(e);
                }
                if (e.trimmed, -e.differing) > (best.trimmed, -best.differing) {
                    best = e;
                }
            }
        }
    }
    Some(best)
}

/// The [`Evidence`] for two small thumbnails in the given orientation(s),
/// looking also for larger crops when `wide`, with no early exit (for
/// measuring).
pub fn copy_evidence(a: &[u8], b: &[u8], orientation: Orientation, wide: bool) -> Option<Evidence> {
    if a.len() != SMALL_SIDE * SMALL_SIDE || b.len() != a.len() {
        return None;
    }
    let a = to_floats(a);
    let b = to_floats(b);
    let mut candidates = Vec::new();
    if matches!(orientation, Orientation::AsIs | Orientation::Either) {
        candidates.push(b.clone());
    }
    if matches!(orientation, Orientation::Mirrored | Orientation::Either) {
        candidates.push(mirrored(&b));
    }
    let mut best = Evidence {
        aligned: f32::MIN,
        ..Evidence::default()
    };
    for b in &candidates {
        for (outer, inner) in [(&a, b), (b, &a)] {
            let Some(inner_n) = Inner::new(inner) else {
                continue;
            };
            let mut top: Vec<(f32, Vec<f32>)> = Vec::new();
            every_window(outer, SMALL_SIDE, wide, &mut |w, _| {
                let r = inner_n.ncc(w);
                if top.len() < 3 || r > top[top.len() - 1].0 {
                    top.push((r, w.to_vec()));
                    top.sort_by(|x, y| y.0.total_cmp(&x.0));
                    top.truncate(3);
                }
            });
            for (r, w) in &top {
                let (trimmed, differing, patches, near_edge) = trimmed_look(w, inner, SMALL_SIDE);
                let e = Evidence {
                    aligned: *r,
                    trimmed,
                    differing,
                    patches,
                    near_edge,
                };
                if (e.trimmed, e.aligned) > (best.trimmed, best.aligned) {
                    best = Evidence {
                        aligned: best.aligned.max(*r),
                        ..e
                    };
                } else {
                    best.aligned = best.aligned.max(*r);
                }
            }
        }
    }
    Some(best)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataset::dedup_bench::base_picture;
    use crate::dataset::phash::thumbnails_of;
    use image::DynamicImage;

    fn small(img: &DynamicImage) -> Vec<u8> {
        small_thumbnail(&thumbnails_of(img).full)
    }

    #[test]
    fn a_crop_matches_and_another_picture_does_not() {
        let img = DynamicImage::ImageRgb8(base_picture(3, 256));
        let crop = img.crop_imm(0, 20, 235, 235);
        let s = crop_similarity(&small(&img), &small(&crop), false).unwrap();
        assert!(s > 0.95, "crop similarity {s}");
        let flipped = crop.fliph();
        let s = crop_similarity(&small(&img), &small(&flipped), true).unwrap();
        assert!(s > 0.95, "mirrored crop similarity {s}");
        let other = DynamicImage::ImageRgb8(base_picture(4, 256));
        let s = crop_similarity(&small(&img), &small(&other), true).unwrap();
        assert!(s < 0.8, "other picture similarity {s}");
        assert_eq!(crop_similarity(&[], &small(&img), true), None);
    }

    #[test]
    fn the_closer_look_sees_turns_large_crops_and_overlays_but_not_a_new_subject() {
        use crate::dataset::dedup_bench::{
            draw_logo, draw_shapes, noise_background, rotate_and_fill,
        };
        use crate::dataset::synth::Rng;
        let base = base_picture(21, 320);
        let img = DynamicImage::ImageRgb8(base.clone());
        let look = |other: &DynamicImage| {
            closer_look(&small(&img), &small(other), Orientation::AsIs, 0.95).unwrap()
        };
        let turned = DynamicImage::ImageRgb8(rotate_and_fill(&base, 4.0));
        assert!(look(&turned).aligned >= 0.95, "{:?}", look(&turned));
        let crop = img.crop_imm(80, 10, 230, 250);
        assert!(look(&crop).aligned >= 0.95, "{:?}", look(&crop));
        let mut logo = base.clone();
        draw_logo(&mut Rng::new(2), &mut logo);
        let e = look(&DynamicImage::ImageRgb8(logo));
        assert!(e.aligned >= 0.95 || e.is_overlaid_copy(), "{e:?}");
        // The same background with other shapes on it is another picture.
        let mut rng = Rng::new(77);
        let background = noise_background(&mut rng, 320);
        let mut one = background.clone();
        draw_shapes(&mut rng, &mut one, 5);
        let mut two = background;
        draw_shapes(&mut rng, &mut two, 5);
        let e = closer_look(
            &small(&DynamicImage::ImageRgb8(one)),
            &small(&DynamicImage::ImageRgb8(two)),
            Orientation::AsIs,
            0.95,
        )
        .unwrap();
        assert!(e.aligned < 0.95 && !e.is_overlaid_copy(), "{e:?}");
    }
}
