"""Under DDP, prove at the end of training that every rank holds the same weights."""

import hashlib

import pytorch_lightning as pl
import torch
from pytorch_lightning.utilities import rank_zero_warn

REPLICAS_TAG = "synthset.ddp_replicas_identical"
WORLD_SIZE_TAG = "synthset.world_size"


def weights_digest(module: torch.nn.Module) -> bytes:
    """sha256 over every parameter's name and bytes (BatchNorm running stats are per-rank by design)."""
    digest = hashlib.sha256()
    for name, parameter in module.named_parameters():
        digest.update(name.encode())
        digest.update(parameter.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return digest.digest()


class ReplicaConsistencyCheck(pl.Callback):
    """Gathers each rank's weight digest; rank 0 tags the run with the verdict and warns on divergence.

    A GAN under DDP with manual optimization can silently drift apart (a step skipped on one rank, an
    unsynchronized gradient); this check makes that visible instead of saving rank 0's half of a model.
    """

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.world_size < 2:
            return
        local = torch.tensor(list(weights_digest(pl_module)), dtype=torch.int64, device=pl_module.device)
        gathered = trainer.strategy.all_gather(local)  # (world_size, 32) on every rank
        identical = bool((gathered == gathered[0]).all())
        if not trainer.is_global_zero:
            return
        if not identical:
            rank_zero_warn(f"DDP ranks ended with different weights ({trainer.world_size} ranks); "
                           "the saved checkpoint is rank 0's. Check custom training steps for per-rank branches.")
        for logger in trainer.loggers:
            if hasattr(logger, "run_id") and hasattr(logger.experiment, "set_tag"):
                logger.experiment.set_tag(logger.run_id, REPLICAS_TAG, str(identical).lower())
                logger.experiment.set_tag(logger.run_id, WORLD_SIZE_TAG, str(trainer.world_size))
