//! The device a run asks for (`--device cpu`, `cuda`, `cuda:N`), as typed by the user.
//!
//! This is only the spelling, checked when the command line is parsed; it names no libtorch
//! type, so it builds without the `engine` feature. Whether the GPU exists is the engine's
//! question, asked when a run starts (`engine::resolve_device`), because answering it loads
//! libtorch's CUDA backend.

use std::fmt;
use std::str::FromStr;

/// A device by name: `cpu`, `cuda` (the first GPU) or `cuda:N`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Device {
    Cpu,
    /// `cuda`: device 0 for one process; in a multi-process run, the GPU of the rank's
    /// `LOCAL_RANK` (one GPU per local rank, as torchrun users set it).
    CudaLocal,
    /// `cuda:N`: that device, for one process.
    Cuda(usize),
}

impl Device {
    /// The accepted spellings, for error messages.
    pub const EXPECTED: &'static str = "expected cpu, cuda or cuda:N";
}

impl FromStr for Device {
    type Err = String;

    fn from_str(s: &str) -> Result<Device, String> {
        match s {
            "cpu" => Ok(Device::Cpu),
            "cuda" => Ok(Device::CudaLocal),
            _ => s
                .strip_prefix("cuda:")
                .and_then(|n| n.parse::<usize>().ok())
                .map(Device::Cuda)
                .ok_or_else(|| Device::EXPECTED.to_string()),
        }
    }
}

impl fmt::Display for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Device::Cpu => f.write_str("cpu"),
            Device::CudaLocal => f.write_str("cuda"),
            Device::Cuda(n) => write!(f, "cuda:{n}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_spelling_parses() {
        for (s, want) in [
            ("cpu", Device::Cpu),
            ("cuda", Device::CudaLocal),
            ("cuda:0", Device::Cuda(0)),
            ("cuda:3", Device::Cuda(3)),
        ] {
            assert_eq!(s.parse::<Device>(), Ok(want), "{s}");
        }
    }

    #[test]
    fn bad_spellings_say_what_is_expected() {
        for s in [
            "", "gpu", "CPU", "cuda:", "cuda:-1", "cuda:x", "cuda0", "mps",
        ] {
            assert_eq!(
                s.parse::<Device>(),
                Err(Device::EXPECTED.to_string()),
                "{s}"
            );
        }
    }

    #[test]
    fn display_round_trips() {
        for d in [
            Device::Cpu,
            Device::CudaLocal,
            Device::Cuda(0),
            Device::Cuda(7),
        ] {
            assert_eq!(d.to_string().parse::<Device>(), Ok(d));
        }
    }
}
