"""generate: determinism, formats, resume after a kill, the card, the memorization check and the filters."""

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

from synthset.config import compose_config
from synthset.data import DigitsSource, ImageDataModule
from synthset.errors import SynthsetError
from synthset.generation.memorization import MemorizationCheck, nearest
from synthset.generation.readers import load_card, read_dataset
from synthset.pipelines.generate import generate
from tests.conftest import REPO, run_entry

FAST_GENERATE = ["num_samples=40", "shard_size=16", "progress=false", "card.eval_samples=0", "metrics.progress=false"]


def gen_config(session_runs, *overrides: str, model: str = "dcgan"):
    return compose_config("generate", [f"run_id={session_runs.run_ids[model]}", *FAST_GENERATE, *overrides],
                          session_runs.root)


def file_hashes(folder: Path) -> dict[str, str]:
    skip = {"README.md", "synthset.json"}  # they carry the creation time and the generation run
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and p.name not in skip}


@pytest.mark.parametrize("fmt", ["imagefolder", "webdataset", "npz"])
def test_same_spec_gives_byte_identical_output(session_runs, tmp_path: Path, fmt: str) -> None:
    a = generate(gen_config(session_runs, f"format={fmt}", f"out={tmp_path / 'a'}", "memorization.enabled=false"))
    b = generate(gen_config(session_runs, f"format={fmt}", f"out={tmp_path / 'b'}", "memorization.enabled=false"))
    assert file_hashes(a) == file_hashes(b) and len(file_hashes(a)) >= 3


def test_every_format_holds_the_same_images_and_labels(session_runs, tmp_path: Path) -> None:
    read = {}
    for fmt in ("imagefolder", "hf", "webdataset", "npz"):
        out = generate(gen_config(session_runs, f"format={fmt}", f"out={tmp_path / fmt}", "memorization.enabled=false"))
        read[fmt] = read_dataset(out, load_card(out))
        assert not (out / ".manifest").exists()  # shard records are folded into manifest.json at the end
        assert json.loads((out / "manifest.json").read_text())["complete"]
    images, labels = read["npz"]
    assert images.shape == (40, 1, 16, 16) and labels.tolist() == [i % 10 for i in range(40)]
    for fmt in ("imagefolder", "hf", "webdataset"):
        assert torch.equal(read[fmt][0], images) and torch.equal(read[fmt][1], labels), fmt


def test_card_records_true_provenance(session_runs, tmp_path: Path) -> None:
    out = generate(gen_config(session_runs, f"out={tmp_path / 'carded'}", "card.eval_samples=30", "card.fidelity=false"))
    info = json.loads((out / "synthset.json").read_text())
    checkpoint = session_runs.checkpoints["dcgan"].with_name("best.ckpt")
    assert info["spec"]["source_run_id"] == session_runs.run_ids["dcgan"]
    assert info["spec"]["checkpoint_sha256"] == hashlib.sha256(checkpoint.read_bytes()).hexdigest()
    assert info["class_counts"] == {str(i): 4 for i in range(10)}
    assert {"torch", "torch-fidelity", "mlflow"} <= set(info["packages"]) and info["created"]
    assert info["source"]["data_config"]["source"] == {"kind": "digits"}
    assert info["source"]["splits"]["val"]["images"] == 144 and info["source"]["splits"]["test"]["images"] == 360
    assert info["source_evaluation"]["protocol"]["split"] == "val"
    quality = info["quality"]
    assert quality["protocol"]["split"] == "test" and set(quality["metrics"]) >= {"gan_test", "pixel_std_ratio"}
    memo = info["memorization"]
    assert memo["calibrated_on"] == "val" and memo["flagged_fraction"] == memo["flagged"] / 40
    readme = (out / "README.md").read_text()
    assert readme.startswith("---\nlicense:") and "- synthetic" in readme and "reporting only" in readme


def test_the_memorization_threshold_is_calibrated_on_val_not_test(tmp_path: Path) -> None:
    dm = ImageDataModule(DigitsSource(), "digits", image_size=16, val_fraction=0.1)
    check = MemorizationCheck.calibrate(dm, "pixels", 5.0, tmp_path)
    flat = [dm.split(s)[0].flatten(1).float() / 255 for s in ("val", "test", "train")]
    on_val = float(torch.quantile(nearest(flat[0], flat[2])[0], 0.05))
    on_test = float(torch.quantile(nearest(flat[1], flat[2])[0], 0.05))
    assert check.threshold == pytest.approx(on_val) and on_val != pytest.approx(on_test)


def test_memorization_check_flags_planted_training_copies(tmp_path: Path) -> None:
    dm = ImageDataModule(DigitsSource(), "digits", image_size=16, val_fraction=0.1)
    check = MemorizationCheck.calibrate(dm, "pixels", 1.0, tmp_path)
    copies = dm.split("train")[0][:10]
    unseen = dm.split("test")[0][:30]
    distances, neighbours = check.distances(torch.cat([copies, unseen]))
    flagged = check.flagged(distances)
    assert flagged[:10].all() and torch.equal(neighbours[:10], torch.arange(10))
    assert flagged[10:].float().mean() <= 0.1  # about 1 % of honest new images, by construction


def test_existing_output_with_another_spec_is_not_overwritten_without_asking(session_runs, tmp_path: Path) -> None:
    out = tmp_path / "kept"
    generate(gen_config(session_runs, f"out={out}", "memorization.enabled=false"))
    before = file_hashes(out)
    with pytest.raises(SynthsetError, match="already holds a dataset with a different spec"):
        generate(gen_config(session_runs, f"out={out}", "memorization.enabled=false", "seed=1"))
    assert file_hashes(out) == before
    generate(gen_config(session_runs, f"out={out}", "memorization.enabled=false", "seed=1", "overwrite=true"))
    assert file_hashes(out) != before


def test_temperature_spreads_the_draws_and_the_card_records_it(session_runs, tmp_path: Path) -> None:
    common = ["format=npz", "memorization.enabled=false", "labels={0:40}"]
    datasets = {t: generate(gen_config(session_runs, *common, f"temperature={t}", f"out={tmp_path / str(t)}", model="vae"))
                for t in (1.0, 2.0)}
    images = {t: read_dataset(out, load_card(out))[0].float() for t, out in datasets.items()}
    assert images[2.0].std(0).mean() > images[1.0].std(0).mean()  # one class: wider latents, more varied images
    cards = {t: json.loads((out / "synthset.json").read_text()) for t, out in datasets.items()}
    assert "temperature" not in cards[1.0]["spec"] and cards[2.0]["spec"]["temperature"] == 2.0
    assert "temperature=2.0" in (datasets[2.0] / "README.md").read_text()
    assert "latents drawn at" not in (datasets[1.0] / "README.md").read_text()


def test_unwritable_output_is_refused(session_runs, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(SynthsetError, match="cannot be created"):
        generate(gen_config(session_runs, f"out={blocker / 'sub'}", "memorization.enabled=false"))


def test_sigkill_mid_generation_then_rerun_gives_the_uninterrupted_result(session_runs, tmp_path: Path) -> None:
    args = [f"run_id={session_runs.run_ids['dcgan']}", "num_samples=3000", "shard_size=100",
            "format=npz", "progress=false", "card.eval_samples=0", "memorization.enabled=false", "num_workers=1"]
    env = {**os.environ, "SYNTHSET_ROOT": str(session_runs.root)}
    env.pop("MLFLOW_TRACKING_URI", None)
    killed = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, str(REPO / "generate.py"), *args, f"out={killed}"], env=env, cwd=session_runs.root,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and proc.poll() is None:
            if len(list((killed / ".manifest").glob("shard-*.json"))) >= 2:
                break
            time.sleep(0.01)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    partial = {int(p.stem.split("-")[1]): json.loads(p.read_text())["entry"] for p in (killed / ".manifest").glob("*.json")}
    assert 2 <= len(partial) < 30 and not json.loads((killed / "manifest.json").read_text())["complete"]

    for out in (killed, tmp_path / "uninterrupted"):  # the rerun and the reference in this process (no start-up)
        done = run_entry("generate.py", *args, f"out={out}", root=session_runs.root)
        assert done.returncode == 0, done.stderr[-2000:]
    resumed = json.loads((killed / "manifest.json").read_text())
    whole = json.loads((tmp_path / "uninterrupted" / "manifest.json").read_text())
    assert resumed["complete"] and resumed["shards"] == whole["shards"]
    assert {k: v["sha256"] for k, v in partial.items()} == {k: whole["shards"][str(k)]["sha256"] for k in partial}
    assert not list(killed.rglob(".*tmp*")) and not (killed / ".manifest").exists()


def test_filters_keep_only_images_the_reference_classifier_accepts(learned_run, tmp_path: Path) -> None:
    from synthset.metrics.classifier import reference_classifier

    root, run_id = learned_run
    common = [f"run_id={run_id}", *FAST_GENERATE, "format=npz", "memorization.enabled=false", "card.eval_samples=40",
              "card.fidelity=false"]
    agreed = generate(compose_config("generate", [*common, f"out={tmp_path / 'agreed'}", "filter.label_agreement=0.9"], root))
    confident = generate(compose_config("generate", [*common, f"out={tmp_path / 'top'}", "filter.top_k=0.25"], root))
    plain = generate(compose_config("generate", [*common, f"out={tmp_path / 'plain'}"], root))

    dm = ImageDataModule(DigitsSource(), "digits", image_size=16, val_fraction=0.1)
    classifier = reference_classifier(dm, Path(os.environ["SYNTHSET_CACHE"]) / "classifier")  # the one the filters used
    test_images, test_labels = dm.split("test")
    assert (classifier.predict_labels(test_images) == test_labels).float().mean() >= 0.9

    def agreement(out: Path) -> torch.Tensor:
        images, labels = read_dataset(out, load_card(out))
        assert len(images) == 40 and labels.bincount().tolist() == [4] * 10
        return classifier.probabilities(images).gather(1, labels.view(-1, 1)).squeeze(1)

    assert (agreement(agreed) >= 0.9).all()
    assert agreement(confident).mean() > agreement(plain).mean()
    card = json.loads((confident / "synthset.json").read_text())
    assert card["top_k"]["drawn"] == 160 and card["top_k"]["kept"] == 40  # 4 per class kept of 16 drawn
    assert set(card["quality"]["metrics_before_filtering"]) == set(card["quality"]["metrics"])
    assert card["quality"]["metrics"]["gan_test"] >= card["quality"]["metrics_before_filtering"]["gan_test"]
    assert "before filtering" in (agreed / "README.md").read_text()
    assert np.isfinite(card["quality"]["metrics"]["pixel_std_ratio"])


def test_the_discriminator_filter_keeps_the_draws_the_gans_own_critic_scores_highest(learned_run, tmp_path: Path) -> None:
    from synthset.data.datamodule import to_signed_unit
    from synthset.models.loading import load_generative_model

    root, run_id = learned_run
    one_shard = [f"run_id={run_id}", "num_samples=40", "shard_size=40", "progress=false", "card.eval_samples=0"]
    common = [*one_shard, "format=npz", "memorization.enabled=false"]
    judged = generate(compose_config("generate", [*common, f"out={tmp_path / 'judged'}", "filter.top_k=0.25",
                                                  "filter.top_k_by=discriminator"], root))
    plain = generate(compose_config("generate", [*common, f"out={tmp_path / 'plain'}"], root))
    card = load_card(judged)
    assert card["top_k"] == {"keep": 0.25, "by": "discriminator", "drawn": 160, "kept": 40}
    assert card["spec"]["top_k_by"] == "discriminator" and "top_k_by" not in load_card(plain)["spec"]
    assert "Discriminator filter" in (judged / "README.md").read_text()

    model, _ = load_generative_model(root / "outputs" / "runs" / "learned" / "checkpoints" / card["source"]["checkpoint"])

    def scores(out: Path) -> tuple[torch.Tensor, torch.Tensor]:
        images, labels = read_dataset(out, load_card(out))
        assert labels.bincount().tolist() == [4] * 10
        return model.discriminator_scores(to_signed_unit(images), labels), labels

    # The best 4 of 16 draws per class against 4 unjudged ones: D's own ranking, not the classifier's.
    (judged_scores, labels), (plain_scores, _) = scores(judged), scores(plain)
    assert judged_scores.mean() > plain_scores.mean() + 0.1 * plain_scores.std()
    # Kept in the order drawn, not ranked: the card scores a prefix, which must be a fair sample of what was kept.
    ranked = [bool((s[:-1] >= s[1:]).all()) for s in (judged_scores[labels == c] for c in range(10))]
    assert not all(ranked)


def test_the_discriminator_filter_refuses_a_model_without_one(session_runs, tmp_path: Path) -> None:
    cfg = gen_config(session_runs, f"out={tmp_path / 'vae'}", "filter.top_k=0.5", "filter.top_k_by=discriminator",
                     model="vae")
    with pytest.raises(SynthsetError, match="filter.top_k_by=discriminator needs a GAN's discriminator, and this "
                                            "checkpoint is a vae"):
        generate(cfg)
    assert not (tmp_path / "vae").exists()
