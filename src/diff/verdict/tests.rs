use super::*;

#[test]
fn numbers_are_compact() {
    assert_eq!(num(6.2812418937683105), "6.281");
    assert_eq!(num(0.0123456), "0.01235");
    assert_eq!(num(1.5e-5), "1.500e-5");
    assert_eq!(num(0.0), "0");
}
