"""Periodic evaluation during training, a best checkpoint by FID, and the final score."""

from pathlib import Path
from typing import Any

import pytorch_lightning as pl

from synthset.metrics.evaluation import evaluate_model
from synthset.metrics.fidelity import MetricSettings
from synthset.metrics.naming import metric_name


class EvaluationCallback(pl.Callback):
    """Every ``every_n_steps`` generator steps and at the end: sample, score, log ``eval/*``.

    Keeps ``best.ckpt`` (lowest FID, or its named proxy) beside ``last.ckpt``. Rank 0 scores;
    the decision to save is broadcast so every DDP rank joins the checkpoint collective.
    """

    def __init__(
        self,
        every_n_steps: int = 0,
        num_samples: int = 1000,
        reference_split: str = "test",
        per_class: bool = False,
        seed: int = 0,
        metrics: dict[str, Any] | None = None,
        checkpoint_dir: str | None = None,
    ) -> None:
        self.every_n_steps = every_n_steps
        self.num_samples = num_samples
        self.reference_split = reference_split
        self.per_class = per_class
        self.seed = seed
        self.settings = MetricSettings(**(metrics or {}))
        self.checkpoint_dir = checkpoint_dir
        self.monitor = metric_name("fid", self.settings.fid_extractor)
        self.best_score = float("inf")
        self.last_eval_step = -1
        self.last_metrics: dict[str, float] = {}

    @property
    def enabled(self) -> bool:
        return self.every_n_steps > 0

    def state_dict(self) -> dict[str, Any]:
        return {"best_score": self.best_score, "last_eval_step": self.last_eval_step}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.best_score = state_dict["best_score"]
        self.last_eval_step = state_dict["last_eval_step"]

    def evaluate(self, trainer: pl.Trainer, pl_module) -> None:
        generator_step = int(pl_module.generator_steps)
        if generator_step == self.last_eval_step:
            return
        self.last_eval_step = generator_step
        improved = False
        if trainer.is_global_zero:
            metrics = evaluate_model(
                pl_module, trainer.datamodule, self.num_samples, self.settings,
                self.reference_split, self.seed, self.per_class,
            )
            self.last_metrics = metrics
            for logger in trainer.loggers:
                logger.log_metrics({f"eval/{k}": v for k, v in metrics.items()}, step=trainer.global_step)
            improved = metrics[self.monitor] < self.best_score
            if improved:
                self.best_score = metrics[self.monitor]
        improved = trainer.strategy.broadcast(improved, src=0)
        if improved and self.checkpoint_dir:
            trainer.save_checkpoint(Path(self.checkpoint_dir) / "best.ckpt")

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        step = int(pl_module.generator_steps)
        if self.enabled and step > 0 and step % self.every_n_steps == 0:
            self.evaluate(trainer, pl_module)

    def on_train_end(self, trainer, pl_module) -> None:
        if self.enabled:
            self.evaluate(trainer, pl_module)
