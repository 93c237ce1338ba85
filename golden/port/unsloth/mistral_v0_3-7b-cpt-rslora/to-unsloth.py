#!/usr/bin/env python
# Unsloth script written by tunebridge from fixtures/configs/unsloth/mistral_v0_3-7b-cpt-rslora.py (unsloth).
# Values that differ from Unsloth's defaults are explicit; `parity:` comments mark the ones
# chosen so the run matches the source. Run: python train_unsloth.py

from unsloth import FastLanguageModel
import torch

max_seq_length = 2048
dtype = None # None: bf16 where the GPU supports it
load_in_4bit = True

model, tokenizer = FastLanguageModel.from_pretrained(
    model_name = "unsloth/mistral-7b-v0.3",
    max_seq_length = max_seq_length,
    dtype = dtype,
    load_in_4bit = load_in_4bit,
)

model = FastLanguageModel.get_peft_model(
    model,
    r = 128,
    target_modules = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj", "embed_tokens", "lm_head"],
    lora_alpha = 32,
    lora_dropout = 0,
    bias = "none",
    use_gradient_checkpointing = "unsloth", # "unsloth": recompute with CPU-offloaded activations
    random_state = 3407,
    use_rslora = True,
)

from datasets import load_dataset

EOS_TOKEN = tokenizer.eos_token # Must add EOS_TOKEN

def formatting_prompts_func(examples):
    return { "text" : [text + EOS_TOKEN for text in examples["text"]] }


dataset = load_dataset("roneneldan/TinyStories", split = "train[:2500]")
dataset = dataset.map(formatting_prompts_func, batched = True,)

from unsloth import UnslothTrainer, UnslothTrainingArguments
trainer = UnslothTrainer(
    model = model,
    processing_class = tokenizer,
    train_dataset = dataset,
    args = UnslothTrainingArguments(
        dataset_text_field = "text",
        max_seq_length = max_seq_length,
        packing = False,
        per_device_train_batch_size = 2,
        gradient_accumulation_steps = 8,
        warmup_ratio = 0.1,
        num_train_epochs = 1,
        learning_rate = 5e-5,
        logging_steps = 1,
        optim = "adamw_8bit",
        weight_decay = 0.0,
        lr_scheduler_type = "cosine",
        seed = 3407,
        output_dir = "outputs",
        report_to = "none",
        dataset_num_proc = 8,
        embedding_learning_rate = 5e-6,
    ),
)

trainer_stats = trainer.train()

model.save_pretrained("lora_model")
tokenizer.save_pretrained("lora_model")
