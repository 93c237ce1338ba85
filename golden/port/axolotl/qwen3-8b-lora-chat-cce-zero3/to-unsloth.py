#!/usr/bin/env python
# Unsloth script written by tunebridge from fixtures/configs/axolotl/qwen3-8b-lora-chat-cce-zero3.yaml (axolotl).
# Values that differ from Unsloth's defaults are explicit; `parity:` comments mark the ones
# chosen so the run matches the source. Run: python train_unsloth.py
# NOTE: The source shards the model (deepspeed); Unsloth runs data-parallel only: each GPU needs memory for the whole model.

from unsloth import FastLanguageModel
from unsloth.chat_templates import get_chat_template, standardize_sharegpt, train_on_responses_only
import torch

max_seq_length = 4096
dtype = None # None: bf16 where the GPU supports it
load_in_4bit = False # parity: axolotl default; unsloth would use nf4

model, tokenizer = FastLanguageModel.from_pretrained(
    model_name = "Qwen/Qwen3-8B",
    max_seq_length = max_seq_length,
    dtype = dtype,
    load_in_4bit = load_in_4bit,
    attn_implementation = "flash_attention_2",
)

model = FastLanguageModel.get_peft_model(
    model,
    r = 32,
    target_modules = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
    lora_alpha = 64,
    lora_dropout = 0.05,
    bias = "none",
    use_gradient_checkpointing = True,
    random_state = 42, # parity: the run seed
    use_rslora = False,
    use_dora = True,
)

tokenizer = get_chat_template(
    tokenizer,
    chat_template = "qwen-3",
)

from datasets import load_dataset

def formatting_prompts_func(examples):
    convos = examples["conversations"]
    texts = [tokenizer.apply_chat_template(convo, tokenize = False, add_generation_prompt = False) for convo in convos]
    return { "text" : texts, }


dataset = load_dataset("mlabonne/FineTome-100k", split = "train")
dataset = standardize_sharegpt(dataset)
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
        per_device_train_batch_size = 1,
        gradient_accumulation_steps = 2,
        warmup_ratio = 0.05,
        num_train_epochs = 1,
        max_steps = 1000,
        learning_rate = 2e-4,
        logging_steps = 1,
        optim = "adamw_torch_fused",
        weight_decay = 0.0,
        lr_scheduler_type = "cosine",
        seed = 42, # parity: axolotl default; unsloth would use 3407
        output_dir = "./outputs/qwen3-8b-lora",
        report_to = "tensorboard",
        tf32 = True,
        average_tokens_across_devices = False, # parity: axolotl default; unsloth would use global_tokens
        save_steps = 250,
        save_total_limit = 4, # parity: axolotl default; unsloth would use 0
    ),
)

trainer = train_on_responses_only(
    trainer,
    instruction_part = "<|im_start|>user\n",
    response_part = "<|im_start|>assistant\n",
)

trainer_stats = trainer.train()

model.save_pretrained("lora_model")
tokenizer.save_pretrained("lora_model")
