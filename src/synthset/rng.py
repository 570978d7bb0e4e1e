"""The process-wide random streams (Python, NumPy, torch CPU and CUDA): capture, restore, and keep apart.

A side job inside a training run, such as training the reference classifier at the first evaluation,
must not move the run's own streams: otherwise a cold cache and a warm one give different models.
"""

import os
import random
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch

# Lightning's seed_everything leaves these behind for its DataLoader worker seeding and DDP ranks.
SEED_ENVIRONMENT = ("PL_GLOBAL_SEED", "PL_SEED_WORKERS")


def capture_rng_states() -> dict[str, Any]:
    """Every global stream's state, as plain lists and tensors (checkpoints load with ``weights_only=True``)."""
    return {
        "python": random.getstate(),
        "numpy": [v.tolist() if isinstance(v, np.ndarray) else v for v in np.random.get_state()],
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def restore_rng_states(states: dict[str, Any]) -> None:
    """Put back what ``capture_rng_states`` took (CUDA only onto the same number of devices)."""
    random.setstate(states["python"])
    kind, keys, pos, has_gauss, cached = states["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(states["torch"])
    cuda = states.get("cuda") or []
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)


@contextmanager
def rng_kept_apart() -> Iterator[None]:
    """Run a block that may seed or draw from the global streams; afterwards they are exactly as before."""
    states = capture_rng_states()
    environment = {name: os.environ.get(name) for name in SEED_ENVIRONMENT}
    try:
        yield
    finally:
        restore_rng_states(states)
        for name, value in environment.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
