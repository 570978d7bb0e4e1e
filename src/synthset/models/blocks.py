"""Convolutional building blocks whose depth scales with the image size (16, 32 or 64 px)."""

import math

import torch
from torch import nn

from synthset.errors import require

SUPPORTED_IMAGE_SIZES = (16, 32, 64)
BASE_RESOLUTION = 4


def num_upsamplings(image_size: int) -> int:
    """Number of stride-2 stages between the 4x4 base and ``image_size``."""
    require(
        image_size in SUPPORTED_IMAGE_SIZES,
        f"image_size={image_size} is not supported; expected one of {SUPPORTED_IMAGE_SIZES} "
        "(set data.image_size to one of them).",
    )
    return int(math.log2(image_size // BASE_RESOLUTION))


class ConvGenerator(nn.Module):
    """DCGAN generator: a linear projection to 4x4, then ConvTranspose(4, 2, 1) + norm + ReLU stages.

    Class conditioning concatenates a learned label embedding to the latent code.
    ``output_activation`` is ``tanh`` for GANs and ``none`` for decoders that emit logits.
    """

    def __init__(
        self,
        latent_dim: int,
        channels: int,
        image_size: int,
        width: int,
        num_classes: int = 0,
        batch_norm: bool = True,
        output_activation: str = "tanh",
    ) -> None:
        super().__init__()
        stages = num_upsamplings(image_size)
        self.num_classes = num_classes
        self.label_embedding = nn.Embedding(num_classes, latent_dim) if num_classes else None
        in_dim = latent_dim * (2 if num_classes else 1)
        top = width * 2 ** (stages - 1)
        self.project = nn.Sequential(
            nn.Linear(in_dim, top * BASE_RESOLUTION**2, bias=not batch_norm),
            nn.Unflatten(1, (top, BASE_RESOLUTION, BASE_RESOLUTION)),
            nn.BatchNorm2d(top) if batch_norm else nn.Identity(),
            nn.ReLU(inplace=True),
        )
        layers: list[nn.Module] = []
        ch = top
        for _ in range(stages - 1):
            layers += [
                nn.ConvTranspose2d(ch, ch // 2, 4, 2, 1, bias=not batch_norm),
                nn.BatchNorm2d(ch // 2) if batch_norm else nn.Identity(),
                nn.ReLU(inplace=True),
            ]
            ch //= 2
        layers.append(nn.ConvTranspose2d(ch, channels, 4, 2, 1))
        if output_activation == "tanh":
            layers.append(nn.Tanh())
        self.body = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        if self.label_embedding is not None:
            require(labels is not None, "this generator is class-conditional; pass labels.")
            z = torch.cat([z, self.label_embedding(labels)], dim=1)
        return self.body(self.project(z))


class ConvEncoder(nn.Module):
    """Conv(4, 2, 1) + LeakyReLU(0.2) stages down to 4x4, flattened to a feature vector."""

    def __init__(self, channels: int, image_size: int, width: int, norm: str = "batch") -> None:
        super().__init__()
        stages = num_upsamplings(image_size)
        layers: list[nn.Module] = []
        ch_in, ch_out = channels, width
        for stage in range(stages):
            # DCGAN: no normalization on the first layer; WGAN-GP critics use none at all.
            use_norm = stage > 0 and norm != "none"
            layers += [nn.Conv2d(ch_in, ch_out, 4, 2, 1, bias=not use_norm)]
            if use_norm:
                layers.append(nn.BatchNorm2d(ch_out) if norm == "batch" else nn.GroupNorm(1, ch_out))
            layers.append(nn.LeakyReLU(0.2, inplace=True))
            ch_in, ch_out = ch_out, ch_out * 2
        self.body = nn.Sequential(*layers, nn.Flatten())
        self.out_features = ch_in * BASE_RESOLUTION**2

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.body(images)


class ConvDiscriminator(nn.Module):
    """Encoder + linear score; conditional via the projection discriminator (Miyato & Koyama 2018)."""

    def __init__(
        self, channels: int, image_size: int, width: int, num_classes: int = 0, norm: str = "batch"
    ) -> None:
        super().__init__()
        self.encoder = ConvEncoder(channels, image_size, width, norm)
        self.score = nn.Linear(self.encoder.out_features, 1)
        self.projection = (
            nn.Embedding(num_classes, self.encoder.out_features) if num_classes else None
        )

    def forward(self, images: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        features = self.encoder(images)
        logits = self.score(features).squeeze(1)
        if self.projection is not None:
            require(labels is not None, "this discriminator is class-conditional; pass labels.")
            logits = logits + (self.projection(labels) * features).sum(dim=1)
        return logits


def init_dcgan_weights(module: nn.Module) -> None:
    """Radford et al. 2015: conv weights ~ N(0, 0.02), norm scales ~ N(1, 0.02)."""
    if isinstance(module, nn.Conv2d | nn.ConvTranspose2d | nn.Linear):
        nn.init.normal_(module.weight, 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)
