#!/usr/bin/env python3
"""TorchTune 0.6.1's samples for the SentencePiece families, on the tiny SentencePiece tokenizer.

For each of llama2_tokenizer (Llama2ChatTemplate; Code Llama uses it too), mistral_tokenizer
(MistralChatTemplate) and gemma_tokenizer (no template), builds the real datasets
(alpaca_dataset over fixtures/data/alpaca.json with train_on_input False and True; chat_dataset
over fixtures/data/chat.jsonl and the multi-turn fixtures/tokenizers/tiny-spm-llama/turns.jsonl,
openai style) at max_seq_len 512 and 40 (truncation), and records every sample's tokens and
labels, or the error TorchTune raises (Mistral refuses system messages).

    ~/.cache/tunebridge/ref/tt/bin/python scripts/reference/torchtune_framing_golden.py

Writes fixtures/tokenizers/tiny-spm-llama/torchtune_samples.json, and the same for
phi3_mini_tokenizer (Phi3MiniTokenizer) on fixtures/models/tiny-phi3-spm (the same
tokenizer.model plus Phi-3's special tokens from its tokenizer.json) into
fixtures/models/tiny-phi3-spm/torchtune_samples.json.
"""

import json
import os

from torchtune.datasets import alpaca_dataset, chat_dataset
from torchtune.models.gemma import gemma_tokenizer
from torchtune.models.llama2 import llama2_tokenizer
from torchtune.models.mistral import mistral_tokenizer
from torchtune.models.phi3 import phi3_mini_tokenizer

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOK = os.path.join(ROOT, "fixtures", "tokenizers", "tiny-spm-llama")


def datasets(tok):
    yield "alpaca", lambda: alpaca_dataset(
        tok, source="json", data_files="fixtures/data/alpaca.json", split="train",
        train_on_input=False)
    yield "alpaca_train_on_input", lambda: alpaca_dataset(
        tok, source="json", data_files="fixtures/data/alpaca.json", split="train",
        train_on_input=True)
    for name, path in [("chat", "fixtures/data/chat.jsonl"),
                       ("turns", "fixtures/tokenizers/tiny-spm-llama/turns.jsonl")]:
        yield name, lambda path=path: chat_dataset(
            tok, source="json", data_files=path, split="train",
            conversation_column="messages", conversation_style="openai",
            train_on_input=False)


def phi3(path, max_seq_len):
    phi = os.path.join(ROOT, "fixtures", "models", "tiny-phi3-spm")
    return phi3_mini_tokenizer(os.path.join(phi, "tokenizer.model"),
                               special_tokens_path=os.path.join(phi, "tokenizer.json"),
                               max_seq_len=max_seq_len)


def main():
    os.chdir(ROOT)
    record([("llama2", llama2_tokenizer), ("mistral", mistral_tokenizer),
            ("gemma", gemma_tokenizer)], TOK)
    record([("phi3", phi3)], os.path.join(ROOT, "fixtures", "models", "tiny-phi3-spm"))


def record(builders, out_dir):
    out = {}
    for family, builder in builders:
        for max_len in [512, 40]:
            tok = builder(os.path.join(TOK, "tokenizer.model"), max_seq_len=max_len)
            for name, make in datasets(tok):
                key = f"{family}/{name}/{max_len}"
                rows = []
                ds = make()
                for i in range(min(len(ds), 24)):
                    try:
                        s = ds[i]
                        rows.append({"tokens": [int(t) for t in s["tokens"]],
                                     "labels": [int(t) for t in s["labels"]]})
                    except Exception as e:  # noqa: BLE001 - recorded as the expected error
                        rows.append({"error": f"{type(e).__name__}: {e}"})
                out[key] = rows
    path = os.path.join(out_dir, "torchtune_samples.json")
    with open(path, "w") as f:
        json.dump(out, f, separators=(",", ":"))
        f.write("\n")
    print("wrote", path, {k: len(v) for k, v in out.items()})


if __name__ == "__main__":
    main()
