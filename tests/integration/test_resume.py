"""SIGKILL a real training process (evaluation on), resume it, and check the MLflow run loses and repeats nothing."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from mlflow.tracking import MlflowClient

from tests.conftest import FAST_TRAIN, REPO, run_entry, tracking_uri_for

ARGS = [
    "model=vae",
    "model.conditional=true",
    "model.width=16",
    "trainer.log_every_n_steps=5",
    "trainer.enable_progress_bar=false",
    "callbacks.checkpoints.every_n_train_steps=50",
    "callbacks.sample_grid.every_n_steps=1000",
    # Evaluation on: GAN-test every 20 generator (= optimizer) steps with the reference classifier.
    "eval.every_n_steps=20", "eval.num_samples=40", "eval.fidelity=false", "eval.monitor=gan_test",
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


def history(client: MlflowClient, key: str) -> list[int]:
    experiment = client.get_experiment_by_name("synthset")
    runs = client.search_runs([experiment.experiment_id]) if experiment else []
    return [m.step for m in client.get_metric_history(runs[0].info.run_id, key)] if runs else []


def kill_after(root: Path, proc: subprocess.Popen, client: MlflowClient, train_step: int, eval_step: int,
               between_checkpoints: bool = False) -> Path:
    """SIGKILL ``proc`` once the run holds train/loss and eval/val/gan_test at (or past) these steps.

    ``between_checkpoints``: also wait until the newest train and eval steps both lie past the newest 50-step
    checkpoint, well before the next one, so the kill cannot land before a step past the checkpoint is logged.
    """
    def ready() -> bool:
        train = max(history(client, "train/loss"), default=0)
        evaluated = max(history(client, "eval/val/gan_test"), default=0)
        newest_checkpoint = train - train % 50
        inside = evaluated > newest_checkpoint and 4 <= train % 50 <= 34 if between_checkpoints else True
        return train >= train_step and evaluated >= eval_step and inside

    try:
        checkpoint = wait_for_checkpoint(root, proc)
        while not ready() and proc.poll() is None:
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    return checkpoint


# flush_every_s=0 writes each value at once, so steps past the checkpoint are in the run and computed twice;
# with writes held (1e6 s: only before checkpoints) they die with the process and are computed once more.
@pytest.mark.parametrize("flush_every_s", [0, 1e6])
def test_resume_after_sigkill_with_evaluation_on_loses_and_repeats_nothing(root: Path, flush_every_s: float) -> None:
    args = [*ARGS, f"logger.flush_every_s={flush_every_s}"]
    env = {**os.environ, "SYNTHSET_ROOT": str(root)}
    env.pop("MLFLOW_TRACKING_URI", None)
    proc = subprocess.Popen([sys.executable, str(REPO / "train.py"), *args, "trainer.max_steps=100000"],
                            cwd=root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    client = MlflowClient(tracking_uri_for(root))
    # Held writes appear only with a checkpoint: wait for the second one (step 100).
    checkpoint = kill_after(root, proc, client, *((70, 60) if flush_every_s == 0 else (95, 80)),
                            between_checkpoints=flush_every_s == 0)

    saved_step = torch.load(checkpoint, map_location="cpu", weights_only=True)["global_step"]
    (run,) = client.search_runs([client.get_experiment_by_name("synthset").experiment_id])
    train_before, eval_before = history(client, "train/loss"), history(client, "eval/val/gan_test")
    assert run.info.status == "RUNNING"
    if flush_every_s == 0:
        assert max(train_before) > saved_step and max(eval_before) > saved_step
    else:  # everything up to the checkpoint was written before it
        assert max(train_before) >= saved_step - 1, (saved_step, train_before)

    target = max(train_before) + 40
    result = run_entry("train.py", *args, f"trainer.max_steps={target}", "resume=last", root=root)
    assert result.returncode == 0, result.stderr[-3000:]
    assert run.info.run_id in result.stdout

    runs = client.search_runs([client.get_experiment_by_name("synthset").experiment_id])
    assert [r.info.run_id for r in runs] == [run.info.run_id] and runs[0].info.status == "FINISHED"
    train_steps, eval_steps = history(client, "train/loss"), history(client, "eval/val/gan_test")
    assert len(train_steps) == len(set(train_steps)) and len(eval_steps) == len(set(eval_steps)), "a step was logged twice"
    # Every logged training step is there (one per log_every_n_steps=5), also those around the kill.
    ordered = sorted(train_steps)
    assert ordered[0] <= 5 and all(b - a <= 5 for a, b in zip(ordered, ordered[1:], strict=False)), ordered
    assert max(ordered) >= target - 5 and max(eval_steps) > max(eval_before)  # logging went on after the resume
    final = torch.load(checkpoint, map_location="cpu", weights_only=True)
    assert final["global_step"] == target  # continued from saved_step, not restarted from 0


def test_a_damaged_last_checkpoint_falls_back_to_the_previous_one(root: Path) -> None:
    args = [*FAST_TRAIN, "model=vae", "callbacks.checkpoints.every_n_train_steps=4", "trainer.max_steps=8"]
    assert run_entry("train.py", *args, root=root).returncode == 0
    (last,) = root.glob("outputs/runs/*/*/checkpoints/last.ckpt")
    previous = last.with_name("last.ckpt.prev")
    assert torch.load(previous, weights_only=True)["global_step"] < 8
    last.write_bytes(last.read_bytes()[:1000])  # cut short, as a failed copy would
    resumed = run_entry("train.py", *[a for a in args if "max_steps" not in a], "trainer.max_steps=12", "resume=last",
                        root=root)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "cannot be read (damaged or cut short); resuming from the checkpoint it replaced" in resumed.stdout
    assert torch.load(last, weights_only=True)["global_step"] == 12


def test_resume_of_another_model_is_refused_in_one_sentence(root: Path) -> None:
    assert run_entry("train.py", *FAST_TRAIN, "model=vae", "trainer.max_steps=4", root=root).returncode == 0
    refused = run_entry("train.py", *FAST_TRAIN, "model=dcgan", "resume=last", root=root)
    assert refused.returncode == 2
    assert "resume=... points at a run of model 'vae', but this command trains model=dcgan" in refused.stderr
    assert "Traceback" not in refused.stderr and "state_dict" not in refused.stderr


def test_resume_keeps_the_runs_own_schedule_and_the_command_line_wins(root: Path) -> None:
    args = [*FAST_TRAIN, "model=vae", "seed=7", "callbacks.sample_grid.every_n_steps=3", "trainer.max_steps=8"]
    assert run_entry("train.py", *args, root=root).returncode == 0
    (last,) = root.glob("outputs/runs/*/*/checkpoints/last.ckpt")
    resumed = run_entry("train.py", "trainer.accelerator=cpu", "trainer.enable_progress_bar=false",
                        "trainer.max_steps=12", "resume=last", root=root)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    state = torch.load(last, weights_only=True)
    record = state["synthset_run_config"]
    assert state["global_step"] == 12 and record["trainer"]["max_steps"] == 12  # the command line wins
    assert record["seed"] == 7 and record["callbacks"]["sample_grid"]["every_n_steps"] == 3  # the run's own

    record["trainer"]["max_steps"] = "forever"  # a record altered by hand is refused, not trusted
    torch.save(state, last)
    refused = run_entry("train.py", "trainer.accelerator=cpu", "resume=last", root=root)
    assert refused.returncode == 2, refused.stderr[-2000:]
    assert "reads trainer.max_steps='forever' from the run's record, but synthset expects an integer" in refused.stderr
