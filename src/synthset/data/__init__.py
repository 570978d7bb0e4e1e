"""Real data: sources (digits, torchvision sets, image folders) and the data module."""

from synthset.data.datamodule import ImageDataModule
from synthset.data.sources import (
    DigitsSource,
    FashionMNISTSource,
    FolderSource,
    TorchvisionSource,
)

__all__ = ["ImageDataModule", "DigitsSource", "FashionMNISTSource", "FolderSource", "TorchvisionSource"]
