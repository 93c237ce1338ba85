#!/usr/bin/env python
# Unsloth script written by tunebridge from fixtures/configs/torchtune/qwen2_5-3b-lora-multi-dataset.yaml (torchtune).
# Values that differ from Unsloth's defaults are explicit; `parity:` comments mark the ones
# chosen so the run matches the source. Run: python train_unsloth.py
# On several GPUs (DDP): torchrun --nproc_per_node 4 train_unsloth.py
# NOTE: The source shards the model (fsdp2); Unsloth runs data-parallel only: each GPU needs memory for the whole model.

from unsloth import FastLanguageModel
from unsloth.chat_templates import get_chat_template, train_on_responses_only
import torch

max_seq_length = 2048
dtype = None # None: bf16 where the GPU supports it
load_in_4bit = False # parity: torchtune default; unsloth would use nf4

model, tokenizer = FastLanguageModel.from_pretrained(
    model_name = "/tmp/Qwen2.5-3B-Instruct",
    max_seq_length = max_seq_length,
    dtype = dtype,
    load_in_4bit = load_in_4bit,
)

model = FastLanguageModel.get_peft_model(
    model,
    r = 32,
    target_modules = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
    lora_alpha = 64,
    lora_dropout = 0,
    bias = "none",
    use_gradient_checkpointing = True,
    random_state = 11, # parity: the run seed
    use_rslora = False,
)

tokenizer = get_chat_template(
    tokenizer,
    chat_template = "qwen-2.5",
)

from datasets import load_dataset, concatenate_datasets

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

def formatting_prompts_func_0(examples):
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


dataset_0 = load_dataset("tatsu-lab/alpaca", split = "train")
dataset_0 = dataset_0.map(formatting_prompts_func_0, batched = True, remove_columns = dataset_0.column_names,)

def formatting_prompts_func_1(examples):
    inputs = examples["question"]
    outputs = examples["answer"]
    texts = []
    for input, output in zip(inputs, outputs):
        convo = [{"role": "user", "content": input}, {"role": "assistant", "content": output}]
        texts.append(tokenizer.apply_chat_template(convo, tokenize = False, add_generation_prompt = False))
    return { "text" : texts, }


dataset_1 = load_dataset("json", data_files = "data/qa_pairs.jsonl", split = "train")
dataset_1 = dataset_1.map(formatting_prompts_func_1, batched = True, remove_columns = dataset_1.column_names,)
dataset = concatenate_datasets([dataset_0, dataset_1])

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
        gradient_accumulation_steps = 4,
        warmup_steps = 100,
        num_train_epochs = 2,
        learning_rate = 2e-4,
        logging_steps = 1,
        optim = "adamw_torch_fused",
        weight_decay = 0.01,
        lr_scheduler_type = "cosine",
        seed = 11,
        data_seed = 0, # parity: torchtune default; unsloth would use 3407
        output_dir = "/tmp/torchtune/qwen2_5_3B/lora",
        report_to = "none",
        save_strategy = "epoch",
        max_grad_norm = 0.0, # parity: torchtune default; unsloth would use 1.0
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
