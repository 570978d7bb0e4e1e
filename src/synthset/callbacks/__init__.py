"""Lightning callbacks: sample grids, checkpoint artifacts, RNG state."""

from synthset.callbacks.checkpoint_artifacts import LogCheckpointsToMLflow
from synthset.callbacks.evaluation import EvaluationCallback
from synthset.callbacks.rng_state import RNGStateCallback
from synthset.callbacks.sample_grid import SampleGridCallback

__all__ = ["EvaluationCallback", "LogCheckpointsToMLflow", "RNGStateCallback", "SampleGridCallback"]
