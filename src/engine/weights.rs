//! Loading a Stable Diffusion checkpoint into our modules.
//!
//! A [`Checkpoint`] is either one ldm-layout `.safetensors` (what most users
//! download) or a diffusers folder (`unet/`, `text_encoder/`, `vae/`). For
//! each component it yields a key map in diffusers names
//! ([`ComponentWeights`]); [`load_component`] then walks the module with a
//! [`ModuleMapper`] whose path is the key, fills every frozen base
//! parameter, and returns a [`LoadReport`] of what was missing, mismatched or
//! unexpected. LoRA adapter parameters (any path with a `lora` segment) are
//! not part of a checkpoint and are left alone.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use burn::module::{Module, ModuleMapper, Param};
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};

use super::EngineError;
use super::ldm;
use super::safetensors_file::SafetensorsFile;
use super::unet::UNetConfig;
use super::vae::VaeConfig;

/// The parts of SD1.5 and SDXL the engine can load.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Component {
    Unet,
    TextEncoder,
    /// SDXL's second text encoder (OpenCLIP ViT-bigG).
    TextEncoder2,
    Vae,
}

impl Component {
    pub fn name(self) -> &'static str {
        match self {
            Component::Unet => "unet",
            Component::TextEncoder => "text_encoder",
            Component::TextEncoder2 => "text_encoder_2",
            Component::Vae => "vae",
        }
    }

    /// The file inside a diffusers folder.
    pub(crate) fn diffusers_file(self) -> &'static str {
        match self {
            Component::Unet => "unet/diffusion_pytorch_model.safetensors",
            Component::TextEncoder => "text_encoder/model.safetensors",
            Component::TextEncoder2 => "text_encoder_2/model.safetensors",
            Component::Vae => "vae/diffusion_pytorch_model.safetensors",
        }
    }
}

/// Which key layout a checkpoint uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// One file, `model.diffusion_model.*` / `first_stage_model.*` /
    /// `cond_stage_model.transformer.*` (SD1.5) or
    /// `conditioner.embedders.{0.transformer,1.model}.*` (SDXL).
    Ldm,
    /// A folder with one file per component, in diffusers names.
    Diffusers,
}

/// An opened checkpoint.
#[derive(Debug)]
pub struct Checkpoint {
    pub path: PathBuf,
    pub layout: Layout,
    /// One file for ldm; for diffusers, the component files that exist.
    files: BTreeMap<Component, SafetensorsFile>,
    single: Option<SafetensorsFile>,
}

impl Checkpoint {
    /// Opens a single ldm `.safetensors` file or a diffusers folder. For a
    /// folder only the `components` asked for are read.
    pub fn open(path: &Path, components: &[Component]) -> Result<Self, EngineError> {
        if path.is_dir() {
            let mut files = BTreeMap::new();
            for &c in components {
                let file = path.join(c.diffusers_file());
                if !file.is_file() {
                    return Err(EngineError::BadWeights {
                        path: path.to_path_buf(),
                        reason: format!("this diffusers folder has no `{}`", c.diffusers_file()),
                    });
                }
                files.insert(c, SafetensorsFile::open(&file)?);
            }
            return Ok(Self {
                path: path.to_path_buf(),
                layout: Layout::Diffusers,
                files,
                single: None,
            });
        }
        let file = SafetensorsFile::open(path)?;
        if !file.keys().any(|k| k.starts_with(ldm::UNET_PREFIX)) {
            let tensors = file.keys().map(|k| (k, file.shape(k).unwrap_or(&[])));
            let reason = match super::diagnose::other_family(tensors, "SD1.5") {
                Some(d) => format!("{} (it has no `{}*` keys)", d.what, ldm::UNET_PREFIX),
                None => format!(
                    "no `{}*` keys: this is not a Stable Diffusion single-file checkpoint",
                    ldm::UNET_PREFIX
                ),
            };
            return Err(EngineError::BadWeights {
                path: path.to_path_buf(),
                reason,
            });
        }
        Ok(Self {
            path: path.to_path_buf(),
            layout: Layout::Ldm,
            files: BTreeMap::new(),
            single: Some(file),
        })
    }

    /// Every tensor of every opened file, by its name in the file, with its
    /// shape (from the headers; nothing is read).
    pub fn tensors(&self) -> impl Iterator<Item = (&str, &[usize])> + Clone {
        self.single
            .iter()
            .chain(self.files.values())
            .flat_map(|f| f.keys().map(move |k| (k, f.shape(k).unwrap_or(&[]))))
    }

    fn file(&self, component: Component) -> Option<&SafetensorsFile> {
        match self.layout {
            Layout::Ldm => self.single.as_ref(),
            Layout::Diffusers => self.files.get(&component),
        }
    }

    /// The component's tensors under their diffusers names.
    pub fn component(
        &self,
        component: Component,
        unet: &UNetConfig,
        vae: &VaeConfig,
    ) -> Result<ComponentWeights<'_>, EngineError> {
        let file = self
            .file(component)
            .ok_or_else(|| EngineError::BadWeights {
                path: self.path.clone(),
                reason: format!("the `{}` weights were not opened", component.name()),
            })?;
        let mut weights = ComponentWeights {
            component,
            file,
            keys: BTreeMap::new(),
            unexpected: Vec::new(),
            unused: 0,
        };
        match self.layout {
            Layout::Diffusers => {
                for key in file.keys() {
                    let name = match component {
                        Component::Vae => ldm::rename_prefix(key, ldm::VAE_DIFFUSERS_LEGACY),
                        _ => key.to_string(),
                    };
                    weights.add(name, key);
                }
            }
            Layout::Ldm => {
                let unet_table = ldm::unet_table(unet);
                let vae_table = ldm::vae_table(vae);
                for key in file.keys() {
                    match component {
                        Component::Unet => {
                            if let Some(rest) = key.strip_prefix(ldm::UNET_PREFIX) {
                                match ldm::rename(rest, &unet_table) {
                                    Some(name) => weights.add(name, key),
                                    None => weights.unexpected.push(key.to_string()),
                                }
                            }
                        }
                        Component::Vae => {
                            if let Some(rest) = key.strip_prefix(ldm::VAE_PREFIX) {
                                if ldm::VAE_UNUSED_PREFIXES.iter().any(|p| rest.starts_with(p)) {
                                    weights.unused += 1;
                                    continue;
                                }
                                match ldm::rename(rest, &vae_table) {
                                    Some(name) => weights.add(name, key),
                                    None => weights.unexpected.push(key.to_string()),
                                }
                            }
                        }
                        Component::TextEncoder => {
                            if let Some(rest) = key
                                .strip_prefix(ldm::CLIP_PREFIX)
                                .or_else(|| key.strip_prefix(ldm::SDXL_CLIP_PREFIX))
                            {
                                weights.add(ldm::clip_key(rest), key);
                            }
                        }
                        Component::TextEncoder2 => {
                            if let Some(rest) = key.strip_prefix(ldm::OPEN_CLIP_PREFIX) {
                                match ldm::open_clip_keys(rest) {
                                    Some(parts) => {
                                        for part in parts {
                                            weights.add_source(
                                                part.name,
                                                Source {
                                                    key: key.to_string(),
                                                    part: part.part,
                                                    transposed: part.transposed,
                                                },
                                            );
                                        }
                                    }
                                    None if ldm::OPEN_CLIP_UNUSED.contains(&rest) => {
                                        weights.unused += 1
                                    }
                                    None => weights.unexpected.push(key.to_string()),
                                }
                            }
                        }
                    }
                }
            }
        }
        Ok(weights)
    }
}

/// Where one of our tensors is in the file: a key, or one of `n` equal
/// row blocks of it (OpenCLIP keeps q, k and v in one `in_proj_weight`), or
/// its transpose (OpenCLIP's `text_projection` multiplies from the right).
#[derive(Debug, Clone, PartialEq)]
struct Source {
    key: String,
    /// `(i, n)`: rows `i·r/n ..(i+1)·r/n` of an `r`-row tensor.
    part: Option<(usize, usize)>,
    transposed: bool,
}

impl Source {
    fn whole(key: &str) -> Self {
        Self {
            key: key.to_string(),
            part: None,
            transposed: false,
        }
    }

    /// The shape of what this source yields, from the file's shape.
    fn shape(&self, file: &[usize]) -> Vec<usize> {
        let mut shape = file.to_vec();
        if let (Some((_, n)), Some(rows)) = (self.part, shape.first_mut()) {
            *rows /= n.max(1);
        }
        if self.transposed && shape.len() == 2 {
            shape.swap(0, 1);
        }
        shape
    }

    /// Cuts and turns the file's values as [`Source::shape`] says.
    fn apply(&self, values: Vec<f32>, file: &[usize]) -> Vec<f32> {
        let mut values = values;
        if let (Some((i, n)), Some(&rows)) = (self.part, file.first()) {
            let per_row: usize = file.iter().skip(1).product();
            let block = rows / n.max(1) * per_row;
            values = values
                .get(i * block..(i + 1) * block)
                .map(<[f32]>::to_vec)
                .unwrap_or_default();
        }
        if self.transposed && file.len() == 2 {
            let shape = self.shape(file);
            values = transposed(&values, shape[1], shape[0]); // the file's rows, columns
        }
        values
    }
}

/// One component's tensors: diffusers name → where it is in the file.
#[derive(Debug)]
pub struct ComponentWeights<'a> {
    pub component: Component,
    file: &'a SafetensorsFile,
    keys: BTreeMap<String, Source>,
    /// Keys in the component's namespace that no rename row knows.
    unexpected: Vec<String>,
    /// Keys the engine does not need (the VAE decoder, buffers).
    unused: usize,
}

impl ComponentWeights<'_> {
    fn add(&mut self, name: String, key: &str) {
        self.add_source(name, Source::whole(key));
    }

    fn add_source(&mut self, name: String, source: Source) {
        let unused = match self.component {
            Component::Vae => ldm::VAE_UNUSED_PREFIXES.iter().any(|p| name.starts_with(p)),
            Component::TextEncoder | Component::TextEncoder2 => {
                ldm::CLIP_UNUSED_SUFFIXES.iter().any(|s| name.ends_with(s))
            }
            Component::Unet => false,
        };
        if unused {
            self.unused += 1;
        } else {
            self.keys.insert(name, source);
        }
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// The shape the file gives the tensor we call `name`.
    fn file_shape(&self, name: &str) -> Option<Vec<usize>> {
        let source = self.keys.get(name)?;
        Some(source.shape(self.file.shape(&source.key)?))
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

/// A parameter whose checkpoint tensor has the wrong shape.
#[derive(Debug, Clone, PartialEq)]
pub struct ShapeMismatch {
    pub key: String,
    pub expected: Vec<usize>,
    pub found: Vec<usize>,
}

/// What loading one component did.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LoadReport {
    pub component: String,
    pub loaded: usize,
    /// Parameters of the model the checkpoint has no tensor for.
    pub missing: Vec<String>,
    pub mismatched: Vec<ShapeMismatch>,
    /// Checkpoint tensors of this component the model has no place for.
    pub unexpected: Vec<String>,
    /// Tensors deliberately not loaded (VAE decoder, buffers).
    pub unused: usize,
    /// Tensors that could not be decoded.
    pub errors: Vec<String>,
}

impl LoadReport {
    /// True when every parameter was filled and nothing was left over.
    pub fn is_complete(&self) -> bool {
        self.missing.is_empty()
            && self.mismatched.is_empty()
            && self.unexpected.is_empty()
            && self.errors.is_empty()
    }

    /// Refuses an incomplete load with an error that lists what is wrong.
    pub fn require_complete(self) -> Result<Self, EngineError> {
        if self.is_complete() {
            Ok(self)
        } else {
            Err(EngineError::IncompleteWeights(Box::new(self)))
        }
    }

    /// One paragraph for a log or an error.
    pub fn summary(&self) -> String {
        let sample = |keys: &[String]| keys.iter().take(5).cloned().collect::<Vec<_>>().join(", ");
        let mut text = format!(
            "{}: {} tensors loaded, {} missing, {} mismatched, {} unexpected, {} not needed",
            self.component,
            self.loaded,
            self.missing.len(),
            self.mismatched.len(),
            self.unexpected.len(),
            self.unused
        );
        if !self.missing.is_empty() {
            text.push_str(&format!("; missing e.g. {}", sample(&self.missing)));
        }
        if let Some(m) = self.mismatched.first() {
            text.push_str(&format!(
                "; `{}` should be {:?} but is {:?}",
                m.key, m.expected, m.found
            ));
        }
        if !self.unexpected.is_empty() {
            text.push_str(&format!("; unexpected e.g. {}", sample(&self.unexpected)));
        }
        if let Some(e) = self.errors.first() {
            text.push_str(&format!("; {e}"));
        }
        text
    }
}

/// Whether the file's `found` shape fits a parameter of burn shape
/// `expected`: linear weights are stored transposed (PyTorch's `[out, in]`,
/// or a 1×1 conv's `[out, in, 1, 1]`, which the ldm VAE uses for its
/// attention), everything else as is.
fn fits(expected: &[usize], found: &[usize], is_linear_weight: bool) -> bool {
    if !is_linear_weight {
        return found == expected;
    }
    match found {
        [o, i] | [o, i, 1, 1] => [*i, *o] == expected[..],
        _ => false,
    }
}

/// The shape a mismatch reports: linear shapes in PyTorch's order, as the
/// file has them.
fn shape_as_in_file(expected: &[usize], is_linear_weight: bool) -> Vec<usize> {
    if is_linear_weight {
        expected.iter().rev().copied().collect()
    } else {
        expected.to_vec()
    }
}

/// A module path while walking a module: (field name, the type of the
/// struct holding it).
#[derive(Default)]
struct ModulePath(Vec<(String, String)>);

impl ModulePath {
    fn key(&self) -> String {
        self.0
            .iter()
            .map(|(name, _)| name.as_str())
            .collect::<Vec<_>>()
            .join(".")
    }

    fn is_adapter(&self) -> bool {
        self.0.iter().any(|(name, _)| name == "lora")
    }

    fn is_linear_weight(&self, rank: usize) -> bool {
        rank == 2 && self.0.last().is_some_and(|(_, t)| t == "Struct:Linear")
    }
}

/// Checks every base parameter of `module` against `weights` from the
/// file's header alone: names and shapes, no tensor read. The report is the
/// one [`load_component`] would give (less decoding errors), so a
/// checkpoint that does not fit is refused before anything slow happens.
pub fn check_component<B: Backend, M: Module<B>>(
    module: &M,
    weights: &ComponentWeights<'_>,
) -> LoadReport {
    struct Checker<'a> {
        path: ModulePath,
        weights: &'a ComponentWeights<'a>,
        used: BTreeSet<String>,
        report: LoadReport,
    }
    impl<B: Backend> burn::module::ModuleVisitor<B> for Checker<'_> {
        fn enter_module(&mut self, name: &str, container_type: &str) {
            if crate::engine::weights::is_variant(container_type) {
                return;
            }
            self.path
                .0
                .push((name.to_string(), container_type.to_string()));
        }
        fn exit_module(&mut self, _: &str, container_type: &str) {
            if crate::engine::weights::is_variant(container_type) {
                return;
            }
            self.path.0.pop();
        }
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
            if self.path.is_adapter() {
                return;
            }
            let key = self.path.key();
            let expected = param.lazy_shape().to_vec();
            let linear = self.path.is_linear_weight(D);
            match self.weights.file_shape(&key) {
                None => self.report.missing.push(key),
                Some(found) => {
                    self.used.insert(key.clone());
                    if fits(&expected, &found, linear) {
                        self.report.loaded += 1;
                    } else {
                        self.report.mismatched.push(ShapeMismatch {
                            key,
                            expected: shape_as_in_file(&expected, linear),
                            found,
                        });
                    }
                }
            }
        }
    }
    let mut checker = Checker {
        path: ModulePath::default(),
        weights,
        used: BTreeSet::new(),
        report: LoadReport {
            component: weights.component.name().to_string(),
            unused: weights.unused,
            unexpected: weights.unexpected.clone(),
            ..LoadReport::default()
        },
    };
    module.visit(&mut checker);
    let mut report = checker.report;
    for (name, source) in &weights.keys {
        if !checker.used.contains(name) && !report.unexpected.contains(&source.key) {
            report.unexpected.push(source.key.clone());
        }
    }
    report
}

/// Fills `module`'s base parameters from `weights`. The module's parameter
/// paths must be the component's diffusers keys. Linear weights are
/// transposed from PyTorch's `[out, in]`, and 1×1 conv weights are accepted
/// for linear layers (the ldm VAE stores its attention that way).
pub fn load_component<B: Backend, M: Module<B>>(
    module: M,
    weights: &ComponentWeights<'_>,
    device: &B::Device,
) -> (M, LoadReport) {
    load_component_with_progress(module, weights, device, &mut |_, _| {})
}

/// [`load_component`], calling `progress(done, total)` after each tensor.
/// Tensors are read and converted one at a time, so loading holds the
/// model plus one tensor, never the file.
pub fn load_component_with_progress<B: Backend, M: Module<B>>(
    module: M,
    weights: &ComponentWeights<'_>,
    device: &B::Device,
    progress: &mut dyn FnMut(usize, usize),
) -> (M, LoadReport) {
    load_component_in(module, weights, device, progress, None)
}

/// [`load_component_with_progress`], creating the weight of every linear
/// and convolution layer directly in `half` (the engine's `base_precision`)
/// when given: the f32 model never exists, so loading peaks at the model's
/// size in that precision, not in f32.
pub fn load_component_in<B: Backend, M: Module<B>>(
    module: M,
    weights: &ComponentWeights<'_>,
    device: &B::Device,
    progress: &mut dyn FnMut(usize, usize),
    half: Option<burn::tensor::DType>,
) -> (M, LoadReport) {
    let total = weights.len();
    let mut loader = Loader::<B> {
        path: ModulePath::default(),
        weights,
        used: BTreeSet::new(),
        report: LoadReport {
            component: weights.component.name().to_string(),
            unused: weights.unused,
            unexpected: weights.unexpected.clone(),
            ..LoadReport::default()
        },
        device: device.clone(),
        progress,
        total,
        half,
    };
    let module = module.map(&mut loader);
    let mut report = loader.report;
    for (name, source) in &weights.keys {
        if !loader.used.contains(name) && !report.unexpected.contains(&source.key) {
            report.unexpected.push(source.key.clone());
        }
    }
    (module, report)
}

struct Loader<'a, B: Backend> {
    path: ModulePath,
    weights: &'a ComponentWeights<'a>,
    used: BTreeSet<String>,
    report: LoadReport,
    device: B::Device,
    progress: &'a mut dyn FnMut(usize, usize),
    total: usize,
    /// Linear and conv weights are created in this type (see
    /// [`load_component_in`]).
    half: Option<burn::tensor::DType>,
}

impl<B: Backend> Loader<'_, B> {
    /// The checkpoint tensor for `key`, reshaped to burn's layout, or why not.
    fn fetch(&mut self, key: &str, expected: &[usize], linear: bool) -> Option<TensorData> {
        let Some(source) = self.weights.keys.get(key) else {
            self.report.missing.push(key.to_string());
            return None;
        };
        self.used.insert(key.to_string());
        let in_file = self.weights.file.shape(&source.key).unwrap_or(&[]).to_vec();
        let found = source.shape(&in_file);
        if !fits(expected, &found, linear) {
            self.report.mismatched.push(ShapeMismatch {
                key: key.to_string(),
                expected: shape_as_in_file(expected, linear),
                found,
            });
            return None;
        }
        let values = match self.weights.file.read_f32(&source.key) {
            Ok((values, _)) => source.apply(values, &in_file),
            Err(e) => {
                self.report.errors.push(e.to_string());
                return None;
            }
        };
        let data = if linear {
            // PyTorch [out, in] (or [out, in, 1, 1]) → burn [in, out]
            let (i, o) = (expected[0], expected[1]);
            TensorData::new(transposed(&values, o, i), [i, o])
        } else {
            TensorData::new(values, expected.to_vec())
        };
        self.report.loaded += 1;
        (self.progress)(self.used.len(), self.total);
        Some(data)
    }
}

impl<B: Backend> ModuleMapper<B> for Loader<'_, B> {
    fn enter_module(&mut self, name: &str, container_type: &str) {
        if crate::engine::weights::is_variant(container_type) {
            return;
        }
        self.path
            .0
            .push((name.to_string(), container_type.to_string()));
    }

    fn exit_module(&mut self, _: &str, container_type: &str) {
        if crate::engine::weights::is_variant(container_type) {
            return;
        }
        self.path.0.pop();
    }

    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        if self.path.is_adapter() {
            return param;
        }
        let key = self.path.key();
        let expected = param.lazy_shape().to_vec();
        let linear = self.path.is_linear_weight(D);
        match self.fetch(&key, &expected, linear) {
            // A fresh parameter with the same id: the lazy noise it replaces
            // is never allocated.
            Some(data) => {
                let layer_weight = self.path.0.last().is_some_and(|(field, owner)| {
                    field == "weight" && (owner == "Struct:Linear" || owner == "Struct:Conv2d")
                });
                let loaded = match self.half.filter(|_| layer_weight) {
                    // without the dtype, from_data converts to the backend's default
                    Some(dtype) => {
                        Tensor::<B, D>::from_data(data.convert_dtype(dtype), (&self.device, dtype))
                    }
                    None => Tensor::<B, D>::from_data(data, &self.device),
                };
                Param::initialized(param.id, loaded.set_require_grad(false))
            }
            None => param,
        }
    }
}

/// Every base parameter of a module, by path: used by tests (to write
/// checkpoints and to compare weights) and by the benchmark.
pub fn named_tensors<B: Backend, M: Module<B>>(module: &M) -> Vec<(String, TensorData, String)> {
    struct Collect {
        path: Vec<(String, String)>,
        out: Vec<(String, TensorData, String)>,
    }
    impl<B: Backend> burn::module::ModuleVisitor<B> for Collect {
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
            let key = self
                .path
                .iter()
                .map(|(n, _)| n.as_str())
                .collect::<Vec<_>>()
                .join(".");
            let parent = self.path.last().map(|(_, t)| t.clone()).unwrap_or_default();
            self.out.push((key, param.val().into_data(), parent));
        }
    }
    let mut collect = Collect {
        path: Vec::new(),
        out: Vec::new(),
    };
    module.visit(&mut collect);
    collect.out
}

/// Whether a module walker's container is a burn enum module (such as
/// [`super::unet::transformer::Projection`]): its variant name is not part
/// of the checkpoint key, so key walkers skip it.
pub(crate) fn is_variant(container_type: &str) -> bool {
    container_type.starts_with("Enum:")
}

/// A row-major `rows × cols` matrix transposed (`cols × rows`); values
/// beyond `rows × cols` are dropped, missing ones read as 0.
pub(crate) fn transposed(values: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut t = vec![0f32; rows * cols];
    for r in 0..rows {
        for c in 0..cols {
            t[c * rows + r] = values.get(r * cols + c).copied().unwrap_or(0.0);
        }
    }
    t
}
