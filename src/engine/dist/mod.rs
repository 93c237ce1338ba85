//! Many processes, one run: libtorch's own c10d (TCPStore rendezvous, gloo process groups on
//! CPU) through a small C++ shim (`native/c10d/shim.cpp`), the world a process belongs to
//! (from our launcher, torchrun or Slurm), and the launcher that spawns and supervises ranks.

pub mod ffi;
pub mod group;
pub mod launch;
pub mod world;

pub use group::{Backend, DistError, ProcessGroup, ReduceOp, Store, Work};
pub use launch::{launch, LaunchError, LaunchSpec, RankFailure};
pub use world::{Launcher, World, WorldError};
