"""Real Hydra composition + real Lightning Trainer + real MLflow sqlite store."""

from pathlib import Path

import pytest
import torch
from mlflow.tracking import MlflowClient

from synthset.errors import SynthsetError
from synthset.pipelines.train import train
from synthset.tracking.runs import RUN_DIR_TAG
from tests.conftest import tracking_uri_for


def only_run(tmp_path: Path):
    client = MlflowClient(tracking_uri_for(tmp_path))
    experiment = client.get_experiment_by_name("synthset")
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == 1
    return client, runs[0]


@pytest.mark.parametrize("conditional", [True, False])
@pytest.mark.parametrize("model", ["dcgan", "wgan", "vae"])
def test_every_model_trains_and_logs_a_run(train_config, tmp_path: Path, model: str, conditional: bool) -> None:
    cfg = train_config(f"model={model}", f"model.conditional={str(conditional).lower()}")
    assert train(cfg) is None  # no evaluation configured, so no FID to return

    client, run = only_run(tmp_path)
    assert run.info.run_name.startswith(f"{model}-digits-")
    assert run.data.params["model/_target_"].endswith({"dcgan": "DCGAN", "wgan": "WGANGP", "vae": "BetaVAE"}[model])
    assert run.data.params["model/conditional"] == str(conditional)
    assert run.data.tags["model"] == model and run.data.tags["conditional"] == str(conditional).lower()
    assert {"git_commit", "torch_version", "synthset_version"} <= set(run.data.tags)
    loss_key = "train/loss" if model == "vae" else "train/d_loss"
    history = client.get_metric_history(run.info.run_id, loss_key)
    assert len(history) >= 2 and all(torch.isfinite(torch.tensor(m.value)) for m in history)
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"config.yaml", "samples", "checkpoints"} <= artifacts
    grids = [a.path for a in client.list_artifacts(run.info.run_id, "samples")]
    assert grids and all(p.endswith(".png") for p in grids)
    assert "checkpoints/last.ckpt" in {a.path for a in client.list_artifacts(run.info.run_id, "checkpoints")}
    assert (Path(run.data.tags[RUN_DIR_TAG]) / "checkpoints" / "last.ckpt").is_file()


def test_training_leaves_the_tracking_environment_as_it_found_it(train_config) -> None:
    import os

    train(train_config("model=vae", "trainer.max_steps=2"))
    assert "MLFLOW_TRACKING_URI" not in os.environ  # a later run must not inherit this run's store


def test_fashion_mnist_trains_from_debian_files_offline(train_config, tmp_path: Path) -> None:
    cfg = train_config("data=fashion_mnist", "model=vae", "trainer.max_steps=5", "logger=none")
    train(cfg)
    assert (tmp_path / "outputs" / "run" / "checkpoints" / "last.ckpt").is_file()


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["trainer.max_steps=0"], "trainer.max_steps=0 must be a positive integer"),
        (["trainer.max_steps=-5"], "trainer.max_steps=-5"),
        (["data.batch_size=0"], "data.batch_size=0 must be a positive integer"),
        (["data.image_size=24"], "data.image_size=24 is not supported"),
        (["data=cifar10"], "data.download=true"),
        (["data=folder"], "data=folder needs data.path="),
        (["data.batch_size=5000"], "larger than the 1365 training images"),
    ],
)
def test_bad_input_raises_one_clear_sentence(train_config, overrides: list[str], message: str) -> None:
    with pytest.raises(SynthsetError, match=message):
        train(train_config(*overrides))


def test_unreachable_tracking_server_is_named(train_config, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")
    with pytest.raises(SynthsetError, match=r"MLFLOW_TRACKING_URI=http://127.0.0.1:9 is unreachable"):
        train(train_config())
