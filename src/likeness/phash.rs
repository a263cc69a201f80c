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
//! - **A JPEG is not decoded at all**, from 256 px a side: the DC
//!   coefficient of each 8×8 block of its Y channel is the block's mean, so
//!   walking the entropy-coded data gives a 1/8-scale grey picture with no
//!   inverse DCT, upsampling or colour conversion ([`thumbs::jpeg_dc`]). The
//!   hashes stay as close to the PNG's as a full decode's.
//! - **An 8-bit PNG is read by [`thumbs::png_rows`]**, which undoes the row
//!   filters eight rows at a time and gives the same pixels as the `png`
//!   crate in 56 % of its time; the grey and the thumbnail come from those
//!   rows directly, so hashes are identical to a full decode's.
//! - **A lossy WebP is read by [`thumbs::webp_luma`]**: VP8 stores grey (its
//!   luma plane) apart from colour, so only the luma plane is rebuilt, without
//!   the loop filter, the chroma planes or the colour conversion — a third of
//!   the work of a full decode, hashes within a bit or two of it. A
//!   lossless WebP is decoded by [`thumbs::webp_lossless`] (the same pixels,
//!   so the same hash, in 70–85 % of image-webp's time).
//! - **The mirrored hash comes for free.** Mirroring a picture left–right
//!   multiplies the DCT coefficient of every odd horizontal frequency by −1
//!   (exactly, for DCT-II), so the hash of the mirrored picture is computed
//!   from the same coefficients. Trainers flip pictures (`flip_aug`), so a
//!   mirrored copy is a duplicate; no anchor tool finds those.
//!
//! We write the hash ourselves instead of calling `image_hasher` because we
//! need those coefficients for the mirrored hash, and because its DCT mode
//! works on a 16×16 thumbnail rather than the classic 32×32.

use std::sync::LazyLock;

use image::DynamicImage;
pub use thumbs::{
    CENTRE_KEEP, COLOUR_SIDE, ColourThumb, DC_MIN_SIDE, JpegDecode, THUMB_SIDE, Thumbnail,
    Thumbnails, thumbnails_of, thumbnails_of_grey,
};

use crate::dataset::inspect::{self, DecodeFailure, MAX_PIXELS, MAX_SIDE};

/// Side of the block of low frequencies kept (8 × 8 = 64 bits).
const KEPT: usize = 8;

/// The perceptual hashes of a picture: as it is, mirrored, and the same for
/// its centre (so a copy with the borders cropped off is recognised).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PictureHash {
    /// Hash of the picture as it is.
    pub hash: u64,
    /// Hash of the picture mirrored left–right.
    pub mirrored: u64,
    /// Hash of its centre (`CENTRE_KEEP` of each side).
    pub centre: u64,
    /// Hash of its centre, mirrored.
    pub centre_mirrored: u64,
}

/// How closely one picture matches another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Closeness {
    /// Bits (of 64) that differ in the best-matching views.
    pub distance: u32,
    /// The best match was with the other picture mirrored.
    pub mirrored: bool,
    /// The best match was between one picture's centre and the other whole:
    /// one is (or looks like) a crop of the other.
    pub cropped: bool,
}

/// The view pairs compared, in order of preference on ties:
/// (self view, other view, mirrored, cropped). Self's whole picture against
/// every view of the other, and self's centre against the other whole (as
/// is, and mirrored). [`super::hamming`] computes the same minimum.
pub const VIEW_PAIRS: [(View, View, bool, bool); 6] = [
    (View::Full, View::Full, false, false),
    (View::Full, View::Mirrored, true, false),
    (View::Full, View::Centre, false, true),
    (View::Centre, View::Full, false, true),
    (View::Full, View::CentreMirrored, true, true),
    (View::Centre, View::Mirrored, true, true),
];

/// One of the four hashes of a picture.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    Full,
    Mirrored,
    Centre,
    CentreMirrored,
}

impl PictureHash {
    /// The hash of one view.
    pub fn view(&self, view: View) -> u64 {
        match view {
            View::Full => self.hash,
            View::Mirrored => self.mirrored,
            View::Centre => self.centre,
            View::CentreMirrored => self.centre_mirrored,
        }
    }

    /// The closest match between `self` and `other` over [`VIEW_PAIRS`].
    pub fn compare(&self, other: &PictureHash) -> Closeness {
        let mut best = Closeness {
            distance: u32::MAX,
            mirrored: false,
            cropped: false,
        };
        for (mine, theirs, mirrored, cropped) in VIEW_PAIRS {
            let d = (self.view(mine) ^ other.view(theirs)).count_ones();
            if d < best.distance {
                best = Closeness {
                    distance: d,
                    mirrored,
                    cropped,
                };
            }
        }
        best
    }

    /// Shorthand for `compare(other).distance`.
    pub fn distance(&self, other: &PictureHash) -> u32 {
        self.compare(other).distance
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

/// Hashes a thumbnail and its mirror image.
pub fn hash_thumbnail(thumb: &Thumbnail) -> (u64, u64) {
    let block = low_frequencies(thumb);
    let mut flipped = block;
    for row in flipped.iter_mut() {
        for (u, c) in row.iter_mut().enumerate() {
            if u % 2 == 1 {
                *c = -*c;
            }
        }
    }
    (bits_of(&block), bits_of(&flipped))
}

/// The hash of a window of a thumbnail (`x`, `y`, `w`, `h` as shares of the
/// side), resampled bilinearly to a whole thumbnail: how a crop of the
/// picture would hash, from the thumbnail alone.
pub fn window_hash(thumb: &Thumbnail, x: f32, y: f32, w: f32, h: f32) -> u64 {
    let n = THUMB_SIDE as f32;
    let taps = |start: f32, len: f32| -> [(usize, usize, f32); THUMB_SIDE] {
        std::array::from_fn(|i| {
            let p = ((start + len * (i as f32 + 0.5) / n) * n - 0.5).clamp(0.0, n - 1.0);
            let lo = p as usize;
            (lo, (lo + 1).min(THUMB_SIDE - 1), p - lo as f32)
        })
    };
    let (xs, ys) = (taps(x, w), taps(y, h));
    let mut out = [0f32; THUMB_SIDE * THUMB_SIDE];
    for (ty, &(y0, y1, wy)) in ys.iter().enumerate() {
        for (tx, &(x0, x1, wx)) in xs.iter().enumerate() {
            let at = |xx: usize, yy: usize| thumb[yy * THUMB_SIDE + xx];
            let top = at(x0, y0) + (at(x1, y0) - at(x0, y0)) * wx;
            let bottom = at(x0, y1) + (at(x1, y1) - at(x0, y1)) * wx;
            out[ty * THUMB_SIDE + tx] = top + (bottom - top) * wy;
        }
    }
    hash_thumbnail(&out).0
}

/// Window hashes kept per picture: 2 sizes a side (72 % and 82 %, each
/// side on its own) at 4 places a side, 64 in all.
pub const WINDOWS: usize = 64;
/// Shares of the side the windows keep.
const WINDOW_SCALES: [f32; 2] = [0.72, 0.82];
/// Places per side of each window size.
const WINDOW_PLACES: usize = 4;
const AXIS_WINDOWS: usize = WINDOW_SCALES.len() * WINDOW_PLACES;

/// For each window along one side, its 8 lowest DCT basis rows composed
/// with the bilinear resampling of the window to a whole side: applying it
/// to a row of the thumbnail gives the window's low frequencies directly.
static WINDOW_BASIS: LazyLock<[[[f32; THUMB_SIDE]; KEPT]; AXIS_WINDOWS]> = LazyLock::new(|| {
    let cos = &*COS;
    let n = THUMB_SIDE as f32;
    std::array::from_fn(|w| {
        let scale = WINDOW_SCALES[w / WINDOW_PLACES];
        let offset = (1.0 - scale) * (w % WINDOW_PLACES) as f32 / (WINDOW_PLACES - 1) as f32;
        let mut basis = [[0f32; THUMB_SIDE]; KEPT];
        for (row, cos_k) in basis.iter_mut().zip(cos.iter()) {
            for (i, &c) in cos_k.iter().enumerate() {
                let p = ((offset + scale * (i as f32 + 0.5) / n) * n - 0.5).clamp(0.0, n - 1.0);
                let lo = p as usize;
                let hi = (lo + 1).min(THUMB_SIDE - 1);
                let t = p - lo as f32;
                row[lo] += c * (1.0 - t);
                row[hi] += c * t;
            }
        }
        basis
    })
});

/// The hashes of [`WINDOWS`] windows of a thumbnail, each as
/// [`window_hash`] would give it: how crops of 18–28 % of each side at any
/// place hash, so that such a crop lands near one of them. Measured on the
/// labelled set (3,900 pictures of 512 px): 95 % of 15–30 % crops within
/// 12 bits of a window of their original, no unrelated pair of 44,850.
pub fn window_hashes(thumb: &Thumbnail) -> Vec<u64> {
    let basis = &*WINDOW_BASIS;
    // Rows first: every row to each horizontal window's 8 frequencies.
    let mut rows = [[[0f32; KEPT]; THUMB_SIDE]; AXIS_WINDOWS];
    for (wx, out) in rows.iter_mut().enumerate() {
        for (y, coefs) in out.iter_mut().enumerate() {
            let line = &thumb[y * THUMB_SIDE..(y + 1) * THUMB_SIDE];
            for (u, c) in coefs.iter_mut().enumerate() {
                *c = line
                    .iter()
                    .zip(basis[wx][u].iter())
                    .map(|(p, b)| p * b)
                    .sum();
            }
        }
    }
    let mut out = Vec::with_capacity(WINDOWS);
    for by in basis.iter() {
        for r in rows.iter() {
            let mut block = [[0f32; KEPT]; KEPT];
            for (v, line) in block.iter_mut().enumerate() {
                for (u, coef) in line.iter_mut().enumerate() {
                    *coef = (0..THUMB_SIDE).map(|y| r[y][u] * by[v][y]).sum();
                }
            }
            out.push(bits_of(&block));
        }
    }
    out
}

/// Hashes both views of a picture.
pub fn hash_thumbnails(thumbs: &Thumbnails) -> PictureHash {
    let (hash, mirrored) = hash_thumbnail(&thumbs.full);
    let (centre, centre_mirrored) = hash_thumbnail(&thumbs.centre);
    PictureHash {
        hash,
        mirrored,
        centre,
        centre_mirrored,
    }
}

/// Hashes a decoded picture.
pub fn hash_image(image: &DynamicImage) -> PictureHash {
    hash_thumbnails(&thumbnails_of(image))
}

/// What hashing one file found out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HashedFile {
    pub hash: PictureHash,
    pub width: u32,
    pub height: u32,
    /// Real format from the content (`png`, `jpeg`, ...).
    pub format: String,
    /// 16×16 grey thumbnail, for confirming crops ([`super::crop_check`]).
    pub small: Vec<u8>,
    /// A small colour picture for contact sheets, when it was asked for and
    /// came cheaply out of the decoding (never from the cache).
    pub colour: Option<ColourThumb>,
    /// Hashes of [`WINDOWS`] windows of the picture, for finding copies
    /// cropped by 15–30 % ([`window_hashes`]); empty when unknown.
    pub windows: Vec<u64>,
}

impl HashedFile {
    fn from_thumbnails(views: &Thumbnails, width: u32, height: u32, format: String) -> HashedFile {
        HashedFile {
            hash: hash_thumbnails(views),
            width,
            height,
            format,
            small: super::crop_check::small_thumbnail(&views.full),
            colour: None,
            windows: window_hashes(&views.full),
        }
    }
}

/// The audit's decompression-bomb limits, which hashing shares.
pub const LIMITS: thumbs::Limits = thumbs::Limits {
    max_side: MAX_SIDE,
    max_pixels: MAX_PIXELS,
};

/// Reads a picture file's bytes once ([`thumbs::read`]) and hashes it. Sizes
/// are checked before decoding, with the same limits as the audit.
pub fn hash_file_bytes(bytes: &[u8], jpeg: JpegDecode) -> Result<HashedFile, DecodeFailure> {
    hash_file_bytes_keeping(bytes, jpeg, false)
}

/// [`hash_file_bytes`], also keeping a [`ColourThumb`] when `colour` is
/// asked for and the reading gives colour anyway (see [`thumbs::read`]).
pub fn hash_file_bytes_keeping(
    bytes: &[u8],
    jpeg: JpegDecode,
    colour: bool,
) -> Result<HashedFile, DecodeFailure> {
    let options = thumbs::Options {
        jpeg,
        colour,
        limits: LIMITS,
    };
    let read = thumbs::read(bytes, options).map_err(|e| match e {
        thumbs::ThumbError::Empty => DecodeFailure::ZeroBytes,
        thumbs::ThumbError::NotAnImage => DecodeFailure::NotAnImage,
        thumbs::ThumbError::TooLarge { width, height } => DecodeFailure::Bomb { width, height },
        damaged @ thumbs::ThumbError::Damaged(_) => DecodeFailure::Corrupt(damaged.to_string()),
    })?;
    let mut hashed = HashedFile::from_thumbnails(
        &read.thumbnails,
        read.width,
        read.height,
        inspect::format_name(read.format),
    );
    hashed.colour = read.colour;
    Ok(hashed)
}

/// The colour thumbnail of a picture file, decoding it as cheaply as that
/// allows; `None` when it cannot be decoded.
pub fn colour_thumbnail(bytes: &[u8]) -> Option<ColourThumb> {
    thumbs::colour_thumbnail(bytes, LIMITS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::ImageFormat;
    use thumbs::synth;

    #[test]
    fn window_hashes_are_the_hashes_of_the_windows() {
        let thumbs = thumbnails_of(&picture(11));
        let windows = window_hashes(&thumbs.full);
        assert_eq!(windows.len(), WINDOWS);
        for (k, &w) in windows.iter().enumerate() {
            let axis = |a: usize| {
                let scale = WINDOW_SCALES[a / WINDOW_PLACES];
                let offset =
                    (1.0 - scale) * (a % WINDOW_PLACES) as f32 / (WINDOW_PLACES - 1) as f32;
                (offset, scale)
            };
            let ((x, w_), (y, h)) = (axis(k % AXIS_WINDOWS), axis(k / AXIS_WINDOWS));
            let direct = window_hash(&thumbs.full, x, y, w_, h);
            assert!((w ^ direct).count_ones() <= 2, "window {k}");
        }
    }

    #[test]
    fn a_heavily_cropped_copy_lands_near_a_window_of_its_original() {
        for seed in [3u64, 4, 5] {
            let img = DynamicImage::ImageRgb8(thumbs::synth::base_picture(seed, 400));
            let whole = hash_image(&img);
            // 25 % off the width and 20 % off the height, off centre.
            let crop = img.crop_imm(70, 20, 300, 320);
            let cropped = hash_image(&crop);
            let windows = window_hashes(&thumbnails_of(&img).full);
            let nearest = windows
                .iter()
                .map(|w| (w ^ cropped.hash).count_ones())
                .min()
                .unwrap();
            assert!(nearest <= 12, "seed {seed}: {nearest} bits");
            assert!(
                whole.distance(&cropped) > 12,
                "seed {seed}: the whole views miss it"
            );
        }
    }

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
        assert_eq!(a.centre_mirrored, b.centre);
        let c = a.compare(&b);
        assert_eq!((c.distance, c.mirrored, c.cropped), (0, true, false));
    }

    #[test]
    fn resized_copy_is_close_and_other_pictures_are_far() {
        let a = hash_image(&picture(1));
        let small = picture(1).resize_exact(150, 100, image::imageops::FilterType::Triangle);
        let d = a.distance(&hash_image(&small));
        assert!(d <= 4, "resized copy at distance {d}");
        for seed in 2..12 {
            let d = a.distance(&hash_image(&picture(seed)));
            assert!(d > 14, "unrelated picture {seed} at distance {d}");
        }
    }

    #[test]
    fn grey_and_rgb_paths_agree() {
        let img = picture(5);
        let grey = img.to_luma8();
        let a = hash_image(&DynamicImage::ImageLuma8(grey.clone()));
        let b = hash_thumbnails(&thumbnails_of_grey(300, 200, grey.as_raw()));
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
        let d = grey.hash.distance(&full.hash);
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

    /// A JPEG of `img` written by jpeg-encoder with 4:2:0 subsampling.
    fn jpeg_420(img: &DynamicImage, quality: u8) -> Vec<u8> {
        let mut out = Vec::new();
        let mut encoder = jpeg_encoder::Encoder::new(&mut out, quality);
        encoder.set_sampling_factor(jpeg_encoder::SamplingFactor::F_2_2);
        let (w, h) = (img.width() as u16, img.height() as u16);
        encoder
            .encode(img.to_rgb8().as_raw(), w, h, jpeg_encoder::ColorType::Rgb)
            .unwrap();
        out
    }

    #[test]
    fn jpeg_block_means_hash_like_the_same_picture_as_png() {
        use thumbs::synth::base_picture;
        for (seed, w, h) in [(1, 512, 512), (2, 517, 301), (3, 1024, 768), (4, 256, 300)] {
            let img = DynamicImage::ImageRgb8(base_picture(seed, w.max(h))).crop_imm(0, 0, w, h);
            let png = synth::encode(&img, ImageFormat::Png).unwrap();
            let png = hash_file_bytes(&png, JpegDecode::DcOnly).unwrap();
            assert_eq!(png.hash, hash_image(&img));
            for bytes in [
                synth::encode(&img, ImageFormat::Jpeg).unwrap(),
                jpeg_420(&img, 75),
            ] {
                let dc = hash_file_bytes(&bytes, JpegDecode::DcOnly).unwrap();
                assert_eq!((dc.width, dc.height, dc.format.as_str()), (w, h, "jpeg"));
                let bits = (dc.hash.hash ^ png.hash.hash).count_ones()
                    + (dc.hash.centre ^ png.hash.centre).count_ones();
                assert!(bits <= 4, "{w}×{h}: {bits} bits from the PNG's hashes");
                assert!(dc.hash.distance(&png.hash) <= 2);
                let grey = hash_file_bytes(&bytes, JpegDecode::GreyOnly).unwrap();
                assert!(dc.hash.distance(&grey.hash) <= 2);
                assert_eq!(dc.small.len(), grey.small.len());
            }
        }
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

    /// A lossy WebP of `img` written by libwebp at `quality`.
    fn lossy_webp(img: &image::RgbImage, quality: f32) -> Vec<u8> {
        let (w, h) = (img.width() as i32, img.height() as i32);
        let mut out = std::ptr::null_mut();
        // SAFETY: the pixels are w × h × 3 bytes with stride 3w; libwebp
        // allocates the output, which is copied and then freed.
        unsafe {
            let size =
                libwebp_sys::WebPEncodeRGB(img.as_raw().as_ptr(), w, h, 3 * w, quality, &mut out);
            assert!(size > 0 && !out.is_null(), "libwebp could not encode");
            let bytes = std::slice::from_raw_parts(out, size).to_vec();
            libwebp_sys::WebPFree(out.cast());
            bytes
        }
    }

    #[test]
    fn lossy_webps_hash_as_their_full_decode_does() {
        for (seed, w, h) in [(40, 512, 384), (41, 301, 707), (42, 1024, 256)] {
            let img = DynamicImage::ImageRgb8(thumbs::synth::base_picture(seed, w.max(h)))
                .crop_imm(0, 0, w, h);
            let original = hash_image(&img);
            for quality in [30.0, 75.0, 95.0] {
                let file = lossy_webp(&img.to_rgb8(), quality);
                let ours = hash_file_bytes(&file, JpegDecode::DcOnly).unwrap();
                let full = hash_image(&image::load_from_memory(&file).unwrap());
                let d = ours.hash.distance(&full);
                assert!(d <= 2, "{w}x{h} q{quality}: {d} bits from the full decode");
                // No farther from the picture it was made from than the full
                // decode is.
                let (mine, theirs) = (ours.hash.distance(&original), full.distance(&original));
                assert!(mine <= theirs + 2, "{w}x{h} q{quality}: {mine} vs {theirs}");
                assert_eq!(
                    (ours.width, ours.height, ours.format.as_str()),
                    (w, h, "webp")
                );
            }
        }
    }
}
