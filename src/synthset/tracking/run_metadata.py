"""What every run records about itself: tags, flattened config, config YAML."""

import os
import socket
import subprocess
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

import synthset
from synthset.plaindata import without_hydra_keys
from synthset.tracking.runs import KIND_TAG, RUN_DIR_TAG
from synthset.tracking.sweep import PARENT_TAG, parent_run_of_this_job


def git_commit(repo_dir: Path | None = None) -> str:
    """The checkout's commit (with ``-dirty`` when modified), or ``unknown`` outside git."""
    try:
        cwd = str(repo_dir or Path(__file__).resolve().parent)
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=5, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd, capture_output=True, text=True, timeout=5).stdout.strip()
        return commit + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def run_tags(cfg: DictConfig, run_dir: Path) -> dict[str, str]:
    parent = parent_run_of_this_job()  # a sweep's job is a child of the sweep's run
    return ({PARENT_TAG: parent} if parent else {}) | {
        "model": str(cfg.model.name),
        "data": str(cfg.data.name),
        "conditional": str(bool(cfg.model.get("conditional", False))).lower(),
        "git_commit": git_commit(),
        "synthset_version": synthset.__version__,
        "torch_version": torch.__version__,
        RUN_DIR_TAG: str(run_dir),
        KIND_TAG: "train",
        "synthset.host": socket.gethostname(),
        "synthset.pid": str(os.getpid()),  # which process ran it (parallel sweeps, SLURM jobs)
        "synthset.torch_threads": str(torch.get_num_threads()),
    }


def config_as_params(cfg: DictConfig) -> dict[str, Any]:
    """The resolved config as plain data without Hydra's ``_target_`` keys (Lightning flattens it to ``a/b``).

    This is what runs record and checkpoints carry: it describes the run and is never instantiated.
    """
    container = OmegaConf.to_container(cfg, resolve=True)
    container.pop("hydra", None)
    return without_hydra_keys(container)
