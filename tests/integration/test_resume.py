"""SIGKILL a real training process after a checkpoint, resume it, and check the MLflow run."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch
from mlflow.tracking import MlflowClient

from tests.conftest import REPO, run_cli, tracking_uri_for

ARGS = [
    "model=vae",
    "model.width=16",
    "trainer.log_every_n_steps=5",
    "trainer.enable_progress_bar=false",
    "callbacks.model_checkpoint.every_n_train_steps=50",
    "callbacks.sample_grid.every_n_steps=1000",
]


def wait_for_checkpoint(root: Path, proc: subprocess.Popen, timeout: float = 240) -> Path:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = list(root.glob("outputs/runs/*/*/checkpoints/last.ckpt"))
        if found:
            return found[0]
        assert proc.poll() is None, f"training exited early: {proc.stderr.read()}"
        time.sleep(0.2)
    raise AssertionError("no checkpoint appeared")


def max_logged_step(client: MlflowClient) -> int:
    experiment = client.get_experiment_by_name("synthset")
    runs = client.search_runs([experiment.experiment_id]) if experiment else []
    history = client.get_metric_history(runs[0].info.run_id, "train/loss") if runs else []
    return max((m.step for m in history), default=-1)


def test_resume_after_sigkill_continues_the_same_run_without_duplicate_steps(tmp_path: Path) -> None:
    env = {**os.environ, "SYNTHSET_ROOT": str(tmp_path)}
    env.pop("MLFLOW_TRACKING_URI", None)
    proc = subprocess.Popen(
        [sys.executable, str(REPO / "train.py"), *ARGS, "trainer.max_steps=100000"],
        cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    client = MlflowClient(tracking_uri_for(tmp_path))
    try:
        checkpoint = wait_for_checkpoint(tmp_path, proc)
        # Kill once steps past the checkpoint are logged, so they get computed twice.
        while max_logged_step(client) < 60 and proc.poll() is None:
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()

    saved_step = torch.load(checkpoint, map_location="cpu", weights_only=True)["global_step"]
    (run,) = client.search_runs([client.get_experiment_by_name("synthset").experiment_id])
    logged_before = max(m.step for m in client.get_metric_history(run.info.run_id, "train/loss"))
    assert run.info.status == "RUNNING" and logged_before > saved_step

    target = logged_before + 40
    result = run_cli("train.py", *ARGS, f"trainer.max_steps={target}", "resume=last", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert run.info.run_id in result.stdout

    runs = client.search_runs([client.get_experiment_by_name("synthset").experiment_id])
    assert [r.info.run_id for r in runs] == [run.info.run_id]  # the same run, not a new one
    assert runs[0].info.status == "FINISHED"
    steps = [m.step for m in client.get_metric_history(run.info.run_id, "train/loss")]
    assert len(steps) == len(set(steps)), "a step was logged twice"
    assert max(steps) >= target - 5
    final = torch.load(checkpoint, map_location="cpu", weights_only=True)
    assert final["global_step"] == target  # continued from saved_step, not restarted from 0
    assert "RNGStateCallback" in str(final["callbacks"].keys())
