"""One writer per format behind one interface; every shard is written under a temporary name and renamed.

Bytes are deterministic (fixed PNG settings, fixed tar/zip timestamps), so equal specs give equal files.
"""

import hashlib
import io
import os
import shutil
import zipfile
from pathlib import Path

import numpy as np

ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


def encode_png(image: np.ndarray) -> bytes:
    """uint8 (C, H, W) -> PNG bytes (deterministic: fixed compression, no metadata)."""
    from PIL import Image

    array = image[0] if image.shape[0] == 1 else image.transpose(1, 2, 0)
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(array)).save(buffer, format="PNG", compress_level=6)
    return buffer.getvalue()


def encode_png_to(image: np.ndarray, path: str | None) -> bytes:
    """``encode_png``, also written to ``path`` when given: encoder processes write files themselves."""
    data = encode_png(image)
    if path is not None:
        with open(path, "wb") as f:
            f.write(data)
    return data


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_bytes(data)
    os.replace(temporary, path)


def write_npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    """An .npz readable by ``np.load``, with fixed zip timestamps (``np.savez`` stamps the clock)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
        for name, array in arrays.items():
            member = io.BytesIO()
            np.lib.format.write_array(member, np.ascontiguousarray(array), allow_pickle=False)
            archive.writestr(zipfile.ZipInfo(f"{name}.npy", date_time=ZIP_EPOCH), member.getvalue())
    return buffer.getvalue()


class DatasetWriter:
    """Writes shard ``i`` (indices, uint8 images, labels, PNG bytes); returns its files and sha256."""

    needs_png = True

    def __init__(self, root: Path, class_names: list[str]) -> None:
        self.root = root
        self.class_names = class_names

    def write_shard(self, shard: int, indices: list[int], images: np.ndarray, labels: np.ndarray | None,
                    pngs: list[bytes]) -> tuple[list[str], str]:
        raise NotImplementedError

    def png_paths(self, indices: list[int], labels: np.ndarray | None) -> list[str] | None:
        """Where each PNG goes when the format is one file per image (the encoders write them), else None."""
        return None

    def finalize(self, num_shards: int) -> None:
        """Called once every shard exists (formats that assemble a whole dataset do it here)."""


class ImageFolderWriter(DatasetWriter):
    """``<class>/<index>.png`` (flat ``<index>.png`` when unlabeled): torchvision's ImageFolder layout.

    The PNG encoders write the files in parallel, straight to their names: a shard is committed by its
    manifest entry, and a resumed run rewrites the same bytes of any shard that was cut short.
    """

    def relative_paths(self, indices: list[int], labels: np.ndarray | None) -> list[str]:
        if labels is None:
            return [f"{index:08d}.png" for index in indices]
        return [f"{self.class_names[int(label)]}/{index:08d}.png" for index, label in zip(indices, labels, strict=True)]

    def png_paths(self, indices, labels):
        relative = self.relative_paths(indices, labels)
        for folder in {path.rpartition("/")[0] for path in relative}:
            (self.root / folder).mkdir(parents=True, exist_ok=True)
        return [f"{self.root}/{path}" for path in relative]

    def write_shard(self, shard, indices, images, labels, pngs):
        digest = hashlib.sha256()
        for png in pngs:
            digest.update(png)
        return self.relative_paths(indices, labels), digest.hexdigest()


class WebDatasetWriter(DatasetWriter):
    """``shard-<i>.tar`` holding ``<index>.png`` and ``<index>.cls`` per sample (webdataset's TarWriter)."""

    def write_shard(self, shard, indices, images, labels, pngs):
        import webdataset as wds

        name = f"shard-{shard:06d}.tar"
        temporary = self.root / f".{name}.tmp"
        self.root.mkdir(parents=True, exist_ok=True)
        with open(temporary, "wb") as stream, wds.TarWriter(stream, mtime=0.0) as sink:
            for i, index in enumerate(indices):
                sample = {"__key__": f"{index:08d}", "png": pngs[i]}
                if labels is not None:
                    sample["cls"] = int(labels[i])
                sink.write(sample)
        digest = hashlib.sha256(temporary.read_bytes()).hexdigest()
        os.replace(temporary, self.root / name)
        return [name], digest


class NpzWriter(DatasetWriter):
    """``shard-<i>.npz`` with ``images`` (uint8 N, C, H, W), ``labels`` (int64, -1 when unlabeled), ``indices``."""

    needs_png = False
    folder = ""

    def write_shard(self, shard, indices, images, labels, pngs):
        data = write_npz_bytes({
            "images": images,
            "labels": labels if labels is not None else np.full(len(indices), -1, dtype=np.int64),
            "indices": np.asarray(indices, dtype=np.int64),
        })
        name = str(Path(self.folder) / f"shard-{shard:06d}.npz")
        atomic_write_bytes(self.root / name, data)
        return [name], hashlib.sha256(data).hexdigest()


class HuggingFaceWriter(NpzWriter):
    """Shards as npz under ``shards/``, assembled by ``datasets`` into ``save_to_disk`` form at the end.

    Features: ``image`` (``datasets.Image``) and ``label`` (``ClassLabel`` with the source's class names).
    """

    folder = "shards"

    def finalize(self, num_shards: int) -> None:
        import datasets

        features = {"image": datasets.Image()}
        if self.class_names:
            features["label"] = datasets.ClassLabel(names=self.class_names)
        shard_files = [str(self.root / self.folder / f"shard-{i:06d}.npz") for i in range(num_shards)]

        def rows(files):
            for file in files:
                with np.load(file) as shard:
                    for image, label in zip(shard["images"], shard["labels"], strict=True):
                        row = {"image": {"bytes": encode_png(image), "path": None}}
                        if self.class_names:
                            row["label"] = int(label)
                        yield row

        dataset = datasets.Dataset.from_generator(
            rows, gen_kwargs={"files": shard_files}, features=datasets.Features(features),
            cache_dir=str(self.root / ".hf-cache"),
        )
        target, temporary = self.root / "data", self.root / ".data.tmp"
        shutil.rmtree(temporary, ignore_errors=True)
        dataset.save_to_disk(str(temporary))
        shutil.rmtree(target, ignore_errors=True)
        os.replace(temporary, target)
        shutil.rmtree(self.root / ".hf-cache", ignore_errors=True)


WRITERS: dict[str, type[DatasetWriter]] = {
    "imagefolder": ImageFolderWriter,
    "hf": HuggingFaceWriter,
    "webdataset": WebDatasetWriter,
    "npz": NpzWriter,
}
