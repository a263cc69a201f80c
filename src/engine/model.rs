//! The model being trained: the UNet and the text encoder with their
//! adapters, built for a config and filled from a checkpoint.

use burn::module::Module;
use burn::tensor::backend::Backend;

use super::EngineError;
use super::clip::ClipTextModel;
use super::config::{Architecture, NetworkSection};
use super::unet::UNet2DConditionModel;
use super::weights::{Checkpoint, Component, LoadReport, load_component};

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
    /// unexpected.
    pub fn load_base(
        self,
        checkpoint: &Checkpoint,
        arch: Architecture,
        device: &B::Device,
    ) -> Result<(Self, Vec<LoadReport>), EngineError> {
        let (unet_cfg, vae_cfg) = (arch.unet(), arch.vae());
        let unet_weights = checkpoint.component(Component::Unet, &unet_cfg, &vae_cfg)?;
        let (unet, unet_report) = load_component(self.unet, &unet_weights, device);
        let unet_report = unet_report.require_complete()?;
        let te_weights = checkpoint.component(Component::TextEncoder, &unet_cfg, &vae_cfg)?;
        let (text_encoder, te_report) = load_component(self.text_encoder, &te_weights, device);
        let te_report = te_report.require_complete()?;
        Ok((Self { unet, text_encoder }, vec![unet_report, te_report]))
    }
}
