"""The object store behaves the same on a directory and on S3 (moto's HTTP server)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tailor.storage import FileStore, ObjectStore, S3Store, StoreError


@pytest.fixture(params=["file", "s3"])
def any_store(request: pytest.FixtureRequest, tmp_path: Path) -> ObjectStore:
    """Each store implementation, empty."""
    if request.param == "file":
        return FileStore(tmp_path / "objects")
    store: S3Store = request.getfixturevalue("s3_store")
    return store


def test_objects_round_trip(any_store: ObjectStore) -> None:
    any_store.put_bytes("teams/a/datasets/d1/manifest.json", b"{}")
    assert any_store.get_bytes("teams/a/datasets/d1/manifest.json") == b"{}"
    assert any_store.exists("teams/a/datasets/d1/manifest.json")


def test_listing_is_by_prefix(any_store: ObjectStore) -> None:
    for key in ("teams/a/x/1", "teams/a/x/2", "teams/ab/x/3"):
        any_store.put_bytes(key, b".")
    assert any_store.list("teams/a/") == ["teams/a/x/1", "teams/a/x/2"]


def test_deleting_a_prefix_removes_only_it(any_store: ObjectStore) -> None:
    any_store.put_bytes("teams/a/x/1", b".")
    any_store.put_bytes("teams/b/x/1", b".")
    assert any_store.delete_prefix("teams/a/") == 1
    assert any_store.list("teams/") == ["teams/b/x/1"]


def test_files_upload_and_download(any_store: ObjectStore, tmp_path: Path) -> None:
    src = tmp_path / "w.bin"
    src.write_bytes(b"weights")
    any_store.upload_file(src, "teams/a/adapters/n/1/adapter_model.safetensors")
    any_store.download_file("teams/a/adapters/n/1/adapter_model.safetensors", tmp_path / "o.bin")
    assert (tmp_path / "o.bin").read_bytes() == b"weights"


@pytest.mark.parametrize("key", ["../etc/passwd", "/abs", "teams/a/../../x", "teams//a"])
def test_keys_cannot_escape(any_store: ObjectStore, key: str) -> None:
    with pytest.raises(StoreError):
        any_store.put_bytes(key, b".")


def test_a_missing_object_is_a_clear_error(any_store: ObjectStore) -> None:
    with pytest.raises(StoreError, match="no object"):
        any_store.get_bytes("teams/a/missing")
