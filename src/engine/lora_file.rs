//! LoRA files in kohya's format, which ComfyUI's LoraLoader, A1111/Forge and
//! kohya's own tools read: per adapted layer `NAME.lora_down.weight`
//! (`[rank, in]` or `[rank, in, k, k]`), `NAME.lora_up.weight`
//! (`[out, rank]` or `[out, rank, 1, 1]`) and `NAME.alpha` (a 0-d f32), where
//! NAME is `lora_unet_` or `lora_te_` plus the diffusers module path with
//! `.` → `_` for SD1.5; for SDXL kohya names the UNet's modules by the
//! original (SGM) layout (`lora_unet_input_blocks_4_1_proj_in`) and the text
//! encoders `lora_te1_` / `lora_te2_` ([`LoraNaming`]). Training facts go in
//! `ss_*` metadata as kohya writes them, plus the SAI `modelspec.*` keys (see
//! [`super::kohya_metadata`]).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData, bf16, f16};
use safetensors::tensor::{Dtype, TensorView};

use super::EngineError;
use super::config::{Architecture, SavePrecision};
use super::ldm;
use super::model::LoraModel;
use super::safetensors_file::SafetensorsFile;
use super::weights::LoadReport;

/// One tensor of a kohya file, in kohya's layout.
#[derive(Debug, Clone, PartialEq)]
pub struct KohyaTensor {
    pub name: String,
    pub shape: Vec<usize>,
    pub values: Vec<f32>,
}

/// How kohya names an architecture's adapters.
#[derive(Debug, Clone)]
pub struct LoraNaming {
    /// SDXL: the UNet's rename table, to name modules by their SGM keys.
    unet_ldm: Option<Vec<ldm::Rename>>,
    /// SDXL: `lora_te1_` / `lora_te2_` instead of `lora_te_`.
    two_encoders: bool,
}

impl LoraNaming {
    pub fn of(arch: Architecture) -> Self {
        let sdxl = arch.is_sdxl();
        Self {
            unet_ldm: sdxl.then(|| ldm::unet_table(&arch.unet())),
            two_encoders: arch.clip2().is_some(),
        }
    }

    /// The kohya name of the module at `path` (`["unet", "down_blocks", "0", …]`).
    pub fn module_name(&self, path: &[String]) -> Option<String> {
        let (first, rest) = path.split_first()?;
        let prefix = match (first.as_str(), self.two_encoders) {
            ("unet", _) => "lora_unet_",
            ("text_encoder", false) => "lora_te_",
            ("text_encoder", true) => "lora_te1_",
            ("text_encoder_2", _) => "lora_te2_",
            _ => return None,
        };
        let body = match (&self.unet_ldm, first.as_str()) {
            (Some(table), "unet") => {
                // the table renames keys; a module's key is its weight's
                let key = ldm::to_ldm(&format!("{}.weight", rest.join(".")), table)?;
                key.strip_suffix(".weight")?.replace('.', "_")
            }
            _ => rest.join("_"),
        };
        Some(format!("{prefix}{body}"))
    }
}

/// Where an adapter parameter sits: its module's kohya name, whether it is
/// `down` or `up`, and whether its layer is a linear one.
struct AdapterSlot {
    module: String,
    is_down: bool,
    is_linear: bool,
}

fn adapter_slot(path: &[(String, String)], naming: &LoraNaming) -> Option<AdapterSlot> {
    let lora_at = path.iter().position(|(name, _)| name == "lora")?;
    let (leaf, parent) = path.last()?;
    let names: Vec<String> = path[..lora_at].iter().map(|(n, _)| n.clone()).collect();
    Some(AdapterSlot {
        module: naming.module_name(&names)?,
        is_down: leaf == "down",
        is_linear: parent == "Struct:LinearLora",
    })
}

/// The alphas the adapters were built with: `linear` for linear and 1×1
/// layers, `conv` for 3×3 (kohya's `network_alpha` / `conv_alpha`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Alphas {
    pub linear: f64,
    pub conv: f64,
}

impl Alphas {
    fn for_down(&self, down_shape: &[usize]) -> f64 {
        match down_shape {
            [_, _, k, _] if *k > 1 => self.conv,
            _ => self.linear,
        }
    }
}

/// Every adapter of the model as kohya tensors, sorted by name, named as
/// kohya names them for `arch`.
pub fn kohya_tensors<B: Backend>(
    model: &LoraModel<B>,
    alphas: Alphas,
    arch: Architecture,
) -> Vec<KohyaTensor> {
    struct Collect {
        path: Vec<(String, String)>,
        out: BTreeMap<String, KohyaTensor>,
        alphas: Alphas,
        naming: LoraNaming,
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
            let Some(slot) = adapter_slot(&self.path, &self.naming) else {
                return;
            };
            let tensor = param.val();
            // linear adapters are stored [in, r] / [r, out]; kohya wants the transposes
            let data = if slot.is_linear && D == 2 {
                tensor.transpose().into_data()
            } else {
                tensor.into_data()
            };
            let shape = data.shape.to_vec();
            let values = data.convert::<f32>().to_vec::<f32>().unwrap_or_default();
            let suffix = if slot.is_down {
                "lora_down.weight"
            } else {
                "lora_up.weight"
            };
            if slot.is_down {
                let alpha = self.alphas.for_down(&shape);
                self.out.insert(
                    format!("{}.alpha", slot.module),
                    KohyaTensor {
                        name: format!("{}.alpha", slot.module),
                        shape: Vec::new(),
                        values: vec![alpha as f32],
                    },
                );
            }
            let name = format!("{}.{suffix}", slot.module);
            self.out.insert(
                name.clone(),
                KohyaTensor {
                    name,
                    shape,
                    values,
                },
            );
        }
    }
    let mut collect = Collect {
        path: Vec::new(),
        out: BTreeMap::new(),
        alphas,
        naming: LoraNaming::of(arch),
    };
    model.visit(&mut collect);
    collect.out.into_values().collect()
}

/// Serialises kohya tensors with metadata; weights in `precision`, alphas
/// always f32.
pub fn serialize_lora(
    tensors: &[KohyaTensor],
    metadata: &BTreeMap<String, String>,
    precision: SavePrecision,
) -> Result<Vec<u8>, String> {
    let encoded: Vec<(&KohyaTensor, Dtype, Vec<u8>)> = tensors
        .iter()
        .map(|t| {
            let is_alpha = t.name.ends_with(".alpha");
            let (dtype, bytes) = match (precision, is_alpha) {
                (SavePrecision::Fp32, _) | (_, true) => (
                    Dtype::F32,
                    t.values.iter().flat_map(|v| v.to_le_bytes()).collect(),
                ),
                (SavePrecision::Fp16, false) => (
                    Dtype::F16,
                    t.values
                        .iter()
                        .flat_map(|v| f16::from_f32(*v).to_le_bytes())
                        .collect(),
                ),
                (SavePrecision::Bf16, false) => (
                    Dtype::BF16,
                    t.values
                        .iter()
                        .flat_map(|v| bf16::from_f32(*v).to_le_bytes())
                        .collect(),
                ),
            };
            (t, dtype, bytes)
        })
        .collect();
    let views = encoded
        .iter()
        .map(|(t, dtype, bytes)| {
            TensorView::new(*dtype, t.shape.clone(), bytes)
                .map(|view| (t.name.clone(), view))
                .map_err(|e| format!("`{}`: {e}", t.name))
        })
        .collect::<Result<Vec<_>, String>>()?;
    let metadata: HashMap<String, String> = metadata.clone().into_iter().collect();
    safetensors::serialize(views, Some(metadata)).map_err(|e| e.to_string())
}

/// Writes the model's adapters to `path` atomically, with `metadata` and
/// the `sshs_model_hash` / `sshs_legacy_hash` kohya adds (computed, as kohya
/// does, on the file serialised with only the `ss_*` keys).
pub fn save_lora<B: Backend>(
    path: &Path,
    model: &LoraModel<B>,
    (alphas, arch): (Alphas, Architecture),
    metadata: &BTreeMap<String, String>,
    precision: SavePrecision,
) -> Result<usize, EngineError> {
    let tensors = kohya_tensors(model, alphas, arch);
    let bad = |reason: String| EngineError::BadLora {
        path: path.to_path_buf(),
        reason,
    };
    let ss_only: BTreeMap<String, String> = metadata
        .iter()
        .filter(|(k, _)| k.starts_with("ss_"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let for_hash = serialize_lora(&tensors, &ss_only, precision).map_err(bad)?;
    let (model_hash, legacy_hash) = super::kohya_metadata::addnet_hashes(&for_hash);
    let mut metadata = metadata.clone();
    metadata.insert("sshs_model_hash".into(), model_hash);
    metadata.insert("sshs_legacy_hash".into(), legacy_hash);
    let bytes = serialize_lora(&tensors, &metadata, precision).map_err(bad)?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|source| {
            EngineError::Write(crate::studio::StudioError::Create {
                path: dir.to_path_buf(),
                source,
            })
        })?;
    }
    crate::studio::write_atomic(path, &bytes)?;
    Ok(tensors.len())
}

/// Loads a kohya LoRA into the model's adapters at `strength` (ComfyUI's
/// "strength_model"): `up` is scaled by `strength · file_alpha / our_alpha`,
/// so the applied delta is exactly what the file means. Strength 0 zeroes
/// every adapter. The report lists adapters the file lacks (`missing`) and
/// file keys no adapter takes (`unexpected`).
pub fn load_lora<B: Backend>(
    model: LoraModel<B>,
    file: &SafetensorsFile,
    (alphas, arch): (Alphas, Architecture),
    strength: f64,
    device: &B::Device,
) -> (LoraModel<B>, LoadReport) {
    let mut loader = LoraLoader::<B> {
        path: Vec::new(),
        file,
        alphas,
        naming: LoraNaming::of(arch),
        strength,
        device: device.clone(),
        used: Vec::new(),
        report: LoadReport {
            component: "lora".into(),
            ..LoadReport::default()
        },
    };
    let model = model.map(&mut loader);
    let mut report = loader.report;
    for key in file.keys() {
        if !loader.used.iter().any(|u| u == key) {
            report.unexpected.push(key.to_string());
        }
    }
    (model, report)
}

struct LoraLoader<'a, B: Backend> {
    path: Vec<(String, String)>,
    file: &'a SafetensorsFile,
    alphas: Alphas,
    naming: LoraNaming,
    strength: f64,
    device: B::Device,
    used: Vec<String>,
    report: LoadReport,
}

impl<B: Backend> LoraLoader<'_, B> {
    fn alpha_in_file(&mut self, module: &str, rank: usize) -> f64 {
        let key = format!("{module}.alpha");
        match self.file.read_f32(&key) {
            Ok((values, _)) => {
                self.used.push(key);
                values
                    .first()
                    .copied()
                    .map(f64::from)
                    .unwrap_or(rank as f64)
            }
            // ComfyUI: no alpha means scale 1, i.e. alpha = rank
            Err(_) => rank as f64,
        }
    }
}

impl<B: Backend> ModuleMapper<B> for LoraLoader<'_, B> {
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

    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let Some(slot) = adapter_slot(&self.path, &self.naming) else {
            return param;
        };
        let suffix = if slot.is_down {
            "lora_down.weight"
        } else {
            "lora_up.weight"
        };
        let key = format!("{}.{suffix}", slot.module);
        let ours = param.lazy_shape().to_vec();
        // the file's layout is the transpose for linear adapters
        let expected: Vec<usize> = if slot.is_linear {
            ours.iter().rev().copied().collect()
        } else {
            ours.clone()
        };
        let (values, shape) = match self.file.read_f32(&key) {
            Ok(v) => v,
            Err(_) => {
                self.report.missing.push(key);
                return param;
            }
        };
        self.used.push(key.clone());
        if shape != expected {
            self.report.mismatched.push(super::weights::ShapeMismatch {
                key,
                expected,
                found: shape,
            });
            return param;
        }
        let mut data = TensorData::new(values, shape);
        if !slot.is_down {
            // rank is the up tensor's second dimension in kohya's layout
            let rank = expected.get(1).copied().unwrap_or(1);
            let ours_alpha = self.alphas_for_module(&slot);
            let file_alpha = self.alpha_in_file(&slot.module, rank);
            let factor = self.strength * file_alpha / ours_alpha;
            data = TensorData::new(
                data.to_vec::<f32>()
                    .unwrap_or_default()
                    .into_iter()
                    .map(|v| (v as f64 * factor) as f32)
                    .collect(),
                data.shape.clone(),
            );
        }
        let mut tensor = Tensor::<B, D>::from_data(data, &self.device);
        if slot.is_linear {
            tensor = tensor.transpose();
        }
        self.report.loaded += 1;
        let require_grad = param.is_require_grad();
        Param::initialized(param.id, tensor.set_require_grad(require_grad))
    }
}

impl<B: Backend> LoraLoader<'_, B> {
    /// Our alpha for this module: conv alpha for 3×3 adapters.
    fn alphas_for_module(&self, slot: &AdapterSlot) -> f64 {
        let down_key = format!("{}.lora_down.weight", slot.module);
        match self.file.shape(&down_key) {
            Some(shape) => self.alphas.for_down(shape),
            None => self.alphas.linear,
        }
    }
}
