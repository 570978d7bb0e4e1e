"""Candidate and baseline run in alternating pairs, in one process, until the ratio is known to ±3 %.

One pair is one candidate run and one baseline run back to back, so slow drift (thermal state, other
load) hits both alike; the ratio of each pair is one observation. Pairs continue until the 95 %
confidence interval of the mean ratio (Student's t) is narrower than ``target`` of the mean, or
``max_pairs`` is reached (the report then says the target width was not reached). ``measure_interleaved``
takes pairs that one run yields several of (training: a plain-loop chunk after every chunk of our batches).
"""

import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from scipy import stats


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


@dataclass
class PairedRatio:
    """Candidate / baseline throughputs in pairs (for durations, pass ``higher_is_better=False``)."""

    candidate: list[float] = field(default_factory=list)
    baseline: list[float] = field(default_factory=list)
    higher_is_better: bool = True

    @property
    def ratios(self) -> list[float]:
        pairs = zip(self.candidate, self.baseline, strict=True)
        return [c / b if self.higher_is_better else b / c for c, b in pairs]

    @property
    def mean(self) -> float:
        return statistics.fmean(self.ratios)

    @property
    def halfwidth(self) -> float:
        """Half the width of the 95 % confidence interval of the mean ratio (inf with one pair)."""
        n = len(self.ratios)
        if n < 2:
            return math.inf
        return float(stats.t.ppf(0.975, n - 1)) * statistics.stdev(self.ratios) / math.sqrt(n)

    def summary(self, target: float) -> dict:
        return {"ratio": self.mean, "ci95": [self.mean - self.halfwidth, self.mean + self.halfwidth],
                "ci95_halfwidth": self.halfwidth, "relative_halfwidth": self.halfwidth / self.mean,
                "pairs": len(self.ratios), "ratios": self.ratios, "candidate": self.candidate, "baseline": self.baseline,
                "target_width_reached": self.halfwidth / self.mean <= target}


def measure_ratio(candidate: Callable[[], float], baseline: Callable[[], float], *, min_pairs: int = 4,
                  max_pairs: int = 20, target: float = 0.03, warmup: bool = True,
                  higher_is_better: bool = True) -> dict:
    """Alternate candidate and baseline until the ratio's 95 % CI is within ±``target`` (relative)."""
    return measure_interleaved(lambda: [(candidate(), baseline())], min_pairs=min_pairs, max_pairs=max_pairs,
                               target=target, warmup=warmup, higher_is_better=higher_is_better)


def measure_interleaved(run: Callable[[], list[tuple[float, float]]], *, min_pairs: int = 4, max_pairs: int = 20,
                        target: float = 0.03, warmup: bool = True, higher_is_better: bool = True) -> dict:
    """Pairs that come in groups: each ``run()`` yields (candidate, baseline) pairs, and runs go on until the 95 % CI
    is within ±``target`` (checked after every run) or ``max_pairs`` pairs are in (the surplus of the last run is dropped).
    """
    if warmup:
        run()
    measured = PairedRatio(higher_is_better=higher_is_better)
    while len(measured.candidate) < max_pairs:
        for candidate, baseline in run()[: max_pairs - len(measured.candidate)]:
            measured.candidate.append(candidate)
            measured.baseline.append(baseline)
        if len(measured.candidate) >= min_pairs and measured.halfwidth / measured.mean <= target:
            break
    return measured.summary(target)
