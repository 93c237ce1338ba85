#!/usr/bin/env python
# Unsloth script written by tunebridge from fixtures/configs/torchtune/llama2-7b-qlora-slimorca.yaml (torchtune).
# Values that differ from Unsloth's defaults are explicit; `parity:` comments mark the ones
# chosen so the run matches the source. Run: python train_unsloth.py

from unsloth import FastLanguageModel
from unsloth.chat_templates import get_chat_template, standardize_sharegpt, train_on_responses_only
import torch

max_seq_length = 1024
dtype = None # None: bf16 where the GPU supports it
load_in_4bit = True

model, tokenizer = FastLanguageModel.from_pretrained(
    model_name = "/tmp/Llama-2-7b-hf",
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
    use_gradient_checkpointing = True,
    random_state = 7, # parity: the run seed
    use_rslora = False,
)

tokenizer = get_chat_template(
    tokenizer,
    chat_template = "llama",
)

from datasets import load_dataset

def formatting_prompts_func(examples):
    convos = examples["conversations"]
    texts = [tokenizer.apply_chat_template(convo, tokenize = False, add_generation_prompt = False) for convo in convos]
    return { "text" : texts, }


dataset = load_dataset("Open-Orca/SlimOrca-Dedup", split = "train[:20000]")
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
        packing = False,
        padding_free = False, # parity: torchtune default; unsloth would use true
        per_device_train_batch_size = 2,
        gradient_accumulation_steps = 8,
        warmup_steps = 100,
        num_train_epochs = 1,
        learning_rate = 3e-4,
        logging_steps = 1,
        optim = "adamw_torch_fused",
        weight_decay = 0.01,
        lr_scheduler_type = "cosine",
        seed = 7,
        data_seed = 0, # parity: torchtune default; unsloth would use 3407
        output_dir = "/tmp/torchtune/llama2_7B/qlora_single_device",
        report_to = "none",
        save_strategy = "epoch",
        max_grad_norm = 0.0, # parity: torchtune default; unsloth would use 1.0
    ),
)

trainer = train_on_responses_only(
    trainer,
    instruction_part = "[INST]",
    response_part = "[/INST]",
)

trainer_stats = trainer.train()

model.save_pretrained("lora_model")
tokenizer.save_pretrained("lora_model")
