//! Synthetic pictures for tests, benchmarks and the bundled example: smooth,
//! photo-like fields of colour (a random low-resolution grid, bilinearly
//! enlarged, with a little grain), deterministic for a seed. They compress and
//! decode like real pictures, which flat colour would not.

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
