//! Folder layout: flat, or kohya's `{repeats}_{name}` subsets.
//!
//! kohya sd-scripts reads a training folder whose subfolders are named
//! `10_ohwx style`: the number is how often each picture repeats per epoch,
//! the rest is the subset's name (its class/instance prompt when there are
//! no captions). Pictures outside such subfolders are not trained.

use std::collections::BTreeMap;

use serde::Serialize;

/// How the folder is organised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum LayoutKind {
    /// Pictures directly in the folder (possibly in plain subfolders).
    Flat,
    /// Every picture sits in a `{repeats}_{name}` subfolder.
    Kohya,
    /// Some pictures are in `{repeats}_{name}` subfolders and some are not.
    Mixed,
    /// No pictures at all.
    Empty,
}

/// One `{repeats}_{name}` subfolder.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct KohyaSubset {
    pub folder: String,
    pub repeats: u32,
    pub name: String,
    /// Pictures directly in it (the ones kohya trains).
    pub images: usize,
    /// Pictures in deeper subfolders, which kohya does not read.
    pub nested_images: usize,
    /// True for a regularisation subset.
    pub regularization: bool,
}

/// The layout of a dataset folder.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Layout {
    pub kind: LayoutKind,
    pub subsets: Vec<KohyaSubset>,
    /// Pictures a kohya run would not see (outside any subset, or nested too deep).
    pub images_outside_subsets: usize,
    /// Total images × repeats per epoch (kohya layout), or images (flat).
    pub images_per_epoch: u64,
}

/// Parses `10_ohwx style` into `(10, "ohwx style")`.
pub fn parse_subset_name(folder: &str) -> Option<(u32, String)> {
    let (num, name) = folder.split_once('_')?;
    if num.is_empty() || !num.chars().all(|c| c.is_ascii_digit()) || name.trim().is_empty() {
        return None;
    }
    Some((num.parse().ok()?, name.to_string()))
}

/// Works out the layout from the folder (relative to the dataset) of every
/// picture found.
pub fn detect(image_folders: &[&str], regularization: bool) -> Layout {
    let mut subsets: BTreeMap<String, KohyaSubset> = BTreeMap::new();
    let mut outside = 0usize;
    let mut total = 0usize;
    for folder in image_folders {
        total += 1;
        let top = folder.split('/').next().unwrap_or("");
        match parse_subset_name(top) {
            Some((repeats, name)) => {
                let s = subsets.entry(top.to_string()).or_insert(KohyaSubset {
                    folder: top.to_string(),
                    repeats,
                    name,
                    images: 0,
                    nested_images: 0,
                    regularization,
                });
                if folder.contains('/') {
                    s.nested_images += 1;
                } else {
                    s.images += 1;
                }
            }
            None => outside += 1,
        }
    }
    let subsets: Vec<_> = subsets.into_values().collect();
    let kind = match (total, subsets.is_empty(), outside) {
        (0, _, _) => LayoutKind::Empty,
        (_, true, _) => LayoutKind::Flat,
        (_, false, 0) => LayoutKind::Kohya,
        _ => LayoutKind::Mixed,
    };
    let images_per_epoch = if kind == LayoutKind::Flat {
        total as u64
    } else {
        subsets
            .iter()
            .map(|s| s.images as u64 * u64::from(s.repeats))
            .sum()
    };
    let nested: usize = subsets.iter().map(|s| s.nested_images).sum();
    Layout {
        kind,
        images_outside_subsets: if kind == LayoutKind::Flat {
            0
        } else {
            outside + nested
        },
        subsets,
        images_per_epoch,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subset_names() {
        assert_eq!(
            parse_subset_name("10_ohwx style"),
            Some((10, "ohwx style".into()))
        );
        assert_eq!(parse_subset_name("1_a_b"), Some((1, "a_b".into())));
        assert_eq!(parse_subset_name("x_fox"), None);
        assert_eq!(parse_subset_name("10_"), None);
        assert_eq!(parse_subset_name("fox"), None);
    }

    #[test]
    fn kohya_flat_and_mixed() {
        let k = detect(&["10_fox", "10_fox", "5_bg"], false);
        assert_eq!(k.kind, LayoutKind::Kohya);
        assert_eq!(k.images_per_epoch, 25);
        let f = detect(&["", "", "sketches"], false);
        assert_eq!((f.kind, f.images_per_epoch), (LayoutKind::Flat, 3));
        let m = detect(&["10_fox", "", "10_fox/old"], false);
        assert_eq!((m.kind, m.images_outside_subsets), (LayoutKind::Mixed, 2));
        assert_eq!(detect(&[], false).kind, LayoutKind::Empty);
    }
}
