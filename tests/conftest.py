"""Shared fixtures: real Hydra composition of the shipped configs into a temporary output folder."""

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from omegaconf import DictConfig

from synthset.config import compose_config

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _no_ambient_tracking_uri(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests always use their own store, never one set in the developer's shell."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)


FAST_TRAIN = [
    "trainer.max_steps=20",
    "trainer.accelerator=cpu",
    "trainer.enable_progress_bar=false",
    "trainer.log_every_n_steps=5",
    "callbacks.sample_grid.every_n_steps=10",
    "model.width=16",
]


@pytest.fixture
def train_config(tmp_path: Path) -> Callable[..., DictConfig]:
    def make(*overrides: str) -> DictConfig:
        return compose_config("train", [*FAST_TRAIN, *overrides], tmp_path)

    return make


def tracking_uri_for(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'outputs' / 'mlflow.db'}"


def run_cli(script: str, *args: str, cwd: Path, env: dict[str, str] | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    """Run a real entry point (``train.py`` ...) with outputs under ``cwd``."""
    full_env = {**os.environ, "SYNTHSET_ROOT": str(cwd), **(env or {})}
    if "MLFLOW_TRACKING_URI" not in (env or {}):
        full_env.pop("MLFLOW_TRACKING_URI", None)
    return subprocess.run(
        [sys.executable, str(REPO / script), *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
