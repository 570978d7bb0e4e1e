"""Lightning's MLFlowLogger, made safe to resume into the same run without duplicated steps, and batched."""

import os
import time
from typing import Any

import pytorch_lightning as pl
from mlflow.entities import Metric
from mlflow.tracking import MlflowClient
from pytorch_lightning.loggers import MLFlowLogger
from pytorch_lightning.utilities import rank_zero_only

from synthset.tracking.store import ENV_VAR


def last_logged_steps(client: MlflowClient, run_id: str) -> dict[str, int]:
    """Per metric, the highest step ``run_id`` holds: the resume high-water marks.

    One mark per metric, not one for the run: evaluation metrics logged after the last checkpoint
    must not hide the training metrics between that checkpoint and the kill.
    """
    run = client.get_run(run_id)
    return {key: max(m.step for m in client.get_metric_history(run_id, key)) for key in run.data.metrics}


# MLflow refuses a log_batch of more than 1,000 metrics.
MAX_METRICS_PER_BATCH = 1000


class ResumableMLFlowLogger(MLFlowLogger):
    """Continues an existing run, drops re-computed metrics at steps it already holds, and writes in batches.

    A killed run resumes from its last checkpoint, so the steps between that checkpoint and
    the kill are computed again; their first values are already in the run and stay there. A value
    is dropped only when the run already holds that metric at that step or later.

    Metrics are held in memory and written in one ``log_batch`` every ``flush_every_s`` seconds, around
    every checkpoint (``FlushAroundCheckpoints``) and at the end: one write costs about 9 ms on a SQLite
    store, which at ``log_every_n_steps=25`` was a quarter of Lightning's cost per batch. A kill loses
    only values after the last checkpoint, which the resumed run computes and logs again.
    """

    def __init__(self, *args: Any, resume_run_id: str | None = None, flush_every_s: float = 10.0,
                 **kwargs: Any) -> None:
        super().__init__(*args, run_id=resume_run_id, **kwargs)
        self.resuming = resume_run_id is not None
        self.flush_every_s = flush_every_s
        self._pending: list[Metric] = []
        self._last_flush = time.monotonic()
        self._logged_through: dict[str, int] = {}
        if self.resuming and rank_zero_only.rank == 0:  # other DDP ranks never log
            self._logged_through = last_logged_steps(self.experiment, resume_run_id)

    @property
    def experiment(self) -> MlflowClient:
        # mlflow.set_tracking_uri (called by the parent) exports the URI to MLFLOW_TRACKING_URI, which
        # would then pass for the user's own setting in every later run of this process: undo that.
        previous = os.environ.get(ENV_VAR)
        try:
            return super().experiment
        finally:
            if previous is None:
                os.environ.pop(ENV_VAR, None)
            else:
                os.environ[ENV_VAR] = previous

    @rank_zero_only
    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        if step is not None and self._logged_through:
            metrics = {k: v for k, v in metrics.items() if step > self._logged_through.get(k, -1)}
        timestamp_ms = int(time.time() * 1000)
        self._pending.extend(Metric(key=key, value=float(value), timestamp=timestamp_ms, step=step or 0)
                             for key, value in metrics.items())
        if time.monotonic() - self._last_flush >= self.flush_every_s:
            self.flush()

    @rank_zero_only
    def flush(self) -> None:
        """Write the held metrics to the run."""
        pending, self._pending = self._pending, []
        self._last_flush = time.monotonic()
        for start in range(0, len(pending), MAX_METRICS_PER_BATCH):
            self.experiment.log_batch(self.run_id, metrics=pending[start:start + MAX_METRICS_PER_BATCH],
                                      **self._log_batch_kwargs)

    @rank_zero_only
    def finalize(self, status: str = "success") -> None:
        self.flush()  # also on a failed or interrupted fit: what was measured before it is kept
        super().finalize(status)

    @rank_zero_only
    def log_hyperparams(self, params: Any) -> None:
        # The resumed run already holds the params; MLflow refuses to change a logged param.
        if not self.resuming:
            super().log_hyperparams(params)


class FlushAroundCheckpoints(pl.Callback):
    """Writes the logger's held metrics when a checkpoint is saved, so a resume never skips past them.

    Lightning logs a batch's metrics after its ``on_train_batch_end``, where checkpoints are saved: those
    of the checkpointed batch itself are written at the next batch's start, as soon as they can be.
    """

    def __init__(self, logger: ResumableMLFlowLogger) -> None:
        self.logger = logger
        self.checkpoint_batch_pending = False

    def on_save_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict) -> None:
        self.logger.flush()
        self.checkpoint_batch_pending = True

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any,
                             batch_idx: int) -> None:
        if self.checkpoint_batch_pending:
            self.checkpoint_batch_pending = False
            self.logger.flush()
