"""Save and restore the Python, NumPy, torch CPU and CUDA RNG states in checkpoints for exact resumes."""

from typing import Any

import pytorch_lightning as pl

from synthset.rng import capture_rng_states, restore_rng_states


class RNGStateCallback(pl.Callback):
    """Lightning checkpoints keep model, optimizers and loops; this adds the random streams."""

    def state_dict(self) -> dict[str, Any]:
        return capture_rng_states()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        restore_rng_states(state_dict)
