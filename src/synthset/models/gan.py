"""Shared machinery of the two GANs: networks, manual optimization, EMA, logging."""

import torch
from torch import nn

from synthset.models.base import GenerativeModel
from synthset.models.blocks import ConvDiscriminator, ConvGenerator, init_dcgan_weights
from synthset.models.diffaugment import diff_augment, parse_policy


class GANModule(GenerativeModel):
    """A generator and a discriminator trained with manual optimization.

    Subclasses implement ``training_step``; Lightning's ``global_step`` counts every optimizer
    step (discriminator and generator), ``generator_steps`` counts generator updates only.
    """

    def __init__(
        self,
        channels: int,
        image_size: int,
        latent_dim: int = 100,
        width: int = 64,
        conditional: bool = False,
        num_classes: int = 0,
        class_names: list[str] | None = None,
        ema_decay: float | None = None,
        lr_generator: float = 2e-4,
        lr_discriminator: float = 2e-4,
        betas: tuple[float, float] = (0.5, 0.999),
        discriminator_norm: str = "batch",
        diffaugment: str | list[str] | None = None,
        name: str = "gan",
    ) -> None:
        super().__init__(channels, image_size, latent_dim, conditional, num_classes, class_names, ema_decay)
        self.save_hyperparameters(logger=False)
        self.automatic_optimization = False
        self.generator = ConvGenerator(latent_dim, channels, image_size, width, self.num_classes)
        self.discriminator = ConvDiscriminator(
            channels, image_size, width, self.num_classes, norm=discriminator_norm
        )
        self.augmentations = parse_policy(diffaugment)
        self.generator.apply(init_dcgan_weights)
        self.discriminator.apply(init_dcgan_weights)
        self.finish_init()

    @property
    def decoder(self) -> nn.Module:  # type: ignore[override]
        return self.generator

    def configure_optimizers(self) -> list[torch.optim.Optimizer]:
        betas = tuple(self.hparams.betas)
        opt_g = torch.optim.Adam(self.generator.parameters(), lr=self.hparams.lr_generator, betas=betas)
        opt_d = torch.optim.Adam(
            self.discriminator.parameters(), lr=self.hparams.lr_discriminator, betas=betas
        )
        return [opt_g, opt_d]

    def split_batch(self, batch: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor | None]:
        images, labels = batch
        return images, (labels if self.num_classes else None)

    def discriminate(self, images: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        """D's scores; with DiffAugment, real and fake images alike are augmented first."""
        if self.augmentations:
            images = diff_augment(images, self.augmentations)
        return self.discriminator(images, labels)

    def draw_fakes(self, n: int, labels: torch.Tensor | None) -> torch.Tensor:
        z = torch.randn(n, self.latent_dim, device=self.device)
        return self.generator(z, labels)

    def optimizer_step_on(self, optimizer, loss: torch.Tensor) -> None:
        optimizer.zero_grad(set_to_none=True)
        self.manual_backward(loss)
        optimizer.step()

    def finish_generator_step(self) -> None:
        self.generator_steps += 1
        self.update_ema()
