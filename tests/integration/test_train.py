"""Real Hydra composition + real Lightning Trainer + real MLflow sqlite store."""

from pathlib import Path

import torch
from mlflow.tracking import MlflowClient
from PIL import Image

from synthset.pipelines.train import train
from synthset.tracking.runs import RUN_DIR_TAG
from tests.conftest import DOMAIN_EVAL, tracking_uri_for


def test_every_model_trains_and_logs_a_run(session_runs) -> None:
    client = MlflowClient(tracking_uri_for(session_runs.root))
    for model, run_id in session_runs.run_ids.items():
        run = client.get_run(run_id)
        assert run.info.status == "FINISHED" and run.info.run_name == f"{model}-session"
        assert run.data.params["model/name"] == model and run.data.params["model/conditional"] == "True"
        assert not any("_target_" in key for key in run.data.params)  # runs record data, not code
        assert run.data.tags["model"] == model and run.data.tags["conditional"] == "true"
        assert {"git_commit", "torch_version", "synthset_version", "synthset.test_split"} <= set(run.data.tags)
        loss_key = "train/loss" if model == "vae" else "train/d_loss"
        history = client.get_metric_history(run_id, loss_key)
        assert len(history) >= 2 and all(torch.isfinite(torch.tensor(m.value)) for m in history)
        artifacts = {a.path for a in client.list_artifacts(run_id)}
        assert {"config.yaml", "samples", "checkpoints"} <= artifacts
        assert "checkpoints/last.ckpt" in {a.path for a in client.list_artifacts(run_id, "checkpoints")}
        assert (Path(run.data.tags[RUN_DIR_TAG]) / "checkpoints" / "last.ckpt").is_file()


def test_checkpoints_have_one_writer_and_carry_the_rng_streams(session_runs) -> None:
    folder = session_runs.checkpoints["dcgan"].parent
    # 20 optimizer steps is shorter than the 500-step interval: still one last.ckpt, never last-v1.ckpt.
    assert sorted(p.name for p in folder.glob("*.ckpt")) == ["best.ckpt", "last.ckpt"]
    state = torch.load(folder / "last.ckpt", weights_only=True)
    rng = next(v for k, v in state["callbacks"].items() if "RNGStateCallback" in k)
    assert {"python", "numpy", "torch", "cuda"} <= set(rng)
    assert state["synthset_model"] == "dcgan" and state["global_step"] == 20


def test_sample_grids_are_readable_in_the_ui(session_runs) -> None:
    run_dir = session_runs.checkpoints["vae"].parents[1]
    grid = Image.open(sorted((run_dir / "samples").glob("*.png"))[-1])
    assert grid.size[0] >= 8 * 64 and grid.size[1] >= 10 * 64  # 16 px digits upscaled to >= 64 px, a row per class


def test_an_unconditional_sngan_trains(train_config, root: Path) -> None:
    assert train(train_config("model=sngan", "model.conditional=false")) is None  # no evaluation: nothing to return
    client = MlflowClient(tracking_uri_for(root))
    (run,) = client.search_runs([client.get_experiment_by_name("synthset").experiment_id])
    assert run.data.params["model/spectral_norm"] == "True" and run.data.params["model/loss"] == "hinge"


def test_training_leaves_the_tracking_environment_as_it_found_it(train_config) -> None:
    import os

    train(train_config("model=vae", "trainer.max_steps=2"))
    assert "MLFLOW_TRACKING_URI" not in os.environ  # a later run must not inherit this run's store


def test_evaluation_during_training_leaves_the_trained_weights_as_they_would_be_without_it(train_config, root: Path) -> None:
    # Scoring builds or loads the reference classifier and samples: if any of that drew from the run's random
    # streams, a model would depend on its evaluation schedule and on whether the classifier was cached.
    weights = []
    for every in (0, 2):  # generator steps: 12 optimizer steps are 6 of them, so evaluations at 2 and 4 fall mid-run
        cfg = train_config("model=dcgan", "model.conditional=true", "trainer.max_steps=12", *DOMAIN_EVAL,
                           f"eval.every_n_steps={every}", f"logger.run_name=eval-every-{every}")
        cfg.paths.run_dir = str(root / "outputs" / "runs" / f"eval-every-{every}")
        train(cfg)
        state = torch.load(Path(cfg.paths.run_dir) / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
        weights.append({k: v for k, v in state.items() if k.startswith(("generator.", "discriminator."))})
    assert weights[0].keys() == weights[1].keys() and len(weights[0]) > 10
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
