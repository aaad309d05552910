"""Checkpoints in the object store: `<prefix>step-N/` with files, then `state.json` last.

A checkpoint counts only once its `state.json` exists, so a run killed while uploading
leaves an incomplete folder that resume ignores.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from tailor.storage import ObjectStore

STATE = "state.json"
_STEP = re.compile(r"step-(\d+)/" + re.escape(STATE) + "$")


def step_prefix(prefix: str, step: int) -> str:
    """The folder of one checkpoint."""
    return f"{prefix}step-{step}/"


def save_checkpoint(
    store: ObjectStore, prefix: str, step: int, files: dict[str, Path], state: dict[str, Any]
) -> str:
    """Upload files, then commit the checkpoint by writing its state; returns its folder."""
    upload_files(store, prefix, step, files)
    return commit_checkpoint(store, prefix, step, state)


def completed_steps(store: ObjectStore, prefix: str) -> list[int]:
    """Steps with a committed checkpoint, ascending."""
    steps = []
    for key in store.list(prefix):
        match = _STEP.search(key[len(prefix) :])
        if match:
            steps.append(int(match.group(1)))
    return sorted(steps)


def latest_step(store: ObjectStore, prefix: str) -> int | None:
    """The newest committed checkpoint's step, or None."""
    steps = completed_steps(store, prefix)
    return steps[-1] if steps else None


def load_checkpoint(store: ObjectStore, prefix: str, step: int, dest: Path) -> dict[str, Any]:
    """Download one checkpoint's files into dest; returns its state."""
    folder = step_prefix(prefix, step)
    for key in store.list(folder):
        name = key[len(folder) :]
        if name != STATE:
            store.download_file(key, dest / name)
    state: dict[str, Any] = json.loads(store.get_bytes(folder + STATE))
    return state


def prune_checkpoints(store: ObjectStore, prefix: str, keep: int) -> None:
    """Delete every checkpoint folder older than step `keep`, complete or not."""
    steps = set()
    for key in store.list(prefix):
        match = re.match(r"step-(\d+)/", key[len(prefix) :])
        if match and int(match.group(1)) < keep:
            steps.add(int(match.group(1)))
    for step in sorted(steps):
        store.delete_prefix(step_prefix(prefix, step))


# --- checkpoints written by several processes (sharded full fine-tuning) ---------------


def upload_files(store: ObjectStore, prefix: str, step: int, files: dict[str, Path]) -> None:
    """Upload one part of a checkpoint (one rank's shards) without committing it."""
    folder = step_prefix(prefix, step)
    for name, path in files.items():
        store.upload_file(path, folder + name)


def commit_checkpoint(store: ObjectStore, prefix: str, step: int, state: dict[str, Any]) -> str:
    """Commit a checkpoint whose files every writer has uploaded: its state goes last."""
    folder = step_prefix(prefix, step)
    store.put_bytes(folder + STATE, json.dumps({**state, "step": step}).encode())
    return folder
