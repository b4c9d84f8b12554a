//! Numeric kernels of the CPU engine: GEMM wrapper, batch chunking, denormal control and the per-op
//! forward/backward kernels. Tensors are flat `f32` slices in NCHW order (per sample `C × H × W`, or `F`).

pub mod bn;
pub mod conv;
pub mod direct;
pub mod elementwise;
pub mod linear;
pub mod nt;
pub mod pool;
pub mod sparse;

/// How many contiguous sample chunks each rayon thread gets on average (more chunks balance load on a noisy
/// machine; the chunking depends only on the batch size and the thread count, so results stay deterministic).
const CHUNKS_PER_THREAD: usize = 2;

/// Samples per chunk when a batch of `batch` samples is split across the current rayon pool.
pub fn chunk_size(batch: usize) -> usize {
    let threads = rayon::current_num_threads().max(1);
    let chunks = (threads * CHUNKS_PER_THREAD).clamp(1, batch.max(1));
    batch.max(1).div_ceil(chunks)
}

/// Number of chunks of [`chunk_size`] samples in a batch.
pub fn chunk_count(batch: usize) -> usize {
    batch.div_ceil(chunk_size(batch))
}

/// `C = alpha · A · B + beta · C` with explicit row and column strides (`A` is `m × k`, `B` is `k × n`, `C` is
/// `m × n`), single-threaded per call (sculpt builds matrixmultiply without its `threading` feature: the engine
/// parallelises over the batch itself, so GEMM threads would only oversubscribe the cores). When `beta` is zero `C` is not read. Panics if a slice is too short
/// for the strides given (a contract violation inside the engine).
#[allow(clippy::too_many_arguments)]
pub fn sgemm(
    m: usize,
    k: usize,
    n: usize,
    alpha: f32,
    a: &[f32],
    (rsa, csa): (usize, usize),
    b: &[f32],
    (rsb, csb): (usize, usize),
    beta: f32,
    c: &mut [f32],
    (rsc, csc): (usize, usize),
) {
    if m == 0 || n == 0 {
        return;
    }
    let span =
        |rows: usize, cols: usize, rs: usize, cs: usize| (rows - 1) * rs + (cols - 1) * cs + 1;
    if k > 0 {
        assert!(a.len() >= span(m, k, rsa, csa), "sgemm: A too short");
        assert!(b.len() >= span(k, n, rsb, csb), "sgemm: B too short");
    }
    assert!(c.len() >= span(m, n, rsc, csc), "sgemm: C too short");
    // SAFETY: the asserts above guarantee every index the strides reach lies inside the slices, and `c` is
    // borrowed mutably so it cannot alias `a` or `b`.
    unsafe {
        matrixmultiply::sgemm(
            m,
            k,
            n,
            alpha,
            a.as_ptr(),
            rsa as isize,
            csa as isize,
            b.as_ptr(),
            rsb as isize,
            csb as isize,
            beta,
            c.as_mut_ptr(),
            rsc as isize,
            csc as isize,
        );
    }
}

/// While alive, flushes denormal results to zero and treats denormal inputs as zero on this thread (x86 MXCSR
/// FTZ and DAZ bits, as PyTorch's `set_flush_denormal(True)`); restores the previous mode when dropped.
/// Denormals appear in training on random inputs and slow x86 arithmetic many-fold. A no-op elsewhere.
pub struct FlushDenormals {
    #[cfg(target_arch = "x86_64")]
    saved: u32,
}

impl FlushDenormals {
    #[cfg(target_arch = "x86_64")]
    const FTZ_DAZ: u32 = 0x8040;

    #[allow(clippy::new_without_default)]
    pub fn new() -> Self {
        #[cfg(target_arch = "x86_64")]
        {
            let mut saved = 0u32;
            // SAFETY: stmxcsr/ldmxcsr read and write the SSE control register through a valid pointer to a u32;
            // only the denormal-handling bits are changed, and they are restored on drop.
            unsafe {
                std::arch::asm!("stmxcsr [{}]", in(reg) &mut saved as *mut u32, options(nostack, preserves_flags));
                let new = saved | Self::FTZ_DAZ;
                std::arch::asm!("ldmxcsr [{}]", in(reg) &new as *const u32, options(nostack, preserves_flags, readonly));
            }
            FlushDenormals { saved }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            FlushDenormals {}
        }
    }
}

impl Drop for FlushDenormals {
    fn drop(&mut self) {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: restores the control register saved in `new`.
        unsafe {
            std::arch::asm!("ldmxcsr [{}]", in(reg) &self.saved as *const u32, options(nostack, preserves_flags, readonly));
        }
    }
}

/// `g` where `keep`, else `+0.0`, without a branch (so masking loops vectorise and never mispredict): bit for
/// bit `if keep { g } else { 0.0 }`.
#[inline(always)]
pub fn keep_if(g: f32, keep: bool) -> f32 {
    f32::from_bits(g.to_bits() & (keep as u32).wrapping_neg())
}

/// `dst = src` or `dst += src`.
#[inline]
pub fn store(dst: &mut [f32], src: &[f32], accumulate: bool) {
    if accumulate {
        for (d, s) in dst.iter_mut().zip(src) {
            *d += s;
        }
    } else {
        dst.copy_from_slice(src);
    }
}

/// Sums `parts` (each of length `out.len()`) into `out` in the order given: deterministic for a fixed split.
pub fn reduce_in_order<'a>(out: &mut [f32], mut parts: impl Iterator<Item = &'a [f32]>) {
    match parts.next() {
        Some(first) => out.copy_from_slice(&first[..out.len()]),
        None => out.fill(0.0),
    }
    for p in parts {
        for (o, v) in out.iter_mut().zip(p) {
            *o += v;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sgemm_with_transposed_operands() {
        // A = [[1,2,3],[4,5,6]] (2x3), B^T given as [[1,0],[0,1],[1,1]] stored transposed.
        let a = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        let bt = [1.0, 0.0, 1.0, 0.0, 1.0, 1.0]; // B (3x2) stored column-major
        let mut c = [0.0f32; 4];
        sgemm(2, 3, 2, 1.0, &a, (3, 1), &bt, (1, 3), 0.0, &mut c, (2, 1));
        assert_eq!(c, [4.0, 5.0, 10.0, 11.0]);
        sgemm(2, 3, 2, 1.0, &a, (3, 1), &bt, (1, 3), 1.0, &mut c, (2, 1));
        assert_eq!(c, [8.0, 10.0, 20.0, 22.0]);
    }

    #[test]
    fn denormals_flush_inside_the_guard_only() {
        let tiny = std::hint::black_box(f32::MIN_POSITIVE);
        let half = std::hint::black_box(0.5f32);
        assert!(tiny * half > 0.0);
        {
            let _g = FlushDenormals::new();
            if cfg!(target_arch = "x86_64") {
                assert_eq!(std::hint::black_box(tiny) * std::hint::black_box(half), 0.0);
            }
        }
        assert!(std::hint::black_box(tiny) * std::hint::black_box(half) > 0.0);
    }

    #[test]
    fn chunks_cover_the_batch() {
        for b in [1, 2, 3, 7, 128] {
            let cs = chunk_size(b);
            assert!(cs >= 1 && chunk_count(b) * cs >= b && (chunk_count(b) - 1) * cs < b);
        }
    }
}
