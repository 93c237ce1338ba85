#!/usr/bin/env python
# Unsloth script written by tunebridge from fixtures/configs/axolotl/llama3_1-8b-full-zero3-maxsteps.yaml (axolotl).
# Values that differ from Unsloth's defaults are explicit; `parity:` comments mark the ones
# chosen so the run matches the source. Run: python train_unsloth.py
# NOTE: The source shards the model (deepspeed); Unsloth runs data-parallel only: each GPU needs memory for the whole model.

from unsloth import FastLanguageModel
from unsloth.chat_templates import train_on_responses_only
import torch

max_seq_length = 4096
dtype = None # None: bf16 where the GPU supports it
load_in_4bit = False # parity: axolotl default; unsloth would use nf4

model, tokenizer = FastLanguageModel.from_pretrained(
    model_name = "meta-llama/Llama-3.1-8B",
    max_seq_length = max_seq_length,
    dtype = dtype,
    load_in_4bit = load_in_4bit,
    full_finetuning = True,
    attn_implementation = "flash_attention_2",
    use_gradient_checkpointing = True,
)
tokenizer.pad_token = "<|end_of_text|>"

from datasets import load_dataset, concatenate_datasets

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

def formatting_prompts_func_0(examples):
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


dataset_0 = load_dataset("tatsu-lab/alpaca", split = "train")
dataset_0 = dataset_0.map(formatting_prompts_func_0, batched = True, remove_columns = dataset_0.column_names,)

alpaca_prompt_1 = """Below is an instruction that describes a task, paired with an input that provides further context. Write a response that appropriately completes the request.

### Instruction:
{}

### Input:
{}

### Response:
{}"""

alpaca_prompt_1_no_input = """Below is an instruction that describes a task. Write a response that appropriately completes the request.

### Instruction:
{}

### Response:
{}"""

def formatting_prompts_func_1(examples):
    instructions = examples["instruction"]
    inputs = examples["input"]
    outputs = examples["output"]
    texts = []
    for instruction, input, output in zip(instructions, inputs, outputs):
        if input:
            text = alpaca_prompt_1.format(instruction, input, output) + EOS_TOKEN
        else:
            text = alpaca_prompt_1_no_input.format(instruction, output) + EOS_TOKEN
        texts.append(text)
    return { "text" : texts, }


dataset_1 = load_dataset("teknium/GPT4-LLM-Cleaned", split = "train")
dataset_1 = dataset_1.map(formatting_prompts_func_1, batched = True, remove_columns = dataset_1.column_names,)
dataset = concatenate_datasets([dataset_0, dataset_1])
dataset = dataset.train_test_split(test_size = 0.01, seed = 42)
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
        per_device_train_batch_size = 1,
        gradient_accumulation_steps = 8,
        warmup_ratio = 0.03,
        num_train_epochs = 1,
        max_steps = 2000,
        learning_rate = 1e-5,
        logging_steps = 1,
        optim = "adamw_torch_fused",
        weight_decay = 0.1,
        lr_scheduler_type = "cosine_with_min_lr",
        seed = 42, # parity: axolotl default; unsloth would use 3407
        output_dir = "./outputs/llama31-8b-fft",
        report_to = "wandb",
        lr_scheduler_kwargs = {"min_lr_rate": 0.1},
        tf32 = True,
        average_tokens_across_devices = False, # parity: axolotl default; unsloth would use global_tokens
        save_total_limit = 3,
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
