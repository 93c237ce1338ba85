#!/usr/bin/env python3
"""HF transformers + PEFT + TRL SFTTrainer set up the way Unsloth's Alpaca notebook is, with the
notebooks' optimizer, `optim="adamw_8bit"`: bitsandbytes 0.50.2 `AdamW(optim_bits=8)`, whose CPU
kernel (bitsandbytes/backends/cpu/ops.py) runs here. Tiny Llama fixture, CPU, fp32.

LoRA r=64 (alpha 64) on the 7 projections of a 64-wide model: every A matrix and the B of
q/o/gate/up/down hold >= 4096 elements, so their states are 8-bit blockwise (absmax per 256);
the B of k/v (32x64 = 2048) are below bitsandbytes' min_8bit_size and keep 32-bit states. LoRA
rather than a full fine-tune so the run isolates the optimizer: HF Trainer forces the
embedding to 32-bit anyway, and the small norms would be 32-bit too.
Otherwise as golden/runs/hf-trl-unsloth-style-llama (no 4-bit base, no padding-free batching,
no Unsloth kernels, loss_type "nll" as UnslothSFTConfig).

Usage (from the repo root, in the `ax` env): python golden/runs/hf-trl-adamw8bit-llama/train.py OUTPUT_DIR
Env: GOLDEN_BATCHES=path.jsonl records every collated micro-batch (padding stripped).
"""
import json
import os
import sys

import torch
from datasets import load_dataset
from peft import PeftModel
from transformers import AutoModelForCausalLM, AutoTokenizer
from trl import SFTConfig, SFTTrainer

RUN = os.path.dirname(os.path.abspath(__file__))
output_dir = sys.argv[1]
max_seq_length = 128

# FastLanguageModel.from_pretrained(...) stand-in: the fixture in fp32 (dtype=None on CPU).
model = AutoModelForCausalLM.from_pretrained("fixtures/models/tiny-llama", dtype=torch.float32)
tokenizer = AutoTokenizer.from_pretrained("fixtures/models/tiny-llama")

# FastLanguageModel.get_peft_model(model, r=64, target_modules=[7 projections], lora_alpha=64,
# lora_dropout=0, bias="none", random_state=3407, use_rslora=False, loftq_config=None)
# -> pinned: the adapter in init_adapter/ was made once with PEFT under torch.manual_seed(3407).
model = PeftModel.from_pretrained(model, os.path.join(RUN, "init_adapter"), is_trainable=True)
model.print_trainable_parameters()

alpaca_prompt = """Below is an instruction that describes a task, paired with an input that provides further context. Write a response that appropriately completes the request.

### Instruction:
{}

### Input:
{}

### Response:
{}"""

EOS_TOKEN = tokenizer.eos_token  # Must add EOS_TOKEN


def formatting_prompts_func(examples):
    instructions = examples["instruction"]
    inputs = examples["input"]
    outputs = examples["output"]
    texts = []
    for instruction, input, output in zip(instructions, inputs, outputs):
        # Must add EOS_TOKEN, otherwise your generation will go on forever!
        text = alpaca_prompt.format(instruction, input, output) + EOS_TOKEN
        texts.append(text)
    return {"text": texts}


dataset = load_dataset("json", data_files="fixtures/data/alpaca.json", split="train")
dataset = dataset.map(formatting_prompts_func, batched=True)

trainer = SFTTrainer(
    model=model,
    processing_class=tokenizer,
    train_dataset=dataset,
    args=SFTConfig(
        dataset_text_field="text",
        max_length=max_seq_length,
        packing=False,
        per_device_train_batch_size=2,
        gradient_accumulation_steps=2,
        warmup_steps=5,
        max_steps=32,
        learning_rate=3e-3,
        logging_steps=1,
        optim="adamw_8bit",  # bitsandbytes 0.50.2 has a CPU kernel
        weight_decay=0.001,
        lr_scheduler_type="linear",
        seed=3407,
        output_dir=output_dir,
        report_to="none",
        max_grad_norm=1.0,
        loss_type="nll",  # UnslothSFTConfig default (TRL's own default is chunked_nll)
        bf16=False,
        fp16=False,
        save_strategy="steps",
        save_steps=32,
        dataloader_num_workers=0,
        dataloader_pin_memory=False,
    ),
)

path = os.environ.get("GOLDEN_BATCHES")
if path:
    inner = trainer.data_collator
    fh = open(path, "w")
    n = [0]

    def recording_collator(features, *a, **kw):
        batch = inner(features, *a, **kw)
        ids, labels = batch["input_ids"], batch["labels"]
        mask = batch.get("attention_mask")
        rows = []
        for i in range(ids.shape[0]):
            k = int(mask[i].sum()) if mask is not None else ids.shape[1]
            rows.append({"input_ids": ids[i, :k].tolist(), "labels": labels[i, :k].tolist()})
        fh.write(json.dumps({"micro_batch": n[0], "padded_len": int(ids.shape[1]), "rows": rows}) + "\n")
        fh.flush()
        n[0] += 1
        return batch

    trainer.data_collator = recording_collator

trainer_stats = trainer.train()
print(trainer_stats)
# proof of the path taken: the optimizer class and each state's dtype (uint8 = 8-bit blockwise)
opt = trainer.optimizer.optimizer if hasattr(trainer.optimizer, "optimizer") else trainer.optimizer
names = {id(p): n for n, p in model.named_parameters()}
print("optimizer:", type(opt).__module__, type(opt).__name__)
for group in opt.param_groups:
    for p in group["params"]:
        if p in opt.state:
            print("state:", names.get(id(p), "?"), tuple(p.shape), opt.state[p]["state1"].dtype)
model.save_pretrained(os.path.join(output_dir, "lora_model"))
