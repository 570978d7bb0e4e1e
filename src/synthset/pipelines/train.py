"""train(cfg): data -> model -> Trainer -> MLflow run. Returns the metric a sweeper optimizes."""

from dataclasses import dataclass
from pathlib import Path

import pytorch_lightning as pl
from omegaconf import DictConfig, OmegaConf, open_dict
from pytorch_lightning.utilities import rank_zero_only

from synthset.callbacks.evaluation import EvaluationCallback
from synthset.config import build
from synthset.data.datamodule import ImageDataModule
from synthset.errors import require
from synthset.models.base import GenerativeModel
from synthset.tracking.logger import ResumableMLFlowLogger
from synthset.tracking.run_metadata import config_as_params, run_tags
from synthset.tracking.runs import RUN_DIR_TAG, find_checkpoint, find_run
from synthset.tracking.store import default_artifact_location, ensure_store, tracking_uri_for
from synthset.tracking.sweep import check_this_job


def validate_train_config(cfg: DictConfig) -> None:
    """Cheap checks before anything heavy starts, each with one clear sentence."""
    max_steps = cfg.trainer.get("max_steps", -1)
    require(
        isinstance(max_steps, int) and max_steps > 0,
        f"trainer.max_steps={max_steps} must be a positive integer (optimizer steps), e.g. trainer.max_steps=2000.",
    )
    check_this_job(cfg)


def build_datamodule(cfg: DictConfig) -> ImageDataModule:
    datamodule = build(cfg.data.module)
    datamodule.setup("fit")
    return datamodule


def build_model(cfg: DictConfig, datamodule: ImageDataModule) -> GenerativeModel:
    return build(
        cfg.model, num_classes=datamodule.num_classes, class_names=list(datamodule.class_names)
    )


def open_resume(cfg: DictConfig, uri: str) -> tuple[str, Path, Path]:
    """For ``resume=<run_id|last>``: the run id, its run folder and its ``last.ckpt``."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    run = find_run(client, cfg.tracking.experiment, str(cfg.resume))
    run_dir = Path(run.data.tags.get(RUN_DIR_TAG) or cfg.paths.run_dir)
    checkpoint = find_checkpoint(client, run, "last", run_dir / "checkpoints")
    return run.info.run_id, run_dir, checkpoint


def build_logger(cfg: DictConfig, uri: str, run_dir: Path, resume_run_id: str | None) -> ResumableMLFlowLogger | None:
    # Only rank 0 logs; on other DDP ranks an MLflow client would open (and race to create) the store.
    if not cfg.logger or rank_zero_only.rank != 0:
        return None
    return build(
        cfg.logger,
        tracking_uri=uri,
        experiment_name=cfg.tracking.experiment,
        artifact_location=default_artifact_location(uri, cfg.paths.output_dir),
        tags=run_tags(cfg, run_dir),
        resume_run_id=resume_run_id,
    )


@dataclass
class TrainingResult:
    model: GenerativeModel
    datamodule: ImageDataModule
    trainer: pl.Trainer
    run_id: str | None

    def final_score(self) -> float | None:
        """The last FID (or its named proxy) the evaluation callback measured, if it ran."""
        for callback in self.trainer.callbacks:
            if isinstance(callback, EvaluationCallback) and callback.last_metrics:
                return callback.last_metrics[callback.monitor]
        return None


def train(cfg: DictConfig) -> float | None:
    """Train the configured model; returns the final ``eval/fid`` (what sweepers minimize) or None."""
    return run_training(cfg).final_score()


def run_training(cfg: DictConfig, extra_callbacks: list[pl.Callback] | None = None) -> TrainingResult:
    """Train the configured model and hand back everything it built (``extra_callbacks``: e.g. a profiler's)."""
    validate_train_config(cfg)
    pl.seed_everything(cfg.seed, workers=True)
    uri = tracking_uri_for(cfg)
    if cfg.logger and rank_zero_only.rank == 0:  # torchrun starts all ranks at once: one creates the store
        ensure_store(uri)

    resume_run_id, checkpoint = None, None
    if cfg.get("resume"):
        resume_run_id, run_dir, checkpoint = open_resume(cfg, uri)
        with open_dict(cfg):
            cfg.paths.run_dir = str(run_dir)
    run_dir = Path(cfg.paths.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)

    datamodule = build_datamodule(cfg)
    model = build_model(cfg, datamodule)
    model.run_config = config_as_params(cfg)
    logger = build_logger(cfg, uri, run_dir, resume_run_id)
    callbacks = [build(c) for c in (cfg.callbacks or {}).values() if c is not None] + list(extra_callbacks or [])
    trainer: pl.Trainer = build(
        cfg.trainer, logger=logger if logger else False, callbacks=callbacks, default_root_dir=str(run_dir)
    )
    if logger is not None:
        logger.log_hyperparams(config_as_params(cfg))
        if not logger.resuming and trainer.is_global_zero:
            logger.experiment.log_text(logger.run_id, OmegaConf.to_yaml(cfg, resolve=True), "config.yaml")

    trainer.fit(model, datamodule=datamodule, ckpt_path=str(checkpoint) if checkpoint else None)

    if logger is not None and trainer.is_global_zero:
        print(f"MLflow run id: {logger.run_id}  (experiment {cfg.tracking.experiment!r}, store {uri})")
        print("Open the UI with: make ui   then browse http://127.0.0.1:5000/#/experiments/"
              f"{logger.experiment_id}/runs/{logger.run_id}")
    return TrainingResult(model, datamodule, trainer, logger.run_id if logger else None)
