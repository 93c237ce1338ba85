//! What the Unsloth reader and writer share.

use crate::translate::framework::Framework;

pub(super) const FW: Framework = Framework::Unsloth;
