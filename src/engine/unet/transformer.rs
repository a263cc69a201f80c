//! `Transformer2DModel` (the "spatial transformer"): runs transformer
//! blocks over the pixels of a feature map, between a GroupNorm, a 1×1
//! `proj_in` and a 1×1 `proj_out`, with a residual around all of it.
//!
//! Keys: `norm`, `proj_in`, `transformer_blocks.N.*`, `proj_out`. SD1.5 uses
//! 1×1 convolutions for the projections (`use_linear_projection = false`),
//! SDXL linear layers on the tokens; the two compute the same thing and
//! differ in how the weights are stored (`[c, c, 1, 1]` against `[c, c]`),
//! which the LoRA file must repeat. [`Projection`] is a burn enum module: its
//! variant is a path segment (`proj_in.Conv.weight`) that every key walker
//! skips (container type `Enum:`).

use burn::module::Module;
use burn::tensor::Tensor;
use burn::tensor::backend::Backend;

use crate::engine::lora::LoraSpec;
use crate::engine::nn::{Conv2d, GroupNorm, Linear};
use crate::engine::unet::attention::BasicTransformerBlock;

/// A spatial transformer's `proj_in` / `proj_out`.
#[derive(Module, Debug)]
pub enum Projection<B: Backend> {
    /// SD1.5: a 1×1 convolution on the feature map.
    Conv(Conv2d<B>),
    /// SDXL: a linear layer on the tokens.
    Linear(Linear<B>),
}

impl<B: Backend> Projection<B> {
    fn init(c: usize, linear: bool, lora: Option<&LoraSpec>, device: &B::Device) -> Self {
        if linear {
            Projection::Linear(Linear::init(c, c, true, lora, device))
        } else {
            Projection::Conv(Conv2d::init(c, c, 1, 1, 0, lora, device))
        }
    }

    /// # Shapes
    /// - x: `[batch, c, h, w]` → same (a per-pixel linear map either way)
    fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        match self {
            Projection::Conv(conv) => conv.forward(x),
            Projection::Linear(linear) => {
                let [batch, c, h, w] = x.dims();
                let tokens = x.reshape([batch, c, h * w]).swap_dims(1, 2); // [batch, h*w, c]
                let out = linear.forward(tokens); // [batch, h*w, c]
                let c_out = out.dims()[2];
                out.swap_dims(1, 2).reshape([batch, c_out, h, w])
            }
        }
    }
}

#[derive(Module, Debug)]
pub struct Transformer2DModel<B: Backend> {
    pub norm: GroupNorm<B>,
    pub proj_in: Projection<B>,
    pub transformer_blocks: Vec<BasicTransformerBlock<B>>,
    pub proj_out: Projection<B>,
}

/// The numbers one spatial transformer is built from.
#[derive(Debug, Clone, Copy)]
pub struct TransformerConfig {
    pub channels: usize,
    pub heads: usize,
    pub context_dim: usize,
    pub depth: usize,
    pub groups: usize,
    pub linear_projection: bool,
}

impl<B: Backend> Transformer2DModel<B> {
    pub fn init(config: &TransformerConfig, lora: Option<&LoraSpec>, device: &B::Device) -> Self {
        let c = config.channels;
        Self {
            norm: GroupNorm::init(config.groups, c, 1e-6, device),
            proj_in: Projection::init(c, config.linear_projection, lora, device),
            transformer_blocks: (0..config.depth)
                .map(|_| {
                    BasicTransformerBlock::init(c, config.context_dim, config.heads, lora, device)
                })
                .collect(),
            proj_out: Projection::init(c, config.linear_projection, lora, device),
        }
    }

    /// # Shapes
    /// - x: `[batch, c, h, w]`, context: `[batch, ctx_seq, context_dim]` → `[batch, c, h, w]`
    pub fn forward(&self, x: Tensor<B, 4>, context: Tensor<B, 3>) -> Tensor<B, 4> {
        let [batch, c, h, w] = x.dims();
        let hidden = self.proj_in.forward(self.norm.forward(x.clone())); // [batch, c, h, w]
        let mut tokens = hidden.reshape([batch, c, h * w]).swap_dims(1, 2); // [batch, h*w, c]
        for block in &self.transformer_blocks {
            tokens = block.forward(tokens, context.clone());
        }
        let hidden = tokens.swap_dims(1, 2).reshape([batch, c, h, w]); // [batch, c, h, w]
        self.proj_out.forward(hidden) + x
    }
}
