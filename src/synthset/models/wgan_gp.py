"""WGAN-GP (Gulrajani et al. 2017): a critic without batch norm and a gradient penalty."""

from synthset.models.gan import GANModule


class WGANGP(GANModule):
    """One critic step per batch and one generator step every ``n_critic`` batches.

    Each critic iteration sees a fresh batch, as in the paper's Algorithm 1.
    Defaults: lambda=10, n_critic=5, Adam(1e-4, betas=(0.0, 0.9)), no normalization in the critic.
    """

    registry_name = "wgan"

    def __init__(self, channels: int, image_size: int, n_critic: int = 5, gp_weight: float = 10.0, **kwargs) -> None:
        kwargs.setdefault("name", "wgan")
        kwargs.setdefault("loss", "wasserstein")
        kwargs.setdefault("lr_generator", 1e-4)
        kwargs.setdefault("lr_discriminator", 1e-4)
        kwargs.setdefault("betas", (0.0, 0.9))
        kwargs.setdefault("discriminator_norm", "none")
        super().__init__(channels, image_size, n_critic=n_critic, gp_weight=gp_weight, **kwargs)
