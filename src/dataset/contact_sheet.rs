//! Contact sheets: one picture per duplicate group with every member side by
//! side, so the artist can see what would be kept and what set aside.
//!
//! Members appear in the group's order (keeper first) on tiles of equal
//! size, each picture fitted inside its tile. The keeper's tile has a green
//! frame, the others an orange one. Sheets are PNG files under
//! `workspace/duplicates/<stamp>/`; small JPEG previews of them go into tool
//! results. Pictures are decoded with the audit's size limits; one that
//! cannot be decoded shows as a dark tile.

use std::io::Cursor;
use std::path::{Path, PathBuf};

use image::{DynamicImage, ImageFormat, ImageReader, Limits, Rgb, RgbImage};

use super::dedup::DuplicateReport;
use super::inspect::{MAX_PIXELS, MAX_SIDE};
use crate::studio::{Workspace, clock};

/// Tile side on the sheets written to disk.
pub const SHEET_TILE: u32 = 256;
/// Tile side of the previews put into tool results.
pub const PREVIEW_TILE: u32 = 96;
/// Most members shown per row.
const PER_ROW: usize = 6;
/// Frame width around each tile.
const FRAME: u32 = 4;
const KEEPER: Rgb<u8> = Rgb([46, 160, 67]);
const OTHER: Rgb<u8> = Rgb([230, 126, 34]);
const BACKGROUND: Rgb<u8> = Rgb([32, 32, 32]);

/// Decodes a picture within the audit's limits.
fn open_limited(path: &Path) -> Option<DynamicImage> {
    let mut reader = ImageReader::open(path).ok()?.with_guessed_format().ok()?;
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(MAX_PIXELS * 8);
    reader.limits(limits);
    reader.decode().ok()
}

/// A sheet of `pictures` (keeper first), `tile` pixels per picture.
pub fn sheet(pictures: &[PathBuf], tile: u32) -> RgbImage {
    let cols = pictures.len().clamp(1, PER_ROW) as u32;
    let rows = pictures.len().div_ceil(PER_ROW).max(1) as u32;
    let cell = tile + 2 * FRAME;
    let mut out = RgbImage::from_pixel(cols * cell, rows * cell, BACKGROUND);
    for (i, path) in pictures.iter().enumerate() {
        let (cx, cy) = ((i % PER_ROW) as u32 * cell, (i / PER_ROW) as u32 * cell);
        let frame = if i == 0 { KEEPER } else { OTHER };
        for y in 0..cell {
            for x in 0..cell {
                if x < FRAME || y < FRAME || x >= cell - FRAME || y >= cell - FRAME {
                    out.put_pixel(cx + x, cy + y, frame);
                }
            }
        }
        let Some(img) = open_limited(path) else {
            continue;
        };
        let thumb = img.thumbnail(tile, tile).to_rgb8();
        let (ox, oy) = (
            cx + FRAME + (tile - thumb.width().min(tile)) / 2,
            cy + FRAME + (tile - thumb.height().min(tile)) / 2,
        );
        image::imageops::replace(&mut out, &thumb, i64::from(ox), i64::from(oy));
    }
    out
}

/// Encodes a sheet as a small JPEG for a tool result.
pub fn preview_jpeg(sheet: &RgbImage) -> Option<Vec<u8>> {
    let mut out = Cursor::new(Vec::new());
    let encoder = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 80);
    sheet.write_with_encoder(encoder).ok()?;
    Some(out.into_inner())
}

/// What [`write_contact_sheets`] made.
#[derive(Debug, Default)]
pub struct Sheets {
    /// Small JPEG previews of the first groups, for the tool result.
    pub previews: Vec<Vec<u8>>,
    /// Why sheets are missing, when they are.
    pub note: Option<String>,
}

/// Writes one PNG sheet per group (up to `max_groups`) and records each
/// sheet's path in its group; returns previews of the first `max_previews`.
pub fn write_contact_sheets(
    report: &mut DuplicateReport,
    workspace: &Workspace,
    max_groups: usize,
    max_previews: usize,
) -> Sheets {
    let mut sheets = Sheets::default();
    if report.groups.is_empty() {
        return sheets;
    }
    let base = workspace.work_dir().join("duplicates");
    let mut folder = base.join(clock::stamp(clock::unix_now()));
    let mut n = 2;
    while folder.exists() {
        folder = base.join(format!("{}-{n}", clock::stamp(clock::unix_now())));
        n += 1;
    }
    for group in report.groups.iter_mut().take(max_groups) {
        let paths: Vec<PathBuf> = group
            .members
            .iter()
            .map(|m| workspace.root().join(&m.path))
            .collect();
        let full = sheet(&paths, SHEET_TILE);
        let mut png = Cursor::new(Vec::new());
        if full.write_to(&mut png, ImageFormat::Png).is_err() {
            continue;
        }
        let file = folder.join(format!("group-{:03}.png", group.id));
        match crate::studio::write_atomic(&file, png.get_ref()) {
            Ok(()) => group.contact_sheet = Some(workspace.display_path(&file)),
            Err(e) => {
                sheets.note = Some(format!("contact sheets could not be written: {e}"));
                break;
            }
        }
        if sheets.previews.len() < max_previews {
            let small = sheet(&paths, PREVIEW_TILE);
            if let Some(jpeg) = preview_jpeg(&small) {
                sheets.previews.push(jpeg);
            }
        }
    }
    if report.groups.len() > max_groups && sheets.note.is_none() {
        sheets.note = Some(format!(
            "contact sheets were made for the first {max_groups} of {} groups",
            report.groups.len()
        ));
    }
    sheets
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataset::dedup::{DuplicateOptions, find_duplicates};
    use crate::dataset::dedup_bench::{base_picture, encode};
    use crate::studio::NoProgress;

    #[test]
    fn one_sheet_per_group_with_every_member() {
        let dir = tempfile::tempdir().unwrap();
        let ws = Workspace::open(dir.path()).unwrap();
        let pics = ws.root().join("pics");
        std::fs::create_dir_all(&pics).unwrap();
        let img = DynamicImage::ImageRgb8(base_picture(1, 300));
        std::fs::write(
            pics.join("a.png"),
            encode(&img, ImageFormat::Png, 95).unwrap(),
        )
        .unwrap();
        std::fs::write(
            pics.join("a-small.jpg"),
            encode(&img.thumbnail(150, 150), ImageFormat::Jpeg, 80).unwrap(),
        )
        .unwrap();
        std::fs::write(
            pics.join("a-flip.png"),
            encode(&img.fliph(), ImageFormat::Png, 95).unwrap(),
        )
        .unwrap();
        let other = DynamicImage::ImageRgb8(base_picture(2, 300));
        std::fs::write(
            pics.join("b.png"),
            encode(&other, ImageFormat::Png, 95).unwrap(),
        )
        .unwrap();
        std::fs::write(pics.join("broken.png"), b"not a picture").unwrap();

        let mut report =
            find_duplicates(&pics, &ws, &DuplicateOptions::default(), &NoProgress).unwrap();
        assert_eq!(report.groups.len(), 1);
        let sheets = write_contact_sheets(&mut report, &ws, 10, 5);
        let path = ws
            .root()
            .join(report.groups[0].contact_sheet.as_ref().unwrap());
        let png = image::open(&path).unwrap();
        let cell = SHEET_TILE + 2 * FRAME;
        assert_eq!((png.width(), png.height()), (3 * cell, cell));
        // The keeper's frame is green, the others' orange.
        assert_eq!(png.to_rgb8().get_pixel(1, 1), &KEEPER);
        assert_eq!(png.to_rgb8().get_pixel(cell + 1, 1), &OTHER);
        assert_eq!(sheets.previews.len(), 1);
        assert!(image::load_from_memory(&sheets.previews[0]).is_ok());
        assert!(sheets.note.is_none());
    }

    #[test]
    fn undecodable_members_get_a_dark_tile() {
        let s = sheet(
            &[PathBuf::from("/nowhere.png"), PathBuf::from("/nope.jpg")],
            32,
        );
        assert_eq!(s.dimensions(), (2 * (32 + 2 * FRAME), 32 + 2 * FRAME));
        assert_eq!(s.get_pixel(20, 20), &BACKGROUND);
    }
}
