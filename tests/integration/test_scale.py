"""Scale-out on CPU: sweeps grouped in MLflow, Hydra launchers and Optuna, DDP (gloo), distributed
generation, a real ``mlflow server`` over HTTP and its UI in a real browser."""

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml
from mlflow.tracking import MlflowClient

from synthset.callbacks.replica_check import REPLICAS_TAG, WORLD_SIZE_TAG
from synthset.config import compose_config
from synthset.generation.distributed import free_port
from synthset.pipelines.generate import generate
from synthset.pipelines.train import run_training
from synthset.tracking.sweep import BEST_RUN_TAG, PARENT_TAG
from tests.conftest import REPO, EntryResult, run_cli, run_entry

# A job in a few seconds: 6 steps, then one real TF-Inception FID of 20 samples against 40 of the validation digits.
FAST_JOB = [
    "trainer.max_steps=6", "trainer.accelerator=cpu", "trainer.enable_progress_bar=false", "model.width=16",
    "trainer.log_every_n_steps=2",
    "callbacks.sample_grid.every_n_steps=100", "eval.every_n_steps=1000", "eval.num_samples=20",
    "eval.reference_samples=40", "eval.domain=false", "metrics.progress=false", "metrics.is_extractor=none",
    "metrics.precision_recall=false",
]
NO_EVAL = [*FAST_JOB, "eval.every_n_steps=0"]


def store(root: Path) -> MlflowClient:
    return MlflowClient(f"sqlite:///{root / 'outputs' / 'mlflow.db'}")


def runs_of(client: MlflowClient, experiment: str) -> list:
    found = client.get_experiment_by_name(experiment)
    return client.search_runs([found.experiment_id]) if found else []


def parent_and_children(client: MlflowClient, experiment: str, name_prefix: str = ""):
    """The one sweep parent run (named ``name_prefix...``) of ``experiment`` and its children."""
    runs = runs_of(client, experiment)
    parents = [r for r in runs if r.data.tags.get("synthset.kind") == "sweep" and r.info.run_name.startswith(name_prefix)]
    assert len(parents) == 1, [r.info.run_name for r in runs]
    children = [r for r in runs if r.data.tags.get(PARENT_TAG) == parents[0].info.run_id]
    if not name_prefix:
        assert len(children) == len(runs) - 1  # nothing outside the tree
    return parents[0], children


def checked(done: subprocess.CompletedProcess | EntryResult) -> subprocess.CompletedProcess | EntryResult:
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
    return done


@pytest.fixture(scope="module")
def shared_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One output root (and fidelity cache) for the sweeps below; each keeps its own experiment."""
    return tmp_path_factory.mktemp("scale")


@pytest.fixture(scope="module")
def model_sweep(readme_project) -> Path:
    """The README project: its commands include a grid sweep, an Optuna sweep (with val FID) and a DDP run."""
    return readme_project[0]


def test_a_sweep_is_one_parent_run_with_a_child_per_job(model_sweep: Path) -> None:
    parent, children = parent_and_children(store(model_sweep), "synthset", "basic: model=dcgan,wgan,vae")
    assert sorted(c.data.tags["model"] for c in children) == ["dcgan", "vae", "wgan"]
    assert parent.data.params["model"] == "dcgan,wgan,vae" and parent.data.params["data"] == "digits"
    assert parent.info.status == "FINISHED" and parent.data.metrics["sweep/jobs"] == 3
    assert all(c.info.status == "FINISHED" for c in children)


def test_optuna_sweep_minimizes_val_fid_and_logs_the_best_trial(model_sweep: Path) -> None:
    client = store(model_sweep)
    parent, trials = parent_and_children(client, "synthset", "optuna: sweep=optuna trainer.")
    assert len(trials) == 2 and all(t.data.metrics["eval/val/fid"] > 0 for t in trials)
    assert any(key.startswith("search/model.") for key in parent.data.params)
    results = yaml.safe_load(Path(parent.data.tags["synthset.sweep_dir"], "optimization_results.yaml").read_text())
    best = min(trials, key=lambda t: t.data.metrics["eval/val/fid"])
    assert results["best_value"] == pytest.approx(best.data.metrics["eval/val/fid"])
    assert parent.data.metrics["best/eval/val/fid"] == best.data.metrics["eval/val/fid"]
    assert parent.data.tags[BEST_RUN_TAG] == best.info.run_id
    assert "optimization_results.yaml" in {a.path for a in client.list_artifacts(parent.info.run_id)}


def test_optuna_without_evaluation_is_refused_before_any_trial(tmp_path: Path) -> None:
    done = run_entry("train.py", "-m", "sweep=optuna", "hydra.sweeper.n_trials=2", "model=vae", *NO_EVAL, root=tmp_path)
    assert done.returncode == 2
    assert "sweep=optuna minimizes the final eval/val/fid, but eval.every_n_steps=0" in done.stderr
    assert not (tmp_path / "outputs" / "mlflow.db").exists()


def test_joblib_runs_two_jobs_in_parallel_on_a_fresh_store(tmp_path: Path) -> None:
    assert not (tmp_path / "outputs").exists()
    # A fresh interpreter: joblib's reusable workers of an in-process sweep would keep another project's environment.
    checked(run_cli("train.py", "-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "model=vae",
                    "model.beta=1,4", *NO_EVAL, cwd=tmp_path))
    parent, children = parent_and_children(store(tmp_path), "synthset")
    assert sorted(float(c.data.params["model/beta"]) for c in children) == [1.0, 4.0]
    assert all(c.info.status == "FINISHED" for c in children)
    assert parent.data.tags["synthset.launcher"] == "joblib"
    # Two worker processes, one job each: the store was created once, before either started.
    assert len({c.data.tags["synthset.pid"] for c in children}) == 2
    # joblib's loky workers share the cores instead of oversubscribing them.
    assert {c.data.tags["synthset.torch_threads"] for c in children} == {str(max(1, os.cpu_count() // 2))}


def test_submitit_local_runs_a_one_job_sweep(tmp_path: Path) -> None:
    # The sweep runs in this process (no interpreter start-up); submitit starts the job's own process.
    checked(run_entry("train.py", "-m", "hydra/launcher=submitit_local", "model=vae", *NO_EVAL, root=tmp_path))
    parent, children = parent_and_children(store(tmp_path), "synthset")
    assert len(children) == 1 and children[0].info.status == "FINISHED"
    assert children[0].data.tags["synthset.pid"] != str(os.getpid())
    assert list((tmp_path / "outputs" / "multirun").glob("*/*/.submitit/*/*_result.pkl"))


def assert_one_run_with_identical_replicas(root: Path, model: str) -> None:
    runs = runs_of(store(root), "synthset")
    assert len(runs) == 1, [r.info.run_name for r in runs]  # rank 1 logged nothing of its own
    run = runs[0]
    assert run.data.tags["model"] == model and run.data.params["trainer/strategy"].startswith("ddp")
    assert run.data.tags[WORLD_SIZE_TAG] == "2" and run.data.tags[REPLICAS_TAG] == "true"
    assert ("train/loss" if model == "vae" else "train/d_loss") in run.data.metrics


def test_ddp_from_the_cli_on_two_cpu_processes_is_one_run_with_identical_replicas(model_sweep: Path) -> None:
    """README's ``python train.py trainer=ddp trainer.accelerator=cpu trainer.devices=2``: Lightning re-launches
    train.py for rank 1 (the Hydra path); one run, identical replicas."""
    runs = [r for r in runs_of(store(model_sweep), "synthset") if r.data.tags.get(WORLD_SIZE_TAG) == "2"]
    assert len(runs) == 1  # rank 1 logged nothing of its own
    assert runs[0].data.tags[REPLICAS_TAG] == "true" and runs[0].data.params["trainer/strategy"].startswith("ddp")


def test_ddp_under_torchrun_trains_dcgan_and_vae_with_identical_replicas(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
               str(Path(__file__).with_name("ddp_models.py")), str(tmp_path), "dcgan,vae", "model.conditional=true",
               *NO_EVAL]
    checked(subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=600))
    for model in ("dcgan", "vae"):
        assert_one_run_with_identical_replicas(tmp_path / model, model)


def test_multirun_with_subprocess_ddp_is_refused_with_the_way_out(tmp_path: Path) -> None:
    done = run_entry("train.py", "-m", "trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2",
                     "model=vae,dcgan", *NO_EVAL, root=tmp_path)
    assert done.returncode == 2
    assert "cannot run inside a Hydra multirun (-m)" in done.stderr and "trainer=ddp_spawn" in done.stderr
    assert not (tmp_path / "outputs" / "mlflow.db").exists()


def dataset_files(out: Path) -> dict[str, bytes]:
    """Every file of a dataset except the card, whose provenance names its own generation run."""
    card = {"README.md", "synthset.json"}
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file() and p.name not in card}


@pytest.fixture(scope="module")
def generation_source(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str], Path]:
    """A tiny conditional DCGAN and its 1-process dataset (webdataset, 5 shards, memorization on)."""
    root = tmp_path_factory.mktemp("distributed-generation")
    run_id = run_training(compose_config("train", [*NO_EVAL, "model=dcgan", "model.conditional=true"], root)).run_id
    common = [f"run_id={run_id}", "num_samples=90", "shard_size=20", "format=webdataset", "card.eval_samples=0",
              "progress=false", "num_workers=1"]
    one = generate(compose_config("generate", [*common, f"out={root / 'one'}"], root))
    assert not (one / ".manifest").exists()
    return root, common, one


def assert_same_dataset(out: Path, reference: Path) -> None:
    expected = dataset_files(reference)
    assert "manifest.json" in expected and sum(name.endswith(".tar") for name in expected) == 5
    assert dataset_files(out) == expected  # byte for byte, one manifest, no process parts left over
    cards = [json.loads((d / "synthset.json").read_text()) for d in (reference, out)]
    assert cards[0]["shards"] == cards[1]["shards"]
    assert cards[0]["memorization"]["flagged"] == cards[1]["memorization"]["flagged"]


def test_generation_under_torchrun_is_byte_identical_to_one_process(generation_source) -> None:
    root, common, one = generation_source
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
               str(REPO / "generate.py"), *common, f"out={root / 'torchrun'}"]
    checked(subprocess.run(command, cwd=root, env={**os.environ, "SYNTHSET_ROOT": str(root)},
                           capture_output=True, text=True, timeout=600))
    assert_same_dataset(root / "torchrun", one)


@pytest.mark.slow
def test_generation_with_num_processes_is_byte_identical_to_one_process(generation_source) -> None:
    root, common, one = generation_source
    two = generate(compose_config("generate", [*common, "num_processes=2", f"out={root / 'two'}"], root))
    assert_same_dataset(two, one)


# ---- a real MLflow server: HTTP logging and the UI in headless Chromium -------------------------------------------

@pytest.fixture(scope="module")
def mlflow_server(model_sweep: Path):
    """``mlflow server`` over the sweep's store, on a free port of 127.0.0.1; stopped afterwards."""
    port = free_port()
    mlflow = Path(sys.executable).with_name("mlflow")
    server = subprocess.Popen(
        [str(mlflow), "server", "--backend-store-uri", f"sqlite:///{model_sweep / 'outputs' / 'mlflow.db'}",
         "--artifacts-destination", str(model_sweep / "outputs" / "mlartifacts"), "--host", "127.0.0.1",
         "--port", str(port), "--workers", "1"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while True:
        try:
            urllib.request.urlopen(url + "/health", timeout=2).read()
            break
        except OSError:
            assert server.poll() is None, server.stderr.read()[-3000:]
            assert time.monotonic() < deadline, "mlflow server did not answer within 90 s"
            time.sleep(0.5)
    yield url
    server.terminate()
    server.wait(timeout=30)


def test_training_logs_to_a_real_mlflow_server_over_http(mlflow_server: str, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    result = run_training(compose_config("train", [*NO_EVAL, "model=vae", "tracking.experiment=over-http"], tmp_path))
    client = MlflowClient(mlflow_server)
    run = client.get_run(result.run_id)
    assert run.data.params["model/name"] == "vae" and run.data.params["trainer/max_steps"] == "6"
    assert [m.step for m in client.get_metric_history(run.info.run_id, "train/loss")]
    grids = [a.path for a in client.list_artifacts(run.info.run_id, "samples")]
    assert grids and grids[-1].endswith(".png")
    local = Path(client.download_artifacts(run.info.run_id, grids[-1], str(tmp_path)))
    assert local.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not (tmp_path / "outputs" / "mlflow.db").exists()  # nothing went to a local store


def test_the_mlflow_ui_shows_the_sweep_in_a_real_browser(mlflow_server: str, model_sweep: Path, tmp_path: Path) -> None:
    if not shutil.which("chromium") and not os.environ.get("CI"):
        pytest.skip("Debian's chromium is not installed (.ci/run installs it)")
    from playwright.sync_api import sync_playwright

    parent, children = parent_and_children(store(model_sweep), "synthset", "optuna: sweep=optuna trainer.")
    screenshot = tmp_path / "mlflow-sweep.png"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=shutil.which("chromium"), headless=True, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run"])
        page = browser.new_page(viewport={"width": 1600, "height": 520})
        page.goto(f"{mlflow_server}/#/experiments/{parent.info.experiment_id}/runs")
        parent_cell = page.locator("[role=gridcell]").filter(has_text=parent.info.run_name[:30]).first
        parent_cell.wait_for(timeout=60_000)
        if page.get_by_role("button", name="Close").count():  # the assistant side panel
            page.get_by_role("button", name="Close").first.click()
        parent_cell.locator("button").first.click()  # children sit collapsed under their parent
        for child in children:
            page.get_by_text(child.info.run_name).first.wait_for(timeout=30_000)
        page.get_by_role("button", name="Columns", exact=True).click()
        page.get_by_text("eval/val/fid", exact=True).click()
        page.keyboard.press("Escape")
        page.get_by_role("columnheader", name="eval/val/fid").first.wait_for(timeout=30_000)
        cells = page.locator("[role=gridcell][col-id*='eval/val/fid']")
        shown = {cells.nth(i).inner_text() for i in range(cells.count())}
        page.screenshot(path=str(screenshot))
        browser.close()
    assert {repr(c.data.metrics["eval/val/fid"]) for c in children} <= shown
    assert screenshot.stat().st_size > 10_000
    if os.environ.get("SYNTHSET_DOCS_SCREENSHOT"):  # how docs/mlflow-sweep.png is made
        shutil.copy(screenshot, os.environ["SYNTHSET_DOCS_SCREENSHOT"])
