"""Config helpers for the configs a user composes: ``build`` (instantiate with clear errors),
``compose_config`` (the shipped configs).

Only configs composed from ``conf/`` and the command line come here. What is read back from a
checkpoint, a run or a card never is: that goes through synthset's registries as plain data.
"""

import os
from pathlib import Path
from typing import Any

from hydra import compose, initialize_config_dir
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, open_dict

from synthset.errors import SynthsetError


def build(node: Any, **kwargs: Any) -> Any:
    """Instantiate a config node; a ``SynthsetError`` raised inside surfaces as itself.

    Arguments arrive as plain lists/dicts (``_convert_="all"``): OmegaConf containers inside
    saved hyperparameters would break ``torch.load(weights_only=True)`` of checkpoints.
    """
    kwargs.setdefault("_convert_", "all")
    try:
        return instantiate(node, **kwargs)
    except InstantiationException as error:
        cause = error.__cause__
        while cause is not None and not isinstance(cause, SynthsetError):
            cause = cause.__cause__
        if cause is not None:
            raise cause from None
        raise


CONFIG_DIR = Path(__file__).resolve().parents[2] / "conf"


def compose_config(config_name: str, overrides: list[str], output_root: Path) -> DictConfig:
    """Compose ``conf/<config_name>.yaml`` as the CLI would, with every output under ``output_root``.

    For tests, benchmarks and notebooks: the same configs, no Hydra app or working-directory change.
    """
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose(config_name, overrides=overrides)
    output_root = Path(output_root)
    with open_dict(cfg):
        cfg.paths.root_dir = str(output_root)
        cfg.paths.output_dir = str(output_root / "outputs")
        cfg.paths.run_dir = str(output_root / "outputs" / "run")
        cfg.paths.cache_dir = os.environ.get("SYNTHSET_CACHE") or str(output_root / "outputs" / "cache")
    return cfg
