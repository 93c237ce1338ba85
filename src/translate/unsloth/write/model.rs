//! Writer sections: the model and how it is loaded, then the LoRA adapter.

use super::context::{gc_value, Ctx, Src};
use super::literals::py_str;
use crate::ir::{Attention, BaseWeights, Bias, Dtype, PrecisionMode, Recompute, RunSpec};
use crate::translate::emitter::Emitter;
use crate::translate::report::Status;
use crate::translate::unsloth::common::FW;
use crate::translate::unsloth::script_data::script_data;
use crate::translate::{data, families};
use serde_json::json;

/// The model, its loading (quantisation, dtype, full fine-tuning), tokens and chat template.
pub(super) fn model_and_method(em: &mut Emitter, ctx: &mut Ctx, s: &Src) {
    let Src { spec, full, .. } = *s;
    length_and_precision(em, s);
    base_quantization(em, s);
    if full {
        full_finetune(em, spec);
    }
    model_and_tokenizer(em, ctx, s);
    chat_template(em, ctx, s);
}

/// The sequence length, the load dtype and the trainer's precision flags.
fn length_and_precision(em: &mut Emitter, s: &Src) {
    let spec = s.spec;
    let seq = spec.data.sequence_len;
    let c = em.parity_comment("data.sequence_len", &json!(seq));
    em.put(
        "from_pretrained.max_seq_length",
        json!(seq),
        &["data.sequence_len"],
        Status::Carried,
        &c,
    );
    let (dtype, flag) = match spec.precision.compute_dtype {
        Dtype::Fp16 => ("torch.float16", Some("fp16")),
        Dtype::Fp32 => ("torch.float32", None),
        Dtype::Bf16 => ("None", None),
    };
    em.put(
        "from_pretrained.dtype",
        json!(dtype),
        &["precision.compute_dtype"],
        Status::Carried,
        if dtype == "None" {
            "None: bf16 where the GPU supports it"
        } else {
            ""
        },
    );
    if let Some(f) = flag {
        em.put(
            &format!("SFTConfig.{f}"),
            json!(true),
            &["precision.compute_dtype"],
            Status::Carried,
            "",
        );
    } else if spec.precision.compute_dtype == Dtype::Fp32 {
        em.put(
            "SFTConfig.bf16",
            json!(false),
            &["precision.compute_dtype"],
            Status::Carried,
            "",
        );
        em.put(
            "SFTConfig.fp16",
            json!(false),
            &["precision.compute_dtype"],
            Status::Carried,
            "",
        );
    }
    if spec.precision.mode == PrecisionMode::Pure {
        em.cover("precision.mode", Status::Approximated, "dtype", "Unsloth trains under autocast with fp32 LoRA weights, not the whole model in the compute dtype");
    }
}

/// The base weights' quantization: 4-bit or 8-bit loading and what bitsandbytes fixes.
fn base_quantization(em: &mut Emitter, s: &Src) {
    let spec = s.spec;
    let base = spec.quantization.base_weights;
    let q4 = base == BaseWeights::Nf4;
    let c = em.parity_comment("quantization.base_weights", &json!(base));
    em.put(
        "from_pretrained.load_in_4bit",
        json!(q4),
        &["quantization.base_weights", "adapter.method"],
        Status::Carried,
        &c,
    );
    match base {
        BaseWeights::Nf4 | BaseWeights::None => {}
        BaseWeights::Int8 => em.put(
            "from_pretrained.load_in_8bit",
            json!(true),
            &["quantization.base_weights"],
            Status::Carried,
            "",
        ),
        other @ BaseWeights::Fp4 => em.cover(
            "quantization.base_weights",
            Status::NotExpressible,
            "",
            &format!("Unsloth loads 4-bit bases as NF4; `{other}` has no switch"),
        ),
    }
    if q4 {
        if !spec.quantization.double_quant {
            em.cover(
                "quantization.double_quant",
                Status::NotExpressible,
                "",
                "Unsloth always quantises with double quantisation",
            );
        }
        if spec.quantization.block_size != 64 {
            em.cover(
                "quantization.block_size",
                Status::NotExpressible,
                "",
                "bitsandbytes' block size 64 is fixed",
            );
        }
    } else {
        em.cover("quantization.double_quant", Status::Defaulted, "", "");
        em.cover("quantization.block_size", Status::Defaulted, "", "");
    }
    if !spec.quantization.skip_modules.is_empty() {
        em.cover(
            "quantization.skip_modules",
            Status::Approximated,
            "",
            "Unsloth keeps its own list of 16-bit modules (lm_head, routers, …)",
        );
    }
}

/// A full fine-tune: the switch, and the LoRA settings it leaves unused.
fn full_finetune(em: &mut Emitter, spec: &RunSpec) {
    em.put(
        "from_pretrained.full_finetuning",
        json!(true),
        &["adapter.method"],
        Status::Carried,
        "",
    );
    em.cover(
        "adapter",
        Status::Defaulted,
        "",
        "not used by a full fine-tune",
    );
    em.cover("adapter.method", Status::Carried, "full_finetuning", "");
    // LoRA settings mean nothing here; the script reads back Unsloth's own.
    let defaults = data::defaults(FW);
    let unused: Vec<String> = em
        .flat
        .iter()
        .filter(|(k, v)| {
            k.starts_with("adapter.")
                && *k != "adapter.method"
                && defaults
                    .get(k)
                    .is_some_and(|d| !crate::translate::emitter::values_equal(d, v))
        })
        .map(|(k, _)| k.clone())
        .collect();
    for k in unused {
        em.cover(
            &k,
            Status::Approximated,
            "",
            "unused by a full fine-tune; not written",
        );
    }
    if spec.adapter.init_seed.is_none() {
        em.cover(
            "adapter.init_seed",
            Status::Approximated,
            "",
            "unused by a full fine-tune; not written",
        );
    }
}

/// The attention kernel, the tokenizer and its special tokens.
fn model_and_tokenizer(em: &mut Emitter, ctx: &mut Ctx, s: &Src) {
    let Src { spec, foreign, .. } = *s;
    if spec.model.attention != Attention::Sdpa {
        em.put(
            "from_pretrained.attn_implementation",
            json!(spec.model.attention),
            &["model.attention"],
            Status::Carried,
            "",
        );
        if foreign {
            em.cover("model.attention", Status::Approximated, "attn_implementation", "Unsloth's fast path picks its own attention kernel (FA2 if installed, else xformers/SDPA)");
        }
    }
    if spec.model.tokenizer != spec.model.base {
        em.cover(
            "model.tokenizer",
            Status::NotExpressible,
            "",
            "from_pretrained returns the model's own tokenizer",
        );
    } else {
        em.cover("model.tokenizer", Status::Carried, "model_name", "");
    }
    em.cover("model.family", Status::Carried, "model_name", "");
    em.cover("model.size", Status::Carried, "model_name", "");
    for (k, v) in &spec.model.special_tokens {
        ctx.tokenizer_lines
            .push(format!("tokenizer.{k} = {}", py_str(v)));
    }
    em.cover(
        "model.special_tokens",
        Status::Carried,
        "tokenizer.*_token",
        "",
    );
}

/// The chat template, by Unsloth's `get_chat_template` name.
fn chat_template(em: &mut Emitter, ctx: &mut Ctx, s: &Src) {
    let spec = s.spec;
    // Chat template.
    let ct = spec.model.chat_template.as_str();
    if !matches!(ct, "tokenizer_default" | "none" | "") {
        match script_data().template_by_ir(ct) {
            Some(t) => {
                ctx.chat_template = t.unsloth[0].clone();
                em.cover(
                    "model.chat_template",
                    Status::Carried,
                    "get_chat_template",
                    "",
                );
            }
            None => em.cover(
                "model.chat_template",
                Status::NotExpressible,
                "",
                &format!("Unsloth's get_chat_template has no `{ct}` template"),
            ),
        }
    }
}

/// The LoRA adapter, gradient checkpointing, and the fused kernels Unsloth decides on itself.
pub(super) fn adapter(em: &mut Emitter, ctx: &mut Ctx, s: &Src) {
    let Src { spec, full, .. } = *s;
    if !full {
        ctx.has_peft = true;
        lora_targets(em, spec);
        lora_settings(em, spec);
    } else {
        checkpointing(em, spec, "from_pretrained.use_gradient_checkpointing");
    }
    kernels_and_compile(em, s);
}

/// `use_gradient_checkpointing` at `key` (`from_pretrained` for a full fine-tune,
/// `get_peft_model` for LoRA); Unsloth's offloaded checkpoints stand in for activation offload.
fn checkpointing(em: &mut Emitter, spec: &RunSpec, key: &str) {
    let (gc, gc_comment) = gc_value(em);
    em.put(
        key,
        gc,
        &["memory.gradient_checkpointing"],
        Status::Carried,
        &gc_comment,
    );
    if spec.memory.activation_offloading {
        em.cover(
            "memory.activation_offloading",
            Status::Approximated,
            "use_gradient_checkpointing",
            "Unsloth offloads the checkpointed activations (\"unsloth\" checkpointing)",
        );
    }
}

/// The LoRA target modules; embeddings and the LM head go in full next to LoRA.
fn lora_targets(em: &mut Emitter, spec: &RunSpec) {
    let (to_save_targets, mut targets): (Vec<String>, Vec<String>) = spec
        .adapter
        .target_modules
        .iter()
        .cloned()
        .partition(|m| ["embed_tokens", "lm_head"].contains(&m.as_str()));
    if !to_save_targets.is_empty() {
        em.cover(
            "adapter.target_modules",
            Status::NotExpressible,
            "target_modules",
            &format!(
                "Unsloth trains {} in full, not with LoRA; left out",
                to_save_targets.join(" and ")
            ),
        );
    }
    let mut bad_save = Vec::new();
    for m in &spec.adapter.modules_to_save {
        if ["embed_tokens", "lm_head"].contains(&m.as_str()) {
            targets.push(m.clone());
        } else {
            bad_save.push(m.clone());
        }
    }
    em.put(
        "get_peft_model.target_modules",
        json!(targets),
        &["adapter.target_modules", "adapter.modules_to_save"],
        Status::Carried,
        "",
    );
    if !bad_save.is_empty() {
        em.cover(
            "adapter.modules_to_save",
            Status::NotExpressible,
            "",
            "Unsloth trains only embed_tokens and lm_head in full next to LoRA",
        );
    }
    if spec.adapter.target_all_linear {
        em.cover(
            "adapter.target_all_linear",
            Status::Approximated,
            "target_modules",
            "written as the family's list of linear layers",
        );
    } else {
        em.cover(
            "adapter.target_all_linear",
            Status::Carried,
            "target_modules",
            "",
        );
    }
}

/// The LoRA settings `get_peft_model` takes: checkpointing, init seed; what it fixes is reported.
fn lora_settings(em: &mut Emitter, spec: &RunSpec) {
    checkpointing(em, spec, "get_peft_model.use_gradient_checkpointing");
    if spec.memory.activation_offloading && spec.memory.gradient_checkpointing == Recompute::On {
        em.cover(
            "memory.gradient_checkpointing",
            Status::Approximated,
            "use_gradient_checkpointing",
            "written as \"unsloth\" (recompute + CPU offload)",
        );
    }
    if spec.adapter.init_seed.is_none() {
        em.put(
            "get_peft_model.random_state",
            json!(spec.training.seed),
            &[],
            Status::Carried,
            "parity: the run seed",
        );
        em.cover("adapter.init_seed", Status::Approximated, "random_state", "Unsloth re-seeds right before LoRA init (random_state); the source drew the init from the run seed's stream");
    }
    if spec.adapter.weight_dtype != Dtype::Fp32 {
        em.cover(
            "adapter.weight_dtype",
            Status::Approximated,
            "",
            "Unsloth keeps LoRA weights and their optimizer state in fp32",
        );
    }
    if !spec.adapter.init_from.is_empty() {
        em.cover(
            "adapter.init_from",
            Status::NotExpressible,
            "",
            "a notebook-shaped script starts from a fresh adapter",
        );
    }
}

/// Fused kernels and compile: Unsloth decides; report where the source differs.
fn kernels_and_compile(em: &mut Emitter, s: &Src) {
    let Src {
        spec, opts, full, ..
    } = *s;
    let family = families::by_name(&spec.model.family);
    let model_type = family.map(|f| f.hf_model_type.clone());
    let fast_path = model_type
        .as_ref()
        .is_none_or(|t| script_data().fast_path_model_types.contains(t));
    let fused_unsloth = !full
        && fast_path
        && spec.adapter.dropout == 0.0
        && spec.adapter.bias == Bias::None
        && !spec.adapter.use_dora;
    if spec.adapter.fused_kernels != fused_unsloth && !full {
        em.cover("adapter.fused_kernels", Status::NotExpressible, "", if fused_unsloth { "Unsloth always runs its fused LoRA kernels here (dropout 0, bias none); they cannot be turned off" } else { "Unsloth's fused LoRA kernels only run on the fast path with dropout 0 and bias none" });
    } else if fused_unsloth && opts.strict {
        em.cover("adapter.fused_kernels", Status::Approximated, "", "--strict asks for reference numerics, but Unsloth's fused kernels cannot be turned off");
    } else {
        em.cover("adapter.fused_kernels", Status::Carried, "", "");
    }
    if spec.memory.compile == fast_path {
        em.cover(
            "memory.compile",
            Status::NotExpressible,
            "",
            if fast_path {
                "Unsloth's fast path runs hand-written kernels, not torch.compile"
            } else {
                "Unsloth compiles the patched modeling code of this family"
            },
        );
    } else {
        em.cover("memory.compile", Status::Carried, "", "");
    }
}
