"""Evaluation during training (metric curve, best checkpoint) and evaluate.py on the finished run."""

from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from synthset.config import compose_config
from synthset.errors import SynthsetError
from synthset.pipelines.evaluate import evaluate
from synthset.pipelines.train import train
from tests.conftest import FAST_TRAIN, run_cli, tracking_uri_for

EVAL = [
    "model=dcgan",
    "model.conditional=true",
    "trainer.max_steps=12",  # 6 generator steps
    "eval.every_n_steps=2",
    "eval.num_samples=20",
    "eval.reference_split=val",  # 72 images: keeps TF-Inception time small on CPU
    "metrics.progress=false",
]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, float]:
    root = tmp_path_factory.mktemp("evaluated")
    fid = train(compose_config("train", [*FAST_TRAIN, *EVAL], root))
    client = MlflowClient(tracking_uri_for(root))
    (run,) = client.search_runs([client.get_experiment_by_name("synthset").experiment_id])
    return root, run.info.run_id, fid


def test_training_logs_a_metric_curve_keeps_best_and_returns_final_fid(trained) -> None:
    root, run_id, fid = trained
    client = MlflowClient(tracking_uri_for(root))
    history = client.get_metric_history(run_id, "eval/fid")
    assert len(history) == 3  # generator steps 2, 4 and 6 (the end)
    assert fid == pytest.approx(history[-1].value)
    assert all(m.value > 0 for m in history)
    for key in ("eval/kid_mean", "eval/kid_std", "eval/precision", "eval/recall", "eval/is_effnet_lite0"):
        assert client.get_metric_history(run_id, key), key
    run = client.get_run(run_id)
    assert run.data.params["eval/num_samples"] == "20" and run.data.params["metrics/fid_extractor"] == "inception-tf-pool3"
    checkpoints = {a.path for a in client.list_artifacts(run_id, "checkpoints")}
    assert {"checkpoints/best.ckpt", "checkpoints/last.ckpt"} <= checkpoints


def test_evaluate_scores_the_best_checkpoint_into_the_same_run(trained) -> None:
    root, run_id, _ = trained
    cfg = compose_config("evaluate", [f"run_id={run_id}", "checkpoint=best", "eval.num_samples=20",
                                      "eval.reference_split=val", "eval.per_class=true", "metrics.progress=false"], root)
    metrics = evaluate(cfg)
    client = MlflowClient(tracking_uri_for(root))
    logged = client.get_run(run_id).data.metrics
    assert logged["eval_best/fid"] == pytest.approx(metrics["fid"])
    assert "eval_best/fid_class/0" in logged and "eval_best/fid_class/9" in logged
    assert "num_samples=20" in client.get_run(run_id).data.tags["eval_best.protocol"]


def test_evaluate_cli_prints_a_table_and_refuses_unknown_runs(trained) -> None:
    root, run_id, _ = trained
    ok = run_cli("evaluate.py", f"run_id={run_id}", "eval.num_samples=10", "eval.reference_split=val",
                 "metrics.is_extractor=none", "metrics.progress=false", cwd=root)
    assert ok.returncode == 0, ok.stderr[-2000:]
    assert "fid" in ok.stdout and "kid_mean" in ok.stdout
    bad = run_cli("evaluate.py", "run_id=0123456789abcdef", cwd=root)
    assert bad.returncode == 2 and "run_id=0123456789abcdef is not a run" in bad.stderr
    assert run_id in bad.stderr  # lists recent runs
    assert "Traceback" not in bad.stderr


def test_run_without_checkpoint_is_refused(tmp_path: Path) -> None:
    client = MlflowClient(tracking_uri_for(tmp_path))
    experiment = client.create_experiment("synthset")
    empty = client.create_run(experiment).info.run_id
    cfg = compose_config("evaluate", [f"run_id={empty}"], tmp_path)
    with pytest.raises(SynthsetError, match=f"run {empty} has no last.ckpt checkpoint"):
        evaluate(cfg)


def test_too_few_samples_is_refused(trained) -> None:
    root, run_id, _ = trained
    cfg = compose_config("evaluate", [f"run_id={run_id}", "eval.num_samples=1"], root)
    with pytest.raises(SynthsetError, match="eval.num_samples=1 is too small"):
        evaluate(cfg)
