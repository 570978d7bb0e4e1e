"""DiffAugment: differentiable, shape-preserving, random per image, and wired into both GANs' D."""

import pytest
import torch

from synthset.errors import SynthsetError
from synthset.models import DCGAN, WGANGP
from synthset.models.diffaugment import diff_augment, parse_policy

ALL = ["color", "translation", "cutout"]


def test_augmentations_keep_shape_differ_per_image_and_pass_gradients() -> None:
    torch.manual_seed(0)
    x = torch.rand(8, 3, 16, 16, requires_grad=True)
    y = diff_augment(x, ALL)
    assert y.shape == x.shape
    y.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0  # G learns through D's augmentation
    same = x.detach()[:1].expand(8, -1, -1, -1)
    out = diff_augment(same, ALL)
    assert not torch.allclose(out[0], out[1])


def test_translation_moves_content_and_cutout_zeroes_a_square() -> None:
    torch.manual_seed(1)
    x = torch.ones(64, 1, 16, 16)
    cut = diff_augment(x, ["cutout"])
    zeros = (cut == 0).flatten(1).sum(1)
    assert zeros.min() > 0 and zeros.max() <= 64  # at most an 8x8 square
    moved = diff_augment(torch.arange(256.0).view(1, 1, 16, 16).expand(64, -1, -1, -1), ["translation"])
    assert (moved != torch.arange(256.0).view(1, 1, 16, 16)).flatten(1).any(1).float().mean() > 0.5


def test_policy_accepts_lists_and_strings_and_names_bad_values() -> None:
    assert parse_policy("color,cutout") == parse_policy(["color", "cutout"]) == ["color", "cutout"]
    assert parse_policy(None) == parse_policy("") == []
    with pytest.raises(SynthsetError, match="unknown policy 'zoom'"):
        parse_policy("color,zoom")


@pytest.mark.parametrize("cls", [DCGAN, WGANGP])
def test_discriminator_sees_augmented_images_only_when_asked(cls) -> None:
    torch.manual_seed(0)
    plain = cls(channels=1, image_size=16, width=8)
    augmented = cls(channels=1, image_size=16, width=8, diffaugment=["translation", "cutout"])
    augmented.discriminator.load_state_dict(plain.discriminator.state_dict())
    x = torch.rand(4, 1, 16, 16) * 2 - 1
    assert torch.equal(plain.discriminate(x, None), plain.discriminator(x, None))
    assert not torch.allclose(augmented.discriminate(x, None), plain.discriminator(x, None))
