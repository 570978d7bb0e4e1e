"""Honest metric names: a metric computed on a non-standard extractor is named after it."""

from synthset.metrics.extractors import EFFNET_LITE0, INCEPTION_COMPAT, INCEPTION_TF

# The extractor each published metric is defined on.
STANDARD_EXTRACTOR = {"fid": INCEPTION_TF, "kid": INCEPTION_TF, "is": INCEPTION_COMPAT}
# Published names for metrics on a non-standard extractor ("Frechet distance", not FID).
RENAMED = {"fid": "fd", "kid": "kd", "is": "is"}


def extractor_suffix(extractor: str) -> str:
    return extractor.replace("-", "_")


def metric_name(metric: str, extractor: str) -> str:
    """``fid`` on TF-Inception stays ``fid``; on EfficientNet-Lite0 it becomes ``fd_effnet_lite0``."""
    if metric in ("precision", "recall"):
        # Precision/recall (Kynkaanniemi et al.) are published on several networks: name all but Inception's.
        return metric if extractor == INCEPTION_TF else f"{metric}_{extractor_suffix(extractor)}"
    if STANDARD_EXTRACTOR.get(metric) == extractor:
        return metric
    return f"{RENAMED[metric]}_{extractor_suffix(extractor)}"


__all__ = ["metric_name", "EFFNET_LITE0", "INCEPTION_TF", "INCEPTION_COMPAT"]
