"""Where real images come from. Every source returns uint8 (N, C, H, W) images at native size.

Sources never touch the network unless the user asked (``download=True``). A source is described
declaratively, as a registered ``kind`` plus plain keyword arguments (``{"kind": "folder", "path":
...}``): that is how configs, checkpoints and dataset cards name it, and ``build_source`` is the only
way such a description becomes an object.
"""

import gzip
import logging
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from synthset.errors import SynthsetError, require
from synthset.plaindata import check_arguments, require_plain

log = logging.getLogger(__name__)

SPLITS = ("train", "test")
DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}


@dataclass
class RawImages:
    """A split of real data: uint8 images (N, C, H, W), int64 labels or None, class names."""

    images: torch.Tensor
    labels: torch.Tensor | None
    class_names: list[str]


class ImageSource:
    """Interface: ``load(split)`` for split in ``SPLITS``; ``has_test_split`` says if the source has its own test split.

    ``kind`` is the registered name; ``spec()`` gives the declarative description that rebuilds it.
    """

    kind = "source"
    name = "source"
    has_test_split = True
    mirror_symmetric = False  # may a classifier learn from horizontally flipped images (clothes yes, digits no)?

    def load(self, split: str) -> RawImages:
        raise NotImplementedError

    def arguments(self) -> dict[str, Any]:
        """The plain keyword arguments that rebuild this source (see ``build_source``)."""
        return {}

    def spec(self) -> dict[str, Any]:
        return {"kind": self.kind, **self.arguments()}


class DigitsSource(ImageSource):
    """scikit-learn's bundled 1,797 handwritten digits (8x8, 10 classes): no network, no files.

    The set has no official test split, so a fixed stratified 20 % is held out with seed 0,
    independent of the training seed, so every run scores against the same images.
    """

    kind = name = "digits"
    test_fraction = 0.2

    def load(self, split: str) -> RawImages:
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split

        digits = load_digits()
        images = np.round(digits.images * (255.0 / 16.0)).astype(np.uint8)[:, None]
        indices = np.arange(len(images))
        train_idx, test_idx = train_test_split(
            indices, test_size=self.test_fraction, random_state=0, stratify=digits.target
        )
        chosen = np.sort(train_idx if split == "train" else test_idx)
        return RawImages(
            torch.from_numpy(images[chosen]),
            torch.from_numpy(digits.target[chosen]).long(),
            [str(i) for i in range(10)],
        )


def read_idx(path: Path) -> torch.Tensor:
    """An MNIST-format IDX file (gzipped or not) through torchvision's own reader."""
    from torchvision.datasets.mnist import read_sn3_pascalvincent_tensor

    if path.suffix != ".gz":
        return read_sn3_pascalvincent_tensor(str(path), strict=False)
    with tempfile.TemporaryDirectory() as folder:  # torchvision reads plain files only
        plain = Path(folder) / path.stem
        with gzip.open(path, "rb") as packed, open(plain, "wb") as unpacked:
            shutil.copyfileobj(packed, unpacked)
        return read_sn3_pascalvincent_tensor(str(plain), strict=False)


class FashionMNISTSource(ImageSource):
    """Fashion-MNIST from the Debian package's idx files when present, else torchvision's root."""

    kind = name = "fashion_mnist"
    mirror_symmetric = True
    classes = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
    prefixes = {"train": "train", "test": "t10k"}

    def __init__(self, root: str | None = None, download: bool = False) -> None:
        self.root = root
        self.download = download

    def arguments(self) -> dict[str, Any]:
        return {"root": self.root, "download": self.download}

    def idx_dir(self) -> Path | None:
        candidates = [Path(self.root) / "FashionMNIST" / "raw", Path(self.root)] if self.root else []
        candidates.append(DEBIAN_FASHION_MNIST)
        for folder in candidates:
            if any(folder.glob("train-images-idx3-ubyte*")):
                return folder
        return None

    def load(self, split: str) -> RawImages:
        folder = self.idx_dir()
        if folder is None:
            return TorchvisionSource("fashion_mnist", self.root, self.download).load(split)
        prefix = self.prefixes[split]
        images = read_idx(next(folder.glob(f"{prefix}-images-idx3-ubyte*")))
        labels = read_idx(next(folder.glob(f"{prefix}-labels-idx1-ubyte*")))
        return RawImages(images[:, None].contiguous(), labels.long(), list(self.classes))


class TorchvisionSource(ImageSource):
    """MNIST / Fashion-MNIST / CIFAR-10 through torchvision; downloads only when ``download=True``."""

    kind = "torchvision"
    datasets = {"mnist": "MNIST", "fashion_mnist": "FashionMNIST", "cifar10": "CIFAR10"}

    def __init__(self, name: str, root: str | None = None, download: bool = False) -> None:
        require(name in self.datasets, f"torchvision data set {name!r} is unknown; expected one of {sorted(self.datasets)}.")
        self.name = name
        self.root = root
        self.download = download
        self.mirror_symmetric = name in ("fashion_mnist", "cifar10")

    def arguments(self) -> dict[str, Any]:
        return {"name": self.name, "root": self.root, "download": self.download}

    def load(self, split: str) -> RawImages:
        import torchvision

        require(
            self.root is not None,
            f"data={self.name} needs its files: set data.root=/path/to/dir holding them, "
            "or data.download=true to fetch them (needs a network).",
        )
        cls = getattr(torchvision.datasets, self.datasets[self.name])
        try:
            ds = cls(root=self.root, train=(split == "train"), download=self.download)
        except RuntimeError as error:
            raise SynthsetError(
                f"data={self.name} found no files under data.root={self.root} ({error}); "
                "set data.download=true to fetch them or data.root=... to where they are."
            ) from None
        data = ds.data if isinstance(ds.data, torch.Tensor) else torch.from_numpy(np.asarray(ds.data))
        images = data[:, None] if data.ndim == 3 else data.permute(0, 3, 1, 2)
        return RawImages(images.contiguous(), torch.as_tensor(ds.targets).long(), list(ds.classes))


class FolderSource(ImageSource):
    """Any image folder: class subfolders give labels; a flat folder is unlabeled.

    Files are decoded as RGB (palettes, alpha and gray all normalize) and the data module
    converts to ``data.channels``. Unreadable files are skipped and counted. A folder has no test
    split of its own: the data module carves a seeded, class-stratified one (``data.test_fraction``).
    """

    kind = name = "folder"
    has_test_split = False

    def __init__(self, path: str | None) -> None:
        require(path is not None, "data=folder needs data.path=/path/to/images (a folder of images or of class subfolders).")
        self.path = Path(path).expanduser()

    def arguments(self) -> dict[str, Any]:
        return {"path": str(self.path)}

    def load(self, split: str) -> RawImages:
        require(self.path.is_dir(), f"data.path={self.path} is not a folder; point it at a folder of images.")
        subdirs = sorted(p for p in self.path.iterdir() if p.is_dir())
        files_by_class = (
            [(i, sorted(f for f in d.rglob("*") if f.suffix.lower() in IMAGE_SUFFIXES)) for i, d in enumerate(subdirs)]
            if subdirs
            else [(-1, sorted(f for f in self.path.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES))]
        )
        images, labels, skipped = [], [], 0
        for label, files in files_by_class:
            for file in files:
                try:
                    with Image.open(file) as img:
                        images.append(np.asarray(img.convert("RGB")))
                        labels.append(label)
                except (UnidentifiedImageError, OSError):
                    skipped += 1
        if skipped:
            log.warning("data.path=%s: skipped %d unreadable image file(s)", self.path, skipped)
        require(
            images,
            f"data.path={self.path} holds no readable images ({skipped} unreadable); "
            f"expected files with suffixes {sorted(IMAGE_SUFFIXES)}.",
        )
        sizes = {im.shape[:2] for im in images}
        # Mixed sizes are resized to the first image's size here and to image_size later.
        if len(sizes) > 1:
            h, w = images[0].shape[:2]
            images = [np.asarray(Image.fromarray(im).resize((w, h), Image.BILINEAR)) for im in images]
        stacked = np.stack(images)
        stacked = stacked[:, None] if stacked.ndim == 3 else stacked.transpose(0, 3, 1, 2)
        labeled = bool(subdirs)
        return RawImages(
            torch.from_numpy(np.ascontiguousarray(stacked)),
            torch.tensor(labels, dtype=torch.long) if labeled else None,
            [d.name for d in subdirs],
        )


# The only classes a data description can name: ``kind`` is looked up here, never imported.
SOURCE_REGISTRY: dict[str, type[ImageSource]] = {
    cls.kind: cls for cls in (DigitsSource, FashionMNISTSource, TorchvisionSource, FolderSource)
}


def build_source(spec: Mapping[str, Any], what: str = "data.source") -> ImageSource:
    """The source a declarative ``{"kind": ..., **kwargs}`` describes, checked against the registry."""
    require_plain(dict(spec) if isinstance(spec, Mapping) else spec, what)
    require(isinstance(spec, Mapping) and spec.get("kind") in SOURCE_REGISTRY,
            f"{what} names source kind {str(spec.get('kind') if isinstance(spec, Mapping) else spec)[:60]!r}, "
            f"which synthset does not know; expected one of {', '.join(SOURCE_REGISTRY)}.")
    cls = SOURCE_REGISTRY[spec["kind"]]
    kwargs = {k: v for k, v in spec.items() if k != "kind"}
    check_arguments(cls, kwargs, "data.source.", what)
    return cls(**kwargs)
