"""Load a synthset checkpoint as data: the model comes from synthset's registry, never from the file.

The file names its model by a short registered name; its hyperparameters are checked against that
class's signature and types, and its stored run config and evaluation must be plain data. Anything
else is refused with one sentence before any object is built.
"""

from pathlib import Path
from typing import Any

import torch

from synthset.errors import SynthsetError, require
from synthset.models import MODEL_REGISTRY, GenerativeModel
from synthset.models.checkpoint_format import EVAL_KEY, MODEL_NAME_KEY, RUN_CONFIG_KEY
from synthset.plaindata import check_arguments, require_plain


def read_checkpoint(path: Path) -> dict[str, Any]:
    """The checkpoint's contents through ``torch.load(weights_only=True)``: tensors and plain containers only."""
    require(Path(path).is_file(), f"checkpoint {path} does not exist; pass the path of a .ckpt file written by synthset.")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise SynthsetError(f"checkpoint {path} cannot be read ({type(error).__name__}); it is damaged or not a "
                            "synthset checkpoint, so pass another file or retrain.") from None
    require(isinstance(checkpoint, dict), f"checkpoint {path} is not a synthset checkpoint (no dictionary inside).")
    return checkpoint


def model_class_of(checkpoint: dict[str, Any], path: Path) -> type[GenerativeModel]:
    name = checkpoint.get(MODEL_NAME_KEY)
    require(isinstance(name, str) and name in MODEL_REGISTRY,
            f"checkpoint {path} names model {str(name)[:80]!r}, which is not one of synthset's models "
            f"({', '.join(MODEL_REGISTRY)}); only checkpoints written by synthset can be loaded.")
    return MODEL_REGISTRY[name]


def validated_checkpoint(path: Path) -> tuple[dict[str, Any], type[GenerativeModel]]:
    """The checkpoint's contents and model class, once everything in it is known to be plain, checked data."""
    checkpoint = read_checkpoint(path)
    cls = model_class_of(checkpoint, path)
    hparams = checkpoint.get("hyper_parameters")
    require(isinstance(hparams, dict), f"checkpoint {path} carries no hyperparameters; it was not written by synthset.")
    check_arguments(cls, hparams, "model.", f"checkpoint {path}")
    for key in (RUN_CONFIG_KEY, EVAL_KEY):
        require_plain(checkpoint.get(key), f"checkpoint {path} ({key})")
    return checkpoint, cls


def load_generative_model(path: Path) -> tuple[GenerativeModel, dict[str, Any]]:
    """The model in eval mode and the checkpoint's plain contents (``run_config`` attached to the model)."""
    checkpoint, cls = validated_checkpoint(path)
    hparams = checkpoint["hyper_parameters"]
    model = cls(**hparams)
    try:
        model.load_state_dict(checkpoint["state_dict"])
    except (KeyError, RuntimeError) as error:
        first = str(error).strip().splitlines()[0][:200]
        raise SynthsetError(f"checkpoint {path}: its weights do not fit a {cls.registry_name} built from its own "
                            f"hyperparameters ({first}); the file is damaged or was altered.") from None
    model.run_config = checkpoint.get(RUN_CONFIG_KEY)
    return model.eval(), checkpoint
