"""Axolotl plugin used by the golden runs: records, without changing any numerics,

  * every micro-batch the Trainer's data collator produces (input_ids / labels with the
    padding stripped, plus the padded length), in order, to $GOLDEN_BATCHES (JSONL); under
    sample packing each row also records its samples' lengths (`doc_lens`) and `position_ids`;
  * whether the adapter that training starts from equals $GOLDEN_INIT_ADAPTER
    (the lora_model_dir), printed as one line `golden-recorder: init adapter ...`.

Enable with `plugins: [golden_recorder.RecorderPlugin]` in an Axolotl config and
PYTHONPATH containing scripts/reference. With the env vars unset it does nothing.
"""

import json
import os

from axolotl.integrations.base import BasePlugin


class RecorderPlugin(BasePlugin):
    def post_model_load(self, cfg, model):
        ref = os.environ.get("GOLDEN_INIT_ADAPTER")
        if not ref:
            return
        import torch
        from peft import get_peft_model_state_dict
        from safetensors.torch import load_file

        want = load_file(os.path.join(ref, "adapter_model.safetensors"))
        have = get_peft_model_state_dict(model)
        keys_ok = sorted(want) == sorted(have)
        diff = max((have[k].float() - want[k].float()).abs().max().item() for k in want if k in have)
        dtypes = sorted({str(v.dtype) for v in have.values()})
        print(f"golden-recorder: init adapter keys_match={keys_ok} max_abs_diff={diff} dtypes={dtypes} "
              f"n={len(have)}", flush=True)
        del torch

    def post_trainer_create(self, cfg, trainer):
        path = os.environ.get("GOLDEN_BATCHES")
        if not path:
            return
        if int(os.environ.get("WORLD_SIZE", "1")) > 1:
            # one file per data-parallel rank: each records the micro-batches it trains on
            path = f"{path}.rank{os.environ['RANK']}"
        inner = trainer.data_collator
        fh = open(path, "w")
        counter = {"n": 0}

        def recording_collator(features, *a, **kw):
            batch = inner(features, *a, **kw)
            ids = batch["input_ids"]
            labels = batch["labels"]
            mask = batch.get("attention_mask")
            # sample packing: each row is a bin of samples (a list of feature dicts)
            packed = bool(features) and isinstance(features[0], list)
            positions = batch.get("position_ids")
            rows = []
            for i in range(ids.shape[0]):
                if packed:
                    docs = [len(f["input_ids"]) for f in features[i]]
                    n = sum(docs)
                else:
                    n = int(mask[i].sum()) if mask is not None else ids.shape[1]
                row = {"input_ids": ids[i, :n].tolist(), "labels": labels[i, :n].tolist()}
                if packed:
                    row["doc_lens"] = docs
                    if positions is not None:
                        row["position_ids"] = positions[i, :n].tolist()
                rows.append(row)
            fh.write(json.dumps({"micro_batch": counter["n"], "padded_len": int(ids.shape[1]), "rows": rows}) + "\n")
            fh.flush()
            counter["n"] += 1
            return batch

        trainer.data_collator = recording_collator
        print(f"golden-recorder: recording collated micro-batches to {path}", flush=True)
        trainer.add_callback(OptimStateReport())


from transformers import TrainerCallback  # noqa: E402


class OptimStateReport(TrainerCallback):
    """At the end of training, for torchao low-bit optimizers only: the optimizer class, its
    block size, and each parameter's state type (a quantised subclass or a plain fp32 tensor),
    the proof of which path every LoRA matrix took. Reads state, changes nothing."""

    def on_train_end(self, args, state, control, optimizer=None, model=None, **kw):
        opt = getattr(optimizer, "optimizer", optimizer)  # accelerate wraps it
        if opt is None or not type(opt).__module__.startswith("torchao."):
            return
        names = {id(p): n for n, p in model.named_parameters()} if model is not None else {}
        print(f"golden-recorder: optimizer {type(opt).__module__}.{type(opt).__name__} "
              f"block_size={opt.block_size}", flush=True)
        for group in opt.param_groups:
            for p in group["params"]:
                st = opt.state.get(p, {})
                if "exp_avg" in st:
                    print(f"golden-recorder: state {names.get(id(p), '?')} {tuple(p.shape)} "
                          f"wd={group['weight_decay']} exp_avg={type(st['exp_avg']).__name__} "
                          f"exp_avg_sq={type(st['exp_avg_sq']).__name__} step={float(st['step'])}",
                          flush=True)
