"""Score a GenerativeModel against a real split: the one function training, evaluate and generate share."""

import re

import torch

from synthset.data.datamodule import ImageDataModule
from synthset.errors import require
from synthset.generation.sampler import sample_uint8
from synthset.metrics.fidelity import (
    MetricSettings,
    compute_fid_only,
    compute_metrics,
    reference_name,
)
from synthset.metrics.naming import metric_name
from synthset.models.base import GenerativeModel


def reference_for(datamodule: ImageDataModule, split: str) -> tuple[torch.Tensor, torch.Tensor, str]:
    """Real uint8 images, labels and the cache key of their statistics."""
    images, labels = datamodule.split(split)
    name = reference_name(datamodule.name, datamodule.fingerprint(split), split, datamodule.image_size)
    return images, labels, name


def score_images(
    fake: torch.Tensor,
    fake_labels: torch.Tensor | None,
    datamodule: ImageDataModule,
    split: str,
    settings: MetricSettings,
    per_class: bool = False,
) -> dict[str, float]:
    """Metrics of uint8 ``fake`` images against ``split``; with ``per_class``, intra-class FIDs too."""
    real, real_labels, reference = reference_for(datamodule, split)
    metrics = compute_metrics(fake, real, reference, settings)
    if per_class:
        require(
            fake_labels is not None and datamodule.num_classes > 0,
            "eval.per_class=true needs a class-conditional model trained on labeled data; set eval.per_class=false.",
        )
        base = metric_name("fid", settings.fid_extractor)
        for k, class_name in enumerate(datamodule.class_names):
            fake_k, real_k = fake[fake_labels == k], real[real_labels == k]
            if len(fake_k) >= 2 and len(real_k) >= 2:
                key = f"{base}_class/{re.sub(r'[^A-Za-z0-9_.-]+', '_', class_name)}"
                metrics[key] = compute_fid_only(fake_k, real_k, f"{reference}-class{k}", settings)
    return metrics


def evaluate_model(
    model: GenerativeModel,
    datamodule: ImageDataModule,
    num_samples: int,
    settings: MetricSettings,
    split: str = "test",
    seed: int = 0,
    per_class: bool = False,
) -> dict[str, float]:
    """Sample ``num_samples`` images (balanced labels when conditional) and score them."""
    require(num_samples >= 2, f"eval.num_samples={num_samples} is too small; use at least 2 (thousands for a stable FID).")
    fake, labels = sample_uint8(model, num_samples, seed=seed, progress=settings.progress)
    return score_images(fake, labels, datamodule, split, settings, per_class)
