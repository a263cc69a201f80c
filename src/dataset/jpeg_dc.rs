//! The 8×8 block means of a JPEG's first component, read straight from the
//! DC coefficients: no inverse DCT, no colour conversion, no upsampling.
//!
//! A JPEG stores every 8×8 block of a component as 64 DCT coefficients. The
//! first, DC, is 8 × (the block's mean − 128) once dequantised, so the DC
//! coefficients of the Y component are the picture's grey level averaged
//! over 8×8 cells: a 1/8-scale area average, which is all a perceptual hash
//! needs. The entropy-coded data must still be walked symbol by symbol (the
//! Huffman codes have no index), but the AC symbols are only skipped: the
//! code is looked up, its extra bits jumped over, and nothing is
//! dequantised, stored or transformed. Blocks of the other components are
//! walked the same way and dropped.
//!
//! Supported: baseline and extended sequential Huffman JPEGs with 8-bit
//! samples (SOF0, SOF1), 1, 3 or 4 components, any sampling factors whose
//! ratio to the largest is a whole number, interleaved and one-component
//! scans, restart intervals, byte stuffing and fill bytes. Everything else
//! (progressive, arithmetic coding, lossless, hierarchical, 12-bit samples,
//! a height given only after the scan) is refused with a [`DcError`], as is
//! data that ends or goes wrong before every block was read: the caller then
//! decodes the file fully, so the answer is never wrong, only slower.
//!
//! Corruption that still decodes as valid Huffman codes cannot be seen (no
//! decoder can); the checks catch a scan that runs out of data, leftover or
//! missing data at a restart marker or at the end of the scan, restart
//! markers out of order, codes that are not in the table, and blocks with
//! more than 64 coefficients.

use std::ops::Range;

mod entropy;

use entropy::{Bits, Huffman};

/// Largest sum of h × v over the components of one MCU (the standard's
/// limit).
const MAX_BLOCKS_PER_MCU: usize = 10;

/// How the components of a JPEG encode colour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JpegColour {
    /// One component: grey.
    Grey,
    /// Three components, the first is luma (Y).
    YCbCr,
    /// Three components coded as RGB (Adobe transform 0, or ids `R`, `G`,
    /// `B`): the first is red, not grey.
    Rgb,
    /// Four components, CMYK (the first is cyan).
    Cmyk,
    /// Four components, Adobe YCCK (the first is an inverted luma).
    Ycck,
}

/// Why a JPEG's block means could not be read. Every case means "decode it
/// the ordinary way instead".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DcError {
    #[error("not a JPEG: no start-of-image marker")]
    NotJpeg,
    #[error("progressive JPEG")]
    Progressive,
    #[error("arithmetic-coded JPEG")]
    Arithmetic,
    #[error("lossless JPEG")]
    Lossless,
    #[error("hierarchical JPEG")]
    Hierarchical,
    #[error("`{bits}`-bit samples (only 8-bit are read)")]
    Precision { bits: u8 },
    #[error("unsupported JPEG: {0}")]
    Unsupported(&'static str),
    #[error("the picture is `{width}` × `{height}` pixels, beyond the limit")]
    TooLarge { width: u32, height: u32 },
    #[error("the data ends before every block was read")]
    Truncated,
    #[error("corrupt JPEG: {0}")]
    Corrupt(&'static str),
}

/// The block means of a JPEG's first component.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DcImage {
    /// Size of the picture, in pixels.
    pub width: u32,
    pub height: u32,
    pub colour: JpegColour,
    /// Size of the grid of means, cropped to the picture: the last column
    /// and row may stand for blocks partly outside it.
    pub columns: usize,
    pub rows: usize,
    /// Picture pixels each mean stands for across and down: 8 for a
    /// full-resolution component, 16 for one subsampled by two.
    pub block_width: usize,
    pub block_height: usize,
    /// `columns` × `rows` means, row-major, 0–255.
    pub means: Vec<u8>,
    /// The block means of the two colour (Cb, Cr) components, when asked
    /// for and the first scan holds them ([`DcReader::decode_with_colour`]).
    pub chroma: Option<Chroma>,
}

/// The block means of a YCbCr JPEG's Cb and Cr components (sampled alike).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chroma {
    pub columns: usize,
    pub rows: usize,
    /// Picture pixels each mean stands for across and down.
    pub block_width: usize,
    pub block_height: usize,
    /// `columns` × `rows` means each, row-major, 0–255 (128 is grey).
    pub cb: Vec<u8>,
    pub cr: Vec<u8>,
}

/// A JPEG whose headers have been read up to its first scan: its size and
/// colour are known, no entropy-coded data has been read yet.
#[derive(Debug)]
pub struct DcReader<'a> {
    data: &'a [u8],
    /// Just after the first SOS marker.
    pos: usize,
    frame: Frame,
    tables: Tables,
    restart_interval: u16,
    colour: JpegColour,
}

#[derive(Debug, Clone)]
struct Frame {
    width: u32,
    height: u32,
    components: Vec<Component>,
    h_max: u8,
    v_max: u8,
}

#[derive(Debug, Clone, Copy)]
struct Component {
    id: u8,
    h: u8,
    v: u8,
    quant: u8,
}

impl Frame {
    /// Blocks across and down that hold samples of component `c` (the MCU
    /// padding of an interleaved scan comes on top of these).
    fn blocks_of(&self, c: usize) -> (usize, usize) {
        let comp = self.components[c];
        let across = (self.width as usize * usize::from(comp.h)).div_ceil(usize::from(self.h_max));
        let down = (self.height as usize * usize::from(comp.v)).div_ceil(usize::from(self.v_max));
        (across.div_ceil(8), down.div_ceil(8))
    }
}

#[derive(Debug, Default)]
struct Tables {
    /// First (DC) entry of each quantisation table.
    quant_dc: [Option<u16>; 4],
    dc: [Option<Box<Huffman>>; 4],
    ac: [Option<Box<Huffman>>; 4],
}

/// Big-endian `u16` at `at`.
fn be16(data: &[u8], at: usize) -> Result<usize, DcError> {
    match data.get(at..at + 2) {
        Some(b) => Ok(usize::from(b[0]) << 8 | usize::from(b[1])),
        None => Err(DcError::Truncated),
    }
}

/// The body of the marker segment whose length field is at `at`.
fn segment(data: &[u8], at: usize) -> Result<Range<usize>, DcError> {
    let len = be16(data, at)?;
    if len < 2 {
        return Err(DcError::Corrupt(
            "a marker segment is shorter than its length field",
        ));
    }
    let end = at + len;
    if end > data.len() {
        return Err(DcError::Truncated);
    }
    Ok(at + 2..end)
}

/// The next marker at or after `pos` (skipping fill bytes), and the position
/// after it. Bytes that are not a marker are corruption.
fn next_marker(data: &[u8], mut pos: usize) -> Result<(u8, usize), DcError> {
    match data.get(pos) {
        Some(0xFF) => {}
        Some(_) => return Err(DcError::Corrupt("data where a marker was expected")),
        None => return Err(DcError::Truncated),
    }
    while data.get(pos) == Some(&0xFF) {
        pos += 1;
    }
    match data.get(pos) {
        Some(0) => Err(DcError::Corrupt(
            "a stuffed byte where a marker was expected",
        )),
        Some(&m) => Ok((m, pos + 1)),
        None => Err(DcError::Truncated),
    }
}

/// Size limits checked before any block is read.
#[derive(Debug, Clone, Copy)]
pub struct DcLimits {
    pub max_side: u32,
    pub max_pixels: u64,
}

impl<'a> DcReader<'a> {
    /// Reads the headers of `data` up to the first scan.
    pub fn new(data: &'a [u8], limits: DcLimits) -> Result<DcReader<'a>, DcError> {
        if data.get(..2) != Some(&[0xFF, 0xD8]) {
            return Err(DcError::NotJpeg);
        }
        let mut pos = 2;
        let mut tables = Tables::default();
        let mut frame: Option<Frame> = None;
        let mut restart_interval = 0;
        let (mut jfif, mut adobe) = (false, None);
        loop {
            let (marker, after) = next_marker(data, pos)?;
            pos = after;
            match marker {
                0xD8 => return Err(DcError::Corrupt("a second start-of-image marker")),
                0xD9 => return Err(DcError::Corrupt("the picture ends before any scan")),
                // Restart markers and TEM have no length.
                0xD0..=0xD7 | 0x01 => continue,
                0xC0 | 0xC1 => {
                    if frame.is_some() {
                        return Err(DcError::Corrupt("a second frame header"));
                    }
                    let body = segment(data, pos)?;
                    frame = Some(read_frame(&data[body.clone()], limits)?);
                    pos = body.end;
                }
                0xC2 | 0xC6 => return Err(DcError::Progressive),
                0xC3 | 0xC7 => return Err(DcError::Lossless),
                0xC5 => return Err(DcError::Hierarchical),
                // SOF9–SOF15 and DAC (0xCC).
                0xC9..=0xCF => return Err(DcError::Arithmetic),
                0xDE | 0xDF => return Err(DcError::Hierarchical),
                0xDC => return Err(DcError::Unsupported("a DNL marker")),
                0xC4 | 0xDB | 0xDD => {
                    pos = read_tables(data, pos, marker, &mut tables, &mut restart_interval)?;
                }
                0xDA => {
                    let Some(frame) = frame else {
                        return Err(DcError::Corrupt("a scan before the frame header"));
                    };
                    let colour = colour_of(&frame, jfif, adobe)?;
                    return Ok(DcReader {
                        data,
                        pos,
                        frame,
                        tables,
                        restart_interval,
                        colour,
                    });
                }
                _ => {
                    // APPn, COM and anything else with a length: skipped,
                    // except what tells the colour model.
                    let body = segment(data, pos)?;
                    let bytes = &data[body.clone()];
                    if marker == 0xE0 && bytes.starts_with(b"JFIF\0") {
                        jfif = true;
                    }
                    if marker == 0xEE && bytes.starts_with(b"Adobe") && bytes.len() >= 12 {
                        adobe = Some(bytes[11]);
                    }
                    pos = body.end;
                }
            }
        }
    }

    /// Width and height of the picture.
    pub fn dimensions(&self) -> (u32, u32) {
        (self.frame.width, self.frame.height)
    }

    pub fn colour(&self) -> JpegColour {
        self.colour
    }

    /// Walks the scans until the first component's blocks are all read, and
    /// returns their means.
    pub fn decode(self) -> Result<DcImage, DcError> {
        self.decode_inner(false)
    }

    /// [`DcReader::decode`], also keeping the Cb and Cr block means when the
    /// picture is YCbCr, both colour components are sampled alike and the
    /// first scan holds them (an interleaved scan, what encoders write by
    /// default); reading them costs next to nothing, as their DC values are
    /// decoded either way.
    pub fn decode_with_colour(self) -> Result<DcImage, DcError> {
        self.decode_inner(true)
    }

    fn decode_inner(mut self, colour: bool) -> Result<DcImage, DcError> {
        let (columns, rows) = self.frame.blocks_of(0);
        let first = self.frame.components[0];
        let block = |max: u8, own: u8| -> Result<usize, DcError> {
            if !max.is_multiple_of(own) {
                return Err(DcError::Unsupported("sampling factors that do not divide"));
            }
            Ok(8 * usize::from(max / own))
        };
        let block_width = block(self.frame.h_max, first.h)?;
        let block_height = block(self.frame.v_max, first.v)?;
        let mut dc = vec![0i32; columns * rows];
        let mut chroma = (colour && self.colour == JpegColour::YCbCr)
            .then(|| self.chroma_plan())
            .flatten();
        loop {
            // `self.pos` is just after an SOS marker.
            let body = segment(self.data, self.pos)?;
            let scan = self.read_scan(&self.data[body.clone()])?;
            let quant = if scan.has_first {
                self.tables.quant_dc[usize::from(first.quant)]
                    .ok_or(DcError::Corrupt("a missing quantisation table"))?
            } else {
                0
            };
            if chroma.is_some() && !scan.has_colour {
                chroma = None;
            }
            self.pos = self.walk_scan(body.end, &scan, &mut dc, columns, rows, chroma.as_mut())?;
            if scan.has_first {
                let chroma = match chroma {
                    Some(plan) => Some(self.chroma_means(plan)?),
                    None => None,
                };
                let means = dc
                    .iter()
                    .map(|&d| {
                        // mean = dequantised DC / 8 + 128, rounded.
                        ((i64::from(d) * i64::from(quant) + 1028) >> 3).clamp(0, 255) as u8
                    })
                    .collect();
                return Ok(DcImage {
                    width: self.frame.width,
                    height: self.frame.height,
                    colour: self.colour,
                    columns,
                    rows,
                    block_width,
                    block_height,
                    means,
                    chroma,
                });
            }
            // Tables and restart intervals may change between scans.
            loop {
                let (marker, after) = next_marker(self.data, self.pos)?;
                self.pos = after;
                match marker {
                    0xDA => break,
                    0xD9 => {
                        return Err(DcError::Corrupt(
                            "the picture ends before its first component",
                        ));
                    }
                    0xD0..=0xD7 | 0x01 => {}
                    0xC4 | 0xDB | 0xDD => {
                        self.pos = read_tables(
                            self.data,
                            self.pos,
                            marker,
                            &mut self.tables,
                            &mut self.restart_interval,
                        )?;
                    }
                    0xDC => return Err(DcError::Unsupported("a DNL marker")),
                    _ => self.pos = segment(self.data, self.pos)?.end,
                }
            }
        }
    }

    /// Where the Cb and Cr DC values go, when they can be kept.
    fn chroma_plan(&self) -> Option<ChromaPlan> {
        let [_, cb, cr] = self.frame.components.as_slice() else {
            return None;
        };
        if (cb.h, cb.v) != (cr.h, cr.v)
            || !self.frame.h_max.is_multiple_of(cb.h)
            || !self.frame.v_max.is_multiple_of(cb.v)
        {
            return None;
        }
        let (columns, rows) = self.frame.blocks_of(1);
        Some(ChromaPlan {
            columns,
            rows,
            h: usize::from(cb.h),
            v: usize::from(cb.v),
            block_width: 8 * usize::from(self.frame.h_max / cb.h),
            block_height: 8 * usize::from(self.frame.v_max / cb.v),
            dc: [vec![0; columns * rows], vec![0; columns * rows]],
        })
    }

    /// The Cb and Cr means from their dequantised DC values.
    fn chroma_means(&self, plan: ChromaPlan) -> Result<Chroma, DcError> {
        let quant = |c: usize| {
            self.tables.quant_dc[usize::from(self.frame.components[c].quant)]
                .ok_or(DcError::Corrupt("a missing quantisation table"))
        };
        let means = |dc: &[i32], q: u16| -> Vec<u8> {
            dc.iter()
                .map(|&d| ((i64::from(d) * i64::from(q) + 1028) >> 3).clamp(0, 255) as u8)
                .collect()
        };
        let [cb, cr] = &plan.dc;
        Ok(Chroma {
            columns: plan.columns,
            rows: plan.rows,
            block_width: plan.block_width,
            block_height: plan.block_height,
            cb: means(cb, quant(1)?),
            cr: means(cr, quant(2)?),
        })
    }

    /// Parses an SOS body into the scan's components and tables.
    fn read_scan(&self, body: &[u8]) -> Result<Scan, DcError> {
        let count = usize::from(*body.first().ok_or(DcError::Truncated)?);
        if count == 0 || count > 4 || body.len() != 1 + 2 * count + 3 {
            return Err(DcError::Corrupt("a scan header of the wrong size"));
        }
        let mut members = Vec::with_capacity(count);
        for i in 0..count {
            let (id, sel) = (body[1 + 2 * i], body[2 + 2 * i]);
            let c = self
                .frame
                .components
                .iter()
                .position(|c| c.id == id)
                .ok_or(DcError::Corrupt("a scan names a component the frame lacks"))?;
            let (dc, ac) = (usize::from(sel >> 4), usize::from(sel & 15));
            if dc > 3 || ac > 3 {
                return Err(DcError::Corrupt("a scan names a Huffman table beyond 3"));
            }
            members.push((c, dc, ac));
        }
        let (ss, se, a) = (
            body[1 + 2 * count],
            body[2 + 2 * count],
            body[3 + 2 * count],
        );
        if ss != 0 || se != 63 || a != 0 {
            return Err(DcError::Corrupt(
                "a sequential scan with a spectral selection",
            ));
        }
        let mut blocks = Vec::new();
        for &(c, dc, ac) in &members {
            let comp = self.frame.components[c];
            let (h, v) = if count == 1 { (1, 1) } else { (comp.h, comp.v) };
            for by in 0..v {
                for bx in 0..h {
                    blocks.push(BlockSlot {
                        component: c,
                        dc_table: dc,
                        ac_table: ac,
                        dx: usize::from(bx),
                        dy: usize::from(by),
                    });
                }
            }
        }
        if blocks.len() > MAX_BLOCKS_PER_MCU {
            return Err(DcError::Corrupt("an MCU of more than 10 blocks"));
        }
        for slot in &blocks {
            if self.tables.dc[slot.dc_table].is_none() || self.tables.ac[slot.ac_table].is_none() {
                return Err(DcError::Corrupt(
                    "a scan uses a Huffman table never defined",
                ));
            }
        }
        let (mcus_across, mcus_down, scale) = if count == 1 {
            let (across, down) = self.frame.blocks_of(members[0].0);
            (across, down, (1, 1))
        } else {
            let across = (self.frame.width as usize).div_ceil(8 * usize::from(self.frame.h_max));
            let down = (self.frame.height as usize).div_ceil(8 * usize::from(self.frame.v_max));
            let first = self.frame.components[0];
            (across, down, (usize::from(first.h), usize::from(first.v)))
        };
        Ok(Scan {
            has_first: members.iter().any(|m| m.0 == 0),
            has_colour: count == 3,
            blocks,
            mcus_across,
            mcus_down,
            first_blocks: scale,
        })
    }

    /// Walks the entropy-coded data of one scan starting at `start`, keeping
    /// the DC values of component 0 in `dc` (and of components 1 and 2 in
    /// `chroma`, when given); returns where the data ends (at the next
    /// marker).
    fn walk_scan(
        &self,
        start: usize,
        scan: &Scan,
        dc: &mut [i32],
        columns: usize,
        rows: usize,
        mut chroma: Option<&mut ChromaPlan>,
    ) -> Result<usize, DcError> {
        let dc_tables: Vec<&Huffman> = scan
            .blocks
            .iter()
            .map(|s| self.tables.dc[s.dc_table].as_deref())
            .collect::<Option<_>>()
            .ok_or(DcError::Corrupt("a missing Huffman table"))?;
        let ac_tables: Vec<&Huffman> = scan
            .blocks
            .iter()
            .map(|s| self.tables.ac[s.ac_table].as_deref())
            .collect::<Option<_>>()
            .ok_or(DcError::Corrupt("a missing Huffman table"))?;
        let mut bits = Bits::new(self.data, start);
        let mut pred = 0i32;
        let mut chroma_pred = [0i32; 2];
        let interval = match self.restart_interval {
            0 => usize::MAX,
            n => usize::from(n),
        };
        let (fw, fh) = scan.first_blocks;
        let mut next_restart = 0u8;
        let mut left_in_interval = interval;
        for my in 0..scan.mcus_down {
            for mx in 0..scan.mcus_across {
                if left_in_interval == 0 {
                    bits.restart(next_restart)?;
                    next_restart = (next_restart + 1) & 7;
                    pred = 0;
                    chroma_pred = [0; 2];
                    left_in_interval = interval;
                }
                left_in_interval -= 1;
                for (i, slot) in scan.blocks.iter().enumerate() {
                    if slot.component == 0 {
                        pred = pred.wrapping_add(bits.dc_diff(dc_tables[i]));
                        let (x, y) = (mx * fw + slot.dx, my * fh + slot.dy);
                        if x < columns && y < rows {
                            dc[y * columns + x] = pred;
                        }
                    } else if let Some(plan) = chroma.as_deref_mut() {
                        let k = slot.component - 1;
                        chroma_pred[k] = chroma_pred[k].wrapping_add(bits.dc_diff(dc_tables[i]));
                        let (x, y) = (mx * plan.h + slot.dx, my * plan.v + slot.dy);
                        if x < plan.columns && y < plan.rows {
                            plan.dc[k][y * plan.columns + x] = chroma_pred[k];
                        }
                    } else {
                        bits.skip_dc(dc_tables[i]);
                    }
                    bits.skip_ac(ac_tables[i]);
                }
            }
            bits.check()?;
        }
        bits.finish()
    }
}

/// Where the Cb and Cr DC values of a YCbCr JPEG are gathered.
#[derive(Debug)]
struct ChromaPlan {
    columns: usize,
    rows: usize,
    /// Blocks of each across and down one MCU.
    h: usize,
    v: usize,
    block_width: usize,
    block_height: usize,
    /// Cb and Cr DC values, not yet dequantised.
    dc: [Vec<i32>; 2],
}

/// One scan: which blocks make up an MCU, and how many MCUs there are.
#[derive(Debug)]
struct Scan {
    has_first: bool,
    /// All three components are in it (interleaved).
    has_colour: bool,
    blocks: Vec<BlockSlot>,
    mcus_across: usize,
    mcus_down: usize,
    /// Blocks of component 0 across and down one MCU.
    first_blocks: (usize, usize),
}

/// One block of an MCU: its component, tables and place in the MCU.
#[derive(Debug, Clone, Copy)]
struct BlockSlot {
    component: usize,
    dc_table: usize,
    ac_table: usize,
    dx: usize,
    dy: usize,
}

fn read_frame(body: &[u8], limits: DcLimits) -> Result<Frame, DcError> {
    if body.len() < 6 {
        return Err(DcError::Truncated);
    }
    if body[0] != 8 {
        return Err(DcError::Precision { bits: body[0] });
    }
    let height = (u32::from(body[1]) << 8) | u32::from(body[2]);
    let width = (u32::from(body[3]) << 8) | u32::from(body[4]);
    let count = usize::from(body[5]);
    if height == 0 {
        return Err(DcError::Unsupported(
            "the height is given after the scan (DNL)",
        ));
    }
    if width == 0 {
        return Err(DcError::Corrupt("a width of 0"));
    }
    if width > limits.max_side
        || height > limits.max_side
        || u64::from(width) * u64::from(height) > limits.max_pixels
    {
        return Err(DcError::TooLarge { width, height });
    }
    if !matches!(count, 1 | 3 | 4) {
        return Err(DcError::Unsupported(
            "a component count other than 1, 3 or 4",
        ));
    }
    if body.len() != 6 + 3 * count {
        return Err(DcError::Corrupt("a frame header of the wrong size"));
    }
    let mut components = Vec::with_capacity(count);
    for i in 0..count {
        let b = &body[6 + 3 * i..9 + 3 * i];
        let (h, v) = (b[1] >> 4, b[1] & 15);
        if !(1..=4).contains(&h) || !(1..=4).contains(&v) {
            return Err(DcError::Corrupt("a sampling factor outside 1–4"));
        }
        if b[2] > 3 {
            return Err(DcError::Corrupt("a quantisation table beyond 3"));
        }
        components.push(Component {
            id: b[0],
            h,
            v,
            quant: b[2],
        });
    }
    let h_max = components.iter().map(|c| c.h).max().unwrap_or(1);
    let v_max = components.iter().map(|c| c.v).max().unwrap_or(1);
    Ok(Frame {
        width,
        height,
        components,
        h_max,
        v_max,
    })
}

/// Reads a DHT, DQT or DRI segment whose length field is at `pos`; returns
/// the position after it.
fn read_tables(
    data: &[u8],
    pos: usize,
    marker: u8,
    tables: &mut Tables,
    restart_interval: &mut u16,
) -> Result<usize, DcError> {
    let body = segment(data, pos)?;
    let bytes = &data[body.clone()];
    match marker {
        0xC4 => read_huffman(bytes, tables)?,
        0xDB => read_quant(bytes, tables)?,
        _ => match bytes {
            &[high, low] => *restart_interval = u16::from(high) << 8 | u16::from(low),
            _ => {
                return Err(DcError::Corrupt(
                    "a restart-interval segment of the wrong size",
                ));
            }
        },
    }
    Ok(body.end)
}

fn read_huffman(mut body: &[u8], tables: &mut Tables) -> Result<(), DcError> {
    while !body.is_empty() {
        if body.len() < 17 {
            return Err(DcError::Corrupt("a Huffman table header is cut short"));
        }
        let (class, id) = (body[0] >> 4, usize::from(body[0] & 15));
        if class > 1 || id > 3 {
            return Err(DcError::Corrupt("a Huffman table of unknown class or id"));
        }
        let mut counts = [0u8; 16];
        counts.copy_from_slice(&body[1..17]);
        let n: usize = counts.iter().map(|&c| usize::from(c)).sum();
        if n > 256 || body.len() < 17 + n {
            return Err(DcError::Corrupt("a Huffman table is cut short"));
        }
        let table = Box::new(Huffman::new(&counts, &body[17..17 + n], class == 1)?);
        if class == 0 {
            tables.dc[id] = Some(table);
        } else {
            tables.ac[id] = Some(table);
        }
        body = &body[17 + n..];
    }
    Ok(())
}

fn read_quant(mut body: &[u8], tables: &mut Tables) -> Result<(), DcError> {
    while !body.is_empty() {
        let (wide, id) = (body[0] >> 4, usize::from(body[0] & 15));
        let size = match wide {
            0 => 64,
            1 => 128,
            _ => {
                return Err(DcError::Corrupt(
                    "a quantisation table of unknown precision",
                ));
            }
        };
        if id > 3 || body.len() < 1 + size {
            return Err(DcError::Corrupt("a quantisation table is cut short"));
        }
        tables.quant_dc[id] = Some(if wide == 1 {
            u16::from(body[1]) << 8 | u16::from(body[2])
        } else {
            u16::from(body[1])
        });
        body = &body[1 + size..];
    }
    Ok(())
}

/// The colour model, as libjpeg guesses it: the Adobe marker's transform
/// first, then JFIF (always YCbCr), then component ids spelling `RGB`.
fn colour_of(frame: &Frame, jfif: bool, adobe: Option<u8>) -> Result<JpegColour, DcError> {
    let ids: Vec<u8> = frame.components.iter().map(|c| c.id).collect();
    Ok(match (ids.len(), adobe) {
        (1, _) => JpegColour::Grey,
        (3, Some(0)) => JpegColour::Rgb,
        (3, Some(_)) => JpegColour::YCbCr,
        (3, None) if !jfif && ids == b"RGB" => JpegColour::Rgb,
        (3, None) => JpegColour::YCbCr,
        (4, Some(2)) => JpegColour::Ycck,
        (4, _) => JpegColour::Cmyk,
        _ => {
            return Err(DcError::Unsupported(
                "a component count other than 1, 3 or 4",
            ));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::entropy::{PAIR, SKIP_BITS};
    use super::*;
    use crate::dataset::dedup_bench::base_picture;
    use image::{DynamicImage, RgbImage};
    use jpeg_encoder::{ColorType, Encoder, SamplingFactor};

    const LIMITS: DcLimits = DcLimits {
        max_side: 30_000,
        max_pixels: 120_000_000,
    };

    /// A detailed picture (noise and shapes) of any size.
    fn picture(seed: u64, width: u32, height: u32) -> RgbImage {
        let side = width.max(height);
        DynamicImage::ImageRgb8(base_picture(seed, side))
            .crop_imm(0, 0, width, height)
            .to_rgb8()
    }

    /// Encodes with `jpeg-encoder`, which can subsample, write restart
    /// markers and optimise Huffman tables.
    fn encode(
        img: &RgbImage,
        quality: u8,
        sampling: SamplingFactor,
        restart: Option<u16>,
        configure: impl FnOnce(&mut Encoder<&mut Vec<u8>>),
    ) -> Vec<u8> {
        let mut out = Vec::new();
        let mut encoder = Encoder::new(&mut out, quality);
        encoder.set_sampling_factor(sampling);
        if let Some(r) = restart {
            encoder.set_restart_interval(r);
        }
        configure(&mut encoder);
        encoder
            .encode(
                img.as_raw(),
                img.width() as u16,
                img.height() as u16,
                ColorType::Rgb,
            )
            .unwrap();
        out
    }

    /// Encodes with the `image` crate (4:4:4, or grey).
    fn encode_image(img: &DynamicImage, quality: u8) -> Vec<u8> {
        let mut out = std::io::Cursor::new(Vec::new());
        let enc = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, quality);
        img.write_with_encoder(enc).unwrap();
        out.into_inner()
    }

    /// The grey (Y) channel of a full decode, straight from zune-jpeg.
    fn decode_y(bytes: &[u8]) -> (usize, usize, Vec<u8>) {
        use zune_core::colorspace::ColorSpace;
        let options =
            zune_core::options::DecoderOptions::default().jpeg_set_out_colorspace(ColorSpace::Luma);
        let mut decoder = zune_jpeg::JpegDecoder::new_with_options(
            zune_core::bytestream::ZCursor::new(bytes),
            options,
        );
        let grey = decoder.decode().unwrap();
        let (w, h) = decoder.dimensions().unwrap();
        (w, h, grey)
    }

    /// Asserts that the DC image of `bytes` is the block means of its full
    /// decode within `tolerance` grey levels. Blocks that cross the right or
    /// bottom edge are compared with the mean of the picture padded by
    /// repeating its last column and row, as encoders pad.
    fn assert_means_match(bytes: &[u8], tolerance: i32) -> DcImage {
        let dc = DcReader::new(bytes, LIMITS).unwrap().decode().unwrap();
        let (w, h, grey) = decode_y(bytes);
        assert_eq!((dc.width as usize, dc.height as usize), (w, h));
        let (bw, bh) = (dc.block_width, dc.block_height);
        assert_eq!((dc.columns, dc.rows), (w.div_ceil(bw), h.div_ceil(bh)));
        assert_eq!(dc.means.len(), dc.columns * dc.rows);
        let mut worst = 0;
        for by in 0..dc.rows {
            for bx in 0..dc.columns {
                let mut sum = 0u32;
                for y in by * bh..(by + 1) * bh {
                    for x in bx * bw..(bx + 1) * bw {
                        sum += u32::from(grey[y.min(h - 1) * w + x.min(w - 1)]);
                    }
                }
                let mean = (sum as f32 / (bw * bh) as f32).round() as i32;
                let got = i32::from(dc.means[by * dc.columns + bx]);
                worst = worst.max((got - mean).abs());
                assert!(
                    (got - mean).abs() <= tolerance,
                    "block ({bx}, {by}): DC mean {got}, decoded mean {mean}"
                );
            }
        }
        assert!(worst <= tolerance);
        dc
    }

    #[test]
    fn colour_444_from_the_image_crate() {
        let img = DynamicImage::ImageRgb8(picture(1, 512, 384));
        let dc = assert_means_match(&encode_image(&img, 95), 2);
        assert_eq!(dc.colour, JpegColour::YCbCr);
        assert_eq!((dc.columns, dc.rows, dc.block_width), (64, 48, 8));
    }

    #[test]
    fn colour_420_and_422_at_an_odd_size() {
        let img = picture(2, 517, 301);
        for (sampling, (h, v)) in [
            (SamplingFactor::F_2_2, (2, 2)),
            (SamplingFactor::F_2_1, (2, 1)),
            (SamplingFactor::F_1_1, (1, 1)),
        ] {
            let bytes = encode(&img, 85, sampling, None, |_| {});
            let reader = DcReader::new(&bytes, LIMITS).unwrap();
            assert_eq!(
                (reader.frame.components[0].h, reader.frame.components[0].v),
                (h, v)
            );
            let dc = assert_means_match(&bytes, 2);
            assert_eq!((dc.columns, dc.rows), (65, 38));
        }
    }

    #[test]
    fn grey_jpegs() {
        let img =
            DynamicImage::ImageLuma8(DynamicImage::ImageRgb8(picture(3, 333, 257)).to_luma8());
        let dc = assert_means_match(&encode_image(&img, 90), 2);
        assert_eq!(dc.colour, JpegColour::Grey);
        let mut out = Vec::new();
        Encoder::new(&mut out, 80)
            .encode(img.as_bytes(), 333, 257, ColorType::Luma)
            .unwrap();
        assert_eq!(assert_means_match(&out, 2).colour, JpegColour::Grey);
    }

    #[test]
    fn restart_markers() {
        let img = picture(4, 517, 301);
        for (sampling, interval) in [
            (SamplingFactor::F_2_2, 1),
            (SamplingFactor::F_2_2, 7),
            (SamplingFactor::F_1_1, 33),
            (SamplingFactor::F_2_1, 200),
        ] {
            let bytes = encode(&img, 75, sampling, Some(interval), |_| {});
            assert!(
                bytes.windows(2).any(|w| w == [0xFF, 0xD3]),
                "no RST3 marker"
            );
            assert_means_match(&bytes, 2);
        }
    }

    #[test]
    fn optimised_huffman_tables_give_the_same_means() {
        // Same quantised coefficients, other codes: the means must be equal.
        // (zune-jpeg 0.5.15 misdecodes this file, filling much of it with 0,
        // while libjpeg reads it, so it is not the reference here.
        // jpeg-encoder 0.6.1 cannot optimise tables and restart together.)
        let img = picture(4, 517, 301);
        let plain = encode(&img, 92, SamplingFactor::F_2_2, None, |_| {});
        let optimised = encode(&img, 92, SamplingFactor::F_2_2, None, |e| {
            e.set_optimized_huffman_tables(true)
        });
        assert_ne!(plain, optimised);
        let means = |b: &[u8]| DcReader::new(b, LIMITS).unwrap().decode().unwrap().means;
        assert_eq!(means(&plain), means(&optimised));
    }

    #[test]
    fn high_and_low_quality() {
        let img = picture(5, 400, 300);
        for quality in [100, 50, 20] {
            let bytes = encode(&img, quality, SamplingFactor::F_2_2, None, |_| {});
            assert_means_match(&bytes, 2);
        }
    }

    #[test]
    fn one_component_scans_in_any_order() {
        // jpeg-encoder writes only interleaved baseline scans; build a
        // 3-component frame from a grey JPEG whose scan is used twice, as a
        // Cb-only scan (walked and skipped) and then as the Y-only scan.
        let img = DynamicImage::ImageRgb8(picture(9, 333, 257)).to_luma8();
        let mut grey = Vec::new();
        Encoder::new(&mut grey, 85)
            .encode(img.as_raw(), 333, 257, ColorType::Luma)
            .unwrap();
        let sof = marker_at(&grey, 0xC0);
        let sos = marker_at(&grey, 0xDA);
        let sos_len = usize::from(grey[sos + 2]) << 8 | usize::from(grey[sos + 3]);
        let tables = grey[sos + 6];
        let entropy = &grey[sos + 2 + sos_len..grey.len() - 2];
        let mut built = grey[..sof].to_vec();
        built.extend_from_slice(&[0xFF, 0xC0, 0, 17, 8]);
        built.extend_from_slice(&grey[sof + 5..sof + 9]); // height, width
        built.extend_from_slice(&[3, 1, 0x11, 0, 2, 0x11, 0, 3, 0x11, 0]);
        let sof_len = usize::from(grey[sof + 2]) << 8 | usize::from(grey[sof + 3]);
        built.extend_from_slice(&grey[sof + 2 + sof_len..sos]);
        for id in [2, 1] {
            built.extend_from_slice(&[0xFF, 0xDA, 0, 8, 1, id, tables, 0, 63, 0]);
            built.extend_from_slice(entropy);
        }
        built.extend_from_slice(&[0xFF, 0xD9]);
        let want = DcReader::new(&grey, LIMITS).unwrap().decode().unwrap();
        let got = DcReader::new(&built, LIMITS).unwrap().decode().unwrap();
        assert_eq!(got.colour, JpegColour::YCbCr);
        assert_eq!(got.means, want.means);
        assert_means_match(&grey, 2);
    }

    #[test]
    fn skip_tables_match_decoding_each_entry() {
        let img = picture(10, 320, 256);
        let standard = encode(&img, 90, SamplingFactor::F_2_2, None, |_| {});
        let optimised = encode(&img, 60, SamplingFactor::F_2_2, None, |e| {
            e.set_optimized_huffman_tables(true)
        });
        let mut checked = 0;
        for bytes in [standard, optimised] {
            let reader = DcReader::new(&bytes, LIMITS).unwrap();
            for table in reader.tables.ac.iter().flatten() {
                let direct: Vec<u32> = (0..1 << SKIP_BITS).map(|i| table.pair_at(i)).collect();
                assert_eq!(table.skip.to_vec(), direct);
                assert!(direct.iter().filter(|&&e| e & PAIR != 0).count() > 500);
                checked += 1;
            }
        }
        assert_eq!(checked, 4);
    }

    fn error_of(bytes: &[u8]) -> DcError {
        DcReader::new(bytes, LIMITS)
            .and_then(DcReader::decode)
            .unwrap_err()
    }

    /// The offset of the first `FF marker` in `bytes`.
    fn marker_at(bytes: &[u8], marker: u8) -> usize {
        bytes.windows(2).position(|w| w == [0xFF, marker]).unwrap()
    }

    #[test]
    fn progressive_arithmetic_lossless_and_12_bit_are_refused() {
        let img = picture(6, 320, 256);
        let bytes = encode(&img, 90, SamplingFactor::F_2_2, None, |e| {
            e.set_progressive(true)
        });
        assert_eq!(error_of(&bytes), DcError::Progressive);
        let baseline = encode(&img, 90, SamplingFactor::F_2_2, None, |_| {});
        let sof = marker_at(&baseline, 0xC0);
        let patched = |at: usize, value: u8| {
            let mut b = baseline.clone();
            b[at] = value;
            b
        };
        assert_eq!(error_of(&patched(sof + 1, 0xC9)), DcError::Arithmetic);
        assert_eq!(error_of(&patched(sof + 1, 0xC3)), DcError::Lossless);
        assert_eq!(
            error_of(&patched(sof + 4, 12)),
            DcError::Precision { bits: 12 }
        );
        assert_eq!(
            error_of(&patched(sof + 5, 0)),
            DcError::Unsupported("the height is given after the scan (DNL)")
        );
        assert_eq!(error_of(b"not a jpeg"), DcError::NotJpeg);
        let small = DcLimits {
            max_side: 300,
            max_pixels: u64::MAX,
        };
        assert!(matches!(
            DcReader::new(&baseline, small).unwrap_err(),
            DcError::TooLarge {
                width: 320,
                height: 256
            }
        ));
    }

    #[test]
    fn truncated_files_are_refused() {
        let img = picture(7, 517, 301);
        for restart in [None, Some(4)] {
            let bytes = encode(&img, 90, SamplingFactor::F_2_2, restart, |_| {});
            for keep in [bytes.len() / 2, bytes.len() - 40, bytes.len() - 3] {
                assert_eq!(
                    error_of(&bytes[..keep]),
                    DcError::Truncated,
                    "cut at {keep}"
                );
            }
            // Only the end-of-image marker missing: every block is there.
            let whole = &bytes[..bytes.len() - 2];
            assert!(DcReader::new(whole, LIMITS).unwrap().decode().is_ok());
            // The headers cut short.
            assert_eq!(error_of(&bytes[..100]), DcError::Truncated);
        }
    }

    #[test]
    fn corrupt_files_are_refused() {
        let img = picture(8, 517, 301);
        let bytes = encode(&img, 90, SamplingFactor::F_2_2, Some(6), |_| {});
        let sos = marker_at(&bytes, 0xDA);
        // An end-of-image marker in the middle of the data.
        let mut early_end = bytes.clone();
        let mid = bytes.len() / 2;
        let mid = mid + early_end[mid..].iter().position(|&b| b != 0xFF).unwrap();
        early_end[mid..mid + 2].copy_from_slice(&[0xFF, 0xD9]);
        assert!(matches!(
            error_of(&early_end),
            DcError::Truncated | DcError::Corrupt(_)
        ));
        // A fill byte before a restart marker is allowed; a data byte is not.
        let rst = marker_at(&bytes[sos..], 0xD2) + sos;
        let with = |byte: u8| {
            let mut b = bytes.clone();
            b.insert(rst, byte);
            b
        };
        let means = |b: &[u8]| DcReader::new(b, LIMITS).and_then(DcReader::decode);
        assert_eq!(means(&with(0xFF)), means(&bytes));
        assert_eq!(
            means(&with(0x55)).unwrap_err(),
            DcError::Corrupt("data left over at the end of a scan or interval")
        );
        // Restart markers out of order.
        let mut swapped = bytes.clone();
        swapped[rst + 1] = 0xD5;
        assert_eq!(
            error_of(&swapped),
            DcError::Corrupt("restart markers out of order")
        );
        // Garbage in the entropy-coded data desynchronises the walk: the
        // interval then ends early or late. Decoders cannot catch every
        // corruption; these are caught.
        let mut refused = 0;
        for seed in 0..20u64 {
            let mut garbled = bytes.clone();
            let mut rng = crate::dataset::synth::Rng::new(seed);
            let at = sos + 20 + rng.below((bytes.len() - sos - 60) as u32) as usize;
            for b in &mut garbled[at..at + 12] {
                *b = rng.below(255) as u8;
            }
            if DcReader::new(&garbled, LIMITS)
                .and_then(DcReader::decode)
                .is_err()
            {
                refused += 1;
            }
        }
        assert!(refused >= 16, "only {refused} of 20 garbled files refused");
        // A Huffman table with more codes than fit.
        let dht = marker_at(&bytes, 0xC4);
        let mut bad_table = bytes.clone();
        // Three 1-bit codes (counts start 5 bytes after the marker), taken
        // from the 3-bit codes so the symbol count is unchanged.
        assert!(bad_table[dht + 7] >= 3);
        bad_table[dht + 5] += 3;
        bad_table[dht + 7] -= 3;
        assert_eq!(
            error_of(&bad_table),
            DcError::Corrupt("a Huffman table has too many codes")
        );
    }

    #[test]
    fn mutated_files_never_panic() {
        // Random bytes changed anywhere (headers too), then a cut, a planted
        // marker or a repeated stretch: the reader must answer, with means or
        // an error, and never panic or loop.
        let img = picture(11, 200, 120);
        let bases = [
            encode(&img, 80, SamplingFactor::F_2_2, Some(3), |_| {}),
            encode(&img, 95, SamplingFactor::F_2_1, None, |_| {}),
            encode_image(&DynamicImage::ImageRgb8(img.clone()), 90),
        ];
        let rounds: u64 = std::env::var("JPEG_DC_FUZZ_ROUNDS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(3000);
        let mut rng = crate::dataset::synth::Rng::new(42);
        for round in 0..rounds {
            let base = &bases[(round % 3) as usize];
            let mut bytes = base.clone();
            for _ in 0..1 + rng.below(6) {
                // Half of the changes in the headers (the first 700 bytes).
                let span = match rng.below(2) {
                    0 => bytes.len().min(700),
                    _ => bytes.len(),
                };
                let at = rng.below(span as u32) as usize;
                bytes[at] = rng.below(256) as u8;
            }
            match rng.below(4) {
                // Cut anywhere.
                0 => bytes.truncate(rng.below(bytes.len() as u32) as usize),
                // A marker planted anywhere, the scan included.
                1 => {
                    let at = rng.below(bytes.len() as u32 - 1) as usize;
                    bytes[at] = 0xFF;
                    bytes[at + 1] = rng.below(256) as u8;
                }
                // A stretch of the file repeated.
                2 => {
                    let from = rng.below(bytes.len() as u32) as usize;
                    let len = (rng.below(64) as usize).min(bytes.len() - from);
                    let stretch = bytes[from..from + len].to_vec();
                    let at = rng.below(bytes.len() as u32) as usize;
                    bytes.splice(at..at, stretch);
                }
                _ => {}
            }
            if let Ok(dc) = DcReader::new(&bytes, LIMITS).and_then(DcReader::decode) {
                assert_eq!(dc.means.len(), dc.columns * dc.rows);
            }
        }
    }

    #[test]
    fn cmyk_is_walked_and_reported() {
        let (w, h) = (300u16, 260u16);
        let data: Vec<u8> = (0..usize::from(w) * usize::from(h) * 4)
            .map(|i| (i * 7 % 251) as u8)
            .collect();
        let mut out = Vec::new();
        Encoder::new(&mut out, 90)
            .encode(&data, w, h, ColorType::Cmyk)
            .unwrap();
        let reader = DcReader::new(&out, LIMITS).unwrap();
        assert_eq!(reader.colour(), JpegColour::Cmyk);
        let dc = reader.decode().unwrap();
        assert_eq!((dc.columns, dc.rows), (38, 33));
    }
}
