//! `tune run … key=value` command-line overrides, applied to the config text.
//!
//! Follows `torchtune/config/_utils.py::_merge_yaml_and_cli_args` (0.6.1): each override is
//! `key.path=value` (OmegaConf dotlist; the value is parsed as YAML, `None` is null, a key
//! containing `max_filename` stays a string), `top=path.to.Component` on a node with a
//! `_component_` replaces that component, and `~key.path` deletes a key (deleting a component,
//! or a key that would leave a component node empty, is refused; a map left empty goes too).
//!
//! The text is edited in place at the spans of the parsed tree, so comments and the positions
//! of untouched keys survive and diagnostics on the result still point at the user's lines.

use crate::diag::{Diagnostic, Source};
use crate::translate::node::{Entry, Node};
use crate::translate::{yaml, yaml_out};
use serde_json::Value;

/// Apply overrides in order; the first bad one is the error.
pub fn apply_overrides(text: &str, overrides: &[String]) -> Result<String, Diagnostic> {
    let mut text = text.to_string();
    for o in overrides {
        text = apply_one(&text, o)?;
    }
    Ok(text)
}

fn bad(o: &str, msg: impl Into<String>, help: &str) -> Diagnostic {
    Diagnostic::error("bad-override", format!("override `{o}`: {}", msg.into())).with_help(help)
}

fn apply_one(text: &str, o: &str) -> Result<String, Diagnostic> {
    let source = Source::new("<config>", text);
    let root = yaml::parse(&source)?;
    if let Some(path) = o.strip_prefix('~') {
        let path = path.split('=').next().unwrap_or(path);
        if path.contains("_component_") {
            return Err(bad(
                o,
                "removing components is not supported",
                "override the component instead: key=path.to.Component",
            ));
        }
        return delete(text, &root, path, o);
    }
    let parts: Vec<&str> = o.split('=').collect();
    if parts.len() != 2 || parts[0].is_empty() {
        return Err(bad(
            o,
            "must be key=value",
            "e.g. model.lora_rank=16, or ~key to delete a key",
        ));
    }
    let mut key = parts[0].to_string();
    let raw = parts[1];
    if root
        .as_map()
        .and_then(|m| m.get(&key))
        .is_some_and(|e| has_component(&e.node))
    {
        key.push_str("._component_");
    }
    let value = if raw == "None" {
        Value::Null
    } else if key.contains("max_filename") {
        Value::String(raw.to_string())
    } else {
        parse_value(raw)
    };
    set(text, &root, &key, value, o)
}

/// A dotlist value, typed as YAML types it (`16`, `1e-4`, `[q_proj, v_proj]`, `true`).
fn parse_value(raw: &str) -> Value {
    let src = Source::new("<override>", format!("v: {raw}\n"));
    match yaml::parse(&src) {
        Ok(n) => n
            .lookup("v")
            .map(|e| e.node.to_value())
            .unwrap_or(Value::Null),
        Err(_) => Value::String(raw.to_string()),
    }
}

fn has_component(node: &Node) -> bool {
    node.as_map().is_some_and(|m| m.contains_key("_component_"))
}

fn is_flow(node: &Node, text: &str) -> bool {
    matches!(
        text.as_bytes().get(node.span().start),
        Some(b'[') | Some(b'{')
    )
}

/// The last byte a node's text occupies (block collections end at their last child).
fn last_byte(node: &Node, text: &str) -> usize {
    match node {
        Node::Scalar { span, .. } => span.end,
        Node::Seq { items, span } => {
            let inner = items
                .iter()
                .map(|n| last_byte(n, text))
                .max()
                .unwrap_or(span.start);
            close(node, text, inner)
        }
        Node::Map { entries, span } => {
            let inner = entries
                .values()
                .map(|e| entry_end(e, text))
                .max()
                .unwrap_or(span.start);
            close(node, text, inner)
        }
    }
}

/// Where an entry's text ends; an empty value (`key:`) ends with its key.
fn entry_end(e: &Entry, text: &str) -> usize {
    if is_empty_scalar(&e.node) {
        e.key_span.end
    } else {
        last_byte(&e.node, text).max(e.key_span.end)
    }
}

fn is_empty_scalar(node: &Node) -> bool {
    matches!(node, Node::Scalar { span, .. } if span.start == span.end)
}

fn close(node: &Node, text: &str, inner: usize) -> usize {
    if !is_flow(node, text) {
        return inner;
    }
    let closer = if matches!(node, Node::Seq { .. }) {
        ']'
    } else {
        '}'
    };
    text[inner.min(text.len())..]
        .find(closer)
        .map_or(text.len(), |i| inner + i + 1)
}

fn line_start(text: &str, at: usize) -> usize {
    text[..at.min(text.len())].rfind('\n').map_or(0, |i| i + 1)
}

fn line_end(text: &str, at: usize) -> usize {
    text[at.min(text.len())..]
        .find('\n')
        .map_or(text.len(), |i| at + i + 1)
}

fn set(text: &str, root: &Node, key: &str, value: Value, o: &str) -> Result<String, Diagnostic> {
    // A mapping value merges key by key, as OmegaConf.merge does.
    if let Value::Object(m) = &value {
        if !m.is_empty() {
            let mut t = text.to_string();
            for (k, v) in m {
                let source = Source::new("<config>", t.clone());
                let r = yaml::parse(&source)?;
                t = set(&t, &r, &format!("{key}.{k}"), v.clone(), o)?;
            }
            return Ok(t);
        }
    }
    let segs: Vec<&str> = key.split('.').collect();
    let mut node = root;
    let mut entry: Option<&Entry> = None;
    for (i, seg) in segs.iter().enumerate() {
        let next = match node {
            Node::Map { entries, .. } => match entries.get(*seg) {
                Some(e) => {
                    entry = Some(e);
                    &e.node
                }
                None => return insert(text, node, &segs[i..], &value, o),
            },
            Node::Seq { items, .. } => {
                let idx = seg.parse::<usize>().ok().filter(|&i| i < items.len());
                let Some(idx) = idx else {
                    return Err(bad(
                        o,
                        format!("`{}` is a list without item `{seg}`", segs[..i].join(".")),
                        "index list items from 0",
                    ));
                };
                entry = None;
                &items[idx]
            }
            Node::Scalar { .. } => {
                return Err(bad(
                    o,
                    format!("`{}` is a value, not a mapping", segs[..i].join(".")),
                    "override the value itself, or delete it first with ~key",
                ));
            }
        };
        node = next;
    }
    let end = match entry {
        Some(e) => entry_end(e, text),
        None => last_byte(node, text),
    };
    let rendered = yaml_out::inline(&value);
    let (start, prefix) = match entry {
        // Right after `key:`, so a block collection becomes a one-line value.
        Some(e) => {
            let colon = text[e.key_span.end..]
                .find(':')
                .map_or(e.key_span.end, |i| e.key_span.end + i + 1);
            (colon, " ")
        }
        None => (node.span().start, ""),
    };
    let mut out = String::with_capacity(text.len());
    out.push_str(&text[..start]);
    out.push_str(prefix);
    out.push_str(&rendered);
    out.push_str(&text[end.max(start)..]);
    Ok(out)
}

fn insert(
    text: &str,
    map: &Node,
    rest: &[&str],
    value: &Value,
    o: &str,
) -> Result<String, Diagnostic> {
    let Node::Map { entries, .. } = map else {
        return Err(bad(o, "cannot add a key here", "check the key path"));
    };
    if is_flow(map, text) {
        return Err(bad(
            o,
            "cannot add a key inside a flow mapping `{…}`",
            "rewrite that mapping in block style, or edit the file",
        ));
    }
    let (indent, at) = match entries.values().next() {
        Some(first) => {
            let col = first.key_span.start - line_start(text, first.key_span.start);
            let end = line_end(text, last_byte(map, text));
            (col, end)
        }
        None => (0, text.len()),
    };
    let mut block = String::new();
    for (j, seg) in rest.iter().enumerate() {
        let pad = " ".repeat(indent + 2 * j);
        if j + 1 == rest.len() {
            block.push_str(&format!("{pad}{seg}: {}\n", yaml_out::inline(value)));
        } else {
            block.push_str(&format!("{pad}{seg}:\n"));
        }
    }
    let mut out = text[..at].to_string();
    if !out.is_empty() && !out.ends_with('\n') {
        out.push('\n');
    }
    out.push_str(&block);
    out.push_str(&text[at..]);
    Ok(out)
}

fn delete(text: &str, root: &Node, path: &str, o: &str) -> Result<String, Diagnostic> {
    let segs: Vec<&str> = path.split('.').collect();
    let mut node = root;
    let mut found: Option<(&Node, &Entry)> = None;
    for seg in &segs {
        let Some(e) = node.as_map().and_then(|m| m.get(*seg)) else {
            return Err(bad(
                o,
                format!("could not find key `{path}` to remove"),
                "check the key path",
            ));
        };
        found = Some((node, e));
        node = &e.node;
    }
    let Some((parent, e)) = found else {
        return Err(bad(o, "empty key", "give a key path after ~"));
    };
    if has_component(&e.node) {
        return Err(bad(
            o,
            "removing components is not supported",
            "override the component instead: key=path.to.Component",
        ));
    }
    if is_flow(parent, text) {
        return Err(bad(
            o,
            "cannot remove a key inside a flow mapping `{…}`",
            "edit the file",
        ));
    }
    let start = line_start(text, e.key_span.start);
    if text[start..e.key_span.start].trim() != "" {
        return Err(bad(o, "the key does not start its line", "edit the file"));
    }
    let end = line_end(text, entry_end(e, text));
    let out = format!("{}{}", &text[..start], &text[end..]);
    if segs.len() > 1 {
        // TorchTune deletes a parent the removal left empty, and so on upwards.
        return delete_emptied(&out, &segs[..segs.len() - 1].join("."));
    }
    Ok(out)
}

/// Remove a key whose value became empty (`parent:` with nothing under it), then its parent
/// if that became empty too.
fn delete_emptied(text: &str, path: &str) -> Result<String, Diagnostic> {
    let root = yaml::parse(&Source::new("<config>", text))?;
    let Some(e) = root.lookup(path) else {
        return Ok(text.to_string());
    };
    let empty = e.node.is_null() || e.node.as_map().is_some_and(|m| m.is_empty());
    if !empty {
        return Ok(text.to_string());
    }
    let start = line_start(text, e.key_span.start);
    let end = line_end(text, entry_end(e, text));
    let out = format!("{}{}", &text[..start], &text[end..]);
    match path.rsplit_once('.') {
        Some((parent, _)) => delete_emptied(&out, parent),
        None => Ok(out),
    }
}

#[cfg(test)]
mod tests {
    use crate::translate::torchtune::overrides::*;
    use serde_json::json;

    const CFG: &str = "\
# header
output_dir: /tmp/out  # where
model:
  _component_: torchtune.models.llama3_2.lora_llama3_2_1b
  lora_attn_modules: ['q_proj', 'v_proj']
  lora_rank: 8  # rank
dataset:
  _component_: torchtune.datasets.alpaca_dataset
  packed: False
optimizer:
  _component_: torch.optim.AdamW
  lr: 3e-4
checkpointer:
  checkpoint_files:
    filename_format: model-{}-of-{}.safetensors
    max_filename: '00004'
seed: null
";

    fn value(text: &str) -> Value {
        yaml::parse(&Source::new("t", text)).unwrap().to_value()
    }

    fn ov(list: &[&str]) -> Result<String, Diagnostic> {
        apply_overrides(CFG, &list.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn sets_existing_values_in_place_keeping_comments() {
        let out = ov(&["model.lora_rank=16", "optimizer.lr=1e-4", "seed=42"]).unwrap();
        assert!(out.contains("  lora_rank: 16  # rank\n"), "{out}");
        assert!(
            out.contains("# header\noutput_dir: /tmp/out  # where\n"),
            "{out}"
        );
        let v = value(&out);
        assert_eq!(v["model"]["lora_rank"], json!(16));
        assert_eq!(v["optimizer"]["lr"], json!(1e-4));
        assert_eq!(v["seed"], json!(42));
    }

    #[test]
    fn every_value_spelling() {
        let out = ov(&[
            "model.lora_attn_modules=[q_proj,k_proj,v_proj]",
            "dataset.packed=True",
            "output_dir=None",
            "checkpointer.checkpoint_files.max_filename=00008",
            "dataset.source=json",
        ])
        .unwrap();
        let v = value(&out);
        assert_eq!(
            v["model"]["lora_attn_modules"],
            json!(["q_proj", "k_proj", "v_proj"])
        );
        assert_eq!(v["dataset"]["packed"], json!(true));
        assert_eq!(v["output_dir"], Value::Null);
        assert_eq!(
            v["checkpointer"]["checkpoint_files"]["max_filename"],
            json!("00008")
        );
        assert_eq!(v["dataset"]["source"], json!("json"));
    }

    #[test]
    fn a_bare_component_key_replaces_the_component() {
        let out = ov(&["model=torchtune.models.llama3_2.lora_llama3_2_3b"]).unwrap();
        let v = value(&out);
        assert_eq!(
            v["model"]["_component_"],
            json!("torchtune.models.llama3_2.lora_llama3_2_3b")
        );
        assert_eq!(v["model"]["lora_rank"], json!(8));
    }

    #[test]
    fn new_keys_are_added_at_their_level() {
        let out = ov(&[
            "model.lora_dropout=0.05",
            "clip_grad_norm=1.0",
            "metric_logger.log_dir=/tmp/logs",
        ])
        .unwrap();
        let v = value(&out);
        assert_eq!(v["model"]["lora_dropout"], json!(0.05));
        assert_eq!(v["model"]["lora_rank"], json!(8));
        assert_eq!(v["clip_grad_norm"], json!(1.0));
        assert_eq!(v["metric_logger"]["log_dir"], json!("/tmp/logs"));
    }

    #[test]
    fn later_overrides_win() {
        let out = ov(&["model.lora_rank=16", "model.lora_rank=32"]).unwrap();
        assert_eq!(value(&out)["model"]["lora_rank"], json!(32));
    }

    #[test]
    fn deletes_keys_and_emptied_parents() {
        let out = ov(&[
            "~dataset.packed",
            "~checkpointer.checkpoint_files.max_filename",
        ])
        .unwrap();
        let v = value(&out);
        assert!(v["dataset"].get("packed").is_none());
        assert_eq!(
            v["checkpointer"]["checkpoint_files"]["filename_format"],
            json!("model-{}-of-{}.safetensors")
        );
        let out = apply_overrides(
            &out,
            &["~checkpointer.checkpoint_files.filename_format".into()],
        )
        .unwrap();
        let v = value(&out);
        assert!(
            v.get("checkpointer")
                .is_none_or(|c| c.get("checkpoint_files").is_none()),
            "{out}"
        );
    }

    #[test]
    fn refusals_name_the_override() {
        for (o, msg) in [
            ("~model._component_", "removing components"),
            ("~model", "removing components"),
            ("model.lora_rank", "must be key=value"),
            ("a=b=c", "must be key=value"),
            ("~nope.x", "could not find key"),
            ("seed.x=1", "is a value, not a mapping"),
        ] {
            let e = ov(&[o]).unwrap_err();
            assert_eq!(e.id, "bad-override");
            assert!(e.message.contains(msg), "{o}: {}", e.message);
        }
    }
}
