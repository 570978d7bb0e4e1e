"""The benchmark contract, exercised quickly (CI machines are noisy: no thresholds asserted here)."""

import json
import subprocess
import sys

from tests.conftest import REPO


def test_quick_benchmark_reports_every_ratio_as_json() -> None:
    result = subprocess.run([sys.executable, str(REPO / "scripts" / "benchmark.py"), "--quick", "--json"],
                            capture_output=True, text=True, timeout=600, cwd=REPO)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert set(report["train_overhead_ratio"]) == {"dcgan", "wgan", "vae"}
    assert all(ratio > 0 for ratio in report["train_overhead_ratio"].values())
    assert report["eval_warm_speedup"] > 0 and report["eval_vs_fidelity_ratio"] > 0
    assert set(report["generate_images_per_s"]) == {"imagefolder", "hf", "webdataset", "npz"}
    assert report["generate_vs_baseline_ratio"] > 0 and report["generate_rss_growth"] > 0
    assert report["data_loader_headroom"] > 0
    assert all(len(report["train"][m]["end_to_end_images_per_s"]) == 1 for m in ("dcgan", "wgan", "vae"))
