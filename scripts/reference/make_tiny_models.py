#!/usr/bin/env python3
"""Deterministically generate tiny fixture models + byte-level BPE tokenizers.

Run in the `ax` reference env (see setup_envs.sh):

    ~/.cache/tunebridge/ref/ax/bin/python scripts/reference/make_tiny_models.py

Writes (relative to the repo root):
    fixtures/models/tiny-llama    LlamaForCausalLM,   Llama-3-style tokenizer
    fixtures/models/tiny-qwen2    Qwen2ForCausalLM,   Qwen2 (ChatML) tokenizer
    fixtures/models/tiny-mistral  MistralForCausalLM, Mistral-style ([INST]) tokenizer
    fixtures/models/tiny-qwen3    Qwen3ForCausalLM,   Qwen2 (ChatML) tokenizer
    fixtures/models/tiny-phi3     Phi3ForCausalLM,    Phi-3-style (<|user|> … <|end|>) tokenizer
    fixtures/models/tiny-gemma2   Gemma2ForCausalLM,  Gemma-style (<start_of_turn> … <end_of_turn>) tokenizer
    fixtures/models/tiny-gemma3   Gemma3ForCausalLM,  Gemma-style tokenizer, Gemma 3 chat template

Every tokenizer is a byte-level BPE trained with the `tokenizers` library on the
built-in corpus below; total vocabulary (regular + special) is exactly VOCAB_SIZE.
Special tokens get the highest ids (as in the real models). The pre-tokenizer regexes
are those of the real models (Qwen2's, which is also the one torchtune's
qwen2_tokenizer hard-codes; Llama-3's with \\p{N}{1,3}).

Everything is seeded; running twice gives byte-identical files (checked by --check).
"""

import argparse
import hashlib
import json
import os
import shutil
import sys
import tempfile

VOCAB_SIZE = 512
SEED = 1234

QWEN2_PAT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|"
    r"[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
LLAMA3_PAT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|"
    r"[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)

# Qwen2-7B-Instruct's ChatML template (verbatim).
QWEN2_CHAT_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' }}{% endif %}"
    "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
# Meta-Llama-3-8B-Instruct's template (verbatim).
LLAMA3_CHAT_TEMPLATE = (
    "{% set loop_messages = messages %}{% for message in loop_messages %}"
    "{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'"
    "+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}"
    "{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"
)
# Mistral-7B-Instruct-v0.1-style template (system folded into the first user turn).
MISTRAL_CHAT_TEMPLATE = (
    "{% if messages[0]['role'] == 'system' %}{% set system_message = messages[0]['content'] + '\n\n' %}"
    "{% set loop_messages = messages[1:] %}{% else %}{% set system_message = '' %}"
    "{% set loop_messages = messages %}{% endif %}{{ bos_token }}"
    "{% for message in loop_messages %}"
    "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
    "{% if message['role'] == 'user' %}{% if loop.index0 == 0 %}"
    "{{ '[INST] ' + system_message + message['content'] + ' [/INST]' }}"
    "{% else %}{{ '[INST] ' + message['content'] + ' [/INST]' }}{% endif %}"
    "{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token }}"
    "{% else %}{{ raise_exception('Only user and assistant roles are supported!') }}{% endif %}{% endfor %}"
)

# Phi-3.5-mini-instruct's template (verbatim; Axolotl ships it as `phi_35`).
PHI3_CHAT_TEMPLATE = (
    "{% for message in messages %}{% if message['role'] == 'system' and message['content'] %}"
    "{{'<|system|>\n' + message['content'] + '<|end|>\n'}}{% elif message['role'] == 'user' %}"
    "{{'<|user|>\n' + message['content'] + '<|end|>\n'}}{% elif message['role'] == 'assistant' %}"
    "{{'<|assistant|>\n' + message['content'] + '<|end|>\n'}}{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% endif %}"
)

# gemma-2-2b-it's template (verbatim): BOS first, no system role, `model` for the assistant.
GEMMA2_CHAT_TEMPLATE = (
    "{{ bos_token }}{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}"
    "{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
    "{% if (message['role'] == 'assistant') %}{% set role = 'model' %}{% else %}{% set role = message['role'] %}{% endif %}"
    "{{ '<start_of_turn>' + role + '\n' + message['content'] | trim + '<end_of_turn>\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{'<start_of_turn>model\n'}}{% endif %}"
)
# Gemma 3's template (Axolotl 0.19 `gemma3`, verbatim; gemma-3-1b-it ships the same turns): a system
# message is folded into the first user turn.
GEMMA3_CHAT_TEMPLATE = (
    "{{ bos_token }}\n"
    "{%- if messages[0]['role'] == 'system' -%}\n"
    "    {%- if messages[0]['content'] is string -%}\n"
    "        {%- set first_user_prefix = messages[0]['content'] + '\n"
    "\n"
    "' -%}\n"
    "    {%- else -%}\n"
    "        {%- set ns = namespace(system_text='') -%}\n"
    "        {%- for item in messages[0]['content'] -%}\n"
    "            {%- if 'text' in item -%}\n"
    "                {%- set ns.system_text = ns.system_text + item['text'] -%}\n"
    "            {%- endif -%}\n"
    "        {%- endfor -%}\n"
    "        {%- set first_user_prefix = ns.system_text + '\n"
    "\n"
    "' -%}\n"
    "    {%- endif -%}\n"
    "    {%- set loop_messages = messages[1:] -%}\n"
    "{%- else -%}\n"
    "    {%- set first_user_prefix = \"\" -%}\n"
    "    {%- set loop_messages = messages -%}\n"
    "{%- endif -%}\n"
    "{%- for message in loop_messages -%}\n"
    "    {%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) -%}\n"
    "        {{ raise_exception(\"Conversation roles must alternate user/assistant/user/assistant/...\") }}\n"
    "    {%- endif -%}\n"
    "    {%- if (message['role'] == 'assistant') -%}\n"
    "        {%- set role = \"model\" -%}\n"
    "    {%- else -%}\n"
    "        {%- set role = message['role'] -%}\n"
    "    {%- endif -%}\n"
    "    {{ '<start_of_turn>' + role + '\n"
    "' + (first_user_prefix if loop.first else \"\") }}\n"
    "    {%- if message['content'] is string -%}\n"
    "        {{ message['content'] | trim }}\n"
    "    {%- elif message['content'] is iterable -%}\n"
    "        {%- for item in message['content'] -%}\n"
    "            {%- if item['type'] == 'image' -%}\n"
    "                {{ '<start_of_image>' }}\n"
    "            {%- elif item['type'] == 'text' -%}\n"
    "                {{ item['text'] | trim }}\n"
    "            {%- endif -%}\n"
    "        {%- endfor -%}\n"
    "    {%- else -%}\n"
    "        {{ raise_exception(\"Invalid content type\") }}\n"
    "    {%- endif -%}\n"
    "    {{ '<end_of_turn>\n"
    "' }}\n"
    "{%- endfor -%}\n"
    "{%- if add_generation_prompt -%}\n"
    "    {{'<start_of_turn>model\n"
    "'}}\n"
    "{%- endif -%}\n"
)
GEMMA_SPECIALS = ["<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>", "<end_of_turn>"]

TOKENIZER_STYLES = {
    "qwen2": dict(
        specials=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
        pattern=QWEN2_PAT,
        nfc=True,
        bos=None,
        eos="<|im_end|>",
        pad="<|endoftext|>",
        unk=None,
        add_bos=False,
        chat_template=QWEN2_CHAT_TEMPLATE,
        tokenizer_class="Qwen2Tokenizer",
    ),
    "llama3": dict(
        specials=[
            "<|begin_of_text|>",
            "<|end_of_text|>",
            "<|start_header_id|>",
            "<|end_header_id|>",
            "<|eot_id|>",
            "<|finetune_right_pad_id|>",
        ],
        pattern=LLAMA3_PAT,
        nfc=False,
        bos="<|begin_of_text|>",
        eos="<|end_of_text|>",
        pad="<|finetune_right_pad_id|>",
        unk=None,
        add_bos=True,
        chat_template=LLAMA3_CHAT_TEMPLATE,
        tokenizer_class="PreTrainedTokenizerFast",
    ),
    "mistral": dict(
        specials=["<unk>", "<s>", "</s>", "[INST]", "[/INST]"],
        pattern=LLAMA3_PAT,
        nfc=False,
        bos="<s>",
        eos="</s>",
        pad="</s>",
        unk="<unk>",
        add_bos=True,
        chat_template=MISTRAL_CHAT_TEMPLATE,
        tokenizer_class="PreTrainedTokenizerFast",
    ),
    # Phi-3/3.5-mini: Llama-2 specials plus the role tokens; EOS and pad `<|endoftext|>`, no BOS
    # added by the tokenizer (add_bos_token false, as the instruct models ship it).
    "phi3": dict(
        specials=["<unk>", "<s>", "</s>", "<|endoftext|>", "<|assistant|>", "<|system|>", "<|end|>", "<|user|>"],
        pattern=LLAMA3_PAT,
        nfc=False,
        bos="<s>",
        eos="<|endoftext|>",
        pad="<|endoftext|>",
        unk="<unk>",
        add_bos=False,
        chat_template=PHI3_CHAT_TEMPLATE,
        tokenizer_class="PreTrainedTokenizerFast",
    ),
    # Gemma 2/3: `<bos>` added by the tokenizer, `<eos>` ends a sequence, `<pad>` pads; the turn
    # markers are specials (a byte-level BPE stands in for Gemma's SentencePiece model).
    "gemma2": dict(
        specials=GEMMA_SPECIALS,
        pattern=LLAMA3_PAT,
        nfc=False,
        bos="<bos>",
        eos="<eos>",
        pad="<pad>",
        unk="<unk>",
        add_bos=True,
        chat_template=GEMMA2_CHAT_TEMPLATE,
        tokenizer_class="PreTrainedTokenizerFast",
    ),
    "gemma3": dict(
        specials=GEMMA_SPECIALS,
        pattern=LLAMA3_PAT,
        nfc=False,
        bos="<bos>",
        eos="<eos>",
        pad="<pad>",
        unk="<unk>",
        add_bos=True,
        chat_template=GEMMA3_CHAT_TEMPLATE,
        tokenizer_class="PreTrainedTokenizerFast",
    ),
}

ALPACA_SYS_INPUT = (
    "Below is an instruction that describes a task, paired with an input that provides "
    "further context. Write a response that appropriately completes the request."
)
ALPACA_SYS_NOINPUT = (
    "Below is an instruction that describes a task. Write a response that appropriately "
    "completes the request."
)

# A small built-in corpus: prompt scaffolding used by the frameworks (Alpaca, chat
# roles) plus short plain-English sentences about the topics the fixture datasets use.
CORPUS_LINES = [
    ALPACA_SYS_INPUT,
    ALPACA_SYS_NOINPUT,
    "### Instruction:\n",
    "### Input:\n",
    "### Response:\n",
    "system\nYou are a helpful assistant.",
    "user\nassistant\n",
    "SYSTEM: USER: ASSISTANT:",
    "You are a helpful assistant. You are a friendly and concise assistant.",
    "Answer the question in one short sentence.",
    "Give the opposite of the word. The opposite of hot is cold.",
    "The opposite of big is small. The opposite of up is down. The opposite of day is night.",
    "Add the two numbers. The sum of 3 and 4 is 7. The sum of 12 and 30 is 42.",
    "Subtract the second number from the first. 9 minus 5 is 4.",
    "Multiply the numbers. 6 times 7 is 42. Two times three is six.",
    "Sort the list in ascending order: 2, 5, 9, 11, 14.",
    "Reverse the word. The word tree reversed is eert.",
    "Count the letters in the word. The word apple has 5 letters.",
    "What is the capital of France? The capital of France is Paris.",
    "The capital of Italy is Rome. The capital of Spain is Madrid. The capital of Japan is Tokyo.",
    "The capital of Germany is Berlin. The capital of Egypt is Cairo. The capital of Peru is Lima.",
    "Translate the word to French. The French word for cat is chat. Dog is chien.",
    "Name the color of the sky on a clear day. The sky is blue.",
    "Grass is green. Snow is white. The sun is yellow. A ripe tomato is red.",
    "Write a short sentence about a cat. The cat sleeps in the warm sun.",
    "The dog runs in the park. The bird sings in the tree. The fish swims in the river.",
    "The horse eats hay in the barn. The rabbit hides under the green bush.",
    "Describe the animal in a few words. A fox is small, quick and clever.",
    "Explain why the sky is blue. Sunlight is scattered by the air, and blue light is scattered the most.",
    "Explain why we need sleep. Sleep helps the body rest and the brain store memories.",
    "Classify the item as a fruit or a vegetable. An apple is a fruit. A carrot is a vegetable.",
    "Is the number even or odd? The number 8 is even. The number 7 is odd.",
    "Rewrite the sentence in the past tense. I walk to school. I walked to school.",
    "Give a synonym for happy. A synonym for happy is glad.",
    "Summarize the text in one sentence. The story is about a boy who finds a lost dog.",
    "List three things you can find in a kitchen: a cup, a spoon and a plate.",
    "Once upon a time there was a little robot who wanted to learn how to paint.",
    "The weather today is sunny with a light wind from the west.",
    "Water boils at 100 degrees Celsius and freezes at 0 degrees.",
    "A week has seven days. A year has twelve months. An hour has sixty minutes.",
    "Monday, Tuesday, Wednesday, Thursday, Friday, Saturday, Sunday.",
    "one two three four five six seven eight nine ten eleven twelve",
    "red orange yellow green blue purple black white brown pink gray",
    "Please tell me a fun fact. Octopuses have three hearts.",
    "Thank you! You are welcome. Hello, how are you? I am fine, thank you.",
    "def add(a, b):\n    return a + b\n",
    "for i in range(10):\n    print(i)\n",
    "The quick brown fox jumps over the lazy dog.",
    "Question: What is two plus two?\nAnswer: Two plus two is four.",
    "Q: Where do penguins live?\nA: Most penguins live in the southern half of the world.",
    "It's a good day. They're here. We've done it. I'm ready. You'll see. He'd know.",
]


def build_corpus():
    # Weight the scaffolding strings so they become a few tokens each, like in real
    # tokenizers, then the topic sentences.
    lines = []
    for _ in range(20):
        lines.extend(CORPUS_LINES[:10])
    for _ in range(4):
        lines.extend(CORPUS_LINES[10:])
    return lines


def train_tokenizer(style_name):
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

    st = TOKENIZER_STYLES[style_name]
    tok = Tokenizer(models.BPE(unk_token=None, fuse_unk=False, byte_fallback=False))
    if st["nfc"]:
        tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(st["pattern"]), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False)
    n_regular = VOCAB_SIZE - len(st["specials"])
    trainer = trainers.BpeTrainer(
        vocab_size=n_regular,
        min_frequency=2,
        show_progress=False,
        special_tokens=[],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(build_corpus(), trainer=trainer)
    assert tok.get_vocab_size() == n_regular, (tok.get_vocab_size(), n_regular)
    tok.add_special_tokens(st["specials"])
    assert tok.get_vocab_size() == VOCAB_SIZE
    if st["add_bos"]:
        bos = st["bos"]
        bos_id = tok.token_to_id(bos)
        tok.post_processor = processors.Sequence(
            [
                processors.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False),
                processors.TemplateProcessing(
                    single=f"{bos}:0 $A:0",
                    pair=f"{bos}:0 $A:0 {bos}:1 $B:1",
                    special_tokens=[(bos, bos_id)],
                ),
            ]
        )
    else:
        tok.post_processor = processors.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False)
    return tok


def write_tokenizer(tok, style_name, out_dir):
    st = TOKENIZER_STYLES[style_name]
    os.makedirs(out_dir, exist_ok=True)
    tok.save(os.path.join(out_dir, "tokenizer.json"), pretty=True)
    # vocab.json + merges.txt (regular tokens only, as HF/Qwen2 ship them)
    with tempfile.TemporaryDirectory() as td:
        tok.model.save(td)
        for f in ("vocab.json", "merges.txt"):
            shutil.copy(os.path.join(td, f), os.path.join(out_dir, f))
    # Re-write vocab.json deterministically (sorted by id, compact like HF)
    with open(os.path.join(out_dir, "vocab.json")) as f:
        vocab = json.load(f)
    vocab = dict(sorted(vocab.items(), key=lambda kv: kv[1]))
    with open(os.path.join(out_dir, "vocab.json"), "w") as f:
        json.dump(vocab, f, ensure_ascii=False)

    added = {}
    for content in st["specials"]:
        tid = tok.token_to_id(content)
        added[str(tid)] = {
            "content": content,
            "lstrip": False,
            "normalized": False,
            "rstrip": False,
            "single_word": False,
            "special": True,
        }
    cfg = {
        "add_bos_token": st["add_bos"],
        "add_eos_token": False,
        "added_tokens_decoder": added,
        "bos_token": st["bos"],
        "chat_template": st["chat_template"],
        "clean_up_tokenization_spaces": False,
        "eos_token": st["eos"],
        "errors": "replace",
        "model_input_names": ["input_ids", "attention_mask"],
        "model_max_length": 256,
        "pad_token": st["pad"],
        "split_special_tokens": False,
        "tokenizer_class": st["tokenizer_class"],
        "unk_token": st["unk"],
    }
    with open(os.path.join(out_dir, "tokenizer_config.json"), "w") as f:
        json.dump(cfg, f, indent=2, ensure_ascii=False)
        f.write("\n")
    stm = {}
    for key in ("bos", "eos", "pad", "unk"):
        if st[key] is not None:
            stm[f"{key}_token"] = {
                "content": st[key],
                "lstrip": False,
                "normalized": False,
                "rstrip": False,
                "single_word": False,
            }
    extra = [s for s in st["specials"] if s not in (st["bos"], st["eos"], st["pad"], st["unk"])]
    if extra:
        stm["additional_special_tokens"] = extra
    with open(os.path.join(out_dir, "special_tokens_map.json"), "w") as f:
        json.dump(stm, f, indent=2, ensure_ascii=False)
        f.write("\n")


MODEL_DIMS = dict(
    vocab_size=VOCAB_SIZE,
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    head_dim=16,
    max_position_embeddings=256,
    rope_theta=10000.0,
    hidden_act="silu",
    initializer_range=0.02,
    attention_dropout=0.0,
    use_cache=True,
)

MODELS = {
    # name: (config class, model class, tokenizer style, extra config)
    "tiny-llama": ("LlamaConfig", "LlamaForCausalLM", "llama3", dict(rms_norm_eps=1e-5, tie_word_embeddings=False)),
    "tiny-qwen2": (
        "Qwen2Config",
        "Qwen2ForCausalLM",
        "qwen2",
        dict(rms_norm_eps=1e-6, tie_word_embeddings=True, use_sliding_window=False, sliding_window=None),
    ),
    "tiny-mistral": (
        "MistralConfig",
        "MistralForCausalLM",
        "mistral",
        dict(rms_norm_eps=1e-5, tie_word_embeddings=False, sliding_window=None),
    ),
    "tiny-qwen3": (
        "Qwen3Config",
        "Qwen3ForCausalLM",
        "qwen2",
        dict(rms_norm_eps=1e-6, tie_word_embeddings=True, attention_bias=False, use_sliding_window=False, sliding_window=None),
    ),
    # fused qkv_proj / gate_up_proj; full rotary, no window, untied (Phi-3-mini's layout)
    "tiny-phi3": (
        "Phi3Config",
        "Phi3ForCausalLM",
        "phi3",
        dict(rms_norm_eps=1e-5, tie_word_embeddings=False, sliding_window=None, resid_pdrop=0.0, embd_pdrop=0.0,
             original_max_position_embeddings=256),
    ),
    # Gemma 2: GeGLU, sandwich norms, attention and final logit soft-capping, local (sliding,
    # layer 0) / global (layer 1) layers with a window shorter than the parity test's 20 tokens,
    # query_pre_attn_scalar ≠ head_dim so the scaling it sets is pinned; tied (as released).
    "tiny-gemma2": (
        "Gemma2Config",
        "Gemma2ForCausalLM",
        "gemma2",
        dict(rms_norm_eps=1e-6, tie_word_embeddings=True, hidden_act=None, hidden_activation="gelu_pytorch_tanh",
             sliding_window=8, query_pre_attn_scalar=24, attn_logit_softcapping=50.0, final_logit_softcapping=30.0),
    ),
    # Gemma 3 text (gemma-3-1b/270m layout): q/k norm, no soft-capping, RoPE θ 1e6 on global
    # layers and rope_local_base_freq 1e4 on local ones; layer 0 local, layer 1 global.
    "tiny-gemma3": (
        "Gemma3TextConfig",
        "Gemma3ForCausalLM",
        "gemma3",
        dict(rms_norm_eps=1e-6, tie_word_embeddings=True, hidden_act=None, hidden_activation="gelu_pytorch_tanh",
             sliding_window=8, query_pre_attn_scalar=24, rope_theta=1000000.0, rope_local_base_freq=10000.0,
             layer_types=["sliding_attention", "full_attention"]),
    ),
}
# Gemma's RMSNorm scales by (1 + weight) and initialises weight to 0: spread those around 0.
OFFSET_NORMS = {"tiny-gemma2", "tiny-gemma3"}


def make_model(name, out_dir, tok_dir):
    import torch
    import transformers

    cfg_cls, model_cls, style, extra = MODELS[name]
    st = TOKENIZER_STYLES[style]
    with open(os.path.join(tok_dir, "tokenizer.json")) as f:
        tj = json.load(f)
    ids = {t["content"]: t["id"] for t in tj["added_tokens"]}
    kw = dict(MODEL_DIMS)
    kw.update(extra)
    kw = {k: v for k, v in kw.items() if v is not None or k not in ("hidden_act",)}
    kw["bos_token_id"] = ids.get(st["bos"]) if st["bos"] else None
    kw["eos_token_id"] = ids[st["eos"]]
    kw["pad_token_id"] = ids[st["pad"]]
    config = getattr(transformers, cfg_cls)(**kw)
    # seed per model so adding models never changes existing ones
    seed = SEED + int(hashlib.sha256(name.encode()).hexdigest()[:6], 16) % 10000
    torch.manual_seed(seed)
    model = getattr(transformers, model_cls)(config)
    model = model.to(torch.float32).eval()
    # Give the norm weights a little spread (all-ones would hide norm bugs in parity tests).
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for n, p in model.named_parameters():
            if n.endswith("norm.weight"):
                center = 0.0 if name in OFFSET_NORMS else 1.0
                p.copy_(center + 0.1 * torch.randn(p.shape, generator=g))
            elif n.endswith(".bias"):
                p.copy_(0.02 * torch.randn(p.shape, generator=g))
    model.save_pretrained(out_dir, safe_serialization=True)
    # tokenizer files
    for f in os.listdir(tok_dir):
        shutil.copy(os.path.join(tok_dir, f), os.path.join(out_dir, f))
    return model


def verify(out_dir, style):
    import torch
    from tokenizers import Tokenizer
    from transformers import AutoModelForCausalLM, AutoTokenizer

    st = TOKENIZER_STYLES[style]
    tok = AutoTokenizer.from_pretrained(out_dir)
    raw = Tokenizer.from_file(os.path.join(out_dir, "tokenizer.json"))
    for line in CORPUS_LINES + ["Héllo wörld 12345 !!\n\n  x", "<|im_start|>user\nhi<|im_end|>\n"]:
        a = tok(line)["input_ids"]
        b = raw.encode(line).ids
        assert a == b, (out_dir, line, a, b)
        assert tok.decode(a, skip_special_tokens=True) == line or st["nfc"] or "<|" in line, line
    assert len(tok) == VOCAB_SIZE, len(tok)
    assert tok.eos_token == st["eos"] and tok.pad_token == st["pad"] and tok.bos_token == st["bos"]
    msgs = [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "Hello"},
        {"role": "assistant", "content": "Hi there."},
    ]
    if "System role not supported" in st["chat_template"]:
        msgs = msgs[1:]
    rendered = tok.apply_chat_template(msgs, tokenize=False)
    model = AutoModelForCausalLM.from_pretrained(out_dir, dtype=torch.float32)
    ids = torch.tensor([tok("The cat sleeps in the warm sun.")["input_ids"]])
    with torch.no_grad():
        out = model(input_ids=ids, labels=ids)
    n_params = sum(p.numel() for p in model.parameters())
    size = sum(os.path.getsize(os.path.join(out_dir, f)) for f in os.listdir(out_dir))
    return dict(
        loss=float(out.loss),
        n_params=n_params,
        bytes=size,
        chat=rendered,
        tokens_per_char=len(tok(ALPACA_SYS_INPUT)["input_ids"]) / len(ALPACA_SYS_INPUT),
    )


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "..", "fixtures", "models"))
    ap.add_argument("--only", nargs="*", default=None)
    args = ap.parse_args()
    out_root = os.path.abspath(args.out)
    os.makedirs(out_root, exist_ok=True)

    import torch

    torch.use_deterministic_algorithms(True)
    with tempfile.TemporaryDirectory() as td:
        tok_dirs = {}
        for style in TOKENIZER_STYLES:
            tok = train_tokenizer(style)
            d = os.path.join(td, style)
            write_tokenizer(tok, style, d)
            tok_dirs[style] = d
        for name in MODELS:
            if args.only and name not in args.only:
                continue
            out_dir = os.path.join(out_root, name)
            if os.path.isdir(out_dir):
                shutil.rmtree(out_dir)
            make_model(name, out_dir, tok_dirs[MODELS[name][2]])
            info = verify(out_dir, MODELS[name][2])
            print(
                f"{name}: params={info['n_params']} bytes={info['bytes']} "
                f"init_loss={info['loss']:.4f} tokens/char(alpaca sys)={info['tokens_per_char']:.3f}"
            )
            print("  chat:", json.dumps(info["chat"]))


if __name__ == "__main__":
    sys.exit(main())
