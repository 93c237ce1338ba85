//! Reading a spec: closed-set spellings are checked with a location at read time.

use super::Resolved;
use crate::diag::Source;
use crate::gen::apply_overrides;
use crate::gen::grid::Assignment;

const GOLDEN: &str = "golden/port/axolotl/llama3_2-1b-lora-alpaca/ir.toml";

/// A misspelt closed-set value in a run.toml fails at read time with its position and the
/// allowed values, before any model loads.
#[test]
fn misspelt_run_toml_value_is_located() {
    let path = GOLDEN;
    let text = std::fs::read_to_string(path).unwrap();
    assert!(Resolved::from_toml(&Source::new(path, text.clone())).is_ok());
    let bad = text.replacen(
        "normalization = \"mean_of_microbatch_means\"",
        "normalization = \"mean_of_microbatch_mean\"",
        1,
    );
    assert_ne!(bad, text);
    let line = bad
        .lines()
        .position(|l| l.contains("mean_of_microbatch_mean\""))
        .unwrap()
        + 1;
    let d = Resolved::from_toml(&Source::new(path, bad.clone())).unwrap_err();
    assert_eq!(d.id, "unknown-value");
    assert_eq!(d.line, Some(line));
    assert!(d.column.is_some());
    assert!(
        d.message.contains(
            "expected one of `token_mean_over_step`, `mean_of_microbatch_means`, `token_weighted_unshifted`"
        ),
        "{}",
        d.message
    );
    let shown = d.render(Some(&Source::new(path, bad)));
    assert!(shown.contains(&format!("{path}:{line}:")), "{shown}");
}

/// `gen --set` with a misspelt value names the field and the allowed values.
#[test]
fn misspelt_override_names_the_field() {
    let path = GOLDEN;
    let text = std::fs::read_to_string(path).unwrap();
    let mut r = Resolved::from_toml(&Source::new(path, text)).unwrap();
    let set = Assignment {
        key: "adapter.method".into(),
        value: serde_json::json!("qlorra"),
    };
    let e = apply_overrides(&mut r, &[set]).unwrap_err();
    assert!(e.contains("`adapter.method`"), "{e}");
    assert!(e.contains("expected one of `lora`, `qlora`, `full`"), "{e}");
}
