"""Train the reference classifier for one protocol and seed, score it on real test images; cached on disk.

Each (protocol, seed) result is stored under a key of everything that determines it, so a killed
utility run resumes where it stopped and real-only baselines are shared between datasets.
"""

import hashlib
import json
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
from torchmetrics.functional.classification import multiclass_confusion_matrix

from synthset.atomic import atomic_write_text
from synthset.data.datamodule import ImageDataModule, fingerprint
from synthset.metrics.classifier import (
    ClassifierRecipe,
    ReferenceClassifier,
    fit_classifier,
    load_classifier,
    recipe_for,
    save_classifier,
)
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
    pretrain: bool = False  # train on the synthetic images alone first, then fine-tune on the real ones (mixed by the weight if set)
    finetune_lr: float | None = None  # pretrain only: the fine-tune's learning rate; None = the recipe's

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

    @property
    def is_mixed(self) -> bool:
        return bool(self.num_real and self.num_synthetic)

    @property
    def synthetic_only(self) -> "TrainingSet":
        """The CAS set of the same synthetic images: what a ``pretrain`` set trains on first."""
        return TrainingSet(self.real_images[:0], self.real_labels[:0], self.synthetic_images, self.synthetic_labels,
                           self.synthetic_digest)

    def key(self) -> dict:
        key = {"real": fingerprint(self.real_images, self.real_labels) if self.num_real else None,
               "synthetic": self.synthetic_digest,
               # The weight only changes a mixed set: CAS (synthetic only) is the same classifier whatever it says.
               "synthetic_weight": self.synthetic_weight if self.is_mixed else None}
        if self.pretrain and self.is_mixed:  # only then, so the mixed sets keep their cached results
            key["pretrain"] = True
            if self.finetune_lr is not None:
                key["finetune_lr"] = self.finetune_lr
        return key


@dataclass
class ProtocolResult:
    protocol: Protocol
    num_real: int
    num_synthetic: int
    accuracies: list[float] = field(default_factory=list)
    val_accuracies: list[float] = field(default_factory=list)  # the selection signal: compare settings on these, not test
    class_accuracies: list[list[float]] = field(default_factory=list)  # per seed, per class
    confusion: torch.Tensor | None = None  # (true, predicted) counts summed over seeds

    @property
    def mean(self) -> float:
        return float(torch.tensor(self.accuracies).mean())

    @property
    def val_mean(self) -> float | None:
        return float(torch.tensor(self.val_accuracies).mean()) if self.val_accuracies else None

    @property
    def std(self) -> float:
        return float(torch.tensor(self.accuracies).std()) if len(self.accuracies) > 1 else 0.0

    def class_accuracy(self) -> list[float]:
        return torch.tensor(self.class_accuracies).mean(0).tolist()


class ProtocolTrainer:
    """Fits and scores classifiers with one recipe for every protocol: same budget, same val-based stopping."""

    def __init__(self, test: tuple[torch.Tensor, torch.Tensor], val: tuple[torch.Tensor, torch.Tensor], num_classes: int,
                 recipe: ClassifierRecipe, cache_dir: Path) -> None:
        self.test_images, self.test_labels = test
        self.val = val
        self.num_classes, self.recipe = num_classes, recipe
        self.cache_dir = Path(cache_dir)
        self.test_key = fingerprint(*test)
        self.val_key = fingerprint(*val)

    @classmethod
    def for_datamodule(cls, datamodule: ImageDataModule, steps: int, batch_size: int, cache_dir: Path,
                       augment: bool = True, *, patience: int) -> "ProtocolTrainer":
        """Tests on the real test split; selects (and may stop) on the real val split, never the other way round."""
        recipe = recipe_for(datamodule, steps, batch_size, augment, patience)
        val = datamodule.split("val")
        return cls(datamodule.split("test"), val if len(val[0]) else datamodule.split("train"), datamodule.num_classes,
                   recipe, cache_dir)

    @property
    def augment_name(self) -> str:
        parts = [f"pad-and-crop {self.recipe.crop_padding} px"] if self.recipe.crop_padding else []
        return " + ".join(parts + (["horizontal flips"] if self.recipe.flip else [])) or "none"

    def cache_path(self, data: TrainingSet, seed: int) -> Path:
        key = {**data.key(), "test": self.test_key, "val": self.val_key, "recipe": self.recipe.key(), "seed": seed}
        return self.cache_dir / (hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:20] + ".json")

    def fit(self, data: TrainingSet, seed: int) -> ReferenceClassifier:
        if data.pretrain and data.is_mixed:
            # The same seed's CAS classifier (cached, shared with the ``synthetic`` protocol), fine-tuned on the real images.
            start = self.classifier(data.synthetic_only, seed).state_dict()
            recipe = self.recipe if data.finetune_lr is None else replace(self.recipe, lr=data.finetune_lr)
            # Without a weight the fine-tune sees the real images alone; with one, that share of each batch stays synthetic.
            images, labels, weights = data.tensors() if data.synthetic_weight is not None else (
                data.real_images, data.real_labels, None)
            return fit_classifier(images, labels, self.num_classes, recipe, seed, self.val, weights=weights, start=start)
        images, labels, weights = data.tensors()
        return fit_classifier(images, labels, self.num_classes, self.recipe, seed, self.val, weights=weights)

    def score(self, data: TrainingSet, seed: int) -> dict:
        """Accuracy and confusion on the real test split; loaded from the cache when this exact run exists."""
        path = self.cache_path(data, seed)
        if path.is_file():
            return json.loads(path.read_text())
        model = self.fit(data, seed)
        confusion = multiclass_confusion_matrix(model.predict_labels(self.test_images), self.test_labels, self.num_classes)
        result = {"accuracy": float(confusion.diag().sum() / confusion.sum()),
                  "class_accuracy": (confusion.diag() / confusion.sum(1).clamp(min=1)).tolist(),
                  "confusion": confusion.tolist(), "val_accuracy": model.best_accuracy}
        save_classifier(model, path.with_suffix(".pt"))
        atomic_write_text(path, json.dumps(result))
        return result

    def classifier(self, data: TrainingSet, seed: int) -> ReferenceClassifier:
        """The (cached) classifier behind ``score(data, seed)``."""
        self.score(data, seed)
        return load_classifier(self.cache_path(data, seed).with_suffix(".pt"), self.test_images.size(1), self.num_classes)

    def run(self, protocol: Protocol, data: TrainingSet, seeds: list[int]) -> ProtocolResult:
        result = ProtocolResult(protocol, data.num_real, data.num_synthetic)
        confusion = torch.zeros(self.num_classes, self.num_classes, dtype=torch.long)
        for seed in seeds:
            scored = self.score(data, seed)
            result.accuracies.append(scored["accuracy"])
            if scored.get("val_accuracy") is not None:
                result.val_accuracies.append(scored["val_accuracy"])
            result.class_accuracies.append(scored["class_accuracy"])
            confusion += torch.tensor(scored["confusion"])
        result.confusion = confusion
        return result
