"""The workspace is the user's alone: its database, broker, key, logs and shards."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from tailor.config import Settings
from tailor.embedded import run_embedded
from tailor.storage import FileStore
from tests.conftest import eventually


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def usual_umask() -> Iterator[None]:
    """The umask most machines start processes with (others may read what they create)."""
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def test_what_tailor_up_creates_is_private(tmp_path: Path, usual_umask: None) -> None:
    settings = Settings(workspace=tmp_path / "ws")
    settings.encryption_key()
    with run_embedded(settings, workers=1):
        # The worker creates the broker's database when it connects.
        assert eventually(lambda: (settings.workspace / "broker.db").exists(), timeout_s=120)
    private = ["tailor.db", "broker.db", "worker.log", "secret.key"]
    assert mode(settings.workspace) == 0o700
    assert {name: mode(settings.workspace / name) for name in private} == dict.fromkeys(
        private, 0o600
    )


def test_an_existing_readable_workspace_is_made_private(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    ws.mkdir(mode=0o755)
    (ws / "tailor.db").write_bytes(b"")
    (ws / "tailor.db").chmod(0o644)
    Settings(workspace=ws).ensure_workspace()
    assert (mode(ws), mode(ws / "tailor.db")) == (0o700, 0o600)


def test_stored_objects_are_private_whatever_the_umask(tmp_path: Path, usual_umask: None) -> None:
    store = FileStore(tmp_path / "objects")
    store.put_bytes("teams/a/datasets/ds-1/shard-00000.parquet", b"team code")
    source = tmp_path / "adapter.safetensors"
    source.write_bytes(b"weights")
    store.upload_file(source, "teams/a/adapters/c/1/adapter_model.safetensors")
    team = tmp_path / "objects" / "teams" / "a"
    files = [p for p in team.rglob("*") if p.is_file()]
    dirs = [team, *(p for p in team.rglob("*") if p.is_dir())]
    assert len(files) == 2
    assert {mode(p) for p in files} == {0o600} and {mode(p) for p in dirs} == {0o700}
