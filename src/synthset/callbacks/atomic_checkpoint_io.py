"""Checkpoint files written under a temporary name and renamed, the previous one kept, read as data only."""

from pathlib import Path
from typing import Any

from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO

from synthset.atomic import atomic_write_with


class AtomicCheckpointIO(TorchCheckpointIO):
    """``TorchCheckpointIO`` with atomic saves that keep the replaced file as ``<name>.prev``.

    A kill never leaves half a checkpoint, and a checkpoint damaged later (a truncated copy) still
    has its predecessor to fall back to. Loads use ``torch.load(weights_only=True)``: tensors and
    plain containers only, nothing that runs code.
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None) -> None:
        save = super().save_checkpoint
        atomic_write_with(Path(path), lambda temporary: save(checkpoint, temporary, storage_options), keep_previous=True)

    def load_checkpoint(self, path: Any, map_location: Any = None, weights_only: bool | None = None) -> dict[str, Any]:
        return super().load_checkpoint(path, map_location=map_location or "cpu", weights_only=True)
