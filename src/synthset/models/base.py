"""The one abstraction: a LightningModule that can ``sample`` images in [-1, 1]."""

import os
from collections.abc import Callable
from typing import Any, ClassVar

import pytorch_lightning as pl
import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel

from synthset.errors import require
from synthset.models.checkpoint_format import MODEL_NAME_KEY, RUN_CONFIG_KEY

COMPILE_BACKENDS = ("inductor", "eager", "aot_eager", "cudagraphs")


def warmup_ema(decay: float) -> Callable[[list[torch.Tensor], list[torch.Tensor], Any], None]:
    """EMA whose decay grows as min(decay, (1 + t) / (10 + t)) with the update count t.

    A fixed 0.999 from the first step still holds 45 % of the random initialization after 800
    updates (0.999^800); the warm-up forgets the start within tens of updates.
    """

    @torch.no_grad()
    def update(averaged: list[torch.Tensor], current: list[torch.Tensor], num_averaged: Any) -> None:
        t = float(num_averaged)
        weight = 1.0 - min(decay, (1.0 + t) / (10.0 + t))
        if torch.is_floating_point(averaged[0]):
            torch._foreach_lerp_(averaged, current, weight)
        else:  # integer buffers (BatchNorm's batch counter) follow the live network
            for a, c in zip(averaged, current, strict=True):
                a.copy_(c)

    return update


def require_temperature(value: object, key: str) -> None:
    """A sampling temperature is a number in (0, 10]: the latents' spread relative to the prior's."""
    require(isinstance(value, int | float) and not isinstance(value, bool) and 0 < value <= 10,
            f"{key}={value!r} must be a number in (0, 10], e.g. {key}=1.0 (the prior as trained).")


class GenerativeModel(pl.LightningModule):
    """Base of every model: image shape, ``num_classes`` (0 = unconditional) and ``sample``.

    Subclasses build ``self.decoder`` (the network that maps latents to images) and call
    ``self.finish_init()``; metrics, grids and generation only ever call ``sample``.
    """

    decoder: nn.Module
    registry_name: ClassVar[str] = ""  # the short name checkpoints store (see synthset.models.MODEL_REGISTRY)
    has_discriminator: ClassVar[bool] = False  # a GAN can score its own draws (``discriminator_scores``)

    def __init__(
        self,
        channels: int,
        image_size: int,
        latent_dim: int,
        conditional: bool = False,
        num_classes: int = 0,
        class_names: list[str] | None = None,
        ema_decay: float | None = None,
        compile: bool | str = False,
        channels_last: bool = False,
    ) -> None:
        super().__init__()
        require(compile in (False, True) or compile in COMPILE_BACKENDS,
                f"model.compile={compile!r} is unknown; expected false, true (inductor) or one of {', '.join(COMPILE_BACKENDS)}.")
        require(
            not conditional or num_classes > 0,
            "model.conditional=true needs labeled data, but this data set has no classes; "
            "use labeled data (class subfolders for data=folder) or set model.conditional=false.",
        )
        require(
            ema_decay is None or 0.0 < ema_decay < 1.0,
            f"model.ema_decay={ema_decay} is out of range; expected a number in (0, 1) such as 0.999, or null.",
        )
        self.channels = channels
        self.image_size = image_size
        self.latent_dim = latent_dim
        self.num_classes = num_classes if conditional else 0
        self.class_names = list(class_names or [])
        self.ema_decay = ema_decay
        self.ema: AveragedModel | None = None
        # Generator updates (GANs skip some batches for G); evaluation is scheduled on this count.
        self.register_buffer("generator_steps", torch.zeros((), dtype=torch.long))
        # Whether ``sample`` uses the EMA weights: chosen by measurement on val (see EvaluationCallback).
        self.register_buffer("use_ema", torch.tensor(ema_decay is not None))
        # The resolved run config, stored in every checkpoint so it describes itself.
        self.run_config: dict[str, Any] | None = None
        self.compile_backend = "inductor" if compile is True else (compile or None)
        self.channels_last = channels_last
        self.compiled: dict[str, Callable[..., torch.Tensor]] = {}
        self._generator_count: int | None = None

    def __setattr__(self, name: str, value: Any) -> None:
        # Lightning sets this name around every hook call (~40 times a GAN batch); it is never a parameter,
        # buffer or submodule, so nn.Module's bookkeeping (about 9 µs a call) can be skipped.
        if name == "_current_fx_name":
            object.__setattr__(self, name, value)
        else:
            super().__setattr__(name, value)

    def compiled_network(self, name: str) -> Callable[..., torch.Tensor]:
        """``self.<name>`` through ``torch.compile`` when ``model.compile`` is on, else the module itself.

        The compiled wrapper is kept outside the module tree, so state dicts (and checkpoints) stay the same.
        """
        module = getattr(self, name)
        if self.compile_backend is None:
            return module
        if name not in self.compiled:
            self.compiled[name] = torch.compile(module, backend=self.compile_backend)
        return self.compiled[name]

    def memory_format(self, images: torch.Tensor) -> torch.Tensor:
        """NHWC (``channels_last``) on request: faster convolutions on tensor-core GPUs."""
        return images.contiguous(memory_format=torch.channels_last) if self.channels_last else images

    def on_fit_start(self) -> None:
        if self.channels_last:
            self.to(memory_format=torch.channels_last)

    def finish_init(self) -> None:
        """Create the EMA copy of ``self.decoder`` once the decoder exists."""
        if self.ema_decay is not None:
            self.ema = AveragedModel(self.decoder, multi_avg_fn=warmup_ema(self.ema_decay), use_buffers=True)
            self.ema.requires_grad_(False)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return (self.channels, self.image_size, self.image_size)

    @property
    def generator_step_count(self) -> int:
        """Generator updates so far, from a host-side mirror: reading it never waits for the GPU."""
        if self._generator_count is None:
            self._generator_count = int(self.generator_steps)
        return self._generator_count

    def count_generator_step(self) -> None:
        self._generator_count = self.generator_step_count + 1
        self.generator_steps.fill_(self._generator_count)  # no host sync: the value comes from the host

    def on_load_checkpoint_counters(self) -> None:
        """Host mirrors are re-read from the (restored) buffers on first use."""
        self._generator_count = None

    def optimizer_step_on(self, optimizer, loss: torch.Tensor) -> None:
        """One manual update (every model optimizes manually: Lightning's closure loop costs more per batch)."""
        optimizer.zero_grad(set_to_none=True)
        self.manual_backward(loss)
        optimizer.step()

    def finish_generator_step(self) -> None:
        """After each decoder update: count it, then fold the new weights into the EMA."""
        self.count_generator_step()
        self.update_ema()

    def update_ema(self) -> None:
        if self.ema is not None:
            self.ema.update_parameters(self.decoder)

    def sampling_network(self) -> nn.Module:
        """The EMA weights when EMA is on and chosen (``use_ema``), else the live decoder."""
        return self.ema.module if self.ema is not None and bool(self.use_ema) else self.decoder

    def default_labels(self, n: int) -> torch.Tensor | None:
        """Balanced labels 0, 1, ..., K-1, 0, 1, ... for conditional models; None otherwise."""
        return torch.arange(n) % self.num_classes if self.num_classes else None

    def latents(self, n: int, labels: torch.Tensor | None, generator: torch.Generator | None,
                temperature: float = 1.0) -> torch.Tensor:
        """Latents to decode, drawn on the CPU: the prior N(0, t²I) at temperature t; VAEs may use a fitted one."""
        return torch.randn(n, self.latent_dim, generator=generator) * temperature

    def decode(self, net: nn.Module, z: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        """Map latents to images in [-1, 1]; VAEs override to turn logits into intensities."""
        return net(z, labels)

    @torch.inference_mode()
    def sample(
        self, n: int, labels: torch.Tensor | None = None, generator: torch.Generator | None = None,
        temperature: float = 1.0,
    ) -> torch.Tensor:
        """Draw ``n`` images as a float tensor in [-1, 1] of shape (n, C, H, W).

        Deterministic for a given CPU ``generator``: latents are drawn on the CPU, then moved. ``temperature``
        scales the latents' spread around the prior's mean: below 1 fewer unusual draws (the truncation trick),
        above 1 more variety at some cost in fidelity.
        """
        require(n > 0, f"sample count {n} is not positive; ask for at least one image.")
        if labels is None:
            labels = self.default_labels(n)
        elif self.num_classes == 0:
            labels = None
        net = self.sampling_network()
        was_training = net.training
        net.eval()
        try:
            z = self.latents(n, labels, generator, temperature).to(self.device)
            labels = labels.to(self.device) if labels is not None else None
            return self.decode(net, z, labels).clamp_(-1, 1)
        finally:
            net.train(was_training)

    def log_train_metrics(self, metrics: dict[str, torch.Tensor]) -> None:
        """``self.log_dict`` on the steps Lightning writes to the loggers, and only there.

        Each ``self.log`` call costs about 1.5 ms of Lightning bookkeeping (it moves its whole result
        record to the value's device); on small models that is a tenth of a step. The logged values are
        the same, since Lightning only ever writes the current step's values on those steps.
        """
        connector = getattr(self.trainer, "_logger_connector", None)
        if getattr(connector, "should_update_logs", True):  # unknown Lightning internals: log every step
            self.log_dict(metrics, prog_bar=True, sync_dist=True)

    def on_train_start(self) -> None:
        # DDP ranks share one seed; each rank needs its own noise (its data already differs by sampler).
        if self.trainer.world_size > 1:
            seed = int(os.environ.get("PL_GLOBAL_SEED", 0))
            torch.manual_seed(hash((seed, self.global_rank, self.global_step)) % 2**62)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint[MODEL_NAME_KEY] = self.registry_name
        if self.run_config is not None:
            checkpoint[RUN_CONFIG_KEY] = self.run_config

    # Checkpoints carry the EMA weights; make sure they are restored into a matching module.
    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.on_load_checkpoint_counters()
        has_ema = any(key.startswith("ema.") for key in checkpoint["state_dict"])
        require(
            has_ema == (self.ema is not None),
            "checkpoint and model disagree on EMA (model.ema_decay); resume with the run's own config.",
        )
