"""generate: determinism, balance, every format read back by its own library, resume, card, gate."""

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from mlflow.tracking import MlflowClient

from synthset.config import compose_config
from synthset.data import DigitsSource, ImageDataModule
from synthset.errors import SynthsetError
from synthset.generation.memorization import MemorizationCheck
from synthset.pipelines.generate import generate
from synthset.pipelines.train import train
from tests.conftest import FAST_TRAIN, REPO, tracking_uri_for

FAST_GENERATE = ["num_samples=40", "shard_size=16", "progress=false", "card.eval_samples=0", "metrics.progress=false"]


@pytest.fixture(scope="module")
def source_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A tiny conditional DCGAN with a real eval/fid (TF-Inception against the 72 validation digits)."""
    root = tmp_path_factory.mktemp("source")
    train(compose_config("train", [*FAST_TRAIN, "model=dcgan", "model.conditional=true", "trainer.max_steps=10",
                                   "eval.every_n_steps=5", "eval.num_samples=20", "eval.reference_split=val",
                                   "metrics.progress=false", "metrics.is_extractor=none"], root))
    client = MlflowClient(tracking_uri_for(root))
    (run,) = client.search_runs([client.get_experiment_by_name("synthset").experiment_id])
    return root, run.info.run_id


def gen_config(source_run, *overrides: str):
    root, run_id = source_run
    return compose_config("generate", [f"run_id={run_id}", *FAST_GENERATE, *overrides], root)


def file_hashes(folder: Path) -> dict[str, str]:
    skip = {"README.md", "synthset.json"}  # they carry the creation time
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and p.name not in skip}


@pytest.mark.parametrize("fmt", ["imagefolder", "webdataset", "npz"])
def test_same_spec_gives_byte_identical_output(source_run, tmp_path: Path, fmt: str) -> None:
    a = generate(gen_config(source_run, f"format={fmt}", f"out={tmp_path / 'a'}", "memorization.enabled=false"))
    b = generate(gen_config(source_run, f"format={fmt}", f"out={tmp_path / 'b'}", "memorization.enabled=false"))
    assert file_hashes(a) == file_hashes(b) and len(file_hashes(a)) >= 3


def test_every_format_reads_back_with_its_own_library(source_run, tmp_path: Path) -> None:
    import datasets
    import webdataset as wds
    from torchvision.datasets import ImageFolder

    outs = {fmt: generate(gen_config(source_run, f"format={fmt}", f"out={tmp_path / fmt}", "memorization.enabled=false"))
            for fmt in ("imagefolder", "hf", "webdataset", "npz")}
    folder = ImageFolder(str(outs["imagefolder"]))
    assert len(folder) == 40 and folder.classes == [str(i) for i in range(10)]
    assert np.bincount(folder.targets).tolist() == [4] * 10
    assert folder[0][0].size == (16, 16)

    hf = datasets.load_from_disk(str(outs["hf"] / "data"))
    assert len(hf) == 40 and hf.features["label"].names == [str(i) for i in range(10)]
    assert np.bincount(hf["label"]).tolist() == [4] * 10 and hf[0]["image"].size == (16, 16)

    shards = sorted(str(p) for p in outs["webdataset"].glob("shard-*.tar"))
    samples = list(wds.WebDataset(shards, shardshuffle=False).decode("pil").to_tuple("png", "cls"))
    assert len(samples) == 40 and sorted({c for _, c in samples}) == list(range(10))

    arrays = [np.load(p) for p in sorted(outs["npz"].glob("shard-*.npz"))]
    images = np.concatenate([a["images"] for a in arrays])
    labels = np.concatenate([a["labels"] for a in arrays])
    assert images.shape == (40, 1, 16, 16) and images.dtype == np.uint8 and np.bincount(labels).tolist() == [4] * 10
    # The npz bytes are the imagefolder's PNGs decoded: the same images whatever the format.
    assert np.array_equal(np.asarray(folder[0][0].convert("L")), images[0, 0])


def test_card_records_true_provenance_and_quality(source_run, tmp_path: Path) -> None:
    root, run_id = source_run
    out = generate(gen_config(source_run, f"out={tmp_path / 'carded'}", "card.eval_samples=20", "metrics.is_extractor=none"))
    info = json.loads((out / "synthset.json").read_text())
    (ckpt,) = (root / "outputs" / "run" / "checkpoints").glob("best.ckpt")
    assert info["spec"]["source_run_id"] == run_id
    assert info["spec"]["checkpoint_sha256"] == hashlib.sha256(ckpt.read_bytes()).hexdigest()
    assert info["spec"]["seed"] == 0 and info["class_counts"] == {str(i): 4 for i in range(10)}
    assert {"torch", "torch-fidelity", "mlflow"} <= set(info["packages"]) and info["created"]
    assert info["source"]["model"] == "dcgan" and info["source"]["data"] == "digits"
    assert info["source_metrics"]["eval/fid"] > 0 and info["quality"]["metrics"]["fid"] > 0
    assert 0 <= info["memorization"]["flagged_fraction"] <= 1
    readme = (out / "README.md").read_text()
    assert readme.startswith("---\nlicense:") and "- synthetic" in readme and "size_categories" in readme
    assert (out / "grid.png").is_file() and (out / "closest_pairs.png").is_file()
    client = MlflowClient(tracking_uri_for(root))
    children = client.search_runs([client.get_run(run_id).info.experiment_id], f"tags.`mlflow.parentRunId` = '{run_id}'")
    (child,) = [c for c in children if c.data.params.get("out") == str(out)]
    assert child.inputs.dataset_inputs and child.data.metrics["dataset/fid"] == info["quality"]["metrics"]["fid"]
    assert "dataset_card" in {a.path for a in client.list_artifacts(child.info.run_id)}


@pytest.mark.parametrize("space", ["pixels", pytest.param("effnet-lite0", marks=pytest.mark.slow)])
def test_memorization_check_flags_planted_training_copies(tmp_path: Path, space: str) -> None:
    dm = ImageDataModule(DigitsSource(), "digits", image_size=16)
    check = MemorizationCheck.calibrate(dm, space, 1.0, tmp_path)
    copies = dm.split("train")[0][:10]
    unseen = dm.split("test")[0][:30]
    distances, neighbours = check.distances(torch.cat([copies, unseen]))
    flagged = check.flagged(distances)
    assert flagged[:10].all() and torch.equal(neighbours[:10], torch.arange(10))
    assert flagged[10:].float().mean() <= 0.1  # about 1 % of honest new images, by construction


def test_existing_output_with_another_spec_is_not_overwritten(source_run, tmp_path: Path) -> None:
    out = tmp_path / "kept"
    generate(gen_config(source_run, f"out={out}", "memorization.enabled=false"))
    before = file_hashes(out)
    with pytest.raises(SynthsetError, match="already holds a dataset with a different spec"):
        generate(gen_config(source_run, f"out={out}", "memorization.enabled=false", "seed=1"))
    assert file_hashes(out) == before
    generate(gen_config(source_run, f"out={out}", "memorization.enabled=false", "seed=1", "overwrite=true"))
    assert file_hashes(out) != before


def test_gate_refuses_a_model_worse_than_max_fid(source_run, tmp_path: Path) -> None:
    with pytest.raises(SynthsetError, match=r"eval/fid=\d+\.\d+, worse than gate.max_fid=1.0"):
        generate(gen_config(source_run, f"out={tmp_path / 'gated'}", "gate.max_fid=1.0"))
    assert not (tmp_path / "gated").exists()


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["format=tiff"], "format=tiff is unknown"),
        (["num_samples=0"], "num_samples=0 must be a positive integer"),
        (["labels={cat: 40}"], "unknown classes"),
        (["run_id=feedbeef"], "run_id=feedbeef is not a run"),
        (["memorization.extractor=sift"], "memorization.extractor=sift is unknown"),
    ],
)
def test_bad_input_leaves_nothing_behind(source_run, tmp_path: Path, overrides: list[str], message: str) -> None:
    out = tmp_path / "never"
    with pytest.raises(SynthsetError, match=message):
        generate(gen_config(source_run, f"out={out}", *overrides))
    assert not out.exists()


def test_unwritable_output_is_refused(source_run, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(SynthsetError, match="cannot be created"):
        generate(gen_config(source_run, f"out={blocker / 'sub'}", "memorization.enabled=false"))


def test_sigkill_mid_generation_then_rerun_gives_the_uninterrupted_result(source_run, tmp_path: Path) -> None:
    root, run_id = source_run
    args = [str(REPO / "generate.py"), f"run_id={run_id}", "num_samples=3000", "shard_size=100", "format=npz",
            "progress=false", "card.eval_samples=0", "memorization.enabled=false", "num_workers=1"]
    env = {**os.environ, "SYNTHSET_ROOT": str(root)}
    env.pop("MLFLOW_TRACKING_URI", None)
    killed = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, *args, f"out={killed}"], env=env, cwd=root,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and proc.poll() is None:
            manifest = killed / "manifest.json"
            if manifest.is_file() and len(json.loads(manifest.read_text())["shards"]) >= 2:
                break
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    partial = json.loads((killed / "manifest.json").read_text())
    assert not partial["complete"] and 2 <= len(partial["shards"]) < 30

    for out in (killed, tmp_path / "uninterrupted"):
        done = subprocess.run([sys.executable, *args, f"out={out}"], env=env, cwd=root, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-2000:]
    resumed = json.loads((killed / "manifest.json").read_text())
    whole = json.loads((tmp_path / "uninterrupted" / "manifest.json").read_text())
    assert resumed["complete"] and resumed["shards"] == whole["shards"]
    assert {k: v["sha256"] for k, v in partial["shards"].items()} == {k: whole["shards"][k]["sha256"] for k in partial["shards"]}
    assert not list(killed.glob(".*tmp*"))


@pytest.fixture(scope="module")
def learned_run(source_run) -> tuple[Path, str]:
    """A conditional DCGAN that has learned digits (as in test_learning), beside source_run's store and caches."""
    root, _ = source_run
    cfg = compose_config("train", [*FAST_TRAIN, "model=dcgan", "model.conditional=true", "model.width=32",
                                   "trainer.max_steps=600", "callbacks.sample_grid.every_n_steps=100000"], root)
    cfg.paths.run_dir = str(root / "outputs" / "learned-run")
    from synthset.pipelines.train import run_training

    return root, run_training(cfg).run_id


def test_label_agreement_keeps_only_images_the_reference_classifier_assigns_to_their_label(learned_run, tmp_path: Path) -> None:
    from synthset.metrics.classifier import reference_classifier

    root, run_id = learned_run
    cfg = compose_config("generate", [f"run_id={run_id}", *FAST_GENERATE, "format=npz", f"out={tmp_path / 'agreed'}",
                                      "filter.label_agreement=0.5", "memorization.enabled=false",
                                      "card.eval_samples=20", "metrics.is_extractor=none"], root)
    out = generate(cfg)
    arrays = [np.load(p) for p in sorted(out.glob("shard-*.npz"))]
    images = torch.from_numpy(np.concatenate([a["images"] for a in arrays]))
    labels = torch.from_numpy(np.concatenate([a["labels"] for a in arrays]))
    assert len(images) == 40 and labels.bincount().tolist() == [4] * 10

    dm = ImageDataModule(DigitsSource(), "digits", image_size=16)
    classifier = reference_classifier(dm, root / "outputs" / "cache" / "classifier")  # the cached one the filter used
    test_images, test_labels = dm.split("test")
    accuracy = (classifier.probabilities(test_images).argmax(1) == test_labels).float().mean().item()
    assert accuracy >= 0.9, f"reference classifier reaches only {accuracy:.2%} on real test digits"
    agreement = classifier.probabilities(images).gather(1, labels.view(-1, 1)).squeeze(1)
    assert (agreement >= 0.5).all()

    info = json.loads((out / "synthset.json").read_text())
    assert info["label_agreement"]["threshold"] == 0.5
    assert set(info["quality"]["metrics_before_filtering"]) == set(info["quality"]["metrics"])
    assert "after filtering" in (out / "README.md").read_text()
