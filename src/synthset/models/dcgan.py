"""DCGAN (Radford et al. 2015) with the non-saturating BCE loss; optionally class-conditional."""

import torch

from synthset.models.gan import GANModule
from synthset.models.losses import dcgan_discriminator_loss, dcgan_generator_loss


class DCGAN(GANModule):
    """One discriminator step and one generator step per batch; Adam(2e-4, betas=(0.5, 0.999))."""

    def __init__(self, channels: int, image_size: int, **kwargs) -> None:
        kwargs.setdefault("name", "dcgan")
        super().__init__(channels, image_size, **kwargs)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        opt_g, opt_d = self.optimizers()
        real, labels = self.split_batch(batch)
        fake = self.draw_fakes(real.size(0), labels)

        d_loss = dcgan_discriminator_loss(
            self.discriminate(real, labels), self.discriminate(fake.detach(), labels)
        )
        self.optimizer_step_on(opt_d, d_loss)

        g_loss = dcgan_generator_loss(self.discriminate(fake, labels))
        self.optimizer_step_on(opt_g, g_loss)
        self.finish_generator_step()

        self.log_train_metrics({"train/d_loss": d_loss.detach(), "train/g_loss": g_loss.detach()})
