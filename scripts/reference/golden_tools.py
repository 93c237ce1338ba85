#!/usr/bin/env python3
"""Helpers for the golden runs (see golden/runs/README.md).

Subcommands (each runs in the env named in brackets):

  tt-init-adapter CONFIG OUTDIR|- [--recipe lora_finetune_single_device] [--data-out DIR]   [tt]
      Instantiate the stock TorchTune recipe with CONFIG exactly as `tune run` does
      (recipe __init__ seeds, then setup() builds the model) and save the adapter
      parameters as they are right before the first training step:
        OUTDIR/adapter_model_torchtune.safetensors  (TorchTune names)
        OUTDIR/adapter_model.safetensors            (PEFT names, via torchtune's own converter)
        OUTDIR/adapter_config.json
      With --data-out DIR also DIR/data_order.json (sampler order per epoch) and
      DIR/samples.jsonl (tokens + labels of every dataset row, as the recipe sees them).
      OUTDIR "-" skips the adapter (full fine-tune recipes).
  tt-metrics LOGFILE OUT.jsonl                                              [any]
      Parse TorchTune DiskLogger lines `Step N | loss:… lr:… grad_norm:…`.
  tt-export-adapter EPOCHDIR RUNDIR                                         [tt]
      Copy adapter_model.safetensors + adapter_config.json and convert adapter_model.pt
      to RUNDIR/adapter_model_torchtune.safetensors.
  hf-metrics TRAINER_STATE.json OUT.jsonl                                   [any]
      One JSON object per logged optimizer step from HF trainer_state.json log_history, plus
      one {step, eval_loss, epoch} object per evaluation.
  peft-init-adapter MODELDIR OUTDIR --r R --alpha A [--dropout D] [--seed S]
                    [--targets q_proj,v_proj | --target-linear] [--dora]     [ax]
      Create a seeded PEFT LoRA adapter (B = 0) and save_pretrained it (--dora: use_dora, so
      it also holds each layer's initial magnitude ‖W‖).
"""

import argparse
import json
import os
import re
import shutil
import sys


def _write_jsonl(path, rows):
    with open(path, "w") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")


def tt_metrics(args):
    rows = []
    pat = re.compile(r"^Step (\d+) \| (.*)$")
    with open(args.log) as f:
        for line in f:
            m = pat.match(line.strip())
            if not m:
                continue
            row = {"step": int(m.group(1))}
            for item in m.group(2).split():
                k, v = item.split(":", 1)
                if k in ("loss", "lr", "grad_norm"):
                    row[k] = float(v)
            rows.append(row)
    _write_jsonl(args.out, rows)
    print(f"{len(rows)} steps -> {args.out}")


def hf_metrics(args):
    with open(args.state) as f:
        st = json.load(f)
    rows = []
    for e in st["log_history"]:
        if "eval_loss" in e:
            # an evaluation (eval_steps / eval_on_start): its own row at the step it ran after
            rows.append({"step": e["step"], "eval_loss": e["eval_loss"], "epoch": e.get("epoch")})
            continue
        if "loss" not in e:
            continue
        row = {"step": e["step"], "loss": e["loss"], "lr": e.get("learning_rate")}
        if "grad_norm" in e:
            row["grad_norm"] = e["grad_norm"]
        row["epoch"] = e.get("epoch")
        for k in ("tokens/trainable", "tokens/total", "num_tokens"):
            if k in e:
                row[k] = e[k]
        rows.append(row)
    _write_jsonl(args.out, rows)
    print(f"{len(rows)} rows -> {args.out}")


def tt_init_adapter(args):
    import tempfile

    from omegaconf import OmegaConf

    cfg = OmegaConf.load(args.config)

    scratch = tempfile.mkdtemp(prefix="tt-init-")
    cfg.output_dir = scratch  # logs/config copies go to scratch; nothing else changes
    # `tune run` executes recipes/<name>.py as a script (runpy); load the same file.
    import importlib.util

    import torchtune

    path = os.path.join(os.path.dirname(os.path.dirname(torchtune.__file__)), "recipes", args.recipe + ".py")
    spec = importlib.util.spec_from_file_location("tt_recipe_" + args.recipe, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    cls = [getattr(mod, n) for n in dir(mod) if n.endswith("RecipeSingleDevice")][0]
    recipe = cls(cfg=cfg)
    recipe.setup(cfg=cfg)
    sd = {k: v.detach().clone().contiguous() for k, v in recipe._model.state_dict().items()
          if "lora_" in k or "magnitude" in k}  # DoRA: its magnitude too
    if args.out != "-":
        _tt_save_adapter(cfg, sd, args.out)
    _tt_dump_data(args, cfg, recipe)
    shutil.rmtree(scratch, ignore_errors=True)


def _tt_save_adapter(cfg, sd, out):
    from safetensors.torch import save_file
    from torchtune.models import convert_weights

    os.makedirs(out, exist_ok=True)
    args_out = out
    save_file(sd, os.path.join(args_out, "adapter_model_torchtune.safetensors"), metadata={"format": "pt"})
    m = cfg.model
    if cfg.checkpointer.model_type in ("PHI3_MINI", "PHI4"):
        # FullModelHFCheckpointer saves Phi adapters in TorchTune's format only (no PEFT file)
        print(f"init adapter: {len(sd)} tensors -> {out} (TorchTune names only, as for Phi)")
        return
    peft = convert_weights.tune_to_peft_adapter_weights(
        sd, num_heads=m.num_heads, num_kv_heads=m.num_kv_heads, dim=m.embed_dim
    )
    save_file({k: v.contiguous() for k, v in peft.items()}, os.path.join(args_out, "adapter_model.safetensors"),
              metadata={"format": "pt"})
    target = list(m.lora_attn_modules) + (["w1", "w2", "w3"] if m.apply_lora_to_mlp else [])
    conf = convert_weights.tune_to_peft_adapter_config(
        {"r": m.lora_rank, "lora_alpha": m.lora_alpha, "target_modules": target, "peft_type": "LORA"}
    )
    if m.get("use_dora", False):
        conf["use_dora"] = True
    with open(os.path.join(args_out, "adapter_config.json"), "w") as f:
        json.dump(conf, f, indent=2)
    print(f"init adapter: {len(sd)} tensors -> {out}")


def _tt_dump_data(args, cfg, recipe):
    # What the data loader will feed: sampler order per epoch and each sample's tokens/labels
    # exactly as the recipe's dataset returns them (before collation/padding/label shift).
    if args.data_out:
        sampler = recipe._sampler if hasattr(recipe, "_sampler") else recipe._dataloader.sampler
        order = []
        for e in range(cfg.epochs):
            sampler.set_epoch(e)
            order.append([int(i) for i in iter(sampler)])
        sampler.set_epoch(0)
        ds = recipe._dataloader.dataset
        with open(os.path.join(args.data_out, "data_order.json"), "w") as f:
            json.dump({"batch_size": cfg.batch_size, "gradient_accumulation_steps": cfg.gradient_accumulation_steps,
                       "drop_last": True, "epochs": order}, f)
            f.write("\n")
        rows = []
        for i in range(len(ds)):
            item = ds[i]
            rows.append({"index": i, "tokens": [int(t) for t in item["tokens"]],
                         "labels": [int(t) for t in item["labels"]]})
        _write_jsonl(os.path.join(args.data_out, "samples.jsonl"), rows)
        print(f"data order + {len(rows)} samples -> {args.data_out}")


def tt_export_adapter(args):
    import torch
    from safetensors.torch import save_file

    for f in ("adapter_model.safetensors", "adapter_config.json"):
        # absent for Phi-3/Phi-4: TorchTune saves no PEFT adapter for them
        if os.path.exists(os.path.join(args.epoch_dir, f)):
            shutil.copy(os.path.join(args.epoch_dir, f), os.path.join(args.run_dir, f))
    sd = torch.load(os.path.join(args.epoch_dir, "adapter_model.pt"), map_location="cpu", weights_only=True)
    save_file({k: v.contiguous() for k, v in sd.items()},
              os.path.join(args.run_dir, "adapter_model_torchtune.safetensors"), metadata={"format": "pt"})
    print(f"exported adapter from {args.epoch_dir}")


def peft_init_adapter(args):
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32)
    if args.target_linear:
        targets = sorted(
            {n.split(".")[-1] for n, mod in model.named_modules()
             if isinstance(mod, torch.nn.Linear) and not n.endswith("lm_head")}
        )
    else:
        targets = args.targets.split(",")
    cfg = LoraConfig(r=args.r, lora_alpha=args.alpha, lora_dropout=args.dropout, target_modules=targets,
                     bias="none", task_type="CAUSAL_LM", use_dora=args.dora)
    torch.manual_seed(args.seed)
    pm = get_peft_model(model, cfg)
    pm.save_pretrained(args.out)
    # keep the base path relative/neutral
    p = os.path.join(args.out, "adapter_config.json")
    with open(p) as f:
        c = json.load(f)
    c["base_model_name_or_path"] = args.model
    with open(p, "w") as f:
        json.dump(c, f, indent=2, sort_keys=True)
    for extra in ("README.md",):
        if os.path.exists(os.path.join(args.out, extra)):
            os.remove(os.path.join(args.out, extra))
    print(f"PEFT init adapter (seed {args.seed}, targets {targets}) -> {args.out}")


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("tt-metrics"); p.add_argument("log"); p.add_argument("out"); p.set_defaults(fn=tt_metrics)
    p = sub.add_parser("hf-metrics"); p.add_argument("state"); p.add_argument("out"); p.set_defaults(fn=hf_metrics)
    p = sub.add_parser("tt-init-adapter"); p.add_argument("config"); p.add_argument("out")
    p.add_argument("--recipe", default="lora_finetune_single_device")
    p.add_argument("--data-out", default=None, help="also write data_order.json + samples.jsonl here")
    p.set_defaults(fn=tt_init_adapter)
    p = sub.add_parser("tt-export-adapter"); p.add_argument("epoch_dir"); p.add_argument("run_dir")
    p.set_defaults(fn=tt_export_adapter)
    p = sub.add_parser("peft-init-adapter"); p.add_argument("model"); p.add_argument("out")
    p.add_argument("--r", type=int, required=True); p.add_argument("--alpha", type=float, required=True)
    p.add_argument("--dropout", type=float, default=0.0); p.add_argument("--seed", type=int, default=0)
    p.add_argument("--targets", default="q_proj,v_proj"); p.add_argument("--target-linear", action="store_true")
    p.add_argument("--dora", action="store_true", help="use_dora=True (DoRA; the magnitude is saved too)")
    p.set_defaults(fn=peft_init_adapter)
    args = ap.parse_args()
    args.fn(args)


if __name__ == "__main__":
    sys.exit(main())
