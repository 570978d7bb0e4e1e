"""evaluate.py reports on the test split, with its protocol, into the run it scores."""

from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from synthset.config import compose_config
from synthset.errors import SynthsetError
from synthset.pipelines.evaluate import evaluate
from tests.conftest import QUIET, run_entry, tracking_uri_for


def test_training_logs_a_metric_curve_on_val_and_keeps_the_best(session_runs) -> None:
    client = MlflowClient(tracking_uri_for(session_runs.root))
    run_id = session_runs.run_ids["dcgan"]
    history = client.get_metric_history(run_id, "eval/val/gan_test")
    assert len(history) == 2  # generator steps 5 and 10 (the end)
    for key in ("eval/val/pixel_std_ratio", "eval/val/class_coverage", "eval/val/class_recall"):
        assert client.get_metric_history(run_id, key), key
    assert {"checkpoints/best.ckpt", "checkpoints/last.ckpt"} <= {a.path for a in client.list_artifacts(run_id, "checkpoints")}


def test_evaluate_reports_on_test_into_the_same_run_with_its_protocol(session_runs) -> None:
    root, run_id = session_runs.root, session_runs.run_ids["dcgan"]
    # The cheaper extractor for this plumbing test: its metrics carry its name, never "fid".
    cfg = compose_config("evaluate", [f"run_id={run_id}", "checkpoint=best", "eval.num_samples=20", "eval.per_class=true",
                                      "eval.reference_samples=40", *QUIET, "metrics.precision_recall=false",
                                      "metrics.fid_extractor=effnet-lite0"], root)
    metrics = evaluate(cfg)
    logged = MlflowClient(tracking_uri_for(root)).get_run(run_id)
    assert logged.data.metrics["eval_best/test/fd_effnet_lite0"] == pytest.approx(metrics["fd_effnet_lite0"])
    assert logged.data.metrics["eval_best/test/gan_test"] == pytest.approx(metrics["gan_test"])
    assert "eval_best/test/fd_effnet_lite0_class/0" in logged.data.metrics
    assert "eval_best/test/gan_test_class/9" in logged.data.metrics and not any("/fid" in k for k in metrics)
    protocol = logged.data.tags["eval_best.test.protocol"]
    assert protocol.startswith("digits/test: 20 generated vs 40 real, 16 px, effnet-lite0") and "best.ckpt" in protocol


def test_a_lower_temperature_narrows_the_draws_and_logs_beside_the_prior_under_its_protocol(session_runs) -> None:
    root, run_id = session_runs.root, session_runs.run_ids["dcgan"]
    common = [f"run_id={run_id}", "checkpoint=best", "eval.num_samples=200", "eval.fidelity=false", *QUIET]
    prior = evaluate(compose_config("evaluate", common, root))
    cool = evaluate(compose_config("evaluate", [*common, "eval.temperature=0.25"], root))
    assert cool["pixel_std_ratio"] < prior["pixel_std_ratio"]  # latents nearer the mean: less spread within a class
    logged = MlflowClient(tracking_uri_for(root)).get_run(run_id)
    assert logged.data.metrics["eval_best/test_t0.25/pixel_std_ratio"] == pytest.approx(cool["pixel_std_ratio"])
    assert "latents at temperature 0.25" in logged.data.tags["eval_best.test_t0.25.protocol"]
    assert "temperature" not in logged.data.tags["eval_best.test.protocol"]


def test_evaluate_cli_prints_a_flagged_table_and_names_unknown_runs(session_runs) -> None:
    root, run_id = session_runs.root, session_runs.run_ids["vae"]
    ok = run_entry("evaluate.py", f"run_id={run_id}", "eval.num_samples=20", "eval.reference_samples=40", *QUIET,
                   "metrics.precision_recall=false", root=root)
    assert ok.returncode == 0, ok.stderr[-2000:]
    assert "small-sample" in ok.stdout and "kid_mean" in ok.stdout and "digits/test" in ok.stdout
    bad = run_entry("evaluate.py", "run_id=0123456789abcdef", root=root)
    assert bad.returncode == 2 and "run_id=0123456789abcdef is not a run" in bad.stderr
    assert "vae-session" in bad.stderr  # lists recent runs


def test_run_without_checkpoint_is_refused(root: Path) -> None:
    client = MlflowClient(tracking_uri_for(root))
    experiment = client.create_experiment("synthset")
    empty = client.create_run(experiment).info.run_id
    cfg = compose_config("evaluate", [f"run_id={empty}", "checkpoint=last"], root)
    with pytest.raises(SynthsetError, match=f"run {empty} has no last.ckpt checkpoint"):
        evaluate(cfg)
