//! Whose semantics a run follows: the framework a spec came from, or one named on the command
//! line.

use crate::ir::{LrReported, Origin, Resolved};
use crate::translate::Framework;

/// Whose semantics a run follows where the frameworks differ and the IR does not (yet) spell
/// the difference out: prompt framing and tokenization, the sample-order pipeline, the token
/// count of TorchTune's loss normalisation, the last partial accumulation window, and which
/// parameters get weight decay.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Flavour {
    /// TorchTune 0.6.1 recipes.
    TorchTune,
    /// Axolotl (HF Trainer + PEFT, Axolotl's own data pipeline).
    Axolotl,
    /// Unsloth notebooks (HF Trainer/TRL SFTTrainer + PEFT, TRL's data pipeline).
    Unsloth,
}

impl Flavour {
    pub fn from_framework(fw: Framework) -> Option<Flavour> {
        match fw {
            Framework::Torchtune => Some(Flavour::TorchTune),
            Framework::Axolotl => Some(Flavour::Axolotl),
            Framework::Unsloth => Some(Flavour::Unsloth),
            Framework::Ir => None,
        }
    }

    pub fn parse(name: &str) -> Option<Flavour> {
        match name {
            "torchtune" => Some(Flavour::TorchTune),
            "axolotl" => Some(Flavour::Axolotl),
            "unsloth" => Some(Flavour::Unsloth),
            _ => None,
        }
    }

    /// The flavour of a spec read from `run.toml`: the framework its provenance names most
    /// often (a ported spec records whose defaults it took), else TorchTune when the LR is
    /// logged after the scheduler step, else Axolotl.
    pub fn of_spec(resolved: &Resolved) -> Flavour {
        let mut counts = [0usize; 3];
        for origin in resolved.provenance.0.values() {
            if let Origin::Default { framework, .. } = origin {
                if let Some(f) = Flavour::parse(framework) {
                    counts[f as usize] += 1;
                }
            }
        }
        let best = counts.iter().enumerate().max_by_key(|(_, c)| **c);
        match best {
            Some((i, &c)) if c > 0 => [Flavour::TorchTune, Flavour::Axolotl, Flavour::Unsloth][i],
            _ if resolved.spec.logging.lr_reported == LrReported::Next => Flavour::TorchTune,
            _ => Flavour::Axolotl,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Flavour::TorchTune => "torchtune",
            Flavour::Axolotl => "axolotl",
            Flavour::Unsloth => "unsloth",
        }
    }
}
