//! Synthetic pictures for tests and benchmarks, deterministic for a seed:
//! [`smooth_picture`], photo-like fields of colour (a random low-resolution
//! grid, bilinearly enlarged, with a little grain), and [`base_picture`],
//! multi-octave noise with a few shapes, detailed at every scale. Both
//! compress and decode like real pictures, which flat colour would not.

use image::{Rgb, RgbImage};

/// A small deterministic random generator (xorshift64*), so fixtures need no
/// extra dependency and are the same on every machine.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u32) -> u32 {
        (self.next_u64() % u64::from(n.max(1))) as u32
    }
}

/// A smooth random picture of `width` × `height`.
pub fn smooth_picture(seed: u64, width: u32, height: u32) -> RgbImage {
    let mut rng = Rng::new(seed);
    const GRID: usize = 6;
    let mut grid = [[[0f32; 3]; GRID]; GRID];
    for row in grid.iter_mut() {
        for cell in row.iter_mut() {
            for c in cell.iter_mut() {
                *c = rng.below(256) as f32;
            }
        }
    }
    let sx = (GRID - 1) as f32 / width.max(2).saturating_sub(1) as f32;
    let sy = (GRID - 1) as f32 / height.max(2).saturating_sub(1) as f32;
    let mut noise = Rng::new(seed ^ 0xA5A5);
    RgbImage::from_fn(width, height, |x, y| {
        let fx = x as f32 * sx;
        let fy = y as f32 * sy;
        let (x0, y0) = (fx as usize, fy as usize);
        let (x1, y1) = ((x0 + 1).min(GRID - 1), (y0 + 1).min(GRID - 1));
        let (tx, ty) = (fx - x0 as f32, fy - y0 as f32);
        let grain = (noise.below(9) as f32) - 4.0;
        let mut px = [0u8; 3];
        for (c, out) in px.iter_mut().enumerate() {
            let top = grid[y0][x0][c] * (1.0 - tx) + grid[y0][x1][c] * tx;
            let bottom = grid[y1][x0][c] * (1.0 - tx) + grid[y1][x1][c] * tx;
            *out = (top * (1.0 - ty) + bottom * ty + grain).clamp(0.0, 255.0) as u8;
        }
        Rgb(px)
    })
}

/// Encodes a picture in `format` (JPEG at quality 90).
pub fn encode(
    image: &image::DynamicImage,
    format: image::ImageFormat,
) -> Result<Vec<u8>, image::ImageError> {
    let mut out = std::io::Cursor::new(Vec::new());
    if format == image::ImageFormat::Jpeg {
        let encoder = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 90);
        image.to_rgb8().write_with_encoder(encoder)?;
    } else {
        image.write_to(&mut out, format)?;
    }
    Ok(out.into_inner())
}

/// Bilinear sample of a `res`×`res` grid of RGB values at (`fx`, `fy`) in grid units.
fn sample_grid(grid: &[[f32; 3]], res: usize, fx: f32, fy: f32) -> [f32; 3] {
    let x0 = (fx as usize).min(res - 1);
    let y0 = (fy as usize).min(res - 1);
    let (x1, y1) = ((x0 + 1).min(res - 1), (y0 + 1).min(res - 1));
    let (tx, ty) = (fx - x0 as f32, fy - y0 as f32);
    let mut out = [0f32; 3];
    for (c, o) in out.iter_mut().enumerate() {
        let top = grid[y0 * res + x0][c] * (1.0 - tx) + grid[y0 * res + x1][c] * tx;
        let bottom = grid[y1 * res + x0][c] * (1.0 - tx) + grid[y1 * res + x1][c] * tx;
        *o = top * (1.0 - ty) + bottom * ty;
    }
    out
}

/// Smooth multi-octave colour noise, contrast-stretched.
pub fn noise_background(rng: &mut Rng, size: u32) -> RgbImage {
    const OCTAVES: [(usize, f32); 4] = [(4, 1.0), (8, 0.5), (16, 0.25), (32, 0.12)];
    let grids: Vec<(usize, Vec<[f32; 3]>)> = OCTAVES
        .iter()
        .map(|&(res, _)| {
            let g = (0..res * res)
                .map(|_| [0, 1, 2].map(|_| rng.below(256) as f32))
                .collect();
            (res, g)
        })
        .collect();
    let total: f32 = OCTAVES.iter().map(|o| o.1).sum();
    let n = size as usize;
    let mut acc = vec![[0f32; 3]; n * n];
    let (mut lo, mut hi) = (f32::MAX, f32::MIN);
    for y in 0..n {
        for x in 0..n {
            let mut v = [0f32; 3];
            for ((res, grid), (_, amp)) in grids.iter().zip(OCTAVES.iter()) {
                let scale = (*res - 1) as f32 / (n.max(2) - 1) as f32;
                let s = sample_grid(grid, *res, x as f32 * scale, y as f32 * scale);
                for c in 0..3 {
                    v[c] += amp * s[c] / total;
                }
            }
            for c in v {
                lo = lo.min(c);
                hi = hi.max(c);
            }
            acc[y * n + x] = v;
        }
    }
    let k = 255.0 / (hi - lo).max(1.0);
    RgbImage::from_fn(size, size, |x, y| {
        let v = acc[y as usize * n + x as usize];
        Rgb(v.map(|c| ((c - lo) * k).clamp(0.0, 255.0) as u8))
    })
}

/// Draws `count` random filled ellipses, rectangles and thick lines.
pub fn draw_shapes(rng: &mut Rng, img: &mut RgbImage, count: u32) {
    let (w, h) = img.dimensions();
    for _ in 0..count {
        let x0 = rng.below(w) as f32;
        let y0 = rng.below(h) as f32;
        let x1 = x0 + (w / 16 + rng.below(w / 3 - w / 16)) as f32;
        let y1 = y0 + (h / 16 + rng.below(h / 3 - h / 16)) as f32;
        let colour = Rgb([
            rng.below(256) as u8,
            rng.below(256) as u8,
            rng.below(256) as u8,
        ]);
        let kind = rng.below(3);
        let thickness = 3.0 + rng.below(12) as f32;
        let (cx, cy, rx, ry) = (
            (x0 + x1) / 2.0,
            (y0 + y1) / 2.0,
            (x1 - x0) / 2.0,
            (y1 - y0) / 2.0,
        );
        let (bx0, by0) = (
            (x0 - thickness).max(0.0) as u32,
            (y0 - thickness).max(0.0) as u32,
        );
        let (bx1, by1) = (
            ((x1 + thickness) as u32).min(w),
            ((y1 + thickness) as u32).min(h),
        );
        for y in by0..by1 {
            for x in bx0..bx1 {
                let (px, py) = (x as f32 + 0.5, y as f32 + 0.5);
                let inside = match kind {
                    0 => ((px - cx) / rx).powi(2) + ((py - cy) / ry).powi(2) <= 1.0,
                    1 => px >= x0 && px <= x1 && py >= y0 && py <= y1,
                    _ => {
                        let (dx, dy) = (x1 - x0, y1 - y0);
                        let t = (((px - x0) * dx + (py - y0) * dy) / (dx * dx + dy * dy))
                            .clamp(0.0, 1.0);
                        let (qx, qy) = (x0 + t * dx - px, y0 + t * dy - py);
                        (qx * qx + qy * qy).sqrt() <= thickness / 2.0
                    }
                };
                if inside {
                    img.put_pixel(x, y, colour);
                }
            }
        }
    }
}

/// A base picture: noise background plus 2–7 shapes.
pub fn base_picture(seed: u64, size: u32) -> RgbImage {
    let mut rng = Rng::new(seed);
    let mut img = noise_background(&mut rng, size);
    let count = 2 + rng.below(6);
    draw_shapes(&mut rng, &mut img, count);
    img
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_not_flat() {
        let a = smooth_picture(7, 64, 48);
        assert_eq!(a, smooth_picture(7, 64, 48));
        assert_ne!(a, smooth_picture(8, 64, 48));
        let first = a.get_pixel(0, 0);
        assert!(
            a.pixels()
                .any(|p| (i32::from(p.0[0]) - i32::from(first.0[0])).abs() > 20)
        );
    }
}
