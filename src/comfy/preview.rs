//! Small JPEG previews of rendered pictures for tool results: the long side
//! at most [`PREVIEW_SIDE`] pixels and the bytes within a budget, so a
//! result never carries a full render (clients cap a message near 1 MiB).

use std::path::Path;

use image::{DynamicImage, ImageReader, Limits, RgbImage};

/// Longest side of a preview.
pub const PREVIEW_SIDE: u32 = 512;
/// Characters all previews of one result may take (base64 of the JPEGs).
pub const PREVIEW_BUDGET_CHARS: usize = 90_000;
/// Largest picture we decode (a 16k × 16k render).
const MAX_SIDE: u32 = 16_384;

/// Decodes a picture with size limits.
pub fn open(path: &Path) -> Option<DynamicImage> {
    let mut reader = ImageReader::open(path).ok()?.with_guessed_format().ok()?;
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    reader.limits(limits);
    reader.decode().ok()
}

fn encode(picture: &RgbImage, quality: u8) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    // An RGB buffer in memory always encodes; an empty result would show as
    // a broken preview, nothing worse.
    let _ = picture.write_with_encoder(image::codecs::jpeg::JpegEncoder::new_with_quality(
        &mut out, quality,
    ));
    out.into_inner()
}

/// A JPEG of `picture`, long side at most `side`, within `max_bytes`
/// (lower quality first, then smaller).
pub fn jpeg_within(picture: &DynamicImage, side: u32, max_bytes: usize) -> Vec<u8> {
    let mut rgb = picture.thumbnail(side, side).to_rgb8();
    loop {
        for quality in [80, 65, 50, 35] {
            let jpeg = encode(&rgb, quality);
            if jpeg.len() <= max_bytes {
                return jpeg;
            }
        }
        let (w, h) = rgb.dimensions();
        if w.max(h) <= 48 {
            return encode(&rgb, 35);
        }
        rgb = image::imageops::thumbnail(&rgb, (w * 3 / 4).max(1), (h * 3 / 4).max(1));
    }
}

/// Previews of `paths`, sharing [`PREVIEW_BUDGET_CHARS`] equally; a file
/// that cannot be decoded is left out.
pub fn previews(paths: &[&Path], side: u32) -> Vec<Vec<u8>> {
    if paths.is_empty() {
        return Vec::new();
    }
    let per_picture = PREVIEW_BUDGET_CHARS / paths.len() / 4 * 3;
    paths
        .iter()
        .filter_map(|p| open(p))
        .map(|img| jpeg_within(&img, side, per_picture))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn previews_are_small_and_within_budget() {
        let dir = tempfile::tempdir().unwrap();
        let big = thumbs::synth::smooth_picture(3, 1500, 900);
        let path = dir.path().join("big.png");
        big.save(&path).unwrap();
        let made = previews(
            &[path.as_path(), path.as_path(), Path::new("/nope.png")],
            PREVIEW_SIDE,
        );
        assert_eq!(made.len(), 2);
        for jpeg in &made {
            let img = image::load_from_memory(jpeg).unwrap();
            assert!(img.width().max(img.height()) <= PREVIEW_SIDE);
            assert!(jpeg.len() * 4 / 3 <= PREVIEW_BUDGET_CHARS / 2);
        }
    }
}
