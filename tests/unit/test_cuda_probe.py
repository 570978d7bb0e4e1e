"""Lightning's NVML-based CUDA check is dropped only where NVML cannot load, and no CUDA answer changes."""

import os

import pytest
import torch

from synthset.cuda_probe import NVML_CHECK_VAR, nvml_loads, skip_unloadable_nvml_check


def test_the_check_is_dropped_exactly_where_nvml_cannot_load(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(NVML_CHECK_VAR, "1")
    assert skip_unloadable_nvml_check() is (not nvml_loads())
    assert (os.environ.get(NVML_CHECK_VAR) == "1") is nvml_loads()


@pytest.mark.parametrize("value", [None, "0", "yes"])
def test_other_settings_are_left_alone(monkeypatch: pytest.MonkeyPatch, value: str | None) -> None:
    if value is None:
        monkeypatch.delenv(NVML_CHECK_VAR, raising=False)
    else:
        monkeypatch.setenv(NVML_CHECK_VAR, value)
    assert skip_unloadable_nvml_check() is False
    assert os.environ.get(NVML_CHECK_VAR) == value


def test_cuda_answers_are_the_same_with_and_without_the_check(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(NVML_CHECK_VAR, "1")
    with_check = (torch.cuda.is_available(), torch.cuda.device_count())
    skip_unloadable_nvml_check()
    assert (torch.cuda.is_available(), torch.cuda.device_count()) == with_check


def test_the_training_trainer_is_built_without_the_unloadable_check(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    from synthset.config import compose_config
    from synthset.pipelines.train import build_trainer

    monkeypatch.setenv(NVML_CHECK_VAR, "1")  # as importing Lightning leaves it
    cfg = compose_config("train", ["trainer.accelerator=cpu"], tmp_path)
    build_trainer(cfg, [], tmp_path / "run")
    assert (os.environ.get(NVML_CHECK_VAR) == "1") is nvml_loads()
