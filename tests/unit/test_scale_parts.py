"""The small parts behind scale-out: sweep refusals, replica digests, distributed manifests."""

from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from synthset.callbacks.replica_check import weights_digest
from synthset.errors import SynthsetError
from synthset.generation.runner import MANIFEST, Manifest, manifest_part
from synthset.tracking.sweep import check_sweepable, subprocess_ddp, sweep_params


@pytest.mark.parametrize(
    ("strategy", "devices", "relaunches"),
    [
        ("ddp_find_unused_parameters_true", 2, True),
        ("ddp", "auto", True),
        ("ddp", 1, False),
        ("ddp_spawn_find_unused_parameters_true", 2, False),
        ("ddp_fork", 4, False),
        ("auto", 2, False),
    ],
)
def test_only_script_relaunching_ddp_counts_as_subprocess_ddp(strategy, devices, relaunches: bool) -> None:
    assert subprocess_ddp(OmegaConf.create({"strategy": strategy, "devices": devices})) is relaunches


def config(strategy: str = "auto", every_n_steps: int = 500):
    return OmegaConf.create({"trainer": {"strategy": strategy, "devices": 2}, "eval": {"every_n_steps": every_n_steps}})


def test_local_multirun_with_ddp_is_refused_but_submitit_and_spawn_pass() -> None:
    with pytest.raises(SynthsetError, match=r"hydra/launcher=joblib.*trainer=ddp_spawn"):
        check_sweepable(config("ddp_find_unused_parameters_true"), {"hydra/launcher": "joblib"})
    check_sweepable(config("ddp_find_unused_parameters_true"), {"hydra/launcher": "submitit_slurm"})
    check_sweepable(config("ddp_spawn_find_unused_parameters_true"), {"hydra/launcher": "basic"})


def test_optuna_needs_evaluation() -> None:
    with pytest.raises(SynthsetError, match="eval.every_n_steps=0 turns evaluation off"):
        check_sweepable(config(every_n_steps=0), {"hydra/sweeper": "optuna"})
    check_sweepable(config(every_n_steps=0), {"hydra/sweeper": "basic"})


def test_sweep_overrides_become_params() -> None:
    assert sweep_params(["model=dcgan,wgan", "+trainer.profiler=simple", "data=digits"]) == {
        "model": "dcgan,wgan", "trainer.profiler": "simple", "data": "digits"}


def test_weights_digest_sees_any_changed_weight() -> None:
    torch.manual_seed(0)
    a, b = torch.nn.Linear(4, 3), torch.nn.Linear(4, 3)
    b.load_state_dict(a.state_dict())
    assert weights_digest(a) == weights_digest(b)
    with torch.no_grad():
        b.weight[1, 2] += 1e-3
    assert weights_digest(a) != weights_digest(b)


def test_process_parts_merge_into_the_manifest(tmp_path: Path) -> None:
    Manifest(spec={}, digest="d1", shards={"0": {"count": 2}}).save(tmp_path / MANIFEST)
    Manifest(spec={}, digest="d1", shards={"1": {"count": 2}}).save(tmp_path / manifest_part(1, 2))
    Manifest(spec={}, digest="other", shards={"2": {"count": 2}}).save(tmp_path / manifest_part(0, 2))
    merged = Manifest.load_merged(tmp_path)
    assert sorted(merged.shards) == ["0", "1"]  # a part of another spec is ignored
    assert manifest_part(0, 1) == MANIFEST
