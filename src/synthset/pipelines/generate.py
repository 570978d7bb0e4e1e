"""generate(cfg): a trained model -> a labeled synthetic dataset with a card, memorization check and gate.

The model comes from a run (``run_id``) or a checkpoint file (``ckpt``), read as data. Selection
numbers (the gate) are the checkpoint's own evaluation on ``val``; the card's quality is measured on
``test``, which no model in the chain trained on or was selected on (``card.reference_split=val`` scores a
generation setting, such as a filter, for a choice made before test is read).
"""

import hashlib
import json
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from synthset.atomic import atomic_write_text
from synthset.data.datamodule import ImageDataModule
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
from synthset.generation.export import listed_files
from synthset.generation.grid import class_rows, save_grid
from synthset.generation.manifest import Manifest, prepare_output
from synthset.generation.memorization import MemorizationCheck
from synthset.generation.runner import ShardedGeneration
from synthset.generation.spec import GenerationSpec, label_plan
from synthset.generation.writers import WRITERS, class_folder_names
from synthset.metrics.classifier import reference_classifier
from synthset.metrics.evaluation import score_images
from synthset.metrics.fidelity import MetricSettings
from synthset.metrics.protocol import protocol_text
from synthset.pipelines.generation_run import finish_generation_run, start_generation_run
from synthset.tracking.checkpoints import SourceCheckpoint, open_source_checkpoint
from synthset.tracking.store import ensure_store

CARD_SPLITS = ("test", "val")


def sha256_of(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def check_gate(source: SourceCheckpoint, max_fid: float | None) -> float | None:
    """Refuse weights whose own FID is worse than ``gate.max_fid``; the FID judged is the checkpoint's, not the run's last."""
    evaluation = source.evaluation or {}
    fid = (evaluation.get("metrics") or {}).get("fid")
    if max_fid is None:
        return fid
    require(fid is not None, f"gate.max_fid={max_fid} needs the FID of exactly these weights, but checkpoint {source.path.name} "
            "carries none; train with eval.every_n_steps (TF-Inception, eval.fidelity=true) or drop gate.max_fid.")
    require(fid <= max_fid, f"checkpoint {source.path.name} has fid={fid:.2f} ({protocol_text(evaluation['protocol'])}), "
            f"worse than gate.max_fid={max_fid}; train longer, pick a better run (run_id=best) or raise gate.max_fid.")
    return fid


def labels_option(value: Any) -> Any:
    return OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value


def build_spec(cfg: DictConfig, source: SourceCheckpoint) -> GenerationSpec:
    mem_cfg, filters = cfg.memorization, cfg.filter
    spec = GenerationSpec(
        source_run_id=source.run_id, checkpoint_sha256=sha256_of(source.path), format=str(cfg.format),
        num_samples=cfg.num_samples, shard_size=cfg.shard_size, seed=cfg.seed, labels=labels_option(cfg.labels),
        drop_memorized=bool(filters.drop_memorized), label_agreement=filters.label_agreement, top_k=filters.get("top_k"),
        top_k_by=filters.get("top_k_by", "classifier"),
        temperature=cfg.get("temperature", 1.0),
        memorization={"enabled": bool(mem_cfg.enabled), "extractor": mem_cfg.extractor, "percentile": mem_cfg.percentile},
    )
    require(not spec.drop_memorized or mem_cfg.enabled, "filter.drop_memorized=true needs memorization.enabled=true.")
    by_classifier = spec.label_agreement is not None or (spec.top_k is not None and spec.top_k_by == "classifier")
    require(not by_classifier or source.model.num_classes,
            "filter.label_agreement and filter.top_k by the classifier need a class-conditional model; this one is "
            "unconditional, so drop them (filter.top_k_by=discriminator works for an unconditional GAN).")
    require(spec.top_k is None or spec.top_k_by != "discriminator" or source.model.has_discriminator,
            f"filter.top_k_by=discriminator needs a GAN's discriminator, and this checkpoint is a "
            f"{source.model.registry_name}; use filter.top_k_by=classifier.")
    return spec


def data_files_of(out: Path):
    """What a manifest's shards consist of, derived from its own spec: the files synthset may replace."""

    def files(manifest: Manifest) -> list[str]:
        listed = listed_files(manifest)
        if listed:  # an export (a curated copy) lists its files shard by shard
            return listed + WRITERS[manifest.spec["format"]](out, manifest.class_names).assembled_files()
        spec = GenerationSpec(**manifest.spec)
        writer = WRITERS[spec.format](out, manifest.class_names)
        labels = label_plan(spec, manifest.class_names)
        found = []
        for shard in map(int, manifest.shards):
            indices = spec.shard_range(shard)
            shard_labels = labels[indices.start : indices.stop].numpy() if labels is not None else None
            found += writer.shard_files(shard, list(indices), shard_labels)
        return found + writer.assembled_files()

    return files


def filters_for(cfg: DictConfig, spec: GenerationSpec, datamodule: ImageDataModule, ranks: Ranks):
    """The memorization check and the reference classifier (trained on train, calibrated on val)."""
    memorization, classifier = None, None
    with main_first(ranks):  # rank 0 fills the caches the other processes then read
        if cfg.memorization.enabled:
            memorization = MemorizationCheck.calibrate(datamodule, cfg.memorization.extractor, cfg.memorization.percentile,
                                                       Path(cfg.paths.cache_dir) / "memorization")
        needs_classifier = spec.label_agreement is not None or spec.top_k is not None or cfg.card.eval_samples
        if datamodule.num_classes and needs_classifier:
            classifier = reference_classifier(datamodule, Path(cfg.paths.cache_dir) / "classifier")
    return memorization, classifier


def generate(cfg: DictConfig) -> Path:
    """Write the dataset; returns its folder.

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


def card_split(cfg: DictConfig) -> str:
    """The real split the card scores against: test to report, val to choose generation settings on."""
    split = cfg.card.get("reference_split", "test")
    require(split in CARD_SPLITS, f"card.reference_split={split} is unknown; expected test (reporting) or val "
            "(choosing a filter or temperature before test is read).")
    return split


def generate_as(cfg: DictConfig, ranks: Ranks) -> Path:
    """One process's part of ``generate``: every rank writes its shards, rank 0 the rest."""
    card_split(cfg)
    source = open_source_checkpoint(cfg)
    gate_fid = check_gate(source, cfg.gate.max_fid)
    spec = build_spec(cfg, source)
    class_names = list(source.model.class_names) if source.model.num_classes else []
    labels = label_plan(spec, class_names)
    datamodule = source.datamodule()
    memorization, classifier = filters_for(cfg, spec, datamodule, ranks)
    source.model.to(device_for(str(cfg.get("device", "cpu")), ranks))

    if source.run is None and ranks.is_main:  # ckpt=: no run was read, but rank 0's generation run goes to this store
        ensure_store(source.tracking_uri)
    # Everything that can refuse has run: only now does the output folder come into being.
    # The default folder names the spec: another spec gets another folder, the same spec resumes.
    default = f"{source.name}-{spec.format}-{spec.num_samples}-{spec.digest()[:8]}"
    out = Path(cfg.out or Path(cfg.paths.output_dir) / "datasets" / default)
    with main_first(ranks):
        manifest = (prepare_output(out, spec.to_dict(), spec.digest(), class_names, bool(cfg.overwrite), data_files_of(out))
                    if ranks.is_main else Manifest.load_with_records(out))
    use_classifier = classifier if (spec.label_agreement is not None or spec.top_k is not None) else None
    generation = ShardedGeneration(source.model, spec, labels, WRITERS[spec.format](out, class_names), out, memorization,
                                   use_classifier)
    generation.run(manifest, num_workers=cfg.num_workers, progress=cfg.progress and ranks.is_main,
                   rank=ranks.rank, world_size=ranks.world_size)
    barrier(ranks)
    if not ranks.is_main:
        return out
    manifest = generation.complete(Manifest.load_with_records(out))
    info = card_info(cfg, source, spec, manifest, generation, datamodule, classifier, class_names)
    info["gate"] = {"max_fid": cfg.gate.max_fid, "checkpoint_fid": gate_fid}
    info["generation_run_id"] = start_generation_run(cfg, source, out, spec, info)
    write_card(out, info)
    finish_generation_run(source.client, info["generation_run_id"], out)
    print_summary(out, spec, info)
    return out


def memorization_info(memorization: MemorizationCheck | None, first, manifest: Manifest, spec: GenerationSpec,
                      out: Path) -> dict[str, Any]:
    if memorization is None:
        return {}
    flagged = sum(s["flagged"] for s in manifest.shards.values())
    closest = torch.argsort(first.distances)[:8]
    pairs = torch.stack([torch.stack([first.images[i], memorization.train_images[first.neighbours[i]]]) for i in closest])
    save_grid(pairs.flatten(0, 1), 2, out / "closest_pairs.png")
    return {"extractor": memorization.extractor_name, "percentile": memorization.percentile,
            "threshold": memorization.threshold, "train_images": len(memorization.train_images),
            "calibrated_on": "val", "flagged": flagged, "flagged_fraction": flagged / spec.num_samples,
            "replaced": sum(s["replaced"] for s in manifest.shards.values())}


def reference_cap(cfg: DictConfig, eval_samples: int) -> int:
    """How many real images (of ``card.reference_split``) the card scores against: ``card.reference_samples``, by default max(N, 2,000)."""
    chosen = cfg.card.get("reference_samples")
    return int(chosen) if chosen is not None else max(eval_samples, 2000)


def card_quality(cfg: DictConfig, generation: ShardedGeneration, first, datamodule: ImageDataModule,
                 classifier, spec: GenerationSpec) -> dict[str, Any]:
    """The written images' metrics on ``card.reference_split`` (and the unfiltered draw's, when filters changed it).

    GAN-test and diversity use ``card.eval_samples`` images; TF-Inception scores the first ``card.fid_samples``.
    """
    if not cfg.card.eval_samples:
        return {}
    n = min(cfg.card.eval_samples, len(first.images))
    n_fid = min(cfg.card.get("fid_samples") or n, n)
    settings = MetricSettings(**OmegaConf.to_container(cfg.metrics, resolve=True)) if cfg.card.fidelity else None
    split = card_split(cfg)

    def score(shard) -> tuple[dict[str, float], dict[str, Any]]:
        labels = shard.labels[:n] if shard.labels is not None else None
        # Coverage and recall depend on how many real images they meet: the same cap as FID's, seeded.
        metrics, protocol = score_images(shard.images[:n], labels, datamodule, split, None, classifier=classifier,
                                         max_reference=reference_cap(cfg, n))
        if settings is not None:
            fid_metrics, fid_protocol = score_images(shard.images[:n_fid], None, datamodule, split, settings,
                                                     max_reference=reference_cap(cfg, n_fid))
            metrics |= fid_metrics
            protocol = {**fid_protocol, "classifier": protocol["classifier"], "n_generated_domain": n,
                        "n_reference_domain": protocol["n_reference"]}
        return metrics, protocol

    metrics, protocol = score(first)
    quality = {"reference_split": split, "num_samples": n, "metrics": metrics, "protocol": protocol}
    if spec.label_agreement is not None or spec.top_k is not None or spec.drop_memorized:
        quality["metrics_before_filtering"] = score(generation.shard_images(0, filtered=False))[0]
    return quality


def card_info(cfg: DictConfig, source: SourceCheckpoint, spec: GenerationSpec, manifest: Manifest,
              generation: ShardedGeneration, datamodule: ImageDataModule, classifier, class_names: list[str]) -> dict[str, Any]:
    """Everything the card says, as plain data; the card images are written on the way."""
    out = generation.out
    # Card material comes from the first shard again: each shard is a pure function of the spec.
    first = generation.shard_images(0)
    save_grid(class_rows(first.images, first.labels, len(class_names)), 8, out / "grid.png")
    atomic_write_text(out / "classes.json", json.dumps(dict(enumerate(class_names)), indent=1))
    class_counts = None
    if class_names:
        totals = torch.tensor([s["class_counts"] for s in manifest.shards.values()]).sum(0).tolist()
        class_counts = dict(zip(class_names, totals, strict=True))
    run_cfg = source.run_config
    return {
        "spec": spec.to_dict(), "spec_digest": spec.digest(), "class_names": class_names,
        "class_folders": class_folder_names(class_names) if spec.format == "imagefolder" else None,
        "class_counts": class_counts,
        "source": {"run_id": source.run_id, "run_name": source.name, "model": run_cfg["model"]["name"],
                   "data": run_cfg["data"]["name"], "checkpoint": source.path.name,
                   "global_step": source.contents.get("global_step"), "model_config": run_cfg["model"],
                   "data_config": datamodule.record(), "splits": datamodule.split_summary()},
        "source_evaluation": source.evaluation,
        "quality": card_quality(cfg, generation, first, datamodule, classifier, spec),
        "memorization": memorization_info(generation.memorization, first, manifest, spec, out),
        "label_agreement": {"threshold": spec.label_agreement,
                            "disagreed": sum(s.get("disagreed", 0) for s in manifest.shards.values())}
        if spec.label_agreement is not None else None,
        "top_k": {"keep": spec.top_k, "by": spec.top_k_by, "drawn": sum(s.get("drawn", 0) for s in manifest.shards.values()),
                  "kept": spec.num_samples} if spec.top_k is not None else None,
        "shards": {k: {"sha256": v["sha256"], "count": v["count"]}
                   for k, v in sorted(manifest.shards.items(), key=lambda kv: int(kv[0]))},
    }


def print_summary(out: Path, spec: GenerationSpec, info: dict[str, Any]) -> None:
    quality = info["quality"]
    metrics = quality.get("metrics", {})
    lead = [f"GAN-test {metrics['gan_test']:.1%}", f"diversity {metrics['pixel_std_ratio']:.2f} of real"] \
        if "gan_test" in metrics else []
    if "fid" in metrics:
        lead.append(f"FID {metrics['fid']:.1f} ({protocol_text(quality['protocol'])}"
                    + (", small-sample)" if min(quality["protocol"]["n_generated"], quality["protocol"]["n_reference"]) < 2000 else ")"))
    print(f"dataset: {out}  ({spec.num_samples} images, format {spec.format})")
    print(f"card: {out / 'README.md'}  {quality.get('reference_split', 'test')}-split quality: {', '.join(lead) or 'not measured'}"
          + (f"; memorized-looking: {info['memorization']['flagged_fraction']:.2%}" if info["memorization"] else ""))
