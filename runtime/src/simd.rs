//! Running a kernel with the wider vector instructions the CPU offers, detected at run time. The kernels'
//! arithmetic is the same either way (no fused multiply-add), so results do not depend on the path taken.

/// Runs `f`, compiled for AVX2 where the CPU and OS support it. `f` should be an `#[inline(always)]` closure
/// whose loops are `#[inline(always)]` too, so that they are compiled inside the AVX2 context.
#[inline(always)]
pub fn vectorised<T>(f: impl FnOnce() -> T) -> T {
    #[cfg(target_arch = "x86_64")]
    if x86::avx2() {
        // SAFETY: the CPU and the OS support AVX2.
        return unsafe { x86::with_avx2(f) };
    }
    f()
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use core::arch::x86_64::{__cpuid, __cpuid_count, _xgetbv};
    use core::sync::atomic::{AtomicU8, Ordering};

    /// 0: not checked yet, 1: absent, 2: present.
    static AVX2: AtomicU8 = AtomicU8::new(0);

    /// Whether AVX2 instructions and YMM state are available.
    #[inline]
    pub fn avx2() -> bool {
        match AVX2.load(Ordering::Relaxed) {
            0 => {
                let has = detect();
                AVX2.store(if has { 2 } else { 1 }, Ordering::Relaxed);
                has
            }
            v => v == 2,
        }
    }

    #[allow(unused_unsafe)]
    fn detect() -> bool {
        // SAFETY: CPUID exists on every x86-64 CPU.
        let (l0, l1) = unsafe { (__cpuid(0), __cpuid(1)) };
        let osxsave_avx = (1 << 27) | (1 << 28);
        if l0.eax < 7 || l1.ecx & osxsave_avx != osxsave_avx {
            return false;
        }
        // SAFETY: OSXSAVE is set, so XGETBV is available.
        let xcr0 = unsafe { xcr0() };
        // SAFETY: as above; leaf 7 exists (checked against leaf 0).
        xcr0 & 6 == 6 && unsafe { __cpuid_count(7, 0) }.ebx & (1 << 5) != 0
    }

    /// # Safety
    /// The CPU must support XGETBV (CPUID.1:ECX.OSXSAVE).
    #[target_feature(enable = "xsave")]
    unsafe fn xcr0() -> u64 {
        // SAFETY: per this function's contract.
        unsafe { _xgetbv(0) }
    }

    /// Calls `f` in a function compiled for AVX2.
    ///
    /// # Safety
    /// The CPU and the OS must support AVX2.
    #[target_feature(enable = "avx2")]
    #[inline]
    pub unsafe fn with_avx2<T>(f: impl FnOnce() -> T) -> T {
        f()
    }
}
