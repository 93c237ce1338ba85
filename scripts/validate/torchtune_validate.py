#!/usr/bin/env python3
"""Check TorchTune configs the way `tune run` would read them, without building models.

    torchtune_validate.py CONFIG.yaml [CONFIG.yaml ...]

For each file: OmegaConf loads it and resolves every interpolation (`${output_dir}`); every
`_component_` path is imported with torchtune.config._utils._get_component_from_path (nothing
is instantiated); the recipe named in the `tune run <recipe>` comment tunebridge writes must be
one TorchTune ships. A component from an optional package that is not installed in this
environment (bitsandbytes for the 8-bit optimizers, which TorchTune does not pin) is reported
as unverified, not as a failure; a torchtune/torch path that does not resolve is a failure.

Prints one JSON object per line: {"file", "ok", "error", "components", "unverified", "recipe"};
exits 1 if any failed. Checked with TorchTune 0.6.1 (scripts/reference/setup_envs.sh, env `tt`).
"""

import importlib.util
import json
import re
import sys

CORE = ("torchtune", "torch")


def components(node, path=""):
    """Every (dotted config path, _component_ value) in a config tree."""
    if isinstance(node, dict):
        for k, v in node.items():
            sub = f"{path}.{k}" if path else str(k)
            if k == "_component_":
                yield path or "<root>", v
            else:
                yield from components(v, sub)
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from components(v, f"{path}[{i}]")


def validate(path):
    from omegaconf import OmegaConf
    from torchtune._recipe_registry import get_all_recipes
    from torchtune.config._utils import _get_component_from_path

    cfg = OmegaConf.load(path)
    tree = OmegaConf.to_container(cfg, resolve=True)  # fails on a broken interpolation
    found, unverified = [], []
    for where, comp in components(tree):
        if not isinstance(comp, str):
            raise ValueError(f"{where}._component_ is not a dotted path: {comp!r}")
        package = comp.split(".", 1)[0]
        if package not in CORE and importlib.util.find_spec(package) is None:
            unverified.append(f"{comp} (package `{package}` not installed)")
            continue
        try:
            _get_component_from_path(comp)
        except Exception as e:
            raise ValueError(f"{where}._component_ `{comp}` does not resolve: {e}") from e
        found.append(comp)
    recipe = None
    with open(path, encoding="utf-8") as f:
        m = re.search(r"tune run (?:--nproc_per_node[= ]\S+ )?(\S+) --config", f.read())
    if m:
        recipe = m.group(1)
        names = {r.name for r in get_all_recipes()}
        if recipe not in names:
            raise ValueError(f"recipe `{recipe}` is not shipped with this TorchTune")
    return found, unverified, recipe


def main(paths):
    failed = 0
    for path in paths:
        result = {"file": path, "ok": True, "error": "", "components": [], "unverified": [], "recipe": None}
        try:
            result["components"], result["unverified"], result["recipe"] = validate(path)
        except Exception as e:
            failed += 1
            result["ok"] = False
            result["error"] = f"{type(e).__name__}: {e}".strip()
        print(json.dumps(result), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
