#!/usr/bin/env python
# Unsloth script written by tunebridge from fixtures/configs/axolotl/qwen2_5-0_5b-full-completion-liger.yaml (axolotl).
# Values that differ from Unsloth's defaults are explicit; `parity:` comments mark the ones
# chosen so the run matches the source. Run: python train_unsloth.py

from unsloth import FastLanguageModel
import torch

max_seq_length = 1024
dtype = None # None: bf16 where the GPU supports it
load_in_4bit = False # parity: axolotl default; unsloth would use nf4

model, tokenizer = FastLanguageModel.from_pretrained(
    model_name = "Qwen/Qwen2.5-0.5B",
    max_seq_length = max_seq_length,
    dtype = dtype,
    load_in_4bit = load_in_4bit,
    full_finetuning = True,
    attn_implementation = "flash_attention_2",
    use_gradient_checkpointing = False,
)

from datasets import load_dataset

EOS_TOKEN = tokenizer.eos_token # Must add EOS_TOKEN

def formatting_prompts_func(examples):
    return { "text" : [text + EOS_TOKEN for text in examples["text"]] }


dataset = load_dataset("roneneldan/TinyStories", split = "train[:5%]")
dataset = dataset.map(formatting_prompts_func, batched = True,)

from trl import SFTConfig, SFTTrainer
trainer = SFTTrainer(
    model = model,
    processing_class = tokenizer,
    train_dataset = dataset,
    args = SFTConfig(
        dataset_text_field = "text",
        max_seq_length = max_seq_length,
        packing = True,
        per_device_train_batch_size = 8,
        gradient_accumulation_steps = 1,
        warmup_steps = 100,
        num_train_epochs = 1,
        learning_rate = 5e-5,
        logging_steps = 10,
        optim = "adamw_torch_fused",
        weight_decay = 0.0,
        lr_scheduler_type = "cosine",
        seed = 42, # parity: axolotl default; unsloth would use 3407
        output_dir = "./outputs/qwen25-05b-completion",
        report_to = "none",
        save_strategy = "epoch",
        tf32 = True,
        average_tokens_across_devices = False, # parity: axolotl default; unsloth would use global_tokens
        save_total_limit = 4, # parity: axolotl default; unsloth would use 0
    ),
)

trainer_stats = trainer.train()

model.save_pretrained("model")
tokenizer.save_pretrained("model")
