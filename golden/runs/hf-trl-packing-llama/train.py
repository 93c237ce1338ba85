#!/usr/bin/env python3
"""HF transformers + PEFT + TRL 1.9 SFTTrainer with `packing=True`, set up the way an Unsloth
notebook is (`Llama3.1_(8B)-Alpaca` with packing on), on the tiny Llama fixture, CPU, fp32.
As golden/runs/hf-trl-unsloth-style-llama (same model, data, LoRA, optimizer, schedule), with:

- `packing=True` and TRL's default `packing_strategy="bfd"` (best-fit decreasing, overflow
  truncated), `max_length=256`: the 64 Alpaca samples (55-115 tokens) become ~20 packed rows;
- padding-free batches, which TRL turns on for bfd packing: a micro-batch of 2 packed rows is
  flattened into ONE row, `position_ids` restart at every document, no attention mask, and
  the label of each document's first token is -100;
- attention confined to each document: transformers 5.16 `find_packed_sequence_indices` turns
  the restarting position_ids into a block-diagonal causal mask (sdpa on CPU). After training,
  this script checks it on the first recorded micro-batch (`contamination check` in the log):
  the logits of the flattened row equal each document's logits run alone.

Usage (from the repo root, in the `ax` env): python golden/runs/hf-trl-packing-llama/train.py OUTPUT_DIR
Env: GOLDEN_BATCHES=path.jsonl records every collated micro-batch (input_ids, labels,
position_ids of the one flattened row).
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
max_seq_length = 256

model = AutoModelForCausalLM.from_pretrained("fixtures/models/tiny-llama", dtype=torch.float32)
tokenizer = AutoTokenizer.from_pretrained("fixtures/models/tiny-llama")
print(f"attn_implementation={model.config._attn_implementation}", flush=True)

# FastLanguageModel.get_peft_model(model, r=16, 7 projections, lora_alpha=16, lora_dropout=0,
# random_state=3407) -> pinned: init_adapter/ was made once with PEFT under torch.manual_seed(3407).
model = PeftModel.from_pretrained(model, os.path.join(RUN, "init_adapter"), is_trainable=True)
model.print_trainable_parameters()

alpaca_prompt = """Below is an instruction that describes a task, paired with an input that provides further context. Write a response that appropriately completes the request.

### Instruction:
{}

### Input:
{}

### Response:
{}"""

EOS_TOKEN = tokenizer.eos_token


def formatting_prompts_func(examples):
    texts = []
    for instruction, input, output in zip(examples["instruction"], examples["input"], examples["output"]):
        texts.append(alpaca_prompt.format(instruction, input, output) + EOS_TOKEN)
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
        packing=True,  # packing_strategy "bfd" (TRL default) -> padding_free collator
        per_device_train_batch_size=2,
        gradient_accumulation_steps=2,
        warmup_steps=5,
        max_steps=32,
        learning_rate=3e-3,
        logging_steps=1,
        optim="adamw_torch",  # notebooks: adamw_8bit (see hf-trl-adamw8bit-llama)
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
print(f"padding_free={trainer.padding_free} packing_strategy={trainer.args.packing_strategy} "
      f"packed_rows={len(trainer.train_dataset)}", flush=True)
print("seq_lengths=" + json.dumps([list(map(int, r)) for r in trainer.train_dataset["seq_lengths"]]), flush=True)

first = {}
path = os.environ.get("GOLDEN_BATCHES")
if path:
    inner = trainer.data_collator
    fh = open(path, "w")
    n = [0]

    def recording_collator(features, *a, **kw):
        batch = inner(features, *a, **kw)
        assert "attention_mask" not in batch, "padding-free: no attention mask"
        ids, labels, pos = batch["input_ids"], batch["labels"], batch["position_ids"]
        rows = [{"input_ids": ids[i].tolist(), "labels": labels[i].tolist(), "position_ids": pos[i].tolist()}
                for i in range(ids.shape[0])]
        fh.write(json.dumps({"micro_batch": n[0], "padded_len": int(ids.shape[1]),
                             "seq_lengths": [list(map(int, f["seq_lengths"])) for f in features],
                             "rows": rows}) + "\n")
        fh.flush()
        if n[0] == 0:
            first.update({k: v.clone() for k, v in batch.items()})
        n[0] += 1
        return batch

    trainer.data_collator = recording_collator

trainer_stats = trainer.train()
print(trainer_stats)
model.save_pretrained(os.path.join(output_dir, "lora_model"))

# Contamination check (after training, so nothing above is perturbed): the flattened row of the
# first micro-batch, as the trainer feeds it (position_ids, no attention mask, use_cache=False),
# against every document run alone with the same (final) weights.
if first:
    model.eval()
    with torch.no_grad():
        packed = model(input_ids=first["input_ids"], position_ids=first["position_ids"], use_cache=False).logits[0]
        pos = first["position_ids"][0]
        starts = [i for i in range(len(pos)) if pos[i] == 0] + [len(pos)]
        worst = 0.0
        for s, e in zip(starts, starts[1:]):
            alone = model(input_ids=first["input_ids"][:, s:e], use_cache=False).logits[0]
            worst = max(worst, (packed[s:e] - alone).abs().max().item())
        causal = model(input_ids=first["input_ids"], use_cache=False).logits[0]
        cross = (packed - causal).abs().max().item()
    print(f"contamination check: {len(starts) - 1} documents, max |logit(packed) - logit(alone)| = {worst:.3e}; "
          f"vs one causal sequence (cross-document attention) {cross:.3e}", flush=True)
