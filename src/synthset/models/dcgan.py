"""DCGAN (Radford et al. 2015) with the non-saturating BCE loss; optionally class-conditional.

The same class carries the SNGAN levers (``loss=hinge``, ``spectral_norm=true``,
``g_conditioning=cbn``): ``conf/model/sngan.yaml`` is that preset.
"""

from synthset.models.gan import GANModule


class DCGAN(GANModule):
    """One discriminator step and one generator step per batch; Adam(2e-4, betas=(0.5, 0.999))."""

    registry_name = "dcgan"

    def __init__(self, channels: int, image_size: int, **kwargs) -> None:
        kwargs.setdefault("name", "dcgan")
        super().__init__(channels, image_size, **kwargs)
