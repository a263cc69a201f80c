//! A lossless WebP (VP8L) decoder for hashing: the pixels, exactly as the
//! format defines them, read with a 64-bit bit buffer and two-level prefix
//! code tables.
//!
//! Lossless WebP has no shortcut to a smaller picture (every pixel depends
//! on earlier ones through back-references, the colour cache and the
//! predictor transform), so this is a full decode, 1.2–1.4× faster than the
//! `image` crate's (`cargo bench --bench webp`): the decoding is a chain of
//! dependent table lookups, and red and blue come from one lookup in a
//! per-group pair table; each predictor mode runs as its own loop over a
//! tile's run of pixels. Everything in the format is read: the predictor,
//! cross-colour, subtract-green and colour-indexing transforms (with pixel
//! bundling), colour caches, meta prefix codes, simple and normal prefix
//! codes, and back-references. A file that breaks a rule — an incomplete or
//! over-full prefix code, a reference before the first pixel, data that ends
//! early, a transform given twice — returns `None`, and the caller decodes it
//! with the general decoder, which explains what is wrong.

use crate::webp_luma::image_chunk;

/// A decoded lossless WebP: ARGB pixels, row-major.
pub struct Lossless {
    pub width: usize,
    pub height: usize,
    /// Whether the header says alpha is used (otherwise alpha is ignored,
    /// as decoders do).
    pub has_alpha: bool,
    pub argb: Vec<u32>,
}

/// Decodes a lossless WebP file whose width and height pass `allow`
/// (checked before anything is allocated).
pub fn decode(file: &[u8], allow: impl Fn(u32, u32) -> bool) -> Option<Lossless> {
    let data = image_chunk(file, b"VP8L")?;
    if data.len() < 5 || data[0] != 0x2f {
        return None;
    }
    let mut bits = Bits::new(&data[1..]);
    let width = bits.read(14) as usize + 1;
    let height = bits.read(14) as usize + 1;
    let has_alpha = bits.read(1) == 1;
    if bits.read(3) != 0 || !allow(width as u32, height as u32) {
        return None;
    }
    let argb = read_picture(&mut bits, width, height)?;
    if bits.overran() {
        return None;
    }
    Some(Lossless {
        width,
        height,
        has_alpha,
        argb,
    })
}

/// Reads the transforms and the main image, then undoes the transforms.
fn read_picture(bits: &mut Bits, width: usize, height: usize) -> Option<Vec<u32>> {
    let mut transforms = Vec::new();
    let mut seen = [false; 4];
    let mut xsize = width;
    while bits.read(1) == 1 {
        let kind = bits.read(2) as usize;
        if std::mem::replace(&mut seen[kind], true) {
            return None;
        }
        let transform = match kind {
            0 | 1 => {
                let size_bits = bits.read(3) + 2;
                let block = 1usize << size_bits;
                let data = read_image(bits, xsize.div_ceil(block), height.div_ceil(block), false)?;
                if kind == 0 {
                    Transform::Predictor {
                        size_bits,
                        data,
                        xsize,
                    }
                } else {
                    Transform::CrossColour {
                        size_bits,
                        data,
                        xsize,
                    }
                }
            }
            2 => Transform::SubtractGreen,
            _ => {
                let size = bits.read(8) as usize + 1;
                let mut palette = read_image(bits, size, 1, false)?;
                for i in 1..size {
                    palette[i] = add_pixels(palette[i], palette[i - 1]);
                }
                let width_bits = match size {
                    0..=2 => 3,
                    3..=4 => 2,
                    5..=16 => 1,
                    _ => 0,
                };
                let full = xsize;
                xsize = xsize.div_ceil(1 << width_bits);
                Transform::ColourIndexing {
                    palette,
                    width_bits,
                    xsize: full,
                }
            }
        };
        transforms.push(transform);
    }
    let mut argb = read_image(bits, xsize, height, true)?;
    for transform in transforms.iter().rev() {
        match transform {
            Transform::Predictor {
                size_bits,
                data,
                xsize,
            } => undo_predictor(&mut argb, *xsize, height, *size_bits, data),
            Transform::CrossColour {
                size_bits,
                data,
                xsize,
            } => undo_cross_colour(&mut argb, *xsize, *size_bits, data),
            Transform::SubtractGreen => {
                for px in &mut argb {
                    let green = (*px >> 8) & 0xff;
                    let add = (green << 16) | green;
                    *px =
                        (*px & 0xff00_ff00) | ((*px & 0x00ff_00ff).wrapping_add(add) & 0x00ff_00ff);
                }
            }
            Transform::ColourIndexing {
                palette,
                width_bits,
                xsize,
            } => argb = undo_colour_indexing(&argb, *xsize, height, *width_bits, palette),
        }
    }
    Some(argb)
}

enum Transform {
    Predictor {
        size_bits: u32,
        data: Vec<u32>,
        xsize: usize,
    },
    CrossColour {
        size_bits: u32,
        data: Vec<u32>,
        xsize: usize,
    },
    SubtractGreen,
    ColourIndexing {
        palette: Vec<u32>,
        width_bits: u32,
        xsize: usize,
    },
}

/// Per-channel sum modulo 256.
fn add_pixels(a: u32, b: u32) -> u32 {
    let alpha_green = (a & 0xff00_ff00).wrapping_add(b & 0xff00_ff00) & 0xff00_ff00;
    let red_blue = (a & 0x00ff_00ff).wrapping_add(b & 0x00ff_00ff) & 0x00ff_00ff;
    alpha_green | red_blue
}

/// Per-channel floor of the mean.
fn average(a: u32, b: u32) -> u32 {
    (((a ^ b) & 0xfefe_fefe) >> 1) + (a & b)
}

fn channel(px: u32, shift: u32) -> i32 {
    ((px >> shift) & 0xff) as i32
}

/// Per channel: `f` of the channels of a, b, c, clamped to 0..=255.
fn per_channel(a: u32, b: u32, c: u32, f: impl Fn(i32, i32, i32) -> i32) -> u32 {
    [24, 16, 8, 0].into_iter().fold(0, |out, shift| {
        let v = f(channel(a, shift), channel(b, shift), channel(c, shift)).clamp(0, 255);
        out | (v as u32) << shift
    })
}

fn select(left: u32, top: u32, _top_right: u32, top_left: u32) -> u32 {
    // Manhattan distances of the gradient estimate L + T − TL to L and to
    // T; the nearer wins, T on a tie.
    let (mut to_left, mut to_top) = (0, 0);
    for shift in [24, 16, 8, 0] {
        let estimate = channel(left, shift) + channel(top, shift) - channel(top_left, shift);
        to_left += (estimate - channel(left, shift)).abs();
        to_top += (estimate - channel(top, shift)).abs();
    }
    if to_left < to_top { left } else { top }
}

fn undo_predictor(argb: &mut [u32], width: usize, height: usize, size_bits: u32, modes: &[u32]) {
    if width == 0 || height == 0 {
        return;
    }
    argb[0] = add_pixels(argb[0], 0xff00_0000);
    for x in 1..width {
        argb[x] = add_pixels(argb[x], argb[x - 1]);
    }
    let tiles = width.div_ceil(1 << size_bits);
    for y in 1..height {
        let row = y * width;
        argb[row] = add_pixels(argb[row], argb[row - width]);
        let mode_row = &modes[(y >> size_bits) * tiles..];
        let mut x = 1;
        while x < width {
            // One tile's run of the row: one mode, so the choice is made
            // once per run and each mode gets its own loop.
            let end = (((x >> size_bits) + 1) << size_bits).min(width);
            let (from, to) = (row + x, row + end);
            match (mode_row[x >> size_bits] >> 8) & 0xf {
                1 => predict_run(argb, from, to, width, |l, _, _, _| l),
                2 => predict_run(argb, from, to, width, |_, t, _, _| t),
                3 => predict_run(argb, from, to, width, |_, _, tr, _| tr),
                4 => predict_run(argb, from, to, width, |_, _, _, tl| tl),
                5 => predict_run(argb, from, to, width, |l, t, tr, _| {
                    average(average(l, tr), t)
                }),
                6 => predict_run(argb, from, to, width, |l, _, _, tl| average(l, tl)),
                7 => predict_run(argb, from, to, width, |l, t, _, _| average(l, t)),
                8 => predict_run(argb, from, to, width, |_, t, _, tl| average(tl, t)),
                9 => predict_run(argb, from, to, width, |_, t, tr, _| average(t, tr)),
                10 => predict_run(argb, from, to, width, |l, t, tr, tl| {
                    average(average(l, tl), average(t, tr))
                }),
                11 => predict_run(argb, from, to, width, select),
                12 => predict_run(argb, from, to, width, |l, t, _, tl| {
                    per_channel(l, t, tl, |l, t, tl| l + t - tl)
                }),
                13 => predict_run(argb, from, to, width, |l, t, _, tl| {
                    per_channel(average(l, t), tl, 0, |a, tl, _| a + (a - tl) / 2)
                }),
                _ => predict_run(argb, from, to, width, |_, _, _, _| 0xff00_0000),
            }
            x = end;
        }
    }
}

/// Undoes the prediction of pixels `from..to` of one row (not the first
/// row or column) with `predict(left, top, top_right, top_left)`.
#[inline(always)]
fn predict_run(
    argb: &mut [u32],
    from: usize,
    to: usize,
    width: usize,
    predict: impl Fn(u32, u32, u32, u32) -> u32,
) {
    for i in from..to {
        // The top-right of the last column is the first pixel of this row,
        // which is what the flat index gives.
        let p = predict(
            argb[i - 1],
            argb[i - width],
            argb[i - width + 1],
            argb[i - width - 1],
        );
        argb[i] = add_pixels(argb[i], p);
    }
}

fn undo_cross_colour(argb: &mut [u32], width: usize, size_bits: u32, elements: &[u32]) {
    let tiles = width.div_ceil(1 << size_bits);
    let signed = |v: u32| i32::from(v as u8 as i8);
    for (y, row) in argb.chunks_exact_mut(width).enumerate() {
        let element_row = &elements[(y >> size_bits) * tiles..];
        for (tile, run) in row.chunks_mut(1 << size_bits).enumerate() {
            let e = element_row[tile];
            let (green_to_red, green_to_blue, red_to_blue) =
                (signed(e), signed(e >> 8), signed(e >> 16));
            for px in run {
                let green = signed(*px >> 8);
                let red = ((*px >> 16) as i32 + ((green_to_red * green) >> 5)) & 0xff;
                let blue = (*px as i32
                    + ((green_to_blue * green) >> 5)
                    + ((red_to_blue * i32::from(red as u8 as i8)) >> 5))
                    & 0xff;
                *px = (*px & 0xff00_ff00) | (red as u32) << 16 | blue as u32;
            }
        }
    }
}

fn undo_colour_indexing(
    packed: &[u32],
    width: usize,
    height: usize,
    width_bits: u32,
    palette: &[u32],
) -> Vec<u32> {
    let colour = |index: u32| palette.get(index as usize).copied().unwrap_or(0);
    let packed_width = width.div_ceil(1 << width_bits);
    let per_pixel = 1usize << width_bits;
    let index_bits = 8 >> width_bits;
    let mask = (1u32 << index_bits) - 1;
    let mut out = Vec::with_capacity(width * height);
    for row in packed.chunks_exact(packed_width).take(height) {
        for x in 0..width {
            let green = (row[x / per_pixel] >> 8) & 0xff;
            let index = (green >> ((x % per_pixel) as u32 * index_bits)) & mask;
            out.push(colour(index));
        }
    }
    out
}

/// Length and distance prefix codes: the value for `prefix` (plus extra
/// bits).
#[inline(always)]
fn prefix_value(bits: &mut Bits, prefix: u32) -> Option<usize> {
    if prefix < 4 {
        return Some(prefix as usize + 1);
    }
    let extra = (prefix - 2) >> 1;
    if extra > 24 {
        return None;
    }
    let offset = (2 + (prefix & 1)) << extra;
    Some((offset + bits.read(extra)) as usize + 1)
}

/// The 120 short distance codes: (dx, dy) offsets, nearest first.
const DISTANCES: [(i8, u8); 120] = [
    (0, 1),
    (1, 0),
    (1, 1),
    (-1, 1),
    (0, 2),
    (2, 0),
    (1, 2),
    (-1, 2),
    (2, 1),
    (-2, 1),
    (2, 2),
    (-2, 2),
    (0, 3),
    (3, 0),
    (1, 3),
    (-1, 3),
    (3, 1),
    (-3, 1),
    (2, 3),
    (-2, 3),
    (3, 2),
    (-3, 2),
    (0, 4),
    (4, 0),
    (1, 4),
    (-1, 4),
    (4, 1),
    (-4, 1),
    (3, 3),
    (-3, 3),
    (2, 4),
    (-2, 4),
    (4, 2),
    (-4, 2),
    (0, 5),
    (3, 4),
    (-3, 4),
    (4, 3),
    (-4, 3),
    (5, 0),
    (1, 5),
    (-1, 5),
    (5, 1),
    (-5, 1),
    (2, 5),
    (-2, 5),
    (5, 2),
    (-5, 2),
    (4, 4),
    (-4, 4),
    (3, 5),
    (-3, 5),
    (5, 3),
    (-5, 3),
    (0, 6),
    (6, 0),
    (1, 6),
    (-1, 6),
    (6, 1),
    (-6, 1),
    (2, 6),
    (-2, 6),
    (6, 2),
    (-6, 2),
    (4, 5),
    (-4, 5),
    (5, 4),
    (-5, 4),
    (3, 6),
    (-3, 6),
    (6, 3),
    (-6, 3),
    (0, 7),
    (7, 0),
    (1, 7),
    (-1, 7),
    (5, 5),
    (-5, 5),
    (7, 1),
    (-7, 1),
    (4, 6),
    (-4, 6),
    (6, 4),
    (-6, 4),
    (2, 7),
    (-2, 7),
    (7, 2),
    (-7, 2),
    (3, 7),
    (-3, 7),
    (7, 3),
    (-7, 3),
    (5, 6),
    (-5, 6),
    (6, 5),
    (-6, 5),
    (8, 0),
    (4, 7),
    (-4, 7),
    (7, 4),
    (-7, 4),
    (8, 1),
    (8, 2),
    (6, 6),
    (-6, 6),
    (8, 3),
    (5, 7),
    (-5, 7),
    (7, 5),
    (-7, 5),
    (8, 4),
    (6, 7),
    (-6, 7),
    (7, 6),
    (-7, 6),
    (8, 5),
    (7, 7),
    (-7, 7),
    (8, 6),
    (8, 7),
];

/// One group of five prefix codes: green + length + cache, red, blue,
/// alpha, distance.
struct Group {
    codes: [Huffman; 5],
    /// The alpha value when the alpha code has a single symbol.
    alpha: Option<u32>,
    /// Red and blue in one lookup: indexed by the next [`PAIR_BITS`] bits
    /// after green, `red << 8 | blue` in the high 16 bits and both codes'
    /// length in the low 8, or 0 where they do not fit (then each code is
    /// read on its own). Two lookups a pixel instead of three: each lookup
    /// waits for the one before it, so that is most of the decoding time.
    /// Empty when the group covers too few pixels to repay building it.
    pair: Vec<u32>,
}

/// Width of the red + blue table (1,024 entries: cheap to build for each of
/// a few hundred groups, and wide enough for the short residual codes of
/// most pictures).
const PAIR_BITS: u32 = 10;

/// The red + blue table of a group (see [`Group::pair`]).
fn pair_table(red: &Huffman, blue: &Huffman) -> Vec<u32> {
    let root = (1usize << ROOT_BITS) - 1;
    (0..1u32 << PAIR_BITS)
        .map(|bits| {
            let r = red.table[bits as usize & root];
            let r_len = r & 0xff;
            if r & LINK != 0 || r_len > PAIR_BITS {
                return 0;
            }
            let rest = bits >> r_len;
            let b = blue.table[rest as usize & root];
            let b_len = b & 0xff;
            if b & LINK != 0 || r_len + b_len > PAIR_BITS {
                return 0;
            }
            ((r >> 16) << 24) | ((b >> 16) << 16) | (r_len + b_len)
        })
        .collect()
}

fn read_group(bits: &mut Bits, cache_size: usize) -> Option<Group> {
    let sizes = [256 + 24 + cache_size, 256, 256, 256, 40];
    let mut codes: [Option<Huffman>; 5] = Default::default();
    for (code, size) in codes.iter_mut().zip(sizes) {
        *code = Some(read_code(bits, size)?);
    }
    let [g, r, b, a, d] = codes;
    let codes = [g?, r?, b?, a?, d?];
    let alpha = codes[3].single;
    Some(Group {
        codes,
        alpha,
        pair: Vec::new(),
    })
}

/// Reads an entropy-coded image of `xsize` × `ysize` pixels; only the main
/// image (`main`) may use meta prefix codes.
fn read_image(bits: &mut Bits, xsize: usize, ysize: usize, main: bool) -> Option<Vec<u32>> {
    let cache_bits = if bits.read(1) == 1 {
        let b = bits.read(4);
        if !(1..=11).contains(&b) {
            return None;
        }
        b
    } else {
        0
    };
    let cache_size = if cache_bits > 0 {
        1usize << cache_bits
    } else {
        0
    };
    let (meta_bits, meta) = if main && bits.read(1) == 1 {
        let prefix_bits = bits.read(3) + 2;
        let block = 1usize << prefix_bits;
        let image = read_image(bits, xsize.div_ceil(block), ysize.div_ceil(block), false)?;
        (
            prefix_bits,
            image
                .iter()
                .map(|&px| (px >> 8) & 0xffff)
                .collect::<Vec<u32>>(),
        )
    } else {
        (0, Vec::new())
    };
    let groups_count = meta.iter().max().map_or(1, |&m| m as usize + 1);
    let mut groups: Vec<Group> = (0..groups_count)
        .map(|_| read_group(bits, cache_size))
        .collect::<Option<_>>()?;
    if xsize * ysize >= groups.len() << 12 {
        for group in &mut groups {
            group.pair = pair_table(&group.codes[1], &group.codes[2]);
        }
    }
    let meta_width = xsize.div_ceil(1 << meta_bits);

    let total = xsize * ysize;
    let mut out = vec![0u32; total];
    let mut cache = vec![0u32; cache_size];
    let cache_shift = 32 - cache_bits;
    let group_at = |x: usize, y: usize| -> usize {
        if meta.is_empty() {
            0
        } else {
            meta[(y >> meta_bits) * meta_width + (x >> meta_bits)] as usize
        }
    };
    let (mut x, mut y) = (0usize, 0usize);
    let mut group = &groups[group_at(0, 0)];
    // Pixels up to `cached` have been put in the colour cache.
    let mut cached = 0usize;
    let mut i = 0usize;
    // A local copy of the reader, which the compiler keeps in registers
    // (through the reference it would store and reload it for every code).
    let mut b = *bits;
    while i < total {
        if meta_bits > 0 && x & ((1 << meta_bits) - 1) == 0 {
            group = &groups[group_at(x, y)];
        }
        b.refill();
        let green = group.codes[0].decode(&mut b);
        if green < 256 {
            let pair = group
                .pair
                .get((b.peek() & ((1 << PAIR_BITS) - 1)) as usize)
                .copied()
                .unwrap_or(0);
            let (red, blue) = if pair != 0 {
                b.consume(pair & 0xff);
                (pair >> 24, (pair >> 16) & 0xff)
            } else {
                let red = group.codes[1].decode(&mut b);
                b.refill();
                (red, group.codes[2].decode(&mut b))
            };
            b.refill();
            // Opaque pictures: one alpha value, nothing to read.
            let alpha = match group.alpha {
                Some(alpha) => alpha,
                None => group.codes[3].decode(&mut b),
            };
            out[i] = (alpha << 24) | (red << 16) | (green << 8) | blue;
            i += 1;
            x += 1;
        } else if green < 256 + 24 {
            let length = prefix_value(&mut b, green - 256)?;
            b.refill();
            let distance_prefix = group.codes[4].decode(&mut b);
            let distance_code = prefix_value(&mut b, distance_prefix)?;
            let distance = if distance_code > 120 {
                distance_code - 120
            } else {
                let (dx, dy) = DISTANCES[distance_code - 1];
                let d = dy as isize * xsize as isize + dx as isize;
                d.max(1) as usize
            };
            if distance > i || length > total - i {
                return None;
            }
            for k in i..i + length {
                out[k] = out[k - distance];
            }
            i += length;
            x += length;
            // The copy may end inside another block of the meta image.
            if meta_bits > 0 && x < xsize {
                group = &groups[group_at(x, y)];
            }
        } else {
            let index = (green - 280) as usize;
            // Bring the cache up to date before reading from it.
            if cache_size == 0 || index >= cache_size {
                return None;
            }
            while cached < i {
                let px = out[cached];
                cache[(px.wrapping_mul(0x1e35_a7bd) >> cache_shift) as usize] = px;
                cached += 1;
            }
            out[i] = cache[index];
            i += 1;
            x += 1;
        }
        if x >= xsize {
            y += x / xsize;
            x %= xsize;
            if meta_bits > 0 && y < ysize {
                group = &groups[group_at(x, y)];
            }
            // Past the end only zeros come; checked once a row.
            if b.overran() {
                return None;
            }
        }
    }
    *bits = b;
    Some(out)
}

/// Reads one prefix code for an alphabet of `size` symbols.
fn read_code(bits: &mut Bits, size: usize) -> Option<Huffman> {
    let mut lengths = vec![0u8; size];
    if bits.read(1) == 1 {
        // Simple: one or two symbols given outright.
        let two = bits.read(1) == 1;
        let first_bits = if bits.read(1) == 1 { 8 } else { 1 };
        let first = bits.read(first_bits) as usize;
        *lengths.get_mut(first)? = 1;
        if two {
            let second = bits.read(8) as usize;
            *lengths.get_mut(second)? = 1;
        }
        return Huffman::new(&lengths);
    }
    const ORDER: [usize; 19] = [
        17, 18, 0, 1, 2, 3, 4, 5, 16, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15,
    ];
    let count = 4 + bits.read(4) as usize;
    let mut length_lengths = [0u8; 19];
    for &symbol in &ORDER[..count] {
        length_lengths[symbol] = bits.read(3) as u8;
    }
    let length_code = Huffman::new(&length_lengths)?;
    let mut max_symbol = if bits.read(1) == 1 {
        let n = 2 + 2 * bits.read(3);
        let m = 2 + bits.read(n) as usize;
        if m > size {
            return None;
        }
        m
    } else {
        size
    };
    let mut symbol = 0;
    let mut previous = 8u8;
    while symbol < size {
        if max_symbol == 0 {
            break;
        }
        max_symbol -= 1;
        bits.refill();
        let code = length_code.decode(bits);
        if code < 16 {
            lengths[symbol] = code as u8;
            symbol += 1;
            if code != 0 {
                previous = code as u8;
            }
            continue;
        }
        let (repeat, value) = match code {
            16 => (3 + bits.read(2) as usize, previous),
            17 => (3 + bits.read(3) as usize, 0),
            _ => (11 + bits.read(7) as usize, 0),
        };
        if symbol + repeat > size {
            return None;
        }
        lengths[symbol..symbol + repeat].fill(value);
        symbol += repeat;
    }
    Huffman::new(&lengths)
}

/// Root table width: codes up to this long are one lookup.
const ROOT_BITS: u32 = 8;

/// A canonical prefix code as lookup tables. Entries: symbol in the high 16
/// bits, code length (0–15) in the low 8; links to second-level tables have
/// bit 15 set, the table's offset in the high bits and its index width in
/// the low bits.
struct Huffman {
    table: Vec<u32>,
    /// The symbol of a one-symbol code (read with no bits).
    single: Option<u32>,
}

const LINK: u32 = 1 << 15;

impl Huffman {
    /// Builds the code from code lengths; `None` for an over-full or
    /// incomplete code (a single symbol is a valid zero-length code).
    fn new(lengths: &[u8]) -> Option<Huffman> {
        let mut counts = [0u32; 16];
        for &len in lengths {
            counts[usize::from(len)] += 1;
        }
        counts[0] = 0;
        let used: u32 = counts.iter().sum();
        if used == 0 {
            return None;
        }
        if used == 1 {
            let symbol = lengths.iter().position(|&l| l != 0)? as u32;
            return Some(Huffman {
                table: vec![symbol << 16; 1 << ROOT_BITS],
                single: Some(symbol),
            });
        }
        // Kraft sum must be exactly 1.
        let mut left = 1i64;
        for count in &counts[1..] {
            left = 2 * left - i64::from(*count);
            if left < 0 {
                return None;
            }
        }
        if left != 0 {
            return None;
        }
        // Canonical codes, in order of length then symbol.
        let mut next = [0u32; 17];
        for len in 1..16 {
            next[len + 1] = (next[len] + counts[len]) << 1;
        }
        let mut codes: Vec<(u32, u32, u32)> = Vec::with_capacity(used as usize);
        for (symbol, &len) in lengths.iter().enumerate() {
            if len != 0 {
                let len = u32::from(len);
                let code = next[len as usize];
                next[len as usize] += 1;
                // Bits are read least significant first: reverse the code.
                codes.push((code.reverse_bits() >> (32 - len), len, symbol as u32));
            }
        }
        let root_size = 1usize << ROOT_BITS;
        let mut table = vec![0u32; root_size];
        // Second-level widths: the longest code under each root prefix.
        let mut sub_bits = vec![0u32; root_size];
        for &(code, len, _) in &codes {
            if len > ROOT_BITS {
                let root = (code as usize) & (root_size - 1);
                sub_bits[root] = sub_bits[root].max(len - ROOT_BITS);
            }
        }
        for (root, &width) in sub_bits.iter().enumerate() {
            if width > 0 {
                table[root] = ((table.len() as u32) << 16) | LINK | width;
                table.resize(table.len() + (1 << width), 0);
            }
        }
        for &(code, len, symbol) in &codes {
            if len <= ROOT_BITS {
                let mut at = code as usize;
                while at < root_size {
                    table[at] = (symbol << 16) | len;
                    at += 1 << len;
                }
            } else {
                let root = (code as usize) & (root_size - 1);
                let link = table[root];
                let (offset, width) = ((link >> 16) as usize, link & 0xff);
                let mut at = (code >> ROOT_BITS) as usize;
                while at < 1 << width {
                    table[offset + at] = (symbol << 16) | len;
                    at += 1 << (len - ROOT_BITS);
                }
            }
        }
        Some(Huffman {
            table,
            single: None,
        })
    }

    /// Decodes one symbol; the caller has refilled (15 bits available).
    #[inline(always)]
    fn decode(&self, bits: &mut Bits) -> u32 {
        let peek = bits.peek();
        let entry = self.table[(peek as usize) & ((1 << ROOT_BITS) - 1)];
        if entry & LINK == 0 {
            bits.consume(entry & 0xff);
            return entry >> 16;
        }
        let (offset, width) = ((entry >> 16) as usize, entry & 0xff);
        let sub = ((peek >> ROOT_BITS) as usize) & ((1 << width) - 1);
        let entry = self.table[offset + sub];
        bits.consume(entry & 0xff);
        entry >> 16
    }
}

/// Least-significant-bit-first reader with a 64-bit buffer.
#[derive(Clone, Copy)]
struct Bits<'a> {
    data: &'a [u8],
    /// Next byte to load; may run past the end (zeros are loaded there).
    pos: usize,
    buffer: u64,
    count: u32,
}

impl<'a> Bits<'a> {
    fn new(data: &'a [u8]) -> Self {
        let mut bits = Bits {
            data,
            pos: 0,
            buffer: 0,
            count: 0,
        };
        bits.refill();
        bits
    }

    /// Tops the buffer up to at least 56 bits.
    #[inline(always)]
    fn refill(&mut self) {
        if self.count >= 32 {
            return;
        }
        let mut chunk = [0u8; 8];
        match self.data.get(self.pos..self.pos + 8) {
            Some(bytes) => chunk.copy_from_slice(bytes),
            None => {
                let rest = self.data.get(self.pos..).unwrap_or(&[]);
                chunk[..rest.len()].copy_from_slice(rest);
            }
        }
        self.buffer |= u64::from_le_bytes(chunk) << self.count;
        let taken = (63 - self.count) / 8;
        self.pos += taken as usize;
        self.count += 8 * taken;
    }

    #[inline(always)]
    fn peek(&self) -> u32 {
        self.buffer as u32
    }

    #[inline(always)]
    fn consume(&mut self, n: u32) {
        self.buffer >>= n;
        self.count -= n.min(self.count);
    }

    /// Reads `n` ≤ 24 bits.
    #[inline(always)]
    fn read(&mut self, n: u32) -> u32 {
        self.refill();
        let v = (self.buffer & ((1u64 << n) - 1)) as u32;
        self.consume(n);
        v
    }

    /// Whether more bits were used than the data holds.
    fn overran(&self) -> bool {
        self.pos * 8 > self.data.len() * 8 + self.count as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::webp_luma::tests::{damaged_copies, encode_libwebp, picture};
    use libwebp_sys as webp;

    /// libwebp's RGBA decode.
    fn reference(file: &[u8]) -> Vec<u8> {
        let (mut w, mut h) = (0, 0);
        // SAFETY: libwebp returns w × h × 4 bytes (or null), copied then
        // freed.
        unsafe {
            let rgba = webp::WebPDecodeRGBA(file.as_ptr(), file.len(), &mut w, &mut h);
            assert!(!rgba.is_null(), "libwebp could not decode its own file");
            let out = std::slice::from_raw_parts(rgba, (w * h * 4) as usize).to_vec();
            webp::WebPFree(rgba.cast());
            out
        }
    }

    fn rgba_of(decoded: &Lossless) -> Vec<u8> {
        decoded
            .argb
            .iter()
            .flat_map(|&px| {
                [
                    (px >> 16) as u8,
                    (px >> 8) as u8,
                    px as u8,
                    (px >> 24) as u8,
                ]
            })
            .collect()
    }

    /// Test pictures: the lossy tests' picture with alpha; few-colour
    /// versions (colour indexing with 1, 2, 4 and 8 bits per pixel); noise.
    fn pictures(width: usize, height: usize, seed: u32) -> Vec<(&'static str, Vec<u8>)> {
        let rgb = picture(width, height, seed);
        let with_alpha = |alpha: &dyn Fn(usize) -> u8| -> Vec<u8> {
            rgb.chunks_exact(3)
                .enumerate()
                .flat_map(|(i, p)| [p[0], p[1], p[2], alpha(i)])
                .collect()
        };
        // `levels` values of red times `levels` of green.
        let posterised = |levels: u16| -> Vec<u8> {
            let q = |c: u8| (u16::from(c) * levels / 256 * (255 / (levels - 1).max(1))) as u8;
            rgb.chunks_exact(3)
                .flat_map(|p| [q(p[0]), q(p[1]), 0, 255])
                .collect()
        };
        vec![
            ("opaque", with_alpha(&|_| 255)),
            ("alpha", with_alpha(&|i| (i * 7 % 256) as u8)),
            ("2 colours", {
                let mut two = posterised(2);
                two.chunks_exact_mut(4).for_each(|p| p[1] = 0);
                two
            }),
            ("4 colours", posterised(2)),
            ("16 colours", posterised(4)),
            ("196 colours", posterised(14)),
            (
                "noise",
                with_alpha(&|i| ((i * 2_654_435_761usize) >> 7) as u8),
            ),
        ]
    }

    #[test]
    fn pixels_equal_libwebps() {
        let mut cases = 0;
        for (n, &(w, h)) in [(1, 1), (7, 3), (64, 48), (129, 77), (300, 41)]
            .iter()
            .enumerate()
        {
            for (what, rgba) in pictures(w, h, n as u32 + 1) {
                for (quality, method) in [(0.0, 0), (50.0, 3), (100.0, 6), (75.0, 4)] {
                    let file = encode_libwebp(&rgba, 4, w, h, quality, |config| {
                        config.lossless = 1;
                        config.method = method;
                        config.exact = 1;
                    });
                    let decoded = decode(&file, |_, _| true)
                        .unwrap_or_else(|| panic!("{what} {w}x{h} q{quality} m{method}"));
                    assert_eq!((decoded.width, decoded.height), (w, h));
                    let (ours, theirs) = (rgba_of(&decoded), reference(&file));
                    if let Some(i) = (0..ours.len()).find(|&i| ours[i] != theirs[i]) {
                        panic!(
                            "{what} {w}x{h} q{quality} m{method}: pixel {} channel {} is {} (libwebp {})",
                            i / 4,
                            i % 4,
                            ours[i],
                            theirs[i]
                        );
                    }
                    cases += 1;
                }
            }
        }
        assert_eq!(cases, 5 * 7 * 4);
    }

    #[test]
    fn damaged_files_get_an_answer_never_a_panic() {
        let files: Vec<Vec<u8>> = pictures(40, 30, 4)
            .into_iter()
            .map(|(_, rgba)| {
                encode_libwebp(&rgba, 4, 40, 30, 60.0, |config| {
                    config.lossless = 1;
                })
            })
            .collect();
        let (mut read, mut refused) = (0, 0);
        for file in damaged_copies(&files, 4000, 0x2545_f491, 4, 64) {
            match decode(&file, |w, h| w * h <= 1 << 20) {
                Some(picture) => {
                    assert_eq!(picture.argb.len(), picture.width * picture.height);
                    read += 1;
                }
                None => refused += 1,
            }
        }
        assert!(
            read > 100 && refused > 1000,
            "read {read}, refused {refused}"
        );
    }

    #[test]
    fn the_size_guard_runs_before_decoding() {
        let (_, rgba) = pictures(40, 30, 2).remove(0);
        let file = encode_libwebp(&rgba, 4, 40, 30, 75.0, |config| config.lossless = 1);
        assert!(decode(&file, |w, h| (w, h) == (40, 30)).is_some());
        assert!(decode(&file, |w, _| w < 40).is_none());
    }
}
