use super::*;
use std::io::Write;

fn tmp(name: &str, body: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join(name);
    std::fs::File::create(&p)
        .unwrap()
        .write_all(body.as_bytes())
        .unwrap();
    (d, p)
}

#[test]
fn torchtune_lines() {
    let (_d, p) = tmp(
        "log_1.txt",
        "Step 1 | loss:6.5 lr:0.001 tokens_per_second_per_gpu:10.0 grad_norm:0.5 \nStep 2 | loss:6.25 lr:0.002 \n",
    );
    let c = torchtune_log(&p).unwrap();
    assert_eq!(c.points.len(), 2);
    assert_eq!(c.points[1].loss, 6.25);
    assert_eq!(c.points[0].grad_norm, Some(0.5));
    assert_eq!(c.points[1].grad_norm, None);
}

#[test]
fn torchtune_truncated_and_nan() {
    let (_d, p) = tmp("log.txt", "Step 1 | loss:6.5 lr:0.001 \nStep 2 | loss:6.2");
    assert!(matches!(
        torchtune_log(&p),
        Err(IngestError::Truncated { line: 2, .. })
    ));
    let (_d, p) = tmp("log.txt", "Step 1 | loss:6.5 \nStep 2 | loss:nan \n");
    let e = torchtune_log(&p).unwrap_err();
    assert!(
        matches!(
            e,
            IngestError::NonFinite {
                line: Some(2),
                step: 2,
                ..
            }
        ),
        "{e}"
    );
    let (_d, p) = tmp("log.txt", "");
    let e = torchtune_log(&p).unwrap_err();
    assert!(e.to_string().contains("the file is empty"), "{e}");
}

#[test]
fn sanitize_keeps_strings() {
    let (s, lines) = sanitize_json("{\"a\": \"NaN x\",\n \"b\": NaN, \"c\": -Infinity}");
    assert_eq!(
        s,
        "{\"a\": \"NaN x\",\n \"b\": \"NaN\", \"c\": \"-Infinity\"}"
    );
    assert_eq!(lines, vec![2, 2]);
}

#[test]
fn trainer_state_nan_names_line() {
    let (_d, p) = tmp(
        "trainer_state.json",
        "{\n \"log_history\": [\n  {\"loss\": 1.0, \"step\": 1},\n  {\"loss\": NaN, \"step\": 2}\n ]\n}\n",
    );
    let e = trainer_state(&p).unwrap_err();
    assert!(
        matches!(
            e,
            IngestError::NonFinite {
                line: Some(4),
                step: 2,
                ..
            }
        ),
        "{e}"
    );
    let (_d, p) = tmp(
        "trainer_state.json",
        "{\n \"log_history\": [\n  {\"loss\": 1.0, \"step\": 1},\n",
    );
    assert!(matches!(
        trainer_state(&p),
        Err(IngestError::Truncated { .. })
    ));
}

#[test]
fn jsonl_per_step_tokens_accumulate_and_duplicates_keep_last() {
    let (_d, p) = tmp(
        "m.jsonl",
        "{\"step\":1,\"loss\":2.0,\"tokens\":10}\n{\"step\":2,\"loss\":1.5,\"tokens\":5}\n{\"step\":2,\"loss\":1.4,\"tokens\":5}\n",
    );
    let c = jsonl(&p).unwrap();
    assert_eq!(c.points.len(), 2);
    assert_eq!(c.points[1].loss, 1.4);
    assert_eq!(c.points[0].tokens, Some(10.0));
    assert_eq!(c.points[1].tokens, Some(20.0));
}

#[test]
fn jsonl_truncated_last_line() {
    let (_d, p) = tmp("m.jsonl", "{\"step\":1,\"loss\":2.0}\n{\"step\":2,\"lo");
    assert!(matches!(
        jsonl(&p),
        Err(IngestError::Truncated { line: 2, .. })
    ));
}

#[test]
fn csv_wandb_columns() {
    let (_d, p) = tmp(
        "c.csv",
        "Step,train/loss,train/learning_rate\n1,2.5,0.1\n2,\"2.25\",0.2\n",
    );
    let c = csv(&p).unwrap();
    assert_eq!(c.points.len(), 2);
    assert_eq!(c.points[1].loss, 2.25);
    assert_eq!(c.points[1].lr, Some(0.2));
    let (_d, p) = tmp("c.csv", "step,loss\n1,2.5\n2");
    assert!(matches!(
        csv(&p),
        Err(IngestError::Truncated { line: 3, .. })
    ));
}

#[test]
fn rounding_detected() {
    let (_d, p) = tmp(
        "m.jsonl",
        "{\"step\":1,\"loss\":2.1234}\n{\"step\":2,\"loss\":2.0}\n{\"step\":3,\"loss\":1.9876}\n",
    );
    assert_eq!(jsonl(&p).unwrap().quantum, Some(1e-4));
}

#[test]
fn eval_entries_become_the_eval_curve() {
    // HF log_history: eval_on_start at step 0, then evals between train entries
    let (_d, p) = tmp(
        "trainer_state.json",
        r#"{"log_history": [
            {"eval_loss": 6.3, "epoch": 0, "step": 0},
            {"loss": 6.2, "learning_rate": 0.0, "epoch": 0.1, "step": 1},
            {"loss": 6.1, "learning_rate": 0.001, "epoch": 0.2, "step": 2},
            {"eval_loss": 6.0, "eval_runtime": 0.05, "epoch": 0.2, "step": 2},
            {"train_loss": 6.15, "epoch": 0.2, "step": 2}
        ]}"#,
    );
    let c = trainer_state(&p).unwrap();
    assert_eq!(c.points.len(), 2);
    let evals: Vec<(u64, f64)> = c.eval.iter().map(|e| (e.step, e.loss)).collect();
    assert_eq!(evals, [(0, 6.3), (2, 6.0)]);
    // engine metrics.jsonl: eval rows carry no `loss`; a resumed run's repeat keeps the last
    let (_d, p) = tmp(
        "metrics.jsonl",
        "{\"step\":1,\"loss\":6.2}\n{\"step\":1,\"eval_loss\":6.1,\"eval_samples\":8}\n{\"step\":1,\"eval_loss\":6.05}\n",
    );
    let c = jsonl(&p).unwrap();
    assert_eq!(c.points.len(), 1);
    assert_eq!(
        c.eval,
        [EvalPoint {
            step: 1,
            loss: 6.05
        }]
    );
}
