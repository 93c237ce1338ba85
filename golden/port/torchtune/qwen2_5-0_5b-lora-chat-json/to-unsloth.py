#!/usr/bin/env python
# Unsloth script written by tunebridge from fixtures/configs/torchtune/qwen2_5-0_5b-lora-chat-json.yaml (torchtune).
# Values that differ from Unsloth's defaults are explicit; `parity:` comments mark the ones
# chosen so the run matches the source. Run: python train_unsloth.py

from unsloth import FastLanguageModel
from unsloth.chat_templates import get_chat_template, standardize_data_formats, train_on_responses_only
import torch

max_seq_length = 1024
dtype = None # None: bf16 where the GPU supports it
load_in_4bit = False # parity: torchtune default; unsloth would use nf4

model, tokenizer = FastLanguageModel.from_pretrained(
    model_name = "/tmp/Qwen2.5-0.5B-Instruct",
    max_seq_length = max_seq_length,
    dtype = dtype,
    load_in_4bit = load_in_4bit,
)

model = FastLanguageModel.get_peft_model(
    model,
    r = 32,
    target_modules = ["q_proj", "k_proj", "v_proj"],
    lora_alpha = 64,
    lora_dropout = 0.1,
    bias = "none",
    use_gradient_checkpointing = False,
    random_state = 42, # parity: the run seed
    use_rslora = False,
)

tokenizer = get_chat_template(
    tokenizer,
    chat_template = "qwen-2.5",
)

from datasets import load_dataset

def formatting_prompts_func(examples):
    convos = examples["messages"]
    texts = [tokenizer.apply_chat_template(convo, tokenize = False, add_generation_prompt = False) for convo in convos]
    return { "text" : texts, }


dataset = load_dataset("json", data_files = "fixtures/data/chat.jsonl", split = "train")
dataset = standardize_data_formats(dataset)
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
        per_device_train_batch_size = 4,
        gradient_accumulation_steps = 2,
        warmup_steps = 10,
        learning_rate = 0.002,
        logging_steps = 1,
        optim = "adamw_torch_fused",
        weight_decay = 0.01,
        lr_scheduler_type = "cosine",
        seed = 42,
        data_seed = 0, # parity: torchtune default; unsloth would use 3407
        output_dir = "/tmp/torchtune/qwen2_5_0_5B/lora_chat",
        report_to = "wandb",
        save_strategy = "epoch",
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
