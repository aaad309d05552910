"""Code every machine has: the Python standard library's own sources."""

from __future__ import annotations

import os
import sysconfig
from pathlib import Path

_SKIP_PARTS = {
    "site-packages",
    "dist-packages",
    "test",
    "tests",
    "idlelib",
    "encodings",
    "__pycache__",
}


def stdlib_dir() -> Path:
    """The directory of this interpreter's standard library sources."""
    return Path(sysconfig.get_paths()["stdlib"])


def code_files(
    root: Path | None = None,
    *,
    limit: int = 200,
    min_bytes: int = 1_000,
    max_bytes: int = 20_000,
) -> list[Path]:
    """Up to `limit` mid-sized .py files under root (default: the stdlib), in a stable order."""
    base = root if root is not None else stdlib_dir()
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(base):
        dirnames[:] = sorted(d for d in dirnames if d not in _SKIP_PARTS)  # prune, and order
        for name in sorted(filenames):
            path = Path(dirpath) / name
            if name.endswith(".py") and min_bytes <= path.stat().st_size <= max_bytes:
                found.append(path)
                if len(found) == limit:
                    return found
    return found


def read_text(path: Path) -> str:
    """A source file's text; undecodable bytes replaced (a few stdlib files are latin-1)."""
    return path.read_bytes().decode("utf-8", errors="replace")
