"""What the thin entry points share: config-group checks before Hydra, one-line errors, quiet library output."""

import difflib
import functools
import logging
import os
import sys
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from synthset.config import CONFIG_DIR
from synthset.errors import EXIT_USAGE, SynthsetError

__all__ = ["preflight", "quiet_third_party_logs", "entry_point", "check_group_choices"]


def remove_empty_run_folder(cfg: DictConfig) -> None:
    """Bad input leaves nothing behind: remove the (still empty) folder Hydra made for this job, and empty parents."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return
    folder = Path(HydraConfig.get().runtime.output_dir).resolve()
    stop = Path(str(cfg.paths.root_dir)).resolve()
    while folder != stop and stop in folder.parents and folder.is_dir() and not any(folder.iterdir()):
        folder.rmdir()
        folder = folder.parent


def entry_point(task: Callable[[DictConfig], Any]) -> Callable[[DictConfig], Any]:
    """A ``SynthsetError`` becomes one line on stderr (``error: ...``) and exit code 2, with nothing left on disk."""

    @functools.wraps(task)
    def wrapper(cfg: DictConfig) -> Any:
        try:
            return task(cfg)
        except SynthsetError as error:
            remove_empty_run_folder(cfg)
            print(f"error: {error}", file=sys.stderr, flush=True)
            sys.exit(EXIT_USAGE)

    return wrapper


def group_options(group_dir: Path) -> list[str]:
    return sorted(p.stem for p in group_dir.glob("*.yaml"))


def check_group_choices(argv: Sequence[str], config_dir: Path = CONFIG_DIR) -> None:
    """``model=WGAN`` names no config: say which ones exist, in one line, before Hydra dumps its search path."""
    for arg in argv:
        if arg.startswith("-") or "=" not in arg:
            continue
        key, _, value = arg.partition("=")
        key = key.lstrip("+~")
        group_dir = config_dir / key
        if key.startswith("hydra") or not group_dir.is_dir() or "(" in value:
            continue  # a plain key, one of Hydra's own groups, or a sweep function such as choice(...)
        options = group_options(group_dir)
        for choice in value.split(","):  # -m model=dcgan,wgan sweeps over several
            if choice not in options and choice != "null":
                raise SynthsetError(f"{key}={choice} is not one of the {key} configs ({', '.join(options)}); "
                                    f"pick one of them, e.g. {key}={options[0]}.")


def unknown_setting_message(key: str, value: str, tree: dict[str, Any]) -> str | None:
    """One sentence for ``key=value`` when ``key`` names no setting of ``tree`` (the composed config as plain
    containers, interpolations unresolved), else None."""
    *parents, leaf = key.split(".")
    node: Any = tree
    for part in parents:
        node = node.get(part) if isinstance(node, dict) else None
    if isinstance(node, dict) and leaf in node:
        return None
    parent_key = ".".join(parents)
    names = [str(name) for name in node if not str(name).startswith("_")] if isinstance(node, dict) else []
    near = difflib.get_close_matches(leaf, names, n=1)
    if near:
        hint = f"did you mean {'.'.join(filter(None, (parent_key, near[0])))}?"
    elif names:
        hint = f"{parent_key or 'the config'} has {', '.join(names)}"
    else:
        hint = f"{parent_key} is not a group of settings"
    return (f"{key}={value} names no setting ({hint}); fix the name (`--cfg job` lists every setting), "
            f"or write +{key}={value} to add a new one.")


def check_override_keys(config_name: str, argv: Sequence[str], config_dir: Path = CONFIG_DIR) -> None:
    """``model.widht=32`` names no setting: one line with the nearest name instead of Hydra's exception text.

    Best effort: overrides Hydra cannot parse, group sweeps (each job has its own settings) and ``hydra.*``
    keys are left to Hydra, which reports them itself.
    """
    from hydra import compose, initialize_config_dir
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.core.override_parser.types import OverrideType
    from omegaconf import OmegaConf

    try:
        overrides = OverridesParser.create().parse_overrides([a for a in argv if "=" in a and not a.startswith("-")])
    except Exception:  # noqa: BLE001 - a malformed override: Hydra's own message names it
        return
    overrides = [o for o in overrides if not o.key_or_group.startswith("hydra")]
    groups = [o for o in overrides if (config_dir / o.key_or_group).is_dir()]
    settings = [o for o in overrides if o.type == OverrideType.CHANGE and o not in groups]
    if not settings or any(o.is_sweep_override() for o in groups):
        return
    try:
        with initialize_config_dir(config_dir=str(config_dir), version_base="1.3"):
            composed = compose(config_name, overrides=[o.input_line for o in groups])
    except Exception:  # noqa: BLE001 - a composition error of its own: Hydra reports it in the real run
        return
    tree = OmegaConf.to_container(composed, resolve=False)  # ${hydra:...} only resolves inside the Hydra app
    for override in settings:
        value = override.input_line.partition("=")[2]
        message = unknown_setting_message(override.key_or_group, value, tree)
        if message:
            raise SynthsetError(message)


def quiet_third_party_logs() -> None:
    """MLflow's migrations, Lightning's tips and libraries' deprecation notices drown the useful output."""
    for name in ("alembic", "mlflow", "pytorch_lightning.utilities.rank_zero", "lightning_fabric.utilities.seed",
                 "lightning.pytorch.utilities.rank_zero", "urllib3", "torch_fidelity",
                 # its info line on every full checkpoint save ("weights_only was not set") reads like an unsafe load
                 "pytorch_lightning.trainer.connectors.checkpoint_connector"):
        logging.getLogger(name).setLevel(logging.WARNING)
    os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")
    # Libraries' own notices (torch.jit.load, MLflow's dataset source, Lightning's tips): not the user's concern.
    for category in (FutureWarning, UserWarning, DeprecationWarning):
        warnings.filterwarnings("ignore", category=category, module=r"(?!synthset)")
    for pattern in (".*ModelCheckpoint with manual optimization.*", ".*no `validation_step`.*", ".*LeafSpec.*",
                    ".*smaller than the logging interval.*", ".*does not have many workers.*"):
        warnings.filterwarnings("ignore", message=pattern)


def preflight(argv: Sequence[str] | None = None, config_name: str | None = None) -> None:
    """Run before Hydra parses ``argv``: refuse unknown group options (and, given the entry point's
    ``config_name``, unknown setting names) with one line and exit 2."""
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        check_group_choices(args)
        if config_name:
            check_override_keys(config_name, args)
    except SynthsetError as error:
        print(f"error: {error}", file=sys.stderr, flush=True)
        sys.exit(EXIT_USAGE)
