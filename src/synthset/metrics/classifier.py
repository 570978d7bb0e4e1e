"""The reference classifier: one small ResNet-style CNN with a fixed recipe, trained on real data.

Used by generation's label-agreement filter (and by train-on-synthetic utility protocols).
Trained once per (data fingerprint, recipe) and cached under ``outputs/cache/classifier``.
"""

from pathlib import Path

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import nn

from synthset.data.datamodule import ImageDataModule, to_signed_unit


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
    """Three residual stages (32, 64, 128 channels), global pooling, linear head; Adam 1e-3."""

    def __init__(self, channels: int, num_classes: int, width: int = 32, lr: float = 1e-3) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.body = nn.Sequential(
            ResidualBlock(channels, width, 1), ResidualBlock(width, 2 * width, 2), ResidualBlock(2 * width, 4 * width, 2),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4 * width, num_classes))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.body(images)

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        images, labels = batch
        loss = F.cross_entropy(self(images), labels)
        self.log("classifier/loss", loss, prog_bar=True)
        return loss

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)

    @torch.inference_mode()
    def probabilities(self, images_uint8: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
        """Class probabilities for uint8 images (N, C, H, W)."""
        self.eval()
        return torch.cat([F.softmax(self(to_signed_unit(images_uint8[i : i + batch_size].clone())), dim=1)
                          for i in range(0, len(images_uint8), batch_size)])


def reference_classifier(datamodule: ImageDataModule, cache_dir: Path, max_steps: int = 600, seed: int = 0) -> ReferenceClassifier:
    """Train (or load the cached) reference classifier on ``datamodule``'s real training split."""
    path = Path(cache_dir) / f"{datamodule.name}-{datamodule.fingerprint('train')}-steps{max_steps}-seed{seed}.pt"
    model = ReferenceClassifier(datamodule.channels, datamodule.num_classes)
    if path.is_file():
        model.load_state_dict(torch.load(path, weights_only=True))
        return model.eval()
    pl.seed_everything(seed, workers=True)
    trainer = pl.Trainer(max_steps=max_steps, accelerator="cpu", logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(model, datamodule=datamodule)  # the data module scales uint8 batches to [-1, 1]
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), path.with_suffix(".tmp"))
    path.with_suffix(".tmp").replace(path)
    return model.eval()
