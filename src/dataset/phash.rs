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
//!   inverse DCT, upsampling or colour conversion ([`super::jpeg_dc`]). The
//!   hashes stay as close to the PNG's as a full decode's.
//! - **An 8-bit PNG is read by [`super::png_rows`]**, which undoes the row
//!   filters eight rows at a time and gives the same pixels as the `png`
//!   crate in 56 % of its time; the grey and the thumbnail come from those
//!   rows directly, so hashes are identical to a full decode's.
//! - **A lossy WebP is read by [`super::webp_luma`]**: VP8 stores grey (its
//!   luma plane) apart from colour, so only the luma plane is rebuilt, without
//!   the loop filter, the chroma planes or the colour conversion — a third of
//!   the work of a full decode, hashes within a bit or two of it. A
//!   lossless WebP is decoded by [`super::webp_lossless`] (the same pixels,
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

use std::io::Cursor;
use std::sync::LazyLock;

use image::{DynamicImage, ImageFormat, ImageReader, Limits};

use super::inspect::{self, DecodeFailure, MAX_PIXELS, MAX_SIDE};
use super::jpeg_dc::{DcImage, DcLimits, DcReader, JpegColour};
use super::png_rows::{self, PngColour, PngLayout};
use super::webp_lossless;
use super::webp_luma;

/// Side of the grey thumbnail the hash is computed from.
pub const THUMB_SIDE: usize = 32;
/// Side of the block of low frequencies kept (8 × 8 = 64 bits).
const KEPT: usize = 8;

/// A grey thumbnail, `THUMB_SIDE` × `THUMB_SIDE`, row-major, values 0–255.
pub type Thumbnail = [f32; THUMB_SIDE * THUMB_SIDE];

/// Share of the width and of the height the centre view keeps. Matches an
/// 8 % crop; on the labelled set 0.88, 0.90 and 0.92 put the same share of
/// cropped copies within 10 bits (78–86 % of 50, within noise) and kept
/// unrelated pictures 12 bits or more apart.
pub const CENTRE_KEEP: f32 = 0.92;

/// The two views of a picture that are hashed: all of it, and its centre.
#[derive(Debug, Clone)]
pub struct Thumbnails {
    pub full: Thumbnail,
    pub centre: Thumbnail,
}

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

/// Source range `[start, end)` of each thumbnail cell along one side.
type CellRuns = [(usize, usize); THUMB_SIDE];

/// The source range `[start, end)` of each of the 32 cells along one side,
/// for the full view and for the centre view. Cell `t` of the full view
/// holds the pixels `x` with `x × 32 / len == t`, so every pixel lands in
/// exactly one cell and the cells split the side as evenly as pixels allow;
/// the centre view does the same over its window.
fn cell_runs(len: usize, centre_keep: f32) -> (CellRuns, CellRuns) {
    let split = |offset: usize, span: usize| -> CellRuns {
        std::array::from_fn(|t| {
            let start = (t * span).div_ceil(THUMB_SIDE);
            let end = ((t + 1) * span).div_ceil(THUMB_SIDE);
            (offset + start, offset + end)
        })
    };
    let kept = ((len as f32 * centre_keep).round() as usize).clamp(1, len);
    (split(0, len), split((len - kept) / 2, kept))
}

/// Area-averages grey rows (`grey_row(y, line)` fills `line` with row `y`)
/// into the full and centre thumbnails, in one pass over the picture with
/// integer sums ([`CellSums`]). Pictures too small for that are sampled
/// instead.
fn area_average(
    width: usize,
    height: usize,
    centre_keep: f32,
    mut grey_row: impl FnMut(usize, &mut [u8]),
) -> Thumbnails {
    let mut line = vec![0u8; width];
    if let Some(mut sums) = CellSums::new(width, height, centre_keep) {
        for y in 0..height {
            grey_row(y, &mut line);
            sums.add_row(&line);
        }
        return sums.finish();
    }
    let mut full = [0f32; THUMB_SIDE * THUMB_SIDE];
    let mut centre = [0f32; THUMB_SIDE * THUMB_SIDE];
    if width == 0 || height == 0 {
        return Thumbnails { full, centre };
    }
    let margin = (1.0 - centre_keep) / 2.0;
    for (ty, out) in full.chunks_exact_mut(THUMB_SIDE).enumerate() {
        grey_row(ty * height / THUMB_SIDE, &mut line);
        for (tx, px) in out.iter_mut().enumerate() {
            *px = f32::from(line[tx * width / THUMB_SIDE]);
        }
    }
    let at = |t: usize, len: usize| {
        (((margin + centre_keep * (t as f32 + 0.5) / THUMB_SIDE as f32) * len as f32) as usize)
            .min(len - 1)
    };
    for (ty, out) in centre.chunks_exact_mut(THUMB_SIDE).enumerate() {
        grey_row(at(ty, height), &mut line);
        for (tx, px) in out.iter_mut().enumerate() {
            *px = f32::from(line[at(tx, width)]);
        }
    }
    Thumbnails { full, centre }
}

/// The full and centre thumbnails' cell sums, fed one grey row at a time
/// from the top (so a decoder can hand rows over as it makes them). Rows
/// are added up column by column (one vector add per few pixels) until a
/// row of cells is complete; only then are the columns summed into cells.
struct CellSums {
    height: usize,
    /// The next row's index.
    y: usize,
    cols: CellRuns,
    rows: CellRuns,
    centre_cols: CellRuns,
    centre_rows: CellRuns,
    sums: [u64; THUMB_SIDE * THUMB_SIDE],
    centre_sums: [u64; THUMB_SIDE * THUMB_SIDE],
    columns: Vec<u32>,
    centre_columns: Vec<u32>,
    /// The row of cells being filled, in each view.
    ty: usize,
    cy: usize,
}

impl CellSums {
    /// `None` when a side is too short for every cell of the centre view to
    /// hold a pixel (the caller samples such pictures instead).
    fn new(width: usize, height: usize, centre_keep: f32) -> Option<CellSums> {
        let min_side = (THUMB_SIDE as f32 / centre_keep).ceil() as usize;
        if width < min_side || height < min_side {
            return None;
        }
        let (cols, centre_cols) = cell_runs(width, centre_keep);
        let (rows, centre_rows) = cell_runs(height, centre_keep);
        Some(CellSums {
            height,
            y: 0,
            cols,
            rows,
            centre_cols,
            centre_rows,
            sums: [0; THUMB_SIDE * THUMB_SIDE],
            centre_sums: [0; THUMB_SIDE * THUMB_SIDE],
            columns: vec![0; width],
            centre_columns: vec![0; width],
            ty: 0,
            cy: 0,
        })
    }

    /// Adds the next grey row (`width` pixels). Rows past the last are
    /// ignored.
    fn add_row(&mut self, line: &[u8]) {
        let add = |columns: &mut [u32], line: &[u8]| {
            for (c, &v) in columns.iter_mut().zip(line) {
                *c += u32::from(v);
            }
        };
        let flush = |columns: &mut [u32], runs: &CellRuns, out: &mut [u64]| {
            for (o, &(a, b)) in out.iter_mut().zip(runs) {
                *o += columns[a..b].iter().map(|&v| u64::from(v)).sum::<u64>();
            }
            columns.fill(0);
        };
        let y = self.y;
        if y >= self.height {
            return;
        }
        self.y += 1;
        add(&mut self.columns, line);
        if y + 1 == self.rows[self.ty].1 {
            let ty = self.ty;
            flush(
                &mut self.columns,
                &self.cols,
                &mut self.sums[ty * THUMB_SIDE..(ty + 1) * THUMB_SIDE],
            );
            self.ty += 1;
        }
        let cy = self.cy;
        if cy < THUMB_SIDE && y >= self.centre_rows[cy].0 {
            add(&mut self.centre_columns, line);
            if y + 1 == self.centre_rows[cy].1 {
                flush(
                    &mut self.centre_columns,
                    &self.centre_cols,
                    &mut self.centre_sums[cy * THUMB_SIDE..(cy + 1) * THUMB_SIDE],
                );
                self.cy += 1;
            }
        }
    }

    /// The thumbnails: each cell's mean.
    fn finish(&self) -> Thumbnails {
        debug_assert_eq!(self.y, self.height, "every row was added");
        let mut full = [0f32; THUMB_SIDE * THUMB_SIDE];
        let mut centre = [0f32; THUMB_SIDE * THUMB_SIDE];
        for (thumb, sums, rows, cols) in [
            (&mut full, &self.sums, &self.rows, &self.cols),
            (
                &mut centre,
                &self.centre_sums,
                &self.centre_rows,
                &self.centre_cols,
            ),
        ] {
            for (ty, &(r0, r1)) in rows.iter().enumerate() {
                for (tx, &(c0, c1)) in cols.iter().enumerate() {
                    let count = ((r1 - r0) * (c1 - c0)).max(1);
                    thumb[ty * THUMB_SIDE + tx] = sums[ty * THUMB_SIDE + tx] as f32 / count as f32;
                }
            }
        }
        Thumbnails { full, centre }
    }
}

/// For each cell of `runs` (pixel ranges along one side), the blocks of
/// `block` pixels it overlaps and by how many pixels.
fn block_overlaps(runs: &CellRuns, block: usize) -> [Vec<(usize, u64)>; THUMB_SIDE] {
    std::array::from_fn(|t| {
        let (start, end) = runs[t];
        let mut out = Vec::with_capacity(2 + (end - start) / block);
        let mut b = start / block;
        while b * block < end {
            let lo = start.max(b * block);
            let hi = end.min((b + 1) * block);
            out.push((b, (hi - lo) as u64));
            b += 1;
        }
        out
    })
}

/// The thumbnails of a picture known only by its block means (the DC image
/// of a JPEG): the same area average as over a picture whose every pixel
/// holds its block's mean, so thumbnail cells split blocks exactly where
/// they would split pixels. Needs at least 35 pixels a side.
///
/// Averaging the grid of means as if it were a small picture is simpler but
/// moves the cell borders (and the centre view's window) by up to half a
/// block: measured on 40 generated pictures per size, JPEG q95 4:4:4 and
/// q75 4:2:0, the whole and centre hashes together were 1.4–8 bits (mean)
/// from the hashes of the same picture as PNG that way, against 0.2–0.6
/// bits (at most 2) with this exact weighting from 512 px up, as close as
/// a full grey decode (0.2–0.4).
fn area_average_blocks(dc: &DcImage, centre_keep: f32) -> Thumbnails {
    let (width, height) = (dc.width as usize, dc.height as usize);
    let mut full = [0f32; THUMB_SIDE * THUMB_SIDE];
    let mut centre = [0f32; THUMB_SIDE * THUMB_SIDE];
    let (cols, centre_cols) = cell_runs(width, centre_keep);
    let (rows, centre_rows) = cell_runs(height, centre_keep);
    let mut line = vec![0u64; dc.columns];
    for (thumb, rows, cols) in [
        (&mut full, &rows, &cols),
        (&mut centre, &centre_rows, &centre_cols),
    ] {
        let across = block_overlaps(cols, dc.block_width);
        let down = block_overlaps(rows, dc.block_height);
        for (ty, &(r0, r1)) in rows.iter().enumerate() {
            line.fill(0);
            for &(by, wy) in &down[ty] {
                let start = by.min(dc.rows - 1) * dc.columns;
                let means = &dc.means[start..start + dc.columns];
                for (acc, &m) in line.iter_mut().zip(means) {
                    *acc += wy * u64::from(m);
                }
            }
            for (tx, &(c0, c1)) in cols.iter().enumerate() {
                let sum: u64 = across[tx]
                    .iter()
                    .map(|&(bx, wx)| wx * line[bx.min(dc.columns - 1)])
                    .sum();
                let count = ((r1 - r0) * (c1 - c0)).max(1);
                thumb[ty * THUMB_SIDE + tx] = sum as f32 / count as f32;
            }
        }
    }
    Thumbnails { full, centre }
}

/// ITU-R BT.601 luma (the grey PIL and JPEG use), in integers:
/// (77 R + 150 G + 29 B) / 256.
#[inline]
fn luma(r: u8, g: u8, b: u8) -> u8 {
    ((77 * u32::from(r) + 150 * u32::from(g) + 29 * u32::from(b) + 128) >> 8) as u8
}

/// Transparent areas are shown (and flattened by trainers) over a light
/// background; blend towards white so a cut-out and its flattened copy match.
#[inline]
fn over_white(value: u8, alpha: u8) -> u8 {
    let (v, a) = (u32::from(value), u32::from(alpha));
    ((v * a + 255 * (255 - a) + 127) / 255) as u8
}

/// How a row of 8-bit pixels is laid out, for turning it into grey.
#[derive(Debug, Clone, Copy)]
enum Samples {
    Grey,
    GreyAlpha,
    Rgb,
    Rgba,
}

/// Fills `line` with the grey of the pixels in `src`.
#[inline]
fn grey_line(samples: Samples, src: &[u8], line: &mut [u8]) {
    match samples {
        Samples::Grey => line.copy_from_slice(&src[..line.len()]),
        Samples::GreyAlpha => {
            for (px, p) in line.iter_mut().zip(src.chunks_exact(2)) {
                *px = over_white(p[0], p[1]);
            }
        }
        Samples::Rgb => {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: SSE2 is part of x86-64 itself; every x86-64 processor has it.
            let done = unsafe { sse2::rgb_luma(src, line) };
            #[cfg(not(target_arch = "x86_64"))]
            let done = 0;
            for (px, rgb) in line[done..].iter_mut().zip(src[3 * done..].chunks_exact(3)) {
                *px = luma(rgb[0], rgb[1], rgb[2]);
            }
        }
        Samples::Rgba => {
            for (px, p) in line.iter_mut().zip(src.chunks_exact(4)) {
                *px = over_white(luma(p[0], p[1], p[2]), p[3]);
            }
        }
    }
}

/// [`luma`] four pixels at a time in SSE2 (part of every x86-64 processor).
#[cfg(target_arch = "x86_64")]
mod sse2 {
    use std::arch::x86_64::*;

    /// Writes the grey of as many leading RGB pixels of `src` as it can into
    /// `line` (each exactly [`super::luma`]) and returns how many; the rest
    /// are the caller's.
    #[target_feature(enable = "sse2")]
    pub(super) fn rgb_luma(src: &[u8], line: &mut [u8]) -> usize {
        let weights = _mm_set_epi16(0, 29, 150, 77, 0, 29, 150, 77);
        let zero = _mm_setzero_si128();
        let half = _mm_set1_epi32(128);
        let word = |at: usize| {
            let mut w = [0; 4];
            w.copy_from_slice(&src[at..at + 4]);
            i32::from_le_bytes(w)
        };
        let mut done = 0;
        // Four pixels read as four overlapping words (R G B and the next
        // pixel's R, weighted 0), so the last word needs one byte more.
        while done + 4 <= line.len() && 3 * done + 13 <= src.len() {
            let at = 3 * done;
            let pixels = _mm_set_epi32(word(at + 9), word(at + 6), word(at + 3), word(at));
            let lo = _mm_madd_epi16(_mm_unpacklo_epi8(pixels, zero), weights);
            let hi = _mm_madd_epi16(_mm_unpackhi_epi8(pixels, zero), weights);
            // lo = [77 R0 + 150 G0, 29 B0, 77 R1 + 150 G1, 29 B1], hi alike.
            let evens = _mm_castps_si128(_mm_shuffle_ps::<0b10_00_10_00>(
                _mm_castsi128_ps(lo),
                _mm_castsi128_ps(hi),
            ));
            let odds = _mm_castps_si128(_mm_shuffle_ps::<0b11_01_11_01>(
                _mm_castsi128_ps(lo),
                _mm_castsi128_ps(hi),
            ));
            let grey = _mm_srli_epi32::<8>(_mm_add_epi32(_mm_add_epi32(evens, odds), half));
            let bytes = _mm_packus_epi16(_mm_packs_epi32(grey, grey), zero);
            line[done..done + 4].copy_from_slice(&_mm_cvtsi128_si32(bytes).to_le_bytes());
            done += 4;
        }
        done
    }
}

/// The grey thumbnails of a decoded picture.
pub fn thumbnails_of(image: &DynamicImage) -> Thumbnails {
    let (w, h) = (image.width() as usize, image.height() as usize);
    let (samples, raw): (Samples, &[u8]) = match image {
        DynamicImage::ImageLuma8(b) => (Samples::Grey, b.as_raw()),
        DynamicImage::ImageLumaA8(b) => (Samples::GreyAlpha, b.as_raw()),
        DynamicImage::ImageRgb8(b) => (Samples::Rgb, b.as_raw()),
        DynamicImage::ImageRgba8(b) => (Samples::Rgba, b.as_raw()),
        // 16-bit and float pictures are rare in training sets: convert once.
        other if other.color().has_alpha() => {
            return thumbnails_of(&DynamicImage::ImageRgba8(other.to_rgba8()));
        }
        other => return thumbnails_of(&DynamicImage::ImageRgb8(other.to_rgb8())),
    };
    let stride = raw.len() / h.max(1);
    area_average(w, h, CENTRE_KEEP, |y, line| {
        grey_line(samples, &raw[y * stride..(y + 1) * stride], line);
    })
}

/// How a PNG's rows from [`super::png_rows`] become grey: the same grey,
/// pixel for pixel, as [`thumbnails_of`] the `image` crate's decode.
enum PngGrey {
    Samples(Samples),
    /// `image` expands a palette to RGB, or to RGBA when it has
    /// transparency; the grey of each entry is worked out once.
    Palette(Box<[u8; 256]>),
}

impl PngGrey {
    fn of(layout: &PngLayout) -> PngGrey {
        PngGrey::Samples(match layout.colour {
            PngColour::Grey => Samples::Grey,
            PngColour::GreyAlpha => Samples::GreyAlpha,
            PngColour::Rgb => Samples::Rgb,
            PngColour::Rgba => Samples::Rgba,
            PngColour::Palette => {
                return PngGrey::Palette(Box::new(std::array::from_fn(|i| {
                    let [r, g, b, a] = layout.palette[i];
                    let l = luma(r, g, b);
                    if layout.palette_alpha {
                        over_white(l, a)
                    } else {
                        l
                    }
                })));
            }
        })
    }

    /// Fills `line` with the grey of one row's pixel bytes.
    #[inline]
    fn line(&self, row: &[u8], line: &mut [u8]) {
        match self {
            PngGrey::Samples(samples) => grey_line(*samples, row, line),
            PngGrey::Palette(grey) => {
                for (px, &index) in line.iter_mut().zip(row) {
                    *px = grey[usize::from(index)];
                }
            }
        }
    }
}

/// The grey thumbnails of 8-bit grey pixels (`width` × `height`, row-major).
pub fn thumbnails_of_grey(width: usize, height: usize, grey: &[u8]) -> Thumbnails {
    area_average(width, height, CENTRE_KEEP, |y, line| {
        line.copy_from_slice(&grey[y * width..(y + 1) * width]);
    })
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
    fn from_thumbnails(thumbs: &Thumbnails, width: u32, height: u32, format: String) -> HashedFile {
        HashedFile {
            hash: hash_thumbnails(thumbs),
            width,
            height,
            format,
            small: super::crop_check::small_thumbnail(&thumbs.full),
            colour: None,
            windows: window_hashes(&thumbs.full),
        }
    }

    fn with_colour(mut self, colour: Option<ColourThumb>) -> HashedFile {
        self.colour = colour;
        self
    }
}

/// Longest side of the colour thumbnails kept for contact sheets, in
/// pixels: 7 KB a picture at most, enough to tell copies apart on a sheet.
pub const COLOUR_SIDE: u32 = 48;

/// A small colour picture (longest side [`COLOUR_SIDE`]), made while the
/// picture is decoded for its hash, so that a contact sheet needs no second
/// decode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColourThumb {
    pub width: u32,
    pub height: u32,
    /// `width` × `height` RGB pixels, row-major.
    pub rgb: Vec<u8>,
}

impl ColourThumb {
    /// The thumbnail size for a picture of `width` × `height`: the longest
    /// side [`COLOUR_SIDE`] (or the picture's own, when smaller), the shape
    /// kept.
    pub fn size_for(width: u32, height: u32) -> (u32, u32) {
        let long = width.max(height).max(1);
        let side = long.min(COLOUR_SIDE);
        let scale = |v: u32| {
            ((u64::from(v) * u64::from(side) + u64::from(long) / 2) / u64::from(long)).max(1) as u32
        };
        (scale(width), scale(height))
    }

    /// The thumbnail of a decoded picture (transparency over white).
    pub fn of_image(image: &DynamicImage) -> ColourThumb {
        let (w, h) = (image.width() as usize, image.height() as usize);
        let mut sums = ColourSums::new(w, h);
        match image {
            DynamicImage::ImageRgb8(b) => {
                let raw = b.as_raw();
                for y in 0..h {
                    if sums.wants(y) {
                        sums.add_row(y, &raw[y * 3 * w..(y + 1) * 3 * w], RgbSource::Rgb);
                    }
                }
            }
            other => {
                let rgba = other.to_rgba8();
                let raw = rgba.as_raw();
                for y in 0..h {
                    if sums.wants(y) {
                        sums.add_row(y, &raw[y * 4 * w..(y + 1) * 4 * w], RgbSource::Rgba);
                    }
                }
            }
        }
        sums.finish()
    }

    /// Memory it holds, in bytes.
    pub fn bytes(&self) -> usize {
        self.rgb.len()
    }
}

/// How the bytes of a row of pixels give RGB.
#[derive(Clone, Copy)]
enum RgbSource<'a> {
    Grey,
    GreyAlpha,
    Rgb,
    Rgba,
    /// Palette indices, with the palette as RGB over white.
    Palette(&'a [[u8; 3]; 256]),
    /// VP8L pixels, `0xAARRGGBB`, as little-endian words.
    Argb {
        alpha: bool,
    },
}

impl<'a> RgbSource<'a> {
    #[inline]
    fn pixel(&self, row: &[u8], x: usize) -> [u8; 3] {
        match self {
            RgbSource::Grey => [row[x]; 3],
            RgbSource::GreyAlpha => [over_white(row[2 * x], row[2 * x + 1]); 3],
            RgbSource::Rgb => [row[3 * x], row[3 * x + 1], row[3 * x + 2]],
            RgbSource::Rgba => {
                let a = row[4 * x + 3];
                [0, 1, 2].map(|c| over_white(row[4 * x + c], a))
            }
            RgbSource::Palette(table) => table[usize::from(row[x])],
            RgbSource::Argb { alpha } => {
                let p = &row[4 * x..4 * x + 4];
                // Little-endian 0xAARRGGBB: B, G, R, A.
                let rgb = [p[2], p[1], p[0]];
                if *alpha {
                    rgb.map(|c| over_white(c, p[3]))
                } else {
                    rgb
                }
            }
        }
    }
}

/// Area-averaged colour thumbnail sums over a sample of the pixels: every
/// `step`-th row and column, so that each thumbnail cell averages a few
/// pixels a side whatever the picture's size (the cost stays a few
/// thousand pixels a picture).
struct ColourSums {
    height: usize,
    thumb_width: usize,
    thumb_height: usize,
    step: usize,
    sums: Vec<u32>,
    counts: Vec<u32>,
    /// Thumbnail column of each sampled picture column.
    columns: Vec<u32>,
}

impl ColourSums {
    fn new(width: usize, height: usize) -> ColourSums {
        let (tw, th) = ColourThumb::size_for(width as u32, height as u32);
        let (tw, th) = (tw as usize, th as usize);
        // About two samples across each cell: a sheet needs no more, and
        // the cost stays a few thousand pixels a picture.
        let cell = (width / tw.max(1)).min(height / th.max(1));
        let step = (cell / 2).max(1);
        let columns = (0..width)
            .skip(step / 2)
            .step_by(step)
            .map(|x| (x * tw / width) as u32)
            .collect();
        ColourSums {
            height,
            thumb_width: tw,
            thumb_height: th,
            step,
            sums: vec![0; tw * th * 3],
            counts: vec![0; tw * th],
            columns,
        }
    }

    /// Whether row `y` is one of the sampled rows.
    #[inline]
    fn wants(&self, y: usize) -> bool {
        y % self.step == self.step / 2 || self.height <= self.step
    }

    /// Adds the sampled pixels of row `y`.
    fn add_row(&mut self, y: usize, row: &[u8], source: RgbSource) {
        if y >= self.height {
            return;
        }
        let ty = y * self.thumb_height / self.height;
        let base = ty * self.thumb_width;
        for (k, &tx) in self.columns.iter().enumerate() {
            let x = self.step / 2 + k * self.step;
            let px = source.pixel(row, x);
            let cell = base + tx as usize;
            for (sum, &v) in self.sums[3 * cell..3 * cell + 3].iter_mut().zip(&px) {
                *sum += u32::from(v);
            }
            self.counts[cell] += 1;
        }
    }

    fn finish(self) -> ColourThumb {
        let mut rgb = vec![0u8; self.sums.len()];
        for (cell, &n) in self.counts.iter().enumerate() {
            for c in 0..3 {
                rgb[3 * cell + c] = (self.sums[3 * cell + c] + n / 2)
                    .checked_div(n)
                    .unwrap_or(0) as u8;
            }
        }
        ColourThumb {
            width: self.thumb_width as u32,
            height: self.thumb_height as u32,
            rgb,
        }
    }
}

/// The colour thumbnail of a JPEG known by its block means: each cell
/// averages the Y, Cb and Cr means of the blocks it covers, converted to
/// RGB as JFIF does. `None` without the colour means.
fn colour_of_blocks(dc: &DcImage) -> Option<ColourThumb> {
    let chroma = dc.chroma.as_ref()?;
    let (tw, th) = ColourThumb::size_for(dc.width, dc.height);
    let (tw, th) = (tw as usize, th as usize);
    let (w, h) = (dc.width as usize, dc.height as usize);
    // Mean of the blocks of a grid that cover pixels [x0, x1) × [y0, y1).
    let mean = |means: &[u8],
                columns: usize,
                rows: usize,
                bw: usize,
                bh: usize,
                x0: usize,
                x1: usize,
                y0: usize,
                y1: usize|
     -> f32 {
        let (bx0, bx1) = (
            (x0 / bw).min(columns - 1),
            ((x1.max(x0 + 1) - 1) / bw).min(columns - 1),
        );
        let (by0, by1) = (
            (y0 / bh).min(rows - 1),
            ((y1.max(y0 + 1) - 1) / bh).min(rows - 1),
        );
        let mut sum = 0u32;
        for by in by0..=by1 {
            for bx in bx0..=bx1 {
                sum += u32::from(means[by * columns + bx]);
            }
        }
        sum as f32 / ((bx1 - bx0 + 1) * (by1 - by0 + 1)) as f32
    };
    let mut rgb = Vec::with_capacity(tw * th * 3);
    for ty in 0..th {
        let (y0, y1) = (ty * h / th, (ty + 1) * h / th);
        for tx in 0..tw {
            let (x0, x1) = (tx * w / tw, (tx + 1) * w / tw);
            let y = mean(
                &dc.means,
                dc.columns,
                dc.rows,
                dc.block_width,
                dc.block_height,
                x0,
                x1,
                y0,
                y1,
            );
            let cb = mean(
                &chroma.cb,
                chroma.columns,
                chroma.rows,
                chroma.block_width,
                chroma.block_height,
                x0,
                x1,
                y0,
                y1,
            ) - 128.0;
            let cr = mean(
                &chroma.cr,
                chroma.columns,
                chroma.rows,
                chroma.block_width,
                chroma.block_height,
                x0,
                x1,
                y0,
                y1,
            ) - 128.0;
            for v in [
                y + 1.402 * cr,
                y - 0.344_136 * cb - 0.714_136 * cr,
                y + 1.772 * cb,
            ] {
                rgb.push(v.round().clamp(0.0, 255.0) as u8);
            }
        }
    }
    Some(ColourThumb {
        width: tw as u32,
        height: th as u32,
        rgb,
    })
}

/// Shortest side, in pixels, of a JPEG hashed from its block means. Below
/// it the 32×32 thumbnail would be made of fewer than 32 blocks a side, so
/// smaller JPEGs are decoded in grey instead.
pub const DC_MIN_SIDE: u32 = 256;

/// How JPEG files are decoded for hashing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum JpegDecode {
    /// The 8×8 block means of the grey (Y) channel, read from the DC
    /// coefficients ([`super::jpeg_dc`]): no inverse DCT at all. JPEGs it
    /// cannot read, that are not grey or YCbCr, or whose shortest side is
    /// under [`DC_MIN_SIDE`] are decoded as with `GreyOnly`. What the
    /// duplicate search and curation use.
    #[default]
    DcOnly,
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
    hash_file_bytes_keeping(bytes, jpeg, false)
}

/// [`hash_file_bytes`], also keeping a [`ColourThumb`] when `colour` is
/// asked for and the decoding gives colour anyway: everything but lossy
/// WebPs and JPEGs read in grey (small, progressive, or not interleaved),
/// whose thumbnails [`colour_thumbnail`] makes with a second decode.
pub fn hash_file_bytes_keeping(
    bytes: &[u8],
    jpeg: JpegDecode,
    colour: bool,
) -> Result<HashedFile, DecodeFailure> {
    if bytes.is_empty() {
        return Err(DecodeFailure::ZeroBytes);
    }
    let format = inspect::sniff(bytes).ok_or(DecodeFailure::NotAnImage)?;
    if format == ImageFormat::Png
        && let Some(done) = hash_png(bytes, colour)
    {
        return Ok(done);
    }
    if format == ImageFormat::WebP
        && let Some(done) = hash_webp_lossy(bytes).or_else(|| hash_webp_lossless(bytes, colour))
    {
        return Ok(done);
    }
    if format == ImageFormat::Jpeg {
        if jpeg == JpegDecode::DcOnly
            && let Some(done) = hash_jpeg_dc(bytes, colour)
        {
            return Ok(done);
        }
        if jpeg != JpegDecode::Full
            && let Some(done) = hash_jpeg_grey(bytes)
        {
            return Ok(done);
        }
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
    if !within_limits(width, height) {
        return Err(DecodeFailure::Bomb { width, height });
    }
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(MAX_PIXELS * 8);
    let image = reader(limits).decode().map_err(failure)?;
    Ok(HashedFile::from_thumbnails(
        &thumbnails_of(&image),
        width,
        height,
        inspect::format_name(format),
    )
    .with_colour(colour.then(|| ColourThumb::of_image(&image))))
}

/// The colour thumbnail of a picture file, decoding it as cheaply as that
/// allows (the hash pass's thumbnail where it makes one, else a full
/// decode); `None` when it cannot be decoded.
pub fn colour_thumbnail(bytes: &[u8]) -> Option<ColourThumb> {
    let hashed = hash_file_bytes_keeping(bytes, JpegDecode::DcOnly, true).ok()?;
    if hashed.colour.is_some() {
        return hashed.colour;
    }
    let format = inspect::sniff(bytes)?;
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(MAX_PIXELS * 8);
    reader.limits(limits);
    Some(ColourThumb::of_image(&reader.decode().ok()?))
}

/// The fast PNG path ([`super::png_rows`]); `None` when the file needs the
/// general decoder (16-bit, interlaced, colour key, damaged, too large).
fn hash_png(bytes: &[u8], colour: bool) -> Option<HashedFile> {
    let head = png_rows::header(bytes)?;
    let (width, height) = (head.width, head.height);
    if !within_limits(width, height) {
        return None;
    }
    let file = png_rows::open(bytes)?;
    let grey = PngGrey::of(&file.layout);
    let (w, h) = (file.layout.width, file.layout.height);
    let palette: Box<[[u8; 3]; 256]> = Box::new(std::array::from_fn(|i| {
        let [r, g, b, a] = file.layout.palette[i];
        if file.layout.palette_alpha {
            [r, g, b].map(|c| over_white(c, a))
        } else {
            [r, g, b]
        }
    }));
    let source = match file.layout.colour {
        PngColour::Grey => RgbSource::Grey,
        PngColour::GreyAlpha => RgbSource::GreyAlpha,
        PngColour::Rgb => RgbSource::Rgb,
        PngColour::Rgba => RgbSource::Rgba,
        PngColour::Palette => RgbSource::Palette(&palette),
    };
    let mut colours = colour.then(|| ColourSums::new(w, h));
    let thumbs = if let Some(mut sums) = CellSums::new(w, h, CENTRE_KEEP) {
        // Rows go into the sums as they are decoded; the picture is never
        // held whole.
        let mut line = vec![0u8; w];
        let mut y = 0;
        file.rows(|row| {
            grey.line(row, &mut line);
            sums.add_row(&line);
            if let Some(c) = colours.as_mut()
                && c.wants(y)
            {
                c.add_row(y, row, source);
            }
            y += 1;
        })?;
        sums.finish()
    } else {
        // Too small to average over: sampled, from the whole decode.
        let png = file.decode()?;
        if let Some(c) = colours.as_mut() {
            for y in 0..h {
                if c.wants(y) {
                    c.add_row(y, png.row(y), source);
                }
            }
        }
        area_average(w, h, CENTRE_KEEP, |y, line| grey.line(png.row(y), line))
    };
    Some(
        HashedFile::from_thumbnails(
            &thumbs,
            width,
            height,
            inspect::format_name(ImageFormat::Png),
        )
        .with_colour(colours.map(ColourSums::finish)),
    )
}

/// Whether a picture of this size may be decoded (the audit's
/// decompression-bomb limits).
fn within_limits(width: u32, height: u32) -> bool {
    width <= MAX_SIDE && height <= MAX_SIDE && u64::from(width) * u64::from(height) <= MAX_PIXELS
}

/// The lossy WebP path: the grey straight from VP8's luma plane
/// ([`super::webp_luma`]); `None` for lossless, alpha, animated or damaged
/// files, and for sizes past the limits (the general decoder then explains).
fn hash_webp_lossy(bytes: &[u8]) -> Option<HashedFile> {
    let luma = webp_luma::decode(bytes, within_limits)?;
    let thumbnails = area_average(luma.width, luma.height, CENTRE_KEEP, |y, line| {
        luma.grey_row(y, line)
    });
    Some(HashedFile::from_thumbnails(
        &thumbnails,
        luma.width as u32,
        luma.height as u32,
        inspect::format_name(ImageFormat::WebP),
    ))
}

/// The lossless WebP path ([`super::webp_lossless`]): the same pixels as
/// the general decoder, so the same hash; `None` when the file needs it.
fn hash_webp_lossless(bytes: &[u8], colour: bool) -> Option<HashedFile> {
    let picture = webp_lossless::decode(bytes, within_limits)?;
    let (w, h) = (picture.width, picture.height);
    // Without the header's alpha flag decoders give RGB, alpha ignored.
    let alpha = picture.has_alpha;
    let colours = colour.then(|| {
        let mut c = ColourSums::new(w, h);
        let mut row = vec![0u8; 4 * w];
        for y in 0..h {
            if !c.wants(y) {
                continue;
            }
            for (out, px) in row
                .chunks_exact_mut(4)
                .zip(&picture.argb[y * w..(y + 1) * w])
            {
                out.copy_from_slice(&px.to_le_bytes());
            }
            c.add_row(y, &row, RgbSource::Argb { alpha });
        }
        c.finish()
    });
    let thumbnails = area_average(w, h, CENTRE_KEEP, |y, line| {
        for (out, &px) in line.iter_mut().zip(&picture.argb[y * w..(y + 1) * w]) {
            let grey = luma((px >> 16) as u8, (px >> 8) as u8, px as u8);
            *out = if alpha {
                over_white(grey, (px >> 24) as u8)
            } else {
                grey
            };
        }
    });
    Some(
        HashedFile::from_thumbnails(
            &thumbnails,
            w as u32,
            h as u32,
            inspect::format_name(ImageFormat::WebP),
        )
        .with_colour(colours),
    )
}

/// The block-means JPEG path; `None` when the file needs a decoder (see
/// [`JpegDecode::DcOnly`]).
fn hash_jpeg_dc(bytes: &[u8], colour: bool) -> Option<HashedFile> {
    let limits = DcLimits {
        max_side: MAX_SIDE,
        max_pixels: MAX_PIXELS,
    };
    let reader = DcReader::new(bytes, limits).ok()?;
    let (width, height) = reader.dimensions();
    if width.min(height) < DC_MIN_SIDE
        || !matches!(reader.colour(), JpegColour::Grey | JpegColour::YCbCr)
    {
        return None;
    }
    let dc = if colour {
        reader.decode_with_colour()
    } else {
        reader.decode()
    }
    .ok()?;
    Some(
        HashedFile::from_thumbnails(
            &area_average_blocks(&dc, CENTRE_KEEP),
            width,
            height,
            "jpeg".into(),
        )
        .with_colour(colour_of_blocks(&dc)),
    )
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
    Some(HashedFile::from_thumbnails(
        &thumbnails_of_grey(width, height, &grey),
        u32::try_from(width).ok()?,
        u32::try_from(height).ok()?,
        "jpeg".into(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataset::synth;

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
            let img = DynamicImage::ImageRgb8(crate::dataset::dedup_bench::base_picture(seed, 400));
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

    #[test]
    fn colour_thumbnails_come_from_every_fast_path() {
        use crate::dataset::dedup_bench::{base_picture, encode};
        let img = DynamicImage::ImageRgb8(base_picture(8, 320));
        let reference = ColourThumb::of_image(&img);
        assert_eq!(
            (reference.width, reference.height),
            (COLOUR_SIDE, COLOUR_SIDE)
        );
        for format in [ImageFormat::Png, ImageFormat::WebP, ImageFormat::Jpeg] {
            let bytes = encode(&img, format, 95).unwrap();
            let kept = hash_file_bytes_keeping(&bytes, JpegDecode::DcOnly, true)
                .unwrap()
                .colour
                .unwrap_or_else(|| panic!("{format:?}: no thumbnail"));
            assert_eq!((kept.width, kept.height), (COLOUR_SIDE, COLOUR_SIDE));
            let mean_diff = kept
                .rgb
                .iter()
                .zip(&reference.rgb)
                .map(|(a, b)| (i32::from(*a) - i32::from(*b)).abs())
                .sum::<i32>() as f32
                / kept.rgb.len() as f32;
            // Lossless formats give the same pixels; the JPEG's block means
            // are a little softer.
            assert!(mean_diff < 6.0, "{format:?}: {mean_diff}");
            assert!(
                hash_file_bytes(&bytes, JpegDecode::DcOnly)
                    .unwrap()
                    .colour
                    .is_none(),
                "only kept when asked for"
            );
        }
        // A wide picture keeps its shape.
        let wide = DynamicImage::ImageRgb8(synth::smooth_picture(1, 300, 100));
        let t = ColourThumb::of_image(&wide);
        assert_eq!((t.width, t.height, t.rgb.len()), (48, 16, 48 * 16 * 3));
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
    fn pngs_hash_exactly_as_the_general_decode_does() {
        use crate::dataset::png_rows::tests::{chunk, encode_png, samples};
        use png::{BitDepth, ColorType, Filter};
        let plte: Vec<u8> = (0..=255u8).flat_map(|i| [i, 255 - i, i / 3]).collect();
        let trns: Vec<u8> = (0..=255u8).map(|i| 255 - i / 2).collect();
        let indices = samples(9, 301, 203, 1);
        let cases = [
            ("grey", ColorType::Grayscale, 1, None),
            ("grey + alpha", ColorType::GrayscaleAlpha, 2, None),
            ("RGB", ColorType::Rgb, 3, None),
            ("RGBA", ColorType::Rgba, 4, None),
            ("palette", ColorType::Indexed, 1, Some((&plte[..], None))),
            (
                "palette with transparency",
                ColorType::Indexed,
                1,
                Some((&plte[..], Some(&trns[..]))),
            ),
        ];
        for (what, colour, channels, palette) in cases {
            let pixels = if palette.is_some() {
                indices.clone()
            } else {
                samples(9, 301, 203, channels)
            };
            let bytes = encode_png(
                301,
                203,
                colour,
                BitDepth::Eight,
                Filter::Adaptive,
                palette,
                &pixels,
            );
            let fast = hash_png(&bytes, false).expect("the fast path reads it");
            let general = image::load_from_memory(&bytes).unwrap();
            assert_eq!(fast.hash, hash_image(&general), "{what}");
            assert_eq!(
                fast.small,
                crop_check_small(&general),
                "{what}: the crop check's thumbnail"
            );
            assert_eq!(hash_file_bytes(&bytes, JpegDecode::DcOnly).unwrap(), fast);
        }
        // A short palette: indices past its end, and a tRNS longer than it
        // (both read as the `png` crate reads them: opaque black, and no
        // transparency at all).
        let short: Vec<u8> = (0..10u8).flat_map(|i| [i * 25, 255 - i * 20, 7]).collect();
        let trns_long = [90u8; 12];
        let plain = encode_png(
            40,
            36,
            ColorType::Indexed,
            BitDepth::Eight,
            Filter::Sub,
            Some((&short, None)),
            &samples(4, 40, 36, 1)
                .iter()
                .map(|v| v % 14)
                .collect::<Vec<u8>>(),
        );
        let with_long_trns = {
            // IHDR, then a tRNS of 12 entries for a palette of 10, then the rest.
            let mut out = plain[..33].to_vec();
            out.extend(chunk(b"tRNS", &trns_long));
            out.extend_from_slice(&plain[33..]);
            out
        };
        for (what, bytes) in [
            ("short palette", plain),
            ("tRNS longer than the palette", with_long_trns),
        ] {
            let fast = hash_png(&bytes, false).expect("the fast path reads it");
            let general = image::load_from_memory(&bytes).unwrap();
            assert_eq!(fast.hash, hash_image(&general), "{what}");
            assert_eq!(fast.small, crop_check_small(&general), "{what}");
        }
        // A damaged PNG still gets the general decoder's explanation.
        let mut damaged = encode_png(
            64,
            64,
            ColorType::Rgb,
            BitDepth::Eight,
            Filter::Paeth,
            None,
            &samples(2, 64, 64, 3),
        );
        let at = damaged.len() - 20;
        damaged[at] ^= 0x55;
        assert!(hash_png(&damaged, false).is_none());
        assert!(matches!(
            hash_file_bytes(&damaged, JpegDecode::DcOnly),
            Err(DecodeFailure::Corrupt(_))
        ));
    }

    fn crop_check_small(image: &DynamicImage) -> Vec<u8> {
        crate::dataset::crop_check::small_thumbnail(&thumbnails_of(image).full)
    }

    #[test]
    fn rgb_rows_turn_grey_exactly_as_luma_says() {
        let mut rng = synth::Rng::new(8);
        // Every value of each channel, with the other two random, and rows
        // of every length up to 40 (the vector part and the tail).
        let mut src: Vec<u8> = (0..=255u8)
            .flat_map(|v| [[v, 0, 0], [0, v, 0], [0, 0, v]])
            .flatten()
            .collect();
        src.extend((0..3 * 999).map(|_| rng.below(256) as u8));
        src.extend([255; 30]);
        for len in (0..40).chain([src.len() / 3]) {
            let mut line = vec![0u8; len];
            grey_line(Samples::Rgb, &src[..3 * len], &mut line);
            let want: Vec<u8> = src[..3 * len]
                .chunks_exact(3)
                .map(|p| luma(p[0], p[1], p[2]))
                .collect();
            assert_eq!(line, want, "{len} pixels");
        }
    }

    #[test]
    fn thumbnails_are_the_mean_of_each_cell() {
        let mut rng = synth::Rng::new(4);
        for (w, h) in [(37usize, 53usize), (300, 200), (513, 35), (64, 64)] {
            let grey: Vec<u8> = (0..w * h).map(|_| rng.below(256) as u8).collect();
            let thumbs = thumbnails_of_grey(w, h, &grey);
            // Cell t of a side of `len` pixels holds the pixels x with
            // x × 32 / len == t; the centre view does the same over the
            // middle CENTRE_KEEP of the side.
            let cell = |x: usize, len: usize, centre: bool| -> Option<usize> {
                let kept = if centre {
                    ((len as f32 * CENTRE_KEEP).round() as usize).clamp(1, len)
                } else {
                    len
                };
                let x = x.checked_sub((len - kept) / 2)?;
                (x < kept).then_some(x * THUMB_SIDE / kept)
            };
            for (centre, thumb) in [(false, &thumbs.full), (true, &thumbs.centre)] {
                let mut sums = vec![(0u64, 0u64); THUMB_SIDE * THUMB_SIDE];
                for y in 0..h {
                    for x in 0..w {
                        if let (Some(ty), Some(tx)) = (cell(y, h, centre), cell(x, w, centre)) {
                            let s = &mut sums[ty * THUMB_SIDE + tx];
                            s.0 += u64::from(grey[y * w + x]);
                            s.1 += 1;
                        }
                    }
                }
                for (i, &(sum, n)) in sums.iter().enumerate() {
                    let want = sum as f32 / n as f32;
                    assert!(
                        (thumb[i] - want).abs() < 1e-3,
                        "{w}×{h} centre {centre} cell {i}: {} vs {want}",
                        thumb[i]
                    );
                }
            }
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
    fn lossy_webps_hash_as_their_full_decode_does() {
        use crate::dataset::webp_luma::tests::{Lossy, encode_lossy, picture};
        let mut worst = 0;
        for (i, (w, h)) in [(512, 384), (301, 707), (1024, 256)]
            .into_iter()
            .enumerate()
        {
            let rgb = picture(w, h, 40 + i as u32);
            let original = hash_image(&DynamicImage::ImageRgb8(
                image::RgbImage::from_raw(w as u32, h as u32, rgb.clone()).unwrap(),
            ));
            for quality in [30.0, 75.0, 95.0] {
                let settings = Lossy {
                    quality,
                    ..Lossy::default()
                };
                let file = encode_lossy(&rgb, w, h, settings);
                let fast = hash_webp_lossy(&file).expect("a lossy WebP is read");
                let full = image::load_from_memory(&file).unwrap();
                let d = fast.hash.distance(&hash_image(&full));
                assert!(d <= 2, "{w}x{h} q{quality}: {d} bits from the full decode");
                // No farther from the picture it was made from than the full
                // decode is.
                let (ours, theirs) = (
                    fast.hash.distance(&original),
                    hash_image(&full).distance(&original),
                );
                assert!(ours <= theirs + 2, "{w}x{h} q{quality}: {ours} vs {theirs}");
                let small_diff = fast
                    .small
                    .iter()
                    .zip(crop_check_small(&full))
                    .map(|(&a, b)| a.abs_diff(b))
                    .max()
                    .unwrap();
                assert!(
                    small_diff <= 4,
                    "{w}x{h} q{quality}: crop thumbnail off by {small_diff}"
                );
                assert_eq!((fast.width, fast.height), (w as u32, h as u32));
                assert_eq!(fast.format, "webp");
                assert_eq!(hash_file_bytes(&file, JpegDecode::DcOnly).unwrap(), fast);
                worst = worst.max(d);
            }
        }
        eprintln!("lossy WebP: at most {worst} bits from the full decode");
    }

    #[test]
    fn lossless_webps_hash_exactly_as_the_general_decode_does() {
        use crate::dataset::webp_luma::tests::{encode_libwebp, picture};
        for (i, (w, h)) in [(256, 192), (97, 301)].into_iter().enumerate() {
            let rgb = picture(w, h, 60 + i as u32);
            // Written by `image` (image-webp's encoder) and by libwebp, with
            // and without alpha.
            let mut by_image = Vec::new();
            DynamicImage::ImageRgb8(
                image::RgbImage::from_raw(w as u32, h as u32, rgb.clone()).unwrap(),
            )
            .write_to(&mut Cursor::new(&mut by_image), ImageFormat::WebP)
            .unwrap();
            let rgba: Vec<u8> = rgb
                .chunks_exact(3)
                .enumerate()
                .flat_map(|(k, p)| [p[0], p[1], p[2], (k % 251) as u8])
                .collect();
            let opaque: Vec<u8> = rgb
                .chunks_exact(3)
                .flat_map(|p| [p[0], p[1], p[2], 255])
                .collect();
            let by_libwebp = |pixels: &[u8]| {
                encode_libwebp(pixels, 4, w, h, 75.0, |config| {
                    config.lossless = 1;
                    config.exact = 1;
                })
            };
            for (what, file) in [
                ("image", by_image),
                ("libwebp, alpha", by_libwebp(&rgba)),
                ("libwebp, opaque", by_libwebp(&opaque)),
            ] {
                let fast =
                    hash_webp_lossless(&file, false).unwrap_or_else(|| panic!("{what}: read"));
                let general = image::load_from_memory(&file).unwrap();
                assert_eq!(fast.hash, hash_image(&general), "{what} {w}x{h}");
                assert_eq!(fast.small, crop_check_small(&general), "{what} {w}x{h}");
                assert_eq!(hash_file_bytes(&file, JpegDecode::DcOnly).unwrap(), fast);
            }
        }
    }

    #[test]
    fn webps_the_luma_reader_cannot_read_still_hash() {
        // Lossless (the only WebP `image` writes) goes to the general decoder.
        let mut lossless = Vec::new();
        DynamicImage::ImageRgb8(image::RgbImage::from_fn(64, 48, |x, y| {
            image::Rgb([x as u8 * 3, y as u8 * 5, 90])
        }))
        .write_to(&mut Cursor::new(&mut lossless), ImageFormat::WebP)
        .unwrap();
        assert!(hash_webp_lossy(&lossless).is_none());
        let general = hash_image(&image::load_from_memory(&lossless).unwrap());
        assert_eq!(
            hash_file_bytes(&lossless, JpegDecode::DcOnly).unwrap().hash,
            general
        );
        // A cut-off lossy file is reported as damaged, not hashed from zeros.
        use crate::dataset::webp_luma::tests::{Lossy, encode_lossy, picture};
        let file = encode_lossy(&picture(200, 150, 3), 200, 150, Lossy::default());
        let cut = &file[..file.len() * 2 / 3];
        assert!(hash_webp_lossy(cut).is_none());
        assert!(matches!(
            hash_file_bytes(cut, JpegDecode::DcOnly),
            Err(DecodeFailure::Corrupt(_))
        ));
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
        use crate::dataset::dedup_bench::base_picture;
        for (seed, w, h) in [(1, 512, 512), (2, 517, 301), (3, 1024, 768), (4, 256, 300)] {
            let img = DynamicImage::ImageRgb8(base_picture(seed, w.max(h))).crop_imm(0, 0, w, h);
            let png = synth::encode(&img, ImageFormat::Png).unwrap();
            let png = hash_file_bytes(&png, JpegDecode::DcOnly).unwrap();
            assert_eq!(png.hash, hash_image(&img));
            for bytes in [
                synth::encode(&img, ImageFormat::Jpeg).unwrap(),
                jpeg_420(&img, 75),
            ] {
                assert!(
                    hash_jpeg_dc(&bytes, false).is_some(),
                    "{w}×{h} not read from block means"
                );
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
    fn jpegs_the_block_means_cannot_serve_are_decoded() {
        // Small: decoded in grey.
        let small = jpeg_420(&picture(6), 80);
        assert!(hash_jpeg_dc(&small, false).is_none());
        assert_eq!(
            hash_file_bytes(&small, JpegDecode::DcOnly),
            hash_file_bytes(&small, JpegDecode::GreyOnly)
        );
        // Progressive: decoded in grey.
        let img = DynamicImage::ImageRgb8(synth::smooth_picture(7, 400, 300));
        let mut progressive = Vec::new();
        let mut encoder = jpeg_encoder::Encoder::new(&mut progressive, 85);
        encoder.set_progressive(true);
        encoder
            .encode(
                img.to_rgb8().as_raw(),
                400,
                300,
                jpeg_encoder::ColorType::Rgb,
            )
            .unwrap();
        assert!(hash_jpeg_dc(&progressive, false).is_none());
        assert_eq!(
            hash_file_bytes(&progressive, JpegDecode::DcOnly),
            hash_file_bytes(&progressive, JpegDecode::GreyOnly)
        );
        // CMYK: the first component is not grey; decoded in full colour.
        let cmyk: Vec<u8> = (0..400 * 300 * 4).map(|i| (i * 7 % 251) as u8).collect();
        let mut bytes = Vec::new();
        jpeg_encoder::Encoder::new(&mut bytes, 90)
            .encode(&cmyk, 400, 300, jpeg_encoder::ColorType::Cmyk)
            .unwrap();
        assert!(hash_jpeg_dc(&bytes, false).is_none());
        assert_eq!(
            hash_file_bytes(&bytes, JpegDecode::DcOnly),
            hash_file_bytes(&bytes, JpegDecode::Full)
        );
        // Truncated: decoded by the fallback (which, like zune-jpeg, pads).
        let whole = jpeg_420(
            &DynamicImage::ImageRgb8(synth::smooth_picture(8, 400, 300)),
            85,
        );
        let cut = &whole[..whole.len() / 2];
        assert!(hash_jpeg_dc(cut, false).is_none());
        assert_eq!(
            hash_file_bytes(cut, JpegDecode::DcOnly),
            hash_file_bytes(cut, JpegDecode::GreyOnly)
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
