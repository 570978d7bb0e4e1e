"""The two cuts in Lightning's per-hook cost keep Lightning's behaviour: a profiler on request, hook names set."""

import pytest
from pytorch_lightning.profilers import SimpleProfiler

from synthset.callbacks.quiet_profiler import QuietProfiler
from synthset.config import compose_config
from synthset.pipelines.train import build_datamodule, build_model, build_trainer


@pytest.mark.parametrize(("overrides", "expected"), [([], QuietProfiler), (["+trainer.profiler=simple"], SimpleProfiler)])
def test_the_quiet_profiler_is_the_default_and_a_real_one_can_be_asked_for(tmp_path, overrides, expected) -> None:
    cfg = compose_config("train", ["trainer.accelerator=cpu", *overrides], tmp_path)
    trainer = build_trainer(cfg, [], tmp_path / "run")
    assert type(trainer.profiler) is expected
    with trainer.profiler.profile("a hook"):
        pass


def test_the_hook_name_lightning_sets_is_a_plain_attribute(tmp_path) -> None:
    cfg = compose_config("train", ["model=dcgan", "model.width=8"], tmp_path)
    model = build_model(cfg, build_datamodule(cfg))
    model._current_fx_name = "training_step"
    assert model._current_fx_name == "training_step"
    assert "_current_fx_name" not in {**model._parameters, **model._buffers, **model._modules}
    model.marker = model.generator  # every other name still goes through nn.Module's bookkeeping
    assert model._modules["marker"] is model.generator
