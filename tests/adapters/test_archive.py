"""Unpacking an uploaded archive: only the adapter's files, within limits, config first."""

from __future__ import annotations

import io
import json
import tarfile
import zipfile
import zlib
from pathlib import Path

import pytest

from tailor.services.adapters.intake import check_upload
from tailor.stages.package.archive import ArchiveLimits, extract_archive
from tailor.stages.package.errors import (
    InvalidAdapterError,
    UnsafeArchiveError,
    UploadTooLargeError,
)

MIB = 1024 * 1024
CONFIG = json.dumps({"peft_type": "LORA", "r": 4, "lora_alpha": 8, "target_modules": ["c_attn"]})


def _tar_gz_of_zeros(path: Path, mib: int) -> Path:
    """A .tar.gz whose one member is `mib` MiB of zeros (about 1 KB per MiB), built fast.

    After a full flush the compressor starts afresh, so each MiB of zeros compresses to the
    same bytes: one is compressed and repeated.
    """
    info = tarfile.TarInfo("adapter/adapter_model.safetensors")
    info.size = mib * MIB
    header = info.tobuf(format=tarfile.GNU_FORMAT)
    chunk = bytes(MIB)
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    head = compressor.compress(header) + compressor.flush(zlib.Z_FULL_FLUSH)
    first = compressor.compress(chunk) + compressor.flush(zlib.Z_FULL_FLUSH)
    block = compressor.compress(chunk) + compressor.flush(zlib.Z_FULL_FLUSH)
    tail = compressor.compress(bytes(1024)) + compressor.flush()
    crc = zlib.crc32(header)
    for _ in range(mib):
        crc = zlib.crc32(chunk, crc)
    crc = zlib.crc32(bytes(1024), crc)
    size = len(header) + mib * MIB + 1024
    gzip_header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff"
    trailer = crc.to_bytes(4, "little") + (size % 2**32).to_bytes(4, "little")
    path.write_bytes(gzip_header + head + first + block * (mib - 1) + tail + trailer)
    return path


def _used(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


def test_a_tar_gz_bomb_is_refused_before_its_data_is_written(tmp_path: Path) -> None:
    bomb = _tar_gz_of_zeros(tmp_path / "adapter.tar.gz", 512)
    assert bomb.stat().st_size < MIB
    with pytest.raises(UnsafeArchiveError, match="times its packed size"):
        extract_archive(bomb, tmp_path / "out")
    assert _used(tmp_path / "out") == 0


def test_a_tar_over_the_unpacked_cap_is_refused_before_its_data_is_written(
    tmp_path: Path,
) -> None:
    bomb = _tar_gz_of_zeros(tmp_path / "adapter.tar.gz", 96)
    limits = ArchiveLimits(max_unpacked_bytes=64 * MIB, max_ratio=10_000)
    with pytest.raises(UploadTooLargeError):
        extract_archive(bomb, tmp_path / "out", limits)
    assert _used(tmp_path / "out") == 0


def _zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def test_a_zips_config_is_judged_before_its_weights_are_unpacked(tmp_path: Path) -> None:
    bad = json.dumps({"peft_type": "IA3", "target_modules": ["c_attn"]}).encode()
    archive = _zip(
        tmp_path / "a.zip",
        {"adapter_model.safetensors": b"w" * MIB, "adapter_config.json": bad},
    )
    with pytest.raises(InvalidAdapterError, match="only LoRA"):
        check_upload([archive], tmp_path / "work")
    assert not (tmp_path / "work" / "unpacked" / "adapter_model.safetensors").exists()


def test_only_the_adapters_two_files_are_written(tmp_path: Path) -> None:
    archive = _zip(
        tmp_path / "a.zip",
        {"adapter/README.md": b"notes", "adapter/adapter_config.json": CONFIG.encode(),
         "adapter/adapter_model.safetensors": b"w", "adapter/extra/other.txt": b"x"},
    )  # fmt: skip
    out = extract_archive(archive, tmp_path / "out")
    assert sorted(p.name for p in out.iterdir()) == [
        "adapter_config.json",
        "adapter_model.safetensors",
    ]


def test_an_archive_of_many_members_is_refused(tmp_path: Path) -> None:
    members = {f"f{i}.txt": b"" for i in range(100)} | {"adapter_config.json": CONFIG.encode()}
    with pytest.raises(UnsafeArchiveError, match="more than 64 members"):
        extract_archive(_zip(tmp_path / "a.zip", members), tmp_path / "out")


def test_adapter_files_in_two_folders_are_refused(tmp_path: Path) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name in ("a/adapter_config.json", "b/adapter_model.safetensors"):
            info = tarfile.TarInfo(name)
            info.size = 1
            tar.addfile(info, io.BytesIO(b"{"))
    archive = tmp_path / "a.tar"
    archive.write_bytes(buf.getvalue())
    with pytest.raises(InvalidAdapterError, match="two folders"):
        extract_archive(archive, tmp_path / "out")
