//! Random checkpoints of any architecture the engine builds, in either key
//! layout: `ategnatos engine init-checkpoint --arch sd15 OUT.safetensors`.
//!
//! The file has every tensor a real checkpoint of that architecture has for
//! the parts the engine uses (UNet, text encoder, VAE encoder), under the
//! real names and in the real shapes (PyTorch's `[out, in]` linear weights,
//! the ldm VAE's 1×1-conv attention), with random values of a sensible
//! scale: norms at 1 and 0, weights uniform in ±1/√fan-in. So the whole
//! path — header check, loading, caching, training, the LoRA's key names —
//! can be run on a full-size model without downloading one, and on the toy
//! architectures in seconds. Tensors are generated and written one at a
//! time: a 4 GB checkpoint is written with one tensor in memory.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::Tensor;
use burn::tensor::backend::Backend;
use safetensors::Dtype;

use super::EngineError;
use super::config::{Architecture, NetworkSection};
use super::ldm;
use super::model::LoraModel;
use super::rng::SplitMix64;
use super::safetensors_file::{StreamWriter, TensorEntry, encode_floats};
use super::vae::AutoencoderKlEncoder;
use super::weights::{Component, Layout};

/// How a tensor's random values are drawn.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Init {
    Ones,
    Zeros,
    /// Uniform in ±bound.
    Uniform(f32),
}

/// One base tensor of an architecture, as a checkpoint stores it.
#[derive(Debug, Clone, PartialEq)]
pub struct BaseTensor {
    pub component: Component,
    /// The diffusers name (our module path).
    pub name: String,
    /// The shape in the file (linear weights `[out, in]`).
    pub shape: Vec<usize>,
    pub init: Init,
}

impl BaseTensor {
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }
}

/// Every base tensor of `module` (one component), from its lazy
/// parameters: nothing is allocated.
pub fn module_tensors<B: Backend, M: Module<B>>(
    module: &M,
    component: Component,
) -> Vec<BaseTensor> {
    struct Collect {
        component: Component,
        path: Vec<(String, String)>,
        out: Vec<BaseTensor>,
    }
    impl<B: Backend> ModuleVisitor<B> for Collect {
        fn enter_module(&mut self, name: &str, container_type: &str) {
            if crate::engine::weights::is_variant(container_type) {
                return;
            }
            self.path
                .push((name.to_string(), container_type.to_string()));
        }
        fn exit_module(&mut self, _: &str, container_type: &str) {
            if crate::engine::weights::is_variant(container_type) {
                return;
            }
            self.path.pop();
        }
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
            if self.path.iter().any(|(n, _)| n == "lora") {
                return;
            }
            let name = self
                .path
                .iter()
                .map(|(n, _)| n.as_str())
                .collect::<Vec<_>>()
                .join(".");
            let (leaf, parent) = self.path.last().cloned().unwrap_or_default();
            let shape = param.lazy_shape().to_vec();
            let (shape, init) = match (parent.as_str(), leaf.as_str()) {
                ("Struct:GroupNorm" | "Struct:LayerNorm", "weight") => (shape, Init::Ones),
                ("Struct:GroupNorm" | "Struct:LayerNorm", _) => (shape, Init::Zeros),
                ("Struct:Embedding", _) => (shape, Init::Uniform(0.02 * 3f32.sqrt())),
                ("Struct:Linear", "weight") => {
                    let bound = 1.0 / (shape[0] as f32).sqrt();
                    (vec![shape[1], shape[0]], Init::Uniform(bound))
                }
                ("Struct:Conv2d", "weight") => {
                    let fan_in: usize = shape[1..].iter().product();
                    (shape, Init::Uniform(1.0 / (fan_in as f32).sqrt()))
                }
                _ => (shape, Init::Uniform(0.02)),
            };
            self.out.push(BaseTensor {
                component: self.component,
                name,
                shape,
                init,
            });
        }
    }
    let mut collect = Collect {
        component,
        path: Vec::new(),
        out: Vec::new(),
    };
    module.visit(&mut collect);
    collect.out
}

/// Every base tensor of `arch`'s UNet, text encoder(s) and VAE encoder.
pub fn base_tensors(arch: Architecture) -> Vec<BaseTensor> {
    type B = super::CpuBackend;
    let device = Default::default();
    let model = LoraModel::<B>::init(
        arch,
        &NetworkSection {
            train_text_encoder: false,
            ..NetworkSection::default()
        },
        &device,
    );
    let vae = AutoencoderKlEncoder::<B>::init(&arch.vae(), &device);
    let mut out = module_tensors(&model.unet, Component::Unet);
    out.extend(module_tensors(&model.text_encoder, Component::TextEncoder));
    if let Some(second) = &model.text_encoder_2 {
        out.extend(module_tensors(second, Component::TextEncoder2));
    }
    out.extend(module_tensors(&vae, Component::Vae));
    out
}

/// One tensor as a file stores it: its name and shape there, and the base
/// tensors it is made of — one, or several stacked by rows (OpenCLIP's
/// fused q, k, v), or one transposed (OpenCLIP's `text_projection`).
#[derive(Debug, Clone)]
pub struct FileTensor<'a> {
    pub name: String,
    pub shape: Vec<usize>,
    pub parts: Vec<&'a BaseTensor>,
    pub transposed: bool,
}

impl<'a> FileTensor<'a> {
    /// A tensor stored as is.
    pub fn whole(name: String, tensor: &'a BaseTensor) -> Self {
        Self {
            name,
            shape: tensor.shape.clone(),
            parts: vec![tensor],
            transposed: false,
        }
    }

    fn values(&self, seed: u64) -> Vec<f32> {
        let values: Vec<f32> = self
            .parts
            .iter()
            .flat_map(|t| random_values(t, seed))
            .collect();
        match (
            self.transposed,
            self.parts.first().map(|t| t.shape.as_slice()),
        ) {
            (true, Some(&[r, c])) => super::weights::transposed(&values, r, c),
            _ => values,
        }
    }
}

/// Writes `tensors` to one file, sorted by name, generating and writing one
/// tensor at a time.
pub fn write_tensors(
    file: &Path,
    mut tensors: Vec<FileTensor<'_>>,
    dtype: Dtype,
    seed: u64,
    metadata: &BTreeMap<String, String>,
) -> std::io::Result<u64> {
    if let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    tensors.sort_by(|a, b| a.name.cmp(&b.name));
    let entries = tensors
        .iter()
        .map(|t| TensorEntry {
            name: t.name.clone(),
            dtype,
            shape: t.shape.clone(),
        })
        .collect();
    let mut writer = StreamWriter::create(file, entries, metadata)?;
    for t in &tensors {
        writer.write_next(&encode_floats(&t.values(seed), dtype))?;
    }
    writer.finish()?;
    Ok(std::fs::metadata(file)?.len())
}

/// The random values of one tensor: a generator seeded by the run's seed and
/// the tensor's name, so every tensor is the same whatever the layout.
pub fn random_values(tensor: &BaseTensor, seed: u64) -> Vec<f32> {
    let n = tensor.numel();
    match tensor.init {
        Init::Ones => vec![1.0; n],
        Init::Zeros => vec![0.0; n],
        Init::Uniform(bound) => {
            let mut h = seed ^ 0x5EED_0000;
            for b in tensor.name.bytes() {
                h = (h ^ u64::from(b)).wrapping_mul(0x100_0000_01B3);
            }
            let mut rng = SplitMix64::new(h);
            (0..n)
                .map(|_| {
                    // 24 random bits → [-1, 1)
                    let unit = (rng.next_u64() >> 40) as f32 / (1u64 << 24) as f32;
                    (unit * 2.0 - 1.0) * bound
                })
                .collect()
        }
    }
}

/// What [`write_random_checkpoint`] wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct WrittenCheckpoint {
    /// The file (ldm) or the folder (diffusers) to point `model.checkpoint` at.
    pub path: PathBuf,
    pub files: Vec<PathBuf>,
    pub tensors: usize,
    pub bytes: u64,
}

fn file_dtype(dtype: &str) -> Option<Dtype> {
    match dtype {
        "f32" | "fp32" | "float32" => Some(Dtype::F32),
        "f16" | "fp16" | "float16" => Some(Dtype::F16),
        "bf16" | "bfloat16" => Some(Dtype::BF16),
        _ => None,
    }
}

/// Where a tensor goes in `layout`: its name there with its shape, and
/// for OpenCLIP's fused attention which third of the stored tensor it is.
fn stored_as(
    t: &BaseTensor,
    layout: Layout,
    arch: Architecture,
) -> (String, Vec<usize>, Option<usize>) {
    let clip_prefix = if arch.is_sdxl() {
        ldm::SDXL_CLIP_PREFIX
    } else {
        ldm::CLIP_PREFIX
    };
    match layout {
        Layout::Diffusers => (t.name.clone(), t.shape.clone(), None),
        Layout::Ldm => match t.component {
            Component::Unet => (
                format!(
                    "{}{}",
                    ldm::UNET_PREFIX,
                    ldm::to_ldm(&t.name, &ldm::unet_table(&arch.unet())).unwrap_or_default()
                ),
                t.shape.clone(),
                None,
            ),
            Component::TextEncoder => (format!("{clip_prefix}{}", t.name), t.shape.clone(), None),
            Component::TextEncoder2 => {
                let (key, part) = ldm::to_open_clip(&t.name).unwrap_or_default();
                let mut shape = t.shape.clone();
                if key == "text_projection" {
                    shape.reverse();
                }
                if let (Some(_), Some(rows)) = (part, shape.first_mut()) {
                    *rows *= 3;
                }
                (format!("{}{key}", ldm::OPEN_CLIP_PREFIX), shape, part)
            }
            Component::Vae => {
                let mut shape = t.shape.clone();
                if t.name.contains("mid_block.attentions") && shape.len() == 2 {
                    shape.extend([1, 1]); // ldm stores the VAE attention as 1×1 convs
                }
                (
                    format!(
                        "{}{}",
                        ldm::VAE_PREFIX,
                        ldm::to_ldm(&t.name, &ldm::vae_table(&arch.vae())).unwrap_or_default()
                    ),
                    shape,
                    None,
                )
            }
        },
    }
}

/// The file tensors `list` is stored as in `layout`: OpenCLIP's q, k and v
/// of a layer become one tensor.
fn file_tensors<'a>(
    list: Vec<&'a BaseTensor>,
    layout: Layout,
    arch: Architecture,
) -> Vec<FileTensor<'a>> {
    type Parts<'a> = Vec<(usize, &'a BaseTensor)>;
    let mut out: BTreeMap<String, (FileTensor<'a>, Parts<'a>)> = BTreeMap::new();
    for t in list {
        let (name, shape, part) = stored_as(t, layout, arch);
        let entry = out.entry(name.clone()).or_insert_with(|| {
            (
                FileTensor {
                    name,
                    shape,
                    parts: Vec::new(),
                    transposed: t.component == Component::TextEncoder2
                        && t.name == "text_projection.weight"
                        && layout == Layout::Ldm,
                },
                Vec::new(),
            )
        });
        entry.1.push((part.unwrap_or(0), t));
    }
    out.into_values()
        .map(|(mut file, mut parts)| {
            parts.sort_by_key(|(i, _)| *i);
            file.parts = parts.into_iter().map(|(_, t)| t).collect();
            file
        })
        .collect()
}

/// Writes a random checkpoint of `arch` at `out`: one `.safetensors` file
/// for the ldm layout, a diffusers folder (`unet/`, `text_encoder/`, `vae/`)
/// otherwise. `dtype` is `f32`, `f16` or `bf16` (real SD1.5 files are f16
/// or f32). The toy architectures also get a toy CLIP vocabulary in
/// `tokenizer/` (beside the file, or inside the folder), so a config that
/// caches pictures runs with nothing else.
pub fn write_random_checkpoint(
    arch: Architecture,
    layout: Layout,
    dtype: &str,
    out: &Path,
    seed: u64,
) -> Result<WrittenCheckpoint, EngineError> {
    let bad = |reason: String| EngineError::BadConfig {
        path: out.to_path_buf(),
        reason,
    };
    let dtype = file_dtype(dtype)
        .ok_or_else(|| bad(format!("dtype `{dtype}` is not one of f32, f16, bf16")))?;
    let write_err = |path: &Path, e: std::io::Error| {
        EngineError::Write(crate::studio::StudioError::Create {
            path: path.to_path_buf(),
            source: e,
        })
    };
    let tensors = base_tensors(arch);
    let mut groups: BTreeMap<PathBuf, Vec<&BaseTensor>> = BTreeMap::new();
    for t in &tensors {
        let file = match layout {
            Layout::Ldm => out.to_path_buf(),
            Layout::Diffusers => out.join(t.component.diffusers_file()),
        };
        groups.entry(file).or_default().push(t);
    }
    let mut bytes = 0;
    let mut files = Vec::new();
    let mut metadata = BTreeMap::new();
    metadata.insert("format".to_string(), "pt".to_string());
    metadata.insert(
        "ategnatos.random_checkpoint".to_string(),
        format!("{} seed {seed}", arch.name()),
    );
    for (file, list) in groups {
        let named = file_tensors(list, layout, arch);
        bytes +=
            write_tensors(&file, named, dtype, seed, &metadata).map_err(|e| write_err(&file, e))?;
        files.push(file);
    }
    if arch.clip().vocab_size <= TOY_VOCAB_SIZE {
        let dir = match layout {
            Layout::Diffusers => out.join("tokenizer"),
            Layout::Ldm => out
                .parent()
                .map(|p| p.join("tokenizer"))
                .unwrap_or_else(|| PathBuf::from("tokenizer")),
        };
        write_toy_tokenizer(&dir).map_err(|e| write_err(&dir, e))?;
    }
    Ok(WrittenCheckpoint {
        path: out.to_path_buf(),
        files,
        tensors: tensors.len(),
        bytes,
    })
}

/// The vocabulary size of [`write_toy_tokenizer`]'s vocabulary.
pub const TOY_VOCAB_SIZE: usize = 64;

/// A CLIP vocabulary small enough for the toy text encoders (64 ids): the
/// two special tokens, every letter alone and word-final, and a comma.
pub fn write_toy_tokenizer(dir: &Path) -> std::io::Result<()> {
    let mut vocab = BTreeMap::new();
    vocab.insert("<|startoftext|>".to_string(), 0);
    vocab.insert("<|endoftext|>".to_string(), 1);
    for (i, c) in ('a'..='z').enumerate() {
        vocab.insert(c.to_string(), 2 + i as i64);
        vocab.insert(format!("{c}</w>"), 28 + i as i64);
    }
    vocab.insert(",</w>".to_string(), 54);
    std::fs::create_dir_all(dir)?;
    #[allow(clippy::disallowed_methods)] // a toy model's files, in the folder asked for it
    std::fs::write(
        dir.join("vocab.json"),
        serde_json::to_string(&vocab).map_err(std::io::Error::other)?,
    )?;
    #[allow(clippy::disallowed_methods)] // as above
    std::fs::write(dir.join("merges.txt"), "#version: 0.2\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::model::check_checkpoint;
    use crate::engine::weights::Checkpoint;

    #[test]
    fn random_checkpoints_of_every_toy_architecture_pass_the_header_check_in_both_layouts() {
        let dir = tempfile::tempdir().unwrap();
        for arch in [
            Architecture::Tiny,
            Architecture::Sd15Toy,
            Architecture::SdxlToy,
        ] {
            for (layout, name) in [
                (Layout::Ldm, format!("{}.safetensors", arch.name())),
                (Layout::Diffusers, format!("{}-diffusers", arch.name())),
            ] {
                let out = dir.path().join(name);
                let written = write_random_checkpoint(arch, layout, "f16", &out, 7).unwrap();
                assert_eq!(written.tensors, base_tensors(arch).len());
                let mut all = crate::engine::model::model_components(arch);
                all.push(Component::Vae);
                let ckpt = Checkpoint::open(&out, &all).unwrap();
                let reports = check_checkpoint(&ckpt, arch, &all).unwrap();
                let loaded: usize = reports.iter().map(|r| r.loaded).sum();
                assert_eq!(loaded, written.tensors, "{arch:?} {layout:?}");
                assert_eq!(reports.len(), all.len());
            }
        }
    }

    #[test]
    fn sdxl_has_the_published_tensor_counts_and_sizes() {
        // SDXL 1.0's UNet: 1680 tensors, 2,567,463,684 parameters; CLIP
        // ViT-L: 196 tensors, 123,060,480; OpenCLIP ViT-bigG with its
        // projection: 517 tensors, 694,659,840 (diffusers / transformers
        // state dicts, no position_ids buffer).
        let all = base_tensors(Architecture::Sdxl);
        let of = |c| {
            let tensors: Vec<&BaseTensor> = all.iter().filter(|t| t.component == c).collect();
            let params: usize = tensors.iter().map(|t| t.numel()).sum();
            (tensors.len(), params)
        };
        assert_eq!(of(Component::Unet), (1680, 2_567_463_684));
        assert_eq!(of(Component::TextEncoder), (196, 123_060_480));
        assert_eq!(of(Component::TextEncoder2), (517, 694_659_840));
    }

    #[test]
    fn sd15_has_the_published_tensor_count_and_size() {
        // SD1.5's UNet: 686 tensors, 859.5 M parameters; CLIP ViT-L's text
        // tower: 196 tensors (no position_ids buffer).
        let all = base_tensors(Architecture::Sd15);
        let count = |c| all.iter().filter(|t| t.component == c).count();
        assert_eq!(count(Component::Unet), 686);
        assert_eq!(count(Component::TextEncoder), 196);
        let unet_params: usize = all
            .iter()
            .filter(|t| t.component == Component::Unet)
            .map(BaseTensor::numel)
            .sum();
        assert_eq!(unet_params, 859_520_964);
    }
}
