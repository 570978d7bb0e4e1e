"""beta-VAE (Higgins et al. 2017) with optional capacity annealing (Burgess et al. 2018); CVAE when conditional.

β only means what the papers mean when the reconstruction term is a real log-likelihood at the
data's scale. With a unit-variance Gaussian on data in [-1, 1] the reconstruction term is tiny, so
β = 1 acts like a large β (blur, posterior collapse). The default decoder is a Gaussian whose std
is the batch's maximum-likelihood value (σ-VAE, Rybkin et al. 2021), or a fixed ``sigma``.
"""

import math

import torch
from torch import nn

from synthset.errors import require
from synthset.models.base import GenerativeModel
from synthset.models.blocks import ConvEncoder, ConvGenerator
from synthset.models.losses import gaussian_kl, optimal_log_sigma, reconstruction_nll

LIKELIHOODS = ("bernoulli", "gaussian")
PRIORS = ("standard", "aggregate")
PRIOR_DECAY = 0.999  # per batch: the fitted prior weighs about the last thousand batches of a moving encoder


class BetaVAE(GenerativeModel):
    """Loss = NLL + beta_t * KL, or NLL + gamma * |KL - C(step)| when ``capacity_max`` is set.

    ``beta_t`` ramps linearly from 0 to ``beta`` over ``kl_warmup_steps`` (0 = no warm-up).
    """

    registry_name = "vae"

    def __init__(
        self,
        channels: int,
        image_size: int,
        latent_dim: int = 32,
        width: int = 32,
        beta: float = 1.0,
        likelihood: str = "gaussian",
        sigma: float | None = None,
        kl_warmup_steps: int = 0,
        capacity_max: float | None = None,
        capacity_steps: int = 10000,
        capacity_gamma: float = 100.0,
        lr: float = 1e-3,
        prior: str = "standard",
        conditional: bool = False,
        num_classes: int = 0,
        class_names: list[str] | None = None,
        ema_decay: float | None = None,
        compile: bool | str = False,
        channels_last: bool = False,
        name: str = "vae",
    ) -> None:
        super().__init__(channels, image_size, latent_dim, conditional, num_classes, class_names, ema_decay,
                         compile, channels_last)
        require(
            likelihood in LIKELIHOODS,
            f"model.likelihood={likelihood!r} is unknown; expected one of {LIKELIHOODS}.",
        )
        require(prior in PRIORS, f"model.prior={prior!r} is unknown; expected one of {PRIORS}.")
        require(beta >= 0, f"model.beta={beta} is negative; expected beta >= 0 (1 = plain VAE).")
        require(sigma is None or sigma > 0, f"model.sigma={sigma} must be positive (a decoder std such as 0.1) or null (learned).")
        require(kl_warmup_steps >= 0, f"model.kl_warmup_steps={kl_warmup_steps} is negative; expected 0 (off) or a step count.")
        self.save_hyperparameters(logger=False)
        self.automatic_optimization = False  # one backward and one step per batch: Lightning's closure loop costs more
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
        if prior == "aggregate":
            self.register_latent_moments(max(1, self.num_classes), latent_dim)
        self.finish_init()

    def register_latent_moments(self, groups: int, latent_dim: int) -> None:
        """Decayed count, sum and outer-product sum of posterior draws per class: checkpoints carry the fitted prior."""
        self.register_buffer("latent_count", torch.zeros(groups))
        self.register_buffer("latent_sum", torch.zeros(groups, latent_dim))
        self.register_buffer("latent_outer", torch.zeros(groups, latent_dim, latent_dim))

    @torch.no_grad()
    def track_latents(self, z: torch.Tensor, labels: torch.Tensor | None) -> None:
        """Fold a batch of posterior draws into the per-class moments of the aggregate posterior q(z | y)."""
        groups = labels if labels is not None else torch.zeros(len(z), dtype=torch.long, device=z.device)
        z = z.float()
        self.latent_count.mul_(PRIOR_DECAY).index_add_(0, groups, torch.ones_like(z[:, 0]))
        self.latent_sum.mul_(PRIOR_DECAY).index_add_(0, groups, z)
        self.latent_outer.mul_(PRIOR_DECAY).index_add_(0, groups, z[:, :, None] * z[:, None, :])

    def aggregate_prior(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-class mean (G, d) and a square root S of the covariance (S Sᵀ = Σ, (G, d, d)), on the CPU."""
        count = self.latent_count.detach().cpu()[:, None]
        mean = self.latent_sum.detach().cpu() / count
        covariance = self.latent_outer.detach().cpu() / count[:, :, None] - mean[:, :, None] * mean[:, None, :]
        eigenvalues, eigenvectors = torch.linalg.eigh((covariance + covariance.transpose(1, 2)) / 2)
        return mean, eigenvectors * eigenvalues.clamp_min(1e-6).sqrt()[:, None, :]

    def latents(self, n: int, labels: torch.Tensor | None, generator: torch.Generator | None,
                temperature: float = 1.0) -> torch.Tensor:
        """With ``prior=aggregate`` (ex-post density estimation, Ghosh et al. 2020), each class's Gaussian fitted to
        its training images' posterior draws instead of N(0, I), whose low-density regions the decoder never saw;
        ``temperature`` scales each class's spread around its mean."""
        z = super().latents(n, labels, generator, temperature)
        if self.hparams.prior != "aggregate" or not bool((self.latent_count > 0).all()):
            return z  # nothing tracked yet (an untrained model): the standard prior
        groups = labels.cpu() if labels is not None else torch.zeros(n, dtype=torch.long)
        mean, scale = self.aggregate_prior()
        return mean[groups] + torch.einsum("nij,nj->ni", scale[groups], z)

    @property
    def decoder(self) -> nn.Module:  # type: ignore[override]
        return self._decoder

    def decode(self, net: nn.Module, z: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        out = net(z, labels)
        # Bernoulli decoders emit logits of intensities in [0, 1]; the mean image is their sigmoid.
        return out if self.hparams.likelihood == "gaussian" else torch.sigmoid(out) * 2 - 1

    def posterior(self, images: torch.Tensor, labels: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.compiled_network("encoder")(images)
        if self.label_embedding is not None:
            features = torch.cat([features, self.label_embedding(labels)], dim=1)
        mu, logvar = self.to_posterior(features).chunk(2, dim=1)
        return mu, logvar

    def log_sigma(self, mean: torch.Tensor, images: torch.Tensor) -> torch.Tensor | float:
        if self.hparams.likelihood != "gaussian":
            return 0.0
        if self.hparams.sigma is None:
            return optimal_log_sigma(mean, images)
        return math.log(self.hparams.sigma)

    def beta_now(self) -> float:
        warmup = self.hparams.kl_warmup_steps
        return self.hparams.beta * (min(1.0, self.global_step / warmup) if warmup else 1.0)

    def losses(self, batch: tuple[torch.Tensor, torch.Tensor]) -> dict[str, torch.Tensor]:
        images, labels = batch
        images = self.memory_format(images)
        labels = labels if self.num_classes else None
        mu, logvar = self.posterior(images, labels)
        z = mu + torch.randn_like(mu) * (0.5 * logvar).exp()
        if self.training and self.hparams.prior == "aggregate":
            self.track_latents(z.detach(), labels)
        output = self.compiled_network("_decoder")(z, labels)
        log_sigma = self.log_sigma(output, images)
        nll = reconstruction_nll(output, images, self.hparams.likelihood, log_sigma)
        kl = gaussian_kl(mu, logvar)
        if self.hparams.capacity_max is None:
            loss = nll + self.beta_now() * kl
        else:
            progress = min(1.0, self.global_step / max(1, self.hparams.capacity_steps))
            capacity = self.hparams.capacity_max * progress
            loss = nll + self.hparams.capacity_gamma * (kl - capacity).abs()
        # A true evidence lower bound only when the likelihood is a normalized density of the pixels.
        bound = "elbo" if self.hparams.likelihood == "gaussian" else "bernoulli_bound_unnormalized"
        out = {"loss": loss, "nll": nll, "kl": kl, bound: -(nll + kl)}
        if self.hparams.likelihood == "gaussian":
            out["decoder_sigma"] = torch.as_tensor(log_sigma).exp().detach()
        return out

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        out = self.losses(batch)
        self.optimizer_step_on(self.optimizers(), out["loss"])
        self.finish_generator_step()
        self.log_train_metrics({f"train/{k}": v.detach() for k, v in out.items()})

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        out = self.losses(batch)
        self.log_dict({f"val/{k}": v for k, v in out.items()}, batch_size=batch[0].size(0), sync_dist=True)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)
