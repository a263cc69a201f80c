//! VP8's boolean entropy decoder (RFC 6386 section 7), reading several
//! bytes ahead into a 64-bit window instead of one byte per shift.

/// One partition's bool decoder.
///
/// `value >> bits` is the RFC's 8-bit comparison window (always at most
/// `range_m1`, the RFC's range minus one); the `bits` bits under it are
/// read-ahead. Past the end of the
/// partition zeros are shifted in, as every VP8 decoder does, and counted,
/// so [`Bools::overran`] can tell a cut-off partition from a complete one.
#[derive(Clone, Copy)]
pub(super) struct Bools<'a> {
    data: &'a [u8],
    pos: usize,
    value: u64,
    bits: i32,
    range_m1: u32,
    zeros: usize,
}

impl<'a> Bools<'a> {
    pub(super) fn new(data: &'a [u8]) -> Self {
        let mut bools = Bools {
            data,
            pos: 0,
            value: 0,
            bits: -8,
            range_m1: 254,
            zeros: 0,
        };
        bools.refill_tail();
        bools
    }

    /// Reads the next bytes into the window: seven at once while there are
    /// eight left, else one by one (zeros past the end).
    #[inline(always)]
    fn refill(&mut self) {
        if let Some(chunk) = self.data.get(self.pos..self.pos + 8) {
            let mut next = [0u8; 8];
            next.copy_from_slice(chunk);
            // `bits` is -8..=-1 here, so the window holds at most 7 bits
            // and 56 more fit.
            self.value = (self.value << 56) | (u64::from_be_bytes(next) >> 8);
            self.bits += 56;
            self.pos += 7;
        } else {
            self.refill_tail();
        }
    }

    /// The last bytes, one at a time. The state goes in and out by value:
    /// a call that took `&mut self` would make the compiler keep the
    /// decoder's state in memory around every bool, not in registers.
    #[inline(always)]
    fn refill_tail(&mut self) {
        (self.pos, self.value, self.bits, self.zeros) =
            refill_bytewise(self.data, self.pos, self.value, self.bits, self.zeros);
    }

    /// One bool whose chance of being 0 is `prob` / 256.
    #[inline(always)]
    pub(super) fn read(&mut self, prob: u8) -> bool {
        if self.bits < 0 {
            self.refill();
        }
        self.decide((self.range_m1 * u32::from(prob)) >> 8)
    }

    /// One bool at even odds (sign bits): [`Bools::read`] with 128,
    /// without the multiplication.
    #[inline(always)]
    pub(super) fn read_half(&mut self) -> bool {
        if self.bits < 0 {
            self.refill();
        }
        self.decide(self.range_m1 >> 1)
    }

    /// The RFC's step with `split_m1` = split − 1: a 1 when the window
    /// reaches the split.
    #[inline(always)]
    fn decide(&mut self, split_m1: u32) -> bool {
        // The window is cut from `value` while the split is being worked
        // out, and compared in 32 bits.
        let window = (self.value >> self.bits) as u32;
        let one = window > split_m1;
        // Without branches: the outcome is as good as random, so a branch
        // here would be mispredicted often (the caller's branch on it is
        // unavoidable, this one is not).
        let taken = u64::from(split_m1 + 1) << self.bits;
        self.value -= taken & u64::from(one).wrapping_neg();
        let range = if one {
            self.range_m1 - split_m1
        } else {
            split_m1 + 1
        };
        // Renormalise: shift until the range is back in 128..=255.
        let shift = range.leading_zeros() as i32 - 24;
        self.range_m1 = (range << shift) - 1;
        self.bits -= shift;
        one
    }

    /// An unsigned number of `n` bits, high bit first, each at 1/2.
    pub(super) fn literal(&mut self, n: u32) -> u32 {
        (0..n).fold(0, |v, _| (v << 1) | u32::from(self.read_half()))
    }

    /// A magnitude of `n` bits followed by a sign bit.
    pub(super) fn signed(&mut self, n: u32) -> i32 {
        let magnitude = self.literal(n) as i32;
        if self.read(128) {
            -magnitude
        } else {
            magnitude
        }
    }

    /// A flag, and when it is set, a signed value of `n` bits; else 0.
    pub(super) fn optional_signed(&mut self, n: u32) -> i32 {
        if self.read_half() { self.signed(n) } else { 0 }
    }

    /// Whether decoding used bytes past the end of the partition (beyond
    /// the two a complete partition may leave the decoder short of).
    pub(super) fn overran(&self) -> bool {
        let ahead = (self.bits.max(0) / 8) as usize;
        self.zeros > ahead + 2
    }
}

#[cold]
#[inline(never)]
fn refill_bytewise(
    data: &[u8],
    mut pos: usize,
    mut value: u64,
    mut bits: i32,
    mut zeros: usize,
) -> (usize, u64, i32, usize) {
    while bits < 48 {
        let byte = match data.get(pos) {
            Some(&b) => {
                pos += 1;
                b
            }
            None => {
                zeros += 1;
                0
            }
        };
        value = (value << 8) | u64::from(byte);
        bits += 8;
    }
    (pos, value, bits, zeros)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6386's boolean encoder (section 7.3), the mirror of the decoder,
    /// so the tests can write bools with known probabilities.
    pub(crate) struct Encoder {
        out: Vec<u8>,
        range: u32,
        bottom: u32,
        bit_count: i32,
    }

    impl Encoder {
        pub(crate) fn new() -> Self {
            Encoder {
                out: Vec::new(),
                range: 255,
                bottom: 0,
                bit_count: 24,
            }
        }

        fn carry(&mut self) {
            for byte in self.out.iter_mut().rev() {
                if *byte == 255 {
                    *byte = 0;
                } else {
                    *byte += 1;
                    break;
                }
            }
        }

        pub(crate) fn write(&mut self, prob: u8, bit: bool) {
            let split = 1 + (((self.range - 1) * u32::from(prob)) >> 8);
            if bit {
                self.bottom = self.bottom.wrapping_add(split);
                self.range -= split;
            } else {
                self.range = split;
            }
            while self.range < 128 {
                self.range <<= 1;
                if self.bottom & (1 << 31) != 0 {
                    self.carry();
                }
                self.bottom <<= 1;
                self.bit_count -= 1;
                if self.bit_count == 0 {
                    self.out.push((self.bottom >> 24) as u8);
                    self.bottom &= (1 << 24) - 1;
                    self.bit_count = 8;
                }
            }
        }

        pub(crate) fn finish(mut self) -> Vec<u8> {
            let mut c = self.bit_count;
            let mut v = self.bottom;
            if v & (1 << (32 - c)) != 0 {
                self.carry();
            }
            v <<= c & 7;
            c >>= 3;
            while c > 0 {
                v <<= 8;
                c -= 1;
            }
            for _ in 0..4 {
                self.out.push((v >> 24) as u8);
                v <<= 8;
            }
            self.out
        }
    }

    #[test]
    fn reads_back_what_the_encoder_wrote() {
        let mut seed = 0x2545_f491_u32;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            seed
        };
        let written: Vec<(u8, bool)> = (0..20_000)
            .map(|_| {
                let prob = if next() % 4 == 0 {
                    128
                } else {
                    (next() % 255 + 1) as u8
                };
                // Bits drawn with roughly the stated odds, plus surprises.
                let bit = (next() % 256) as u8 >= prob;
                (prob, bit)
            })
            .collect();
        let mut encoder = Encoder::new();
        for &(prob, bit) in &written {
            encoder.write(prob, bit);
        }
        let bytes = encoder.finish();
        let mut bools = Bools::new(&bytes);
        for (i, &(prob, bit)) in written.iter().enumerate() {
            // Even odds go through the shortcut every other time.
            let read = if prob == 128 && i % 2 == 0 {
                bools.read_half()
            } else {
                bools.read(prob)
            };
            assert_eq!(read, bit, "bool {i}");
        }
        assert!(!bools.overran());
        // The same stream cut short is noticed.
        let mut cut = Bools::new(&bytes[..bytes.len() / 2]);
        for &(prob, _) in &written {
            cut.read(prob);
        }
        assert!(cut.overran());
    }
}
