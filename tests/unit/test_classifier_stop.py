"""The reference classifier stops at the first perfect val score: nothing later could replace the kept weights."""

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
