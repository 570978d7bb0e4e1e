"""Lightning's MLFlowLogger, made safe to resume into the same run without duplicated steps."""

import os
from typing import Any

from mlflow.tracking import MlflowClient
from pytorch_lightning.loggers import MLFlowLogger
from pytorch_lightning.utilities import rank_zero_only

from synthset.tracking.store import ENV_VAR


def last_logged_step(client: MlflowClient, run_id: str) -> int:
    """Highest step of any metric of ``run_id`` (-1 when none): the resume high-water mark."""
    run = client.get_run(run_id)
    steps = [-1]
    for key in run.data.metrics:
        steps.extend(m.step for m in client.get_metric_history(run_id, key))
    return max(steps)


class ResumableMLFlowLogger(MLFlowLogger):
    """Continues an existing run and drops re-computed metrics at steps it already holds.

    A killed run resumes from its last checkpoint, so the steps between that checkpoint and
    the kill are computed again; their first values are already in the run and stay there.
    """

    def __init__(self, *args: Any, resume_run_id: str | None = None, **kwargs: Any) -> None:
        super().__init__(*args, run_id=resume_run_id, **kwargs)
        self.resuming = resume_run_id is not None
        self._skip_through_step = -1
        if self.resuming and rank_zero_only.rank == 0:  # other DDP ranks never log
            self._skip_through_step = last_logged_step(self.experiment, resume_run_id)

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
        if step is not None and step <= self._skip_through_step:
            return
        super().log_metrics(metrics, step)

    @rank_zero_only
    def log_hyperparams(self, params: Any) -> None:
        # The resumed run already holds the params; MLflow refuses to change a logged param.
        if not self.resuming:
            super().log_hyperparams(params)
