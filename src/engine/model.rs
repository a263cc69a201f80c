//! The model being trained: the UNet and the text encoder with their
//! adapters, built for a config and filled from a checkpoint.

use burn::module::Module;
use burn::tensor::backend::Backend;

use super::EngineError;
use super::clip::ClipTextModel;
use super::config::{Architecture, NetworkSection};
use super::unet::UNet2DConditionModel;
use super::weights::{
    Checkpoint, Component, LoadReport, check_component, load_component_with_progress,
};

/// UNet + text encoder. Parameter paths start with `unet.` or
/// `text_encoder.`; the rest is the diffusers key.
#[derive(Module, Debug)]
pub struct LoraModel<B: Backend> {
    pub unet: UNet2DConditionModel<B>,
    pub text_encoder: ClipTextModel<B>,
}

impl<B: Backend> LoraModel<B> {
    /// The architecture with lazy noise base weights (nothing allocated
    /// until used or loaded) and fresh adapters where `network` asks.
    pub fn init(arch: Architecture, network: &NetworkSection, device: &B::Device) -> Self {
        Self {
            unet: UNet2DConditionModel::init(&arch.unet(), &network.unet_targets(), device),
            text_encoder: ClipTextModel::init(
                &arch.clip(),
                network.text_encoder_spec().as_ref(),
                device,
            ),
        }
    }

    /// Fills every base weight from `checkpoint`; refuses (with the full
    /// report in the error) when anything is missing, mismatched or
    /// unexpected. `progress(done, total)` follows the tensors of both
    /// components together.
    pub fn load_base(
        self,
        checkpoint: &Checkpoint,
        arch: Architecture,
        device: &B::Device,
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<(Self, Vec<LoadReport>), EngineError> {
        let (unet_cfg, vae_cfg) = (arch.unet(), arch.vae());
        let unet_weights = checkpoint.component(Component::Unet, &unet_cfg, &vae_cfg)?;
        let te_weights = checkpoint.component(Component::TextEncoder, &unet_cfg, &vae_cfg)?;
        let total = unet_weights.len() + te_weights.len();
        let first = unet_weights.len();
        let (unet, unet_report) =
            load_component_with_progress(self.unet, &unet_weights, device, &mut |done, _| {
                progress(done, total)
            });
        let unet_report = unet_report.require_complete()?;
        let (text_encoder, te_report) =
            load_component_with_progress(self.text_encoder, &te_weights, device, &mut |done, _| {
                progress(first + done, total)
            });
        let te_report = te_report.require_complete()?;
        Ok((Self { unet, text_encoder }, vec![unet_report, te_report]))
    }
}

/// Checks `components` of `checkpoint` against the model `arch` builds, from
/// the files' headers only (names and shapes; no weight is read), and
/// refuses a checkpoint that does not fit with what it is instead, in one
/// sentence. Runs before anything slow: encoding pictures, loading.
pub fn check_checkpoint(
    checkpoint: &Checkpoint,
    arch: Architecture,
    components: &[Component],
) -> Result<Vec<LoadReport>, EngineError> {
    type B = super::CpuBackend;
    let device = Default::default();
    let (unet_cfg, vae_cfg) = (arch.unet(), arch.vae());
    // lazy modules: building them allocates no weights
    let bare = NetworkSection::default();
    let model = LoraModel::<B>::init(
        arch,
        &NetworkSection {
            train_text_encoder: false,
            ..bare
        },
        &device,
    );
    let mut reports = Vec::new();
    for &component in components {
        let weights = checkpoint.component(component, &unet_cfg, &vae_cfg)?;
        let report = match component {
            Component::Unet => check_component(&model.unet, &weights),
            Component::TextEncoder => check_component(&model.text_encoder, &weights),
            Component::Vae => check_component(
                &super::vae::AutoencoderKlEncoder::<B>::init(&vae_cfg, &device),
                &weights,
            ),
        };
        reports.push(report);
    }
    if reports.iter().all(LoadReport::is_complete) {
        return Ok(reports);
    }
    let expected = arch.family_name();
    let diagnosis = super::diagnose::other_family(checkpoint.tensors(), expected)
        .unwrap_or_else(|| super::diagnose::partial_match(&reports, expected));
    Err(EngineError::WrongCheckpoint {
        path: checkpoint.path.clone(),
        expected: expected.to_string(),
        diagnosis,
        reports,
    })
}
