"""The reference classifier: one small ResNet-style CNN with a fixed recipe, trained on real data.

Used by generation's filters, by GAN-test and the diversity measures, and by every utility protocol
(train on real / synthetic / both, test on real), always with the same recipe:
- standard augmentation: pad-and-crop, plus horizontal flips where the source data allows them;
- AdamW with a cosine schedule over at most ``max_steps`` steps, scored on the real ``val`` split
  every ``val_every`` steps; training stops at a plateau (``patience`` scores without a gain; 0 runs the
  whole budget) and the best weights on val are kept. ``val`` is a selection split: no protocol is tested on it.
Trained once per (data fingerprint, recipe) and cached under ``outputs/cache/classifier``.
"""

import copy
from dataclasses import dataclass
from pathlib import Path

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from filelock import FileLock
from torch import nn
from torch.utils.data import BatchSampler, DataLoader, RandomSampler, WeightedRandomSampler
from torchmetrics.functional.classification import multiclass_accuracy

from synthset.atomic import atomic_write_with
from synthset.cuda_probe import skip_unloadable_nvml_check
from synthset.data.datamodule import ImageDataModule, IndexedImages, random_mirror, to_signed_unit
from synthset.models.diffaugment import gather_pixels
from synthset.rng import rng_kept_apart

RECIPE = "reference-classifier-v2"  # bump whenever ReferenceClassifier or fit_classifier changes: caches expire


@dataclass(frozen=True)
class ClassifierRecipe:
    """Everything besides the data that determines a trained reference classifier."""

    max_steps: int = 3000
    batch_size: int = 64
    lr: float = 2e-3
    val_every: int = 500
    patience: int = 3  # val scores without a gain before training stops; 0 = never (the whole cosine budget)
    crop_padding: int = 2  # pixels of zero padding before the random crop (0: no crop)
    flip: bool = False     # horizontal flips: only for data whose classes are mirror-symmetric

    def key(self) -> str:
        return (f"{RECIPE}-steps{self.max_steps}-b{self.batch_size}-lr{self.lr:g}-v{self.val_every}-p{self.patience}"
                f"-crop{self.crop_padding}-flip{int(self.flip)}")


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


def pad_and_crop(images: torch.Tensor, padding: int) -> torch.Tensor:
    """Zero-pad by ``padding`` and crop back at a random offset per image (vectorized)."""
    if padding <= 0:
        return images
    n, _, h, w = images.shape
    padded = F.pad(images, [padding] * 4)
    dy = torch.randint(0, 2 * padding + 1, (n, 1, 1), device=images.device)
    dx = torch.randint(0, 2 * padding + 1, (n, 1, 1), device=images.device)
    rows = torch.arange(h, device=images.device).view(1, h, 1) + dy
    cols = torch.arange(w, device=images.device).view(1, 1, w) + dx
    return gather_pixels(padded, rows, cols)


class ReferenceClassifier(pl.LightningModule):
    """Three residual stages (32, 64, 128 channels, each halving the resolution), global pooling, linear head."""

    def __init__(self, channels: int, num_classes: int, width: int = 32, lr: float = 2e-3, max_steps: int = 3000,
                 crop_padding: int = 0, flip: bool = False) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.body = nn.Sequential(
            # The first block already halves the resolution: 4x cheaper, and 16-64 px images need no more.
            ResidualBlock(channels, width, 2), ResidualBlock(width, 2 * width, 2), ResidualBlock(2 * width, 4 * width, 2),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4 * width, num_classes))
        self.best_accuracy = -1.0
        self.best_state: dict[str, torch.Tensor] | None = None
        self.val_scores: list[float] = []

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.body(images)

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        images, labels = batch
        images = pad_and_crop(to_signed_unit(images), self.hparams.crop_padding)  # batches arrive as uint8
        if self.hparams.flip:
            images = random_mirror(images)
        loss = F.cross_entropy(self(images), labels)
        self.log("classifier/loss", loss, prog_bar=True)
        return loss

    def validation_step(self, batch, batch_idx: int) -> None:
        images, labels = batch
        predicted = self(to_signed_unit(images)).argmax(1)
        accuracy = multiclass_accuracy(predicted, labels, self.hparams.num_classes, average="micro")
        self.log("val_accuracy", accuracy, batch_size=len(labels), on_epoch=True)

    def on_validation_epoch_end(self) -> None:
        accuracy = float(self.trainer.callback_metrics["val_accuracy"])
        self.val_scores.append(accuracy)
        if accuracy > self.best_accuracy:  # keep the best weights on val, not the last ones
            self.best_accuracy = accuracy
            self.best_state = copy.deepcopy(self.state_dict())
        if accuracy >= 1.0:  # val cannot be beaten any more, so the kept weights are final: stop training here
            self.trainer.should_stop = True

    def configure_optimizers(self):
        optimizer = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=5e-4)
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=self.hparams.max_steps)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}

    @torch.inference_mode()
    def predict_labels(self, images_uint8: torch.Tensor) -> torch.Tensor:
        return self.probabilities(images_uint8).argmax(1)

    @torch.inference_mode()
    def features(self, images_uint8: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
        """Pooled penultimate features (the space of per-class recall and coverage) of uint8 images."""
        self.eval()
        trunk = self.body[:-1]
        return torch.cat([trunk(to_signed_unit(images_uint8[i : i + batch_size].clone()))
                          for i in range(0, len(images_uint8), batch_size)])

    @torch.inference_mode()
    def probabilities(self, images_uint8: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
        """Class probabilities for uint8 images (N, C, H, W)."""
        self.eval()
        return torch.cat([F.softmax(self(to_signed_unit(images_uint8[i : i + batch_size].clone())), dim=1)
                          for i in range(0, len(images_uint8), batch_size)])


def fit_classifier(images: torch.Tensor, labels: torch.Tensor, num_classes: int, recipe: ClassifierRecipe, seed: int,
                   val: tuple[torch.Tensor, torch.Tensor], weights: torch.Tensor | None = None,
                   start: dict[str, torch.Tensor] | None = None) -> ReferenceClassifier:
    """The fixed recipe on uint8 (images, labels); ``weights`` (one per image) mix real and synthetic draws.

    ``start``: the weights to fine-tune from (another classifier's state dict) instead of a random initialization.
    """
    from pytorch_lightning.callbacks import EarlyStopping

    # Seeded on its own, and the caller's streams given back: a training run that fits its reference
    # classifier at the first evaluation (cold cache) must go on exactly as one that loads it.
    with rng_kept_apart():
        pl.seed_everything(seed, workers=True, verbose=False)
        model = ReferenceClassifier(images.size(1), num_classes, lr=recipe.lr, max_steps=recipe.max_steps,
                                    crop_padding=recipe.crop_padding, flip=recipe.flip)
        if start is not None:
            model.load_state_dict(start)
        generator = torch.Generator().manual_seed(seed)
        total = recipe.max_steps * recipe.batch_size
        sampler = (WeightedRandomSampler(weights, total, replacement=True, generator=generator) if weights is not None
                   else RandomSampler(range(len(images)), num_samples=total, generator=generator))
        loader = DataLoader(IndexedImages(images, labels), sampler=BatchSampler(sampler, recipe.batch_size, drop_last=True),
                            batch_size=None)
        val_loader = DataLoader(IndexedImages(*val), sampler=BatchSampler(range(len(val[0])), 512, drop_last=False),
                                batch_size=None)
        # patience 0 runs the whole cosine budget; the weights best on val are kept either way (below)
        plateau_stop = ([EarlyStopping(monitor="val_accuracy", mode="max", patience=recipe.patience,
                                       check_on_train_epoch_end=False)] if recipe.patience else [])
        skip_unloadable_nvml_check()
        trainer = pl.Trainer(max_steps=recipe.max_steps, max_epochs=1, accelerator="cpu", logger=False,
                             enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                             val_check_interval=min(recipe.val_every, recipe.max_steps), num_sanity_val_steps=0,
                             callbacks=plateau_stop)
        trainer.fit(model, train_dataloaders=loader, val_dataloaders=val_loader)
        if model.best_state is not None:
            model.load_state_dict(model.best_state)
        return model.eval()


def recipe_for(datamodule: ImageDataModule, max_steps: int = 3000, batch_size: int = 64, augment: bool = True,
               patience: int = 3) -> ClassifierRecipe:
    """The recipe for one data set: flips only where its source says its classes are mirror-symmetric."""
    return ClassifierRecipe(max_steps=max_steps, batch_size=batch_size, val_every=min(500, max(50, max_steps // 6)),
                            patience=patience,
                            crop_padding=max(1, datamodule.image_size // 16) if augment else 0,
                            flip=augment and datamodule.source.mirror_symmetric)


def load_classifier(path: Path, channels: int, num_classes: int) -> ReferenceClassifier:
    model = ReferenceClassifier(channels, num_classes)
    model.load_state_dict(torch.load(path, weights_only=True))
    return model.eval()


def save_classifier(model: ReferenceClassifier, path: Path) -> None:
    atomic_write_with(path, lambda temporary: torch.save(model.state_dict(), temporary))


def reference_classifier(datamodule: ImageDataModule, cache_dir: Path, max_steps: int = 2000, seed: int = 0) -> ReferenceClassifier:
    """Train (or load the cached) reference classifier on ``datamodule``'s real training split, selected on val."""
    recipe = recipe_for(datamodule, max_steps)
    path = Path(cache_dir) / f"{datamodule.name}-{datamodule.fingerprint('train')}-seed{seed}-{recipe.key()}.pt"
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(path.with_name(path.name + ".lock")):  # parallel sweep jobs sharing the cache train it once
        if path.is_file():
            return load_classifier(path, datamodule.channels, datamodule.num_classes)
        images, labels = datamodule.split("train")
        val = datamodule.split("val") if len(datamodule.split("val")[0]) else (images, labels)
        model = fit_classifier(images, labels, datamodule.num_classes, recipe, seed, val)
        save_classifier(model, path)
        return model
