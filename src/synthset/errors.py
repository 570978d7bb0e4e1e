"""User-facing errors: one sentence naming the bad value, what was expected and how to fix it."""

import functools
import sys
from collections.abc import Callable
from typing import Any

EXIT_USAGE = 2


class SynthsetError(Exception):
    """A problem with the user's input or environment; entry points print it without a traceback."""


def require(condition: bool, message: str) -> None:
    """Raise ``SynthsetError(message)`` unless ``condition`` holds."""
    if not condition:
        raise SynthsetError(message)


def report_errors(task: Callable[..., Any]) -> Callable[..., Any]:
    """Turn a ``SynthsetError`` into one line on stderr (``error: ...``) and exit code 2, no traceback."""

    @functools.wraps(task)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return task(*args, **kwargs)
        except SynthsetError as error:
            print(f"error: {error}", file=sys.stderr, flush=True)
            sys.exit(EXIT_USAGE)

    return wrapper
