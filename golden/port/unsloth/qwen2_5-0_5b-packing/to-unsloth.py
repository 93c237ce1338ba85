#!/usr/bin/env python
# Unsloth script written by tunebridge from fixtures/configs/unsloth/qwen2_5-0_5b-packing.py (unsloth).
# Values that differ from Unsloth's defaults are explicit; `parity:` comments mark the ones
# chosen so the run matches the source. Run: python train_unsloth.py

from unsloth import FastLanguageModel
import torch

max_seq_length = 1024
dtype = None # None: bf16 where the GPU supports it
load_in_4bit = False

model, tokenizer = FastLanguageModel.from_pretrained(
    model_name = "Qwen/Qwen2.5-0.5B-Instruct",
    max_seq_length = max_seq_length,
    dtype = dtype,
    load_in_4bit = load_in_4bit,
    load_in_8bit = True,
)

model = FastLanguageModel.get_peft_model(
    model,
    r = 8,
    target_modules = ["q_proj", "v_proj"],
    lora_alpha = 16,
    lora_dropout = 0,
    bias = "none",
    use_gradient_checkpointing = "unsloth", # "unsloth": recompute with CPU-offloaded activations
    random_state = 0,
    use_rslora = False,
)

from datasets import load_dataset

dataset = load_dataset("roneneldan/TinyStories", split = "train[:5000]")

from trl import SFTConfig, SFTTrainer
trainer = SFTTrainer(
    model = model,
    processing_class = tokenizer,
    train_dataset = dataset,
    args = SFTConfig(
        dataset_text_field = "text",
        max_seq_length = max_seq_length,
        packing = True,
        per_device_train_batch_size = 8,
        gradient_accumulation_steps = 2,
        warmup_steps = 20,
        num_train_epochs = 2,
        learning_rate = 3e-4,
        logging_steps = 5,
        optim = "adamw_8bit",
        weight_decay = 0.001,
        lr_scheduler_type = "cosine_with_min_lr",
        seed = 7,
        output_dir = "outputs/packed",
        report_to = "none",
        lr_scheduler_kwargs = {"min_lr_rate": 0.1},
        save_strategy = "epoch",
    ),
)

trainer_stats = trainer.train()

model.save_pretrained("lora_model")
tokenizer.save_pretrained("lora_model")
