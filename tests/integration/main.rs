//! Integration tests: one binary, modules by topic. Inputs come from `fixtures/`, expected
//! outputs from `golden/`. Set `TUNEBRIDGE_BLESS=1` to rewrite goldens after a deliberate
//! change, then review the diff.

mod architecture;
#[cfg(feature = "engine")]
mod census;
mod cli;
mod diff;
#[cfg(feature = "engine")]
mod distributed;
#[cfg(feature = "engine")]
mod dora;
#[cfg(feature = "engine")]
mod gemma;
mod gen;
mod harness;
#[cfg(feature = "engine")]
mod int8;
#[cfg(feature = "engine")]
mod packing;
#[cfg(feature = "engine")]
mod phi;
mod port;
#[cfg(feature = "engine")]
mod prequant;
#[cfg(feature = "engine")]
mod run;
#[cfg(feature = "engine")]
mod torchao_optim;
#[cfg(feature = "engine")]
mod torchtune_families;
#[cfg(feature = "engine")]
mod trl_packing;
mod tt_framing;
mod upstream;
mod validate;
mod verify;
