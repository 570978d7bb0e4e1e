"""The checkpoint a command works from: a run's (by id, ``latest`` or ``best``) or a file someone handed over.

Either way it is read as data (``load_generative_model``); a run only helps to find the file.
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlflow.entities import Run
from mlflow.tracking import MlflowClient
from omegaconf import DictConfig

from synthset.data.datamodule import ImageDataModule, datamodule_from_record
from synthset.errors import require
from synthset.models import GenerativeModel
from synthset.models.checkpoint_format import EVAL_KEY
from synthset.models.loading import load_generative_model
from synthset.tracking.runs import find_checkpoint, find_run
from synthset.tracking.store import require_existing_store, tracking_uri_for


@dataclass
class SourceCheckpoint:
    """A loaded model, the plain contents of its checkpoint, and the MLflow run behind it (if any)."""

    model: GenerativeModel
    contents: dict[str, Any]
    path: Path
    tracking_uri: str
    run: Run | None = None

    @property
    def client(self) -> MlflowClient:
        """A client of the store; made on first use, since opening a sqlite store creates it."""
        return MlflowClient(self.tracking_uri)

    @property
    def run_id(self) -> str | None:
        return self.run.info.run_id if self.run is not None else None

    @property
    def name(self) -> str:
        """The run's name, or the file's stem for a checkpoint with no run behind it."""
        return self.run.info.run_name if self.run is not None else self.path.stem

    @property
    def run_config(self) -> dict[str, Any]:
        return self.model.run_config or {}

    @property
    def evaluation(self) -> dict[str, Any] | None:
        """The evaluation of exactly these weights, stored in the checkpoint when training made one."""
        return self.contents.get(EVAL_KEY)

    def datamodule(self) -> ImageDataModule:
        """The run's own data (same source, size, splits and preprocessing), rebuilt from its plain record."""
        datamodule = datamodule_from_record(self.run_config.get("data"), f"checkpoint {self.path} (its data config)")
        datamodule.setup()
        return datamodule


def open_source_checkpoint(cfg: DictConfig) -> SourceCheckpoint:
    """``ckpt=<file>`` when given, else ``checkpoint`` (best/last/auto) of ``run_id`` in the MLflow store."""
    uri = tracking_uri_for(cfg)
    run = None
    if cfg.get("ckpt"):
        path = Path(str(cfg.ckpt)).expanduser()
        require(path.is_file(), f"ckpt={path} is not a file; pass the path of a .ckpt written by synthset.")
    else:
        require(cfg.get("run_id"), "run_id is missing; pass run_id=<id>, run_id=latest, run_id=best or ckpt=<file.ckpt>.")
        require_existing_store(uri)
        client = MlflowClient(uri)
        run = find_run(client, cfg.tracking.experiment, str(cfg.run_id))
        path = find_checkpoint(client, run, str(cfg.checkpoint), Path(cfg.paths.cache_dir) / "checkpoints" / run.info.run_id)
    model, contents = load_generative_model(path)
    require(model.run_config is not None, f"checkpoint {path} carries no run config; it predates synthset 0.2, so retrain.")
    return SourceCheckpoint(model, contents, path, uri, run)
