"""Shared behaviour of the thin entry points: clear errors, quiet third-party logs."""

import functools
import logging
import os
import sys
import warnings
from collections.abc import Callable
from typing import Any

from synthset.errors import SynthsetError

EXIT_USAGE = 2


def report_errors(task: Callable[..., Any]) -> Callable[..., Any]:
    """Turn a ``SynthsetError`` into one line on stderr and exit code 2 (no traceback wall)."""

    @functools.wraps(task)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return task(*args, **kwargs)
        except SynthsetError as error:
            print(f"error: {error}", file=sys.stderr, flush=True)
            sys.exit(EXIT_USAGE)

    return wrapper


def quiet_third_party_logs() -> None:
    """MLflow's alembic migrations and Lightning's tips drown the useful output."""
    for name in ("alembic", "mlflow", "pytorch_lightning.utilities.rank_zero", "urllib3"):
        logging.getLogger(name).setLevel(logging.WARNING)
    os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")
    # Known, harmless notices: GANs use manual optimization and have no validation step.
    for pattern in (
        ".*ModelCheckpoint with manual optimization.*",
        ".*no `validation_step`.*",
        ".*LeafSpec.*",
        ".*smaller than the logging interval.*",
    ):
        warnings.filterwarnings("ignore", message=pattern)
