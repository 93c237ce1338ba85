//! Arbitrary UTF-8 into the TorchTune reader (and, when it reads, the writer and the
//! command-line overrides): any input may be rejected with diagnostics, none may panic.
//!
//! Seed the corpus with the fixtures for a quick start:
//!   mkdir -p fuzz/corpus/torchtune_read && cp fixtures/configs/torchtune/*.yaml fixtures/upstream/torchtune/*.yaml fuzz/corpus/torchtune_read/
//!   cargo +nightly fuzz run torchtune_read -- -max_total_time=60
#![no_main]

use libfuzzer_sys::fuzz_target;
use tunebridge::diag::Source;
use tunebridge::translate::{torchtune, WriteOptions};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let source = Source::new("fuzz.yaml", text);
    if let Ok(parsed) = torchtune::read(&source) {
        let written = torchtune::write(&parsed.resolved, "torchtune", &WriteOptions::default());
        let _ = torchtune::read(&Source::new("written.yaml", written.text));
    }
    let _ = torchtune::apply_overrides(text, &["model.lora_rank=4".into(), "~dataset.packed".into()]);
});
