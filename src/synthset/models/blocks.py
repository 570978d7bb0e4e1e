"""Convolutional building blocks whose depth scales with the image size (16, 32 or 64 px)."""

import math

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm as apply_spectral_norm

from synthset.errors import require

SUPPORTED_IMAGE_SIZES = (16, 32, 64)
BASE_RESOLUTION = 4
G_CONDITIONINGS = ("concat", "cbn")
D_NORMS = ("batch", "layer", "none")


def num_upsamplings(image_size: int) -> int:
    """Number of stride-2 stages between the 4x4 base and ``image_size``."""
    require(
        image_size in SUPPORTED_IMAGE_SIZES,
        f"image_size={image_size} is not supported; expected one of {SUPPORTED_IMAGE_SIZES} "
        "(set data.image_size to one of them).",
    )
    return int(math.log2(image_size // BASE_RESOLUTION))


class ConditionalBatchNorm2d(nn.Module):
    """BatchNorm whose scale and shift are looked up per class (de Vries et al. 2017; Miyato & Koyama 2018)."""

    def __init__(self, features: int, num_classes: int) -> None:
        super().__init__()
        self.norm = nn.BatchNorm2d(features, affine=False)
        self.gain = nn.Embedding(num_classes, features)
        self.shift = nn.Embedding(num_classes, features)
        nn.init.ones_(self.gain.weight)
        nn.init.zeros_(self.shift.weight)

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self.norm(x) * self.gain(labels)[:, :, None, None] + self.shift(labels)[:, :, None, None]


class GeneratorNorm(nn.Module):
    """BatchNorm, class-conditional BatchNorm or nothing, behind one ``(x, labels)`` call."""

    def __init__(self, features: int, batch_norm: bool, num_classes: int, conditioning: str) -> None:
        super().__init__()
        self.conditional = batch_norm and num_classes > 0 and conditioning == "cbn"
        if self.conditional:
            self.norm: nn.Module = ConditionalBatchNorm2d(features, num_classes)
        else:
            self.norm = nn.BatchNorm2d(features) if batch_norm else nn.Identity()

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        return self.norm(x, labels) if self.conditional else self.norm(x)


class ConvGenerator(nn.Module):
    """DCGAN generator: a linear projection to 4x4, then ConvTranspose(4, 2, 1) + norm + ReLU stages.

    Class conditioning either concatenates a learned label embedding to the latent code (``concat``)
    or modulates every BatchNorm per class (``cbn``, as in SNGAN/BigGAN). ``output_activation`` is
    ``tanh`` for GANs and ``none`` for decoders that emit logits.
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
        conditioning: str = "concat",
        label_embedding_dim: int | None = None,
    ) -> None:
        super().__init__()
        require(conditioning in G_CONDITIONINGS,
                f"model.g_conditioning={conditioning!r} is unknown; expected one of {', '.join(G_CONDITIONINGS)}.")
        stages = num_upsamplings(image_size)
        self.num_classes = num_classes
        concat = num_classes > 0 and (conditioning == "concat" or not batch_norm)
        embedding_dim = label_embedding_dim or latent_dim
        self.label_embedding = nn.Embedding(num_classes, embedding_dim) if concat else None
        in_dim = latent_dim + (embedding_dim if concat else 0)
        top = width * 2 ** (stages - 1)
        self.project = nn.Linear(in_dim, top * BASE_RESOLUTION**2, bias=not batch_norm)
        self.top = top
        widths = [top // 2**i for i in range(stages)]
        self.norms = nn.ModuleList([GeneratorNorm(w, batch_norm, num_classes, conditioning) for w in widths])
        self.upsample = nn.ModuleList(
            [nn.ConvTranspose2d(w, w // 2, 4, 2, 1, bias=not batch_norm) for w in widths[:-1]]
        )
        self.to_image = nn.ConvTranspose2d(widths[-1], channels, 4, 2, 1)
        self.output_activation = output_activation

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        if self.num_classes:
            require(labels is not None, "this generator is class-conditional; pass labels.")
        if self.label_embedding is not None:
            z = torch.cat([z, self.label_embedding(labels)], dim=1)
        x = self.project(z).view(z.size(0), self.top, BASE_RESOLUTION, BASE_RESOLUTION)
        x = torch.relu(self.norms[0](x, labels))
        for conv, norm in zip(self.upsample, self.norms[1:], strict=True):
            x = torch.relu(norm(conv(x), labels))
        x = self.to_image(x)
        return torch.tanh(x) if self.output_activation == "tanh" else x


class MinibatchStdDev(nn.Module):
    """Appends one feature map: the mean standard deviation of each feature across a group of images.

    Karras et al. 2018 (ProGAN): D sees how varied a batch is, so a generator that repeats one image
    per class is told apart from real data. Groups of ``group_size`` images are strided over the batch
    (as in StyleGAN2); a batch not divisible by it uses the largest group size that divides it.
    """

    def __init__(self, group_size: int = 4) -> None:
        super().__init__()
        self.group_size = group_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        group = max(g for g in range(1, min(self.group_size, n) + 1) if n % g == 0)
        grouped = x.reshape(group, n // group, c, h, w)
        std = (grouped.var(dim=0, unbiased=False) + 1e-8).sqrt().mean(dim=(1, 2, 3))  # one value per group
        feature = std.view(1, -1, 1, 1, 1).expand(group, -1, 1, h, w).reshape(n, 1, h, w)
        return torch.cat([x, feature], dim=1)


class ConvEncoder(nn.Module):
    """Conv(4, 2, 1) + LeakyReLU(0.2) stages down to 4x4, flattened to a feature vector.

    ``minibatch_std`` appends the batch-variety feature map at 4x4 (discriminators only).
    """

    def __init__(self, channels: int, image_size: int, width: int, norm: str = "batch",
                 minibatch_std: bool = False) -> None:
        super().__init__()
        require(norm in D_NORMS, f"model.discriminator_norm={norm!r} is unknown; expected one of {', '.join(D_NORMS)}.")
        stages = num_upsamplings(image_size)
        layers: list[nn.Module] = []
        ch_in, ch_out = channels, width
        for stage in range(stages):
            # DCGAN: no normalization on the first layer; WGAN-GP critics and SN discriminators use none at all.
            use_norm = stage > 0 and norm != "none"
            layers += [nn.Conv2d(ch_in, ch_out, 4, 2, 1, bias=not use_norm)]
            if use_norm:
                layers.append(nn.BatchNorm2d(ch_out) if norm == "batch" else nn.GroupNorm(1, ch_out))
            layers.append(nn.LeakyReLU(0.2, inplace=True))
            ch_in, ch_out = ch_out, ch_out * 2
        if minibatch_std:
            layers.append(MinibatchStdDev())
            ch_in += 1
        self.body = nn.Sequential(*layers, nn.Flatten())
        self.out_features = ch_in * BASE_RESOLUTION**2

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.body(images)


class ConvDiscriminator(nn.Module):
    """Encoder + linear score; conditional via the projection discriminator (Miyato & Koyama 2018).

    ``spectral_norm`` wraps every conv, linear and embedding weight in torch's spectral-norm
    parametrization (Miyato et al. 2018); ``minibatch_std`` lets D see each batch's variety.
    """

    def __init__(
        self, channels: int, image_size: int, width: int, num_classes: int = 0, norm: str = "batch",
        spectral_norm: bool = False, minibatch_std: bool = False,
    ) -> None:
        super().__init__()
        self.encoder = ConvEncoder(channels, image_size, width, norm, minibatch_std)
        self.score = nn.Linear(self.encoder.out_features, 1)
        self.projection = (
            nn.Embedding(num_classes, self.encoder.out_features) if num_classes else None
        )
        if spectral_norm:
            for module in list(self.modules()):
                if isinstance(module, nn.Conv2d | nn.Linear | nn.Embedding):
                    apply_spectral_norm(module)

    def forward(self, images: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        features = self.encoder(images)
        logits = self.score(features).squeeze(1)
        if self.projection is not None:
            require(labels is not None, "this discriminator is class-conditional; pass labels.")
            logits = logits + (self.projection(labels) * features).sum(dim=1)
        return logits


def init_dcgan_weights(module: nn.Module) -> None:
    """Radford et al. 2015: conv weights ~ N(0, 0.02), norm scales ~ N(1, 0.02).

    Spectrally normalized layers keep PyTorch's default init (their scale is normalized anyway),
    and conditional BatchNorm keeps its identity start.
    """
    if hasattr(module, "parametrizations"):
        return
    if isinstance(module, nn.Conv2d | nn.ConvTranspose2d | nn.Linear):
        nn.init.normal_(module.weight, 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.BatchNorm2d) and module.affine:
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)
