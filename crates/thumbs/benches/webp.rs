//! How fast WebPs become thumbnails: our readers (VP8 luma for lossy, our
//! VP8L decoder for lossless) against a full decode through the `image` crate
//! and through libwebp itself, measured in the same run on the same files,
//! with how far our thumbnails are from the full decode's.
//!
//! `cargo bench -p thumbs --bench webp` (add `-- --count N` for another
//! number of pictures per set). Under `cargo test` it runs a few small
//! pictures, to show it still works.

use std::time::Instant;

use image::{DynamicImage, ImageFormat, RgbImage};
use libwebp_sys as webp;
use thumbs::synth::{Rng, base_picture};
use thumbs::{JpegDecode, Limits, Options, Thumbnails, read, thumbnails_of};

/// How the bench's files are written.
#[derive(Clone, Copy)]
enum Writer {
    /// libwebp, lossy, quality 90.
    Lossy,
    /// libwebp, lossless, default effort.
    LibwebpLossless,
    /// The `image` crate (image-webp), lossless: the duplicates bench's WebPs.
    ImageLossless,
}

/// libwebp's one-call encoders.
fn encode(img: &RgbImage, writer: Writer) -> Vec<u8> {
    if let Writer::ImageLossless = writer {
        let mut out = std::io::Cursor::new(Vec::new());
        DynamicImage::ImageRgb8(img.clone())
            .write_to(&mut out, ImageFormat::WebP)
            .expect("image writes WebP");
        return out.into_inner();
    }
    let (w, h) = (img.width() as i32, img.height() as i32);
    let mut out = std::ptr::null_mut();
    // SAFETY: the pixels are w × h × 3 bytes with stride 3w; libwebp
    // allocates the output, which is copied and then freed.
    unsafe {
        let pixels = img.as_raw().as_ptr();
        let size = match writer {
            Writer::Lossy => webp::WebPEncodeRGB(pixels, w, h, 3 * w, 90.0, &mut out),
            _ => webp::WebPEncodeLosslessRGB(pixels, w, h, 3 * w, &mut out),
        };
        assert!(size > 0 && !out.is_null(), "libwebp could not encode");
        let bytes = std::slice::from_raw_parts(out, size).to_vec();
        webp::WebPFree(out.cast());
        bytes
    }
}

/// libwebp's full RGB decode, made into thumbnails as every decoded picture is.
fn libwebp_thumbs(file: &[u8]) -> Thumbnails {
    let (mut w, mut h) = (0, 0);
    // SAFETY: libwebp returns w × h × 3 bytes (or null), copied then freed.
    unsafe {
        let rgb = webp::WebPDecodeRGB(file.as_ptr(), file.len(), &mut w, &mut h);
        assert!(!rgb.is_null(), "libwebp could not decode");
        let pixels = std::slice::from_raw_parts(rgb, (w * h * 3) as usize).to_vec();
        webp::WebPFree(rgb.cast());
        thumbnails_of(&DynamicImage::ImageRgb8(
            RgbImage::from_raw(w as u32, h as u32, pixels).expect("sizes agree"),
        ))
    }
}

/// Milliseconds per file of `thumbs` over `files`, best of three passes.
fn per_file(files: &[Vec<u8>], mut thumbs: impl FnMut(&[u8]) -> Thumbnails) -> f64 {
    (0..3)
        .map(|_| {
            let start = Instant::now();
            for file in files {
                std::hint::black_box(thumbs(file));
            }
            start.elapsed().as_secs_f64() * 1000.0 / files.len() as f64
        })
        .fold(f64::INFINITY, f64::min)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let benching = args.iter().any(|a| a == "--bench");
    let count = args
        .iter()
        .position(|a| a == "--count")
        .and_then(|i| args.get(i + 1)?.parse().ok())
        .unwrap_or(if benching { 100 } else { 3 });
    let sizes: &[u32] = if benching { &[512, 1024] } else { &[96] };
    println!(
        "WebP thumbnails, one thread, {count} pictures per set (lossy: libwebp quality 90)\n\
         {:<27} {:>5} {:>8} {:>11} {:>9} {:>7} {:>13} {:>10} {:>17}",
        "pictures",
        "px",
        "KB/file",
        "image-webp",
        "libwebp",
        "ours",
        "× image-webp",
        "× libwebp",
        "grey off (max/mean)"
    );
    let sets = [
        ("lossy, drawn", Writer::Lossy, 0u32),
        ("lossy, grainy", Writer::Lossy, 24),
        ("lossless (libwebp), drawn", Writer::LibwebpLossless, 0),
        ("lossless (image), drawn", Writer::ImageLossless, 0),
    ];
    for &size in sizes {
        for (name, writer, grain) in sets {
            let files: Vec<Vec<u8>> = (0..count)
                .map(|i| {
                    let mut img = base_picture(1000 + i as u64, size);
                    if grain > 0 {
                        // Film-grain-like noise: many more tokens per block.
                        let mut rng = Rng::new(i as u64);
                        for px in img.pixels_mut() {
                            for c in &mut px.0 {
                                let n = rng.below(2 * grain + 1) as i32 - grain as i32;
                                *c = (i32::from(*c) + n).clamp(0, 255) as u8;
                            }
                        }
                    }
                    encode(&img, writer)
                })
                .collect();
            let options = Options {
                jpeg: JpegDecode::DcOnly,
                colour: false,
                limits: Limits {
                    max_side: 30_000,
                    max_pixels: 120_000_000,
                },
            };
            let ours = |f: &[u8]| read(f, options).expect("our reader reads it").thumbnails;
            let through_image =
                |f: &[u8]| thumbnails_of(&image::load_from_memory(f).expect("image decodes it"));
            // Largest difference of one cell, in grey levels (0-255).
            let off: Vec<f32> = files
                .iter()
                .map(|f| {
                    let (a, b) = (ours(f), through_image(f));
                    a.full
                        .iter()
                        .chain(&a.centre)
                        .zip(b.full.iter().chain(&b.centre))
                        .map(|(x, y)| (x - y).abs())
                        .fold(0.0, f32::max)
                })
                .collect();
            let t_image = per_file(&files, through_image);
            let t_libwebp = per_file(&files, libwebp_thumbs);
            let t_ours = per_file(&files, ours);
            let kb = files.iter().map(Vec::len).sum::<usize>() as f64 / 1024.0 / count as f64;
            println!(
                "{:<27} {:>5} {:>8.0} {:>8.2} ms {:>6.2} ms {:>4.2} ms {:>12.1}× {:>9.1}× {:>9.2} / {:.2}",
                name,
                size,
                kb,
                t_image,
                t_libwebp,
                t_ours,
                t_image / t_ours,
                t_libwebp / t_ours,
                off.iter().copied().fold(0.0, f32::max),
                off.iter().sum::<f32>() / count as f32,
            );
            // Lossless pixels are exact, so the thumbnails are equal.
            if !matches!(writer, Writer::Lossy) {
                assert!(
                    off.iter().all(|&d| d == 0.0),
                    "a thumbnail is off the full decode's: {off:?}"
                );
            }
        }
    }
}
