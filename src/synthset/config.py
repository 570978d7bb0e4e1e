"""``build``: ``hydra.utils.instantiate`` that lets our own clear errors through unwrapped."""

from typing import Any

from hydra.errors import InstantiationException
from hydra.utils import instantiate

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
