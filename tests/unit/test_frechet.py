"""FID's trace from the symmetric eigenproblem equals torch-fidelity's own, at any rank."""

import numpy as np
import pytest
import torch_fidelity.metric_fid
import torch_fidelity.metrics

from synthset.metrics.frechet import FID_KEY, fid_statistics_to_metric, symmetric_frechet_trace

SHIPPED = torch_fidelity.metric_fid.fid_statistics_to_metric
DIM = 256


def statistics(n: int, seed: int, shift: float = 0.0) -> dict[str, np.ndarray]:
    """Statistics of n non-negative, correlated features (like pooled activations): rank min(n - 1, DIM)."""
    rng = np.random.default_rng(seed)
    mixing = np.random.default_rng(99).standard_normal((16, DIM))
    features = np.abs(rng.standard_normal((n, 16)) @ mixing * 0.3 + rng.standard_normal((n, DIM)) * 0.2 + shift)
    return {"mu": features.mean(0), "sigma": np.cov(features, rowvar=False)}


@pytest.mark.parametrize("n_generated", [2, 20, 200, 1000])
def test_the_same_fid_as_torch_fidelity_for_low_and_full_rank_sets(n_generated: int) -> None:
    reference, generated = statistics(3000, seed=0), statistics(n_generated, seed=1, shift=0.1)
    ours = fid_statistics_to_metric(generated, reference, verbose=False)[FID_KEY]
    theirs = SHIPPED(generated, reference, False)[FID_KEY]
    assert ours == pytest.approx(theirs, rel=1e-6) and ours > 1.0, (ours, theirs)


def test_a_set_against_itself_is_zero_and_a_shift_costs_its_squared_length() -> None:
    stats = statistics(500, seed=2)
    assert abs(fid_statistics_to_metric(stats, stats, verbose=False)[FID_KEY]) < 1e-8
    shifted = {"mu": stats["mu"] + 0.5, "sigma": stats["sigma"]}
    assert fid_statistics_to_metric(shifted, stats, verbose=False)[FID_KEY] == pytest.approx(0.25 * DIM, rel=1e-8)


def test_torch_fidelity_uses_it_inside_the_block_only() -> None:
    callers = (torch_fidelity.metric_fid, torch_fidelity.metrics)
    with symmetric_frechet_trace():
        assert all(module.fid_statistics_to_metric is fid_statistics_to_metric for module in callers)
    assert all(module.fid_statistics_to_metric is SHIPPED for module in callers)
