//! AdamW on a flat parameter vector (the adapter has a few thousand parameters, so a plain
//! loop beats building an optimizer graph).

use serde::{Deserialize, Serialize};

/// AdamW state and hyper-parameters. Guarantees: `m` and `v` have the parameters' length.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AdamW {
    /// Decay of the first-moment average.
    pub beta1: f64,
    /// Decay of the second-moment average.
    pub beta2: f64,
    /// Added to the second moment's root, against division by 0.
    pub eps: f64,
    /// Decoupled weight decay per step, times the learning rate.
    pub weight_decay: f64,
    /// First moments (stored beside, not inside, the serialized state).
    #[serde(skip)]
    pub m: Vec<f32>,
    /// Second moments (stored beside, not inside, the serialized state).
    #[serde(skip)]
    pub v: Vec<f32>,
    /// Updates applied so far.
    pub t: u64,
}

impl AdamW {
    /// Fresh state for `n` parameters (β = 0.9, 0.999; ε = 1e-8).
    pub fn new(n: usize, weight_decay: f64) -> Self {
        Self {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay,
            m: vec![0.0; n],
            v: vec![0.0; n],
            t: 0,
        }
    }

    /// One update of `params` with gradient `grad` at learning rate `lr`.
    pub fn step(&mut self, params: &mut [f32], grad: &[f32], lr: f64) {
        assert_eq!(params.len(), grad.len());
        self.t += 1;
        let (b1, b2) = (self.beta1, self.beta2);
        let c1 = 1.0 - b1.powi(self.t as i32);
        let c2 = 1.0 - b2.powi(self.t as i32);
        for i in 0..params.len() {
            let g = grad[i] as f64;
            let m = b1 * self.m[i] as f64 + (1.0 - b1) * g;
            let v = b2 * self.v[i] as f64 + (1.0 - b2) * g * g;
            self.m[i] = m as f32;
            self.v[i] = v as f32;
            let p = params[i] as f64 * (1.0 - lr * self.weight_decay);
            params[i] = (p - lr * (m / c1) / ((v / c2).sqrt() + self.eps)) as f32;
        }
    }
}

/// Linear decay from `lr` at step 0 to 0 after `total` steps.
pub fn linear_lr(lr: f64, step: usize, total: usize) -> f64 {
    lr * (1.0 - step as f64 / total.max(1) as f64)
}
