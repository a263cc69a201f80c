//! Walking entropy-coded data: Huffman tables and the bit reader.
//!
//! A code is found with one lookup on the next [`LOOKUP_BITS`] bits (a slow
//! path handles longer codes). AC symbols, which are only skipped, use a
//! wider table whose entries say how many bits to drop and how many
//! coefficients to pass for the next one or two symbols at once.

use super::{DcError, next_marker};

/// Bits looked up at once when decoding a Huffman code; longer codes take
/// the slow path. Nine bits cover nearly all codes of the usual tables.
pub(super) const LOOKUP_BITS: u32 = 9;

/// Bits looked up at once when skipping AC symbols: wide enough that two
/// short symbols (codes and extra bits) often fit, so one lookup skips both.
pub(super) const SKIP_BITS: u32 = 11;

/// A Huffman table: a lookup on the next [`LOOKUP_BITS`] bits, and the
/// canonical-code limits for longer codes.
#[derive(Debug)]
pub(super) struct Huffman {
    /// `length << 8 | symbol` for codes of at most `LOOKUP_BITS` bits, 0 for
    /// a longer code.
    fast: [u16; 1 << LOOKUP_BITS],
    /// What to skip for the next [`SKIP_BITS`] bits, one or two symbols
    /// (see [`skip_entry`]); 0 when the first code is longer. All 0 in a DC
    /// table.
    pub(super) skip: Box<SkipTable>,
    /// For each length `l`, one past the largest code of that length,
    /// left-aligned in 16 bits (so it compares with the next 16 bits).
    limit: [u32; 17],
    /// For each length, the index in `symbols` of its first code minus that
    /// code.
    offset: [i32; 17],
    symbols: Vec<u8>,
}

impl Huffman {
    /// Builds a table from the 16 code counts and the symbols of a DHT.
    pub(super) fn new(counts: &[u8; 16], symbols: &[u8], ac: bool) -> Result<Huffman, DcError> {
        let mut table = Huffman {
            fast: [0; 1 << LOOKUP_BITS],
            skip: Box::new([0; 1 << SKIP_BITS]),
            limit: [0; 17],
            offset: [0; 17],
            symbols: symbols.to_vec(),
        };
        let mut code: u32 = 0;
        let mut index: usize = 0;
        // (code, length, symbol) of the codes that fit a skip lookup.
        let mut short = Vec::new();
        for len in 1..=16u32 {
            let count = u32::from(counts[len as usize - 1]);
            table.offset[len as usize] = index as i32 - code as i32;
            for _ in 0..count {
                if code >= 1 << len {
                    return Err(DcError::Corrupt("a Huffman table has too many codes"));
                }
                if len <= LOOKUP_BITS {
                    let shift = LOOKUP_BITS - len;
                    let symbol = symbols[index];
                    let entry = (len as u16) << 8 | u16::from(symbol);
                    let first = (code << shift) as usize;
                    table.fast[first..first + (1 << shift)].fill(entry);
                }
                if len <= SKIP_BITS {
                    short.push((code, len, symbols[index]));
                }
                code += 1;
                index += 1;
            }
            table.limit[len as usize] = code << (16 - len);
            code <<= 1;
        }
        if ac {
            fill_skip_table(&mut table.skip, &short);
        }
        Ok(table)
    }

    /// The code at the top of `buf`: `(length, symbol)`.
    #[cfg(test)]
    fn code_at(&self, buf: u64) -> Option<(u32, u8)> {
        match self.fast[(buf >> (64 - LOOKUP_BITS)) as usize] {
            0 => long_code(self, buf),
            e => Some((u32::from(e >> 8), e as u8)),
        }
    }

    /// The skip entry for the [`SKIP_BITS`] bits `bits`, decoded directly:
    /// what [`fill_skip_table`] must write.
    #[cfg(test)]
    pub(super) fn pair_at(&self, bits: u32) -> u32 {
        let buf = u64::from(bits) << (64 - SKIP_BITS);
        let Some((len, symbol)) = self.code_at(buf).filter(|c| c.0 <= SKIP_BITS) else {
            return 0;
        };
        let first = skip_entry(len, symbol);
        let first_bits = first & 63;
        if first & END_OF_BLOCK != 0 || first_bits >= SKIP_BITS {
            return first;
        }
        let Some((len, symbol)) = self.code_at(buf << first_bits) else {
            return first;
        };
        let second = skip_entry(len, symbol);
        let bits = first_bits + (second & 63);
        if bits > SKIP_BITS {
            return first;
        }
        let coefficients = (first >> 8 & 63) + (second >> 8 & 63);
        bits | coefficients << 8 | (second & END_OF_BLOCK) | PAIR | first << 16
    }
}

/// Fills the [`Huffman::skip`] table of the codes of at most [`SKIP_BITS`] bits,
/// `(code, length, symbol)`: each code fills the entries that start with
/// it, and where the first symbol leaves room, each second code that fits
/// after each value of its extra bits fills the entries that start with
/// both. Filling ranges costs a few microseconds; decoding all 2,048
/// entries one by one cost more than the pairs save on a 512 px picture.
fn fill_skip_table(skip: &mut SkipTable, codes: &[(u32, u32, u8)]) {
    let mut fill = |prefix: u32, bits: u32, entry: u32| {
        let start = (prefix << (SKIP_BITS - bits)) as usize;
        skip[start..start + (1 << (SKIP_BITS - bits))].fill(entry);
    };
    for &(code, len, symbol) in codes {
        let first = skip_entry(len, symbol);
        fill(code, len, first);
        let first_bits = first & 63;
        if first & END_OF_BLOCK != 0 || first_bits >= SKIP_BITS {
            continue;
        }
        let size = first_bits - len;
        let room = SKIP_BITS - first_bits;
        for extra in 0..1 << size {
            let prefix = code << size | extra;
            for &(code2, len2, symbol2) in codes {
                let second = skip_entry(len2, symbol2);
                if second & 63 > room {
                    continue;
                }
                let coefficients = (first >> 8 & 63) + (second >> 8 & 63);
                let bits = first_bits + (second & 63);
                let entry = bits | coefficients << 8 | (second & END_OF_BLOCK) | PAIR | first << 16;
                fill(prefix << len2 | code2, first_bits + len2, entry);
            }
        }
    }
}

/// See [`Huffman::skip`].
type SkipTable = [u32; 1 << SKIP_BITS];

/// The entry of the first symbol of a two-symbol [`Huffman::skip`] entry.
#[cold]
#[inline(never)]
fn first_of_pair(entry: u32) -> u32 {
    entry >> 16
}

/// Flag of a [`Huffman::skip`] entry: the block ends with it.
const END_OF_BLOCK: u32 = 1 << 15;
/// Flag of a [`Huffman::skip`] entry: it holds two symbols, and its upper
/// half is the entry of the first alone.
pub(super) const PAIR: u32 = 1 << 7;

/// The [`Huffman::skip`] entry of one AC symbol with a code of `len` bits:
/// bits to drop (code and extra bits) in bits 0–5, coefficients it stands
/// for in bits 8–13, and [`END_OF_BLOCK`]. A two-symbol entry has the sums
/// there, [`PAIR`], and the first symbol's entry in bits 16–31.
fn skip_entry(len: u32, symbol: u8) -> u32 {
    let (run, size) = (u32::from(symbol >> 4), u32::from(symbol & 15));
    let bits = len + size;
    match (run, size) {
        (15, 0) => bits | 16 << 8,
        (_, 0) => bits | END_OF_BLOCK,
        _ => bits | (run + 1) << 8,
    }
}

/// Reads entropy-coded bits: a 64-bit buffer, left-aligned, refilled eight
/// bytes at a time when none of them is 0xFF, byte by byte otherwise
/// (un-stuffing `FF 00`). At a marker or the end of the data it feeds zero
/// bits and counts them, so reading past the scan's data is seen.
#[derive(Clone, Copy)]
pub(super) struct Bits<'a> {
    data: &'a [u8],
    pos: usize,
    buf: u64,
    /// Valid bits in `buf` (from the top).
    count: u32,
    /// How many of the last `count` bits are padding past the data.
    padded: u32,
    at_marker: bool,
    /// A code not in its table, or a block of more than 64 coefficients.
    bad: bool,
}

/// The code longer than [`LOOKUP_BITS`] at the top of `buf`: `(length,
/// symbol)`, or `None` when no code of `table` matches.
#[cold]
#[inline(never)]
fn long_code(table: &Huffman, buf: u64) -> Option<(u32, u8)> {
    let next = (buf >> 48) as u32;
    for len in LOOKUP_BITS + 1..=16 {
        if next < table.limit[len as usize] {
            let code = (next >> (16 - len)) as i32;
            let index = (table.offset[len as usize] + code) as usize;
            return table.symbols.get(index).map(|&s| (len, s));
        }
    }
    None
}

/// Bits a symbol needs at most: a 16-bit code and 15 extra bits.
const SYMBOL_BITS: u32 = 31;

impl<'a> Bits<'a> {
    pub(super) fn new(data: &'a [u8], pos: usize) -> Bits<'a> {
        Bits {
            data,
            pos,
            buf: 0,
            count: 0,
            padded: 0,
            at_marker: false,
            bad: false,
        }
    }

    #[inline(always)]
    fn refill(&mut self) {
        if !self.at_marker
            && let Some(chunk) = self.data.get(self.pos..self.pos + 8)
        {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            let x = u64::from_be_bytes(word);
            // No byte is 0xFF: no zero byte in !x.
            if (!x).wrapping_sub(0x0101_0101_0101_0101) & x & 0x8080_8080_8080_8080 == 0 {
                let bytes = (64 - self.count) / 8;
                let take = 8 * bytes;
                self.buf |= (x >> (64 - take)) << (64 - take - self.count);
                self.count += take;
                self.pos += bytes as usize;
                return;
            }
        }
        // By value, so that the reader's fields stay in registers in the
        // hot loop instead of living in memory for this call.
        *self = self.refill_slow();
    }

    #[cold]
    #[inline(never)]
    #[must_use]
    fn refill_slow(mut self) -> Bits<'a> {
        while self.count <= 56 {
            if !self.at_marker {
                match self.data.get(self.pos) {
                    Some(0xFF) if self.data.get(self.pos + 1) == Some(&0) => {
                        self.pos += 2;
                        self.push(0xFF);
                        continue;
                    }
                    Some(0xFF) | None => self.at_marker = true,
                    Some(&b) => {
                        self.pos += 1;
                        self.push(b);
                        continue;
                    }
                }
            }
            self.count += 8;
            self.padded = self.padded.saturating_add(8);
        }
        self
    }

    #[inline(always)]
    fn push(&mut self, byte: u8) {
        self.buf |= u64::from(byte) << (56 - self.count);
        self.count += 8;
    }

    /// Drops `n` bits (`n` ≤ `count`, which a refill to 57 bits before
    /// every symbol guarantees).
    #[inline(always)]
    fn consume(&mut self, n: u32) {
        self.buf <<= n;
        self.count -= n;
    }

    /// The next Huffman code in `table`: `(code length, symbol)`, not
    /// consumed. An unknown code sets `bad` and reads as a 16-bit symbol 0.
    #[inline(always)]
    fn lookup(&mut self, table: &Huffman) -> (u32, u8) {
        if self.count < SYMBOL_BITS {
            self.refill();
        }
        let entry = table.fast[(self.buf >> (64 - LOOKUP_BITS)) as usize];
        if entry != 0 {
            return (u32::from(entry >> 8), entry as u8);
        }
        self.long_code(table)
    }

    #[inline(always)]
    fn long_code(&mut self, table: &Huffman) -> (u32, u8) {
        match long_code(table, self.buf) {
            Some(code) => code,
            None => {
                self.bad = true;
                (16, 0)
            }
        }
    }

    /// Reads one DC difference.
    #[inline(always)]
    pub(super) fn dc_diff(&mut self, table: &Huffman) -> i32 {
        let (len, size) = self.lookup(table);
        self.consume(len);
        if size == 0 {
            return 0;
        }
        if size > 11 {
            self.bad = true;
            return 0;
        }
        let size = u32::from(size);
        let v = (self.buf >> (64 - size)) as i32;
        self.consume(size);
        // Values below half the range are negative.
        if v < 1 << (size - 1) {
            v - (1 << size) + 1
        } else {
            v
        }
    }

    /// Skips one DC difference.
    #[inline(always)]
    pub(super) fn skip_dc(&mut self, table: &Huffman) {
        let (len, size) = self.lookup(table);
        if size > 11 {
            self.bad = true;
        }
        self.consume(len + u32::from(size & 15));
    }

    /// Skips the 63 AC coefficients of a block: one table lookup says how
    /// many bits to drop for the next one or two symbols and how many
    /// coefficients they stand for.
    #[inline(always)]
    pub(super) fn skip_ac(&mut self, table: &Huffman) {
        let mut k = 1;
        while k < 64 {
            if self.count < SYMBOL_BITS {
                self.refill();
            }
            let mut entry = table.skip[(self.buf >> (64 - SKIP_BITS)) as usize];
            if entry == 0 {
                let (len, symbol) = self.long_code(table);
                entry = skip_entry(len, symbol);
            } else if k + (entry >> 24) >= 64 {
                // Only a pair's upper half is not 0: its first symbol fills
                // the block, and the second is not AC. Rare, so a branch
                // (a call, not a conditional move, which would put `k` on
                // the path from one lookup to the next).
                entry = first_of_pair(entry);
            }
            self.consume(entry & 63);
            if entry & END_OF_BLOCK != 0 {
                return;
            }
            k += (entry >> 8) & 63;
        }
        if k > 64 {
            self.bad = true;
        }
    }

    /// Fails when a bad code was met or bits past the data were used.
    pub(super) fn check(&self) -> Result<(), DcError> {
        if self.bad {
            return Err(DcError::Corrupt("a code that is not in its Huffman table"));
        }
        if self.overrun() {
            return Err(DcError::Truncated);
        }
        Ok(())
    }

    /// True when bits past the end of the scan's data were used.
    fn overrun(&self) -> bool {
        self.count < self.padded
    }

    /// Bits left in the buffer that came from the data.
    fn real_bits(&self) -> u32 {
        self.count.saturating_sub(self.padded)
    }

    /// Checks that the data up to the next marker was used up exactly (up to
    /// the padding of the last byte) and returns the marker's position.
    fn end_of_data(&mut self) -> Result<usize, DcError> {
        if !self.at_marker {
            *self = self.refill_slow();
        }
        if self.real_bits() >= 8 {
            return Err(DcError::Corrupt(
                "data left over at the end of a scan or interval",
            ));
        }
        Ok(self.pos)
    }

    /// At the end of a restart interval: the `RSTn` marker must come next.
    pub(super) fn restart(&mut self, expected: u8) -> Result<(), DcError> {
        self.check()?;
        let at = self.end_of_data()?;
        let (marker, after) = next_marker(self.data, at)?;
        if !(0xD0..=0xD7).contains(&marker) {
            return Err(DcError::Truncated);
        }
        if marker != 0xD0 + expected {
            return Err(DcError::Corrupt("restart markers out of order"));
        }
        *self = Bits::new(self.data, after);
        Ok(())
    }

    /// At the end of the scan: returns where the next marker is.
    pub(super) fn finish(mut self) -> Result<usize, DcError> {
        self.check()?;
        self.end_of_data()
    }
}
