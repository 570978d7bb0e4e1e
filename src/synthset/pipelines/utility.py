"""utility(cfg): does a synthetic dataset help a classifier? Train on real / synthetic / both, test on real.

Classification Accuracy Score (Ravuri & Vinyals 2019) plus augmentation and low-data protocols,
one MLflow parent run (a child of the dataset's generation run) with a child per protocol.
The dataset's card is read as plain data: its source data is rebuilt through synthset's source
registry, and every protocol tests on the source's test split, which no model in the chain saw.
"""

import hashlib
import logging
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from tqdm.auto import tqdm

from synthset.data.datamodule import ImageDataModule, datamodule_from_record, stratified_subset
from synthset.errors import SynthsetError, require
from synthset.generation.card import write_card
from synthset.generation.readers import load_card, read_dataset
from synthset.pipelines.utility_report import log_to_mlflow, print_summary, summarize
from synthset.utility.protocols import Protocol, plan
from synthset.utility.scoring import ProtocolResult, ProtocolTrainer, TrainingSet

log = logging.getLogger(__name__)
SYNTHETIC_USES = ("mix", "pretrain")
# What makes two datasets' real images the same: the same source, size and splits (x-flips in training may differ).
SAME_DATA_KEYS = ("source", "image_size", "channels", "seed", "fraction", "val_fraction", "test_fraction")


def source_datamodule(out: Path, card: dict[str, Any]) -> ImageDataModule:
    """The generator's real data with every training image (``fraction=1``): the protocols cut their own subsets."""
    record = card["source"].get("data_config")
    require(isinstance(record, dict) and "source" in record,
            f"the card of dataset={out} does not record its source data (data_config.source); regenerate it with this "
            "version of generate.py.")
    # A record that names unknown kinds, Hydra keys or non-plain values is refused here, before any loading.
    datamodule = datamodule_from_record({**record, "fraction": 1.0}, f"the card of dataset={out}")
    try:
        datamodule.split("test")
    except (SynthsetError, OSError, RuntimeError, ValueError) as error:
        raise SynthsetError(f"the source data of dataset={out} ('{card['source']['data']}', {record['source']}) cannot be "
                            f"loaded ({str(error).rstrip('.')}); make it available there or correct data_config.source "
                            f"in {out / 'synthset.json'}.") from None
    require(datamodule.num_classes > 0, f"the source data '{card['source']['data']}' of dataset={out} is unlabeled; "
            "utility protocols need labeled real test images.")
    return datamodule


def validate(cfg: DictConfig) -> Path:
    require(cfg.get("dataset"), "dataset is missing; pass dataset=outputs/datasets/<name> (a folder written by generate.py).")
    out = Path(str(cfg.dataset))
    require(out.is_dir(), f"dataset={out} is not a folder; pass the folder generate.py wrote, e.g. dataset=outputs/datasets/<name>.")
    ucfg = cfg.utility
    for key, example in (("seeds", 3), ("batch_size", 64), ("steps", 2000)):
        value = ucfg[key]
        require(isinstance(value, int) and not isinstance(value, bool) and value >= 1,
                f"utility.{key}={value} must be a positive integer such as {example}.")
    require(isinstance(ucfg.patience, int) and not isinstance(ucfg.patience, bool) and ucfg.patience >= 0,
            f"utility.patience={ucfg.patience} must be a whole number of val scores such as 3, or 0 (the whole budget).")
    require(ucfg.synthetic_weight is None or (isinstance(ucfg.synthetic_weight, float) and 0 < ucfg.synthetic_weight < 1),
            f"utility.synthetic_weight={ucfg.synthetic_weight} must be in (0, 1) or null (mix by dataset size).")
    use = ucfg.synthetic_use
    require(use in SYNTHETIC_USES, f"utility.synthetic_use={use} is not a way to use synthetic images; expected one of "
            f"{', '.join(SYNTHETIC_USES)}, e.g. utility.synthetic_use=pretrain.")
    lr = ucfg.finetune_lr
    require(lr is None or (isinstance(lr, (int, float)) and not isinstance(lr, bool) and lr > 0),
            f"utility.finetune_lr={lr} must be a positive learning rate such as 5e-4, or null (the classifier recipe's).")
    require(use == "pretrain" or lr is None, f"utility.finetune_lr={lr} only applies to utility.synthetic_use=pretrain "
            "(mix trains one classifier with the recipe's rate); add utility.synthetic_use=pretrain or drop it.")
    require(ucfg.real_fractions is None or OmegaConf.is_list(ucfg.real_fractions),
            f"utility.real_fractions={ucfg.real_fractions} must be a list such as [0.01,0.1,1.0] (or null).")
    return out


def extra_synthetic(out: Path, card: dict[str, Any], extras) -> list[tuple[Path, dict[str, Any]]]:
    """Datasets whose images join ``dataset``'s (another generator's draws: an ensemble, Eilertsen et al. 2021).

    Each must come from the same real images and splits, so one leakage label and one test split hold for all.
    """
    require(extras is None or OmegaConf.is_list(extras), f"utility.extra_datasets={extras} must be a list of folders "
            "written by generate.py, such as utility.extra_datasets=[outputs/datasets/other].")
    found = []
    for folder in extras or []:
        extra = Path(str(folder))
        require(extra.is_dir() and extra.resolve() != out.resolve(), f"utility.extra_datasets names {extra}, which is "
                "not a folder other than dataset; pass folders written by generate.py.")
        extra_card = load_card(extra)
        ours, theirs = card["source"]["data_config"], extra_card["source"].get("data_config") or {}
        differ = [key for key in SAME_DATA_KEYS if ours.get(key) != theirs.get(key)]
        require(not differ and extra_card["class_names"] == card["class_names"],
                f"utility.extra_datasets: {extra} was generated from other real data than dataset={out} (data "
                f"{', '.join(differ) or 'class_names'} differ); pass datasets of generators trained on the same data.")
        found.append((extra, extra_card))
    return found


def pooled_synthetic(out: Path, card: dict[str, Any], extras: list[tuple[Path, dict[str, Any]]]):
    """All synthetic images and labels, in dataset order, and one digest for the pool (the classifier cache key)."""
    parts = [read_dataset(folder, folder_card) for folder, folder_card in [(out, card), *extras]]
    if not extras:
        return *parts[0], card["spec_digest"]
    images = torch.cat([images for images, _ in parts])
    labels = None if parts[0][1] is None else torch.cat([labels for _, labels in parts])  # same class_names: all or none
    digests = "+".join([card["spec_digest"], *(extra_card["spec_digest"] for _, extra_card in extras)])
    return images, labels, hashlib.sha256(digests.encode()).hexdigest()[:16]


def chosen_protocols(ucfg: DictConfig, generator_fraction: float, labeled: bool) -> list[Protocol]:
    fractions = OmegaConf.to_container(ucfg.real_fractions) if ucfg.real_fractions is not None else [generator_fraction]
    protocols = plan(fractions, generator_fraction, labeled=labeled)
    if not ucfg.get("protocols"):
        return protocols
    wanted = list(ucfg.protocols)
    unknown = sorted(set(wanted) - {p.name for p in protocols})
    require(not unknown, f"utility.protocols names {unknown}, which this run does not plan; expected a subset of "
            f"{[p.name for p in protocols]} (real_fractions add real@f protocols).")
    # Every comparison needs its real-only baseline, so baselines always run.
    keep = set(wanted) | {p.baseline.name for p in protocols if p.name in wanted and p.synthetic}
    return [p for p in protocols if p.name in keep]


def training_sets(protocols: list[Protocol], datamodule: ImageDataModule, synthetic: tuple, digest: str,
                  ucfg: DictConfig) -> dict[str, TrainingSet]:
    images, labels = datamodule.split("train")
    pretrain = ucfg.synthetic_use == "pretrain"
    sets = {}
    for p in protocols:
        keep = stratified_subset(labels, p.real_fraction, datamodule.seed) if p.real_fraction else torch.arange(0)
        sets[p.name] = TrainingSet(images[keep], labels[keep], *(synthetic if p.synthetic else (None, None)),
                                   synthetic_digest=digest if p.synthetic else None, synthetic_weight=ucfg.synthetic_weight,
                                   pretrain=pretrain,
                                   finetune_lr=None if ucfg.finetune_lr is None else float(ucfg.finetune_lr))
    return sets


def check_matches_source(out: Path, card: dict, synthetic_images: torch.Tensor, synthetic_labels, datamodule) -> None:
    test_images = datamodule.split("test")[0]
    require(synthetic_images.shape[1:] == test_images.shape[1:],
            f"dataset={out} holds {tuple(synthetic_images.shape[1:])} images but its source data gives "
            f"{tuple(test_images.shape[1:])}; the card's data_config does not match the generator.")
    if synthetic_labels is not None:
        require(card["class_names"] == datamodule.class_names, f"dataset={out} labels {card['class_names']} but its source "
                f"data has classes {datamodule.class_names}; the card's data_config does not match the generator.")


def class_histogram(classifier, images: torch.Tensor, class_names: list[str]) -> dict[str, Any]:
    """How the real-data classifier labels unlabeled samples: a collapsed generator piles into few classes."""
    counts = torch.bincount(classifier.predict_labels(images), minlength=len(class_names)).float()
    share = counts / counts.sum()
    entropy = -(share[share > 0] * share[share > 0].log()).sum() / torch.log(torch.tensor(float(len(class_names))))
    return {"counts": dict(zip(class_names, counts.long().tolist(), strict=True)), "normalized_entropy": float(entropy),
            "classes_under_1_percent": [n for n, s in zip(class_names, share, strict=True) if s < 0.01]}


def run_protocols(cfg: DictConfig, protocols: list[Protocol], sets: dict[str, TrainingSet],
                  trainer: ProtocolTrainer) -> list[ProtocolResult]:
    seeds = list(range(cfg.utility.seeds))
    results = []
    for p in tqdm(protocols, desc="utility protocols", disable=not cfg.progress):
        log.info("protocol %s: %d real + %d synthetic images, %d seeds%s", p.name, sets[p.name].num_real,
                 sets[p.name].num_synthetic, len(seeds), " (LEAKY)" if p.leaky else "")
        results.append(trainer.run(p, sets[p.name], seeds))
    return results


def utility(cfg: DictConfig) -> dict[str, float]:
    """Run every protocol for ``dataset``; returns mean test accuracy per protocol."""
    out, ucfg = validate(cfg), cfg.utility
    card = load_card(out)
    generator_fraction = float(card["source"]["data_config"].get("fraction", 1.0))
    extras = extra_synthetic(out, card, ucfg.get("extra_datasets"))
    synthetic_images, synthetic_labels, digest = pooled_synthetic(out, card, extras)
    protocols = chosen_protocols(ucfg, generator_fraction, labeled=synthetic_labels is not None)
    datamodule = source_datamodule(out, card)
    check_matches_source(out, card, synthetic_images, synthetic_labels, datamodule)
    trainer = ProtocolTrainer.for_datamodule(datamodule, ucfg.steps, ucfg.batch_size, Path(cfg.paths.cache_dir) / "utility",
                                             augment=ucfg.get("augment", True), patience=ucfg.patience)
    sets = training_sets(protocols, datamodule, (synthetic_images, synthetic_labels), digest, ucfg)
    results = run_protocols(cfg, protocols, sets, trainer)
    histogram = None
    if synthetic_labels is None:
        histogram = class_histogram(trainer.classifier(sets["real"], 0), synthetic_images, datamodule.class_names)
    settings = {"steps": ucfg.steps, "patience": ucfg.patience, "batch_size": ucfg.batch_size, "seeds": ucfg.seeds,
                "synthetic_weight": ucfg.synthetic_weight, "synthetic_use": ucfg.synthetic_use, "finetune_lr": ucfg.finetune_lr,
                "augment": trainer.augment_name,
                "extra_datasets": [{"dataset": str(folder), "spec_digest": c["spec_digest"]} for folder, c in extras]}
    summary = summarize(results, datamodule.class_names, settings, histogram, generator_fraction,
                        len(datamodule.split("test")[0]))
    client, summary["run_id"] = log_to_mlflow(cfg, out, card, summary, results, datamodule.class_names)
    write_card(out, {**card, "utility": summary})
    for name in ("README.md", "synthset.json"):
        client.log_artifact(summary["run_id"], str(out / name), "dataset_card")
    client.set_terminated(summary["run_id"])
    print_summary(summary, f"utility of {out.name}: reference classifier tested on real '{card['source']['data']}' test images")
    return {p["name"]: p["mean"] for p in summary["protocols"]}
