"""When the reference classifier stops (first perfect val score, plateau, end of budget), and what it leaves untouched."""

import os
import random
from dataclasses import replace

import numpy as np
import torch

from synthset.metrics.classifier import ClassifierRecipe, fit_classifier


def test_training_stops_at_the_first_perfect_val_score_and_keeps_those_weights() -> None:
    # Two classes no classifier can confuse: dark and bright 16 px images.
    labels = torch.arange(64) % 2
    images = (labels.view(-1, 1, 1, 1) * 200 + torch.randint(0, 40, (64, 1, 16, 16))).to(torch.uint8)
    recipe = ClassifierRecipe(max_steps=400, batch_size=16, val_every=20, patience=100, crop_padding=0)
    model = fit_classifier(images, labels, 2, recipe, seed=0, val=(images, labels))
    assert model.val_scores[-1] == 1.0 and 1.0 not in model.val_scores[:-1], model.val_scores
    assert len(model.val_scores) < recipe.max_steps // recipe.val_every  # it stopped before the budget ran out
    assert model.best_accuracy == 1.0
    assert (model.predict_labels(images) == labels).all()


def test_patience_stops_at_a_plateau_and_zero_runs_the_whole_budget() -> None:
    # Noise images with random labels: val accuracy wanders, so it soon fails to improve twice in a row.
    labels = torch.arange(32) % 2
    images = torch.randint(0, 255, (32, 1, 16, 16), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    val = (images, labels[torch.randperm(32, generator=torch.Generator().manual_seed(1))])
    plateau = ClassifierRecipe(max_steps=200, batch_size=8, val_every=10, patience=2, crop_padding=0)
    stopped = fit_classifier(images, labels, 2, plateau, seed=0, val=val)
    whole = fit_classifier(images, labels, 2, replace(plateau, patience=0), seed=0, val=val)
    scores = stopped.val_scores
    assert len(scores) < plateau.max_steps // plateau.val_every, scores
    assert max(scores[-2:]) <= max(scores[:-2]) < 1.0  # the last two without a gain, and not a perfect score
    assert len(whole.val_scores) == plateau.max_steps // plateau.val_every


def test_fitting_a_classifier_leaves_the_callers_random_streams_and_seed_variables_as_they_were(monkeypatch) -> None:
    # A training run fits its reference classifier at its first evaluation when the cache is cold: the run's own
    # draws after it must be the ones it would make with a warm cache.
    monkeypatch.delenv("PL_GLOBAL_SEED", raising=False)
    monkeypatch.delenv("PL_SEED_WORKERS", raising=False)
    labels = torch.arange(16) % 2
    images = torch.randint(0, 255, (16, 1, 16, 16), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    recipe = ClassifierRecipe(max_steps=4, batch_size=4, val_every=2, patience=0, crop_padding=1)

    def draws_after(fit: bool) -> tuple:
        torch.manual_seed(123), random.seed(123), np.random.seed(123)
        if fit:
            fit_classifier(images, labels, 2, recipe, seed=0, val=(images, labels))
        return torch.rand(3).tolist(), random.random(), np.random.rand()

    assert draws_after(fit=True) == draws_after(fit=False)
    assert "PL_GLOBAL_SEED" not in os.environ and "PL_SEED_WORKERS" not in os.environ
