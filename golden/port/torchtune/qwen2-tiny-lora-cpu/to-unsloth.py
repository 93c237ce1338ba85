#!/usr/bin/env python
# Unsloth script written by tunebridge from fixtures/configs/torchtune/qwen2-tiny-lora-cpu.yaml (torchtune).
# Values that differ from Unsloth's defaults are explicit; `parity:` comments mark the ones
# chosen so the run matches the source. Run: python train_unsloth.py

from unsloth import FastLanguageModel
from unsloth.chat_templates import get_chat_template
import torch

max_seq_length = 128
dtype = torch.float32
load_in_4bit = False # parity: torchtune default; unsloth would use nf4

model, tokenizer = FastLanguageModel.from_pretrained(
    model_name = "fixtures/models/tiny-qwen2",
    max_seq_length = max_seq_length,
    dtype = dtype,
    load_in_4bit = load_in_4bit,
)

model = FastLanguageModel.get_peft_model(
    model,
    r = 8,
    target_modules = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
    lora_alpha = 16,
    lora_dropout = 0,
    bias = "none",
    use_gradient_checkpointing = False,
    random_state = 42, # parity: the run seed
    use_rslora = False,
)

tokenizer = get_chat_template(
    tokenizer,
    chat_template = "chatml",
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


dataset = load_dataset("json", data_files = "fixtures/data/alpaca.json", split = "train")
dataset = dataset.map(formatting_prompts_func, batched = True,)

from trl import SFTConfig, SFTTrainer
trainer = SFTTrainer(
    model = model,
    processing_class = tokenizer,
    train_dataset = dataset,
    args = SFTConfig(
        dataset_text_field = "text",
        max_seq_length = max_seq_length,
        packing = False,
        padding_free = False, # parity: torchtune default; unsloth would use true
        per_device_train_batch_size = 2,
        gradient_accumulation_steps = 2,
        warmup_steps = 3,
        num_train_epochs = 2,
        learning_rate = 0.003,
        logging_steps = 1,
        optim = "adamw_torch",
        weight_decay = 0.01,
        lr_scheduler_type = "cosine",
        seed = 42,
        data_seed = 0, # parity: torchtune default; unsloth would use 3407
        output_dir = "target/tt-scratch/qwen2-tiny-lora",
        report_to = "none",
        bf16 = False,
        fp16 = False,
        save_strategy = "epoch",
    ),
)

trainer_stats = trainer.train()

model.save_pretrained("lora_model")
tokenizer.save_pretrained("lora_model")
