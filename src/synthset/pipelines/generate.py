"""generate(cfg): a trained run -> a labeled synthetic dataset with a card, memorization check and gate."""

import hashlib
from pathlib import Path
from typing import Any

import torch
from mlflow.tracking import MlflowClient
from omegaconf import DictConfig, OmegaConf
from torchvision.utils import make_grid, save_image

from synthset.errors import SynthsetError, require
from synthset.generation.card import write_card
from synthset.generation.distributed import (
    Ranks,
    barrier,
    device_for,
    join_group,
    leave_group,
    main_first,
    spawn,
)
from synthset.generation.memorization import MemorizationCheck
from synthset.generation.runner import Manifest, ShardedGeneration, prepare_output
from synthset.generation.spec import GenerationSpec, label_plan
from synthset.generation.writers import WRITERS
from synthset.metrics.classifier import reference_classifier
from synthset.metrics.evaluation import score_images
from synthset.metrics.fidelity import MetricSettings
from synthset.pipelines.evaluate import datamodule_of, open_run_checkpoint
from synthset.tracking.runs import KIND_TAG


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_gate(client: MlflowClient, run_id: str, max_fid: float | None) -> float | None:
    """Refuse models whose FID is worse than ``gate.max_fid``; returns the FID it judged."""
    fid = client.get_run(run_id).data.metrics.get("eval/fid")
    if max_fid is None:
        return fid
    require(fid is not None, f"gate.max_fid={max_fid} needs the run's eval/fid, but run {run_id} has none; "
            "train with eval.every_n_steps or drop gate.max_fid.")
    require(fid <= max_fid, f"run {run_id} has eval/fid={fid:.2f}, worse than gate.max_fid={max_fid}; "
            "train longer, pick a better run (run_id=best) or raise gate.max_fid.")
    return fid


def labels_option(value: Any) -> Any:
    return OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value


def grid_selection(images: torch.Tensor, labels: torch.Tensor | None, num_classes: int, per_row: int = 8) -> tuple[torch.Tensor, int]:
    """Up to ``per_row`` images of each class, one class per row (the first 64 when unlabeled)."""
    if labels is None:
        return images[: per_row * per_row], per_row
    rows = [images[(labels == k).nonzero().squeeze(1)[:per_row]] for k in range(num_classes)]
    per_row = min(per_row, min(len(r) for r in rows))
    return torch.cat([r[:per_row] for r in rows]), max(per_row, 1)


def save_grid(images: torch.Tensor, nrow: int, path: Path) -> None:
    grid = make_grid(images.float() / 255.0, nrow=nrow, pad_value=1.0)
    save_image(grid, path.with_name(f".{path.name}.tmp.png"))
    path.with_name(f".{path.name}.tmp.png").replace(path)


def generate(cfg: DictConfig) -> Path:
    """Write the dataset; returns its folder. Re-running the same command resumes a killed run.

    Under ``torchrun`` (or with ``num_processes`` > 1) the shards are split across processes; the
    files are byte for byte those one process writes, and rank 0 writes the one manifest and card.
    """
    ranks = Ranks.from_env()
    if ranks.world_size == 1 and cfg.get("num_processes", 1) != 1:
        return generate_in_processes(cfg)
    join_group(ranks)
    try:
        return generate_as(cfg, ranks)
    finally:
        leave_group()


def generate_in_processes(cfg: DictConfig) -> Path:
    """``num_processes=N`` without torchrun: spawn N ranks on this machine and wait for them."""
    import torch.multiprocessing as mp

    n = cfg.num_processes
    require(isinstance(n, int) and n >= 1, f"num_processes={n} must be a positive integer such as 2.")
    results = mp.get_context("spawn").SimpleQueue()
    try:
        spawn(_generate_process, n, OmegaConf.to_container(cfg, resolve=True), results)
    except mp.ProcessRaisedException as error:
        # A SynthsetError in a process stays one sentence here too.
        for line in str(error).splitlines():
            if line.startswith(f"{SynthsetError.__module__}.SynthsetError: "):
                raise SynthsetError(line.split(": ", 1)[1]) from None
        raise
    return Path(results.get())


def _generate_process(config: dict, results) -> None:
    out = generate(OmegaConf.create(config))
    if Ranks.from_env().is_main:
        results.put(str(out))


def generate_as(cfg: DictConfig, ranks: Ranks) -> Path:
    """One process's part of ``generate``: every rank writes its shards, rank 0 the rest."""
    client, run_id, model, checkpoint, ckpt_path = open_run_checkpoint(cfg)
    run = client.get_run(run_id)
    source_fid = check_gate(client, run_id, cfg.gate.max_fid)
    mem_cfg = cfg.memorization
    spec = GenerationSpec(
        source_run_id=run_id, checkpoint_sha256=sha256_of(ckpt_path), format=str(cfg.format),
        num_samples=cfg.num_samples, shard_size=cfg.shard_size, seed=cfg.seed, labels=labels_option(cfg.labels),
        drop_memorized=bool(cfg.filter.drop_memorized), label_agreement=cfg.filter.label_agreement,
        memorization={"enabled": bool(mem_cfg.enabled), "extractor": mem_cfg.extractor, "percentile": mem_cfg.percentile},
    )
    require(not spec.drop_memorized or mem_cfg.enabled, "filter.drop_memorized=true needs memorization.enabled=true.")
    class_names = list(model.class_names) if model.num_classes else []
    require(spec.label_agreement is None or class_names,
            "filter.label_agreement needs a class-conditional model; this one is unconditional, so drop the filter.")
    labels = label_plan(spec, class_names)
    datamodule = datamodule_of(model.run_config)
    memorization, classifier = None, None
    with main_first(ranks):  # rank 0 fills the caches the other processes then read
        if mem_cfg.enabled:
            memorization = MemorizationCheck.calibrate(datamodule, mem_cfg.extractor, mem_cfg.percentile,
                                                       Path(cfg.paths.cache_dir) / "memorization")
        if spec.label_agreement is not None:
            classifier = reference_classifier(datamodule, Path(cfg.paths.cache_dir) / "classifier")
    model.to(device_for(str(cfg.get("device", "cpu")), ranks))

    # Everything that can refuse has run: only now does the output folder come into being.
    out = Path(cfg.out or Path(cfg.paths.output_dir) / "datasets" / f"{run.info.run_name}-{spec.format}-{spec.num_samples}")
    with main_first(ranks):
        manifest = prepare_output(out, spec, bool(cfg.overwrite)) if ranks.is_main else Manifest.load_merged(out)
    generation = ShardedGeneration(model, spec, labels, WRITERS[spec.format](out, class_names), out, memorization, classifier)
    generation.run(manifest, num_workers=cfg.num_workers, progress=cfg.progress and ranks.is_main,
                   rank=ranks.rank, world_size=ranks.world_size)
    barrier(ranks)
    if not ranks.is_main:
        return out
    manifest = generation.complete(Manifest.load_merged(out))

    # Card material comes from the first shards again: each shard is a pure function of the spec.
    first = generation.shard_images(0)
    save_grid(*grid_selection(first.images, first.labels, len(class_names)), out / "grid.png")
    memo_info = {}
    if memorization is not None:
        flagged = sum(s["flagged"] for s in manifest.shards.values())
        closest = torch.argsort(first.distances)[:8]
        pairs = torch.stack([torch.stack([first.images[i], memorization.train_images[first.neighbours[i]]]) for i in closest])
        save_grid(pairs.flatten(0, 1), 2, out / "closest_pairs.png")
        memo_info = {"extractor": memorization.extractor_name, "percentile": memorization.percentile,
                     "threshold": memorization.threshold, "train_images": len(memorization.train_images),
                     "flagged": flagged, "flagged_fraction": flagged / spec.num_samples,
                     "replaced": sum(s["replaced"] for s in manifest.shards.values())}
    quality: dict[str, Any] = {}
    if cfg.card.eval_samples:
        n = min(cfg.card.eval_samples, len(first.images))
        settings = MetricSettings(**OmegaConf.to_container(cfg.metrics, resolve=True))

        def score(shard) -> dict[str, float]:
            return score_images(shard.images[:n], shard.labels[:n] if shard.labels is not None else None,
                                datamodule, "test", settings)

        quality = {"reference_split": "test", "num_samples": n, "metrics": score(first)}
        if classifier is not None or spec.drop_memorized:
            quality["metrics_before_filtering"] = score(generation.shard_images(0, filtered=False))
    class_counts = None
    if class_names:
        totals = torch.tensor([s["class_counts"] for s in manifest.shards.values()]).sum(0).tolist()
        class_counts = dict(zip(class_names, totals, strict=True))
    run_cfg = model.run_config
    info = {
        "spec": spec.to_dict(), "spec_digest": spec.digest(), "class_names": class_names, "class_counts": class_counts,
        "source": {"run_name": run.info.run_name, "model": run_cfg["model"]["name"], "data": run_cfg["data"]["name"],
                   "checkpoint": ckpt_path.name, "global_step": checkpoint.get("global_step"),
                   "model_config": run_cfg["model"], "data_config": {k: v for k, v in run_cfg["data"].items() if k != "module"},
                   "data_module": run_cfg["data"]["module"], "data_seed": run_cfg["data"]["module"].get("seed")},
        "source_metrics": {k: v for k, v in run.data.metrics.items() if k.startswith("eval")},
        "gate": {"max_fid": cfg.gate.max_fid, "source_fid": source_fid},
        "quality": quality, "memorization": memo_info,
        "label_agreement": {"threshold": spec.label_agreement,
                            "disagreed": sum(s.get("disagreed", 0) for s in manifest.shards.values())} if classifier else None,
        "shards": {k: {"sha256": v["sha256"], "count": v["count"]} for k, v in sorted(manifest.shards.items(), key=lambda kv: int(kv[0]))},
    }
    info["generation_run_id"] = start_generation_run(client, run, out, spec, quality, memo_info)
    write_card(out, info)
    finish_generation_run(client, info["generation_run_id"], out)
    print(f"dataset: {out}  ({spec.num_samples} images, format {spec.format})")
    headline = {k: round(v, 4) for k, v in quality.get("metrics", {}).items() if k in ("fid", "precision", "recall")}
    print(f"card: {out / 'README.md'}  quality vs real test: {headline or 'not measured'}"
          + (f"  memorized-looking: {memo_info['flagged_fraction']:.2%}" if memo_info else ""))
    return out


def start_generation_run(client: MlflowClient, source, out: Path, spec: GenerationSpec, quality: dict, memo: dict) -> str:
    """A child run of the source run, with the dataset as an MLflow dataset input; the card comes in ``finish``."""
    from mlflow.data.dataset_source_registry import resolve_dataset_source
    from mlflow.data.meta_dataset import MetaDataset
    from mlflow.entities import DatasetInput, InputTag

    run = client.create_run(source.info.experiment_id, run_name=f"generate-{source.info.run_name}", tags={
        "mlflow.parentRunId": source.info.run_id, "synthset.source_run": source.info.run_id, KIND_TAG: "generate"})
    run_id = run.info.run_id
    for key, value in spec.to_dict().items():
        client.log_param(run_id, key, str(value)[:500])
    client.log_param(run_id, "out", str(out))
    for key, value in quality.get("metrics", {}).items():
        client.log_metric(run_id, f"dataset/{key}", value)
    if memo:
        client.log_metric(run_id, "dataset/memorized_fraction", memo["flagged_fraction"])
    dataset = MetaDataset(resolve_dataset_source(str(out)), name=out.name, digest=spec.digest())
    client.log_inputs(run_id, datasets=[DatasetInput(dataset._to_mlflow_entity(), tags=[InputTag("mlflow.data.context", "generated")])])
    return run_id


def finish_generation_run(client: MlflowClient, run_id: str, out: Path) -> None:
    for name in ("README.md", "synthset.json", "grid.png", "closest_pairs.png", "manifest.json"):
        if (out / name).is_file():
            client.log_artifact(run_id, str(out / name), "dataset_card")
    client.set_terminated(run_id)
