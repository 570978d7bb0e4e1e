"""DiffAugment: differentiable, shape-preserving, random per image, and wired into both GANs' D."""

import pytest
import torch

from synthset.errors import SynthsetError
from synthset.metrics.classifier import pad_and_crop
from synthset.models import DCGAN, WGANGP
from synthset.models.diffaugment import diff_augment, parse_policy, translation

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


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("shift", [lambda x: pad_and_crop(x, 2), translation], ids=["pad_and_crop", "translation"])
def test_shifted_images_are_windows_of_their_padded_input_in_the_standard_layout(shift, channels: int) -> None:
    # NCHW strides, not channels-last ones: on AVX2-only CPUs a strided 1x1 convolution's backward over
    # channels-last input corrupts the heap (the reference classifier's skip path crashed its trainer)
    torch.manual_seed(2)
    images = torch.arange(1.0, 8 * channels * 16 * 16 + 1).view(8, channels, 16, 16)
    out = shift(images)
    assert out.stride() == torch.empty(out.shape).stride()
    padded = torch.nn.functional.pad(images, [2] * 4)  # both shift by at most 2 px at 16 px, filling with zeros
    for image, window in zip(padded, out, strict=True):
        assert any(torch.equal(image[:, dy : dy + 16, dx : dx + 16], window) for dy in range(5) for dx in range(5))


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


def test_augmented_images_keep_the_memory_format_the_model_asks_for() -> None:
    # the shifts return NCHW (see above); a model trained channels-last on a GPU gets its D input back in that format
    x = torch.rand(4, 3, 16, 16) * 2 - 1
    for channels_last in (False, True):
        model = DCGAN(channels=3, image_size=16, width=8, diffaugment=["translation"], channels_last=channels_last)
        out = model.augment(model.memory_format(x))
        assert out.is_contiguous(memory_format=torch.channels_last) == channels_last
        assert out.is_contiguous() != channels_last
