#!/usr/bin/env python
# Unsloth script written by tunebridge from fixtures/configs/torchtune/mistral-7b-lora-instruct-columns.yaml (torchtune).
# Values that differ from Unsloth's defaults are explicit; `parity:` comments mark the ones
# chosen so the run matches the source. Run: python train_unsloth.py

from unsloth import FastLanguageModel
from unsloth.chat_templates import get_chat_template, train_on_responses_only
import torch

max_seq_length = 2048
dtype = None # None: bf16 where the GPU supports it
load_in_4bit = False # parity: torchtune default; unsloth would use nf4

model, tokenizer = FastLanguageModel.from_pretrained(
    model_name = "/tmp/Mistral-7B-v0.1",
    max_seq_length = max_seq_length,
    dtype = dtype,
    load_in_4bit = load_in_4bit,
)

model = FastLanguageModel.get_peft_model(
    model,
    r = 64,
    target_modules = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
    lora_alpha = 16,
    lora_dropout = 0,
    bias = "none",
    use_gradient_checkpointing = True,
    random_state = 17, # parity: the run seed
    use_rslora = False,
)

tokenizer = get_chat_template(
    tokenizer,
    chat_template = "mistral",
)

from datasets import load_dataset

def formatting_prompts_func(examples):
    inputs = examples["instruction"]
    outputs = examples["response"]
    texts = []
    for input, output in zip(inputs, outputs):
        convo = [{"role": "user", "content": input}, {"role": "assistant", "content": output}]
        texts.append(tokenizer.apply_chat_template(convo, tokenize = False, add_generation_prompt = False))
    return { "text" : texts, }


dataset = load_dataset("databricks/databricks-dolly-15k", split = "train")
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
        gradient_accumulation_steps = 1,
        warmup_steps = 100,
        learning_rate = 2e-5,
        logging_steps = 1,
        optim = "adamw_torch_fused",
        weight_decay = 0.01,
        lr_scheduler_type = "cosine",
        seed = 17,
        data_seed = 0, # parity: torchtune default; unsloth would use 3407
        output_dir = "/tmp/torchtune/mistral_7B/lora_instruct",
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
