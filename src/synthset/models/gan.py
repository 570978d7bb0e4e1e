"""Shared machinery of the GANs: networks, the D/G step schedule, losses, EMA, logging."""

import torch
from torch import nn

from synthset.errors import require
from synthset.models.base import GenerativeModel
from synthset.models.blocks import ConvDiscriminator, ConvGenerator, init_dcgan_weights
from synthset.models.diffaugment import diff_augment, parse_policy
from synthset.models.losses import GAN_LOSSES, gradient_penalty

LR_DECAYS = ("none", "linear")


class GANModule(GenerativeModel):
    """A generator and a discriminator trained with manual optimization.

    Every batch is one discriminator step; every ``n_critic``-th discriminator step is followed by
    one generator step. ``loss`` picks the objective (``bce``, ``hinge``, ``wasserstein``),
    ``gp_weight`` > 0 adds the gradient penalty (WGAN-GP), ``spectral_norm`` normalizes D, ``minibatch_std``
    shows D each batch's variety, ``lr_decay`` schedules both rates, and ``g_conditioning`` chooses how G
    sees the label (``concat`` an embedding, or ``cbn``).
    Lightning's ``global_step`` counts every optimizer step; ``generator_steps`` counts G updates.
    """

    has_discriminator = True

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
        lr_decay: str = "none",
        loss: str = "bce",
        n_critic: int = 1,
        gp_weight: float = 0.0,
        discriminator_norm: str = "batch",
        spectral_norm: bool = False,
        minibatch_std: bool = False,
        g_conditioning: str = "concat",
        label_embedding_dim: int | None = None,
        diffaugment: str | list[str] | None = None,
        compile: bool | str = False,
        channels_last: bool = False,
        name: str = "gan",
    ) -> None:
        super().__init__(channels, image_size, latent_dim, conditional, num_classes, class_names, ema_decay,
                         compile, channels_last)
        require(loss in GAN_LOSSES, f"model.loss={loss!r} is unknown; expected one of {', '.join(GAN_LOSSES)}.")
        require(isinstance(n_critic, int) and n_critic >= 1,
                f"model.n_critic={n_critic} must be a positive integer such as 5.")
        require(lr_decay in LR_DECAYS,
                f"model.lr_decay={lr_decay!r} is unknown; expected one of {', '.join(LR_DECAYS)}.")
        require(gp_weight >= 0, f"model.gp_weight={gp_weight} is negative; expected 0 (off) or e.g. 10.")
        self.save_hyperparameters(logger=False)
        self.automatic_optimization = False
        self.generator = ConvGenerator(latent_dim, channels, image_size, width, self.num_classes,
                                       conditioning=g_conditioning, label_embedding_dim=label_embedding_dim)
        self.discriminator = ConvDiscriminator(
            channels, image_size, width, self.num_classes, norm=discriminator_norm, spectral_norm=spectral_norm,
            minibatch_std=minibatch_std,
        )
        self.augmentations = parse_policy(diffaugment)
        self.discriminator_loss, self.generator_loss = GAN_LOSSES[loss]
        self.generator.apply(init_dcgan_weights)
        self.discriminator.apply(init_dcgan_weights)
        self.register_buffer("critic_steps", torch.zeros((), dtype=torch.long))
        self._critic_count: int | None = None
        self.finish_init()

    def on_load_checkpoint(self, checkpoint) -> None:
        super().on_load_checkpoint(checkpoint)
        self._critic_count = None

    def count_critic_step(self) -> int:
        """Critic updates so far (host-side mirror of the buffer, so the D/G schedule never syncs with the GPU)."""
        if self._critic_count is None:
            self._critic_count = int(self.critic_steps)
        self._critic_count += 1
        self.critic_steps.fill_(self._critic_count)
        return self._critic_count

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

    def decay_learning_rates(self, opt_g, opt_d) -> None:
        """``lr_decay=linear``: both rates fall linearly to 0 at ``trainer.max_steps`` (as SNGAN trains).

        The rate is a function of the step, so a resumed run continues the schedule exactly.
        """
        if self.hparams.lr_decay == "none":
            return
        factor = max(0.0, 1.0 - self.global_step / self.trainer.max_steps)
        for optimizer, base in ((opt_g, self.hparams.lr_generator), (opt_d, self.hparams.lr_discriminator)):
            for group in optimizer.optimizer.param_groups:
                group["lr"] = base * factor

    def split_batch(self, batch: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor | None]:
        images, labels = batch
        return self.memory_format(images), (labels if self.num_classes else None)

    def augment(self, images: torch.Tensor) -> torch.Tensor:
        """DiffAugment: real and fake images alike, before D (identity when off), in the requested memory format."""
        return self.memory_format(diff_augment(images, self.augmentations)) if self.augmentations else images

    def discriminate(self, images: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        """D's scores of (augmented) images."""
        return self.compiled_network("discriminator")(self.augment(images), labels)

    @torch.no_grad()
    def discriminator_scores(self, images: torch.Tensor, labels: torch.Tensor | None, batch_size: int = 256) -> torch.Tensor:
        """D's logit of each image in [-1, 1] as it is, without DiffAugment: higher looks more real to D."""
        was_training = self.discriminator.training
        self.discriminator.eval()
        try:
            scores = []
            for start in range(0, len(images), batch_size):
                batch_labels = labels[start : start + batch_size].to(self.device) if labels is not None and self.num_classes else None
                batch = images[start : start + batch_size].to(self.device)
                scores.append(self.discriminator(batch, batch_labels).flatten().float().cpu())
            return torch.cat(scores)
        finally:
            self.discriminator.train(was_training)

    def draw_fakes(self, n: int, labels: torch.Tensor | None) -> torch.Tensor:
        z = torch.randn(n, self.latent_dim, device=self.device)
        return self.compiled_network("generator")(z, labels)

    def discriminator_step(self, optimizer, real: torch.Tensor, fake: torch.Tensor,
                           labels: torch.Tensor | None) -> dict[str, torch.Tensor]:
        """One D update; the penalty constrains D itself, on interpolates of the tensors D saw."""
        real_in, fake_in = self.augment(real), self.augment(fake)
        discriminator = self.compiled_network("discriminator")
        real_scores, fake_scores = discriminator(real_in, labels), discriminator(fake_in, labels)
        loss = self.discriminator_loss(real_scores, fake_scores)
        metrics = {"train/d_loss": loss.detach()}
        if self.hparams.loss == "wasserstein":
            metrics["train/wasserstein_estimate"] = (real_scores.mean() - fake_scores.mean()).detach()
        if self.hparams.gp_weight > 0:
            penalty = gradient_penalty(lambda x: self.discriminator(x, labels), real_in.detach(), fake_in.detach())
            loss = loss + self.hparams.gp_weight * penalty
            metrics["train/gradient_penalty"] = penalty.detach()
            metrics["train/d_loss"] = loss.detach()
        self.optimizer_step_on(optimizer, loss)
        self.critic_steps_done = self.count_critic_step()
        return metrics

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        opt_g, opt_d = self.optimizers()
        self.decay_learning_rates(opt_g, opt_d)
        real, labels = self.split_batch(batch)
        reuse_fakes = self.hparams.n_critic == 1  # DCGAN: G learns from the very fakes D just judged
        with torch.set_grad_enabled(reuse_fakes):
            fake = self.draw_fakes(real.size(0), labels)
        metrics = self.discriminator_step(opt_d, real, fake.detach(), labels)
        if self.critic_steps_done % self.hparams.n_critic == 0:
            if not reuse_fakes:  # each critic iteration and each G step sees fresh samples (Algorithm 1)
                fake = self.draw_fakes(real.size(0), labels)
            g_loss = self.generator_loss(self.discriminate(fake, labels))
            self.optimizer_step_on(opt_g, g_loss)
            self.finish_generator_step()
            self.last_g_loss = g_loss.detach()
        if hasattr(self, "last_g_loss"):
            metrics["train/g_loss"] = self.last_g_loss
        self.log_train_metrics(metrics)
