//! Unit tests of the TorchTune translator: reading each component, writing it back, and the
//! round trip TorchTune → IR → TorchTune.

use super::*;
use crate::diag::{Severity, Source};
use crate::ir::{
    AcrossRanks, BaseWeights, DatasetFormat, Dtype, LossKind, LrReported, Method, ScheduleKind,
    Strategy,
};
use crate::translate::framework::WriteOptions;
use crate::translate::report::Status;
use serde_json::{json, Value};

fn parse(text: &str) -> crate::translate::reader::Parsed {
    let src = Source::new("t.yaml", text);
    match read(&src) {
        Ok(p) => p,
        Err(e) => panic!(
            "{}",
            e.diagnostics()
                .iter()
                .map(|d| d.render(Some(&src)))
                .collect::<String>()
        ),
    }
}

const LORA: &str = "\
# tune run lora_finetune_single_device --config llama3_2/1B_lora_single_device
output_dir: /tmp/llama_3_2_1b/lora_single_device
model:
  _component_: torchtune.models.llama3_2.lora_llama3_2_1b
  lora_attn_modules: ['q_proj', 'v_proj', 'output_proj']
  apply_lora_to_mlp: True
  lora_rank: 64
  lora_alpha: 128
  lora_dropout: 0.0
tokenizer:
  _component_: torchtune.models.llama3.llama3_tokenizer
  path: /tmp/Llama-3.2-1B-Instruct/original/tokenizer.model
  max_seq_len: null
checkpointer:
  _component_: torchtune.training.FullModelHFCheckpointer
  checkpoint_dir: /tmp/Llama-3.2-1B-Instruct/
  checkpoint_files: [
     model.safetensors
  ]
  recipe_checkpoint: null
  output_dir: ${output_dir}
  model_type: LLAMA3_2
resume_from_checkpoint: False
save_adapter_weights_only: False
dataset:
  _component_: torchtune.datasets.alpaca_cleaned_dataset
  packed: False
seed: null
shuffle: True
batch_size: 4
optimizer:
  _component_: torch.optim.AdamW
  fused: True
  weight_decay: 0.01
  lr: 3e-4
lr_scheduler:
  _component_: torchtune.training.lr_schedulers.get_cosine_schedule_with_warmup
  num_warmup_steps: 100
loss:
  _component_: torchtune.modules.loss.CEWithChunkedOutputLoss
epochs: 1
max_steps_per_epoch: null
gradient_accumulation_steps: 8
compile: False
metric_logger:
  _component_: torchtune.training.metric_logging.DiskLogger
  log_dir: ${output_dir}/logs
log_every_n_steps: 1
log_peak_memory_stats: True
device: cuda
dtype: bf16
enable_activation_checkpointing: False
enable_activation_offloading: False
profiler:
  _component_: torchtune.training.setup_torch_profiler
  enabled: False
";

#[test]
fn reads_a_shipped_lora_config() {
    let p = parse(LORA);
    let s = &p.resolved.spec;
    assert_eq!(s.model.base, "/tmp/Llama-3.2-1B-Instruct");
    assert_eq!(s.model.tokenizer, "/tmp/Llama-3.2-1B-Instruct");
    assert_eq!(
        (s.model.family.as_str(), s.model.size.as_str()),
        ("llama3_2", "1B")
    );
    assert_eq!(s.model.chat_template, "llama3");
    assert_eq!(s.adapter.method, Method::Lora);
    assert_eq!(
        s.adapter.target_modules,
        [
            "q_proj",
            "v_proj",
            "o_proj",
            "gate_proj",
            "up_proj",
            "down_proj"
        ]
    );
    assert!(!s.adapter.target_all_linear);
    assert_eq!((s.adapter.rank, s.adapter.alpha), (64, 128.0));
    assert_eq!(s.adapter.weight_dtype, Dtype::Bf16);
    assert_eq!(s.data.sequence_len, 131072);
    assert_eq!(s.data.datasets[0].path, "yahma/alpaca-cleaned");
    assert_eq!(s.data.datasets[0].prompt_style, "alpaca_chat_template");
    assert!(
        s.data.train_on_inputs,
        "alpaca_dataset trains the prompt by default"
    );
    assert_eq!(s.data.shuffle_seed, 0);
    assert_eq!(s.optimizer.name, "adamw_fused");
    assert_eq!(s.optimizer.lr, 3e-4);
    assert_eq!(
        (s.schedule.kind.as_str(), s.schedule.warmup_steps),
        ("cosine", 100)
    );
    assert_eq!(s.loss.kind, LossKind::ChunkedCrossEntropy);
    assert_eq!(s.loss.across_ranks, AcrossRanks::GlobalTokens);
    assert_eq!(
        (
            s.precision.compute_dtype.as_str(),
            s.precision.mode.as_str()
        ),
        ("bf16", "pure")
    );
    assert_eq!(s.logging.lr_reported, LrReported::Next);
    assert_eq!(s.batch.global_batch, 32);
    assert_eq!(s.parallel.strategy, Strategy::Single);
    assert!(p.diagnostics.iter().any(|d| d.id == "random-seed"));
    assert!(
        !p.diagnostics.iter().any(|d| d.id == "unknown-key"),
        "{:?}",
        p.diagnostics.iter().map(|d| &d.message).collect::<Vec<_>>()
    );
    assert_eq!(s.passthrough.get("torchtune.device"), Some(&json!("cuda")));
}

#[test]
fn writes_it_back_unchanged_in_meaning() {
    let p = parse(LORA);
    let w = write(&p.resolved, "torchtune", &WriteOptions::default());
    let back = parse(&w.text);
    assert_eq!(back.resolved.spec, p.resolved.spec, "{}", w.text);
    assert_eq!(
        w.command,
        "tune run lora_finetune_single_device --config torchtune.yaml"
    );
    assert!(
        w.text
            .contains("_component_: torchtune.models.llama3_2.lora_llama3_2_1b"),
        "{}",
        w.text
    );
    assert!(w.text.contains("seed: null"), "{}", w.text);
    assert!(w.text.contains("max_seq_len: null"), "{}", w.text);
    let lossy: Vec<_> = w.report.lossy().map(|e| (&e.field, &e.note)).collect();
    assert!(lossy.is_empty(), "{lossy:?}");
}

#[test]
fn distributed_launch_comes_from_the_header_command() {
    let text = LORA.replace(
        "# tune run lora_finetune_single_device --config llama3_2/1B_lora_single_device",
        "#   tune run --nproc_per_node 4 lora_finetune_distributed --config llama3_2/1B_lora",
    );
    let p = parse(&text);
    let s = &p.resolved.spec;
    assert_eq!((s.batch.devices, s.batch.global_batch), (4, 128));
    assert_eq!(s.parallel.strategy, Strategy::Fsdp2);
    let w = write(&p.resolved, "torchtune", &WriteOptions::default());
    assert_eq!(
        w.command,
        "tune run --nproc_per_node 4 lora_finetune_distributed --config torchtune.yaml"
    );
    assert_eq!(parse(&w.text).resolved.spec, p.resolved.spec);
}

#[test]
fn qlora_and_full_builders() {
    let q = parse(&LORA.replace("lora_llama3_2_1b", "qlora_llama3_2_1b"));
    assert_eq!(q.resolved.spec.adapter.method, Method::Qlora);
    assert_eq!(q.resolved.spec.quantization.base_weights, BaseWeights::Nf4);
    let qb = parse(&LORA.replace(
        "  lora_dropout: 0.0\n",
        "  lora_dropout: 0.0\n  quantize_base: True\n",
    ));
    assert_eq!(qb.resolved.spec.adapter.method, Method::Qlora);
    let full_text = LORA
        .replace("lora_llama3_2_1b", "llama3_2_1b")
        .replace("  lora_attn_modules: ['q_proj', 'v_proj', 'output_proj']\n  apply_lora_to_mlp: True\n  lora_rank: 64\n  lora_alpha: 128\n  lora_dropout: 0.0\n", "");
    let f = parse(&full_text);
    assert_eq!(f.resolved.spec.adapter.method, Method::Full);
    let w = write(&f.resolved, "torchtune", &WriteOptions::default());
    assert!(
        w.command.contains("full_finetune_single_device"),
        "{}",
        w.command
    );
    assert_eq!(parse(&w.text).resolved.spec, f.resolved.spec);
}

#[test]
fn lora_arguments_on_a_full_builder_are_errors() {
    let src = Source::new("t.yaml", LORA.replace("lora_llama3_2_1b", "llama3_2_1b"));
    let e = read(&src).unwrap_err();
    let ds = e.diagnostics();
    assert!(
        ds.iter().any(|d| d.id == "conflict" && d.line == Some(5)),
        "{ds:?}"
    );
}

#[test]
fn unknown_builder_gets_a_suggestion() {
    let src = Source::new(
        "t.yaml",
        LORA.replace("lora_llama3_2_1b", "lora_llama3_2_1bb"),
    );
    let ds = read(&src).unwrap_err().diagnostics();
    let d = ds.iter().find(|d| d.id == "unknown-component").unwrap();
    assert_eq!(d.help.as_deref(), Some("did you mean `lora_llama3_2_1b`?"));
    assert_eq!((d.line, d.column), (Some(4), Some(16)));
}

#[test]
fn unknown_builder_argument_is_an_error_at_the_key() {
    let src = Source::new("t.yaml", LORA.replace("lora_rank: 64", "lora_rnak: 64"));
    let ds = read(&src).unwrap_err().diagnostics();
    let d = ds.iter().find(|d| d.id == "unknown-key").unwrap();
    assert_eq!(d.line, Some(7));
    assert_eq!(d.help.as_deref(), Some("did you mean `lora_rank`?"));
}

#[test]
fn missing_required_keys_are_named() {
    let src = Source::new(
        "t.yaml",
        LORA.replace("batch_size: 4\n", "")
            .replace("dtype: bf16\n", ""),
    );
    let ds = read(&src).unwrap_err().diagnostics();
    for key in ["batch_size", "dtype"] {
        assert!(
            ds.iter()
                .any(|d| d.id == "missing-key" && d.message.contains(&format!("`{key}`"))),
            "{key}: {ds:?}"
        );
    }
}

#[test]
fn fp16_is_refused_as_torchtune_does() {
    let src = Source::new("t.yaml", LORA.replace("dtype: bf16", "dtype: fp16"));
    let ds = read(&src).unwrap_err().diagnostics();
    assert!(
        ds.iter()
            .any(|d| d.id == "type-mismatch" && d.message.contains("dtype")),
        "{ds:?}"
    );
}

#[test]
fn out_of_scope_configs_are_not_supported() {
    for (needle, replacement) in [
        ("  _component_: torchtune.modules.loss.CEWithChunkedOutputLoss", "  _component_: torchtune.rlhf.loss.DPOLoss"),
        ("epochs: 1\n", "epochs: 1\nteacher_model:\n  _component_: torchtune.models.llama3_1.llama3_1_8b\n"),
        ("torchtune.models.llama3_2.lora_llama3_2_1b", "torchtune.models.llama3_2_vision.lora_llama3_2_vision_11b"),
        ("epochs: 1\n", "epochs: 1\nquantizer:\n  _component_: torchtune.training.quantization.Int8DynActInt4WeightQATQuantizer\n"),
    ] {
        let src = Source::new("t.yaml", LORA.replace(needle, replacement));
        match read(&src) {
            Err(crate::translate::reader::ReadError::NotSupported(d)) => assert_eq!(d.id, "not-supported"),
            other => panic!("{replacement}: {:?}", other.map(|_| ())),
        }
    }
}

#[test]
fn interpolations_resolve_like_omegaconf() {
    let text = LORA
        .replace(
            "checkpoint_dir: /tmp/Llama-3.2-1B-Instruct/",
            "checkpoint_dir: ${base_dir}",
        )
        .replace(
            "path: /tmp/Llama-3.2-1B-Instruct/original/tokenizer.model",
            "path: ${checkpointer.checkpoint_dir}/original/tokenizer.model",
        )
        .replace(
            "batch_size: 4",
            "batch_size: ${bs}\nbs: 2\nbase_dir: /models/llama",
        );
    let p = parse(&text);
    assert_eq!(p.resolved.spec.model.base, "/models/llama");
    assert_eq!(p.resolved.spec.model.tokenizer, "/models/llama");
    assert_eq!(p.resolved.spec.batch.micro_batch_per_device, 2);
    assert!(
        !p.diagnostics.iter().any(|d| d.id == "unknown-key"),
        "{:?}",
        p.diagnostics
    );
}

#[test]
fn datasets_of_every_builder() {
    let ds = |node: &str| {
        let text = LORA.replace(
            "dataset:\n  _component_: torchtune.datasets.alpaca_cleaned_dataset\n  packed: False\n",
            node,
        );
        parse(&text).resolved
    };
    let chat = ds("dataset:\n  _component_: torchtune.datasets.chat_dataset\n  source: json\n  data_files: data/chat.jsonl\n  conversation_column: conversations\n  conversation_style: sharegpt\n  split: train[:90%]\n");
    let d = &chat.spec.data.datasets[0];
    assert_eq!(
        (d.path.as_str(), d.loader.as_str(), d.format.as_str()),
        ("data/chat.jsonl", "json", "chat_template")
    );
    assert_eq!(
        d.columns.get("messages").map(String::as_str),
        Some("conversations")
    );
    assert_eq!(d.columns.get("role").map(String::as_str), Some("from"));
    assert_eq!(d.split, "train[:90%]");
    assert_eq!(d.roles_to_train, ["assistant"]);
    assert!(!chat.spec.data.train_on_inputs);
    let inst = ds("dataset:\n  _component_: torchtune.datasets.instruct_dataset\n  source: org/qa\n  column_map:\n    input: question\n    output: answer\n  train_on_input: True\n  packed: False\n");
    let d = &inst.spec.data.datasets[0];
    assert_eq!(d.format, DatasetFormat::Instruct);
    assert_eq!(d.columns.get("input").map(String::as_str), Some("question"));
    assert!(inst.spec.data.train_on_inputs);
    let text = ds("dataset:\n  - _component_: torchtune.datasets.text_completion_dataset\n    source: text\n    data_files: [a.txt, b.txt]\n    column: body\n  - _component_: torchtune.datasets.alpaca_dataset\n");
    let d = &text.spec.data.datasets;
    assert_eq!(d.len(), 2);
    assert_eq!(
        (d[0].format.as_str(), d[0].data_files.len()),
        ("completion", 2)
    );
    assert_eq!(d[0].columns.get("text").map(String::as_str), Some("body"));
    assert_eq!(d[1].path, "tatsu-lab/alpaca");
}

#[test]
fn packing_needs_a_sequence_length() {
    let src = Source::new(
        "t.yaml",
        LORA.replace("  packed: False\n", "  packed: True\n"),
    );
    let ds = read(&src).unwrap_err().diagnostics();
    assert!(
        ds.iter()
            .any(|d| d.id == "conflict" && d.message.contains("max_seq_len")),
        "{ds:?}"
    );
}

#[test]
fn constant_schedules_are_cosine_with_zero_cycles() {
    let p = parse(&LORA.replace(
        "  num_warmup_steps: 100\n",
        "  num_warmup_steps: 10\n  num_cycles: 0.0\n",
    ));
    assert_eq!(
        p.resolved.spec.schedule.kind,
        ScheduleKind::ConstantWithWarmup
    );
    let w = write(&p.resolved, "torchtune", &WriteOptions::default());
    assert!(w.text.contains("num_cycles: 0.0"), "{}", w.text);
    assert_eq!(parse(&w.text).resolved.spec, p.resolved.spec);
}

#[test]
fn clip_grad_norm_spellings() {
    for (v, expected) in [
        ("null", 0.0),
        ("1.0", 1.0),
        ("'inf'", 0.0),
        ("\"2.5\"", 2.5),
    ] {
        let p = parse(&LORA.replace(
            "compile: False",
            &format!("compile: False\nclip_grad_norm: {v}"),
        ));
        assert_eq!(p.resolved.spec.optimizer.max_grad_norm, expected, "{v}");
    }
}

#[test]
fn writes_explicit_parity_values_from_another_framework() {
    // An Axolotl-shaped spec: defaults of another framework must be written out.
    let mut p = parse(LORA);
    let r = &mut p.resolved;
    r.spec.data.train_on_inputs = false;
    r.provenance.set(
        "data.train_on_inputs",
        crate::ir::Origin::Default {
            framework: "axolotl".into(),
            version: "0.18".into(),
            note: String::new(),
        },
    );
    r.spec.optimizer.max_grad_norm = 1.0;
    r.provenance.set(
        "optimizer.max_grad_norm",
        crate::ir::Origin::Default {
            framework: "axolotl".into(),
            version: "0.18".into(),
            note: String::new(),
        },
    );
    r.spec.adapter.dropout = 0.05;
    r.spec.data.datasets[0].prompt_style = "alpaca".into();
    r.spec.loss.across_ranks = AcrossRanks::MeanOfRanks;
    r.spec.adapter.weight_dtype = Dtype::Fp32;
    let w = write(r, "axolotl", &WriteOptions::default());
    assert!(w.text.contains("train_on_input: false"), "{}", w.text);
    assert!(
        w.text
            .contains("clip_grad_norm: 1.0  # parity: axolotl default; torchtune would use 0.0"),
        "{}",
        w.text
    );
    assert!(w.text.contains("lora_dropout: 0.05"), "{}", w.text);
    let status = |f: &str| {
        w.report
            .entries
            .iter()
            .find(|e| e.field == f)
            .map(|e| e.status)
    };
    assert_eq!(
        status("data.datasets.0.prompt_style"),
        Some(Status::Approximated)
    );
    assert_eq!(status("loss.across_ranks"), Some(Status::Approximated));
    assert_eq!(status("adapter.weight_dtype"), Some(Status::NotExpressible));
    assert!(w
        .report
        .warnings
        .iter()
        .any(|d| d.id == "prompt-framing" && d.severity == Severity::Warning));
    assert!(w.report.warnings.iter().any(|d| d.id == "default-differs"));
}

#[test]
fn hub_models_are_downloaded_to_a_local_folder() {
    let mut p = parse(LORA);
    p.resolved.spec.model.base = "meta-llama/Llama-3.2-1B-Instruct".into();
    p.resolved.spec.model.tokenizer = "meta-llama/Llama-3.2-1B-Instruct".into();
    let w = write(&p.resolved, "axolotl", &WriteOptions::default());
    assert!(w.text.contains("tune download meta-llama/Llama-3.2-1B-Instruct --output-dir /tmp/Llama-3.2-1B-Instruct"), "{}", w.text);
    assert!(
        w.text
            .contains("path: /tmp/Llama-3.2-1B-Instruct/original/tokenizer.model"),
        "{}",
        w.text
    );
    let base = w
        .report
        .entries
        .iter()
        .find(|e| e.field == "model.base")
        .unwrap();
    assert_eq!(base.status, Status::Approximated);
}

#[test]
fn size_free_builder_reads_dimensions_from_config_json() {
    let mut p = parse(LORA);
    let r = &mut p.resolved;
    r.spec.model.base = "fixtures/models/tiny-qwen2".into();
    r.spec.model.tokenizer = "fixtures/models/tiny-qwen2".into();
    r.spec.model.family = "qwen2".into();
    r.spec.model.size = String::new();
    r.spec.model.chat_template = "chatml".into();
    let w = write(r, "axolotl", &WriteOptions::default());
    assert!(
        w.text
            .contains("_component_: torchtune.models.qwen2.lora_qwen2\n"),
        "{}",
        w.text
    );
    for line in [
        "vocab_size: 512",
        "num_layers: 2",
        "num_kv_heads: 2",
        "embed_dim: 64",
        "tie_word_embeddings: true",
        "rope_base: 10000.0",
    ] {
        assert!(w.text.contains(line), "{line}\n{}", w.text);
    }
    assert!(
        w.text
            .contains("path: fixtures/models/tiny-qwen2/vocab.json"),
        "{}",
        w.text
    );
    assert!(
        w.text.contains("checkpoint_files: [model.safetensors]"),
        "{}",
        w.text
    );
    let back = parse(&w.text);
    assert_eq!(back.resolved.spec.model.family, "qwen2");
    assert_eq!(
        back.resolved.spec.data.sequence_len,
        p.resolved.spec.data.sequence_len
    );
}

#[test]
fn overrides_then_read() {
    let text = apply_overrides(
        LORA,
        &[
            "model.lora_rank=16".into(),
            "batch_size=8".into(),
            "seed=7".into(),
        ],
    )
    .unwrap();
    let s = parse(&text).resolved.spec;
    assert_eq!(
        (
            s.adapter.rank,
            s.batch.micro_batch_per_device,
            s.training.seed
        ),
        (16, 8, 7)
    );
}

/// Random edits of the fixtures never make the reader panic (a stand-in for the cargo-fuzz
/// target in fuzz/, which needs a nightly toolchain).
#[test]
fn mutated_configs_never_panic() {
    let mut seeds: Vec<String> = vec![LORA.to_string()];
    if let Ok(rd) = std::fs::read_dir(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/configs/torchtune"
    )) {
        for e in rd.flatten() {
            if let Ok(t) = std::fs::read_to_string(e.path()) {
                seeds.push(t);
            }
        }
    }
    let pieces = [
        "",
        "null",
        "_component_: x",
        "${output_dir}",
        "${",
        "[",
        "{}",
        "- a",
        ":",
        "True",
        "-1",
        "1e999",
        "torchtune.models.qwen2.lora_qwen2",
        "torchtune.datasets.chat_dataset",
        "\"",
        "'",
        "\t",
        "~",
        "&a",
        "*a",
        "lora_attn_modules: [q_proj, bad]",
        "dataset:\n  - 3",
        "é",
        "0.5",
        "packed: True",
    ];
    let mut state: u64 = 0x9E3779B97F4A7C15;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for i in 0..2000 {
        let base = &seeds[i % seeds.len()];
        let mut lines: Vec<String> = base.lines().map(String::from).collect();
        for _ in 0..(1 + next() % 4) {
            let n = lines.len().max(1);
            let at = (next() as usize) % n;
            match next() % 5 {
                0 if !lines.is_empty() => {
                    lines.remove(at.min(lines.len() - 1));
                }
                1 => lines.insert(
                    at.min(lines.len()),
                    pieces[(next() as usize) % pieces.len()].to_string(),
                ),
                2 if !lines.is_empty() => {
                    let last = lines.len() - 1;
                    let l = &mut lines[at.min(last)];
                    if let Some((k, _)) = l.clone().split_once(':') {
                        *l = format!("{k}: {}", pieces[(next() as usize) % pieces.len()]);
                    }
                }
                3 if !lines.is_empty() => {
                    let last = lines.len() - 1;
                    let l = &mut lines[at.min(last)];
                    let cut = (next() as usize) % (l.len() + 1);
                    let cut = (0..=cut)
                        .rev()
                        .find(|c| l.is_char_boundary(*c))
                        .unwrap_or(0);
                    l.truncate(cut);
                }
                _ => {
                    let j = (next() as usize) % n;
                    if j < lines.len() && at < lines.len() {
                        lines.swap(at, j);
                    }
                }
            }
        }
        let text = lines.join("\n");
        let src = Source::new("m.yaml", text.clone());
        let result = std::panic::catch_unwind(|| {
            read(&src).map(|p| write(&p.resolved, "torchtune", &WriteOptions::default()))
        });
        assert!(result.is_ok(), "panic on mutation {i}:\n{text}");
    }
}

#[test]
fn recipe_choice() {
    let p = parse(LORA);
    let mut s = p.resolved.spec.clone();
    assert_eq!(recipe_for(&s).name, "lora_finetune_single_device");
    s.adapter.method = Method::Qlora;
    assert_eq!(recipe_for(&s).name, "lora_finetune_single_device");
    s.batch.devices = 8;
    assert_eq!(recipe_for(&s).name, "lora_finetune_distributed");
    s.adapter.method = Method::Full;
    assert_eq!(recipe_for(&s).name, "full_finetune_distributed");
    assert_eq!(
        command_for(&s, "x.yaml"),
        "tune run --nproc_per_node 8 full_finetune_distributed --config x.yaml"
    );
    let _: Value = json!(null);
}
