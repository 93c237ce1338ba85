#!/usr/bin/env python
# Unsloth script written by tunebridge from fixtures/configs/axolotl/mistral-7b-qlora-input-output.yaml (axolotl).
# Values that differ from Unsloth's defaults are explicit; `parity:` comments mark the ones
# chosen so the run matches the source. Run: python train_unsloth.py

from unsloth import FastLanguageModel
from unsloth.chat_templates import train_on_responses_only
import torch

max_seq_length = 8192
dtype = None # None: bf16 where the GPU supports it
load_in_4bit = True

model, tokenizer = FastLanguageModel.from_pretrained(
    model_name = "mistralai/Mistral-7B-v0.1",
    max_seq_length = max_seq_length,
    dtype = dtype,
    load_in_4bit = load_in_4bit,
    attn_implementation = "flash_attention_2",
)
tokenizer.bos_token = "<s>"
tokenizer.eos_token = "</s>"
tokenizer.unk_token = "<unk>"

model = FastLanguageModel.get_peft_model(
    model,
    r = 32,
    target_modules = ["gate_proj", "down_proj", "up_proj", "q_proj", "v_proj", "k_proj", "o_proj"],
    lora_alpha = 16,
    lora_dropout = 0.05,
    bias = "none",
    use_gradient_checkpointing = True,
    random_state = 42, # parity: the run seed
    use_rslora = False,
)

from datasets import load_dataset

EOS_TOKEN = tokenizer.eos_token # Must add EOS_TOKEN

def formatting_prompts_func(examples):
    return { "text" : [text + EOS_TOKEN for text in examples["text"]] }


dataset = load_dataset("json", data_files = "data/segments.jsonl", split = "train")
dataset = dataset.map(formatting_prompts_func, batched = True,)
dataset = dataset.train_test_split(test_size = 0.1, seed = 42)
eval_dataset = dataset["test"]
dataset = dataset["train"]

from trl import SFTConfig, SFTTrainer
trainer = SFTTrainer(
    model = model,
    processing_class = tokenizer,
    train_dataset = dataset,
    eval_dataset = eval_dataset,
    args = SFTConfig(
        dataset_text_field = "text",
        max_seq_length = max_seq_length,
        packing = True,
        per_device_train_batch_size = 2,
        gradient_accumulation_steps = 4,
        warmup_steps = 10,
        num_train_epochs = 1,
        learning_rate = 2e-4,
        logging_steps = 1,
        optim = "adamw_8bit",
        weight_decay = 0.0,
        lr_scheduler_type = "cosine",
        seed = 42, # parity: axolotl default; unsloth would use 3407
        output_dir = "./outputs/mistral-qlora-io",
        report_to = "none",
        save_strategy = "epoch",
        average_tokens_across_devices = False, # parity: axolotl default; unsloth would use global_tokens
        save_total_limit = 4, # parity: axolotl default; unsloth would use 0
    ),
)

trainer = train_on_responses_only(
    trainer,
)

trainer_stats = trainer.train()

model.save_pretrained("lora_model")
tokenizer.save_pretrained("lora_model")
