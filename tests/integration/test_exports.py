"""Exports keep every label right: each format reads back the source's own label id of every image.

Fashion-MNIST's ``T-shirt/top`` once became nested folders and ImageFolder renumbered the classes; now a
class folder is ``<id>-<safe name>``, every format carries the source id, and ``classes.json`` maps ids to names.
"""

import json
import re
from pathlib import Path

import numpy as np
import pytest

from synthset.data.sources import DEBIAN_FASHION_MNIST, FashionMNISTSource
from synthset.generation.writers import class_folder_names, safe_folder_name
from tests.conftest import run_entry

FORMATS = ("imagefolder", "hf", "webdataset", "npz")
N = 30  # balanced: image i has label i % 10


def card_loader(out: Path) -> dict:
    """Run the loading snippet the card prints, as a user would paste it."""
    readme = (out / "README.md").read_text()
    code = re.search(r"## How to load\n\n```python\n(.*?)\n```", readme, re.S).group(1)
    scope: dict = {}
    exec(code, scope)  # noqa: S102 - the card's own snippet is what is under test
    return scope


@pytest.fixture(scope="module")
def fashion_checkpoint(tmp_path_factory) -> Path:
    if not DEBIAN_FASHION_MNIST.is_dir():
        pytest.skip("apt-get install dataset-fashion-mnist (.ci/run does)")
    root = tmp_path_factory.mktemp("fashion")
    done = run_entry("train.py", "data=fashion_mnist", "model=dcgan", "model.conditional=true", "model.width=8",
                     "trainer.max_steps=4", "trainer.enable_progress_bar=false", "logger=none",
                     "callbacks.sample_grid.every_n_steps=100", root=root)
    assert done.returncode == 0, done.stderr[-3000:]
    (checkpoint,) = root.glob("outputs/runs/*/*/checkpoints/last.ckpt")
    return checkpoint


@pytest.fixture(scope="module")
def exports(fashion_checkpoint: Path, tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("exports")
    outs = {}
    for fmt in FORMATS:
        outs[fmt] = root / fmt
        done = run_entry("generate.py", f"ckpt={fashion_checkpoint}", f"format={fmt}", f"num_samples={N}", "shard_size=16",
                         f"out={outs[fmt]}", "progress=false", "card.eval_samples=0", "memorization.enabled=false", root=root)
        assert done.returncode == 0, done.stderr[-3000:]
    return outs


def test_every_format_reads_back_the_source_label_ids(exports: dict[str, Path]) -> None:
    import datasets
    import webdataset as wds
    from torchvision.datasets import ImageFolder

    names = FashionMNISTSource.classes
    folder = ImageFolder(str(exports["imagefolder"]))
    assert folder.classes == class_folder_names(names) and folder.classes[0] == "0-T-shirt_top"
    assert [target for _, target in folder.samples] == [int(Path(path).stem) % 10 for path, _ in folder.samples]
    assert len(folder) == N

    hf = datasets.load_from_disk(str(exports["hf"] / "data"))
    assert hf.features["label"].names == names and hf["label"] == [i % 10 for i in range(N)]

    shards = sorted(str(p) for p in exports["webdataset"].glob("shard-*.tar"))
    pairs = [(int(s["__key__"]), int(s["cls"])) for s in wds.WebDataset(shards, shardshuffle=False)]
    assert len(pairs) == N and all(label == key % 10 for key, label in pairs)

    arrays = [np.load(p) for p in sorted(exports["npz"].glob("shard-*.npz"))]
    indices, labels = (np.concatenate([a[k] for a in arrays]) for k in ("indices", "labels"))
    assert (labels == indices % 10).all()

    for out in exports.values():
        assert json.loads((out / "classes.json").read_text()) == {str(i): name for i, name in enumerate(names)}


def test_every_card_names_a_loader_that_works(exports: dict[str, Path]) -> None:
    assert len(card_loader(exports["imagefolder"])["ds"]) == N
    assert len(card_loader(exports["hf"])["ds"]) == N
    assert len(list(card_loader(exports["webdataset"])["ds"])) == N
    assert sum(len(s["images"]) for s in card_loader(exports["npz"])["shards"]) == N


def test_an_unlabeled_flat_export_loads_with_the_loader_its_card_names(root: Path) -> None:
    assert run_entry("train.py", "model=dcgan", "model.width=8", "trainer.max_steps=4", "trainer.enable_progress_bar=false",
                     "callbacks.sample_grid.every_n_steps=100", root=root).returncode == 0
    out = root / "flat"
    done = run_entry("generate.py", "run_id=latest", "num_samples=12", f"out={out}", "progress=false", "card.eval_samples=0",
                     root=root)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (out / "grid.png").is_file() and (out / "closest_pairs.png").is_file()  # beside the images, not among them
    assert len(card_loader(out)["images"]) == 12


@pytest.mark.parametrize(("name", "safe"), [("T-shirt/top", "T-shirt_top"), ("../../etc", "_.._etc"), (".hidden", "hidden"),
                                            ("a\\b", "a_b"), ("..", "_"), ("Ankle boot", "Ankle boot")])
def test_class_names_become_one_safe_path_component(name: str, safe: str) -> None:
    assert safe_folder_name(name) == safe
    assert "/" not in safe and "\\" not in safe and not safe.startswith(".")


def test_class_folders_sort_in_id_order_past_ten_classes() -> None:
    folders = class_folder_names([f"c{i}" for i in range(12)])
    assert sorted(folders) == folders and folders[10] == "10-c10" and folders[0] == "00-c0"
