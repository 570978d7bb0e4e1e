"""Find runs and their checkpoints: by id, ``latest`` or ``best`` (lowest eval/fid)."""

from pathlib import Path

from mlflow.entities import Run
from mlflow.tracking import MlflowClient

from synthset.errors import SynthsetError, require

RUN_DIR_TAG = "synthset.run_dir"
KIND_TAG = "synthset.kind"  # train | generate: run_id=latest/best only consider training runs
CHECKPOINT_ARTIFACT_DIR = "checkpoints"


def recent_runs_hint(client: MlflowClient, experiment_name: str, limit: int = 5) -> str:
    experiment = client.get_experiment_by_name(experiment_name)
    if experiment is None:
        return f"experiment {experiment_name!r} has no runs yet"
    runs = client.search_runs([experiment.experiment_id], order_by=["attributes.start_time DESC"], max_results=limit)
    if not runs:
        return f"experiment {experiment_name!r} has no runs yet"
    return "recent runs: " + ", ".join(f"{r.info.run_id} ({r.info.run_name})" for r in runs)


def find_run(client: MlflowClient, experiment_name: str, run_ref: str, metric: str = "eval/fid") -> Run:
    """Resolve ``run_ref``: a run id, ``latest`` (newest run) or ``best`` (lowest ``metric``)."""
    experiment = client.get_experiment_by_name(experiment_name)
    if run_ref in ("latest", "last", "best"):
        require(experiment is not None, f"run_id={run_ref} found no experiment {experiment_name!r}; train a model first.")
        order = [f"metrics.`{metric}` ASC"] if run_ref == "best" else ["attributes.start_time DESC"]
        query = f"tags.`{KIND_TAG}` = 'train'" + (f" and metrics.`{metric}` >= 0" if run_ref == "best" else "")
        runs = client.search_runs(
            [experiment.experiment_id], filter_string=query, order_by=order, max_results=1
        )
        require(runs, f"run_id={run_ref} found no matching run in experiment {experiment_name!r}; "
                + ("train with eval.every_n_steps set so runs carry eval/fid." if run_ref == "best" else "train a model first."))
        return runs[0]
    try:
        return client.get_run(run_ref)
    except Exception:
        raise SynthsetError(
            f"run_id={run_ref} is not a run in this MLflow store; {recent_runs_hint(client, experiment_name)}."
        ) from None


def find_checkpoint(client: MlflowClient, run: Run, which: str, download_dir: Path) -> Path:
    """Local path of ``<which>.ckpt`` for ``run``: the run folder, else its artifacts.

    ``which`` is ``last``, ``best``, or ``auto`` (best when the run kept one, else last).
    """
    require(which in ("last", "best", "auto"), f"checkpoint={which} is unknown; expected best, last or auto.")
    if which == "auto":
        try:
            return find_checkpoint(client, run, "best", download_dir)
        except SynthsetError:
            return find_checkpoint(client, run, "last", download_dir)
    run_dir = run.data.tags.get(RUN_DIR_TAG)
    if run_dir:
        local = Path(run_dir) / "checkpoints" / f"{which}.ckpt"
        if local.is_file():
            return local
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id, CHECKPOINT_ARTIFACT_DIR)}
    wanted = f"{CHECKPOINT_ARTIFACT_DIR}/{which}.ckpt"
    require(
        wanted in artifacts,
        f"run {run.info.run_id} has no {which}.ckpt checkpoint (artifacts: {sorted(artifacts) or 'none'}); "
        + ("use checkpoint=last, or train with eval.every_n_steps to keep a best checkpoint."
           if which == "best" else "let the run reach its first checkpoint, or train again."),
    )
    download_dir.mkdir(parents=True, exist_ok=True)
    return Path(client.download_artifacts(run.info.run_id, wanted, str(download_dir)))
