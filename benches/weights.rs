//! Weight-diff benchmark (filled in below).
fn main() {}
