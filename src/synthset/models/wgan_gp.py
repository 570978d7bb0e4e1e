"""WGAN-GP (Gulrajani et al. 2017): a critic without batch norm and a gradient penalty."""

import torch

from synthset.errors import require
from synthset.models.gan import GANModule
from synthset.models.losses import (
    gradient_penalty,
    wasserstein_critic_loss,
    wasserstein_generator_loss,
)


class WGANGP(GANModule):
    """One critic step per batch and one generator step every ``n_critic`` batches.

    Each critic iteration sees a fresh batch, as in the paper's Algorithm 1.
    Defaults: lambda=10, n_critic=5, Adam(1e-4, betas=(0.0, 0.9)), no normalization in the critic.
    """

    def __init__(
        self,
        channels: int,
        image_size: int,
        n_critic: int = 5,
        gp_weight: float = 10.0,
        **kwargs,
    ) -> None:
        require(n_critic >= 1, f"model.n_critic={n_critic} must be a positive integer such as 5.")
        kwargs.setdefault("name", "wgan")
        kwargs.setdefault("lr_generator", 1e-4)
        kwargs.setdefault("lr_discriminator", 1e-4)
        kwargs.setdefault("betas", (0.0, 0.9))
        kwargs.setdefault("discriminator_norm", "none")
        super().__init__(channels, image_size, **kwargs)
        self.register_buffer("critic_steps", torch.zeros((), dtype=torch.long))

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        opt_g, opt_d = self.optimizers()
        real, labels = self.split_batch(batch)

        fake = self.draw_fakes(real.size(0), labels).detach()
        wasserstein = wasserstein_critic_loss(
            self.discriminate(real, labels), self.discriminate(fake, labels)
        )
        penalty = gradient_penalty(lambda x: self.discriminate(x, labels), real, fake)
        critic_loss = wasserstein + self.hparams.gp_weight * penalty
        self.optimizer_step_on(opt_d, critic_loss)
        self.critic_steps += 1

        metrics = {
            "train/d_loss": critic_loss.detach(),
            "train/wasserstein_estimate": -wasserstein.detach(),
            "train/gradient_penalty": penalty.detach(),
        }
        if int(self.critic_steps) % self.hparams.n_critic == 0:
            g_loss = wasserstein_generator_loss(
                self.discriminate(self.draw_fakes(real.size(0), labels), labels)
            )
            self.optimizer_step_on(opt_g, g_loss)
            self.finish_generator_step()
            self.last_g_loss = g_loss.detach()
        if hasattr(self, "last_g_loss"):
            metrics["train/g_loss"] = self.last_g_loss
        self.log_train_metrics(metrics)
