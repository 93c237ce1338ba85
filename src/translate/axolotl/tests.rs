//! Unit tests for the keys this module handles in code: each special case, its spellings,
//! its diagnostics, and that the writer brings it back. Plus a mutation fuzz of the fixtures.

use super::keys::KERNEL_KEYS;
use super::{read, write};
use crate::diag::{Diagnostic, Severity, Source};
use crate::ir::{BaseWeights, Recompute, Tracker};
use crate::translate::framework::WriteOptions;
use crate::translate::reader::{Parsed, ReadError};
use crate::translate::report::Status;
use serde_json::{json, Value};

const BASE: &str = "base_model: meta-llama/Llama-3.2-1B
datasets:
  - path: tatsu-lab/alpaca
    type: alpaca
learning_rate: 2.0e-4
micro_batch_size: 2
gradient_accumulation_steps: 4
";

const LORA: &str = "adapter: lora
lora_r: 16
lora_alpha: 32
lora_target_linear: true
";

fn src(extra: &str) -> Source {
    Source::new("t.yaml", format!("{BASE}{extra}"))
}

fn parse(extra: &str) -> Result<Parsed, ReadError> {
    read(&src(extra))
}

fn ok(extra: &str) -> Parsed {
    match parse(extra) {
        Ok(p) => p,
        Err(e) => panic!(
            "does not read:\n{}",
            e.diagnostics()
                .iter()
                .map(|d| d.render(None))
                .collect::<String>()
        ),
    }
}

fn ir(extra: &str, path: &str) -> Value {
    crate::ir::tree::get_path(&ok(extra).resolved.spec.to_value(), path)
        .cloned()
        .unwrap_or(Value::Null)
}

fn pass(extra: &str, key: &str) -> Option<Value> {
    ok(extra)
        .resolved
        .spec
        .passthrough
        .get(&format!("axolotl.{key}"))
        .cloned()
}

fn ids(p: &Parsed) -> Vec<&'static str> {
    p.diagnostics.iter().map(|d| d.id).collect()
}

/// Read errors of a config that must not read.
fn errors(extra: &str) -> Vec<Diagnostic> {
    match parse(extra) {
        Ok(_) => panic!("reads without error"),
        Err(e) => e.diagnostics(),
    }
}

fn written(extra: &str) -> String {
    write(&ok(extra).resolved, "axolotl", &WriteOptions::default()).text
}

fn yaml_of(extra: &str) -> Value {
    serde_yaml::from_str(&written(extra)).expect("written YAML parses")
}

/// Axolotl → IR → Axolotl → IR gives the same IR.
fn round_trips(extra: &str) {
    let first = ok(extra).resolved;
    let text = write(&first, "axolotl", &WriteOptions::default()).text;
    let second = read(&Source::new("back.yaml", text.clone()))
        .unwrap_or_else(|e| {
            panic!(
                "written config does not read back: {:?}\n{text}",
                e.diagnostics()
            )
        })
        .resolved;
    assert_eq!(
        first.spec, second.spec,
        "round trip changed the IR:\n{text}"
    );
}

// ------------------------------------------------------------------ adapter and quantisation

#[test]
fn lora_with_4bit_is_qlora_and_qlora_needs_4bit() {
    assert_eq!(
        ir(&format!("{LORA}load_in_4bit: true\n"), "adapter.method"),
        json!("qlora")
    );
    assert_eq!(
        ir(
            &format!("{LORA}load_in_4bit: true\n"),
            "quantization.base_weights"
        ),
        json!("nf4")
    );
    let e = errors("adapter: qlora\nlora_r: 8\nlora_target_linear: true\n");
    assert!(
        e.iter()
            .any(|d| d.id == "conflict" && d.message.contains("load_in_4bit")),
        "{e:?}"
    );
    let e = errors(
        "adapter: qlora\nload_in_4bit: true\nload_in_8bit: true\nlora_target_linear: true\n",
    );
    assert!(
        e.iter().any(|d| d.message.contains("load_in_8bit")),
        "{e:?}"
    );
    let e = errors("load_in_8bit: true\n");
    assert!(
        e.iter().any(|d| d.message.contains("without an adapter")),
        "{e:?}"
    );
    round_trips(&format!("{LORA}load_in_4bit: true\n"));
    round_trips(&format!("{LORA}load_in_8bit: true\n"));
}

#[test]
fn other_adapters_are_refused() {
    for a in ["llama-adapter", "ia3"] {
        match parse(&format!("adapter: {a}\n")) {
            Err(ReadError::NotSupported(d)) => assert!(d.message.contains(a)),
            other => panic!("{a}: {:?}", other.map(|p| p.diagnostics)),
        }
    }
}

#[test]
fn bnb_config_kwargs_type_and_double_quant_are_read_the_rest_kept() {
    let y = format!("{LORA}load_in_4bit: true\nbnb_config_kwargs:\n  bnb_4bit_use_double_quant: false\n  bnb_4bit_quant_type: fp4\n  llm_int8_threshold: 5.0\n");
    let p = ok(&y);
    assert!(!p.resolved.spec.quantization.double_quant);
    assert_eq!(p.resolved.spec.quantization.base_weights, BaseWeights::Fp4);
    assert_eq!(
        pass(&y, "bnb_config_kwargs.llm_int8_threshold"),
        Some(json!(5.0))
    );
    let out = yaml_of(&y);
    assert_eq!(
        out["bnb_config_kwargs"]["bnb_4bit_use_double_quant"],
        json!(false)
    );
    assert_eq!(
        out["bnb_config_kwargs"]["bnb_4bit_quant_type"],
        json!("fp4")
    );
    assert_eq!(out["bnb_config_kwargs"]["llm_int8_threshold"], json!(5.0));
    round_trips(&y);
}

#[test]
fn lora_target_linear_spells_out_the_family_and_joins_the_list() {
    let t = ir(LORA, "adapter.target_modules");
    assert_eq!(
        t,
        json!([
            "q_proj",
            "k_proj",
            "v_proj",
            "o_proj",
            "gate_proj",
            "up_proj",
            "down_proj"
        ])
    );
    assert_eq!(ir(LORA, "adapter.target_all_linear"), json!(true));
    let y = format!("{LORA}lora_target_modules: [lm_head]\n");
    assert_eq!(ir(&y, "adapter.target_modules")[0], json!("lm_head"));
    let out = yaml_of(&y);
    assert_eq!(out["lora_target_linear"], json!(true));
    assert_eq!(out["lora_target_modules"], json!(["lm_head"]));
    round_trips(&y);
    // Phi-3 fuses its projections.
    let phi = "base_model: microsoft/Phi-3-mini-4k-instruct\n";
    let p = read(&Source::new(
        "p.yaml",
        format!("{BASE}{LORA}").replace("base_model: meta-llama/Llama-3.2-1B\n", phi),
    ))
    .unwrap();
    assert_eq!(
        p.resolved.spec.adapter.target_modules,
        ["qkv_proj", "o_proj", "gate_up_proj", "down_proj"]
    );
}

#[test]
fn lora_target_modules_list_and_regex_string() {
    let y = "adapter: lora\nlora_r: 8\nlora_target_modules:\n  - q_proj\n  - v_proj\n";
    assert_eq!(ir(y, "adapter.target_modules"), json!(["q_proj", "v_proj"]));
    assert_eq!(ir(y, "adapter.target_all_linear"), json!(false));
    round_trips(y);
    let y = "adapter: lora\nlora_r: 8\nlora_target_modules: 'model.layers.[\\d]+.(self_attn|mlp).(q|v|down)_proj'\n";
    assert_eq!(
        ir(y, "adapter.target_modules"),
        json!(["q_proj", "v_proj", "down_proj"])
    );
    assert_eq!(
        pass(y, "lora_target_modules"),
        Some(json!("model.layers.[\\d]+.(self_attn|mlp).(q|v|down)_proj"))
    );
    assert_eq!(
        yaml_of(y)["lora_target_modules"],
        json!("model.layers.[\\d]+.(self_attn|mlp).(q|v|down)_proj")
    );
    round_trips(y);
    // A regex limited to some layers is noted.
    let y =
        "adapter: lora\nlora_r: 8\nlora_target_modules: 'model.layers.[0-7].self_attn.q_proj'\n";
    assert!(ids(&ok(y)).contains(&"not-expressible"));
    let e = errors("adapter: lora\nlora_r: 8\nlora_target_modules: '.*\\.(wq|wv)'\n");
    assert!(
        e.iter().any(|d| d.message.contains("matches none")),
        "{e:?}"
    );
    let e = errors("adapter: lora\nlora_r: 8\nlora_target_modules: '(q_proj'\n");
    assert!(
        e.iter().any(|d| d.message.contains("not a valid regex")),
        "{e:?}"
    );
}

#[test]
fn peft_switches_and_modules_to_save() {
    let y = format!("{LORA}peft_use_rslora: true\npeft_use_dora: true\nlora_modules_to_save: [embed_tokens, lm_head]\nlora_fan_in_fan_out: true\npeft_layers_to_transform: [0, 1]\n");
    let s = ok(&y).resolved.spec;
    assert!(s.adapter.use_rslora && s.adapter.use_dora);
    assert_eq!(s.adapter.modules_to_save, ["embed_tokens", "lm_head"]);
    assert_eq!(pass(&y, "lora_fan_in_fan_out"), Some(json!(true)));
    assert_eq!(pass(&y, "peft_layers_to_transform"), Some(json!([0, 1])));
    // fan_in_fan_out false is what Axolotl does anyway: dropped without a note.
    assert_eq!(
        pass(
            &format!("{LORA}lora_fan_in_fan_out: false\n"),
            "lora_fan_in_fan_out"
        ),
        None
    );
    round_trips(&y);
    let out = yaml_of(&y);
    assert_eq!(out["peft_use_rslora"], json!(true));
    assert_eq!(
        out["lora_alpha"],
        json!(32),
        "lora_alpha is an integer in Axolotl's schema"
    );
}

#[test]
fn fused_kernels_follow_axolotls_auto_enable() {
    assert_eq!(ir(LORA, "adapter.fused_kernels"), json!(true));
    assert_eq!(
        ir(
            &format!("{LORA}load_in_8bit: true\n"),
            "adapter.fused_kernels"
        ),
        json!(false)
    );
    assert_eq!(
        ir(
            &format!("{LORA}trust_remote_code: true\n"),
            "adapter.fused_kernels"
        ),
        json!(false)
    );
    assert_eq!(
        ir(
            &format!("{LORA}fsdp_config:\n  offload_params: false\n"),
            "adapter.fused_kernels"
        ),
        json!(false)
    );
    assert_eq!(
        ir(
            &format!("{LORA}lora_mlp_kernel: false\n"),
            "adapter.fused_kernels"
        ),
        json!(false)
    );
    assert_eq!(
        ir(
            &format!("{LORA}lora_mlp_kernel: true\nlora_qkv_kernel: false\n"),
            "adapter.fused_kernels"
        ),
        json!(true)
    );
    assert_eq!(ir("", "adapter.fused_kernels"), json!(false));
    // Off where Axolotl would turn them on: all four written false.
    let y = format!("{LORA}lora_mlp_kernel: false\nlora_qkv_kernel: false\nlora_o_kernel: false\nlora_embedding_kernel: false\n");
    let out = written(&y);
    for k in KERNEL_KEYS {
        assert!(out.contains(&format!("{k}: false  # parity")), "{out}");
    }
    round_trips(&y);
    // On and possible: Axolotl does it by itself; --strict turns them off.
    assert!(!written(LORA).contains("kernel"));
    let strict = write(
        &ok(LORA).resolved,
        "axolotl",
        &WriteOptions {
            strict: true,
            ..Default::default()
        },
    );
    assert!(strict.text.contains("lora_mlp_kernel: false"));
    assert!(strict
        .report
        .entries
        .iter()
        .any(|e| e.field == "adapter.fused_kernels" && e.status == Status::Approximated));
    // 8-bit LoRA: nothing to switch off.
    assert!(!written(&format!("{LORA}load_in_8bit: true\n")).contains("kernel"));
}

// ------------------------------------------------------------------ model

#[test]
fn special_tokens_strings_are_ir_additional_ones_are_kept() {
    let y = "special_tokens:\n  pad_token: \"<|end_of_text|>\"\n  eos_token: <|eot_id|>\n  additional_special_tokens: [\"<tool>\"]\n";
    let p = ok(y);
    assert_eq!(
        p.resolved
            .spec
            .model
            .special_tokens
            .get("pad_token")
            .map(String::as_str),
        Some("<|end_of_text|>")
    );
    assert_eq!(p.resolved.spec.model.special_tokens.len(), 2);
    assert_eq!(
        pass(y, "special_tokens.additional_special_tokens"),
        Some(json!(["<tool>"]))
    );
    assert!(!ids(&p).contains(&"unknown-key"));
    let out = yaml_of(y);
    assert_eq!(
        out["special_tokens"]["additional_special_tokens"],
        json!(["<tool>"])
    );
    assert_eq!(out["special_tokens"]["eos_token"], json!("<|eot_id|>"));
    round_trips(y);
    // An empty `special_tokens:` is fine.
    assert!(!ids(&ok("special_tokens:\n")).contains(&"unknown-key"));
}

#[test]
fn legacy_attention_switches() {
    assert_eq!(
        ir("flash_attention: true\n", "model.attention"),
        json!("flash_attention_2")
    );
    assert_eq!(
        ir("sdp_attention: true\n", "model.attention"),
        json!("sdpa")
    );
    assert_eq!(
        ir("xformers_attention: true\n", "model.attention"),
        json!("xformers")
    );
    assert_eq!(
        ir("flash_attention: false\n", "model.attention"),
        json!("sdpa")
    );
    let e = errors("flash_attention: true\nattn_implementation: sdpa\n");
    assert!(e.iter().any(|d| d.id == "conflict"));
    assert!(written("flash_attention: true\n").contains("attn_implementation: flash_attention_2"));
}

#[test]
fn chat_template_and_inline_jinja() {
    assert_eq!(
        ir("chat_template: llama3\n", "model.chat_template"),
        json!("llama3")
    );
    let y = "chat_template_jinja: \"{% for m in messages %}{{ m.content }}{% endfor %}\"\n";
    assert_eq!(ir(y, "model.chat_template"), json!("jinja"));
    assert!(pass(y, "chat_template_jinja").is_some());
    round_trips(y);
    round_trips("chat_template: chatml\n");
}

#[test]
fn model_and_tokenizer_classes() {
    let p = ok("model_type: LlamaForCausalLM\ntokenizer_type: AutoTokenizer\nbase_model_config: meta-llama/Llama-3.2-1B\nis_llama_derived_model: true\n");
    assert!(
        p.resolved.spec.passthrough.is_empty(),
        "{:?}",
        p.resolved.spec.passthrough
    );
    assert_eq!(
        pass("tokenizer_type: LlamaTokenizer\n", "tokenizer_type"),
        Some(json!("LlamaTokenizer"))
    );
    assert_eq!(
        ir("tokenizer_config: other/tok\n", "model.tokenizer"),
        json!("other/tok")
    );
    round_trips("tokenizer_config: other/tok\n");
    match parse("model_type: AutoModelForSequenceClassification\n") {
        Err(ReadError::NotSupported(d)) => assert!(d.message.contains("classifier")),
        other => panic!("{:?}", other.map(|p| p.diagnostics)),
    }
}

// ------------------------------------------------------------------ batch, schedule

#[test]
fn the_batch_triple_mirrors_axolotls_validator() {
    let base = BASE.replace("gradient_accumulation_steps: 4\n", "");
    let read_with = |extra: &str| read(&Source::new("b.yaml", format!("{base}{extra}")));
    let p = read_with("batch_size: 16\n").unwrap();
    assert_eq!(p.resolved.spec.batch.grad_accum_steps, 8);
    let only_micro = read_with("").unwrap();
    assert!(only_micro
        .diagnostics
        .iter()
        .any(|d| d.id == "missing-key" && d.severity == Severity::Warning));
    let e = parse("batch_size: 16\n").unwrap_err().diagnostics();
    assert!(e
        .iter()
        .any(|d| d.id == "conflict" && d.message.contains("batch_size")));
    let alone = base.replace("micro_batch_size: 2\n", "");
    let e = read(&Source::new("b.yaml", format!("{alone}batch_size: 16\n")))
        .unwrap_err()
        .diagnostics();
    assert!(
        e.iter().any(|d| d.message.contains("at least two")),
        "{e:?}"
    );
    // Written back as the explicit pair.
    let out: Value =
        serde_yaml::from_str(&write(&p.resolved, "axolotl", &WriteOptions::default()).text)
            .unwrap();
    assert_eq!(out["gradient_accumulation_steps"], json!(8));
    assert_eq!(out["batch_size"], Value::Null);
}

#[test]
fn warmup_steps_or_ratio_never_both() {
    let e = errors("warmup_steps: 10\nwarmup_ratio: 0.1\n");
    assert!(e
        .iter()
        .any(|d| d.id == "conflict" && d.message.contains("warmup")));
    ok("warmup_steps: 0\nwarmup_ratio: 0.1\n"); // Axolotl tests truthiness
    assert_eq!(
        ir("warmup_steps: 10\n", "schedule.warmup_ratio"),
        json!(0.0)
    );
    assert_eq!(
        ir("warmup_ratio: 0.1\n", "schedule.warmup_ratio"),
        json!(0.1)
    );
    assert_eq!(
        ir(
            "warmup_ratio: 0.1\nmax_steps: 95\n",
            "schedule.warmup_steps"
        ),
        json!(9)
    );
    assert_eq!(
        ir(
            "warmup_ratio: 0.1\nmax_steps: 15\n",
            "schedule.warmup_steps"
        ),
        json!(2),
        "a computed 1 becomes 2"
    );
    assert_eq!(
        ir("max_steps: 5000\n", "schedule.warmup_steps"),
        json!(100),
        "3 % capped at 100"
    );
    assert!(written("warmup_ratio: 0.1\n").contains("warmup_ratio: 0.1"));
    // Neither key: Axolotl's default applies, nothing is written.
    let out = written("");
    assert!(
        !out.contains("warmup_ratio") && !out.contains("warmup_steps"),
        "{out}"
    );
    round_trips("warmup_ratio: 0.1\n");
    round_trips("warmup_steps: 25\n");
}

#[test]
fn scheduler_kinds_kwargs_and_floor() {
    assert_eq!(
        ir("lr_scheduler: constant_with_warmup\n", "schedule.kind"),
        json!("constant_with_warmup")
    );
    let y = "lr_scheduler: cosine_with_min_lr\nlr_scheduler_kwargs:\n  min_lr_rate: 0.1\n";
    assert_eq!(ir(y, "schedule.min_lr_ratio"), json!(0.1));
    assert_eq!(yaml_of(y)["lr_scheduler_kwargs"]["min_lr_rate"], json!(0.1));
    round_trips(y);
    let y = "lr_scheduler: cosine_with_min_lr\nlr_scheduler_kwargs:\n  min_lr: 2.0e-5\n";
    assert!((ir(y, "schedule.min_lr_ratio").as_f64().unwrap() - 0.1).abs() < 1e-12);
    let y = "cosine_min_lr_ratio: 0.1\n";
    assert_eq!(yaml_of(y)["cosine_min_lr_ratio"], json!(0.1));
    round_trips(y);
    let y = "lr_scheduler_kwargs:\n  num_cycles: 1.5\n  power: 2.0\n";
    assert_eq!(ir(y, "schedule.num_cycles"), json!(1.5));
    assert_eq!(pass(y, "lr_scheduler_kwargs.power"), Some(json!(2.0)));
    assert_eq!(
        yaml_of(y)["lr_scheduler_kwargs"],
        json!({"num_cycles": 1.5, "power": 2.0})
    );
    round_trips(y);
    let e = errors("lr_scheduler: wobbly\n");
    assert!(e.iter().any(|d| d.id == "type-mismatch"));
}

#[test]
fn optimizer_spellings() {
    for (ax, irn) in [
        ("adamw_torch", "adamw"),
        ("adamw_torch_fused", "adamw_fused"),
        ("adamw_8bit", "adamw_8bit"),
        ("adamw_bnb_8bit", "adamw_8bit"),
        ("adamw_torch_8bit", "adamw_8bit_torchao"),
        ("muon", "muon"),
    ] {
        assert_eq!(
            ir(&format!("optimizer: {ax}\n"), "optimizer.name"),
            json!(irn),
            "{ax}"
        );
    }
    assert!(written("optimizer: adamw_8bit\n").contains("optimizer: adamw_bnb_8bit"));
    assert!(written("optimizer: came_pytorch\n").contains("optimizer: came_pytorch"));
    assert!(errors("optimizer: adamw_hf\n")
        .iter()
        .any(|d| d.id == "type-mismatch"));
}

// ------------------------------------------------------------------ precision and memory

#[test]
fn precision_flags() {
    assert_eq!(ir("bf16: auto\n", "precision.compute_dtype"), json!("bf16"));
    assert_eq!(
        ir("bf16: true\nfp16: true\n", "precision.compute_dtype"),
        json!("bf16")
    );
    assert_eq!(
        ir("bf16: auto\nfp16: true\n", "precision.compute_dtype"),
        json!("fp16")
    );
    assert_eq!(
        ir("bf16: false\n", "precision.compute_dtype"),
        json!("fp32")
    );
    assert_eq!(
        ir("bf16: false\nbfloat16: true\n", "precision.compute_dtype"),
        json!("bf16")
    );
    assert_eq!(ir("", "precision.mode"), json!("pure"));
    // an 8-bit base is loaded in fp16 unless bf16 (utils/config/__init__.py)
    let eight = |extra: &str| {
        ir(
            &format!("{LORA}load_in_8bit: true\n{extra}"),
            "precision.compute_dtype",
        )
    };
    assert_eq!(eight(""), json!("fp16"));
    assert_eq!(eight("bf16: false\n"), json!("fp16"));
    assert_eq!(eight("bf16: auto\n"), json!("bf16"));
    assert_eq!(eight("bf16: true\n"), json!("bf16"));
    let out = yaml_of(&format!("{LORA}load_in_8bit: true\n"));
    assert_eq!(
        out["fp16"],
        json!(false),
        "fp16: true would add AMP to the fp16 load"
    );
    round_trips(&format!("{LORA}load_in_8bit: true\nbf16: false\n"));
    assert_eq!(ir("tf32: auto\n", "precision.tf32"), json!(true));
    assert_eq!(ir("tf32: false\n", "precision.tf32"), json!(false));
    assert!(errors("bf16: maybe\n")
        .iter()
        .any(|d| d.id == "type-mismatch"));
    let out = yaml_of("bf16: false\nfp16: true\n");
    assert_eq!(
        (out["bf16"].clone(), out["fp16"].clone()),
        (json!(false), json!(true))
    );
    round_trips("bf16: false\n");
}

#[test]
fn checkpointing_and_offloading() {
    assert_eq!(
        ir(
            "gradient_checkpointing: true\n",
            "memory.gradient_checkpointing"
        ),
        json!("on")
    );
    assert_eq!(
        ir(
            "gradient_checkpointing: offload\n",
            "memory.gradient_checkpointing"
        ),
        json!("offload")
    );
    assert_eq!(
        ir(
            "gradient_checkpointing: true\nactivation_offloading: legacy\n",
            "memory.gradient_checkpointing"
        ),
        json!("offload")
    );
    assert_eq!(
        ir(
            "gradient_checkpointing: true\nactivation_offloading: true\n",
            "memory.activation_offloading"
        ),
        json!(true)
    );
    let out = yaml_of("gradient_checkpointing: offload\n");
    assert_eq!(out["gradient_checkpointing"], json!(true));
    assert_eq!(out["activation_offloading"], json!("legacy"));
    round_trips("gradient_checkpointing: offload\n");
    round_trips("gradient_checkpointing: true\nactivation_offloading: true\n");
    // use_reentrant: true is the default; false is kept.
    assert_eq!(
        pass(
            "gradient_checkpointing_kwargs:\n  use_reentrant: true\n",
            "gradient_checkpointing_kwargs"
        ),
        None
    );
    assert_eq!(
        pass(
            "gradient_checkpointing_kwargs:\n  use_reentrant: false\n",
            "gradient_checkpointing_kwargs.use_reentrant"
        ),
        Some(json!(false))
    );
    assert_eq!(ir("torch_compile: auto\n", "memory.compile"), json!(true));
}

// ------------------------------------------------------------------ loss plugins

#[test]
fn loss_plugins() {
    let cce = "plugins:\n  - axolotl.integrations.cut_cross_entropy.CutCrossEntropyPlugin\n";
    assert_eq!(ir(cce, "loss.kind"), json!("cut_cross_entropy"));
    assert!(ok(cce).resolved.spec.passthrough.is_empty());
    assert_eq!(
        ir(&format!("{cce}cut_cross_entropy: false\n"), "loss.kind"),
        json!("cross_entropy")
    );
    let out = yaml_of(cce);
    assert_eq!(
        out["plugins"],
        json!(["axolotl.integrations.cut_cross_entropy.CutCrossEntropyPlugin"])
    );
    assert_eq!(out["cut_cross_entropy"], json!(true));
    round_trips(cce);
    let liger = "plugins:\n  - axolotl.integrations.liger.LigerPlugin\nliger_fused_linear_cross_entropy: true\nliger_rms_norm: true\n";
    assert_eq!(ir(liger, "loss.kind"), json!("fused_linear_cross_entropy"));
    assert_eq!(pass(liger, "liger_rms_norm"), Some(json!(true)));
    assert_eq!(
        pass(liger, "plugins"),
        Some(json!(["axolotl.integrations.liger.LigerPlugin"])),
        "kept for liger_rms_norm"
    );
    let out = yaml_of(liger);
    assert_eq!(
        out["plugins"],
        json!(["axolotl.integrations.liger.LigerPlugin"])
    );
    assert_eq!(out["liger_rms_norm"], json!(true));
    round_trips(liger);
    assert_eq!(
        ir("chunked_cross_entropy: true\n", "loss.kind"),
        json!("chunked_cross_entropy")
    );
    let both = format!("{cce}chunked_cross_entropy: true\n");
    assert!(errors(&both).iter().any(|d| d.id == "conflict"));
    let other = "plugins:\n  - axolotl.integrations.kernels.KernelsPlugin\n";
    assert_eq!(
        pass(other, "plugins"),
        Some(json!(["axolotl.integrations.kernels.KernelsPlugin"]))
    );
}

// ------------------------------------------------------------------ checkpoints and logging

#[test]
fn save_cadence() {
    assert_eq!(ir("save_steps: 50\n", "checkpoint.save_steps"), json!(50));
    let out = yaml_of("save_steps: 50\n");
    assert_eq!(
        (out["save_strategy"].clone(), out["save_steps"].clone()),
        (json!("steps"), json!(50))
    );
    round_trips("save_steps: 50\nsave_strategy: steps\n");
    assert_eq!(
        ir("saves_per_epoch: 1\n", "checkpoint.save_steps"),
        json!(0)
    );
    assert_eq!(
        pass("saves_per_epoch: 4\n", "saves_per_epoch"),
        Some(json!(4))
    );
    assert_eq!(pass("save_steps: 0.25\n", "save_steps"), Some(json!(0.25)));
    assert_eq!(
        pass("save_strategy: \"no\"\n", "save_strategy"),
        Some(json!("no"))
    );
    assert!(errors("save_strategy: epoch\nsave_steps: 10\n")
        .iter()
        .any(|d| d.id == "conflict"));
    round_trips("saves_per_epoch: 4\n");
    round_trips("save_steps: 0.25\n");
}

#[test]
fn trackers() {
    let p = ok("wandb_project: my-proj\nwandb_entity: me\n");
    assert_eq!(p.resolved.spec.logging.tracker, Tracker::Wandb);
    assert_eq!(p.resolved.spec.logging.project, "my-proj");
    assert_eq!(ir("wandb_project:\n", "logging.tracker"), json!("none"));
    assert_eq!(ir("use_wandb: true\n", "logging.tracker"), json!("wandb"));
    assert_eq!(
        ir(
            "wandb_project: p\nwandb_mode: disabled\n",
            "logging.tracker"
        ),
        json!("none")
    );
    assert_eq!(
        ir("use_tensorboard: true\n", "logging.tracker"),
        json!("tensorboard")
    );
    assert!(!ids(&ok("use_tensorboard: false\n")).contains(&"unknown-key"));
    assert_eq!(
        ir(
            "use_mlflow: true\nmlflow_experiment_name: e\n",
            "logging.project"
        ),
        json!("e")
    );
    assert!(written("use_wandb: true\n").contains("use_wandb: true"));
    assert!(written("use_tensorboard: true\n").contains("use_tensorboard: true"));
    round_trips("wandb_project: my-proj\nwandb_entity: me\n");
    round_trips("use_mlflow: true\nmlflow_experiment_name: e\n");
    round_trips("use_wandb: true\nuse_tensorboard: true\n");
}

// ------------------------------------------------------------------ parallelism

#[test]
fn deepspeed_files_and_inline_configs() {
    let p = ok("deepspeed: deepspeed_configs/zero3_bf16_cpuoffload_params.json\n")
        .resolved
        .spec;
    assert_eq!(
        (
            p.parallel.strategy.as_str(),
            p.parallel.zero_stage,
            p.parallel.cpu_offload
        ),
        ("deepspeed", 3, true)
    );
    let p = ok("deepspeed: deepspeed_configs/zero2.json\n")
        .resolved
        .spec;
    assert_eq!((p.parallel.zero_stage, p.parallel.cpu_offload), (2, false));
    round_trips("deepspeed: deepspeed_configs/zero2.json\n");
    let inline =
        "deepspeed:\n  zero_optimization:\n    stage: 3\n    offload_param:\n      device: cpu\n";
    let p = ok(inline).resolved.spec;
    assert_eq!((p.parallel.zero_stage, p.parallel.cpu_offload), (3, true));
    assert_eq!(
        yaml_of(inline)["deepspeed"]["zero_optimization"]["stage"],
        json!(3)
    );
    round_trips(inline);
    assert!(ids(&ok("deepspeed: my/ds.json\n")).contains(&"not-expressible"));
}

#[test]
fn fsdp_versions_prefixes_and_the_legacy_list() {
    let v1 = "fsdp:\n  - full_shard\n  - auto_wrap\nfsdp_config:\n  fsdp_offload_params: true\n  fsdp_sync_module_states: true\n  fsdp_auto_wrap_policy: TRANSFORMER_BASED_WRAP\n  fsdp_transformer_layer_cls_to_wrap: LlamaDecoderLayer\n  fsdp_sharding_strategy: FULL_SHARD\n";
    let p = ok(v1);
    let s = &p.resolved.spec;
    assert_eq!(
        (
            s.parallel.strategy.as_str(),
            s.parallel.cpu_offload,
            s.parallel.reshard_after_forward
        ),
        ("fsdp1", true, true)
    );
    assert_eq!(
        pass(v1, "fsdp_config.sync_module_states"),
        Some(json!(true)),
        "prefix stripped as Axolotl does"
    );
    assert!(!ids(&p).contains(&"unknown-key"), "{:?}", p.diagnostics);
    let out = yaml_of(v1);
    assert_eq!(out["fsdp_version"], json!(1));
    assert_eq!(
        out["fsdp_config"]["transformer_layer_cls_to_wrap"],
        json!("LlamaDecoderLayer")
    );
    assert_eq!(out["fsdp_config"]["sync_module_states"], json!(true));
    round_trips(v1);
    let v2 = "fsdp_version: 2\nfsdp_config:\n  offload_params: false\n  reshard_after_forward: false\n  activation_checkpointing: true\n  state_dict_type: SHARDED_STATE_DICT\n";
    let s = ok(v2).resolved.spec;
    assert_eq!(
        (
            s.parallel.strategy.as_str(),
            s.parallel.reshard_after_forward
        ),
        ("fsdp2", false)
    );
    assert_eq!(s.memory.gradient_checkpointing, Recompute::On);
    let out = yaml_of(&format!("{v2}gradient_checkpointing: true\n"));
    assert_eq!(out["fsdp_config"]["activation_checkpointing"], json!(true));
    assert_eq!(
        out["gradient_checkpointing"],
        Value::Null,
        "HF refuses both at once"
    );
    round_trips(v2);
    assert_eq!(
        ir("fsdp_config:\n  version: 2\n", "parallel.strategy"),
        json!("fsdp2")
    );
    assert_eq!(
        ir("fsdp_config:\n  fsdp_version: 2\n", "parallel.strategy"),
        json!("fsdp2")
    );
    assert_eq!(
        pass(
            "fsdp_config:\n  transformer_layer_cls_to_wrap: MyLayer\n",
            "fsdp_config.transformer_layer_cls_to_wrap"
        ),
        Some(json!("MyLayer"))
    );
}

// ------------------------------------------------------------------ datasets

fn with_dataset(entry: &str) -> String {
    format!(
        "{}datasets:\n{entry}",
        BASE.split("datasets:").next().unwrap()
    ) + &BASE[BASE.find("learning_rate").unwrap()..]
}

fn ds_read(entry: &str) -> Result<Parsed, ReadError> {
    read(&Source::new("d.yaml", with_dataset(entry)))
}

fn ds(entry: &str) -> Value {
    ds_read(entry)
        .unwrap_or_else(|e| panic!("{:?}", e.diagnostics()))
        .resolved
        .spec
        .to_value()["data"]["datasets"][0]
        .clone()
}

fn ds_round_trips(entry: &str) {
    let first = ds_read(entry).unwrap().resolved;
    let text = write(&first, "axolotl", &WriteOptions::default()).text;
    let second = read(&Source::new("b.yaml", text.clone())).unwrap().resolved;
    assert_eq!(first.spec, second.spec, "{text}");
}

#[test]
fn alpaca_and_its_prompt_styles() {
    for t in [
        "alpaca",
        "alpaca:chat",
        "alpaca:chatml",
        "alpaca:phi",
        "alpaca_chat.load_qa",
        "alpaca_w_system.load_open_orca",
    ] {
        let d = ds(&format!("  - path: tatsu-lab/alpaca\n    type: {t}\n"));
        assert_eq!(
            (d["format"].clone(), d["prompt_style"].clone()),
            (json!("alpaca"), json!(t))
        );
        ds_round_trips(&format!("  - path: tatsu-lab/alpaca\n    type: {t}\n"));
    }
    let d = ds("  - path: data/train.jsonl\n    type: alpaca\n    split: train[:10%]\n");
    assert_eq!(
        (d["loader"].clone(), d["split"].clone()),
        (json!("json"), json!("train[:10%]"))
    );
}

#[test]
fn chat_template_datasets() {
    let e = "  - path: mlabonne/FineTome-100k\n    type: chat_template\n    field_messages: conversations\n    message_property_mappings:\n      role: from\n      content: value\n    roles_to_train: [assistant, tool]\n    train_on_eos: all\n";
    let d = ds(e);
    assert_eq!(
        d["columns"],
        json!({"messages": "conversations", "role": "from", "content": "value"})
    );
    assert_eq!(d["roles_to_train"], json!(["assistant", "tool"]));
    let p = ds_read(e).unwrap();
    assert_eq!(
        p.resolved
            .spec
            .passthrough
            .get("axolotl.datasets.0.train_on_eos"),
        Some(&json!("all"))
    );
    ds_round_trips(e);
    // Deprecated field names, the default roles, and train_on_eos: turn (the default).
    let e = "  - path: x/y\n    type: chat_template\n    message_field_role: from\n    message_field_content: value\n    train_on_eos: turn\n";
    let p = ds_read(e).unwrap();
    assert_eq!(
        p.resolved.spec.data.datasets[0]
            .columns
            .get("role")
            .map(String::as_str),
        Some("from")
    );
    assert_eq!(
        p.resolved.spec.data.datasets[0].roles_to_train,
        ["assistant"]
    );
    assert!(p.resolved.spec.passthrough.is_empty());
    assert!(p.diagnostics.iter().any(|d| d.id == "deprecated-key"));
    // A single dataset naming the template sets the model's.
    let d = ds_read("  - path: x/y\n    type: chat_template\n    chat_template: chatml\n").unwrap();
    assert_eq!(d.resolved.spec.model.chat_template, "chatml");
}

#[test]
fn completion_input_output_and_user_defined() {
    let d = ds("  - path: x/y\n    type: completion\n    field: content\n");
    assert_eq!(
        (d["format"].clone(), d["columns"]["text"].clone()),
        (json!("completion"), json!("content"))
    );
    ds_round_trips("  - path: x/y\n    type: completion\n    field: content\n");
    assert_eq!(
        ds("  - path: x/y\n    type: input_output\n")["format"],
        json!("input_output")
    );
    let ud = "  - path: x/y\n    type:\n      field_instruction: question\n      field_output: answer\n      format: \"[INST] {instruction} [/INST]\"\n      no_input_format: \"[INST] {instruction} [/INST]\"\n";
    let d = ds(ud);
    assert_eq!(d["format"], json!("instruct"));
    assert_eq!(d["columns"]["instruction"], json!("question"));
    assert_eq!(
        d["columns"]["input"],
        json!("input"),
        "Axolotl's default filled in"
    );
    assert_eq!(d["templates"]["system_format"], json!("{system}"));
    ds_round_trips(ud);
    let out: Value = serde_yaml::from_str(
        &write(
            &ds_read(ud).unwrap().resolved,
            "axolotl",
            &WriteOptions::default(),
        )
        .text,
    )
    .unwrap();
    assert_eq!(
        out["datasets"][0]["type"],
        json!({"field_instruction": "question", "field_output": "answer", "format": "[INST] {instruction} [/INST]", "no_input_format": "[INST] {instruction} [/INST]"})
    );
}

#[test]
fn unsupported_dataset_types_are_refused() {
    for t in [
        "sharegpt",
        "chat_template.default",
        "bradley_terry.chat_template",
        "jeopardy",
        "\"\"",
    ] {
        match ds_read(&format!("  - path: x/y\n    type: {t}\n")) {
            Err(ReadError::NotSupported(d)) => assert_eq!(d.id, "not-supported", "{t}"),
            other => panic!("{t}: {:?}", other.map(|p| p.diagnostics)),
        }
    }
    let e = ds_read("  - path: x/y\n").unwrap_err().diagnostics();
    assert!(e.iter().any(|d| d.message.contains("no `type`")));
    let p = ds_read("  - path: x/y\n    type: alpaca\n    shuffle_me: true\n").unwrap();
    assert!(p
        .diagnostics
        .iter()
        .any(|d| d.id == "unknown-key" && d.message.contains("shuffle_me")));
}

#[test]
fn test_datasets_and_eval_keys_are_kept() {
    let y = "test_datasets:\n  - path: x/eval\n    type: alpaca\nevals_per_epoch: 4\neval_sample_packing: false\nsample_packing: true\n";
    let p = ok(y);
    assert!(p
        .resolved
        .spec
        .passthrough
        .contains_key("axolotl.test_datasets"));
    assert_eq!(pass(y, "eval_sample_packing"), Some(json!(false)));
    assert_eq!(
        pass(
            "sample_packing: true\neval_sample_packing: true\npad_to_sequence_len: true\n",
            "pad_to_sequence_len"
        ),
        None
    );
    round_trips(y);
}

// ------------------------------------------------------------------ everything else

#[test]
fn every_key_is_accounted_for() {
    // A valid Axolotl key with no IR field is kept, not called unknown.
    let p = ok(
        "ddp_timeout: 1800\nneftune_noise_alpha: 5\nunfrozen_parameters: ['^lm_head.weight$']\n",
    );
    assert!(!ids(&p).contains(&"unknown-key"), "{:?}", p.diagnostics);
    assert_eq!(
        pass("ddp_timeout: 1800\n", "ddp_timeout"),
        Some(json!(1800))
    );
    // A typo is unknown, with a suggestion.
    let p = ok("lora_rr: 8\n");
    let d = p
        .diagnostics
        .iter()
        .find(|d| d.id == "unknown-key")
        .expect("unknown key reported");
    assert_eq!(d.help.as_deref(), Some("did you mean `lora_r`?"));
    // Deprecated spellings are read as the new key.
    let p = ok("noisy_embedding_alpha: 5\n");
    assert!(ids(&p).contains(&"deprecated-key"));
    assert_eq!(
        pass("noisy_embedding_alpha: 5\n", "neftune_noise_alpha"),
        Some(json!(5))
    );
    round_trips("noisy_embedding_alpha: 5\n");
}

#[test]
fn unsupported_features_are_refused_at_their_key() {
    for (y, what) in [
        ("rl: dpo\n", "reinforcement"),
        ("reward_model: true\n", "reward"),
        ("processor_type: AutoProcessor\n", "vision"),
        ("qat:\n  weight_dtype: int4\n", "quantisation-aware"),
        ("gptq: true\n", "GPTQ"),
    ] {
        match parse(y) {
            Err(ReadError::NotSupported(d)) => {
                assert!(d.message.contains(what), "{y}: {}", d.message);
                assert!(d.line.is_some(), "{y}: points at the key");
            }
            other => panic!("{y}: {:?}", other.map(|p| p.diagnostics)),
        }
    }
}

#[test]
fn output_layout_is_stable_and_sectioned() {
    let out = written(&format!(
        "{LORA}flash_attention: true\nwandb_project: p\ndataset_prepared_path: last_run_prepared\n"
    ));
    let order: Vec<&str> = out
        .lines()
        .filter(|l| !l.starts_with(' ') && !l.starts_with('#') && l.contains(':'))
        .map(|l| l.split(':').next().unwrap())
        .collect();
    let pos = |k: &str| {
        order
            .iter()
            .position(|x| *x == k)
            .unwrap_or_else(|| panic!("{k} missing in {order:?}"))
    };
    assert!(pos("base_model") < pos("adapter"));
    assert!(
        pos("adapter") < pos("lora_r")
            && pos("lora_r") < pos("lora_alpha")
            && pos("lora_alpha") < pos("lora_target_linear")
    );
    assert!(pos("datasets") < pos("micro_batch_size"));
    assert!(pos("learning_rate") < pos("bf16"));
    assert!(pos("output_dir") < pos("wandb_project"));
    assert_eq!(
        *order.last().unwrap(),
        "dataset_prepared_path",
        "kept keys come last"
    );
    assert!(out.contains("# --- kept from the source"));
}

#[test]
fn drop_last_follows_packing_or_dataloader_drop_last() {
    let drop_last = |y: &str| ok(y).resolved.spec.data.drop_last;
    assert!(!drop_last(""));
    assert!(drop_last("sample_packing: true\n"));
    assert!(drop_last("dataloader_drop_last: true\n"));
    assert_eq!(
        pass(
            "sample_packing: true\ndataloader_drop_last: false\n",
            "dataloader_drop_last"
        ),
        Some(json!(false))
    );
    assert_eq!(
        yaml_of("dataloader_drop_last: true\n")["dataloader_drop_last"],
        json!(true)
    );
    round_trips("dataloader_drop_last: true\n");
    round_trips("sample_packing: true\n");
}

#[test]
fn yaml_1_1_integers_with_underscores() {
    assert_eq!(
        ir("sequence_len: 8_192\n", "data.sequence_len"),
        json!(8192)
    );
}

// ------------------------------------------------------------------ fuzz

/// A small deterministic PRNG (xorshift64*), so the fuzz needs no dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// One random edit of a YAML text: drop, duplicate, swap or re-indent a line, replace a value
/// by an odd one, splice a random key, or flip random bytes.
fn mutate(text: &str, rng: &mut Rng) -> String {
    const VALUES: [&str; 14] = [
        "",
        "null",
        "true",
        "-1",
        "1e400",
        "0",
        "[]",
        "{}",
        "\"x\"",
        "[1, [2, {a: b}]]",
        "auto",
        "&a 1",
        "*a",
        "'\\xff'",
    ];
    const KEYS: [&str; 12] = [
        "adapter",
        "load_in_4bit",
        "lora_target_modules",
        "datasets",
        "fsdp_config",
        "deepspeed",
        "warmup_ratio",
        "plugins",
        "batch_size",
        "bf16",
        "special_tokens",
        "lora_target_linear",
    ];
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    if lines.is_empty() {
        lines.push(String::new());
    }
    let i = rng.below(lines.len());
    match rng.below(8) {
        0 => {
            lines.remove(i);
        }
        1 => lines.insert(i, lines[i].clone()),
        2 => {
            let j = rng.below(lines.len());
            lines.swap(i, j);
        }
        3 => lines[i] = format!("{}{}", " ".repeat(rng.below(5)), lines[i].trim_start()),
        4 => {
            if let Some((k, _)) = lines[i].split_once(':') {
                lines[i] = format!("{k}: {}", VALUES[rng.below(VALUES.len())]);
            }
        }
        5 => lines.insert(
            i,
            format!(
                "{}: {}",
                KEYS[rng.below(KEYS.len())],
                VALUES[rng.below(VALUES.len())]
            ),
        ),
        6 => {
            let mut bytes = lines[i].clone().into_bytes();
            if !bytes.is_empty() {
                let b = rng.below(bytes.len());
                const ODD: &[u8] = b"-:[]{}#&*!|>'\"%@` \t";
                bytes[b] = ODD[rng.below(ODD.len())];
            }
            lines[i] = String::from_utf8_lossy(&bytes).into_owned();
        }
        _ => {
            let cut = rng.below(text.len() + 1);
            return text.get(..cut).unwrap_or(text).to_string();
        }
    }
    lines.join("\n")
}

/// ~2000 mutations of the Axolotl fixtures: reading never panics, and whatever reads also
/// writes without panicking.
#[test]
fn fuzz_mutated_fixtures_never_panic() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/configs/axolotl");
    let mut corpus: Vec<String> = std::fs::read_dir(&dir)
        .map(|rd| {
            rd.filter_map(|e| std::fs::read_to_string(e.ok()?.path()).ok())
                .collect()
        })
        .unwrap_or_default();
    corpus.push(format!("{BASE}{LORA}"));
    let per = 2000 / corpus.len() + 1;
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut read_ok = 0;
    for text in &corpus {
        let mut current = text.clone();
        for n in 0..per {
            // Mostly fresh single edits, sometimes an accumulating chain.
            if n % 4 == 0 {
                current = text.clone();
            }
            current = mutate(&current, &mut rng);
            let source = Source::new("fuzz.yaml", current.clone());
            let outcome = std::panic::catch_unwind(|| {
                if let Ok(p) = read(&source) {
                    let _ = write(&p.resolved, "axolotl", &WriteOptions::default());
                    true
                } else {
                    false
                }
            });
            match outcome {
                Ok(true) => read_ok += 1,
                Ok(false) => {}
                Err(_) => panic!("panicked on:\n{current}"),
            }
        }
    }
    assert!(
        read_ok > 100,
        "too few mutations read at all ({read_ok}); the fuzz is not exercising the reader"
    );
}

/// A misspelt method is a typo at its line with the allowed values, not "not supported".
#[test]
fn misspelt_adapter_is_located_with_the_allowed_values() {
    let e = match parse("adapter: qlorra\nload_in_4bit: true\n") {
        Err(ReadError::Invalid(e)) => e,
        other => panic!("expected an invalid-input error, got {other:?}"),
    };
    assert_eq!(e.len(), 1);
    assert_eq!(e[0].id, "unknown-value");
    assert!(e[0].message.contains("adapter.method") && e[0].message.contains("`adapter`"));
    let line = BASE.lines().count() + 1;
    assert_eq!((e[0].line, e[0].column), (Some(line), Some(1)));
    let help = e[0].help.as_deref().unwrap();
    assert!(help.contains("expected one of lora, qlora, full"), "{help}");
}

/// A closed-set value the field table carries as text (`attn_implementation`) is refused when
/// the spec is built, at the key its provenance records.
#[test]
fn unknown_attention_is_located_at_its_key() {
    let e = errors(&format!("{LORA}attn_implementation: flash_attn\n"));
    assert_eq!(e.len(), 1, "{e:?}");
    assert_eq!(e[0].id, "unknown-value");
    assert_eq!(
        e[0].message,
        "unknown model.attention `flash_attn` (from `attn_implementation`)"
    );
    let line = BASE.lines().count() + LORA.lines().count() + 1;
    assert_eq!((e[0].line, e[0].column), (Some(line), Some(1)));
    assert!(e[0]
        .help
        .as_deref()
        .unwrap()
        .contains("sdpa, flash_attention_2"));
}

#[test]
fn eval_steps_with_a_validation_split_evaluates_periodically_and_on_start() {
    let y = "val_set_size: 0.125\neval_steps: 4\n";
    let t = ok(y).resolved.spec.training;
    assert_eq!((t.eval_every_n_steps, t.eval_on_start), (4, true));
    let out = yaml_of(y);
    assert_eq!(out["eval_strategy"], "steps");
    assert_eq!(out["eval_steps"], 4);
    round_trips(y);
    // eval_strategy steps without eval_steps: HF falls back to logging_steps
    let t = ok("val_set_size: 0.1\neval_strategy: steps\nlogging_steps: 5\n")
        .resolved
        .spec
        .training;
    assert_eq!((t.eval_every_n_steps, t.eval_on_start), (5, true));
}

#[test]
fn eval_keys_without_a_validation_split_or_steps_are_kept() {
    // no val_set_size: Axolotl sets eval_strategy "no"
    let p = ok("eval_steps: 4\n");
    assert_eq!(p.resolved.spec.training.eval_every_n_steps, 0);
    assert!(!p.resolved.spec.training.eval_on_start);
    assert_eq!(
        pass("eval_steps: 4\n", "eval_steps"),
        Some(serde_json::json!(4))
    );
    // a fraction of the total steps, and per-epoch evaluation: not in the IR
    let y = "val_set_size: 0.1\neval_steps: 0.25\n";
    assert_eq!(ok(y).resolved.spec.training.eval_every_n_steps, 0);
    assert_eq!(pass(y, "eval_steps"), Some(serde_json::json!(0.25)));
    let y = "val_set_size: 0.1\neval_strategy: epoch\n";
    assert_eq!(pass(y, "eval_strategy"), Some(serde_json::json!("epoch")));
    assert!(errors("val_set_size: 0.1\neval_steps: -3\n")
        .iter()
        .any(|d| d.id == "type-mismatch"));
}
