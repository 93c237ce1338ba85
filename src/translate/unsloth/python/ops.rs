//! Python operators, builtins and literals on statically evaluated values: integer literals,
//! string escapes, binary operators and the few builtins notebooks call on constants.

use super::value::{Arg, Py};

pub(super) fn parse_int(text: &str) -> Option<i64> {
    let t = text.replace('_', "").to_ascii_lowercase();
    if let Some(h) = t.strip_prefix("0x") {
        i64::from_str_radix(h, 16).ok()
    } else if let Some(o) = t.strip_prefix("0o") {
        i64::from_str_radix(o, 8).ok()
    } else if let Some(b) = t.strip_prefix("0b") {
        i64::from_str_radix(b, 2).ok()
    } else {
        t.parse().ok()
    }
}

/// Python escape sequences of a non-raw string body.
pub fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('r') => out.push('\r'),
            Some('\\') => out.push('\\'),
            Some('\'') => out.push('\''),
            Some('"') => out.push('"'),
            Some('0') if !chars.peek().is_some_and(|c| c.is_ascii_digit()) => out.push('\0'),
            Some('a') => out.push('\x07'),
            Some('b') => out.push('\x08'),
            Some('f') => out.push('\x0c'),
            Some('v') => out.push('\x0b'),
            Some('\n') => {} // line continuation
            Some(k @ ('x' | 'u' | 'U')) => {
                let n = match k {
                    'x' => 2,
                    'u' => 4,
                    _ => 8,
                };
                let hex: String = (0..n).filter_map(|_| chars.next()).collect();
                match u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32) {
                    Some(ch) => out.push(ch),
                    None => {
                        out.push('\\');
                        out.push(k);
                        out.push_str(&hex);
                    }
                }
            }
            Some(d) if d.is_digit(8) => {
                let mut oct = d.to_string();
                while oct.len() < 3 && chars.peek().is_some_and(|c| c.is_digit(8)) {
                    oct.push(chars.next().unwrap_or('0'));
                }
                if let Some(ch) = u32::from_str_radix(&oct, 8).ok().and_then(char::from_u32) {
                    out.push(ch);
                }
            }
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
            None => out.push('\\'),
        }
    }
    out
}

pub fn binary(op: &str, l: &Py, r: &Py) -> Option<Py> {
    use Py::{Float, Int, List, Str};
    let f = |p: &Py| match p {
        Int(i) => Some(*i as f64),
        Float(x) => Some(*x),
        Py::Bool(b) => Some(f64::from(u8::from(*b))),
        _ => None,
    };
    Some(match (op, l, r) {
        ("+", Int(a), Int(b)) => Int(a.checked_add(*b)?),
        ("-", Int(a), Int(b)) => Int(a.checked_sub(*b)?),
        ("*", Int(a), Int(b)) => Int(a.checked_mul(*b)?),
        ("//", Int(a), Int(b)) if *b != 0 => Int(a.div_euclid(*b)),
        ("%", Int(a), Int(b)) if *b != 0 => Int(a.rem_euclid(*b)),
        ("**", Int(a), Int(b)) if (0..63).contains(b) => Int(a.checked_pow(*b as u32)?),
        ("+", Str(a), Str(b)) => Str(format!("{a}{b}")),
        ("*", Str(a), Int(b)) if (0..10_000).contains(b) => Str(a.repeat(*b as usize)),
        ("+", List(a), List(b)) => List(a.iter().chain(b).cloned().collect()),
        ("+" | "-" | "*" | "/" | "**", a, b) => {
            let (x, y) = (f(a)?, f(b)?);
            let v = match op {
                "+" => x + y,
                "-" => x - y,
                "*" => x * y,
                "/" if y != 0.0 => x / y,
                "**" => x.powf(y),
                _ => return None,
            };
            v.is_finite().then_some(Float(v))?
        }
        _ => return None,
    })
}

/// `int(x)`, `float(x)`, `str(x)`, `bool(x)`, `len(x)`, `min`/`max`/`abs` of constants.
pub(super) fn builtin(name: &str, args: &[Arg]) -> Option<Py> {
    if args.iter().any(|a| a.keyword.is_some()) {
        return None;
    }
    let vals: Vec<&Py> = args.iter().map(|a| &a.value).collect();
    Some(match (name, vals.as_slice()) {
        ("int", [Py::Int(i)]) => Py::Int(*i),
        ("int", [Py::Float(f)]) if f.is_finite() => Py::Int(f.trunc() as i64),
        ("int", [Py::Str(s)]) => Py::Int(s.trim().parse().ok()?),
        ("float", [Py::Int(i)]) => Py::Float(*i as f64),
        ("float", [Py::Float(f)]) => Py::Float(*f),
        ("float", [Py::Str(s)]) => Py::Float(s.trim().parse().ok()?),
        ("str", [Py::Str(s)]) => Py::Str(s.clone()),
        ("str", [Py::Int(i)]) => Py::Str(i.to_string()),
        ("bool", [v]) => Py::Bool(v.truthy()?),
        ("len", [Py::Str(s)]) => Py::Int(s.chars().count() as i64),
        ("len", [Py::List(v) | Py::Tuple(v)]) => Py::Int(v.len() as i64),
        ("abs", [Py::Int(i)]) => Py::Int(i.checked_abs()?),
        ("abs", [Py::Float(f)]) => Py::Float(f.abs()),
        ("min" | "max", vs) if vs.len() >= 2 && vs.iter().all(|v| matches!(v, Py::Int(_))) => {
            let ints = vs.iter().filter_map(|v| match v {
                Py::Int(i) => Some(*i),
                _ => None,
            });
            Py::Int(if name == "min" {
                ints.min()?
            } else {
                ints.max()?
            })
        }
        _ => return None,
    })
}
