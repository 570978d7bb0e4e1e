"""The MLflow store: resolve its URI, create/upgrade it once, refuse unreachable servers clearly."""

import os
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from synthset.errors import SynthsetError

ENV_VAR = "MLFLOW_TRACKING_URI"


def default_tracking_uri(output_dir: str | Path) -> str:
    """``MLFLOW_TRACKING_URI`` when set, else an absolute sqlite store under ``output_dir``."""
    return os.environ.get(ENV_VAR) or f"sqlite:///{Path(output_dir).resolve() / 'mlflow.db'}"


def tracking_uri_for(cfg: Any) -> str:
    """The store a config points at: ``tracking.uri`` when set, else the default above."""
    return cfg.tracking.uri or default_tracking_uri(cfg.paths.output_dir)


def default_artifact_location(tracking_uri: str, output_dir: str | Path) -> str | None:
    """Local stores keep artifacts under ``outputs/mlartifacts``; servers choose their own."""
    if tracking_uri.startswith("sqlite:"):
        return (Path(output_dir).resolve() / "mlartifacts").as_uri()
    return None


def require_existing_store(tracking_uri: str) -> None:
    """For commands that read runs: a local store must already exist (opening one must not create it)."""
    if tracking_uri.startswith("sqlite:///"):
        db_path = Path(tracking_uri.removeprefix("sqlite:///"))
        if not db_path.is_file():
            raise SynthsetError(f"there is no MLflow store at {db_path} yet; train a model first, or point "
                                f"{ENV_VAR} (or tracking.uri) at the store that holds the run.")
    ensure_store(tracking_uri)


def ensure_store(tracking_uri: str) -> None:
    """Create/upgrade a sqlite store or check that a server answers, in this one process.

    Doing this once before parallel jobs avoids the alembic race of concurrent sqlite creation.
    """
    if tracking_uri.startswith(("http://", "https://")):
        try:
            urllib.request.urlopen(tracking_uri.rstrip("/") + "/health", timeout=5).read()
        except (urllib.error.URLError, OSError) as error:
            raise SynthsetError(
                f"MLflow server {ENV_VAR}={tracking_uri} is unreachable ({getattr(error, 'reason', error)}); "
                "start it (make ui) or unset the variable to use the local sqlite store."
            ) from None
        return
    if tracking_uri.startswith("sqlite:///"):
        db_path = Path(tracking_uri.removeprefix("sqlite:///"))
        try:
            db_path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise SynthsetError(f"cannot create the MLflow store folder {db_path.parent} ({error}); set paths.output_dir to a writable folder.") from None
    from mlflow.tracking import MlflowClient

    try:
        MlflowClient(tracking_uri).search_experiments(max_results=1)
    except Exception as error:  # mlflow raises many types for a bad URI
        raise SynthsetError(
            f"MLflow tracking URI {tracking_uri!r} cannot be used ({type(error).__name__}: {error}); "
            f"set {ENV_VAR} to a sqlite:////abs/path.db or http://host:port URI."
        ) from None
