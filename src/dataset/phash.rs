//! Perceptual hashes: a 64-bit fingerprint of what a picture looks like, so
//! that a resized, re-encoded, slightly cropped, brightened or mirrored copy
//! lands a few bits away from the original.
//!
//! Why this hash (measured; figures in `../shared/research/dedup.md` §2.1 and
//! in `ategnatos bench duplicates`):
//! - **DCT + median ("pHash") on a 32×32 grey thumbnail, 8×8 low
//!   frequencies, 64 bits.** On the labelled research set it matched
//!   imagededup's PHash (precision 1.00) while `image_hasher`'s default
//!   Gradient 8×8 merged 2–3× more same-background pictures at equal recall.
//!   64 bits pack into one `u64`, so the pair search is XOR + popcount.
//! - **The thumbnail is an area average over the decoded pixels**, made in one
//!   pass while converting to grey. `image_hasher` converts the full picture
//!   and resizes it with Lanczos3: on 2048 px JPEGs that made a Rust version
//!   slower than the Python tool. A hash needs a few dozen pixels; the area
//!   average gives the same precision and recall at a fraction of the cost.
//! - **The mirrored hash comes for free.** Mirroring a picture left–right
//!   multiplies the DCT coefficient of every odd horizontal frequency by −1
//!   (exactly, for DCT-II), so the hash of the mirrored picture is computed
//!   from the same coefficients. Trainers flip pictures (`flip_aug`), so a
//!   mirrored copy is a duplicate; no anchor tool finds those.
//!
//! We write the hash ourselves instead of calling `image_hasher` because we
//! need those coefficients for the mirrored hash, and because its DCT mode
//! works on a 16×16 thumbnail rather than the classic 32×32.

use std::io::Cursor;
use std::sync::LazyLock;

use image::{DynamicImage, ImageFormat, ImageReader, Limits};

use super::inspect::{self, DecodeFailure, MAX_PIXELS, MAX_SIDE};

/// Side of the grey thumbnail the hash is computed from.
pub const THUMB_SIDE: usize = 32;
/// Side of the block of low frequencies kept (8 × 8 = 64 bits).
const KEPT: usize = 8;

/// A grey thumbnail, `THUMB_SIDE` × `THUMB_SIDE`, row-major, values 0–255.
pub type Thumbnail = [f32; THUMB_SIDE * THUMB_SIDE];

/// The perceptual hash of a picture and of its mirror image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PictureHash {
    /// Hash of the picture as it is.
    pub hash: u64,
    /// Hash of the picture mirrored left–right.
    pub mirrored: u64,
}

impl PictureHash {
    /// Bits that differ between `self` and `other`, taking the closer of
    /// `other` and its mirror image; `true` when the mirror was closer.
    pub fn distance(&self, other: &PictureHash) -> (u32, bool) {
        let direct = (self.hash ^ other.hash).count_ones();
        let mirrored = (self.hash ^ other.mirrored).count_ones();
        if mirrored < direct {
            (mirrored, true)
        } else {
            (direct, false)
        }
    }
}

/// Unnormalised DCT-II basis, `COS[k][n] = cos(π (2n + 1) k / 2N)`, for the
/// kept frequencies only.
static COS: LazyLock<[[f32; THUMB_SIDE]; KEPT]> = LazyLock::new(|| {
    let mut table = [[0f32; THUMB_SIDE]; KEPT];
    for (k, row) in table.iter_mut().enumerate() {
        for (n, c) in row.iter_mut().enumerate() {
            let angle =
                std::f64::consts::PI * (2 * n + 1) as f64 * k as f64 / (2 * THUMB_SIDE) as f64;
            *c = angle.cos() as f32;
        }
    }
    table
});

/// The 8×8 lowest DCT frequencies of a thumbnail, `[v][u]` (vertical,
/// horizontal).
fn low_frequencies(thumb: &Thumbnail) -> [[f32; KEPT]; KEPT] {
    let cos = &*COS;
    // Rows first: each of the 32 rows to its 8 lowest horizontal frequencies.
    let mut rows = [[0f32; KEPT]; THUMB_SIDE];
    for (y, out) in rows.iter_mut().enumerate() {
        let line = &thumb[y * THUMB_SIDE..(y + 1) * THUMB_SIDE];
        for (u, coef) in out.iter_mut().enumerate() {
            *coef = line.iter().zip(cos[u].iter()).map(|(p, c)| p * c).sum();
        }
    }
    let mut block = [[0f32; KEPT]; KEPT];
    for (v, out) in block.iter_mut().enumerate() {
        for (u, coef) in out.iter_mut().enumerate() {
            *coef = (0..THUMB_SIDE).map(|y| rows[y][u] * cos[v][y]).sum();
        }
    }
    block
}

/// One bit per coefficient: set when it is at least the median of the 63
/// non-DC coefficients (the DC term only says how bright the picture is).
fn bits_of(block: &[[f32; KEPT]; KEPT]) -> u64 {
    let flat: Vec<f32> = block.iter().flatten().copied().collect();
    let mut ac: Vec<f32> = flat[1..].to_vec();
    ac.sort_by(f32::total_cmp);
    let median = ac[ac.len() / 2];
    flat.iter().enumerate().fold(
        0u64,
        |acc, (i, c)| if *c >= median { acc | (1 << i) } else { acc },
    )
}

/// Hashes a thumbnail, and its mirror image.
pub fn hash_thumbnail(thumb: &Thumbnail) -> PictureHash {
    let block = low_frequencies(thumb);
    let mut flipped = block;
    for row in flipped.iter_mut() {
        for (u, c) in row.iter_mut().enumerate() {
            if u % 2 == 1 {
                *c = -*c;
            }
        }
    }
    PictureHash {
        hash: bits_of(&block),
        mirrored: bits_of(&flipped),
    }
}

/// Column (or row) → thumbnail cell, so that every source pixel lands in
/// exactly one cell and the cells split the picture as evenly as pixels allow.
fn cell_map(len: usize) -> Vec<usize> {
    (0..len).map(|i| i * THUMB_SIDE / len).collect()
}

/// Area-averages grey values delivered row by row (`luma(x, y)`) into a
/// thumbnail. Pictures smaller than the thumbnail are sampled instead.
fn area_average(
    width: usize,
    height: usize,
    mut luma_row: impl FnMut(usize, &mut [f32]),
) -> Thumbnail {
    let mut thumb = [0f32; THUMB_SIDE * THUMB_SIDE];
    if width == 0 || height == 0 {
        return thumb;
    }
    let mut line = vec![0f32; width];
    if width < THUMB_SIDE || height < THUMB_SIDE {
        for (ty, out) in thumb.chunks_exact_mut(THUMB_SIDE).enumerate() {
            luma_row(ty * height / THUMB_SIDE, &mut line);
            for (tx, px) in out.iter_mut().enumerate() {
                *px = line[tx * width / THUMB_SIDE];
            }
        }
        return thumb;
    }
    let cols = cell_map(width);
    let rows = cell_map(height);
    let mut counts = [0u32; THUMB_SIDE];
    for (y, &ty) in rows.iter().enumerate() {
        luma_row(y, &mut line);
        let out = &mut thumb[ty * THUMB_SIDE..(ty + 1) * THUMB_SIDE];
        for (px, &tx) in line.iter().zip(cols.iter()) {
            out[tx] += px;
        }
        counts[ty] += 1;
    }
    let mut col_counts = [0u32; THUMB_SIDE];
    for &tx in &cols {
        col_counts[tx] += 1;
    }
    for (ty, out) in thumb.chunks_exact_mut(THUMB_SIDE).enumerate() {
        for (tx, px) in out.iter_mut().enumerate() {
            *px /= (counts[ty] * col_counts[tx]).max(1) as f32;
        }
    }
    thumb
}

/// ITU-R BT.601 luma, the grey PIL and JPEG use.
#[inline]
fn luma(r: u8, g: u8, b: u8) -> f32 {
    0.299 * f32::from(r) + 0.587 * f32::from(g) + 0.114 * f32::from(b)
}

/// Transparent areas are shown (and flattened by trainers) over a light
/// background; blend towards white so a cut-out and its flattened copy match.
#[inline]
fn over_white(value: f32, alpha: u8) -> f32 {
    let a = f32::from(alpha) / 255.0;
    value * a + 255.0 * (1.0 - a)
}

/// The grey thumbnail of a decoded picture.
pub fn thumbnail_of(image: &DynamicImage) -> Thumbnail {
    let (w, h) = (image.width() as usize, image.height() as usize);
    match image {
        DynamicImage::ImageLuma8(b) => thumbnail_of_grey(w, h, b.as_raw()),
        DynamicImage::ImageRgb8(b) => {
            let raw = b.as_raw();
            area_average(w, h, |y, line| {
                let src = &raw[y * w * 3..(y + 1) * w * 3];
                for (px, rgb) in line.iter_mut().zip(src.chunks_exact(3)) {
                    *px = luma(rgb[0], rgb[1], rgb[2]);
                }
            })
        }
        DynamicImage::ImageRgba8(b) => {
            let raw = b.as_raw();
            area_average(w, h, |y, line| {
                let src = &raw[y * w * 4..(y + 1) * w * 4];
                for (px, p) in line.iter_mut().zip(src.chunks_exact(4)) {
                    *px = over_white(luma(p[0], p[1], p[2]), p[3]);
                }
            })
        }
        DynamicImage::ImageLumaA8(b) => {
            let raw = b.as_raw();
            area_average(w, h, |y, line| {
                let src = &raw[y * w * 2..(y + 1) * w * 2];
                for (px, p) in line.iter_mut().zip(src.chunks_exact(2)) {
                    *px = over_white(f32::from(p[0]), p[1]);
                }
            })
        }
        // 16-bit and float pictures are rare in training sets: convert once.
        other if other.color().has_alpha() => {
            thumbnail_of(&DynamicImage::ImageRgba8(other.to_rgba8()))
        }
        other => thumbnail_of(&DynamicImage::ImageRgb8(other.to_rgb8())),
    }
}

/// The grey thumbnail of 8-bit grey pixels (`width` × `height`, row-major).
pub fn thumbnail_of_grey(width: usize, height: usize, grey: &[u8]) -> Thumbnail {
    area_average(width, height, |y, line| {
        let src = &grey[y * width..(y + 1) * width];
        for (px, g) in line.iter_mut().zip(src) {
            *px = f32::from(*g);
        }
    })
}

/// Hashes a decoded picture.
pub fn hash_image(image: &DynamicImage) -> PictureHash {
    hash_thumbnail(&thumbnail_of(image))
}

/// What hashing one file found out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HashedFile {
    pub hash: PictureHash,
    pub width: u32,
    pub height: u32,
    /// Real format from the content (`png`, `jpeg`, ...).
    pub format: String,
}

/// How JPEG files are decoded for hashing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JpegDecode {
    /// Only the grey (Y) channel, straight from `zune-jpeg`: no colour
    /// upsampling or conversion, which is most of a JPEG decode after the
    /// entropy decoding.
    GreyOnly,
    /// The full colour decode through `image`, as every other format.
    Full,
}

/// Decodes a picture file's bytes once and hashes it. Sizes are checked
/// before decoding, with the same limits as the audit.
pub fn hash_file_bytes(bytes: &[u8], jpeg: JpegDecode) -> Result<HashedFile, DecodeFailure> {
    if bytes.is_empty() {
        return Err(DecodeFailure::ZeroBytes);
    }
    let format = inspect::sniff(bytes).ok_or(DecodeFailure::NotAnImage)?;
    if format == ImageFormat::Jpeg
        && jpeg == JpegDecode::GreyOnly
        && let Some(done) = hash_jpeg_grey(bytes)
    {
        return Ok(done);
    }
    let reader = |limits: Limits| {
        let mut r = ImageReader::with_format(Cursor::new(bytes), format);
        r.limits(limits);
        r
    };
    let failure =
        |e: image::ImageError| DecodeFailure::Corrupt(format!("the file is damaged: {e}"));
    let (width, height) = reader(Limits::no_limits())
        .into_dimensions()
        .map_err(failure)?;
    if width > MAX_SIDE || height > MAX_SIDE || u64::from(width) * u64::from(height) > MAX_PIXELS {
        return Err(DecodeFailure::Bomb { width, height });
    }
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(MAX_PIXELS * 8);
    let image = reader(limits).decode().map_err(failure)?;
    Ok(HashedFile {
        hash: hash_image(&image),
        width,
        height,
        format: inspect::format_name(format),
    })
}

/// The grey-only JPEG path; `None` when this JPEG needs the full decoder
/// (CMYK, RGB-coded, or anything `zune-jpeg` refuses in grey).
fn hash_jpeg_grey(bytes: &[u8]) -> Option<HashedFile> {
    use zune_core::colorspace::ColorSpace;
    let options = zune_core::options::DecoderOptions::default()
        .jpeg_set_out_colorspace(ColorSpace::Luma)
        .set_strict_mode(false)
        .set_max_width(MAX_SIDE as usize)
        .set_max_height(MAX_SIDE as usize);
    let mut decoder = zune_jpeg::JpegDecoder::new_with_options(
        zune_core::bytestream::ZCursor::new(bytes),
        options,
    );
    decoder.decode_headers().ok()?;
    if !matches!(
        decoder.input_colorspace(),
        Some(ColorSpace::YCbCr | ColorSpace::Luma)
    ) {
        return None;
    }
    let (width, height) = decoder.dimensions()?;
    if u64::try_from(width).ok()? * u64::try_from(height).ok()? > MAX_PIXELS {
        return None;
    }
    let grey = decoder.decode().ok()?;
    if grey.len() < width * height {
        return None;
    }
    Some(HashedFile {
        hash: hash_thumbnail(&thumbnail_of_grey(width, height, &grey)),
        width: u32::try_from(width).ok()?,
        height: u32::try_from(height).ok()?,
        format: "jpeg".into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataset::synth;

    fn picture(seed: u64) -> DynamicImage {
        DynamicImage::ImageRgb8(synth::smooth_picture(seed, 300, 200))
    }

    #[test]
    fn mirrored_hash_equals_hash_of_mirrored_picture() {
        // 320 px wide: every thumbnail cell is exactly 10 columns, so the
        // mirror of the thumbnail is the thumbnail of the mirror.
        let img = DynamicImage::ImageRgb8(synth::smooth_picture(3, 320, 256));
        let a = hash_image(&img);
        let b = hash_image(&img.fliph());
        assert_eq!(a.mirrored, b.hash);
        assert_eq!(a.distance(&b), (0, true));
    }

    #[test]
    fn resized_copy_is_close_and_other_pictures_are_far() {
        let a = hash_image(&picture(1));
        let small = picture(1).resize_exact(150, 100, image::imageops::FilterType::Triangle);
        let (d, _) = a.distance(&hash_image(&small));
        assert!(d <= 4, "resized copy at distance {d}");
        for seed in 2..12 {
            let (d, _) = a.distance(&hash_image(&picture(seed)));
            assert!(d > 14, "unrelated picture {seed} at distance {d}");
        }
    }

    #[test]
    fn grey_and_rgb_paths_agree() {
        let img = picture(5);
        let grey = img.to_luma8();
        let a = hash_image(&DynamicImage::ImageLuma8(grey.clone()));
        let b = hash_thumbnail(&thumbnail_of_grey(300, 200, grey.as_raw()));
        assert_eq!(a, b);
    }

    #[test]
    fn jpeg_grey_path_matches_the_full_decode() {
        let img = picture(4);
        let bytes = synth::encode(&img, ImageFormat::Jpeg).unwrap();
        let grey = hash_file_bytes(&bytes, JpegDecode::GreyOnly).unwrap();
        let full = hash_file_bytes(&bytes, JpegDecode::Full).unwrap();
        assert_eq!(
            (grey.width, grey.height, grey.format.as_str()),
            (300, 200, "jpeg")
        );
        let (d, _) = grey.hash.distance(&full.hash);
        assert!(d <= 2, "grey-only vs full decode at distance {d}");
        assert_eq!(
            hash_file_bytes(b"", JpegDecode::GreyOnly),
            Err(DecodeFailure::ZeroBytes)
        );
        assert_eq!(
            hash_file_bytes(b"hello", JpegDecode::GreyOnly),
            Err(DecodeFailure::NotAnImage)
        );
    }

    #[test]
    fn tiny_and_transparent_pictures_hash() {
        let tiny = DynamicImage::ImageRgb8(synth::smooth_picture(9, 7, 5));
        let _ = hash_image(&tiny);
        let clear = DynamicImage::ImageRgba8(image::RgbaImage::from_pixel(
            40,
            40,
            image::Rgba([0, 0, 0, 0]),
        ));
        let white = DynamicImage::ImageRgb8(image::RgbImage::from_pixel(
            40,
            40,
            image::Rgb([255, 255, 255]),
        ));
        assert_eq!(hash_image(&clear), hash_image(&white));
    }
}
