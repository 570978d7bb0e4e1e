"""Learning, not just running: brief training on digits must reach what a broken model could not."""

from pathlib import Path

import torch

from synthset.config import compose_config
from synthset.data.datamodule import to_uint8
from synthset.metrics.classifier import reference_classifier
from synthset.metrics.evaluation import domain_metrics
from synthset.models.loading import load_generative_model
from synthset.pipelines.train import build_datamodule, build_model, run_training

LEARN = ["logger=none", "callbacks.sample_grid.every_n_steps=100000", "trainer.enable_progress_bar=false"]


def val_quality(model, datamodule, cache: Path, n: int = 500) -> dict[str, float]:
    """GAN-test and within-class diversity on val, the way training's evaluation measures them."""
    labels = torch.arange(n) % datamodule.num_classes
    fake = to_uint8(model.sample(n, labels, generator=torch.Generator().manual_seed(0)))
    real, real_labels = datamodule.split("val")
    return domain_metrics(fake, labels, real, real_labels, reference_classifier(datamodule, cache), datamodule.class_names)


def test_the_quickstart_gan_learns_digits_in_the_right_class_with_real_diversity(learned_run) -> None:
    import os

    root, _ = learned_run
    model, _ = load_generative_model(root / "outputs" / "runs" / "learned" / "checkpoints" / "last.ckpt")
    cfg = compose_config("train", ["experiment=quickstart"], root)
    datamodule = build_datamodule(cfg)
    cache = Path(os.environ["SYNTHSET_CACHE"]) / "classifier"
    trained = val_quality(model, datamodule, cache)
    untrained = val_quality(build_model(cfg, datamodule), datamodule, cache)
    assert trained["gan_test"] >= 0.8 > untrained["gan_test"] + 0.3, (trained, untrained)
    # Within-class diversity: at least 0.6 of real (per-pixel std), and most of each class is covered.
    assert trained["pixel_std_ratio"] >= 0.6 and trained["pixel_std_ratio_min"] >= 0.4, trained
    assert trained["class_coverage"] >= 0.5 > untrained["class_coverage"], (trained, untrained)
    # The quickstart selects on this F1 of GAN-test and recall: noise never wins it.
    assert trained["gan_test_recall_f1"] >= untrained["gan_test_recall_f1"] + 0.4, (trained, untrained)


def test_vae_elbo_improves_by_a_margin(train_config) -> None:
    cfg = train_config("model=vae", "trainer.max_steps=300", *LEARN, "model.width=32")
    dm = build_datamodule(cfg)
    untrained = build_model(cfg, dm).eval()
    val = dm.on_after_batch_transfer(next(iter(dm.val_dataloader())), 0)
    with torch.no_grad():
        elbo_before = untrained.losses(val)["elbo"].item()
        result = run_training(cfg)
        elbo_after = result.model.eval().losses(val)["elbo"].item()
    # 256 Gaussian pixels with a fitted std: the bound rises by far more than 40 nats as reconstructions sharpen.
    assert elbo_after > elbo_before + 40, (elbo_before, elbo_after)
