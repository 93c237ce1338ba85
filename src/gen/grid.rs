//! Sweep points from `--set k=v`, `--grid k=v1,v2,…` (cartesian product) and
//! `--zip k=v1,v2,…` (lists walked in lockstep).

use serde_json::Value;

/// One `key = value`.
#[derive(Debug, Clone, PartialEq)]
pub struct Assignment {
    pub key: String,
    pub value: Value,
}

/// One point of a sweep: every key with one value.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Point {
    pub assignments: Vec<Assignment>,
}

impl Point {
    /// `lr=0.0002, adapter.rank=16`
    pub fn label(&self) -> String {
        self.assignments
            .iter()
            .map(|a| format!("{}={}", a.key, text(&a.value)))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// File-name form: `lr-0.0002__rank-16` (last key segment, safe characters).
    pub fn slug(&self) -> String {
        self.assignments
            .iter()
            .map(|a| {
                let key = a.key.rsplit('.').next().unwrap_or(&a.key);
                let v: String = text(&a.value)
                    .chars()
                    .map(|c| {
                        if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                            c
                        } else {
                            '_'
                        }
                    })
                    .collect();
                format!("{key}-{v}")
            })
            .collect::<Vec<_>>()
            .join("__")
    }
}

fn text(v: &Value) -> String {
    crate::translate::table::value_text(v)
}

/// A typed value from the command line: integer, float, bool, or string.
pub fn parse_value(s: &str) -> Value {
    let s = s.trim();
    if let Ok(i) = s.parse::<i64>() {
        return Value::from(i);
    }
    if let Ok(f) = s.parse::<f64>() {
        if f.is_finite() {
            return Value::from(f);
        }
    }
    match s {
        "true" => Value::Bool(true),
        "false" => Value::Bool(false),
        _ => Value::String(s.to_string()),
    }
}

fn split_key(arg: &str, flag: &str) -> Result<(String, String), String> {
    let (k, v) = arg
        .split_once('=')
        .ok_or_else(|| format!("{flag} `{arg}`: expected KEY=VALUE"))?;
    let k = k.trim();
    if k.is_empty()
        || !k
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
    {
        return Err(format!(
            "{flag} `{arg}`: `{k}` is not a valid name (letters, digits, `_`, `.`)"
        ));
    }
    Ok((k.to_string(), v.to_string()))
}

/// Expand the sweep. `--set` values apply to every point; `--grid` lists multiply; all
/// `--zip` lists must have one length and advance together.
pub fn expand(sets: &[String], grids: &[String], zips: &[String]) -> Result<Vec<Point>, String> {
    let mut fixed = Vec::new();
    for s in sets {
        let (k, v) = split_key(s, "--set")?;
        fixed.push(Assignment {
            key: k,
            value: parse_value(&v),
        });
    }
    let lists = |args: &[String], flag: &str| -> Result<Vec<(String, Vec<Value>)>, String> {
        args.iter()
            .map(|a| {
                let (k, v) = split_key(a, flag)?;
                let vals: Vec<Value> = v
                    .split(',')
                    .filter(|x| !x.trim().is_empty())
                    .map(parse_value)
                    .collect();
                if vals.is_empty() {
                    return Err(format!("{flag} `{a}`: no values"));
                }
                Ok((k, vals))
            })
            .collect()
    };
    let grid = lists(grids, "--grid")?;
    let zip = lists(zips, "--zip")?;
    let mut keys: Vec<&str> = fixed.iter().map(|a| a.key.as_str()).collect();
    keys.extend(grid.iter().map(|(k, _)| k.as_str()));
    keys.extend(zip.iter().map(|(k, _)| k.as_str()));
    for (i, k) in keys.iter().enumerate() {
        if keys[..i].contains(k) {
            return Err(format!("`{k}` is given twice"));
        }
    }
    if let Some((first_key, first)) = zip.first() {
        if let Some((k, v)) = zip.iter().find(|(_, v)| v.len() != first.len()) {
            return Err(format!(
                "--zip lists differ in length: `{first_key}` has {}, `{k}` has {}",
                first.len(),
                v.len()
            ));
        }
    }
    let mut points = vec![Point { assignments: fixed }];
    for (k, vals) in &grid {
        points = points
            .into_iter()
            .flat_map(|p| {
                vals.iter().map(move |v| {
                    let mut q = p.clone();
                    q.assignments.push(Assignment {
                        key: k.clone(),
                        value: v.clone(),
                    });
                    q
                })
            })
            .collect();
    }
    if let Some((_, first)) = zip.first() {
        let zip = &zip;
        points = points
            .into_iter()
            .flat_map(|p| {
                (0..first.len()).map(move |i| {
                    let mut q = p.clone();
                    for (k, vals) in zip {
                        q.assignments.push(Assignment {
                            key: k.clone(),
                            value: vals[i].clone(),
                        });
                    }
                    q
                })
            })
            .collect();
    }
    Ok(points)
}

#[cfg(test)]
mod tests;
