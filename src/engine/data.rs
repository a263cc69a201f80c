//! From the artist's folders to the latent cache the loop trains on.
//!
//! With `data.folders` set, the engine lists the pictures and their
//! captions, and encodes them with the checkpoint's own VAE into
//! `data.latents` — once: the cache records a fingerprint of every picture
//! (path, size, modification time), every caption, the resolution, bucket
//! step, tokenizer and checkpoint, and is rebuilt only when one of those
//! changes. Without `data.folders`, `data.latents` must already exist.
//!
//! Captions are kept in the cache as text too, so `shuffle_caption` can
//! reorder the tags at every step (the trigger word stays first).

use std::path::{Path, PathBuf};

use burn::tensor::backend::Backend;

use super::EngineError;
use super::cache::{CacheItem, cache_latents, write_cache};
use super::config::EngineConfig;
use super::tokenizer::ClipTokenizer;
use super::train::LatentDataset;
use super::vae::AutoencoderKlEncoder;
use super::weights::{Checkpoint, Component, load_component_with_progress};

/// Picture extensions the engine reads (what `image` decodes here).
const PICTURE_EXTENSIONS: [&str; 5] = ["png", "jpg", "jpeg", "webp", "bmp"];

/// The pictures of every folder, sorted, each with its caption.
pub fn list_items(config: &EngineConfig) -> Result<Vec<CacheItem>, EngineError> {
    let ext = config.data.caption_extension.trim_start_matches('.');
    let mut items = Vec::new();
    for folder in &config.data.folders {
        let entries = std::fs::read_dir(folder).map_err(|source| EngineError::Read {
            path: folder.clone(),
            source,
        })?;
        let mut pictures: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.is_file() && is_picture(p))
            .collect();
        pictures.sort();
        for image in pictures {
            let caption_path = image.with_extension(ext);
            let caption = match std::fs::read_to_string(&caption_path) {
                Ok(text) if !text.trim().is_empty() => text.trim().to_string(),
                _ => return Err(EngineError::Uncaptioned { image }),
            };
            items.push(CacheItem { image, caption });
        }
    }
    if items.is_empty() {
        return Err(EngineError::BadDataset {
            path: config.data.folders.first().cloned().unwrap_or_default(),
            reason: "the folders hold no pictures (png, jpg, webp, bmp)".into(),
        });
    }
    Ok(items)
}

fn is_picture(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| PICTURE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

/// The folder holding CLIP's `vocab.json` and `merges.txt`: `data.tokenizer`
/// when set, else the `tokenizer/` folder of a diffusers checkpoint (or one
/// beside a single-file checkpoint), else the Hugging Face cache's copy of
/// `openai/clip-vit-large-patch14`, which SD1.5 uses.
pub fn find_tokenizer(config: &EngineConfig) -> Result<PathBuf, EngineError> {
    find_tokenizer_in(config, hf_home().as_deref())
}

/// The Hugging Face cache folder: `$HF_HOME`, else `~/.cache/huggingface`.
fn hf_home() -> Option<PathBuf> {
    std::env::var_os("HF_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache/huggingface")))
}

/// [`find_tokenizer`] with the Hugging Face cache folder given.
pub fn find_tokenizer_in(
    config: &EngineConfig,
    hf_home: Option<&Path>,
) -> Result<PathBuf, EngineError> {
    let has_files =
        |dir: &Path| dir.join("vocab.json").is_file() && dir.join("merges.txt").is_file();
    if let Some(dir) = &config.data.tokenizer {
        return if has_files(dir) {
            Ok(dir.clone())
        } else {
            Err(EngineError::NoTokenizer {
                looked: vec![dir.clone()],
            })
        };
    }
    let checkpoint = &config.model.checkpoint;
    let mut looked = Vec::new();
    if checkpoint.is_dir() {
        looked.push(checkpoint.join("tokenizer"));
    } else if let Some(parent) = checkpoint.parent() {
        looked.push(parent.join("tokenizer"));
    }
    if let Some(home) = hf_home {
        let snapshots = home.join("hub/models--openai--clip-vit-large-patch14/snapshots");
        if let Ok(entries) = std::fs::read_dir(&snapshots) {
            let mut found: Vec<PathBuf> =
                entries.filter_map(Result::ok).map(|e| e.path()).collect();
            found.sort();
            looked.extend(found);
        } else {
            looked.push(snapshots);
        }
    }
    looked
        .iter()
        .find(|d| has_files(d))
        .cloned()
        .ok_or(EngineError::NoTokenizer { looked })
}

/// Loads the tokenizer [`find_tokenizer`] finds.
pub fn load_tokenizer(config: &EngineConfig) -> Result<ClipTokenizer, EngineError> {
    Ok(open_tokenizer(config)?.0)
}

/// The tokenizer for `config` and the folder it came from: the files
/// [`find_tokenizer`] finds, or, when there are none and `data.tokenizer` is
/// not set, CLIP's own vocabulary built into this program (`None`), which
/// is what SD1.5 and both SDXL encoders read prompts with. A single-file
/// checkpoint carries no vocabulary, so this is what most users get. The
/// toy architectures have a vocabulary of their own and get no fallback.
pub fn open_tokenizer(
    config: &EngineConfig,
) -> Result<(ClipTokenizer, Option<PathBuf>), EngineError> {
    open_tokenizer_in(config, hf_home().as_deref())
}

/// [`open_tokenizer`] with the Hugging Face cache folder given.
pub fn open_tokenizer_in(
    config: &EngineConfig,
    hf_home: Option<&Path>,
) -> Result<(ClipTokenizer, Option<PathBuf>), EngineError> {
    match find_tokenizer_in(config, hf_home) {
        Ok(dir) => {
            let tokenizer =
                ClipTokenizer::from_files(&dir.join("vocab.json"), &dir.join("merges.txt"))?;
            Ok((tokenizer, Some(dir)))
        }
        Err(e)
            if config.data.tokenizer.is_none()
                && config.model.architecture.clip().vocab_size
                    == crate::clip_bpe::CLIP_VOCAB_SIZE =>
        {
            let built_in = crate::clip_bpe::clip().map_err(|reason| EngineError::BadConfig {
                path: config.data.latents.clone(),
                reason: format!("the built-in CLIP vocabulary cannot be read: {reason}"),
            })?;
            let (vocab, merges) = built_in.to_files();
            ClipTokenizer::from_strs(&vocab, &merges)
                .map(|t| (t, None))
                .map_err(|_| e)
        }
        Err(e) => Err(e),
    }
}

/// What the cache was built from, as a BLAKE3 hex digest.
pub fn fingerprint(config: &EngineConfig, items: &[CacheItem], tokenizer: Option<&Path>) -> String {
    let mut h = blake3::Hasher::new();
    let d = &config.data;
    h.update(format!("ategnatos-latents-v1 {} {}\n", d.resolution, d.bucket_step).as_bytes());
    h.update(format!("{:?}\n", config.model.architecture).as_bytes());
    if tokenizer.is_none() {
        h.update(b"built-in CLIP vocabulary\n");
    }
    let mut stamp = |p: &Path| {
        let meta = std::fs::metadata(p).ok();
        let size = meta.as_ref().map_or(0, std::fs::Metadata::len);
        let modified = meta
            .and_then(|m| m.modified().ok())
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |t| t.as_nanos());
        h.update(format!("{}\t{size}\t{modified}\n", p.display()).as_bytes());
    };
    stamp(&config.model.checkpoint);
    if config.model.checkpoint.is_dir() {
        // A diffusers folder: the VAE's own file, since a folder's stamp
        // does not change when a file inside is replaced.
        stamp(
            &config
                .model
                .checkpoint
                .join(Component::Vae.diffusers_file()),
        );
    }
    if let Some(dir) = tokenizer {
        stamp(&dir.join("vocab.json"));
        stamp(&dir.join("merges.txt"));
    }
    for item in items {
        stamp(&item.image);
    }
    for item in items {
        h.update(item.caption.as_bytes());
        h.update(b"\n");
    }
    h.finalize().to_hex().to_string()
}

/// Where the loop's data comes from.
pub struct Prepared {
    pub dataset: LatentDataset,
    /// Needed when captions are shuffled at every step.
    pub tokenizer: Option<ClipTokenizer>,
}

/// What preparing the data reports as it goes.
pub enum PrepareEvent<'a> {
    /// A line to print as is.
    Line(String),
    /// The VAE's weights: `done` of `total` tensors loaded.
    LoadingVae { done: usize, total: usize },
    /// Picture `done` of `total` encoded (`done` = 0 before the first).
    Encoded {
        done: usize,
        total: usize,
        picture: &'a Path,
    },
}

/// The latent cache for `config`: read when it is current, built (with the
/// VAE of `checkpoint`, which must have it open) when `data.folders` is set
/// and it is missing or stale.
pub fn prepare<B: Backend>(
    config: &EngineConfig,
    checkpoint: &Checkpoint,
    device: &B::Device,
    report: &mut dyn FnMut(PrepareEvent<'_>),
) -> Result<Prepared, EngineError> {
    let d = &config.data;
    if d.folders.is_empty() {
        let dataset = LatentDataset::load(&d.latents)?;
        let tokenizer = if d.shuffle_caption {
            if dataset.samples.iter().any(|s| s.caption.is_none()) {
                return Err(EngineError::BadDataset {
                    path: d.latents.clone(),
                    reason:
                        "`shuffle_caption` needs the captions, and this cache has only tokens; \
                             set `data.folders` so the engine rebuilds it"
                            .into(),
                });
            }
            Some(load_tokenizer(config)?)
        } else {
            None
        };
        return Ok(Prepared { dataset, tokenizer });
    }
    let items = list_items(config)?;
    let (tokenizer, tokenizer_dir) = open_tokenizer(config)?;
    report(PrepareEvent::Line(match &tokenizer_dir {
        Some(dir) => format!("tokenizer: {}", dir.display()),
        None => {
            "tokenizer: CLIP's own vocabulary, built in (no tokenizer folder beside the checkpoint)"
                .into()
        }
    }));
    let print = fingerprint(config, &items, tokenizer_dir.as_deref());
    if d.latents.is_file()
        && let Ok(cached) = LatentDataset::load(&d.latents)
        && cached.fingerprint.as_deref() == Some(print.as_str())
    {
        report(PrepareEvent::Line(format!(
            "latents: {} pictures, cached in {} (pictures, captions and model unchanged)",
            cached.samples.len(),
            d.latents.display()
        )));
        return Ok(Prepared {
            dataset: cached,
            tokenizer: Some(tokenizer),
        });
    }
    let arch = config.model.architecture;
    let vae_weights = checkpoint.component(Component::Vae, &arch.unet(), &arch.vae())?;
    let (vae, loaded) = load_component_with_progress(
        AutoencoderKlEncoder::<B>::init(&arch.vae(), device),
        &vae_weights,
        device,
        &mut |done, total| report(PrepareEvent::LoadingVae { done, total }),
    );
    let loaded = loaded.require_complete()?;
    report(PrepareEvent::Line(format!("loaded {}", loaded.summary())));
    let mut dataset = cache_latents(
        &items,
        &vae,
        &tokenizer,
        d.resolution,
        d.bucket_step,
        arch.clip().max_position_embeddings,
        device,
        &mut |done, total, picture| {
            report(PrepareEvent::Encoded {
                done,
                total,
                picture,
            })
        },
    )?;
    drop(vae);
    dataset.fingerprint = Some(print);
    write_cache(&d.latents, &dataset)?;
    report(PrepareEvent::Line(format!(
        "caching latents: {} pictures encoded into {}",
        dataset.samples.len(),
        d.latents.display()
    )));
    Ok(Prepared {
        dataset,
        tokenizer: Some(tokenizer),
    })
}
