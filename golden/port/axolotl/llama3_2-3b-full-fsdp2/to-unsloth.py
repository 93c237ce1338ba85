#!/usr/bin/env python
# Unsloth script written by tunebridge from fixtures/configs/axolotl/llama3_2-3b-full-fsdp2.yaml (axolotl).
# Values that differ from Unsloth's defaults are explicit; `parity:` comments mark the ones
# chosen so the run matches the source. Run: python train_unsloth.py
# NOTE: The source shards the model (fsdp2); Unsloth runs data-parallel only: each GPU needs memory for the whole model.

from unsloth import FastLanguageModel
from unsloth.chat_templates import train_on_responses_only
import torch

max_seq_length = 2048
dtype = None # None: bf16 where the GPU supports it
load_in_4bit = False # parity: axolotl default; unsloth would use nf4

model, tokenizer = FastLanguageModel.from_pretrained(
    model_name = "meta-llama/Llama-3.2-3B",
    max_seq_length = max_seq_length,
    dtype = dtype,
    load_in_4bit = load_in_4bit,
    full_finetuning = True,
    attn_implementation = "flash_attention_2",
    use_gradient_checkpointing = True,
)
tokenizer.pad_token = "<|end_of_text|>"

from datasets import load_dataset

EOS_TOKEN = tokenizer.eos_token # Must add EOS_TOKEN

alpaca_prompt = """Below is an instruction that describes a task, paired with an input that provides further context. Write a response that appropriately completes the request.

### Instruction:
{}

### Input:
{}

### Response:
{}"""

alpaca_prompt_no_input = """Below is an instruction that describes a task. Write a response that appropriately completes the request.

### Instruction:
{}

### Response:
{}"""

def formatting_prompts_func(examples):
    instructions = examples["instruction"]
    inputs = examples["input"]
    outputs = examples["output"]
    texts = []
    for instruction, input, output in zip(instructions, inputs, outputs):
        if input:
            text = alpaca_prompt.format(instruction, input, output) + EOS_TOKEN
        else:
            text = alpaca_prompt_no_input.format(instruction, output) + EOS_TOKEN
        texts.append(text)
    return { "text" : texts, }


dataset = load_dataset("yahma/alpaca-cleaned", split = "train")
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
        per_device_train_batch_size = 4,
        gradient_accumulation_steps = 2,
        warmup_steps = 20,
        num_train_epochs = 1,
        learning_rate = 2e-5,
        logging_steps = 5,
        optim = "adamw_torch_fused",
        weight_decay = 0.01,
        lr_scheduler_type = "cosine_with_min_lr",
        seed = 1234,
        output_dir = "./outputs/llama32-3b-fft",
        report_to = "none",
        lr_scheduler_kwargs = {"min_lr_rate": 0.1},
        tf32 = True,
        average_tokens_across_devices = False, # parity: axolotl default; unsloth would use global_tokens
        save_steps = 200,
        save_total_limit = 2,
    ),
)

trainer = train_on_responses_only(
    trainer,
    instruction_part = "### Instruction:\n",
    response_part = "### Response:\n",
)

trainer_stats = trainer.train()

model.save_pretrained("model")
tokenizer.save_pretrained("model")
