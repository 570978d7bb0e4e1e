"""One LightningDataModule for every source: in-memory uint8 tensors, scaled to [-1, 1] on device."""

import hashlib
import logging
from collections.abc import Mapping
from typing import Any

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch.utils.data import BatchSampler, DataLoader, Dataset, RandomSampler, SequentialSampler

from synthset.data.sources import ImageSource, RawImages, build_source
from synthset.errors import require
from synthset.plaindata import check_arguments, require_plain

log = logging.getLogger(__name__)

# A source without a test split gets one carved with this seed, whatever data.seed is: every run of
# the same folder is then scored against the same held-out images.
TEST_SPLIT_SEED = 0


def resize_uint8(images: torch.Tensor, image_size: int, channels: int) -> torch.Tensor:
    """Convert channel count (gray <-> RGB) and resize with antialiasing; stays uint8."""
    if images.size(1) != channels:
        if channels == 1:
            weights = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
            images = (images.float() * weights).sum(1, keepdim=True).round().to(torch.uint8)
        else:
            images = images[:, :1].expand(-1, channels, -1, -1)
    if images.shape[-2:] != (image_size, image_size):
        resized = F.interpolate(images.float(), size=(image_size, image_size), mode="bilinear", antialias=True, align_corners=False)
        images = resized.round().clamp(0, 255).to(torch.uint8)
    return images.contiguous()


def to_signed_unit(images: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] -> float [-1, 1]."""
    return images.float().div_(127.5).sub_(1.0)


def fingerprint(*tensors: torch.Tensor | None) -> str:
    """sha256 (first 16 hex digits) of the preprocessed bytes: changes with the data or its preprocessing."""
    digest = hashlib.sha256()
    for tensor in tensors:
        if tensor is not None:
            digest.update(str(tuple(tensor.shape)).encode())
            digest.update(tensor.contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def stratified_subset(labels: torch.Tensor, fraction: float, seed: int) -> torch.Tensor:
    """Sorted indices of a seeded, class-stratified ``fraction`` of the images (at least one per class).

    Each class is permuted once per seed and cut at its share, so for one seed a smaller fraction
    is always a subset of a larger one: a generator trained on f saw nothing outside real@f' >= f.
    """
    require(0 < fraction <= 1, f"fraction={fraction} is outside (0, 1]; pass a share of the real training data such as 0.1.")
    if fraction == 1:
        return torch.arange(len(labels))
    generator = torch.Generator().manual_seed(seed)
    chosen = []
    for label in torch.unique(labels):  # unlabeled data (-1 everywhere) is one class
        members = (labels == label).nonzero().squeeze(1)
        keep = max(1, int(round(len(members) * fraction)))
        chosen.append(members[torch.randperm(len(members), generator=generator)[:keep]])
    return torch.cat(chosen).sort().values


class IndexedImages(Dataset):
    """Batch-indexable (images, labels): one gather per batch instead of one per image."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        self.images, self.labels = images, labels

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index):
        return self.images[index], self.labels[index]


class ImageDataModule(pl.LightningDataModule):
    """Real images at ``image_size`` x ``image_size`` with ``channels`` channels, scaled to [-1, 1].

    Splits, none of which shares an image with another:
    - ``test``: the source's own test split, or, for sources without one (folders), a class-stratified
      ``test_fraction`` carved once with a fixed seed. Used only to report.
    - ``val``: ``val_fraction`` of the rest, by a permutation seeded with ``seed`` (``data.seed``). Used to select.
    - ``train``: the remainder, or a seeded class-stratified ``fraction`` of it (the low-data setting).
    Unlabeled sources get label -1 and ``num_classes == 0``.
    """

    def __init__(
        self,
        source: ImageSource,
        name: str,
        image_size: int = 32,
        channels: int = 1,
        batch_size: int = 64,
        val_fraction: float = 0.05,
        test_fraction: float = 0.1,
        fraction: float = 1.0,
        seed: int = 0,
        num_workers: int = 0,
        mirror: bool = False,
    ) -> None:
        super().__init__()
        require(isinstance(image_size, int) and image_size > 0,
                f"data.image_size={image_size} must be a positive integer such as 32.")
        require(channels in (1, 3), f"data.channels={channels} is not supported; expected 1 (gray) or 3 (RGB).")
        require(batch_size > 0, f"data.batch_size={batch_size} must be a positive integer such as 64.")
        require(0 <= val_fraction < 1, f"data.val_fraction={val_fraction} must be in [0, 1).")
        require(0 < test_fraction < 1, f"data.test_fraction={test_fraction} must be in (0, 1), e.g. 0.1.")
        require(0 < fraction <= 1, f"data.fraction={fraction} is outside (0, 1]; pass the share of the real training "
                "split to train on, e.g. data.fraction=0.1.")
        require(not mirror or source.mirror_symmetric,
                f"data.mirror=true flips training images, but the classes of data={name} are not mirror-symmetric (a flipped "
                "image may show another class); set data.mirror=false.")
        self.source = source
        self.name = name
        self.image_size = image_size
        self.channels = channels
        self.batch_size = batch_size
        self.val_fraction = val_fraction
        self.test_fraction = test_fraction
        self.fraction = fraction
        self.seed = seed
        self.num_workers = num_workers
        self.mirror = mirror
        self.splits: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        self.class_names: list[str] = []

    def record(self) -> dict[str, Any]:
        """The plain description that rebuilds this data module (``datamodule_from_record``)."""
        return {"name": self.name, "source": self.source.spec(), "image_size": self.image_size, "channels": self.channels,
                "batch_size": self.batch_size, "val_fraction": self.val_fraction, "test_fraction": self.test_fraction,
                "fraction": self.fraction, "seed": self.seed, "num_workers": self.num_workers,
                "mirror": self.mirror}

    def split_summary(self) -> dict[str, Any]:
        """Sizes, fingerprints and origin of every split: recorded in the run and in dataset cards."""
        summary: dict[str, Any] = {
            "test_origin": "the source's own test split" if self.source.has_test_split else
            f"carved: class-stratified {self.test_fraction:g} of the images, seed {TEST_SPLIT_SEED}",
            "val_origin": f"{self.val_fraction:g} of the rest, data.seed {self.seed}",
            "train_fraction": self.fraction,
            "train_mirror": self.mirror,
        }
        for split in ("train", "val", "test"):
            summary[split] = {"images": len(self.split(split)[0]), "fingerprint": self.fingerprint(split)}
        return summary

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def prepare(self, raw: RawImages) -> tuple[torch.Tensor, torch.Tensor]:
        images = resize_uint8(raw.images, self.image_size, self.channels)
        labels = raw.labels if raw.labels is not None else torch.full((len(images),), -1, dtype=torch.long)
        return images, labels

    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        raw = self.source.load("train")
        self.class_names = list(raw.class_names) if raw.labels is not None else []
        images, labels = self.prepare(raw)
        if self.source.has_test_split:
            self.splits["test"] = self.prepare(self.source.load("test"))
        else:
            held_out = stratified_subset(labels, self.test_fraction, TEST_SPLIT_SEED)
            rest = torch.ones(len(labels), dtype=torch.bool)
            rest[held_out] = False
            self.splits["test"] = (images[held_out], labels[held_out])
            images, labels = images[rest], labels[rest]
        order = torch.randperm(len(images), generator=torch.Generator().manual_seed(self.seed))
        n_val = int(round(len(images) * self.val_fraction))
        self.splits["val"] = (images[order[:n_val]], labels[order[:n_val]])
        train_images, train_labels = images[order[n_val:]], labels[order[n_val:]]
        # The low-data setting: the same seed always picks the same stratified subset.
        keep = stratified_subset(train_labels, self.fraction, self.seed)
        self.splits["train"] = (train_images[keep], train_labels[keep])
        require(
            len(self.splits["train"][0]) >= self.batch_size,
            f"data.batch_size={self.batch_size} is larger than the {len(self.splits['train'][0])} "
            "training images; lower data.batch_size.",
        )
        log.info("data=%s: %d train (fraction %g) / %d val / %d test images at %dpx", self.name, len(keep), self.fraction,
                 n_val, len(self.splits["test"][0]), self.image_size)

    def split(self, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        """uint8 images and labels of ``train``, ``val`` or ``test``."""
        require(name in ("train", "val", "test"), f"split {name!r} is unknown; expected train, val or test.")
        self.setup()
        return self.splits[name]

    def fingerprint(self, split: str) -> str:
        images, labels = self.split(split)
        return fingerprint(images, labels)

    def loader(self, split: str, shuffle: bool, drop_last: bool) -> DataLoader:
        dataset = IndexedImages(*self.split(split))
        base = RandomSampler(dataset) if shuffle else SequentialSampler(dataset)
        return DataLoader(
            dataset,
            sampler=BatchSampler(base, self.batch_size, drop_last=drop_last),
            batch_size=None,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        return self.loader("train", shuffle=True, drop_last=True)

    def val_dataloader(self) -> DataLoader:
        return self.loader("val", shuffle=False, drop_last=False)

    def test_dataloader(self) -> DataLoader:
        return self.loader("test", shuffle=False, drop_last=False)

    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        images, labels = batch
        if self.mirror and self.trainer is not None and self.trainer.training:
            images = random_mirror(images)
        # Scale on the device: one vectorized op per batch, no float copies in host memory.
        return to_signed_unit(images), labels


def random_mirror(images: torch.Tensor) -> torch.Tensor:
    """Each image flipped left-right with probability 1/2 (StyleGAN's x-flips: twice the images a small set shows)."""
    flip = torch.rand(images.size(0), device=images.device) < 0.5
    return torch.where(flip.view(-1, 1, 1, 1), images.flip(-1), images)


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """float [-1, 1] -> uint8 [0, 255], rounded (the inverse of ``to_signed_unit``)."""
    return images.add(1.0).mul_(127.5).round_().clamp_(0, 255).to(torch.uint8)


# Keys of a data config that are the data module's arguments; the rest (``path``, ``root``, ...) are
# conveniences already folded into ``source``.
DATAMODULE_KEYS = ("name", "image_size", "channels", "batch_size", "val_fraction", "test_fraction", "fraction", "seed",
                   "num_workers", "mirror")


def datamodule_from_record(record: Mapping[str, Any], what: str = "the data config") -> ImageDataModule:
    """The data module a plain record describes (a composed ``data`` config, or one read from an artifact).

    The source is resolved through synthset's registry and every argument is type-checked: nothing named
    in the record is imported or called.
    """
    require(isinstance(record, Mapping), f"{what} has no data description; expected a mapping with data.source.")
    require_plain(dict(record), what)
    require("source" in record, f"{what} has no data.source (kind + arguments); it predates this synthset version, so "
            "retrain or regenerate with this version.")
    kwargs = {key: record[key] for key in DATAMODULE_KEYS if key in record}
    check_arguments(ImageDataModule, kwargs, "data.", what)
    return ImageDataModule(build_source(record["source"], f"{what} (data.source)"), **kwargs)
