"""evaluate(cfg): score a finished run's checkpoint and log the metrics into that run."""

from pathlib import Path

from mlflow.tracking import MlflowClient
from omegaconf import DictConfig, OmegaConf
from rich.console import Console
from rich.table import Table

from synthset.config import build
from synthset.data.datamodule import ImageDataModule
from synthset.errors import require
from synthset.metrics.evaluation import evaluate_model
from synthset.metrics.fidelity import MetricSettings
from synthset.models.base import GenerativeModel
from synthset.models.loading import load_generative_model
from synthset.tracking.runs import find_checkpoint, find_run
from synthset.tracking.store import ensure_store, tracking_uri_for


def open_run_checkpoint(cfg: DictConfig) -> tuple[MlflowClient, str, GenerativeModel, dict, Path]:
    """Resolve ``run_id`` / ``checkpoint`` into the client, run id, loaded model, its config and path."""
    uri = tracking_uri_for(cfg)
    ensure_store(uri)
    client = MlflowClient(uri)
    require(cfg.get("run_id"), "run_id is missing; pass run_id=<id>, run_id=latest or run_id=best.")
    run = find_run(client, cfg.tracking.experiment, str(cfg.run_id))
    path = find_checkpoint(client, run, str(cfg.checkpoint), Path(cfg.paths.cache_dir) / "checkpoints" / run.info.run_id)
    model, checkpoint = load_generative_model(path)
    require(model.run_config is not None, f"checkpoint {path} carries no run config; it predates synthset 0.1.")
    return client, run.info.run_id, model, checkpoint, path


def datamodule_of(run_config: dict) -> ImageDataModule:
    """The run's own data (same source, size and preprocessing), rebuilt from its stored config."""
    return build(OmegaConf.create(run_config["data"]["module"]))


def print_table(title: str, metrics: dict[str, float]) -> None:
    table = Table(title=title)
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in metrics.items():
        table.add_row(key, f"{value:.4f}")
    Console().print(table)


def evaluate(cfg: DictConfig) -> dict[str, float]:
    """Score ``checkpoint`` (best or last) of ``run_id``; log ``eval_<checkpoint>/*`` into the run."""
    client, run_id, model, checkpoint, path = open_run_checkpoint(cfg)
    datamodule = datamodule_of(model.run_config)
    settings = MetricSettings(**OmegaConf.to_container(cfg.metrics, resolve=True))
    metrics = evaluate_model(
        model, datamodule, cfg.eval.num_samples, settings, cfg.eval.reference_split, cfg.eval.seed, cfg.eval.per_class
    )
    prefix = f"eval_{cfg.checkpoint}"
    step = int(checkpoint.get("global_step", 0))
    for key, value in metrics.items():
        client.log_metric(run_id, f"{prefix}/{key}", value, step=step)
    # Tags, not params: the same run may be rescored with another protocol later.
    client.set_tag(run_id, f"{prefix}.protocol", f"num_samples={cfg.eval.num_samples} split={cfg.eval.reference_split} "
                   f"fid_extractor={settings.fid_extractor} seed={cfg.eval.seed} checkpoint={path.name}")
    print_table(f"run {run_id} - {cfg.checkpoint}.ckpt (step {step}) vs {cfg.eval.reference_split}", metrics)
    return metrics
