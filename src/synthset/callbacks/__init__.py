"""Lightning callbacks: sample grids, checkpoint artifacts, RNG state, DDP replica check."""

from synthset.callbacks.checkpoint_artifacts import RunCheckpoints
from synthset.callbacks.evaluation import EvaluationCallback
from synthset.callbacks.progress import StepProgressBar
from synthset.callbacks.replica_check import ReplicaConsistencyCheck
from synthset.callbacks.rng_state import RNGStateCallback
from synthset.callbacks.sample_grid import SampleGridCallback

__all__ = ["EvaluationCallback", "RunCheckpoints", "ReplicaConsistencyCheck", "RNGStateCallback", "SampleGridCallback", "StepProgressBar"]
