"""Adapter uploads are bounded: bytes as sent, what an archive unpacks to, uploads at once.

The attacks (reviewer's findings 3 and 7): a config key that backtracks for minutes; a
1.5 MB zip that unpacks 1.5 GiB into the API's temp directory before anything is checked;
as many uploads at once as a user likes. Each is refused, with nothing stored and nothing
queued, and the temp directory never holds more than the caps allow.
"""

from __future__ import annotations

import contextlib
import json
import os
import struct
import tempfile
import threading
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from tailor.config import Settings
from tailor.storage import FileStore
from tests.api.conftest import queued_tasks
from tests.api.test_adapters import adapter_files, upload
from tests.conftest import Tenant

pytestmark = pytest.mark.usefixtures("catalog")
MIB = 1024 * 1024
BOMB_MIB = 1536  # 1.5 GiB of zeros in about 1.5 MB


def nothing_stored(
    client: TestClient, tenant: Tenant, store: FileStore, broker: redis.Redis
) -> None:
    assert store.list(f"teams/{tenant.slug}/") == []
    assert queued_tasks(broker) == []
    jobs = client.get(f"/v1/teams/{tenant.slug}/jobs", headers=tenant.auth()).json()["items"]
    assert jobs == []


@pytest.fixture
def temp_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The API's temp directory, private to the test."""
    root = tmp_path / "tmp"
    root.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(root))
    return root


@pytest.fixture
def peak_bytes(temp_root: Path) -> Iterator[Callable[[], int]]:
    """The most bytes the temp directory held at once, sampled while the test runs."""
    peak = [0]
    stop = threading.Event()

    def size() -> int:
        total = 0
        for folder, _dirs, files in os.walk(temp_root):
            for name in files:
                with contextlib.suppress(FileNotFoundError):  # removed while we looked
                    total += os.stat(os.path.join(folder, name)).st_blocks * 512
        return total

    def sample() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], size())
            stop.wait(0.002)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    yield lambda: peak[0]
    stop.set()
    sampler.join()


def with_settings(app: FastAPI, settings: Settings, **changes: Any) -> None:
    app.state.settings = settings.model_copy(update=changes)


# --- a zip bomb --------------------------------------------------------------------------------


def _zeros_deflated(mib: int) -> tuple[bytes, int]:
    """A raw deflate stream of `mib` MiB of zeros and its CRC, built in a second or so.

    After a full flush the compressor starts afresh, so every further MiB compresses to the
    same bytes: one MiB is compressed, the rest repeated.
    """
    chunk = bytes(MIB)
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    compressor.compress(chunk)
    first = compressor.flush(zlib.Z_FULL_FLUSH)
    block = compressor.compress(chunk) + compressor.flush(zlib.Z_FULL_FLUSH)
    crc = 0
    for _ in range(mib):
        crc = zlib.crc32(chunk, crc)
    return first + block * (mib - 1) + compressor.flush(), crc


def write_zip(members: list[tuple[str, bytes, int, int, int]]) -> bytes:
    """A zip of (name, deflated data, crc, declared size, method) members, written by hand."""
    local, central = b"", b""
    for name, data, crc, size, method in members:
        raw = name.encode()
        header = struct.pack(
            "<IHHHHHIIIHH", 0x04034B50, 20, 0, method, 0, 0x21, crc, len(data), size, len(raw), 0
        )
        central += struct.pack(
            "<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, method, 0, 0x21, crc, len(data), size,
            len(raw), 0, 0, 0, 0, 0, len(local),
        ) + raw  # fmt: skip
        local += header + raw + data
    end = struct.pack(
        "<IHHHHIIH", 0x06054B50, 0, 0, len(members), len(members), len(central), len(local), 0
    )
    return local + central + end


@pytest.fixture(scope="module")
def zip_bomb() -> bytes:
    """adapter_config.json, then adapter_model.safetensors: 1.5 GiB of zeros in ~1.5 MB."""
    config = adapter_files()["adapter_config.json"]
    data, crc = _zeros_deflated(BOMB_MIB)
    return write_zip(
        [
            ("adapter/adapter_config.json", config, zlib.crc32(config), len(config), 0),
            ("adapter/adapter_model.safetensors", data, crc, BOMB_MIB * MIB, 8),
        ]
    )


def test_the_zip_bomb_is_small(zip_bomb: bytes) -> None:
    assert len(zip_bomb) < 2 * MIB


@pytest.mark.parametrize("cap_mb", [64, 2048])
def test_a_zip_bomb_is_refused_before_it_fills_the_temp_dir(
    app: FastAPI,
    client: TestClient,
    settings: Settings,
    tenant: Tenant,
    store: FileStore,
    broker: redis.Redis,
    zip_bomb: bytes,
    peak_bytes: Callable[[], int],
    cap_mb: int,
) -> None:
    # 64 MiB: the declared size is over the cap; 2 GiB (the default): the ratio gives it away.
    with_settings(app, settings, adapter_upload_max_unpacked_mb=cap_mb)
    resp = upload(client, tenant, {"adapter.zip": zip_bomb})
    assert resp.status_code in (413, 422), resp.text
    assert resp.json()["type"].endswith(("/adapter-upload-too-large", "/adapter-unsafe-archive"))
    assert peak_bytes() <= 8 * MIB  # the 1.5 MB upload itself, never what it unpacks to
    nothing_stored(client, tenant, store, broker)


def test_a_zip_whose_directory_lies_about_sizes_is_refused(
    client: TestClient, tenant: Tenant, store: FileStore, broker: redis.Redis
) -> None:
    config = adapter_files()["adapter_config.json"]
    data, crc = _zeros_deflated(64)
    liar = write_zip(
        [
            ("adapter_config.json", config, zlib.crc32(config), len(config), 0),
            ("adapter_model.safetensors", data, crc, 1024, 8),  # declares 1 KiB, holds 64 MiB
        ]
    )
    resp = upload(client, tenant, {"adapter.zip": liar})
    assert resp.status_code in (413, 422), resp.text
    nothing_stored(client, tenant, store, broker)


# --- bytes as sent ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "caps", [{"adapter_upload_max_file_mb": 1}, {"adapter_upload_max_total_mb": 1}]
)
def test_an_upload_over_a_cap_is_refused_as_it_streams(
    app: FastAPI,
    client: TestClient,
    settings: Settings,
    tenant: Tenant,
    store: FileStore,
    broker: redis.Redis,
    peak_bytes: Callable[[], int],
    caps: dict[str, int],
) -> None:
    with_settings(app, settings, **caps)
    files = adapter_files() | {"adapter_model.safetensors": os.urandom(6 * MIB)}
    resp = upload(client, tenant, files)
    assert resp.status_code == 413, resp.text
    assert resp.json()["type"].endswith("/adapter-upload-too-large")
    assert peak_bytes() <= MIB + 64 * 1024
    nothing_stored(client, tenant, store, broker)


# --- module patterns -----------------------------------------------------------------------


def test_a_catastrophic_rank_pattern_key_is_refused_at_upload(
    client: TestClient, tenant: Tenant, store: FileStore, broker: redis.Redis
) -> None:
    files = adapter_files()
    config = json.loads(files["adapter_config.json"]) | {"rank_pattern": {"(a+)+$b": 8}}
    resp = upload(client, tenant, files | {"adapter_config.json": json.dumps(config).encode()})
    assert resp.status_code == 422, resp.text
    assert "never as regular expressions" in resp.json()["detail"]
    nothing_stored(client, tenant, store, broker)


# --- uploads at once -------------------------------------------------------------------------


def test_uploads_over_the_per_user_limit_are_refused_with_retry_after(
    app: FastAPI,
    client: TestClient,
    settings: Settings,
    sessions: sessionmaker[Session],
    tenant: Tenant,
    store: FileStore,
    broker: redis.Redis,
) -> None:
    from tailor.services.adapters.uploads import UploadLimits, acquire_slot, release_slot

    with_settings(app, settings, adapter_uploads_per_user=1)
    # The owner's other upload, in flight in this or another API process.
    held = acquire_slot(sessions, tenant.owner.id, UploadLimits.of(app.state.settings))
    resp = upload(client, tenant, adapter_files())
    assert resp.status_code == 429, resp.text
    assert resp.json()["type"].endswith("/too-many-uploads")
    assert int(resp.headers["Retry-After"]) >= 1
    nothing_stored(client, tenant, store, broker)

    release_slot(sessions, held)
    assert upload(client, tenant, adapter_files()).status_code == 202


def test_an_upload_gives_its_slot_back_whatever_its_outcome(
    client: TestClient, tenant: Tenant, session: Session, broker: redis.Redis
) -> None:
    from tailor.db.models import UploadSlot

    assert upload(client, tenant, {"adapter_model.bin": b"\x80\x04pickle"}).status_code == 422
    assert upload(client, tenant, adapter_files()).status_code == 202
    assert session.scalars(select(UploadSlot)).all() == []


def test_a_body_that_is_not_multipart_is_refused(client: TestClient, tenant: Tenant) -> None:
    resp = client.post(
        f"/v1/teams/{tenant.slug}/adapters/outside/import",
        content=b"{}",
        headers={**tenant.auth(), "Content-Type": "application/json"},
    )
    assert resp.status_code == 422 and "multipart" in resp.json()["detail"]
