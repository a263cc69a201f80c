//! Small colour thumbnails (longest side [`COLOUR_SIDE`]), made from the
//! rows a reader produces anyway, so that showing a picture needs no second
//! decode.

use image::DynamicImage;

use crate::grey::over_white;
use crate::jpeg_dc::DcImage;

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
pub(crate) enum RgbSource<'a> {
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
pub(crate) struct ColourSums {
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
    pub(crate) fn new(width: usize, height: usize) -> ColourSums {
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
    pub(crate) fn wants(&self, y: usize) -> bool {
        y % self.step == self.step / 2 || self.height <= self.step
    }

    /// Adds the sampled pixels of row `y`.
    pub(crate) fn add_row(&mut self, y: usize, row: &[u8], source: RgbSource) {
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

    pub(crate) fn finish(self) -> ColourThumb {
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
pub(crate) fn colour_of_blocks(dc: &DcImage) -> Option<ColourThumb> {
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
