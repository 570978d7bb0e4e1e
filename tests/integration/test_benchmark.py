"""The benchmark contract, run quickly: every ratio is a mean over pairs with a 95 % CI, consistent with its raw data.

No speed thresholds here (CI machines are noisy); targets live in docs/benchmarks.md and README.
"""

import json
import math
import runpy
import statistics
import sys

import pytest

from synthset.cuda_probe import nvml_loads
from tests.conftest import REPO


def run_script(capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch, script: str, *args: str) -> dict:
    """The script's own ``main`` with these arguments, in this process (no interpreter start-up); its JSON line."""
    monkeypatch.setattr(sys, "argv", [script, *args])
    capsys.readouterr()
    runpy.run_path(script, run_name="__main__")
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def assert_consistent(ratio: dict, pairs: int, higher_is_better: bool = True) -> None:
    """The reported ratio and interval follow from the raw pair data the script also reports."""
    assert ratio["pairs"] == pairs == len(ratio["candidate"]) == len(ratio["baseline"])
    expected = [c / b if higher_is_better else b / c for c, b in zip(ratio["candidate"], ratio["baseline"], strict=True)]
    assert ratio["ratios"] == pytest.approx(expected)
    assert ratio["ratio"] == pytest.approx(statistics.fmean(expected))
    low, high = ratio["ci95"]
    assert low <= ratio["ratio"] <= high and math.isclose(high - ratio["ratio"], ratio["ci95_halfwidth"], rel_tol=1e-9)
    assert all(x > 0 for x in ratio["candidate"] + ratio["baseline"])


def test_quick_benchmark_reports_every_ratio_with_its_interval(capsys, monkeypatch) -> None:
    report = run_script(capsys, monkeypatch, str(REPO / "scripts" / "benchmark.py"), "--quick", "--json", "--models",
                        "dcgan,vae")
    for name in ("dcgan", "vae"):
        train = report["train"][name]
        assert_consistent(train, 2)
        ours, plain = statistics.median(train["candidate"]), statistics.median(train["baseline"])
        assert train["overhead_ms_per_batch"] == pytest.approx(1000 * 64 * (1 / ours - 1 / plain))
    if nvml_loads():  # the NVML-based CUDA check is then kept, and there is nothing to compare
        assert report["cuda_probe"] is None
    else:
        assert_consistent(report["cuda_probe"], 2)
    assert_consistent(report["eval"]["eval_warm_speedup"], 2, higher_is_better=False)
    assert_consistent(report["eval"]["eval_vs_fidelity"], 2, higher_is_better=False)
    for fmt in ("imagefolder", "hf", "webdataset", "npz"):
        assert_consistent(report["generate"]["vs_baseline"][fmt], 2)
    for fmt in ("npz", "imagefolder"):  # seconds per image at 800 over 200 images, paired like every ratio
        growth = report["generate"]["time_growth"][fmt]
        assert_consistent(growth, 2)
        assert growth["counts"] == [200, 800]
        assert report["summary"]["generate_time_growth"][fmt] == growth["ratio"]
    rss = report["generate"]["rss_kb"]
    assert report["generate"]["generate_rss_growth"] == pytest.approx(rss["600"] / rss["200"])
    assert all(0 <= report["generate"]["rss_added_kb"][k] < rss[k] for k in rss)
    summary = report["summary"]
    assert summary["generate_time_growth"].keys() == {"npz", "imagefolder"}
    assert summary["data_loader_headroom"] == pytest.approx(
        report["loader"]["loader_images_per_s"] / report["loader"]["fastest_training_images_per_s"])


def test_the_gpu_benchmark_plumbing_runs_on_a_cpu(capsys, monkeypatch) -> None:
    report = run_script(capsys, monkeypatch, str(REPO / "scripts" / "benchmark_gpu.py"), "--device", "cpu", "--quick",
                        "--json", "--models", "dcgan", "--variants", "fp32,bf16+channels_last+compile")
    for ratio in report["train"]["dcgan"].values():
        assert_consistent(ratio, 2)
    assert report["loader"]["data_loader_headroom"] > 0 and report["device"] == "cpu"


def test_generation_rows_alone_write_under_the_scratch_folder(capsys, monkeypatch, tmp_path) -> None:
    report = run_script(capsys, monkeypatch, str(REPO / "scripts" / "benchmark.py"), "--quick", "--json",
                        "--generate-only", "--formats", "webdataset", "--growth-formats", "npz", "--scratch", str(tmp_path))
    assert report["generate"]["vs_baseline"].keys() == {"webdataset"} and not report["train"]
    assert_consistent(report["generate"]["vs_baseline"]["webdataset"], 2)
    assert report["generate"]["time_growth"].keys() == {"npz"}
    assert report["scratch"].startswith(str(tmp_path)) and not any(tmp_path.iterdir())  # removed when done


def test_an_unknown_format_is_refused_with_exit_2(capsys, monkeypatch) -> None:
    with pytest.raises(SystemExit) as stopped:
        run_script(capsys, monkeypatch, str(REPO / "scripts" / "benchmark.py"), "--formats", "tfrecord")
    assert stopped.value.code == 2
    assert "--formats tfrecord is unknown; expected some of imagefolder,hf,webdataset,npz" in capsys.readouterr().err
