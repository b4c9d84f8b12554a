//! The probe a checkpoint carries (formats/checkpoint.md): the first [`PROBE_SAMPLES`] training images, scaled
//! to [0, 1], and the network's own eval-mode logits on them. The compiler reads it as data (tensors
//! [`PROBE_INPUTS`] and [`PROBE_LOGITS`]) to check its source graph against the trainer without importing it.

use ndarray::{ArrayD, IxDyn};

use crate::data::{self, Dataset, Normalization};
use crate::engine::Network;
use crate::error::{Error, Result};

/// Tensor name of the probe images, F32 `[n, C, H, W]` in [0, 1].
pub const PROBE_INPUTS: &str = "probe.inputs";
/// Tensor name of the probe logits, F32 `[n, classes]`.
pub const PROBE_LOGITS: &str = "probe.logits";
/// How many training images a probe holds (fewer when the split is smaller).
pub const PROBE_SAMPLES: usize = 8;

/// Probe images and the logits the network gave them.
#[derive(Debug, Clone, PartialEq)]
pub struct Probe {
    pub inputs: ArrayD<f32>,
    pub logits: ArrayD<f32>,
}

impl Probe {
    /// The first [`PROBE_SAMPLES`] images of `ds` and `net`'s eval-mode logits on them, normalised by `norm`
    /// as in training; `None` for an empty dataset. Reads nothing but the network's predictions, so it leaves
    /// the training state unchanged.
    pub fn capture(
        net: &mut dyn Network,
        ds: &Dataset,
        norm: &Normalization,
    ) -> Result<Option<Probe>> {
        let n = PROBE_SAMPLES.min(ds.len());
        if n == 0 {
            return Ok(None);
        }
        let idx: Vec<usize> = (0..n).collect();
        let (x, _) = data::make_batch(ds, &idx, norm, None, 0);
        let logits = net.predict(x.view())?.into_dyn();
        let [c, h, w] = ds.shape;
        let raw: Vec<f32> = idx
            .iter()
            .flat_map(|&i| ds.image(i).iter().map(|&b| b as f32 / 255.0))
            .collect();
        let inputs = ArrayD::from_shape_vec(IxDyn(&[n, c, h, w]), raw)
            .map_err(|e| Error::Invalid(format!("probe inputs: {e}")))?;
        Ok(Some(Probe { inputs, logits }))
    }
}
