//! Port benchmark: read + write of a typical config for every source → target pair whose
//! reader and writer exist. Run with `cargo bench --bench port`; figures are recorded in
//! docs/PERFORMANCE.md ("port"). The issue asks for < 50 ms per port of a typical config.
//!
//! A pair whose reader or writer is not implemented yet (it panics or refuses) is skipped,
//! so the bench grows with the translators.

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use tunebridge::diag::Source;
use tunebridge::translate::{self, Framework, WriteOptions};

/// One typical config per source framework: a LoRA/QLoRA run on a Llama 3.x model with a
/// chat or alpaca dataset, the shape most ports have (the first file that exists is used).
const TYPICAL: &[(Framework, &[&str])] = &[
    (
        Framework::Axolotl,
        &["fixtures/configs/axolotl/llama3_1-8b-qlora-chat.yaml"],
    ),
    (
        Framework::Torchtune,
        &["fixtures/configs/torchtune/llama3_2-1b-lora-single-device.yaml"],
    ),
    (
        Framework::Unsloth,
        &["fixtures/configs/unsloth/llama3_1-8b-alpaca-qlora.py"],
    ),
];

fn typical(fw: Framework) -> Option<Source> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let candidates = TYPICAL.iter().find(|(f, _)| *f == fw)?.1;
    let from_list = candidates.iter().find_map(|p| {
        let text = std::fs::read_to_string(root.join(p)).ok()?;
        Some(Source::new(*p, text))
    });
    // Fall back to the first fixture of the framework, whatever its name.
    from_list.or_else(|| {
        let dir = root.join("fixtures/configs").join(fw.name());
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .ok()?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        files.sort();
        let path = files.into_iter().next()?;
        let text = std::fs::read_to_string(&path).ok()?;
        Some(Source::new(path.display().to_string(), text))
    })
}

/// Whether `from` → `to` works on this source today (no error, no panic).
fn pair_works(from: Framework, to: Framework, source: &Source) -> bool {
    let quiet = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let ok = catch_unwind(AssertUnwindSafe(|| {
        let parsed = translate::read(from, source).ok()?;
        let opts = WriteOptions {
            source_name: source.name.clone(),
            ..Default::default()
        };
        Some(translate::write(to, &parsed.resolved, from.name(), &opts))
    }))
    .ok()
    .flatten()
    .is_some();
    std::panic::set_hook(quiet);
    ok
}

fn port(c: &mut Criterion) {
    let mut group = c.benchmark_group("port");
    for from in Framework::PORTABLE {
        let Some(source) = typical(from) else {
            continue;
        };
        for to in Framework::PORTABLE {
            if !pair_works(from, to, &source) {
                eprintln!("skipped {from} → {to}: reader or writer not available");
                continue;
            }
            let opts = WriteOptions {
                source_name: source.name.clone(),
                ..Default::default()
            };
            group.bench_function(format!("{from}->{to}"), |b| {
                b.iter(|| {
                    let parsed = translate::read(from, black_box(&source)).expect("reads");
                    let written = translate::write(to, &parsed.resolved, from.name(), &opts);
                    black_box(written.text.len())
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, port);
criterion_main!(benches);
