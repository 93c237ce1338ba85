//! Optimizers: torch AdamW with clipping ([`adamw`]), bitsandbytes AdamW with 8-bit blockwise
//! or 32-bit states ([`bnb`], quantisation in [`blockwise`]), and the choice by
//! `optimizer.name` ([`select`]).

pub mod adamw;
pub mod blockwise;
pub mod bnb;
pub mod select;

#[cfg(test)]
mod tests;
