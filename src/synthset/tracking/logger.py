"""Lightning's MLFlowLogger, made safe to resume into the same run without duplicated steps."""

import os
from typing import Any

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


class ResumableMLFlowLogger(MLFlowLogger):
    """Continues an existing run and drops re-computed metrics at steps it already holds.

    A killed run resumes from its last checkpoint, so the steps between that checkpoint and
    the kill are computed again; their first values are already in the run and stay there. A value
    is dropped only when the run already holds that metric at that step or later.
    """

    def __init__(self, *args: Any, resume_run_id: str | None = None, **kwargs: Any) -> None:
        super().__init__(*args, run_id=resume_run_id, **kwargs)
        self.resuming = resume_run_id is not None
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
            if not metrics:
                return
        super().log_metrics(metrics, step)

    @rank_zero_only
    def log_hyperparams(self, params: Any) -> None:
        # The resumed run already holds the params; MLflow refuses to change a logged param.
        if not self.resuming:
            super().log_hyperparams(params)
