"""Losses against hand-computed values."""

import math

import torch

from synthset.models.losses import (
    dcgan_discriminator_loss,
    dcgan_generator_loss,
    gaussian_kl,
    gradient_penalty,
    hinge_discriminator_loss,
    hinge_generator_loss,
    reconstruction_nll,
    wasserstein_critic_loss,
)


def test_gradient_penalty_of_linear_critic_is_squared_norm_gap() -> None:
    # D(x) = <w, x> has gradient w everywhere, so the penalty is (||w|| - 1)^2 exactly.
    w = torch.tensor([3.0, 4.0, 0.0, 0.0]).view(1, 1, 2, 2)

    def critic(x: torch.Tensor) -> torch.Tensor:
        return (x * w).flatten(1).sum(1)

    real, fake = torch.randn(8, 1, 2, 2), torch.randn(8, 1, 2, 2)
    assert torch.isclose(gradient_penalty(critic, real, fake), torch.tensor((5.0 - 1.0) ** 2))


def test_gradient_penalty_is_zero_for_unit_norm_critic_and_differentiable() -> None:
    w = torch.tensor([0.6, 0.8]).view(1, 1, 1, 2).requires_grad_(True)
    penalty = gradient_penalty(lambda x: (x * w).flatten(1).sum(1), torch.randn(4, 1, 1, 2), torch.randn(4, 1, 1, 2))
    assert penalty.item() < 1e-10
    (grad,) = torch.autograd.grad(penalty, w)
    assert grad.shape == w.shape


def test_kl_of_standard_normal_is_zero_and_grows_with_mean() -> None:
    assert gaussian_kl(torch.zeros(5, 3), torch.zeros(5, 3)).item() == 0.0
    # KL(N(mu, 1) || N(0, 1)) = mu^2 / 2 per dimension.
    mu = torch.full((2, 3), 2.0)
    assert math.isclose(gaussian_kl(mu, torch.zeros(2, 3)).item(), 3 * 2.0, rel_tol=1e-6)


def test_dcgan_losses_values_and_signs() -> None:
    zero = torch.zeros(4)
    assert math.isclose(dcgan_discriminator_loss(zero, zero).item(), 2 * math.log(2), rel_tol=1e-6)
    assert math.isclose(dcgan_generator_loss(zero).item(), math.log(2), rel_tol=1e-6)
    confident_right = dcgan_discriminator_loss(torch.full((4,), 10.0), torch.full((4,), -10.0))
    confident_wrong = dcgan_discriminator_loss(torch.full((4,), -10.0), torch.full((4,), 10.0))
    assert confident_right.item() < 1e-3 < 19.0 < confident_wrong.item()
    # Non-saturating: the generator's loss falls as D believes its fakes are real.
    assert dcgan_generator_loss(torch.full((4,), 3.0)) < dcgan_generator_loss(torch.full((4,), -3.0))


def test_hinge_losses_values() -> None:
    # Real scores above 1 and fake scores below -1 cost D nothing; inside the margin they cost linearly.
    assert hinge_discriminator_loss(torch.tensor([2.0, 1.5]), torch.tensor([-3.0, -1.0])).item() == 0.0
    assert math.isclose(hinge_discriminator_loss(torch.tensor([0.5]), torch.tensor([0.0])).item(), 0.5 + 1.0)
    assert hinge_generator_loss(torch.tensor([1.0, 3.0])).item() == -2.0


def test_wasserstein_critic_loss_sign() -> None:
    assert wasserstein_critic_loss(torch.tensor([2.0]), torch.tensor([-1.0])).item() == -3.0


def test_bernoulli_nll_is_minimal_at_matching_logits() -> None:
    target = torch.tensor([[-1.0, 1.0]])
    good = reconstruction_nll(torch.tensor([[-20.0, 20.0]]), target, "bernoulli")
    bad = reconstruction_nll(torch.tensor([[20.0, -20.0]]), target, "bernoulli")
    assert good.item() < 1e-6 and bad.item() > 39.0
    # Gaussian with every constant kept: a perfect mean still pays log(sigma) + log(2 pi) / 2 per pixel.
    assert math.isclose(reconstruction_nll(target.clone(), target, "gaussian").item(), math.log(2 * math.pi), rel_tol=1e-6)
