//! The SGD update of [`crate::optim::sgd::sgd_update`] in libtorch ops, operation for operation in the same order
//! (so with equal gradients the updated weights are equal to the last bit).

use tch::{TchError, Tensor};

use crate::optim::SgdConfig;

/// One update of `weight` with `grad`: `d = g + wd·w`, `buf = μ·buf + d`, `w -= lr·(Nesterov ? d + μ·buf : buf)`,
/// then weight and momentum are zeroed where `pruned` is true. `momentum` is created (zero) on the first step
/// when μ ≠ 0. Call with gradients disabled.
pub fn update(
    cfg: &SgdConfig,
    lr: f32,
    decay: bool,
    weight: &mut Tensor,
    grad: &Tensor,
    momentum: &mut Option<Tensor>,
    pruned: Option<&Tensor>,
) -> Result<(), TchError> {
    let wd = if decay { cfg.weight_decay } else { 0.0 };
    let mu = cfg.momentum;
    let d = if wd != 0.0 {
        grad.f_add(&weight.f_mul_scalar(wd as f64)?)?
    } else {
        grad.shallow_clone()
    };
    let step = if mu != 0.0 {
        let buf = match momentum {
            Some(b) => b,
            None => momentum.insert(weight.f_zeros_like()?),
        };
        let _ = buf.f_mul_scalar_(mu as f64)?.f_add_(&d)?;
        if cfg.nesterov {
            d.f_add(&buf.f_mul_scalar(mu as f64)?)?
        } else {
            buf.shallow_clone()
        }
    } else {
        d
    };
    let _ = weight.f_sub_(&step.f_mul_scalar(lr as f64)?)?;
    if let Some(p) = pruned {
        let _ = weight.f_masked_fill_(p, 0.0)?;
        if let Some(b) = momentum {
            let _ = b.f_masked_fill_(p, 0.0)?;
        }
    }
    Ok(())
}
