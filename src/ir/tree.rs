//! Flat views of a spec: every leaf as `dotted.path → value`.
//!
//! Reports, round-trip checks and the generic field tables all work on this view, so one
//! mechanism serves every section of the IR. Objects recurse; arrays of objects recurse
//! with the index as a path segment (`data.datasets.0.path`); arrays of scalars are leaves.

use indexmap::IndexMap;
use serde_json::{Map, Value};

pub type Flat = IndexMap<String, Value>;

/// Flatten a JSON tree into its leaves.
pub fn flatten(value: &Value) -> Flat {
    let mut out = Flat::new();
    walk("", value, &mut out);
    out
}

fn walk(prefix: &str, value: &Value, out: &mut Flat) {
    let join = |k: &str| {
        if prefix.is_empty() {
            k.to_string()
        } else {
            format!("{prefix}.{k}")
        }
    };
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (k, v) in map {
                walk(&join(k), v, out);
            }
        }
        Value::Array(items) if !items.is_empty() && items.iter().all(Value::is_object) => {
            for (i, v) in items.iter().enumerate() {
                walk(&join(&i.to_string()), v, out);
            }
        }
        _ => {
            out.insert(prefix.to_string(), value.clone());
        }
    }
}

/// Set `path` in a JSON tree, creating objects (and arrays for numeric segments) on the way.
pub fn set_path(root: &mut Value, path: &str, value: Value) {
    let mut node = root;
    let segments: Vec<&str> = path.split('.').collect();
    for (i, seg) in segments.iter().enumerate() {
        let last = i + 1 == segments.len();
        let next_is_index = segments
            .get(i + 1)
            .is_some_and(|s| s.parse::<usize>().is_ok());
        if let Ok(idx) = seg.parse::<usize>() {
            if !node.is_array() {
                *node = Value::Array(Vec::new());
            }
            let arr = node.as_array_mut().expect("just made an array");
            while arr.len() <= idx {
                arr.push(Value::Object(Map::new()));
            }
            if last {
                arr[idx] = value;
                return;
            }
            node = &mut arr[idx];
        } else {
            if !node.is_object() {
                *node = Value::Object(Map::new());
            }
            let map = node.as_object_mut().expect("just made an object");
            if last {
                map.insert(seg.to_string(), value);
                return;
            }
            let fresh = if next_is_index {
                Value::Array(Vec::new())
            } else {
                Value::Object(Map::new())
            };
            node = map.entry(seg.to_string()).or_insert(fresh);
        }
    }
}

/// Read `path` from a JSON tree.
pub fn get_path<'a>(root: &'a Value, path: &str) -> Option<&'a Value> {
    let mut node = root;
    for seg in path.split('.') {
        node = match seg.parse::<usize>() {
            Ok(i) if node.is_array() => node.get(i)?,
            _ => node.get(seg)?,
        };
    }
    Some(node)
}

/// Rebuild a tree from leaves.
pub fn unflatten(flat: &Flat) -> Value {
    let mut root = Value::Object(Map::new());
    for (k, v) in flat {
        set_path(&mut root, k, v.clone());
    }
    root
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn flatten_and_back() {
        let v = json!({"a": {"b": 1, "c": [1, 2]}, "d": [{"x": "y"}, {"x": "z"}], "e": {}});
        let flat = flatten(&v);
        assert_eq!(
            flat.keys().collect::<Vec<_>>(),
            ["a.b", "a.c", "d.0.x", "d.1.x", "e"]
        );
        assert_eq!(unflatten(&flat), v);
        assert_eq!(get_path(&v, "d.1.x"), Some(&json!("z")));
    }
}
