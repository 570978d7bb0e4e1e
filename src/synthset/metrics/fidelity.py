"""All image metrics through ``torch_fidelity.calculate_metrics``, with cached reference statistics."""

import os
from dataclasses import dataclass
from pathlib import Path

import torch
import torch_fidelity
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from synthset.errors import require
from synthset.metrics.extractors import (
    EFFNET_LITE0,
    EXTRACTORS,
    INCEPTION_COMPAT,
    INCEPTION_TF,
    CountingExtractor,
    register_extractors,
)
from synthset.metrics.frechet import symmetric_frechet_trace
from synthset.metrics.naming import metric_name

INCEPTION_COMPAT_WEIGHTS = "weights-inception-2015-12-05-6726825d.pth"


@dataclass(frozen=True)
class MetricSettings:
    """One flat table of metric options (``conf/metrics/default.yaml``)."""

    fid_extractor: str = INCEPTION_TF
    # auto: torch-fidelity's inception-v3-compat when its weights are here, else effnet-lite0; none: no IS.
    is_extractor: str = "auto"
    inception_weights: str | None = None
    allow_download: bool = False
    kid_subset_size: int | None = None  # None: min(1000, #fake, #real)
    kid_subsets: int = 100
    precision_recall: bool = True
    prc_neighborhood: int = 3
    batch_size: int = 64
    cache_dir: str = "outputs/cache/fidelity"
    progress: bool = True


class UInt8Images(Dataset):
    """uint8 (N, C, H, W) images as torch-fidelity wants them: 3 channels, uint8, one per item."""

    def __init__(self, images: torch.Tensor) -> None:
        require(images.dtype == torch.uint8, f"metrics need uint8 images, got {images.dtype}.")
        self.images = images

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> torch.Tensor:
        image = self.images[index]
        return image.expand(3, -1, -1).contiguous() if image.size(0) == 1 else image


def reference_name(data_name: str, fingerprint: str, split: str, image_size: int) -> str:
    """Cache key of real-data statistics: torch-fidelity appends the extractor and feature names."""
    return f"{data_name}-{split}-{image_size}px-{fingerprint}"


def inception_compat_weights(settings: MetricSettings) -> str | None:
    """Local path of torch-fidelity's Inception weights, if any (explicit path, then the hub cache)."""
    if settings.inception_weights:
        path = Path(settings.inception_weights).expanduser()
        require(path.is_file(), f"metrics.inception_weights={path} is not a file; point it at {INCEPTION_COMPAT_WEIGHTS}.")
        return str(path)
    cached = Path(torch.hub.get_dir()) / "checkpoints" / INCEPTION_COMPAT_WEIGHTS
    return str(cached) if cached.is_file() else None


def resolve_is_extractor(settings: MetricSettings) -> tuple[str | None, str | None]:
    """(extractor, weights path) for the Inception Score, or (None, None) when IS is off."""
    choice = settings.is_extractor
    if choice in (None, "none"):
        return None, None
    weights = inception_compat_weights(settings)
    if choice == "auto":
        if weights or settings.allow_download:
            return INCEPTION_COMPAT, weights
        return EFFNET_LITE0, None
    require(
        choice != INCEPTION_TF,
        f"metrics.is_extractor={INCEPTION_TF} has no logits, so it cannot give an Inception Score; "
        f"use {INCEPTION_COMPAT} (with its weights) or {EFFNET_LITE0}.",
    )
    if choice == INCEPTION_COMPAT:
        require(
            weights is not None or settings.allow_download,
            f"metrics.is_extractor={INCEPTION_COMPAT} needs {INCEPTION_COMPAT_WEIGHTS}: set "
            "metrics.inception_weights=PATH, put it in the torch hub cache, or set metrics.allow_download=true.",
        )
        return INCEPTION_COMPAT, weights
    require(choice in EXTRACTORS, f"metrics.is_extractor={choice} is unknown; expected auto, none, {INCEPTION_COMPAT} or {EFFNET_LITE0}.")
    return choice, None


def kid_subset_size(settings: MetricSettings, n_fake: int, n_real: int) -> int:
    largest = min(n_fake, n_real)
    if settings.kid_subset_size is None:
        return min(1000, largest)
    require(
        2 <= settings.kid_subset_size <= largest,
        f"metrics.kid_subset_size={settings.kid_subset_size} needs at least that many samples, but there are "
        f"{n_fake} generated and {n_real} real images; lower metrics.kid_subset_size or raise eval.num_samples.",
    )
    return settings.kid_subset_size


def run_fidelity(settings: MetricSettings, **kwargs) -> dict[str, float]:
    """torch-fidelity with its own per-batch output off; one bar counts the images our extractors see."""
    register_extractors()
    os.makedirs(settings.cache_dir, exist_ok=True)
    bar = tqdm(desc=f"features ({kwargs.get('feature_extractor')})", unit="img", disable=not settings.progress,
               leave=False)
    CountingExtractor.progress = bar
    try:
        with symmetric_frechet_trace():  # the same FID, from a symmetric eigenproblem of the generated set's rank
            return torch_fidelity.calculate_metrics(
                cuda=torch.cuda.is_available(),
                batch_size=settings.batch_size,
                cache_root=settings.cache_dir,
                verbose=False,
                datasets_download=False,
                samples_shuffle=False,
                # In-process loading: images are already in memory, and worker processes cost more than they save.
                save_cpu_ram=True,
                **kwargs,
            )
    finally:
        CountingExtractor.progress = None
        bar.close()


def compute_metrics(
    fake: torch.Tensor, real: torch.Tensor, reference: str, settings: MetricSettings
) -> dict[str, float]:
    """FID/KID/precision/recall of ``fake`` vs ``real`` and the IS of ``fake``, under honest names.

    ``real``'s features and statistics are cached under ``reference`` and reused across runs.
    """
    require(len(fake) >= 2, f"eval.num_samples={len(fake)} is too small; metrics need at least 2 samples (thousands for stable FID).")
    require(
        settings.fid_extractor in EXTRACTORS,
        f"metrics.fid_extractor={settings.fid_extractor} is unknown; expected one of {sorted(EXTRACTORS)}.",
    )
    prc = settings.precision_recall and min(len(fake), len(real)) > settings.prc_neighborhood
    extractor = settings.fid_extractor
    is_extractor, weights = resolve_is_extractor(settings)
    is_in_same_pass = is_extractor == extractor  # one feature pass over the samples, not two
    raw = run_fidelity(
        settings,
        input1=UInt8Images(fake),
        input2=UInt8Images(real),
        input2_cache_name=reference,
        feature_extractor=extractor,
        fid=True,
        kid=True,
        prc=prc,
        kid_subset_size=kid_subset_size(settings, len(fake), len(real)),
        kid_subsets=settings.kid_subsets,
        prc_neighborhood=settings.prc_neighborhood,
        isc=is_in_same_pass,
        isc_splits=min(10, len(fake)),
    )
    out = {
        metric_name("fid", extractor): raw["frechet_inception_distance"],
        metric_name("kid", extractor) + "_mean": raw["kernel_inception_distance_mean"],
        metric_name("kid", extractor) + "_std": raw["kernel_inception_distance_std"],
    }
    if prc:
        out[metric_name("precision", extractor)] = raw["precision"]
        out[metric_name("recall", extractor)] = raw["recall"]
    if is_extractor is not None:
        scores = raw if is_in_same_pass else run_fidelity(
            settings,
            input1=UInt8Images(fake),
            feature_extractor=is_extractor,
            feature_extractor_weights_path=weights,
            isc=True,
            isc_splits=min(10, len(fake)),
        )
        name = metric_name("is", is_extractor)
        out[name] = scores["inception_score_mean"]
        out[name + "_std"] = scores["inception_score_std"]
    return {key: float(value) for key, value in out.items()}


def compute_fid_only(fake: torch.Tensor, real: torch.Tensor, reference: str, settings: MetricSettings) -> float:
    """The Frechet distance alone (per-class FID, quick checks), under the same cache."""
    raw = run_fidelity(
        settings,
        input1=UInt8Images(fake),
        input2=UInt8Images(real),
        input2_cache_name=reference,
        feature_extractor=settings.fid_extractor,
        fid=True,
    )
    return float(raw["frechet_inception_distance"])
