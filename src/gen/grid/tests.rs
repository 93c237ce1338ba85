use super::*;
use serde_json::json;

#[test]
fn grid_is_a_cartesian_product_and_zip_walks_in_lockstep() {
    let pts = expand(
        &["seed=1".into()],
        &["lr=1e-4,2e-4,3e-4".into(), "adapter.rank=8,16".into()],
        &["a=1,2".into(), "b=x,y".into()],
    )
    .unwrap();
    assert_eq!(pts.len(), 3 * 2 * 2);
    assert_eq!(
        pts[0].label(),
        "seed=1, lr=0.0001, adapter.rank=8, a=1, b=x"
    );
    assert_eq!(
        pts[1].label(),
        "seed=1, lr=0.0001, adapter.rank=8, a=2, b=y"
    );
    assert_eq!(pts[0].slug(), "seed-1__lr-0.0001__rank-8__a-1__b-x");
}

#[test]
fn values_are_typed() {
    assert_eq!(parse_value("16"), json!(16));
    assert_eq!(parse_value("2e-4"), json!(0.0002));
    assert_eq!(parse_value("true"), json!(true));
    assert_eq!(parse_value("cosine"), json!("cosine"));
}

#[test]
fn bad_arguments_are_named() {
    assert!(expand(&["novalue".into()], &[], &[])
        .unwrap_err()
        .contains("expected KEY=VALUE"));
    assert!(expand(&[], &["lr=1,2".into(), "lr=3".into()], &[])
        .unwrap_err()
        .contains("given twice"));
    assert!(expand(&[], &[], &["a=1,2".into(), "b=1".into()])
        .unwrap_err()
        .contains("differ in length"));
    assert!(expand(&["a b=1".into()], &[], &[])
        .unwrap_err()
        .contains("not a valid name"));
}
