"""FID's matrix square root as a symmetric eigenproblem of the generated set's rank, inside torch-fidelity.

torch-fidelity takes Tr sqrt(Σ1 Σ2) from the general eigenvalues of the 2048 × 2048 product (LAPACK ``geev``: about
4 s on one core, whatever the sample count). With Σ1 = P L Lᵀ Pᵀ (pivoted Cholesky; L is d × r for Σ1's rank r,
at most N - 1), Σ1 Σ2 has the nonzero eigenvalues of the symmetric r × r matrix Lᵀ (Pᵀ Σ2 P) L, so the same trace
comes from a far smaller, symmetric problem: the identity is exact, and the two agree to about 1e-7 relative
(torch-fidelity's own rounding of the zero eigenvalues).
"""

import contextlib
from collections.abc import Iterator

import numpy as np
import torch_fidelity.metric_fid
import torch_fidelity.metrics
from scipy.linalg import lapack
from torch_fidelity.helpers import vprint

FID_KEY = torch_fidelity.metric_fid.KEY_METRIC_FID
# torch-fidelity's modules that call the function by name (``metrics`` imported it into its own namespace).
CALLERS = (torch_fidelity.metric_fid, torch_fidelity.metrics)


def trace_sqrt_product(sigma1: np.ndarray, sigma2: np.ndarray) -> float:
    """Tr sqrt(Σ1 Σ2) for two covariance (positive semi-definite) matrices."""
    factor, pivots, rank, info = lapack.dpstrf(sigma1, lower=1)
    if info < 0:
        raise ValueError(f"pivoted Cholesky rejected argument {-info} of the generated set's covariance")
    lower = np.tril(factor)[:, :rank]
    order = pivots - 1  # LAPACK counts from 1
    inner = lower.T @ sigma2[np.ix_(order, order)] @ lower
    return float(np.sqrt(np.clip(np.linalg.eigvalsh(inner), 0, None)).sum())


def fid_statistics_to_metric(stat_1: dict, stat_2: dict, verbose: bool) -> dict[str, float]:
    """torch-fidelity's function of the same name and signature, with the trace above."""
    mu1, sigma1, mu2, sigma2 = stat_1["mu"], stat_1["sigma"], stat_2["mu"], stat_2["sigma"]
    diff = mu1 - mu2
    fid = float(diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2 * trace_sqrt_product(sigma1, sigma2))
    vprint(verbose, f"Frechet Inception Distance: {fid:.7g}")
    return {FID_KEY: fid}


@contextlib.contextmanager
def symmetric_frechet_trace() -> Iterator[None]:
    """torch-fidelity computes FID with ``fid_statistics_to_metric`` above while the block runs, then as shipped."""
    shipped = [module.fid_statistics_to_metric for module in CALLERS]
    try:
        for module in CALLERS:
            module.fid_statistics_to_metric = fid_statistics_to_metric
        yield
    finally:
        for module, function in zip(CALLERS, shipped, strict=True):
            module.fid_statistics_to_metric = function
