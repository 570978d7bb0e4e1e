"""Train the reference classifier for one protocol and seed, score it on real test images; cached on disk.

Each (protocol, seed) result is stored under a key of everything that determines it, so a killed
utility run resumes where it stopped and real-only baselines are shared between datasets.
"""

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch

from synthset.data.datamodule import fingerprint
from synthset.generation.writers import atomic_write_bytes
from synthset.metrics.classifier import RECIPE, ReferenceClassifier, fit_classifier
from synthset.utility.protocols import Protocol


@dataclass
class TrainingSet:
    """What one protocol trains on: a real subset and optionally the synthetic images."""

    real_images: torch.Tensor
    real_labels: torch.Tensor
    synthetic_images: torch.Tensor | None = None
    synthetic_labels: torch.Tensor | None = None
    synthetic_digest: str | None = None
    synthetic_weight: float | None = None  # share of each batch drawn from synthetic data; None = by size

    @property
    def num_real(self) -> int:
        return len(self.real_images)

    @property
    def num_synthetic(self) -> int:
        return 0 if self.synthetic_images is None else len(self.synthetic_images)

    def tensors(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Concatenated images, labels and per-image sampling weights (None = uniform)."""
        if self.synthetic_images is None:
            return self.real_images, self.real_labels, None
        images = torch.cat([self.real_images, self.synthetic_images])
        labels = torch.cat([self.real_labels, self.synthetic_labels])
        if self.synthetic_weight is None or not self.num_real:
            return images, labels, None
        w = float(self.synthetic_weight)
        weights = torch.cat([torch.full((self.num_real,), (1 - w) / self.num_real),
                             torch.full((self.num_synthetic,), w / self.num_synthetic)])
        return images, labels, weights

    def key(self) -> dict:
        return {"real": fingerprint(self.real_images, self.real_labels) if self.num_real else None,
                "synthetic": self.synthetic_digest, "synthetic_weight": self.synthetic_weight if self.num_synthetic else None}


@dataclass
class ProtocolResult:
    protocol: Protocol
    num_real: int
    num_synthetic: int
    accuracies: list[float] = field(default_factory=list)
    class_accuracies: list[list[float]] = field(default_factory=list)  # per seed, per class
    confusion: torch.Tensor | None = None  # (true, predicted) counts summed over seeds

    @property
    def mean(self) -> float:
        return float(torch.tensor(self.accuracies).mean())

    @property
    def std(self) -> float:
        return float(torch.tensor(self.accuracies).std()) if len(self.accuracies) > 1 else 0.0

    def class_accuracy(self) -> list[float]:
        return torch.tensor(self.class_accuracies).mean(0).tolist()


def confusion_matrix(predicted: torch.Tensor, true: torch.Tensor, num_classes: int) -> torch.Tensor:
    return torch.bincount(true * num_classes + predicted, minlength=num_classes**2).view(num_classes, num_classes)


class ProtocolTrainer:
    """Fits and scores classifiers with one budget (``steps`` x ``batch_size``) for every protocol."""

    def __init__(self, test_images: torch.Tensor, test_labels: torch.Tensor, num_classes: int, steps: int,
                 batch_size: int, cache_dir: Path) -> None:
        self.test_images, self.test_labels = test_images, test_labels
        self.num_classes, self.steps, self.batch_size = num_classes, steps, batch_size
        self.cache_dir = Path(cache_dir)
        self.test_key = fingerprint(test_images, test_labels)

    def cache_path(self, data: TrainingSet, seed: int) -> Path:
        key = {**data.key(), "test": self.test_key, "steps": self.steps, "batch_size": self.batch_size,
               "seed": seed, "recipe": RECIPE}
        return self.cache_dir / (hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:20] + ".json")

    def fit(self, data: TrainingSet, seed: int) -> ReferenceClassifier:
        images, labels, weights = data.tensors()
        return fit_classifier(images, labels, self.num_classes, self.steps, seed, self.batch_size, weights=weights)

    def score(self, data: TrainingSet, seed: int) -> dict:
        """Accuracy and confusion on the real test split; loaded from the cache when this exact run exists."""
        path = self.cache_path(data, seed)
        if path.is_file():
            return json.loads(path.read_text())
        model = self.fit(data, seed)
        confusion = confusion_matrix(model.predict_labels(self.test_images), self.test_labels, self.num_classes)
        result = {"accuracy": float(confusion.diag().sum() / confusion.sum()),
                  "class_accuracy": (confusion.diag() / confusion.sum(1).clamp(min=1)).tolist(),
                  "confusion": confusion.tolist()}
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(model.state_dict(), path.with_suffix(".pt.tmp"))
        os.replace(path.with_suffix(".pt.tmp"), path.with_suffix(".pt"))
        atomic_write_bytes(path, json.dumps(result).encode())
        return result

    def classifier(self, data: TrainingSet, seed: int) -> ReferenceClassifier:
        """The (cached) classifier behind ``score(data, seed)``."""
        self.score(data, seed)
        model = ReferenceClassifier(self.test_images.size(1), self.num_classes)
        model.load_state_dict(torch.load(self.cache_path(data, seed).with_suffix(".pt"), weights_only=True))
        return model.eval()

    def run(self, protocol: Protocol, data: TrainingSet, seeds: list[int]) -> ProtocolResult:
        result = ProtocolResult(protocol, data.num_real, data.num_synthetic)
        confusion = torch.zeros(self.num_classes, self.num_classes, dtype=torch.long)
        for seed in seeds:
            scored = self.score(data, seed)
            result.accuracies.append(scored["accuracy"])
            result.class_accuracies.append(scored["class_accuracy"])
            confusion += torch.tensor(scored["confusion"])
        result.confusion = confusion
        return result
