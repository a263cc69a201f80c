//! The transformer pieces of the UNet: multi-head `Attention` (self or
//! cross), the GEGLU `FeedForward`, and the `BasicTransformerBlock` that
//! chains them with pre-norm residuals.
//!
//! Keys: `attn1|attn2.{to_q,to_k,to_v,to_out.0}`, `ff.net.0.proj`,
//! `ff.net.2`, `norm1..3`. `to_out` and `ff.net` are diffusers
//! `ModuleList`s, which is why they are a `Vec` and a tuple here: the index
//! is part of the key.

use burn::module::Module;
use burn::nn::{Dropout, DropoutConfig};
use burn::tensor::Tensor;
use burn::tensor::activation::gelu;
use burn::tensor::backend::Backend;

use crate::engine::lora::LoraSpec;
use crate::engine::nn::{LayerNorm, Linear};

/// Multi-head attention; `to_k`/`to_v` read the context (text embeddings)
/// in cross-attention and the hidden states themselves in self-attention.
#[derive(Module, Debug)]
pub struct Attention<B: Backend> {
    pub to_q: Linear<B>,
    pub to_k: Linear<B>,
    pub to_v: Linear<B>,
    pub to_out: Vec<Linear<B>>,
    pub heads: usize,
}

impl<B: Backend> Attention<B> {
    /// `context_dim` is `None` for self-attention.
    pub fn init(
        query_dim: usize,
        context_dim: Option<usize>,
        heads: usize,
        lora: Option<&LoraSpec>,
        device: &B::Device,
    ) -> Self {
        let context_dim = context_dim.unwrap_or(query_dim);
        Self {
            to_q: Linear::init(query_dim, query_dim, false, lora, device),
            to_k: Linear::init(context_dim, query_dim, false, lora, device),
            to_v: Linear::init(context_dim, query_dim, false, lora, device),
            to_out: vec![Linear::init(query_dim, query_dim, true, lora, device)],
            heads,
        }
    }

    /// # Shapes
    /// - x: `[batch, seq, dim]`
    /// - context: `[batch, ctx_seq, context_dim]`, or `None` for self-attention
    /// - returns `[batch, seq, dim]`
    pub fn forward(&self, x: Tensor<B, 3>, context: Option<Tensor<B, 3>>) -> Tensor<B, 3> {
        let context = context.unwrap_or_else(|| x.clone());
        let q = self.split_heads(self.to_q.forward(x)); // [batch, heads, seq, head_dim]
        let k = self.split_heads(self.to_k.forward(context.clone())); // [batch, heads, ctx, head_dim]
        let v = self.split_heads(self.to_v.forward(context)); // [batch, heads, ctx, head_dim]
        let out = crate::engine::recompute::attention(q, k, v); // [batch, heads, seq, head_dim]
        let [batch, heads, seq, head_dim] = out.dims();
        let out = out.swap_dims(1, 2).reshape([batch, seq, heads * head_dim]); // [batch, seq, dim]
        self.to_out
            .iter()
            .fold(out, |out, layer| layer.forward(out))
    }

    fn split_heads(&self, x: Tensor<B, 3>) -> Tensor<B, 4> {
        let [batch, seq, dim] = x.dims();
        x.reshape([batch, seq, self.heads, dim / self.heads])
            .swap_dims(1, 2)
    }
}

/// GELU-gated linear unit: one projection to twice the width, half of it
/// gating the other half.
#[derive(Module, Debug)]
pub struct GeGlu<B: Backend> {
    pub proj: Linear<B>,
}

impl<B: Backend> GeGlu<B> {
    /// # Shapes
    /// - x: `[batch, seq, dim]` → `[batch, seq, inner]`
    pub fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        let projected = self.proj.forward(x); // [batch, seq, 2 * inner]
        let [batch, seq, double] = projected.dims();
        let value = projected.clone().slice([0..batch, 0..seq, 0..double / 2]);
        let gate = projected.slice([0..batch, 0..seq, double / 2..double]);
        value * gelu(gate)
    }
}

/// `net.0` is the GEGLU, `net.1` a dropout with no weights, `net.2` the
/// output projection.
#[derive(Module, Debug)]
pub struct FeedForward<B: Backend> {
    pub net: (GeGlu<B>, Dropout, Linear<B>),
}

impl<B: Backend> FeedForward<B> {
    pub fn init(dim: usize, lora: Option<&LoraSpec>, device: &B::Device) -> Self {
        let inner = dim * 4;
        Self {
            net: (
                GeGlu {
                    proj: Linear::init(dim, inner * 2, true, lora, device),
                },
                DropoutConfig::new(0.0).init(),
                Linear::init(inner, dim, true, lora, device),
            ),
        }
    }

    /// # Shapes
    /// - x: `[batch, seq, dim]` → same
    pub fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        let (geglu, _, out) = &self.net;
        out.forward(geglu.forward(x))
    }
}

/// Self-attention, cross-attention and feed-forward, each behind a
/// LayerNorm and added back to the residual stream.
#[derive(Module, Debug)]
pub struct BasicTransformerBlock<B: Backend> {
    pub norm1: LayerNorm<B>,
    pub attn1: Attention<B>,
    pub norm2: LayerNorm<B>,
    pub attn2: Attention<B>,
    pub norm3: LayerNorm<B>,
    pub ff: FeedForward<B>,
}

impl<B: Backend> BasicTransformerBlock<B> {
    pub fn init(
        dim: usize,
        context_dim: usize,
        heads: usize,
        lora: Option<&LoraSpec>,
        device: &B::Device,
    ) -> Self {
        Self {
            norm1: LayerNorm::init(dim, 1e-5, device),
            attn1: Attention::init(dim, None, heads, lora, device),
            norm2: LayerNorm::init(dim, 1e-5, device),
            attn2: Attention::init(dim, Some(context_dim), heads, lora, device),
            norm3: LayerNorm::init(dim, 1e-5, device),
            ff: FeedForward::init(dim, lora, device),
        }
    }

    /// # Shapes
    /// - x: `[batch, seq, dim]`, context: `[batch, ctx_seq, context_dim]` → `[batch, seq, dim]`
    pub fn forward(&self, x: Tensor<B, 3>, context: Tensor<B, 3>) -> Tensor<B, 3> {
        let x = x.clone() + self.attn1.forward(self.norm1.forward(x), None);
        let x = x.clone() + self.attn2.forward(self.norm2.forward(x), Some(context));
        x.clone() + self.ff.forward(self.norm3.forward(x))
    }
}
