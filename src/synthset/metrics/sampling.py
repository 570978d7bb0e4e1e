"""Draw images from any GenerativeModel in batches, deterministically, as uint8."""

import torch
from tqdm.auto import tqdm

from synthset.data.datamodule import to_uint8
from synthset.models.base import GenerativeModel


def sample_uint8(
    model: GenerativeModel,
    n: int,
    labels: torch.Tensor | None = None,
    seed: int = 0,
    batch_size: int = 256,
    progress: bool = False,
    temperature: float = 1.0,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``n`` uint8 images (n, C, H, W) and their labels (balanced by default when conditional), latents at ``temperature``."""
    if labels is None:
        labels = model.default_labels(n)
    generator = torch.Generator().manual_seed(seed)
    chunks = []
    for start in tqdm(range(0, n, batch_size), desc="sampling", unit="batch", disable=not progress):
        batch_labels = labels[start : start + batch_size] if labels is not None else None
        count = min(batch_size, n - start)
        chunks.append(to_uint8(model.sample(count, batch_labels, generator, temperature)).cpu())
    return torch.cat(chunks), labels
