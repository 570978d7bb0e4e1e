"""The dataset card: README.md in the Hugging Face card format plus machine-readable synthset.json.

Its quality section leads with the measures that fit small labeled domains (GAN-test, within-class
diversity) and gives every Inception-space number with its protocol and small-sample flag.
"""

import json
import math
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from synthset.atomic import atomic_write_text
from synthset.metrics.protocol import fid_cell, protocol_text

PACKAGES = ("synthset", "torch", "torchvision", "pytorch-lightning", "torch-fidelity", "mlflow", "hydra-core", "datasets", "webdataset")
LOADING = {
    "imagefolder": "from torchvision.datasets import ImageFolder\nds = ImageFolder('{out}')  # folder '<id>-<name>': targets are the source ids",
    "imagefolder-flat": "import glob\nfrom PIL import Image\nimages = [Image.open(f) for f in sorted(glob.glob('{out}/[0-9]*.png'))]",
    "hf": "import datasets\nds = datasets.load_from_disk('{out}/data')",
    "webdataset": "import webdataset as wds\nds = wds.WebDataset('{out}/shard-{{000000..{last:06d}}}.tar', shardshuffle=False).decode('pil').to_tuple({keys})",
    "npz": "import numpy as np, glob\nshards = [np.load(f) for f in sorted(glob.glob('{out}/shard-*.npz'))]",
}
DOMAIN_ROWS = (("gan_test", "GAN-test accuracy (real-data classifier agrees with the label)"),
               ("pixel_std_ratio", "within-class diversity: generated / real pixel std (mean over classes)"),
               ("pixel_std_ratio_min", "within-class diversity of the least varied class"),
               ("class_recall", "per-class recall in the classifier's feature space"),
               ("class_coverage", "per-class coverage in the classifier's feature space"),
               ("gan_test_recall_f1", "F1 (harmonic mean) of GAN-test and per-class recall"))


def package_versions() -> dict[str, str]:
    found = {}
    for name in PACKAGES:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            continue
    return found


def size_category(n: int) -> str:
    for limit, name in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M")):
        if n < limit:
            return name
    return "n>1M"


def loading_snippet(info: dict[str, Any]) -> str:
    spec = info["spec"]
    key = "imagefolder-flat" if spec["format"] == "imagefolder" and not info["class_names"] else spec["format"]
    last = max(spec["num_samples"] - 1, 0) // spec["shard_size"]
    keys = "'png', 'cls'" if info["class_names"] else "'png'"
    return LOADING[key].format(out=info["out"], last=last, keys=keys)


def header_lines(info: dict[str, Any]) -> list[str]:
    spec, source = info["spec"], info["source"]
    labeled = bool(info["class_names"])
    return [
        "---", "license: other",
        f"license_details: Synthetic images from a model trained on '{source['data']}'; the source data's license applies.",
        "task_categories:", f"- {'image-classification' if labeled else 'unconditional-image-generation'}",
        "size_categories:", f"- {size_category(spec['num_samples'])}",
        "tags:", "- synthetic", "- synthset", f"- {source['model']}", f"- {source['data']}",
        f"pretty_name: synthset {source['model']} on {source['data']} ({spec['num_samples']} images)", "---",
    ]


def provenance_lines(info: dict[str, Any]) -> list[str]:
    spec, source = info["spec"], info["source"]
    splits = source.get("splits") or {}
    origin = (f"MLflow run `{source['run_id']}` ({source.get('run_name', '')})" if source.get("run_id")
              else "a checkpoint file with no MLflow run")
    lines = [
        "## Provenance", "",
        f"- source: {origin}; "
        f"checkpoint `{source['checkpoint']}` (sha256 `{spec['checkpoint_sha256'][:16]}…`); generation run: `{info.get('generation_run_id')}`",
        f"- model: `{source['model']}`, conditional: {bool(info['class_names'])}, trained on `{source['data']}` "
        f"(fraction {source['data_config'].get('fraction', 1.0)} of its training split, data seed {source['data_config'].get('seed', 'n/a')})",
        f"- labels: `{spec['labels']}`; per class: {info['class_counts']}",
    ]
    if spec.get("temperature", 1.0) != 1.0:
        lines.append(f"- latents drawn at `temperature={spec['temperature']}`: {spec['temperature']} times the spread of "
                     "the model's prior around its mean (1 is the prior as trained)")
    if splits:
        lines.append(f"- splits of the source data: train {splits['train']['images']}, val {splits['val']['images']} "
                     f"(selection), test {splits['test']['images']} (reporting only; {splits['test_origin']})")
    if info.get("curated"):
        cur = info["curated"]
        lines.append(f"- curated by {cur['raters']} raters from `{cur['from']}`: {cur['removed']} images removed, "
                     f"{cur['kept']} kept (an image is removed when {cur['rule']})")
    lines.append(f"- created: {info['created']}; packages: " + ", ".join(f"{k} {v}" for k, v in info["packages"].items()))
    return lines


def source_evaluation_lines(info: dict[str, Any]) -> list[str]:
    evaluation = info.get("source_evaluation")
    if not evaluation:
        return ["The checkpoint carries no evaluation of its own weights (trained with evaluation off)."]
    metrics = evaluation["metrics"]
    shown = ", ".join(f"{k} {v:.4f}" for k, v in metrics.items() if "/" not in k and not math.isnan(v))
    return [f"The checkpoint's own evaluation, used to select it ({protocol_text(evaluation['protocol'])}): {shown}."]


def quality_table(quality: dict[str, Any]) -> list[str]:
    """Domain measures first, then Inception-space metrics with their protocol; filtered draws beside unfiltered."""
    metrics, before = quality.get("metrics", {}), quality.get("metrics_before_filtering")
    protocol = quality["protocol"]
    columns = ["measure", "value"] + (["before filtering"] if before is not None else [])
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]

    def row(label: str, key: str, cell=lambda m, k: f"{m[k]:.4f}") -> None:
        if key in metrics:
            extra = [cell(before, key) if key in before else "n/a"] if before is not None else []
            lines.append("| " + " | ".join([label, cell(metrics, key), *extra]) + " |")

    for key, label in DOMAIN_ROWS:
        row(label, key)
    row("FID (TF-Inception pool3)", "fid", lambda m, k: fid_cell(m, protocol, k))
    for key in ("kid_mean", "precision", "recall", "fd_effnet_lite0", "is_effnet_lite0", "is"):
        row(key, key)
    return lines


def quality_lines(info: dict[str, Any]) -> list[str]:
    q = info["quality"]
    if not q:
        return ["Not measured (`card.eval_samples=0`)."]
    if q.get("reference_split", "test") == "val":  # cards written before the option scored on test
        lead = ("This dataset against real **val** images, scored to choose a generation setting before test is read; "
                "not a reported result")
    else:
        lead = "This dataset against real **test** images, which no model in the chain trained on or was selected on"
    return [f"{lead} ({protocol_text(q['protocol'])}):", "", *quality_table(q)]


def memorization_lines(info: dict[str, Any]) -> list[str]:
    mem, spec = info["memorization"], info["spec"]
    if not mem:
        return ["Not checked (`memorization.enabled=false`)."]
    return [
        f"Nearest-neighbour distance to the {mem['train_images']} training images in `{mem['extractor']}` feature space; "
        f"threshold {mem['threshold']:.4f} = the {mem['percentile']}th percentile of real-val-to-train distances.",
        f"Flagged before filtering: {mem['flagged']} of {spec['num_samples']} ({mem['flagged_fraction']:.2%}); "
        f"replaced: {mem['replaced']} (`filter.drop_memorized={spec['drop_memorized']}`).",
        "", "Closest generated/training pairs (left: generated, right: nearest training image):", "",
        "![closest pairs](closest_pairs.png)",
    ]


# filter.top_k_by -> the card's heading, what ranked the draws, and the method's name
TOP_K_WORDING = {
    "classifier": ("Confidence filter", "the reference classifier is most confident about", "dynamic sample filtering, GaFi"),
    "discriminator": ("Discriminator filter", "the GAN's own discriminator scores as most real",
                      "discriminator rejection sampling at a fixed acceptance rate"),
}


def filter_lines(info: dict[str, Any]) -> list[str]:
    lines = []
    if info.get("label_agreement"):
        la = info["label_agreement"]
        lines += ["", "## Label agreement", "",
                  f"Kept only images the reference classifier (trained on the real training split) assigns to their label with "
                  f"p >= {la['threshold']}; {la['disagreed']} first draws failed and were redrawn."]
    if info.get("top_k"):
        tk = info["top_k"]
        title, ranked_by, method = TOP_K_WORDING[tk.get("by", "classifier")]
        lines += ["", f"## {title}", "",
                  f"Per shard and class, the {tk['keep']:.0%} of drawn images {ranked_by} were kept ({method}); "
                  f"{tk['drawn']} images were drawn for {tk['kept']}."]
    return lines


def combination(utility: dict[str, Any]) -> str:
    """How a ``+synthetic`` protocol used the two sets (cards written before ``synthetic_use`` existed mixed them)."""
    if utility.get("synthetic_use") == "pretrain":
        lr, weight = utility.get("finetune_lr"), utility.get("synthetic_weight")
        return ("the classifier trained on the synthetic images alone (same seed) was fine-tuned on the real ones"
                + (f" at learning rate {lr:g}" if lr else "")
                + (f", with {weight:.0%} of each fine-tuning batch still synthetic" if weight else ""))
    weight = utility.get("synthetic_weight")
    return (f"{weight:.0%} of each batch was synthetic" if weight else
            "batches were drawn from both sets in proportion to their sizes")


def pooled(utility: dict[str, Any]) -> str:
    """Which other datasets' images joined this one's in the synthetic protocols (``utility.extra_datasets``)."""
    extras = utility.get("extra_datasets") or []
    return (" The synthetic images are this dataset's pooled with those of " + ", ".join(
        f"`{extra['dataset']}` (spec {extra['spec_digest']})" for extra in extras) + ".") if extras else ""


def utility_lines(utility: dict[str, Any] | None, data: str) -> list[str]:
    """Train-on-synthetic / test-on-real results, or the class histogram of unlabeled samples."""
    if not utility:
        return [f"Not measured yet: `python evaluate.py task=utility dataset=<this folder>` trains the reference classifier "
                f"on real, synthetic and mixed data and tests it on the real `{data}` test split."]
    patience = utility.get("patience", 3)  # cards written before the option: the plateau stop of 3
    stop = f"stopped after {patience} val scores without a gain" if patience else "the whole budget"
    lines = [f"Reference classifier ({utility['steps']} Adam steps of batch {utility['batch_size']} per protocol, {stop}, "
             f"the weights best on val kept) tested on "
             f"{utility['test_images']} real `{data}` test images; mean ± std over {utility['seeds']} seed(s). "
             f"The generator was trained on {utility['generator_fraction']:.0%} of the real training split"
             + (f"; MLflow run `{utility['run_id']}`." if utility.get("run_id") else ".")
             + f" In `+synthetic` protocols {combination(utility)}." + pooled(utility), "",
             "| protocol | real images | synthetic images | test accuracy | delta |", "|---|---|---|---|---|"]
    for p in utility["protocols"]:
        name = f"{p['name']} (**leaky**)" if p["leaky"] else p["name"]
        lines.append(f"| {name} | {p['num_real']} | {p['num_synthetic']} | {100 * p['mean']:.2f} ± {100 * p['std']:.2f} % | {p['delta']} |")
    if any(p["leaky"] for p in utility["protocols"]):
        lines += ["", "**leaky**: the generator saw more real images than the protocol's real share, so its result "
                  "cannot count as a gain; train the generator with `data.fraction` equal to that share."]
    hist = utility.get("class_histogram")
    if hist:
        lines += ["", "The samples are unlabeled, so they cannot train a classifier; the real-data classifier labels them instead "
                  f"(normalized entropy {hist['normalized_entropy']:.3f}; 1.0 = all classes equally often):", "",
                  "| class | samples |", "|---|---|", *[f"| {k} | {v} |" for k, v in hist["counts"].items()]]
        if hist["classes_under_1_percent"]:
            lines += ["", f"Classes under 1 % of the samples (possible mode collapse): {', '.join(hist['classes_under_1_percent'])}."]
    return lines


def card_markdown(info: dict[str, Any]) -> str:
    spec, source = info["spec"], info["source"]
    lines = [
        f"# Synthetic {source['data']} from {source['model']}", "",
        f"{spec['num_samples']} images generated by synthset from `{source.get('run_name') or source['checkpoint']}`, "
        f"seed {spec['seed']}, format `{spec['format']}`.",
        "", "![samples](grid.png)", "", *provenance_lines(info),
        "", "## Quality", "", *source_evaluation_lines(info), "", *quality_lines(info),
        "", "## Memorization", "", *memorization_lines(info), *filter_lines(info),
        "", "## Utility", "", *utility_lines(info.get("utility"), source["data"]),
    ]
    if info.get("human_evaluation_markdown"):
        lines += ["", "## Human evaluation", "", *info["human_evaluation_markdown"]]
    lines += ["", "## How to load", "", "```python", loading_snippet(info), "```",
              "", "`classes.json` maps every label id to its class name (ids are the source data's own).", ""]
    return "\n".join(header_lines(info)) + "\n\n" + "\n".join(lines)


def write_card(out: Path, info: dict[str, Any]) -> None:
    info = {**info, "created": info.get("created") or datetime.now(UTC).isoformat(timespec="seconds"),
            "packages": package_versions(), "out": str(out)}
    atomic_write_text(out / "synthset.json", json.dumps(info, indent=1, sort_keys=True, default=str))
    atomic_write_text(out / "README.md", card_markdown(info))
