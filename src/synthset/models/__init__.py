"""Generative models: each a LightningModule with ``sample(n, labels, generator)``."""

from synthset.models.base import GenerativeModel
from synthset.models.dcgan import DCGAN
from synthset.models.vae import BetaVAE
from synthset.models.wgan_gp import WGANGP

# The only classes a checkpoint can name: its short name is looked up here, never imported.
MODEL_REGISTRY: dict[str, type[GenerativeModel]] = {cls.registry_name: cls for cls in (DCGAN, WGANGP, BetaVAE)}

__all__ = ["DCGAN", "WGANGP", "BetaVAE", "GenerativeModel", "MODEL_REGISTRY"]
