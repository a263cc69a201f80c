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

/// Sample positions (in source cells) of a window of `scale` at `offset`
/// (both as shares of the side), one per destination cell.
fn positions(scale: f32, offset: f32) -> [f32; SMALL_SIDE] {
    let n = SMALL_SIDE as f32;
    std::array::from_fn(|i| (offset + scale * (i as f32 + 0.5) / n) * n - 0.5)
}

/// Linear interpolation weights for a position: (index, index + 1, weight of the second).
fn taps(p: f32) -> (usize, usize, f32) {
    let p = p.clamp(0.0, (SMALL_SIDE - 1) as f32);
    let i = p.floor() as usize;
    let j = (i + 1).min(SMALL_SIDE - 1);
    (i, j, p - i as f32)
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
        let (mut dot, mut sum, mut squares) = (0.0f32, 0.0f32, 0.0f32);
        for (x, c) in w.iter().zip(&self.centred) {
            dot += x * c;
            sum += x;
            squares += x * x;
        }
        let var = squares - sum * sum / w.len() as f32;
        if var <= 1e-3 {
            return 0.0;
        }
        // Σ (x − mean) c = Σ x c, because Σ c = 0.
        dot / (var.sqrt() * self.norm)
    }
}

/// Best match of `inner` (whole) inside some window of `outer`; stops early
/// once a window reaches `enough`.
fn best_window(outer: &[f32], inner: &Inner, enough: f32) -> f32 {
    let wins = windows();
    // Resample rows once per horizontal window, then columns per vertical one.
    let mut best = f32::MIN;
    let mut rows = vec![0f32; SMALL_SIDE * SMALL_SIDE];
    let mut window = vec![0f32; SMALL_SIDE * SMALL_SIDE];
    for &(sx, ox) in &wins {
        let xs = positions(sx, ox).map(taps);
        for y in 0..SMALL_SIDE {
            let row = &outer[y * SMALL_SIDE..(y + 1) * SMALL_SIDE];
            for (x, &(i, j, w)) in xs.iter().enumerate() {
                rows[y * SMALL_SIDE + x] = row[i] + (row[j] - row[i]) * w;
            }
        }
        for &(sy, oy) in &wins {
            let ys = positions(sy, oy).map(taps);
            for (y, &(i, j, w)) in ys.iter().enumerate() {
                let (top, bottom) = (
                    &rows[i * SMALL_SIDE..(i + 1) * SMALL_SIDE],
                    &rows[j * SMALL_SIDE..(j + 1) * SMALL_SIDE],
                );
                for ((out, t), b) in window[y * SMALL_SIDE..(y + 1) * SMALL_SIDE]
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
    let inner_a = Inner::new(&a);
    let mut best = f32::MIN;
    let mut try_pair = |b: &[f32]| -> bool {
        if let Some(inner_b) = Inner::new(b) {
            best = best.max(best_window(&a, &inner_b, enough));
        }
        if best < enough
            && let Some(inner_a) = &inner_a
        {
            best = best.max(best_window(b, inner_a, enough));
        }
        best >= enough
    };
    if matches!(orientation, Orientation::AsIs | Orientation::Either) && try_pair(&b) {
        return Some(best);
    }
    if matches!(orientation, Orientation::Mirrored | Orientation::Either) {
        try_pair(&mirrored(&b));
    }
    Some(if best == f32::MIN { 0.0 } else { best })
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
}
