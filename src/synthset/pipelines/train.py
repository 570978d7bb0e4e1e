"""train(cfg): data -> model -> Trainer -> MLflow run. Returns the metric a sweeper optimizes."""

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from omegaconf import DictConfig, OmegaConf, open_dict
from pytorch_lightning.utilities import rank_zero_only

from synthset.callbacks.evaluation import EvaluationCallback
from synthset.callbacks.quiet_profiler import QuietProfiler
from synthset.config import build
from synthset.cuda_probe import skip_unloadable_nvml_check
from synthset.data.datamodule import ImageDataModule, datamodule_from_record
from synthset.errors import SynthsetError, require
from synthset.metrics.protocol import SELECTION_SPLITS
from synthset.models import MODEL_REGISTRY, GenerativeModel
from synthset.models.blocks import SUPPORTED_IMAGE_SIZES
from synthset.models.checkpoint_format import RUN_CONFIG_KEY
from synthset.models.loading import read_checkpoint, validated_checkpoint
from synthset.plaindata import HYDRA_KEYS, check_arguments, type_label
from synthset.tracking.logger import FlushAroundCheckpoints, ResumableMLFlowLogger
from synthset.tracking.run_metadata import config_as_params, run_tags
from synthset.tracking.runs import RUN_DIR_TAG, find_checkpoint, find_run
from synthset.tracking.store import (
    default_artifact_location,
    ensure_store,
    require_existing_store,
    tracking_uri_for,
)
from synthset.tracking.sweep import check_this_job

log = logging.getLogger(__name__)


def check_model_arguments(model_cfg: DictConfig) -> None:
    """Every key of the model config fits its class's signature and types (``model.lr=abc`` is refused).

    The class is looked up among synthset's registered models by its ``_target_`` path, never imported by name.
    """
    values = OmegaConf.to_container(model_cfg, resolve=True)
    classes = {path: cls for cls in MODEL_REGISTRY.values()
               for path in (f"synthset.models.{cls.__qualname__}", f"{cls.__module__}.{cls.__qualname__}")}
    target = values.get("_target_")
    require(target in classes, f"model._target_={target!r} is not a synthset model; expected one of "
            f"{', '.join(sorted(classes))}, as the shipped model configs use.")
    kwargs = {k: v for k, v in values.items() if k not in HYDRA_KEYS and k not in ("num_classes", "class_names")}
    check_arguments(classes[target], kwargs, "model.", "the config")


def check_devices(trainer_cfg: Any) -> None:
    devices = trainer_cfg.get("devices", 1)
    valid = devices in ("auto", -1) or (isinstance(devices, int) and devices > 0) or (
        OmegaConf.is_list(devices) and len(devices) > 0) or (isinstance(devices, str) and devices.isdigit() and int(devices) > 0)
    require(valid, f"trainer.devices={devices} is not a device count; expected a positive integer, auto or a list "
            "of device ids, e.g. trainer.devices=1.")
    accelerator = str(trainer_cfg.get("accelerator", "auto"))
    if accelerator in ("gpu", "cuda"):
        import torch

        require(torch.cuda.is_available(), f"trainer.accelerator={accelerator} asks for a GPU, but this machine has "
                "no CUDA device; use trainer=cpu (or trainer.accelerator=auto) here.")


def validate_train_config(cfg: DictConfig) -> None:
    """Cheap checks before anything is loaded or logged, each with one clear sentence."""
    max_steps = cfg.trainer.get("max_steps", -1)
    require(
        isinstance(max_steps, int) and max_steps > 0,
        f"trainer.max_steps={max_steps} must be a positive integer (optimizer steps), e.g. trainer.max_steps=2000.",
    )
    check_devices(cfg.trainer)
    require(cfg.data.image_size in SUPPORTED_IMAGE_SIZES,
            f"data.image_size={cfg.data.image_size} is not supported; expected one of {SUPPORTED_IMAGE_SIZES}.")
    check_model_arguments(cfg.model)
    every = cfg.eval.every_n_steps
    require(isinstance(every, int) and every >= 0,
            f"eval.every_n_steps={every} must be 0 (off) or a positive integer of generator steps, e.g. 500.")
    require(cfg.eval.reference_split in SELECTION_SPLITS,
            f"eval.reference_split={cfg.eval.reference_split} would select models on {cfg.eval.reference_split!r}; use "
            "val (or train for the literature protocol): the test split only reports, through evaluate.py and cards.")
    flush = (cfg.logger or {}).get("flush_every_s", 0)
    require(isinstance(flush, int | float) and not isinstance(flush, bool) and flush >= 0,
            f"logger.flush_every_s={flush} must be a number of seconds >= 0 (0 writes every metric at once), e.g. 10.")
    check_this_job(cfg)


def build_datamodule(cfg: DictConfig) -> ImageDataModule:
    datamodule = datamodule_from_record(OmegaConf.to_container(cfg.data, resolve=True), "the data config")
    datamodule.setup("fit")
    return datamodule


def build_model(cfg: DictConfig, datamodule: ImageDataModule) -> GenerativeModel:
    require(not cfg.model.get("conditional") or datamodule.num_classes >= 2,
            f"model.conditional=true needs labeled data with at least two classes, but data={cfg.data.name} has "
            f"{datamodule.num_classes}; use a folder of class subfolders, or set model.conditional=false.")
    return build(
        cfg.model, num_classes=datamodule.num_classes, class_names=list(datamodule.class_names)
    )


def explicit_overrides(prefixes: tuple[str, ...]) -> list[str]:
    """The command-line overrides of this job that start with ``prefixes`` (none outside a Hydra app)."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return []
    return [o for o in HydraConfig.get().overrides.task if o.lstrip("+~").startswith(prefixes)]


def check_same_model(stored: dict[str, Any], cfg: DictConfig, overrides: list[str]) -> None:
    """Model overrides given with ``resume`` must agree with the checkpoint, key by key."""
    hparams = stored.get("hyper_parameters", {})
    model_cfg = OmegaConf.to_container(cfg.model, resolve=True)
    for override in overrides:
        key = override.lstrip("+~").split("=", 1)[0]
        field = "name" if key == "model" else key.removeprefix("model.")
        ours, theirs = model_cfg.get(field), hparams.get(field)
        if field == "name":
            require(ours == theirs, f"resume=... points at a run of model {theirs!r}, but this command trains model={ours}; "
                    "drop the model override (resume continues the run's own model) or resume another run.")
        elif list_or_value(ours) != list_or_value(theirs):
            raise SynthsetError(f"resume=... points at a run trained with model.{field}={theirs!r}, but this command has "
                                f"model.{field}={ours!r}; drop the override (resume continues the run's own model).")


def list_or_value(value: Any) -> Any:
    return list(value) if isinstance(value, tuple | list) else value


def adopt_stored_run(cfg: DictConfig, stored: dict[str, Any], model_class: type) -> None:
    """Continue the run as it was: its model (through the registry) and its data record replace the defaults."""
    check_same_model(stored, cfg, explicit_overrides(("model",)))
    hparams = {k: v for k, v in stored["hyper_parameters"].items() if k not in ("num_classes", "class_names")}
    stored_data = (stored.get(RUN_CONFIG_KEY) or {}).get("data")
    require(isinstance(stored_data, dict) and "source" in stored_data,
            "resume=... points at a checkpoint without its data record; it predates this synthset, so start a new run.")
    if explicit_overrides(("data",)):
        raise SynthsetError("resume=... continues the run on its own data; drop the data overrides.")
    with open_dict(cfg):
        # The class comes from synthset's registry (by the checkpoint's name), never from the file.
        cfg.model = {"_target_": f"{model_class.__module__}.{model_class.__qualname__}", **hparams}
        cfg.data = stored_data
    adopt_run_schedule(cfg, stored.get(RUN_CONFIG_KEY) or {})


# What a resumed run keeps from its own record unless the command sets it: its length, its evaluation and
# its schedules. Paths, hardware and anything else stay this command's, so a record cannot steer writes.
RESUMED_SETTINGS = ("seed", "trainer.max_steps", "trainer.max_epochs", "trainer.log_every_n_steps", "trainer.precision",
                    "eval", "callbacks.sample_grid.every_n_steps", "callbacks.sample_grid.per_class",
                    "callbacks.checkpoints.every_n_train_steps")


def stored_leaves(record: dict[str, Any], key: str) -> list[tuple[str, Any]]:
    """(dotted key, value) for every plain value at or under ``key`` in a stored run config."""
    node: Any = record
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return []
        node = node[part]
    if isinstance(node, dict):
        return [leaf for name in node for leaf in stored_leaves(record, f"{key}.{name}")]
    return [(key, node)]


def adopt_run_schedule(cfg: DictConfig, record: dict[str, Any]) -> None:
    """``resume`` goes on as the run started (e.g. an ``experiment=`` run keeps its steps and monitor)."""
    given = [o.lstrip("+~").split("=", 1)[0] for o in explicit_overrides(("seed", "trainer", "eval", "callbacks"))]
    absent = object()
    for key in RESUMED_SETTINGS:
        for dotted, value in stored_leaves(record, key):
            current = OmegaConf.select(cfg, dotted, default=absent, throw_on_missing=False)
            if current is absent or any(dotted == g or dotted.startswith(g + ".") for g in given):
                continue  # never adds a key, never overrides the command line
            require(value is None or current is None or type(value) is type(current),
                    f"resume=... reads {dotted}={value!r} from the run's record, but synthset expects "
                    f"{type_label(type(current))} there; the checkpoint was altered, so start a new run.")
            OmegaConf.update(cfg, dotted, value, merge=False)


def resumable_checkpoint(checkpoint: Path) -> tuple[Path, dict[str, Any], type]:
    """``last.ckpt`` if it reads, else the copy it replaced (``last.ckpt.prev``), saying so; refused if tampered."""
    for path in (checkpoint, checkpoint.with_name(checkpoint.name + ".prev")):
        if not path.is_file():
            continue
        try:
            read_checkpoint(path)
        except SynthsetError:
            print(f"warning: {path} cannot be read (damaged or cut short); resuming from the checkpoint it replaced, "
                  f"{path.name}.prev, instead")
            continue
        stored, model_class = validated_checkpoint(path)  # a tampered checkpoint is refused, not resumed
        return path, stored, model_class
    raise SynthsetError(f"resume found no readable checkpoint at {checkpoint} (nor {checkpoint.name}.prev); "
                        "the run cannot be continued, so start a new one.")


def open_resume(cfg: DictConfig, uri: str) -> tuple[str, Path, Path]:
    """For ``resume=<run_id|last>``: the run id, its run folder and the checkpoint to continue from.

    The run's folder tag is trusted only when it already holds that run's checkpoint; otherwise the
    checkpoint is downloaded into this job's own fresh folder. The run's model and data are adopted.
    """
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    run = find_run(client, cfg.tracking.experiment, str(cfg.resume), key="resume")
    tagged = Path(run.data.tags.get(RUN_DIR_TAG) or cfg.paths.run_dir)
    run_dir = tagged if (tagged / "checkpoints" / "last.ckpt").is_file() else Path(cfg.paths.run_dir)
    path, stored, model_class = resumable_checkpoint(find_checkpoint(client, run, "last", run_dir / "checkpoints"))
    adopt_stored_run(cfg, stored, model_class)
    return run.info.run_id, run_dir, path


def build_logger(cfg: DictConfig, uri: str, run_dir: Path, resume_run_id: str | None) -> ResumableMLFlowLogger | None:
    # Only rank 0 logs; on other DDP ranks an MLflow client would open (and race to create) the store.
    if not cfg.logger or rank_zero_only.rank != 0:
        return None
    return build(
        cfg.logger,
        tracking_uri=uri,
        experiment_name=cfg.tracking.experiment,
        artifact_location=default_artifact_location(uri, cfg.paths.output_dir),
        tags=run_tags(cfg, run_dir),
        resume_run_id=resume_run_id,
    )


def build_trainer(cfg: DictConfig, callbacks: list[pl.Callback], run_dir: Path) -> pl.Trainer:
    """The Trainer without a logger yet: the MLflow run is only created once nothing can refuse the input."""
    from lightning_fabric.utilities.exceptions import MisconfigurationException

    skip_unloadable_nvml_check()
    quiet = {} if cfg.trainer.get("profiler") else {"profiler": QuietProfiler()}
    try:
        return build(cfg.trainer, logger=False, callbacks=callbacks, default_root_dir=str(run_dir), **quiet)
    except MisconfigurationException as error:
        first = str(error).strip().splitlines()[0]
        raise SynthsetError(f"the trainer settings are refused by Lightning ({first}); fix the trainer.* overrides.") from None


def slow_precision_warning(precision: str, on_cpu: bool, native_bf16: bool) -> str | None:
    """bf16 on a CPU without bf16 instructions (AVX512-BF16 or AMX) is emulated: slower than fp32, not faster."""
    if on_cpu and str(precision).startswith("bf16") and not native_bf16:
        return (f"warning: trainer.precision={precision} on this CPU, which has no bf16 instructions, runs slower than "
                "fp32; pass trainer.precision=32-true here.")
    return None


def warn_about_precision(trainer: pl.Trainer) -> None:
    import torch

    on_cpu, bf16 = isinstance(trainer.accelerator, pl.accelerators.CPUAccelerator), str(trainer.precision).startswith("bf16")
    native = on_cpu and bf16 and torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()
    message = slow_precision_warning(trainer.precision, on_cpu, bool(native))
    if message and trainer.is_global_zero:
        print(message)


@dataclass
class TrainingResult:
    model: GenerativeModel
    datamodule: ImageDataModule
    trainer: pl.Trainer
    run_id: str | None

    def final_score(self) -> float | None:
        """The last selection metric the evaluation callback measured (what sweepers optimize), if it ran."""
        for callback in self.trainer.callbacks:
            if isinstance(callback, EvaluationCallback) and callback.last_metrics:
                return callback.last_metrics.get(callback.monitor)
        return None


def train(cfg: DictConfig) -> float | None:
    """Train the configured model; returns the final selection metric (``eval/val/fid`` by default) or None."""
    return run_training(cfg).final_score()


def record_run(logger: ResumableMLFlowLogger, cfg: DictConfig, datamodule: ImageDataModule) -> None:
    """Params (the config without Hydra keys), the config YAML and where each split comes from."""
    logger.log_hyperparams(config_as_params(cfg))
    if logger.resuming:
        return
    client, run_id = logger.experiment, logger.run_id
    client.log_text(run_id, OmegaConf.to_yaml(cfg, resolve=True), "config.yaml")
    summary = datamodule.split_summary()
    client.set_tag(run_id, "synthset.test_split", summary["test_origin"])
    for split in ("train", "val", "test"):
        client.set_tag(run_id, f"synthset.split.{split}",
                       f"{summary[split]['images']} images, fingerprint {summary[split]['fingerprint']}")


def run_training(cfg: DictConfig, extra_callbacks: list[pl.Callback] | None = None) -> TrainingResult:
    """Train the configured model and hand back everything it built (``extra_callbacks``: e.g. a profiler's)."""
    uri = tracking_uri_for(cfg)
    resume_run_id, checkpoint = None, None
    if cfg.get("resume"):
        require_existing_store(uri)
        resume_run_id, run_dir, checkpoint = open_resume(cfg, uri)
        with open_dict(cfg):
            cfg.paths.run_dir = str(run_dir)
    validate_train_config(cfg)
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    run_dir = Path(cfg.paths.run_dir)

    # Everything that can refuse the input runs before the store, the run folder or the MLflow run exist.
    datamodule = build_datamodule(cfg)
    model = build_model(cfg, datamodule)
    model.run_config = config_as_params(cfg)
    callbacks = [build(c) for c in (cfg.callbacks or {}).values() if c is not None] + list(extra_callbacks or [])
    if not cfg.trainer.get("enable_progress_bar", True):
        callbacks = [c for c in callbacks if not isinstance(c, pl.callbacks.ProgressBar)]
    trainer = build_trainer(cfg, callbacks, run_dir)
    warn_about_precision(trainer)
    if cfg.logger and rank_zero_only.rank == 0:  # torchrun starts all ranks at once: one creates the store
        ensure_store(uri)
    logger = build_logger(cfg, uri, run_dir, resume_run_id)
    if logger is not None:
        trainer.loggers = [logger]
        trainer.callbacks.append(FlushAroundCheckpoints(logger))
    run_dir.mkdir(parents=True, exist_ok=True)
    if logger is not None and trainer.is_global_zero:
        record_run(logger, cfg, datamodule)

    trainer.fit(model, datamodule=datamodule, ckpt_path=str(checkpoint) if checkpoint else None)

    if logger is not None and trainer.is_global_zero:
        print(f"MLflow run id: {logger.run_id}  (experiment {cfg.tracking.experiment!r}, store {uri})")
        print("Open the UI with: make ui   then browse http://127.0.0.1:5000/#/experiments/"
              f"{logger.experiment_id}/runs/{logger.run_id}")
    return TrainingResult(model, datamodule, trainer, logger.run_id if logger else None)
