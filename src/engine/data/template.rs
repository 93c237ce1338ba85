//! Chat templates rendered the way transformers renders them, byte for byte.
//!
//! transformers (`utils/chat_template_utils.py`) compiles `tokenizer_config.json`'s template in
//! a sandboxed Jinja2 environment with `trim_blocks=True, lstrip_blocks=True`, the
//! `loopcontrols` extension, globals `raise_exception` and `strftime_now`, and a `tojson`
//! filter that is `json.dumps(x, ensure_ascii=False)` (no HTML escaping). Here: minijinja with
//! the same switches, Python string/dict methods from minijinja-contrib's `pycompat`, and
//! `{% generation %}` markers removed (they only tag assistant spans for masks).

use super::super::error::{EngineError, Result};
use minijinja::value::{Enumerator, Object, ObjectRepr};
use minijinja::{Environment, Error, ErrorKind, Value};
use std::sync::Arc;

/// One chat message, as the template sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub role: String,
    pub content: String,
}

impl Message {
    fn to_json(&self) -> serde_json::Value {
        serde_json::json!({"role": self.role, "content": self.content})
    }
}

/// A JSON object that keeps its key order (Python dicts do; minijinja's own maps are sorted
/// unless a crate-wide feature is turned on).
#[derive(Debug)]
struct OrderedMap(indexmap::IndexMap<String, Value>);

impl Object for OrderedMap {
    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        self.0.get(key.as_str()?).cloned()
    }
    fn enumerate(self: &Arc<Self>) -> Enumerator {
        Enumerator::Values(self.0.keys().map(|k| Value::from(k.as_str())).collect())
    }
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Map
    }
}

/// A dataset row as a template value, key order kept.
pub fn json_to_value(v: &serde_json::Value) -> Value {
    match v {
        serde_json::Value::Array(items) => {
            Value::from(items.iter().map(json_to_value).collect::<Vec<_>>())
        }
        serde_json::Value::Object(map) => Value::from_object(OrderedMap(
            map.iter()
                .map(|(k, v)| (k.clone(), json_to_value(v)))
                .collect(),
        )),
        other => Value::from_serialize(other),
    }
}

/// A compiled chat template.
pub struct ChatTemplate {
    env: Environment<'static>,
    bos_token: String,
    eos_token: String,
}

fn raise_exception(msg: String) -> std::result::Result<Value, Error> {
    Err(Error::new(ErrorKind::InvalidOperation, msg))
}

/// Python `json.dumps(x, ensure_ascii=False)`: `", "` and `": "` separators, keys in order.
fn tojson(value: Value) -> std::result::Result<Value, Error> {
    let json = serde_json::to_value(&value)
        .map_err(|e| Error::new(ErrorKind::InvalidOperation, e.to_string()))?;
    let mut out = String::new();
    write_json(&json, &mut out);
    Ok(Value::from_safe_string(out))
}

fn write_json(v: &serde_json::Value, out: &mut String) {
    match v {
        serde_json::Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_json(item, out);
            }
            out.push(']');
        }
        serde_json::Value::Object(map) => {
            out.push('{');
            for (i, (k, item)) in map.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                out.push_str(&serde_json::Value::String(k.clone()).to_string());
                out.push_str(": ");
                write_json(item, out);
            }
            out.push('}');
        }
        other => out.push_str(&other.to_string()),
    }
}

impl ChatTemplate {
    pub fn new(source: &str, bos_token: &str, eos_token: &str) -> Result<Self> {
        let source = source
            .replace("{% generation %}", "")
            .replace("{% endgeneration %}", "")
            .replace("{%- generation %}", "")
            .replace("{%- endgeneration %}", "");
        let mut env = Environment::new();
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function("raise_exception", raise_exception);
        env.add_function("strftime_now", |_fmt: String| -> String { String::new() });
        env.add_filter("tojson", tojson);
        env.add_template_owned("chat", source)
            .map_err(|e| EngineError::Data(format!("chat template does not compile: {e}")))?;
        Ok(ChatTemplate {
            env,
            bos_token: bos_token.to_string(),
            eos_token: eos_token.to_string(),
        })
    }

    /// `tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=…)`.
    pub fn render(&self, messages: &[Message], add_generation_prompt: bool) -> Result<String> {
        let messages: Vec<serde_json::Value> = messages.iter().map(Message::to_json).collect();
        self.render_json(&messages, add_generation_prompt)
    }

    /// Render dataset rows (`[{"role": …, "content": …, …}]`) as they are, extra keys kept.
    pub fn render_json(
        &self,
        messages: &[serde_json::Value],
        add_generation_prompt: bool,
    ) -> Result<String> {
        let tmpl = self.env.get_template("chat").expect("added in new()");
        let messages: Vec<Value> = messages.iter().map(json_to_value).collect();
        tmpl.render(minijinja::context! {
            messages => messages,
            bos_token => &self.bos_token,
            eos_token => &self.eos_token,
            add_generation_prompt => add_generation_prompt,
        })
        .map_err(|e| EngineError::Data(format!("chat template: {e:#}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msgs() -> Vec<Message> {
        vec![
            Message {
                role: "user".into(),
                content: "Hi <b>".into(),
            },
            Message {
                role: "assistant".into(),
                content: "Hello".into(),
            },
        ]
    }

    #[test]
    fn chatml_renders_like_transformers() {
        // tiny-qwen2's template (Qwen2 default system prompt when none is given)
        let t = ChatTemplate::new(
            "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}",
            "",
            "<|im_end|>",
        )
        .unwrap();
        assert_eq!(
            t.render(&msgs(), false).unwrap(),
            "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nHi <b><|im_end|>\n<|im_start|>assistant\nHello<|im_end|>\n"
        );
    }

    #[test]
    fn trim_and_lstrip_blocks_apply() {
        let t = ChatTemplate::new(
            "{% for m in messages %}\n  {% if m.role == 'user' %}\nU:{{ m.content | trim }}\n  {% endif %}\n{% endfor %}",
            "",
            "",
        )
        .unwrap();
        assert_eq!(t.render(&msgs(), false).unwrap(), "U:Hi <b>\n");
    }

    #[test]
    fn tojson_is_python_json_dumps() {
        let t = ChatTemplate::new("{{ messages[0] | tojson }}", "", "").unwrap();
        assert_eq!(
            t.render(&msgs(), false).unwrap(),
            r#"{"role": "user", "content": "Hi <b>"}"#
        );
    }

    #[test]
    fn raise_exception_is_an_error() {
        let t = ChatTemplate::new("{{ raise_exception('roles must alternate') }}", "", "").unwrap();
        let e = t.render(&msgs(), false).unwrap_err().to_string();
        assert!(e.contains("roles must alternate"), "{e}");
    }
}
