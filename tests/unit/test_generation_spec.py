"""The generation spec: what names a dataset's bytes, how it reads back, and what it refuses."""

import pytest

from synthset.errors import SynthsetError
from synthset.generation.spec import GenerationSpec

BASE = dict(source_run_id=None, checkpoint_sha256="0" * 64, format="npz", num_samples=10, shard_size=5, seed=0,
            labels="balanced")


def test_a_spec_reads_back_from_its_dict_and_the_default_temperature_leaves_older_digests_alone() -> None:
    plain, hot = GenerationSpec(**BASE), GenerationSpec(**BASE, temperature=1.25)
    assert "temperature" not in plain.to_dict()  # a dataset written before the option keeps its digest (resume, caches)
    assert GenerationSpec(**plain.to_dict()) == plain and GenerationSpec(**hot.to_dict()) == hot
    assert hot.to_dict()["temperature"] == 1.25 and hot.digest() != plain.digest()


@pytest.mark.parametrize("bad", [0, -1.0, 11.0, "hot", True])
def test_a_temperature_outside_its_range_is_refused_by_name(bad) -> None:
    with pytest.raises(SynthsetError, match=rf"temperature={bad!r} must be a number in \(0, 10\]"):
        GenerationSpec(**BASE, temperature=bad)


def test_the_discriminator_keeps_the_best_draws_of_an_unconditional_gan_in_the_order_drawn() -> None:
    import torch

    from synthset.data.datamodule import to_signed_unit
    from synthset.generation.runner import ShardedGeneration
    from synthset.models import MODEL_REGISTRY

    torch.manual_seed(0)
    model = MODEL_REGISTRY["dcgan"](channels=1, image_size=16, width=8).eval()
    spec = GenerationSpec(**BASE, top_k=0.5, top_k_by="discriminator")
    assert spec.to_dict()["top_k_by"] == "discriminator" and GenerationSpec(**spec.to_dict()) == spec
    generation = ShardedGeneration(model, spec, None, writer=None, out=None)
    kept, drawn = generation.first_draw(None, 10, torch.Generator().manual_seed(7), filtered=True)
    candidates = generation.draw(None, 20, torch.Generator().manual_seed(7))  # the same stream, unjudged
    best = model.discriminator_scores(to_signed_unit(candidates), None).argsort(descending=True)[:10].sort().values
    assert drawn == 20 and torch.equal(kept, candidates[best])
