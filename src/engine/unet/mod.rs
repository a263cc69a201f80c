//! The SD1.5 and SDXL denoiser, `UNet2DConditionModel`, in burn, laid out so
//! every parameter's module path is its diffusers checkpoint key
//! (`down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.weight`).
//!
//! One file per block, after candle's `stable_diffusion` module:
//! [`resnet`], [`attention`], [`transformer`], [`embeddings`], [`blocks`].
//! [`UNetConfig::sd15`] and [`UNetConfig::sdxl`] hold the real numbers,
//! [`UNetConfig::tiny`] a two-stage model small enough for CPU tests, and the
//! `*_toy` configs each real block layout at toy widths.
//!
//! SDXL differs from SD1.5 in four ways the config carries: a fixed head
//! width instead of a fixed head count, several transformer blocks per
//! spatial transformer (2 and 10), linear `proj_in`/`proj_out`, and the
//! "text_time" conditioning: the picture's original size, crop and target
//! size, each as a sinusoidal code, with the pooled text embedding, through
//! an MLP (`add_embedding`) added to the timestep embedding.

pub mod attention;
pub mod blocks;
pub mod embeddings;
pub mod resnet;
pub mod transformer;

use burn::module::Module;
use burn::tensor::Tensor;
use burn::tensor::backend::Backend;

use crate::engine::lora::LoraSpec;
use crate::engine::nn::{Conv2d, GroupNorm, silu};
use blocks::{DownBlock2D, Downsample2D, UNetMidBlock2DCrossAttn, UpBlock2D, Upsample2D};
use embeddings::{TimestepEmbedding, sinusoidal_embedding};
use resnet::{ResnetBlock2D, ResnetConfig};
use transformer::{Transformer2DModel, TransformerConfig};

/// Which layers get adapters, kohya-style: `linear` covers every linear
/// and 1×1 conv inside the spatial transformers (kohya's default network);
/// `conv3x3` turns on LoCon for resnets, downsamplers and upsamplers (and
/// then also adapts their timestep projections and 1×1 shortcuts with
/// `linear`).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct LoraTargets {
    pub linear: Option<LoraSpec>,
    pub conv3x3: Option<LoraSpec>,
}

/// The shape of a `UNet2DConditionModel`.
#[derive(Debug, Clone, PartialEq)]
pub struct UNetConfig {
    pub in_channels: usize,
    pub out_channels: usize,
    pub block_out_channels: Vec<usize>,
    /// Whether each down block has spatial transformers (the up blocks
    /// mirror it).
    pub down_block_attention: Vec<bool>,
    pub layers_per_block: usize,
    /// diffusers calls this `attention_head_dim`, but for SD1.5 it is the
    /// number of heads (used when `head_channels` is `None`).
    pub heads: usize,
    /// SDXL keeps each head 64 channels wide: a stage has `channels /
    /// head_channels` heads.
    pub head_channels: Option<usize>,
    pub cross_attention_dim: usize,
    pub norm_num_groups: usize,
    pub norm_eps: f64,
    /// Transformer blocks per spatial transformer, per stage (the up blocks
    /// mirror it; the mid block takes the last stage's).
    pub transformer_depth: Vec<usize>,
    /// `proj_in`/`proj_out` are linear layers on the tokens (SDXL) rather
    /// than 1×1 convolutions (SD1.5).
    pub linear_projection: bool,
    /// SDXL's size-and-pooled-text conditioning; `None` for SD1.5.
    pub addition: Option<AdditionConfig>,
}

/// SDXL's "text_time" added conditioning: six size numbers, each as a
/// `time_embed_dim`-wide sinusoidal code, then the pooled text embedding.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdditionConfig {
    pub time_embed_dim: usize,
    pub pooled_dim: usize,
}

impl AdditionConfig {
    /// The width `add_embedding.linear_1` takes.
    pub fn input_dim(&self) -> usize {
        6 * self.time_embed_dim + self.pooled_dim
    }
}

impl UNetConfig {
    /// Stable Diffusion 1.5, from
    /// <https://huggingface.co/stable-diffusion-v1-5/stable-diffusion-v1-5/blob/main/unet/config.json>.
    pub fn sd15() -> Self {
        Self {
            in_channels: 4,
            out_channels: 4,
            block_out_channels: vec![320, 640, 1280, 1280],
            down_block_attention: vec![true, true, true, false],
            layers_per_block: 2,
            heads: 8,
            head_channels: None,
            cross_attention_dim: 768,
            norm_num_groups: 32,
            norm_eps: 1e-5,
            transformer_depth: vec![1; 4],
            linear_projection: false,
            addition: None,
        }
    }

    /// Stable Diffusion XL 1.0 base, from
    /// <https://huggingface.co/stabilityai/stable-diffusion-xl-base-1.0/blob/main/unet/config.json>:
    /// three stages, no attention in the first, 2 and 10 transformer blocks
    /// in the others, 64-channel heads, a 2048-wide context (both text
    /// encoders side by side).
    pub fn sdxl() -> Self {
        Self {
            in_channels: 4,
            out_channels: 4,
            block_out_channels: vec![320, 640, 1280],
            down_block_attention: vec![false, true, true],
            layers_per_block: 2,
            heads: 0,
            head_channels: Some(64),
            cross_attention_dim: 2048,
            norm_num_groups: 32,
            norm_eps: 1e-5,
            transformer_depth: vec![0, 2, 10],
            linear_projection: true,
            addition: Some(AdditionConfig {
                time_embed_dim: 256,
                pooled_dim: 1280,
            }),
        }
    }

    /// SDXL's block layout at toy widths: three stages, attention in the
    /// last two with 2 and 3 transformer blocks, linear projections, the
    /// added conditioning; the context is the two toy text encoders' widths
    /// together (16 + 24).
    pub fn sdxl_toy() -> Self {
        Self {
            block_out_channels: vec![8, 16, 32],
            down_block_attention: vec![false, true, true],
            layers_per_block: 2,
            heads: 0,
            head_channels: Some(4),
            cross_attention_dim: 40,
            norm_num_groups: 4,
            transformer_depth: vec![0, 2, 3],
            linear_projection: true,
            addition: Some(AdditionConfig {
                time_embed_dim: 8,
                pooled_dim: 24,
            }),
            ..Self::tiny()
        }
    }

    /// Two stages (one with attention, one without), one resnet per stage:
    /// every kind of block and key SD1.5 has, in a few thousand parameters.
    pub fn tiny() -> Self {
        Self {
            in_channels: 4,
            out_channels: 4,
            block_out_channels: vec![16, 32],
            down_block_attention: vec![true, false],
            layers_per_block: 1,
            heads: 2,
            head_channels: None,
            cross_attention_dim: 16,
            norm_num_groups: 8,
            norm_eps: 1e-5,
            transformer_depth: vec![1; 2],
            linear_projection: false,
            addition: None,
        }
    }

    /// SD1.5's block layout at toy widths: four stages, attention in the
    /// first three, two resnets per stage, a stage that keeps its width (no
    /// shortcut conv), and up blocks with both attention and an upsampler.
    pub fn sd15_toy() -> Self {
        Self {
            block_out_channels: vec![8, 16, 32, 32],
            down_block_attention: vec![true, true, true, false],
            layers_per_block: 2,
            norm_num_groups: 4,
            transformer_depth: vec![1; 4],
            ..Self::tiny()
        }
    }

    /// The timestep embedding's width: four times the first stage.
    pub fn time_embed_dim(&self) -> usize {
        self.block_out_channels.first().copied().unwrap_or(0) * 4
    }

    fn resnet(&self, in_channels: usize, out_channels: usize) -> ResnetConfig {
        ResnetConfig {
            in_channels,
            out_channels,
            temb_channels: Some(self.time_embed_dim()),
            groups: self.norm_num_groups,
            eps: self.norm_eps,
        }
    }

    /// The heads of a spatial transformer `channels` wide.
    pub fn heads_at(&self, channels: usize) -> usize {
        match self.head_channels {
            Some(width) => channels / width.max(1),
            None => self.heads,
        }
    }

    fn transformer(&self, channels: usize, depth: usize) -> TransformerConfig {
        TransformerConfig {
            channels,
            heads: self.heads_at(channels),
            context_dim: self.cross_attention_dim,
            depth,
            groups: self.norm_num_groups,
            linear_projection: self.linear_projection,
        }
    }

    /// The transformer depth of stage `i` (at least 1 where it has
    /// attention).
    fn depth(&self, i: usize) -> usize {
        self.transformer_depth.get(i).copied().unwrap_or(1).max(1)
    }

    /// Checks the numbers a forward pass relies on, so a bad config is an
    /// error here rather than a shape panic later.
    pub fn validate(&self) -> Result<(), String> {
        let n = self.block_out_channels.len();
        if n == 0 || self.down_block_attention.len() != n || self.transformer_depth.len() != n {
            return Err(format!(
                "`block_out_channels` ({n}), `down_block_attention` ({}) and `transformer_depth` ({}) must be non-empty and the same length",
                self.down_block_attention.len(),
                self.transformer_depth.len()
            ));
        }
        for &c in &self.block_out_channels {
            let heads = self.heads_at(c);
            if c % self.norm_num_groups != 0 || heads == 0 || c % heads != 0 {
                return Err(format!(
                    "channel count {c} must divide by `norm_num_groups` ({}) and into {heads} heads",
                    self.norm_num_groups
                ));
            }
        }
        Ok(())
    }

    /// The factor latents must divide by: 2 per downsampling stage.
    pub fn downscale(&self) -> usize {
        1 << self.block_out_channels.len().saturating_sub(1)
    }
}

#[derive(Module, Debug)]
pub struct UNet2DConditionModel<B: Backend> {
    pub conv_in: Conv2d<B>,
    pub time_embedding: TimestepEmbedding<B>,
    pub down_blocks: Vec<DownBlock2D<B>>,
    pub mid_block: UNetMidBlock2DCrossAttn<B>,
    pub up_blocks: Vec<UpBlock2D<B>>,
    pub conv_norm_out: GroupNorm<B>,
    pub conv_out: Conv2d<B>,
    /// SDXL's added conditioning MLP (`add_embedding.linear_1|2`).
    pub add_embedding: Option<TimestepEmbedding<B>>,
    /// Width of the sinusoidal timestep code (the first stage's channels).
    pub time_proj_dim: usize,
    /// Width of each size number's sinusoidal code (SDXL: 256).
    pub add_time_proj_dim: usize,
}

/// SDXL's added conditioning for a batch.
#[derive(Debug, Clone)]
pub struct AddedCond<B: Backend> {
    /// The second text encoder's pooled, projected embedding, `[batch, pooled]`.
    pub text_embeds: Tensor<B, 2>,
    /// Original height and width, crop top and left, target height and
    /// width, in pixels: `[batch, 6]`.
    pub time_ids: Tensor<B, 2>,
}

impl<B: Backend> UNet2DConditionModel<B> {
    /// Builds the model with noise weights (load a checkpoint next) and the
    /// adapters `lora` asks for. Call [`UNetConfig::validate`] first.
    pub fn init(config: &UNetConfig, lora: &LoraTargets, device: &B::Device) -> Self {
        let channels = &config.block_out_channels;
        let n = channels.len();
        let first = channels[0];
        let attn_lora = lora.linear.as_ref();

        let mut down_blocks = Vec::with_capacity(n);
        let mut in_c = first;
        for (i, (&out_c, &has_attn)) in channels
            .iter()
            .zip(&config.down_block_attention)
            .enumerate()
        {
            let resnets = (0..config.layers_per_block)
                .map(|j| {
                    let c = if j == 0 { in_c } else { out_c };
                    ResnetBlock2D::init(&config.resnet(c, out_c), lora, device)
                })
                .collect();
            let attentions = if has_attn {
                (0..config.layers_per_block)
                    .map(|_| {
                        Transformer2DModel::init(
                            &config.transformer(out_c, config.depth(i)),
                            attn_lora,
                            device,
                        )
                    })
                    .collect()
            } else {
                Vec::new()
            };
            let downsamplers = if i + 1 < n {
                vec![Downsample2D::init(out_c, lora, device)]
            } else {
                Vec::new()
            };
            down_blocks.push(DownBlock2D {
                resnets,
                attentions,
                downsamplers,
            });
            in_c = out_c;
        }

        let last = channels[n - 1];
        let mid_block = UNetMidBlock2DCrossAttn {
            resnets: (0..2)
                .map(|_| ResnetBlock2D::init(&config.resnet(last, last), lora, device))
                .collect(),
            attentions: vec![Transformer2DModel::init(
                &config.transformer(last, config.depth(n - 1)),
                attn_lora,
                device,
            )],
        };

        let reversed: Vec<usize> = channels.iter().rev().copied().collect();
        let reversed_attn: Vec<bool> = config.down_block_attention.iter().rev().copied().collect();
        let mut up_blocks = Vec::with_capacity(n);
        let mut prev_c = reversed[0];
        for i in 0..n {
            let out_c = reversed[i];
            let skip_in_c = reversed[(i + 1).min(n - 1)];
            let layers = config.layers_per_block + 1;
            let resnets = (0..layers)
                .map(|j| {
                    let skip_c = if j + 1 == layers { skip_in_c } else { out_c };
                    let res_in = if j == 0 { prev_c } else { out_c };
                    ResnetBlock2D::init(&config.resnet(res_in + skip_c, out_c), lora, device)
                })
                .collect();
            let attentions = if reversed_attn[i] {
                (0..layers)
                    .map(|_| {
                        Transformer2DModel::init(
                            &config.transformer(out_c, config.depth(n - 1 - i)),
                            attn_lora,
                            device,
                        )
                    })
                    .collect()
            } else {
                Vec::new()
            };
            let upsamplers = if i + 1 < n {
                vec![Upsample2D::init(out_c, lora, device)]
            } else {
                Vec::new()
            };
            up_blocks.push(UpBlock2D {
                resnets,
                attentions,
                upsamplers,
            });
            prev_c = out_c;
        }

        Self {
            conv_in: Conv2d::init(config.in_channels, first, 3, 1, 1, None, device),
            time_embedding: TimestepEmbedding::init(first, config.time_embed_dim(), device),
            down_blocks,
            mid_block,
            up_blocks,
            conv_norm_out: GroupNorm::init(config.norm_num_groups, first, config.norm_eps, device),
            conv_out: Conv2d::init(first, config.out_channels, 3, 1, 1, None, device),
            add_embedding: config
                .addition
                .map(|a| TimestepEmbedding::init(a.input_dim(), config.time_embed_dim(), device)),
            time_proj_dim: first,
            add_time_proj_dim: config.addition.map(|a| a.time_embed_dim).unwrap_or(0),
        }
    }

    /// Predicts the noise (or velocity) in `latents` at `timesteps` given the
    /// text embeddings.
    ///
    /// # Shapes
    /// - latents: `[batch, 4, h, w]` (h, w divisible by [`UNetConfig::downscale`])
    /// - timesteps: `[batch]`
    /// - context: `[batch, 77, cross_attention_dim]`
    /// - returns `[batch, 4, h, w]`
    ///
    /// `added` is SDXL's size and pooled-text conditioning; a model without
    /// `add_embedding` ignores it, and one with it runs without it only in
    /// tests of the rest.
    pub fn forward(
        &self,
        latents: Tensor<B, 4>,
        timesteps: Tensor<B, 1>,
        context: Tensor<B, 3>,
        added: Option<AddedCond<B>>,
    ) -> Tensor<B, 4> {
        let temb = sinusoidal_embedding(timesteps, self.time_proj_dim); // [batch, c0]
        let mut temb = self.time_embedding.forward(temb); // [batch, 4 * c0]
        if let (Some(mlp), Some(added)) = (&self.add_embedding, added) {
            let [batch, six] = added.time_ids.dims();
            let codes = sinusoidal_embedding(
                added.time_ids.reshape([batch * six]),
                self.add_time_proj_dim,
            )
            .reshape([batch, six * self.add_time_proj_dim]); // [batch, 6 * d]
            let input = Tensor::cat(vec![added.text_embeds, codes], 1); // [batch, pooled + 6 d]
            temb = temb + mlp.forward(input);
        }

        let mut h = self.conv_in.forward(latents); // [batch, c0, h, w]
        let mut skips = vec![h.clone()];
        for block in &self.down_blocks {
            let (out, states) = block.forward(h, temb.clone(), context.clone());
            h = out;
            skips.extend(states);
        }
        h = self.mid_block.forward(h, temb.clone(), context.clone()); // [batch, c_last, h/d, w/d]
        for block in &self.up_blocks {
            h = block.forward(h, &mut skips, temb.clone(), context.clone());
        }
        self.conv_out.forward(silu(self.conv_norm_out.forward(h))) // [batch, 4, h, w]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::TestBackend;
    use burn::tensor::Distribution;

    #[test]
    fn tiny_unet_keeps_the_latent_shape() {
        let device = Default::default();
        let config = UNetConfig::tiny();
        config.validate().unwrap();
        let unet =
            UNet2DConditionModel::<TestBackend>::init(&config, &LoraTargets::default(), &device);
        let latents = Tensor::random([2, 4, 8, 8], Distribution::Default, &device);
        let t = Tensor::from_floats([10.0, 500.0], &device);
        let context = Tensor::random([2, 7, 16], Distribution::Default, &device);
        let out = unet.forward(latents, t, context, None);
        assert_eq!(out.dims(), [2, 4, 8, 8]);
    }
}
