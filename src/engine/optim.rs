//! Learning-rate schedules (constant and cosine, each with linear warmup)
//! and the Lion and Prodigy optimizers, which burn-optim 0.21 does not have.
//! AdamW comes from burn-optim.

use std::collections::{HashMap, HashSet};

use burn::module::{AutodiffModule, ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::optim::adaptor::OptimizerAdaptor;
use burn::optim::{GradientsParams, SimpleOptimizer};
use burn::record::Record;
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{ElementConversion, Tensor};

/// How the learning rate moves over training.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LrScheduleKind {
    Constant,
    /// Half a cosine from the peak down to zero at the last step.
    Cosine,
}

/// A learning-rate schedule: `warmup_steps` of linear ramp from 0, then the
/// kind's shape, over `total_steps`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LrSchedule {
    pub kind: LrScheduleKind,
    pub peak: f64,
    pub warmup_steps: usize,
    pub total_steps: usize,
}

impl LrSchedule {
    /// The rate for `step` (0-based).
    pub fn at(&self, step: usize) -> f64 {
        if step < self.warmup_steps {
            return self.peak * (step + 1) as f64 / self.warmup_steps as f64;
        }
        match self.kind {
            LrScheduleKind::Constant => self.peak,
            LrScheduleKind::Cosine => {
                let span = self.total_steps.saturating_sub(self.warmup_steps).max(1) as f64;
                let progress = ((step - self.warmup_steps) as f64 / span).min(1.0);
                self.peak * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos())
            }
        }
    }
}

/// Lion (Chen et al. 2023, "Symbolic Discovery of Optimization
/// Algorithms"): the update is the sign of an interpolated momentum, so it
/// wants a learning rate 3–10× below AdamW's.
#[derive(Debug, Clone, Copy)]
pub struct Lion {
    pub beta_1: f64,
    pub beta_2: f64,
    pub weight_decay: f64,
}

/// Lion's only state: the momentum.
#[derive(Record, Clone)]
pub struct LionState<B: Backend, const D: usize> {
    pub momentum: Tensor<B, D>,
}

impl<B: Backend> SimpleOptimizer<B> for Lion {
    type State<const D: usize> = LionState<B, D>;

    fn step<const D: usize>(
        &self,
        lr: f64,
        tensor: Tensor<B, D>,
        grad: Tensor<B, D>,
        state: Option<Self::State<D>>,
    ) -> (Tensor<B, D>, Option<Self::State<D>>) {
        let momentum = match state {
            Some(state) => state.momentum,
            None => grad.zeros_like(),
        };
        let direction =
            momentum.clone().mul_scalar(self.beta_1) + grad.clone().mul_scalar(1.0 - self.beta_1);
        let decayed = if self.weight_decay > 0.0 {
            tensor.mul_scalar(1.0 - lr * self.weight_decay)
        } else {
            tensor
        };
        let updated = decayed - direction.sign().mul_scalar(lr);
        let momentum = momentum.mul_scalar(self.beta_2) + grad.mul_scalar(1.0 - self.beta_2);
        (updated, Some(LionState { momentum }))
    }

    fn to_device<const D: usize>(state: Self::State<D>, device: &B::Device) -> Self::State<D> {
        LionState {
            momentum: state.momentum.to_device(device),
        }
    }
}

impl Lion {
    /// An optimizer for `M` on the autodiff backend `B`.
    pub fn init<B: AutodiffBackend, M: AutodiffModule<B>>(self) -> OptimizerAdaptor<Lion, M, B> {
        OptimizerAdaptor::from(self)
    }
}

/// Prodigy (Mishchenko & Defazio 2023, "Prodigy: An Expeditiously Adaptive
/// Parameter-Free Learner"): Adam whose step size `d` is estimated as it
/// trains, from how far the adapters have moved along their gradients. The
/// learning rate stays at 1.0 and only scales that estimate, which is why
/// artists reach for it: no learning rate to guess.
///
/// burn's per-tensor optimizer trait cannot hold it, because `d` comes from
/// sums over every trained tensor at once; this steps the whole module in two
/// passes (sums, then updates). Defaults follow the paper's Adam variant:
/// betas (0.9, 0.999), β₃ = √β₂, ε = 1e-8, d₀ = 1e-6, no bias correction,
/// decoupled weight decay, unbounded growth.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProdigyConfig {
    pub beta_1: f64,
    pub beta_2: f64,
    pub epsilon: f64,
    pub weight_decay: f64,
    /// The first step-size estimate; it only grows from here.
    pub d0: f64,
    /// Multiplies every estimate (the paper's `d_coef`).
    pub d_coef: f64,
}

impl Default for ProdigyConfig {
    fn default() -> Self {
        Self {
            beta_1: 0.9,
            beta_2: 0.999,
            epsilon: 1e-8,
            weight_decay: 0.0,
            d0: 1e-6,
            d_coef: 1.0,
        }
    }
}

/// What Prodigy keeps per trained tensor, flattened to one dimension:
/// the starting values, Adam's two moments and the running sum `s` the
/// step-size estimate divides by.
struct ProdigyParam<B: Backend> {
    start: Tensor<B, 1>,
    exp_avg: Tensor<B, 1>,
    exp_avg_sq: Tensor<B, 1>,
    s: Tensor<B, 1>,
}

/// Prodigy's state over one module.
pub struct Prodigy<B: AutodiffBackend> {
    config: ProdigyConfig,
    /// The current step-size estimate.
    d: f64,
    d_max: f64,
    d_numerator: f64,
    params: HashMap<ParamId, ProdigyParam<B::InnerBackend>>,
}

impl<B: AutodiffBackend> Prodigy<B> {
    pub fn new(config: ProdigyConfig) -> Self {
        Self {
            config,
            d: config.d0,
            d_max: config.d0,
            d_numerator: 0.0,
            params: HashMap::new(),
        }
    }

    /// The step size Prodigy has estimated so far.
    pub fn d(&self) -> f64 {
        self.d
    }

    /// One step over every parameter of `module` that has a gradient.
    pub fn step<M: AutodiffModule<B>>(&mut self, lr: f64, module: M, grads: &GradientsParams) -> M {
        let c = self.config;
        let d = self.d;
        let dlr = d * lr;
        let scale = d / c.d0 * dlr;
        let beta_3 = c.beta_2.sqrt();
        let mut sums = ProdigySums::<B> {
            grads,
            params: &mut self.params,
            config: c,
            d,
            scale,
            beta_3,
            numerator: None,
            denominator: None,
            touched: HashSet::new(),
        };
        module.visit(&mut sums);
        let (Some(numerator), Some(denominator)) = (sums.numerator, sums.denominator) else {
            return module;
        };
        let touched = sums.touched;
        let numerator: f64 = numerator.into_scalar().elem();
        let denominator: f64 = denominator.into_scalar().elem();
        self.d_numerator = self.d_numerator * beta_3 + numerator;
        if denominator == 0.0 || !denominator.is_finite() || !self.d_numerator.is_finite() {
            return module;
        }
        // The estimate only ever grows.
        let d_hat = c.d_coef * self.d_numerator / denominator;
        self.d_max = self.d_max.max(d_hat);
        self.d = self.d_max;
        let mut update = ProdigyUpdate::<B> {
            params: &self.params,
            touched,
            dlr,
            decay: 1.0 - c.weight_decay * dlr,
            eps: self.d * c.epsilon,
        };
        module.map(&mut update)
    }
}

/// Pass one: moves the moments and `s`, and adds up the two sums the
/// step-size estimate is made of.
struct ProdigySums<'a, B: AutodiffBackend> {
    grads: &'a GradientsParams,
    params: &'a mut HashMap<ParamId, ProdigyParam<B::InnerBackend>>,
    config: ProdigyConfig,
    d: f64,
    scale: f64,
    beta_3: f64,
    numerator: Option<Tensor<B::InnerBackend, 1>>,
    denominator: Option<Tensor<B::InnerBackend, 1>>,
    touched: HashSet<ParamId>,
}

impl<B: AutodiffBackend> ModuleVisitor<B> for ProdigySums<'_, B> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        let Some(grad) = self.grads.get::<B::InnerBackend, D>(param.id) else {
            return;
        };
        let grad = grad.flatten::<1>(0, D - 1);
        let value = param.val().inner().flatten::<1>(0, D - 1);
        let c = self.config;
        let state = self.params.entry(param.id).or_insert_with(|| ProdigyParam {
            start: value.clone(),
            exp_avg: value.zeros_like(),
            exp_avg_sq: value.zeros_like(),
            s: value.zeros_like(),
        });
        let moved = (grad.clone() * (state.start.clone() - value))
            .sum()
            .mul_scalar(self.scale);
        state.exp_avg = state.exp_avg.clone().mul_scalar(c.beta_1)
            + grad.clone().mul_scalar(self.d * (1.0 - c.beta_1));
        state.exp_avg_sq = state.exp_avg_sq.clone().mul_scalar(c.beta_2)
            + grad
                .clone()
                .powi_scalar(2)
                .mul_scalar(self.d * self.d * (1.0 - c.beta_2));
        state.s = state.s.clone().mul_scalar(self.beta_3) + grad.mul_scalar(self.scale);
        let s_norm = state.s.clone().abs().sum();
        self.numerator = Some(match self.numerator.take() {
            Some(sum) => sum + moved,
            None => moved,
        });
        self.denominator = Some(match self.denominator.take() {
            Some(sum) => sum + s_norm,
            None => s_norm,
        });
        self.touched.insert(param.id);
    }
}

/// Pass two: the Adam step with the new estimate.
struct ProdigyUpdate<'a, B: AutodiffBackend> {
    params: &'a HashMap<ParamId, ProdigyParam<B::InnerBackend>>,
    touched: HashSet<ParamId>,
    dlr: f64,
    decay: f64,
    eps: f64,
}

impl<B: AutodiffBackend> ModuleMapper<B> for ProdigyUpdate<'_, B> {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let (id, tensor, mapper) = param.consume();
        let state = match self.params.get(&id) {
            Some(state) if self.touched.contains(&id) => state,
            _ => return Param::from_mapped_value(id, tensor, mapper),
        };
        let require_grad = tensor.is_require_grad();
        let shape = tensor.shape();
        let value = tensor.inner().flatten::<1>(0, D - 1);
        let denom = state.exp_avg_sq.clone().sqrt().add_scalar(self.eps);
        let value =
            value.mul_scalar(self.decay) - (state.exp_avg.clone() / denom).mul_scalar(self.dlr);
        let mut tensor = Tensor::from_inner(value.reshape(shape));
        if require_grad {
            tensor = tensor.require_grad();
        }
        Param::from_mapped_value(id, tensor, mapper)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warmup_then_cosine_reaches_zero() {
        let s = LrSchedule {
            kind: LrScheduleKind::Cosine,
            peak: 1.0,
            warmup_steps: 4,
            total_steps: 14,
        };
        assert_eq!(s.at(0), 0.25);
        assert_eq!(s.at(3), 1.0);
        assert_eq!(s.at(4), 1.0);
        assert!((s.at(9) - 0.5).abs() < 1e-12);
        assert!(s.at(14).abs() < 1e-12);
    }

    #[test]
    fn constant_stays_at_peak_after_warmup() {
        let s = LrSchedule {
            kind: LrScheduleKind::Constant,
            peak: 2e-4,
            warmup_steps: 0,
            total_steps: 10,
        };
        assert_eq!(s.at(0), 2e-4);
        assert_eq!(s.at(9), 2e-4);
    }

    use burn::module::Module;
    use burn::tensor::{Distribution, TensorData};

    use crate::engine::TestAutodiff as AD;

    #[derive(Module, Debug)]
    struct Fit<B: Backend> {
        weight: Param<Tensor<B, 2>>,
    }

    fn fit_loss(model: &Fit<AD>, x: &Tensor<AD, 2>, y: &Tensor<AD, 2>) -> Tensor<AD, 1> {
        (x.clone().matmul(model.weight.val()) - y.clone())
            .powi_scalar(2)
            .mean()
    }

    #[test]
    fn prodigy_finds_its_own_step_size_and_fits() {
        let device = Default::default();
        <AD as Backend>::seed(&device, 7);
        let x = Tensor::<AD, 2>::random([64, 8], Distribution::Normal(0.0, 1.0), &device);
        let truth = Tensor::<AD, 2>::random([8, 4], Distribution::Normal(0.0, 0.5), &device);
        let y = x.clone().matmul(truth);
        let mut model = Fit::<AD> {
            weight: Param::from_tensor(
                Tensor::from_data(TensorData::zeros::<f32, _>([8, 4]), &device).require_grad(),
            ),
        };
        let mut opt = Prodigy::<AD>::new(ProdigyConfig::default());
        let start: f32 = fit_loss(&model, &x, &y).into_scalar().elem();
        for _ in 0..200 {
            let loss = fit_loss(&model, &x, &y);
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            model = opt.step(1.0, model, &grads);
        }
        let end: f32 = fit_loss(&model, &x, &y).into_scalar().elem();
        assert!(end < start * 0.01, "loss {start} -> {end}");
        // It started at 1e-6, a step far too small to fit anything in 200
        // steps, and found a workable one by itself.
        assert!(opt.d() > 1e-3, "d = {}", opt.d());
    }

    #[test]
    fn prodigy_leaves_parameters_without_gradients_alone() {
        let device = Default::default();
        let frozen = Tensor::<AD, 2>::from_data(
            TensorData::new(vec![1.0f32, 2.0, 3.0, 4.0], [2, 2]),
            &device,
        );
        let model = Fit::<AD> {
            weight: Param::from_tensor(frozen.clone()),
        };
        let mut opt = Prodigy::<AD>::new(ProdigyConfig::default());
        let model = opt.step(1.0, model, &GradientsParams::new());
        assert_eq!(
            model.weight.val().into_data().to_vec::<f32>().unwrap(),
            vec![1.0, 2.0, 3.0, 4.0]
        );
        assert_eq!(opt.d(), 1e-6);
    }
}
