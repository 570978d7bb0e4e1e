"""Read a written dataset back as uint8 tensors, through each format's own library, in index order."""

import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from synthset.errors import SynthsetError, require
from synthset.generation.writers import class_folder_names
from synthset.plaindata import require_plain

CARD = "synthset.json"


def load_card(out: Path) -> dict[str, Any]:
    """The machine-readable card ``generate.py`` wrote next to the data, checked to be plain data.

    A card may come from anyone (a dataset downloaded from a hub): nothing in it is ever imported or
    called, and a card carrying a Hydra ``_target_`` key anywhere is refused outright.
    """
    path = Path(out) / CARD
    require(path.is_file(), f"dataset={out} has no {CARD} card; expected a folder written by generate.py "
            "(pass dataset=outputs/datasets/<name>).")
    try:
        card = json.loads(path.read_text())
    except ValueError:
        raise SynthsetError(f"dataset={out}: {CARD} is not valid JSON; regenerate the dataset with generate.py.") from None
    require_plain(card, f"the card {path}")
    require(isinstance(card, dict) and {"spec", "source", "class_names"} <= set(card),
            f"the card {path} lacks spec/source/class_names; it was not written by generate.py.")
    return card


def decode_png(data: bytes, channels: int) -> np.ndarray:
    array = np.asarray(Image.open(io.BytesIO(data)).convert("L" if channels == 1 else "RGB"))
    return array[None] if channels == 1 else array.transpose(2, 0, 1)


def read_npz_shards(files: list[Path]) -> tuple[np.ndarray, np.ndarray]:
    images, labels = [], []
    for file in files:
        with np.load(file) as shard:
            images.append(shard["images"])
            labels.append(shard["labels"])
    return np.concatenate(images), np.concatenate(labels)


def read_imagefolder(out: Path, class_names: list[str], channels: int) -> tuple[np.ndarray, np.ndarray]:
    folders = [(out / name, k) for k, name in enumerate(class_folder_names(class_names))] if class_names else [(out, -1)]
    # Only ``<index>.png`` files: a flat (unlabeled) folder also holds the card's grid.png and closest_pairs.png.
    entries = sorted((int(f.stem), f, k) for folder, k in folders for f in folder.glob("*.png") if f.stem.isdigit())
    return (np.stack([decode_png(f.read_bytes(), channels) for _, f, _ in entries]),
            np.array([k for _, _, k in entries], dtype=np.int64))


def read_webdataset(out: Path, channels: int) -> tuple[np.ndarray, np.ndarray]:
    import webdataset as wds

    samples = sorted((int(s["__key__"]), s) for s in wds.WebDataset([str(f) for f in sorted(out.glob("shard-*.tar"))],
                                                                     shardshuffle=False, empty_check=False))
    return (np.stack([decode_png(s["png"], channels) for _, s in samples]),
            np.array([int(s["cls"]) if "cls" in s else -1 for _, s in samples], dtype=np.int64))


def read_hf(out: Path, labeled: bool, channels: int) -> tuple[np.ndarray, np.ndarray]:
    import datasets

    table = datasets.load_from_disk(str(out / "data"))
    images = np.stack([decode_png(row["bytes"], channels) for row in table.cast_column("image", datasets.Image(decode=False))["image"]])
    labels = np.asarray(table["label"], dtype=np.int64) if labeled else np.full(len(images), -1, dtype=np.int64)
    return images, labels


def read_dataset(out: Path, card: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor | None]:
    """uint8 images (N, C, H, W) and int64 labels (None when the dataset is unlabeled)."""
    out = Path(out)
    fmt, class_names = card["spec"]["format"], card["class_names"]
    channels = int(card["source"]["data_config"]["channels"])
    if fmt == "npz":
        images, labels = read_npz_shards(sorted(out.glob("shard-*.npz")))
    elif fmt == "imagefolder":
        images, labels = read_imagefolder(out, class_names, channels)
    elif fmt == "webdataset":
        images, labels = read_webdataset(out, channels)
    else:
        images, labels = read_hf(out, bool(class_names), channels)
    expected = card["spec"]["num_samples"]
    require(len(images) == expected, f"dataset={out} holds {len(images)} images but its card promises {expected}; "
            "re-run the same generate.py command to finish or repair it.")
    return torch.from_numpy(np.ascontiguousarray(images)), (torch.from_numpy(labels) if class_names else None)
