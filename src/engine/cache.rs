//! Latent caching: images and captions in, the [`LatentDataset`] file the
//! training loop reads out. Each image is fitted to the aspect-ratio bucket
//! closest to its own shape (about `resolution²` pixels, sides multiples of
//! `bucket_step`), resized to fill and centre-cropped, scaled to [-1, 1],
//! and encoded by the VAE (the distribution's mean, as kohya's cache does);
//! its caption becomes CLIP token ids.

use std::path::{Path, PathBuf};

use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};

use super::EngineError;
use super::tokenizer::ClipTokenizer;
use super::train::{LatentDataset, LatentSample};
use super::vae::AutoencoderKlEncoder;

/// One image and its caption.
#[derive(Debug, Clone, PartialEq)]
pub struct CacheItem {
    pub image: PathBuf,
    pub caption: String,
}

/// The smallest and largest bucket side for this resolution and step: half
/// the resolution (floored to a multiple of `step`, at least `step`) and
/// twice it. At SD1.5's 512 px with a step of 64 these are kohya's defaults
/// (`min_bucket_reso` 256, `max_bucket_reso` 1024), and they are what the
/// LoRA's `ss_min_bucket_reso` and `ss_max_bucket_reso` say.
pub fn bucket_side_range(resolution: usize, step: usize) -> (usize, usize) {
    let step = step.max(1);
    let min = (resolution / 2 / step * step).max(step);
    (min, (resolution * 2).max(min))
}

/// Every bucket `(width, height)` the engine may use, sorted by width, then
/// height, made by kohya's rule (sd-scripts `make_bucket_resolutions`) with
/// the sides of [`bucket_side_range`]: the square of the resolution, and for
/// each width from the smallest side to the largest in steps of `step`, the
/// height that keeps about `resolution²` pixels (floored to a multiple of
/// `step`, at most the largest side), kept when it is at least the smallest
/// side, together with its transpose, so a tall picture has the same
/// choices as a wide one.
pub fn bucket_resolutions(resolution: usize, step: usize) -> Vec<(usize, usize)> {
    let step = step.max(1);
    let (min, max) = bucket_side_range(resolution, step);
    let area = resolution * resolution;
    let square = resolution / step * step;
    let mut buckets = vec![(square.max(step), square.max(step))];
    let mut w = min;
    while w <= max {
        let h = ((area / w) / step * step).min(max);
        if h >= min {
            buckets.push((w, h));
            buckets.push((h, w));
        }
        w += step;
    }
    buckets.sort_unstable();
    buckets.dedup();
    buckets
}

/// The bucket `(width, height)` for an image of this shape, as kohya picks
/// it: the bucket of the image's own size if there is one, else the first of
/// [`bucket_resolutions`] whose width/height is nearest the image's.
pub fn choose_bucket(width: u32, height: u32, resolution: usize, step: usize) -> (usize, usize) {
    let buckets = bucket_resolutions(resolution, step);
    let own = (width as usize, height as usize);
    if buckets.contains(&own) {
        return own;
    }
    let target = width.max(1) as f64 / height.max(1) as f64;
    let mut best = (resolution, resolution);
    let mut best_err = f64::INFINITY;
    for (w, h) in buckets {
        let err = (w as f64 / h as f64 - target).abs();
        if err < best_err {
            best_err = err;
            best = (w, h);
        }
    }
    best
}

fn load_image(path: &Path, size: (usize, usize)) -> Result<Vec<f32>, EngineError> {
    let bad = |reason: String| EngineError::BadDataset {
        path: path.to_path_buf(),
        reason,
    };
    let image = image::open(path).map_err(|e| bad(e.to_string()))?;
    let fitted = image.resize_to_fill(
        size.0 as u32,
        size.1 as u32,
        image::imageops::FilterType::Lanczos3,
    );
    let rgb = fitted.to_rgb8();
    let (w, h) = (size.0, size.1);
    // HWC u8 → CHW in [-1, 1]
    let mut chw = vec![0f32; 3 * w * h];
    for (x, y, pixel) in rgb.enumerate_pixels() {
        for c in 0..3 {
            chw[c * w * h + y as usize * w + x as usize] = pixel[c] as f32 / 127.5 - 1.0;
        }
    }
    Ok(chw)
}

/// Encodes every item; one image at a time, so memory stays at one image.
/// `progress(done, total, picture)` is called before the first picture
/// (`done` = 0) and after each.
#[allow(clippy::too_many_arguments)]
pub fn cache_latents<B: Backend>(
    items: &[CacheItem],
    vae: &AutoencoderKlEncoder<B>,
    tokenizer: &ClipTokenizer,
    resolution: usize,
    bucket_step: usize,
    seq_len: usize,
    device: &B::Device,
    progress: &mut dyn FnMut(usize, usize, &Path),
) -> Result<LatentDataset, EngineError> {
    let mut samples = Vec::with_capacity(items.len());
    if let Some(first) = items.first() {
        progress(0, items.len(), &first.image);
    }
    for item in items {
        let (iw, ih) =
            image::image_dimensions(&item.image).map_err(|e| EngineError::BadDataset {
                path: item.image.clone(),
                reason: e.to_string(),
            })?;
        let (w, h) = choose_bucket(iw, ih, resolution, bucket_step);
        let pixels = load_image(&item.image, (w, h))?;
        let images = Tensor::<B, 4>::from_data(TensorData::new(pixels, [1, 3, h, w]), device);
        let latents = vae.encode(images, false); // [1, 4, h/8, w/8]
        let [_, c, lh, lw] = latents.dims();
        let values = latents
            .into_data()
            .convert::<f32>()
            .to_vec::<f32>()
            .map_err(|e| EngineError::BadDataset {
                path: item.image.clone(),
                reason: format!("{e:?}"),
            })?;
        samples.push(LatentSample {
            latents: values,
            shape: [c, lh, lw],
            input_ids: tokenizer.encode_padded(&item.caption, seq_len),
            caption: Some(item.caption.clone()),
            image_size: Some((iw, ih)),
            folder: item
                .image
                .parent()
                .and_then(Path::file_name)
                .map(|n| n.to_string_lossy().into_owned()),
        });
        progress(samples.len(), items.len(), &item.image);
    }
    if samples.is_empty() {
        return Err(EngineError::BadDataset {
            path: PathBuf::new(),
            reason: "no images to cache".into(),
        });
    }
    Ok(LatentDataset {
        samples,
        fingerprint: None,
    })
}

/// Writes a dataset to `path` atomically.
pub fn write_cache(path: &Path, dataset: &LatentDataset) -> Result<(), EngineError> {
    let bytes = dataset
        .to_bytes()
        .map_err(|reason| EngineError::BadDataset {
            path: path.to_path_buf(),
            reason,
        })?;
    crate::studio::write_atomic(path, &bytes)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::TestBackend;
    use crate::engine::vae::VaeConfig;

    #[test]
    fn sd15_buckets_follow_the_aspect_ratio() {
        assert_eq!(choose_bucket(1000, 1000, 512, 64), (512, 512));
        let (w, h) = choose_bucket(1600, 900, 512, 64);
        assert!(
            w > h && w % 64 == 0 && h % 64 == 0 && w * h <= 512 * 512,
            "{w}x{h}"
        );
        let (w, h) = choose_bucket(900, 1600, 512, 64);
        assert!(h > w, "{w}x{h}");
    }

    #[test]
    fn sd15_at_512_px_has_kohyas_default_buckets() {
        // kohya's rule with its defaults (min_bucket_reso 256, max_bucket_reso
        // 1024, bucket_reso_steps 64) for a 512 x 512 area, written out here
        // as sd-scripts states it: the square, and every width of the range
        // with the height of the same area (floored to the step, at most the
        // largest side) when that height is in range, both ways round
        let mut kohya = std::collections::BTreeSet::from([(512, 512)]);
        for w in (256..=1024).step_by(64) {
            let h = std::cmp::min(1024, 512 * 512 / w / 64 * 64);
            if h >= 256 {
                kohya.insert((w, h));
                kohya.insert((h, w));
            }
        }
        let ours: std::collections::BTreeSet<_> = bucket_resolutions(512, 64).into_iter().collect();
        assert_eq!(ours, kohya);
        assert_eq!(bucket_side_range(512, 64), (256, 1024));
        let sorted = bucket_resolutions(512, 64);
        assert!(sorted.windows(2).all(|p| p[0] < p[1]), "{sorted:?}");
    }

    #[test]
    fn a_tall_picture_gets_the_transpose_of_the_same_wide_pictures_bucket() {
        for (w, h) in [
            (3000, 1000),
            (2100, 700),
            (1600, 900),
            (4000, 1000),
            (1200, 1000),
        ] {
            let (bw, bh) = choose_bucket(w, h, 512, 64);
            assert_eq!(choose_bucket(h, w, 512, 64), (bh, bw), "{w}x{h}");
        }
        // a picture of a bucket's own size keeps it
        assert_eq!(choose_bucket(704, 320, 512, 64), (704, 320));
    }

    #[test]
    fn images_of_two_shapes_land_in_two_buckets_and_reload() {
        let dir = tempfile::tempdir().unwrap();
        let wide = dir.path().join("wide.png");
        let tall = dir.path().join("tall.png");
        image::RgbImage::from_fn(40, 20, |x, y| {
            image::Rgb([(x * 6) as u8, (y * 12) as u8, 90])
        })
        .save(&wide)
        .unwrap();
        image::RgbImage::from_fn(20, 40, |x, _| image::Rgb([30, (x * 12) as u8, 200]))
            .save(&tall)
            .unwrap();
        let vocab = r#"{"<|startoftext|>": 0, "<|endoftext|>": 1, "ink</w>": 2, "fox</w>": 3}"#;
        let tokenizer =
            ClipTokenizer::from_strs(vocab, "#version: 0.2\ni n\nin k</w>\nf o\nfo x</w>\n")
                .unwrap();
        let device = Default::default();
        let vae = AutoencoderKlEncoder::<TestBackend>::init(&VaeConfig::tiny(), &device);
        let items = [
            CacheItem {
                image: wide,
                caption: "ink fox".into(),
            },
            CacheItem {
                image: tall,
                caption: "fox".into(),
            },
        ];
        let mut seen = Vec::new();
        let data = cache_latents(
            &items,
            &vae,
            &tokenizer,
            16,
            4,
            8,
            &device,
            &mut |d, t, _| seen.push((d, t)),
        )
        .unwrap();
        let [_, h0, w0] = data.samples[0].shape;
        let [_, h1, w1] = data.samples[1].shape;
        assert!(
            w0 > h0 && h1 > w1,
            "{:?} {:?}",
            data.samples[0].shape,
            data.samples[1].shape
        );
        assert_eq!(data.samples[0].input_ids, vec![0, 2, 3, 1, 1, 1, 1, 1]);
        // picture N of M, from before the first to the last
        assert_eq!(seen, vec![(0, 2), (1, 2), (2, 2)]);
        let path = dir.path().join("cache.safetensors");
        write_cache(&path, &data).unwrap();
        assert_eq!(LatentDataset::load(&path).unwrap(), data);
        // two sizes never share a batch
        let batches = data.epoch_batches(2, 1, None);
        assert_eq!(batches.len(), 2);
    }
}
