"""Utility protocol planning and the leakage rule."""

import pytest

from synthset.errors import SynthsetError
from synthset.utility.protocols import Protocol, plan


def names(protocols: list[Protocol]) -> list[str]:
    return [p.name for p in protocols]


def test_full_and_low_data_protocols_with_their_baselines() -> None:
    protocols = plan([0.1, 1.0], generator_fraction=0.1, labeled=True)
    assert names(protocols) == ["real", "synthetic", "real+synthetic", "real@0.1", "real@0.1+synthetic"]
    assert not any(p.leaky for p in protocols)  # the generator saw exactly real@0.1's images
    assert {p.name: p.baseline.name for p in protocols if p.synthetic} == {
        "synthetic": "real", "real+synthetic": "real", "real@0.1+synthetic": "real@0.1"}


def test_generator_that_saw_more_data_makes_the_low_data_protocol_leaky() -> None:
    leaky = {p.name for p in plan([0.01, 0.1], generator_fraction=1.0, labeled=True) if p.leaky}
    assert leaky == {"real@0.1+synthetic", "real@0.01+synthetic"}
    assert {p.name for p in plan([0.01, 0.1], generator_fraction=0.1, labeled=True) if p.leaky} == {"real@0.01+synthetic"}


def test_unlabeled_samples_only_get_the_real_classifier() -> None:
    assert names(plan([0.1], generator_fraction=1.0, labeled=False)) == ["real"]


@pytest.mark.parametrize("bad", [0, -0.5, 1.5, "half"])
def test_fractions_outside_the_unit_interval_are_refused(bad) -> None:
    with pytest.raises(SynthsetError, match=r"utility.real_fractions contains .* outside \(0, 1\]"):
        plan([bad], generator_fraction=1.0, labeled=True)


def test_the_batch_weight_keys_only_a_mixed_training_set() -> None:
    """A cached CAS classifier is reused under any synthetic_weight; a mixed set's cache follows the weight."""
    import torch

    from synthset.utility.scoring import TrainingSet

    real, synthetic = torch.zeros(4, 1, 2, 2), torch.ones(6, 1, 2, 2)
    labels, empty = torch.zeros(4, dtype=torch.long), torch.zeros(0, 1, 2, 2)

    def key(real_images, weight):
        return TrainingSet(real_images, labels[: len(real_images)], synthetic, torch.zeros(6, dtype=torch.long),
                           "digest", weight).key()

    assert key(empty, 0.25) == key(empty, None)
    assert key(real, 0.25) != key(real, None) and key(real, 0.25) != key(real, 0.5)
    _, _, weights = TrainingSet(real, labels, synthetic, torch.zeros(6, dtype=torch.long), "digest", 0.25).tensors()
    assert torch.isclose(weights[4:].sum(), torch.tensor(0.25)) and torch.isclose(weights.sum(), torch.tensor(1.0))


def test_pretrain_fine_tunes_the_cached_cas_classifier_of_the_same_seed(tmp_path) -> None:
    """With ``pretrain`` the real images fine-tune the synthetic-only classifier; mixing starts from scratch.

    A learning rate of 0 keeps the start weights, so the fine-tuned classifier must equal the CAS classifier planted in
    the cache (weights no fresh initialization could give), while the mixed one must not.
    """
    import json

    import torch

    from synthset.metrics.classifier import ClassifierRecipe, ReferenceClassifier, save_classifier
    from synthset.utility.scoring import ProtocolTrainer, TrainingSet

    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (40, 1, 16, 16), dtype=torch.uint8, generator=g)
    labels = torch.arange(40) % 4
    recipe = ClassifierRecipe(max_steps=2, batch_size=8, lr=0.0, val_every=1, patience=1, crop_padding=0)
    trainer = ProtocolTrainer((images[:8], labels[:8]), (images[8:16], labels[8:16]), 4, recipe, tmp_path)

    def training_set(pretrain: bool) -> TrainingSet:
        return TrainingSet(images[16:28], labels[16:28], images[28:], labels[28:], "digest", pretrain=pretrain)

    pretrained, mixed = training_set(True), training_set(False)
    assert pretrained.key() != mixed.key() and pretrained.synthetic_only.key() == TrainingSet(
        images[:0], labels[:0], images[28:], labels[28:], "digest").key()  # the `synthetic` protocol's cache entry
    planted = ReferenceClassifier(1, 4)
    with torch.no_grad():
        for parameter in planted.parameters():
            parameter.fill_(0.25)
    cas_path = trainer.cache_path(pretrained.synthetic_only, seed=3)
    save_classifier(planted, cas_path.with_suffix(".pt"))
    cas_path.write_text(json.dumps({"accuracy": 0.5}))

    def parameters(model) -> torch.Tensor:
        return torch.cat([p.detach().flatten() for p in model.parameters()])

    assert torch.equal(parameters(trainer.fit(pretrained, seed=3)), parameters(planted))
    assert not torch.equal(parameters(trainer.fit(mixed, seed=3)), parameters(planted))
    # utility.finetune_lr replaces the recipe's rate for the fine-tune only (and keys its own cache entry).
    faster = TrainingSet(images[16:28], labels[16:28], images[28:], labels[28:], "digest", pretrain=True, finetune_lr=0.1)
    assert faster.key() != pretrained.key() and faster.synthetic_only.key() == pretrained.synthetic_only.key()
    assert not torch.equal(parameters(trainer.fit(faster, seed=3)), parameters(planted))


def test_a_weighted_pretrain_fine_tunes_on_both_sets_from_the_cas_classifier(tmp_path, monkeypatch) -> None:
    """``synthetic_use=pretrain`` with ``synthetic_weight``: the CAS weights are the start, and that share of each
    fine-tuning draw is synthetic; without a weight the fine-tune sees the real images alone."""
    import torch

    from synthset.metrics.classifier import ClassifierRecipe, ReferenceClassifier
    from synthset.utility import scoring
    from synthset.utility.scoring import ProtocolTrainer, TrainingSet

    images, labels = torch.zeros(40, 1, 16, 16, dtype=torch.uint8), torch.arange(40) % 4
    recipe = ClassifierRecipe(max_steps=2, batch_size=8, lr=1e-3, val_every=1, patience=1, crop_padding=0)
    trainer = ProtocolTrainer((images[:8], labels[:8]), (images[8:16], labels[8:16]), 4, recipe, tmp_path)
    cas = ReferenceClassifier(1, 4)
    monkeypatch.setattr(ProtocolTrainer, "classifier", lambda self, data, seed: cas)
    calls = []
    monkeypatch.setattr(scoring, "fit_classifier", lambda *args, **kwargs: calls.append((args, kwargs)))

    def fine_tune(weight):
        data = TrainingSet(images[16:28], labels[16:28], images[28:], labels[28:], "digest", weight, pretrain=True)
        trainer.fit(data, seed=0)
        (fit_images, *_), kwargs = calls.pop()
        assert kwargs["start"].keys() == cas.state_dict().keys()
        return data.key(), len(fit_images), kwargs["weights"]

    key, count, weights = fine_tune(0.25)
    assert count == 24 and torch.isclose(weights[12:].sum(), torch.tensor(0.25))
    plain_key, count, weights = fine_tune(None)
    assert count == 12 and weights is None and key != plain_key
