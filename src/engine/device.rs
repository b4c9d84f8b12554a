//! Where a network runs: [`Device`], and the one factory that turns a [`ModelSpec`] and a device into a
//! `Box<dyn Network>`. Nothing above `engine/` names a concrete engine.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::cpu::CpuNetwork;
use super::tch::TchNetwork;
use super::Network;
use crate::error::{Error, Result};
use crate::nn::ModelSpec;

/// A device and the engine that drives it.
///
/// Written as `cpu` (sculpt's own CPU engine), `tch-cpu` (libtorch on the CPU), `cuda` or `cuda:N` (libtorch on
/// GPU `N`, default 0). The libtorch devices need a build with the `tch` feature; without it, building a network
/// on them is [`Error::EngineNotCompiled`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Device {
    /// The CPU engine (`engine::cpu`).
    #[default]
    Cpu,
    /// The libtorch engine (`engine::tch`) on one of its devices.
    Tch(TchDevice),
}

/// A libtorch device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TchDevice {
    Cpu,
    /// A CUDA GPU by index.
    Cuda(usize),
}

impl Device {
    /// The network of `spec` on this device, with the weights every engine draws from `seed` (Kaiming normal from
    /// a ChaCha8 stream, see [`crate::nn::init::kaiming_init`]), so the same seed gives the same initial weights
    /// on every device.
    pub fn network(&self, spec: &ModelSpec, seed: u64) -> Result<Box<dyn Network>> {
        Ok(match *self {
            Device::Cpu => Box::new(CpuNetwork::new(spec, seed)?),
            Device::Tch(d) => Box::new(TchNetwork::new(spec, seed, d)?),
        })
    }

    /// The engine's name for reports: `sculpt-cpu` or `libtorch`.
    pub fn engine(&self) -> &'static str {
        match self {
            Device::Cpu => "sculpt-cpu",
            Device::Tch(_) => "libtorch",
        }
    }

    /// Whether this build can run networks on the device at all (the `tch` feature for libtorch devices; a
    /// GPU's presence is checked only when a network is built).
    pub fn is_compiled(&self) -> bool {
        match self {
            Device::Cpu => true,
            Device::Tch(_) => cfg!(feature = "tch"),
        }
    }

    /// Waits until the work queued on the device has finished (a no-op on CPUs, whose engines run
    /// synchronously). Timing code calls it before reading the clock.
    pub fn synchronize(&self) {
        if let Device::Tch(TchDevice::Cuda(i)) = *self {
            super::tch::synchronize_cuda(i);
        }
    }
}

impl fmt::Display for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Device::Cpu => f.write_str("cpu"),
            Device::Tch(TchDevice::Cpu) => f.write_str("tch-cpu"),
            Device::Tch(TchDevice::Cuda(i)) => write!(f, "cuda:{i}"),
        }
    }
}

impl FromStr for Device {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self> {
        let bad = || {
            Error::Invalid(format!(
                "unknown device '{text}' (known: cpu, tch-cpu, cuda, cuda:N)"
            ))
        };
        match text.trim() {
            "cpu" => Ok(Device::Cpu),
            "tch-cpu" => Ok(Device::Tch(TchDevice::Cpu)),
            "cuda" => Ok(Device::Tch(TchDevice::Cuda(0))),
            other => {
                let index = other.strip_prefix("cuda:").ok_or_else(bad)?;
                if index.is_empty() || !index.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(bad());
                }
                Ok(Device::Tch(TchDevice::Cuda(
                    index.parse().map_err(|_| bad())?,
                )))
            }
        }
    }
}

impl Serialize for Device {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Device {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_parse_and_print_back() {
        for (text, device, printed) in [
            ("cpu", Device::Cpu, "cpu"),
            ("tch-cpu", Device::Tch(TchDevice::Cpu), "tch-cpu"),
            ("cuda", Device::Tch(TchDevice::Cuda(0)), "cuda:0"),
            ("cuda:3", Device::Tch(TchDevice::Cuda(3)), "cuda:3"),
        ] {
            let d: Device = text.parse().unwrap();
            assert_eq!(d, device);
            assert_eq!(d.to_string(), printed);
            assert_eq!(printed.parse::<Device>().unwrap(), d);
        }
        for bad in ["gpu", "cuda:", "cuda:x", "cuda:-1", "cuda:+1", "CPU", ""] {
            let e = bad.parse::<Device>().unwrap_err().to_string();
            assert!(e.contains("unknown device") && e.contains("tch-cpu"), "{e}");
        }
    }

    #[test]
    fn devices_serialise_as_their_names() {
        let json = serde_json::to_string(&Device::Tch(TchDevice::Cuda(1))).unwrap();
        assert_eq!(json, "\"cuda:1\"");
        assert_eq!(
            serde_json::from_str::<Device>(&json).unwrap(),
            Device::Tch(TchDevice::Cuda(1))
        );
        assert!(serde_json::from_str::<Device>("\"tpu\"").is_err());
    }

    #[cfg(not(feature = "tch"))]
    #[test]
    fn libtorch_devices_without_the_feature_say_how_to_build_it() {
        let spec = ModelSpec::from_name("mlp", [1, 4, 4], 3).unwrap();
        assert!(Device::Cpu.network(&spec, 0).is_ok());
        for d in ["cuda", "cuda:1", "tch-cpu"] {
            let device: Device = d.parse().unwrap();
            assert!(!device.is_compiled());
            let e = match device.network(&spec, 0) {
                Err(e) => e,
                Ok(_) => panic!("{d} built a network without the tch feature"),
            };
            assert!(matches!(e, Error::EngineNotCompiled { .. }));
            let msg = e.to_string();
            assert!(
                msg.contains(&device.to_string()) && msg.contains("--features tch"),
                "{msg}"
            );
        }
    }
}
