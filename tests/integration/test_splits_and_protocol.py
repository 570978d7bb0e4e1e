"""No number on data that trained or selected a model; every metric carries its protocol.

- A folder gets a carved, class-stratified test split that no model in the chain trains on; the
  utility protocols test there, and the card records where every split came from.
- Training evaluates on val (selection) and never on test; ``run_id=best`` compares runs of one protocol.
- The gate reads the FID of the checkpoint it uses; cards flag small-sample FID with KID beside it.
"""

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from mlflow.tracking import MlflowClient
from PIL import Image

from synthset.config import compose_config
from synthset.data import DigitsSource
from synthset.data.datamodule import datamodule_from_record
from tests.conftest import FAST_TRAIN, QUIET, run_entry, tracking_uri_for


def image_hashes(images) -> set[str]:
    return {hashlib.sha256(image.numpy().tobytes()).hexdigest() for image in images}


@pytest.fixture(scope="module")
def digit_folder(tmp_path_factory) -> Path:
    """sklearn's digits written as a folder of class subfolders (PNG): a source without a test split."""
    folder = tmp_path_factory.mktemp("digit-folder")
    raw = DigitsSource().load("train")
    for i, (image, label) in enumerate(zip(raw.images, raw.labels, strict=True)):
        (folder / f"class_{int(label)}").mkdir(exist_ok=True)
        Image.fromarray(image[0].numpy()).save(folder / f"class_{int(label)}" / f"{i:05d}.png")
    return folder


def test_a_folder_gets_a_carved_test_split_that_no_model_in_the_chain_trains_on(root: Path, digit_folder: Path) -> None:
    folder_args = ["data=folder", f"data.path={digit_folder}", "data.channels=1", "data.image_size=16"]
    trained = run_entry("train.py", *FAST_TRAIN, *folder_args, "model=dcgan", "model.conditional=true", root=root)
    assert trained.returncode == 0, trained.stderr[-3000:]
    out = root / "ds"
    made = run_entry("generate.py", "run_id=latest", f"out={out}", "num_samples=50", "format=npz", "progress=false",
                     "card.eval_samples=0", root=root)
    assert made.returncode == 0, made.stderr[-3000:]
    card = json.loads((out / "synthset.json").read_text())
    splits = card["source"]["splits"]
    assert splits["test_origin"].startswith("carved: class-stratified 0.1")

    datamodule = datamodule_from_record(card["source"]["data_config"])
    held_out = image_hashes(datamodule.split("test")[0])
    seen = image_hashes(datamodule.split("train")[0]) | image_hashes(datamodule.split("val")[0])
    assert held_out and not held_out & seen, "a test image is also a training or selection image"
    assert splits["test"]["images"] == len(datamodule.split("test")[0]) and splits["test"]["fingerprint"] == \
        datamodule.fingerprint("test")
    counts = np.bincount(datamodule.split("test")[1].numpy())
    assert counts.min() >= 13 and counts.max() - counts.min() <= 1  # stratified: every class held out in proportion

    used = run_entry("evaluate.py", "task=utility", f"dataset={out}", "utility.steps=30", "progress=false", root=root)
    assert used.returncode == 0, used.stderr[-3000:]
    utility = json.loads((out / "synthset.json").read_text())["utility"]
    assert utility["test_images"] == len(datamodule.split("test")[0])


def test_data_seed_is_independent_of_the_model_seed() -> None:
    def fingerprints(*overrides: str) -> tuple[str, str]:
        cfg = compose_config("train", list(overrides), Path("/tmp/unused"))
        from omegaconf import OmegaConf

        dm = datamodule_from_record(OmegaConf.to_container(cfg.data, resolve=True))
        return dm.fingerprint("val"), dm.fingerprint("train")

    assert fingerprints("seed=0") == fingerprints("seed=1")  # a seed sweep no longer changes the data
    assert fingerprints("data.seed=0") != fingerprints("data.seed=1")


def test_training_selects_on_val_and_never_scores_test(session_runs) -> None:
    client = MlflowClient(tracking_uri_for(session_runs.root))
    run = client.get_run(session_runs.run_ids["dcgan"])
    training_eval = [key for key in run.data.metrics if key.startswith("eval/")]  # evaluate.py logs eval_<ckpt>/test/*
    assert training_eval and all(key.startswith("eval/val/") for key in training_eval)
    assert run.data.tags["synthset.selection_metric"] == "eval/val/gan_test"
    assert "digits/val: 60 generated vs 144 real" in run.data.tags["synthset.eval_protocol"]


def test_eval_metrics_share_the_training_step_axis(session_runs) -> None:
    client = MlflowClient(tracking_uri_for(session_runs.root))
    run_id = session_runs.run_ids["dcgan"]
    train_steps = {m.step for m in client.get_metric_history(run_id, "train/d_loss")}
    eval_steps = [m.step for m in client.get_metric_history(run_id, "eval/val/gan_test")]
    assert eval_steps and max(eval_steps) <= max(train_steps) + 1
    assert max(eval_steps) < 2 * max(train_steps) - 2  # not optimizer steps (two per DCGAN batch)


def test_run_id_best_compares_only_runs_of_one_protocol(root: Path) -> None:
    common = [*FAST_TRAIN, "model=dcgan", "model.conditional=true", "eval.every_n_steps=5", "eval.fidelity=false",
              "eval.monitor=gan_test", "metrics.progress=false"]
    for n in (40, 60):
        assert run_entry("train.py", *common, f"eval.num_samples={n}", f"logger.run_name=n{n}", root=root).returncode == 0
    chosen = run_entry("generate.py", "run_id=best", f"out={root / 'ds'}", "num_samples=20", "progress=false",
                       "card.eval_samples=0", "memorization.enabled=false", root=root)
    assert chosen.returncode == 0, chosen.stderr[-3000:]
    assert "the best of 1 run(s) scored on [digits/val: 60 generated" in chosen.stdout
    assert "1 run(s) under other protocols were not compared" in chosen.stdout


@pytest.fixture(scope="module")
def fid_run(store_template, tmp_path_factory) -> tuple[Path, str]:
    """The one training run here that scores real TF-Inception FID (20 samples against 40 of the val digits)."""
    from tests.conftest import with_store

    root = with_store(tmp_path_factory.mktemp("fid-run"), store_template)
    result = run_entry("train.py", *FAST_TRAIN, "model=dcgan", "model.conditional=true", "eval.every_n_steps=5",
                       "eval.num_samples=20", "eval.reference_samples=40", "eval.domain=false",
                       "metrics.precision_recall=false", *QUIET, root=root)
    assert result.returncode == 0, result.stderr[-3000:]
    client = MlflowClient(tracking_uri_for(root))
    (run,) = client.search_runs([client.get_experiment_by_name("synthset").experiment_id])
    return root, run.info.run_id


def test_the_gate_reads_the_fid_of_the_checkpoint_it_uses(fid_run) -> None:
    import torch

    root, run_id = fid_run
    client = MlflowClient(tracking_uri_for(root))
    best = Path(client.get_run(run_id).data.tags["synthset.run_dir"]) / "checkpoints" / "best.ckpt"
    own = torch.load(best, weights_only=True)["synthset_eval"]
    assert own["protocol"]["split"] == "val" and own["protocol"]["n_generated"] == 20
    fid = own["metrics"]["fid"]
    history = [m.value for m in client.get_metric_history(run_id, "eval/val/fid")]
    assert fid == min(history)  # best.ckpt keeps its own score, not the run's last value
    refused = run_entry("generate.py", f"run_id={run_id}", "checkpoint=best", f"gate.max_fid={fid - 0.01}",
                        f"out={root / 'gated'}", "num_samples=20", root=root)
    assert refused.returncode == 2 and f"fid={fid:.2f}" in refused.stderr and "digits/val: 20 generated" in refused.stderr
    passed = run_entry("generate.py", f"run_id={run_id}", "checkpoint=best", f"gate.max_fid={fid + 0.01}",
                       f"out={root / 'passed'}", "num_samples=20", "card.eval_samples=20", "card.reference_samples=40",
                       "progress=false",
                       "memorization.enabled=false", *QUIET, "metrics.precision_recall=false", root=root)
    assert passed.returncode == 0, passed.stderr[-3000:]
    card = json.loads((root / "passed" / "synthset.json").read_text())
    assert card["gate"]["checkpoint_fid"] == fid
    protocol = card["quality"]["protocol"]
    assert (protocol["split"], protocol["n_generated"], protocol["n_reference"], protocol["image_size"],
            protocol["extractor"]) == ("test", 20, 40, 16, "inception-tf-pool3")
    # GAN-test and diversity meet the same capped real set as FID (coverage depends on its size)
    assert (protocol["n_generated_domain"], protocol["n_reference_domain"]) == (20, 40)
    readme = (root / "passed" / "README.md").read_text()
    assert "small-sample: N=20 < 2000, biased high; KID" in readme
    assert "GAN-test accuracy" in readme.split("FID (TF-Inception pool3)")[0]  # domain measures lead


def test_labels_map_in_hydra_grammar_with_empty_classes_writes_the_card(session_runs, tmp_path: Path) -> None:
    out = tmp_path / "mapped"
    done = run_entry("generate.py", f"run_id={session_runs.run_ids['dcgan']}", "num_samples=30", "labels={0:20,1:10}",
                     f"out={out}", "shard_size=30", "progress=false", "card.eval_samples=10", "card.fidelity=false",
                     root=session_runs.root)
    assert done.returncode == 0, done.stderr[-3000:]
    card = json.loads((out / "synthset.json").read_text())
    assert card["class_counts"]["0"] == 20 and card["class_counts"]["1"] == 10 and card["class_counts"]["9"] == 0
    grid = Image.open(out / "grid.png")
    assert grid.size[1] >= 10 * 64  # one row per class, empty classes blank, images upscaled to 64 px


def test_a_card_scored_on_val_says_so_and_an_unknown_split_is_refused(session_runs, tmp_path: Path) -> None:
    run_id = f"run_id={session_runs.run_ids['dcgan']}"
    common = ["num_samples=20", "progress=false", "card.eval_samples=20", "card.reference_samples=40",
              "card.fidelity=false", "memorization.enabled=false"]
    chosen = run_entry("generate.py", run_id, f"out={tmp_path / 'val'}", "card.reference_split=val", *common,
                       root=session_runs.root)
    assert chosen.returncode == 0, chosen.stderr[-3000:]
    card = json.loads((tmp_path / "val" / "synthset.json").read_text())
    assert card["quality"]["reference_split"] == card["quality"]["protocol"]["split"] == "val"
    assert "real **val** images, scored to choose a generation setting" in (tmp_path / "val" / "README.md").read_text()
    assert "val-split quality: GAN-test" in chosen.stdout
    logged = MlflowClient(tracking_uri_for(session_runs.root)).get_run(card["generation_run_id"]).data.metrics
    assert "dataset/val/gan_test" in logged and not any(key.startswith("dataset/test/") for key in logged)
    refused = run_entry("generate.py", run_id, f"out={tmp_path / 'train'}", "card.reference_split=train", *common,
                        root=session_runs.root)
    assert refused.returncode == 2 and "card.reference_split=train is unknown" in refused.stderr
    assert not (tmp_path / "train").exists()
