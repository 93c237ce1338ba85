"""Check that TorchTune configs would instantiate in the installed TorchTune (0.6.1).

Usage, in a TorchTune environment (e.g. ~/.cache/tunebridge/ref/tt from scripts/reference):
    for f in fixtures/configs/*/*; do
      tunebridge port "$f" --to torchtune -o "out/$(basename "${f%.*}").yaml"; done
    python translators/torchtune/check_components.py out/

Every `_component_` (top level and in dataset lists) must import, and its keywords must bind to
the callable's signature (fully for the model builder; partially elsewhere, since the recipe
passes the tokenizer, parameters or optimizer itself). Keys every recipe requires must exist.
bitsandbytes and transformers components are skipped when those packages are not installed.
"""
import sys, glob, inspect, importlib
from omegaconf import OmegaConf
from torchtune.config._utils import _get_component_from_path
bad = 0
for path in sorted(glob.glob(sys.argv[1] + "/*.yaml")):
    cfg = OmegaConf.to_container(OmegaConf.load(path), resolve=True)
    errs = []
    def check(key, node):
        comp = node["_component_"]
        try:
            fn = _get_component_from_path(comp)
        except Exception as e:
            if comp.split(".")[0] in ("bitsandbytes", "transformers"):
                return
            errs.append(f"{key}: cannot import {comp}: {e}")
            return
        kwargs = {k: v for k, v in node.items() if k != "_component_"}
        sig = inspect.signature(fn)
        try:
            if key == "model":
                sig.bind(**kwargs)
            else:
                sig.bind_partial(**kwargs)
        except TypeError as e:
            errs.append(f"{key}: {comp}: {e}")
    for key, node in cfg.items():
        if isinstance(node, dict) and "_component_" in node:
            check(key, node)
        elif isinstance(node, list):
            for i, n in enumerate(node):
                if isinstance(n, dict) and "_component_" in n:
                    check(f"{key}[{i}]", n)
    for req in ["output_dir","model","tokenizer","checkpointer","resume_from_checkpoint","dataset","seed","shuffle","batch_size","epochs","max_steps_per_epoch","gradient_accumulation_steps","optimizer","loss","metric_logger","device","dtype"]:
        if req not in cfg:
            errs.append(f"missing {req}")
    if errs:
        bad += 1
        print(path.split("/")[-1], "\n   " + "\n   ".join(errs))
print("configs:", len(glob.glob(sys.argv[1] + "/*.yaml")), "with problems:", bad)
