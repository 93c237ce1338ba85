//! TRL 1.9 `packing=True` (best-fit decreasing) and padding-free batches, as Unsloth sets them
//! up, against a real TRL + PEFT run on CPU (`golden/runs/hf-trl-packing-llama`): the packed
//! rows and every flattened micro-batch as the collator built them, the loss at every step and
//! the final adapter. Also: a padding-free batch trains as the padded one does.

use super::harness::repo;
use super::run::{
    adapter_matches, golden_losses, options, read, rel_frobenius, tensors, train, ENGINE,
};
use tch::Device;
use tunebridge::engine::{self, Flavour};

const NAME: &str = "hf-trl-packing-llama";
const CONFIG: &str = "fixtures/engine/unsloth-packing-tiny-llama.py";

fn ids(v: &serde_json::Value) -> Vec<i64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_i64().unwrap())
        .collect()
}

fn max_rel(got: &[f64], want: &[f64]) -> f64 {
    got.iter()
        .zip(want)
        .map(|(g, w)| (g - w).abs() / w.abs())
        .fold(0.0, f64::max)
}

#[test]
fn trl_packed_batches_match_the_recorded_collator_output() {
    let (fw, resolved) = read(CONFIG);
    let spec = &resolved.spec;
    assert!(spec.data.packing && spec.data.sequence_len == 256);
    let flavour = Flavour::from_framework(fw).unwrap();
    let tok = engine::data::Tokenizer::load(&engine::model::locate(&spec.model.tokenizer).unwrap())
        .unwrap();
    let rows = engine::data::build_samples(spec, flavour, &tok).unwrap();
    // the 64 samples in 21 rows; the golden's log prints TRL's `seq_lengths` of each
    let log =
        std::fs::read_to_string(repo().join("golden/runs").join(NAME).join("log.txt")).unwrap();
    let line = log
        .lines()
        .find_map(|l| l.strip_prefix("seq_lengths="))
        .unwrap();
    let want: Vec<Vec<usize>> = serde_json::from_str(line).unwrap();
    let got: Vec<Vec<usize>> = rows.iter().map(|r| r.doc_lens.clone()).collect();
    assert_eq!(got, want, "packed rows");

    let plan = engine::train::plan(
        spec,
        flavour,
        rows.len(),
        spec.training.max_steps,
        engine::train::Shard::SINGLE,
    )
    .unwrap();
    let recorded: Vec<serde_json::Value> =
        std::fs::read_to_string(repo().join("golden/runs").join(NAME).join("batches.jsonl"))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
    let mbs: Vec<&Vec<usize>> = plan.windows.iter().flat_map(|w| &w.micro_batches).collect();
    // accelerate fetches one micro-batch ahead of max_steps: the recorder saw one more
    assert_eq!(mbs.len() + 1, recorded.len(), "micro-batch count");
    for (k, (mb, r)) in mbs.iter().zip(&recorded).enumerate() {
        let samples: Vec<&engine::data::Sample> = mb.iter().map(|&i| &rows[i]).collect();
        let lens: Vec<Vec<usize>> = samples.iter().map(|s| s.doc_lens.clone()).collect();
        let want_lens: Vec<Vec<usize>> = serde_json::from_value(r["seq_lengths"].clone()).unwrap();
        assert_eq!(lens, want_lens, "micro-batch {k}: rows");
        let row = &r["rows"].as_array().unwrap()[..];
        assert_eq!(row.len(), 1, "padding-free: one flattened row");
        let b = engine::data::collate_as(true, &samples, 0, Device::Cpu);
        let flat = |t: &tch::Tensor| Vec::<i64>::try_from(t.view([-1])).unwrap();
        assert_eq!(
            flat(&b.input_ids),
            ids(&row[0]["input_ids"]),
            "micro-batch {k} input_ids"
        );
        assert_eq!(
            flat(&b.labels),
            ids(&row[0]["labels"]),
            "micro-batch {k} labels"
        );
        let positions: Vec<i64> = lens.iter().flatten().flat_map(|&n| 0..n as i64).collect();
        assert_eq!(
            positions,
            ids(&row[0]["position_ids"]),
            "micro-batch {k} position_ids"
        );
    }
}

#[test]
fn trl_packing_matches_golden() {
    // Unsloth's `dtype = None` is bf16 on a GPU; the golden ran fp32 on CPU.
    let _lock = ENGINE.lock().unwrap_or_else(|p| p.into_inner());
    let (fw, resolved) = read(CONFIG);
    let dir = tempfile::tempdir().unwrap();
    let mut opts = options(fw, dir.path());
    opts.compute_dtype = Some(tunebridge::ir::Dtype::Fp32);
    let summary = train(&resolved, &opts);
    let want = golden_losses(NAME);
    assert_eq!(summary.losses.len(), want.len(), "step count");
    assert!(want.len() >= 16);
    let err = max_rel(&summary.losses, &want);
    eprintln!("{NAME}: max rel. loss error {err:.1e}");
    assert!(
        err <= 1e-4,
        "loss off by {err:.3e}\n{want:?}\n{:?}",
        summary.losses
    );
    adapter_matches(NAME, dir.path());
    let ours = tensors(&dir.path().join("adapter_model.safetensors"));
    let theirs = tensors(
        &repo()
            .join("golden/runs")
            .join(NAME)
            .join("adapter_model.safetensors"),
    );
    let worst = theirs
        .iter()
        .map(|(k, w)| rel_frobenius(&ours[k], w))
        .fold(0.0, f64::max);
    eprintln!("{NAME}: max rel. adapter error {worst:.1e}");
}

#[test]
fn a_padding_free_batch_trains_as_the_padded_one() {
    // Unsloth auto-enables padding-free batches: same micro-batches, flattened into one row with
    // restarting positions. The loss and the update equal the padded run's up to float order.
    let _lock = ENGINE.lock().unwrap_or_else(|p| p.into_inner());
    let (fw, mut resolved) = read("fixtures/engine/unsloth-alpaca-tiny-llama.py");
    assert!(resolved.spec.data.padding_free, "Unsloth's default");
    resolved.spec.precision.compute_dtype = tunebridge::ir::Dtype::Fp32;
    resolved.spec.training.max_steps = 6;
    let flat_dir = tempfile::tempdir().unwrap();
    let flat = train(&resolved, &options(fw, flat_dir.path()));
    resolved.spec.data.padding_free = false;
    let pad_dir = tempfile::tempdir().unwrap();
    let padded = train(&resolved, &options(fw, pad_dir.path()));
    let err = max_rel(&flat.losses, &padded.losses);
    eprintln!("padding-free vs padded: max rel. loss error {err:.1e}");
    assert_eq!(flat.losses.len(), 6);
    assert!(err <= 1e-6, "{:?} vs {:?}", flat.losses, padded.losses);
}
