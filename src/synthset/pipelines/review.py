"""review(cfg): people judge a generated dataset. Serve the review app, report the verdicts, export a curated copy.

    python review.py dataset=<folder> [mode=realism|curation] [trials=100] [exposure_ms=500] [port=0]
    python review.py dataset=<folder> report=true            # error rates with 95 % CIs, into the card and MLflow
    python review.py dataset=<folder> export=<new folder>    # the dataset without the images curators rejected
"""

import ipaddress
import json
import secrets
import socket
from pathlib import Path
from typing import Any

from omegaconf import DictConfig
from rich.console import Console

from synthset.atomic import atomic_write_text
from synthset.data.datamodule import datamodule_from_record
from synthset.errors import SynthsetError, require
from synthset.generation.card import write_card
from synthset.generation.export import write_images
from synthset.generation.grid import class_rows, save_grid
from synthset.generation.readers import load_card, read_dataset
from synthset.generation.writers import encode_png
from synthset.review.app import ReviewData, create_app
from synthset.review.stats import curation_report, realism_report, report_markdown
from synthset.review.store import DATABASE, VerdictStore
from synthset.tracking.runs import KIND_TAG, child_run_home
from synthset.tracking.store import ensure_store, tracking_uri_for

MODES = ("realism", "curation")


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(socket.gethostbyname(host)).is_loopback
    except (OSError, ValueError):
        return False


def validate(cfg: DictConfig) -> Path:
    require(cfg.get("dataset"), "dataset is missing; pass dataset=outputs/datasets/<name> (a folder written by generate.py).")
    out = Path(str(cfg.dataset))
    require(out.is_dir() and (out / "synthset.json").is_file(),
            f"dataset={out} is not a synthset dataset (no synthset.json card); pass a folder written by generate.py.")
    require(cfg.mode in MODES, f"mode={cfg.mode} is unknown; expected realism or curation.")
    require(isinstance(cfg.trials, int) and cfg.trials >= 2, f"trials={cfg.trials} must be an integer of at least 2, e.g. 100.")
    require(cfg.exposure_ms is None or (isinstance(cfg.exposure_ms, int) and cfg.exposure_ms > 0),
            f"exposure_ms={cfg.exposure_ms} must be a positive number of milliseconds (e.g. 500) or null.")
    require(is_loopback(str(cfg.host)) or cfg.token,
            f"host={cfg.host} is reachable from other machines, so the server needs an access token; pass token=auto "
            "(a random one, printed once) or token=<secret>, or keep host=127.0.0.1.")
    return out


def bind_port(host: str, port: int) -> socket.socket:
    """Reserve the port now, so a port in use is one sentence before anything starts."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.bind((host, port))
    except OSError as error:
        sock.close()
        raise SynthsetError(f"port={port} on host={host} cannot be used ({error.strerror}); pick another port=..., or "
                            "port=0 for a free one.") from None
    return sock


def review_data(cfg: DictConfig, out: Path, card: dict[str, Any]) -> ReviewData:
    images, labels = read_dataset(out, card)
    class_names = list(card["class_names"])
    generated_labels = labels.tolist() if labels is not None else [-1] * len(images)
    real_png, real_labels = None, []
    if cfg.mode == "realism":
        source = datamodule_from_record(card["source"]["data_config"], f"the card of dataset={out}")
        real, real_label_tensor = source.split("test")  # reporting split: no model was selected on it
        real_png, real_labels = (lambda i: encode_png(real[i].numpy())), real_label_tensor.tolist()
    return ReviewData(name=out.name, folder=out, class_names=class_names,
                      generated_png=lambda i: encode_png(images[i].numpy()), generated_labels=generated_labels,
                      real_png=real_png, real_labels=real_labels, seed=int(cfg.seed), trials=int(cfg.trials),
                      exposure_ms=cfg.exposure_ms)


def serve(cfg: DictConfig, out: Path, card: dict[str, Any]) -> None:
    import uvicorn

    token = secrets.token_urlsafe(16) if cfg.token == "auto" else (str(cfg.token) if cfg.token else None)
    sock = bind_port(str(cfg.host), int(cfg.port))
    app = create_app(review_data(cfg, out, card), VerdictStore(out / DATABASE), token)
    host, port = sock.getsockname()[:2]
    print(f"review of {out.name} ({cfg.mode}): http://{host}:{port}/" + (f"?token={token}" if token else ""), flush=True)
    if token:
        print("the token is printed only this once; share the URL with the raters.", flush=True)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    server.run(sockets=[sock])


def start_review_run(cfg: DictConfig, out: Path, card: dict[str, Any], results: dict[str, Any]) -> str:
    """A child run of the dataset's generation run (when this store has it) with the rates; the card follows."""
    from mlflow.tracking import MlflowClient

    uri = tracking_uri_for(cfg)
    ensure_store(uri)
    client = MlflowClient(uri)
    experiment, parent = child_run_home(client, card.get("generation_run_id"), cfg.tracking.experiment)
    tags = {KIND_TAG: "review", "synthset.dataset": str(out)} | ({"mlflow.parentRunId": parent} if parent else {})
    run_id = client.create_run(experiment, run_name=f"review-{out.name}", tags=tags).info.run_id
    realism, curation = results["realism"], results["curation"]
    for key in ("error_rate", "error_rate_generated", "error_rate_real"):
        if realism.get(key):
            for part in ("rate", "low", "high"):
                client.log_metric(run_id, f"human/{key}_{part}" if part != "rate" else f"human/{key}", realism[key][part])
    if curation.get("rejection_rate") is not None:
        client.log_metric(run_id, "human/rejection_rate", curation["rejection_rate"])
    for key, value in {"raters_realism": realism["raters"], "raters_curation": curation["raters"],
                       "trials": realism["trials"]}.items():
        client.log_param(run_id, key, value)
    return run_id


def finish_review_run(cfg: DictConfig, out: Path, run_id: str) -> None:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri_for(cfg))
    for name in ("README.md", "synthset.json"):
        client.log_artifact(run_id, str(out / name), "dataset_card")
    client.set_terminated(run_id)


def report(cfg: DictConfig, out: Path, card: dict[str, Any]) -> dict[str, Any]:
    store = VerdictStore(out / DATABASE)
    class_names = list(card["class_names"])
    results = {"realism": realism_report(store.realism_rows(), class_names),
               "curation": curation_report(store.curation_rows(), class_names)}
    lines = report_markdown(results["realism"], results["curation"])
    results["run_id"] = start_review_run(cfg, out, card, results)
    write_card(out, {**card, "human_evaluation": results, "human_evaluation_markdown": lines})
    finish_review_run(cfg, out, results["run_id"])
    Console().print("\n".join(lines))
    return results


def export(cfg: DictConfig, out: Path, card: dict[str, Any]) -> Path:
    """A new dataset without the images curators rejected; the source folder is never modified."""
    target = Path(str(cfg.export))
    require(target.resolve() != out.resolve(), f"export={target} is the dataset itself; export writes a new folder.")
    curation = curation_report(VerdictStore(out / DATABASE).curation_rows(), list(card["class_names"]))
    require(curation["judged"], f"dataset={out} has no curation verdicts yet; run mode=curation first.")
    images, labels = read_dataset(out, card)
    rejected = set(curation["rejected"])
    keep = [i for i in range(len(images)) if i not in rejected]
    spec = {"curated_from": card["spec_digest"], "format": card["spec"]["format"], "num_samples": len(keep),
            "removed": sorted(rejected), "raters": curation["raters"]}
    manifest = write_images(target, images[keep], labels[keep] if labels is not None else None, list(card["class_names"]),
                            card["spec"]["format"], int(card["spec"]["shard_size"]), spec, progress=cfg.progress)
    class_counts = None
    if labels is not None:
        counts = labels[keep].bincount(minlength=len(card["class_names"])).tolist()
        class_counts = dict(zip(card["class_names"], counts, strict=True))
    curated = {**card, "spec": {**card["spec"], "num_samples": len(keep)}, "spec_digest": manifest.digest,
               "class_counts": class_counts, "utility": None, "human_evaluation": None, "human_evaluation_markdown": None,
               "curated": {"from": str(out), "raters": curation["raters"], "removed": len(rejected),
                           "kept": len(keep), "rule": "rejected by at least half of the raters who judged it"},
               "shards": {k: {"sha256": v["sha256"], "count": v["count"]} for k, v in manifest.shards.items()}}
    kept_images = images[keep]
    kept_labels = labels[keep] if labels is not None else None
    save_grid(class_rows(kept_images[:2000], kept_labels[:2000] if kept_labels is not None else None,
                         len(card["class_names"])), 8, target / "grid.png")
    atomic_write_text(target / "classes.json", json.dumps(dict(enumerate(card["class_names"])), indent=1))
    write_card(target, curated)
    print(f"curated dataset: {target} ({len(keep)} of {len(images)} images kept; curated by {curation['raters']} raters)")
    return target


def review(cfg: DictConfig) -> dict[str, Any] | None:
    out = validate(cfg)
    card = load_card(out)
    if cfg.get("export"):
        export(cfg, out, card)
        return None
    if cfg.report:
        return report(cfg, out, card)
    serve(cfg, out, card)
    return None
