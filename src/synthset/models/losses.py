"""Losses of the three models, as plain functions so they can be checked against hand-computed values."""

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


def reconstruction_nll(logits_or_mean: torch.Tensor, target: torch.Tensor, likelihood: str) -> torch.Tensor:
    """Negative log-likelihood per image (summed over pixels, averaged over the batch).

    ``target`` is in [-1, 1]. ``bernoulli``: decoder emits logits for pixel intensities in [0, 1].
    ``gaussian``: decoder emits the mean in [-1, 1] with unit variance (constant terms dropped).
    """
    if likelihood == "bernoulli":
        nll = F.binary_cross_entropy_with_logits(logits_or_mean, (target + 1) / 2, reduction="none")
    else:
        nll = 0.5 * (logits_or_mean - target).pow(2)
    return nll.flatten(1).sum(dim=1).mean()
