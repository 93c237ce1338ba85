#!/usr/bin/env python
# Unsloth script written by tunebridge from fixtures/configs/axolotl/qwen2_5-7b-lora-alpaca-chatml-zero2.yaml (axolotl).
# Values that differ from Unsloth's defaults are explicit; `parity:` comments mark the ones
# chosen so the run matches the source. Run: python train_unsloth.py
# NOTE: The source shards the model (deepspeed); Unsloth runs data-parallel only: each GPU needs memory for the whole model.

from unsloth import FastLanguageModel
from unsloth.chat_templates import train_on_responses_only
import torch

max_seq_length = 2048
dtype = None # None: bf16 where the GPU supports it
load_in_4bit = False # parity: axolotl default; unsloth would use nf4

model, tokenizer = FastLanguageModel.from_pretrained(
    model_name = "Qwen/Qwen2.5-7B",
    max_seq_length = max_seq_length,
    dtype = dtype,
    load_in_4bit = load_in_4bit,
)
tokenizer.eos_token = "<|im_end|>"

model = FastLanguageModel.get_peft_model(
    model,
    r = 16,
    target_modules = ["q_proj", "k_proj", "v_proj", "o_proj", "embed_tokens", "lm_head"],
    lora_alpha = 32,
    lora_dropout = 0,
    bias = "none",
    use_gradient_checkpointing = True,
    random_state = 42, # parity: the run seed
    use_rslora = False,
)

from datasets import load_dataset

EOS_TOKEN = tokenizer.eos_token # Must add EOS_TOKEN

alpaca_prompt = """<|im_start|>system
Below is an instruction that describes a task, paired with an input that provides further context. Write a response that appropriately completes the request.<|im_end|>
<|im_start|>user
{}
{}<|im_end|>
<|im_start|>assistant
{}"""

alpaca_prompt_no_input = """<|im_start|>system
Below is an instruction that describes a task. Write a response that appropriately completes the request.<|im_end|>
<|im_start|>user
{}<|im_end|>
<|im_start|>assistant
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


dataset = load_dataset("teknium/GPT4-LLM-Cleaned", split = "train")
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
        padding_free = False, # parity: axolotl default; unsloth would use true
        per_device_train_batch_size = 2,
        gradient_accumulation_steps = 8,
        warmup_steps = 100,
        learning_rate = 5e-5,
        logging_steps = 10,
        optim = "adamw_torch",
        weight_decay = 0.1,
        lr_scheduler_type = "constant_with_warmup",
        seed = 42, # parity: axolotl default; unsloth would use 3407
        output_dir = "./outputs/qwen25-lora-chatml",
        report_to = "none",
        save_strategy = "epoch",
        adam_beta2 = 0.95,
        adam_epsilon = 1e-6,
        max_grad_norm = 0.3,
        tf32 = True,
        average_tokens_across_devices = False, # parity: axolotl default; unsloth would use global_tokens
        save_total_limit = 4, # parity: axolotl default; unsloth would use 0
    ),
)

trainer = train_on_responses_only(
    trainer,
    instruction_part = "<|im_start|>user\n",
    response_part = "<|im_end|>\n<|im_start|>assistant\n",
)

trainer_stats = trainer.train()

model.save_pretrained("lora_model")
tokenizer.save_pretrained("lora_model")
