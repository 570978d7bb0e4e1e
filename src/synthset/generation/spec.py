"""What a generated dataset is: the spec that names it, and the label of every index."""

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from synthset.errors import require
from synthset.models.base import require_temperature

FORMATS = ("imagefolder", "hf", "webdataset", "npz")
TOP_K_SCORERS = ("classifier", "discriminator")  # GaFi's reference-classifier confidence; the GAN's own D logit


@dataclass(frozen=True)
class GenerationSpec:
    """Everything that determines the bytes of the output: equal specs give identical datasets."""

    source_run_id: str | None  # None: a checkpoint file with no MLflow run behind it
    checkpoint_sha256: str
    format: str
    num_samples: int
    shard_size: int
    seed: int
    labels: Any  # "balanced" | "uniform" | {class name: count}
    drop_memorized: bool = False
    memorization: dict[str, Any] = field(default_factory=dict)
    label_agreement: float | None = None  # keep images the reference classifier assigns to their label with p >= this
    top_k: float | None = None  # keep this share of each class's draws, the best ones by ``top_k_by``
    top_k_by: str = "classifier"  # what ranks the draws: one of TOP_K_SCORERS
    temperature: float = 1.0  # the latents' spread around the prior's mean (see GenerativeModel.sample)

    def __post_init__(self) -> None:
        require(self.format in FORMATS, f"format={self.format} is unknown; expected one of {', '.join(FORMATS)}.")
        require(isinstance(self.num_samples, int) and self.num_samples > 0,
                f"num_samples={self.num_samples} must be a positive integer, e.g. num_samples=10000.")
        require(isinstance(self.shard_size, int) and self.shard_size > 0,
                f"shard_size={self.shard_size} must be a positive integer, e.g. shard_size=10000.")
        require(self.label_agreement is None or (isinstance(self.label_agreement, float) and 0 < self.label_agreement < 1),
                f"filter.label_agreement={self.label_agreement} must be a probability in (0, 1), e.g. 0.5, or null.")
        require(self.top_k is None or (isinstance(self.top_k, float) and 0 < self.top_k <= 1),
                f"filter.top_k={self.top_k} must be the share of draws to keep, in (0, 1], e.g. 0.5, or null.")
        require(self.top_k_by in TOP_K_SCORERS,
                f"filter.top_k_by={self.top_k_by} is unknown; expected {' or '.join(TOP_K_SCORERS)}.")
        require(isinstance(self.seed, int), f"seed={self.seed!r} must be an integer, e.g. seed=0.")
        require_temperature(self.temperature, "temperature")

    def to_dict(self) -> dict[str, Any]:
        """Without settings at their defaults that came later: datasets drawn before them keep their spec and digest."""
        spec = asdict(self)
        for key, default in (("temperature", 1.0), ("top_k_by", "classifier")):
            if spec[key] == default:
                del spec[key]
        return spec

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:16]

    @property
    def num_shards(self) -> int:
        return -(-self.num_samples // self.shard_size)

    def shard_range(self, shard: int) -> range:
        return range(shard * self.shard_size, min((shard + 1) * self.shard_size, self.num_samples))


def label_plan(spec: GenerationSpec, class_names: list[str]) -> torch.Tensor | None:
    """The label of every index (None for unconditional models).

    ``balanced``: exactly equal counts (when ``num_samples`` is a multiple of the class count;
    otherwise the first classes get one more), interleaved so every shard is balanced too.
    ``uniform``: i.i.d. uniform labels from the seed. A mapping: explicit per-class counts.
    """
    if not class_names:
        require(spec.labels in ("balanced", "uniform"),
                f"labels={spec.labels} names classes, but this model is unconditional; drop the labels option.")
        return None
    k = len(class_names)
    if spec.labels == "balanced":
        return torch.arange(spec.num_samples) % k
    if spec.labels == "uniform":
        return torch.randint(k, (spec.num_samples,), generator=torch.Generator().manual_seed(spec.seed))
    require(isinstance(spec.labels, dict), f"labels={spec.labels} is unknown; expected balanced, uniform or a {{class: count}} map.")
    unknown = sorted(set(map(str, spec.labels)) - set(class_names))
    require(not unknown, f"labels names unknown classes {unknown}; the model's classes are {class_names}.")
    counts = {str(name): int(count) for name, count in spec.labels.items()}
    require(sum(counts.values()) == spec.num_samples,
            f"labels counts sum to {sum(counts.values())} but num_samples={spec.num_samples}; make them agree.")
    return torch.cat([torch.full((c,), class_names.index(name)) for name, c in counts.items()]).long()
