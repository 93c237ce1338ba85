//! Split specs as Hugging Face `datasets` 4.8 reads them (`arrow_reader.ReadInstruction`):
//! `train`, `train[:20%]`, `train[10:-10]`, `test[:33%](pct1_dropremainder)`,
//! `train[:50%]+test[-5:]`. Axolotl, TorchTune and Unsloth scripts all pass `split` to
//! `load_dataset`, so every flavour slices the same way.
//!
//! A sub-spec `split[from:to]` takes rows `from..to` of that split's rows, after:
//! - percent bounds → rows: `closest` (the default) is `int(round(b·n / 100.0))` with
//!   Python's round-half-to-even (`train[:10%]` of 25 rows is 2, of 35 is 4);
//!   `pct1_dropremainder` is `b·trunc(n / 100)` and is refused for n < 100;
//! - a missing bound is 0 / n; a negative one counts from the end, floored at 0;
//!   both are clamped to n, and `from ≥ to` reads nothing (`train[5:2]` is empty).
//!
//! Sub-specs joined by `+` are read in turn and concatenated.

use std::ops::Range;

/// How a percent bound becomes a row count (`ReadInstruction(rounding=…)`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rounding {
    Closest,
    Pct1DropRemainder,
}

/// One `split[from:to](rounding)` of a spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadInstruction {
    pub split: String,
    pub from: Option<i64>,
    pub to: Option<i64>,
    pub percent: bool,
    pub rounding: Rounding,
}

impl ReadInstruction {
    /// The rows it reads of a split of `n` rows (`_rel_to_abs_instr`); empty when from ≥ to.
    pub fn rows(&self, n: usize) -> Result<Range<usize>, String> {
        let n_i = n as i64;
        let abs = |b: i64| -> Result<i64, String> {
            if !self.percent {
                return Ok(b);
            }
            Ok(match self.rounding {
                // Python: int(round(boundary * num_examples / 100.0)); the product is an exact
                // int, converted to float by the division, rounded half to even.
                Rounding::Closest => ((b * n_i) as f64 / 100.0).round_ties_even() as i64,
                Rounding::Pct1DropRemainder => {
                    if n < 100 {
                        return Err(format!(
                            "pct1_dropremainder rounding on a split of {n} rows (< 100) is \
                             refused by `datasets`: it always reads nothing"
                        ));
                    }
                    b * (n_i / 100)
                }
            })
        };
        let from = self.from.map(abs).transpose()?.unwrap_or(0);
        let to = self.to.map(abs).transpose()?.unwrap_or(n_i);
        let wrap = |b: i64| if b < 0 { (n_i + b).max(0) } else { b }.min(n_i) as usize;
        let (from, to) = (wrap(from), wrap(to));
        Ok(from..to.max(from))
    }
}

/// Parse a split spec; the error says what `datasets` would refuse.
pub fn parse(spec: &str) -> Result<Vec<ReadInstruction>, String> {
    split_plus(spec).iter().map(|s| parse_one(s)).collect()
}

/// `_ADDITION_SEP_RE = \s*\+\s*`.
fn split_plus(spec: &str) -> Vec<&str> {
    spec.split('+').map(|s| s.trim()).collect()
}

fn parse_one(sub: &str) -> Result<ReadInstruction, String> {
    let bad = || format!("`{sub}` is not a split spec (`name`, `name[from:to]`, `name[:10%]`)");
    let (name, rest) = match sub.find(['[', '(']) {
        Some(i) => (&sub[..i], &sub[i..]),
        None => (sub, ""),
    };
    // `_split_re = ^\w+(\.\w+)*$`
    let word = |w: &str| !w.is_empty() && w.chars().all(|c| c.is_alphanumeric() || c == '_');
    if !name.split('.').all(word) {
        return Err(bad());
    }
    let (slice, rounding) = match rest.find('(') {
        Some(i) => (&rest[..i], Some(&rest[i..])),
        None => (rest, None),
    };
    let mut ins = ReadInstruction {
        split: name.to_string(),
        from: None,
        to: None,
        percent: false,
        rounding: Rounding::Closest,
    };
    let mut from_pct = false;
    let mut to_pct = false;
    if !slice.is_empty() {
        let inner = slice
            .strip_prefix('[')
            .and_then(|s| s.strip_suffix(']'))
            .ok_or_else(bad)?;
        let (a, b) = inner.split_once(':').ok_or_else(bad)?;
        (ins.from, from_pct) = bound(a).ok_or_else(bad)?;
        (ins.to, to_pct) = bound(b).ok_or_else(bad)?;
    }
    ins.percent = from_pct || to_pct;
    if let Some(r) = rounding {
        let r = r
            .strip_prefix('(')
            .and_then(|s| s.strip_suffix(')'))
            .ok_or_else(bad)?;
        ins.rounding = match r {
            "closest" => Rounding::Closest,
            "pct1_dropremainder" => Rounding::Pct1DropRemainder,
            _ => {
                return Err(format!(
                    "`{sub}`: rounding must be closest or pct1_dropremainder"
                ))
            }
        };
        if !ins.percent {
            return Err(format!(
                "`{sub}`: a rounding is only allowed with percent slicing"
            ));
        }
    }
    if ins.percent && [ins.from, ins.to].iter().flatten().any(|b| b.abs() > 100) {
        return Err(format!(
            "`{sub}`: percent slice boundaries must be between -100 and 100"
        ));
    }
    Ok(ins)
}

/// One bound `-?[\d_]+%?` (or nothing), as Python's `int()` reads it: underscores only
/// single and between digits. `Some((None, false))` for an empty bound.
fn bound(s: &str) -> Option<(Option<i64>, bool)> {
    if s.is_empty() {
        return Some((None, false));
    }
    let (num, pct) = match s.strip_suffix('%') {
        Some(n) => (n, true),
        None => (s, false),
    };
    let (neg, digits) = match num.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, num),
    };
    let groups: Vec<&str> = digits.split('_').collect();
    if groups
        .iter()
        .any(|g| g.is_empty() || !g.chars().all(|c| c.is_ascii_digit()))
    {
        return None;
    }
    let v: i64 = groups.concat().parse().ok()?;
    Some((Some(if neg { -v } else { v }), pct))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(spec: &str, n: usize) -> Vec<(String, Range<usize>)> {
        parse(spec)
            .unwrap()
            .iter()
            .map(|i| (i.split.clone(), i.rows(n).unwrap()))
            .collect()
    }

    /// Each expected value is `datasets` 4.8.4's, from (ax env):
    /// python -c "from datasets.arrow_reader import ReadInstruction as R;
    ///   print([(a.splitname,a.from_,a.to) for a in R.from_spec(SPEC).to_absolute({'train':N})])"
    /// (`datasets` reads nothing when from ≥ to: `load_dataset('json', data_files=…,
    /// split='train[5:2]')` has no rows.)
    #[test]
    fn slices_match_datasets() {
        let t = |r: Range<usize>| vec![("train".to_string(), r)];
        assert_eq!(rows("train[:20%]", 7), t(0..1));
        assert_eq!(rows("train[:1%]", 150), t(0..2)); // 1.5 → 2
        assert_eq!(rows("train[:1%]", 50), t(0..0)); // 0.5 → 0
        assert_eq!(rows("train[:10000]", 52002), t(0..10000));
        assert_eq!(rows("train[:2500]", 100), t(0..100));
        assert_eq!(rows("train[:10%]", 25), t(0..2)); // 2.5 → 2 (half to even)
        assert_eq!(rows("train[:10%]", 35), t(0..4)); // 3.5 → 4
        assert_eq!(rows("train[:10%]", 45), t(0..4)); // 4.5 → 4
        assert_eq!(rows("train[-5:]", 3), t(0..3));
        assert_eq!(rows("train[10%:-10%]", 15), t(2..13));
        assert_eq!(rows("train[-30%:]", 5), t(3..5));
        assert_eq!(rows("train[25%:75%]", 10), t(2..8));
        assert_eq!(rows("train[5:2]", 10), t(5..5));
        assert_eq!(rows("train", 4), t(0..4));
        assert_eq!(rows("train[:50%](pct1_dropremainder)", 250), t(0..100));
        assert_eq!(rows("train[1_0:]", 20), t(10..20));
        assert_eq!(rows("train[:-5%]", 1000), t(0..950));
        assert_eq!(
            rows("train[:33%] + train[-1:]", 10),
            vec![("train".into(), 0..3), ("train".into(), 9..10)]
        );
        assert_eq!(rows("test.x[:1]", 10), vec![("test.x".into(), 0..1)]);
    }

    #[test]
    fn what_datasets_refuses_is_an_error() {
        for bad in [
            "train[-200%:]",
            "train[:5](closest)",
            "train[:5%](nearest)",
            "train[1__0:]",
            "train[_1:]",
            "train[:5",
            "train[5]",
            "tr ain",
            "",
            "train[a:]",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        let pct1 = &parse("train[:50%](pct1_dropremainder)").unwrap()[0];
        assert!(pct1.rows(99).is_err());
    }
}
