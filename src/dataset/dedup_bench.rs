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
    /// Turned by 2–5 degrees (either way) and cropped to the largest
    /// upright rectangle inside, as a "straighten" tool does.
    Rotate,
    /// 15–30 % cut off the width and, independently, the height, at a
    /// random offset.
    Crop25,
    /// A badge (12–20 % of the short side) laid over one corner.
    Logo,
    /// A line of white lettering with a dark shadow (6–9 % of the height,
    /// 40–80 % of the width) laid over the top or the bottom.
    Text,
}

impl VariantKind {
    pub const ALL: [VariantKind; 9] = [
        VariantKind::Resize50,
        VariantKind::Jpeg60,
        VariantKind::Crop8,
        VariantKind::Brighter15,
        VariantKind::Mirror,
        VariantKind::Rotate,
        VariantKind::Crop25,
        VariantKind::Logo,
        VariantKind::Text,
    ];

    /// The copies of the first benchmark: resized, re-encoded, slightly
    /// cropped, brightened, mirrored (before rotations, larger crops and
    /// overlays were added).
    pub const PLAIN: [VariantKind; 5] = [
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
            VariantKind::Rotate => "rotate",
            VariantKind::Crop25 => "crop25",
            VariantKind::Logo => "logo",
            VariantKind::Text => "text",
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
        VariantKind::Rotate => {
            let degrees = 2.0 + rng.below(31) as f32 / 10.0;
            let sign = if rng.below(2) == 0 { 1.0 } else { -1.0 };
            (
                DynamicImage::ImageRgb8(rotate_and_fill(img, sign * degrees)),
                ImageFormat::Png,
                95,
            )
        }
        VariantKind::Crop25 => {
            let cut = |rng: &mut Rng, side: u32| side * (70 + rng.below(16)) / 100;
            let (cw, ch) = (cut(rng, w), cut(rng, h));
            let (ox, oy) = (rng.below(w - cw + 1), rng.below(h - ch + 1));
            (dynamic.crop_imm(ox, oy, cw, ch), ImageFormat::Png, 95)
        }
        VariantKind::Logo => {
            let mut b = img.clone();
            draw_logo(rng, &mut b);
            (DynamicImage::ImageRgb8(b), ImageFormat::Png, 95)
        }
        VariantKind::Text => {
            let mut b = img.clone();
            draw_text(rng, &mut b);
            (DynamicImage::ImageRgb8(b), ImageFormat::Png, 95)
        }
    }
}

/// `img` turned by `degrees` (counter-clockwise for positive) about its
/// centre, bilinear, cropped to the largest centred rectangle of the same
/// shape that holds no corner from outside the picture.
pub fn rotate_and_fill(img: &RgbImage, degrees: f32) -> RgbImage {
    let (w, h) = img.dimensions();
    let (wf, hf) = (w as f32, h as f32);
    let (sin, cos) = degrees.to_radians().sin_cos();
    let (sin_a, cos_a) = (sin.abs(), cos.abs());
    let k = (wf / (wf * cos_a + hf * sin_a)).min(hf / (wf * sin_a + hf * cos_a));
    let (ow, oh) = (((wf * k) as u32).max(1), ((hf * k) as u32).max(1));
    let (cx, cy) = (wf / 2.0, hf / 2.0);
    RgbImage::from_fn(ow, oh, |x, y| {
        let (dx, dy) = (
            x as f32 + 0.5 - ow as f32 / 2.0,
            y as f32 + 0.5 - oh as f32 / 2.0,
        );
        // Where this output pixel comes from in the upright picture.
        let sx = (cx + dx * cos - dy * sin - 0.5).clamp(0.0, wf - 1.0);
        let sy = (cy + dx * sin + dy * cos - 0.5).clamp(0.0, hf - 1.0);
        let (x0, y0) = (sx as u32, sy as u32);
        let (x1, y1) = ((x0 + 1).min(w - 1), (y0 + 1).min(h - 1));
        let (tx, ty) = (sx - x0 as f32, sy - y0 as f32);
        let mut out = [0u8; 3];
        for (c, o) in out.iter_mut().enumerate() {
            let p = |x: u32, y: u32| f32::from(img.get_pixel(x, y).0[c]);
            let top = p(x0, y0) * (1.0 - tx) + p(x1, y0) * tx;
            let bottom = p(x0, y1) * (1.0 - tx) + p(x1, y1) * tx;
            *o = (top * (1.0 - ty) + bottom * ty).round().clamp(0.0, 255.0) as u8;
        }
        Rgb(out)
    })
}

/// Fills the axis-aligned rectangle `[x0, x1) × [y0, y1)`, clipped.
fn fill_rect(img: &mut RgbImage, x0: i64, y0: i64, x1: i64, y1: i64, colour: Rgb<u8>) {
    let (w, h) = (i64::from(img.width()), i64::from(img.height()));
    for y in y0.max(0)..y1.min(h) {
        for x in x0.max(0)..x1.min(w) {
            img.put_pixel(x as u32, y as u32, colour);
        }
    }
}

/// A badge in a random corner: a disc or a square of a strong colour with a
/// white ring and bar inside, 12–20 % of the short side.
pub fn draw_logo(rng: &mut Rng, img: &mut RgbImage) {
    let (w, h) = img.dimensions();
    let side = i64::from(w.min(h) * (12 + rng.below(9)) / 100).max(4);
    let margin = i64::from(w.min(h) * 3 / 100);
    let corner = rng.below(4);
    let x0 = if corner.is_multiple_of(2) {
        margin
    } else {
        i64::from(w) - margin - side
    };
    let y0 = if corner < 2 {
        margin
    } else {
        i64::from(h) - margin - side
    };
    let strong = [
        Rgb([200, 30, 40]),
        Rgb([20, 90, 200]),
        Rgb([20, 20, 20]),
        Rgb([240, 160, 0]),
    ][rng.below(4) as usize];
    let white = Rgb([250, 250, 250]);
    let disc = rng.below(2) == 0;
    let r = side as f32 / 2.0;
    let (cx, cy) = (x0 as f32 + r, y0 as f32 + r);
    for y in y0..y0 + side {
        for x in x0..x0 + side {
            if x < 0 || y < 0 || x >= i64::from(w) || y >= i64::from(h) {
                continue;
            }
            let d = ((x as f32 + 0.5 - cx).powi(2) + (y as f32 + 0.5 - cy).powi(2)).sqrt();
            let inside = !disc || d <= r;
            let ring = (d - r * 0.62).abs() <= r * 0.1;
            if inside {
                img.put_pixel(x as u32, y as u32, if ring { white } else { strong });
            }
        }
    }
    let bar = (side / 10).max(1);
    fill_rect(
        img,
        x0 + side / 2 - bar / 2,
        y0 + side / 4,
        x0 + side / 2 + bar - bar / 2,
        y0 + side * 3 / 4,
        white,
    );
}

/// A line of white block lettering with a dark shadow across the top or
/// the bottom: glyphs of 3 × 5 cells, 6–9 % of the height tall, the line
/// 40–80 % of the width long.
pub fn draw_text(rng: &mut Rng, img: &mut RgbImage) {
    let (w, h) = img.dimensions();
    let height = i64::from(h * (6 + rng.below(4)) / 100).max(5);
    let cell = (height / 5).max(1);
    let length = i64::from(w * (40 + rng.below(41)) / 100);
    let glyphs = (length / (4 * cell)).max(1);
    let x_start = i64::from(rng.below((w as i64 - glyphs * 4 * cell).max(1) as u32));
    let margin = i64::from(h * 4 / 100);
    let y_start = if rng.below(2) == 0 {
        margin
    } else {
        i64::from(h) - margin - 5 * cell
    };
    let shadow = Rgb([15, 15, 15]);
    let white = Rgb([250, 250, 250]);
    let offset = (cell / 3).max(1);
    let mut marks = Vec::new();
    for g in 0..glyphs {
        // A space now and then, as between words.
        if rng.below(6) == 0 {
            continue;
        }
        let mut pattern = rng.below(1 << 15);
        if pattern.count_ones() < 5 {
            pattern |= 0b111_010_010_010_111;
        }
        for bit in 0..15 {
            if pattern >> bit & 1 == 1 {
                let (gx, gy) = (i64::from(bit % 3), i64::from(bit / 3));
                marks.push((x_start + (4 * g + gx) * cell, y_start + gy * cell));
            }
        }
    }
    for &(x, y) in &marks {
        fill_rect(
            img,
            x + offset,
            y + offset,
            x + offset + cell,
            y + offset + cell,
            shadow,
        );
    }
    for &(x, y) in &marks {
        fill_rect(img, x, y, x + cell, y + cell, white);
    }
}

/// Changes whenever the generator makes different pictures for the same
/// [`SetSpec`], so that a set kept on disk by an older one is not reused.
/// 2: rotated, 15–30 %-cropped, logo and text copies.
pub const GENERATOR_VERSION: u32 = 2;

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

/// Writes the set under `dir/img/` and its truth to `dir/ground_truth.json`,
/// with the [`VariantKind::PLAIN`] copies. Originals are 40 % PNG, 40 % JPEG
/// (quality 95), 20 % WebP (lossless).
pub fn write_labelled_set(dir: &Path, spec: &SetSpec) -> Result<GroundTruth, String> {
    write_labelled_set_with(dir, spec, &VariantKind::PLAIN)
}

/// [`write_labelled_set`] with one copy of each of `kinds` per picture that
/// gets copies.
pub fn write_labelled_set_with(
    dir: &Path,
    spec: &SetSpec,
    kinds: &[VariantKind],
) -> Result<GroundTruth, String> {
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
            for &kind in kinds {
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
        n_images: spec.base + groups.len() * kinds.len() + families.len() * 5,
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

/// What the benchmark runs on, and how.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// Where generated sets are kept (reused when already complete).
    pub dir: PathBuf,
    pub set: SetSpec,
    /// Hash counts for the pair-search timing.
    pub search_sizes: Vec<usize>,
    /// The brute force is timed only up to this many hashes.
    pub brute_force_up_to: usize,
    /// Python interpreter with imagededup installed (see research/dedup.md).
    pub python: Option<PathBuf>,
    /// `bench_python.py` from `research/dedup-scripts/`.
    pub python_script: Option<PathBuf>,
    /// How the searches and the scored hashes decode JPEGs.
    pub jpeg: super::phash::JpegDecode,
    /// The kinds of copy in the set.
    pub kinds: Vec<VariantKind>,
}

/// Time, CPU and memory of one measured phase.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Phase {
    pub name: String,
    pub seconds: f64,
    /// CPU seconds (user + system) this process used.
    pub cpu_seconds: f64,
    /// Peak resident memory during the phase, MB.
    pub peak_mb: f64,
    pub images_per_second: f64,
}

/// One pair-search timing.
#[derive(Debug, Clone, Serialize)]
pub struct SearchTiming {
    pub hashes: usize,
    pub threshold: u32,
    pub method: String,
    pub seconds: f64,
    /// CPU seconds, all threads: the cost when the machine is shared.
    pub cpu_seconds: f64,
    pub pairs: usize,
}

/// The 1-minute load average, so shared-machine timings can be read right.
pub fn load_average() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0)
}

/// What imagededup did on the same set.
#[derive(Debug, Clone, Default, Serialize)]
pub struct AnchorRun {
    /// Its own encode + search time (excludes Python start-up and imports).
    pub seconds: f64,
    /// The whole process, start to end.
    pub process_seconds: f64,
    /// CPU seconds of the process and its workers (as it reports them).
    pub cpu_seconds: f64,
    pub images_per_second: f64,
    /// Peak memory of the process and of its workers, MB, as it reports them.
    pub peak_mb: String,
    pub quality: Quality,
    /// Why it did not run, when it did not.
    pub skipped: Option<String>,
}

/// Everything the benchmark measured.
#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    pub set: SetSpec,
    pub images: usize,
    pub threads: usize,
    /// 1-minute load average before and after (other work on the machine).
    pub load_before: f64,
    pub load_after: f64,
    pub threshold: u32,
    /// How the searches and the scored hashes decoded JPEGs.
    pub jpeg: String,
    /// First search (nothing cached), a second search answered from the
    /// cache, and hashing alone with each way of decoding JPEGs.
    pub phases: Vec<Phase>,
    /// Quality of the confirmed pairs at the default threshold.
    pub quality: Quality,
    /// Quality of pairs in the same reported group (what the user sees).
    pub grouped_quality: Quality,
    /// Quality of hash-only pairs (no crop confirmation) at 10 bits, for
    /// comparison with imagededup at its default.
    pub hash_only_quality_at_10: Quality,
    pub search: Vec<SearchTiming>,
    pub imagededup: AnchorRun,
    /// Per format, one thread: milliseconds per picture to decode only, and
    /// to decode and hash as the search does.
    pub per_format: Vec<FormatTiming>,
}

/// Where hashing time goes, per format: milliseconds of one thread's CPU
/// time per picture (fair on a shared machine).
#[derive(Debug, Clone, Serialize)]
pub struct FormatTiming {
    pub format: String,
    pub files: usize,
    pub mean_kb: f64,
    /// `image::load_from_memory`, full colour.
    pub decode_ms: f64,
    /// What the search does (JPEG block means, thumbnails, hashes).
    pub hash_ms: f64,
    /// JPEG only: the same with a grey-only decode, and with a full-colour
    /// decode.
    pub hash_grey_ms: Option<f64>,
    pub hash_full_ms: Option<f64>,
}

/// CPU seconds (user + system) from a `/proc/.../stat` file
/// (`/proc/self/stat` for this process); 0 where there is none.
pub fn stat_cpu_seconds(path: &str) -> f64 {
    let Ok(stat) = std::fs::read_to_string(path) else {
        return 0.0;
    };
    let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
        return 0.0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

/// Milliseconds of this thread's CPU time per run of `f`, repeating it until
/// about half a second was spent (the clock ticks every 10 ms).
fn thread_cpu_ms(runs_per_call: usize, mut f: impl FnMut()) -> f64 {
    let thread = || stat_cpu_seconds("/proc/thread-self/stat");
    let t0 = std::time::Instant::now();
    f();
    let once = t0.elapsed().as_secs_f64().max(1e-4);
    let reps = ((0.5 / once).ceil() as usize).clamp(1, 20);
    let c0 = thread();
    for _ in 0..reps {
        f();
    }
    (thread() - c0) * 1000.0 / (reps * runs_per_call.max(1)) as f64
}

/// Times decoding and hashing, one thread, up to 200 files per extension.
fn per_format_timings(img: &Path) -> Vec<FormatTiming> {
    use super::phash::{JpegDecode, hash_file_bytes};
    let mut by_ext: BTreeMap<String, Vec<Vec<u8>>> = BTreeMap::new();
    let mut entries: Vec<PathBuf> = std::fs::read_dir(img)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    entries.sort();
    for p in entries {
        let ext = p
            .extension()
            .map(|e| e.to_string_lossy().to_lowercase())
            .unwrap_or_default();
        let list = by_ext.entry(ext).or_default();
        if list.len() < 200
            && let Ok(b) = std::fs::read(&p)
        {
            list.push(b);
        }
    }
    by_ext
        .into_iter()
        .filter(|(ext, _)| super::is_image_extension(ext))
        .map(|(format, files)| {
            let n = files.len();
            let decode_ms = thread_cpu_ms(n, || {
                for b in &files {
                    let _ = image::load_from_memory(b);
                }
            });
            let hash = |mode: JpegDecode| {
                thread_cpu_ms(n, || {
                    for b in &files {
                        let _ = hash_file_bytes(b, mode);
                    }
                })
            };
            let jpeg = matches!(format.as_str(), "jpg" | "jpeg");
            FormatTiming {
                mean_kb: files.iter().map(|b| b.len()).sum::<usize>() as f64
                    / n.max(1) as f64
                    / 1024.0,
                files: n,
                decode_ms,
                hash_ms: hash(JpegDecode::DcOnly),
                hash_grey_ms: jpeg.then(|| hash(JpegDecode::GreyOnly)),
                hash_full_ms: jpeg.then(|| hash(JpegDecode::Full)),
                format,
            }
        })
        .collect()
}

fn cpu_seconds() -> f64 {
    stat_cpu_seconds("/proc/self/stat")
}

fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

fn measure<T>(name: &str, images: usize, f: impl FnOnce() -> T) -> (Phase, T) {
    // Linux: writing 5 resets the peak-RSS counter, so each phase stands alone.
    let _ = std::fs::write("/proc/self/clear_refs", b"5");
    let cpu0 = cpu_seconds();
    let t0 = std::time::Instant::now();
    let out = f();
    let seconds = t0.elapsed().as_secs_f64();
    (
        Phase {
            name: name.to_string(),
            seconds,
            cpu_seconds: cpu_seconds() - cpu0,
            peak_mb: peak_rss_mb(),
            images_per_second: images as f64 / seconds.max(1e-9),
        },
        out,
    )
}

fn file_name(path: &str) -> String {
    path.rsplit('/').next().unwrap_or(path).to_string()
}

/// Runs the whole benchmark; `log` hears what is happening (for stderr).
pub fn run_bench(options: &BenchOptions, log: &mut dyn FnMut(&str)) -> Result<BenchReport, String> {
    use super::dedup::{self, DEFAULT_THRESHOLD, DuplicateOptions};
    use super::phash::JpegDecode;
    use crate::studio::{NoProgress, Workspace};

    let load_before = load_average();
    let spec = &options.set;
    let set_dir = options.dir.join(format!(
        "dups{GENERATOR_VERSION}-{}-{}x{}-{}-{}px-seed{}",
        spec.base,
        spec.with_variants,
        options.kinds.len(),
        spec.hard_negative_families,
        spec.size,
        spec.seed
    ));
    let marker = set_dir.join(".complete");
    if !marker.exists() {
        log(&format!(
            "generating the labelled set in {} …",
            set_dir.display()
        ));
        write_labelled_set_with(&set_dir, spec, &options.kinds)?;
        std::fs::write(&marker, b"").map_err(|e| e.to_string())?;
    }
    let truth: GroundTruth = serde_json::from_slice(
        &std::fs::read(set_dir.join("ground_truth.json")).map_err(|e| e.to_string())?,
    )
    .map_err(|e| e.to_string())?;
    let ws = Workspace::open(&set_dir).map_err(|e| e.to_string())?;
    let img = img_dir(&set_dir);
    // Warm the page cache: every phase reads from memory, as the anchor will.
    for entry in std::fs::read_dir(&img)
        .map_err(|e| e.to_string())?
        .flatten()
    {
        let _ = std::fs::read(entry.path());
    }
    let cache_file = ws.state_dir().join(super::hash_cache::CACHE_FILE);
    let _ = std::fs::remove_file(&cache_file);
    let images = truth.n_images;
    let threshold = DEFAULT_THRESHOLD;
    let defaults = DuplicateOptions {
        jpeg: options.jpeg,
        ..DuplicateOptions::default()
    };

    // As the person runs it: the largest groups listed, each with its
    // contact sheet, and previews of the first sheets (find_duplicates'
    // defaults), from a workspace with no sheets yet.
    let show = dedup::ShowOptions::tool_default();
    let _ = std::fs::remove_dir_all(ws.work_dir().join("duplicates"));
    log("first search (nothing cached), with contact sheets and previews …");
    let (first, shown) = measure("duplicates + sheets, first run", images, || {
        dedup::find_duplicates_shown(&img, &ws, &defaults, &show, &NoProgress)
    });
    let shown = shown.map_err(|e| e.to_string())?;
    log("second search (unchanged folder) …");
    let (second, again) = measure("duplicates + sheets, second run", images, || {
        dedup::find_duplicates_shown(&img, &ws, &defaults, &show, &NoProgress)
    });
    let again = again.map_err(|e| e.to_string())?;
    log(&format!(
        "sheets drawn: {} in the first run, {} in the second; {} previews",
        shown.sheets_drawn,
        again.sheets_drawn,
        again.previews.len()
    ));
    log("the whole report (every group), for scoring …");
    let (every, report) = measure("duplicates, every group, no sheets", images, || {
        dedup::find_duplicates(&img, &ws, &defaults, &NoProgress)
    });
    let report = report.map_err(|e| e.to_string())?;
    log("hashing only, JPEGs from block means, grey-only and full decoding …");
    let mut phases = vec![first, second, every];
    let mut folder = None;
    for (name, mode) in [
        ("hashing, JPEG DC only", JpegDecode::DcOnly),
        ("hashing, JPEG grey only", JpegDecode::GreyOnly),
        ("hashing, JPEG full colour", JpegDecode::Full),
    ] {
        let (phase, hashed) = measure(name, images, || {
            let mut off = super::hash_cache::HashCache::disabled();
            dedup::hash_folder(&img, &ws, "txt", &mut off, mode, &NoProgress)
        });
        let hashed = hashed.map_err(|e| e.to_string())?;
        if mode == options.jpeg {
            folder = Some(hashed);
        }
        phases.push(phase);
    }
    let folder = folder.ok_or("no hashing phase for the chosen JPEG decoding")?;

    let names: Vec<String> = folder
        .pictures
        .iter()
        .map(|p| file_name(&p.shown))
        .collect();
    let (pairs, _, _) = dedup::duplicate_pairs(
        &folder.pictures,
        threshold,
        &mut super::hash_cache::HashCache::disabled(),
    );
    let as_names = |pairs: &[super::hamming::HashPair]| -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|p| (names[p.a as usize].clone(), names[p.b as usize].clone()))
            .collect()
    };
    let quality = score(&truth, &as_names(&pairs));
    let mut grouped = Vec::new();
    for g in &report.groups {
        for (i, a) in g.members.iter().enumerate() {
            for b in &g.members[i + 1..] {
                grouped.push((file_name(&a.path), file_name(&b.path)));
            }
        }
    }
    let grouped_quality = score(&truth, &grouped);
    let hashes: Vec<super::phash::PictureHash> =
        folder.pictures.iter().map(|p| p.hashed.hash).collect();
    let hash_only = super::hamming::brute_force(&super::hamming::Views::from_hashes(&hashes), 10);
    let hash_only_quality_at_10 = score(&truth, &as_names(&hash_only));

    log("per-format decode and hash timings …");
    let per_format = per_format_timings(&img);
    let search = search_timings(&options.search_sizes, options.brute_force_up_to, log);

    let imagededup = match (&options.python, &options.python_script) {
        (Some(python), Some(script)) => {
            log("imagededup PHash on the same set …");
            run_imagededup(python, script, &set_dir, &truth)
        }
        _ => AnchorRun {
            skipped: Some("no Python interpreter or bench_python.py given".into()),
            ..AnchorRun::default()
        },
    };
    Ok(BenchReport {
        set: spec.clone(),
        images,
        threads: rayon::current_num_threads(),
        load_before,
        load_after: load_average(),
        threshold,
        jpeg: format!("{:?}", options.jpeg),
        phases,
        quality,
        grouped_quality,
        hash_only_quality_at_10,
        search,
        imagededup,
        per_format,
    })
}

/// Times the pair search on synthetic hashes of each size: the brute force
/// over all six view pairs at the default threshold (up to
/// `brute_force_up_to` pictures), over whole pictures and mirror images only
/// at 10 bits (what very large sets use), and multi-index hashing at 10 bits
/// (up to 100,000 pictures: it is far slower).
pub fn search_timings(
    sizes: &[usize],
    brute_force_up_to: usize,
    log: &mut dyn FnMut(&str),
) -> Vec<SearchTiming> {
    use super::hamming::{ViewSet, brute_force_views, multi_index};
    let threshold = super::dedup::DEFAULT_THRESHOLD;
    let mut search = Vec::new();
    let mut time = |n: usize, t: u32, method: &str, run: &dyn Fn() -> usize| {
        log(&format!("search: {method}, {n} pictures, threshold {t} …"));
        let (cpu0, t0) = (cpu_seconds(), std::time::Instant::now());
        let pairs = run();
        search.push(SearchTiming {
            hashes: n,
            threshold: t,
            method: method.to_string(),
            seconds: t0.elapsed().as_secs_f64(),
            cpu_seconds: cpu_seconds() - cpu0,
            pairs,
        });
    };
    for &n in sizes {
        let views = super::hamming::synthetic_views(n, 42);
        if n <= brute_force_up_to {
            time(n, threshold, "brute force, 6 view pairs", &|| {
                brute_force_views(&views, threshold, ViewSet::All).len()
            });
        }
        time(n, 10, "brute force, whole + mirror", &|| {
            brute_force_views(&views, 10, ViewSet::WholeAndMirror).len()
        });
        if n <= 100_000 {
            time(n, 10, "multi-index, 6 view pairs", &|| {
                multi_index(&views, 10).len()
            });
        }
    }
    search
}

/// The search timings as a text table.
pub fn search_table(search: &[SearchTiming]) -> String {
    let mut out = format!(
        "{:>10} {:>9} {:<28} {:>9} {:>9} {:>10}\n",
        "pictures", "threshold", "method", "seconds", "CPU s", "pairs"
    );
    for s in search {
        out.push_str(&format!(
            "{:>10} {:>9} {:<28} {:>9.3} {:>9.2} {:>10}\n",
            s.hashes, s.threshold, s.method, s.seconds, s.cpu_seconds, s.pairs
        ));
    }
    out
}

fn run_imagededup(python: &Path, script: &Path, set_dir: &Path, truth: &GroundTruth) -> AnchorRun {
    let pairs_file = set_dir.join("imagededup-pairs.json");
    let t0 = std::time::Instant::now();
    let output = std::process::Command::new(python)
        .arg(script)
        .arg(set_dir)
        .arg("imagededup:PHash:10")
        .arg(&pairs_file)
        .output();
    let process_seconds = t0.elapsed().as_secs_f64();
    let skipped = |why: String| AnchorRun {
        skipped: Some(why),
        ..AnchorRun::default()
    };
    let output = match output {
        Ok(o) if o.status.success() => o,
        Ok(o) => {
            let err = String::from_utf8_lossy(&o.stderr);
            let tail: String = err.lines().rev().take(3).collect::<Vec<_>>().join(" | ");
            return skipped(format!("it failed: {tail}"));
        }
        Err(e) => return skipped(format!("could not start `{}`: {e}", python.display())),
    };
    let stdout = String::from_utf8_lossy(&output.stdout);
    let Some(json) = stdout
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
    else {
        return skipped("it printed no result".into());
    };
    let pairs: Vec<(String, String)> = std::fs::read(&pairs_file)
        .ok()
        .and_then(|b| serde_json::from_slice::<Vec<serde_json::Value>>(&b).ok())
        .unwrap_or_default()
        .iter()
        .filter_map(|p| {
            Some((
                file_name(p.get(0)?.as_str()?),
                file_name(p.get(1)?.as_str()?),
            ))
        })
        .collect();
    let seconds = json.get("total_s").and_then(|v| v.as_f64()).unwrap_or(0.0);
    AnchorRun {
        seconds,
        process_seconds,
        cpu_seconds: json
            .get("process_cpu_s_incl_children")
            .and_then(|v| v.as_f64())
            .unwrap_or(0.0),
        images_per_second: json
            .get("images_per_s")
            .and_then(|v| v.as_f64())
            .unwrap_or(0.0),
        peak_mb: json
            .get("peak_rss_mb_self_children")
            .map(|v| v.to_string())
            .unwrap_or_default(),
        quality: score(truth, &pairs),
        skipped: None,
    }
}

fn quality_line(name: &str, q: &Quality) -> String {
    let kinds: Vec<String> = VariantKind::ALL
        .iter()
        .map(|k| {
            format!(
                "{} R {:.3} P {:.3}",
                k.name(),
                q.recall_by_kind.get(k.name()).copied().unwrap_or(0.0),
                q.precision_by_kind.get(k.name()).copied().unwrap_or(0.0)
            )
        })
        .collect();
    format!(
        "{name:<34} pairs {:>5}  P {:.3}  R {:.3}  hard-negative pairs {}/{}\n{:<34} {}",
        q.found,
        q.precision,
        q.recall,
        q.hard_negative_pairs,
        q.hard_negative_total,
        "",
        kinds.join(" · ")
    )
}

impl BenchReport {
    /// The figures as a text table.
    pub fn to_text(&self) -> String {
        let mut out = format!(
            "ategnatos bench duplicates: {} pictures ({} bases of {} px, {} with 5 copies each, {} hard-negative families of 5), {} threads, threshold {}, load average {:.1} → {:.1}\n\n",
            self.images,
            self.set.base,
            self.set.size,
            self.set.with_variants,
            self.set.hard_negative_families,
            self.threads,
            self.threshold,
            self.load_before,
            self.load_after
        );
        out.push_str(&format!(
            "{:<28} {:>9} {:>9} {:>10} {:>9}\n",
            "phase", "seconds", "CPU s", "images/s", "peak MB"
        ));
        for p in &self.phases {
            out.push_str(&format!(
                "{:<28} {:>9.3} {:>9.2} {:>10.0} {:>9.1}\n",
                p.name, p.seconds, p.cpu_seconds, p.images_per_second, p.peak_mb
            ));
        }
        out.push_str(&format!(
            "\nper format, one thread's CPU time (ms per picture); searches and scores decode JPEGs as {}\n",
            self.jpeg
        ));
        for f in &self.per_format {
            out.push_str(&format!(
                "{:<6} {:>5} files {:>7.0} KB   decode {:>6.2}   decode + hash {:>6.2}",
                f.format, f.files, f.mean_kb, f.decode_ms, f.hash_ms
            ));
            if let (Some(grey), Some(full)) = (f.hash_grey_ms, f.hash_full_ms) {
                out.push_str(&format!(
                    "   (JPEG grey-only decode {grey:>6.2}, full decode {full:>6.2})"
                ));
            }
            out.push('\n');
        }
        out.push('\n');
        out.push_str(&quality_line("ategnatos (confirmed pairs)", &self.quality));
        out.push('\n');
        out.push_str(&quality_line(
            "ategnatos (pairs within groups)",
            &self.grouped_quality,
        ));
        out.push('\n');
        out.push_str(&quality_line(
            "ategnatos hash only, 10 bits",
            &self.hash_only_quality_at_10,
        ));
        out.push('\n');
        match &self.imagededup.skipped {
            Some(why) => out.push_str(&format!("imagededup: not run ({why})\n")),
            None => {
                out.push_str(&quality_line(
                    "imagededup PHash, 10 bits",
                    &self.imagededup.quality,
                ));
                out.push('\n');
                let ours = self.phases.first().map_or(0.0, |p| p.seconds);
                out.push_str(&format!(
                    "imagededup: {:.2} s encode+search ({:.2} s whole process), {:.0} images/s, peak MB (self, workers) {}\n",
                    self.imagededup.seconds,
                    self.imagededup.process_seconds,
                    self.imagededup.images_per_second,
                    self.imagededup.peak_mb
                ));
                let our_cpu = self.phases.first().map_or(0.0, |p| p.cpu_seconds);
                out.push_str(&format!(
                    "speed-up, first run (with contact sheets and previews) vs imagededup encode+search: {:.1}x wall (vs its whole process: {:.1}x); CPU seconds {:.2} vs {:.2}: {:.1}x\n",
                    self.imagededup.seconds / ours.max(1e-9),
                    self.imagededup.process_seconds / ours.max(1e-9),
                    our_cpu,
                    self.imagededup.cpu_seconds,
                    self.imagededup.cpu_seconds / our_cpu.max(1e-9)
                ));
                if let Some(second) = self.phases.get(1) {
                    out.push_str(&format!(
                        "second run over the unchanged folder: {:.3} s, {:.2} CPU seconds ({:.0}x less CPU than imagededup)\n",
                        second.seconds,
                        second.cpu_seconds,
                        self.imagededup.cpu_seconds / second.cpu_seconds.max(0.01)
                    ));
                }
            }
        }
        out.push_str(
            "\npair search on synthetic hashes (4 views each, 10 % planted near-copies)\n",
        );
        out.push_str(&search_table(&self.search));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Not a test: for each kind of copy and for same-background and
    /// unrelated pairs, prints hash distances and what the close look finds,
    /// to choose how edited copies are found.
    /// `cargo test --release --lib -- --ignored edit_profile_print --nocapture`
    #[test]
    #[ignore]
    fn edit_profile_print() {
        use super::super::crop_check::{Orientation, copy_evidence};
        use super::super::phash::{JpegDecode, hash_file_bytes};
        let env = |k: &str, d: u64| {
            std::env::var(k)
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(d)
        };
        let n = env("PROFILE_BASE", 120) as usize;
        let dir = tempfile::tempdir().unwrap();
        let spec = SetSpec {
            base: n,
            with_variants: n / 2,
            hard_negative_families: n / 6,
            size: env("PROFILE_SIZE", 512) as u32,
            captions: false,
            seed: env("PROFILE_SEED", 7),
        };
        let truth = write_labelled_set_with(dir.path(), &spec, &VariantKind::ALL).unwrap();
        let mut hashed = HashMap::new();
        for entry in std::fs::read_dir(img_dir(dir.path())).unwrap() {
            let p = entry.unwrap().path();
            let h = hash_file_bytes(&std::fs::read(&p).unwrap(), JpegDecode::DcOnly).unwrap();
            hashed.insert(p.file_name().unwrap().to_string_lossy().into_owned(), h);
        }
        let wide = std::env::var("PROFILE_NARROW").is_err();
        let look = |a: &str, b: &str| {
            let (ha, hb) = (&hashed[a], &hashed[b]);
            let c = ha.hash.compare(&hb.hash);
            let o = if c.mirrored {
                Orientation::Mirrored
            } else {
                Orientation::AsIs
            };
            let e = copy_evidence(&ha.small, &hb.small, o, wide).unwrap();
            let e_either = copy_evidence(&ha.small, &hb.small, Orientation::Either, wide).unwrap();
            (c.distance, e, e_either)
        };
        let mut rows: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for g in &truth.groups {
            let o = &g[0].file;
            for m in &g[1..] {
                let (d, e, ee) = look(o, &m.file);
                rows.entry(m.transform.clone()).or_default().push(format!(
                    "d {d:>2} al {:.3} tr {:.3} dif {:.3} pa {} | either al {:.3} tr {:.3} dif {:.3} pa {}",
                    e.aligned, e.trimmed, e.differing, e.patches, ee.aligned, ee.trimmed, ee.differing, ee.patches
                ));
            }
        }
        for f in &truth.hard_negative_families {
            for (i, a) in f.iter().enumerate() {
                for b in &f[i + 1..] {
                    let (d, e, ee) = look(a, b);
                    rows.entry("~hardneg".into()).or_default().push(format!(
                        "d {d:>2} al {:.3} tr {:.3} dif {:.3} pa {} | either al {:.3} tr {:.3} dif {:.3} pa {}",
                        e.aligned, e.trimmed, e.differing, e.patches, ee.aligned, ee.trimmed, ee.differing, ee.patches
                    ));
                }
            }
        }
        // Unrelated pairs within 20 bits.
        let names: Vec<&String> = hashed.keys().collect();
        let all: Vec<super::super::phash::PictureHash> =
            names.iter().map(|n| hashed[*n].hash).collect();
        let mut group_of: HashMap<&str, usize> = HashMap::new();
        for (i, g) in truth.groups.iter().enumerate() {
            for m in g {
                group_of.insert(&m.file, i);
            }
        }
        let mut family: HashMap<&str, usize> = HashMap::new();
        for (i, f) in truth.hard_negative_families.iter().enumerate() {
            for x in f {
                family.insert(x, i);
            }
        }
        for pair in
            super::super::hamming::brute_force(&super::super::hamming::Views::from_hashes(&all), 20)
        {
            let (a, b) = (
                names[pair.a as usize].as_str(),
                names[pair.b as usize].as_str(),
            );
            let same = matches!((group_of.get(a), group_of.get(b)), (Some(x), Some(y)) if x == y)
                || matches!((family.get(a), family.get(b)), (Some(x), Some(y)) if x == y);
            if same {
                continue;
            }
            let (d, e, ee) = look(a, b);
            rows.entry("~unrelated".into()).or_default().push(format!(
                "d {d:>2} al {:.3} tr {:.3} dif {:.3} pa {} | either al {:.3} tr {:.3} dif {:.3} pa {}",
                e.aligned, e.trimmed, e.differing, e.patches, ee.aligned, ee.trimmed, ee.differing, ee.patches
            ));
        }
        for (k, v) in &mut rows {
            v.sort();
            println!("== {k} ({})", v.len());
            for line in v.iter() {
                println!("{k:>10} {line}");
            }
        }
        // Window views from the 32×32 thumbnail: for each design, the
        // smallest distance between one picture's windows and the other
        // whole, per class.
        use super::super::phash::{thumbnails_of, window_hash};
        let thumbs: HashMap<String, super::super::phash::Thumbnail> = hashed
            .keys()
            .map(|k| {
                let img = image::open(img_dir(dir.path()).join(k)).unwrap();
                (k.clone(), thumbnails_of(&img).full)
            })
            .collect();
        let designs: Vec<(&str, Vec<f32>, usize)> = vec![
            ("s.775 k3", vec![0.775], 3),
            ("s.72/.82 k3", vec![0.72, 0.82], 3),
            ("s.72/.82 k4", vec![0.72, 0.82], 4),
            ("s.70/.775/.85 k4", vec![0.70, 0.775, 0.85], 4),
        ];
        for (name, scales, k) in &designs {
            let windows = |t: &super::super::phash::Thumbnail| -> Vec<u64> {
                let mut out = Vec::new();
                for &sx in scales {
                    for &sy in scales {
                        for i in 0..*k {
                            for j in 0..*k {
                                let ox = (1.0 - sx) * i as f32 / (*k - 1) as f32;
                                let oy = (1.0 - sy) * j as f32 / (*k - 1) as f32;
                                out.push(window_hash(t, ox, oy, sx, sy));
                            }
                        }
                    }
                }
                out
            };
            let wins: HashMap<&String, Vec<u64>> =
                thumbs.iter().map(|(k, t)| (k, windows(t))).collect();
            let dist = |a: &String, b: &String| -> u32 {
                let (fa, fb) = (hashed[a].hash.hash, hashed[b].hash.hash);
                let x = wins[a].iter().map(|w| (w ^ fb).count_ones()).min().unwrap();
                let y = wins[b].iter().map(|w| (w ^ fa).count_ones()).min().unwrap();
                x.min(y)
            };
            let mut hist: BTreeMap<String, Vec<usize>> = BTreeMap::new();
            for g in &truth.groups {
                for m in &g[1..] {
                    let d = dist(&g[0].file, &m.file) as usize;
                    hist.entry(m.transform.clone())
                        .or_insert_with(|| vec![0; 33])[d.min(32)] += 1;
                }
            }
            for f in &truth.hard_negative_families {
                for (i, a) in f.iter().enumerate() {
                    for b in &f[i + 1..] {
                        let d = dist(a, b) as usize;
                        hist.entry("~hardneg".into()).or_insert_with(|| vec![0; 33])[d.min(32)] +=
                            1;
                    }
                }
            }
            let keys: Vec<&String> = thumbs.keys().collect();
            for (i, a) in keys.iter().enumerate() {
                for b in &keys[i + 1..] {
                    let same = matches!((group_of.get(a.as_str()), group_of.get(b.as_str())), (Some(x), Some(y)) if x == y)
                        || matches!((family.get(a.as_str()), family.get(b.as_str())), (Some(x), Some(y)) if x == y);
                    if !same {
                        let d = dist(a, b) as usize;
                        hist.entry("~unrelated".into())
                            .or_insert_with(|| vec![0; 33])[d.min(32)] += 1;
                    }
                }
            }
            println!(
                "windows {name}: {} per picture",
                wins.values().next().map_or(0, |v| v.len())
            );
            for (k, v) in &hist {
                println!("  {k:>10} {v:?}");
            }
        }
    }

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
            let coarse =
                super::super::crop_check::coarse_crop_similarity(&smalls[a], &smalls[b], true)
                    .unwrap();
            let bucket = |s: f32| (((s - 0.80) * 100.0).floor().max(-1.0) + 1.0) as usize;
            let h = hist.entry(label.clone()).or_insert_with(|| vec![0; 22]);
            h[bucket(s).min(21)] += 1;
            // The 8×8 first look, for pairs that pass the 16×16 check and those that do not.
            let passes = if s >= 0.95 { "pass" } else { "fail" };
            let h = hist
                .entry(format!("8x8 {label} {passes}"))
                .or_insert_with(|| vec![0; 22]);
            h[bucket(coarse).min(21)] += 1;
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
