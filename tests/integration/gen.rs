//! `tunebridge gen` and `tunebridge new`: sweeps expand, validate through the IR, round-trip,
//! and are listed in the index; bad templates get clear errors.

use crate::harness::{repo, text, tunebridge};
use crate::port::WRITERS;
use tunebridge::diag::Source;
use tunebridge::translate;

#[test]
fn a_3x2_grid_gives_6_valid_configs_per_format() {
    let out = tempfile::tempdir().unwrap();
    let to: Vec<&str> = WRITERS.iter().map(|f| f.name()).collect();
    let to = to.join(",");
    let res = tunebridge(&[
        "gen",
        "fixtures/templates/sweep-lora.yaml.j2",
        "--grid",
        "rank=8,16,32",
        "--grid",
        "lr=1e-4,2e-4",
        "--set",
        "devices=1",
        "--set",
        "global_batch=16",
        "--to",
        &to,
        "-o",
        out.path().to_str().unwrap(),
    ]);
    assert_eq!(res.status.code(), Some(0), "{}", text(&res.stderr));
    let index = std::fs::read_to_string(out.path().join("index.csv")).unwrap();
    let rows: Vec<&str> = index.lines().skip(1).collect();
    assert_eq!(rows.len(), 6 * WRITERS.len(), "{index}");
    assert!(
        index.starts_with("name,framework,devices,global_batch,rank,lr,path,status\n"),
        "{index}"
    );
    for row in rows {
        let cols: Vec<&str> = row.split(',').collect();
        let (fw, rank, lr, path) = (cols[1], cols[4], cols[5], cols[6]);
        assert_eq!(cols[7], "ok");
        let file = out.path().join(path);
        let source = Source::new(
            file.display().to_string(),
            std::fs::read_to_string(&file).unwrap(),
        );
        let fw = WRITERS.iter().find(|f| f.name() == fw).unwrap();
        let r = translate::read(*fw, &source)
            .unwrap_or_else(|e| panic!("{path} does not read back: {:?}", e.diagnostics()));
        assert_eq!(r.resolved.spec.adapter.rank.to_string(), rank, "{path}");
        assert_eq!(
            r.resolved.spec.adapter.alpha,
            2.0 * r.resolved.spec.adapter.rank as f64
        );
        assert_eq!(r.resolved.spec.optimizer.lr, lr.parse::<f64>().unwrap());
        assert_eq!(r.resolved.spec.batch.global_batch, 16);
    }
}

#[test]
fn one_gpu_to_four_keeps_the_global_batch_and_reports_impossible_points() {
    let out = tempfile::tempdir().unwrap();
    let res = tunebridge(&[
        "gen",
        "fixtures/templates/sweep-lora.yaml.j2",
        "--set",
        "rank=16",
        "--set",
        "lr=2e-4",
        "--set",
        "global_batch=16",
        "--grid",
        "devices=1,3,4",
        "--to",
        "axolotl",
        "-o",
        out.path().to_str().unwrap(),
    ]);
    assert_eq!(
        res.status.code(),
        Some(2),
        "an impossible point makes the run fail"
    );
    let err = text(&res.stderr);
    assert!(err.contains("error[impossible]"), "{err}");
    assert!(err.contains("sweep-lora.yaml.j2:15:"), "{err}");
    let index = std::fs::read_to_string(out.path().join("index.csv")).unwrap();
    assert_eq!(
        index.lines().filter(|l| l.ends_with(",ok")).count(),
        2,
        "{index}"
    );
    let four = std::fs::read_to_string(
        out.path()
            .join("axolotl/sweep-lora__rank-16__lr-0.0002__global_batch-16__devices-4.yaml"),
    )
    .unwrap();
    assert!(four.contains("gradient_accumulation_steps: 2"), "{four}");
}

#[test]
fn ir_field_overrides_apply_without_template_variables() {
    let out = tempfile::tempdir().unwrap();
    let res = tunebridge(&[
        "gen",
        "fixtures/configs/axolotl/llama3_2-1b-lora-alpaca.yaml",
        "--grid",
        "adapter.rank=4,8",
        "--set",
        "batch.global_batch=8",
        "--to",
        "axolotl",
        "-o",
        out.path().to_str().unwrap(),
    ]);
    assert_eq!(res.status.code(), Some(0), "{}", text(&res.stderr));
    let f = std::fs::read_to_string(
        out.path()
            .join("axolotl/llama3_2-1b-lora-alpaca__global_batch-8__rank-4.yaml"),
    )
    .unwrap();
    assert!(
        f.contains("lora_r: 4") && f.contains("gradient_accumulation_steps: 4"),
        "{f}"
    );
}

#[test]
fn bad_templates_get_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let t = dir.path().join("t.yaml");
    std::fs::write(&t, "base_model: x\nlora_r: {{ rank \nlearning_rate: 1e-4\n").unwrap();
    let res = tunebridge(&[
        "gen",
        t.to_str().unwrap(),
        "--to",
        "axolotl",
        "-o",
        dir.path().join("o").to_str().unwrap(),
    ]);
    assert_eq!(res.status.code(), Some(2));
    let err = text(&res.stderr);
    assert!(
        err.contains("error[template-syntax]") && err.contains("t.yaml:"),
        "{err}"
    );

    let res = tunebridge(&[
        "gen",
        "fixtures/templates/sweep-lora.yaml.j2",
        "--set",
        "rank=8",
        "--set",
        "lr=1e-4",
        "--set",
        "devices=1",
        "--set",
        "global_batch=16",
        "--set",
        "adapter.rnak=3",
        "--to",
        "axolotl",
        "-o",
        dir.path().join("o2").to_str().unwrap(),
    ]);
    let err = text(&res.stderr);
    assert!(err.contains("`adapter.rnak` is neither a variable of the template nor an IR field; did you mean `adapter.rank`?"), "{err}");
}

#[test]
fn new_writes_a_starting_config_that_reads_back() {
    for &fw in WRITERS {
        let res = tunebridge(&[
            "new",
            "--model",
            "Qwen/Qwen2.5-7B",
            "--method",
            "lora",
            "--dataset",
            "tatsu-lab/alpaca",
            "--devices",
            "4",
            "--to",
            fw.name(),
        ]);
        assert_eq!(res.status.code(), Some(0), "{}", text(&res.stderr));
        let source = Source::new("new", text(&res.stdout));
        let r =
            translate::read(fw, &source).unwrap_or_else(|e| panic!("{fw}: {:?}", e.diagnostics()));
        assert_eq!(r.resolved.spec.model.family, "qwen2_5");
        // Axolotl configs leave the GPU count to the launcher: 2 per device × 2 accumulation.
        let per_device =
            r.resolved.spec.batch.micro_batch_per_device * r.resolved.spec.batch.grad_accum_steps;
        assert_eq!(per_device * 4, 16, "{fw}");
    }
    let _ = repo();
}
