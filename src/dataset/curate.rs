//! Curation: is the set varied enough, which pictures are too alike, and
//! which subset to keep when the portfolio is larger than the training set
//! should be.
//!
//! Everything here works on the perceptual hashes the duplicate search
//! computes (and caches), so it measures how different pictures *look*:
//! layout, light and dark, big shapes. It does not know what they show.
//! - **Clusters**: pictures within a looser distance than duplicates
//!   (default 18 bits; measured: most same-background, different-content
//!   shots fall within it, fewer than 0.5 % of unrelated pairs do), grouped
//!   around the picture with the most close neighbours.
//! - **Variety score** (0–100): the share of pictures that bring something
//!   new (clusters count once), times how far apart pictures are on average
//!   (32 of 64 bits is what unrelated pictures differ by).
//! - **Subset**: farthest-point selection: start with the most unusual
//!   picture, then repeatedly add the picture farthest from everything chosen
//!   so far, so the kept set spreads over all the looks in the portfolio.

use std::path::Path;

use serde::Serialize;

use super::dedup::{
    DedupError, HashedPicture, UnreadablePicture, hash_folder, open_cache, save_cache,
};
use super::hamming::{self, Views};
use super::phash::{JpegDecode, PictureHash};
use crate::studio::project::TrainingType;
use crate::studio::{Progress, Workspace};

/// Default largest distance for two pictures to count as too alike.
pub const DEFAULT_SIMILAR_THRESHOLD: u32 = 18;

/// The largest look-alike threshold taken.
pub const MAX_SIMILAR_THRESHOLD: u32 = super::dedup::MAX_THRESHOLD + 6;
/// Typical distance between unrelated pictures: half the bits.
const UNRELATED_DISTANCE: f64 = 32.0;

/// What to curate for.
#[derive(Debug, Clone)]
pub struct CurateOptions {
    /// How many pictures to keep; when absent and the training type is
    /// known, the top of that type's usual range.
    pub target_size: Option<usize>,
    pub training_type: Option<TrainingType>,
    /// Largest distance (bits of 64) for pictures to count as too alike.
    pub similar_threshold: u32,
    /// Caption file extension, without the dot.
    pub caption_extension: String,
    pub use_cache: bool,
}

impl Default for CurateOptions {
    fn default() -> Self {
        CurateOptions {
            target_size: None,
            training_type: None,
            similar_threshold: DEFAULT_SIMILAR_THRESHOLD,
            caption_extension: "txt".into(),
            use_cache: true,
        }
    }
}

/// Pictures that look alike (without being copies, necessarily).
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct SimilarCluster {
    pub id: usize,
    /// The picture the others are close to.
    pub representative: String,
    /// Every picture of the cluster (workspace-relative), representative first.
    pub members: Vec<String>,
    /// Largest distance of a member from the representative.
    pub max_distance: u32,
}

/// How varied the set is, in words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum VarietyRating {
    /// 80 and above.
    Varied,
    /// 60 to 79.
    SomeRepetition,
    /// Below 60.
    Repetitive,
}

/// The variety score and what it is made of.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Variety {
    /// 0–100: `distinct_share × min(1, mean_distance / 32) × 100`.
    pub score: u32,
    pub rating: VarietyRating,
    /// Share of pictures that bring a new look (each cluster counts once).
    pub distinct_share: f64,
    /// Average distance between two pictures, in bits (unrelated pictures: about 32).
    pub mean_distance: f64,
}

/// A picture kept in the recommended subset.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct SubsetPick {
    pub path: String,
    /// 1 = chosen first.
    pub rank: usize,
    /// Distance to the closest picture chosen before it (absent for the first).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub distance_to_chosen: Option<u32>,
    pub reason: String,
}

/// A picture the recommended subset leaves out.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct LeftOut {
    pub path: String,
    /// The kept picture it is closest to.
    pub closest_kept: String,
    pub distance: u32,
    pub reason: String,
}

/// The subset recommended for the target size.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct SubsetRecommendation {
    pub target_size: usize,
    /// Where the target came from (`given`, or the training type's range).
    pub target_reason: String,
    /// In the order chosen: the first ones add the most variety.
    pub keep: Vec<SubsetPick>,
    pub leave_out: Vec<LeftOut>,
}

/// Whether to train with regularisation pictures, and why.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct RegularizationAdvice {
    pub recommended: bool,
    /// Suggested number of regularisation pictures (0 when not recommended).
    pub suggested_count: usize,
    /// The advice in plain words.
    pub advice: String,
}

/// Everything curation found.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct CurationReport {
    /// The folder, relative to the workspace root.
    pub folder: String,
    pub pictures: usize,
    pub similar_threshold: u32,
    /// Groups of pictures that look alike, largest first.
    pub clusters: Vec<SimilarCluster>,
    pub pictures_in_clusters: usize,
    pub variety: Variety,
    /// Present when the set is larger than the target size.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subset: Option<SubsetRecommendation>,
    /// Present when the training type is known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub regularization: Option<RegularizationAdvice>,
    pub unreadable: Vec<UnreadablePicture>,
}

/// Groups pictures around the one with most neighbours within `threshold`;
/// each cluster's members are within `threshold` of its representative.
fn clusters_of(pictures: &[HashedPicture], threshold: u32) -> Vec<SimilarCluster> {
    let hashes: Vec<PictureHash> = pictures.iter().map(|p| p.hashed.hash).collect();
    let (pairs, _) = hamming::pairs_within(&Views::from_hashes(&hashes), threshold);
    let mut neighbours: Vec<Vec<(usize, u32)>> = vec![Vec::new(); pictures.len()];
    for p in &pairs {
        let (a, b, d) = (p.a as usize, p.b as usize, u32::from(p.distance));
        neighbours[a].push((b, d));
        neighbours[b].push((a, d));
    }
    let mut order: Vec<usize> = (0..pictures.len())
        .filter(|&i| !neighbours[i].is_empty())
        .collect();
    order.sort_by(|&a, &b| {
        neighbours[b]
            .len()
            .cmp(&neighbours[a].len())
            .then(a.cmp(&b))
    });
    let mut taken = vec![false; pictures.len()];
    let mut clusters = Vec::new();
    for centre in order {
        if taken[centre] {
            continue;
        }
        let mut members: Vec<(usize, u32)> = neighbours[centre]
            .iter()
            .copied()
            .filter(|(j, _)| !taken[*j])
            .collect();
        if members.is_empty() {
            continue;
        }
        members.sort_by_key(|&(j, d)| (d, j));
        taken[centre] = true;
        for (j, _) in &members {
            taken[*j] = true;
        }
        clusters.push(SimilarCluster {
            id: 0,
            representative: pictures[centre].shown.clone(),
            max_distance: members.iter().map(|m| m.1).max().unwrap_or(0),
            members: std::iter::once(centre)
                .chain(members.iter().map(|m| m.0))
                .map(|i| pictures[i].shown.clone())
                .collect(),
        });
    }
    clusters.sort_by(|a, b| {
        b.members
            .len()
            .cmp(&a.members.len())
            .then(a.representative.cmp(&b.representative))
    });
    for (i, c) in clusters.iter_mut().enumerate() {
        c.id = i + 1;
    }
    clusters
}

/// Average Hamming distance over all pairs of full hashes, from how often
/// each bit is set (O(n), exact).
fn mean_pair_distance(pictures: &[HashedPicture]) -> f64 {
    let n = pictures.len();
    if n < 2 {
        return 0.0;
    }
    let mut ones = [0u64; 64];
    for p in pictures {
        let h = p.hashed.hash.hash;
        for (b, count) in ones.iter_mut().enumerate() {
            *count += (h >> b) & 1;
        }
    }
    let pairs = (n * (n - 1) / 2) as f64;
    ones.iter()
        .map(|&k| k as f64 * (n as u64 - k) as f64)
        .sum::<f64>()
        / pairs
}

fn variety_of(n: usize, clusters: &[SimilarCluster], mean_distance: f64) -> Variety {
    let clustered: usize = clusters.iter().map(|c| c.members.len()).sum();
    let distinct = n - clustered + clusters.len();
    let distinct_share = if n == 0 {
        1.0
    } else {
        distinct as f64 / n as f64
    };
    let spread = (mean_distance / UNRELATED_DISTANCE).min(1.0);
    let score = if n < 2 {
        0
    } else {
        (distinct_share * spread * 100.0).round() as u32
    };
    Variety {
        score,
        rating: match score {
            80.. => VarietyRating::Varied,
            60..=79 => VarietyRating::SomeRepetition,
            _ => VarietyRating::Repetitive,
        },
        distinct_share: (distinct_share * 1000.0).round() / 1000.0,
        mean_distance: (mean_distance * 10.0).round() / 10.0,
    }
}

/// The hash that has each bit set when most pictures do: the "average look".
fn majority_hash(pictures: &[HashedPicture]) -> u64 {
    let n = pictures.len() as u64;
    (0..64).fold(0u64, |acc, b| {
        let ones = pictures
            .iter()
            .filter(|p| (p.hashed.hash.hash >> b) & 1 == 1)
            .count() as u64;
        if 2 * ones > n { acc | (1 << b) } else { acc }
    })
}

/// A chosen picture and its distance to those chosen before it.
type Chosen = (usize, Option<u32>);
/// A left-out picture, the kept one closest to it, and their distance.
type Dropped = (usize, usize, u32);

/// Farthest-point selection of `target` pictures.
fn farthest_points(pictures: &[HashedPicture], target: usize) -> (Vec<Chosen>, Vec<Dropped>) {
    let n = pictures.len();
    let pixels =
        |i: usize| u64::from(pictures[i].hashed.width) * u64::from(pictures[i].hashed.height);
    let majority = majority_hash(pictures);
    // Start with the most unusual picture: farthest from the average look.
    let first = (0..n)
        .max_by_key(|&i| {
            (
                (pictures[i].hashed.hash.hash ^ majority).count_ones(),
                pixels(i),
                std::cmp::Reverse(i),
            )
        })
        .unwrap_or(0);
    let mut chosen = vec![(first, None)];
    let mut in_set = vec![false; n];
    in_set[first] = true;
    // Distance of every picture to the closest chosen one, and which.
    let mut nearest: Vec<(u32, usize)> = (0..n)
        .map(|i| {
            (
                pictures[i]
                    .hashed
                    .hash
                    .distance(&pictures[first].hashed.hash),
                first,
            )
        })
        .collect();
    while chosen.len() < target.min(n) {
        let Some(next) = (0..n)
            .filter(|&i| !in_set[i])
            .max_by_key(|&i| (nearest[i].0, pixels(i), std::cmp::Reverse(i)))
        else {
            break;
        };
        chosen.push((next, Some(nearest[next].0)));
        in_set[next] = true;
        let h = pictures[next].hashed.hash;
        for (i, slot) in nearest.iter_mut().enumerate() {
            if !in_set[i] {
                let d = pictures[i].hashed.hash.distance(&h);
                if d < slot.0 {
                    *slot = (d, next);
                }
            }
        }
    }
    let left: Vec<(usize, usize, u32)> = (0..n)
        .filter(|&i| !in_set[i])
        .map(|i| (i, nearest[i].1, nearest[i].0))
        .collect();
    (chosen, left)
}

fn subset_of(
    pictures: &[HashedPicture],
    target: usize,
    target_reason: String,
    duplicate_below: u32,
) -> SubsetRecommendation {
    let (chosen, left) = farthest_points(pictures, target);
    let keep = chosen
        .iter()
        .enumerate()
        .map(|(rank, &(i, d))| SubsetPick {
            path: pictures[i].shown.clone(),
            rank: rank + 1,
            distance_to_chosen: d,
            reason: match d {
                None => {
                    "the most unusual picture of the set: farthest from its average look".into()
                }
                Some(d) => format!("adds a new look: {d} bits from every picture chosen before it"),
            },
        })
        .collect();
    let mut leave_out: Vec<LeftOut> = left
        .into_iter()
        .map(|(i, k, d)| LeftOut {
            path: pictures[i].shown.clone(),
            closest_kept: pictures[k].shown.clone(),
            distance: d,
            reason: if d <= duplicate_below {
                format!("a near-copy of `{}` ({d} bits apart)", pictures[k].shown)
            } else {
                format!(
                    "the kept `{}` already covers this look ({d} bits apart)",
                    pictures[k].shown
                )
            },
        })
        .collect();
    leave_out.sort_by(|a, b| a.distance.cmp(&b.distance).then(a.path.cmp(&b.path)));
    SubsetRecommendation {
        target_size: target,
        target_reason,
        keep,
        leave_out,
    }
}

/// Regularisation advice for a kind of LoRA trained on `images` pictures.
pub fn regularization_advice(kind: TrainingType, images: usize) -> RegularizationAdvice {
    match kind {
        TrainingType::Character => RegularizationAdvice {
            recommended: true,
            suggested_count: images.max(1) * 2,
            advice: format!(
                "Recommended for a character: add about {} pictures of the general class (for example `woman` or `fox`), made by the base model itself from a plain prompt and captioned with just the class word, in a separate regularisation folder. They remind the model what an ordinary person or animal looks like, so your character does not replace everyone it draws.",
                images.max(1) * 2
            ),
        },
        TrainingType::Object => RegularizationAdvice {
            recommended: true,
            suggested_count: images.max(1),
            advice: format!(
                "Recommended for an object: add about {} pictures of other things of the same kind (other mugs, other jackets), made by the base model and captioned with the class word. They keep the model from turning every such thing into yours.",
                images.max(1)
            ),
        },
        TrainingType::Style => RegularizationAdvice {
            recommended: false,
            suggested_count: 0,
            advice: "Usually not needed for a style: the style is meant to reach everything the model draws. Add them only if a test shows the style appearing in prompts without the trigger word; then about as many varied pictures from the base model as you have training pictures.".into(),
        },
    }
}

/// Curates the pictures under `dir`.
pub fn curate_dataset(
    dir: &Path,
    workspace: &Workspace,
    options: &CurateOptions,
    progress: &dyn Progress,
) -> Result<CurationReport, DedupError> {
    if options.target_size == Some(0) {
        return Err(DedupError::ZeroTarget);
    }
    if options.similar_threshold > MAX_SIMILAR_THRESHOLD {
        return Err(DedupError::BadThreshold {
            threshold: options.similar_threshold,
            max: MAX_SIMILAR_THRESHOLD,
            default: DEFAULT_SIMILAR_THRESHOLD,
        });
    }
    let mut cache = open_cache(workspace, options.use_cache);
    let folder = hash_folder(
        dir,
        workspace,
        &options.caption_extension,
        &mut cache,
        JpegDecode::default(),
        progress,
    )?;
    // Curation only reads the cache's hashes; a failed save changes nothing here.
    let _ = save_cache(&mut cache);
    let pictures = &folder.pictures;
    let n = pictures.len();
    progress.report(n as u64, Some(n as u64), &format!("comparing {n} pictures"));
    let clusters = clusters_of(pictures, options.similar_threshold);
    let variety = variety_of(n, &clusters, mean_pair_distance(pictures));
    let target = match (options.target_size, options.training_type) {
        (Some(t), _) => Some((t, "given".to_string())),
        (None, Some(kind)) => {
            let (lo, hi) = kind.expected_images();
            Some((
                hi,
                format!(
                    "{} LoRA usually trains on {lo}–{hi} pictures",
                    kind.with_article()
                ),
            ))
        }
        (None, None) => None,
    };
    let subset = target
        .filter(|(t, _)| *t > 0 && *t < n)
        .map(|(t, why)| subset_of(pictures, t, why, super::dedup::SURE_DISTANCE + 2));
    let kept = subset.as_ref().map_or(n, |s| s.keep.len());
    let regularization = options
        .training_type
        .map(|kind| regularization_advice(kind, kept));
    Ok(CurationReport {
        folder: workspace.display_path(dir),
        pictures: n,
        similar_threshold: options.similar_threshold,
        pictures_in_clusters: clusters.iter().map(|c| c.members.len()).sum(),
        clusters,
        variety,
        subset,
        regularization,
        unreadable: folder.unreadable,
    })
}

impl CurationReport {
    /// The short plain-language paragraph shown to the person.
    pub fn plain_summary(&self) -> String {
        let v = &self.variety;
        let verdict = match v.rating {
            VarietyRating::Varied => "varied",
            VarietyRating::SomeRepetition => "somewhat repetitive",
            VarietyRating::Repetitive => "repetitive",
        };
        if self.pictures == 0 {
            return format!(
                "There are no pictures in `{}` to compare: put the training pictures there first.",
                self.folder
            );
        }
        let mut out = format!(
            "Looked at {} pictures in `{}`: variety {}/100 ({verdict}).",
            self.pictures, self.folder, v.score
        );
        if self.clusters.is_empty() {
            out.push_str(" No pictures look too alike.");
        } else {
            let biggest = &self.clusters[0];
            out.push_str(&format!(
                " {} pictures fall into {} group{} of look-alikes (the largest: {} pictures like `{}`); a LoRA leans towards whatever it sees most, so thin out big groups.",
                self.pictures_in_clusters,
                self.clusters.len(),
                if self.clusters.len() == 1 { "" } else { "s" },
                biggest.members.len(),
                biggest.representative
            ));
        }
        if let Some(s) = &self.subset {
            out.push_str(&format!(
                " To get down to {} pictures ({}), keep the {} listed in `subset.keep`, chosen so each adds a look the others lack; the {} left out are closest to a kept one.",
                s.target_size,
                s.target_reason,
                s.keep.len(),
                s.leave_out.len()
            ));
        }
        if let Some(r) = &self.regularization {
            out.push(' ');
            out.push_str(&r.advice);
        }
        if !self.unreadable.is_empty() {
            out.push_str(&format!(
                " {} pictures could not be read and were left out.",
                self.unreadable.len()
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataset::dedup_bench::{SetSpec, base_picture, encode, img_dir, write_labelled_set};
    use crate::studio::NoProgress;
    use image::{DynamicImage, ImageFormat};

    #[test]
    fn clusters_variety_and_subset_on_a_set_with_copies() {
        let dir = tempfile::tempdir().unwrap();
        let ws = Workspace::open(dir.path()).unwrap();
        let set = ws.root().join("set");
        write_labelled_set(
            &set,
            &SetSpec {
                base: 12,
                with_variants: 3,
                hard_negative_families: 0,
                size: 256,
                captions: false,
                seed: 9,
            },
        )
        .unwrap();
        let options = CurateOptions {
            target_size: Some(12),
            training_type: Some(TrainingType::Character),
            ..CurateOptions::default()
        };
        let report = curate_dataset(&img_dir(&set), &ws, &options, &NoProgress).unwrap();
        assert_eq!(report.pictures, 27);
        // Each original with its 5 copies is one cluster (maybe more look-alikes).
        assert!(report.clusters.len() >= 3, "{}", report.plain_summary());
        assert!(report.pictures_in_clusters >= 18);
        assert!(report.variety.score < 80, "{:?}", report.variety);
        let subset = report.subset.as_ref().unwrap();
        assert_eq!(subset.keep.len(), 12);
        assert_eq!(subset.leave_out.len(), 15);
        // The subset keeps at most one picture of each original's family.
        for family in ["b000000", "b000004", "b000008"] {
            let kept = subset
                .keep
                .iter()
                .filter(|k| k.path.contains(family))
                .count();
            assert_eq!(kept, 1, "{family}: {:?}", subset.keep);
        }
        let reg = report.regularization.as_ref().unwrap();
        assert!(reg.recommended && reg.suggested_count == 24);
        assert!(report.plain_summary().contains("variety"));
    }

    #[test]
    fn distinct_pictures_score_high_and_need_no_subset() {
        let dir = tempfile::tempdir().unwrap();
        let ws = Workspace::open(dir.path()).unwrap();
        let pics = ws.root().join("pics");
        std::fs::create_dir_all(&pics).unwrap();
        for seed in 0..10u64 {
            let img = DynamicImage::ImageRgb8(base_picture(seed * 7 + 1, 256));
            std::fs::write(
                pics.join(format!("p{seed}.png")),
                encode(&img, ImageFormat::Png, 95).unwrap(),
            )
            .unwrap();
        }
        let options = CurateOptions {
            training_type: Some(TrainingType::Style),
            ..CurateOptions::default()
        };
        let report = curate_dataset(&pics, &ws, &options, &NoProgress).unwrap();
        assert!(report.variety.score >= 80, "{:?}", report.variety);
        assert!(
            report.subset.is_none(),
            "10 pictures is inside a style's 20–100"
        );
        assert!(!report.regularization.as_ref().unwrap().recommended);
    }

    #[test]
    fn mean_distance_matches_the_definition() {
        let p = |h: u64| HashedPicture {
            path: Default::default(),
            shown: String::new(),
            file_size: 0,
            content: String::new(),
            hashed: crate::dataset::phash::HashedFile {
                hash: PictureHash {
                    hash: h,
                    mirrored: 0,
                    centre: 0,
                    centre_mirrored: 0,
                },
                width: 1,
                height: 1,
                format: "png".into(),
                small: Vec::new(),
                colour: None,
                windows: Vec::new(),
            },
            caption: None,
        };
        let pics = [p(0), p(0b111), p(u64::MAX)];
        // Pairs: 3, 64, 61 → mean 42.67
        assert!((mean_pair_distance(&pics) - 128.0 / 3.0).abs() < 1e-9);
    }
}
