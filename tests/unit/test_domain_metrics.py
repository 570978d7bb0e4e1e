"""The domain measures and the protocol record, on constructed data where the right answer is known."""

import pytest
import torch

from synthset.metrics.domain import class_pixel_std_ratio, harmonic_mean, recall_and_coverage
from synthset.metrics.protocol import fid_cell, higher_is_better, protocol_record, protocol_text


def test_recall_and_coverage_are_one_for_the_same_distribution_and_low_for_a_collapse() -> None:
    generator = torch.Generator().manual_seed(0)
    real = torch.randn(400, 8, generator=generator)
    same = torch.randn(400, 8, generator=generator)
    collapsed = real[:1].repeat(400, 1) + 0.01 * torch.randn(400, 8, generator=generator)
    recall, coverage = recall_and_coverage(real, same)
    assert recall > 0.9 and coverage > 0.9
    recall, coverage = recall_and_coverage(real, collapsed)
    assert recall < 0.05 and coverage < 0.05


def test_pixel_std_ratio_sees_a_class_that_repeats_one_image() -> None:
    real = torch.randint(0, 256, (40, 1, 8, 8), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    labels = torch.arange(40) % 2
    fake = real.clone()
    fake[labels == 1] = real[1]  # class 1 collapsed to one image
    ratios = class_pixel_std_ratio(fake, labels, real, labels, 2)
    assert ratios[0] == pytest.approx(1.0) and ratios[1] == 0.0


def test_the_selection_f1_needs_both_fidelity_and_diversity() -> None:
    # The quickstart's first evaluation under a faster D: noise covering every class, 18 % in the right one.
    noisy_early, later = harmonic_mean(0.179, 0.985), harmonic_mean(0.99, 0.926)
    assert noisy_early == pytest.approx(2 * 0.179 * 0.985 / (0.179 + 0.985)) and noisy_early < 0.31
    assert later > 0.95 > noisy_early
    assert harmonic_mean(0.0, 0.0) == 0.0 and harmonic_mean(1.0, 1.0) == 1.0


def test_a_small_sample_fid_is_flagged_with_kid_beside_it() -> None:
    small = protocol_record("digits", "test", 200, 360, 16, "inception-tf-pool3", None)
    metrics = {"fid": 97.6, "kid_mean": 0.05, "kid_std": 0.01}
    assert fid_cell(metrics, small) == "97.60 (small-sample: N=200 < 2000, biased high; KID 0.0500 ± 0.0100)"
    large = protocol_record("fashion_mnist", "test", 2000, 2000, 32, "inception-tf-pool3", None)
    assert fid_cell(metrics, large) == "97.60"
    assert protocol_text(small) == "digits/test: 200 generated vs 360 real, 16 px, inception-tf-pool3"


def test_selection_direction_of_each_metric() -> None:
    assert higher_is_better("eval/val/gan_test") and higher_is_better("eval/val/class_coverage")
    assert higher_is_better("eval/val/gan_test_recall_f1")
    assert not higher_is_better("eval/val/fid") and not higher_is_better("eval/val/kid_mean")
