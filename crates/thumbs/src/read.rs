//! From a file's bytes to its thumbnails, by the cheapest reader that gives
//! the right answer: PNG rows streamed ([`crate::png_rows`]), a lossy WebP's
//! luma plane ([`crate::webp_luma`]), a lossless WebP ([`crate::webp_lossless`]),
//! a JPEG's block means ([`crate::jpeg_dc`]) or its grey channel alone; the
//! `image` crate's full decode for everything else and for whatever a fast
//! reader declines.

use std::io::Cursor;

use image::{ImageFormat, ImageReader};

use crate::Limits;
use crate::colour::{ColourSums, ColourThumb, RgbSource, colour_of_blocks};
use crate::grey::{
    CENTRE_KEEP, CellSums, PngGrey, Thumbnails, area_average, area_average_blocks, luma,
    over_white, thumbnails_of, thumbnails_of_grey,
};
use crate::jpeg_dc::{DcReader, JpegColour};
use crate::png_rows::{self, PngColour};
use crate::webp_lossless;
use crate::webp_luma;

/// What reading one file gives.
#[derive(Debug, Clone, PartialEq)]
pub struct Thumbs {
    /// The grey thumbnails of the whole picture and of its centre.
    pub thumbnails: Thumbnails,
    pub width: u32,
    pub height: u32,
    /// The real format, from the content.
    pub format: ImageFormat,
    /// The colour thumbnail, when asked for and the reading gave colour.
    pub colour: Option<ColourThumb>,
}

/// How to read a file.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    pub jpeg: JpegDecode,
    /// Keep a [`ColourThumb`] where the reading gives colour anyway.
    pub colour: bool,
    pub limits: Limits,
}

/// Why a file gave no thumbnails.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ThumbError {
    #[error("the file is empty")]
    Empty,
    /// The bytes are not a picture format the `image` crate knows.
    #[error("not a picture format")]
    NotAnImage,
    /// The header declares a size past the limits; nothing was decoded.
    #[error("`{width}` × `{height}` pixels is past the size limits")]
    TooLarge { width: u32, height: u32 },
    /// The decoder gave up; its words.
    #[error("the file is damaged: {0}")]
    Damaged(String),
}

/// Shortest side, in pixels, of a JPEG read from its block means. Below
/// it the 32×32 thumbnail would be made of fewer than 32 blocks a side, so
/// smaller JPEGs are decoded in grey instead.
pub const DC_MIN_SIDE: u32 = 256;

/// How JPEG files are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum JpegDecode {
    /// The 8×8 block means of the grey (Y) channel, read from the DC
    /// coefficients ([`crate::jpeg_dc`]): no inverse DCT at all. JPEGs it
    /// cannot read, that are not grey or YCbCr, or whose shortest side is
    /// under [`DC_MIN_SIDE`] are decoded as with `GreyOnly`. What the
    /// duplicate search and curation use.
    #[default]
    DcOnly,
    /// Only the grey (Y) channel, straight from `zune-jpeg`: no colour
    /// upsampling or conversion, which is most of a JPEG decode after the
    /// entropy decoding.
    GreyOnly,
    /// The full colour decode through `image`, as every other format.
    Full,
}

/// Reads a picture file's bytes once into its [`Thumbs`]. Sizes are checked
/// against `options.limits` before anything is decoded. A [`ColourThumb`]
/// is kept when `options.colour` asks for it and the reading gives colour
/// anyway: everything but lossy WebPs and JPEGs read in grey (small,
/// progressive, or not interleaved), whose colour [`colour_thumbnail`] makes
/// with a second decode.
pub fn read(bytes: &[u8], options: Options) -> Result<Thumbs, ThumbError> {
    let Options {
        jpeg,
        colour,
        limits,
    } = options;
    if bytes.is_empty() {
        return Err(ThumbError::Empty);
    }
    let format = image::guess_format(bytes).map_err(|_| ThumbError::NotAnImage)?;
    if format == ImageFormat::Png
        && let Some(done) = read_png(bytes, colour, limits)
    {
        return Ok(done);
    }
    if format == ImageFormat::WebP
        && let Some(done) =
            read_webp_lossy(bytes, limits).or_else(|| read_webp_lossless(bytes, colour, limits))
    {
        return Ok(done);
    }
    if format == ImageFormat::Jpeg {
        if jpeg == JpegDecode::DcOnly
            && let Some(done) = read_jpeg_dc(bytes, colour, limits)
        {
            return Ok(done);
        }
        if jpeg != JpegDecode::Full
            && let Some(done) = read_jpeg_grey(bytes, limits)
        {
            return Ok(done);
        }
    }
    let reader = |limits: image::Limits| {
        let mut r = ImageReader::with_format(Cursor::new(bytes), format);
        r.limits(limits);
        r
    };
    let failure = |e: image::ImageError| ThumbError::Damaged(e.to_string());
    let (width, height) = reader(image::Limits::no_limits())
        .into_dimensions()
        .map_err(failure)?;
    if !limits.allows(width, height) {
        return Err(ThumbError::TooLarge { width, height });
    }
    let image = reader(limits.for_image()).decode().map_err(failure)?;
    Ok(Thumbs {
        thumbnails: thumbnails_of(&image),
        width,
        height,
        format,
        colour: colour.then(|| ColourThumb::of_image(&image)),
    })
}

/// The colour thumbnail of a picture file, decoding it as cheaply as that
/// allows ([`read`]'s where it makes one, else a full decode); `None` when
/// it cannot be decoded.
pub fn colour_thumbnail(bytes: &[u8], limits: Limits) -> Option<ColourThumb> {
    let options = Options {
        jpeg: JpegDecode::DcOnly,
        colour: true,
        limits,
    };
    let thumbs = read(bytes, options).ok()?;
    if thumbs.colour.is_some() {
        return thumbs.colour;
    }
    let format = image::guess_format(bytes).ok()?;
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
    reader.limits(limits.for_image());
    Some(ColourThumb::of_image(&reader.decode().ok()?))
}

/// The fast PNG path ([`crate::png_rows`]); `None` when the file needs the
/// general decoder (16-bit, interlaced, colour key, damaged, too large).
fn read_png(bytes: &[u8], colour: bool, limits: Limits) -> Option<Thumbs> {
    let head = png_rows::header(bytes)?;
    let (width, height) = (head.width, head.height);
    if !limits.allows(width, height) {
        return None;
    }
    let file = png_rows::open(bytes)?;
    let grey = PngGrey::of(&file.layout);
    let (w, h) = (file.layout.width, file.layout.height);
    let palette: Box<[[u8; 3]; 256]> = Box::new(std::array::from_fn(|i| {
        let [r, g, b, a] = file.layout.palette[i];
        if file.layout.palette_alpha {
            [r, g, b].map(|c| over_white(c, a))
        } else {
            [r, g, b]
        }
    }));
    let source = match file.layout.colour {
        PngColour::Grey => RgbSource::Grey,
        PngColour::GreyAlpha => RgbSource::GreyAlpha,
        PngColour::Rgb => RgbSource::Rgb,
        PngColour::Rgba => RgbSource::Rgba,
        PngColour::Palette => RgbSource::Palette(&palette),
    };
    let mut colours = colour.then(|| ColourSums::new(w, h));
    let thumbs = if let Some(mut sums) = CellSums::new(w, h, CENTRE_KEEP) {
        // Rows go into the sums as they are decoded; the picture is never
        // held whole.
        let mut line = vec![0u8; w];
        let mut y = 0;
        file.rows(|row| {
            grey.line(row, &mut line);
            sums.add_row(&line);
            if let Some(c) = colours.as_mut()
                && c.wants(y)
            {
                c.add_row(y, row, source);
            }
            y += 1;
        })?;
        sums.finish()
    } else {
        // Too small to average over: sampled, from the whole decode.
        let png = file.decode()?;
        if let Some(c) = colours.as_mut() {
            for y in 0..h {
                if c.wants(y) {
                    c.add_row(y, png.row(y), source);
                }
            }
        }
        area_average(w, h, CENTRE_KEEP, |y, line| grey.line(png.row(y), line))
    };
    Some(Thumbs {
        thumbnails: thumbs,
        width,
        height,
        format: ImageFormat::Png,
        colour: colours.map(ColourSums::finish),
    })
}

/// The lossy WebP path: the grey straight from VP8's luma plane
/// ([`crate::webp_luma`]); `None` for lossless, alpha, animated or damaged
/// files, and for sizes past the limits (the general decoder then explains).
fn read_webp_lossy(bytes: &[u8], limits: Limits) -> Option<Thumbs> {
    let luma = webp_luma::decode(bytes, |w, h| limits.allows(w, h))?;
    let thumbnails = area_average(luma.width, luma.height, CENTRE_KEEP, |y, line| {
        luma.grey_row(y, line)
    });
    Some(Thumbs {
        thumbnails,
        width: luma.width as u32,
        height: luma.height as u32,
        format: ImageFormat::WebP,
        colour: None,
    })
}

/// The lossless WebP path ([`crate::webp_lossless`]): the same pixels as
/// the general decoder, so the same thumbnails; `None` when the file needs it.
fn read_webp_lossless(bytes: &[u8], colour: bool, limits: Limits) -> Option<Thumbs> {
    let picture = webp_lossless::decode(bytes, |w, h| limits.allows(w, h))?;
    let (w, h) = (picture.width, picture.height);
    // Without the header's alpha flag decoders give RGB, alpha ignored.
    let alpha = picture.has_alpha;
    let colours = colour.then(|| {
        let mut c = ColourSums::new(w, h);
        let mut row = vec![0u8; 4 * w];
        for y in 0..h {
            if !c.wants(y) {
                continue;
            }
            for (out, px) in row
                .chunks_exact_mut(4)
                .zip(&picture.argb[y * w..(y + 1) * w])
            {
                out.copy_from_slice(&px.to_le_bytes());
            }
            c.add_row(y, &row, RgbSource::Argb { alpha });
        }
        c.finish()
    });
    let thumbnails = area_average(w, h, CENTRE_KEEP, |y, line| {
        for (out, &px) in line.iter_mut().zip(&picture.argb[y * w..(y + 1) * w]) {
            let grey = luma((px >> 16) as u8, (px >> 8) as u8, px as u8);
            *out = if alpha {
                over_white(grey, (px >> 24) as u8)
            } else {
                grey
            };
        }
    });
    Some(Thumbs {
        thumbnails,
        width: w as u32,
        height: h as u32,
        format: ImageFormat::WebP,
        colour: colours,
    })
}

/// The block-means JPEG path; `None` when the file needs a decoder (see
/// [`JpegDecode::DcOnly`]).
fn read_jpeg_dc(bytes: &[u8], colour: bool, limits: Limits) -> Option<Thumbs> {
    let reader = DcReader::new(bytes, limits).ok()?;
    let (width, height) = reader.dimensions();
    if width.min(height) < DC_MIN_SIDE
        || !matches!(reader.colour(), JpegColour::Grey | JpegColour::YCbCr)
    {
        return None;
    }
    let dc = if colour {
        reader.decode_with_colour()
    } else {
        reader.decode()
    }
    .ok()?;
    Some(Thumbs {
        thumbnails: area_average_blocks(&dc, CENTRE_KEEP),
        width,
        height,
        format: ImageFormat::Jpeg,
        colour: colour_of_blocks(&dc),
    })
}

/// The grey-only JPEG path; `None` when this JPEG needs the full decoder
/// (CMYK, RGB-coded, or anything `zune-jpeg` refuses in grey).
fn read_jpeg_grey(bytes: &[u8], limits: Limits) -> Option<Thumbs> {
    use zune_core::colorspace::ColorSpace;
    let options = zune_core::options::DecoderOptions::default()
        .jpeg_set_out_colorspace(ColorSpace::Luma)
        .set_strict_mode(false)
        .set_max_width(limits.max_side as usize)
        .set_max_height(limits.max_side as usize);
    let mut decoder = zune_jpeg::JpegDecoder::new_with_options(
        zune_core::bytestream::ZCursor::new(bytes),
        options,
    );
    decoder.decode_headers().ok()?;
    if !matches!(
        decoder.input_colorspace(),
        Some(ColorSpace::YCbCr | ColorSpace::Luma)
    ) {
        return None;
    }
    let (width, height) = decoder.dimensions()?;
    if u64::try_from(width).ok()? * u64::try_from(height).ok()? > limits.max_pixels {
        return None;
    }
    let grey = decoder.decode().ok()?;
    if grey.len() < width * height {
        return None;
    }
    Some(Thumbs {
        thumbnails: thumbnails_of_grey(width, height, &grey),
        width: u32::try_from(width).ok()?,
        height: u32::try_from(height).ok()?,
        format: ImageFormat::Jpeg,
        colour: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synth::{self, base_picture, smooth_picture};
    use image::DynamicImage;

    const LIMITS: Limits = Limits {
        max_side: 30_000,
        max_pixels: 120_000_000,
    };

    fn read_as(bytes: &[u8], jpeg: JpegDecode) -> Result<Thumbs, ThumbError> {
        read(
            bytes,
            Options {
                jpeg,
                colour: false,
                limits: LIMITS,
            },
        )
    }

    /// The largest difference of one cell, in grey levels, between two
    /// pictures' thumbnails (both views).
    fn off(a: &Thumbnails, b: &Thumbnails) -> f32 {
        differences(a, b).fold(0.0, f32::max)
    }

    /// The mean difference of a cell, in grey levels.
    fn mean_off(a: &Thumbnails, b: &Thumbnails) -> f32 {
        differences(a, b).sum::<f32>() / (2 * a.full.len()) as f32
    }

    fn differences<'a>(a: &'a Thumbnails, b: &'a Thumbnails) -> impl Iterator<Item = f32> + 'a {
        a.full
            .iter()
            .chain(&a.centre)
            .zip(b.full.iter().chain(&b.centre))
            .map(|(x, y)| (x - y).abs())
    }

    fn general(bytes: &[u8]) -> Thumbnails {
        thumbnails_of(&image::load_from_memory(bytes).unwrap())
    }

    fn jpeg(img: &DynamicImage, quality: u8) -> Vec<u8> {
        let mut out = Vec::new();
        let encoder = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, quality);
        img.to_rgb8().write_with_encoder(encoder).unwrap();
        out
    }

    /// A JPEG of `img` written by jpeg-encoder with 4:2:0 subsampling.
    fn jpeg_420(img: &DynamicImage, quality: u8) -> Vec<u8> {
        let mut out = Vec::new();
        let mut encoder = jpeg_encoder::Encoder::new(&mut out, quality);
        encoder.set_sampling_factor(jpeg_encoder::SamplingFactor::F_2_2);
        let (w, h) = (img.width() as u16, img.height() as u16);
        encoder
            .encode(img.to_rgb8().as_raw(), w, h, jpeg_encoder::ColorType::Rgb)
            .unwrap();
        out
    }

    #[test]
    fn colour_thumbnails_come_from_every_fast_path() {
        let img = DynamicImage::ImageRgb8(base_picture(8, 320));
        let reference = ColourThumb::of_image(&img);
        assert_eq!(
            (reference.width, reference.height),
            (crate::COLOUR_SIDE, crate::COLOUR_SIDE)
        );
        for format in [ImageFormat::Png, ImageFormat::WebP, ImageFormat::Jpeg] {
            let bytes = if format == ImageFormat::Jpeg {
                jpeg(&img, 95)
            } else {
                synth::encode(&img, format).unwrap()
            };
            let with_colour = Options {
                jpeg: JpegDecode::DcOnly,
                colour: true,
                limits: LIMITS,
            };
            let kept = read(&bytes, with_colour)
                .unwrap()
                .colour
                .unwrap_or_else(|| panic!("{format:?}: no thumbnail"));
            assert_eq!(
                (kept.width, kept.height),
                (crate::COLOUR_SIDE, crate::COLOUR_SIDE)
            );
            let mean_diff = kept
                .rgb
                .iter()
                .zip(&reference.rgb)
                .map(|(a, b)| (i32::from(*a) - i32::from(*b)).abs())
                .sum::<i32>() as f32
                / kept.rgb.len() as f32;
            // Lossless formats give the same pixels; the JPEG's block means
            // are a little softer.
            assert!(mean_diff < 6.0, "{format:?}: {mean_diff}");
            assert!(
                read_as(&bytes, JpegDecode::DcOnly)
                    .unwrap()
                    .colour
                    .is_none(),
                "only kept when asked for"
            );
            assert_eq!(colour_thumbnail(&bytes, LIMITS), Some(kept));
        }
        // A wide picture keeps its shape.
        let wide = DynamicImage::ImageRgb8(smooth_picture(1, 300, 100));
        let t = ColourThumb::of_image(&wide);
        assert_eq!((t.width, t.height, t.rgb.len()), (48, 16, 48 * 16 * 3));
    }

    #[test]
    fn pngs_read_exactly_as_the_general_decode_does() {
        use crate::png_rows::tests::{chunk, encode_png, samples};
        use png::{BitDepth, ColorType, Filter};
        let plte: Vec<u8> = (0..=255u8).flat_map(|i| [i, 255 - i, i / 3]).collect();
        let trns: Vec<u8> = (0..=255u8).map(|i| 255 - i / 2).collect();
        let indices = samples(9, 301, 203, 1);
        let cases = [
            ("grey", ColorType::Grayscale, 1, None),
            ("grey + alpha", ColorType::GrayscaleAlpha, 2, None),
            ("RGB", ColorType::Rgb, 3, None),
            ("RGBA", ColorType::Rgba, 4, None),
            ("palette", ColorType::Indexed, 1, Some((&plte[..], None))),
            (
                "palette with transparency",
                ColorType::Indexed,
                1,
                Some((&plte[..], Some(&trns[..]))),
            ),
        ];
        for (what, colour, channels, palette) in cases {
            let pixels = if palette.is_some() {
                indices.clone()
            } else {
                samples(9, 301, 203, channels)
            };
            let bytes = encode_png(
                301,
                203,
                colour,
                BitDepth::Eight,
                Filter::Adaptive,
                palette,
                &pixels,
            );
            let fast = read_png(&bytes, false, LIMITS).expect("the fast path reads it");
            assert_eq!(fast.thumbnails, general(&bytes), "{what}");
            assert_eq!((fast.width, fast.height), (301, 203));
            assert_eq!(read_as(&bytes, JpegDecode::DcOnly).unwrap(), fast);
        }
        // A short palette: indices past its end, and a tRNS longer than it
        // (both read as the `png` crate reads them: opaque black, and no
        // transparency at all).
        let short: Vec<u8> = (0..10u8).flat_map(|i| [i * 25, 255 - i * 20, 7]).collect();
        let trns_long = [90u8; 12];
        let plain = encode_png(
            40,
            36,
            ColorType::Indexed,
            BitDepth::Eight,
            Filter::Sub,
            Some((&short, None)),
            &samples(4, 40, 36, 1)
                .iter()
                .map(|v| v % 14)
                .collect::<Vec<u8>>(),
        );
        let with_long_trns = {
            // IHDR, then a tRNS of 12 entries for a palette of 10, then the rest.
            let mut out = plain[..33].to_vec();
            out.extend(chunk(b"tRNS", &trns_long));
            out.extend_from_slice(&plain[33..]);
            out
        };
        for (what, bytes) in [
            ("short palette", plain),
            ("tRNS longer than the palette", with_long_trns),
        ] {
            let fast = read_png(&bytes, false, LIMITS).expect("the fast path reads it");
            assert_eq!(fast.thumbnails, general(&bytes), "{what}");
        }
        // A damaged PNG still gets the general decoder's explanation.
        let mut damaged = encode_png(
            64,
            64,
            ColorType::Rgb,
            BitDepth::Eight,
            Filter::Paeth,
            None,
            &samples(2, 64, 64, 3),
        );
        let at = damaged.len() - 20;
        damaged[at] ^= 0x55;
        assert!(read_png(&damaged, false, LIMITS).is_none());
        assert!(matches!(
            read_as(&damaged, JpegDecode::DcOnly),
            Err(ThumbError::Damaged(_))
        ));
    }

    #[test]
    fn lossy_webps_read_close_to_their_full_decode() {
        use crate::webp_luma::tests::{Lossy, encode_lossy, picture};
        let mut worst = 0f32;
        for (i, (w, h)) in [(512, 384), (301, 707), (1024, 256)]
            .into_iter()
            .enumerate()
        {
            let rgb = picture(w, h, 40 + i as u32);
            let original = thumbnails_of(&DynamicImage::ImageRgb8(
                image::RgbImage::from_raw(w as u32, h as u32, rgb.clone()).unwrap(),
            ));
            for quality in [30.0, 75.0, 95.0] {
                let settings = Lossy {
                    quality,
                    ..Lossy::default()
                };
                let file = encode_lossy(&rgb, w, h, settings);
                let fast = read_webp_lossy(&file, LIMITS).expect("a lossy WebP is read");
                let full = general(&file);
                let d = off(&fast.thumbnails, &full);
                // No farther from the picture it was made from than the full
                // decode is, give or take the loop filter's smoothing.
                let (ours, theirs) = (off(&fast.thumbnails, &original), off(&full, &original));
                eprintln!(
                    "{w}x{h} q{quality}: {d:.2} from the full decode; {ours:.2} vs {theirs:.2} from the original"
                );
                assert!(
                    d <= LOSSY_OFF,
                    "{w}x{h} q{quality}: {d} levels from the full decode"
                );
                assert!(
                    ours <= theirs + 0.5,
                    "{w}x{h} q{quality}: {ours} vs {theirs}"
                );
                assert_eq!((fast.width, fast.height), (w as u32, h as u32));
                assert_eq!(fast.format, ImageFormat::WebP);
                assert_eq!(read_as(&file, JpegDecode::DcOnly).unwrap(), fast);
                worst = worst.max(d);
            }
        }
        eprintln!("lossy WebP: at most {worst} grey levels from the full decode");
    }

    /// Most one cell of a lossy WebP's thumbnails may differ from the full
    /// decode's, in grey levels of 255 (measured 0.5–1.5): the luma reader
    /// skips the loop filter.
    const LOSSY_OFF: f32 = 3.0;

    #[test]
    fn lossless_webps_read_exactly_as_the_general_decode_does() {
        use crate::webp_luma::tests::{encode_libwebp, picture};
        for (i, (w, h)) in [(256, 192), (97, 301)].into_iter().enumerate() {
            let rgb = picture(w, h, 60 + i as u32);
            // Written by `image` (image-webp's encoder) and by libwebp, with
            // and without alpha.
            let mut by_image = Vec::new();
            DynamicImage::ImageRgb8(
                image::RgbImage::from_raw(w as u32, h as u32, rgb.clone()).unwrap(),
            )
            .write_to(&mut Cursor::new(&mut by_image), ImageFormat::WebP)
            .unwrap();
            let rgba: Vec<u8> = rgb
                .chunks_exact(3)
                .enumerate()
                .flat_map(|(k, p)| [p[0], p[1], p[2], (k % 251) as u8])
                .collect();
            let opaque: Vec<u8> = rgb
                .chunks_exact(3)
                .flat_map(|p| [p[0], p[1], p[2], 255])
                .collect();
            let by_libwebp = |pixels: &[u8]| {
                encode_libwebp(pixels, 4, w, h, 75.0, |config| {
                    config.lossless = 1;
                    config.exact = 1;
                })
            };
            for (what, file) in [
                ("image", by_image),
                ("libwebp, alpha", by_libwebp(&rgba)),
                ("libwebp, opaque", by_libwebp(&opaque)),
            ] {
                let fast = read_webp_lossless(&file, false, LIMITS)
                    .unwrap_or_else(|| panic!("{what}: read"));
                assert_eq!(fast.thumbnails, general(&file), "{what} {w}x{h}");
                assert_eq!(read_as(&file, JpegDecode::DcOnly).unwrap(), fast);
            }
        }
    }

    #[test]
    fn webps_the_luma_reader_cannot_read_still_read() {
        // Lossless (the only WebP `image` writes) goes to another reader.
        let mut lossless = Vec::new();
        DynamicImage::ImageRgb8(image::RgbImage::from_fn(64, 48, |x, y| {
            image::Rgb([x as u8 * 3, y as u8 * 5, 90])
        }))
        .write_to(&mut Cursor::new(&mut lossless), ImageFormat::WebP)
        .unwrap();
        assert!(read_webp_lossy(&lossless, LIMITS).is_none());
        assert_eq!(
            read_as(&lossless, JpegDecode::DcOnly).unwrap().thumbnails,
            general(&lossless)
        );
        // A cut-off lossy file is reported as damaged, not read as zeros.
        use crate::webp_luma::tests::{Lossy, encode_lossy, picture};
        let file = encode_lossy(&picture(200, 150, 3), 200, 150, Lossy::default());
        let cut = &file[..file.len() * 2 / 3];
        assert!(read_webp_lossy(cut, LIMITS).is_none());
        assert!(matches!(
            read_as(cut, JpegDecode::DcOnly),
            Err(ThumbError::Damaged(_))
        ));
    }

    #[test]
    fn jpeg_grey_path_matches_the_full_decode() {
        let img = DynamicImage::ImageRgb8(smooth_picture(4, 300, 200));
        let bytes = synth::encode(&img, ImageFormat::Jpeg).unwrap();
        let grey = read_as(&bytes, JpegDecode::GreyOnly).unwrap();
        let full = read_as(&bytes, JpegDecode::Full).unwrap();
        assert_eq!(
            (grey.width, grey.height, grey.format),
            (300, 200, ImageFormat::Jpeg)
        );
        let d = off(&grey.thumbnails, &full.thumbnails);
        assert!(d <= 2.0, "grey-only vs full decode: {d} levels");
        assert_eq!(read_as(b"", JpegDecode::GreyOnly), Err(ThumbError::Empty));
        assert_eq!(
            read_as(b"hello", JpegDecode::GreyOnly),
            Err(ThumbError::NotAnImage)
        );
    }

    #[test]
    fn jpeg_block_means_read_like_the_same_picture_as_png() {
        for (seed, w, h) in [(1, 512, 512), (2, 517, 301), (3, 1024, 768), (4, 256, 300)] {
            let img = DynamicImage::ImageRgb8(base_picture(seed, w.max(h))).crop_imm(0, 0, w, h);
            let png = synth::encode(&img, ImageFormat::Png).unwrap();
            let png = read_as(&png, JpegDecode::DcOnly).unwrap();
            assert_eq!(png.thumbnails, thumbnails_of(&img));
            for bytes in [
                synth::encode(&img, ImageFormat::Jpeg).unwrap(),
                jpeg_420(&img, 75),
            ] {
                let dc = read_jpeg_dc(&bytes, false, LIMITS)
                    .unwrap_or_else(|| panic!("{w}×{h} not read from block means"));
                assert_eq!(read_as(&bytes, JpegDecode::DcOnly).unwrap(), dc);
                assert_eq!((dc.width, dc.height, dc.format), (w, h, ImageFormat::Jpeg));
                let grey = read_as(&bytes, JpegDecode::GreyOnly).unwrap();
                let (from_png, from_grey) = (
                    mean_off(&dc.thumbnails, &png.thumbnails),
                    mean_off(&dc.thumbnails, &grey.thumbnails),
                );
                eprintln!(
                    "{w}×{h}: {from_png:.2} from the PNG, {from_grey:.2} from the grey decode"
                );
                assert!(
                    from_png <= JPEG_OFF,
                    "{w}×{h}: {from_png} levels from the PNG"
                );
                assert!(
                    from_grey <= JPEG_OFF,
                    "{w}×{h}: {from_grey} levels from the grey decode"
                );
            }
        }
    }

    /// Most a cell of a JPEG's block-means thumbnails may differ on average
    /// from the same picture's PNG, in grey levels of 255 (measured 0.1–1.1,
    /// the smallest pictures farthest): the JPEG's own loss.
    const JPEG_OFF: f32 = 2.0;

    #[test]
    fn jpegs_the_block_means_cannot_serve_are_decoded() {
        // Small: decoded in grey.
        let small = jpeg_420(&DynamicImage::ImageRgb8(smooth_picture(6, 300, 200)), 80);
        assert!(read_jpeg_dc(&small, false, LIMITS).is_none());
        assert_eq!(
            read_as(&small, JpegDecode::DcOnly),
            read_as(&small, JpegDecode::GreyOnly)
        );
        // Progressive: decoded in grey.
        let img = DynamicImage::ImageRgb8(smooth_picture(7, 400, 300));
        let mut progressive = Vec::new();
        let mut encoder = jpeg_encoder::Encoder::new(&mut progressive, 85);
        encoder.set_progressive(true);
        encoder
            .encode(
                img.to_rgb8().as_raw(),
                400,
                300,
                jpeg_encoder::ColorType::Rgb,
            )
            .unwrap();
        assert!(read_jpeg_dc(&progressive, false, LIMITS).is_none());
        assert_eq!(
            read_as(&progressive, JpegDecode::DcOnly),
            read_as(&progressive, JpegDecode::GreyOnly)
        );
        // CMYK: the first component is not grey; decoded in full colour.
        let cmyk: Vec<u8> = (0..400 * 300 * 4).map(|i| (i * 7 % 251) as u8).collect();
        let mut bytes = Vec::new();
        jpeg_encoder::Encoder::new(&mut bytes, 90)
            .encode(&cmyk, 400, 300, jpeg_encoder::ColorType::Cmyk)
            .unwrap();
        assert!(read_jpeg_dc(&bytes, false, LIMITS).is_none());
        assert_eq!(
            read_as(&bytes, JpegDecode::DcOnly),
            read_as(&bytes, JpegDecode::Full)
        );
        // Truncated: decoded by the fallback (which, like zune-jpeg, pads).
        let whole = jpeg_420(&DynamicImage::ImageRgb8(smooth_picture(8, 400, 300)), 85);
        let cut = &whole[..whole.len() / 2];
        assert!(read_jpeg_dc(cut, false, LIMITS).is_none());
        assert_eq!(
            read_as(cut, JpegDecode::DcOnly),
            read_as(cut, JpegDecode::GreyOnly)
        );
    }

    #[test]
    fn sizes_past_the_limits_are_refused_before_decoding() {
        let img = DynamicImage::ImageRgb8(smooth_picture(3, 300, 200));
        let small = Limits {
            max_side: 250,
            max_pixels: 1_000_000,
        };
        for format in [
            ImageFormat::Png,
            ImageFormat::Jpeg,
            ImageFormat::WebP,
            ImageFormat::Bmp,
        ] {
            let bytes = synth::encode(&img, format).unwrap();
            let options = Options {
                jpeg: JpegDecode::DcOnly,
                colour: true,
                limits: small,
            };
            assert_eq!(
                read(&bytes, options),
                Err(ThumbError::TooLarge {
                    width: 300,
                    height: 200
                }),
                "{format:?}"
            );
            assert_eq!(colour_thumbnail(&bytes, small), None, "{format:?}");
        }
    }
}
