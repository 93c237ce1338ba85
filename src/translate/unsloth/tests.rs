//! Reader and writer tests on small scripts. The notebook fixtures are checked by the
//! integration tests against their goldens; here every table entry, default rule, refusal
//! and diagnostic gets its own case, and the writer's output is re-parsed.

use super::*;
use crate::diag::{Severity, Source};
use crate::ir::DatasetFormat;
use crate::translate::data;
use crate::translate::framework::Framework;
use crate::translate::framework::WriteOptions;
use crate::translate::reader::ReadError;
use serde_json::{json, Value};

/// A minimal notebook-shaped script; `extra` maps a call (`from_pretrained`,
/// `get_peft_model`, `SFTConfig`, `SFTTrainer`) to extra keyword lines.
fn script(extra: &[(&str, &str)]) -> String {
    let kw = |call: &str| {
        extra
            .iter()
            .filter(|(c, _)| *c == call)
            .map(|(_, l)| format!("    {l},\n"))
            .collect::<String>()
    };
    format!(
        "from unsloth import FastLanguageModel\n\
         model, tokenizer = FastLanguageModel.from_pretrained(\n    model_name = \"unsloth/Llama-3.2-1B\",\n{}\
         )\n\
         model = FastLanguageModel.get_peft_model(\n    model,\n{}\
         )\n\
         from datasets import load_dataset\n\
         dataset = load_dataset(\"roneneldan/TinyStories\", split = \"train\")\n\
         from trl import SFTTrainer, SFTConfig\n\
         trainer = SFTTrainer(\n    model = model,\n    train_dataset = dataset,\n{}\
             args = SFTConfig(\n        dataset_text_field = \"text\",\n{}    ),\n\
         )\n\
         trainer.train()\n",
        kw("from_pretrained"),
        kw("get_peft_model"),
        kw("SFTTrainer"),
        kw("SFTConfig").replace("    ", "        "),
    )
}

fn read_text(text: &str) -> crate::translate::reader::Parsed {
    let src = Source::new("t.py", text);
    read(&src).unwrap_or_else(|e| {
        panic!(
            "{}\n{text}",
            e.diagnostics()
                .iter()
                .map(|d| d.render(Some(&src)))
                .collect::<String>()
        )
    })
}

fn ir(p: &crate::translate::reader::Parsed, path: &str) -> Value {
    crate::ir::tree::get_path(&p.resolved.spec.to_value(), path)
        .cloned()
        .unwrap_or(Value::Null)
}

#[test]
fn defaults_are_unsloths_not_trls() {
    let p = read_text(&script(&[]));
    let expect = [
        ("adapter.method", json!("qlora")),
        ("quantization.base_weights", json!("nf4")),
        ("quantization.double_quant", json!(true)),
        ("adapter.rank", json!(16)),
        ("adapter.alpha", json!(16.0)),
        ("adapter.init_seed", json!(3407)),
        ("memory.gradient_checkpointing", json!("offload")),
        ("batch.micro_batch_per_device", json!(4)),
        ("batch.grad_accum_steps", json!(2)),
        ("optimizer.name", json!("adamw_8bit")),
        ("optimizer.lr", json!(5e-5)),
        ("optimizer.weight_decay", json!(0.001)),
        ("training.seed", json!(3407)),
        ("data.shuffle_seed", json!(3407)),
        ("data.sequence_len", json!(2048)),
        ("data.train_on_inputs", json!(true)),
        ("data.padding_free", json!(true)),
        ("data.add_eos", json!(false)),
        ("schedule.warmup_ratio", json!(0.1)),
        ("logging.every_n_steps", json!(1)),
        (
            "data.datasets",
            json!([{"path": "roneneldan/TinyStories", "split": "train", "format": "completion", "columns": {"text": "text"}}]),
        ),
    ];
    for (path, v) in expect {
        assert_eq!(ir(&p, path), v, "{path}");
    }
    assert!(
        p.diagnostics.iter().all(|d| d.severity < Severity::Warning),
        "{:?}",
        p.diagnostics
    );
}

/// The first allowed spelling of a closed-set IR field, from the error serde gives for a
/// value outside the set; None for an open (string) field.
fn first_spelling(path: &str) -> Option<String> {
    let mut value = read_text(&script(&[])).resolved.spec.to_value();
    crate::ir::tree::set_path(&mut value, path, json!("\u{1}"));
    let e = crate::ir::RunSpec::from_value(value).err()?;
    let expected = e.message.split_once("expected ")?.1;
    expected.split('`').nth(1).map(str::to_string)
}

/// Every `[[field]]` of fields.toml, with every spelling of its map, lands on its IR path.
#[test]
fn every_table_field_is_read() {
    let table = data::table(Framework::Unsloth);
    for f in &table.field {
        let (call, kw) = f.key.split_once('.').unwrap();
        if ![
            "from_pretrained",
            "get_peft_model",
            "SFTConfig",
            "SFTTrainer",
        ]
        .contains(&call)
        {
            continue;
        }
        let cases: Vec<(String, Value)> = if !f.map.is_empty() {
            f.map
                .iter()
                .map(|(k, v)| {
                    let lit = match k.as_str() {
                        "true" => "True".to_string(),
                        "false" => "False".to_string(),
                        k => format!("{k:?}"),
                    };
                    (lit, v.clone())
                })
                .collect()
        } else {
            use crate::translate::table::Kind;
            match f.kind {
                Kind::Int => vec![("7".into(), json!(7))],
                Kind::Float => vec![("0.125".into(), json!(0.125))],
                Kind::Bool => vec![("True".into(), json!(true)), ("False".into(), json!(false))],
                Kind::String => {
                    // A closed-set IR field (`model.attention`) takes one of its spellings.
                    let v = first_spelling(&f.ir).unwrap_or_else(|| "some/thing".into());
                    vec![(format!("{v:?}"), json!(v))]
                }
                _ => continue,
            }
        };
        for (lit, want) in cases {
            let line = format!("{kw} = {lit}");
            let mut extra: Vec<(&str, &str)> = vec![(call, line.as_str())];
            if f.key == "SFTConfig.eval_steps" {
                // counts only under eval_strategy = "steps" (read/run.rs read_eval_cadence)
                extra.push(("SFTConfig", "eval_strategy = \"steps\""));
            }
            let text = if f.key == "from_pretrained.model_name" {
                script(&[]).replace("\"unsloth/Llama-3.2-1B\"", &lit)
            } else {
                script(&extra)
            };
            let src = Source::new("t.py", text.clone());
            let p = match read(&src) {
                Ok(p) => p,
                Err(e) => panic!("{} = {lit}: {:?}", f.key, e.diagnostics()),
            };
            let got = match ir(&p, &f.ir) {
                // a flag written to run.toml only when true (`training.eval_on_start`)
                Value::Null if want == json!(false) => json!(false),
                v => v,
            };
            assert_eq!(got, want, "{} = {lit}", f.key);
        }
    }
}

#[test]
fn old_and_new_trl_styles_read_the_same() {
    let old = read_text(&script(&[
        ("SFTTrainer", "max_seq_length = 1024"),
        ("SFTTrainer", "packing = True"),
    ]));
    let new = read_text(&script(&[
        ("SFTConfig", "max_seq_length = 1024"),
        ("SFTConfig", "packing = True"),
    ]));
    for path in ["data.sequence_len", "data.packing", "data.padding_free"] {
        assert_eq!(ir(&old, path), ir(&new, path), "{path}");
    }
    assert_eq!(ir(&old, "data.sequence_len"), json!(1024));
    assert_eq!(ir(&old, "data.padding_free"), json!(false));
}

#[test]
fn truncation_is_capped_by_the_model_length() {
    // unsloth_zoo `rl.py`: the SFT length never exceeds from_pretrained's.
    let p = read_text(&script(&[
        ("from_pretrained", "max_seq_length = 512"),
        ("SFTConfig", "max_length = 4096"),
    ]));
    assert_eq!(ir(&p, "data.sequence_len"), json!(512));
    // Below 512 tokens "unsloth" checkpointing falls back to plain recomputation.
    let p = read_text(&script(&[("from_pretrained", "max_seq_length = 256")]));
    assert_eq!(ir(&p, "memory.gradient_checkpointing"), json!("on"));
}

#[test]
fn training_arguments_get_hf_defaults() {
    let text = script(&[]).replace("SFTConfig(", "TrainingArguments(");
    let p = read_text(&text);
    assert_eq!(ir(&p, "batch.micro_batch_per_device"), json!(8));
    assert_eq!(ir(&p, "training.seed"), json!(42));
    assert_eq!(ir(&p, "data.shuffle_seed"), json!(42));
    assert_eq!(ir(&p, "logging.every_n_steps"), json!(500));
    assert_eq!(ir(&p, "schedule.warmup_ratio"), json!(0.0));
    let origin = p
        .resolved
        .provenance
        .get("training.seed")
        .unwrap()
        .describe();
    assert!(origin.contains("transformers"), "{origin}");
}

#[test]
fn warmup_rules() {
    let p = read_text(&script(&[
        ("SFTConfig", "max_steps = 60"),
        ("SFTConfig", "warmup_ratio = 0.05"),
    ]));
    assert_eq!(ir(&p, "schedule.warmup_steps"), json!(3)); // ceil(0.05 × 60)
    let p = read_text(&script(&[
        ("SFTConfig", "max_steps = 60"),
        ("SFTConfig", "warmup_steps = 5"),
    ]));
    assert_eq!(ir(&p, "schedule.warmup_steps"), json!(5));
    assert_eq!(ir(&p, "schedule.warmup_ratio"), json!(0.0));
    // Unsloth's own default: 10% of the steps.
    let p = read_text(&script(&[("SFTConfig", "max_steps = 60")]));
    assert_eq!(ir(&p, "schedule.warmup_steps"), json!(6));
    // transformers ≥ 5: a warmup_steps below 1 is a ratio.
    let p = read_text(&script(&[("SFTConfig", "warmup_steps = 0.2")]));
    assert_eq!(ir(&p, "schedule.warmup_ratio"), json!(0.2));
}

#[test]
fn methods_from_loading_flags() {
    let cases = [
        ("load_in_4bit = False", "lora", "none"),
        ("load_in_8bit = True", "lora", "int8"),
        ("load_in_16bit = True", "lora", "none"),
        ("full_finetuning = True", "full", "none"),
    ];
    for (flag, method, weights) in cases {
        let p = read_text(&script(&[("from_pretrained", flag)]));
        assert_eq!(ir(&p, "adapter.method"), json!(method), "{flag}");
        assert_eq!(
            ir(&p, "quantization.base_weights"),
            json!(weights),
            "{flag}"
        );
    }
}

#[test]
fn cpt_targets_move_to_modules_to_save() {
    let p = read_text(&script(&[(
        "get_peft_model",
        "target_modules = [\"q_proj\", \"v_proj\", \"embed_tokens\", \"lm_head\"]",
    )]));
    assert_eq!(
        ir(&p, "adapter.target_modules"),
        json!(["q_proj", "v_proj"])
    );
    assert_eq!(
        ir(&p, "adapter.modules_to_save"),
        json!(["embed_tokens", "lm_head"])
    );
}

#[test]
fn fused_kernels_need_the_fast_path() {
    let p = read_text(&script(&[("get_peft_model", "lora_dropout = 0.1")]));
    assert_eq!(ir(&p, "adapter.fused_kernels"), json!(false));
    let p = read_text(&script(&[]));
    assert_eq!(ir(&p, "adapter.fused_kernels"), json!(true));
}

#[test]
fn constants_and_arithmetic_resolve() {
    let text = format!(
        "lora_rank = 32\nmax_seq_length = 3000\n{}",
        script(&[
            ("get_peft_model", "r = lora_rank"),
            ("get_peft_model", "lora_alpha = lora_rank * 2"),
            ("from_pretrained", "max_seq_length = max_seq_length"),
        ])
    );
    let p = read_text(&text);
    assert_eq!(ir(&p, "adapter.rank"), json!(32));
    assert_eq!(ir(&p, "adapter.alpha"), json!(64.0));
    assert_eq!(ir(&p, "data.sequence_len"), json!(3000));
}

#[test]
fn unknown_and_dynamic_arguments_are_named_at_their_line() {
    let text = script(&[
        ("SFTConfig", "learnig_rate = 2e-4"),
        ("SFTConfig", "per_device_train_batch_size = BATCH"),
    ]);
    let p = read_text(&text);
    let unknown = p
        .diagnostics
        .iter()
        .find(|d| d.id == "unknown-key")
        .expect("an unknown-key warning");
    assert!(
        unknown.message.contains("SFTConfig.learnig_rate"),
        "{}",
        unknown.message
    );
    assert_eq!(
        unknown.help.as_deref(),
        Some("did you mean `SFTConfig.learning_rate`?")
    );
    let line = text
        .lines()
        .position(|l| l.contains("learnig_rate"))
        .unwrap()
        + 1;
    assert_eq!(unknown.line, Some(line));
    let dynamic = p
        .diagnostics
        .iter()
        .find(|d| d.id == "dynamic-value")
        .expect("a dynamic-value warning");
    assert!(dynamic.message.contains("BATCH"), "{}", dynamic.message);
    assert_eq!(ir(&p, "batch.micro_batch_per_device"), json!(4));
}

#[test]
fn dead_code_and_ipython_are_skipped() {
    let text = format!(
        "get_ipython().system('pip install unsloth')\n{}\nif False:\n    model, tokenizer = FastLanguageModel.from_pretrained(model_name = \"lora_model\")\n    model.save_pretrained_merged(\"m\", tokenizer, save_method = \"merged_16bit\")\n",
        script(&[])
    );
    let p = read_text(&text);
    assert_eq!(ir(&p, "model.base"), json!("unsloth/Llama-3.2-1B"));
    assert!(p.resolved.spec.passthrough.is_empty());
}

#[test]
fn saves_are_kept_verbatim() {
    let text = format!(
        "{}model.save_pretrained(\"lora_model\")\nmodel.save_pretrained_gguf(\"model\", tokenizer, quantization_method = \"q4_k_m\")\n",
        script(&[])
    );
    let p = read_text(&text);
    let pt = &p.resolved.spec.passthrough;
    assert_eq!(
        pt["unsloth.save_pretrained.save_directory"],
        json!("lora_model")
    );
    assert_eq!(
        pt["unsloth.save_pretrained_gguf.quantization_method"],
        json!("q4_k_m")
    );
    let out = write(&p.resolved, "unsloth", &WriteOptions::default());
    assert!(
        out.text.contains(
            "model.save_pretrained_gguf(\"model\", tokenizer, quantization_method = \"q4_k_m\")"
        ),
        "{}",
        out.text
    );
}

#[test]
fn out_of_scope_scripts_are_refused() {
    let cases = [
        ("from trl import GRPOConfig, GRPOTrainer\ntrainer = GRPOTrainer(model = model, args = GRPOConfig())\n", "GRPO"),
        ("from unsloth import FastVisionModel\nmodel, tok = FastVisionModel.from_pretrained(\"unsloth/Qwen2.5-VL-7B-Instruct\")\n", "vision"),
        ("from snac import SNAC\nsnac_model = SNAC.from_pretrained(\"hubertsiuzdak/snac_24khz\")\n", "speech"),
        ("from trl import DPOTrainer\ntrainer = DPOTrainer(model = model)\n", "DPO"),
    ];
    for (code, what) in cases {
        let text = format!("{}{code}", script(&[]));
        match read(&Source::new("t.py", text)) {
            Err(ReadError::NotSupported(d)) => {
                assert_eq!(d.id, "not-supported");
                assert!(d.message.contains(what), "{what}: {}", d.message);
                assert!(d.line.is_some());
            }
            other => panic!(
                "{what}: expected not-supported, got {:?}",
                other.map(|p| p.diagnostics)
            ),
        }
    }
}

#[test]
fn syntax_errors_are_fatal_with_a_position() {
    let text = "from unsloth import FastLanguageModel\nmodel = FastLanguageModel.from_pretrained(\n    model_name = \"x\"\n    max_seq_length = 2048,\n)\n";
    match read(&Source::new("bad.py", text)) {
        Err(ReadError::Syntax(d)) => {
            assert_eq!(d.file, "bad.py");
            assert!(d.line.is_some() && d.column.is_some(), "{d:?}");
            assert!(d.help.is_some());
        }
        other => panic!(
            "expected a syntax error, got {:?}",
            other.map(|p| p.diagnostics)
        ),
    }
}

#[test]
fn responses_only_markers_come_from_the_template() {
    let text = format!(
        "{}\nfrom unsloth.chat_templates import get_chat_template, train_on_responses_only\ntokenizer = get_chat_template(tokenizer, chat_template = \"chatml\")\ntrainer = train_on_responses_only(trainer)\ntrainer.train()\n",
        script(&[]).replace("trainer.train()\n", "")
    );
    let p = read_text(&text);
    assert_eq!(ir(&p, "data.train_on_inputs"), json!(false));
    assert_eq!(ir(&p, "data.drop_fully_masked"), json!(true));
    assert_eq!(ir(&p, "model.chat_template"), json!("chatml"));
    assert_eq!(
        ir(&p, "data.datasets.0.response_markers"),
        json!({"instruction": "<|im_start|>user\n", "response": "<|im_start|>assistant\n"})
    );
}

#[test]
fn a_script_without_a_trainer_is_invalid() {
    let text = "from unsloth import FastLanguageModel\nmodel, tokenizer = FastLanguageModel.from_pretrained(model_name = \"unsloth/Llama-3.2-1B\")\nmodel = FastLanguageModel.get_peft_model(model)\n";
    match read(&Source::new("t.py", text)) {
        Err(ReadError::Invalid(ds)) => {
            assert!(
                ds.iter().any(|d| d.message.contains("SFTTrainer")),
                "{ds:?}"
            );
        }
        other => panic!("expected invalid, got {:?}", other.map(|p| p.diagnostics)),
    }
}

// ---------------------------------------------------------------- writer

/// The written script is valid Python: tree-sitter finds no ERROR node and, where python3 is
/// installed, `py_compile` accepts it.
fn assert_valid_python(text: &str, what: &str) {
    let mut parser = tree_sitter::Parser::new();
    parser
        .set_language(&tree_sitter_python::LANGUAGE.into())
        .unwrap();
    let tree = parser.parse(text, None).unwrap();
    assert!(
        !tree.root_node().has_error(),
        "{what}: tree-sitter error in\n{text}"
    );
    let has_python = std::process::Command::new("python3")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if has_python {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("train.py");
        std::fs::write(&f, text).unwrap();
        let out = std::process::Command::new("python3")
            .args(["-m", "py_compile"])
            .arg(&f)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{what}: py_compile failed: {}\n{text}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

fn fixture_files(dir: &str, exts: &[&str]) -> Vec<std::path::PathBuf> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
    let mut v: Vec<_> = std::fs::read_dir(root)
        .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    v.retain(|p: &std::path::PathBuf| {
        p.extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| exts.contains(&e))
    });
    v.sort();
    v
}

#[test]
fn every_written_script_is_valid_python() {
    let sets = [
        (Framework::Unsloth, "fixtures/configs/unsloth", &["py"][..]),
        (
            Framework::Axolotl,
            "fixtures/configs/axolotl",
            &["yaml", "yml"][..],
        ),
        (
            Framework::Torchtune,
            "fixtures/configs/torchtune",
            &["yaml", "yml"][..],
        ),
    ];
    let mut n = 0;
    for (fw, dir, exts) in sets {
        for path in fixture_files(dir, exts) {
            let text = std::fs::read_to_string(&path).unwrap();
            let src = Source::new(path.display().to_string(), text);
            let Ok(parsed) = crate::translate::read(fw, &src) else {
                continue; // another framework's reader in progress; its own tests say why
            };
            let out = write(&parsed.resolved, fw.name(), &WriteOptions::default());
            assert_valid_python(&out.text, &path.display().to_string());
            // And it reads back as an Unsloth script without errors or unknown keys.
            let back = read(&Source::new("written.py", out.text.clone())).unwrap_or_else(|e| {
                panic!("{}: {:?}\n{}", path.display(), e.diagnostics(), out.text)
            });
            let unknown: Vec<_> = back
                .diagnostics
                .iter()
                .filter(|d| d.id == "unknown-key")
                .map(|d| d.message.clone())
                .collect();
            assert!(unknown.is_empty(), "{}: {unknown:?}", path.display());
            n += 1;
        }
    }
    assert!(n >= 12, "only {n} scripts written");
}

#[test]
fn python_literals() {
    use write::literals::{py, py_num, py_str, py_triple};
    assert_eq!(py_num(2e-4), "2e-4");
    assert_eq!(py_num(0.001), "0.001");
    assert_eq!(py_num(1.0), "1.0");
    assert_eq!(py_str("a\"b\\c\nd"), "\"a\\\"b\\\\c\\nd\"");
    assert_eq!(py_triple("x\n\"\"\"y"), "\"\"\"x\n\\\"\\\"\\\"y\"\"\"");
    assert_eq!(
        py(&json!({"a": [1, true, null]})),
        "{\"a\": [1, True, None]}"
    );
    // Each literal evaluates back to itself.
    for s in [
        "plain",
        "tab\tand\nnewline",
        "quote\" and \\ backslash",
        "uni ✓",
        "{braces}",
    ] {
        let m = python::parse(&Source::new(
            "t.py",
            format!("x = {}\ny = {}\n", py_str(s), py_triple(s)),
        ))
        .unwrap();
        assert_eq!(m.env["x"].value, python::Py::Str(s.into()));
        assert_eq!(m.env["y"].value, python::Py::Str(s.into()));
    }
}

#[test]
fn alpaca_styles_round_trip_through_the_script() {
    // Axolotl's two-variant Alpaca prompt and Unsloth's always-input one stay distinct.
    for style in ["alpaca", "alpaca:chatml", "alpaca:chat", "alpaca:phi"] {
        let text = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("fixtures/configs/unsloth/llama3_1-8b-alpaca-qlora.py"),
        )
        .unwrap();
        let mut p = read_text(&text);
        let ds = &mut p.resolved.spec.data.datasets[0];
        ds.format = DatasetFormat::Alpaca;
        ds.prompt_style = style.into();
        ds.columns.clear();
        ds.templates.clear();
        let out = write(&p.resolved, "axolotl", &WriteOptions::default());
        assert_valid_python(&out.text, style);
        let back = read_text(&out.text);
        let d = &back.resolved.spec.data.datasets[0];
        assert_eq!(
            (d.format.as_str(), d.prompt_style.as_str()),
            ("alpaca", style),
            "{}",
            out.text
        );
    }
}

/// Random mutations of the fixtures never make the reader panic.
#[test]
fn mutated_scripts_never_panic() {
    let files = fixture_files("fixtures/configs/unsloth", &["py"]);
    assert!(!files.is_empty());
    let texts: Vec<String> = files
        .iter()
        .map(|f| std::fs::read_to_string(f).unwrap())
        .collect();
    let tokens = [
        "(",
        ")",
        "[",
        "]",
        "{",
        "}",
        ",",
        "=",
        "\"",
        "'",
        "\"\"\"",
        ":",
        "\n",
        "    ",
        "None",
        "True",
        "-1",
        "1e309",
        "0x",
        "**",
        "lambda x:",
        "if False:",
        "f\"{",
        "\\",
        "#",
        "é",
        "\u{0}",
        "9999999999999999999999",
        "train_on_responses_only(trainer)",
        "GRPOTrainer(",
        "load_dataset(",
        ".map(",
        "concatenate_datasets([",
    ];
    // A small deterministic generator (xorshift) so failures reproduce.
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for i in 0..2000 {
        let base = &texts[i % texts.len()];
        let mut bytes: Vec<char> = base.chars().collect();
        let edits = 1 + (next() % 4) as usize;
        for _ in 0..edits {
            if bytes.is_empty() {
                break;
            }
            let at = (next() as usize) % bytes.len();
            match next() % 4 {
                0 => {
                    let len = ((next() % 40) as usize).min(bytes.len() - at);
                    bytes.drain(at..at + len);
                }
                1 => {
                    let t = tokens[(next() as usize) % tokens.len()];
                    for (k, c) in t.chars().enumerate() {
                        bytes.insert(at + k, c);
                    }
                }
                2 => {
                    let from = (next() as usize) % bytes.len();
                    let len = ((next() % 60) as usize).min(bytes.len() - from);
                    let chunk: Vec<char> = bytes[from..from + len].to_vec();
                    for (k, c) in chunk.into_iter().enumerate() {
                        bytes.insert(at + k, c);
                    }
                }
                _ => bytes.truncate(at),
            }
        }
        let text: String = bytes.into_iter().collect();
        let src = Source::new("fuzz.py", text.clone());
        let result = std::panic::catch_unwind(|| {
            if let Ok(p) = read(&src) {
                let _ = write(&p.resolved, "unsloth", &WriteOptions::default());
            }
        });
        assert!(result.is_ok(), "mutation {i} panicked:\n{text}");
    }
}

#[test]
fn eval_steps_count_only_under_the_steps_strategy() {
    let every = |lines: &[&str]| {
        let extra: Vec<(&str, &str)> = lines.iter().map(|l| ("SFTConfig", *l)).collect();
        read_text(&script(&extra))
            .resolved
            .spec
            .training
            .eval_every_n_steps
    };
    assert_eq!(every(&["eval_steps = 10"]), 0);
    assert_eq!(every(&["eval_steps = 10", "eval_strategy = \"steps\""]), 10);
    assert_eq!(
        every(&["logging_steps = 5", "eval_strategy = \"steps\""]),
        5
    );
}
