"""Card images: the sample grid (one row per class) and the closest-pairs grid, upscaled to be readable."""

from pathlib import Path

import torch
import torch.nn.functional as F
from torchvision.utils import make_grid, save_image

from synthset.atomic import atomic_write_with

MIN_IMAGE_PX = 64  # each image at least this wide (nearest neighbour): a 16 px digit is unreadable otherwise


def class_rows(images: torch.Tensor, labels: torch.Tensor | None, num_classes: int, per_row: int = 8) -> torch.Tensor:
    """Up to ``per_row`` images per class, one class per row, blank where a class has fewer (or none)."""
    if labels is None:
        return images[: per_row * per_row]
    blank = torch.full_like(images[:1], 255)
    rows = []
    for k in range(num_classes):
        mine = images[labels == k][:per_row]
        rows.append(torch.cat([mine, blank.expand(per_row - len(mine), -1, -1, -1)]))
    return torch.cat(rows)


def save_grid(images_uint8: torch.Tensor, nrow: int, path: Path, min_image_px: int = MIN_IMAGE_PX) -> None:
    images = images_uint8.float() / 255.0
    factor = max(1, -(-min_image_px // images.size(-1)))
    if factor > 1:
        images = F.interpolate(images, scale_factor=factor, mode="nearest")
    grid = make_grid(images, nrow=max(nrow, 1), pad_value=1.0)
    atomic_write_with(path, lambda temporary: save_image(grid, temporary, format="png"))
