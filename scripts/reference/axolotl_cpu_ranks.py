"""`axolotl train` for data-parallel CPU ranks under torchrun (gloo), for golden runs.

Axolotl 0.19 has no CPU multi-process path; two device choices assume CUDA when WORLD_SIZE > 1,
and both are answered for the CPU here (nothing that trains is touched):
- `load_cfg` -> `prepare_optim_env` probes CUDA peer-to-peer access
  (`axolotl/utils/environment.py::check_cuda_p2p_support`), which raises "Found no NVIDIA
  driver"; the probe only decides whether to set NCCL_P2P_DISABLE, so it answers "no P2P";
- `normalize_config` sets `device_map = {"": LOCAL_RANK}` (`utils/config/__init__.py`), i.e.
  cuda:LOCAL_RANK; it is set to the CPU after normalisation, as it is for one process.
ACCELERATE_USE_CPU=true is what `accelerate launch --cpu` sets: without it the HF Trainer (transformers
5.16 `TrainingArguments._setup_devices`) does not treat CPU processes as distributed and every
rank trains alone on the whole data. With it, accelerate forms a gloo process group for the CPU
ranks (MULTI_CPU) and the Trainer wraps the model in DistributedDataParallel as on GPUs.

    torchrun --nproc-per-node 2 scripts/reference/axolotl_cpu_ranks.py CONFIG.yaml
"""

import os

import fire

os.environ["ACCELERATE_USE_CPU"] = "true"

import axolotl.utils.environment as environment

import axolotl.cli.config as cli_config

environment.check_cuda_p2p_support = lambda: False
normalize_config = cli_config.normalize_config


def normalize_config_on_cpu(cfg):
    normalize_config(cfg)
    cfg.device_map = {"": "cpu"}


cli_config.normalize_config = normalize_config_on_cpu

from axolotl.cli.train import do_cli  # noqa: E402  (after the probe is replaced)

if __name__ == "__main__":
    fire.Fire(do_cli)
