//! A labelled set of pictures with known near-duplicates, and the benchmark
//! that measures the duplicate search on it (`ategnatos bench duplicates`):
//! precision and recall per kind of copy, hashing speed, pair-search time at
//! 100,000 and 1,000,000 hashes, peak memory, and imagededup's PHash on the
//! same set in the same run.
//!
//! The generator follows `../shared/research/dedup-scripts/gen_dataset.py`:
//! smooth multi-octave noise with a few random shapes (so pictures have
//! detail at every scale and compress like real ones), a share of them with
//! one copy per kind of change, and optionally families of "hard negatives"
//! (the same background with different shapes) that must not be grouped.
//! The ground truth is written in that script's format, so its scorer and
//! `bench_python.py` read it unchanged.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Cursor;
use std::path::{Path, PathBuf};

use image::{DynamicImage, ImageFormat, Rgb, RgbImage};
use serde::{Deserialize, Serialize};

use super::synth::Rng;

/// The kinds of copy the search must find.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VariantKind {
    /// Scaled to half the width and height.
    Resize50,
    /// Re-encoded as JPEG at quality 60.
    Jpeg60,
    /// 8 % cut off the width and the height, at a random offset.
    Crop8,
    /// Every channel × 1.15.
    Brighter15,
    /// Mirrored left–right.
    Mirror,
}

impl VariantKind {
    pub const ALL: [VariantKind; 5] = [
        VariantKind::Resize50,
        VariantKind::Jpeg60,
        VariantKind::Crop8,
        VariantKind::Brighter15,
        VariantKind::Mirror,
    ];

    pub fn name(self) -> &'static str {
        match self {
            VariantKind::Resize50 => "resize50",
            VariantKind::Jpeg60 => "jpeg60",
            VariantKind::Crop8 => "crop8",
            VariantKind::Brighter15 => "bright15",
            VariantKind::Mirror => "mirror",
        }
    }
}

/// Bilinear sample of a `res`×`res` grid of RGB values at (`fx`, `fy`) in grid units.
fn sample_grid(grid: &[[f32; 3]], res: usize, fx: f32, fy: f32) -> [f32; 3] {
    let x0 = (fx as usize).min(res - 1);
    let y0 = (fy as usize).min(res - 1);
    let (x1, y1) = ((x0 + 1).min(res - 1), (y0 + 1).min(res - 1));
    let (tx, ty) = (fx - x0 as f32, fy - y0 as f32);
    let mut out = [0f32; 3];
    for (c, o) in out.iter_mut().enumerate() {
        let top = grid[y0 * res + x0][c] * (1.0 - tx) + grid[y0 * res + x1][c] * tx;
        let bottom = grid[y1 * res + x0][c] * (1.0 - tx) + grid[y1 * res + x1][c] * tx;
        *o = top * (1.0 - ty) + bottom * ty;
    }
    out
}

/// Smooth multi-octave colour noise, contrast-stretched.
pub fn noise_background(rng: &mut Rng, size: u32) -> RgbImage {
    const OCTAVES: [(usize, f32); 4] = [(4, 1.0), (8, 0.5), (16, 0.25), (32, 0.12)];
    let grids: Vec<(usize, Vec<[f32; 3]>)> = OCTAVES
        .iter()
        .map(|&(res, _)| {
            let g = (0..res * res)
                .map(|_| [0, 1, 2].map(|_| rng.below(256) as f32))
                .collect();
            (res, g)
        })
        .collect();
    let total: f32 = OCTAVES.iter().map(|o| o.1).sum();
    let n = size as usize;
    let mut acc = vec![[0f32; 3]; n * n];
    let (mut lo, mut hi) = (f32::MAX, f32::MIN);
    for y in 0..n {
        for x in 0..n {
            let mut v = [0f32; 3];
            for ((res, grid), (_, amp)) in grids.iter().zip(OCTAVES.iter()) {
                let scale = (*res - 1) as f32 / (n.max(2) - 1) as f32;
                let s = sample_grid(grid, *res, x as f32 * scale, y as f32 * scale);
                for c in 0..3 {
                    v[c] += amp * s[c] / total;
                }
            }
            for c in v {
                lo = lo.min(c);
                hi = hi.max(c);
            }
            acc[y * n + x] = v;
        }
    }
    let k = 255.0 / (hi - lo).max(1.0);
    RgbImage::from_fn(size, size, |x, y| {
        let v = acc[y as usize * n + x as usize];
        Rgb(v.map(|c| ((c - lo) * k).clamp(0.0, 255.0) as u8))
    })
}

/// Draws `count` random filled ellipses, rectangles and thick lines.
pub fn draw_shapes(rng: &mut Rng, img: &mut RgbImage, count: u32) {
    let (w, h) = img.dimensions();
    for _ in 0..count {
        let x0 = rng.below(w) as f32;
        let y0 = rng.below(h) as f32;
        let x1 = x0 + (w / 16 + rng.below(w / 3 - w / 16)) as f32;
        let y1 = y0 + (h / 16 + rng.below(h / 3 - h / 16)) as f32;
        let colour = Rgb([
            rng.below(256) as u8,
            rng.below(256) as u8,
            rng.below(256) as u8,
        ]);
        let kind = rng.below(3);
        let thickness = 3.0 + rng.below(12) as f32;
        let (cx, cy, rx, ry) = (
            (x0 + x1) / 2.0,
            (y0 + y1) / 2.0,
            (x1 - x0) / 2.0,
            (y1 - y0) / 2.0,
        );
        let (bx0, by0) = (
            (x0 - thickness).max(0.0) as u32,
            (y0 - thickness).max(0.0) as u32,
        );
        let (bx1, by1) = (
            ((x1 + thickness) as u32).min(w),
            ((y1 + thickness) as u32).min(h),
        );
        for y in by0..by1 {
            for x in bx0..bx1 {
                let (px, py) = (x as f32 + 0.5, y as f32 + 0.5);
                let inside = match kind {
                    0 => ((px - cx) / rx).powi(2) + ((py - cy) / ry).powi(2) <= 1.0,
                    1 => px >= x0 && px <= x1 && py >= y0 && py <= y1,
                    _ => {
                        let (dx, dy) = (x1 - x0, y1 - y0);
                        let t = (((px - x0) * dx + (py - y0) * dy) / (dx * dx + dy * dy))
                            .clamp(0.0, 1.0);
                        let (qx, qy) = (x0 + t * dx - px, y0 + t * dy - py);
                        (qx * qx + qy * qy).sqrt() <= thickness / 2.0
                    }
                };
                if inside {
                    img.put_pixel(x, y, colour);
                }
            }
        }
    }
}

/// A base picture: noise background plus 2–7 shapes.
pub fn base_picture(seed: u64, size: u32) -> RgbImage {
    let mut rng = Rng::new(seed);
    let mut img = noise_background(&mut rng, size);
    let count = 2 + rng.below(6);
    draw_shapes(&mut rng, &mut img, count);
    img
}

/// Encodes `img` as `format` (JPEG at `quality`; WebP lossless, the only
/// WebP the `image` crate writes).
pub fn encode(
    img: &DynamicImage,
    format: ImageFormat,
    quality: u8,
) -> Result<Vec<u8>, image::ImageError> {
    let mut out = Cursor::new(Vec::new());
    match format {
        ImageFormat::Jpeg => {
            let enc = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, quality);
            img.to_rgb8().write_with_encoder(enc)?;
        }
        ImageFormat::WebP => {
            let enc = image::codecs::webp::WebPEncoder::new_lossless(&mut out);
            img.to_rgb8().write_with_encoder(enc)?;
        }
        other => img.write_to(&mut out, other)?,
    }
    Ok(out.into_inner())
}

/// The copy of `img` of the given kind, and the format to save it in
/// (`original` for kinds that keep the original's format).
pub fn make_variant(
    img: &RgbImage,
    kind: VariantKind,
    rng: &mut Rng,
    original: ImageFormat,
) -> (DynamicImage, ImageFormat, u8) {
    let (w, h) = img.dimensions();
    let dynamic = DynamicImage::ImageRgb8(img.clone());
    match kind {
        VariantKind::Resize50 => (
            dynamic.resize_exact(w / 2, h / 2, image::imageops::FilterType::Lanczos3),
            original,
            95,
        ),
        VariantKind::Jpeg60 => (dynamic, ImageFormat::Jpeg, 60),
        VariantKind::Crop8 => {
            let (cw, ch) = (w * 92 / 100, h * 92 / 100);
            let (ox, oy) = (rng.below(w - cw + 1), rng.below(h - ch + 1));
            (dynamic.crop_imm(ox, oy, cw, ch), ImageFormat::Png, 95)
        }
        VariantKind::Brighter15 => {
            let mut b = img.clone();
            for p in b.pixels_mut() {
                p.0 = p.0.map(|c| (f32::from(c) * 1.15).min(255.0) as u8);
            }
            (DynamicImage::ImageRgb8(b), ImageFormat::Png, 95)
        }
        VariantKind::Mirror => (dynamic.fliph(), ImageFormat::Png, 95),
    }
}

/// One picture of a ground-truth group.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TruthMember {
    /// Path relative to the set's `img/` folder.
    pub file: String,
    /// `original` or the variant kind's name.
    pub transform: String,
}

/// The ground truth, in `gen_dataset.py`'s format.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GroundTruth {
    /// The `img/` folder.
    pub root: String,
    /// Each original with its copies.
    pub groups: Vec<Vec<TruthMember>>,
    /// Families that share a background but are different pictures.
    pub hard_negative_families: Vec<Vec<String>>,
    pub n_images: usize,
}

/// How to build a labelled set.
#[derive(Debug, Clone, Serialize)]
pub struct SetSpec {
    /// Distinct base pictures.
    pub base: usize,
    /// How many of them get one copy of every kind.
    pub with_variants: usize,
    /// Families of hard negatives (5 pictures each).
    pub hard_negative_families: usize,
    /// Side of the square base pictures, in pixels.
    pub size: u32,
    /// Write a `.txt` caption beside every picture.
    pub captions: bool,
    pub seed: u64,
}

const FORMATS: [(ImageFormat, &str); 5] = [
    (ImageFormat::Png, "png"),
    (ImageFormat::Jpeg, "jpg"),
    (ImageFormat::Png, "png"),
    (ImageFormat::Jpeg, "jpg"),
    (ImageFormat::WebP, "webp"),
];

fn extension(format: ImageFormat) -> &'static str {
    match format {
        ImageFormat::Jpeg => "jpg",
        ImageFormat::WebP => "webp",
        _ => "png",
    }
}

/// Writes the set under `dir/img/` and its truth to `dir/ground_truth.json`.
/// Originals are 40 % PNG, 40 % JPEG (quality 95), 20 % WebP (lossless).
pub fn write_labelled_set(dir: &Path, spec: &SetSpec) -> Result<GroundTruth, String> {
    use rayon::prelude::*;
    let img_dir = dir.join("img");
    std::fs::create_dir_all(&img_dir)
        .map_err(|e| format!("cannot create `{}`: {e}", img_dir.display()))?;
    let stride = (spec.base / spec.with_variants.max(1)).max(1);
    let write =
        |name: &str, img: &DynamicImage, format: ImageFormat, quality: u8| -> Result<(), String> {
            let bytes = encode(img, format, quality).map_err(|e| e.to_string())?;
            std::fs::write(img_dir.join(name), bytes).map_err(|e| e.to_string())?;
            if spec.captions {
                let stem = name.rsplit_once('.').map_or(name, |(s, _)| s);
                std::fs::write(
                    img_dir.join(format!("{stem}.txt")),
                    format!("zkbench, picture {stem}"),
                )
                .map_err(|e| e.to_string())?;
            }
            Ok(())
        };
    let groups: Vec<Option<Vec<TruthMember>>> = (0..spec.base)
        .into_par_iter()
        .map(|i| {
            let seed = spec.seed.wrapping_mul(1_000_003).wrapping_add(i as u64);
            let img = base_picture(seed, spec.size);
            let (format, ext) = FORMATS[i % FORMATS.len()];
            let name = format!("b{i:06}.{ext}");
            write(&name, &DynamicImage::ImageRgb8(img.clone()), format, 95)?;
            if i % stride != 0 || i / stride >= spec.with_variants {
                return Ok(None);
            }
            let mut rng = Rng::new(seed ^ 0xC0FFEE);
            let mut members = vec![TruthMember {
                file: name,
                transform: "original".into(),
            }];
            for kind in VariantKind::ALL {
                let (v, vformat, quality) = make_variant(&img, kind, &mut rng, format);
                let vname = format!("b{i:06}_{}.{}", kind.name(), extension(vformat));
                write(&vname, &v, vformat, quality)?;
                members.push(TruthMember {
                    file: vname,
                    transform: kind.name().into(),
                });
            }
            Ok(Some(members))
        })
        .collect::<Result<Vec<_>, String>>()?;
    let groups: Vec<Vec<TruthMember>> = groups.into_iter().flatten().collect();
    let families: Vec<Vec<String>> = (0..spec.hard_negative_families)
        .into_par_iter()
        .map(|f| {
            let mut rng = Rng::new(spec.seed ^ (0xFA11 + f as u64 * 7919));
            let background = noise_background(&mut rng, spec.size);
            (0..5)
                .map(|k| {
                    let mut img = background.clone();
                    let count = 3 + rng.below(4);
                    draw_shapes(&mut rng, &mut img, count);
                    let name = format!("h{f:04}_{k}.png");
                    write(&name, &DynamicImage::ImageRgb8(img), ImageFormat::Png, 95)?;
                    Ok(name)
                })
                .collect::<Result<Vec<_>, String>>()
        })
        .collect::<Result<Vec<_>, String>>()?;
    let truth = GroundTruth {
        root: img_dir.to_string_lossy().into_owned(),
        n_images: spec.base + groups.len() * VariantKind::ALL.len() + families.len() * 5,
        groups,
        hard_negative_families: families,
    };
    let json = serde_json::to_vec_pretty(&truth).map_err(|e| e.to_string())?;
    crate::studio::write_atomic(&dir.join("ground_truth.json"), &json)
        .map_err(|e| e.to_string())?;
    Ok(truth)
}

/// Precision and recall of found pairs against the truth.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Quality {
    /// Pairs found (between pictures of the set).
    pub found: usize,
    pub true_pairs: usize,
    pub correct: usize,
    pub precision: f64,
    pub recall: f64,
    /// Recall of original ↔ copy pairs, per kind of copy.
    pub recall_by_kind: BTreeMap<String, f64>,
    /// Of the found pairs touching a copy of this kind, the share that is right.
    pub precision_by_kind: BTreeMap<String, f64>,
    /// Found pairs inside a hard-negative family (should be 0).
    pub hard_negative_pairs: usize,
    /// Hard-negative pairs there are.
    pub hard_negative_total: usize,
}

fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 { 1.0 } else { a as f64 / b as f64 }
}

/// Scores `pairs` (file names relative to the set's `img/`) against `truth`.
pub fn score(truth: &GroundTruth, pairs: &[(String, String)]) -> Quality {
    let key = |a: &str, b: &str| {
        if a < b {
            (a.to_string(), b.to_string())
        } else {
            (b.to_string(), a.to_string())
        }
    };
    let mut true_pairs = HashSet::new();
    let mut kind_of: HashMap<String, String> = HashMap::new();
    let mut orig_pairs: Vec<((String, String), String)> = Vec::new();
    for g in &truth.groups {
        for (i, a) in g.iter().enumerate() {
            if a.transform != "original" {
                kind_of.insert(a.file.clone(), a.transform.clone());
            }
            for b in &g[i + 1..] {
                true_pairs.insert(key(&a.file, &b.file));
            }
        }
        if let Some(o) = g.first() {
            for m in &g[1..] {
                orig_pairs.push((key(&o.file, &m.file), m.transform.clone()));
            }
        }
    }
    let mut family: HashMap<&str, usize> = HashMap::new();
    for (i, f) in truth.hard_negative_families.iter().enumerate() {
        for name in f {
            family.insert(name, i);
        }
    }
    let found: HashSet<(String, String)> = pairs
        .iter()
        .filter(|(a, b)| a != b)
        .map(|(a, b)| key(a, b))
        .collect();
    let correct = found.intersection(&true_pairs).count();
    let mut recall_by_kind = BTreeMap::new();
    let mut precision_by_kind = BTreeMap::new();
    for kind in VariantKind::ALL {
        let name = kind.name();
        let want: Vec<&(String, String)> = orig_pairs
            .iter()
            .filter(|(_, t)| t == name)
            .map(|(p, _)| p)
            .collect();
        let hit = want.iter().filter(|p| found.contains(**p)).count();
        recall_by_kind.insert(name.to_string(), ratio(hit, want.len()));
        let touching: Vec<&(String, String)> = found
            .iter()
            .filter(|(a, b)| {
                kind_of.get(a).is_some_and(|k| k == name)
                    || kind_of.get(b).is_some_and(|k| k == name)
            })
            .collect();
        let right = touching.iter().filter(|p| true_pairs.contains(**p)).count();
        precision_by_kind.insert(name.to_string(), ratio(right, touching.len()));
    }
    let hard_negative_pairs = found
        .iter()
        .filter(|(a, b)| matches!((family.get(a.as_str()), family.get(b.as_str())), (Some(x), Some(y)) if x == y))
        .count();
    Quality {
        found: found.len(),
        true_pairs: true_pairs.len(),
        correct,
        precision: ratio(correct, found.len()),
        recall: ratio(correct, true_pairs.len()),
        recall_by_kind,
        precision_by_kind,
        hard_negative_pairs,
        hard_negative_total: truth.hard_negative_families.len() * 10,
    }
}

/// The set's folder for pictures.
pub fn img_dir(dir: &Path) -> PathBuf {
    dir.join("img")
}

/// Distances between each original and its copies, per kind, and how many
/// unrelated pairs fall at each distance: what the threshold is chosen from.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DistanceProfile {
    /// For each kind of copy: count of copies at distance 0, 1, 2, ... 32.
    pub copies: BTreeMap<String, Vec<usize>>,
    /// Unrelated pairs (not in the same truth group) at distance 0 ... 32.
    pub unrelated: Vec<usize>,
    /// Same-background (hard-negative) pairs at distance 0 ... 32.
    pub hard_negative: Vec<usize>,
}

/// Measures the [`DistanceProfile`] of hashed pictures (names relative to `img/`).
pub fn distance_profile(
    truth: &GroundTruth,
    hashes: &HashMap<String, super::phash::PictureHash>,
) -> DistanceProfile {
    const MAX: usize = 32;
    let mut p = DistanceProfile {
        unrelated: vec![0; MAX + 1],
        hard_negative: vec![0; MAX + 1],
        ..Default::default()
    };
    let mut group_of: HashMap<&str, usize> = HashMap::new();
    for (i, g) in truth.groups.iter().enumerate() {
        let Some(o) = g.first().and_then(|o| hashes.get(&o.file)) else {
            continue;
        };
        for m in g {
            group_of.insert(&m.file, i);
            if m.transform == "original" {
                continue;
            }
            if let Some(h) = hashes.get(&m.file) {
                let d = (o.distance(h) as usize).min(MAX);
                p.copies
                    .entry(m.transform.clone())
                    .or_insert_with(|| vec![0; MAX + 1])[d] += 1;
            }
        }
    }
    let mut family: HashMap<&str, usize> = HashMap::new();
    for (i, f) in truth.hard_negative_families.iter().enumerate() {
        for name in f {
            family.insert(name, i);
        }
    }
    let names: Vec<&String> = hashes.keys().collect();
    let all: Vec<super::phash::PictureHash> = names.iter().map(|n| hashes[*n]).collect();
    for pair in super::hamming::brute_force(&super::hamming::Views::from_hashes(&all), MAX as u32) {
        let (a, b) = (
            names[pair.a as usize].as_str(),
            names[pair.b as usize].as_str(),
        );
        let same_group = matches!((group_of.get(a), group_of.get(b)), (Some(x), Some(y)) if x == y);
        if same_group {
            continue;
        }
        let same_family = matches!((family.get(a), family.get(b)), (Some(x), Some(y)) if x == y);
        let d = usize::from(pair.distance);
        if same_family {
            p.hard_negative[d] += 1;
        } else {
            p.unrelated[d] += 1;
        }
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Not a test: prints the distance profile of a generated set, to choose
    /// the threshold. `cargo test --release --lib -- --ignored distance_profile_print --nocapture`
    #[test]
    #[ignore]
    fn distance_profile_print() {
        let dir = tempfile::tempdir().unwrap();
        let n: usize = std::env::var("PROFILE_BASE")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(200);
        let size: u32 = std::env::var("PROFILE_SIZE")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(256);
        let spec = SetSpec {
            base: n,
            with_variants: n / 4,
            hard_negative_families: n / 20,
            size,
            captions: false,
            seed: 1,
        };
        let truth = write_labelled_set(dir.path(), &spec).unwrap();
        let mut hashes = HashMap::new();
        let mut smalls = HashMap::new();
        for entry in std::fs::read_dir(img_dir(dir.path())).unwrap() {
            let p = entry.unwrap().path();
            let bytes = std::fs::read(&p).unwrap();
            let h = super::super::phash::hash_file_bytes(
                &bytes,
                super::super::phash::JpegDecode::GreyOnly,
            )
            .unwrap();
            hashes.insert(
                p.file_name().unwrap().to_string_lossy().into_owned(),
                h.hash,
            );
            smalls.insert(
                p.file_name().unwrap().to_string_lossy().into_owned(),
                h.small,
            );
        }
        // Crop confirmation: similarity histograms (0.80..1.00 by 0.01) of pairs within 20 bits.
        let names: Vec<&String> = hashes.keys().collect();
        let all: Vec<super::super::phash::PictureHash> = names.iter().map(|n| hashes[*n]).collect();
        let mut group_of: HashMap<&str, (usize, &str)> = HashMap::new();
        for (i, g) in truth.groups.iter().enumerate() {
            for m in g {
                group_of.insert(&m.file, (i, &m.transform));
            }
        }
        let mut family: HashMap<&str, usize> = HashMap::new();
        for (i, f) in truth.hard_negative_families.iter().enumerate() {
            for n in f {
                family.insert(n, i);
            }
        }
        let mut hist: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        for pair in
            super::super::hamming::brute_force(&super::super::hamming::Views::from_hashes(&all), 20)
        {
            let (a, b) = (
                names[pair.a as usize].as_str(),
                names[pair.b as usize].as_str(),
            );
            let label = match (group_of.get(a), group_of.get(b)) {
                (Some(x), Some(y)) if x.0 == y.0 => {
                    if x.1 == "crop8" || y.1 == "crop8" {
                        "crop8".to_string()
                    } else {
                        "other-true".to_string()
                    }
                }
                _ => match (family.get(a), family.get(b)) {
                    (Some(x), Some(y)) if x == y => "hard-neg".to_string(),
                    _ => "unrelated".to_string(),
                },
            };
            let label = format!(
                "{label}@{}",
                if pair.distance <= 10 { "le10" } else { "gt10" }
            );
            let s =
                super::super::crop_check::crop_similarity(&smalls[a], &smalls[b], true).unwrap();
            let bucket = (((s - 0.80) * 100.0).floor().max(-1.0) + 1.0) as usize;
            let h = hist.entry(label).or_insert_with(|| vec![0; 22]);
            h[bucket.min(21)] += 1;
        }
        for (k, v) in &hist {
            println!("ncc {k:>16} {v:?}");
        }
        let p = distance_profile(&truth, &hashes);
        for (k, v) in &p.copies {
            println!("{k:>10} {v:?}");
        }
        println!("{:>10} {:?}", "unrelated", p.unrelated);
        println!("{:>10} {:?}", "hard-neg", p.hard_negative);
    }
}
