//! Stochastic gradient descent with momentum, Nesterov and decoupled-from-BN weight decay.

use serde::{Deserialize, Serialize};

/// SGD hyperparameters (PyTorch semantics: `buf = momentum * buf + (g + wd * w)`, then
/// `w -= lr * buf`, or `w -= lr * (g + wd * w + momentum * buf)` with Nesterov).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SgdConfig {
    pub momentum: f32,
    pub nesterov: bool,
    pub weight_decay: f32,
    /// Apply weight decay to BN parameters and biases too.
    pub decay_bn_and_bias: bool,
}

impl Default for SgdConfig {
    fn default() -> Self {
        SgdConfig {
            momentum: 0.9,
            nesterov: false,
            weight_decay: 5e-4,
            decay_bn_and_bias: true,
        }
    }
}

/// One SGD update of a flat parameter slice in place. `mask`, when given, zeroes the update and the weight at
/// pruned positions (and their momentum), so masked weights stay exactly zero.
pub fn sgd_update(
    cfg: &SgdConfig,
    lr: f32,
    decay: bool,
    weight: &mut [f32],
    grad: &[f32],
    momentum_buf: &mut [f32],
    mask: Option<&[f32]>,
) {
    let wd = if decay { cfg.weight_decay } else { 0.0 };
    let mu = cfg.momentum;
    for i in 0..weight.len() {
        let d = grad[i] + wd * weight[i];
        let step = if mu != 0.0 {
            let b = mu * momentum_buf[i] + d;
            momentum_buf[i] = b;
            if cfg.nesterov {
                d + mu * b
            } else {
                b
            }
        } else {
            d
        };
        weight[i] -= lr * step;
        if mask.is_some_and(|m| m[i] == 0.0) {
            weight[i] = 0.0;
            if let Some(b) = momentum_buf.get_mut(i) {
                *b = 0.0;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_pytorch_momentum_and_nesterov() {
        let cfg = SgdConfig {
            momentum: 0.9,
            nesterov: false,
            weight_decay: 0.1,
            decay_bn_and_bias: true,
        };
        let mut w = [1.0f32];
        let mut b = [0.0f32];
        sgd_update(&cfg, 0.5, true, &mut w, &[2.0], &mut b, None);
        // d = 2 + 0.1 = 2.1; buf = 2.1; w = 1 - 1.05
        assert!((w[0] + 0.05).abs() < 1e-6 && (b[0] - 2.1).abs() < 1e-6);
        sgd_update(&cfg, 0.5, true, &mut w, &[1.0], &mut b, None);
        // d = 1 - 0.005 = 0.995; buf = 0.9 * 2.1 + 0.995 = 2.885; w = -0.05 - 1.4425
        assert!((w[0] + 1.4925).abs() < 1e-5 && (b[0] - 2.885).abs() < 1e-5);
        let nest = SgdConfig {
            nesterov: true,
            ..cfg
        };
        let (mut w, mut b) = ([1.0f32], [1.0f32]);
        sgd_update(&nest, 1.0, false, &mut w, &[1.0], &mut b, None);
        // buf = 0.9 + 1 = 1.9; step = 1 + 0.9 * 1.9 = 2.71
        assert!((w[0] + 1.71).abs() < 1e-6);
    }

    #[test]
    fn masked_entries_stay_zero() {
        let cfg = SgdConfig::default();
        let mut w = [0.0f32, 1.0];
        let mut b = [0.3f32, 0.0];
        sgd_update(
            &cfg,
            0.1,
            true,
            &mut w,
            &[5.0, 1.0],
            &mut b,
            Some(&[0.0, 1.0]),
        );
        assert_eq!(w[0], 0.0);
        assert_eq!(b[0], 0.0);
        assert!(w[1] < 1.0);
    }
}
