"""Score a GenerativeModel against a real split: the one function training, evaluate and generate share."""

import re
from typing import Any

import torch

from synthset.data.datamodule import ImageDataModule
from synthset.errors import require
from synthset.metrics.classifier import RECIPE, ReferenceClassifier
from synthset.metrics.domain import (
    class_pixel_std_ratio,
    class_recall_coverage,
    gan_test_accuracy,
    harmonic_mean,
    nanmean,
)
from synthset.metrics.fidelity import (
    MetricSettings,
    compute_fid_only,
    compute_metrics,
    reference_name,
)
from synthset.metrics.naming import metric_name
from synthset.metrics.protocol import protocol_record
from synthset.metrics.sampling import sample_uint8
from synthset.models.base import GenerativeModel

MIN_PER_CLASS_FID = 50  # per-class FID on fewer images than this per class is flagged in tables


REFERENCE_SEED = 0  # which real images a capped reference uses: fixed, so the capped statistics are cached once


def reference_for(datamodule: ImageDataModule, split: str, max_images: int | None = None) -> tuple[torch.Tensor, torch.Tensor, str]:
    """Real uint8 images, labels and the cache key of their statistics; at most ``max_images`` of them (seeded)."""
    images, labels = datamodule.split(split)
    name = reference_name(datamodule.name, datamodule.fingerprint(split), split, datamodule.image_size)
    if max_images is not None and len(images) > max_images:
        require(max_images >= 2, f"reference_samples={max_images} is too small; use at least 2 (thousands for a stable FID).")
        keep = torch.randperm(len(images), generator=torch.Generator().manual_seed(REFERENCE_SEED))[:max_images].sort().values
        images, labels, name = images[keep], labels[keep], f"{name}-first{max_images}of-seed{REFERENCE_SEED}"
    return images, labels, name


def safe_key(class_name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", class_name)


def per_class_fids(fake: torch.Tensor, fake_labels: torch.Tensor, real: torch.Tensor, real_labels: torch.Tensor,
                   datamodule: ImageDataModule, reference: str, settings: MetricSettings) -> dict[str, float]:
    base = metric_name("fid", settings.fid_extractor)
    out = {}
    for k, class_name in enumerate(datamodule.class_names):
        fake_k, real_k = fake[fake_labels == k], real[real_labels == k]
        if len(fake_k) >= 2 and len(real_k) >= 2:
            out[f"{base}_class/{safe_key(class_name)}"] = compute_fid_only(fake_k, real_k, f"{reference}-class{k}", settings)
    return out


def domain_metrics(fake: torch.Tensor, fake_labels: torch.Tensor, real: torch.Tensor, real_labels: torch.Tensor,
                   classifier: ReferenceClassifier, class_names: list[str], per_class: bool = False) -> dict[str, float]:
    """GAN-test and within-class diversity (pixel-std ratio, recall and coverage in the classifier's space)."""
    k = len(class_names)
    ratios = class_pixel_std_ratio(fake, fake_labels, real, real_labels, k)
    recalls, coverages = class_recall_coverage(classifier.features(fake), fake_labels, classifier.features(real),
                                               real_labels, k)
    predicted = classifier.probabilities(fake).argmax(1)
    out = {"gan_test": gan_test_accuracy(predicted, fake_labels), "pixel_std_ratio": nanmean(ratios),
           "pixel_std_ratio_min": float(torch.tensor(ratios).nan_to_num(float("inf")).min()),
           "class_recall": nanmean(recalls), "class_coverage": nanmean(coverages)}
    out["gan_test_recall_f1"] = harmonic_mean(out["gan_test"], out["class_recall"])
    if per_class:
        for c, name in enumerate(class_names):
            mine = fake_labels == c
            out[f"gan_test_class/{safe_key(name)}"] = gan_test_accuracy(predicted[mine], fake_labels[mine])
            out[f"pixel_std_ratio_class/{safe_key(name)}"] = ratios[c]
    return out


def score_images(
    fake: torch.Tensor,
    fake_labels: torch.Tensor | None,
    datamodule: ImageDataModule,
    split: str,
    settings: MetricSettings | None,
    per_class: bool = False,
    classifier: ReferenceClassifier | None = None,
    max_reference: int | None = None,
) -> tuple[dict[str, float], dict[str, Any]]:
    """Metrics of uint8 ``fake`` images against ``split`` and their protocol.

    ``settings`` (None = skip) gives the Inception-space metrics; ``classifier`` the domain ones (conditional only);
    ``max_reference`` caps the real images (a seeded choice, cached), so a card never extracts a whole data set.
    """
    real, real_labels, reference = reference_for(datamodule, split, max_reference)
    metrics: dict[str, float] = {}
    if settings is not None:
        metrics.update(compute_metrics(fake, real, reference, settings))
    if per_class and settings is not None:
        require(
            fake_labels is not None and datamodule.num_classes > 0,
            "eval.per_class=true needs a class-conditional model trained on labeled data; set eval.per_class=false.",
        )
        metrics.update(per_class_fids(fake, fake_labels, real, real_labels, datamodule, reference, settings))
    use_classifier = classifier is not None and fake_labels is not None
    if use_classifier:
        metrics.update(domain_metrics(fake, fake_labels, real, real_labels, classifier, datamodule.class_names, per_class))
    protocol = protocol_record(datamodule.name, split, len(fake), len(real), datamodule.image_size,
                               settings.fid_extractor if settings is not None else None,
                               RECIPE if use_classifier else None)
    return metrics, protocol


def evaluate_model(
    model: GenerativeModel,
    datamodule: ImageDataModule,
    num_samples: int,
    settings: MetricSettings | None,
    split: str = "val",
    seed: int = 0,
    per_class: bool = False,
    classifier: ReferenceClassifier | None = None,
    max_reference: int | None = None,
    temperature: float = 1.0,
) -> tuple[dict[str, float], dict[str, Any]]:
    """Sample ``num_samples`` images (balanced labels when conditional) at ``temperature`` and score them."""
    require(isinstance(num_samples, int) and num_samples >= 2,
            f"eval.num_samples={num_samples} is too small; use at least 2 (thousands for a stable FID).")
    fake, labels = sample_uint8(model, num_samples, seed=seed, progress=bool(settings and settings.progress),
                                temperature=temperature)
    metrics, protocol = score_images(fake, labels, datamodule, split, settings, per_class, classifier, max_reference)
    if temperature != 1.0:  # only then, so records of the prior as trained keep their form
        protocol["temperature"] = temperature
    return metrics, protocol
