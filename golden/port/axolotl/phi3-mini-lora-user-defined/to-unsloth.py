#!/usr/bin/env python
# Unsloth script written by tunebridge from fixtures/configs/axolotl/phi3-mini-lora-user-defined.yaml (axolotl).
# Values that differ from Unsloth's defaults are explicit; `parity:` comments mark the ones
# chosen so the run matches the source. Run: python train_unsloth.py

from unsloth import FastLanguageModel
from unsloth.chat_templates import train_on_responses_only
import torch

max_seq_length = 4096
dtype = None # None: bf16 where the GPU supports it
load_in_4bit = False # parity: axolotl default; unsloth would use nf4

model, tokenizer = FastLanguageModel.from_pretrained(
    model_name = "microsoft/Phi-3-mini-4k-instruct",
    max_seq_length = max_seq_length,
    dtype = dtype,
    load_in_4bit = load_in_4bit,
)
tokenizer.pad_token = "<|endoftext|>"

model = FastLanguageModel.get_peft_model(
    model,
    r = 64,
    target_modules = ["qkv_proj", "o_proj", "gate_up_proj", "down_proj"],
    lora_alpha = 32,
    lora_dropout = 0.05,
    bias = "none",
    use_gradient_checkpointing = True,
    random_state = 7, # parity: the run seed
    use_rslora = False,
)

from datasets import load_dataset

EOS_TOKEN = tokenizer.eos_token # Must add EOS_TOKEN

alpaca_prompt = """<|user|>
{}<|end|>
<|assistant|>
{}"""

def formatting_prompts_func(examples):
    instructions = examples["question"]
    outputs = examples["answer"]
    texts = []
    for instruction, output in zip(instructions, outputs):
        text = alpaca_prompt.format(instruction, output) + EOS_TOKEN
        texts.append(text)
    return { "text" : texts, }


dataset = load_dataset("json", data_files = "data/qa.jsonl", split = "train")
dataset = dataset.map(formatting_prompts_func, batched = True,)
dataset = dataset.train_test_split(test_size = 0.05, seed = 7)
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
        packing = False,
        padding_free = False, # parity: axolotl default; unsloth would use true
        per_device_train_batch_size = 4,
        gradient_accumulation_steps = 2,
        warmup_steps = 30,
        num_train_epochs = 2,
        learning_rate = 1e-4,
        logging_steps = 5,
        optim = "adamw_torch",
        weight_decay = 0.1,
        lr_scheduler_type = "cosine",
        seed = 7,
        output_dir = "./outputs/phi3-lora-qa",
        report_to = "none",
        save_strategy = "epoch",
        tf32 = True,
        average_tokens_across_devices = False, # parity: axolotl default; unsloth would use global_tokens
        save_total_limit = 4, # parity: axolotl default; unsloth would use 0
    ),
)

trainer = train_on_responses_only(
    trainer,
    instruction_part = "<|user|>\n",
    response_part = "<|end|>\n<|assistant|>\n",
)

trainer_stats = trainer.train()

model.save_pretrained("lora_model")
tokenizer.save_pretrained("lora_model")
