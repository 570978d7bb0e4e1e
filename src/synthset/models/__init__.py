"""Generative models: each a LightningModule with ``sample(n, labels, generator)``."""

from synthset.models.base import GenerativeModel
from synthset.models.dcgan import DCGAN
from synthset.models.vae import BetaVAE
from synthset.models.wgan_gp import WGANGP

__all__ = ["DCGAN", "WGANGP", "BetaVAE", "GenerativeModel"]
