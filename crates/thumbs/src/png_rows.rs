//! PNG pixels for hashing, decoded faster than a general PNG decoder does.
//!
//! A perceptual hash needs only a 32×32 grey thumbnail, but a PNG cannot be
//! decoded at reduced scale: every row is predicted from the row above and
//! the pixel to its left, so every byte must be inflated and unfiltered.
//! Measured on the duplicate benchmark's 512 px pictures, undoing the Paeth
//! filter (what encoders pick for photographs and paintings) took 60 % of a
//! PNG's decoding time in the `png` crate, inflating 35 %. Paeth is slow
//! because each pixel waits for its left neighbour: a chain of dependent
//! instructions as long as the row.
//!
//! Here rows are undone several at a time along a diagonal wavefront: row
//! `r + 1` works on pixel `x − 1` while row `r` works on pixel `x`, which is
//! all it needs from the row above. The rows' pixels sit side by side in
//! vector registers (eight rows in four SSE2 registers, SSE2 being part of
//! every x86-64 processor, for 3- and 4-byte pixels; four rows in plain
//! Rust otherwise), so one chain of vector operations advances a pixel of
//! every row, and what the lower rows need from the upper ones is already
//! in the previous step's result (shifted by one lane), not in memory. Rows
//! with other filters ride along: each row keeps its own filter's
//! prediction. Measured there, a 512 px RGB PNG took 0.97 ms instead of the
//! `png` crate's 1.73, of which inflating (the same `fdeflate` the crate
//! uses) is now 0.70. The result is byte-identical to the `png` crate's
//! (tested).
//!
//! Only what training sets hold is read here: 8-bit grey, grey + alpha,
//! RGB, RGBA and palette pictures, not interlaced, with no transparent
//! colour key on grey or RGB. Anything else, and anything damaged (a bad
//! checksum, a short or broken stream), returns `None` so the caller falls
//! back to the general decoder, which reports the damage.

/// PNG's 8-byte signature.
const SIGNATURE: [u8; 8] = [0x89, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a];

/// How a decoded pixel's bytes are laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PngColour {
    Grey,
    GreyAlpha,
    Rgb,
    Rgba,
    /// One byte per pixel, an index into the palette.
    Palette,
}

impl PngColour {
    /// Bytes per pixel at 8 bits per sample.
    pub fn bytes_per_pixel(self) -> usize {
        match self {
            PngColour::Grey | PngColour::Palette => 1,
            PngColour::GreyAlpha => 2,
            PngColour::Rgb => 3,
            PngColour::Rgba => 4,
        }
    }
}

/// What a PNG's pixel bytes mean, from its header and palette chunks.
#[derive(Debug)]
pub struct PngLayout {
    pub width: usize,
    pub height: usize,
    pub colour: PngColour,
    /// Palette entries as RGBA (alpha 255 where the file gives none);
    /// indices past the palette read as opaque black, as in the `png` crate.
    pub palette: Box<[[u8; 4]; 256]>,
    /// Whether the palette has transparency (a `tRNS` chunk no longer than
    /// the palette).
    pub palette_alpha: bool,
}

impl PngLayout {
    /// Bytes in one row of pixels (without the filter byte).
    pub fn row_bytes(&self) -> usize {
        self.width * self.colour.bytes_per_pixel()
    }
}

/// A PNG whose chunks have been read (every checksum checked): its layout
/// and its compressed rows, decoded by [`PngFile::rows`].
#[derive(Debug)]
pub struct PngFile<'a> {
    pub layout: PngLayout,
    idat: Vec<&'a [u8]>,
}

/// A decoded 8-bit PNG: its rows of pixels, one after the other.
#[derive(Debug)]
pub struct PngPixels {
    pub layout: PngLayout,
    data: Vec<u8>,
}

impl PngPixels {
    /// Row `y`'s pixel bytes.
    pub fn row(&self, y: usize) -> &[u8] {
        let len = self.layout.row_bytes();
        &self.data[y * len..(y + 1) * len]
    }
}

/// What the header says, before any pixel is decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PngHeader {
    pub width: u32,
    pub height: u32,
    pub colour: PngColour,
}

/// Reads an 8-bit, non-interlaced PNG's header; `None` for anything else.
pub fn header(bytes: &[u8]) -> Option<PngHeader> {
    if bytes.len() < 8 + 8 + 13 || bytes[..8] != SIGNATURE || &bytes[12..16] != b"IHDR" {
        return None;
    }
    let ihdr = &bytes[16..29];
    let be = |b: &[u8]| u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
    if be(&bytes[8..12]) != 13 {
        return None;
    }
    let (width, height) = (be(&ihdr[0..4]), be(&ihdr[4..8]));
    let (depth, colour_type, compression, filter, interlace) =
        (ihdr[8], ihdr[9], ihdr[10], ihdr[11], ihdr[12]);
    if width == 0 || height == 0 || depth != 8 || compression != 0 || filter != 0 || interlace != 0
    {
        return None;
    }
    let colour = match colour_type {
        0 => PngColour::Grey,
        2 => PngColour::Rgb,
        3 => PngColour::Palette,
        4 => PngColour::GreyAlpha,
        6 => PngColour::Rgba,
        _ => return None,
    };
    Some(PngHeader {
        width,
        height,
        colour,
    })
}

/// Decodes `bytes` whole; `None` for what this reader leaves to the
/// general decoder (see the module notes). The caller checks the header's
/// size against its limits first.
pub fn decode(bytes: &[u8]) -> Option<PngPixels> {
    open(bytes)?.decode()
}

/// Reads `bytes`' chunks up to the end of the picture, checking every
/// checksum; `None` for what this reader leaves to the general decoder.
/// No pixel is decoded yet.
pub fn open(bytes: &[u8]) -> Option<PngFile<'_>> {
    let head = header(bytes)?;
    let (width, height) = (head.width as usize, head.height as usize);
    let bpp = head.colour.bytes_per_pixel();
    let mut palette = Box::new([[0, 0, 0, 255]; 256]);
    let mut palette_len = None;
    let mut transparency = None;
    let mut idat: Vec<&[u8]> = Vec::new();
    let mut pos = 8;
    let mut ended = false;
    while pos + 12 <= bytes.len() {
        let len = u32::from_be_bytes(bytes[pos..pos + 4].try_into().ok()?) as usize;
        let end = pos.checked_add(12)?.checked_add(len)?;
        if end > bytes.len() {
            return None;
        }
        let kind = &bytes[pos + 4..pos + 8];
        let body = &bytes[pos + 8..pos + 8 + len];
        let crc = u32::from_be_bytes(bytes[end - 4..end].try_into().ok()?);
        if crc32fast::hash(&bytes[pos + 4..end - 4]) != crc {
            return None;
        }
        match kind {
            b"PLTE" => {
                if !len.is_multiple_of(3) || len > 3 * 256 {
                    return None;
                }
                for (entry, rgb) in palette.iter_mut().zip(body.chunks_exact(3)) {
                    *entry = [rgb[0], rgb[1], rgb[2], 255];
                }
                palette_len = Some(len / 3);
            }
            b"tRNS" => {
                // A colour key on grey or RGB pictures is left to the
                // general decoder, which turns it into an alpha channel.
                if head.colour != PngColour::Palette {
                    return None;
                }
                transparency = Some(body);
            }
            b"IDAT" => idat.push(body),
            b"IEND" => {
                ended = true;
                break;
            }
            _ => {}
        }
        pos = end;
    }
    if !ended || idat.is_empty() {
        return None;
    }
    let mut palette_alpha = false;
    if head.colour == PngColour::Palette {
        // A palette picture without a palette is damaged; a tRNS longer
        // than the palette is ignored, as the `png` crate does.
        let entries = palette_len?;
        if let Some(alphas) = transparency.filter(|a| a.len() <= entries) {
            for (entry, &alpha) in palette.iter_mut().zip(alphas) {
                entry[3] = alpha;
            }
            palette_alpha = true;
        }
    }
    width
        .checked_mul(bpp)?
        .checked_add(1)?
        .checked_mul(height)?;
    Some(PngFile {
        layout: PngLayout {
            width,
            height,
            colour: head.colour,
            palette,
            palette_alpha,
        },
        idat,
    })
}

impl PngFile<'_> {
    /// Decodes every row into one buffer.
    pub fn decode(self) -> Option<PngPixels> {
        let mut data = Vec::with_capacity(self.layout.row_bytes() * self.layout.height);
        self.rows(|row| data.extend_from_slice(row))?;
        Some(PngPixels {
            layout: self.layout,
            data,
        })
    }

    /// Decodes the rows top to bottom, handing each row's pixel bytes to
    /// `each_row` as soon as it is unfiltered. The stream is inflated into
    /// a sliding window (the 32 KiB a deflate copy can reach back, plus a
    /// band) and unfiltered a band of rows at a time, so a picture is never
    /// held whole: hashing a 1024 px RGB PNG needs about 200 KB instead of
    /// 3 MB, and a 10,000 px one under 1 MB instead of 300. (It is not
    /// measurably faster: inflating and unfiltering are bound by their own
    /// arithmetic, not by memory.) `None`, possibly after some rows, when
    /// the stream is damaged or short.
    pub fn rows(&self, mut each_row: impl FnMut(&[u8])) -> Option<()> {
        let bpp = self.layout.colour.bytes_per_pixel();
        let row_len = self.layout.row_bytes() + 1;
        let total = row_len * self.layout.height;
        let joined;
        let stream: &[u8] = if let [only] = self.idat[..] {
            only
        } else {
            joined = self.idat.concat();
            &joined
        };
        // A band is a multiple of eight rows (the wavefront's group), about
        // BAND_BYTES in all.
        let band_rows = (BAND_BYTES / row_len / MAX_ROWS).max(1) * MAX_ROWS;
        let band_bytes = band_rows * row_len;
        // Row 0 of `band` is the last row of the band before, unfiltered;
        // zeros before the first band, which is what PNG puts above the
        // picture.
        let mut band = vec![0u8; (band_rows + 1) * row_len];
        let mut unfilter_band = |raw: &[u8], each_row: &mut dyn FnMut(&[u8])| -> Option<()> {
            let rows = raw.len() / row_len;
            band[row_len..row_len + raw.len()].copy_from_slice(raw);
            unfilter_from(&mut band[..row_len * (rows + 1)], row_len, bpp, 1)?;
            for row in band[row_len..row_len * (rows + 1)].chunks_exact(row_len) {
                each_row(&row[1..]);
            }
            band.copy_within(rows * row_len..(rows + 1) * row_len, 0);
            Some(())
        };
        let mut window = vec![0u8; WINDOW + band_bytes + BAND_BYTES.max(band_bytes)];
        let mut decompressor = fdeflate::Decompressor::new();
        // Every chunk's CRC has been checked already.
        decompressor.ignore_adler32();
        // `window[..pos]` is inflated; `window[start..pos]` not yet handed
        // to a band; `base` bytes of the stream were dropped off the front.
        let (mut read, mut pos, mut start, mut base) = (0, 0, 0, 0);
        while base + pos < total {
            if window.len() - pos < band_bytes {
                // Keep the last WINDOW bytes (what back-references reach) and
                // what has not been handed over yet.
                let keep = start.min(pos.saturating_sub(WINDOW));
                window.copy_within(keep..pos, 0);
                base += keep;
                pos -= keep;
                start -= keep;
            }
            let end = window.len().min(pos + (total - base - pos));
            let (r, w) = decompressor
                .read(&stream[read..], &mut window[..end], pos, true)
                .ok()?;
            read += r;
            pos += w;
            while pos - start >= band_bytes {
                unfilter_band(&window[start..start + band_bytes], &mut each_row)?;
                start += band_bytes;
            }
            if decompressor.is_done() || (r == 0 && w == 0) {
                break;
            }
        }
        if base + pos != total {
            return None;
        }
        if pos > start {
            unfilter_band(&window[start..pos], &mut each_row)?;
        }
        Some(())
    }
}

/// What a band of rows unfiltered together holds, roughly: small enough to
/// stay in the first-level cache with the window.
const BAND_BYTES: usize = 32 * 1024;

/// How far back a deflate stream's copies reach.
const WINDOW: usize = 32 * 1024;

/// Which vector instructions the wavefront's steady part uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Vector {
    /// Plain Rust (what other processors, and 1- or 2-byte pixels, get).
    Plain,
    /// SSE2: every x86-64 processor. (AVX2, with all sixteen lanes in one
    /// register, was measured slower: its lane shift has three times the
    /// latency, and the step-to-step chain is what limits the speed.)
    Sse2,
}

impl Vector {
    /// The best this processor has.
    fn detect() -> Vector {
        if cfg!(target_arch = "x86_64") {
            Vector::Sse2
        } else {
            Vector::Plain
        }
    }
}

/// Undoes the row filters of rows `first..` in place (the rows before are
/// already undone). `data` holds rows of `row_len` bytes, each a filter
/// byte then the filtered pixels. Rows go eight or four at a time through
/// [`rows_together`]; what is left at the bottom one by one.
fn unfilter_from(data: &mut [u8], row_len: usize, bpp: usize, first: usize) -> Option<()> {
    unfilter_with(data, row_len, bpp, Vector::detect(), first)
}

fn unfilter_with(
    data: &mut [u8],
    row_len: usize,
    bpp: usize,
    vector: Vector,
    first: usize,
) -> Option<()> {
    let height = data.len() / row_len;
    let width = (row_len - 1) / bpp;
    let zeros = vec![0u8; row_len - 1];
    // Eight rows at a time where the steady part is in SSE2 (two chains of
    // four rows' worth of work per step hide each other's latency); four
    // in plain Rust.
    let most = if vector == Vector::Sse2 && bpp >= 3 {
        8
    } else {
        4
    };
    let mut y = first;
    while y < height {
        let rows = [most, 4]
            .into_iter()
            .find(|&n| y + n <= height && width >= n);
        if let Some(n) = rows {
            let mut filters = [0u8; MAX_ROWS];
            for (r, f) in filters[..n].iter_mut().enumerate() {
                *f = data[(y + r) * row_len];
            }
            if filters.iter().any(|&f| f > PAETH) {
                return None;
            }
            let group = Group {
                y0: y,
                row_len,
                width,
                filters,
            };
            let plain = Vector::Plain;
            match (bpp, n) {
                (1, _) => rows_together::<1, 4>(data, group, &zeros, plain),
                (2, _) => rows_together::<2, 4>(data, group, &zeros, plain),
                (3, 8) => rows_together::<3, 8>(data, group, &zeros, vector),
                (3, _) => rows_together::<3, 4>(data, group, &zeros, vector),
                (_, 8) => rows_together::<4, 8>(data, group, &zeros, vector),
                _ => rows_together::<4, 4>(data, group, &zeros, vector),
            }
            y += n;
            continue;
        }
        let (above, rest) = data.split_at_mut(y * row_len);
        let row = &mut rest[..row_len];
        let prev = if y == 0 {
            &zeros[..]
        } else {
            &above[(y - 1) * row_len + 1..y * row_len]
        };
        unfilter_row(row[0], prev, &mut row[1..], bpp)?;
        y += 1;
    }
    Some(())
}

const PAETH: u8 = 4;

/// Undoes one row's filter (`prev`: the row above, already unfiltered, or
/// zeros for the first row). `None` for an unknown filter type.
fn unfilter_row(filter: u8, prev: &[u8], row: &mut [u8], bpp: usize) -> Option<()> {
    let n = row.len();
    let first = bpp.min(n);
    match filter {
        0 => {}
        1 => {
            for i in bpp..n {
                row[i] = row[i].wrapping_add(row[i - bpp]);
            }
        }
        2 => {
            for (v, &u) in row.iter_mut().zip(prev) {
                *v = v.wrapping_add(u);
            }
        }
        3 => {
            for i in 0..first {
                row[i] = row[i].wrapping_add(prev[i] / 2);
            }
            for i in bpp..n {
                let sum = u16::from(row[i - bpp]) + u16::from(prev[i]);
                row[i] = row[i].wrapping_add((sum / 2) as u8);
            }
        }
        PAETH => {
            for i in 0..first {
                row[i] = row[i].wrapping_add(prev[i]);
            }
            for i in bpp..n {
                row[i] = row[i].wrapping_add(paeth(row[i - bpp], prev[i], prev[i - bpp]));
            }
        }
        _ => return None,
    }
    Some(())
}

/// The Paeth predictor as the PNG specification defines it: whichever of
/// left (`a`), above (`b`) and above-left (`c`) is closest to `a + b − c`,
/// ties going to `a`, then `b`.
#[inline]
fn paeth(a: u8, b: u8, c: u8) -> u8 {
    // |p − a| = |b − c|, |p − b| = |a − c|, |p − c| = |(a − c) + (b − c)|.
    let pa = b.abs_diff(c);
    let pb = a.abs_diff(c);
    // When c lies outside [min(a, b), max(a, b)], |p − c| is larger than the
    // other two and c cannot win; otherwise it is ||a − c| − |b − c||.
    let pc = if (a < c) == (c < b) {
        pa.abs_diff(pb)
    } else {
        u8::MAX
    };
    if pa <= pb && pa <= pc {
        a
    } else if pb <= pc {
        b
    } else {
        c
    }
}

/// The most rows undone together.
const MAX_ROWS: usize = 8;

/// Up to eight rows' pixels, one 4-sample lane per row (samples past a
/// pixel's own are unused), widened to 16 bits so that every comparison is
/// one signed vector instruction even on baseline x86-64.
type Lanes = [i16; 4 * MAX_ROWS];

/// Paeth's prediction in the formulation of Sean Barrett's stb_image,
/// which has no unsigned comparisons and no branches: `t = 3c − (a + b)`
/// decides between `min(a, b)`, `max(a, b)` and `c`.
#[inline(always)]
fn paeth_wide(a: i16, b: i16, c: i16) -> i16 {
    let threshold = 3 * c - (a + b);
    let (low, high) = (a.min(b), a.max(b));
    let t0 = if high <= threshold { low } else { c };
    if threshold <= low { high } else { t0 }
}

/// One wavefront step on the first `R` rows' lanes: each row's filter's
/// prediction from `a` (left), `b` (above) and `c` (above-left), added to
/// the filtered bytes.
#[inline(always)]
fn predict_lanes<const R: usize>(
    a: &Lanes,
    b: &Lanes,
    c: &Lanes,
    filtered: &Lanes,
    filters: [u8; MAX_ROWS],
) -> Lanes {
    let mut out: Lanes = [0; 4 * MAX_ROWS];
    for i in 0..4 * R {
        let (a, b, c) = (a[i], b[i], c[i]);
        let predicted = match filters[i / 4] {
            0 => 0,
            1 => a,
            2 => b,
            3 => (a + b) >> 1,
            _ => paeth_wide(a, b, c),
        };
        out[i] = (filtered[i] + predicted) & 0xff;
    }
    out
}

fn load<const BPP: usize>(lanes: &mut Lanes, lane: usize, pixel: &[u8]) {
    for (l, &v) in lanes[4 * lane..4 * lane + BPP].iter_mut().zip(pixel) {
        *l = i16::from(v);
    }
}

fn store<const BPP: usize>(pixel: &mut [u8], lanes: &Lanes, lane: usize) {
    for (p, &v) in pixel.iter_mut().zip(&lanes[4 * lane..4 * lane + BPP]) {
        *p = v as u8;
    }
}

/// Rows undone together: the first, the rows' length with their filter
/// byte, the pixels per row and each row's filter.
#[derive(Debug, Clone, Copy)]
struct Group {
    y0: usize,
    row_len: usize,
    width: usize,
    filters: [u8; MAX_ROWS],
}

/// Undoes the filters of rows `y0 .. y0 + R` along a diagonal: at step
/// `s`, row `y0 + r` works on pixel `s − r`. For row `r ≥ 1` the pixel
/// above (`b`) is what row `r − 1` produced one step earlier and the one
/// above-left (`c`) is the previous step's `b`, so the chain from step to
/// step stays in registers. `zeros` stands in for the row above the first.
fn rows_together<const BPP: usize, const R: usize>(
    data: &mut [u8],
    group: Group,
    zeros: &[u8],
    vector: Vector,
) {
    let Group {
        y0,
        row_len,
        width,
        filters,
    } = group;
    let (head, rest) = data.split_at_mut(y0 * row_len);
    let above = if y0 == 0 {
        zeros
    } else {
        &head[(y0 - 1) * row_len + 1..]
    };
    let mut rows: Vec<&mut [u8]> = rest[..R * row_len]
        .chunks_exact_mut(row_len)
        .map(|row| &mut row[1..])
        .collect();

    let mut out: Lanes = [0; 4 * MAX_ROWS];
    let mut prev_b: Lanes = [0; 4 * MAX_ROWS];
    // One step with bounds checks, for the first and last R − 1 steps where
    // some rows are before their first pixel or past their last (and for
    // every step in plain Rust).
    let step = |s: usize, rows: &mut [&mut [u8]], out: &mut Lanes, prev_b: &mut Lanes| {
        let mut b: Lanes = [0; 4 * MAX_ROWS];
        if s < width {
            load::<BPP>(&mut b, 0, &above[s * BPP..]);
        }
        b[4..4 * R].copy_from_slice(&out[..4 * R - 4]);
        let mut filtered: Lanes = [0; 4 * MAX_ROWS];
        for (r, row) in rows.iter().enumerate() {
            if let Some(x) = s.checked_sub(r).filter(|&x| x < width) {
                load::<BPP>(&mut filtered, r, &row[x * BPP..]);
            }
        }
        let next = predict_lanes::<R>(out, &b, prev_b, &filtered, filters);
        for (r, row) in rows.iter_mut().enumerate() {
            if let Some(x) = s.checked_sub(r).filter(|&x| x < width) {
                store::<BPP>(&mut row[x * BPP..], &next, r);
            }
        }
        // Lanes before their row's first pixel must stay zero: they are the
        // left and above-left neighbours of the first pixels.
        *out = next;
        for r in (s + 1)..R {
            out[4 * r..4 * r + 4].fill(0);
        }
        *prev_b = b;
    };
    #[cfg(target_arch = "x86_64")]
    if BPP >= 3 && vector == Vector::Sse2 {
        for s in 0..R - 1 {
            step(s, &mut rows, &mut out, &mut prev_b);
        }
        // SAFETY: SSE2 is part of x86-64 itself; every x86-64 processor has it.
        let next =
            unsafe { x86::steady_steps::<BPP, R>(&mut rows, above, group, &mut out, &mut prev_b) };
        for s in next..width + R - 1 {
            step(s, &mut rows, &mut out, &mut prev_b);
        }
        return;
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = vector;
    for s in 0..width + R - 1 {
        step(s, &mut rows, &mut out, &mut prev_b);
    }
}

/// The steady part of [`rows_together`] for 3- and 4-byte pixels, in SSE2
/// (part of every x86-64 processor): the rows' samples as 16-bit lanes, two
/// rows per register.
#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::{Group, Lanes, MAX_ROWS, PAETH};

    /// Registers for up to eight rows (two per register).
    type Registers = [__m128i; MAX_ROWS / 2];

    /// Four bytes from `at` (which must have four bytes after it).
    #[inline(always)]
    fn word(bytes: &[u8], at: usize) -> i32 {
        let mut w = [0; 4];
        w.copy_from_slice(&bytes[at..at + 4]);
        i32::from_le_bytes(w)
    }

    #[target_feature(enable = "sse2")]
    fn to_registers(lanes: &Lanes) -> Registers {
        std::array::from_fn(|k| {
            let l = &lanes[8 * k..8 * k + 8];
            _mm_set_epi16(l[7], l[6], l[5], l[4], l[3], l[2], l[1], l[0])
        })
    }

    #[target_feature(enable = "sse2")]
    fn from_registers(registers: &Registers) -> Lanes {
        let mut out: Lanes = [0; 4 * MAX_ROWS];
        for (k, &v) in registers.iter().enumerate() {
            let o = &mut out[8 * k..8 * k + 8];
            o[0] = _mm_extract_epi16::<0>(v) as i16;
            o[1] = _mm_extract_epi16::<1>(v) as i16;
            o[2] = _mm_extract_epi16::<2>(v) as i16;
            o[3] = _mm_extract_epi16::<3>(v) as i16;
            o[4] = _mm_extract_epi16::<4>(v) as i16;
            o[5] = _mm_extract_epi16::<5>(v) as i16;
            o[6] = _mm_extract_epi16::<6>(v) as i16;
            o[7] = _mm_extract_epi16::<7>(v) as i16;
        }
        out
    }

    /// All-ones in the lanes of the rows whose filter is `filter`.
    #[target_feature(enable = "sse2")]
    fn rows_with(filters: [u8; MAX_ROWS], filter: u8) -> Registers {
        let m = filters.map(|f| if f == filter { -1i16 } else { 0 });
        std::array::from_fn(|k| {
            let (lo, hi) = (m[2 * k], m[2 * k + 1]);
            _mm_set_epi16(hi, hi, hi, hi, lo, lo, lo, lo)
        })
    }

    #[target_feature(enable = "sse2")]
    #[inline]
    fn select(mask: __m128i, yes: __m128i, no: __m128i) -> __m128i {
        _mm_or_si128(_mm_and_si128(mask, yes), _mm_andnot_si128(mask, no))
    }

    /// Steps `R − 1 .. width − 1` of the wavefront (returns where it
    /// stopped): every row has a pixel, with at least four bytes from it to
    /// the end of its row, so pixels move as 32-bit words. For 3-byte
    /// pixels the fourth byte is the next pixel's, written back as it was
    /// read.
    #[target_feature(enable = "sse2")]
    pub(super) fn steady_steps<const BPP: usize, const R: usize>(
        rows: &mut [&mut [u8]],
        above: &[u8],
        group: Group,
        out: &mut Lanes,
        prev_b: &mut Lanes,
    ) -> usize {
        let Group { width, filters, .. } = group;
        let zero = _mm_setzero_si128();
        let bytes = _mm_set1_epi16(0xff);
        let keep = if BPP == 3 { 0xff00_0000_u32 as i32 } else { 0 };
        let all_paeth = filters[..R].iter().all(|&f| f == PAETH);
        let masks = [1, 2, 3, PAETH].map(|f| rows_with(filters, f));
        let widen = |w0: i32, w1: i32| {
            _mm_unpacklo_epi8(
                _mm_unpacklo_epi32(_mm_cvtsi32_si128(w0), _mm_cvtsi32_si128(w1)),
                zero,
            )
        };
        let paeth = |a: __m128i, b: __m128i, c: __m128i| {
            let threshold =
                _mm_sub_epi16(_mm_add_epi16(c, _mm_add_epi16(c, c)), _mm_add_epi16(a, b));
            let low = _mm_min_epi16(a, b);
            let high = _mm_max_epi16(a, b);
            let t0 = select(_mm_cmpgt_epi16(high, threshold), c, low);
            select(_mm_cmpgt_epi16(threshold, low), t0, high)
        };
        // Any mix of filters: every prediction, each row keeping its own.
        let predict = |a: __m128i, b: __m128i, c: __m128i, k: usize| {
            let avg = _mm_srli_epi16::<1>(_mm_add_epi16(a, b));
            let p = _mm_and_si128(masks[0][k], a);
            let p = _mm_or_si128(p, _mm_and_si128(masks[1][k], b));
            let p = _mm_or_si128(p, _mm_and_si128(masks[2][k], avg));
            _mm_or_si128(p, _mm_and_si128(masks[3][k], paeth(a, b, c)))
        };
        let mut a = to_registers(out);
        let mut c = to_registers(prev_b);
        let end = width.saturating_sub(1);
        let first = R - 1;
        if end <= first {
            return first;
        }
        let read = |rows: &[&mut [u8]], s: usize| -> [i32; MAX_ROWS] {
            std::array::from_fn(|r| {
                if r < R {
                    word(rows[r], (s - r) * BPP)
                } else {
                    0
                }
            })
        };
        let mut next_words = read(rows, first);
        for s in first..end {
            // The next step's pixels are read before this step's are
            // written: with 3-byte pixels they share a byte, and reading
            // a word that overlaps a pending write stalls the processor.
            let words = next_words;
            if s + 1 < end {
                next_words = read(rows, s + 1);
            }
            // Above: the row over the group for row 0, else the row above's
            // result from the previous step (the high half of the register
            // before, or the low half of the same one).
            let up = widen(word(above, s * BPP), 0);
            let mut next = [zero; MAX_ROWS / 2];
            let mut b = [zero; MAX_ROWS / 2];
            for k in 0..R / 2 {
                b[k] = if k == 0 {
                    _mm_unpacklo_epi64(up, a[0])
                } else {
                    _mm_castpd_si128(_mm_shuffle_pd::<0b01>(
                        _mm_castsi128_pd(a[k - 1]),
                        _mm_castsi128_pd(a[k]),
                    ))
                };
                let p = if all_paeth {
                    paeth(a[k], b[k], c[k])
                } else {
                    predict(a[k], b[k], c[k], k)
                };
                let f = widen(words[2 * k], words[2 * k + 1]);
                next[k] = _mm_and_si128(_mm_add_epi16(f, p), bytes);
            }
            for half in 0..R / 4 {
                let packed = _mm_packus_epi16(next[2 * half], next[2 * half + 1]);
                let results = [
                    _mm_cvtsi128_si32(packed),
                    _mm_cvtsi128_si32(_mm_srli_si128::<4>(packed)),
                    _mm_cvtsi128_si32(_mm_srli_si128::<8>(packed)),
                    _mm_cvtsi128_si32(_mm_srli_si128::<12>(packed)),
                ];
                for (i, &result) in results.iter().enumerate() {
                    let r = 4 * half + i;
                    let at = (s - r) * BPP;
                    let w = result & !keep | words[r] & keep;
                    rows[r][at..at + 4].copy_from_slice(&w.to_le_bytes());
                }
            }
            a = next;
            c = b;
        }
        *out = from_registers(&a);
        *prev_b = from_registers(&c);
        end
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::synth::{Rng, smooth_picture};

    /// Undoes the filters one byte at a time, as the specification reads:
    /// `a` left, `b` above, `c` above-left, zero outside the picture.
    fn reference_unfilter(data: &mut [u8], row_len: usize, bpp: usize) {
        for y in 0..data.len() / row_len {
            let filter = data[y * row_len];
            for i in 1..row_len {
                let at = |y: usize, i: usize| data[y * row_len + i];
                let a = if i > bpp { at(y, i - bpp) } else { 0 };
                let b = if y > 0 { at(y - 1, i) } else { 0 };
                let c = if y > 0 && i > bpp {
                    at(y - 1, i - bpp)
                } else {
                    0
                };
                let (a16, b16, c16) = (i16::from(a), i16::from(b), i16::from(c));
                let p = a16 + b16 - c16;
                let (pa, pb, pc) = ((p - a16).abs(), (p - b16).abs(), (p - c16).abs());
                let predicted = match filter {
                    0 => 0,
                    1 => a,
                    2 => b,
                    3 => ((u16::from(a) + u16::from(b)) / 2) as u8,
                    _ if pa <= pb && pa <= pc => a,
                    _ if pb <= pc => b,
                    _ => c,
                };
                data[y * row_len + i] = data[y * row_len + i].wrapping_add(predicted);
            }
        }
    }

    /// Every way of undoing filters this processor can run.
    fn vectors() -> Vec<Vector> {
        let mut out = vec![Vector::Plain];
        if cfg!(target_arch = "x86_64") {
            out.push(Vector::Sse2);
        }
        out
    }

    #[test]
    fn unfiltering_rows_together_equals_the_specification() {
        let mut rng = Rng::new(11);
        for case in 0..800 {
            let bpp = 1 + case % 4;
            let width = 1 + rng.below(23) as usize;
            let height = 1 + rng.below(21) as usize;
            let row_len = width * bpp + 1;
            let mut data: Vec<u8> = (0..row_len * height)
                .map(|_| rng.below(256) as u8)
                .collect();
            for y in 0..height {
                // Half the cases mostly Paeth (what encoders write for
                // photographs and paintings), half any mix of filters.
                data[y * row_len] = if case % 8 < 4 && rng.below(4) > 0 {
                    PAETH
                } else {
                    rng.below(5) as u8
                };
            }
            let mut want = data.clone();
            reference_unfilter(&mut want, row_len, bpp);
            for vector in vectors() {
                let mut got = data.clone();
                unfilter_with(&mut got, row_len, bpp, vector, 0).unwrap();
                assert_eq!(got, want, "bpp {bpp}, {width}×{height}, {vector:?}");
            }
        }
    }

    #[test]
    fn paeth_equals_the_specification() {
        for a in 0..=255u8 {
            for b in (0..=255u8).step_by(3) {
                for c in (0..=255u8).step_by(5) {
                    let p = i16::from(a) + i16::from(b) - i16::from(c);
                    let (pa, pb, pc) = (
                        (p - i16::from(a)).abs(),
                        (p - i16::from(b)).abs(),
                        (p - i16::from(c)).abs(),
                    );
                    let want = if pa <= pb && pa <= pc {
                        a
                    } else if pb <= pc {
                        b
                    } else {
                        c
                    };
                    assert_eq!(paeth(a, b, c), want, "{a} {b} {c}");
                    let lanes = |v: u8| [i16::from(v); 32];
                    assert_eq!(
                        predict_lanes::<4>(&lanes(a), &lanes(b), &lanes(c), &[0; 32], [PAETH; 8])
                            [5],
                        i16::from(want)
                    );
                }
            }
        }
    }

    /// A PNG written by the `png` crate.
    pub(crate) fn encode_png(
        width: u32,
        height: u32,
        colour: png::ColorType,
        depth: png::BitDepth,
        filter: png::Filter,
        palette: Option<(&[u8], Option<&[u8]>)>,
        pixels: &[u8],
    ) -> Vec<u8> {
        let mut out = Vec::new();
        let mut encoder = png::Encoder::new(&mut out, width, height);
        encoder.set_color(colour);
        encoder.set_depth(depth);
        encoder.set_filter(filter);
        if let Some((plte, trns)) = palette {
            encoder.set_palette(plte.to_vec());
            if let Some(trns) = trns {
                encoder.set_trns(trns.to_vec());
            }
        }
        let mut writer = encoder.write_header().unwrap();
        writer.write_image_data(pixels).unwrap();
        writer.finish().unwrap();
        out
    }

    /// The `png` crate's decode of `bytes`, without transformations.
    fn png_crate_rows(bytes: &[u8]) -> Vec<u8> {
        let mut reader = png::Decoder::new(std::io::Cursor::new(bytes))
            .read_info()
            .unwrap();
        let mut buf = vec![0; reader.output_buffer_size().unwrap()];
        let info = reader.next_frame(&mut buf).unwrap();
        buf.truncate(info.buffer_size());
        buf
    }

    /// Pixels of a smooth picture in `channels` samples each (the extra
    /// ones from its green and a ramp, so alpha varies).
    pub(crate) fn samples(seed: u64, width: u32, height: u32, channels: usize) -> Vec<u8> {
        let rgb = smooth_picture(seed, width, height);
        rgb.pixels()
            .enumerate()
            .flat_map(|(i, p)| {
                let [r, g, b] = p.0;
                let ramp = (i % 251) as u8;
                match channels {
                    1 => vec![g],
                    2 => vec![g, ramp],
                    3 => vec![r, g, b],
                    _ => vec![r, g, b, ramp],
                }
            })
            .collect()
    }

    #[test]
    fn decodes_every_8_bit_layout_as_the_png_crate_does() {
        use png::{BitDepth, ColorType, Filter};
        let layouts = [
            (ColorType::Grayscale, 1),
            (ColorType::GrayscaleAlpha, 2),
            (ColorType::Rgb, 3),
            (ColorType::Rgba, 4),
        ];
        let filters = [
            Filter::NoFilter,
            Filter::Sub,
            Filter::Up,
            Filter::Avg,
            Filter::Paeth,
            Filter::Adaptive,
        ];
        for (i, (colour, channels)) in layouts.into_iter().enumerate() {
            for (j, filter) in filters.into_iter().enumerate() {
                // 260×190 spans several bands and window slides; 9000 px rows are
                // longer than a band is meant to be.
                for (width, height) in [(97, 61), (4, 9), (1, 5), (300, 7), (260, 190), (9000, 3)] {
                    let pixels = samples((i * 10 + j) as u64, width, height, channels);
                    let bytes = encode_png(
                        width,
                        height,
                        colour,
                        BitDepth::Eight,
                        filter,
                        None,
                        &pixels,
                    );
                    let ours = decode(&bytes).expect("an 8-bit PNG is read");
                    let got: Vec<u8> = (0..ours.layout.height)
                        .flat_map(|y| ours.row(y).to_vec())
                        .collect();
                    assert_eq!(
                        got,
                        png_crate_rows(&bytes),
                        "{colour:?} {filter:?} {width}×{height}"
                    );
                }
            }
        }
        // A palette with transparency: indices, and the entries as written.
        let plte: Vec<u8> = (0..=255u8).flat_map(|i| [i, 255 - i, i / 2]).collect();
        let trns: Vec<u8> = (0..100u8).map(|i| i * 2).collect();
        let indices = samples(5, 64, 40, 1);
        let bytes = encode_png(
            64,
            40,
            ColorType::Indexed,
            BitDepth::Eight,
            Filter::Paeth,
            Some((&plte, Some(&trns))),
            &indices,
        );
        let ours = decode(&bytes).unwrap();
        assert_eq!(ours.layout.colour, PngColour::Palette);
        assert!(ours.layout.palette_alpha);
        assert_eq!(ours.layout.palette[7], [7, 248, 3, 14]);
        assert_eq!(ours.layout.palette[200], [200, 55, 100, 255]);
        let got: Vec<u8> = (0..ours.layout.height)
            .flat_map(|y| ours.row(y).to_vec())
            .collect();
        assert_eq!(got, indices);
    }

    /// Rewrites one chunk's body (and its checksum) in a PNG.
    fn with_chunk_changed(bytes: &[u8], kind: &[u8; 4], change: impl Fn(&mut [u8])) -> Vec<u8> {
        let mut out = bytes.to_vec();
        let mut pos = 8;
        while pos + 12 <= out.len() {
            let len = u32::from_be_bytes(out[pos..pos + 4].try_into().unwrap()) as usize;
            if &out[pos + 4..pos + 8] == kind {
                change(&mut out[pos + 8..pos + 8 + len]);
                let crc = crc32fast::hash(&out[pos + 4..pos + 8 + len]);
                out[pos + 8 + len..pos + 12 + len].copy_from_slice(&crc.to_be_bytes());
                return out;
            }
            pos += 12 + len;
        }
        panic!("no {kind:?} chunk");
    }

    /// A 40×30 RGB picture's pixels, and the PNG of them (Paeth rows).
    fn small_rgb_png() -> (Vec<u8>, Vec<u8>) {
        let rgb = samples(3, 40, 30, 3);
        let png = encode_png(
            40,
            30,
            png::ColorType::Rgb,
            png::BitDepth::Eight,
            png::Filter::Paeth,
            None,
            &rgb,
        );
        (rgb, png)
    }

    /// One PNG chunk: length, kind, body and checksum.
    pub(crate) fn chunk(kind: &[u8; 4], body: &[u8]) -> Vec<u8> {
        let mut out = (body.len() as u32).to_be_bytes().to_vec();
        out.extend_from_slice(kind);
        out.extend_from_slice(body);
        out.extend_from_slice(&crc32fast::hash(&out[4..]).to_be_bytes());
        out
    }

    #[test]
    fn leaves_what_it_does_not_read_to_the_general_decoder() {
        use png::{BitDepth, ColorType, Filter};
        let (rgb, good) = small_rgb_png();
        assert!(decode(&good).is_some());
        let wide: Vec<u8> = rgb.iter().flat_map(|&v| [v, v]).collect();
        let sixteen = encode_png(
            40,
            30,
            ColorType::Rgb,
            BitDepth::Sixteen,
            Filter::Paeth,
            None,
            &wide,
        );
        let interlaced = with_chunk_changed(&good, b"IHDR", |b| b[12] = 1);
        let mut bad_checksum = good.clone();
        let idat = bad_checksum.len() - 12 - 4;
        bad_checksum[idat] ^= 1;
        let truncated = good[..good.len() / 2].to_vec();
        let no_end = good[..good.len() - 12].to_vec();
        let bad_filter = {
            // A filter type of 9 on every row, stored uncompressed (zlib
            // "stored" blocks) so the byte is where we put it.
            let raw: Vec<u8> = (0..30)
                .flat_map(|_| {
                    let mut row = vec![9u8];
                    row.extend_from_slice(&rgb[..120]);
                    row
                })
                .collect();
            let zlib = fdeflate_stored(&raw);
            replace_idat(&good, &zlib)
        };
        let colour_key = {
            let mut encoder_out = Vec::new();
            let mut encoder = png::Encoder::new(&mut encoder_out, 40, 30);
            encoder.set_color(ColorType::Rgb);
            encoder.set_depth(BitDepth::Eight);
            encoder.set_trns(vec![0, 1, 0, 2, 0, 3]);
            let mut writer = encoder.write_header().unwrap();
            writer.write_image_data(&rgb).unwrap();
            writer.finish().unwrap();
            encoder_out
        };
        let plte: Vec<u8> = (0..16u8).flat_map(|i| [i * 16, 3, 200]).collect();
        let indexed = encode_png(
            8,
            8,
            ColorType::Indexed,
            BitDepth::Eight,
            Filter::Paeth,
            Some((&plte, None)),
            &[3; 64],
        );
        assert!(decode(&indexed).is_some());
        let no_palette = without_chunk(&indexed, b"PLTE");
        for (what, bytes) in [
            ("palette picture without a palette", no_palette),
            ("16-bit", sixteen),
            ("interlaced", interlaced),
            ("bad checksum", bad_checksum),
            ("truncated", truncated),
            ("no IEND", no_end),
            ("unknown filter type", bad_filter),
            ("colour key on RGB", colour_key),
        ] {
            assert!(decode(&bytes).is_none(), "{what}");
        }
    }

    /// `png` without its `kind` chunk.
    fn without_chunk(png: &[u8], kind: &[u8; 4]) -> Vec<u8> {
        let mut out = png[..8].to_vec();
        let mut pos = 8;
        while pos + 12 <= png.len() {
            let len = u32::from_be_bytes(png[pos..pos + 4].try_into().unwrap()) as usize;
            if &png[pos + 4..pos + 8] != kind {
                out.extend_from_slice(&png[pos..pos + 12 + len]);
            }
            pos += 12 + len;
        }
        out
    }

    /// `data` as a zlib stream of stored (uncompressed) blocks.
    fn fdeflate_stored(data: &[u8]) -> Vec<u8> {
        let mut out = vec![0x78, 0x01];
        let chunks: Vec<&[u8]> = data.chunks(65_535).collect();
        for (i, chunk) in chunks.iter().enumerate() {
            out.push(u8::from(i + 1 == chunks.len()));
            let len = chunk.len() as u16;
            out.extend_from_slice(&len.to_le_bytes());
            out.extend_from_slice(&(!len).to_le_bytes());
            out.extend_from_slice(chunk);
        }
        let (mut a, mut b) = (1u32, 0u32);
        for &v in data {
            a = (a + u32::from(v)) % 65_521;
            b = (b + a) % 65_521;
        }
        out.extend_from_slice(&((b << 16) | a).to_be_bytes());
        out
    }

    /// `png` with its image data replaced by `zlib` in one IDAT chunk.
    fn replace_idat(png: &[u8], zlib: &[u8]) -> Vec<u8> {
        let mut out = png[..33].to_vec(); // signature + IHDR
        out.extend(chunk(b"IDAT", zlib));
        out.extend_from_slice(&png[png.len() - 12..]); // IEND
        out
    }

    #[test]
    fn a_stored_stream_with_known_filters_is_read() {
        // The same hand-made stream with valid filter types decodes, so the
        // refusal above is the filter byte's doing.
        let (rgb, good) = small_rgb_png();
        let raw: Vec<u8> = rgb
            .chunks_exact(120)
            .flat_map(|row| std::iter::once(0u8).chain(row.iter().copied()))
            .collect();
        let ours = decode(&replace_idat(&good, &fdeflate_stored(&raw))).unwrap();
        let got: Vec<u8> = (0..ours.layout.height)
            .flat_map(|y| ours.row(y).to_vec())
            .collect();
        assert_eq!(got, rgb);
    }
}
