"""Bad input across the entry points: exit 2, one line starting ``error:``, no traceback, nothing created.

Every case runs the real entry point (preflight + Hydra main) in this process.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.conftest import REPO, files_under, run_entry

TRAIN_CASES = [
    (["model=WGAN"], "model=WGAN is not one of the model configs (dcgan, sngan, vae, wgan)"),
    (["data=imagenet"], "data=imagenet is not one of the data configs"),
    (["-m", "model=dcgan,WGAN"], "model=WGAN is not one of the model configs"),
    (["model.lr_generator=abc"], "model.lr_generator='abc' (from the config) is not a number"),
    (["model.conditional=maybe"], "model.conditional='maybe' (from the config) is not true or false"),
    (["trainer.devices=0"], "trainer.devices=0 is not a device count"),
    (["trainer.max_steps=0"], "trainer.max_steps=0 must be a positive integer"),
    (["trainer.max_steps=abc"], "trainer.max_steps=abc must be a positive integer"),
    (["data.batch_size=0"], "data.batch_size=0 must be a positive integer"),
    (["data.seed=abc"], "data.seed='abc' (from the data config) is not an integer"),
    (["data.image_size=24"], "data.image_size=24 is not supported"),
    (["data=cifar10"], "data=cifar10 needs its files"),
    (["data=folder"], "data=folder needs data.path="),
    (["data=folder", "data.path=/nonexistent/images"], "data.path=/nonexistent/images is not a folder"),
    (["data.batch_size=5000"], "is larger than the 1293 training images"),
    (["data.val_fraction=1.5"], "data.val_fraction=1.5 must be in [0, 1)"),
    (["model=wgan", "model.n_critic=0"], "model.n_critic=0 must be a positive integer"),
    (["model=dcgan", "model.loss=squared"], "model.loss='squared' is unknown"),
    (["model=sngan", "model.lr_decay=cosine"], "model.lr_decay='cosine' is unknown; expected one of none, linear"),
    (["model=dcgan", "model.minibatch_std=4"], "model.minibatch_std=4 (from the config) is not true or false"),
    (["model=dcgan", "model.conditional=true", "model.g_conditioning=film"], "model.g_conditioning='film' is unknown"),
    (["model.ema_decay=1.5"], "model.ema_decay=1.5 is out of range"),
    (["eval.reference_split=test"], "eval.reference_split=test would select models on 'test'"),
    (["eval.every_n_steps=-1"], "eval.every_n_steps=-1 must be 0"),
    (["logger.flush_every_s=soon"], "logger.flush_every_s=soon must be a number of seconds >= 0"),
    (["resume=0123456789abcdef"], "resume=0123456789abcdef is not a run in this MLflow store"),
    (["model=sngan", "model.widht=32"], "model.widht=32 names no setting (did you mean model.width?)"),
    (["model=vae", "model.n_critic=2"], "model.n_critic=2 names no setting (model has name, channels"),
    (["experiment=quickstart", "eval.monitr=gan_test"], "eval.monitr=gan_test names no setting (did you mean eval.monitor?)"),
    (["nonsense.key=1"], "nonsense.key=1 names no setting (nonsense is not a group of settings)"),
    # paths.output_dir interpolates ${hydra:...}: the check reads names, it must not resolve values outside Hydra.
    (["paths.output_dir=/nonexistent/never", "model.widht=3"], "model.widht=3 names no setting"),
]
GENERATE_CASES = [
    (["format=tiff"], "format=tiff is unknown"),
    (["num_samples=0"], "num_samples=0 must be a positive integer"),
    (["shard_size=-1"], "shard_size=-1 must be a positive integer"),
    (["seed=abc"], "seed='abc' must be an integer"),
    (["labels={cat:40}"], "labels names unknown classes ['cat']"),
    (["run_id=feedbeef"], "run_id=feedbeef is not a run in this MLflow store"),
    (["ckpt=/nonexistent/model.ckpt"], "ckpt=/nonexistent/model.ckpt is not a file"),
    (["checkpoint=middle"], "checkpoint=middle is unknown"),
    (["memorization.extractor=sift"], "memorization.extractor=sift is unknown"),
    (["filter.label_agreement=1.5"], "filter.label_agreement=1.5 must be a probability"),
    (["filter.top_k=2.0"], "filter.top_k=2.0 must be the share of draws to keep"),
    (["filter.top_k=0.5", "filter.top_k_by=inception"], "filter.top_k_by=inception is unknown; expected classifier or discriminator"),
    (["gate.max_fid=1.0"], "gate.max_fid=1.0 needs the FID of exactly these weights"),
    (["format=WEBDATASET"], "format=WEBDATASET is unknown"),
    (["num_sample=20"], "num_sample=20 names no setting (did you mean num_samples?)"),
    (["temperature=0"], "temperature=0 must be a number in (0, 10]"),
]
EVALUATE_CASES = [
    (["task=fid2"], "task=fid2 is unknown"),
    (["eval.num_sample=20"], "eval.num_sample=20 names no setting (did you mean eval.num_samples?)"),
    (["eval.num_samples=1"], "eval.num_samples=1 is too small"),
    (["eval.reference_split=holdout"], "eval.reference_split=holdout is unknown"),
    (["eval.temperature=0"], "eval.temperature=0 must be a number in (0, 10]"),
    (["checkpoint=middle"], "checkpoint=middle is unknown"),
    (["task=utility"], "dataset is missing"),
    (["task=utility", "dataset=/nonexistent/ds"], "dataset=/nonexistent/ds is not a folder"),
    (["task=utility", "dataset={root}/outputs"], "has no synthset.json card"),
    (["task=utility", "dataset={root}/outputs", "utility.steps=0"], "utility.steps=0 must be a positive integer"),
    (["task=utility", "dataset={root}/outputs", "utility.real_fractions=0.1"], "must be a list such as"),
    (["task=utility", "dataset={root}/outputs", "utility.synthetic_weight=2.0"], "utility.synthetic_weight=2.0 must be in (0, 1)"),
    (["task=utility", "dataset={root}/outputs", "utility.patience=-1"], "utility.patience=-1 must be a whole number"),
    (["task=utility", "dataset={root}/outputs", "utility.synthetic_use=blend"], "utility.synthetic_use=blend is not a way"),
    (["task=utility", "dataset={root}/outputs", "utility.synthetic_use=pretrain", "utility.finetune_lr=-1e-3"],
     "utility.finetune_lr=-0.001 must be a positive learning rate"),
    (["task=utility", "dataset={root}/outputs", "utility.finetune_lr=5e-4"],
     "utility.finetune_lr=0.0005 only applies to utility.synthetic_use=pretrain"),
]


def assert_refused(result, fragment: str) -> None:
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert result.returncode == 2, (result.returncode, result.stderr[-2000:])
    assert len(errors) == 1 and "Traceback" not in result.stderr, result.stderr[-2000:]
    assert fragment in errors[0], errors[0]


@pytest.mark.parametrize(("args", "fragment"), TRAIN_CASES, ids=[" ".join(a) for a, _ in TRAIN_CASES])
def test_train_refuses_bad_input(root: Path, args: list[str], fragment: str) -> None:
    before = files_under(root)
    assert_refused(run_entry("train.py", *args, "trainer.max_steps=2" if "max_steps" not in " ".join(args) else "seed=0",
                             root=root), fragment)
    assert files_under(root) == before


def test_the_script_itself_names_a_misspelt_setting(tmp_path: Path) -> None:
    """The check runs from the entry point's own ``__main__`` (a fresh interpreter), not only from the tests' harness."""
    result = subprocess.run([sys.executable, str(REPO / "train.py"), "trainer.max_step=2"], capture_output=True, text=True,
                            env={**os.environ, "SYNTHSET_ROOT": str(tmp_path)}, timeout=120)
    assert_refused(result, "trainer.max_step=2 names no setting (did you mean trainer.max_steps?)")
    assert files_under(tmp_path) == {}


def test_unreachable_tracking_server_is_named_and_nothing_is_created(tmp_path: Path) -> None:
    result = run_entry("train.py", "trainer.max_steps=2", root=tmp_path, env={"MLFLOW_TRACKING_URI": "http://127.0.0.1:9"})
    assert_refused(result, "MLFLOW_TRACKING_URI=http://127.0.0.1:9 is unreachable")
    assert files_under(tmp_path) == {}


@pytest.mark.parametrize(("script", "args"), [("train.py", ["resume=last"]), ("generate.py", ["run_id=latest"]),
                                              ("evaluate.py", ["run_id=latest"])])
def test_reading_runs_from_a_store_that_does_not_exist_creates_none(tmp_path: Path, script: str, args: list[str]) -> None:
    assert_refused(run_entry(script, *args, root=tmp_path), "there is no MLflow store at")
    assert files_under(tmp_path) == {}


@pytest.mark.skipif(torch.cuda.is_available(), reason="the refusal is for machines without CUDA")
def test_gpu_trainer_without_a_gpu_is_refused(root: Path) -> None:
    assert_refused(run_entry("train.py", "trainer=gpu", root=root), "asks for a GPU, but this machine has no CUDA device")


@pytest.mark.parametrize(("args", "fragment"), GENERATE_CASES, ids=[" ".join(a) for a, _ in GENERATE_CASES])
def test_generate_refuses_bad_input(session_runs, tmp_path: Path, args: list[str], fragment: str) -> None:
    before = files_under(session_runs.root)
    run = [] if any(a.startswith(("run_id=", "ckpt=")) for a in args) else [f"run_id={session_runs.run_ids['dcgan']}"]
    result = run_entry("generate.py", *run, *args, f"out={tmp_path / 'never'}", "num_samples=20" if "num_samples" not in
                       " ".join(args) else "seed=0", root=session_runs.root)
    assert_refused(result, fragment)
    assert files_under(session_runs.root) == before and not (tmp_path / "never").exists()


def test_a_checkpoint_file_with_an_unusable_store_is_refused_before_anything_is_written(session_runs,
                                                                                      tmp_path: Path) -> None:
    """``ckpt=`` reads no run, but its generation run still goes to the store: it is checked before anything is written."""
    folder_store = tmp_path / "mlruns"  # a plain folder: MLflow 3 refuses file stores
    result = run_entry("generate.py", f"ckpt={session_runs.checkpoints['dcgan']}", f"tracking.uri={folder_store}",
                       "num_samples=20", "card.eval_samples=0", f"out={tmp_path / 'never'}", root=session_runs.root)
    assert_refused(result, f"MLflow tracking URI '{folder_store}' cannot be used")
    assert not (tmp_path / "never").exists()


@pytest.mark.parametrize(("args", "fragment"), EVALUATE_CASES, ids=[" ".join(a) for a, _ in EVALUATE_CASES])
def test_evaluate_refuses_bad_input(session_runs, args: list[str], fragment: str) -> None:
    root = session_runs.root
    args = [a.replace("{root}", str(root)) for a in args]
    before = files_under(root)
    result = run_entry("evaluate.py", f"run_id={session_runs.run_ids['dcgan']}", *args, "eval.fidelity=false", root=root)
    assert_refused(result, fragment)
    assert files_under(root) == before


def test_a_conditional_model_on_a_one_class_folder_is_refused(root: Path, tmp_path_factory) -> None:
    from PIL import Image

    images = tmp_path_factory.mktemp("one-class") / "cats"
    images.mkdir()
    for i in range(40):
        Image.new("L", (16, 16), color=i * 5).save(images / f"{i}.png")
    before = files_under(root)
    result = run_entry("train.py", "data=folder", f"data.path={images.parent}", "data.channels=1", "data.image_size=16",
                       "data.batch_size=8", "model.conditional=true", "trainer.max_steps=2", root=root)
    assert_refused(result, "model.conditional=true needs labeled data with at least two classes")
    assert files_under(root) == before


def test_a_refused_run_leaves_no_failed_run_in_mlflow(root: Path) -> None:
    from mlflow.tracking import MlflowClient

    from tests.conftest import tracking_uri_for

    assert_refused(run_entry("train.py", "data.batch_size=5000", root=root), "is larger than")
    client = MlflowClient(tracking_uri_for(root))
    assert not [r for e in client.search_experiments() for r in client.search_runs([e.experiment_id])]
