"""Every reported number carries its protocol: data, split, N generated, N reference, extractor, image size.

FID from a few hundred samples is biased high and cannot be compared with FID from 10,000, and a
number scored on ``val`` (selection) means something else than one scored on ``test`` (reporting).
"""

from typing import Any

from synthset.metrics.naming import metric_name

SMALL_SAMPLE = 2000  # below this many images on either side, FID is flagged and KID shown beside it
# Which way is better, for the metrics a run can be selected on.
HIGHER_IS_BETTER = ("gan_test", "gan_test_recall_f1", "class_recall", "class_coverage", "pixel_std_ratio", "precision", "recall", "is")
SELECTION_SPLITS = ("val", "train")  # train: the literature protocol; test is for reporting only
# Run tags: which metric a training run is selected on, and the protocol it was scored under.
SELECTION_METRIC_TAG = "synthset.selection_metric"
PROTOCOL_TAG = "synthset.eval_protocol"


def protocol_record(data: str, split: str, n_generated: int, n_reference: int, image_size: int,
                    extractor: str | None, classifier: str | None) -> dict[str, Any]:
    """The plain record stored with a metric: in checkpoints, runs (tags) and cards."""
    return {"data": data, "split": split, "n_generated": n_generated, "n_reference": n_reference,
            "image_size": image_size, "extractor": extractor, "classifier": classifier}


def protocol_text(record: dict[str, Any]) -> str:
    """One line: ``digits/val: 1000 generated vs 144 real, 16 px, inception-tf-pool3``."""
    parts = [f"{record['data']}/{record['split']}: {record['n_generated']} generated vs {record['n_reference']} real",
             f"{record['image_size']} px"]
    if record.get("extractor"):
        parts.append(str(record["extractor"]))
    if record.get("classifier"):
        parts.append(f"classifier {record['classifier']}")
    if record.get("temperature", 1.0) != 1.0:
        parts.append(f"latents at temperature {record['temperature']}")
    domain = (record.get("n_generated_domain"), record.get("n_reference_domain", record["n_reference"]))
    if domain[0] and domain != (record["n_generated"], record["n_reference"]):
        parts.append(f"GAN-test and diversity on {domain[0]} generated vs {domain[1]} real")
    return ", ".join(parts)


def is_small_sample(record: dict[str, Any]) -> bool:
    return min(record["n_generated"], record["n_reference"]) < SMALL_SAMPLE


def monitored_key(monitor: str, extractor: str) -> str:
    """The metric key a ``monitor`` choice reads: ``fid`` on another extractor becomes its named proxy."""
    return metric_name(monitor, extractor) if monitor in ("fid", "kid") else monitor


def higher_is_better(key: str) -> bool:
    base = key.rsplit("/", 1)[-1]
    return any(base == name or base.startswith(name + "_") for name in HIGHER_IS_BETTER)


def better(candidate: float, incumbent: float | None, key: str) -> bool:
    if incumbent is None:
        return True
    return candidate > incumbent if higher_is_better(key) else candidate < incumbent


def fid_cell(metrics: dict[str, float], record: dict[str, Any], key: str = "fid") -> str:
    """FID as a table cell: the value, and when the sample is small the flag and KID beside it."""
    value = metrics.get(key)
    if value is None:
        return "not measured"
    text = f"{value:.2f}"
    if is_small_sample(record):
        kid = metrics.get(key.replace("fid", "kid") + "_mean") if key.startswith("fid") else None
        kid_std = metrics.get(key.replace("fid", "kid") + "_std") if key.startswith("fid") else None
        text += f" (small-sample: N={min(record['n_generated'], record['n_reference'])} < {SMALL_SAMPLE}, biased high"
        text += f"; KID {kid:.4f} ± {kid_std:.4f})" if kid is not None and kid_std is not None else ")"
    return text
