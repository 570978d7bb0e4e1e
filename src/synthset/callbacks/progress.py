"""A training progress bar that counts optimizer steps out of ``trainer.max_steps`` (not "Epoch 119/-2")."""

from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks import ProgressBar
from tqdm.auto import tqdm


class StepProgressBar(ProgressBar):
    """One bar for the whole run: optimizer steps done / ``max_steps``, with the latest losses beside it."""

    def __init__(self, refresh_rate: int = 10) -> None:
        super().__init__()
        self.refresh_rate = refresh_rate
        self.enabled = True
        self.bar: tqdm | None = None

    def disable(self) -> None:
        self.enabled = False

    def enable(self) -> None:
        self.enabled = True

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.enabled and trainer.is_global_zero:
            self.bar = tqdm(total=trainer.max_steps, initial=trainer.global_step, desc="training", unit="step",
                            dynamic_ncols=True)

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        if self.bar is None or batch_idx % self.refresh_rate:
            return
        self.bar.update(trainer.global_step - self.bar.n)
        shown = {k.split("/")[-1]: f"{float(v):.3g}" for k, v in trainer.progress_bar_metrics.items() if k.startswith("train/")}
        self.bar.set_postfix(shown, refresh=False)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.bar is not None:
            self.bar.update(trainer.global_step - self.bar.n)
            self.bar.close()
            self.bar = None
