"""Hydra multirun -> one MLflow parent run per sweep, every job a child run (``mlflow.parentRunId``).

The Hydra callback runs in the process that starts the sweep: it creates (or upgrades) the store
once, before any parallel job can race on it, opens the parent run and leaves its id in the sweep
folder, where every job finds it (local, joblib, submitit and SLURM jobs alike).
"""

import json
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig

from synthset.atomic import atomic_write_text
from synthset.errors import report_errors, require
from synthset.tracking.runs import KIND_TAG
from synthset.tracking.store import default_artifact_location, ensure_store, tracking_uri_for

PARENT_RUN_FILE = "mlflow_parent_run.json"
PARENT_TAG = "mlflow.parentRunId"
BEST_RUN_TAG = "synthset.best_run_id"
MAX_RUN_NAME = 120


def subprocess_ddp(trainer_cfg: Any) -> bool:
    """True when Lightning would re-launch the script once per rank (``ddp*`` other than spawn/fork)."""
    strategy = str(trainer_cfg.get("strategy", "auto"))
    devices = trainer_cfg.get("devices", 1)
    relaunches = strategy.startswith("ddp") and not any(s in strategy for s in ("spawn", "fork", "notebook"))
    return relaunches and str(devices) not in ("1", "[0]")


def check_sweepable(cfg: DictConfig, choices: Any) -> None:
    """Refuse, before any job starts, the sweeps that cannot work (one sentence each)."""
    launcher = choices.get("hydra/launcher", "basic")
    # Multirun + subprocess DDP is broken upstream: each rank would run the whole sweep again.
    require(
        launcher.startswith("submitit") or not subprocess_ddp(cfg.trainer),
        f"trainer.strategy={cfg.trainer.get('strategy')} (trainer=ddp) cannot run inside a Hydra multirun (-m) with "
        f"hydra/launcher={launcher}, because Lightning re-launches the script per rank and each rank would "
        "re-run the whole sweep; sweep locally with trainer=ddp_spawn, or launch with "
        "hydra/launcher=submitit_slurm (one process per GPU).",
    )
    require(
        choices.get("hydra/sweeper") != "optuna" or cfg.eval.every_n_steps > 0,
        f"sweep=optuna minimizes the final eval/val/fid, but eval.every_n_steps={cfg.eval.every_n_steps} turns "
        "evaluation off; set eval.every_n_steps to a positive number such as 500.",
    )


def parent_run_of_this_job() -> str | None:
    """The sweep's parent run id when this process runs one job of a multirun, else None."""
    if not HydraConfig.initialized():
        return None
    hydra_cfg = HydraConfig.get()
    if hydra_cfg.mode != RunMode.MULTIRUN:
        return None
    path = Path(hydra_cfg.sweep.dir) / PARENT_RUN_FILE
    return json.loads(path.read_text())["run_id"] if path.is_file() else None


def check_this_job(cfg: DictConfig) -> None:
    """``check_sweepable`` from inside a job (sweeps may vary the trainer per job)."""
    if HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN:
        check_sweepable(cfg, HydraConfig.get().runtime.choices)


def sweep_params(overrides: list[str]) -> dict[str, str]:
    """``model=dcgan,wgan`` -> ``{"model": "dcgan,wgan"}``: what the sweep varies and fixes."""
    params = {}
    for override in overrides:
        key, _, value = override.partition("=")
        params[key.lstrip("+~")] = value[:500]
    return params


def monitored_metric(cfg: DictConfig) -> str:
    """``eval/val/fid`` by default: the selection split, and FID or its named proxy (or ``eval.monitor``)."""
    from synthset.metrics.protocol import monitored_key

    return f"eval/{cfg.eval.reference_split}/{monitored_key(cfg.eval.monitor, cfg.metrics.fid_extractor)}"


class MLflowSweepCallback(Callback):
    """Opens the sweep's parent run before the jobs and records the best child after them."""

    @report_errors  # Hydra turns a callback's exception into a warning; a refused sweep must stop here
    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        # Hydra sets its config only per job; the sweep folder and ${hydra:...} paths need it now.
        HydraConfig.instance().set_config(config)
        choices = config.hydra.runtime.choices
        check_sweepable(config, choices)
        if not config.get("logger"):
            return
        from mlflow.tracking import MlflowClient

        uri = tracking_uri_for(config)
        ensure_store(uri)
        client = MlflowClient(uri)
        experiment = client.get_experiment_by_name(config.tracking.experiment)
        experiment_id = experiment.experiment_id if experiment else client.create_experiment(
            config.tracking.experiment, artifact_location=default_artifact_location(uri, config.paths.output_dir)
        )
        overrides = list(config.hydra.overrides.task)
        sweeper = choices.get("hydra/sweeper", "basic")
        name = config.tracking.get("sweep_name") or f"{sweeper}: {' '.join(overrides) or 'defaults'}"
        sweep_dir = Path(str(config.hydra.sweep.dir))
        run = client.create_run(experiment_id, run_name=name[:MAX_RUN_NAME], tags={
            KIND_TAG: "sweep", "synthset.sweeper": sweeper, "synthset.launcher": choices.get("hydra/launcher", "basic"),
            "synthset.sweep_dir": str(sweep_dir), "synthset.monitor": monitored_metric(config),
        })
        for key, value in sweep_params(overrides).items():
            client.log_param(run.info.run_id, key, value)
        for key, value in (config.hydra.sweeper.get("params") or {}).items():
            client.log_param(run.info.run_id, f"search/{key}", str(value)[:500])
        atomic_write_text(sweep_dir / PARENT_RUN_FILE, json.dumps({"run_id": run.info.run_id, "tracking_uri": uri}))
        print(f"MLflow sweep run: {run.info.run_id} ({name[:MAX_RUN_NAME]}); jobs are its children.")

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        if not config.get("logger"):
            return
        from mlflow.tracking import MlflowClient

        sweep_dir = Path(str(config.hydra.sweep.dir))
        record = json.loads((sweep_dir / PARENT_RUN_FILE).read_text())
        client, parent_id = MlflowClient(record["tracking_uri"]), record["run_id"]
        summarize_sweep(client, parent_id, monitored_metric(config), sweep_dir)


def summarize_sweep(client, parent_id: str, metric: str, sweep_dir: Path) -> None:
    """Best child by ``metric`` onto the parent (``best/<metric>``, tag), Optuna's results as an artifact."""
    parent = client.get_run(parent_id)
    children = client.search_runs(
        [parent.info.experiment_id], filter_string=f"tags.`{PARENT_TAG}` = '{parent_id}'", max_results=10_000
    )
    scored = [c for c in children if metric in c.data.metrics]
    if scored:
        from synthset.metrics.protocol import higher_is_better

        best = (max if higher_is_better(metric) else min)(scored, key=lambda c: c.data.metrics[metric])
        client.log_metric(parent_id, f"best/{metric}", best.data.metrics[metric])
        client.set_tag(parent_id, BEST_RUN_TAG, best.info.run_id)
        client.set_tag(parent_id, "synthset.best_run_name", best.info.run_name)
        print(f"best of {len(children)} jobs by {metric}: {best.info.run_name} ({best.info.run_id}) "
              f"{metric}={best.data.metrics[metric]:.4f}")
    client.log_metric(parent_id, "sweep/jobs", len(children))
    results = sweep_dir / "optimization_results.yaml"  # written by the Optuna sweeper
    if results.is_file():
        client.log_artifact(parent_id, str(results))
    failed = any(c.info.status != "FINISHED" for c in children)
    client.set_terminated(parent_id, "FAILED" if failed else "FINISHED")
