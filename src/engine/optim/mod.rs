//! Optimizers: torch AdamW with clipping ([`adamw`]), bitsandbytes AdamW with 8-bit blockwise
//! or 32-bit states ([`bnb`], quantisation in [`blockwise`]), torchao's 8-bit and 4-bit AdamW
//! ([`torchao`], quantisation in [`ao_quant`]), and the choice by `optimizer.name` ([`select`]).

pub mod adamw;
pub mod ao_quant;
pub mod blockwise;
pub mod bnb;
pub mod select;
pub mod torchao;

#[cfg(test)]
mod ao_tests;
#[cfg(test)]
mod tests;
