"""Measures that fit small labeled image domains and cost seconds on a CPU.

- GAN-test (Shmelkov et al. 2018): the reference classifier, trained on real training images,
  classifies generated images; accuracy against their conditioning labels.
- Within-class diversity: the ratio of generated to real per-pixel standard deviation within each
  class (1.0 = as varied as real images; a collapsed class is near 0), and per-class recall and
  coverage (Kynkaanniemi et al. 2019; Naeem et al. 2020) in the reference classifier's feature space.
- For selection, the F1 (harmonic mean) of GAN-test and per-class recall: recall alone rewards an early
  checkpoint whose noisy samples spread over the whole class (recall 0.985 at GAN-test 18 % on digits).
None of them is FID: they are named after what they measure.
"""

import torch

from synthset.data.datamodule import to_signed_unit
from synthset.errors import require

NEAREST_K = 5


def gan_test_accuracy(predicted: torch.Tensor, labels: torch.Tensor) -> float:
    """Share of generated images the real-data classifier assigns to their conditioning label."""
    return float((predicted == labels).float().mean())


def pixel_std(images_uint8: torch.Tensor) -> float:
    """Mean over pixels of the standard deviation across images, in [-1, 1] units."""
    return float(to_signed_unit(images_uint8).std(dim=0).mean())


def class_pixel_std_ratio(fake: torch.Tensor, fake_labels: torch.Tensor, real: torch.Tensor, real_labels: torch.Tensor,
                          num_classes: int) -> list[float]:
    """Per class: generated / real within-class pixel std (classes with fewer than 2 images: nan)."""
    ratios = []
    for k in range(num_classes):
        fake_k, real_k = fake[fake_labels == k], real[real_labels == k]
        if len(fake_k) < 2 or len(real_k) < 2:
            ratios.append(float("nan"))
        else:
            ratios.append(pixel_std(fake_k) / max(pixel_std(real_k), 1e-8))
    return ratios


def kth_neighbour_radii(features: torch.Tensor, k: int) -> torch.Tensor:
    """Distance of every point to its k-th nearest other point of the same set."""
    distances = torch.cdist(features, features)
    return distances.kthvalue(min(k + 1, len(features)), dim=1).values  # +1: the point itself is at 0


def recall_and_coverage(real: torch.Tensor, fake: torch.Tensor, k: int = NEAREST_K) -> tuple[float, float]:
    """Recall: share of real points inside some generated point's k-NN ball (Kynkaanniemi et al.).

    Coverage: share of real points whose own k-NN ball holds at least one generated point (Naeem et al.).
    """
    require(len(real) > k and len(fake) > k, f"recall/coverage need more than k={k} real and generated images per class.")
    cross = torch.cdist(real, fake)  # (n_real, n_fake)
    recall = (cross <= kth_neighbour_radii(fake, k)[None, :]).any(dim=1).float().mean()
    coverage = (cross.min(dim=1).values <= kth_neighbour_radii(real, k)).float().mean()
    return float(recall), float(coverage)


def class_recall_coverage(fake_features: torch.Tensor, fake_labels: torch.Tensor, real_features: torch.Tensor,
                          real_labels: torch.Tensor, num_classes: int, k: int = NEAREST_K) -> tuple[list[float], list[float]]:
    """Per-class recall and coverage; classes with too few images get nan."""
    recalls, coverages = [], []
    for c in range(num_classes):
        fake_c, real_c = fake_features[fake_labels == c], real_features[real_labels == c]
        if len(fake_c) <= k or len(real_c) <= k:
            recalls.append(float("nan"))
            coverages.append(float("nan"))
            continue
        recall, coverage = recall_and_coverage(real_c, fake_c, k)
        recalls.append(recall)
        coverages.append(coverage)
    return recalls, coverages


def harmonic_mean(fidelity: float, diversity: float) -> float:
    """F1 of a fidelity and a diversity score: high only when both are (noise with full recall scores low)."""
    return 2 * fidelity * diversity / (fidelity + diversity) if fidelity + diversity > 0 else 0.0


def nanmean(values: list[float]) -> float:
    tensor = torch.tensor(values, dtype=torch.float64)
    return float(tensor.nanmean()) if (~tensor.isnan()).any() else float("nan")
