//! Stochastic gradient descent with momentum, Nesterov and decoupled-from-BN weight decay.

use serde::{Deserialize, Serialize};

use crate::engine::cpu::kernels::keep_if;

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
/// pruned positions (and their momentum), so masked weights stay exactly zero. Every entry is updated on its
/// own with the same operations in the same order, so splitting a tensor into pieces updated separately (in
/// any order, on any thread) gives bit-identical results. Panics if `grad`, `momentum_buf` (when the
/// momentum is not zero) or `mask` is shorter than `weight`.
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
    let n = weight.len();
    let grad = &grad[..n];
    match (mu != 0.0, cfg.nesterov, mask) {
        (false, _, None) => {
            for (w, &g) in weight.iter_mut().zip(grad) {
                *w -= lr * (g + wd * *w);
            }
        }
        (false, _, Some(m)) => {
            for ((w, &g), &k) in weight.iter_mut().zip(grad).zip(&m[..n]) {
                *w = keep_if(*w - lr * (g + wd * *w), k != 0.0);
            }
        }
        (true, nesterov, mask) => {
            let buf = &mut momentum_buf[..n];
            let step = |w: f32, g: f32, b: &mut f32| {
                let d = g + wd * w;
                let nb = mu * *b + d;
                *b = nb;
                w - lr * if nesterov { d + mu * nb } else { nb }
            };
            match mask {
                None => {
                    for ((w, &g), b) in weight.iter_mut().zip(grad).zip(buf.iter_mut()) {
                        *w = step(*w, g, b);
                    }
                }
                Some(m) => {
                    for (((w, &g), b), &k) in
                        weight.iter_mut().zip(grad).zip(buf.iter_mut()).zip(&m[..n])
                    {
                        let keep = k != 0.0;
                        *w = keep_if(step(*w, g, b), keep);
                        *b = keep_if(*b, keep);
                    }
                }
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

    /// The update as a plain loop with a branch per entry: the order of operations [`sgd_update`] must keep.
    fn reference_update(
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

    #[test]
    fn updates_are_bit_identical_to_the_reference_whole_or_in_pieces() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        for case in 0..48 {
            let n = rng.gen_range(1..300);
            let cfg = SgdConfig {
                momentum: [0.0, 0.9][case % 2],
                nesterov: case % 4 >= 2,
                weight_decay: [0.0, 5e-4][(case / 4) % 2],
                decay_bn_and_bias: true,
            };
            let decay = case % 3 != 0;
            let masked = case % 5 != 0;
            let w0: Vec<f32> = (0..n).map(|_| rng.gen_range(-1.0..1.0)).collect();
            let g: Vec<f32> = (0..n).map(|_| rng.gen_range(-1.0..1.0)).collect();
            let b0: Vec<f32> = (0..n).map(|_| rng.gen_range(-1.0..1.0)).collect();
            let m: Vec<f32> = (0..n).map(|_| rng.gen_bool(0.3) as u8 as f32).collect();
            let mask = masked.then_some(m.as_slice());
            let lens = if cfg.momentum != 0.0 { n } else { 0 };
            let (mut w_ref, mut b_ref) = (w0.clone(), b0[..lens].to_vec());
            reference_update(&cfg, 0.1, decay, &mut w_ref, &g, &mut b_ref, mask);
            let (mut w, mut b) = (w0.clone(), b0[..lens].to_vec());
            sgd_update(&cfg, 0.1, decay, &mut w, &g, &mut b, mask);
            assert_eq!(bits(&w), bits(&w_ref), "case {case}: weights");
            assert_eq!(bits(&b), bits(&b_ref), "case {case}: momentum");
            let cut = rng.gen_range(0..=n);
            let (mut w2, mut b2) = (w0.clone(), b0[..lens].to_vec());
            let (wa, wb) = w2.split_at_mut(cut);
            let (ba, bb) = b2.split_at_mut(cut.min(lens));
            let (ma, mb) = match mask {
                Some(m) => (Some(&m[..cut]), Some(&m[cut..])),
                None => (None, None),
            };
            sgd_update(&cfg, 0.1, decay, wb, &g[cut..], bb, mb);
            sgd_update(&cfg, 0.1, decay, wa, &g[..cut], ba, ma);
            assert_eq!(bits(&w2), bits(&w_ref), "case {case}: weights in pieces");
            assert_eq!(bits(&b2), bits(&b_ref), "case {case}: momentum in pieces");
        }
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
