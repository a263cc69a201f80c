//! The labelled contact sheet of an evaluation grid: one block per
//! checkpoint, a row per prompt and a column per LoRA weight, with the
//! prompt labels on the left, the weights on top and the checkpoint's name
//! above its block. Drawn with the `image` crate and our bitmap [`font`].
//!
//! [`Layout`] says where every cell is, so a test (or a caller) can find the
//! picture of a prompt and a weight on the sheet.

use std::path::PathBuf;

use image::{Rgb, RgbImage};

use super::preview;
use crate::studio::font::{self, draw_text, fit, line_height, text_width};

const BACKGROUND: Rgb<u8> = Rgb([24, 24, 28]);
const TEXT: Rgb<u8> = Rgb([235, 235, 235]);
const DIM: Rgb<u8> = Rgb([150, 150, 160]);
const EMPTY: Rgb<u8> = Rgb([60, 40, 40]);
/// Font scale of the labels.
const SCALE: u32 = 2;
const MARGIN: u32 = 12;
/// Space between cells.
const GAP: u32 = 6;

/// One block of the grid (one checkpoint).
#[derive(Debug, Clone)]
pub struct Block {
    /// Shown above the block.
    pub title: String,
    /// Row labels (prompts).
    pub rows: Vec<String>,
    /// Column labels (weights).
    pub columns: Vec<String>,
    /// `cells[row][column]`: the picture, or `None` where the render failed.
    pub cells: Vec<Vec<Option<PathBuf>>>,
}

/// Where everything is on a sheet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    pub width: u32,
    pub height: u32,
    /// Side of a cell's picture area.
    pub cell: u32,
    /// Width of the row-label column.
    pub label_width: u32,
    title_height: u32,
    block_title_height: u32,
    header_height: u32,
    /// Top of each block.
    block_tops: Vec<u32>,
}

impl Layout {
    /// The picture area of a cell: `(x, y, side)`.
    pub fn cell_origin(&self, block: usize, row: usize, column: usize) -> Option<(u32, u32)> {
        let top = *self.block_tops.get(block)?;
        let x = MARGIN + self.label_width + column as u32 * (self.cell + GAP);
        let y = top + self.block_title_height + self.header_height + row as u32 * (self.cell + GAP);
        Some((x, y))
    }
}

fn band(scale: u32) -> u32 {
    line_height(scale) + 2 * GAP + 4
}

/// Measures a sheet of `blocks` with `cell`-pixel pictures.
pub fn layout(title: &str, blocks: &[Block], cell: u32) -> Layout {
    let longest = blocks
        .iter()
        .flat_map(|b| b.rows.iter())
        .map(|r| text_width(r, SCALE))
        .max()
        .unwrap_or(0);
    let label_width = (longest + 2 * GAP).clamp(80, 260);
    let columns = blocks
        .iter()
        .map(|b| b.columns.len())
        .max()
        .unwrap_or(1)
        .max(1) as u32;
    let title_height = if title.is_empty() { 0 } else { band(SCALE) };
    let block_title_height = band(SCALE);
    let header_height = band(SCALE);
    let mut y = MARGIN + title_height;
    let mut block_tops = Vec::new();
    for b in blocks {
        block_tops.push(y);
        y += block_title_height + header_height + b.rows.len() as u32 * (cell + GAP) + GAP;
    }
    let width = MARGIN * 2 + label_width + columns * (cell + GAP);
    let min_title = text_width(title, SCALE) + 2 * MARGIN;
    Layout {
        width: width.max(min_title),
        height: y + MARGIN,
        cell,
        label_width,
        title_height,
        block_title_height,
        header_height,
        block_tops,
    }
}

/// Draws the sheet; pictures that cannot be read show as an empty tile
/// marked `failed`.
pub fn draw(title: &str, blocks: &[Block], cell: u32) -> (RgbImage, Layout) {
    let lay = layout(title, blocks, cell);
    let mut img = RgbImage::from_pixel(lay.width, lay.height, BACKGROUND);
    if !title.is_empty() {
        let t = fit(title, lay.width - 2 * MARGIN, SCALE);
        draw_text(&mut img, MARGIN, MARGIN + GAP, &t, SCALE, TEXT);
    }
    let text_dy = (cell.saturating_sub(line_height(SCALE))) / 2;
    for (bi, block) in blocks.iter().enumerate() {
        let top = lay.block_tops[bi];
        let name = fit(&block.title, lay.width - 2 * MARGIN, SCALE);
        draw_text(&mut img, MARGIN, top + GAP, &name, SCALE, TEXT);
        for (ci, label) in block.columns.iter().enumerate() {
            let (x, _) = lay.cell_origin(bi, 0, ci).unwrap_or((0, 0));
            let label = fit(label, cell, SCALE);
            let dx = (cell.saturating_sub(text_width(&label, SCALE))) / 2;
            draw_text(
                &mut img,
                x + dx,
                top + lay.block_title_height + GAP,
                &label,
                SCALE,
                DIM,
            );
        }
        for (ri, label) in block.rows.iter().enumerate() {
            let (_, y) = lay.cell_origin(bi, ri, 0).unwrap_or((0, 0));
            let label = fit(label, lay.label_width - GAP, SCALE);
            draw_text(&mut img, MARGIN, y + text_dy, &label, SCALE, DIM);
            for ci in 0..block.columns.len() {
                let Some((x, y)) = lay.cell_origin(bi, ri, ci) else {
                    continue;
                };
                let picture = block
                    .cells
                    .get(ri)
                    .and_then(|r| r.get(ci))
                    .and_then(|p| p.as_deref())
                    .and_then(preview::open);
                match picture {
                    Some(p) => {
                        let thumb = p.thumbnail(cell, cell).to_rgb8();
                        let ox = x + (cell - thumb.width().min(cell)) / 2;
                        let oy = y + (cell - thumb.height().min(cell)) / 2;
                        image::imageops::replace(&mut img, &thumb, i64::from(ox), i64::from(oy));
                    }
                    None => {
                        for py in y..y + cell {
                            for px in x..x + cell {
                                img.put_pixel(px, py, EMPTY);
                            }
                        }
                        let w = text_width("failed", SCALE);
                        draw_text(
                            &mut img,
                            x + cell.saturating_sub(w) / 2,
                            y + text_dy,
                            "failed",
                            SCALE,
                            TEXT,
                        );
                    }
                }
            }
        }
    }
    (img, lay)
}

/// Font metrics re-exported for callers that size labels.
pub use font::GLYPH_H;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_cell_holds_its_picture_and_labels_sit_outside_the_cells() {
        let dir = tempfile::tempdir().unwrap();
        let colours = [
            [200u8, 30, 30],
            [30, 200, 30],
            [30, 30, 200],
            [200, 200, 30],
        ];
        let mut cells = vec![vec![None, None], vec![None, None]];
        for (i, c) in colours.iter().enumerate() {
            let path = dir.path().join(format!("{i}.png"));
            RgbImage::from_pixel(64, 64, Rgb(*c)).save(&path).unwrap();
            cells[i / 2][i % 2] = Some(path);
        }
        cells[1][1] = Some(dir.path().join("missing.png"));
        let block = Block {
            title: "sd_xl_base_1.0.safetensors".into(),
            rows: vec!["portrait".into(), "landscape".into()],
            columns: vec!["0.3".into(), "1.0".into()],
            cells,
        };
        let (img, lay) = draw("ink-fox", &[block.clone(), block], 48);
        assert_eq!((img.width(), img.height()), (lay.width, lay.height));
        for b in 0..2 {
            for (i, c) in colours.iter().take(3).enumerate() {
                let (x, y) = lay.cell_origin(b, i / 2, i % 2).unwrap();
                assert_eq!(
                    img.get_pixel(x + 24, y + 24),
                    &Rgb(*c),
                    "block {b} cell {i}"
                );
            }
            let (x, y) = lay.cell_origin(b, 1, 1).unwrap();
            assert_eq!(img.get_pixel(x + 1, y + 1), &EMPTY);
        }
        // Row labels are drawn left of the first column.
        let (x0, y0) = lay.cell_origin(0, 0, 0).unwrap();
        let label_pixels = (y0..y0 + 48)
            .flat_map(|y| (MARGIN..x0).map(move |x| (x, y)))
            .filter(|&(x, y)| img.get_pixel(x, y) == &DIM)
            .count();
        assert!(label_pixels > 20);
        assert!(lay.cell_origin(2, 0, 0).is_none());
    }
}
