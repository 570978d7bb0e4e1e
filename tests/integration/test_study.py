"""The Fashion-MNIST study's cache: a killed generator run goes on from its checkpoint instead of starting over."""

import importlib.util
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from tests.conftest import FAST_TRAIN, REPO, tracking_uri_for


def load_study():
    spec = importlib.util.spec_from_file_location("synthset_study", REPO / "scripts" / "fashion_mnist_study.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_killed_generator_run_is_resumed_in_the_same_run_not_trained_again(root: Path, monkeypatch) -> None:
    study = load_study()
    monkeypatch.setitem(study.GENERATORS, "tiny", ["model=dcgan", *FAST_TRAIN, "trainer.max_steps=4",
                                                   "eval.every_n_steps=0"])
    first = study.generator_run("tiny", root)
    client = MlflowClient(tracking_uri_for(root))
    client.set_terminated(first, "FAILED")  # what a kill leaves: the run unfinished, its last.ckpt in the run folder
    checkpoint = root / "runs" / "tiny" / "checkpoints" / "last.ckpt"
    written = checkpoint.stat().st_mtime_ns

    assert study.generator_run("tiny", root) == first
    assert client.get_run(first).info.status == "FINISHED"
    experiment = client.get_experiment_by_name("study")
    assert len(client.search_runs([experiment.experiment_id], "attributes.run_name = 'tiny'")) == 1
    assert checkpoint.stat().st_mtime_ns == written  # it was already at max_steps: nothing trained again


@pytest.mark.parametrize(("row", "overrides", "expected"), [
    ("fmnist_cgan", [], (60_000, True)),
    ("ablation:+ema", [], (60_000, False)),  # the ablation's cards skip FID
    ("fmnist_cgan@0.01:16k", ["num_samples=240000", "card.fidelity=false"], (240_000, False)),
])
def test_a_row_s_generation_overrides_replace_the_study_defaults(root: Path, row: str, overrides: list[str],
                                                                expected: tuple[int, bool]) -> None:
    study = load_study()
    cfg = study.compose("generate", study.generation_overrides(row, "some-run", root / "data", overrides), root)
    assert (cfg.num_samples, cfg.card.fidelity) == expected


@pytest.mark.parametrize(("row", "fraction", "overrides", "expected"), [
    ("fmnist_vae", None, [], (3, ["synthetic", "real+synthetic"])),
    ("fmnist_cgan@0.01", 0.01, [], (3, ["real@0.01+synthetic"])),
    ("ablation:+ema", None, [], (1, ["synthetic"])),  # one seed, CAS only
    ("fmnist_vae:agree0.5", None, ["utility.protocols=[synthetic]"], (3, ["synthetic"])),
])
def test_a_row_s_utility_protocols_replace_the_study_defaults(root: Path, row: str, fraction: float | None,
                                                              overrides: list[str], expected: tuple) -> None:
    study = load_study()
    cfg = study.compose("evaluate", study.utility_overrides(row, root / "data", fraction, 3, overrides), root)
    assert (cfg.utility.seeds, list(cfg.utility.protocols)) == expected


def test_rows_keep_the_plateau_stop_they_were_measured_with_unless_they_name_the_whole_budget(root: Path) -> None:
    study = load_study()
    settings = {row: study.compose("evaluate", study.utility_overrides(row, root / "data", None, 3,
                                                                       study.row_plan(row)[1]), root).utility
                for row in ("fmnist_cgan:seed2:pretrain", "fmnist_cgan:seed2:pretrain:full_budget")}
    assert [s.patience for s in settings.values()] == [3, 0]  # the product's default is 0; the study's rows pin 3
    assert all(s.synthetic_use == "pretrain" for s in settings.values())


def test_the_table_shows_every_protocol_a_row_measured_whatever_its_fraction() -> None:
    study = load_study()
    quality = {"fid": 95.8, "gan_test": 0.908, "pixel_std_ratio": 0.77, "class_recall": 0.64}
    result = {"mean": 0.8, "std": 0.01}
    rows = {  # a 1 % generator's CAS-only row and its low-data row; the first also ran the full-data baseline
        "vae@0.01:cas": {"quality": quality, "fraction": 0.01, "training_minutes": 14.6,
                         "utility": {"synthetic": result, "real": {"mean": 0.92, "std": 0.004}}},
        "vae@0.01:pretrain": {"quality": quality, "fraction": 0.01, "training_minutes": 14.6,
                              "utility": {"real@0.01": {"mean": 0.81, "std": 0.005}, "real@0.01+synthetic": result}},
    }
    cas_line, low_line, _, baseline = study.main_table(rows)[2:]
    assert cas_line.split(" | ")[5:9] == ["80.00 ± 1.00 %", "", "", " |"]
    assert low_line.split(" | ")[5:9] == ["", "", "81.00 ± 0.50 %", "80.00 ± 1.00 % |"]
    assert baseline.endswith("92.00 ± 0.40 %.")


def test_an_ensemble_row_takes_half_of_its_images_from_each_trained_member(root: Path) -> None:
    study = load_study()
    for name, (members, _, overrides) in study.ENSEMBLES.items():
        assert study.row_plan(name)[0] == members and len(members) == 2 and set(members) <= set(study.GENERATORS)
        cfg = study.compose("generate", study.generation_overrides(name, "some-run", root / "data", overrides), root)
        assert cfg.num_samples * len(members) == study.SYNTHETIC_IMAGES
