#!/usr/bin/env python
# Unsloth script written by tunebridge from fixtures/configs/torchtune/llama3_1-8b-dora-packed-wandb.yaml (torchtune).
# Values that differ from Unsloth's defaults are explicit; `parity:` comments mark the ones
# chosen so the run matches the source. Run: python train_unsloth.py

from unsloth import FastLanguageModel
from unsloth.chat_templates import get_chat_template
import torch

max_seq_length = 2048
dtype = None # None: bf16 where the GPU supports it
load_in_4bit = False # parity: torchtune default; unsloth would use nf4

model, tokenizer = FastLanguageModel.from_pretrained(
    model_name = "/tmp/Meta-Llama-3.1-8B-Instruct",
    max_seq_length = max_seq_length,
    dtype = dtype,
    load_in_4bit = load_in_4bit,
)

model = FastLanguageModel.get_peft_model(
    model,
    r = 8,
    target_modules = ["q_proj", "v_proj"],
    lora_alpha = 16,
    lora_dropout = 0,
    bias = "none",
    use_gradient_checkpointing = "unsloth", # "unsloth": recompute with CPU-offloaded activations
    random_state = 2024, # parity: the run seed
    use_rslora = False,
    use_dora = True,
)

tokenizer = get_chat_template(
    tokenizer,
    chat_template = "llama-3",
)

from datasets import load_dataset

alpaca_prompt = """Below is an instruction that describes a task, paired with an input that provides further context. Write a response that appropriately completes the request.

### Instruction:
{}

### Input:
{}

### Response:
"""

alpaca_prompt_no_input = """Below is an instruction that describes a task. Write a response that appropriately completes the request.

### Instruction:
{}

### Response:
"""

def formatting_prompts_func(examples):
    instructions = examples["instruction"]
    inputs = examples["input"]
    outputs = examples["output"]
    texts = []
    for instruction, input, output in zip(instructions, inputs, outputs):
        if input:
            prompt = alpaca_prompt.format(instruction, input)
        else:
            prompt = alpaca_prompt_no_input.format(instruction)
        convo = [{"role": "user", "content": prompt}, {"role": "assistant", "content": output}]
        texts.append(tokenizer.apply_chat_template(convo, tokenize = False, add_generation_prompt = False))
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
        per_device_train_batch_size = 2,
        gradient_accumulation_steps = 16,
        warmup_steps = 100,
        num_train_epochs = 1,
        learning_rate = 3e-4,
        logging_steps = 10,
        optim = "adamw_torch_fused",
        weight_decay = 0.01,
        lr_scheduler_type = "cosine",
        seed = 2024,
        data_seed = 0, # parity: torchtune default; unsloth would use 3407
        output_dir = "/tmp/torchtune/llama3_1_8B/dora_single_device",
        report_to = "wandb",
        save_strategy = "epoch",
        max_grad_norm = 0.0, # parity: torchtune default; unsloth would use 1.0
    ),
)

trainer_stats = trainer.train()

model.save_pretrained("lora_model")
tokenizer.save_pretrained("lora_model")
