//! Arbitrary UTF-8 into the Axolotl reader (YAML front end, field table, datasets, batch
//! triple, warmup, loss plugins, DeepSpeed/FSDP) and, when it reads, the Axolotl writer and the
//! reader again on the written config: any input may be rejected with diagnostics, none may
//! panic. (`src/translate/axolotl/tests.rs` runs ~2000 seeded mutations of the fixtures in
//! `cargo test`; this target explores further.)
//!
//! Seed the corpus with the fixtures for a quick start:
//!   mkdir -p fuzz/corpus/axolotl_read && cp fixtures/configs/axolotl/*.yaml fixtures/upstream/axolotl/*.y*ml fuzz/corpus/axolotl_read/
//!   cargo +nightly fuzz run axolotl_read -- -max_total_time=60
#![no_main]

use libfuzzer_sys::fuzz_target;
use tunebridge::diag::Source;
use tunebridge::translate::{axolotl, WriteOptions};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let source = Source::new("fuzz.yaml", text);
    if let Ok(parsed) = axolotl::read(&source) {
        let written = axolotl::write(&parsed.resolved, "axolotl", &WriteOptions::default());
        let _ = axolotl::read(&Source::new("written.yaml", written.text));
    }
});
