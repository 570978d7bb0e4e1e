"""The reference classifier: one small ResNet-style CNN with a fixed recipe, trained on real data.

Used by generation's label-agreement filter and by every utility protocol (train on real /
synthetic / both, test on real), always with the same recipe and step budget.
Trained once per (data fingerprint, recipe) and cached under ``outputs/cache/classifier``.
"""

from pathlib import Path

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import BatchSampler, DataLoader, RandomSampler, WeightedRandomSampler

from synthset.data.datamodule import ImageDataModule, IndexedImages, to_signed_unit

RECIPE = "reference-classifier-v1"  # bump whenever ReferenceClassifier or fit_classifier changes: cached classifiers and results expire


class ResidualBlock(nn.Module):
    def __init__(self, ch_in: int, ch_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(ch_in, ch_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(ch_out)
        self.conv2 = nn.Conv2d(ch_out, ch_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(ch_out)
        self.skip = nn.Identity() if stride == 1 and ch_in == ch_out else nn.Sequential(
            nn.Conv2d(ch_in, ch_out, 1, stride, bias=False), nn.BatchNorm2d(ch_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + self.skip(x))


class ReferenceClassifier(pl.LightningModule):
    """Three residual stages (32, 64, 128 channels, each halving the resolution), global pooling, linear head; Adam 1e-3."""

    def __init__(self, channels: int, num_classes: int, width: int = 32, lr: float = 1e-3) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.body = nn.Sequential(
            # The first block already halves the resolution: 4x cheaper, and 16-64 px images need no more.
            ResidualBlock(channels, width, 2), ResidualBlock(width, 2 * width, 2), ResidualBlock(2 * width, 4 * width, 2),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4 * width, num_classes))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.body(images)

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        images, labels = batch
        images = to_signed_unit(images)  # batches arrive as uint8
        loss = F.cross_entropy(self(images), labels)
        self.log("classifier/loss", loss, prog_bar=True)
        return loss

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)

    @torch.inference_mode()
    def predict_labels(self, images_uint8: torch.Tensor) -> torch.Tensor:
        return self.probabilities(images_uint8).argmax(1)

    @torch.inference_mode()
    def probabilities(self, images_uint8: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
        """Class probabilities for uint8 images (N, C, H, W)."""
        self.eval()
        return torch.cat([F.softmax(self(to_signed_unit(images_uint8[i : i + batch_size].clone())), dim=1)
                          for i in range(0, len(images_uint8), batch_size)])


def fit_classifier(images: torch.Tensor, labels: torch.Tensor, num_classes: int, steps: int, seed: int,
                   batch_size: int = 64, weights: torch.Tensor | None = None) -> ReferenceClassifier:
    """The fixed recipe: ``steps`` Adam steps of ``batch_size`` uint8 images drawn from (images, labels).

    ``weights`` (one per image) makes the draw weighted, with replacement: how real and synthetic mix.
    """
    pl.seed_everything(seed, workers=True)
    model = ReferenceClassifier(images.size(1), num_classes)
    generator = torch.Generator().manual_seed(seed)
    total = steps * batch_size
    sampler = (WeightedRandomSampler(weights, total, replacement=True, generator=generator) if weights is not None
               else RandomSampler(range(len(images)), num_samples=total, generator=generator))
    loader = DataLoader(IndexedImages(images, labels), sampler=BatchSampler(sampler, batch_size, drop_last=True), batch_size=None)
    trainer = pl.Trainer(max_steps=steps, max_epochs=1, accelerator="cpu", logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(model, train_dataloaders=loader)
    return model.eval()


def reference_classifier(datamodule: ImageDataModule, cache_dir: Path, max_steps: int = 600, seed: int = 0) -> ReferenceClassifier:
    """Train (or load the cached) reference classifier on ``datamodule``'s real training split."""
    path = Path(cache_dir) / f"{datamodule.name}-{datamodule.fingerprint('train')}-steps{max_steps}-seed{seed}-{RECIPE}.pt"
    if path.is_file():
        model = ReferenceClassifier(datamodule.channels, datamodule.num_classes)
        model.load_state_dict(torch.load(path, weights_only=True))
        return model.eval()
    model = fit_classifier(*datamodule.split("train"), datamodule.num_classes, max_steps, seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), path.with_suffix(".tmp"))
    path.with_suffix(".tmp").replace(path)
    return model
