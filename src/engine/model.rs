//! The model being trained: the UNet and the text encoder(s) with their
//! adapters, built for a config and filled from a checkpoint. SDXL has a
//! second text encoder and conditions the UNet on both ([`LoraModel::encode_text`]).

use burn::module::Module;
use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};

use super::EngineError;
use super::clip::ClipTextModel;
use super::config::{Architecture, NetworkSection};
use super::precision::BasePrecision;
use super::unet::{AddedCond, UNet2DConditionModel};
use super::weights::{Checkpoint, Component, LoadReport, check_component, load_component_in};

/// UNet + text encoder(s). Parameter paths start with `unet.`,
/// `text_encoder.` or `text_encoder_2.`; the rest is the diffusers key.
#[derive(Module, Debug)]
pub struct LoraModel<B: Backend> {
    pub unet: UNet2DConditionModel<B>,
    pub text_encoder: ClipTextModel<B>,
    pub text_encoder_2: Option<ClipTextModel<B>>,
}

/// The components a model of `arch` is built from, the VAE aside.
pub fn model_components(arch: Architecture) -> Vec<Component> {
    let mut components = vec![Component::Unet, Component::TextEncoder];
    if arch.clip2().is_some() {
        components.push(Component::TextEncoder2);
    }
    components
}

/// SDXL's second encoder reads the same tokens padded with id 0 after the
/// end of the text (its tokenizer pads with `!`), where the first is padded
/// with the end-of-text token itself: every copy of the row's last id after
/// its first becomes 0.
pub fn second_encoder_ids(ids: &[i64], seq: usize) -> Vec<i64> {
    ids.chunks(seq.max(1))
        .flat_map(|row| {
            let last = row.last().copied().unwrap_or(0);
            let first = row.iter().position(|&v| v == last).unwrap_or(row.len());
            row.iter()
                .enumerate()
                .map(move |(i, &v)| if i > first { 0 } else { v })
        })
        .collect()
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
            text_encoder_2: arch.clip2().map(|clip| {
                ClipTextModel::init(&clip, network.text_encoder_spec().as_ref(), device)
            }),
        }
    }

    /// The UNet's text conditioning for caption tokens `ids` (`[batch,
    /// seq]` flattened): SD1.5's hidden states at `clip_skip`; for SDXL both
    /// encoders' penultimate hidden states side by side and the second's
    /// pooled embedding.
    ///
    /// # Shapes
    /// - returns (`[batch, seq, context_dim]`, `Some([batch, pooled])` for SDXL)
    pub fn encode_text(
        &self,
        ids: Vec<i64>,
        batch: usize,
        seq: usize,
        clip_skip: usize,
        device: &B::Device,
    ) -> (Tensor<B, 3>, Option<Tensor<B, 2>>) {
        let tensor = |ids: Vec<i64>| {
            Tensor::<B, 2, Int>::from_data(TensorData::new(ids, [batch, seq]), device)
        };
        let Some(second) = &self.text_encoder_2 else {
            return (self.text_encoder.forward(tensor(ids), clip_skip), None);
        };
        let ids2 = second_encoder_ids(&ids, seq);
        let (first, _) = self.text_encoder.penultimate(tensor(ids));
        let (hidden2, pooled) = second.penultimate(tensor(ids2));
        (Tensor::cat(vec![first, hidden2], 2), pooled)
    }

    /// SDXL's added conditioning for a batch whose pictures were `sizes`
    /// (width, height) before they were fitted to `bucket` (latent-pixel
    /// `(width, height)` times 8): original size, the centre crop's top-left
    /// corner, and the target size, each (height, width), as kohya computes
    /// them. `None` for SD1.5 or without a pooled embedding.
    pub fn added_cond(
        &self,
        pooled: Option<Tensor<B, 2>>,
        sizes: &[Option<(u32, u32)>],
        bucket: (usize, usize),
        device: &B::Device,
    ) -> Option<AddedCond<B>> {
        self.unet.add_embedding.as_ref()?;
        let text_embeds = pooled?;
        let values: Vec<f32> = sizes
            .iter()
            .flat_map(|size| size_conditioning(*size, bucket))
            .collect();
        let time_ids = Tensor::<B, 2>::from_data(TensorData::new(values, [sizes.len(), 6]), device);
        Some(AddedCond {
            text_embeds,
            time_ids,
        })
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
        self.load_base_in(checkpoint, arch, BasePrecision::F32, device, progress)
    }

    /// [`LoraModel::load_base`] with the linear and conv weights created in
    /// `precision` as they are read (what [`cast_base_weights`] would make
    /// of them afterwards, without the f32 model in between).
    ///
    /// [`cast_base_weights`]: super::precision::cast_base_weights
    pub fn load_base_in(
        self,
        checkpoint: &Checkpoint,
        arch: Architecture,
        precision: BasePrecision,
        device: &B::Device,
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<(Self, Vec<LoadReport>), EngineError> {
        let half = (precision != BasePrecision::F32).then(|| precision.dtype());
        let (unet_cfg, vae_cfg) = (arch.unet(), arch.vae());
        let unet_weights = checkpoint.component(Component::Unet, &unet_cfg, &vae_cfg)?;
        let te_weights = checkpoint.component(Component::TextEncoder, &unet_cfg, &vae_cfg)?;
        let te2_weights = match self.text_encoder_2 {
            Some(_) => Some(checkpoint.component(Component::TextEncoder2, &unet_cfg, &vae_cfg)?),
            None => None,
        };
        let total =
            unet_weights.len() + te_weights.len() + te2_weights.as_ref().map_or(0, |w| w.len());
        let first = unet_weights.len();
        let (unet, unet_report) = load_component_in(
            self.unet,
            &unet_weights,
            device,
            &mut |done, _| progress(done, total),
            half,
        );
        let unet_report = unet_report.require_complete()?;
        let (text_encoder, te_report) = load_component_in(
            self.text_encoder,
            &te_weights,
            device,
            &mut |done, _| progress(first + done, total),
            half,
        );
        let te_report = te_report.require_complete()?;
        let mut reports = vec![unet_report, te_report];
        let second = first + te_weights.len();
        let text_encoder_2 = match (self.text_encoder_2, te2_weights) {
            (Some(model), Some(weights)) => {
                let (model, report) = load_component_in(
                    model,
                    &weights,
                    device,
                    &mut |done, _| progress(second + done, total),
                    half,
                );
                reports.push(report.require_complete()?);
                Some(model)
            }
            _ => None,
        };
        Ok((
            Self {
                unet,
                text_encoder,
                text_encoder_2,
            },
            reports,
        ))
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
            Component::TextEncoder2 => match &model.text_encoder_2 {
                Some(second) => check_component(second, &weights),
                None => continue,
            },
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

/// One picture's six size numbers (see [`LoraModel::added_cond`]): a
/// picture of `size` resized to cover `bucket` and centre-cropped, as
/// [`super::cache`] fits it; without its size, the bucket and no crop.
pub fn size_conditioning(size: Option<(u32, u32)>, bucket: (usize, usize)) -> [f32; 6] {
    let (bw, bh) = (bucket.0 as f64, bucket.1 as f64);
    let Some((w, h)) = size.filter(|(w, h)| *w > 0 && *h > 0) else {
        return [bh as f32, bw as f32, 0.0, 0.0, bh as f32, bw as f32];
    };
    let (w, h) = (f64::from(w), f64::from(h));
    let scale = (bw / w).max(bh / h);
    let top = ((h * scale).round() - bh).max(0.0) / 2.0;
    let left = ((w * scale).round() - bw).max(0.0) / 2.0;
    [
        h as f32,
        w as f32,
        top.floor() as f32,
        left.floor() as f32,
        bh as f32,
        bw as f32,
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_second_encoder_pads_with_zero_after_the_end_of_text() {
        // bos 0, "ink fox", eos 1, padding eos: two rows of 6
        let ids = [0, 4, 5, 1, 1, 1, 0, 4, 5, 6, 7, 1];
        assert_eq!(
            second_encoder_ids(&ids, 6),
            vec![0, 4, 5, 1, 0, 0, 0, 4, 5, 6, 7, 1]
        );
    }

    #[test]
    fn size_conditioning_says_where_the_centre_crop_was() {
        // a 1000×500 picture fitted to a 512×256 bucket: no crop
        assert_eq!(
            size_conditioning(Some((1000, 500)), (512, 256)),
            [500.0, 1000.0, 0.0, 0.0, 256.0, 512.0]
        );
        // 800×600 to 512×512: scaled to 683×512, 85 px cut from the left
        assert_eq!(
            size_conditioning(Some((800, 600)), (512, 512)),
            [600.0, 800.0, 0.0, 85.0, 512.0, 512.0]
        );
        assert_eq!(
            size_conditioning(None, (640, 384)),
            [384.0, 640.0, 0.0, 0.0, 384.0, 640.0]
        );
    }
}
