#!/usr/bin/env python3
"""The tiny Llama's tokenizer in TorchTune's Llama-3 format (tiktoken), for TorchTune goldens.

`llama3_tokenizer` reads a tiktoken BPE file (`base64(token bytes) rank` per line) and takes
its special tokens from a tokenizer.json-like file (`special_tokens_path`). This writes both
from fixtures/models/tiny-llama/tokenizer.json (byte-level BPE, 506 ranks + 6 specials), into
fixtures/tokenizers/tiny-llama3/, laid out as a Meta Llama-3 download (the tiny model folder
itself stays HF-only):

    original/tokenizer.model      rank = HF id (ids 0..505)
    original/special_tokens.json  the 6 HF specials (506..511) plus the 4 more Llama3Tokenizer
        requires (<|eom_id|> <|python_tag|> <|step_id|> <|image|>) at 512..515, past the
        model's vocab: no fixture text contains them.
    tokenizer.json, tokenizer_config.json, special_tokens_map.json: copies of the tiny
        Llama's (tunebridge reads the tokenizer folder, the parent of `original/`).

The tiny BPE's ids follow its merge order, so tiktoken's rank-ordered merging equals HF's
merge-list BPE; the script checks that both give the same ids on every fixture text, and
refuses to write otherwise.

    ~/.cache/tunebridge/ref/tt/bin/python scripts/reference/make_tiny_tiktoken.py
"""

import base64
import json
import os
import shutil

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MODEL = os.path.join(ROOT, "fixtures", "models", "tiny-llama")
DEST = os.path.join(ROOT, "fixtures", "tokenizers", "tiny-llama3")
EXTRA = ["<|eom_id|>", "<|python_tag|>", "<|step_id|>", "<|image|>"]


def byte_decoder():
    # GPT-2's bytes_to_unicode, inverted
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {chr(c): b for b, c in zip(bs, cs)}


def fixture_texts():
    for name in ("alpaca.json",):
        for row in json.load(open(os.path.join(ROOT, "fixtures", "data", name))):
            yield from (v for v in row.values() if isinstance(v, str))
    for name in ("chat.jsonl", "completion.jsonl"):
        for line in open(os.path.join(ROOT, "fixtures", "data", name)):
            row = json.loads(line)
            if "text" in row:
                yield row["text"]
            for m in row.get("messages", []):
                yield m["content"]


def main():
    tj = json.load(open(os.path.join(MODEL, "tokenizer.json")))
    dec = byte_decoder()
    vocab = tj["model"]["vocab"]
    lines = []
    for tok, i in sorted(vocab.items(), key=lambda kv: kv[1]):
        lines.append(f"{base64.b64encode(bytes(dec[c] for c in tok)).decode()} {i}\n")
    added = [{"id": a["id"], "content": a["content"], "special": True} for a in tj["added_tokens"]]
    nxt = max(a["id"] for a in added) + 1
    added += [{"id": nxt + k, "content": t, "special": True} for k, t in enumerate(EXTRA)]

    out = os.path.join(DEST, "original")
    os.makedirs(out, exist_ok=True)
    for f in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        shutil.copyfile(os.path.join(MODEL, f), os.path.join(DEST, f))
    model_path = os.path.join(out, "tokenizer.model")
    special_path = os.path.join(out, "special_tokens.json")
    tmp = model_path + ".tmp"
    with open(tmp, "w") as f:
        f.writelines(lines)

    from tokenizers import Tokenizer
    from torchtune.models.llama3 import llama3_tokenizer

    hf = Tokenizer.from_file(os.path.join(MODEL, "tokenizer.json"))
    with open(special_path, "w") as f:
        json.dump({"added_tokens": added}, f, indent=2)
        f.write("\n")
    tt = llama3_tokenizer(tmp, special_tokens_path=special_path)
    n = 0
    for text in fixture_texts():
        a = hf.encode(text, add_special_tokens=False).ids
        b = tt.encode(text, add_bos=False, add_eos=False)
        if a != b:
            os.remove(tmp)
            raise SystemExit(f"tiktoken and HF ids differ on {text!r}:\n{a}\n{b}")
        n += 1
    os.replace(tmp, model_path)
    print(f"{len(lines)} ranks, {len(added)} specials; {n} fixture texts encode alike -> {DEST}")


if __name__ == "__main__":
    main()
