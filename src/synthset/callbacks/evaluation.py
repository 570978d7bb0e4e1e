"""Periodic evaluation during training on the selection split, a best checkpoint, and the final score."""

from pathlib import Path
from typing import Any

import pytorch_lightning as pl

from synthset.callbacks.steps import logged_step
from synthset.errors import require
from synthset.metrics.classifier import reference_classifier
from synthset.metrics.evaluation import evaluate_model
from synthset.metrics.fidelity import MetricSettings
from synthset.metrics.protocol import (
    PROTOCOL_TAG,
    SELECTION_METRIC_TAG,
    SELECTION_SPLITS,
    better,
    monitored_key,
    protocol_text,
)
from synthset.models.checkpoint_format import EVAL_KEY
from synthset.rng import rng_kept_apart


class EvaluationCallback(pl.Callback):
    """Every ``every_n_steps`` generator steps and at the end: sample, score on ``reference_split``, log.

    Metrics are logged as ``eval/<split>/<name>`` with their protocol in the run's tags. Scoring uses
    ``val`` (or ``train`` for the literature protocol), never ``test``: what selects a model must not
    report it. With EMA on, both the EMA and the raw generator are scored and the better one on the
    monitored metric becomes the model's sampling weights. ``best.ckpt`` keeps the best score, and
    every checkpoint of an evaluated step carries its own evaluation. Rank 0 scores; the decisions
    are broadcast so every DDP rank agrees.
    """

    def __init__(
        self,
        every_n_steps: int = 0,
        num_samples: int = 1000,
        reference_split: str = "val",
        reference_samples: int | None = None,
        per_class: bool = False,
        seed: int = 0,
        fidelity: bool = True,
        domain: bool = True,
        monitor: str = "fid",
        metrics: dict[str, Any] | None = None,
        checkpoint_dir: str | None = None,
        classifier_dir: str | None = None,
    ) -> None:
        require(reference_split in SELECTION_SPLITS,
                f"eval.reference_split={reference_split} would select models on {reference_split!r}; use val "
                "(or train for the literature protocol): the test split only reports, through evaluate.py and cards.")
        require(fidelity or domain, "eval.fidelity=false and eval.domain=false leave nothing to evaluate; turn one on.")
        self.every_n_steps = every_n_steps
        self.num_samples = num_samples
        self.reference_split = reference_split
        self.reference_samples = reference_samples
        self.per_class = per_class
        self.seed = seed
        self.settings = MetricSettings(**(metrics or {})) if fidelity else None
        self.domain = domain
        self.checkpoint_dir = checkpoint_dir
        self.classifier_dir = classifier_dir
        self.monitor = monitored_key(monitor, self.settings.fid_extractor if self.settings else "")
        self.best_score: float | None = None
        self.last_eval_step = -1
        self.last_metrics: dict[str, float] = {}
        self.last_protocol: dict[str, Any] = {}

    @property
    def enabled(self) -> bool:
        return self.every_n_steps > 0

    @property
    def metric_prefix(self) -> str:
        return f"eval/{self.reference_split}"

    def state_dict(self) -> dict[str, Any]:
        return {"best_score": self.best_score, "last_eval_step": self.last_eval_step,
                "last_metrics": self.last_metrics, "last_protocol": self.last_protocol}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.best_score = state_dict["best_score"]
        self.last_eval_step = state_dict["last_eval_step"]
        self.last_metrics = state_dict.get("last_metrics", {})
        self.last_protocol = state_dict.get("last_protocol", {})

    def classifier_for(self, trainer: pl.Trainer, pl_module):
        if not (self.domain and pl_module.num_classes and self.classifier_dir):
            return None
        return reference_classifier(trainer.datamodule, Path(self.classifier_dir))

    def score(self, trainer: pl.Trainer, pl_module) -> tuple[dict[str, float], bool]:
        """Metrics of the chosen weights, and whether EMA was chosen (raw and EMA both scored when EMA is on)."""
        classifier = self.classifier_for(trainer, pl_module)
        choices = [True, False] if pl_module.ema is not None else [False]
        scored = {}
        for use_ema in choices:
            pl_module.use_ema.fill_(use_ema)
            scored[use_ema], self.last_protocol = evaluate_model(
                pl_module, trainer.datamodule, self.num_samples, self.settings, self.reference_split, self.seed,
                self.per_class, classifier, self.reference_samples)
        require(self.monitor in scored[choices[0]],
                f"eval.monitor names {self.monitor}, which this evaluation does not produce (it gives "
                f"{', '.join(sorted(scored[choices[0]]))}); pick one of those.")
        chosen = choices[0]
        for use_ema in choices[1:]:
            if better(scored[use_ema][self.monitor], scored[chosen][self.monitor], self.monitor):
                chosen = use_ema
        metrics = dict(scored[chosen])
        if len(choices) > 1:
            metrics[f"{self.monitor}_ema"] = scored[True][self.monitor]
            metrics[f"{self.monitor}_raw"] = scored[False][self.monitor]
            metrics["uses_ema"] = float(chosen)
        return metrics, chosen

    def log_scores(self, trainer: pl.Trainer, metrics: dict[str, float]) -> None:
        for logger in trainer.loggers:
            logger.log_metrics({f"{self.metric_prefix}/{k}": v for k, v in metrics.items()}, step=logged_step(trainer))
            if hasattr(logger, "run_id") and hasattr(logger.experiment, "set_tag"):
                logger.experiment.set_tag(logger.run_id, SELECTION_METRIC_TAG, f"{self.metric_prefix}/{self.monitor}")
                logger.experiment.set_tag(logger.run_id, PROTOCOL_TAG, protocol_text(self.last_protocol))

    def evaluate(self, trainer: pl.Trainer, pl_module) -> None:
        generator_step = pl_module.generator_step_count
        if generator_step == self.last_eval_step:
            return
        self.last_eval_step = generator_step
        improved, use_ema = False, bool(pl_module.use_ema)
        if trainer.is_global_zero:
            with rng_kept_apart():  # scoring observes the run: its draws must not change what training draws next
                metrics, use_ema = self.score(trainer, pl_module)
            self.last_metrics = metrics
            self.log_scores(trainer, metrics)
            # A tie goes to the newer checkpoint: a saturated score (coverage 1.0) would freeze an early one.
            improved = self.best_score is None or not better(self.best_score, metrics[self.monitor], self.monitor)
            if improved:
                self.best_score = metrics[self.monitor]
        improved, use_ema = trainer.strategy.broadcast((improved, use_ema), src=0)
        pl_module.use_ema.fill_(use_ema)
        if improved and self.checkpoint_dir:
            trainer.save_checkpoint(Path(self.checkpoint_dir) / "best.ckpt")

    def on_save_checkpoint(self, trainer: pl.Trainer, pl_module, checkpoint: dict[str, Any]) -> None:
        # Only an evaluation of these very weights describes the checkpoint (gates read it).
        if self.last_metrics and self.last_eval_step == pl_module.generator_step_count:
            checkpoint[EVAL_KEY] = {"generator_step": self.last_eval_step, "metrics": dict(self.last_metrics),
                                    "protocol": dict(self.last_protocol), "monitor": self.monitor,
                                    "metric_prefix": self.metric_prefix}

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        step = pl_module.generator_step_count
        if self.enabled and step > 0 and step % self.every_n_steps == 0:
            self.evaluate(trainer, pl_module)

    def on_train_end(self, trainer, pl_module) -> None:
        if self.enabled:
            self.evaluate(trainer, pl_module)
