//! Learning-rate schedules as `torch.optim.lr_scheduler.LambdaLR` with the HF lambdas
//! (transformers `optimization.py`; TorchTune's `get_cosine_schedule_with_warmup` is the same
//! cosine). The LR of optimizer step k (1-based) is `lr · λ(k − 1)`, so a warmup makes the
//! first step's LR exactly 0 in both frameworks:
//!
//!   warmup (s < W):  λ(s) = s / max(1, W)
//!   cosine:          λ(s) = max(0, ½·(1 + cos(π · cycles · 2 · p))),  p = (s − W) / max(1, N − W)
//!   cosine, min lr:  λ(s) = max(0, ½·(1 + cos(…))·(1 − r) + r)
//!   linear:          λ(s) = max(0, (N − s) / max(1, N − W))
//!   constant:        λ(s) = 1 (after the warmup, for `constant_with_warmup`)
//!
//! What differs between frameworks is which LR is *logged*: HF logs the applied one (λ(k−1)),
//! TorchTune reads it after `scheduler.step()`, i.e. the next step's (λ(k)) — `logging.lr_reported`.

use super::error::Unsupported;
use crate::ir::ScheduleKind;

#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    pub kind: Kind,
    pub base_lr: f64,
    pub warmup_steps: u64,
    pub total_steps: u64,
    pub num_cycles: f64,
    pub min_lr_ratio: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Cosine,
    Linear,
    Constant,
    ConstantWithWarmup,
}

impl Kind {
    /// The engine's schedule for the IR's `schedule.kind`; the refusal names the ones it runs
    /// (`support::check` asks this too, so `run --check` and a run agree).
    pub fn of(kind: ScheduleKind) -> Result<Kind, Unsupported> {
        Ok(match kind {
            ScheduleKind::Cosine | ScheduleKind::CosineWithMinLr => Kind::Cosine,
            ScheduleKind::Linear => Kind::Linear,
            ScheduleKind::Constant => Kind::Constant,
            ScheduleKind::ConstantWithWarmup => Kind::ConstantWithWarmup,
            ScheduleKind::CosineWarmupWithMinLr
            | ScheduleKind::CosineWithRestarts
            | ScheduleKind::Polynomial
            | ScheduleKind::InverseSqrt
            | ScheduleKind::ReduceLrOnPlateau
            | ScheduleKind::WarmupStableDecay
            | ScheduleKind::Greedy
            | ScheduleKind::OneCycle
            | ScheduleKind::Rex => {
                return Err(Unsupported::new(
                    "schedule.kind",
                    kind,
                    "the engine runs cosine, cosine_with_min_lr, linear, constant and constant_with_warmup",
                ))
            }
        })
    }
}

impl Schedule {
    /// λ(s) for scheduler step s (0-based: the LR in force during optimizer step s + 1).
    pub fn lambda(&self, s: u64) -> f64 {
        let w = self.warmup_steps;
        if self.kind != Kind::Constant && s < w {
            return s as f64 / w.max(1) as f64;
        }
        match self.kind {
            Kind::Constant | Kind::ConstantWithWarmup => 1.0,
            Kind::Linear => {
                let n = self.total_steps as f64;
                (0.0f64).max((n - s as f64) / (self.total_steps.saturating_sub(w).max(1)) as f64)
            }
            Kind::Cosine => {
                let progress = (s - w) as f64 / (self.total_steps.saturating_sub(w).max(1)) as f64;
                let factor =
                    0.5 * (1.0 + (std::f64::consts::PI * self.num_cycles * 2.0 * progress).cos());
                if self.min_lr_ratio > 0.0 {
                    (factor * (1.0 - self.min_lr_ratio) + self.min_lr_ratio).max(0.0)
                } else {
                    factor.max(0.0)
                }
            }
        }
    }

    /// LR applied in optimizer step `step` (1-based).
    pub fn lr_at(&self, step: u64) -> f64 {
        self.base_lr * self.lambda(step - 1)
    }
}

#[cfg(test)]
mod tests {
    // By full path: import tracing reads `super` here as this file's parent.
    use crate::engine::schedule::*;

    fn cosine(w: u64, n: u64) -> Schedule {
        Schedule {
            kind: Kind::Cosine,
            base_lr: 3e-3,
            warmup_steps: w,
            total_steps: n,
            num_cycles: 0.5,
            min_lr_ratio: 0.0,
        }
    }

    #[test]
    fn first_step_runs_at_zero_under_warmup() {
        let s = cosine(3, 32);
        assert_eq!(s.lr_at(1), 0.0);
        assert_eq!(s.lr_at(2), 0.001);
        assert_eq!(s.lr_at(3), 0.002);
        assert_eq!(s.lr_at(4), 0.003);
    }

    #[test]
    fn cosine_matches_torchtune_log() {
        // golden/runs/torchtune-lora-qwen2/log.txt logs the LR after scheduler.step():
        // step 4 → 0.0029912069357315393, step 31 → 8.793064268460605e-06, step 32 → 0.0
        let s = cosine(3, 32);
        assert_eq!(s.base_lr * s.lambda(4), 0.0029912069357315393);
        assert_eq!(s.base_lr * s.lambda(31), 8.793064268460605e-06);
        assert_eq!(s.base_lr * s.lambda(32), 0.0);
    }

    #[test]
    fn linear_decays_to_zero() {
        let s = Schedule {
            kind: Kind::Linear,
            ..cosine(2, 10)
        };
        assert_eq!(s.lambda(0), 0.0);
        assert_eq!(s.lambda(1), 0.5);
        assert_eq!(s.lambda(2), 1.0);
        assert_eq!(s.lambda(10), 0.0);
    }
}
