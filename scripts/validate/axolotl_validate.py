#!/usr/bin/env python3
"""Validate Axolotl configs with Axolotl's own schema, without loading models or data.

    axolotl_validate.py CONFIG.yaml [CONFIG.yaml ...]

For each file: YAML → DictDefault → plugin registration (as `load_cfg` does) → the pydantic
validation `axolotl.utils.config.validate_config`, with the capabilities of one H100-class GPU
(bf16, tf32, sm_90) — two GPUs for DeepSpeed/FSDP configs, which are multi-GPU by nature.
`normalize_config` is not run: it fetches the model's config.json from the Hub.

Prints one JSON object per line: {"file", "ok", "error", "warnings"}; exits 1 if any failed.
Checked with Axolotl 0.19.0 (scripts/reference/setup_envs.sh, env `ax`).
"""

import json
import logging
import os
import sys
import traceback

os.environ.setdefault("AXOLOTL_DO_NOT_TRACK", "1")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")


class Collect(logging.Handler):
    """Keeps the warnings Axolotl logs while validating one file."""

    def __init__(self):
        super().__init__(level=logging.WARNING)
        self.records = []

    def emit(self, record):
        self.records.append(record.getMessage())


def validate(path, handler):
    import yaml
    from axolotl.utils.config import prepare_plugins, validate_config
    from axolotl.utils.dict import DictDefault

    with open(path, encoding="utf-8") as f:
        cfg = DictDefault(yaml.safe_load(f))
    prepare_plugins(cfg)
    sharded = bool(cfg.get("deepspeed") or cfg.get("fsdp_config") or cfg.get("fsdp"))
    capabilities = {
        "bf16": True,
        "fp8": False,
        "tf32": True,
        "n_gpu": 2 if sharded else 1,
        "compute_capability": "sm_90",
    }
    import torch

    env_capabilities = {"torch_version": torch.__version__.split("+", maxsplit=1)[0]}
    validate_config(cfg, capabilities=capabilities, env_capabilities=env_capabilities)


def main(paths):
    handler = Collect()
    logging.getLogger().addHandler(handler)
    failed = 0
    for path in paths:
        handler.records = []
        result = {"file": path, "ok": True, "error": "", "warnings": []}
        try:
            validate(path, handler)
        except Exception as e:  # every rejection is reported, the next file still runs
            failed += 1
            result["ok"] = False
            result["error"] = f"{type(e).__name__}: {e}".strip()
            if os.environ.get("TUNEBRIDGE_VALIDATE_TRACEBACK"):
                result["error"] += "\n" + traceback.format_exc()
        result["warnings"] = handler.records
        print(json.dumps(result), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
