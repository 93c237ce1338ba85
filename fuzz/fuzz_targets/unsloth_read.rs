//! Arbitrary UTF-8 into the Unsloth script reader (tree-sitter Python front end, constant
//! evaluation, formatting-function analysis) and, when it reads, the Unsloth writer and the
//! reader again on the written script: any input may be rejected with diagnostics, none may
//! panic.
//!
//! Seed the corpus with the fixtures for a quick start:
//!   mkdir -p fuzz/corpus/unsloth_read && cp fixtures/configs/unsloth/*.py fixtures/upstream/unsloth/*.py fuzz/corpus/unsloth_read/
//!   cargo +nightly fuzz run unsloth_read -- -max_total_time=60
#![no_main]

use libfuzzer_sys::fuzz_target;
use tunebridge::diag::Source;
use tunebridge::translate::{unsloth, WriteOptions};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let source = Source::new("fuzz.py", text);
    if let Ok(parsed) = unsloth::read(&source) {
        let written = unsloth::write(&parsed.resolved, "unsloth", &WriteOptions::default());
        let _ = unsloth::read(&Source::new("written.py", written.text));
    }
});
