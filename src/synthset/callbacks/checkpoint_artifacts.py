"""The one writer of ``last.ckpt``: Lightning's ModelCheckpoint, also saving at the end, then copied to MLflow."""

from functools import cached_property
from pathlib import Path

import pytorch_lightning as pl
from pytorch_lightning.callbacks import ModelCheckpoint

from synthset.models.checkpoint_format import CHECKPOINT_ARTIFACT_DIR


class RunCheckpoints(ModelCheckpoint):
    """``last.ckpt`` every ``every_n_train_steps`` and at the end of training, and nothing else writes it.

    ``best.ckpt`` is kept beside it by the evaluation callback. At the end both are logged as MLflow
    artifacts, so any machine that sees the store can evaluate or generate from the run.
    """

    def __init__(self, **kwargs) -> None:
        kwargs.setdefault("save_last", True)
        kwargs.setdefault("save_top_k", 0)
        # One writer, one name: never last-v1.ckpt beside last.ckpt.
        kwargs["enable_version_counter"] = False
        super().__init__(**kwargs)

    @cached_property
    def state_key(self) -> str:
        # Lightning formats it for every hook of every batch (a repr of five settings fixed at __init__).
        return super().state_key

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.save_last and self._last_global_step_saved != trainer.global_step:
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))
        if not trainer.is_global_zero or self.dirpath is None:
            return
        folder = Path(self.dirpath)
        files = [folder / name for name in ("last.ckpt", "best.ckpt") if (folder / name).is_file()]
        for logger in trainer.loggers:
            if hasattr(logger, "run_id") and hasattr(logger.experiment, "log_artifact"):
                for path in files:
                    logger.experiment.log_artifact(logger.run_id, str(path), CHECKPOINT_ARTIFACT_DIR)
