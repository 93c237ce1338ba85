//! Data parallelism inside a run: joining the process group, the step's counts summed over
//! ranks, and the gradient all-reduce (one flat bucket of every trainable gradient).
//!
//! What each framework reduces, so that W ranks × GA micro-batches give the single-process
//! gradient of the same samples (transformers 5.16 `Trainer.training_step` /
//! `get_batch_samples`, torchtune 0.6.1 `lora_finetune_distributed.train`):
//!
//! | loss normalisation | counts | gradients | logged loss |
//! |---|---|---|---|
//! | token mean over step (HF with `num_items_in_batch`, `average_tokens_across_devices`) | shifted labels summed before the forward | sum (DDP's mean of W·loss_r) | sum over ranks |
//! | mean of micro-batch means (HF without it) | – | mean | mean over ranks |
//! | token-weighted, unshifted (TorchTune) | unshifted labels summed after the backward | sum, then ÷ Σ n_unshifted (`scale_grads(W / n)` after FSDP's mean) | running loss summed, ÷ Σ n_unshifted |

use crate::engine::dist::{ProcessGroup, ReduceOp, Store, World};
use crate::engine::error::{EngineError, Result};
use std::rc::Rc;
use std::time::Duration;
use tch::{Device, Kind, Tensor};

/// How long to wait for every rank to join (and for any one collective).
fn timeout() -> Duration {
    let secs = std::env::var("TUNEBRIDGE_DIST_TIMEOUT")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    Duration::from_secs(secs)
}

/// This process's rank in a data-parallel run.
pub struct DataParallel {
    pub world: World,
    group: Rc<ProcessGroup>,
    /// Where the collectives' tensors live: CPU for gloo, the rank's GPU for NCCL.
    device: Device,
    _store: Store,
}

impl DataParallel {
    /// Meet the other ranks at `MASTER_ADDR:MASTER_PORT` (rank 0 or torchrun's agent hosts
    /// the store) and form a gloo group (CPU ranks) or an NCCL group (CUDA ranks).
    pub fn join(world: &World, device: Device) -> Result<Self> {
        let t = timeout();
        let store = Store::connect(
            &world.master_addr,
            world.master_port,
            world.size,
            world.hosts_store(),
            t,
            "tunebridge/",
        )?;
        let group = match device {
            Device::Cpu => ProcessGroup::gloo(&store, world.rank, world.size, t)?,
            _ => ProcessGroup::nccl(&store, world.rank, world.size, t)?,
        };
        Ok(DataParallel {
            world: world.clone(),
            group: Rc::new(group),
            device,
            _store: store,
        })
    }

    /// The group, shared with what else talks over it (the full shard's gathers).
    pub(crate) fn group(&self) -> Rc<ProcessGroup> {
        Rc::clone(&self.group)
    }

    pub fn is_main(&self) -> bool {
        self.world.rank == 0
    }

    /// Integer counts summed over ranks.
    pub fn sum_counts<const N: usize>(&self, counts: [i64; N]) -> Result<[i64; N]> {
        let v = self.sum_i64(&counts)?;
        Ok(std::array::from_fn(|i| v[i]))
    }

    /// Integers summed over ranks, element by element.
    pub fn sum_i64(&self, values: &[i64]) -> Result<Vec<i64>> {
        let t = Tensor::from_slice(values).to_device(self.device);
        self.group.all_reduce(&t, ReduceOp::Sum)?.wait()?;
        Vec::<i64>::try_from(&t.to_device(Device::Cpu)).map_err(EngineError::Torch)
    }

    /// A tensor reduced over ranks in place, in its own dtype (as the recipes all-reduce
    /// their fp32 running loss).
    pub fn reduce_in_place(&self, t: &Tensor, op: ReduceOp) -> Result<()> {
        self.group.all_reduce(t, op)?.wait()?;
        Ok(())
    }

    /// Every trainable gradient reduced over ranks in place, through one flat fp32 bucket
    /// (one collective per step). A parameter without a gradient counts as zeros, as DDP's
    /// bucket does.
    pub fn reduce_grads(&self, params: &[Tensor], op: ReduceOp) -> Result<()> {
        for p in params.iter().filter(|p| !p.grad().defined()) {
            // tch cannot assign `.grad`; a zero backward gives the leaf a zero gradient
            (p.sum(p.kind()) * 0.0).backward();
        }
        let _guard = tch::no_grad_guard();
        let grads: Vec<Tensor> = params
            .iter()
            .map(|p| p.grad().to_kind(Kind::Float).flatten(0, -1))
            .collect();
        if grads.is_empty() {
            return Ok(());
        }
        let bucket = Tensor::cat(&grads, 0);
        self.group.all_reduce(&bucket, op)?.wait()?;
        let mut offset = 0i64;
        for p in params {
            let n = p.numel() as i64;
            let reduced = bucket.narrow(0, offset, n).view_as(p);
            p.grad().copy_(&reduced);
            offset += n;
        }
        Ok(())
    }
}
