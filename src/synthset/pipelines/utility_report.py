"""How a utility run is reported: the rich table, the card section and the MLflow runs (a parent, a child per protocol)."""

from pathlib import Path
from typing import Any

import matplotlib
import torch
from mlflow.tracking import MlflowClient
from omegaconf import DictConfig
from rich.console import Console
from rich.table import Table

from synthset.tracking.runs import KIND_TAG, child_run_home
from synthset.tracking.store import ensure_store, tracking_uri_for
from synthset.utility.scoring import ProtocolResult

matplotlib.use("Agg")


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
                       "val_mean": r.val_mean,
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
    uri = tracking_uri_for(cfg)
    ensure_store(uri)
    client = MlflowClient(uri)
    generation_run_id = card.get("generation_run_id")
    experiment_id, parent_id = child_run_home(client, generation_run_id, cfg.tracking.experiment)
    tags = {KIND_TAG: "utility", "synthset.dataset": str(out), "synthset.source_run": card["spec"]["source_run_id"]}
    if parent_id:
        tags["mlflow.parentRunId"] = parent_id
    if generation_run_id:
        tags["synthset.generation_run"] = generation_run_id
    parent = client.create_run(experiment_id, run_name=f"utility-{out.name}", tags=tags).info.run_id
    for key in ("steps", "batch_size", "seeds", "synthetic_weight", "synthetic_use", "finetune_lr", "generator_fraction", "test_images", "augment"):
        client.log_param(parent, key, summary.get(key))
    client.log_param(parent, "protocols", ",".join(p["name"] for p in summary["protocols"]))
    if summary.get("extra_datasets"):
        client.log_param(parent, "extra_datasets", ",".join(extra["dataset"] for extra in summary["extra_datasets"]))
    log_protocol_runs(client, experiment_id, parent, summary, results, class_names)
    return client, parent


def log_protocol_runs(client: MlflowClient, experiment_id: str, parent: str, summary: dict,
                      results: list[ProtocolResult], class_names: list[str]) -> None:
    """One child run per protocol: accuracy per seed, mean/std, per-class accuracy, the confusion matrix."""
    import matplotlib.pyplot as plt

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
