//! Reader and writer tests on small scripts (the notebook fixtures are checked by the
//! integration tests against their goldens).

use super::*;
use crate::diag::Source;

fn read_text(text: &str) -> crate::translate::Parsed {
    let src = Source::new("t.py", text);
    read(&src).unwrap_or_else(|e| {
        panic!(
            "{}",
            e.diagnostics().iter().map(|d| d.render(Some(&src))).collect::<String>()
        )
    })
}
