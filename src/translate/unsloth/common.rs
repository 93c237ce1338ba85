//! What the Unsloth reader and writer share.

use crate::translate::Framework;

pub(super) const FW: Framework = Framework::Unsloth;
