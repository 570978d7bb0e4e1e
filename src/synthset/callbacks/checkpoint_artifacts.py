"""Save a final ``last.ckpt`` and copy ``last``/``best`` into the run's MLflow artifacts."""

from pathlib import Path

import pytorch_lightning as pl
from pytorch_lightning.callbacks import ModelCheckpoint

from synthset.tracking.runs import CHECKPOINT_ARTIFACT_DIR


class LogCheckpointsToMLflow(pl.Callback):
    """Artifacts make checkpoints reachable from any machine that sees the store (evaluate, generate).

    ModelCheckpoint saves every N steps only, so the final step is saved here as ``last.ckpt``.
    """

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        paths: set[Path] = set()
        for callback in trainer.checkpoint_callbacks:
            if not isinstance(callback, ModelCheckpoint) or callback.dirpath is None:
                continue
            if callback.save_last:
                last = Path(callback.dirpath) / f"{callback.CHECKPOINT_NAME_LAST}{callback.FILE_EXTENSION}"
                # Every rank takes part in saving (a collective under DDP); rank 0 writes.
                trainer.save_checkpoint(last)
                paths.add(last)
            # best.ckpt is kept by the evaluation callback, next to last.ckpt.
            paths.add(Path(callback.dirpath) / "best.ckpt")
        if not trainer.is_global_zero:
            return
        for logger in trainer.loggers:
            if hasattr(logger, "run_id") and hasattr(logger.experiment, "log_artifact"):
                for path in sorted(p for p in paths if p.is_file()):
                    logger.experiment.log_artifact(logger.run_id, str(path), CHECKPOINT_ARTIFACT_DIR)
