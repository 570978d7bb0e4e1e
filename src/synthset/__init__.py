"""synthset: train generative image models and turn them into trustworthy synthetic datasets."""

__version__ = "0.1.0"
