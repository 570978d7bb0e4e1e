"""User-facing errors: one sentence naming the bad value, what was expected and how to fix it."""


class SynthsetError(Exception):
    """A problem with the user's input or environment; entry points print it without a traceback."""


def require(condition: bool, message: str) -> None:
    """Raise ``SynthsetError(message)`` unless ``condition`` holds."""
    if not condition:
        raise SynthsetError(message)
