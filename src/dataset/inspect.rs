//! One picture, decoded once: what it is and what is wrong with it.
//!
//! The file is read into memory once; that buffer is hashed (for the dataset
//! fingerprint), sniffed (for the real format), and decoded fully (so a
//! truncated or corrupt file is found), then dropped. Dimensions are checked
//! before decoding, so a file that declares an absurd size is reported as a
//! decompression bomb instead of being decoded.

use std::io::Cursor;
use std::path::Path;

use image::{ColorType, ImageDecoder, ImageFormat, ImageReader, Limits};
use serde::Serialize;

/// The most pixels we decode. Training pictures are at most a few tens of
/// megapixels; a file that declares more is broken or hostile.
pub const MAX_PIXELS: u64 = 120_000_000;
/// The longest side we decode.
pub const MAX_SIDE: u32 = 30_000;

/// Colour mode of a picture, as the trainer will see it before conversion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ColorMode {
    Rgb,
    Rgba,
    Greyscale,
    GreyscaleAlpha,
    Cmyk,
    Other,
}

/// What decoding a picture found out about it.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Decoded {
    /// Real format from the file's content (`png`, `jpeg`, `webp`, ...).
    pub format: String,
    pub width: u32,
    pub height: u32,
    pub color_mode: ColorMode,
    /// Bits per channel: 8 or 16 (32 for float formats).
    pub bits_per_channel: u8,
    /// The picture has an alpha channel.
    pub has_alpha: bool,
    /// Some pixel is not fully opaque (only meaningful with `has_alpha`).
    pub uses_transparency: bool,
}

/// Why a picture could not be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeFailure {
    ZeroBytes,
    /// The content is not an image format we know.
    NotAnImage,
    /// Declares more pixels than we will decode.
    Bomb {
        width: u32,
        height: u32,
    },
    /// The decoder gave up; the text says why in plain words.
    Corrupt(String),
    /// A format we recognise but cannot decode.
    Unsupported(String),
}

impl DecodeFailure {
    /// The reason in words for the report.
    pub fn plain(&self) -> String {
        match self {
            DecodeFailure::ZeroBytes => "the file is empty (0 bytes)".into(),
            DecodeFailure::NotAnImage => {
                "the content is not a picture format Ategnatos can read".into()
            }
            DecodeFailure::Bomb { width, height } => format!(
                "it declares {width} × {height} pixels (about {:.0} GB once decoded), far beyond any training picture: a corrupt file or a decompression bomb, not decoded",
                *width as f64 * *height as f64 * 4.0 / 1e9
            ),
            DecodeFailure::Corrupt(why) => why.clone(),
            DecodeFailure::Unsupported(why) => why.clone(),
        }
    }
}

/// The lowercase name we report for a format.
pub fn format_name(format: ImageFormat) -> String {
    match format {
        ImageFormat::Jpeg => "jpeg".into(),
        ImageFormat::Png => "png".into(),
        ImageFormat::WebP => "webp".into(),
        ImageFormat::Gif => "gif".into(),
        ImageFormat::Bmp => "bmp".into(),
        ImageFormat::Tiff => "tiff".into(),
        other => format!("{other:?}").to_ascii_lowercase(),
    }
}

/// True when a file extension is a usual one for `format`.
pub fn extension_matches(ext: &str, format: ImageFormat) -> bool {
    format
        .extensions_str()
        .iter()
        .any(|e| e.eq_ignore_ascii_case(ext))
}

/// Sniffs the format from the first bytes.
pub fn sniff(bytes: &[u8]) -> Option<ImageFormat> {
    image::guess_format(bytes).ok()
}

/// Decodes `bytes` fully and describes the picture.
pub fn decode(bytes: &[u8]) -> Result<Decoded, DecodeFailure> {
    if bytes.is_empty() {
        return Err(DecodeFailure::ZeroBytes);
    }
    let format = sniff(bytes).ok_or(DecodeFailure::NotAnImage)?;
    let reader = |limits: Limits| {
        let mut r = ImageReader::with_format(Cursor::new(bytes), format);
        r.limits(limits);
        r
    };
    // Header first: refuse absurd sizes before allocating anything.
    let (width, height) = reader(Limits::no_limits())
        .into_dimensions()
        .map_err(|e| plain_decode_error(&e, format))?;
    if width > MAX_SIDE || height > MAX_SIDE || u64::from(width) * u64::from(height) > MAX_PIXELS {
        return Err(DecodeFailure::Bomb { width, height });
    }
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(MAX_PIXELS * 8);
    let decoder = reader(limits)
        .into_decoder()
        .map_err(|e| plain_decode_error(&e, format))?;
    let color = decoder.color_type();
    let image =
        image::DynamicImage::from_decoder(decoder).map_err(|e| plain_decode_error(&e, format))?;
    if format == ImageFormat::Jpeg {
        check_jpeg_complete(bytes)?;
    }
    let jpeg_components = if format == ImageFormat::Jpeg {
        jpeg_component_count(bytes)
    } else {
        None
    };
    let color_mode = match (color, jpeg_components) {
        (_, Some(4)) => ColorMode::Cmyk,
        (ColorType::L8 | ColorType::L16, _) => ColorMode::Greyscale,
        (ColorType::La8 | ColorType::La16, _) => ColorMode::GreyscaleAlpha,
        (ColorType::Rgb8 | ColorType::Rgb16 | ColorType::Rgb32F, _) => ColorMode::Rgb,
        (ColorType::Rgba8 | ColorType::Rgba16 | ColorType::Rgba32F, _) => ColorMode::Rgba,
        _ => ColorMode::Other,
    };
    let has_alpha = color.has_alpha();
    let uses_transparency = has_alpha && any_transparent(&image);
    Ok(Decoded {
        format: format_name(format),
        width,
        height,
        color_mode,
        bits_per_channel: (color.bits_per_pixel() / u16::from(color.channel_count())) as u8,
        has_alpha,
        uses_transparency,
    })
}

fn any_transparent(image: &image::DynamicImage) -> bool {
    match image {
        image::DynamicImage::ImageRgba8(b) => b.pixels().any(|p| p.0[3] < 255),
        image::DynamicImage::ImageLumaA8(b) => b.pixels().any(|p| p.0[1] < 255),
        image::DynamicImage::ImageRgba16(b) => b.pixels().any(|p| p.0[3] < u16::MAX),
        image::DynamicImage::ImageLumaA16(b) => b.pixels().any(|p| p.0[1] < u16::MAX),
        image::DynamicImage::ImageRgba32F(b) => b.pixels().any(|p| p.0[3] < 1.0),
        _ => false,
    }
}

fn plain_decode_error(e: &image::ImageError, format: ImageFormat) -> DecodeFailure {
    use image::ImageError;
    let name = format_name(format).to_uppercase();
    match e {
        ImageError::IoError(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
            DecodeFailure::Corrupt(format!(
                "the {name} file ends early: it was cut short while copying or downloading"
            ))
        }
        ImageError::Limits(_) => DecodeFailure::Bomb {
            width: 0,
            height: 0,
        },
        ImageError::Unsupported(u) => DecodeFailure::Unsupported(format!(
            "this {name} uses a feature the decoder does not support ({u}); re-save it as an ordinary PNG or JPEG"
        )),
        other => {
            let text = other.to_string();
            let lower = text.to_ascii_lowercase();
            if lower.contains("eof")
                || lower.contains("end of")
                || lower.contains("truncat")
                || lower.contains("no more data")
            {
                DecodeFailure::Corrupt(format!(
                    "the {name} file ends early: it was cut short while copying or downloading ({text})"
                ))
            } else {
                DecodeFailure::Corrupt(format!("the {name} file is damaged: {text}"))
            }
        }
    }
}

/// Iterates a JPEG's marker segments up to the start of scan, calling `f`
/// with each marker and its payload. Returns the offset just past the SOS
/// header, or `None` when the structure is broken.
fn jpeg_segments(bytes: &[u8], mut f: impl FnMut(u8, &[u8])) -> Option<usize> {
    let mut i = 2; // after SOI
    while i + 4 <= bytes.len() {
        if bytes[i] != 0xFF {
            return None;
        }
        let marker = bytes[i + 1];
        if marker == 0xFF {
            i += 1; // fill byte
            continue;
        }
        if (0xD0..=0xD8).contains(&marker) || marker == 0x01 {
            i += 2;
            continue;
        }
        let len = usize::from(u16::from_be_bytes([bytes[i + 2], bytes[i + 3]]));
        let payload = bytes.get(i + 4..i + 2 + len)?;
        f(marker, payload);
        i += 2 + len;
        if marker == 0xDA {
            return Some(i);
        }
    }
    None
}

/// Number of colour components in a JPEG's frame header (4 means CMYK/YCCK).
pub fn jpeg_component_count(bytes: &[u8]) -> Option<u8> {
    let mut count = None;
    jpeg_segments(bytes, |marker, payload| {
        let is_sof = matches!(marker, 0xC0..=0xCF) && !matches!(marker, 0xC4 | 0xC8 | 0xCC);
        if is_sof && count.is_none() {
            count = payload.get(5).copied();
        }
    });
    count
}

/// A JPEG whose scan data never reaches the end-of-image marker was cut short.
/// The decoder fills missing data with grey instead of failing, so we look.
fn check_jpeg_complete(bytes: &[u8]) -> Result<(), DecodeFailure> {
    let cut = || {
        DecodeFailure::Corrupt(
            "the JPEG file ends early: it was cut short while copying or downloading, and the bottom of the picture is missing".into(),
        )
    };
    let scan_start = jpeg_segments(bytes, |_, _| {}).ok_or_else(cut)?;
    // In entropy-coded data every 0xFF is followed by 0x00 or a restart marker,
    // so an FF D9 pair after the scan starts is the real end-of-image marker.
    let tail = &bytes[scan_start..];
    if tail.windows(2).any(|w| w == [0xFF, 0xD9]) {
        Ok(())
    } else {
        Err(cut())
    }
}

/// The lowercase extension of a path, if any.
pub fn extension_of(path: &Path) -> Option<String> {
    path.extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(img: image::DynamicImage, format: ImageFormat) -> Vec<u8> {
        let mut out = Cursor::new(Vec::new());
        img.write_to(&mut out, format).unwrap();
        out.into_inner()
    }

    fn gradient(w: u32, h: u32) -> image::RgbImage {
        image::RgbImage::from_fn(w, h, |x, y| {
            image::Rgb([(x % 256) as u8, (y % 256) as u8, 128])
        })
    }

    #[test]
    fn decodes_rgb_jpeg_and_png() {
        let jpg = encode(gradient(64, 48).into(), ImageFormat::Jpeg);
        let d = decode(&jpg).unwrap();
        assert_eq!((d.format.as_str(), d.width, d.height), ("jpeg", 64, 48));
        assert_eq!(d.color_mode, ColorMode::Rgb);
        assert_eq!(jpeg_component_count(&jpg), Some(3));
        let png = encode(gradient(10, 20).into(), ImageFormat::Png);
        assert_eq!(decode(&png).unwrap().bits_per_channel, 8);
    }

    #[test]
    fn truncated_files_are_corrupt() {
        let jpg = encode(gradient(256, 256).into(), ImageFormat::Jpeg);
        let cut = &jpg[..jpg.len() / 2];
        assert!(
            matches!(decode(cut), Err(DecodeFailure::Corrupt(_))),
            "{:?}",
            decode(cut)
        );
        let png = encode(gradient(256, 256).into(), ImageFormat::Png);
        let cut = &png[..png.len() / 2];
        let err = decode(cut).unwrap_err();
        assert!(err.plain().contains("ends early"), "{}", err.plain());
    }

    #[test]
    fn opaque_alpha_is_not_transparency() {
        let opaque = image::RgbaImage::from_pixel(8, 8, image::Rgba([1, 2, 3, 255]));
        let d = decode(&encode(opaque.into(), ImageFormat::Png)).unwrap();
        assert!(d.has_alpha && !d.uses_transparency);
        let mut holey = image::RgbaImage::from_pixel(8, 8, image::Rgba([1, 2, 3, 255]));
        holey.put_pixel(3, 3, image::Rgba([0, 0, 0, 0]));
        let d = decode(&encode(holey.into(), ImageFormat::Png)).unwrap();
        assert_eq!(d.color_mode, ColorMode::Rgba);
        assert!(d.uses_transparency);
    }
}
