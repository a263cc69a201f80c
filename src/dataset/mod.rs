//! Gate 1 work: what is in a folder of training pictures, and what is wrong
//! with it.
//!
//! [`walk`] lists the folder without following anything out of it,
//! [`inspect`] decodes one picture and says what it is, [`captions`] reads the
//! caption beside it, [`layout`] recognises kohya's `{repeats}_{name}` folders,
//! and [`audit`] runs all of them over a folder, in parallel and with bounded
//! memory, into one [`audit::AuditReport`]. A file that cannot be read becomes a
//! finding; it never stops the audit, and the audit never changes a file.
//!
//! [`trigger`] checks trigger words against CLIP's vocabulary, [`intent`]
//! keeps what the artist wants, [`caption_rules`] and [`captioning`] are the
//! style-aware caption preview and writing, [`manifest`] fingerprints the
//! folder, and [`structure`] copies flat folders into kohya's layout. Which
//! pictures look alike is [`crate::likeness`]'s.

pub mod audit;
pub mod caption_rules;
pub mod captioning;
pub mod captions;
pub mod inspect;
pub mod intent;
pub mod layout;
pub mod manifest;
pub mod structure;
pub mod trigger;
pub mod walk;

pub use audit::{AuditError, AuditOptions, AuditReport, audit_dataset};

/// File extensions trainers pick up as training images.
pub const IMAGE_EXTENSIONS: &[&str] = &["png", "jpg", "jpeg", "webp", "bmp", "gif", "tif", "tiff"];

/// Picture formats we read but the trainers skip: kohya sd-scripts lists
/// only PNG, JPEG, WebP and BMP files (its `IMAGE_EXTENSIONS`).
pub const TRAINERS_SKIP_EXTENSIONS: &[&str] = &["gif", "tif", "tiff"];

/// Image formats people have that the trainers (and we) cannot read.
pub const UNSUPPORTED_IMAGE_EXTENSIONS: &[&str] = &[
    "avif", "heic", "heif", "jxl", "psd", "raw", "cr2", "nef", "arw", "dng", "svg",
];

/// True when `ext` (without the dot, any case) is a training-image extension.
pub fn is_image_extension(ext: &str) -> bool {
    let ext = ext.to_ascii_lowercase();
    IMAGE_EXTENSIONS.contains(&ext.as_str())
}
