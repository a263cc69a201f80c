//! The grey picture of a lossy WebP, read from the VP8 luma plane alone.
//!
//! A lossy WebP is one VP8 key frame: a luma plane (Y) at full size and two
//! chroma planes at half size, each rebuilt macroblock by macroblock from an
//! intra prediction plus an inverse-transformed residue, then smoothed at
//! block edges by a loop filter and converted to RGB. A perceptual hash needs
//! only grey, and VP8's Y *is* grey (BT.601 luma on the 16–235 scale), so
//! this reader:
//! - entropy-decodes every token (the chroma tokens share the stream with the
//!   luma ones and must be walked to stay in step) but dequantises and
//!   transforms only the luma ones;
//! - predicts and reconstructs only the luma plane;
//! - skips the loop filter: it moves pixels next to block edges towards each
//!   other by a few levels, which leaves the area averages a hash is made of
//!   all but unchanged, and intra prediction reads unfiltered pixels anyway,
//!   so everything else is exactly the decoder's reconstruction;
//! - skips the chroma planes and the colour conversion.
//!
//! Measured (`cargo bench --bench webp`): 1.5× (grain-heavy files, where the
//! entropy decoding that cannot be skipped dominates) to 5× faster than the
//! `image` crate's full decode.
//!
//! Read: a simple-format (`VP8 `) file, or an extended (`VP8X`) one with a
//! `VP8 ` chunk and no alpha or animation. Everything else — lossless (`VP8L`),
//! alpha (which greys pixels towards white in our thumbnails), animation,
//! inter frames, a damaged header or a partition that ends early — returns
//! `None`, and the caller decodes the file in full, which also gives the
//! explanation when the file is damaged.

mod bools;
mod tables;

use bools::Bools;
use tables::{
    AC_QUANT, BANDS, CATEGORIES, COEFF_UPDATE_PROBS, DC_QUANT, DEFAULT_COEFF_PROBS, KF_BMODE_PROBS,
    ZIGZAG,
};

/// The luma plane of a lossy WebP, before the loop filter.
pub struct WebpLuma {
    pub width: usize,
    pub height: usize,
    /// Y samples with a one-pixel border on top and left (the prediction
    /// edge values) and four spare columns on the right.
    plane: Vec<u8>,
    stride: usize,
}

impl WebpLuma {
    /// Row `y`'s grey levels on the 0–255 scale (Y is stored on 16–235),
    /// written into `line` (`width` long).
    pub fn grey_row(&self, y: usize, line: &mut [u8]) {
        let start = (y + 1) * self.stride + 1;
        for (out, &luma) in line.iter_mut().zip(&self.plane[start..start + self.width]) {
            *out = FULL_RANGE[usize::from(luma)];
        }
    }

    /// Raw Y sample at (x, y) (for tests against a reference decoder).
    #[cfg(test)]
    fn sample(&self, x: usize, y: usize) -> u8 {
        self.plane[(y + 1) * self.stride + x + 1]
    }
}

/// Y on 16–235 → grey on 0–255: round(255 × (Y − 16) / 219), clamped, which
/// is the grey of the RGB a full decode gives a neutral-coloured pixel.
const FULL_RANGE: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut y = 0;
    while y < 256 {
        let scaled = ((y as i32 - 16) * 255 * 2 + 219) / (219 * 2);
        table[y] = if scaled < 0 {
            0
        } else if scaled > 255 {
            255
        } else {
            scaled as u8
        };
        y += 1;
    }
    table
};

/// The image chunk of a still WebP file when it is `wanted` (`VP8 ` for
/// lossy, `VP8L` for lossless): the first chunk, or the first after an
/// extended (`VP8X`) header without the animation flag. A lossy file with
/// an alpha chunk, an animation, or a damaged chunk list gives `None`.
pub(crate) fn image_chunk<'a>(file: &'a [u8], wanted: &[u8; 4]) -> Option<&'a [u8]> {
    if file.len() < 20 || &file[..4] != b"RIFF" || &file[8..12] != b"WEBP" {
        return None;
    }
    let mut at = 12;
    let mut first = true;
    while at + 8 <= file.len() {
        let fourcc = &file[at..at + 4];
        let size = u32::from_le_bytes(file[at + 4..at + 8].try_into().ok()?) as usize;
        let body = file.get(at + 8..at + 8 + size)?;
        match fourcc {
            // Animated files keep their frames in ANMF chunks.
            b"VP8X" if first && body.first().is_some_and(|flags| flags & 0x02 == 0) => {}
            _ if fourcc == wanted => return Some(body),
            b"VP8 " | b"VP8L" | b"ALPH" | b"ANIM" | b"ANMF" => return None,
            _ if first => return None,
            _ => {}
        }
        first = false;
        at += 8 + size + (size & 1);
    }
    None
}

/// Decodes the luma plane of a lossy WebP whose width and height pass
/// `allow` (a decompression-bomb guard, checked before anything is
/// allocated); see the module notes for what is read and what returns `None`.
pub fn decode(file: &[u8], allow: impl Fn(u32, u32) -> bool) -> Option<WebpLuma> {
    let frame = image_chunk(file, b"VP8 ")?;
    let header = Header::read(frame)?;
    if !allow(header.width as u32, header.height as u32) {
        return None;
    }
    Decoder::new(frame, header)?.run()
}

/// The uncompressed start of a key frame.
struct Header {
    width: usize,
    height: usize,
    first_partition: std::ops::Range<usize>,
}

impl Header {
    fn read(frame: &[u8]) -> Option<Header> {
        if frame.len() < 10 {
            return None;
        }
        let tag = u32::from(frame[0]) | u32::from(frame[1]) << 8 | u32::from(frame[2]) << 16;
        let key_frame = tag & 1 == 0;
        let version = (tag >> 1) & 7;
        let first_size = (tag >> 5) as usize;
        if !key_frame || version > 3 || frame[3..6] != [0x9d, 0x01, 0x2a] {
            return None;
        }
        let width = usize::from(u16::from_le_bytes([frame[6], frame[7]]) & 0x3fff);
        let height = usize::from(u16::from_le_bytes([frame[8], frame[9]]) & 0x3fff);
        if width == 0 || height == 0 || 10 + first_size > frame.len() {
            return None;
        }
        Some(Header {
            width,
            height,
            first_partition: 10..10 + first_size,
        })
    }
}

/// 16×16 luma prediction modes, and B_PRED (sixteen 4×4 predictions).
#[derive(Clone, Copy, PartialEq, Eq)]
enum LumaMode {
    Dc,
    Vertical,
    Horizontal,
    TrueMotion,
    Split,
}

/// 4×4 prediction modes, in the RFC's order (their numbers index the
/// probability table).
const B_DC: u8 = 0;
const B_TM: u8 = 1;
const B_VE: u8 = 2;
const B_HE: u8 = 3;
const B_LD: u8 = 4;
const B_RD: u8 = 5;
const B_VR: u8 = 6;
const B_VL: u8 = 7;
const B_HD: u8 = 8;
const B_HU: u8 = 9;

/// The 4×4 mode tree (section 11.2): entries > 0 are the next node, others
/// the negated leaf.
const B_MODE_TREE: [i8; 18] = [
    -(B_DC as i8),
    2,
    -(B_TM as i8),
    4,
    -(B_VE as i8),
    6,
    8,
    12,
    -(B_HE as i8),
    10,
    -(B_RD as i8),
    -(B_VR as i8),
    -(B_LD as i8),
    14,
    -(B_VL as i8),
    16,
    -(B_HD as i8),
    -(B_HU as i8),
];

fn read_tree(bools: &mut Bools, tree: &[i8], probs: &[u8]) -> u8 {
    let mut node = 0usize;
    loop {
        let next = tree[node + usize::from(bools.read(probs[node >> 1]))];
        if next <= 0 {
            return (-next) as u8;
        }
        node = next as usize;
    }
}

/// Coefficient probabilities: [block type][band][context][node].
type CoeffProbs = [[[[u8; 11]; 3]; 8]; 4];

/// Block types (the first index of [`CoeffProbs`]).
const TYPE_Y_AFTER_Y2: usize = 0;
const TYPE_Y2: usize = 1;
const TYPE_CHROMA: usize = 2;
const TYPE_Y_WITH_DC: usize = 3;

/// Dequantisation factors of one segment: (DC, AC) for luma and for Y2.
#[derive(Clone, Copy, Default)]
struct Quant {
    y: [i32; 2],
    y2: [i32; 2],
}

struct Decoder<'a> {
    width: usize,
    height: usize,
    mb_cols: usize,
    mb_rows: usize,
    modes: Bools<'a>,
    partitions: Vec<Bools<'a>>,
    probs: Box<CoeffProbs>,
    segment_map: Option<[u8; 3]>,
    quants: [Quant; 4],
    skip_prob: Option<u8>,
    plane: Vec<u8>,
    stride: usize,
}

impl<'a> Decoder<'a> {
    fn new(frame: &'a [u8], header: Header) -> Option<Self> {
        let mut modes = Bools::new(&frame[header.first_partition.clone()]);
        let _colour_space = modes.read(128);
        let _clamping = modes.read(128);

        // Segments: per-segment quantiser (absolute or a delta) and the
        // probabilities of the per-macroblock segment map.
        let mut segment_quant = [0i32; 4];
        let mut segment_absolute = false;
        let mut segment_map = None;
        if modes.read(128) {
            let update_map = modes.read(128);
            if modes.read(128) {
                segment_absolute = modes.read(128);
                for q in &mut segment_quant {
                    *q = modes.optional_signed(7);
                }
                for _ in 0..4 {
                    modes.optional_signed(6); // loop filter levels
                }
            }
            if update_map {
                let mut probs = [255u8; 3];
                for p in &mut probs {
                    if modes.read(128) {
                        *p = modes.literal(8) as u8;
                    }
                }
                segment_map = Some(probs);
            }
        }
        // Loop filter settings: read past (the filter is not applied).
        let _filter_type = modes.read(128);
        let _level = modes.literal(6);
        let _sharpness = modes.literal(3);
        if modes.read(128) && modes.read(128) {
            for _ in 0..8 {
                modes.optional_signed(6);
            }
        }
        let partition_count = 1usize << modes.literal(2);
        let base_q = modes.literal(7) as i32;
        let y_dc = modes.optional_signed(4);
        let y2_dc = modes.optional_signed(4);
        let y2_ac = modes.optional_signed(4);
        let _uv_dc = modes.optional_signed(4);
        let _uv_ac = modes.optional_signed(4);
        let _refresh_entropy = modes.read(128);

        let mut probs: Box<CoeffProbs> = Box::new([[[[0; 11]; 3]; 8]; 4]);
        for (i, p) in probs.iter_mut().flatten().flatten().flatten().enumerate() {
            *p = if modes.read(COEFF_UPDATE_PROBS[i]) {
                modes.literal(8) as u8
            } else {
                DEFAULT_COEFF_PROBS[i]
            };
        }
        let skip_prob = modes.read(128).then(|| modes.literal(8) as u8);

        let q_index = |q: i32| q.clamp(0, 127) as usize;
        let mut quants = [Quant::default(); 4];
        for (segment, quant) in quants.iter_mut().enumerate() {
            let q = if segment_absolute {
                segment_quant[segment]
            } else {
                base_q + segment_quant[segment]
            };
            let y2_ac = i32::from(AC_QUANT[q_index(q + y2_ac)]) * 155 / 100;
            *quant = Quant {
                y: [
                    i32::from(DC_QUANT[q_index(q + y_dc)]),
                    i32::from(AC_QUANT[q_index(q)]),
                ],
                y2: [i32::from(DC_QUANT[q_index(q + y2_dc)]) * 2, y2_ac.max(8)],
            };
        }

        // Token partitions: sizes (3 bytes each, all but the last) follow
        // the first partition.
        let mut at = header.first_partition.end;
        let sizes_end = at + 3 * (partition_count - 1);
        if sizes_end > frame.len() {
            return None;
        }
        let mut start = sizes_end;
        let mut partitions = Vec::with_capacity(partition_count);
        for p in 0..partition_count {
            let end = if p + 1 == partition_count {
                frame.len()
            } else {
                let size = usize::from(frame[at])
                    | usize::from(frame[at + 1]) << 8
                    | usize::from(frame[at + 2]) << 16;
                at += 3;
                start + size
            };
            partitions.push(Bools::new(frame.get(start..end)?));
            start = end;
        }

        let (mb_cols, mb_rows) = (header.width.div_ceil(16), header.height.div_ceil(16));
        let stride = 1 + 16 * mb_cols + 4;
        let rows = 1 + 16 * mb_rows;
        // Out-of-frame prediction edges: 127 above (corner included), 129
        // to the left.
        let mut plane = vec![0u8; stride * rows];
        plane[..stride].fill(127);
        for row in plane.chunks_exact_mut(stride).skip(1) {
            row[0] = 129;
        }
        Some(Decoder {
            width: header.width,
            height: header.height,
            mb_cols,
            mb_rows,
            modes,
            partitions,
            probs,
            segment_map,
            quants,
            skip_prob,
            plane,
            stride,
        })
    }

    fn run(mut self) -> Option<WebpLuma> {
        // Per column of macroblocks: the bottom row's 4×4 modes, and whether
        // each block above had coefficients (4 Y, 2 U, 2 V, Y2).
        let mut above_modes = vec![[B_DC; 4]; self.mb_cols];
        let mut above_nz = vec![[false; 9]; self.mb_cols];
        for mb_y in 0..self.mb_rows {
            let mut left_modes = [B_DC; 4];
            let mut left_nz = [false; 9];
            let part = mb_y % self.partitions.len();
            for mb_x in 0..self.mb_cols {
                // Macroblock header, from the first partition.
                let segment = match self.segment_map {
                    Some(p) => {
                        if self.modes.read(p[0]) {
                            2 + usize::from(self.modes.read(p[2]))
                        } else {
                            usize::from(self.modes.read(p[1]))
                        }
                    }
                    None => 0,
                };
                let skip = self.skip_prob.is_some_and(|p| self.modes.read(p));
                let mut sub_modes = [B_DC; 16];
                let mode = if !self.modes.read(145) {
                    for by in 0..4 {
                        for bx in 0..4 {
                            let above = if by == 0 {
                                above_modes[mb_x][bx]
                            } else {
                                sub_modes[4 * (by - 1) + bx]
                            };
                            let left = if bx == 0 {
                                left_modes[by]
                            } else {
                                sub_modes[4 * by + bx - 1]
                            };
                            let at = (usize::from(above) * 10 + usize::from(left)) * 9;
                            sub_modes[4 * by + bx] = read_tree(
                                &mut self.modes,
                                &B_MODE_TREE,
                                &KF_BMODE_PROBS[at..at + 9],
                            );
                        }
                    }
                    LumaMode::Split
                } else {
                    let (mode, implied) = if !self.modes.read(156) {
                        if !self.modes.read(163) {
                            (LumaMode::Dc, B_DC)
                        } else {
                            (LumaMode::Vertical, B_VE)
                        }
                    } else if !self.modes.read(128) {
                        (LumaMode::Horizontal, B_HE)
                    } else {
                        (LumaMode::TrueMotion, B_TM)
                    };
                    sub_modes = [implied; 16];
                    mode
                };
                // Chroma mode: read to stay in step, not used.
                if self.modes.read(142) && self.modes.read(114) {
                    self.modes.read(183);
                }
                above_modes[mb_x].copy_from_slice(&sub_modes[12..16]);
                for by in 0..4 {
                    left_modes[by] = sub_modes[4 * by + 3];
                }

                // Residue, from this row's token partition.
                let has_y2 = mode != LumaMode::Split;
                let mut nonzero = [false; 16];
                let mut coeffs = [[0i32; 16]; 16];
                let above = &mut above_nz[mb_x];
                if skip {
                    let keep_y2 = !has_y2;
                    let (a8, l8) = (above[8], left_nz[8]);
                    *above = [false; 9];
                    left_nz = [false; 9];
                    if keep_y2 {
                        above[8] = a8;
                        left_nz[8] = l8;
                    }
                } else {
                    let quant = self.quants[segment];
                    let tokens = &mut self.partitions[part];
                    let first = if has_y2 {
                        let mut y2 = [0i32; 16];
                        let ctx = usize::from(above[8]) + usize::from(left_nz[8]);
                        let nz =
                            read_block(tokens, &self.probs[TYPE_Y2], ctx, 0, quant.y2, &mut y2);
                        above[8] = nz;
                        left_nz[8] = nz;
                        inverse_wht(&y2, &mut coeffs);
                        1
                    } else {
                        0
                    };
                    let kind = if has_y2 {
                        TYPE_Y_AFTER_Y2
                    } else {
                        TYPE_Y_WITH_DC
                    };
                    for by in 0..4 {
                        for bx in 0..4 {
                            let ctx = usize::from(above[bx]) + usize::from(left_nz[by]);
                            let block = &mut coeffs[4 * by + bx];
                            let nz =
                                read_block(tokens, &self.probs[kind], ctx, first, quant.y, block);
                            above[bx] = nz;
                            left_nz[by] = nz;
                            nonzero[4 * by + bx] = nz;
                        }
                    }
                    // U then V: walked, not kept.
                    let mut scratch = [0i32; 16];
                    for plane in [4, 6] {
                        for by in 0..2 {
                            for bx in 0..2 {
                                let ctx = usize::from(above[plane + bx])
                                    + usize::from(left_nz[plane + by]);
                                let nz = read_block(
                                    tokens,
                                    &self.probs[TYPE_CHROMA],
                                    ctx,
                                    0,
                                    [0, 0],
                                    &mut scratch,
                                );
                                above[plane + bx] = nz;
                                left_nz[plane + by] = nz;
                            }
                        }
                    }
                }
                self.reconstruct(mb_x, mb_y, mode, &sub_modes, &coeffs, &nonzero);
            }
            // The next row's rightmost macroblock predicts from four pixels
            // past the frame's edge: repeat this row's last pixel there.
            let last = (16 * mb_y + 16) * self.stride;
            let edge = self.plane[last + 16 * self.mb_cols];
            self.plane[last + 16 * self.mb_cols + 1..last + self.stride].fill(edge);
        }
        if self.modes.overran() || self.partitions.iter().any(Bools::overran) {
            return None;
        }
        Some(WebpLuma {
            width: self.width,
            height: self.height,
            plane: self.plane,
            stride: self.stride,
        })
    }

    /// Predicts one macroblock's luma and adds its residue.
    fn reconstruct(
        &mut self,
        mb_x: usize,
        mb_y: usize,
        mode: LumaMode,
        sub_modes: &[u8; 16],
        coeffs: &[[i32; 16]; 16],
        nonzero: &[bool; 16],
    ) {
        let stride = self.stride;
        // Index of the macroblock's top-left pixel.
        let origin = (1 + 16 * mb_y) * stride + 1 + 16 * mb_x;
        let plane = &mut self.plane;
        if mode == LumaMode::Split {
            for b in 0..16 {
                let (by, bx) = (b / 4, b % 4);
                let at = origin + 4 * by * stride + 4 * bx;
                // Above-right: for the right column the four pixels past the
                // macroblock on the row above it (rows below have not been
                // built there yet).
                let right = if bx == 3 {
                    origin - stride + 16
                } else {
                    at - stride + 4
                };
                predict_4x4(plane, at, right, stride, sub_modes[b]);
                add_residue(plane, at, stride, &coeffs[b], nonzero[b]);
            }
            return;
        }
        predict_16x16(plane, origin, stride, mode, mb_x > 0, mb_y > 0);
        // Every block has a DC from the Y2 block, AC only where `nonzero`.
        for b in 0..16 {
            let at = origin + 4 * (b / 4) * stride + 4 * (b % 4);
            add_residue(plane, at, stride, &coeffs[b], nonzero[b]);
        }
    }
}

/// Reads one block's tokens into `out` (dequantised, raster order), starting
/// at coefficient `first`. Returns whether the block had any token but an
/// immediate end of block (the neighbours' context).
fn read_block(
    bools: &mut Bools,
    probs: &[[[u8; 11]; 3]; 8],
    ctx: usize,
    first: usize,
    quant: [i32; 2],
    out: &mut [i32; 16],
) -> bool {
    // A local copy the compiler can keep in registers for the whole block
    // (through the reference it stores and reloads them around every bool).
    let mut local = *bools;
    let any = read_tokens(&mut local, probs, ctx, first, quant, out);
    *bools = local;
    any
}

#[inline(always)]
fn read_tokens(
    bools: &mut Bools,
    probs: &[[[u8; 11]; 3]; 8],
    ctx: usize,
    first: usize,
    quant: [i32; 2],
    out: &mut [i32; 16],
) -> bool {
    let mut i = first;
    let mut p = &probs[BANDS[i]][ctx];
    if !bools.read(p[0]) {
        return false;
    }
    loop {
        // Zeros (after a zero no end-of-block can follow).
        while !bools.read(p[1]) {
            i += 1;
            if i == 16 {
                return true;
            }
            p = &probs[BANDS[i]][0];
        }
        let (value, next_ctx) = if !bools.read(p[2]) {
            (1, 1)
        } else {
            let v = if !bools.read(p[3]) {
                if !bools.read(p[4]) {
                    2
                } else {
                    3 + i32::from(bools.read(p[5]))
                }
            } else {
                let category = if !bools.read(p[6]) {
                    usize::from(bools.read(p[7]))
                } else {
                    let high = usize::from(bools.read(p[8]));
                    2 + 2 * high + usize::from(bools.read(p[9 + high]))
                };
                let (base, extra) = CATEGORIES[category];
                base + extra
                    .iter()
                    .fold(0, |v, &prob| 2 * v + i32::from(bools.read(prob)))
            };
            (v, 2)
        };
        // Branch-free sign: v or −v from a mask of the (random) sign bit.
        let negative = -i32::from(bools.read_half());
        let signed = (value ^ negative) - negative;
        // Kept to 16 bits, as VP8 decoders store coefficients (only a
        // damaged stream gets near).
        out[ZIGZAG[i]] = (signed * quant[usize::from(i > 0)]).clamp(-32768, 32767);
        i += 1;
        if i == 16 {
            return true;
        }
        p = &probs[BANDS[i]][next_ctx];
        if !bools.read(p[0]) {
            return true;
        }
    }
}

/// Inverse Walsh–Hadamard transform of the Y2 block: each result is the DC
/// coefficient of one of the 16 luma blocks (section 14.3).
fn inverse_wht(input: &[i32; 16], blocks: &mut [[i32; 16]; 16]) {
    let mut tmp = [0i32; 16];
    for i in 0..4 {
        let a1 = input[i] + input[12 + i];
        let b1 = input[4 + i] + input[8 + i];
        let c1 = input[4 + i] - input[8 + i];
        let d1 = input[i] - input[12 + i];
        tmp[i] = a1 + b1;
        tmp[4 + i] = c1 + d1;
        tmp[8 + i] = a1 - b1;
        tmp[12 + i] = d1 - c1;
    }
    for row in 0..4 {
        let r = &tmp[4 * row..4 * row + 4];
        let a1 = r[0] + r[3];
        let b1 = r[1] + r[2];
        let c1 = r[1] - r[2];
        let d1 = r[0] - r[3];
        blocks[4 * row][0] = (a1 + b1 + 3) >> 3;
        blocks[4 * row + 1][0] = (c1 + d1 + 3) >> 3;
        blocks[4 * row + 2][0] = (a1 - b1 + 3) >> 3;
        blocks[4 * row + 3][0] = (d1 - c1 + 3) >> 3;
    }
}

/// Adds a block's inverse DCT (section 14.4) to the prediction at `at`.
/// `has_ac`: whether any coefficient but the DC may be non-zero; without,
/// the transform is the DC's rounded eighth everywhere.
fn add_residue(plane: &mut [u8], at: usize, stride: usize, coeffs: &[i32; 16], has_ac: bool) {
    let add = |px: &mut u8, r: i32| *px = (i32::from(*px) + r).clamp(0, 255) as u8;
    if !has_ac || coeffs[1..].iter().all(|&c| c == 0) {
        let dc = (coeffs[0] + 4) >> 3;
        if dc != 0 {
            for y in 0..4 {
                for px in &mut plane[at + y * stride..at + y * stride + 4] {
                    add(px, dc);
                }
            }
        }
        return;
    }
    // x·(cos(π/8)·√2 − 1) and x·sin(π/8)·√2, in 1/65536 (in 64 bits: a
    // damaged stream can bring 16-bit coefficients past the 32-bit range).
    let c1 = |x: i32| ((i64::from(x) * 20091) >> 16) as i32;
    let s1 = |x: i32| ((i64::from(x) * 35468) >> 16) as i32;
    let mut tmp = [0i32; 16];
    for i in 0..4 {
        let (x0, x1, x2, x3) = (coeffs[i], coeffs[4 + i], coeffs[8 + i], coeffs[12 + i]);
        let a1 = x0 + x2;
        let b1 = x0 - x2;
        let c = s1(x1) - (x3 + c1(x3));
        let d = (x1 + c1(x1)) + s1(x3);
        tmp[i] = a1 + d;
        tmp[12 + i] = a1 - d;
        tmp[4 + i] = b1 + c;
        tmp[8 + i] = b1 - c;
    }
    for y in 0..4 {
        let (x0, x1, x2, x3) = (tmp[4 * y], tmp[4 * y + 1], tmp[4 * y + 2], tmp[4 * y + 3]);
        let a1 = x0 + x2;
        let b1 = x0 - x2;
        let c = s1(x1) - (x3 + c1(x3));
        let d = (x1 + c1(x1)) + s1(x3);
        let row = &mut plane[at + y * stride..at + y * stride + 4];
        add(&mut row[0], (a1 + d + 4) >> 3);
        add(&mut row[3], (a1 - d + 4) >> 3);
        add(&mut row[1], (b1 + c + 4) >> 3);
        add(&mut row[2], (b1 - c + 4) >> 3);
    }
}

/// 16×16 prediction (section 12.2/12.3) into the macroblock at `at`.
fn predict_16x16(
    plane: &mut [u8],
    at: usize,
    stride: usize,
    mode: LumaMode,
    has_left: bool,
    has_above: bool,
) {
    let above: [u8; 16] = std::array::from_fn(|x| plane[at - stride + x]);
    let left: [u8; 16] = std::array::from_fn(|y| plane[at + y * stride - 1]);
    let rows = plane[at..].chunks_mut(stride).take(16);
    match mode {
        LumaMode::Dc => {
            let sum = |edge: &[u8; 16]| edge.iter().map(|&v| u32::from(v)).sum::<u32>();
            // Only the edges inside the frame count.
            let dc = match (has_above, has_left) {
                (true, true) => (sum(&above) + sum(&left) + 16) >> 5,
                (true, false) => (sum(&above) + 8) >> 4,
                (false, true) => (sum(&left) + 8) >> 4,
                (false, false) => 128,
            };
            rows.for_each(|row| row[..16].fill(dc as u8));
        }
        LumaMode::Vertical => rows.for_each(|row| row[..16].copy_from_slice(&above)),
        LumaMode::Horizontal => rows.zip(left).for_each(|(row, l)| row[..16].fill(l)),
        LumaMode::TrueMotion | LumaMode::Split => {
            let corner = i32::from(plane[at - stride - 1]);
            for (y, row) in plane[at..].chunks_mut(stride).take(16).enumerate() {
                let l = i32::from(left[y]) - corner;
                for (px, &a) in row.iter_mut().zip(&above) {
                    *px = (l + i32::from(a)).clamp(0, 255) as u8;
                }
            }
        }
    }
}

/// 4×4 prediction (section 12.3) into the block at `at`; `right` indexes
/// the four above-right pixels.
fn predict_4x4(plane: &mut [u8], at: usize, right: usize, stride: usize, mode: u8) {
    let px = |i: usize| i32::from(plane[i]);
    // Edge: e[0..4] = left column bottom to top, e[4] = corner,
    // e[5..13] = above row and above-right.
    let mut e = [0i32; 13];
    for i in 0..4 {
        e[3 - i] = px(at + i * stride - 1);
        e[5 + i] = px(at - stride + i);
        e[9 + i] = px(right + i);
    }
    e[4] = px(at - stride - 1);
    let l = |i: usize| e[3 - i];
    let a = |i: usize| e[5 + i];
    let avg3 = |x: i32, y: i32, z: i32| (x + 2 * y + z + 2) >> 2;
    let avg2 = |x: i32, y: i32| (x + y + 1) >> 1;
    // Smoothed edge pixel centred on e[i].
    let s = |i: usize| avg3(e[i - 1], e[i], e[i + 1]);
    // Half-way between e[i] and e[i + 1].
    let h = |i: usize| avg2(e[i], e[i + 1]);
    let mut b = [[0i32; 4]; 4];
    match mode {
        B_DC => {
            let dc = ((0..4).map(|i| a(i) + l(i)).sum::<i32>() + 4) >> 3;
            b = [[dc; 4]; 4];
        }
        B_TM => {
            for (r, row) in b.iter_mut().enumerate() {
                for (c, v) in row.iter_mut().enumerate() {
                    *v = (l(r) + a(c) - e[4]).clamp(0, 255);
                }
            }
        }
        B_VE => {
            for c in 0..4 {
                let v = s(5 + c);
                for row in &mut b {
                    row[c] = v;
                }
            }
        }
        B_HE => {
            // Rows 0..3 smooth the left column upwards from the corner;
            // the bottom row has no pixel below it, so it repeats L3.
            let values = [s(3), s(2), s(1), avg3(e[1], e[0], e[0])];
            for (row, v) in b.iter_mut().zip(values) {
                *row = [v; 4];
            }
        }
        B_LD => {
            for (r, row) in b.iter_mut().enumerate() {
                for (c, v) in row.iter_mut().enumerate() {
                    let d = r + c;
                    *v = if d == 6 {
                        avg3(e[11], e[12], e[12])
                    } else {
                        s(6 + d)
                    };
                }
            }
        }
        B_RD => {
            for (r, row) in b.iter_mut().enumerate() {
                for (c, v) in row.iter_mut().enumerate() {
                    *v = s(4 + c - r);
                }
            }
        }
        B_VR => {
            b = [
                [h(4), h(5), h(6), h(7)],
                [s(4), s(5), s(6), s(7)],
                [s(3), h(4), h(5), h(6)],
                [s(2), s(4), s(5), s(6)],
            ];
        }
        B_VL => {
            b = [
                [h(5), h(6), h(7), h(8)],
                [s(6), s(7), s(8), s(9)],
                [h(6), h(7), h(8), s(10)],
                [s(7), s(8), s(9), s(11)],
            ];
        }
        B_HD => {
            b = [
                [h(3), s(4), s(5), s(6)],
                [h(2), s(3), h(3), s(4)],
                [h(1), s(2), h(2), s(3)],
                [h(0), s(1), h(1), s(2)],
            ];
        }
        _ => {
            // B_HU: up and to the right along the left column; past its
            // end every pixel is the last left pixel.
            let l3 = e[0];
            let below = avg3(e[1], e[0], e[0]);
            b = [
                [h(2), s(2), h(1), s(1)],
                [h(1), s(1), h(0), below],
                [h(0), below, l3, l3],
                [l3, l3, l3, l3],
            ];
        }
    }
    for (y, row) in b.iter().enumerate() {
        for (x, &v) in row.iter().enumerate() {
            plane[at + y * stride + x] = v as u8;
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use libwebp_sys as webp;

    /// libwebp encoder settings the tests vary.
    #[derive(Debug, Clone, Copy)]
    pub(crate) struct Lossy {
        pub quality: f32,
        pub method: i32,
        pub filter_strength: i32,
        pub segments: i32,
        pub partitions: i32,
        pub sns: i32,
    }

    impl Default for Lossy {
        fn default() -> Self {
            Lossy {
                quality: 75.0,
                method: 4,
                filter_strength: 60,
                segments: 4,
                partitions: 0,
                sns: 50,
            }
        }
    }

    /// Encodes RGB pixels as a lossy WebP with libwebp (the reference
    /// encoder, built from source for the tests only).
    pub(crate) fn encode_lossy(
        rgb: &[u8],
        width: usize,
        height: usize,
        settings: Lossy,
    ) -> Vec<u8> {
        encode_libwebp(rgb, 3, width, height, settings.quality, |config| {
            config.method = settings.method;
            config.filter_strength = settings.filter_strength;
            config.segments = settings.segments;
            config.partitions = settings.partitions;
            config.sns_strength = settings.sns;
        })
    }

    /// Encodes RGB (`channels` 3) or RGBA (4) pixels with libwebp, the
    /// reference encoder (built from source for the tests only), with the
    /// default settings at `quality` changed by `configure`.
    pub(crate) fn encode_libwebp(
        pixels: &[u8],
        channels: usize,
        width: usize,
        height: usize,
        quality: f32,
        configure: impl FnOnce(&mut webp::WebPConfig),
    ) -> Vec<u8> {
        let mut config =
            webp::WebPConfig::new_with_preset(webp::WebPPreset::WEBP_PRESET_DEFAULT, quality)
                .expect("libwebp config");
        configure(&mut config);
        let mut picture = webp::WebPPicture::new().expect("libwebp picture");
        picture.width = width as i32;
        picture.height = height as i32;
        picture.use_argb = config.lossless;
        let stride = (channels * width) as i32;
        // SAFETY: the picture, writer and pixels outlive every call; libwebp
        // copies the pixels on import and the writer owns its buffer until
        // it is copied out and cleared.
        unsafe {
            assert!(webp::WebPValidateConfig(&config) != 0, "invalid settings");
            let imported = if channels == 4 {
                webp::WebPPictureImportRGBA(&mut picture, pixels.as_ptr(), stride)
            } else {
                webp::WebPPictureImportRGB(&mut picture, pixels.as_ptr(), stride)
            };
            assert!(imported != 0);
            let mut writer = std::mem::MaybeUninit::<webp::WebPMemoryWriter>::uninit();
            webp::WebPMemoryWriterInit(writer.as_mut_ptr());
            let mut writer = writer.assume_init();
            picture.writer = Some(webp::WebPMemoryWrite);
            picture.custom_ptr = (&mut writer as *mut webp::WebPMemoryWriter).cast();
            let ok = webp::WebPEncode(&config, &mut picture);
            webp::WebPPictureFree(&mut picture);
            assert!(ok != 0, "libwebp could not encode");
            let bytes = std::slice::from_raw_parts(writer.mem, writer.size).to_vec();
            webp::WebPMemoryWriterClear(&mut writer);
            bytes
        }
    }

    /// libwebp's own decode of the luma plane (after its loop filter).
    fn reference_luma(file: &[u8]) -> (usize, usize, Vec<u8>) {
        let (mut w, mut h, mut stride, mut uv_stride) = (0, 0, 0, 0);
        let (mut u, mut v) = (std::ptr::null_mut(), std::ptr::null_mut());
        // SAFETY: libwebp returns one allocation holding Y, U and V (or
        // null); it is read within its stated size, then freed.
        unsafe {
            let y = webp::WebPDecodeYUV(
                file.as_ptr(),
                file.len(),
                &mut w,
                &mut h,
                &mut u,
                &mut v,
                &mut stride,
                &mut uv_stride,
            );
            assert!(!y.is_null(), "libwebp could not decode its own file");
            let (w, h, stride) = (w as usize, h as usize, stride as usize);
            let mut plane = Vec::with_capacity(w * h);
            for row in 0..h {
                plane.extend_from_slice(std::slice::from_raw_parts(y.add(row * stride), w));
            }
            webp::WebPFree(y.cast());
            (w, h, plane)
        }
    }

    /// A test picture with smooth areas, hard edges and fine texture, so
    /// the encoder uses every prediction mode.
    pub(crate) fn picture(width: usize, height: usize, seed: u32) -> Vec<u8> {
        let mut state = seed.wrapping_mul(2_654_435_761).max(1);
        let mut noise = move || {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state
        };
        let mut rgb = Vec::with_capacity(width * height * 3);
        for y in 0..height {
            for x in 0..width {
                let (fx, fy) = (x as f32 / width as f32, y as f32 / height as f32);
                let ring = (((fx - 0.5).hypot(fy - 0.4) * 14.0).sin() * 90.0) as i32;
                let stripe = if (x / 7 + y / 11) % 3 == 0 { 60 } else { 0 };
                let grain = (noise() % 25) as i32;
                let r = 120 + ring + stripe + grain;
                let g = (255.0 * fx) as i32 - stripe + grain;
                let b = (255.0 * fy) as i32 + ring / 2;
                rgb.extend([r, g, b].map(|c| c.clamp(0, 255) as u8));
            }
        }
        rgb
    }

    fn any(_: u32, _: u32) -> bool {
        true
    }

    #[test]
    fn luma_equals_libwebps_when_the_encoder_does_not_filter() {
        let sizes = [(1, 1), (16, 16), (17, 15), (33, 47), (250, 130), (130, 250)];
        let mut cases = 0;
        for (i, &(w, h)) in sizes.iter().enumerate() {
            let rgb = picture(w, h, i as u32 + 1);
            for (quality, method, segments, partitions, sns) in [
                (75.0, 4, 4, 0, 50),
                (5.0, 0, 1, 3, 0),
                (100.0, 6, 4, 2, 100),
                (40.0, 2, 2, 1, 80),
            ] {
                let settings = Lossy {
                    quality,
                    method,
                    filter_strength: 0,
                    segments,
                    partitions,
                    sns,
                };
                let file = encode_lossy(&rgb, w, h, settings);
                let (rw, rh, reference) = reference_luma(&file);
                let ours = decode(&file, any).unwrap_or_else(|| panic!("{w}x{h} {settings:?}"));
                assert_eq!((ours.width, ours.height), (rw, rh));
                for y in 0..h {
                    for x in 0..w {
                        assert_eq!(
                            ours.sample(x, y),
                            reference[y * w + x],
                            "{w}x{h} {settings:?}: pixel ({x}, {y})"
                        );
                    }
                }
                cases += 1;
            }
        }
        assert_eq!(cases, 24);
    }

    /// `rounds` damaged copies of `files` (taken in turn): up to
    /// `max_changes` bytes changed, half of them within the first `header`
    /// bytes (headers are small: hit them as often as the data), and a
    /// third of the copies cut short.
    pub(crate) fn damaged_copies(
        files: &[Vec<u8>],
        rounds: usize,
        seed: u32,
        max_changes: usize,
        header: usize,
    ) -> Vec<Vec<u8>> {
        let mut state = seed.max(1);
        let mut next = move |n: usize| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state as usize % n.max(1)
        };
        (0..rounds)
            .map(|round| {
                let mut file = files[round % files.len()].clone();
                for _ in 0..1 + next(max_changes) {
                    let at = if next(2) == 0 {
                        next(header)
                    } else {
                        next(file.len())
                    };
                    if let Some(byte) = file.get_mut(at) {
                        *byte ^= 1 + next(255) as u8;
                    }
                }
                if next(3) == 0 {
                    file.truncate(next(file.len()));
                }
                file
            })
            .collect()
    }

    #[test]
    fn damaged_files_get_an_answer_never_a_panic() {
        let files: Vec<Vec<u8>> = [(96, 64, 20.0, 0), (70, 90, 90.0, 3), (33, 17, 60.0, 1)]
            .into_iter()
            .map(|(w, h, quality, partitions)| {
                let settings = Lossy {
                    quality,
                    partitions,
                    ..Lossy::default()
                };
                encode_lossy(&picture(w, h, 9), w, h, settings)
            })
            .collect();
        let (mut read, mut refused) = (0, 0);
        for file in damaged_copies(&files, 3000, 0x9e37_79b9, 6, 48) {
            match decode(&file, any) {
                Some(luma) => {
                    let mut line = vec![0; luma.width];
                    luma.grey_row(luma.height - 1, &mut line);
                    read += 1;
                }
                None => refused += 1,
            }
        }
        // Both outcomes happen: the damage reaches the decoder's insides.
        assert!(
            read > 300 && refused > 300,
            "read {read}, refused {refused}"
        );
    }

    #[test]
    fn alpha_lossless_and_oversized_files_are_left_to_the_general_decoder() {
        let rgb = picture(40, 30, 5);
        let file = encode_lossy(&rgb, 40, 30, Lossy::default());
        assert!(decode(&file, any).is_some());
        // The size guard sees the declared size before anything is decoded.
        assert!(decode(&file, |w, h| (w, h) == (40, 30)).is_some());
        assert!(decode(&file, |w, _| w < 40).is_none());
        // The same frame in an extended file with an alpha chunk, and with
        // the animation flag.
        let vp8 = &file[12..];
        let extended = |flags: u8, alph: bool| {
            let mut chunks = Vec::new();
            chunks.extend_from_slice(b"VP8X");
            chunks.extend_from_slice(&10u32.to_le_bytes());
            chunks.extend_from_slice(&[flags, 0, 0, 0, 39, 0, 0, 29, 0, 0]);
            if alph {
                chunks.extend_from_slice(b"ALPH");
                chunks.extend_from_slice(&2u32.to_le_bytes());
                chunks.extend_from_slice(&[0, 0]);
            }
            chunks.extend_from_slice(vp8);
            let mut out = b"RIFF".to_vec();
            out.extend_from_slice(&(4 + chunks.len() as u32).to_le_bytes());
            out.extend_from_slice(b"WEBP");
            out.extend_from_slice(&chunks);
            out
        };
        let plain = decode(&extended(0, false), any).expect("extended file without alpha");
        assert_eq!((plain.width, plain.height), (40, 30));
        assert!(decode(&extended(0x10, true), any).is_none());
        assert!(decode(&extended(0x02, false), any).is_none());
        // Lossless: `image` writes only lossless WebP.
        let mut lossless = Vec::new();
        image::DynamicImage::ImageRgb8(image::RgbImage::from_raw(40, 30, rgb).unwrap())
            .write_to(
                &mut std::io::Cursor::new(&mut lossless),
                image::ImageFormat::WebP,
            )
            .unwrap();
        assert!(decode(&lossless, any).is_none());
    }
}
