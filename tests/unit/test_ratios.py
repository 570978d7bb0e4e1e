"""The benchmark's paired ratios: the mean, the 95 % interval and the stopping rule, checked by hand."""

import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))

from benchlib.ratios import PairedRatio, measure_interleaved, measure_ratio  # noqa: E402


def test_the_interval_is_students_t_over_the_pair_ratios() -> None:
    pairs = PairedRatio(candidate=[90.0, 100.0, 110.0], baseline=[100.0, 100.0, 100.0])
    assert pairs.ratios == [0.9, 1.0, 1.1] and math.isclose(pairs.mean, 1.0)
    # t(0.975, 2 dof) = 4.303; stdev 0.1; sqrt(3)
    assert math.isclose(pairs.halfwidth, 4.302652729911275 * 0.1 / math.sqrt(3), rel_tol=1e-9)
    durations = PairedRatio(candidate=[2.0], baseline=[4.0], higher_is_better=False)
    assert durations.ratios == [2.0] and durations.halfwidth == math.inf


def test_pairs_continue_until_the_interval_is_narrow_enough() -> None:
    noisy = iter([1.0, 1.3, 0.8, 1.2, 0.9, 1.1] + [1.0] * 100)
    calls = {"baseline": 0}

    def baseline() -> float:
        calls["baseline"] += 1
        return 1.0

    result = measure_ratio(lambda: next(noisy), baseline, min_pairs=3, max_pairs=40, target=0.03, warmup=False)
    assert result["target_width_reached"] and result["relative_halfwidth"] <= 0.03
    assert result["pairs"] == calls["baseline"] > 6  # the noisy start needed more pairs than the minimum
    swings = iter([0.5, 1.5, 0.5])
    capped = measure_ratio(lambda: next(swings), lambda: 1.0, min_pairs=2, max_pairs=3, warmup=False)
    assert capped["pairs"] == 3 and not capped["target_width_reached"]  # the report says the width was not reached


def test_interleaved_runs_add_their_pairs_until_the_interval_is_narrow_enough() -> None:
    runs = iter([[(0.9, 1.0), (1.1, 1.0), (0.7, 1.0)], [(1.0, 1.0)] * 3, [(1.0, 1.0)] * 3, [(2.0, 1.0)] * 3])
    result = measure_interleaved(lambda: next(runs), min_pairs=3, max_pairs=40, target=0.1, warmup=False)
    # Relative half-widths after each run: 0.55 (3 pairs), 0.152 (6), 0.089 (9): it stops after the third run.
    assert result["pairs"] == 9 and result["target_width_reached"]
    assert math.isclose(result["relative_halfwidth"], 2.306004135 * math.sqrt(0.0125) / 3 / (8.7 / 9), rel_tol=1e-6)
    assert result["candidate"][:3] == [0.9, 1.1, 0.7] and result["baseline"] == [1.0] * result["pairs"]
    surplus = measure_interleaved(lambda: [(1.0, 2.0), (3.0, 2.0), (1.0, 2.0)], min_pairs=2, max_pairs=4, warmup=False)
    assert surplus["pairs"] == 4 and surplus["ratios"] == [0.5, 1.5, 0.5, 0.5]  # the second run's last pair is dropped
