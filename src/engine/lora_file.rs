//! LoRA files in kohya's format, which ComfyUI's LoraLoader, A1111/Forge and
//! kohya's own tools read: per adapted layer `NAME.lora_down.weight`
//! (`[rank, in]` or `[rank, in, k, k]`), `NAME.lora_up.weight`
//! (`[out, rank]` or `[out, rank, 1, 1]`) and `NAME.alpha` (a 0-d f32), where
//! NAME is `lora_unet_` or `lora_te_` plus the diffusers module path with
//! `.` → `_`. Training facts go in `ss_*` metadata as kohya writes them,
//! plus the SAI `modelspec.*` keys.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData, bf16, f16};
use safetensors::tensor::{Dtype, TensorView};

use super::EngineError;
use super::config::SavePrecision;
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

/// The kohya name of the module at `path` (`["unet", "down_blocks", "0", …]`).
pub fn kohya_module_name(path: &[String]) -> Option<String> {
    let (first, rest) = path.split_first()?;
    let prefix = match first.as_str() {
        "unet" => "lora_unet_",
        "text_encoder" => "lora_te_",
        _ => return None,
    };
    Some(format!("{prefix}{}", rest.join("_")))
}

/// Where an adapter parameter sits: its module's kohya name, whether it is
/// `down` or `up`, and whether its layer is a linear one.
struct AdapterSlot {
    module: String,
    is_down: bool,
    is_linear: bool,
}

fn adapter_slot(path: &[(String, String)]) -> Option<AdapterSlot> {
    let lora_at = path.iter().position(|(name, _)| name == "lora")?;
    let (leaf, parent) = path.last()?;
    let names: Vec<String> = path[..lora_at].iter().map(|(n, _)| n.clone()).collect();
    Some(AdapterSlot {
        module: kohya_module_name(&names)?,
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

/// Every adapter of the model as kohya tensors, sorted by name.
pub fn kohya_tensors<B: Backend>(model: &LoraModel<B>, alphas: Alphas) -> Vec<KohyaTensor> {
    struct Collect {
        path: Vec<(String, String)>,
        out: BTreeMap<String, KohyaTensor>,
        alphas: Alphas,
    }
    impl<B: Backend> ModuleVisitor<B> for Collect {
        fn enter_module(&mut self, name: &str, container_type: &str) {
            self.path
                .push((name.to_string(), container_type.to_string()));
        }
        fn exit_module(&mut self, _: &str, _: &str) {
            self.path.pop();
        }
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
            let Some(slot) = adapter_slot(&self.path) else {
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

/// Writes the model's adapters to `path` atomically.
pub fn save_lora<B: Backend>(
    path: &Path,
    model: &LoraModel<B>,
    alphas: Alphas,
    metadata: &BTreeMap<String, String>,
    precision: SavePrecision,
) -> Result<usize, EngineError> {
    let tensors = kohya_tensors(model, alphas);
    let bytes =
        serialize_lora(&tensors, metadata, precision).map_err(|reason| EngineError::BadLora {
            path: path.to_path_buf(),
            reason,
        })?;
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
    alphas: Alphas,
    strength: f64,
    device: &B::Device,
) -> (LoraModel<B>, LoadReport) {
    let mut loader = LoraLoader::<B> {
        path: Vec::new(),
        file,
        alphas,
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
        self.path
            .push((name.to_string(), container_type.to_string()));
    }

    fn exit_module(&mut self, _: &str, _: &str) {
        self.path.pop();
    }

    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let Some(slot) = adapter_slot(&self.path) else {
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

/// Kohya/SAI metadata for a finished (or checkpointed) run.
#[derive(Debug, Clone)]
pub struct TrainingFacts {
    pub output_name: String,
    pub rank: usize,
    pub alpha: f64,
    pub conv_rank: usize,
    pub conv_alpha: f64,
    pub train_text_encoder: bool,
    pub learning_rate: f64,
    pub text_encoder_lr: f64,
    pub optimizer: String,
    pub lr_scheduler: String,
    pub warmup_steps: usize,
    pub steps: usize,
    pub epoch: usize,
    pub epochs: usize,
    pub batch_size: usize,
    pub num_train_images: usize,
    pub seed: u64,
    pub clip_skip: usize,
    pub noise_offset: f64,
    pub min_snr_gamma: Option<f64>,
    pub v_prediction: bool,
    pub resolution: (usize, usize),
    pub started_at: u64,
    pub finished_at: u64,
}

impl TrainingFacts {
    /// The `ss_*` and `modelspec.*` keys kohya's `train_network.py` writes
    /// for an SD1.5 LoRA (values as strings, as kohya stores them).
    pub fn metadata(&self) -> BTreeMap<String, String> {
        let mut m = BTreeMap::new();
        let mut put = |k: &str, v: String| {
            m.insert(k.to_string(), v);
        };
        put("ss_network_module", "networks.lora".into());
        put("ss_network_dim", self.rank.to_string());
        put("ss_network_alpha", self.alpha.to_string());
        if self.conv_rank > 0 {
            put(
                "ss_network_args",
                format!(
                    "{{\"conv_dim\": \"{}\", \"conv_alpha\": \"{}\"}}",
                    self.conv_rank, self.conv_alpha
                ),
            );
        }
        put(
            "ss_network_train_unet_only",
            (!self.train_text_encoder)
                .to_string()
                .replace("true", "True")
                .replace("false", "False"),
        );
        put("ss_base_model_version", "sd_v1".into());
        put("ss_v2", "False".into());
        put("ss_output_name", self.output_name.clone());
        put("ss_learning_rate", self.learning_rate.to_string());
        put("ss_unet_lr", self.learning_rate.to_string());
        put("ss_text_encoder_lr", self.text_encoder_lr.to_string());
        put("ss_optimizer", self.optimizer.clone());
        put("ss_lr_scheduler", self.lr_scheduler.clone());
        put("ss_lr_warmup_steps", self.warmup_steps.to_string());
        put("ss_max_train_steps", self.steps.to_string());
        put("ss_steps", self.steps.to_string());
        put("ss_epoch", self.epoch.to_string());
        put("ss_num_epochs", self.epochs.to_string());
        put("ss_batch_size_per_device", self.batch_size.to_string());
        put("ss_num_train_images", self.num_train_images.to_string());
        put("ss_seed", self.seed.to_string());
        put("ss_clip_skip", self.clip_skip.to_string());
        put("ss_noise_offset", self.noise_offset.to_string());
        put(
            "ss_min_snr_gamma",
            self.min_snr_gamma
                .map(|g| g.to_string())
                .unwrap_or_else(|| "None".into()),
        );
        put(
            "ss_resolution",
            format!("({}, {})", self.resolution.0, self.resolution.1),
        );
        put("ss_training_started_at", self.started_at.to_string());
        put("ss_training_finished_at", self.finished_at.to_string());
        put(
            "ss_training_comment",
            "trained by the Ategnatos native engine (burn)".into(),
        );
        put("modelspec.sai_model_spec", "1.0.0".into());
        put("modelspec.architecture", "stable-diffusion-v1/lora".into());
        put(
            "modelspec.implementation",
            "https://github.com/Stability-AI/generative-models".into(),
        );
        put("modelspec.title", self.output_name.clone());
        put(
            "modelspec.resolution",
            format!("{}x{}", self.resolution.0, self.resolution.1),
        );
        put(
            "modelspec.prediction_type",
            if self.v_prediction { "v" } else { "epsilon" }.into(),
        );
        m
    }
}
