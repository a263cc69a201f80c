//! Attention that recomputes its scores in the backward pass instead of
//! keeping them: what `gradient_checkpointing = true` adds to burn's
//! balanced checkpointing strategy.
//!
//! burn's autodiff builds attention from a product, a scale, a softmax and a
//! second product, and keeps their `[batch, heads, seq, seq]` outputs for the
//! backward pass: every attention layer's scores at once, the largest part
//! of a 512 px step's memory (16 self-attentions of 4096 × 4096 and 1024 ×
//! 1024 tokens in SD1.5). burn's `BalancedCheckpointing` recomputes the
//! element-wise steps but still keeps the product's scores. Here attention
//! is one node of the graph that keeps only its inputs `q`, `k`, `v` (a few
//! MB each); the forward pass is the backend's own fused attention (flex
//! tiles it, never holding a whole score matrix), and the backward pass
//! recomputes the softmax a block of query rows at a time, so at most one
//! block's scores exist at any moment.
//!
//! It applies when the training backend is `Autodiff<_,
//! BalancedCheckpointing>`, the type `gradient_checkpointing = true`
//! selects (see [`super::cli`]); other backends run burn's attention.

use std::any::TypeId;

use burn::backend::Autodiff;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::{BalancedCheckpointing, NoCheckpointing};
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::tensor::activation::softmax;
use burn::tensor::backend::Backend;
use burn::tensor::module::attention as fused_attention;
use burn::tensor::ops::{AttentionModuleOptions, FloatTensor};
use burn::tensor::{Tensor, TensorPrimitive};

use super::precision::downcast;

/// Elements of one block of scores in the backward pass (64 MB of f32).
const SCORE_BLOCK: usize = 16 << 20;

/// Scaled dot-product attention, `softmax(q·kᵀ/√d)·v`, with no mask.
///
/// # Shapes
/// - q: `[batch, heads, seq, head_dim]`, k and v: `[batch, heads, ctx, head_dim]`
/// - returns `[batch, heads, seq, head_dim]`
pub fn attention<B: Backend>(q: Tensor<B, 4>, k: Tensor<B, 4>, v: Tensor<B, 4>) -> Tensor<B, 4> {
    if !recomputes::<B>() {
        return fused_attention(q, k, v, None, None, AttentionModuleOptions::default());
    }
    let prims = [q, k, v].map(|t| t.into_primitive().tensor());
    let prims = match on_inner::<B, super::CpuBackend>(prims) {
        Ok(out) => return Tensor::from_primitive(TensorPrimitive::Float(out)),
        Err(prims) => prims,
    };
    #[cfg(feature = "cuda")]
    let prims = match on_inner::<B, burn::backend::Cuda<f32>>(prims) {
        Ok(out) => return Tensor::from_primitive(TensorPrimitive::Float(out)),
        Err(prims) => prims,
    };
    let [q, k, v] = prims.map(|p| Tensor::<B, 4>::from_primitive(TensorPrimitive::Float(p)));
    fused_attention(q, k, v, None, None, AttentionModuleOptions::default())
}

/// Whether `B` is a training backend that checkpoints (the type
/// `gradient_checkpointing = true` selects).
fn recomputes<B: Backend>() -> bool {
    let b = TypeId::of::<B>();
    if b == TypeId::of::<Autodiff<super::CpuBackend, BalancedCheckpointing>>() {
        return true;
    }
    #[cfg(feature = "cuda")]
    if b == TypeId::of::<Autodiff<burn::backend::Cuda<f32>, BalancedCheckpointing>>() {
        return true;
    }
    false
}

#[allow(clippy::type_complexity)]
fn on_inner<B: Backend, I: Backend>(
    [q, k, v]: [B::FloatTensorPrimitive; 3],
) -> Result<B::FloatTensorPrimitive, [B::FloatTensorPrimitive; 3]> {
    type Ad<I> = FloatTensor<Autodiff<I>>;
    let q = match downcast::<_, Ad<I>>(q) {
        Ok(q) => q,
        Err(q) => return Err([q, k, v]),
    };
    let (Ok(k), Ok(v)) = (downcast::<_, Ad<I>>(k), downcast::<_, Ad<I>>(v)) else {
        return Err(super::precision::same_backend());
    };
    downcast::<_, B::FloatTensorPrimitive>(attention_node::<I>(q, k, v))
        .map_err(|_| super::precision::same_backend())
}

#[derive(Debug)]
struct RecomputedAttention;

impl<I: Backend> Backward<I, 3> for RecomputedAttention {
    /// q, k and v on the inner backend.
    type State = [FloatTensor<I>; 3];

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let grad = grads.consume::<I>(&ops.node);
        let [q, k, v] = ops
            .state
            .map(|p| Tensor::<I, 4>::from_primitive(TensorPrimitive::Float(p)));
        let grad = Tensor::<I, 4>::from_primitive(TensorPrimitive::Float(grad));
        let [dq, dk, dv] = attention_backward(q, k, v, grad, SCORE_BLOCK);
        for (parent, g) in ops.parents.into_iter().zip([dq, dk, dv]) {
            if let Some(parent) = parent {
                grads.register::<I>(parent.id, g.into_primitive().tensor());
            }
        }
    }
}

fn attention_node<I: Backend>(
    q: FloatTensor<Autodiff<I>>,
    k: FloatTensor<Autodiff<I>>,
    v: FloatTensor<Autodiff<I>>,
) -> FloatTensor<Autodiff<I>> {
    let nodes = [q.node.clone(), k.node.clone(), v.node.clone()];
    let [q, k, v] = [q.primitive, k.primitive, v.primitive];
    let out = fused_attention(
        Tensor::<I, 4>::from_primitive(TensorPrimitive::Float(q.clone())),
        Tensor::<I, 4>::from_primitive(TensorPrimitive::Float(k.clone())),
        Tensor::<I, 4>::from_primitive(TensorPrimitive::Float(v.clone())),
        None,
        None,
        AttentionModuleOptions::default(),
    )
    .into_primitive()
    .tensor();
    // compute-bound: the strategy type plays no part in this node
    match RecomputedAttention
        .prepare::<NoCheckpointing>(nodes)
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => prep.finish([q, k, v], out),
        OpsKind::UnTracked(prep) => prep.finish(out),
    }
}

/// The gradients of `q`, `k`, `v` from the output's, recomputing the
/// softmax a block of query rows at a time:
/// `P = softmax(q·kᵀ·s)`, `dv = Pᵀ·do`, `dP = do·vᵀ`,
/// `dS = P ⊙ (dP − rowsum(dP ⊙ P))`, `dq = dS·k·s`, `dk = dSᵀ·q·s`.
/// A block holds at most `block` scores (at least one row).
pub(crate) fn attention_backward<I: Backend>(
    q: Tensor<I, 4>,
    k: Tensor<I, 4>,
    v: Tensor<I, 4>,
    grad: Tensor<I, 4>,
    block: usize,
) -> [Tensor<I, 4>; 3] {
    let [batch, heads, seq, head_dim] = q.dims();
    let [_, _, ctx, _] = k.dims();
    let scale = 1.0 / (head_dim as f64).sqrt();
    let rows = (block / (batch * heads * ctx).max(1)).clamp(1, seq.max(1));
    let k_t = k.clone().swap_dims(2, 3); // [b, h, d, ctx]
    let v_t = v.clone().swap_dims(2, 3); // [b, h, d, ctx]
    let mut dq = Vec::with_capacity(seq.div_ceil(rows));
    let mut dk = k.zeros_like();
    let mut dv = v.zeros_like();
    let mut start = 0;
    while start < seq {
        let end = (start + rows).min(seq);
        let range = [0..batch, 0..heads, start..end, 0..head_dim];
        let q_rows = q.clone().slice(range.clone()); // [b, h, r, d]
        let g_rows = grad.clone().slice(range); // [b, h, r, d]
        let p = softmax(q_rows.clone().matmul(k_t.clone()).mul_scalar(scale), 3); // [b, h, r, ctx]
        dv = dv + p.clone().swap_dims(2, 3).matmul(g_rows.clone());
        let dp = g_rows.matmul(v_t.clone()); // [b, h, r, ctx]
        let row_sum = (dp.clone() * p.clone()).sum_dim(3); // [b, h, r, 1]
        let ds = (p * (dp - row_sum)).mul_scalar(scale); // [b, h, r, ctx]
        dq.push(ds.clone().matmul(k.clone()));
        dk = dk + ds.swap_dims(2, 3).matmul(q_rows);
        start = end;
    }
    [Tensor::cat(dq, 2), dk, dv]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{TestAutodiff, TestBackend};
    use burn::tensor::{Distribution, Tolerance};

    type Checkpointed = Autodiff<crate::engine::CpuBackend, BalancedCheckpointing>;

    /// The gradients through burn's attention (which keeps the scores), by
    /// autodiff, on random q, k, v and output weights.
    fn reference(
        inputs: &[Tensor<TestBackend, 4>; 3],
        weight: &Tensor<TestBackend, 4>,
    ) -> (Tensor<TestBackend, 4>, [Tensor<TestBackend, 4>; 3]) {
        let [q, k, v] = inputs
            .clone()
            .map(|t| Tensor::<TestAutodiff, 4>::from_inner(t).require_grad());
        let out = fused_attention(
            q.clone(),
            k.clone(),
            v.clone(),
            None,
            None,
            AttentionModuleOptions::default(),
        );
        let grads = (out.clone() * Tensor::from_inner(weight.clone()))
            .sum()
            .backward();
        (out.inner(), [q, k, v].map(|t| t.grad(&grads).unwrap()))
    }

    fn inputs(seq: usize, ctx: usize) -> ([Tensor<TestBackend, 4>; 3], Tensor<TestBackend, 4>) {
        let device = Default::default();
        let random = |shape: [usize; 4]| {
            Tensor::<TestBackend, 4>::random(shape, Distribution::Normal(0.0, 1.0), &device)
        };
        (
            [
                random([2, 3, seq, 8]),
                random([2, 3, ctx, 8]),
                random([2, 3, ctx, 8]),
            ],
            random([2, 3, seq, 8]),
        )
    }

    #[test]
    fn recomputed_attention_gives_the_stored_attention_gradients() {
        // self-attention and cross-attention lengths
        for (seq, ctx) in [(37, 37), (37, 5)] {
            let (inputs, weight) = inputs(seq, ctx);
            let (out_ref, grads_ref) = reference(&inputs, &weight);
            let [q, k, v] = inputs
                .clone()
                .map(|t| Tensor::<Checkpointed, 4>::from_inner(t).require_grad());
            let out = attention(q.clone(), k.clone(), v.clone());
            let grads = (out.clone() * Tensor::from_inner(weight.clone()))
                .sum()
                .backward();
            out.inner()
                .into_data()
                .assert_approx_eq::<f32>(&out_ref.into_data(), Tolerance::absolute(1e-5));
            for (t, expected) in [q, k, v].iter().zip(grads_ref) {
                t.grad(&grads)
                    .unwrap()
                    .into_data()
                    .assert_approx_eq::<f32>(&expected.into_data(), Tolerance::absolute(1e-4));
            }
        }
    }

    #[test]
    fn the_backward_pass_in_blocks_of_rows_adds_up_to_the_whole() {
        let (inputs, weight) = inputs(37, 11);
        let (_, expected) = reference(&inputs, &weight);
        let [q, k, v] = inputs;
        // 2·3·11 scores per row: blocks of 1, 3 and 37 rows
        for block in [1, 3 * 66, 37 * 66] {
            let got = attention_backward(q.clone(), k.clone(), v.clone(), weight.clone(), block);
            for (g, e) in got.into_iter().zip(expected.clone()) {
                g.into_data()
                    .assert_approx_eq::<f32>(&e.into_data(), Tolerance::absolute(1e-4));
            }
        }
    }

    #[test]
    fn only_the_checkpointing_backend_recomputes() {
        assert!(recomputes::<Checkpointed>());
        assert!(!recomputes::<TestAutodiff>());
        assert!(!recomputes::<TestBackend>());
    }
}
