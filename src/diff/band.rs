//! How far B's loss is from A's, and whether that is inside the tolerance band — one rule for
//! the train curve ([`super::curves`]) and the eval curve ([`super::eval_curve`]).

/// The gap between a loss of A (the reference) and the loss of B it is paired with.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Gap {
    /// |loss_B − loss_A|
    pub abs: f64,
    /// abs / |loss_A|; 0 when both are 0, ∞ when only A is 0.
    pub rel: f64,
    /// atol + rtol·|loss_A|
    pub band: f64,
    /// abs ≤ band
    pub within: bool,
}

/// Compare `b` against the reference `a` with the band `atol + rtol·|a|`.
pub fn gap(a: f64, b: f64, rtol: f64, atol: f64) -> Gap {
    let abs = (a - b).abs();
    let rel = if a != 0.0 {
        abs / a.abs()
    } else if abs == 0.0 {
        0.0
    } else {
        f64::INFINITY
    };
    let band = atol + rtol * a.abs();
    Gap {
        abs,
        rel,
        band,
        within: abs <= band,
    }
}

#[cfg(test)]
mod tests {
    use super::gap;

    #[test]
    fn relative_to_the_reference_with_zero_handled() {
        let g = gap(2.0, 2.1, 0.01, 0.0);
        assert!((g.rel - 0.05).abs() < 1e-12 && !g.within);
        assert!(gap(2.0, 2.01, 0.01, 0.0).within);
        assert_eq!(gap(0.0, 0.0, 0.0, 0.0).rel, 0.0);
        assert_eq!(gap(0.0, 1.0, 0.0, 0.0).rel, f64::INFINITY);
    }
}
