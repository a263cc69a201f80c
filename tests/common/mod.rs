//! Fixtures the tests make at run time: real picture files with known
//! problems, laid out in a workspace folder.
#![allow(dead_code)]

pub mod client;
pub mod fake_trainer;
pub mod native;
pub mod sshd;

use std::path::{Path, PathBuf};

use image::{DynamicImage, ImageFormat};
use thumbs::synth;

pub const TRIGGER: &str = "zkfox";

pub fn write(path: &Path, bytes: &[u8]) {
    if let Some(p) = path.parent() {
        std::fs::create_dir_all(p).unwrap();
    }
    std::fs::write(path, bytes).unwrap();
}

pub fn picture(seed: u64, w: u32, h: u32) -> DynamicImage {
    DynamicImage::ImageRgb8(synth::smooth_picture(seed, w, h))
}

pub fn encoded(img: &DynamicImage, format: ImageFormat) -> Vec<u8> {
    synth::encode(img, format).unwrap()
}

pub fn caption(dir: &Path, stem: &str, text: &str) {
    write(&dir.join(format!("{stem}.txt")), text.as_bytes());
}

/// `n` PNG pictures `p00.png`, `p01.png`… of `w` × `h` in `root/name`, from
/// seeds `seed`, `seed + 1`…, each with `caption` beside it when given.
pub fn pictures(
    root: &Path,
    name: &str,
    n: u64,
    (seed, w, h): (u64, u32, u32),
    caption: Option<&str>,
) {
    let dir = root.join(name);
    for i in 0..n {
        write(
            &dir.join(format!("p{i:02}.png")),
            &encoded(&picture(seed + i, w, h), ImageFormat::Png),
        );
        if let Some(text) = caption {
            self::caption(&dir, &format!("p{i:02}"), text);
        }
    }
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

fn png_chunk(kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
    let mut out = (data.len() as u32).to_be_bytes().to_vec();
    let mut body = kind.to_vec();
    body.extend_from_slice(data);
    out.extend_from_slice(&body);
    out.extend_from_slice(&crc32(&body).to_be_bytes());
    out
}

/// A 60-byte PNG that declares 100,000 × 100,000 pixels.
pub fn header_bomb_png() -> Vec<u8> {
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&100_000u32.to_be_bytes());
    ihdr.extend_from_slice(&100_000u32.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    png.extend(png_chunk(b"IHDR", &ihdr));
    png.extend(png_chunk(
        b"IDAT",
        &[0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01],
    ));
    png.extend(png_chunk(b"IEND", &[]));
    png
}

/// A CMYK JPEG, as print workflows export them.
pub fn cmyk_jpeg(w: u16, h: u16) -> Vec<u8> {
    let mut data = Vec::with_capacity(usize::from(w) * usize::from(h) * 4);
    for y in 0..h {
        for x in 0..w {
            data.extend_from_slice(&[(x % 200) as u8, (y % 200) as u8, 40, 10]);
        }
    }
    let mut out = Vec::new();
    jpeg_encoder::Encoder::new(&mut out, 90)
        .encode(&data, w, h, jpeg_encoder::ColorType::Cmyk)
        .unwrap();
    out
}

/// The zoo: one picture per problem the audit must name, plus good ones.
/// Returns the dataset folder (inside `root`).
pub fn problem_zoo(root: &Path) -> PathBuf {
    let d = root.join("zoo");
    let good = |name: &str, seed: u64, format: ImageFormat| {
        write(&d.join(name), &encoded(&picture(seed, 640, 576), format));
        let stem = Path::new(name)
            .file_stem()
            .unwrap()
            .to_str()
            .unwrap()
            .to_string();
        caption(
            &d,
            &stem,
            &format!("{TRIGGER}, a fox in snow, ink wash, picture {seed}"),
        );
    };
    good("good-1.png", 1, ImageFormat::Png);
    good("good-2.jpg", 2, ImageFormat::Jpeg);
    good("good-3.webp", 3, ImageFormat::WebP);

    let jpg = encoded(&picture(4, 640, 640), ImageFormat::Jpeg);
    write(&d.join("cut.jpg"), &jpg[..jpg.len() / 2]);
    caption(&d, "cut", &format!("{TRIGGER}, cut"));
    let png = encoded(&picture(5, 640, 640), ImageFormat::Png);
    write(&d.join("cut.png"), &png[..png.len() / 2]);
    caption(&d, "cut", &format!("{TRIGGER}, cut"));
    write(&d.join("empty.png"), b"");
    caption(&d, "empty", &format!("{TRIGGER}, empty"));
    write(&d.join("bomb.png"), &header_bomb_png());
    caption(&d, "bomb", &format!("{TRIGGER}, bomb"));
    write(&d.join("print.jpg"), &cmyk_jpeg(600, 600));
    caption(&d, "print", &format!("{TRIGGER}, print"));
    write(
        &d.join("grey.png"),
        &encoded(
            &DynamicImage::ImageLuma8(picture(6, 600, 600).to_luma8()),
            ImageFormat::Png,
        ),
    );
    caption(&d, "grey", &format!("{TRIGGER}, grey"));
    write(
        &d.join("deep.png"),
        &encoded(
            &DynamicImage::ImageRgb16(picture(7, 600, 600).to_rgb16()),
            ImageFormat::Png,
        ),
    );
    caption(&d, "deep", &format!("{TRIGGER}, deep"));
    let mut rgba = picture(8, 600, 600).to_rgba8();
    for x in 0..100 {
        rgba.put_pixel(x, 0, image::Rgba([0, 0, 0, 0]));
    }
    write(
        &d.join("cutout.png"),
        &encoded(&DynamicImage::ImageRgba8(rgba), ImageFormat::Png),
    );
    caption(&d, "cutout", &format!("{TRIGGER}, cutout"));
    write(
        &d.join("liar.jpg"),
        &encoded(&picture(9, 600, 600), ImageFormat::Png),
    );
    caption(&d, "liar", &format!("{TRIGGER}, liar"));
    write(
        &d.join("tiny.png"),
        &encoded(&picture(10, 120, 90), ImageFormat::Png),
    );
    caption(&d, "tiny", &format!("{TRIGGER}, tiny"));
    write(
        &d.join("strip.png"),
        &encoded(&picture(11, 2400, 600), ImageFormat::Png),
    );
    caption(&d, "strip", &format!("{TRIGGER}, strip"));

    write(
        &d.join("nocap.png"),
        &encoded(&picture(12, 600, 600), ImageFormat::Png),
    );
    write(
        &d.join("blankcap.png"),
        &encoded(&picture(13, 600, 600), ImageFormat::Png),
    );
    caption(&d, "blankcap", "  \n");
    write(
        &d.join("latin1.png"),
        &encoded(&picture(14, 600, 600), ImageFormat::Png),
    );
    write(&d.join("latin1.txt"), b"zkfox, caf\xe9 au lait");
    write(
        &d.join("untriggered.png"),
        &encoded(&picture(15, 600, 600), ImageFormat::Png),
    );
    caption(&d, "untriggered", "a fox in snow, ink wash");
    caption(&d, "orphan", &format!("{TRIGGER}, lonely caption"));
    write(&d.join("notes.md"), b"# my notes");
    d
}

/// A kohya layout: two subsets and one stray picture outside them.
pub fn kohya_set(root: &Path) -> PathBuf {
    let d = root.join("kohya");
    for (folder, n) in [("10_zkfox", 3u64), ("4_forest", 2)] {
        for i in 0..n {
            let sub = d.join(folder);
            write(
                &sub.join(format!("{i}.png")),
                &encoded(&picture(100 + i, 576, 576), ImageFormat::Png),
            );
            caption(&sub, &i.to_string(), &format!("{TRIGGER}, picture {i}"));
        }
    }
    write(
        &d.join("stray.png"),
        &encoded(&picture(200, 576, 576), ImageFormat::Png),
    );
    caption(&d, "stray", &format!("{TRIGGER}, stray"));
    d
}

/// A clean set: `n` good pictures with captions.
pub fn clean_set(root: &Path, n: u64) -> PathBuf {
    let d = root.join("clean");
    for i in 0..n {
        write(
            &d.join(format!("p{i}.jpg")),
            &encoded(&picture(300 + i, 576, 640), ImageFormat::Jpeg),
        );
        caption(
            &d,
            &format!("p{i}"),
            &format!("{TRIGGER}, picture {i}, ink wash"),
        );
    }
    d
}
