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
