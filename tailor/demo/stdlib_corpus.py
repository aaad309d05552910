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


# Packages of the site-packages the broad corpus reads: widely used, pinned by the lock file,
# so installing an unrelated package (or reinstalling this project, whose own sources hold
# the tests' synthetic team code) does not change the corpus and rebuild the base.
CORPUS_PACKAGES = (
    "alembic", "boto3", "botocore", "celery", "click", "fastapi", "httpx", "jinja2",
    "jsonschema", "kombu", "networkx", "numpy", "pandas", "peft", "pyarrow", "pydantic",
    "redis", "rich", "sqlalchemy", "starlette", "sympy", "torch", "transformers", "typer",
    "urllib3", "yaml",
)  # fmt: skip


def site_packages_dirs() -> list[Path]:
    """The CORPUS_PACKAGES installed in this interpreter's site-packages, in a stable order."""
    paths = sysconfig.get_paths()
    roots = [Path(paths[key]) for key in ("purelib", "platlib")]
    roots = [r for i, r in enumerate(roots) if r.is_dir() and r not in roots[:i]]
    return [r / name for name in CORPUS_PACKAGES for r in roots if (r / name).is_dir()]


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
    """A spread sample of up to `limit` .py files from the stdlib and common site-packages.

    The roots (the stdlib, each package) take turns, each giving its files in the order of a
    hash of their relative path: a large package (transformers) does not crowd out the
    stdlib, and the same installation gives the same sample.
    """
    roots = [stdlib_dir()] + (site_packages_dirs() if site_packages else [])
    queues = []
    for root in roots:
        files = dict(_candidates(root, min_bytes, max_bytes))
        order = sorted(files, key=lambda rel: hashlib.sha1(rel.encode()).hexdigest())
        queues.append([files[rel] for rel in order])
    picked: list[Path] = []
    for turn in range(max((len(q) for q in queues), default=0)):
        picked.extend(q[turn] for q in queues if turn < len(q))
        if len(picked) >= limit:
            break
    return picked[:limit]


def corpus_digest(paths: list[Path]) -> str:
    """A digest of the files' contents and their order: a changed corpus changes it."""
    digest = hashlib.sha256()
    for path in paths:
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()[:16]
