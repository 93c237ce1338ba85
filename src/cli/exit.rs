//! Exit codes, one meaning each, shared by every command.
//!
//! 0 ok, 1 a verdict of "differs" (diff/verify) or a strict port with lossy fields, 2 bad
//! input (clap's own code for a bad flag, too), 3 a feature tunebridge does not support.

pub const EXIT_OK: u8 = 0;
pub const EXIT_DIFFERS: u8 = 1;
pub const EXIT_BAD_INPUT: u8 = 2;
pub const EXIT_NOT_SUPPORTED: u8 = 3;
