//! Thumbnails of picture files, read as cheaply as the answer allows.
//!
//! [`read`] takes a file's bytes and gives its grey thumbnails (32×32 cells,
//! the whole picture and its centre, each cell the exact mean of its pixels),
//! its size and real format, and, when asked, a small colour thumbnail — or
//! says why not ([`ThumbError`]). It is what a perceptual hash or a contact
//! sheet needs, without decoding more of the file than that takes:
//!
//! - **JPEG** from 256 px a side: the 8×8 block means, read from the DC
//!   coefficients without any inverse DCT, upsampling or colour conversion
//!   ([`jpeg_dc`]); smaller JPEGs from the grey channel alone.
//! - **PNG** (8-bit): the rows streamed through the inflater and unfiltered
//!   eight at a time ([`png_rows`]), summed into the cells as they arrive, so
//!   the picture is never held whole; the pixels are byte-identical to the
//!   `png` crate's.
//! - **Lossy WebP**: only VP8's luma plane, without the loop filter, chroma
//!   or colour conversion ([`webp_luma`]). **Lossless WebP**: our own VP8L
//!   decoder ([`webp_lossless`]), pixels equal to libwebp's.
//! - Everything else, and whatever a fast reader declines, through the
//!   `image` crate's full decode.
//!
//! What it refuses: empty files, bytes that are no known picture format, and
//! sizes past the caller's [`Limits`], checked from the header before any
//! pixel is decoded. A fast reader that meets anything it does not handle
//! (progressive or arithmetic JPEG, 16-bit or interlaced PNG, damaged data)
//! declines and the general decoder answers, so a result is never wrong, only
//! slower; damaged files get the decoder's words, never a panic.
//!
//! Measured (one thread, ms per picture including the thumbnail, against the
//! `image` crate's full decode of the same file; `cargo bench -p thumbs` and
//! `ategnatos bench duplicates`): JPEG 512 px 0.25 vs 0.79, 1024 px 0.71 vs
//! 2.75; PNG 512 px 1.05 vs 1.73, 1024 px 4.55 vs 7.10; lossy WebP 1.6–4.8×
//! faster than `image` and 0.9–1.6× libwebp's own decode; lossless WebP
//! 1.0–1.4× both.
//!
//! It depends on nothing of Ategnatos; [`synth`] makes the deterministic
//! pictures its tests and benchmarks read.

pub mod colour;
pub mod grey;
pub mod jpeg_dc;
pub mod png_rows;
pub mod read;
pub mod synth;
pub mod webp_lossless;
pub mod webp_luma;

pub use colour::{COLOUR_SIDE, ColourThumb};
pub use grey::{CENTRE_KEEP, THUMB_SIDE, Thumbnail, Thumbnails, thumbnails_of, thumbnails_of_grey};
pub use read::{DC_MIN_SIDE, JpegDecode, Options, ThumbError, Thumbs, colour_thumbnail, read};

/// Size limits, checked from a file's header before anything is decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest side allowed, in pixels.
    pub max_side: u32,
    /// Most pixels allowed (width × height).
    pub max_pixels: u64,
}

impl Limits {
    /// Whether a picture of this size may be decoded.
    pub fn allows(&self, width: u32, height: u32) -> bool {
        width <= self.max_side
            && height <= self.max_side
            && u64::from(width) * u64::from(height) <= self.max_pixels
    }

    /// The same limits for the `image` crate's decoders (allocation capped
    /// at eight bytes a pixel).
    pub fn for_image(&self) -> image::Limits {
        let mut limits = image::Limits::default();
        limits.max_image_width = Some(self.max_side);
        limits.max_image_height = Some(self.max_side);
        limits.max_alloc = Some(self.max_pixels * 8);
        limits
    }
}
