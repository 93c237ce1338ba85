#!/usr/bin/env python3
"""A tiny SentencePiece tokenizer, Llama-2 style, and its Hugging Face tokenizer.json.

TorchTune's Llama-2, Code Llama, Mistral (v0.1/v0.2/v0.3) and Gemma tokenizers read a
SentencePiece `tokenizer.model`; the engine reads the model's `tokenizer.json`. The tiny
fixture models carry byte-level BPE tokenizers only, so this script trains a SentencePiece
BPE model with Llama-2's trainer settings (byte fallback, dummy prefix, no normalisation,
digits split, whitespace-only pieces allowed) on the fixture data and converts it with
transformers' LlamaTokenizerFast (convert_slow_tokenizer.LlamaConverter), as a model's
published tokenizer.json is made.

Run in the `tt` env (sentencepiece 0.2.3, transformers 5.24.0, protobuf 7.36: the `ax` env's
protobuf 6.33 cannot read sentencepiece's model proto):

    ~/.cache/tunebridge/ref/tt/bin/python scripts/reference/make_tiny_spm.py

Writes fixtures/tokenizers/tiny-spm-llama/{tokenizer.model,tokenizer.json,tokenizer_config.json}
(transformers 5's converter: Metaspace, prepend_scheme "always") and
fixtures/tokenizers/tiny-spm-llama-legacy/{tokenizer.json,tokenizer_config.json} (the same
vocabulary in the Prepend + Replace normaliser form of published Llama-2/Mistral files). Deterministic (one thread, fixed corpus order).
"""

import json
import os
import sys
import tempfile

import sentencepiece as spm

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "fixtures", "tokenizers", "tiny-spm-llama")


def corpus_lines():
    data = os.path.join(ROOT, "fixtures", "data")
    for name in ["alpaca.json"]:
        for row in json.load(open(os.path.join(data, name))):
            for k in ("instruction", "input", "output"):
                if row.get(k):
                    yield row[k]
    for name in ["chat.jsonl", "completion.jsonl", "input_output.jsonl"]:
        for line in open(os.path.join(data, name)):
            yield json.dumps(json.loads(line), ensure_ascii=False)
    # the framing strings of TorchTune's templates
    yield "[INST] <<SYS>>\nsystem\n<</SYS>>\n\nuser [/INST] assistant"
    yield "### Instruction:\n### Input:\n### Response:\n"


def main():
    os.makedirs(OUT, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        text = os.path.join(tmp, "corpus.txt")
        with open(text, "w") as f:
            for line in corpus_lines():
                f.write(line.replace("\n", " \\n ") + "\n")
        prefix = os.path.join(tmp, "tok")
        spm.SentencePieceTrainer.train(
            input=text,
            model_prefix=prefix,
            model_type="bpe",
            vocab_size=400,
            character_coverage=1.0,
            byte_fallback=True,
            split_digits=True,
            allow_whitespace_only_pieces=True,
            remove_extra_whitespaces=False,
            normalization_rule_name="identity",
            add_dummy_prefix=True,
            unk_id=0,
            bos_id=1,
            eos_id=2,
            pad_id=-1,
            num_threads=1,
            minloglevel=2,
        )
        model = open(prefix + ".model", "rb").read()
    with open(os.path.join(OUT, "tokenizer.model"), "wb") as f:
        f.write(model)
    from transformers import LlamaTokenizerFast

    for old in ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"]:
        if os.path.exists(os.path.join(OUT, old)):
            os.remove(os.path.join(OUT, old))
    # from_pretrained on a folder holding only tokenizer.model converts it (LlamaConverter)
    tok = LlamaTokenizerFast.from_pretrained(OUT, legacy=True, from_slow=True)
    tok.save_pretrained(OUT)
    for extra in ["chat_template.jinja", "tokenizer.model.bak"]:
        p = os.path.join(OUT, extra)
        if os.path.exists(p):
            os.remove(p)
    cfg_path = os.path.join(OUT, "tokenizer_config.json")
    cfg = json.load(open(cfg_path))
    for noise in ["is_local", "local_files_only", "from_slow"]:
        cfg.pop(noise, None)
    with open(cfg_path, "w") as f:
        json.dump(cfg, f, indent=2)
        f.write("\n")
    # The same vocabulary in the form published Llama-2 / Mistral tokenizer.json files have
    # (transformers 4.3x LlamaConverter, legacy): normaliser Prepend("▁") + Replace(" ", "▁"),
    # no pre-tokenizer.
    legacy = OUT + "-legacy"
    os.makedirs(legacy, exist_ok=True)
    tj = json.load(open(os.path.join(OUT, "tokenizer.json")))
    tj["normalizer"] = {
        "type": "Sequence",
        "normalizers": [
            {"type": "Prepend", "prepend": "\u2581"},
            {"type": "Replace", "pattern": {"String": " "}, "content": "\u2581"},
        ],
    }
    tj["pre_tokenizer"] = None
    with open(os.path.join(legacy, "tokenizer.json"), "w") as f:
        json.dump(tj, f, ensure_ascii=False, indent=2)
        f.write("\n")
    with open(os.path.join(legacy, "tokenizer_config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
        f.write("\n")
    print("wrote", sorted(os.listdir(OUT)), sorted(os.listdir(legacy)), file=sys.stderr)


if __name__ == "__main__":
    main()
