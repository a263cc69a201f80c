//! Grey thumbnails: a picture area-averaged, in one pass over its rows, into
//! 32×32 cells, for the whole picture and for its centre.
//!
//! Each cell is the exact mean of the pixels that fall in it (integer sums,
//! so rows can be fed as a reader produces them and the picture is never
//! held whole). Grey is ITU-R BT.601 luma, transparent pixels blended over
//! white. A JPEG's 8×8 block means ([`crate::jpeg_dc`]) are averaged with
//! the weight of the pixels each block covers.

use image::DynamicImage;

use crate::jpeg_dc::DcImage;
use crate::png_rows::{PngColour, PngLayout};

/// Side of the grey thumbnails, in cells.
pub const THUMB_SIDE: usize = 32;

/// A grey thumbnail, `THUMB_SIDE` × `THUMB_SIDE`, row-major, values 0–255.
pub type Thumbnail = [f32; THUMB_SIDE * THUMB_SIDE];

/// Share of the width and of the height the centre view keeps. Matches an
/// 8 % crop; on the labelled set 0.88, 0.90 and 0.92 put the same share of
/// cropped copies within 10 bits (78–86 % of 50, within noise) and kept
/// unrelated pictures 12 bits or more apart.
pub const CENTRE_KEEP: f32 = 0.92;

/// The two views of a picture: all of it, and its centre ([`CENTRE_KEEP`] of
/// each side).
#[derive(Debug, Clone, PartialEq)]
pub struct Thumbnails {
    pub full: Thumbnail,
    pub centre: Thumbnail,
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
pub(crate) fn area_average(
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
pub(crate) struct CellSums {
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
    pub(crate) fn new(width: usize, height: usize, centre_keep: f32) -> Option<CellSums> {
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
    pub(crate) fn add_row(&mut self, line: &[u8]) {
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
    pub(crate) fn finish(&self) -> Thumbnails {
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
pub(crate) fn area_average_blocks(dc: &DcImage, centre_keep: f32) -> Thumbnails {
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
pub(crate) fn luma(r: u8, g: u8, b: u8) -> u8 {
    ((77 * u32::from(r) + 150 * u32::from(g) + 29 * u32::from(b) + 128) >> 8) as u8
}

/// Transparent areas are shown (and flattened by trainers) over a light
/// background; blend towards white so a cut-out and its flattened copy match.
#[inline]
pub(crate) fn over_white(value: u8, alpha: u8) -> u8 {
    let (v, a) = (u32::from(value), u32::from(alpha));
    ((v * a + 255 * (255 - a) + 127) / 255) as u8
}

/// How a row of 8-bit pixels is laid out, for turning it into grey.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Samples {
    Grey,
    GreyAlpha,
    Rgb,
    Rgba,
}

/// Fills `line` with the grey of the pixels in `src`.
#[inline]
pub(crate) fn grey_line(samples: Samples, src: &[u8], line: &mut [u8]) {
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

/// How a PNG's rows from [`crate::png_rows`] become grey: the same grey,
/// pixel for pixel, as [`thumbnails_of`] the `image` crate's decode.
pub(crate) enum PngGrey {
    Samples(Samples),
    /// `image` expands a palette to RGB, or to RGBA when it has
    /// transparency; the grey of each entry is worked out once.
    Palette(Box<[u8; 256]>),
}

impl PngGrey {
    pub(crate) fn of(layout: &PngLayout) -> PngGrey {
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
    pub(crate) fn line(&self, row: &[u8], line: &mut [u8]) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synth;

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
    fn grey_and_rgb_pictures_give_the_same_thumbnails() {
        let img = DynamicImage::ImageRgb8(synth::smooth_picture(5, 300, 200));
        let grey = img.to_luma8();
        assert_eq!(
            thumbnails_of(&DynamicImage::ImageLuma8(grey.clone())),
            thumbnails_of_grey(300, 200, grey.as_raw())
        );
    }

    #[test]
    fn tiny_and_transparent_pictures_have_thumbnails() {
        let tiny = thumbnails_of(&DynamicImage::ImageRgb8(synth::smooth_picture(9, 7, 5)));
        assert!(tiny.full.iter().all(|v| (0.0..=255.0).contains(v)));
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
        assert_eq!(thumbnails_of(&clear), thumbnails_of(&white));
    }
}
