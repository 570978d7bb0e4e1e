"""Checkpoint files written under a temporary name and renamed: a kill never leaves half a file."""

import os
from pathlib import Path
from typing import Any

from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO


class AtomicCheckpointIO(TorchCheckpointIO):
    """``TorchCheckpointIO`` whose saves are atomic on POSIX file systems (``os.replace``)."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None) -> None:
        final = Path(path)
        temporary = final.with_name(f".{final.name}.tmp-{os.getpid()}")
        super().save_checkpoint(checkpoint, temporary, storage_options)
        os.replace(temporary, final)
