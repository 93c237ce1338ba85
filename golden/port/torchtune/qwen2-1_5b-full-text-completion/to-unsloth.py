#!/usr/bin/env python
# Unsloth script written by tunebridge from fixtures/configs/torchtune/qwen2-1_5b-full-text-completion.yaml (torchtune).
# Values that differ from Unsloth's defaults are explicit; `parity:` comments mark the ones
# chosen so the run matches the source. Run: python train_unsloth.py

from unsloth import FastLanguageModel
from unsloth.chat_templates import get_chat_template
import torch

max_seq_length = 512
dtype = None # None: bf16 where the GPU supports it
load_in_4bit = False # parity: torchtune default; unsloth would use nf4

model, tokenizer = FastLanguageModel.from_pretrained(
    model_name = "/tmp/Qwen2-1.5B-Instruct",
    max_seq_length = max_seq_length,
    dtype = dtype,
    load_in_4bit = load_in_4bit,
    full_finetuning = True,
    use_gradient_checkpointing = True,
)

tokenizer = get_chat_template(
    tokenizer,
    chat_template = "chatml",
)

from datasets import load_dataset

EOS_TOKEN = tokenizer.eos_token # Must add EOS_TOKEN

def formatting_prompts_func(examples):
    return { "text" : [text + EOS_TOKEN for text in examples["text"]] }


dataset = load_dataset("json", data_files = "fixtures/data/completion.jsonl", split = "train")
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
        per_device_train_batch_size = 2,
        gradient_accumulation_steps = 1,
        warmup_ratio = 0.0, # parity: no warmup; Unsloth would warm up over 10% of the steps
        num_train_epochs = 1,
        learning_rate = 2e-5,
        logging_steps = 1,
        optim = "paged_adamw_8bit",
        weight_decay = 0.01, # parity: torchtune default; unsloth would use 0.001
        lr_scheduler_type = "constant", # parity: torchtune default; unsloth would use linear
        seed = 3,
        data_seed = 0, # parity: torchtune default; unsloth would use 3407
        output_dir = "/tmp/torchtune/qwen2_1_5B/full_single_device",
        report_to = "none",
        save_strategy = "epoch",
        max_grad_norm = 0.0, # parity: torchtune default; unsloth would use 1.0
    ),
)

trainer_stats = trainer.train()

model.save_pretrained("model")
tokenizer.save_pretrained("model")
