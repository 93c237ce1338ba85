//! Each refusal of [`check`], one test each, against the bundled default config (which the
//! engine runs in full).

use super::{check, ensure, quantises_base, Architecture};
use crate::diag::Source;
use crate::engine::error::{EngineError, Unsupported};
use crate::engine::flavour::Flavour;
use crate::ir::{BaseWeights, DatasetFormat, Loader, Method, Overlong, RunSpec, ScheduleKind};
use crate::translate::{self, Framework};

const DEFAULT: &str = "fixtures/default/axolotl-tiny-llama.yaml";

/// The bundled default: a LoRA run of the tiny Llama fixture, Axolotl semantics.
fn spec() -> RunSpec {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/");
    let text = std::fs::read_to_string(format!("{path}{DEFAULT}")).unwrap();
    let parsed = translate::read(Framework::Axolotl, &Source::new(DEFAULT, text)).unwrap();
    parsed.resolved.spec
}

/// The fields refused, in order, judged from the family (as `run --check` does).
fn refused(spec: &RunSpec, flavour: Flavour) -> Vec<String> {
    check(spec, flavour, Architecture::FromFamily)
        .into_iter()
        .map(|u| u.field)
        .collect()
}

/// The one refusal of a spec, as it prints.
fn only(spec: &RunSpec, flavour: Flavour) -> String {
    let found = check(spec, flavour, Architecture::FromFamily);
    assert_eq!(found.len(), 1, "{found:?}");
    found[0].to_string()
}

#[test]
fn the_default_config_passes_under_every_flavour() {
    let s = spec();
    assert_eq!(s.model.family, "llama3");
    for f in [Flavour::Axolotl, Flavour::Unsloth, Flavour::TorchTune] {
        assert!(refused(&s, f).is_empty(), "{f:?}: {:?}", refused(&s, f));
    }
    assert!(ensure(&s, Flavour::Axolotl, Architecture::FromConfigJson).is_ok());
}

#[test]
fn an_unimplemented_optimizer_is_refused_naming_the_supported_ones() {
    let mut s = spec();
    s.optimizer.name = "lion_8bit".into();
    assert_eq!(
        only(&s, Flavour::Axolotl),
        "cannot run `optimizer.name` = `lion_8bit`: the engine implements torch AdamW \
         (adamw, adamw_torch, adamw_torch_fused, adamw_fused), bitsandbytes AdamW \
         (adamw_8bit, adamw_bnb_8bit, paged_adamw_8bit, paged_adamw_32bit) and torchao \
         low-bit AdamW (adamw_8bit_torchao, adamw_4bit_torchao); other optimizers are not \
         implemented"
    );
    for name in [
        "adamw_torch_fused",
        "adamw_8bit",
        "paged_adamw_8bit",
        "adamw_8bit_torchao",
        "adamw_4bit_torchao",
        "paged_adamw_32bit",
    ] {
        s.optimizer.name = name.into();
        assert!(refused(&s, Flavour::Axolotl).is_empty(), "{name}");
    }
}

#[test]
fn multipack_and_torchtune_packing_run_but_not_their_variants() {
    let mut s = spec();
    s.data.packing = true;
    assert!(refused(&s, Flavour::Axolotl).is_empty());
    assert!(refused(&s, Flavour::Unsloth).is_empty(), "TRL bfd packing");
    assert!(refused(&s, Flavour::TorchTune).is_empty());
    // Axolotl's sequential packing and curriculum sampler are not reproduced
    for key in ["sample_packing_sequentially", "curriculum_sampling"] {
        let mut v = s.clone();
        v.passthrough
            .insert(format!("axolotl.{key}"), serde_json::json!(true));
        assert!(
            only(&v, Flavour::Axolotl).contains("not reproduced"),
            "{key}"
        );
    }
    // a packed evaluation set runs too
    let mut v = s.clone();
    v.data.val_size = 0.05;
    assert!(refused(&v, Flavour::Axolotl).is_empty());
}

#[test]
fn torchtune_packing_of_a_completion_dataset_is_refused() {
    let mut s = spec();
    s.data.packing = true;
    s.data.datasets[0].format = DatasetFormat::Completion;
    assert!(only(&s, Flavour::TorchTune).contains("split_across_pack=True"));
}

#[test]
fn splitting_or_raising_on_overlong_samples_is_refused() {
    let mut s = spec();
    for o in [Overlong::Split, Overlong::Raise] {
        s.data.overlong = o;
        assert_eq!(refused(&s, Flavour::Axolotl), ["data.overlong"]);
    }
    s.data.overlong = Overlong::Truncate;
    assert!(refused(&s, Flavour::Axolotl).is_empty());
}

#[test]
fn fp4_bases_odd_blocks_and_int8_knobs_are_refused() {
    let mut s = spec();
    s.adapter.method = Method::Qlora;
    s.quantization.base_weights = BaseWeights::Nf4;
    assert!(quantises_base(&s));
    assert!(refused(&s, Flavour::Axolotl).is_empty());
    s.quantization.base_weights = BaseWeights::Fp4;
    s.quantization.block_size = 128;
    assert_eq!(
        refused(&s, Flavour::Axolotl),
        ["quantization.base_weights", "quantization.block_size"]
    );
    // LLM.int8 has no blocks; transformers' defaults run, other knobs are refused by name
    s.adapter.method = Method::Lora;
    s.quantization.base_weights = BaseWeights::Int8;
    assert!(quantises_base(&s));
    assert!(refused(&s, Flavour::Axolotl).is_empty());
    let key = "axolotl.bnb_config_kwargs.llm_int8_threshold";
    s.passthrough.insert(key.into(), serde_json::json!(6.0));
    assert!(refused(&s, Flavour::Axolotl).is_empty());
    s.passthrough.insert(key.into(), serde_json::json!(4.0));
    assert_eq!(
        refused(&s, Flavour::Axolotl),
        [format!("passthrough.{key}")]
    );
    assert!(only(&s, Flavour::Axolotl).contains("llm_int8_threshold 6"));
}

#[test]
fn a_full_fine_tune_of_a_quantised_base_is_refused() {
    let mut s = spec();
    s.adapter.method = Method::Full;
    assert!(refused(&s, Flavour::Axolotl).is_empty());
    s.quantization.base_weights = BaseWeights::Nf4;
    assert_eq!(refused(&s, Flavour::Axolotl), ["adapter.method"]);
}

#[test]
fn dora_runs_in_every_flavour() {
    let mut s = spec();
    s.adapter.use_dora = true;
    for f in [Flavour::Axolotl, Flavour::TorchTune, Flavour::Unsloth] {
        assert!(refused(&s, f).is_empty(), "{f:?}");
    }
}

#[test]
fn a_schedule_the_engine_lacks_is_refused_by_the_schedule_module() {
    let mut s = spec();
    s.schedule.kind = ScheduleKind::CosineWithRestarts;
    assert!(only(&s, Flavour::Axolotl).contains("the engine runs cosine, cosine_with_min_lr"));
}

#[test]
fn dataset_refusals_name_the_dataset_index() {
    let mut s = spec();
    let mut second = s.data.datasets[0].clone();
    second.loader = Loader::Csv;
    second.path = "org/not-a-local-path".into();
    second.split = "train[:10](closest)".into();
    second.prompt_style = "no_such_style".into();
    s.data.datasets.push(second);
    assert_eq!(
        refused(&s, Flavour::Axolotl),
        [
            "data.datasets.1.loader",
            "data.datasets.1.split",
            "data.datasets.1.prompt_style"
        ]
    );
}

#[test]
fn split_slicing_is_run_and_a_bad_spec_refused() {
    let mut s = spec();
    for ok in ["train[:10%]", "train[:2500]", "train[-5%:]+test[:3]"] {
        s.data.datasets[0].split = ok.into();
        assert!(refused(&s, Flavour::Axolotl).is_empty(), "{ok}");
        s.data.datasets[0].path = "org/hub-dataset".into();
        assert!(refused(&s, Flavour::Unsloth).is_empty(), "{ok}");
    }
    s.data.datasets[0].split = "train[:200%]".into();
    assert!(only(&s, Flavour::Axolotl).contains("between -100 and 100"));
}

#[test]
fn torchtune_framing_follows_the_framing_table() {
    let mut s = spec();
    for ok in ["mistral", "llama2", "code_llama2"] {
        s.model.family = ok.into();
        assert!(refused(&s, Flavour::TorchTune).is_empty(), "{ok}");
    }
    s.model.family = "llama".into(); // Llama 1 / TinyLlama: no TorchTune tokenizer
    assert!(only(&s, Flavour::TorchTune).contains("translators/torchtune/framing.toml"));
    s.data.datasets[0].format = DatasetFormat::Completion;
    assert!(refused(&s, Flavour::TorchTune).is_empty());
}

#[test]
fn families_the_engine_lacks_are_refused_only_without_weights() {
    let mut s = spec();
    s.model.family = "gemma".into();
    assert_eq!(
        only(&s, Flavour::Axolotl),
        "cannot run `model.family` = `gemma`: a `gemma` model; the engine implements llama, \
         mistral, qwen2, qwen3, phi3, gemma2, gemma3_text models (config.json model_type)"
    );
    s.model.family = String::new();
    assert!(only(&s, Flavour::Axolotl).contains("`(unknown)`"));
    // a run reads config.json instead, when it loads the model
    assert!(check(&s, Flavour::Axolotl, Architecture::FromConfigJson).is_empty());
}

#[test]
fn gemma_runs_on_hf_flavours_and_text_only_sizes() {
    let mut s = spec();
    for family in ["gemma2", "gemma3"] {
        s.model.family = family.into();
        s.model.base = format!("google/{family}-1b-it");
        assert!(refused(&s, Flavour::Axolotl).is_empty(), "{family}");
        assert!(refused(&s, Flavour::Unsloth).is_empty(), "{family}");
        // TorchTune 0.6.1 builds Gemma 2 (its own tree, model/torchtune.rs), no Gemma 3
        let tt = check(&s, Flavour::TorchTune, Architecture::FromFamily);
        assert_eq!(
            tt.iter().any(|u| u.reason.contains("no Gemma 3")),
            family == "gemma3",
            "{family}: {tt:?}"
        );
    }
    // multimodal Gemma 3, judged by the size tag without weights; config.json decides in a run
    s.model.base = "unsloth/gemma-3-4b-it".into();
    assert!(only(&s, Flavour::Unsloth).contains("multimodal Gemma 3"));
    assert!(check(&s, Flavour::Unsloth, Architecture::FromConfigJson).is_empty());
}

#[test]
fn mixture_of_experts_and_non_nf4_pre_quantised_bases_are_refused_by_name() {
    let mut s = spec();
    s.model.family = "mistral".into();
    s.model.base = "mistralai/Mixtral-8x7B-v0.1".into();
    assert!(only(&s, Flavour::Axolotl).contains("mixture-of-experts"));
    s.model.family = "llama3_2".into();
    s.model.base = "TheBloke/Llama-2-7B-GPTQ".into();
    assert!(only(&s, Flavour::Axolotl).contains("pre-quantised"));
    // bitsandbytes NF4 checkpoints load as they are, under adapters only
    s.model.base = "unsloth/Llama-3.2-1B-Instruct-bnb-4bit".into();
    assert!(refused(&s, Flavour::Unsloth).is_empty());
    s.adapter.method = Method::Full;
    assert!(refused(&s, Flavour::Unsloth).contains(&"adapter.method".to_string()));
    s.adapter.method = Method::Lora;
    s.model.base = "unsloth/Llama-3.2-1B-Instruct".into();
    assert!(refused(&s, Flavour::Axolotl).is_empty());
}

#[test]
fn a_run_gets_every_reason_in_one_error() {
    let mut s = spec();
    s.optimizer.name = "paged_lion_8bit".into();
    // Axolotl's curriculum sampler under packing is not reproduced
    s.data.packing = true;
    s.passthrough.insert(
        "axolotl.curriculum_sampling".into(),
        serde_json::json!(true),
    );
    let e = ensure(&s, Flavour::Axolotl, Architecture::FromConfigJson).unwrap_err();
    let EngineError::UnsupportedFeatures(found) = &e else {
        panic!("{e}")
    };
    let fields: Vec<&str> = found
        .iter()
        .map(|u: &Unsupported| u.field.as_str())
        .collect();
    assert_eq!(
        fields,
        ["passthrough.axolotl.curriculum_sampling", "optimizer.name"]
    );
    assert_eq!(e.to_string().lines().count(), 2, "{e}");
    assert!(e
        .to_string()
        .starts_with("cannot run `passthrough.axolotl.curriculum_sampling` = `true`: "));
}

#[test]
fn trl_packing_refuses_a_packed_eval_split_and_responses_only_masking() {
    let mut s = spec();
    s.data.packing = true;
    s.data.val_size = 0.1;
    s.data.drop_fully_masked = true;
    assert_eq!(
        refused(&s, Flavour::Unsloth),
        ["data.val_size", "data.drop_fully_masked"]
    );
    s.data.packing = false;
    s.data.padding_free = true;
    assert!(
        refused(&s, Flavour::Unsloth).is_empty(),
        "padding-free alone"
    );
}
