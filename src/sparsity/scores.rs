//! Saliency scores of the weights of a network (higher = more worth keeping): magnitude, random, SNIP, SynFlow
//! and GraSP. Scoring never changes the network: every tensor it perturbs (weights, BN statistics) is restored.

use ndarray::{Array2, Array4, ArrayD, ArrayView2};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::maskset::{read_grads, read_weights, Layer};
use crate::engine::{GradientMode, Network};
use crate::error::Result;
use crate::nn::loss::cross_entropy;

/// A copy of every named tensor of `net` (parameters and buffers).
pub fn snapshot(net: &dyn Network) -> Result<Vec<(String, ArrayD<f32>)>> {
    net.tensors()
        .iter()
        .map(|t| Ok((t.path.clone(), net.read(&t.path)?)))
        .collect()
}

/// Writes back tensors saved by [`snapshot`].
pub fn restore(net: &mut dyn Network, saved: &[(String, ArrayD<f32>)]) -> Result<()> {
    for (p, v) in saved {
        net.write(p, v.view())?;
    }
    Ok(())
}

/// |θ| (masked weights are zero in the network, so they score 0).
pub fn magnitude(net: &dyn Network, layers: &[Layer]) -> Result<Vec<Vec<f32>>> {
    Ok(read_weights(net, layers)?
        .into_iter()
        .map(|w| w.into_iter().map(f32::abs).collect())
        .collect())
}

/// Independent uniform [0, 1) scores from `rng`, layer by layer in order.
pub fn random(rng: &mut ChaCha8Rng, layers: &[Layer]) -> Vec<Vec<f32>> {
    layers
        .iter()
        .map(|l| (0..l.len()).map(|_| rng.gen::<f32>()).collect())
        .collect()
}

/// SNIP: |g ⊙ θ| with g the cross-entropy gradient on one batch (train-mode BN; the BN running statistics are
/// restored afterwards).
pub fn snip(
    net: &mut dyn Network,
    layers: &[Layer],
    images: &Array4<f32>,
    labels: &[u32],
    label_smoothing: f32,
) -> Result<Vec<Vec<f32>>> {
    let saved = snapshot(net)?;
    net.set_gradient_mode(GradientMode::Dense);
    let objective = |z: ArrayView2<f32>| cross_entropy(z, labels, label_smoothing);
    net.forward_backward(images.view(), true, &objective)?;
    let grads = read_grads(net, layers)?;
    restore(net, &saved)?;
    let weights = read_weights(net, layers)?;
    Ok(weights
        .iter()
        .zip(&grads)
        .map(|(w, g)| w.iter().zip(g).map(|(a, b)| (a * b).abs()).collect())
        .collect())
}

/// The sum of the logits and its gradient (all ones): SynFlow's objective R.
pub fn sum_objective(z: ArrayView2<f32>) -> (f64, Array2<f32>) {
    (z.iter().map(|&v| v as f64).sum(), Array2::ones(z.dim()))
}

/// One SynFlow round: every tensor replaced by its absolute value, BN in eval mode, one all-ones input of the
/// model's shape, R = Σ logits; score |∂R/∂θ ⊙ θ| under the masks currently set. All tensors are restored.
pub fn synflow(net: &mut dyn Network, layers: &[Layer]) -> Result<Vec<Vec<f32>>> {
    let saved = snapshot(net)?;
    net.set_gradient_mode(GradientMode::Dense);
    for (p, v) in &saved {
        net.write(p, v.mapv(f32::abs).view())?;
    }
    let [c, h, w] = net.spec().input;
    let ones = Array4::<f32>::ones((1, c, h, w));
    net.forward_backward(ones.view(), false, &sum_objective)?;
    let grads = read_grads(net, layers)?;
    let weights = read_weights(net, layers)?;
    restore(net, &saved)?;
    Ok(weights
        .iter()
        .zip(&grads)
        .map(|(w, g)| w.iter().zip(g).map(|(a, b)| (a * b).abs()).collect())
        .collect())
}

/// Cross-entropy of `logits / temperature` and its gradient with respect to the logits.
pub fn tempered_cross_entropy(
    z: ArrayView2<f32>,
    labels: &[u32],
    temperature: f32,
) -> (f64, Array2<f32>) {
    let scaled = z.mapv(|v| v / temperature);
    let (loss, g) = cross_entropy(scaled.view(), labels, 0.0);
    (loss, g.mapv(|v| v / temperature))
}

/// GraSP keep-scores θ ⊙ Hg (GraSP prunes the highest −θ ⊙ Hg, i.e. keeps the highest θ ⊙ Hg). g is the gradient
/// of the tempered cross-entropy on one batch with respect to the weights of `layers`; Hg is a central
/// finite-difference Hessian-vector product, (∇L(θ + εg) − ∇L(θ − εg)) / 2ε with ε = 10⁻³·‖θ‖/‖g‖. BN runs in
/// train mode; every tensor is restored afterwards.
pub fn grasp(
    net: &mut dyn Network,
    layers: &[Layer],
    images: &Array4<f32>,
    labels: &[u32],
    temperature: f32,
) -> Result<Vec<Vec<f32>>> {
    let saved = snapshot(net)?;
    net.set_gradient_mode(GradientMode::Dense);
    let objective = |z: ArrayView2<f32>| tempered_cross_entropy(z, labels, temperature);
    let theta = read_weights(net, layers)?;
    net.forward_backward(images.view(), true, &objective)?;
    let g = read_grads(net, layers)?;
    let norm = |v: &[Vec<f32>]| {
        v.iter()
            .flatten()
            .map(|&x| (x as f64).powi(2))
            .sum::<f64>()
            .sqrt()
    };
    let (tn, gn) = (norm(&theta), norm(&g));
    if gn == 0.0 {
        restore(net, &saved)?;
        return Ok(theta.iter().map(|w| vec![0.0; w.len()]).collect());
    }
    let eps = 1e-3 * tn.max(1e-12) / gn;
    let mut grad_at = |sign: f64| -> Result<Vec<Vec<f32>>> {
        for ((l, w), gl) in layers.iter().zip(&theta).zip(&g) {
            let v: Vec<f32> = w
                .iter()
                .zip(gl)
                .map(|(&a, &b)| (a as f64 + sign * eps * b as f64) as f32)
                .collect();
            net.write(
                &l.path,
                ArrayD::from_shape_vec(l.shape.clone(), v)
                    .expect("layer shape")
                    .view(),
            )?;
        }
        net.forward_backward(images.view(), true, &objective)?;
        read_grads(net, layers)
    };
    let plus = grad_at(1.0)?;
    let minus = grad_at(-1.0)?;
    restore(net, &saved)?;
    Ok(theta
        .iter()
        .zip(plus.iter().zip(&minus))
        .map(|(w, (p, m))| {
            w.iter()
                .zip(p.iter().zip(m))
                .map(|(&t, (&a, &b))| (t as f64 * (a as f64 - b as f64) / (2.0 * eps)) as f32)
                .collect()
        })
        .collect())
}
