"""The MLflow run of a generation: a child of its source run (when there is one), the dataset as its input."""

from pathlib import Path
from typing import Any

from mlflow.tracking import MlflowClient
from omegaconf import DictConfig

from synthset.generation.spec import GenerationSpec
from synthset.metrics.protocol import PROTOCOL_TAG, protocol_text
from synthset.tracking.checkpoints import SourceCheckpoint
from synthset.tracking.runs import KIND_TAG
from synthset.tracking.store import default_artifact_location, ensure_store, tracking_uri_for

CARD_ARTIFACTS = ("README.md", "synthset.json", "grid.png", "closest_pairs.png", "classes.json", "manifest.json")


def experiment_for(cfg: DictConfig, source: SourceCheckpoint) -> str:
    if source.run is not None:
        return source.run.info.experiment_id
    client = source.client
    found = client.get_experiment_by_name(cfg.tracking.experiment)
    if found is not None:
        return found.experiment_id
    uri = tracking_uri_for(cfg)
    return client.create_experiment(cfg.tracking.experiment,
                                    artifact_location=default_artifact_location(uri, cfg.paths.output_dir))


def start_generation_run(cfg: DictConfig, source: SourceCheckpoint, out: Path, spec: GenerationSpec,
                         info: dict[str, Any]) -> str:
    """Params (the spec), the card's metrics (``dataset/<split>/*``: test, or val) and the dataset as an MLflow input."""
    from mlflow.data.dataset_source_registry import resolve_dataset_source
    from mlflow.data.meta_dataset import MetaDataset
    from mlflow.entities import DatasetInput, InputTag

    ensure_store(tracking_uri_for(cfg))  # a checkpoint file may come with no store yet
    client = source.client
    tags = {KIND_TAG: "generate", "synthset.source_checkpoint": str(source.path)}
    if source.run_id:
        tags |= {"mlflow.parentRunId": source.run_id, "synthset.source_run": source.run_id}
    quality = info.get("quality") or {}
    if quality:
        tags[PROTOCOL_TAG] = protocol_text(quality["protocol"])
    run_id = client.create_run(experiment_for(cfg, source), run_name=f"generate-{source.name}", tags=tags).info.run_id
    for key, value in spec.to_dict().items():
        client.log_param(run_id, key, str(value)[:500])
    client.log_param(run_id, "out", str(out))
    for key, value in quality.get("metrics", {}).items():
        client.log_metric(run_id, f"dataset/{quality['reference_split']}/{key}", value)
    if info.get("memorization"):
        client.log_metric(run_id, "dataset/memorized_fraction", info["memorization"]["flagged_fraction"])
    dataset = MetaDataset(resolve_dataset_source(str(out)), name=out.name, digest=spec.digest())
    client.log_inputs(run_id, datasets=[DatasetInput(dataset._to_mlflow_entity(), tags=[InputTag("mlflow.data.context", "generated")])])
    return run_id


def finish_generation_run(client: MlflowClient, run_id: str, out: Path) -> None:
    for name in CARD_ARTIFACTS:
        if (out / name).is_file():
            client.log_artifact(run_id, str(out / name), "dataset_card")
    client.set_terminated(run_id)
