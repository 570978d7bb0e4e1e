"""Memorization check: nearest-neighbour distance from generated images to the real training set.

The threshold is calibrated on real data: a low percentile of the distances from real *val*
images to their nearest *training* image (how close an honest new image can be). The test split
is never used: it only reports.
"""

from dataclasses import dataclass
from pathlib import Path

import torch

from synthset.atomic import atomic_write_with
from synthset.data.datamodule import ImageDataModule
from synthset.errors import require
from synthset.metrics.extractors import EXTRACTORS

CHUNK = 1024
PIXELS = "pixels"  # raw intensities: exact for planted copies, free to compute on small images


def extract_features(extractor: torch.nn.Module | None, images: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
    """First feature layer of ``extractor`` for uint8 (N, C, H, W) images, in batches (None: pixels)."""
    if extractor is None:
        return images.flatten(1).float() / 255.0
    chunks = []
    with torch.inference_mode():
        for start in range(0, len(images), batch_size):
            batch = images[start : start + batch_size]
            batch = batch.expand(-1, 3, -1, -1) if batch.size(1) == 1 else batch
            chunks.append(extractor(batch.contiguous())[0].float())
    return torch.cat(chunks)


def nearest(queries: torch.Tensor, references: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Distance to, and index of, the nearest reference of every query, computed in chunks."""
    distances, indices = [], []
    for start in range(0, len(queries), CHUNK):
        d = torch.cdist(queries[start : start + CHUNK], references)
        best = d.min(dim=1)
        distances.append(best.values)
        indices.append(best.indices)
    return torch.cat(distances), torch.cat(indices)


@dataclass
class MemorizationCheck:
    extractor_name: str
    percentile: float
    threshold: float
    train_images: torch.Tensor
    train_features: torch.Tensor
    extractor: torch.nn.Module | None

    @classmethod
    def calibrate(cls, datamodule: ImageDataModule, extractor_name: str, percentile: float, cache_dir: Path) -> "MemorizationCheck":
        require(extractor_name == PIXELS or extractor_name in EXTRACTORS,
                f"memorization.extractor={extractor_name} is unknown; expected {PIXELS} or one of {sorted(EXTRACTORS)}.")
        require(0 < percentile < 100, f"memorization.percentile={percentile} must be in (0, 100), e.g. 1.")
        extractor = None
        if extractor_name != PIXELS:
            extractor_class = EXTRACTORS[extractor_name]
            extractor = extractor_class(extractor_name, [extractor_class.get_provided_features_list()[0]]).eval()
        train, val = datamodule.split("train")[0], datamodule.split("val")[0]
        require(len(val) >= 2, f"the memorization threshold is calibrated on the val split, but data={datamodule.name} "
                f"has {len(val)} val images; train with data.val_fraction > 0, or set memorization.enabled=false.")
        features = {}
        for split, images in (("train", train), ("val", val)):
            path = Path(cache_dir) / f"{datamodule.name}-{split}-{datamodule.fingerprint(split)}-{extractor_name}.pt"
            if path.is_file():
                features[split] = torch.load(path, weights_only=True)
            else:
                features[split] = extract_features(extractor, images)
                atomic_write_with(path, lambda temporary, f=features[split]: torch.save(f, temporary))
        honest, _ = nearest(features["val"], features["train"])
        threshold = float(torch.quantile(honest, percentile / 100.0))
        return cls(extractor_name, percentile, threshold, train, features["train"], extractor)

    def distances(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(distance to the nearest training image, its index) for uint8 images."""
        return nearest(extract_features(self.extractor, images), self.train_features)

    def flagged(self, distances: torch.Tensor) -> torch.Tensor:
        return distances < self.threshold
