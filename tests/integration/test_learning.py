"""Learning, not just running: brief training on digits must move statistics a broken loss would not."""

import pytest
import torch

from synthset.data.datamodule import ImageDataModule, to_signed_unit
from synthset.pipelines.train import build_datamodule, build_model, run_training

LEARN = ["logger=none", "callbacks.sample_grid.every_n_steps=100000", "model.width=32"]


def real_train_images(dm: ImageDataModule) -> tuple[torch.Tensor, torch.Tensor]:
    images, labels = dm.split("train")
    return to_signed_unit(images.clone()), labels


def nearest_class_mean_accuracy(samples: torch.Tensor, labels: torch.Tensor, dm: ImageDataModule) -> float:
    """A classifier fit on real digits (nearest class mean) judges whether samples show their label."""
    real, real_labels = real_train_images(dm)
    means = torch.stack([real[real_labels == k].flatten(1).mean(0) for k in range(dm.num_classes)])
    predicted = torch.cdist(samples.flatten(1), means).argmin(1)
    return (predicted == labels).float().mean().item()


def moment_gap(samples: torch.Tensor, real: torch.Tensor) -> float:
    return abs(samples.mean() - real.mean()).item() + abs(samples.std() - real.std()).item()


@pytest.mark.parametrize(("model", "steps"), [("dcgan", 600), ("wgan", 1500)])
def test_conditional_gan_learns_digits_in_the_right_class(train_config, model: str, steps: int) -> None:
    cfg = train_config(f"model={model}", "model.conditional=true", f"trainer.max_steps={steps}", *LEARN)
    result = run_training(cfg)
    dm = result.datamodule
    real, _ = real_train_images(dm)
    labels = torch.arange(500) % 10
    samples = result.model.sample(500, labels, generator=torch.Generator().manual_seed(0))
    # An untrained generator of the same architecture is the baseline the trained one must beat.
    before = build_model(cfg, dm).sample(500, labels, generator=torch.Generator().manual_seed(0))
    assert moment_gap(samples, real) < 0.5 * moment_gap(before, real)
    accuracy = nearest_class_mean_accuracy(samples, labels, dm)
    assert accuracy > 0.5, f"conditioning agreement {accuracy:.2f} is near chance (0.10)"


def test_vae_elbo_improves_by_a_margin(train_config) -> None:
    cfg = train_config("model=vae", "trainer.max_steps=300", *LEARN)
    dm = build_datamodule(cfg)
    untrained = build_model(cfg, dm).eval()
    val = dm.on_after_batch_transfer(next(iter(dm.val_dataloader())), 0)
    with torch.no_grad():
        elbo_before = untrained.losses(val)["elbo"].item()
        result = run_training(cfg)
        elbo_after = result.model.eval().losses(val)["elbo"].item()
    # 256 Bernoulli pixels: an untrained decoder sits near -256 * ln 2 = -177 nats.
    assert elbo_after > elbo_before + 40, (elbo_before, elbo_after)
