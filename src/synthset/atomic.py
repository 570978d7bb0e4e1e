"""Write files so that a kill never leaves half of one: a temporary name beside it, then ``os.replace``."""

import os
from collections.abc import Callable
from pathlib import Path


def temporary_beside(path: Path) -> Path:
    """A hidden name in the same folder (same file system, so the rename is atomic)."""
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


def atomic_write_with(path: Path, write: Callable[[Path], None], keep_previous: bool = False) -> None:
    """``write(temporary)``, then rename over ``path``; with ``keep_previous`` the old file becomes ``<path>.prev``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = temporary_beside(path)
    try:
        write(temporary)
        if keep_previous and path.exists():
            os.replace(path, path.with_name(path.name + ".prev"))
        os.replace(temporary, path)
    finally:
        if temporary.exists():
            temporary.unlink()


def atomic_write_bytes(path: Path, data: bytes) -> None:
    atomic_write_with(path, lambda temporary: temporary.write_bytes(data))


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())
