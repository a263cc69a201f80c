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
//! Duplicates and curation: [`phash`] hashes what a picture looks like
//! (JPEGs from their block means, [`jpeg_dc`]),
//! [`hamming`] finds close hashes, [`crop_check`] confirms crops,
//! [`hash_cache`] remembers hashes, [`dedup`] groups copies (and
//! [`contact_sheet`] shows them), [`curate`]
//! scores variety and picks subsets, [`quarantine`] sets files aside (and
//! back), [`structure`] copies flat folders into kohya's layout, and
//! [`dedup_bench`] measures it all on a labelled set.

pub mod audit;
pub mod caption_rules;
pub mod captioning;
pub mod captions;
pub mod contact_sheet;
pub mod crop_check;
pub mod curate;
pub mod dedup;
pub mod dedup_bench;
pub mod hamming;
pub mod hash_cache;
pub mod inspect;
pub mod intent;
pub mod jpeg_dc;
pub mod layout;
pub mod manifest;
pub mod phash;
pub mod png_rows;
pub mod quarantine;
pub mod structure;
pub mod synth;
pub mod trigger;
pub mod walk;
pub mod webp_lossless;
pub mod webp_luma;

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
