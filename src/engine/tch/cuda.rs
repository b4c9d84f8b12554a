//! CUDA for the libtorch engine: making libtorch's CUDA half available and checking a GPU before use.
//!
//! sculpt links `libtorch_cpu` only, so one binary runs on machines without CUDA libraries. libtorch registers its
//! CUDA backend when `libtorch_cuda.so` is loaded; the first use of a CUDA device loads it from the library path
//! (the `torch/lib` directory of a CUDA build of torch 2.11 on `LD_LIBRARY_PATH`).

use std::sync::OnceLock;

use crate::error::{Error, Result};

/// The outcome of loading libtorch's CUDA library, once per process.
static CUDA_LIBRARY: OnceLock<std::result::Result<(), String>> = OnceLock::new();

fn load_cuda_library() -> std::result::Result<(), String> {
    CUDA_LIBRARY
        .get_or_init(|| {
            if tch::utils::has_cuda() {
                return Ok(());
            }
            // SAFETY: libtorch_cuda.so's initialisers only register libtorch's CUDA hooks; the handle is kept
            // for the life of the process, so nothing it registered is ever unloaded.
            let lib = unsafe {
                libloading::os::unix::Library::open(
                    Some("libtorch_cuda.so"),
                    libloading::os::unix::RTLD_NOW | libloading::os::unix::RTLD_GLOBAL,
                )
            };
            match lib {
                Ok(lib) => {
                    std::mem::forget(lib);
                    Ok(())
                }
                Err(e) => Err(e.to_string()),
            }
        })
        .clone()
}

/// Checks that CUDA GPU `index` can be used, loading libtorch's CUDA library on first use.
pub fn require_gpu(index: usize) -> Result<()> {
    let device = format!("cuda:{index}");
    load_cuda_library().map_err(|e| Error::Engine {
        device: device.clone(),
        msg: format!(
            "cannot load libtorch's CUDA library ({e}); put the torch/lib directory of a CUDA build of torch 2.11 \
             on LD_LIBRARY_PATH"
        ),
    })?;
    let count = tch::Cuda::device_count();
    if count <= index as i64 {
        return Err(Error::Engine {
            device,
            msg: format!(
                "libtorch sees {count} CUDA device{} (is a GPU and its driver present?)",
                if count == 1 { "" } else { "s" }
            ),
        });
    }
    tch::Cuda::cudnn_set_benchmark(false);
    Ok(())
}

/// Waits for all work queued on CUDA GPU `index` (nothing to do when CUDA was never loaded).
pub fn synchronize_cuda(index: usize) {
    if matches!(CUDA_LIBRARY.get(), Some(Ok(()))) {
        tch::Cuda::synchronize(index as i64);
    }
}
