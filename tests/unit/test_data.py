"""Data sources and the data module, on real offline data and files the tests write."""

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from synthset.data import (
    DigitsSource,
    FashionMNISTSource,
    FolderSource,
    ImageDataModule,
    TorchvisionSource,
)
from synthset.data.datamodule import stratified_subset
from synthset.data.sources import DEBIAN_FASHION_MNIST
from synthset.errors import SynthsetError


def batch_of(dm: ImageDataModule) -> tuple[torch.Tensor, torch.Tensor]:
    return dm.on_after_batch_transfer(next(iter(dm.train_dataloader())), 0)


def test_digits_scaled_to_signed_unit_range_at_image_size() -> None:
    dm = ImageDataModule(DigitsSource(), "digits", image_size=16, channels=1, batch_size=32, val_fraction=0.1)
    dm.setup()
    images, labels = batch_of(dm)
    assert images.shape == (32, 1, 16, 16) and images.dtype == torch.float32
    assert images.min() >= -1 and images.max() <= 1 and images.min() == -1
    assert dm.num_classes == 10 and labels.min() >= 0 and labels.max() <= 9
    train, test = dm.split("train")[0], dm.split("test")[0]
    assert len(train) + len(dm.split("val")[0]) + len(test) == 1797


def test_split_is_deterministic_by_seed_and_test_split_is_fixed() -> None:
    def val_of(seed: int) -> torch.Tensor:
        dm = ImageDataModule(DigitsSource(), "digits", image_size=16, seed=seed)
        dm.setup()
        return dm.split("val")[0]

    assert torch.equal(val_of(3), val_of(3)) and not torch.equal(val_of(3), val_of(4))
    a = ImageDataModule(DigitsSource(), "digits", image_size=16, seed=1)
    b = ImageDataModule(DigitsSource(), "digits", image_size=16, seed=2)
    assert a.fingerprint("test") == b.fingerprint("test")
    # A different preprocessing is a different fingerprint.
    assert a.fingerprint("test") != ImageDataModule(DigitsSource(), "digits", image_size=32).fingerprint("test")


@pytest.mark.skipif(not DEBIAN_FASHION_MNIST.is_dir(), reason="apt-get install dataset-fashion-mnist (.ci/run does)")
def test_fashion_mnist_reads_debian_files_offline() -> None:
    source = FashionMNISTSource()
    test = source.load("test")
    assert test.images.shape == (10000, 1, 28, 28) and test.labels.bincount().tolist() == [1000] * 10
    assert test.class_names[9] == "Ankle boot"


def write_idx(path: Path, array: np.ndarray) -> None:
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(">" + "I" * array.ndim, *array.shape)
    with gzip.open(path, "wb") if path.suffix == ".gz" else open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def test_torchvision_mnist_reads_files_written_by_the_test(tmp_path: Path) -> None:
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 12), ("t10k", 5)):
        write_idx(raw / f"{prefix}-images-idx3-ubyte", rng.integers(0, 256, (n, 28, 28)))
        write_idx(raw / f"{prefix}-labels-idx1-ubyte", np.arange(n) % 10)
    out = TorchvisionSource("mnist", str(tmp_path)).load("test")
    assert out.images.shape == (5, 1, 28, 28) and out.labels.tolist() == [0, 1, 2, 3, 4]


def test_cifar10_without_files_says_how_to_fix(tmp_path: Path) -> None:
    with pytest.raises(SynthsetError, match=r"data.download=true .*data.root="):
        TorchvisionSource("cifar10", str(tmp_path)).load("train")
    with pytest.raises(SynthsetError, match="data.root="):
        TorchvisionSource("cifar10", None).load("train")


def make_folder(root: Path, labeled: bool) -> Path:
    rng = np.random.default_rng(0)
    for i in range(6):
        folder = root / (f"class_{i % 2}" if labeled else "")
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (20, 20, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    (root / ("class_0" if labeled else "") / "broken.png").write_bytes(b"not an image")
    return root


def test_folder_with_class_subfolders_gives_labels_and_skips_corrupt(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    raw = FolderSource(str(make_folder(tmp_path / "imgs", labeled=True))).load("train")
    assert raw.class_names == ["class_0", "class_1"] and raw.labels.bincount().tolist() == [3, 3]
    assert "skipped 1 unreadable" in caplog.text
    dm = ImageDataModule(FolderSource(str(tmp_path / "imgs")), "folder", image_size=16, channels=1, batch_size=2, val_fraction=0)
    images, _ = batch_of(dm)
    assert images.shape == (2, 1, 16, 16)
    # No test split of its own: one image per class is carved out and never trained on.
    assert dm.split("test")[1].tolist() == [0, 1] and len(dm.split("train")[0]) == 4


def test_flat_folder_is_unlabeled(tmp_path: Path) -> None:
    dm = ImageDataModule(FolderSource(str(make_folder(tmp_path / "flat", labeled=False))), "folder", image_size=16, channels=3, batch_size=2, val_fraction=0)
    dm.setup()
    assert dm.num_classes == 0 and dm.split("train")[1].eq(-1).all()
    assert len(dm.split("test")[0]) == 1 and len(dm.split("train")[0]) == 5


def test_a_datamodule_rebuilds_from_its_own_plain_record(tmp_path: Path) -> None:
    from synthset.data.datamodule import datamodule_from_record

    dm = ImageDataModule(FolderSource(str(make_folder(tmp_path / "imgs", labeled=True))), "folder", image_size=16,
                         channels=1, batch_size=2, val_fraction=0.2, seed=3)
    again = datamodule_from_record(dm.record())
    assert again.record() == dm.record()
    assert all(again.fingerprint(s) == dm.fingerprint(s) for s in ("train", "val", "test"))


def test_empty_or_all_corrupt_folder_is_refused(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(SynthsetError, match="holds no readable images"):
        FolderSource(str(tmp_path / "empty")).load("train")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "x.jpg").write_bytes(b"garbage")
    with pytest.raises(SynthsetError, match=r"no readable images \(1 unreadable\)"):
        FolderSource(str(tmp_path / "bad")).load("train")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"image_size": 0}, "data.image_size=0 must be a positive integer"), ({"batch_size": 0}, "data.batch_size=0"), ({"batch_size": -3}, "data.batch_size=-3"),
     ({"fraction": 0.0}, r"data.fraction=0.0 is outside \(0, 1\]"), ({"fraction": 1.5}, r"data.fraction=1.5 is outside"),
     ({"mirror": True}, r"data.mirror=true flips training images, but the classes of data=digits are not mirror-symmetric")],
)
def test_bad_data_settings_name_the_value(kwargs: dict, message: str) -> None:
    with pytest.raises(SynthsetError, match=message):
        ImageDataModule(DigitsSource(), "digits", **kwargs)


def test_fraction_subsets_are_stratified_seeded_and_nested() -> None:
    labels = torch.arange(10).repeat_interleave(torch.arange(10) * 10 + 20)  # imbalanced: 20..110 per class
    small, large = stratified_subset(labels, 0.1, seed=3), stratified_subset(labels, 0.5, seed=3)
    assert torch.equal(small, stratified_subset(labels, 0.1, seed=3))
    assert not torch.equal(small, stratified_subset(labels, 0.1, seed=4))
    assert set(small.tolist()) < set(large.tolist())  # a generator trained on 0.1 saw nothing outside real@0.5
    counts = torch.bincount(labels[small], minlength=10)
    assert counts.tolist() == [round(0.1 * (20 + 10 * k)) for k in range(10)]
    assert len(stratified_subset(labels, 1.0, seed=3)) == len(labels)


def test_data_fraction_trains_on_the_same_subset_for_the_same_seed() -> None:
    full = ImageDataModule(DigitsSource(), "digits", image_size=16, seed=1)
    part = ImageDataModule(DigitsSource(), "digits", image_size=16, seed=1, fraction=0.1)
    again = ImageDataModule(DigitsSource(), "digits", image_size=16, seed=1, fraction=0.1)
    assert len(part.split("train")[0]) == pytest.approx(0.1 * len(full.split("train")[0]), abs=10)
    assert part.fingerprint("train") == again.fingerprint("train") != full.fingerprint("train")
    assert part.fingerprint("val") == full.fingerprint("val") and part.fingerprint("test") == full.fingerprint("test")
    assert torch.bincount(part.split("train")[1]).min() >= 12


def test_mirror_flips_some_training_images_and_never_val_or_unattached_batches() -> None:
    import pytorch_lightning as pl

    dm = ImageDataModule(FashionMNISTSource(), "fashion_mnist", image_size=16, batch_size=256, fraction=0.05, mirror=True)
    raw_images, labels = next(iter(dm.train_dataloader()))
    plain = dm.on_after_batch_transfer((raw_images, labels), 0)[0]  # no trainer: scoring and benchmarks see the images
    assert torch.equal(plain, dm.on_after_batch_transfer((raw_images, labels), 0)[0])
    dm.trainer = pl.Trainer(logger=False, enable_checkpointing=False, enable_progress_bar=False)
    dm.trainer.validating = True
    assert torch.equal(dm.on_after_batch_transfer((raw_images, labels), 0)[0], plain)
    dm.trainer.training = True
    torch.manual_seed(0)
    seen, seen_labels = dm.on_after_batch_transfer((raw_images, labels), 0)
    same = (seen == plain).flatten(1).all(1)
    flipped = (seen == plain.flip(-1)).flatten(1).all(1)
    assert bool((same | flipped).all()) and torch.equal(seen_labels, labels)  # each image whole, as it is or mirrored
    asymmetric = ~(plain == plain.flip(-1)).flatten(1).all(1)
    assert 0.3 < flipped[asymmetric].float().mean() < 0.7  # about half of the images that change under a flip
    assert dm.record()["mirror"] is True and dm.split_summary()["train_mirror"] is True
