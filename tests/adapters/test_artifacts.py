"""Stored versions: sealed with a checksum, immutable, and verified when loaded back."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tailor.stages.package.artifacts import (
    adapter_prefix,
    dir_checksum,
    fetched_version,
    load_version,
    save_version,
)
from tailor.stages.package.errors import (
    AdapterError,
    ChecksumMismatchError,
    VersionExistsError,
    VersionNotFoundError,
)
from tailor.storage import FileStore, ObjectStore, S3Store


@pytest.fixture(params=["file", "s3"])
def any_store(request: pytest.FixtureRequest, tmp_path: Path) -> ObjectStore:
    """Each object store implementation, empty."""
    if request.param == "file":
        return FileStore(tmp_path / "objects")
    store: S3Store = request.getfixturevalue("s3_store")
    return store


def _working_copy(adapter: Path, dest: Path) -> Path:
    shutil.copytree(adapter, dest)
    return dest


def test_a_saved_version_loads_back_with_its_manifest(
    any_store: ObjectStore, adapter_a: Path, tmp_path: Path
) -> None:
    saved = save_version(any_store, "acme", "code", 1, _working_copy(adapter_a, tmp_path / "a"))
    loaded = load_version(any_store, "acme", "code", 1, tmp_path / "back")
    assert loaded == saved
    assert saved.checksum == dir_checksum(adapter_a)
    assert (
        saved.size_bytes
        == sum(
            (adapter_a / f).stat().st_size
            for f in ("adapter_model.safetensors", "adapter_config.json")
        )
        + (adapter_a / "README.md").stat().st_size
    )
    keys = any_store.list(adapter_prefix("acme", "code", 1))
    assert "teams/acme/adapters/code/1/tailor.json" in keys


def test_versions_are_immutable(store: FileStore, adapter_a: Path, tmp_path: Path) -> None:
    save_version(store, "acme", "code", 1, _working_copy(adapter_a, tmp_path / "a"))
    with pytest.raises(VersionExistsError, match="code@1 of team acme already exists"):
        save_version(store, "acme", "code", 1, _working_copy(adapter_a, tmp_path / "b"))


def test_a_corrupted_version_is_detected_on_load(
    store: FileStore, adapter_a: Path, tmp_path: Path
) -> None:
    save_version(store, "acme", "code", 1, _working_copy(adapter_a, tmp_path / "a"))
    key = "teams/acme/adapters/code/1/adapter_model.safetensors"
    data = bytearray(store.get_bytes(key))
    data[-1] ^= 0xFF
    store.put_bytes(key, bytes(data))
    with pytest.raises(ChecksumMismatchError, match="code@1 of team acme is corrupted"):
        load_version(store, "acme", "code", 1, tmp_path / "back")


def test_another_teams_version_is_not_found(
    store: FileStore, adapter_a: Path, tmp_path: Path
) -> None:
    save_version(store, "acme", "code", 1, _working_copy(adapter_a, tmp_path / "a"))
    with (
        pytest.raises(VersionNotFoundError, match="code@1 not found for team globex"),
        fetched_version(store, "globex", "code", 1),
    ):
        pass


def test_a_fetched_version_is_cleaned_up(store: FileStore, adapter_a: Path, tmp_path: Path) -> None:
    save_version(store, "acme", "code", 1, _working_copy(adapter_a, tmp_path / "a"))
    with fetched_version(store, "acme", "code", 1) as (path, manifest):
        assert (path / "adapter_model.safetensors").is_file()
        assert manifest.base_model == "tiny-base"
    assert not path.exists()


@pytest.mark.parametrize("name", ["../x", "Code", "a/b", ""])
def test_adapter_names_cannot_escape_the_layout(name: str) -> None:
    with pytest.raises(AdapterError, match="adapter name"):
        adapter_prefix("acme", name, 1)
