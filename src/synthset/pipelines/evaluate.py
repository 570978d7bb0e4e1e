"""evaluate(cfg): report a checkpoint's quality on the test split, and log it into its run when it has one."""

from pathlib import Path

from omegaconf import DictConfig, OmegaConf
from rich.console import Console
from rich.table import Table

from synthset.errors import require
from synthset.metrics.classifier import reference_classifier
from synthset.metrics.evaluation import MIN_PER_CLASS_FID, evaluate_model
from synthset.metrics.fidelity import MetricSettings
from synthset.metrics.protocol import fid_cell, protocol_text
from synthset.models.base import require_temperature
from synthset.tracking.checkpoints import open_source_checkpoint

SPLITS = ("test", "val", "train")


def print_table(title: str, metrics: dict[str, float], protocol: dict) -> None:
    table = Table(title=title, caption=f"protocol: {protocol_text(protocol)}")
    table.add_column("metric")
    table.add_column("value", justify="right")
    classes = sum(key.startswith("fid_class/") for key in metrics)
    per_class_images = protocol["n_generated"] // classes if classes else 0
    for key, value in metrics.items():
        if key == "fid":
            table.add_row(key, fid_cell(metrics, protocol))
        elif key.startswith("fid_class/") and per_class_images < MIN_PER_CLASS_FID:
            table.add_row(key, f"{value:.4f} (only ~{per_class_images} images per class: unreliable)")
        else:
            table.add_row(key, f"{value:.4f}")
    Console().print(table)


def evaluate(cfg: DictConfig) -> dict[str, float]:
    """Score ``checkpoint`` of ``run_id`` (or ``ckpt=<file>``) on ``eval.reference_split`` (test by default)."""
    split = cfg.eval.reference_split
    require(split in SPLITS, f"eval.reference_split={split} is unknown; expected test (reporting), val or train.")
    temperature = cfg.eval.get("temperature", 1.0)
    require_temperature(temperature, "eval.temperature")
    source = open_source_checkpoint(cfg)
    datamodule = source.datamodule()
    settings = MetricSettings(**OmegaConf.to_container(cfg.metrics, resolve=True)) if cfg.eval.fidelity else None
    classifier = None
    if cfg.eval.domain and source.model.num_classes:
        classifier = reference_classifier(datamodule, Path(cfg.paths.cache_dir) / "classifier")
    metrics, protocol = evaluate_model(source.model, datamodule, cfg.eval.num_samples, settings, split, cfg.eval.seed,
                                       cfg.eval.per_class, classifier, cfg.eval.get("reference_samples"), temperature)
    which = "file" if source.run is None else cfg.checkpoint
    step = int(source.contents.get("global_step", 0))
    if source.run is not None:
        # Another temperature is another protocol: its numbers go beside the prior's, not over them.
        prefix = f"eval_{which}/{split}" + (f"_t{temperature}" if temperature != 1.0 else "")
        for key, value in metrics.items():
            source.client.log_metric(source.run_id, f"{prefix}/{key}", value, step=step)
        # Tags, not params: the same run may be rescored under another protocol later.
        source.client.set_tag(source.run_id, f"{prefix.replace('/', '.')}.protocol",
                              f"{protocol_text(protocol)}; seed {cfg.eval.seed}; checkpoint {source.path.name}")
    print_table(f"{source.name} - {source.path.name} (step {step}) on {split}", metrics, protocol)
    return metrics
