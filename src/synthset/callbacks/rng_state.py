"""Save and restore the Python, NumPy, torch CPU and CUDA RNG states in checkpoints for exact resumes."""

import random
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch


class RNGStateCallback(pl.Callback):
    """Lightning checkpoints keep model, optimizers and loops; this adds the random streams."""

    def state_dict(self) -> dict[str, Any]:
        return {
            "python": random.getstate(),
            # Plain lists: checkpoints must load with torch.load(weights_only=True).
            "numpy": [v.tolist() if isinstance(v, np.ndarray) else v for v in np.random.get_state()],
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        random.setstate(state_dict["python"])
        kind, keys, pos, has_gauss, cached = state_dict["numpy"]
        np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
        torch.set_rng_state(state_dict["torch"])
        cuda = state_dict.get("cuda") or []
        if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda)
