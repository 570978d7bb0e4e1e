"""task=utility on digits: every protocol trained and logged, leakage labeled, tested on the real test split."""

import json
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from synthset.config import compose_config
from synthset.errors import SynthsetError
from synthset.pipelines.generate import generate
from synthset.pipelines.utility import utility
from tests.conftest import tracking_uri_for

UTILITY = ["utility.steps=150", "progress=false"]


@pytest.fixture(scope="module")
def dataset(session_runs, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """100 images from the session's conditional DCGAN (trained on all of digits)."""
    out = tmp_path_factory.mktemp("utility") / "ds"
    generate(compose_config("generate", [f"run_id={session_runs.run_ids['dcgan']}", "num_samples=100", "format=npz",
                                         "progress=false", "card.eval_samples=0", "memorization.enabled=false",
                                         f"out={out}"], session_runs.root))
    return session_runs.root, out


def utility_config(root: Path, *overrides: str):
    return compose_config("evaluate", ["task=utility", *UTILITY, *overrides], root)


def test_whole_utility_run_logs_every_protocol_and_labels_leakage(dataset) -> None:
    root, out = dataset
    accuracy = utility(utility_config(root, f"dataset={out}", "utility.real_fractions=[0.1]"))
    assert list(accuracy) == ["real", "synthetic", "real+synthetic", "real@0.1", "real@0.1+synthetic"]
    assert accuracy["real"] >= 0.90

    card = json.loads((out / "synthset.json").read_text())["utility"]
    leaky = {p["name"]: p["leaky"] for p in card["protocols"]}
    assert leaky == {"real": False, "synthetic": False, "real+synthetic": False, "real@0.1": False, "real@0.1+synthetic": True}
    assert next(p for p in card["protocols"] if p["leaky"])["delta"] == "leaky: not a gain"
    assert card["test_images"] == 360 and card["augment"] == "pad-and-crop 1 px"  # digits: no flips
    # Each protocol's val accuracy (the classifier's early-stopping score) comes beside its test accuracy.
    assert all(0.0 < p["val_mean"] <= 1.0 for p in card["protocols"])
    readme = (out / "README.md").read_text()
    assert "| real@0.1+synthetic (**leaky**) |" in readme and "Not measured yet" not in readme
    assert "batches were drawn from both sets in proportion to their sizes" in readme  # utility.synthetic_use=mix
    assert card["patience"] == 0 and "per protocol, the whole budget, the weights best on val kept" in readme

    client = MlflowClient(tracking_uri_for(root))
    parent = client.get_run(card["run_id"])
    generation_run = json.loads((out / "synthset.json").read_text())["generation_run_id"]
    assert parent.data.tags["mlflow.parentRunId"] == generation_run  # the tree: train -> generate -> utility
    children = client.search_runs([parent.info.experiment_id], f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    assert {c.data.tags["synthset.protocol"] for c in children} == set(accuracy)
    for child in children:
        protocol = child.data.tags["synthset.protocol"]
        assert child.data.metrics["accuracy_mean"] == pytest.approx(accuracy[protocol])
        assert child.data.tags["synthset.leaky"] == str(protocol == "real@0.1+synthetic").lower()
        assert len([m for m in child.data.metrics if m.startswith("class_accuracy/")]) == 10
        assert [a.path for a in client.list_artifacts(child.info.run_id)] == ["confusion_matrix.png"]

    # Rerunning resumes from the per-(protocol, seed) cache: same numbers, no retraining.
    again = utility(utility_config(root, f"dataset={out}", "utility.real_fractions=[0.1]"))
    assert again == accuracy


def test_extra_datasets_of_the_same_data_pool_their_images_and_other_data_is_refused(dataset, session_runs,
                                                                                   tmp_path: Path) -> None:
    import shutil

    root, out = dataset
    other = tmp_path / "vae"  # a second generator of the same real data (the session's β-VAE): an ensemble's second member
    generate(compose_config("generate", [f"run_id={session_runs.run_ids['vae']}", "num_samples=60", "format=npz",
                                         "progress=false", "card.eval_samples=0", "memorization.enabled=false",
                                         f"out={other}"], root))
    pooled = tmp_path / "pooled"  # a copy, so the module's dataset card keeps its own utility record
    shutil.copytree(out, pooled)
    utility(utility_config(root, f"dataset={pooled}", "utility.protocols=[synthetic]", f"utility.extra_datasets=[{other}]"))
    summary = json.loads((pooled / "synthset.json").read_text())["utility"]
    assert {p["name"]: p["num_synthetic"] for p in summary["protocols"]} == {"real": 0, "synthetic": 160}
    assert [extra["dataset"] for extra in summary["extra_datasets"]] == [str(other)]
    assert f"pooled with those of `{other}`" in (pooled / "README.md").read_text()
    parent = MlflowClient(tracking_uri_for(root)).get_run(summary["run_id"])
    assert parent.data.params["extra_datasets"] == str(other)

    other_card = json.loads((other / "synthset.json").read_text())
    other_card["source"]["data_config"]["fraction"] = 0.5  # a generator of half the data: other leakage, other splits
    (other / "synthset.json").write_text(json.dumps(other_card))
    with pytest.raises(SynthsetError, match=r"utility.extra_datasets: .*vae was generated from other real data .*fraction"):
        utility(utility_config(root, f"dataset={pooled}", f"utility.extra_datasets=[{other}]"))


def test_missing_source_data_is_named(dataset, tmp_path: Path) -> None:
    import shutil

    root, out = dataset
    moved = Path(shutil.copytree(out, tmp_path / "moved"))
    card = json.loads((moved / "synthset.json").read_text())
    card["source"]["data_config"]["source"] = {"kind": "folder", "path": str(tmp_path / "gone")}
    (moved / "synthset.json").write_text(json.dumps(card))
    with pytest.raises(SynthsetError, match=r"the source data of dataset=.*moved \('digits', .*gone.*\) cannot be loaded"):
        utility(utility_config(root, f"dataset={moved}"))


@pytest.mark.parametrize("fractions", ["[0.0]", "[1.5]", "[-0.1,0.5]"])
def test_fractions_outside_unit_interval_are_refused(dataset, fractions: str) -> None:
    root, out = dataset
    with pytest.raises(SynthsetError, match=r"utility.real_fractions contains .* outside \(0, 1\]"):
        utility(utility_config(root, f"dataset={out}", f"utility.real_fractions={fractions}"))


def test_unlabeled_dataset_gets_the_class_histogram_instead_of_cas(root: Path) -> None:
    from synthset.pipelines.train import run_training
    from tests.conftest import FAST_TRAIN

    run_id = run_training(compose_config("train", [*FAST_TRAIN, "model=dcgan", "trainer.max_steps=10"], root)).run_id
    out = generate(compose_config("generate", [f"run_id={run_id}", "num_samples=60", "format=imagefolder", "progress=false",
                                               "card.eval_samples=0", "memorization.enabled=false", f"out={root / 'unlabeled'}"], root))
    accuracy = utility(utility_config(root, f"dataset={out}", "utility.real_fractions=[0.1]"))
    assert list(accuracy) == ["real"]  # nothing to train on without labels
    histogram = json.loads((out / "synthset.json").read_text())["utility"]["class_histogram"]
    assert sum(histogram["counts"].values()) == 60
    # An untrained-looking generator piles its samples into few classes: the entropy says so.
    assert histogram["normalized_entropy"] < 0.9 and histogram["classes_under_1_percent"]
    assert "| class | samples |" in (out / "README.md").read_text()


@pytest.mark.slow
def test_reference_classifier_reaches_92_percent_on_fashion_mnist(tmp_path: Path) -> None:
    """The `real` protocol with the default recipe (augmentation, the whole budget, best weights on val) on the Debian
    Fashion-MNIST files."""
    from synthset.data import FashionMNISTSource, ImageDataModule
    from synthset.utility.protocols import Protocol
    from synthset.utility.scoring import ProtocolTrainer, TrainingSet

    dm = ImageDataModule(FashionMNISTSource(), "fashion_mnist", image_size=32, val_fraction=0.02)
    cfg = compose_config("evaluate", ["task=utility"], tmp_path)
    trainer = ProtocolTrainer.for_datamodule(dm, cfg.utility.steps, cfg.utility.batch_size, tmp_path,
                                             patience=cfg.utility.patience)
    result = trainer.run(Protocol(1.0, synthetic=False), TrainingSet(*dm.split("train")), seeds=[0])
    assert result.mean >= 0.92
