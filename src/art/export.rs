//! A finished picture cut to the sizes it is used at: an OG image for link
//! previews (1200×630), a favicon set, a hero banner, an avatar, a print at
//! a given size and DPI, or any exact size; written as PNG, JPEG or WebP.
//!
//! Every output is cropped to its shape around the centre (cover, no bars),
//! resized with a Lanczos filter, and encoded again from its pixels, which
//! drops all metadata (EXIF with camera and GPS, XMP, text chunks, ICC
//! profile). A picture smaller than the target is enlarged by the same
//! resize, and the result says so: no detail is invented (that would be an
//! upscale model through ComfyUI, which this does not run).

use std::io::Cursor;

use image::imageops::FilterType;
use image::{DynamicImage, ImageFormat};
use serde::{Deserialize, Serialize};

use crate::studio::{Hint, PathError, StudioError, Workspace, write_atomic};

/// The named sizes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Spec {
    /// 1200×630, the link preview of Facebook, LinkedIn, Slack, X.
    Og,
    /// 16, 32, 48, 180 (apple-touch-icon), 192 and 512 px squares, PNG.
    Favicon,
    /// 1920×1080, a full-width banner.
    Hero,
    /// 512×512.
    Avatar,
    /// `print_size` at `dpi`.
    Print,
    /// `width` × `height`.
    Custom,
}

impl Spec {
    pub fn word(self) -> &'static str {
        match self {
            Spec::Og => "og",
            Spec::Favicon => "favicon",
            Spec::Hero => "hero",
            Spec::Avatar => "avatar",
            Spec::Print => "print",
            Spec::Custom => "custom",
        }
    }
}

/// The file formats written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    Png,
    Jpeg,
    Webp,
}

impl Format {
    fn extension(self) -> &'static str {
        match self {
            Format::Png => "png",
            Format::Jpeg => "jpg",
            Format::Webp => "webp",
        }
    }
}

/// What to export.
#[derive(Debug, Clone)]
pub struct ExportRequest {
    pub source: String,
    pub spec: Spec,
    /// Default: PNG for a favicon, JPEG for a print or a picture without
    /// transparency, PNG otherwise.
    pub format: Option<Format>,
    /// JPEG quality, 1–100 (default 85).
    pub quality: Option<u8>,
    /// Default `workspace/exports/<source name>/`.
    pub out_dir: Option<String>,
    pub width: Option<u32>,
    pub height: Option<u32>,
    /// `A4`, `A5`, `A3`, `letter`, or `8x10in`, `20x30cm`, `100x150mm`.
    pub print_size: Option<String>,
    /// For print (default 300).
    pub dpi: Option<u32>,
}

/// One file written.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct ExportedFile {
    /// Relative to the workspace.
    pub path: String,
    pub width: u32,
    pub height: u32,
    pub bytes: u64,
    pub format: Format,
    /// How many times larger than the picture's own pixels (1.0 or less:
    /// no enlarging).
    pub enlarged: f64,
}

/// What `export_asset` did.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct ExportReport {
    pub source: String,
    pub source_width: u32,
    pub source_height: u32,
    pub spec: Spec,
    pub files: Vec<ExportedFile>,
    /// In plain words: cropping, enlarging, metadata, DPI.
    pub notes: Vec<String>,
    /// The upscale model that enlarged the picture first (through ComfyUI).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upscaled_with: Option<String>,
}

impl ExportReport {
    /// The most any file was enlarged beyond the picture's own pixels.
    pub fn most_enlarged(&self) -> f64 {
        self.files.iter().map(|f| f.enlarged).fold(0.0, f64::max)
    }
}

impl ExportReport {
    pub fn plain_summary(&self) -> String {
        let files: Vec<String> = self
            .files
            .iter()
            .map(|f| {
                format!(
                    "{} ({}×{}, {} KB)",
                    f.path,
                    f.width,
                    f.height,
                    f.bytes.div_ceil(1024)
                )
            })
            .collect();
        format!(
            "Exported {} ({}×{}) as {}: {}. {}",
            self.source,
            self.source_width,
            self.source_height,
            self.spec.word(),
            files.join(", "),
            self.notes.join(" ")
        )
    }
}

/// Why nothing was exported.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(transparent)]
    Path(#[from] PathError),
    #[error("`{path}` cannot be read as a picture: {reason}")]
    Unreadable { path: String, reason: String },
    #[error("the {spec} export needs {what}")]
    Missing {
        spec: &'static str,
        what: &'static str,
    },
    #[error("the print size `{given}` is not one I know")]
    BadPrintSize { given: String },
    #[error("{what} `{value}` is out of range ({range})")]
    OutOfRange {
        what: &'static str,
        value: String,
        range: &'static str,
    },
    #[error("a favicon is always PNG; `{format}` was asked")]
    FaviconFormat { format: &'static str },
    #[error("could not encode `{path}`: {reason}")]
    Encode { path: String, reason: String },
    #[error(transparent)]
    Studio(#[from] StudioError),
}

impl Hint for ExportError {
    fn hint(&self) -> Option<String> {
        match self {
            ExportError::Path(e) => e.hint(),
            ExportError::Unreadable { .. } => {
                Some("give a PNG, JPEG, WebP, BMP, GIF or TIFF file inside the workspace".into())
            }
            ExportError::Missing { what, .. } => Some(format!("pass {what}")),
            ExportError::BadPrintSize { .. } => Some(
                "use A3, A4, A5, letter, or width x height with a unit: `8x10in`, `20x30cm`, `100x150mm`".into(),
            ),
            ExportError::OutOfRange { range, .. } => Some(format!("use a value in {range}")),
            ExportError::FaviconFormat { .. } => Some("leave `format` out for a favicon".into()),
            ExportError::Encode { .. } => Some("try another format (PNG always works)".into()),
            ExportError::Studio(e) => e.hint(),
        }
    }
}

/// Sizes of the favicon set, and the name each is known by.
pub const FAVICON_SIZES: &[(u32, &str)] = &[
    (16, "favicon-16.png"),
    (32, "favicon-32.png"),
    (48, "favicon-48.png"),
    (180, "apple-touch-icon.png"),
    (192, "icon-192.png"),
    (512, "icon-512.png"),
];

/// The largest side an export may have (a 1.5 m print at 300 DPI).
pub const MAX_SIDE: u32 = 20_000;

/// Crops, resizes and writes `req.source` as `req.spec`.
pub fn export_asset(ws: &Workspace, req: &ExportRequest) -> Result<ExportReport, ExportError> {
    let source = ws.resolve(&req.source)?;
    let shown = ws.display_path(&source);
    let img = image::ImageReader::open(&source)
        .and_then(|r| r.with_guessed_format())
        .map_err(|e| ExportError::Unreadable {
            path: shown.clone(),
            reason: e.to_string(),
        })?
        .decode()
        .map_err(|e| ExportError::Unreadable {
            path: shown.clone(),
            reason: e.to_string(),
        })?;
    let stem = source
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "picture".into());
    let out_dir = match &req.out_dir {
        Some(d) => ws.resolve(d)?,
        None => ws.work_dir().join("exports").join(&stem),
    };
    let quality = match req.quality {
        None => 85,
        Some(q) if (1..=100).contains(&q) => q,
        Some(q) => {
            return Err(ExportError::OutOfRange {
                what: "quality",
                value: q.to_string(),
                range: "1–100",
            });
        }
    };
    let has_alpha = img.color().has_alpha();
    let mut notes = Vec::new();
    let mut dpi = None;
    // (width, height, file name) of every output.
    let targets: Vec<(u32, u32, String)> = match req.spec {
        Spec::Favicon => {
            if let Some(f) = req.format.filter(|f| *f != Format::Png) {
                return Err(ExportError::FaviconFormat {
                    format: f.extension(),
                });
            }
            FAVICON_SIZES
                .iter()
                .map(|(side, name)| (*side, *side, name.to_string()))
                .collect()
        }
        Spec::Og => vec![(1200, 630, format!("{stem}-og"))],
        Spec::Hero => vec![(1920, 1080, format!("{stem}-hero"))],
        Spec::Avatar => vec![(512, 512, format!("{stem}-avatar"))],
        Spec::Custom => {
            let (Some(w), Some(h)) = (req.width, req.height) else {
                return Err(ExportError::Missing {
                    spec: "custom",
                    what: "`width` and `height` in pixels",
                });
            };
            for v in [w, h] {
                if v == 0 || v > MAX_SIDE {
                    return Err(ExportError::OutOfRange {
                        what: "a side",
                        value: v.to_string(),
                        range: "1–20000 px",
                    });
                }
            }
            vec![(w, h, format!("{stem}-{w}x{h}"))]
        }
        Spec::Print => {
            let Some(size) = req.print_size.as_deref() else {
                return Err(ExportError::Missing {
                    spec: "print",
                    what: "`print_size` (A4, letter, `8x10in` …)",
                });
            };
            let d = req.dpi.unwrap_or(300);
            if !(72..=1200).contains(&d) {
                return Err(ExportError::OutOfRange {
                    what: "dpi",
                    value: d.to_string(),
                    range: "72–1200",
                });
            }
            let (mut w_in, mut h_in, named) = print_inches(size)?;
            // A named paper turns to the picture's orientation.
            if named && (img.width() > img.height()) != (w_in > h_in) {
                std::mem::swap(&mut w_in, &mut h_in);
            }
            let w = (w_in * f64::from(d)).round() as u32;
            let h = (h_in * f64::from(d)).round() as u32;
            if w.max(h) > MAX_SIDE {
                return Err(ExportError::OutOfRange {
                    what: "the print's pixel size",
                    value: format!("{w}×{h}"),
                    range: "up to 20000 px a side (lower the DPI)",
                });
            }
            dpi = Some(d);
            notes.push(format!(
                "{size} at {d} DPI is {w}×{h} px ({w_in:.2}×{h_in:.2} in)."
            ));
            vec![(w, h, format!("{stem}-print-{d}dpi"))]
        }
    };
    let format = match (req.spec, req.format) {
        (Spec::Favicon, _) => Format::Png,
        (_, Some(f)) => f,
        (Spec::Print, None) => Format::Jpeg,
        (_, None) if has_alpha => Format::Png,
        (_, None) => Format::Jpeg,
    };
    if format == Format::Jpeg && has_alpha {
        notes.push("JPEG has no transparency: transparent parts are on white.".into());
    }
    if format == Format::Webp {
        notes.push("WebP is written lossless (the encoder here has no lossy mode); use JPEG for the smallest photo-like file.".into());
    }
    if dpi.is_some() && format == Format::Webp {
        notes.push("WebP cannot carry a DPI: the printer must be told the size.".into());
    }

    let mut files = Vec::new();
    for (w, h, name) in targets {
        let (out, enlarged) = fit(&img, w, h);
        let file_name = if name.contains('.') {
            name
        } else {
            format!("{name}.{}", format.extension())
        };
        let path = out_dir.join(&file_name);
        let bytes = encode(&out, format, quality, dpi).map_err(|reason| ExportError::Encode {
            path: ws.display_path(&path),
            reason,
        })?;
        write_atomic(&path, &bytes)?;
        files.push(ExportedFile {
            path: ws.display_path(&path),
            width: w,
            height: h,
            bytes: bytes.len() as u64,
            format,
            enlarged: (enlarged * 100.0).round() / 100.0,
        });
    }
    let most = files.iter().map(|f| f.enlarged).fold(0.0, f64::max);
    if most > 1.0 {
        notes.push(format!(
            "The picture is smaller than this size: it was enlarged up to {most:.2}× by a high-quality resize (Lanczos), not upscaled by a model, so it will look softer."
        ));
    }
    let (sw, sh) = (img.width(), img.height());
    if files.iter().any(|f| {
        let target = f64::from(f.width) / f64::from(f.height);
        (target - f64::from(sw) / f64::from(sh)).abs() > 0.01
    }) {
        notes.push("The picture was cropped around its centre to the shape of the size.".into());
    }
    notes.push("Metadata (EXIF, GPS, XMP, colour profile) was removed.".into());
    Ok(ExportReport {
        source: shown,
        source_width: sw,
        source_height: sh,
        spec: req.spec,
        files,
        notes,
        upscaled_with: None,
    })
}

/// `(width, height, named paper)` in inches.
fn print_inches(size: &str) -> Result<(f64, f64, bool), ExportError> {
    let bad = || ExportError::BadPrintSize {
        given: size.to_string(),
    };
    let s = size.trim().to_lowercase();
    let mm = |w: f64, h: f64| (w / 25.4, h / 25.4, true);
    let named = match s.as_str() {
        "a3" => Some(mm(297.0, 420.0)),
        "a4" => Some(mm(210.0, 297.0)),
        "a5" => Some(mm(148.0, 210.0)),
        "letter" => Some((8.5, 11.0, true)),
        _ => None,
    };
    if let Some(n) = named {
        return Ok(n);
    }
    let (number, per_inch) = if let Some(n) = s.strip_suffix("mm") {
        (n, 25.4)
    } else if let Some(n) = s.strip_suffix("cm") {
        (n, 2.54)
    } else if let Some(n) = s.strip_suffix("in") {
        (n, 1.0)
    } else {
        return Err(bad());
    };
    let (w, h) = number.split_once(['x', '×']).ok_or_else(bad)?;
    let w: f64 = w.trim().parse().map_err(|_| bad())?;
    let h: f64 = h.trim().parse().map_err(|_| bad())?;
    if !(w > 0.0 && h > 0.0 && w.is_finite() && h.is_finite()) {
        return Err(bad());
    }
    Ok((w / per_inch, h / per_inch, false))
}

/// The picture cropped around its centre to `w:h` and resized to exactly
/// `w × h`; also how much it was enlarged.
fn fit(img: &DynamicImage, w: u32, h: u32) -> (DynamicImage, f64) {
    let scale = (f64::from(w) / f64::from(img.width())).max(f64::from(h) / f64::from(img.height()));
    (img.resize_to_fill(w, h, FilterType::Lanczos3), scale)
}

fn encode(
    img: &DynamicImage,
    format: Format,
    quality: u8,
    dpi: Option<u32>,
) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    match format {
        Format::Png => {
            use image::codecs::png::{CompressionType, FilterType as PngFilter, PngEncoder};
            let enc =
                PngEncoder::new_with_quality(&mut out, CompressionType::Best, PngFilter::Adaptive);
            img.write_with_encoder(enc).map_err(|e| e.to_string())?;
            if let Some(d) = dpi {
                out = with_png_dpi(&out, d);
            }
        }
        Format::Jpeg => {
            use image::codecs::jpeg::{JpegEncoder, PixelDensity};
            let rgb = DynamicImage::ImageRgb8(on_white(img));
            let mut enc = JpegEncoder::new_with_quality(&mut out, quality);
            if let Some(d) = dpi {
                enc.set_pixel_density(PixelDensity::dpi(u16::try_from(d).unwrap_or(300)));
            }
            rgb.write_with_encoder(enc).map_err(|e| e.to_string())?;
        }
        Format::Webp => {
            let mut cursor = Cursor::new(&mut out);
            img.write_to(&mut cursor, ImageFormat::WebP)
                .map_err(|e| e.to_string())?;
        }
    }
    Ok(out)
}

/// RGB with any transparency composited on white.
fn on_white(img: &DynamicImage) -> image::RgbImage {
    let rgba = img.to_rgba8();
    let mut rgb = image::RgbImage::new(rgba.width(), rgba.height());
    for (dst, src) in rgb.pixels_mut().zip(rgba.pixels()) {
        let a = u32::from(src[3]);
        for c in 0..3 {
            dst[c] = ((u32::from(src[c]) * a + 255 * (255 - a) + 127) / 255) as u8;
        }
    }
    rgb
}

/// A PNG with a `pHYs` chunk (pixels per metre) after its header, so print
/// software knows its size.
fn with_png_dpi(png: &[u8], dpi: u32) -> Vec<u8> {
    // Signature (8) + IHDR chunk (4 length + 4 type + 13 data + 4 CRC).
    const AFTER_IHDR: usize = 8 + 25;
    if png.len() < AFTER_IHDR {
        return png.to_vec();
    }
    let per_metre = (f64::from(dpi) / 0.0254).round() as u32;
    let mut body = b"pHYs".to_vec();
    body.extend(per_metre.to_be_bytes());
    body.extend(per_metre.to_be_bytes());
    body.push(1); // unit: metre
    let mut chunk = 9u32.to_be_bytes().to_vec();
    chunk.extend(&body);
    chunk.extend(crc32(&body).to_be_bytes());
    let mut out = png[..AFTER_IHDR].to_vec();
    out.extend(chunk);
    out.extend(&png[AFTER_IHDR..]);
    out
}

/// CRC-32 as PNG chunks use it (ISO 3309, reflected 0xEDB88320).
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn print_sizes_read_in_every_unit() {
        let (w, h, named) = print_inches("A4").unwrap();
        assert!(named && (w * 300.0).round() == 2480.0 && (h * 300.0).round() == 3508.0);
        assert_eq!(print_inches("8x10in").unwrap(), (8.0, 10.0, false));
        let (w, _, _) = print_inches("20x30cm").unwrap();
        assert!((w - 20.0 / 2.54).abs() < 1e-9);
        assert!(print_inches("huge").is_err());
        assert!(print_inches("-2x3in").is_err());
    }

    #[test]
    fn the_png_check_value_is_the_standard_one() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }
}
