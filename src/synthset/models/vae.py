"""beta-VAE (Higgins et al. 2017) with optional capacity annealing (Burgess et al. 2018); CVAE when conditional."""

import torch
from torch import nn

from synthset.errors import require
from synthset.models.base import GenerativeModel
from synthset.models.blocks import ConvEncoder, ConvGenerator
from synthset.models.losses import gaussian_kl, reconstruction_nll

LIKELIHOODS = ("bernoulli", "gaussian")


class BetaVAE(GenerativeModel):
    """Loss = NLL + beta * KL, or NLL + gamma * |KL - C(step)| when ``capacity_max`` is set."""

    def __init__(
        self,
        channels: int,
        image_size: int,
        latent_dim: int = 32,
        width: int = 32,
        beta: float = 1.0,
        likelihood: str = "bernoulli",
        capacity_max: float | None = None,
        capacity_steps: int = 10000,
        capacity_gamma: float = 100.0,
        lr: float = 1e-3,
        conditional: bool = False,
        num_classes: int = 0,
        class_names: list[str] | None = None,
        ema_decay: float | None = None,
        name: str = "vae",
    ) -> None:
        super().__init__(channels, image_size, latent_dim, conditional, num_classes, class_names, ema_decay)
        require(
            likelihood in LIKELIHOODS,
            f"model.likelihood={likelihood!r} is unknown; expected one of {LIKELIHOODS}.",
        )
        require(beta >= 0, f"model.beta={beta} is negative; expected beta >= 0 (1 = plain VAE).")
        self.save_hyperparameters(logger=False)
        self.encoder = ConvEncoder(channels, image_size, width, norm="batch")
        self.label_embedding = nn.Embedding(self.num_classes, latent_dim) if self.num_classes else None
        encoded = self.encoder.out_features + (latent_dim if self.num_classes else 0)
        self.to_posterior = nn.Linear(encoded, 2 * latent_dim)
        self._decoder = ConvGenerator(
            latent_dim,
            channels,
            image_size,
            width,
            self.num_classes,
            output_activation="tanh" if likelihood == "gaussian" else "none",
        )
        self.finish_init()

    @property
    def decoder(self) -> nn.Module:  # type: ignore[override]
        return self._decoder

    def decode(self, net: nn.Module, z: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        out = net(z, labels)
        # Bernoulli decoders emit logits of intensities in [0, 1]; the mean image is their sigmoid.
        return out if self.hparams.likelihood == "gaussian" else torch.sigmoid(out) * 2 - 1

    def posterior(self, images: torch.Tensor, labels: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.encoder(images)
        if self.label_embedding is not None:
            features = torch.cat([features, self.label_embedding(labels)], dim=1)
        mu, logvar = self.to_posterior(features).chunk(2, dim=1)
        return mu, logvar

    def losses(self, batch: tuple[torch.Tensor, torch.Tensor]) -> dict[str, torch.Tensor]:
        images, labels = batch
        labels = labels if self.num_classes else None
        mu, logvar = self.posterior(images, labels)
        z = mu + torch.randn_like(mu) * (0.5 * logvar).exp()
        nll = reconstruction_nll(self._decoder(z, labels), images, self.hparams.likelihood)
        kl = gaussian_kl(mu, logvar)
        if self.hparams.capacity_max is None:
            loss = nll + self.hparams.beta * kl
        else:
            progress = min(1.0, self.global_step / max(1, self.hparams.capacity_steps))
            capacity = self.hparams.capacity_max * progress
            loss = nll + self.hparams.capacity_gamma * (kl - capacity).abs()
        return {"loss": loss, "nll": nll, "kl": kl, "elbo": -(nll + kl)}

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        out = self.losses(batch)
        self.log_train_metrics({f"train/{k}": v.detach() for k, v in out.items()})
        return out["loss"]

    def on_train_batch_end(self, outputs, batch, batch_idx: int) -> None:
        self.generator_steps += 1
        self.update_ema()

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        out = self.losses(batch)
        self.log_dict({f"val/{k}": v for k, v in out.items()}, batch_size=batch[0].size(0), sync_dist=True)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)
