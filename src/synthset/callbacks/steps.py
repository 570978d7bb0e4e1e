"""One step axis for everything a training run logs."""

import pytorch_lightning as pl


def logged_step(trainer: pl.Trainer) -> int:
    """The step Lightning writes ``train/*`` at (batches that stepped); ``eval/*`` and sample grids use it too.

    ``trainer.global_step`` counts optimizer steps (two per DCGAN batch), so it is not that axis.
    """
    return int(trainer.fit_loop.epoch_loop._batches_that_stepped)
