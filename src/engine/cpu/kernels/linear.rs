//! Fully connected layer `y[N, out] = x[N, in] · Wᵀ + b`, parallel over sample chunks (forward, input
//! gradient) and over output-row blocks (weight gradient, so no reduction is needed).

use rayon::prelude::*;

use super::nt::{gemm_nt, Rows};
use super::{chunk_size, sgemm, FlushDenormals};
use crate::engine::cpu::simd::KernelPath;

/// Forward with the kernels of `path`; `relu` applies ReLU to the output.
#[allow(clippy::too_many_arguments)]
pub fn forward(
    path: KernelPath,
    nin: usize,
    nout: usize,
    x: &[f32],
    weight: &[f32],
    bias: Option<&[f32]>,
    relu: bool,
    y: &mut [f32],
) {
    let batch = x.len() / nin;
    let cs = chunk_size(batch);
    y.par_chunks_mut(cs * nout)
        .zip(x.par_chunks(cs * nin))
        .for_each(|(yc, xc)| {
            let _ftz = FlushDenormals::new();
            let rows = xc.len() / nin;
            let a = Rows::strided(xc, rows, nin);
            let b = Rows::strided(weight, nout, nin);
            gemm_nt(path, nin, a, b, yc, nout, false);
            if bias.is_some() || relu {
                for row in yc.chunks_mut(nout) {
                    for (j, v) in row.iter_mut().enumerate() {
                        let t = *v + bias.map_or(0.0, |b| b[j]);
                        *v = if relu { t.max(0.0) } else { t };
                    }
                }
            }
        });
}

/// Backward: writes `dweight` (and `dbias`), writes or adds (`accumulate`) the input gradient when asked.
#[allow(clippy::too_many_arguments)]
pub fn backward(
    nin: usize,
    nout: usize,
    x: &[f32],
    weight: &[f32],
    dy: &[f32],
    dx: Option<(&mut [f32], bool)>,
    dweight: &mut [f32],
    dbias: Option<&mut [f32]>,
) {
    let batch = x.len() / nin;
    let rows_per = chunk_size(nout);
    dweight
        .par_chunks_mut(rows_per * nin)
        .enumerate()
        .for_each(|(i, dwc)| {
            let _ftz = FlushDenormals::new();
            let o0 = i * rows_per;
            let rows = dwc.len() / nin;
            // dW[o0.., :] = dy[:, o0..]ᵀ · x
            sgemm(
                rows,
                batch,
                nin,
                1.0,
                &dy[o0..],
                (1, nout),
                x,
                (nin, 1),
                0.0,
                dwc,
                (nin, 1),
            );
        });
    if let Some(db) = dbias {
        db.fill(0.0);
        for row in dy.chunks(nout) {
            for (b, g) in db.iter_mut().zip(row) {
                *b += g;
            }
        }
    }
    if let Some((dx, acc)) = dx {
        let cs = chunk_size(batch);
        let beta = if acc { 1.0 } else { 0.0 };
        dx.par_chunks_mut(cs * nin)
            .zip(dy.par_chunks(cs * nout))
            .for_each(|(dxc, dyc)| {
                let _ftz = FlushDenormals::new();
                let rows = dyc.len() / nout;
                sgemm(
                    rows,
                    nout,
                    nin,
                    1.0,
                    dyc,
                    (nout, 1),
                    weight,
                    (nin, 1),
                    beta,
                    dxc,
                    (nin, 1),
                );
            });
    }
}
