"""Request-time checks of an uploaded adapter, before anything is stored.

The API process has no torch or PEFT, so it checks what needs neither: sizes and archive
safety (`tailor.stages.package.archive`), pickles, truncated or malformed safetensors, the
config's kind and its module patterns (globs, never regexes). The config is judged before
the weights are read. The import job then runs `tailor.stages.package.validate` (PEFT's own
config checks, shapes against the base) before the version is registered.
"""

from __future__ import annotations

import json
from pathlib import Path, PurePath
from typing import Any

from tailor.stages.package.archive import (
    ArchiveLimits,
    extract_archive,
    is_archive,
    refuse_pickles,
)
from tailor.stages.package.errors import InvalidAdapterError
from tailor.stages.package.headers import read_header
from tailor.stages.package.patterns import check_patterns
from tailor.stages.package.spec import CONFIG_FILE, WEIGHTS_FILE

UPLOAD_FILES = (CONFIG_FILE, WEIGHTS_FILE)


def upload_root(saved: list[Path], work_dir: Path, limits: ArchiveLimits) -> Path:
    """The directory holding the upload: the unpacked archive, or the files as sent."""
    if len(saved) == 1 and is_archive(saved[0]):
        return extract_archive(saved[0], work_dir / "unpacked", limits, on_config=parse_config)
    if any(is_archive(p) for p in saved):
        raise InvalidAdapterError(
            "upload either one .tar/.zip archive or the adapter files themselves, not both"
        )
    return saved[0].parent


def safe_file_name(name: str | None) -> str:
    """The base name of an uploaded file; refuse names that are empty or hidden."""
    base = PurePath((name or "").replace("\\", "/")).name
    if not base or base.startswith("."):
        raise InvalidAdapterError(f"uploaded file name {name!r} is not usable; name the file")
    return base


def parse_config(raw: bytes) -> dict[str, Any]:
    """`adapter_config.json`'s bytes: a JSON object, a LoRA config, patterns that are globs."""
    try:
        config = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidAdapterError(f"{CONFIG_FILE} is not valid JSON: {exc}") from exc
    if not isinstance(config, dict):
        raise InvalidAdapterError(f"{CONFIG_FILE} must be a JSON object")
    if str(config.get("peft_type", "")).upper() != "LORA":
        raise InvalidAdapterError(
            f"{CONFIG_FILE} has peft_type {config.get('peft_type')!r}; only LoRA adapters "
            "(peft_type 'LORA') can be imported"
        )
    check_patterns(config)
    return config


def check_config(root: Path) -> dict[str, Any]:
    """`adapter_config.json`: present, small, and a LoRA config whose patterns are globs."""
    path = root / CONFIG_FILE
    if not path.is_file():
        raise InvalidAdapterError(
            f"the upload has no {CONFIG_FILE}; a PEFT adapter is {CONFIG_FILE} plus "
            f"{WEIGHTS_FILE} (written by `model.save_pretrained(dir)`)"
        )
    with path.open("rb") as fh:
        raw = fh.read(1024 * 1024 + 1)
    if len(raw) > 1024 * 1024:
        raise InvalidAdapterError(f"{CONFIG_FILE} is over 1 MiB; a LoRA config is a few hundred")
    return parse_config(raw)


def check_weights(root: Path) -> int:
    """`adapter_model.safetensors`: complete, well formed, holding LoRA tensors; their count."""
    path = root / WEIGHTS_FILE
    if not path.is_file():
        raise InvalidAdapterError(f"the upload has no {WEIGHTS_FILE}; upload it too")
    tensors = read_header(path)  # refuses pickles, truncation and malformed headers
    if not any(".lora_" in name for name in tensors):
        raise InvalidAdapterError(f"{WEIGHTS_FILE} holds no LoRA tensors (…lora_A / …lora_B)")
    return len(tensors)


def check_upload(saved: list[Path], work_dir: Path, limits: ArchiveLimits | None = None) -> Path:
    """Every check that needs no base model; the directory holding the two adapter files."""
    if not saved:
        raise InvalidAdapterError(f"upload a .tar/.zip, or {CONFIG_FILE} and {WEIGHTS_FILE}")
    root = upload_root(saved, work_dir, limits or ArchiveLimits())
    refuse_pickles(root)
    check_config(root)
    check_weights(root)
    return root
