"""Trust: artifacts are data, never code; synthset deletes only what it wrote.

Every entry point that reads an artifact (generate, evaluate, utility, resume) is fed tampered
artifacts of several kinds. Each carries a canary (a file the payload would create): it must not
appear, the command must exit 2 with one ``error:`` line, and nothing may be created.
"""

import json
import os
import shutil
from pathlib import Path

import pytest
import torch

from tests.conftest import FAST_TRAIN, files_under, run_entry

GENERATE = ["num_samples=20", "shard_size=10", "progress=false", "card.eval_samples=0", "memorization.enabled=false"]


class Payload:
    """Pickles to a call that creates the canary: what an unsafe ``torch.load`` would run."""

    def __init__(self, canary: Path) -> None:
        self.canary = canary

    def __reduce__(self):
        return (os.system, (f"touch {self.canary}",))


def tamper(source: Path, target: Path, change) -> Path:
    checkpoint = torch.load(source, map_location="cpu", weights_only=True)
    change(checkpoint)
    torch.save(checkpoint, target)
    return target


def target_writing(canary: Path) -> dict:
    """A Hydra node that would write the canary if anything instantiated it (Hydra's blocklist lets this through)."""
    return {"_target_": "pathlib.Path.write_text", "self": str(canary), "data": "pwned"}


def checkpoint_tamperings(canary: Path) -> dict:
    return {
        "unknown model name": lambda c: c.update(synthset_model="subprocess.Popen",
                                                 hyper_parameters={"args": ["touch", str(canary)]}),
        "legacy class path, no registered name": lambda c: (c.pop("synthset_model"),
                                                            c.update(synthset_model_class="subprocess.Popen")),
        "_target_ inside a hyperparameter": lambda c: c["hyper_parameters"].update(diffaugment=target_writing(canary)),
        "_target_ as a hyperparameter key": lambda c: c["hyper_parameters"].update(_target_="pathlib.Path.touch"),
        "unknown hyperparameter": lambda c: c["hyper_parameters"].update(on_load=f"touch {canary}"),
        "hyperparameter of the wrong type": lambda c: c["hyper_parameters"].update(width="16; touch canary"),
        "_target_ as the data source": lambda c: c["synthset_run_config"]["data"].update(source=target_writing(canary)),
        "unknown source kind": lambda c: c["synthset_run_config"]["data"].update(
            source={"kind": "builtins.exec", "source": f"open('{canary}', 'w')"}),
        "_target_ in the stored evaluation": lambda c: c.update(synthset_eval={"metrics": target_writing(canary)}),
    }


@pytest.fixture
def clean_checkpoint(session_runs, tmp_path: Path) -> Path:
    return Path(shutil.copy(session_runs.checkpoints["dcgan"], tmp_path / "handed-over.ckpt"))


def assert_refused_safely(result, canary: Path, root: Path, before: dict) -> None:
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert result.returncode == 2 and len(errors) == 1 and "Traceback" not in result.stderr, result.stderr[-3000:]
    assert not canary.exists(), "a stored artifact ran code"
    assert files_under(root) == before


@pytest.mark.parametrize("kind", list(checkpoint_tamperings(Path("x"))))
def test_tampered_checkpoints_are_refused_by_generate_and_evaluate(clean_checkpoint: Path, tmp_path: Path, kind: str) -> None:
    canary = tmp_path / "canary"
    bad = tamper(clean_checkpoint, tmp_path / "bad.ckpt", checkpoint_tamperings(canary)[kind])
    root = tmp_path / "project"
    root.mkdir()
    for script, args in (("generate.py", [f"ckpt={bad}", f"out={root / 'ds'}", *GENERATE]),
                         ("evaluate.py", [f"ckpt={bad}", "eval.num_samples=10", "eval.fidelity=false"])):
        before = files_under(root)
        assert_refused_safely(run_entry(script, *args, root=root), canary, root, before)


def test_a_pickled_object_in_a_checkpoint_never_runs(clean_checkpoint: Path, tmp_path: Path) -> None:
    canary = tmp_path / "canary"
    checkpoint = torch.load(clean_checkpoint, weights_only=True)
    checkpoint["synthset_run_config"]["note"] = Payload(canary)
    torch.save(checkpoint, tmp_path / "pickled.ckpt")
    assert not canary.exists()
    result = run_entry("generate.py", f"ckpt={tmp_path / 'pickled.ckpt'}", f"out={tmp_path / 'ds'}", *GENERATE, root=tmp_path)
    assert result.returncode == 2 and "cannot be read" in result.stderr and not canary.exists()


def test_a_tampered_run_checkpoint_is_refused_through_run_id(session_runs, tmp_path: Path) -> None:
    """A shared store's run whose checkpoint someone replaced: found through the run, refused as data."""
    from mlflow.tracking import MlflowClient

    from tests.conftest import tracking_uri_for

    root = tmp_path / "project"
    shutil.copytree(session_runs.root / "outputs", root / "outputs")
    client = MlflowClient(tracking_uri_for(root))
    run_id = session_runs.run_ids["wgan"]
    local = Path(client.get_run(run_id).data.tags["synthset.run_dir"]) / "checkpoints" / "last.ckpt"
    client.set_tag(run_id, "synthset.run_dir", str(tmp_path / "elsewhere"))  # the tag now points at a planted copy
    canary = tmp_path / "canary"
    planted = tmp_path / "elsewhere" / "checkpoints"
    planted.mkdir(parents=True)
    tamper(local, planted / "last.ckpt", checkpoint_tamperings(canary)["_target_ as the data source"])
    before = files_under(root)
    result = run_entry("generate.py", f"run_id={run_id}", "checkpoint=last", f"out={root / 'ds'}", *GENERATE, root=root)
    assert_refused_safely(result, canary, root, before)


def test_resume_refuses_a_tampered_checkpoint(root: Path, tmp_path: Path) -> None:
    args = [*FAST_TRAIN, "model=vae", "trainer.max_steps=4", "logger.run_name=to-resume"]
    assert run_entry("train.py", *args, root=root).returncode == 0
    (last,) = root.glob("outputs/runs/*/*/checkpoints/last.ckpt")
    canary = tmp_path / "canary"
    tamper(last, last, checkpoint_tamperings(canary)["_target_ as the data source"])
    before = files_under(root)
    assert_refused_safely(run_entry("train.py", *args, "trainer.max_steps=8", "resume=last", root=root), canary, root, before)


@pytest.fixture(scope="module")
def small_dataset(session_runs, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("trusted") / "ds"
    result = run_entry("generate.py", f"run_id={session_runs.run_ids['dcgan']}", f"out={out}", *GENERATE,
                       "format=npz", root=session_runs.root)
    assert result.returncode == 0, result.stderr[-3000:]
    return out


CARD_TAMPERINGS = {
    "_target_ as the source": lambda card, canary: card["source"]["data_config"].update(source=target_writing(canary)),
    "unknown source kind": lambda card, canary: card["source"]["data_config"].update(
        source={"kind": "subprocess.Popen", "args": ["touch", str(canary)]}),
    "_target_ anywhere in the card": lambda card, canary: card["spec"].update(labels=target_writing(canary)),
    "wrong argument type": lambda card, canary: card["source"]["data_config"].update(image_size="16; touch"),
}


@pytest.mark.parametrize("kind", list(CARD_TAMPERINGS))
def test_tampered_cards_are_refused_by_utility(session_runs, small_dataset: Path, tmp_path: Path, kind: str) -> None:
    copy = Path(shutil.copytree(small_dataset, tmp_path / "downloaded"))
    card = json.loads((copy / "synthset.json").read_text())
    canary = tmp_path / "canary"
    CARD_TAMPERINGS[kind](card, canary)
    (copy / "synthset.json").write_text(json.dumps(card))
    before = files_under(session_runs.root)
    result = run_entry("evaluate.py", "task=utility", f"dataset={copy}", "utility.steps=5", "progress=false",
                       root=session_runs.root)
    assert_refused_safely(result, canary, session_runs.root, before)


def test_a_checkpoint_file_with_no_run_behind_it_generates_and_evaluates(clean_checkpoint: Path, tmp_path: Path) -> None:
    root = tmp_path / "fresh"  # no store, no runs: a file someone handed over
    root.mkdir()
    done = run_entry("generate.py", f"ckpt={clean_checkpoint}", f"out={root / 'ds'}", *GENERATE, root=root)
    assert done.returncode == 0, done.stderr[-3000:]
    card = json.loads((root / "ds" / "synthset.json").read_text())
    assert card["spec"]["source_run_id"] is None and card["source"]["checkpoint"] == "handed-over.ckpt"
    scored = run_entry("evaluate.py", f"ckpt={clean_checkpoint}", "eval.num_samples=20", "eval.fidelity=false", root=root)
    assert scored.returncode == 0, scored.stderr[-3000:]
    assert "gan_test" in scored.stdout and "digits/test" in scored.stdout


# ---- overwrite=true deletes only what synthset wrote ------------------------------------------------------------

def test_overwrite_never_touches_a_folder_of_user_files(session_runs, tmp_path: Path) -> None:
    user = tmp_path / "my-photos"
    (user / "album").mkdir(parents=True)
    (user / "album" / "me.png").write_bytes(b"precious")
    (user / "manifest.json").write_text('{"mine": true}')  # a manifest, but not synthset's
    before = files_under(user)
    result = run_entry("generate.py", f"run_id={session_runs.run_ids['dcgan']}", f"out={user}", "overwrite=true",
                       *GENERATE, root=session_runs.root)
    assert result.returncode == 2 and "holds no dataset synthset wrote" in result.stderr
    assert files_under(user) == before


def test_overwrite_replaces_a_synthset_dataset_but_not_a_foreign_file_inside_it(session_runs, small_dataset: Path,
                                                                                tmp_path: Path) -> None:
    out = Path(shutil.copytree(small_dataset, tmp_path / "ds"))
    (out / "notes.txt").write_text("mine")
    common = [f"run_id={session_runs.run_ids['dcgan']}", f"out={out}", *GENERATE, "format=npz", "overwrite=true"]
    refused = run_entry("generate.py", *common, "seed=7", root=session_runs.root)
    assert refused.returncode == 2 and "does not account for" in refused.stderr and "notes.txt" in refused.stderr
    assert (out / "notes.txt").read_text() == "mine" and (out / "manifest.json").is_file()
    (out / "notes.txt").unlink()
    replaced = run_entry("generate.py", *common, "seed=7", root=session_runs.root)
    assert replaced.returncode == 0, replaced.stderr[-3000:]
    assert json.loads((out / "manifest.json").read_text())["spec"]["seed"] == 7


def test_make_run_needs_no_overwrite() -> None:
    from tests.conftest import REPO

    recipe = (REPO / "Makefile").read_text().split("\nrun:")[1].split("\n\n")[0]
    assert "generate.py" in recipe and "overwrite" not in recipe
