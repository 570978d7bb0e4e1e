"""Plain data: the only form in which synthset reads back what it stored.

Checkpoints, the run config inside them, MLflow runs and dataset cards may come from someone
else. They are read as nested dicts and lists of str / int / float / bool / None, checked here,
and turned into objects only through synthset's own registries, with every keyword argument
checked against the registered class's signature. Nothing read back is ever imported or called.
"""

import inspect
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any, Union, get_args, get_origin

from synthset.errors import SynthsetError

SCALARS = (str, int, float, bool, type(None))
# Keys that make Hydra import and call things; no stored record may carry one.
HYDRA_KEYS = frozenset({"_target_", "_partial_", "_args_", "_recursive_", "_convert_"})


def first_impurity(value: Any, path: str = "") -> tuple[str, Any] | None:
    """(path, value) of the first thing in ``value`` that is not plain data, or None when all is plain."""
    if isinstance(value, SCALARS):
        return None
    if isinstance(value, Mapping):
        for key, item in value.items():
            where = f"{path}.{key}" if path else str(key)
            if not isinstance(key, str) or key in HYDRA_KEYS:
                return where, key
            found = first_impurity(item, where)
            if found:
                return found
        return None
    if isinstance(value, list | tuple):
        for i, item in enumerate(value):
            found = first_impurity(item, f"{path}[{i}]")
            if found:
                return found
        return None
    return path or "<root>", value


def require_plain(value: Any, what: str) -> None:
    """Refuse ``value`` (read from ``what``) unless it is plain data with no Hydra ``_target_``-style key."""
    found = first_impurity(value)
    if found is not None:
        where, bad = found
        shown = repr(bad)[:80] if isinstance(bad, SCALARS) else type(bad).__name__
        raise SynthsetError(
            f"{what} holds {where}={shown}, which is not plain data (a Hydra key such as _target_, or an object); "
            "synthset never runs code from a stored artifact, so regenerate it with synthset or remove that entry."
        )


def without_hydra_keys(value: Any) -> Any:
    """A copy of a resolved config with every ``_target_``-style key dropped: what synthset stores."""
    if isinstance(value, Mapping):
        return {k: without_hydra_keys(v) for k, v in value.items() if k not in HYDRA_KEYS}
    if isinstance(value, list | tuple):
        return [without_hydra_keys(v) for v in value]
    return value


def accepted_parameters(cls: Callable[..., Any]) -> dict[str, Any]:
    """Keyword parameters of ``cls`` and of the bases its ``**kwargs`` forward to, with their annotations."""
    found: dict[str, Any] = {}
    for klass in getattr(cls, "__mro__", (cls,)):
        init = klass.__init__ if isinstance(klass, type) else klass
        if init is object.__init__:
            break
        hints = typing.get_type_hints(init)
        signature = inspect.signature(init)
        for name, parameter in signature.parameters.items():
            if name == "self" or parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
                continue
            found.setdefault(name, hints.get(name, Any))
        if not any(p.kind == p.VAR_KEYWORD for p in signature.parameters.values()):
            break
    return found


def matches(value: Any, annotation: Any) -> bool:
    """Does plain ``value`` fit the type ``annotation`` (int for float allowed, bool never for a number)?"""
    if annotation is Any:
        return True
    if annotation is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if annotation in (str, bool):
        return type(value) is annotation
    if annotation in (None, type(None)):
        return value is None
    origin, args = get_origin(annotation), get_args(annotation)
    if origin in (Union, types.UnionType):
        return any(matches(value, a) for a in args)
    if origin in (list, tuple) and isinstance(value, list | tuple):
        if origin is tuple and args and args[-1] is not Ellipsis:
            return len(value) == len(args) and all(matches(v, a) for v, a in zip(value, args, strict=True))
        return all(matches(v, args[0]) for v in value) if args else True
    if origin is dict and isinstance(value, Mapping):
        return all(matches(v, args[1]) for v in value.values()) if args else True
    return False


FRIENDLY = {int: "an integer", float: "a number", bool: "true or false", str: "a string", type(None): "null"}


def type_label(annotation: Any) -> str:
    """``float | None`` -> "a number or null": how the user should read an expected type."""
    if annotation in FRIENDLY:
        return FRIENDLY[annotation]
    origin, args = get_origin(annotation), get_args(annotation)
    if origin in (Union, types.UnionType):
        return " or ".join(type_label(a) for a in args)
    if origin in (list, tuple):
        return "a list" + (f" of {type_label(args[0])}s" if args and args[0] in FRIENDLY else "")
    return str(annotation).replace("typing.", "")


def check_arguments(cls: Callable[..., Any], kwargs: Mapping[str, Any], prefix: str, source: str) -> None:
    """Every keyword is a parameter of ``cls`` and fits its type; else one sentence naming it.

    ``prefix`` names the keys as the user knows them (``model.``), ``source`` says where they came from.
    """
    require_plain(dict(kwargs), source)
    accepted = accepted_parameters(cls)
    for name, value in kwargs.items():
        if name not in accepted:
            raise SynthsetError(f"{prefix}{name} (from {source}) is not an option of {prefix.rstrip('.') or cls.__name__}; "
                                f"expected some of {', '.join(sorted(accepted))}.")
        if not matches(value, accepted[name]):
            raise SynthsetError(f"{prefix}{name}={value!r} (from {source}) is not {type_label(accepted[name])}; "
                                f"pass {type_label(accepted[name])} there.")
