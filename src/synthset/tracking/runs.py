"""Find runs and their checkpoints: by id, ``latest``, or ``best`` by the run's own selection metric.

Run tags and artifacts are data: they choose among runs and locate files, never name code.
``best`` compares only runs scored under one protocol (data, split, sample counts, extractor, size).
"""

from pathlib import Path

from mlflow.entities import Run
from mlflow.tracking import MlflowClient

from synthset.errors import SynthsetError, require
from synthset.metrics.protocol import PROTOCOL_TAG, SELECTION_METRIC_TAG, higher_is_better
from synthset.models.checkpoint_format import CHECKPOINT_ARTIFACT_DIR

RUN_DIR_TAG = "synthset.run_dir"
KIND_TAG = "synthset.kind"  # train | generate: run_id=latest/best only consider training runs


def recent_runs_hint(client: MlflowClient, experiment_name: str, limit: int = 5) -> str:
    experiment = client.get_experiment_by_name(experiment_name)
    if experiment is None:
        return f"experiment {experiment_name!r} has no runs yet"
    runs = client.search_runs([experiment.experiment_id], order_by=["attributes.start_time DESC"], max_results=limit)
    if not runs:
        return f"experiment {experiment_name!r} has no runs yet"
    return "recent runs: " + ", ".join(f"{r.info.run_id} ({r.info.run_name})" for r in runs)


def training_runs(client: MlflowClient, experiment_name: str, run_ref: str, query: str = "", key: str = "run_id") -> list[Run]:
    experiment = client.get_experiment_by_name(experiment_name)
    require(experiment is not None, f"{key}={run_ref} found no experiment {experiment_name!r}; train a model first.")
    filter_string = f"tags.`{KIND_TAG}` = 'train'" + (f" and {query}" if query else "")
    return client.search_runs([experiment.experiment_id], filter_string=filter_string,
                              order_by=["attributes.start_time DESC"], max_results=10_000)


def best_run(client: MlflowClient, experiment_name: str) -> tuple[Run, str]:
    """The best training run among those scored like the newest scored one, and how it was chosen.

    Runs scored on other data, splits, sample counts or extractors are not comparable and are left out.
    """
    scored = [r for r in training_runs(client, experiment_name, "best", f"tags.`{SELECTION_METRIC_TAG}` != ''")
              if r.data.metrics.get(r.data.tags.get(SELECTION_METRIC_TAG, ""), None) is not None]
    require(scored, f"run_id=best found no training run with a selection metric in experiment {experiment_name!r}; "
            "train with eval.every_n_steps set (or use run_id=latest or run_id=<id>).")
    newest = scored[0].data.tags
    group = [r for r in scored if all(r.data.tags.get(t) == newest.get(t) for t in (SELECTION_METRIC_TAG, PROTOCOL_TAG))]
    metric = newest[SELECTION_METRIC_TAG]
    pick = max if higher_is_better(metric) else min
    best = pick(group, key=lambda r: r.data.metrics[metric])
    how = (f"run_id=best: {best.info.run_name} ({best.info.run_id}), {metric}={best.data.metrics[metric]:.4f}, the best "
           f"of {len(group)} run(s) scored on [{newest.get(PROTOCOL_TAG)}]"
           + (f"; {len(scored) - len(group)} run(s) under other protocols were not compared" if len(group) < len(scored) else ""))
    return best, how


def find_run(client: MlflowClient, experiment_name: str, run_ref: str, key: str = "run_id") -> Run:
    """Resolve ``run_ref`` (given as ``key=...``): a run id, ``latest`` (newest training run) or ``best``."""
    if run_ref == "best":
        run, how = best_run(client, experiment_name)
        print(how)
        return run
    if run_ref in ("latest", "last"):
        runs = training_runs(client, experiment_name, run_ref, key=key)
        require(runs, f"{key}={run_ref} found no training run in experiment {experiment_name!r}; train a model first.")
        return runs[0]
    try:
        return client.get_run(run_ref)
    except Exception:
        raise SynthsetError(
            f"{key}={run_ref} is not a run in this MLflow store; {recent_runs_hint(client, experiment_name)}."
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


def child_run_home(client: MlflowClient, parent_run_id: str | None, fallback_experiment: str) -> tuple[str, str | None]:
    """(experiment id, parent run id) for a run hanging under ``parent_run_id`` when this store has that run.

    A dataset made against another store keeps its parent's id only as a tag; the run then goes into
    ``fallback_experiment`` (created if needed) with no parent.
    """
    try:
        experiment_id = client.get_run(parent_run_id).info.experiment_id if parent_run_id else None
    except Exception:  # an id from another store (MLflow raises its own RestException)
        experiment_id = None
    if experiment_id is not None:
        return experiment_id, parent_run_id
    found = client.get_experiment_by_name(fallback_experiment)
    return (found.experiment_id if found else client.create_experiment(fallback_experiment)), None
