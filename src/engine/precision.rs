//! Frozen base weights held in half precision (bf16 or f16) while the LoRA
//! parameters, their gradients, the optimizer state and every activation
//! stay in f32: the usual mixed scheme, with the arithmetic in f32.
//!
//! What this module owns: the precision choice ([`BasePrecision`]), the pass
//! that stores a model's linear and convolution weights in it
//! ([`cast_base_weights`]), and the two products with such a weight
//! ([`frozen_matmul`], [`frozen_conv2d`]).
//!
//! Why the products need their own backward pass: casting the weight to f32
//! and multiplying with burn's own ops gives the right numbers, but burn's
//! autodiff keeps the product's right-hand side for the backward pass. For
//! an f32 weight that is a reference to the parameter itself; for a cast
//! weight it is the f32 copy, so every layer's copy would stay alive until
//! the backward pass and the peak would be the f32 model plus the half one.
//! Here the product is one autodiff node whose saved state is the half
//! weight (no new memory) and whose backward casts it again. A frozen weight
//! needs no gradient of its own, so that node keeps nothing else.

use std::any::Any;
use std::sync::atomic::{AtomicBool, Ordering};

use burn::backend::Autodiff;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::module::{Module, ModuleMapper, Param};
use burn::tensor::backend::Backend;
use burn::tensor::module::{conv_transpose2d, conv2d};
use burn::tensor::ops::{ConvOptions, ConvTransposeOptions, FloatTensor};
use burn::tensor::{DType, Tensor, TensorData, TensorPrimitive};
use serde::{Deserialize, Serialize};

/// The precision the frozen base weights are stored in (`[training]
/// base_precision`). The LoRA, its optimizer state and the arithmetic stay
/// in f32 whichever is chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum BasePrecision {
    #[default]
    F32,
    Bf16,
    F16,
}

impl BasePrecision {
    /// The tensor type it stores weights in.
    pub fn dtype(self) -> DType {
        match self {
            BasePrecision::F32 => DType::F32,
            BasePrecision::Bf16 => DType::BF16,
            BasePrecision::F16 => DType::F16,
        }
    }

    /// kohya's `ss_mixed_precision` value for it (kohya too holds the frozen
    /// model in that type and the network in f32).
    pub fn kohya_name(self) -> &'static str {
        match self {
            BasePrecision::F32 => "no",
            BasePrecision::Bf16 => "bf16",
            BasePrecision::F16 => "fp16",
        }
    }
}

/// Stores the weight of every linear and convolution layer of `module` in
/// `precision`, one tensor at a time (the f32 copy of one tensor is the
/// only extra memory). Biases, norms, embeddings and the LoRA adapters keep
/// their f32: together they are under 5 % of SD1.5's weights, and the
/// adapters are what trains.
pub fn cast_base_weights<B: Backend, M: Module<B>>(module: M, precision: BasePrecision) -> M {
    if precision == BasePrecision::F32 {
        return module;
    }
    let mut mapper = CastWeights {
        dtype: precision.dtype(),
        path: Vec::new(),
    };
    module.map(&mut mapper)
}

struct CastWeights {
    dtype: DType,
    /// `(field, container type)` from the root to the parameter.
    path: Vec<(String, String)>,
}

impl<B: Backend> ModuleMapper<B> for CastWeights {
    fn enter_module(&mut self, name: &str, container_type: &str) {
        self.path
            .push((name.to_string(), container_type.to_string()));
    }

    fn exit_module(&mut self, _: &str, _: &str) {
        self.path.pop();
    }

    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let base_weight = matches!(
            self.path.last(),
            Some((field, owner)) if field == "weight"
                && (owner == "Struct:Linear" || owner == "Struct:Conv2d")
        );
        if !base_weight || param.is_require_grad() {
            return param;
        }
        let dtype = self.dtype;
        param.map(|tensor| {
            if tensor.dtype() == dtype {
                return tensor; // loaded in this precision already
            }
            let device = tensor.device();
            let data = tensor.into_data().convert_dtype(dtype);
            // without the dtype, from_data converts to the backend's default
            Tensor::from_data(data, (&device, dtype)).set_require_grad(false)
        })
    }
}

/// `x · weight` for a frozen `weight` (`[d_in, d_out]`) of any precision;
/// the result is in `x`'s precision. An f32 weight is a plain product.
///
/// # Shapes
/// - x: `[..., d_in]` → `[..., d_out]`
pub fn frozen_matmul<B: Backend, const D: usize>(
    x: Tensor<B, D>,
    weight: Tensor<B, 2>,
) -> Tensor<B, D> {
    if weight.dtype() == x.dtype() {
        return x.matmul(weight.unsqueeze::<D>());
    }
    let op = FrozenOp::Matmul { dtype: x.dtype() };
    if PLAIN_CAST.load(Ordering::Relaxed) {
        let dtype = x.dtype();
        return x.matmul(weight.cast(dtype).unsqueeze::<D>());
    }
    match on_autodiff::<B, D, 2>(x, weight, &op) {
        Ok(out) => out,
        // no graph on this backend: the cast copy is freed after the product
        Err((x, weight)) => op.forward(x, weight),
    }
}

/// A convolution with a frozen `weight` (`[c_out, c_in, k, k]`) of any
/// precision; the result is in `x`'s precision. An f32 weight is burn's
/// plain `conv2d`.
///
/// # Shapes
/// - x: `[batch, c_in, h, w]` → `[batch, c_out, h', w']`
pub fn frozen_conv2d<B: Backend>(
    x: Tensor<B, 4>,
    weight: Tensor<B, 4>,
    bias: Option<Tensor<B, 1>>,
    options: ConvOptions<2>,
) -> Tensor<B, 4> {
    if weight.dtype() == x.dtype() {
        return conv2d(x, weight, bias, options);
    }
    let dtype = x.dtype();
    let out = if PLAIN_CAST.load(Ordering::Relaxed) {
        conv2d(x, weight.cast(dtype), None, options)
    } else {
        let op = FrozenOp::Conv2d { dtype, options };
        match on_autodiff::<B, 4, 4>(x, weight, &op) {
            Ok(out) => out,
            Err((x, weight)) => op.forward(x, weight),
        }
    };
    match bias {
        None => out,
        Some(bias) => {
            let [c_out] = bias.dims();
            out + bias.reshape([1, c_out, 1, 1])
        }
    }
}

/// The product a frozen half weight takes part in.
#[derive(Debug, Clone)]
enum FrozenOp {
    /// `x · w`, `w: [d_in, d_out]`, broadcast over `x`'s leading dims.
    Matmul { dtype: DType },
    /// `conv2d(x, w)`, `x: [batch, c_in, h, w]`.
    Conv2d {
        dtype: DType,
        options: ConvOptions<2>,
    },
}

impl FrozenOp {
    /// The product, with the weight cast to the input's precision for the
    /// length of the call.
    fn forward<I: Backend, const D: usize, const W: usize>(
        &self,
        x: Tensor<I, D>,
        w: Tensor<I, W>,
    ) -> Tensor<I, D> {
        match self {
            FrozenOp::Matmul { dtype } => x.matmul(widen(w, *dtype).unsqueeze::<D>()),
            FrozenOp::Conv2d { dtype, options } => {
                let x = retype::<I, D, 4>(x);
                let w = retype::<I, W, 4>(widen(w, *dtype));
                retype::<I, 4, D>(conv2d(x, w, None, options.clone()))
            }
        }
    }

    /// The input's gradient from the output's; `x_shape` is the input's
    /// shape.
    fn backward_x<I: Backend, const D: usize, const W: usize>(
        &self,
        grad: Tensor<I, D>,
        w: Tensor<I, W>,
        x_shape: &[usize],
    ) -> Tensor<I, D> {
        match self {
            FrozenOp::Matmul { dtype } => {
                grad.matmul(widen(w, *dtype).transpose().unsqueeze::<D>())
            }
            FrozenOp::Conv2d { dtype, options } => {
                let w = retype::<I, W, 4>(widen(w, *dtype));
                let grad = retype::<I, D, 4>(grad);
                let [_, _, kh, kw] = w.dims();
                let [_, _, out_h, out_w] = grad.dims();
                let padding_out = [
                    padding_out(
                        kh,
                        options.stride[0],
                        options.padding[0],
                        options.dilation[0],
                        x_shape[2],
                        out_h,
                    ),
                    padding_out(
                        kw,
                        options.stride[1],
                        options.padding[1],
                        options.dilation[1],
                        x_shape[3],
                        out_w,
                    ),
                ];
                let transposed = ConvTransposeOptions::new(
                    options.stride,
                    options.padding,
                    padding_out,
                    options.dilation,
                    options.groups,
                );
                retype::<I, 4, D>(conv_transpose2d(grad, w, None, transposed))
            }
        }
    }
}

/// `w` in `dtype`. A half tensor read into f32 is one shift (bf16) or one
/// table-free conversion (f16) per value; burn 0.21's flex cast goes
/// through an f64 copy of the whole tensor, which made a bf16 step 45 %
/// slower than f32 at 256 px (docs/engine.md).
fn widen<I: Backend, const W: usize>(w: Tensor<I, W>, dtype: DType) -> Tensor<I, W> {
    let from = w.dtype();
    if from == dtype || dtype != DType::F32 || !matches!(from, DType::BF16 | DType::F16) {
        return w.cast(dtype);
    }
    let device = w.device();
    let shape = w.shape();
    let data = w.into_data();
    let values: Option<Vec<f32>> = match from {
        DType::BF16 => data
            .as_slice::<burn::tensor::bf16>()
            .ok()
            .map(|s| s.iter().map(|v| v.to_f32()).collect()),
        _ => data
            .as_slice::<burn::tensor::f16>()
            .ok()
            .map(|s| s.iter().map(|v| v.to_f32()).collect()),
    };
    match values {
        Some(values) => Tensor::from_data(TensorData::new(values, shape), (&device, DType::F32)),
        None => Tensor::<I, W>::from_data(data, &device).cast(dtype),
    }
}

/// Benchmarks only: multiply by a cast copy with burn's own ops, as a plain
/// `weight.cast(F32)` would, to measure what the graph then keeps.
static PLAIN_CAST: AtomicBool = AtomicBool::new(false);

/// Makes [`frozen_matmul`] and [`frozen_conv2d`] use burn's own cast and
/// product (the graph keeps each cast copy), for the benchmark that shows
/// why they do not. Not for training.
pub fn use_plain_cast_for_benchmark(on: bool) {
    PLAIN_CAST.store(on, Ordering::Relaxed);
}

/// The extra output padding a transposed convolution needs to give back the
/// input's exact size (a strided convolution drops the remainder).
fn padding_out(
    kernel: usize,
    stride: usize,
    padding: usize,
    dilation: usize,
    size_in: usize,
    size_out: usize,
) -> usize {
    if stride <= 1 {
        return 0;
    }
    let dilated = dilation * (kernel - 1) + 1;
    let covered = (size_out.saturating_sub(1) * stride + dilated) as i64 - 2 * padding as i64;
    (size_in as i64 - covered).max(0) as usize
}

/// A tensor of rank `D` seen as rank `E` where the two are the same number
/// (the convolution branch is only taken at rank 4; the types cannot say so).
fn retype<I: Backend, const D: usize, const E: usize>(x: Tensor<I, D>) -> Tensor<I, E> {
    let dims = x.dims();
    let mut shape = [1usize; E];
    for (to, from) in shape.iter_mut().rev().zip(dims.iter().rev()) {
        *to = *from;
    }
    x.reshape(shape)
}

#[derive(Debug)]
struct FrozenBackward<const D: usize, const W: usize> {
    op: FrozenOp,
}

impl<I: Backend, const D: usize, const W: usize> Backward<I, 1> for FrozenBackward<D, W> {
    /// The half weight as stored (no copy) and the input's shape.
    type State = (FloatTensor<I>, Vec<usize>);

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [parent] = ops.parents;
        let grad = grads.consume::<I>(&ops.node);
        let Some(parent) = parent else {
            return;
        };
        let (weight, x_shape) = ops.state;
        let grad = Tensor::<I, D>::from_primitive(TensorPrimitive::Float(grad));
        let weight = Tensor::<I, W>::from_primitive(TensorPrimitive::Float(weight));
        let grad_x = self.op.backward_x(grad, weight, &x_shape);
        grads.register::<I>(parent.id, grad_x.into_primitive().tensor());
    }
}

/// The product as one node of `Autodiff<I>`'s graph. The node is
/// compute-bound, so no checkpointing strategy recomputes it, and the
/// strategy type does not enter its state.
fn frozen_node<I: Backend, const D: usize, const W: usize>(
    x: FloatTensor<Autodiff<I>>,
    weight: FloatTensor<Autodiff<I>>,
    op: &FrozenOp,
) -> FloatTensor<Autodiff<I>> {
    let x_node = x.node.clone();
    let half = weight.primitive;
    let x_inner = Tensor::<I, D>::from_primitive(TensorPrimitive::Float(x.primitive));
    let x_shape = x_inner.dims().to_vec();
    let w_inner = Tensor::<I, W>::from_primitive(TensorPrimitive::Float(half.clone()));
    let out = op.forward(x_inner, w_inner).into_primitive().tensor();
    match (FrozenBackward::<D, W> { op: op.clone() })
        .prepare::<NoCheckpointing>([x_node])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => prep.finish((half, x_shape), out),
        OpsKind::UnTracked(prep) => prep.finish(out),
    }
}

/// Runs `op` as one graph node when `B` is burn's autodiff over a backend
/// this build has (flex; CUDA with the `cuda` feature); gives the tensors
/// back otherwise (a backend without a graph needs no node).
#[allow(clippy::type_complexity)]
fn on_autodiff<B: Backend, const D: usize, const W: usize>(
    x: Tensor<B, D>,
    weight: Tensor<B, W>,
    op: &FrozenOp,
) -> Result<Tensor<B, D>, (Tensor<B, D>, Tensor<B, W>)> {
    let pair = (
        x.into_primitive().tensor(),
        weight.into_primitive().tensor(),
    );
    let pair = match on_inner::<B, super::CpuBackend, D, W>(pair, op) {
        Ok(out) => return Ok(Tensor::from_primitive(TensorPrimitive::Float(out))),
        Err(pair) => pair,
    };
    #[cfg(feature = "cuda")]
    let pair = match on_inner::<B, burn::backend::Cuda<f32>, D, W>(pair, op) {
        Ok(out) => return Ok(Tensor::from_primitive(TensorPrimitive::Float(out))),
        Err(pair) => pair,
    };
    let (x, w) = pair;
    Err((
        Tensor::from_primitive(TensorPrimitive::Float(x)),
        Tensor::from_primitive(TensorPrimitive::Float(w)),
    ))
}

/// [`frozen_node`] when `B` is `Autodiff<I, _>`; the primitives back when not.
#[allow(clippy::type_complexity)]
fn on_inner<B: Backend, I: Backend, const D: usize, const W: usize>(
    (x, w): (B::FloatTensorPrimitive, B::FloatTensorPrimitive),
    op: &FrozenOp,
) -> Result<B::FloatTensorPrimitive, (B::FloatTensorPrimitive, B::FloatTensorPrimitive)> {
    type Ad<I> = FloatTensor<Autodiff<I>>;
    let x = match downcast::<_, Ad<I>>(x) {
        Ok(x) => x,
        Err(x) => return Err((x, w)),
    };
    let Ok(w) = downcast::<_, Ad<I>>(w) else {
        // both come from one backend
        return Err(same_backend());
    };
    downcast::<_, B::FloatTensorPrimitive>(frozen_node::<I, D, W>(x, w, op))
        .map_err(|_| same_backend())
}

/// Two tensors of one module are of one backend; this is never reached.
#[allow(clippy::panic)]
pub(crate) fn same_backend<T>() -> T {
    panic!("a frozen weight and its input are on different backends")
}

/// `value` as a `To` when that is its type; `value` back when not.
pub(crate) fn downcast<From: Any, To: Any>(value: From) -> Result<To, From> {
    let boxed: Box<dyn Any> = Box::new(value);
    match boxed.downcast::<To>() {
        Ok(to) => Ok(*to),
        Err(back) => match back.downcast::<From>() {
            Ok(from) => Err(*from),
            Err(_) => same_backend(),
        },
    }
}
