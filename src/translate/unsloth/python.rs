//! Python front end: parse a script with tree-sitter and evaluate what can be known without
//! running it. Nothing is executed.
//!
//! The walker goes through the module's statements in order, keeps an environment of
//! constants (`max_seq_length = 2048`, `lora_alpha = lora_rank * 2`, the Alpaca prompt
//! string), and records every call with its arguments evaluated at that point. A call's
//! result is a handle ([`Py::Call`]) to its record, so `trainer = SFTTrainer(args =
//! SFTConfig(...))` and `dataset.map(f)` link calls together without knowing any library.
//!
//! Left out on purpose: `if False:` blocks and `elif`/`else` branches of constant conditions
//! (dead code), class bodies, loops beyond one pass, and anything that would need real
//! values (a function's result, an attribute of an object). Such expressions evaluate to
//! [`Py::Unknown`] with their source text, and the caller decides what that means.

use crate::diag::{Diagnostic, Source, Span};
use std::collections::HashMap;
use tree_sitter::{Node as TsNode, Parser, Tree};

mod expr;
mod ops;
mod value;
mod walker;

pub use ops::unescape;
pub use value::{Arg, Binding, Call, Module, Py};
use walker::Walker;

/// Blank out IPython escapes (`!pip install …`, `%%capture`) so the rest parses; byte offsets
/// stay the same.
fn blank_ipython(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        let trimmed = line.trim_start();
        if trimmed.starts_with('!') || trimmed.starts_with('%') {
            let indent = line.len() - trimmed.len();
            out.push_str(&line[..indent]);
            out.push('#');
            out.push_str(&trimmed[1..]);
        } else {
            out.push_str(line);
        }
    }
    out
}

/// Parse a script. Syntax errors (tree-sitter ERROR or MISSING nodes) are fatal and point at
/// the first one.
pub fn parse(source: &Source) -> Result<Module, Diagnostic> {
    let text = blank_ipython(&source.text);
    let mut parser = Parser::new();
    parser
        .set_language(&tree_sitter_python::LANGUAGE.into())
        .expect("the bundled Python grammar matches tree-sitter");
    let tree = parser.parse(&text, None).ok_or_else(|| {
        Diagnostic::error("syntax", "the Python parser gave up on this file").locate(source)
    })?;
    if tree.root_node().has_error() {
        return Err(syntax_error(&tree, &text).locate(source));
    }
    let mut walker = Walker {
        text: &text,
        tree: &tree,
        env: HashMap::new(),
        calls: Vec::new(),
        functions: HashMap::new(),
        attr_assigns: Vec::new(),
        uses: Vec::new(),
        depth: 0,
        walked: Vec::new(),
    };
    walker.block(tree.root_node());
    let Walker {
        env,
        calls,
        functions,
        attr_assigns,
        uses,
        ..
    } = walker;
    Ok(Module {
        text,
        tree,
        env,
        calls,
        functions,
        attr_assigns,
        uses,
    })
}

fn syntax_error(tree: &Tree, text: &str) -> Diagnostic {
    let mut cursor = tree.walk();
    let mut found: Option<TsNode> = None;
    'outer: loop {
        let n = cursor.node();
        if n.is_error() || n.is_missing() {
            found = Some(n);
            break;
        }
        if n.has_error() && cursor.goto_first_child() {
            continue;
        }
        loop {
            if cursor.goto_next_sibling() {
                break;
            }
            if !cursor.goto_parent() {
                break 'outer;
            }
        }
    }
    let Some(n) = found else {
        return Diagnostic::error("syntax", "invalid Python syntax")
            .with_help("run `python3 -m py_compile` on the script to see the error");
    };
    let span = Span::new(n.start_byte(), n.end_byte());
    if n.is_missing() {
        return Diagnostic::error("syntax", format!("invalid Python: missing `{}`", n.kind()))
            .at(Some(span))
            .with_help(format!("add `{}` here", n.kind()));
    }
    let snippet: String = text
        .get(n.start_byte()..n.end_byte())
        .unwrap_or("")
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim()
        .chars()
        .take(40)
        .collect();
    // Point at the first line of the error only.
    let first_line_end = text[n.start_byte()..]
        .find('\n')
        .map_or(n.end_byte(), |i| (n.start_byte() + i).min(n.end_byte()));
    Diagnostic::error(
        "syntax",
        format!("invalid Python: cannot parse `{snippet}`"),
    )
    .at(Some(Span::new(n.start_byte(), first_line_end.max(n.start_byte()))))
    .with_help("fix the statement (check brackets, quotes and indentation); tunebridge reads the script without running it")
}

#[cfg(test)]
mod tests {
    use crate::translate::unsloth::python::*;

    fn module(text: &str) -> Module {
        parse(&Source::new("t.py", text)).unwrap_or_else(|d| panic!("{}", d.render(None)))
    }

    fn val(m: &Module, name: &str) -> Py {
        m.env[name].value.clone()
    }

    #[test]
    fn evaluates_notebook_constants() {
        let m = module(
            "max_seq_length = 2048 # any\ndtype = None\nload_in_4bit = True\nlora_rank = 32\nalpha = lora_rank * 2\nlr = 2e-4\nneg = -1\nname = \"unsloth/\" + \"Qwen3-4B\"\nf = f\"{name}-x\"\nraw = r'a\\n'\nesc = 'a\\nb'\nmodel_list = [\"a\", \"b\",]\nsecond = model_list[1]\nd = {'a': 1}\nx = d['a']\nflag = not load_in_4bit\n",
        );
        assert_eq!(val(&m, "max_seq_length"), Py::Int(2048));
        assert_eq!(val(&m, "dtype"), Py::None);
        assert_eq!(val(&m, "alpha"), Py::Int(64));
        assert_eq!(val(&m, "lr"), Py::Float(2e-4));
        assert_eq!(val(&m, "neg"), Py::Int(-1));
        assert_eq!(val(&m, "name"), Py::Str("unsloth/Qwen3-4B".into()));
        assert_eq!(val(&m, "f"), Py::Str("unsloth/Qwen3-4B-x".into()));
        assert_eq!(val(&m, "raw"), Py::Str("a\\n".into()));
        assert_eq!(val(&m, "esc"), Py::Str("a\nb".into()));
        assert_eq!(val(&m, "second"), Py::Str("b".into()));
        assert_eq!(val(&m, "x"), Py::Int(1));
        assert_eq!(val(&m, "flag"), Py::Bool(false));
    }

    #[test]
    fn triple_quoted_prompt_keeps_its_lines() {
        let m = module("p = \"\"\"Below.\n\n### Instruction:\n{}\n\n### Response:\n{}\"\"\"\n");
        assert_eq!(
            val(&m, "p"),
            Py::Str("Below.\n\n### Instruction:\n{}\n\n### Response:\n{}".into())
        );
    }

    #[test]
    fn skips_dead_code_and_follows_calls() {
        let m = module(
            "if False:\n    model.save_pretrained_merged('m', tokenizer)\nif False: x = 1\nelse: x = 2\nmodel, tokenizer = FastLanguageModel.from_pretrained(model_name = 'm', max_seq_length = 1024)\ntrainer = SFTTrainer(model = model, args = SFTConfig(seed = 1))\ntrainer.train()\n",
        );
        assert_eq!(val(&m, "x"), Py::Int(2));
        let names: Vec<&str> = m.calls.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(
            names,
            ["from_pretrained", "SFTConfig", "SFTTrainer", "train"]
        );
        let trainer = &m.calls[2];
        assert_eq!(trainer.kwarg("args").map(|a| &a.value), Some(&Py::Call(1)));
        assert_eq!(m.calls[3].receiver, Some(Py::Call(2)));
        assert_eq!(m.calls[0].receiver_text, "FastLanguageModel");
        assert_eq!(
            val(&m, "tokenizer"),
            Py::Item(Box::new(Py::Call(0)), Box::new(Py::Int(1)))
        );
    }

    #[test]
    fn ipython_escapes_are_skipped() {
        let m = module(
            "!pip install unsloth\n%%capture\nx = 1\nget_ipython().system('pip install x')\n",
        );
        assert_eq!(val(&m, "x"), Py::Int(1));
    }

    #[test]
    fn main_function_bodies_are_walked() {
        let m = module("def main():\n    trainer = SFTTrainer(args = SFTConfig())\n    trainer.train()\n\nif __name__ == '__main__':\n    main()\n");
        assert!(m.calls.iter().any(|c| c.name == "SFTTrainer"));
    }

    #[test]
    fn syntax_errors_point_at_the_culprit() {
        let src = Source::new("bad.py", "x = 1\ny = SFTConfig(lr = 2e-4,\nz = 3\n");
        let err = parse(&src).err().expect("a syntax error");
        assert_eq!(err.id, "syntax");
        assert!(err.line.is_some(), "{err:?}");
        let src = Source::new("bad.py", "x = = 2\n");
        let err = parse(&src).err().expect("a syntax error");
        assert_eq!(
            (err.line, err.column),
            (Some(1), Some(5)),
            "{}",
            err.render(Some(&src))
        );
        assert!(err.message.contains('='), "{}", err.message);
    }
}
