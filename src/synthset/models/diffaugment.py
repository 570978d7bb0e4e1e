"""DiffAugment (Zhao et al. 2020): differentiable augmentations applied to real and fake images before D.

Each policy draws fresh randomness per image on every call, and gradients flow through to the
generator, so D never sees un-augmented images and cannot overfit a few hundred real ones.
"""

import torch
import torch.nn.functional as F

from synthset.errors import require


def brightness(x: torch.Tensor) -> torch.Tensor:
    return x + (torch.rand(x.size(0), 1, 1, 1, device=x.device, dtype=x.dtype) - 0.5)


def saturation(x: torch.Tensor) -> torch.Tensor:
    mean = x.mean(dim=1, keepdim=True)
    return (x - mean) * (torch.rand(x.size(0), 1, 1, 1, device=x.device, dtype=x.dtype) * 2) + mean


def contrast(x: torch.Tensor) -> torch.Tensor:
    mean = x.mean(dim=[1, 2, 3], keepdim=True)
    return (x - mean) * (torch.rand(x.size(0), 1, 1, 1, device=x.device, dtype=x.dtype) + 0.5) + mean


def gather_pixels(images: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
    """``images[i, :, rows[i], cols[i]]`` for each image ``i`` (rows: (N, H, 1), cols: (N, 1, W)), laid out as NCHW.

    Indexing the NHWC view is the fast gather, but it leaves a channels-last tensor, and on AVX2-only CPUs
    (PyTorch 2.14, oneDNN 3.12) a strided 1x1 convolution's backward over channels-last input corrupts the heap.
    """
    batch = torch.arange(images.size(0), device=images.device).view(-1, 1, 1)
    nhwc = images.permute(0, 2, 3, 1)[batch, rows, cols]
    return nhwc.permute(0, 3, 1, 2).clone(memory_format=torch.contiguous_format)


def translation(x: torch.Tensor, ratio: float = 0.125) -> torch.Tensor:
    """Shift each image by up to ``ratio`` of its size, filling with zeros (the paper's policy)."""
    n, _, h, w = x.shape
    shift_y, shift_x = int(h * ratio + 0.5), int(w * ratio + 0.5)
    dy = torch.randint(-shift_y, shift_y + 1, (n, 1, 1), device=x.device)
    dx = torch.randint(-shift_x, shift_x + 1, (n, 1, 1), device=x.device)
    rows = (torch.arange(h, device=x.device).view(1, h, 1) + dy + 1).clamp(0, h + 1)
    cols = (torch.arange(w, device=x.device).view(1, 1, w) + dx + 1).clamp(0, w + 1)
    return gather_pixels(F.pad(x, [1, 1, 1, 1]), rows, cols)


def cutout(x: torch.Tensor, ratio: float = 0.5) -> torch.Tensor:
    """Zero one square of ``ratio`` x the image size at a random position per image."""
    n, _, h, w = x.shape
    size_y, size_x = int(h * ratio + 0.5), int(w * ratio + 0.5)
    off_y = torch.randint(0, h + (1 - size_y % 2), (n, 1, 1), device=x.device)
    off_x = torch.randint(0, w + (1 - size_x % 2), (n, 1, 1), device=x.device)
    rows = (torch.arange(size_y, device=x.device).view(1, -1, 1) + off_y - size_y // 2).clamp(0, h - 1)
    cols = (torch.arange(size_x, device=x.device).view(1, 1, -1) + off_x - size_x // 2).clamp(0, w - 1)
    mask = torch.ones(n, h, w, device=x.device, dtype=x.dtype)
    mask[torch.arange(n, device=x.device).view(n, 1, 1), rows, cols] = 0
    return x * mask.unsqueeze(1)


POLICIES = {"color": (brightness, saturation, contrast), "translation": (translation,), "cutout": (cutout,)}


def parse_policy(policy: str | list[str] | None) -> list[str]:
    """``[color,translation,cutout]`` or ``"color,translation,cutout"`` -> names; ``None``/empty -> none.

    On Hydra's command line an unquoted comma means a sweep, so pass a list: ``model.diffaugment=[color,cutout]``.
    """
    parts = policy.split(",") if isinstance(policy, str) else list(policy or [])
    names = [str(p).strip() for p in parts if str(p).strip()]
    for name in names:
        require(name in POLICIES, f"model.diffaugment={policy!r} names unknown policy {name!r}; "
                f"expected a comma-separated subset of {','.join(POLICIES)}, e.g. color,translation,cutout.")
    return names


def diff_augment(x: torch.Tensor, names: list[str]) -> torch.Tensor:
    for name in names:
        for op in POLICIES[name]:
            x = op(x)
    return x.contiguous()
