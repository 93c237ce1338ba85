//! unsloth reader and writer (in progress).

use super::reader::{Parsed, ReadError};
use super::{WriteOptions, Written};
use crate::diag::{Diagnostic, Source};
use crate::ir::Resolved;

pub fn read(source: &Source) -> Result<Parsed, ReadError> {
    Err(ReadError::NotSupported(
        Diagnostic::error("not-supported", "reading unsloth is not implemented yet").locate(source),
    ))
}

pub fn write(resolved: &Resolved, from: &str, opts: &WriteOptions) -> Written {
    let _ = (resolved, from, opts);
    unimplemented!("writing unsloth")
}
