"""Load any synthset checkpoint back into its own model class, with the run config it carries."""

from pathlib import Path
from typing import Any

import torch
from hydra.utils import get_class

from synthset.errors import SynthsetError, require
from synthset.models.base import MODEL_CLASS_KEY, RUN_CONFIG_KEY, GenerativeModel


def read_checkpoint(path: Path) -> dict[str, Any]:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise SynthsetError(f"checkpoint {path} cannot be read ({type(error).__name__}); it is not a synthset checkpoint or is damaged.") from None


def load_generative_model(path: Path) -> tuple[GenerativeModel, dict[str, Any]]:
    """The model in eval mode and the resolved run config stored with it."""
    checkpoint = read_checkpoint(path)
    require(MODEL_CLASS_KEY in checkpoint, f"checkpoint {path} was not written by synthset (no {MODEL_CLASS_KEY}).")
    cls = get_class(checkpoint[MODEL_CLASS_KEY])
    model = cls(**checkpoint["hyper_parameters"])
    model.load_state_dict(checkpoint["state_dict"])
    model.run_config = checkpoint.get(RUN_CONFIG_KEY)
    return model.eval(), checkpoint
