"""Losses of the three models, as plain functions so they can be checked against hand-computed values."""

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F


def dcgan_discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """BCE with real -> 1 and fake -> 0, summed over the two halves (Goodfellow et al. 2014)."""
    real = F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits))
    fake = F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits))
    return real + fake


def dcgan_generator_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """Non-saturating generator loss: -log D(G(z))."""
    return F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))


def wasserstein_critic_loss(real_scores: torch.Tensor, fake_scores: torch.Tensor) -> torch.Tensor:
    """Critic minimizes E[D(fake)] - E[D(real)] (Arjovsky et al. 2017)."""
    return fake_scores.mean() - real_scores.mean()


def wasserstein_generator_loss(fake_scores: torch.Tensor) -> torch.Tensor:
    return -fake_scores.mean()


def hinge_discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """E[max(0, 1 - D(real))] + E[max(0, 1 + D(fake))] (Lim & Ye 2017; SNGAN)."""
    return F.relu(1.0 - real_logits).mean() + F.relu(1.0 + fake_logits).mean()


def hinge_generator_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    return -fake_logits.mean()


# model.loss -> (discriminator loss, generator loss); both take raw scores of D.
GAN_LOSSES: dict[str, tuple[Callable[..., torch.Tensor], Callable[..., torch.Tensor]]] = {
    "bce": (dcgan_discriminator_loss, dcgan_generator_loss),
    "hinge": (hinge_discriminator_loss, hinge_generator_loss),
    "wasserstein": (wasserstein_critic_loss, wasserstein_generator_loss),
}


def gradient_penalty(
    critic: Callable[[torch.Tensor], torch.Tensor],
    real: torch.Tensor,
    fake: torch.Tensor,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """E[(||grad_x D(x)||_2 - 1)^2] on random interpolates of real and fake (Gulrajani et al. 2017).

    Uses ``autograd.grad`` with ``create_graph=True`` w.r.t. the inputs, which stays correct under DDP.
    """
    alpha = torch.rand(real.size(0), 1, 1, 1, device=real.device, generator=generator)
    interpolates = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
    scores = critic(interpolates)
    (grads,) = torch.autograd.grad(scores.sum(), interpolates, create_graph=True)
    return ((grads.flatten(1).norm(2, dim=1) - 1) ** 2).mean()


def gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, exp(logvar)) || N(0, I)) summed over latent dims, averaged over the batch."""
    return (-0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(dim=1)).mean()


HALF_LOG_TWO_PI = 0.5 * math.log(2 * math.pi)


def reconstruction_nll(
    output: torch.Tensor, target: torch.Tensor, likelihood: str, log_sigma: torch.Tensor | float = 0.0
) -> torch.Tensor:
    """Negative log-likelihood per image (summed over pixels, averaged over the batch).

    ``target`` is in [-1, 1]. ``bernoulli``: ``output`` are logits of intensities in [0, 1] (not a
    normalized density for non-binary pixels). ``gaussian``: ``output`` is the mean with std
    ``exp(log_sigma)``, every constant kept, so the bound it gives is a true bound in nats.
    """
    if likelihood == "bernoulli":
        nll = F.binary_cross_entropy_with_logits(output, (target + 1) / 2, reduction="none")
    else:
        log_sigma = torch.as_tensor(log_sigma, dtype=output.dtype, device=output.device)
        nll = 0.5 * ((output - target) * torch.exp(-log_sigma)).pow(2) + log_sigma + HALF_LOG_TWO_PI
    return nll.flatten(1).sum(dim=1).mean()


def optimal_log_sigma(mean: torch.Tensor, target: torch.Tensor, floor: float = 1e-3) -> torch.Tensor:
    """The decoder std that maximizes the Gaussian likelihood of this batch, in closed form (Rybkin et al. 2021)."""
    mse = (mean.detach() - target).pow(2).mean()
    return 0.5 * torch.log(mse.clamp(min=floor**2))
