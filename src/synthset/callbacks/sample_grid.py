"""Sample grids from fixed noise and fixed labels, so progress is visible in the MLflow UI."""

from pathlib import Path

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from pytorch_lightning.utilities import rank_zero_only
from torchvision.utils import make_grid, save_image

from synthset.callbacks.steps import logged_step
from synthset.models.base import GenerativeModel


def grid_labels(model: GenerativeModel, per_class: int) -> torch.Tensor | None:
    """One row per class (conditional) so a wrong class shows up as a wrong row."""
    if not model.num_classes:
        return None
    return torch.arange(model.num_classes).repeat_interleave(per_class)


def upscale(images: torch.Tensor, min_image_px: int) -> torch.Tensor:
    """Nearest-neighbour upscaling by a whole factor so each image is at least ``min_image_px`` wide."""
    factor = max(1, -(-min_image_px // images.size(-1)))
    return F.interpolate(images, scale_factor=factor, mode="nearest") if factor > 1 else images


def sample_grid(model: GenerativeModel, per_class: int = 8, seed: int = 0, min_image_px: int = 64) -> torch.Tensor:
    """A (C, H, W) grid in [0, 1] from fixed noise: rows are classes when conditional."""
    labels = grid_labels(model, per_class)
    n = len(labels) if labels is not None else per_class * per_class
    images = model.sample(n, labels, generator=torch.Generator().manual_seed(seed)).float().cpu()
    return make_grid(upscale(images, min_image_px), nrow=per_class, normalize=True, value_range=(-1, 1), pad_value=1.0)


class SampleGridCallback(pl.Callback):
    """Every ``every_n_steps`` batches and at the end, save and log a sample grid (named by the logged step)."""

    def __init__(self, every_n_steps: int = 500, per_class: int = 8, seed: int = 0, folder: str = "samples",
                 min_image_px: int = 64) -> None:
        self.every_n_steps = every_n_steps
        self.per_class = per_class
        self.seed = seed
        self.folder = folder
        self.min_image_px = min_image_px
        self.last_logged_step = -1

    def log_grid(self, trainer: pl.Trainer, pl_module: GenerativeModel) -> Path | None:
        step = logged_step(trainer)
        if step == self.last_logged_step:
            return None
        self.last_logged_step = step
        grid = sample_grid(pl_module, self.per_class, self.seed, self.min_image_px)
        path = Path(trainer.default_root_dir) / self.folder / f"step_{step:07d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        save_image(grid, path)
        for logger in trainer.loggers:
            if hasattr(logger, "run_id") and hasattr(logger.experiment, "log_artifact"):
                logger.experiment.log_artifact(logger.run_id, str(path), self.folder)
        return path

    @rank_zero_only
    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if logged_step(trainer) // self.every_n_steps > max(self.last_logged_step, 0) // self.every_n_steps:
            self.log_grid(trainer, pl_module)

    @rank_zero_only
    def on_train_end(self, trainer, pl_module) -> None:
        self.log_grid(trainer, pl_module)
