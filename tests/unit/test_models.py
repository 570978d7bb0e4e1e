"""Model shapes, sampling contract and validation."""

import pytest
import torch

from synthset.config import CONFIG_DIR as REPO_CONF
from synthset.errors import SynthsetError
from synthset.models import DCGAN, WGANGP, BetaVAE, GenerativeModel

MODELS = [DCGAN, WGANGP, BetaVAE]


@pytest.mark.parametrize("cls", MODELS)
@pytest.mark.parametrize("image_size", [16, 32, 64])
def test_sample_shape_range_and_determinism(cls: type[GenerativeModel], image_size: int) -> None:
    model = cls(channels=3, image_size=image_size, width=8)
    a = model.sample(5, generator=torch.Generator().manual_seed(1))
    b = model.sample(5, generator=torch.Generator().manual_seed(1))
    assert a.shape == (5, 3, image_size, image_size) == (5, *model.image_shape)
    assert a.min() >= -1 and a.max() <= 1
    assert torch.equal(a, b)
    assert model.num_classes == 0


@pytest.mark.parametrize("cls", MODELS)
def test_conditional_labels_change_samples(cls: type[GenerativeModel]) -> None:
    model = cls(channels=1, image_size=16, width=8, conditional=True, num_classes=4, ema_decay=0.9)
    assert model.num_classes == 4 and model.ema is not None
    z_seed = torch.Generator().manual_seed(0)
    zeros = model.sample(4, torch.zeros(4, dtype=torch.long), generator=z_seed)
    threes = model.sample(4, torch.full((4,), 3, dtype=torch.long), generator=torch.Generator().manual_seed(0))
    assert not torch.equal(zeros, threes)
    assert torch.equal(model.default_labels(6), torch.tensor([0, 1, 2, 3, 0, 1]))


def test_conditional_without_classes_is_refused() -> None:
    with pytest.raises(SynthsetError, match="model.conditional=true needs labeled data"):
        WGANGP(channels=1, image_size=16, conditional=True, num_classes=0)


@pytest.mark.parametrize("size", [8, 20, 128])
def test_unsupported_image_size_names_the_value(size: int) -> None:
    with pytest.raises(SynthsetError, match=f"image_size={size} is not supported"):
        DCGAN(channels=1, image_size=size)


def test_depth_scales_with_image_size() -> None:
    def stride2(m: torch.nn.Module) -> int:
        return sum(isinstance(x, torch.nn.ConvTranspose2d) for x in m.generator.modules())

    assert [stride2(DCGAN(1, s, width=8)) for s in (16, 32, 64)] == [2, 3, 4]


def test_wgan_critic_has_no_batch_norm_and_dcgan_discriminator_does() -> None:
    def has_bn(m: torch.nn.Module) -> bool:
        return any(isinstance(x, torch.nn.BatchNorm2d) for x in m.discriminator.modules())

    assert not has_bn(WGANGP(1, 32, width=8)) and has_bn(DCGAN(1, 32, width=8))


@pytest.mark.parametrize(("recipe", "model", "batch", "max_steps"), [
    ("dcgan_cifar10", "dcgan", 128, 200_000), ("wgan_gp_cifar10", "wgan", 64, 600_000), ("vae_cifar10", "vae", 64, 200_000)])
def test_published_recipes_compose_to_the_papers_settings(tmp_path, recipe: str, model: str, batch: int, max_steps: int) -> None:
    from synthset.config import compose_config

    cfg = compose_config("train", [f"experiment={recipe}"], tmp_path)
    assert (cfg.model.name, cfg.data.name, cfg.data.image_size, cfg.data.channels) == (model, "cifar10", 32, 3)
    assert (cfg.data.batch_size, cfg.trainer.max_steps, cfg.eval.num_samples) == (batch, max_steps, 50_000)
    assert "NOT YET REPRODUCED" in (REPO_CONF / "experiment" / f"{recipe}.yaml").read_text()
