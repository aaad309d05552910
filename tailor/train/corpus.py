"""Code every machine has: the Python standard library's own sources and the site-packages."""

from __future__ import annotations

import hashlib
import os
import sysconfig
from collections.abc import Iterator
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


def site_packages_dirs() -> list[Path]:
    """This interpreter's site-packages directories (pure and platform), without repeats."""
    paths = sysconfig.get_paths()
    dirs = [Path(paths[key]) for key in ("purelib", "platlib")]
    return [d for i, d in enumerate(dirs) if d.is_dir() and d not in dirs[:i]]


def _candidates(root: Path, min_bytes: int, max_bytes: int) -> Iterator[tuple[str, Path]]:
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in _SKIP_PARTS)
        for name in sorted(filenames):
            path = Path(dirpath) / name
            if name.endswith(".py") and min_bytes <= path.stat().st_size <= max_bytes:
                yield f"{root.name}/{path.relative_to(root)}", path


def broad_code_files(
    limit: int, *, site_packages: bool = True, min_bytes: int = 1_000, max_bytes: int = 20_000
) -> list[Path]:
    """A spread sample of up to `limit` .py files from the stdlib and the site-packages.

    Files are picked by a hash of their relative path, not alphabetically, so one large
    package does not fill the sample, and the same installation gives the same sample.
    """
    roots = [stdlib_dir()] + (site_packages_dirs() if site_packages else [])
    seen: dict[str, Path] = {}
    for root in roots:
        for rel, path in _candidates(root, min_bytes, max_bytes):
            seen.setdefault(rel, path)
    ranked = sorted(seen, key=lambda rel: hashlib.sha1(rel.encode()).hexdigest())
    return [seen[rel] for rel in ranked[:limit]]


def corpus_digest(paths: list[Path]) -> str:
    """A digest of the files' contents and their order: a changed corpus changes it."""
    digest = hashlib.sha256()
    for path in paths:
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()[:16]
