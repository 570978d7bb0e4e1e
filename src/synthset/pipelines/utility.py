"""utility(cfg): does a synthetic dataset help a classifier? Train on real / synthetic / both, test on real.

Classification Accuracy Score (Ravuri & Vinyals 2019) plus augmentation and low-data protocols,
one MLflow parent run (a child of the dataset's generation run) with a child per protocol.
"""

import logging
from pathlib import Path
from typing import Any

import matplotlib
import torch
from mlflow.tracking import MlflowClient
from omegaconf import DictConfig, OmegaConf
from rich.console import Console
from rich.table import Table
from tqdm.auto import tqdm

from synthset.config import build
from synthset.data.datamodule import ImageDataModule, stratified_subset
from synthset.errors import SynthsetError, require
from synthset.generation.card import write_card
from synthset.generation.readers import load_card, read_dataset
from synthset.tracking.runs import KIND_TAG
from synthset.tracking.store import ensure_store, tracking_uri_for
from synthset.utility.protocols import Protocol, plan
from synthset.utility.scoring import ProtocolResult, ProtocolTrainer, TrainingSet

matplotlib.use("Agg")
log = logging.getLogger(__name__)


def source_datamodule(out: Path, card: dict[str, Any]) -> ImageDataModule:
    """The generator's real data with every training image (``fraction=1``): the protocols cut their own subsets."""
    source = card["source"]
    require("data_module" in source, f"the card of dataset={out} does not record how to load its source data; "
            "regenerate the dataset with this version of generate.py.")
    module = OmegaConf.create({**source["data_module"], "fraction": 1.0})
    try:
        datamodule = build(module)
        datamodule.split("test")
    except (SynthsetError, OSError, RuntimeError, ValueError) as error:
        where = {k: v for k, v in source["data_module"]["source"].items() if k != "_target_"}
        raise SynthsetError(f"the source data of dataset={out} ('{source['data']}', {where or 'bundled'}) cannot be "
                            f"loaded ({str(error).rstrip('.')}); make it available there or set its location in "
                            f"{out / 'synthset.json'} under source.data_module.") from None
    require(datamodule.num_classes > 0, f"the source data '{source['data']}' of dataset={out} is unlabeled; "
            "utility protocols need labeled real test images.")
    return datamodule


def training_sets(protocols: list[Protocol], datamodule: ImageDataModule, synthetic: tuple, digest: str,
                  synthetic_weight: float | None) -> dict[str, TrainingSet]:
    images, labels = datamodule.split("train")
    sets = {}
    for p in protocols:
        keep = stratified_subset(labels, p.real_fraction, datamodule.seed) if p.real_fraction else torch.arange(0)
        sets[p.name] = TrainingSet(images[keep], labels[keep], *(synthetic if p.synthetic else (None, None)),
                                   synthetic_digest=digest if p.synthetic else None, synthetic_weight=synthetic_weight)
    return sets


def delta_text(result: ProtocolResult, by_name: dict[str, ProtocolResult]) -> str:
    if result.protocol.leaky:
        return "leaky: not a gain"
    if not result.protocol.synthetic:
        return "-"
    base = by_name[result.protocol.baseline.name]
    return f"{100 * (result.mean - base.mean):+.2f} pts vs {base.protocol.name}"


def summarize(results: list[ProtocolResult], class_names: list[str], settings: dict, histogram: dict | None,
              generator_fraction: float, test_images: int) -> dict[str, Any]:
    by_name = {r.protocol.name: r for r in results}
    return {
        **settings, "generator_fraction": generator_fraction, "test_images": test_images,
        "protocols": [{"name": r.protocol.name, "real_fraction": r.protocol.real_fraction, "synthetic": r.protocol.synthetic,
                       "leaky": r.protocol.leaky, "num_real": r.num_real, "num_synthetic": r.num_synthetic,
                       "accuracies": r.accuracies, "mean": r.mean, "std": r.std, "delta": delta_text(r, by_name),
                       "class_accuracy": dict(zip(class_names, r.class_accuracy(), strict=True))} for r in results],
        "class_histogram": histogram,
    }


def print_summary(summary: dict[str, Any], title: str) -> None:
    table = Table(title=title)
    for column in ("protocol", "real", "synthetic", "test accuracy", "delta"):
        table.add_column(column, justify="left" if column in ("protocol", "delta") else "right")
    for p in summary["protocols"]:
        name = f"{p['name']} [red](leaky)[/red]" if p["leaky"] else p["name"]
        table.add_row(name, str(p["num_real"]), str(p["num_synthetic"]),
                      f"{100 * p['mean']:.2f} ± {100 * p['std']:.2f} %", p["delta"])
    Console().print(table)
    if summary["class_histogram"]:
        hist = summary["class_histogram"]
        Console().print(f"unlabeled samples as labeled by the real classifier: {hist['counts']} "
                        f"(normalized entropy {hist['normalized_entropy']:.3f})")


def class_histogram(classifier, images: torch.Tensor, class_names: list[str]) -> dict[str, Any]:
    """How the real-data classifier labels unlabeled samples: a collapsed generator piles into few classes."""
    counts = torch.bincount(classifier.predict_labels(images), minlength=len(class_names)).float()
    share = counts / counts.sum()
    entropy = -(share[share > 0] * share[share > 0].log()).sum() / torch.log(torch.tensor(float(len(class_names))))
    return {"counts": dict(zip(class_names, counts.long().tolist(), strict=True)),
            "normalized_entropy": float(entropy), "classes_under_1_percent": [n for n, s in zip(class_names, share, strict=True) if s < 0.01]}


def metric_key(protocol_name: str) -> str:
    """MLflow metric names allow neither '@' nor '+'."""
    return protocol_name.replace("@", "_at_").replace("+", "_plus_")


def confusion_figure(confusion: torch.Tensor, class_names: list[str], title: str):
    import matplotlib.pyplot as plt

    rates = confusion.float() / confusion.sum(1, keepdim=True).clamp(min=1)
    fig, ax = plt.subplots(figsize=(6, 5))
    ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    ax.set(xticks=range(len(class_names)), yticks=range(len(class_names)), xlabel="predicted", ylabel="true", title=title)
    ax.set_xticklabels(class_names, rotation=90, fontsize=7)
    ax.set_yticklabels(class_names, fontsize=7)
    for i, j in rates.nonzero().tolist():
        value = float(rates[i, j])
        if value >= 0.01:
            ax.text(j, i, f"{100 * value:.0f}", ha="center", va="center", fontsize=6, color="white" if value > 0.5 else "black")
    fig.tight_layout()
    return fig


def log_to_mlflow(cfg: DictConfig, out: Path, card: dict, summary: dict, results: list[ProtocolResult],
                  class_names: list[str]) -> tuple[MlflowClient, str]:
    """One parent run (child of the generation run when this store has it) and a child run per protocol.

    The parent stays open: the caller adds the updated card and terminates it.
    """
    import matplotlib.pyplot as plt

    uri = tracking_uri_for(cfg)
    ensure_store(uri)
    client = MlflowClient(uri)
    generation_run_id = card.get("generation_run_id")
    try:
        experiment_id = client.get_run(generation_run_id).info.experiment_id if generation_run_id else None
    except Exception:  # the dataset was made against another store: keep the id as a tag only
        experiment_id = None
    tags = {KIND_TAG: "utility", "synthset.dataset": str(out), "synthset.source_run": card["spec"]["source_run_id"]}
    if experiment_id is None:
        experiment = client.get_experiment_by_name(cfg.tracking.experiment)
        experiment_id = experiment.experiment_id if experiment else client.create_experiment(cfg.tracking.experiment)
    elif generation_run_id:
        tags["mlflow.parentRunId"] = generation_run_id
    if generation_run_id:
        tags["synthset.generation_run"] = generation_run_id
    parent = client.create_run(experiment_id, run_name=f"utility-{out.name}", tags=tags).info.run_id
    for key in ("steps", "batch_size", "seeds", "synthetic_weight", "generator_fraction", "test_images"):
        client.log_param(parent, key, summary[key])
    client.log_param(parent, "protocols", ",".join(p["name"] for p in summary["protocols"]))
    for result, row in zip(results, summary["protocols"], strict=True):
        p = result.protocol
        child = client.create_run(experiment_id, run_name=f"utility-{p.name}", tags={
            "mlflow.parentRunId": parent, KIND_TAG: "utility", "synthset.protocol": p.name, "synthset.leaky": str(p.leaky).lower()}).info.run_id
        for key, value in {"protocol": p.name, "real_fraction": p.real_fraction, "synthetic": p.synthetic, "leaky": p.leaky,
                           "num_real": result.num_real, "num_synthetic": result.num_synthetic, "steps": summary["steps"]}.items():
            client.log_param(child, key, value)
        for i, accuracy in enumerate(result.accuracies):
            client.log_metric(child, "accuracy", accuracy, step=i)
        client.log_metric(child, "accuracy_mean", result.mean)
        client.log_metric(child, "accuracy_std", result.std)
        client.log_metric(parent, f"{metric_key(p.name)}/accuracy_mean", result.mean)
        for name, value in row["class_accuracy"].items():
            client.log_metric(child, f"class_accuracy/{name.replace('/', '-')}", value)
        figure = confusion_figure(result.confusion, class_names, f"{p.name}: real test confusion (%)")
        client.log_figure(child, figure, "confusion_matrix.png")
        plt.close(figure)
        client.set_terminated(child)
    if summary["class_histogram"]:
        for name, count in summary["class_histogram"]["counts"].items():
            client.log_metric(parent, f"class_histogram/{name.replace('/', '-')}", count)
        client.log_metric(parent, "class_histogram/normalized_entropy", summary["class_histogram"]["normalized_entropy"])
    return client, parent


def utility(cfg: DictConfig) -> dict[str, float]:
    """Run every protocol for ``dataset``; returns mean test accuracy per protocol."""
    require(cfg.get("dataset"), "dataset is missing; pass dataset=outputs/datasets/<name> (a folder written by generate.py).")
    out = Path(str(cfg.dataset))
    require(out.is_dir(), f"dataset={out} is not a folder; pass the folder generate.py wrote, e.g. dataset=outputs/datasets/<name>.")
    ucfg = cfg.utility
    require(isinstance(ucfg.seeds, int) and ucfg.seeds >= 1, f"utility.seeds={ucfg.seeds} must be a positive integer such as 3.")
    require(isinstance(ucfg.batch_size, int) and ucfg.batch_size >= 1,
            f"utility.batch_size={ucfg.batch_size} must be a positive integer such as 64.")
    require(isinstance(ucfg.steps, int) and ucfg.steps >= 1, f"utility.steps={ucfg.steps} must be a positive integer such as 2000.")
    require(ucfg.synthetic_weight is None or 0 < ucfg.synthetic_weight < 1,
            f"utility.synthetic_weight={ucfg.synthetic_weight} must be in (0, 1) or null (mix by dataset size).")
    card = load_card(out)
    generator_fraction = float(card["source"]["data_config"].get("fraction", 1.0))
    require(ucfg.real_fractions is None or OmegaConf.is_list(ucfg.real_fractions),
            f"utility.real_fractions={ucfg.real_fractions} must be a list such as [0.01,0.1,1.0] (or null).")
    fractions = OmegaConf.to_container(ucfg.real_fractions) if ucfg.real_fractions is not None else [generator_fraction]
    synthetic_images, synthetic_labels = read_dataset(out, card)
    protocols = plan(fractions, generator_fraction, labeled=synthetic_labels is not None)
    if ucfg.get("protocols"):
        wanted = list(ucfg.protocols)
        unknown = sorted(set(wanted) - {p.name for p in protocols})
        require(not unknown, f"utility.protocols names {unknown}, which this run does not plan; expected a subset of "
                f"{[p.name for p in protocols]} (real_fractions add real@f protocols).")
        # Every comparison needs its real-only baseline, so baselines always run.
        keep = set(wanted) | {p.baseline.name for p in protocols if p.name in wanted and p.synthetic}
        protocols = [p for p in protocols if p.name in keep]
    datamodule = source_datamodule(out, card)
    class_names = datamodule.class_names
    test_images, test_labels = datamodule.split("test")
    require(synthetic_images.shape[1:] == test_images.shape[1:],
            f"dataset={out} holds {tuple(synthetic_images.shape[1:])} images but its source data gives {tuple(test_images.shape[1:])}; "
            "the card's source.data_module does not match the generator.")
    if synthetic_labels is not None:
        require(card["class_names"] == class_names, f"dataset={out} labels {card['class_names']} but its source data has "
                f"classes {class_names}; the card's source.data_module does not match the generator.")

    trainer = ProtocolTrainer(test_images, test_labels, len(class_names), ucfg.steps, ucfg.batch_size,
                              Path(cfg.paths.cache_dir) / "utility")
    sets = training_sets(protocols, datamodule, (synthetic_images, synthetic_labels), card["spec_digest"], ucfg.synthetic_weight)
    seeds = list(range(ucfg.seeds))
    results = []
    for p in tqdm(protocols, desc="utility protocols", disable=not cfg.progress):
        log.info("protocol %s: %d real + %d synthetic images, %d steps x %d seeds%s", p.name, sets[p.name].num_real,
                 sets[p.name].num_synthetic, ucfg.steps, len(seeds), " (LEAKY)" if p.leaky else "")
        results.append(trainer.run(p, sets[p.name], seeds))
    histogram = None
    if synthetic_labels is None:
        histogram = class_histogram(trainer.classifier(sets["real"], seeds[0]), synthetic_images, class_names)
    settings = {"steps": ucfg.steps, "batch_size": ucfg.batch_size, "seeds": len(seeds), "synthetic_weight": ucfg.synthetic_weight}
    summary = summarize(results, class_names, settings, histogram, generator_fraction, len(test_images))

    client, summary["run_id"] = log_to_mlflow(cfg, out, card, summary, results, class_names)
    write_card(out, {**card, "utility": summary})
    for name in ("README.md", "synthset.json"):
        client.log_artifact(summary["run_id"], str(out / name), "dataset_card")
    client.set_terminated(summary["run_id"])
    print_summary(summary, f"utility of {out.name}: reference classifier tested on real '{card['source']['data']}' test images")
    return {p["name"]: p["mean"] for p in summary["protocols"]}
