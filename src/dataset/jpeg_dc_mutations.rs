//! The DC-only JPEG reader on damaged input: thousands of files with bytes
//! changed, cut or repeated, in the headers and in the entropy-coded data.
//! Whatever it is given, it must answer (a picture or an error), never
//! panic or loop: a panic in a hashing job would lose the whole search.

use image::{DynamicImage, ImageFormat};

use super::jpeg_dc::{DcLimits, DcReader};
use super::synth;
use crate::engine::train::SplitMix64;

const LIMITS: DcLimits = DcLimits {
    max_side: 30_000,
    max_pixels: 120_000_000,
};

fn jpeg(seed: u64, w: u32, h: u32, grey: bool) -> Vec<u8> {
    let picture = DynamicImage::ImageRgb8(synth::smooth_picture(seed, w, h));
    let picture = if grey {
        DynamicImage::ImageLuma8(picture.to_luma8())
    } else {
        picture
    };
    synth::encode(&picture, ImageFormat::Jpeg).unwrap()
}

fn read(bytes: &[u8]) {
    if let Ok(reader) = DcReader::new(bytes, LIMITS) {
        let _ = reader.decode();
    }
}

#[test]
fn damaged_jpegs_get_an_answer_never_a_panic() {
    let mut rng = SplitMix64::new(2026);
    let originals = [
        jpeg(1, 96, 64, false),
        jpeg(2, 67, 45, true),
        jpeg(3, 40, 120, false),
    ];
    for original in &originals {
        read(original);
        // Where the entropy-coded data starts (after the SOS header).
        let scan = original
            .windows(2)
            .position(|w| w == [0xFF, 0xDA])
            .unwrap_or(2);
        for round in 0..1500 {
            let mut bytes = original.clone();
            match round % 5 {
                // A few random bytes anywhere (headers included).
                0 => {
                    for _ in 0..1 + rng.below(4) {
                        let at = rng.below(bytes.len());
                        bytes[at] = rng.next_u64() as u8;
                    }
                }
                // Bytes inside the headers, where lengths and tables live.
                1 => {
                    let at = 2 + rng.below(scan.max(3) - 2);
                    bytes[at] = rng.next_u64() as u8;
                }
                // Cut anywhere.
                2 => bytes.truncate(rng.below(bytes.len())),
                // A marker planted in the scan.
                3 => {
                    let at = scan + rng.below(bytes.len() - scan - 1);
                    bytes[at] = 0xFF;
                    bytes[at + 1] = rng.next_u64() as u8;
                }
                // A stretch of the file repeated.
                _ => {
                    let from = rng.below(bytes.len());
                    let len = rng.below(64).min(bytes.len() - from);
                    let stretch = bytes[from..from + len].to_vec();
                    let at = rng.below(bytes.len());
                    bytes.splice(at..at, stretch);
                }
            }
            read(&bytes);
        }
    }
}
