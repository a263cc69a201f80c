//! Contact sheets: one small picture per duplicate group with every member
//! side by side, so the artist can see what would be kept and what set
//! aside.
//!
//! Members appear in the group's order (keeper first) on tiles of equal
//! size, each picture fitted inside its tile; the keeper's tile has a green
//! frame, the others an orange one. A sheet is drawn from the colour
//! thumbnails the hash pass keeps ([`super::phash::ColourThumb`]), so no
//! picture is decoded twice; only members without one (hashes from the
//! cache, lossy WebPs, JPEGs read in grey) are decoded again, and one that
//! cannot be decoded shows as a dark tile.
//!
//! A sheet is a small JPEG named after its group's content (the members'
//! BLAKE3 hashes, in order), in one folder per searched folder,
//! `workspace/duplicates/<folder>/`. While a group is unchanged its sheet is
//! reused, not drawn again; sheets of groups no longer shown are removed, so
//! the folder holds the sheets of the latest search and nothing more. The
//! same files are the previews put into tool results.

use std::collections::HashSet;
use std::io::Cursor;
use std::path::{Path, PathBuf};

use image::{Rgb, RgbImage};
use rayon::prelude::*;

use super::phash::{COLOUR_SIDE, ColourThumb};
use crate::studio::Workspace;

/// Tile side, in pixels: the colour thumbnails' longest side.
pub const TILE: u32 = COLOUR_SIDE;
/// Most members shown per row.
const PER_ROW: usize = 6;
/// Frame width around each tile.
const FRAME: u32 = 3;
/// JPEG quality of the sheets: small enough for a tool result (a sheet of
/// six is about 6 KB).
const QUALITY: u8 = 80;
/// Changes when sheets are drawn differently, so old ones are not reused.
const LAYOUT: &str = "sheet/tile48/frame3/q80/1";
const KEEPER: Rgb<u8> = Rgb([46, 160, 67]);
const OTHER: Rgb<u8> = Rgb([230, 126, 34]);
const BACKGROUND: Rgb<u8> = Rgb([32, 32, 32]);

/// One picture on a sheet.
#[derive(Debug, Clone, Copy)]
pub struct SheetMember<'a> {
    /// BLAKE3 of the file (names the sheet).
    pub content: &'a str,
    /// Where to decode it from when it has no thumbnail.
    pub path: &'a Path,
    /// Its colour thumbnail from the hash pass, when kept.
    pub thumb: Option<&'a ColourThumb>,
}

/// What a sheet stands for: its members' content, in order, and the layout.
pub fn sheet_key(members: &[SheetMember]) -> String {
    let mut h = blake3::Hasher::new();
    h.update(LAYOUT.as_bytes());
    for m in members {
        h.update(b"\n");
        h.update(m.content.as_bytes());
    }
    h.finalize().to_hex()[..16].to_string()
}

/// The thumbnail of a member: kept from the hash pass, or decoded now.
fn thumbnail_of(member: &SheetMember) -> Option<ColourThumb> {
    if let Some(t) = member.thumb {
        return Some(t.clone());
    }
    let bytes = std::fs::read(member.path).ok()?;
    super::phash::colour_thumbnail(&bytes)
}

/// Draws a sheet of `members` (keeper first).
pub fn draw_sheet(members: &[SheetMember]) -> RgbImage {
    let cols = members.len().clamp(1, PER_ROW) as u32;
    let rows = members.len().div_ceil(PER_ROW).max(1) as u32;
    let cell = TILE + 2 * FRAME;
    let mut out = RgbImage::from_pixel(cols * cell, rows * cell, BACKGROUND);
    for (i, member) in members.iter().enumerate() {
        let (cx, cy) = ((i % PER_ROW) as u32 * cell, (i / PER_ROW) as u32 * cell);
        let frame = if i == 0 { KEEPER } else { OTHER };
        for y in 0..cell {
            for x in 0..cell {
                if x < FRAME || y < FRAME || x >= cell - FRAME || y >= cell - FRAME {
                    out.put_pixel(cx + x, cy + y, frame);
                }
            }
        }
        let Some(thumb) = thumbnail_of(member) else {
            continue;
        };
        let (tw, th) = (thumb.width.min(TILE), thumb.height.min(TILE));
        let (ox, oy) = (cx + FRAME + (TILE - tw) / 2, cy + FRAME + (TILE - th) / 2);
        for y in 0..th {
            for x in 0..tw {
                let at = 3 * (y * thumb.width + x) as usize;
                if let Some(px) = thumb.rgb.get(at..at + 3) {
                    out.put_pixel(ox + x, oy + y, Rgb([px[0], px[1], px[2]]));
                }
            }
        }
    }
    out
}

/// Encodes a sheet as the small JPEG written to disk and shown in results.
pub fn encode_jpeg(sheet: &RgbImage) -> Option<Vec<u8>> {
    let mut out = Cursor::new(Vec::new());
    let encoder = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, QUALITY);
    sheet.write_with_encoder(encoder).ok()?;
    Some(out.into_inner())
}

/// The folder of the sheets of one searched folder (`shown_dir`, relative
/// to the workspace root).
pub fn sheets_folder(workspace: &Workspace, shown_dir: &str) -> PathBuf {
    let name: String = match shown_dir {
        "." | "" => "_workspace_root".into(),
        d => d
            .chars()
            .map(|c| {
                if c.is_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '-'
                }
            })
            .collect(),
    };
    workspace.work_dir().join("duplicates").join(name)
}

/// A sheet's file name: the keeper's name (to find it by eye) and the key.
fn sheet_file_name(keeper: &Path, key: &str) -> String {
    let stem: String = keeper
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .take(40)
        .collect();
    format!("{stem}-{key}.jpg")
}

/// Whether `name` is a sheet this module wrote (`…-<16 hex>.jpg`).
fn is_sheet_name(name: &str) -> bool {
    name.strip_suffix(".jpg")
        .and_then(|s| s.rsplit_once('-'))
        .is_some_and(|(_, key)| key.len() == 16 && key.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// A sheet, and its bytes when it is one of the previews.
type SheetAndPreview = (Sheet, Option<Vec<u8>>);

/// One group's sheet, as written or found.
#[derive(Debug, Clone)]
pub struct Sheet {
    /// The JPEG on disk.
    pub path: PathBuf,
    /// It was already there (the group is unchanged): nothing was drawn.
    pub reused: bool,
}

/// What [`write_sheets`] did.
#[derive(Debug, Default)]
pub struct Sheets {
    /// One per group, in order; `None` where it could not be written.
    pub sheets: Vec<Option<Sheet>>,
    /// JPEG bytes of the first groups' sheets, for a tool result.
    pub previews: Vec<Vec<u8>>,
    /// Sheets drawn in this run (the others were reused).
    pub drawn: usize,
    /// Old sheets removed from the folder.
    pub removed: usize,
    /// Why sheets are missing, when they are.
    pub note: Option<String>,
}

/// Writes (or finds) a sheet per group of `groups` (each a list of members,
/// keeper first) in `folder`, returns the JPEG bytes of the first
/// `max_previews`, and removes the folder's other sheets.
pub fn write_sheets(groups: &[Vec<SheetMember>], folder: &Path, max_previews: usize) -> Sheets {
    let mut out = Sheets::default();
    if groups.is_empty() && !folder.exists() {
        return out;
    }
    if let Err(e) = std::fs::create_dir_all(folder) {
        out.note = Some(format!(
            "contact sheets could not be written in `{}`: {e}",
            folder.display()
        ));
        return out;
    }
    let made: Vec<Result<SheetAndPreview, String>> = groups
        .par_iter()
        .enumerate()
        .map(|(i, members)| {
            let key = sheet_key(members);
            let keeper = members.first().map_or(Path::new(""), |m| m.path);
            let path = folder.join(sheet_file_name(keeper, &key));
            if path.is_file() {
                let preview = if i < max_previews {
                    std::fs::read(&path).ok()
                } else {
                    None
                };
                if i >= max_previews || preview.is_some() {
                    return Ok((Sheet { path, reused: true }, preview));
                }
            }
            let jpeg = encode_jpeg(&draw_sheet(members))
                .ok_or_else(|| "a sheet could not be encoded".to_string())?;
            crate::studio::write_atomic(&path, &jpeg).map_err(|e| e.to_string())?;
            let preview = (i < max_previews).then_some(jpeg);
            Ok((
                Sheet {
                    path,
                    reused: false,
                },
                preview,
            ))
        })
        .collect();
    let mut keep = HashSet::new();
    for result in made {
        match result {
            Ok((sheet, preview)) => {
                if let Some(name) = sheet.path.file_name() {
                    keep.insert(name.to_os_string());
                }
                if !sheet.reused {
                    out.drawn += 1;
                }
                if let Some(p) = preview {
                    out.previews.push(p);
                }
                out.sheets.push(Some(sheet));
            }
            Err(e) => {
                out.note.get_or_insert_with(|| {
                    format!("some contact sheets could not be written: {e}")
                });
                out.sheets.push(None);
            }
        }
    }
    // Sheets of groups this search does not show: gone, so the folder never
    // grows past one search's sheets.
    if let Ok(entries) = std::fs::read_dir(folder) {
        for entry in entries.flatten() {
            let name = entry.file_name();
            if keep.contains(&name) || !is_sheet_name(&name.to_string_lossy()) {
                continue;
            }
            if std::fs::remove_file(entry.path()).is_ok() {
                out.removed += 1;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataset::dedup_bench::{base_picture, encode};
    use image::{DynamicImage, ImageFormat};

    fn thumb(seed: u64) -> ColourThumb {
        ColourThumb::of_image(&DynamicImage::ImageRgb8(base_picture(seed, 128)))
    }

    #[test]
    fn a_sheet_shows_every_member_framed_keeper_first() {
        let (a, b) = (thumb(1), thumb(2));
        let members = [
            SheetMember {
                content: "a",
                path: Path::new("/nowhere/a.png"),
                thumb: Some(&a),
            },
            SheetMember {
                content: "b",
                path: Path::new("/nowhere/b.png"),
                thumb: Some(&b),
            },
            SheetMember {
                content: "c",
                path: Path::new("/nowhere/c.png"),
                thumb: None,
            },
        ];
        let sheet = draw_sheet(&members);
        let cell = TILE + 2 * FRAME;
        assert_eq!(sheet.dimensions(), (3 * cell, cell));
        assert_eq!(sheet.get_pixel(1, 1), &KEEPER);
        assert_eq!(sheet.get_pixel(cell + 1, 1), &OTHER);
        // The first tile holds the keeper's thumbnail, pixel for pixel.
        let at = |x: u32, y: u32| &a.rgb[3 * (y * a.width + x) as usize..][..3];
        assert_eq!(sheet.get_pixel(FRAME + 10, FRAME + 20).0, at(10, 20));
        // A member that cannot be decoded is a dark tile.
        assert_eq!(sheet.get_pixel(2 * cell + cell / 2, cell / 2), &BACKGROUND);
    }

    #[test]
    fn a_member_without_a_thumbnail_is_decoded_from_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let img = DynamicImage::ImageRgb8(base_picture(3, 200));
        let file = dir.path().join("p.webp");
        std::fs::write(&file, encode(&img, ImageFormat::WebP, 95).unwrap()).unwrap();
        let member = SheetMember {
            content: "p",
            path: &file,
            thumb: None,
        };
        let drawn = thumbnail_of(&member).unwrap();
        assert_eq!(drawn, ColourThumb::of_image(&img));
    }

    #[test]
    fn sheet_names_are_recognised_and_keys_follow_the_members() {
        let a = thumb(1);
        let m = |content: &'static str| SheetMember {
            content,
            path: Path::new("x/keeper one.png"),
            thumb: Some(&a),
        };
        let key = sheet_key(&[m("a"), m("b")]);
        assert_ne!(key, sheet_key(&[m("b"), m("a")]), "order matters");
        assert_ne!(key, sheet_key(&[m("a"), m("b"), m("c")]));
        let name = sheet_file_name(Path::new("x/keeper one.png"), &key);
        assert!(name.starts_with("keeper-one-"), "{name}");
        assert!(is_sheet_name(&name));
        assert!(!is_sheet_name("holiday.jpg"));
        assert!(!is_sheet_name("notes-0123456789abcdef.txt"));
    }
}
