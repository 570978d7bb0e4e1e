"""Shared fixtures: real Hydra composition of the shipped configs, real MLflow stores, session-scoped runs.

The expensive parts are made once per session and shared: a migrated sqlite store (copied per test),
the cache (fidelity statistics, reference classifiers, utility results), and one trained conditional
run per model. Entry points run in this process (``run_entry``) unless a test needs a fresh interpreter.
"""

import contextlib
import importlib.util
import io
import logging
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from omegaconf import DictConfig

from synthset.config import compose_config

REPO = Path(__file__).resolve().parents[1]

FAST_TRAIN = [
    "trainer.max_steps=20",
    "trainer.accelerator=cpu",
    "trainer.enable_progress_bar=false",
    "trainer.log_every_n_steps=5",
    "callbacks.sample_grid.every_n_steps=10",
    "model.width=16",
]
# Evaluation without TF-Inception: GAN-test and diversity with the (cached) reference classifier.
DOMAIN_EVAL = ["eval.every_n_steps=5", "eval.num_samples=60", "eval.fidelity=false", "eval.monitor=gan_test",
               "metrics.progress=false"]
QUIET = ["metrics.progress=false", "metrics.is_extractor=none"]


# Session-scoped runs that many tests read. `make test` runs the suite on one single-threaded worker per core
# (pytest-xdist, `--dist loadgroup`): every test that reads one of these goes to the same worker, so each is made once.
SHARED_RUNS = ("session_runs", "learned_run", "readme_project")


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook reads the groups
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        shared = [name for name in SHARED_RUNS if name in getattr(item, "fixturenames", ())]
        if len(shared) > 1:
            raise pytest.UsageError(f"{item.nodeid} reads {shared}: one group per test; merge their groups here.")
        if shared:
            item.add_marker(pytest.mark.xdist_group(shared[0]))


def pytest_collection_finish(session: pytest.Session) -> None:
    # An xdist worker under `--dist loadgroup` tags each grouped test's node id; untagged, each worker would
    # make every shared run again, silently (pytest-xdist#1386 with pytest 9.2).
    grouped = [item for item in session.items if item.get_closest_marker("xdist_group")]
    if getattr(session.config.option, "loadgroup", False) and any("@" not in item.nodeid for item in grouped):
        raise pytest.UsageError("pytest-xdist did not group the tests that share a session run (pytest-xdist#1386); "
                                "install the pinned pytest with `pip install -e '.[dev]'`.")


@pytest.fixture(autouse=True)
def _no_ambient_tracking_uri(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests always use their own store, never one set in the developer's shell."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)


@pytest.fixture(scope="session", autouse=True)
def session_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One cache for the session: reference statistics and classifiers are computed once.

    Under pytest-xdist the workers share it (the folder above each worker's own temporary root): the reference
    classifier is trained under a file lock and every cached file is written atomically.
    """
    base = tmp_path_factory.getbasetemp()
    cache = base.parent / "shared-cache" if os.environ.get("PYTEST_XDIST_WORKER") else base / "cache"
    cache.mkdir(exist_ok=True)
    os.environ["SYNTHSET_CACHE"] = str(cache)
    return cache


@pytest.fixture(scope="session")
def store_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty, fully migrated sqlite store: copying it skips MLflow's migrations in every test."""
    from synthset.tracking.store import ensure_store

    path = tmp_path_factory.mktemp("store") / "mlflow.db"
    ensure_store(f"sqlite:///{path}")
    return path


def with_store(root: Path, template: Path) -> Path:
    (root / "outputs").mkdir(parents=True, exist_ok=True)
    shutil.copy(template, root / "outputs" / "mlflow.db")
    return root


@pytest.fixture
def root(tmp_path: Path, store_template: Path) -> Path:
    """A project root with a ready store under ``outputs/``."""
    return with_store(tmp_path, store_template)


@pytest.fixture
def train_config(root: Path) -> Callable[..., DictConfig]:
    def make(*overrides: str) -> DictConfig:
        return compose_config("train", [*FAST_TRAIN, *overrides], root)

    return make


def tracking_uri_for(root: Path) -> str:
    return f"sqlite:///{root / 'outputs' / 'mlflow.db'}"


@dataclass
class SessionRuns:
    """One tiny conditional run per model in one store, each evaluated on val (domain metrics)."""

    root: Path
    run_ids: dict[str, str]
    checkpoints: dict[str, Path]


@pytest.fixture(scope="session")
def session_runs(tmp_path_factory: pytest.TempPathFactory, store_template: Path) -> SessionRuns:
    from synthset.pipelines.train import run_training

    root = with_store(tmp_path_factory.mktemp("session-runs"), store_template)
    run_ids, checkpoints = {}, {}
    for model in ("dcgan", "wgan", "vae"):
        cfg = compose_config("train", [*FAST_TRAIN, *DOMAIN_EVAL, f"model={model}", "model.conditional=true",
                                       f"logger.run_name={model}-session"], root)
        cfg.paths.run_dir = str(root / "outputs" / "runs" / model)
        run_ids[model] = run_training(cfg).run_id
        checkpoints[model] = Path(cfg.paths.run_dir) / "checkpoints" / "last.ckpt"
    return SessionRuns(root, run_ids, checkpoints)


# ---- entry points ------------------------------------------------------------------------------------------------

@dataclass
class EntryResult:
    returncode: int
    stdout: str
    stderr: str


def load_entry(script: str):
    spec = importlib.util.spec_from_file_location(f"synthset_entry_{Path(script).stem}", REPO / script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    task = module.main
    while hasattr(task, "__wrapped__"):
        task = task.__wrapped__
    task.__module__ = "__main__"  # Hydra finds conf/ beside the script, as when the script is run directly
    return module


def run_entry(script: str, *args: str, root: Path, env: dict[str, str] | None = None) -> EntryResult:
    """Run ``train.py`` / ``generate.py`` / ``evaluate.py`` as the CLI does, in this process (no interpreter start-up).

    The real ``preflight`` and Hydra ``main`` run with ``sys.argv`` set; the exit code is what ``sys.exit`` was given.
    """
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig

    module = load_entry(script)
    saved_argv, saved_env, saved_handlers = sys.argv, dict(os.environ), list(logging.getLogger().handlers)
    out, err = io.StringIO(), io.StringIO()
    sys.argv = [str(REPO / script), *args]
    os.environ.update({"SYNTHSET_ROOT": str(root), **(env or {})})
    code = 0
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            module.preflight(list(args), config_name=Path(script).stem)
            module.main()
    except SystemExit as stop:
        code = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
    finally:
        sys.argv = saved_argv
        os.environ.clear()
        os.environ.update(saved_env)
        logging.getLogger().handlers[:] = saved_handlers
        GlobalHydra.instance().clear()
        HydraConfig.instance().cfg = None  # a finished app's config must not look like the next caller's (sweep checks)
    return EntryResult(code, out.getvalue(), err.getvalue())


def run_cli(script: str, *args: str, cwd: Path, env: dict[str, str] | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    """Run a real entry point in a fresh interpreter (for kills, torchrun, launchers), outputs under ``cwd``."""
    full_env = {**os.environ, "SYNTHSET_ROOT": str(cwd), **(env or {})}
    if "MLFLOW_TRACKING_URI" not in (env or {}):
        full_env.pop("MLFLOW_TRACKING_URI", None)
    return subprocess.run([sys.executable, str(REPO / script), *args], cwd=cwd, env=full_env, capture_output=True,
                          text=True, timeout=timeout)


def files_under(folder: Path) -> dict[str, tuple[int, int]]:
    """Every file (size, mtime) and folder: comparing two snapshots shows anything created or changed.

    A folder's own mtime is left out: creating and removing an empty folder inside it is not a change.
    """
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns) if p.is_file() else (-1, 0)
            for p in sorted(folder.rglob("*"))}


# A conditional GAN that has really learned digits: the quickstart recipe at a test-sized budget.
LEARNED = ["experiment=quickstart", "trainer.max_steps=4000", "trainer.enable_progress_bar=false",
           "callbacks.sample_grid.every_n_steps=100000", "eval.every_n_steps=0", "logger.run_name=learned"]


@pytest.fixture(scope="session")
def learned_run(tmp_path_factory: pytest.TempPathFactory, store_template: Path) -> tuple[Path, str]:
    from synthset.pipelines.train import run_training

    root = with_store(tmp_path_factory.mktemp("learned"), store_template)
    cfg = compose_config("train", LEARNED, root)
    cfg.paths.run_dir = str(root / "outputs" / "runs" / "learned")
    return root, run_training(cfg).run_id


@pytest.fixture(scope="session")
def readme_project(tmp_path_factory: pytest.TempPathFactory, store_template: Path):
    """One project where every README command line ran, in order: (root, outcomes)."""
    from tests.readme_commands import run_readme_commands

    root = with_store(tmp_path_factory.mktemp("readme-project"), store_template)
    return root, run_readme_commands(root)
