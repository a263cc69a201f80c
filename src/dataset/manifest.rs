//! The dataset's fingerprint: paths, sizes and content hashes of every
//! picture and caption. Gate 1 records it; any later change to the dataset
//! (a caption edited, a picture added, removed or re-saved) changes it, and
//! so makes Gate 1 stale.
//!
//! The audit computes it as a by-product of reading every file; [`compute`]
//! computes the same value without decoding, for freshness checks.

use std::path::Path;

use rayon::prelude::*;

use super::inspect;
use super::walk::{self, FoundFile};

/// One picture's line in the manifest.
pub struct PictureLine<'a> {
    pub rel: &'a str,
    pub size: u64,
    pub hash: &'a str,
    /// Size and hash of its caption, when it has a readable one.
    pub caption: Option<(u64, &'a str)>,
}

/// The fingerprint of a set of pictures plus the caption files present.
pub fn fingerprint<'a>(
    pictures: impl Iterator<Item = PictureLine<'a>>,
    caption_files: impl Iterator<Item = &'a str>,
) -> String {
    let mut lines: Vec<String> = Vec::new();
    for p in pictures {
        lines.push(format!("image\0{}\0{}\0{}", p.rel, p.size, p.hash));
        if let Some((size, hash)) = p.caption {
            lines.push(format!("caption\0{}\0{size}\0{hash}", p.rel));
        }
    }
    lines.extend(caption_files.map(|rel| format!("caption-file\0{rel}")));
    lines.sort();
    let mut hasher = blake3::Hasher::new();
    for l in &lines {
        hasher.update(l.as_bytes());
        hasher.update(b"\n");
    }
    hasher.finalize().to_hex().to_string()
}

/// Splits files into pictures (by extension, or by content when the
/// extension says otherwise) and everything else.
pub fn classify<'a>(
    files: &'a [FoundFile],
    caption_ext: &str,
) -> (Vec<&'a FoundFile>, Vec<&'a FoundFile>) {
    let mut pictures = Vec::new();
    let mut others = Vec::new();
    for f in files {
        let ext = inspect::extension_of(&f.path).unwrap_or_default();
        let is_picture = super::is_image_extension(&ext)
            || super::UNSUPPORTED_IMAGE_EXTENSIONS.contains(&ext.as_str())
            || (ext != caption_ext && sniff_head(&f.path).is_some());
        if is_picture {
            pictures.push(f);
        } else {
            others.push(f);
        }
    }
    (pictures, others)
}

fn sniff_head(path: &Path) -> Option<image::ImageFormat> {
    use std::io::Read;
    let mut head = [0u8; 32];
    let mut file = std::fs::File::open(path).ok()?;
    let n = file.read(&mut head).ok()?;
    inspect::sniff(&head[..n])
}

/// Path, size, content hash, and the caption's size and hash.
type HashedPicture = (String, u64, String, Option<(u64, String)>);

fn hash_file(path: &Path) -> Option<(u64, String)> {
    let bytes = std::fs::read(path).ok()?;
    Some((
        bytes.len() as u64,
        blake3::hash(&bytes).to_hex().to_string(),
    ))
}

/// Computes the fingerprint of the dataset at `dir` now, reading (not
/// decoding) every picture and caption.
pub fn compute(dir: &Path, workspace_root: &Path, caption_ext: &str) -> std::io::Result<String> {
    let listing = walk::list_files(dir, workspace_root)?;
    let (pictures, others) = classify(&listing.files, caption_ext);
    let hashed: Vec<HashedPicture> = pictures
        .par_iter()
        .map(|f| {
            let size = std::fs::metadata(&f.path).map(|m| m.len()).unwrap_or(0);
            let hash = std::fs::read(&f.path)
                .map(|b| blake3::hash(&b).to_hex().to_string())
                .unwrap_or_default();
            let caption = hash_file(&super::captions::caption_path_for(&f.path, caption_ext));
            (f.rel.clone(), size, hash, caption)
        })
        .collect();
    let caption_files: Vec<&str> = others
        .iter()
        .filter(|f| inspect::extension_of(&f.path).is_some_and(|e| e == caption_ext))
        .map(|f| f.rel.as_str())
        .collect();
    Ok(fingerprint(
        hashed.iter().map(|(rel, size, hash, cap)| PictureLine {
            rel,
            size: *size,
            hash,
            caption: cap.as_ref().map(|(s, h)| (*s, h.as_str())),
        }),
        caption_files.into_iter(),
    ))
}
