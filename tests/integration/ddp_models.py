"""Launched by torchrun from test_scale: each rank trains the given models with trainer=ddp, one store each.

torchrun starts both ranks at once, so several models cost one interpreter start-up instead of one each.
Usage: torchrun --standalone --nproc_per_node=2 ddp_models.py ROOT MODEL[,MODEL...] [override ...]
"""

import sys
from pathlib import Path

from synthset.config import compose_config
from synthset.pipelines.train import run_training

root, models, overrides = Path(sys.argv[1]), sys.argv[2].split(","), sys.argv[3:]
for model in models:
    cfg = compose_config("train", ["trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2", f"model={model}",
                                   *overrides], root / model)
    run_training(cfg)
