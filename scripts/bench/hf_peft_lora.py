"""The Hugging Face + PEFT peer of `tunebridge bench`: the same LoRA job on the same shape.

Llama-3.1-8B dimensions, random init on the GPU in bf16 (no weights on disk), SDPA attention,
PEFT LoRA r=16 α=16 (dropout 0) on q,k,v,o,gate,up,down (adapters kept fp32 by PEFT's
autocast_adapter_dtype), labels = input_ids (transformers shifts them; loss = token mean),
clip 1.0, torch AdamW lr 1e-4 (foreach), random token batches (B, T), no padding.
Gradient checkpointing: transformers' non-reentrant `torch.utils.checkpoint` per decoder layer.
Timing: torch.cuda.synchronize() around each step, median of the timed steps; tokens/s = B·T /
median. Memory: torch.cuda.max_memory_allocated/reserved over the steps (peaks reset after the
setup) and the driver's used bytes at the end minus those before the model existed
(torch.cuda.mem_get_info), the same three readings the tunebridge bench reports.

    python3 scripts/bench/hf_peft_lora.py --batch 4 --recompute on --json out.jsonl
"""

import argparse
import json
import statistics
import time

import torch
import transformers
import peft
from peft import LoraConfig, get_peft_model
from transformers import LlamaConfig, LlamaForCausalLM


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--seq", type=int, default=2048)
    ap.add_argument("--recompute", choices=["on", "off"], default="on")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--shape", choices=["llama3-8b", "tiny"], default="llama3-8b")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--json")
    a = ap.parse_args()

    dev = torch.device(a.device)
    cuda = dev.type == "cuda"
    torch.manual_seed(0)
    free_before = torch.cuda.mem_get_info()[0] if cuda else 0
    kw = dict(
        vocab_size=128256, hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
        num_attention_heads=32, num_key_value_heads=8, head_dim=128, rms_norm_eps=1e-5,
        rope_theta=500000.0, max_position_embeddings=131072,
        rope_scaling={"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0, "low_freq_factor": 1.0,
                      "high_freq_factor": 4.0, "original_max_position_embeddings": 8192},
        tie_word_embeddings=False, attn_implementation="sdpa",
    )
    if a.shape == "tiny":
        kw.update(vocab_size=512, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, head_dim=16, rope_theta=10000.0,
                  max_position_embeddings=4096)
        del kw["rope_scaling"]
    cfg = LlamaConfig(**kw)
    torch.set_default_dtype(torch.bfloat16)
    with dev:
        model = LlamaForCausalLM(cfg)
    torch.set_default_dtype(torch.float32)
    model.config.use_cache = False
    if a.recompute == "on":
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    lcfg = LoraConfig(r=16, lora_alpha=16, lora_dropout=0.0, bias="none", task_type="CAUSAL_LM",
                      target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"])
    model = get_peft_model(model, lcfg)
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-4, weight_decay=0.0)
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    if cuda:  # peaks over the training steps, not the setup (as `tunebridge bench` measures)
        sync()
        torch.cuda.reset_peak_memory_stats()
    result = {
        "engine": "hf+peft", "shape": a.shape, "transformers": transformers.__version__, "peft": peft.__version__,
        "torch": torch.__version__, "batch": a.batch, "seq": a.seq, "recompute": a.recompute == "on",
        "adapter_dtype": str(params[0].dtype).replace("torch.", ""),
        "lora_params": sum(p.numel() for p in params), "warmup": a.warmup,
        "step_secs": [], "losses": [], "error": None,
    }
    for step in range(a.warmup + a.steps):
        ids = torch.randint(0, cfg.vocab_size, (a.batch, a.seq), device=dev)
        sync()
        t0 = time.perf_counter()
        try:
            loss = model(input_ids=ids, labels=ids).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            opt.zero_grad(set_to_none=True)
            sync()
        except torch.OutOfMemoryError as e:
            result["error"] = "CUDA out of memory: " + str(e).splitlines()[0]
            break
        dt = time.perf_counter() - t0
        result["losses"].append(loss.item())
        if step >= a.warmup:
            result["step_secs"].append(dt)
    if result["step_secs"]:
        med = statistics.median(result["step_secs"])
        result["median_step_secs"] = med
        result["tokens_per_step"] = a.batch * a.seq
        result["tokens_per_sec"] = a.batch * a.seq / med
    if cuda:
        result["peak_allocated_bytes"] = torch.cuda.max_memory_allocated()
        result["peak_reserved_bytes"] = torch.cuda.max_memory_reserved()
        result["peak_allocated_gib"] = result["peak_allocated_bytes"] / 2**30
        result["device_used_bytes"] = free_before - torch.cuda.mem_get_info()[0]
    line = json.dumps(result)
    print(line, flush=True)
    if a.json:
        with open(a.json, "a") as f:
            f.write(line + "\n")


if __name__ == "__main__":
    main()
